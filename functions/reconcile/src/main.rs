//! reconcile: on an EventBridge schedule, re-syncs the customers whose state is stale or whose
//! last sync failed (shared::reconcile), within the invocation's time and a Stripe request rate.

mod handler;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::reconcile::ReconcileOptions;
use shared::services::Services;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let lookup = |name: &str| std::env::var(name).ok();
    let options = ReconcileOptions::from_lookup(lookup)?;
    let pace = handler::stripe_pace(lookup)?;
    let mut services = Services::from_env(env!("CARGO_PKG_NAME"))?;
    services.stripe = services.stripe.clone().with_pace(pace);
    let (services, options) = (&services, &options);
    run(service_fn(move |event: LambdaEvent<Value>| {
        handler::handle(services, options, event)
    }))
    .await
}
