//! reconcile: on an EventBridge schedule, re-syncs the customers whose state is stale or whose
//! last sync failed (shared::reconcile), within the invocation's time and a Stripe request rate.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use shared::reconcile::{reconcile, ReconcileOptions};
use shared::services::Services;
use shared::stripe::Pace;

/// Stripe requests a second when `RECONCILE_STRIPE_RATE` is unset: a small share of Stripe's
/// limit, which the webhook and the users need.
const DEFAULT_RATE: f64 = 5.0;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let lookup = |name: &str| std::env::var(name).ok();
    let options = ReconcileOptions::from_lookup(lookup)?;
    let rate = match lookup("RECONCILE_STRIPE_RATE").filter(|v| !v.is_empty()) {
        None => DEFAULT_RATE,
        Some(v) => v
            .parse()
            .map_err(|_| "RECONCILE_STRIPE_RATE must be a number")?,
    };
    let pace = Pace::per_second(rate).ok_or("RECONCILE_STRIPE_RATE must be positive")?;
    let mut services = Services::from_env(env!("CARGO_PKG_NAME"))?;
    services.stripe = services.stripe.clone().with_pace(pace);
    let (services, options) = (&services, &options);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = shared::http::deadline_instant(event.context.deadline);
        let work = reconcile(services.sync_context(), options, &|_, _| {});
        let run = shared::budget::invocation(deadline, Box::pin(work));
        let outcome = services
            .metrics
            .invocation(&event.context.request_id, async {
                let outcome = run.await;
                if let Ok(Ok(report)) = &outcome {
                    shared::metrics::reconcile_drift(report.drifted as u64);
                }
                outcome
            })
            .await;
        match outcome {
            Ok(Ok(report)) => Ok::<Value, Error>(json!(report)),
            Ok(Err(e)) => Err(e.into()),
            Err(spent) => Err(spent.into()),
        }
    }))
    .await
}
