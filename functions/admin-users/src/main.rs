//! admin-users: support tools for administrators (one user's billing, re-sync, link, erasure).

mod handler;

use lambda_http::{run, service_fn, Error, Request};
use shared::services::Services;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let services = Services::from_env(env!("CARGO_PKG_NAME"))?;
    let services = &services;
    run(service_fn(move |request: Request| {
        handler::handle(services, request)
    }))
    .await
}
