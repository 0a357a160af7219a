use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{self, ErrorCode, HandlerResult, Router};
use shared::services::Services;
use shared::webhook::{self, Outcome};

#[derive(Debug, Clone, Copy)]
enum Route {
    Event,
}

const ROUTES: Router<Route> = Router::new(&[(Method::POST, "/", Route::Event)]);

pub async fn handle(services: &Services, request: Request) -> Result<Response<Body>, Error> {
    Ok(http::serve(services, &request, dispatch(services, &request)).await)
}

async fn dispatch(services: &Services, request: &Request) -> HandlerResult {
    let (Route::Event, _) = ROUTES.route(request)?;
    // lambda_http has already decoded a base64 body: these are the bytes Stripe signed.
    let body: &[u8] = request.body().as_ref();
    // Stripe events embed whole objects (an invoice with its lines), so they get more room than
    // the SPA's request bodies.
    if body.len() > services.config.max_body_bytes * 16 {
        return Err(http::ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "event too large",
        ));
    }
    let signature = http::header(request, "stripe-signature");
    let (event, outcome) = webhook::receive(
        services.sync_context(),
        &services.secrets,
        body,
        signature,
        services.config.webhook_tolerance_seconds,
    )
    .await?;
    tracing::info!(event = %event.id, event_type = %event.event_type, outcome = ?outcome, "webhook handled");
    let answer = match outcome {
        Outcome::Processed { .. } => json!({"received": true}),
        Outcome::Duplicate => json!({"received": true, "duplicate": true}),
        Outcome::Ignored(reason) => json!({"received": true, "ignored": true, "reason": reason}),
    };
    Ok(http::json(StatusCode::OK, answer))
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "resilience_tests.rs"]
mod resilience_tests;
