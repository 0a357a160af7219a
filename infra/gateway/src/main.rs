//! `gateway`: serves the template's HTTP API on one base URL for `make dev` (see lib.rs).
//! Reads the functions' own configuration (JWT_ISSUER, JWT_AUDIENCE, JWKS_FILE, FRONTEND_URL)
//! from the environment, plus GATEWAY_ADDR, LAMBDA_URL and optionally SPA_ORIGINS.

use portico_gateway::{app, template, Gateway};
use shared::auth::Authenticator;
use shared::config::Config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::telemetry::init();
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let template_text = std::fs::read_to_string(var("TEMPLATE", "template.yaml"))?;
    let config = Config::from_env()?;
    let origins = match std::env::var("SPA_ORIGINS") {
        Ok(list) => list.split(',').map(|o| o.trim().to_string()).collect(),
        Err(_) => vec![config.portal.frontend_url.origin().ascii_serialization()],
    };
    let http = reqwest::Client::new();
    let gateway = Gateway {
        routes: template::routes(&template_text)?,
        cors: template::cors(&template_text)?,
        origins,
        upstream: var("LAMBDA_URL", "http://127.0.0.1:9000/lambda-url"),
        auth: Authenticator::new(config.auth, http.clone()),
        http,
    };
    let addr = var("GATEWAY_ADDR", "127.0.0.1:8787");
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, routes = gateway.routes.len(), "gateway listening");
    axum::serve(listener, app(gateway)).await?;
    Ok(())
}
