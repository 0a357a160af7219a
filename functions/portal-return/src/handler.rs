use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::json;
use shared::http::{self, ApiError, ErrorCode, HandlerResult, Router};
use shared::portal::{handle_return, ReturnRequest};
use shared::services::Services;
use shared::sync::ChangeKind;

#[derive(Debug, Clone, Copy)]
enum Route {
    Return,
}

const ROUTES: Router<Route> = Router::new(&[(Method::GET, "/portal/return", Route::Return)]);

pub async fn handle(services: &Services, request: Request) -> Result<Response<Body>, Error> {
    Ok(http::serve(services, &request, dispatch(services, &request)).await)
}

async fn dispatch(services: &Services, request: &Request) -> HandlerResult {
    let (Route::Return, _) = ROUTES.route(request)?;
    let user = services.auth.authenticate_request(request).await?;
    let query = request.query_string_parameters_ref();
    let session = query.and_then(|q| q.first("session")).unwrap_or_default();
    // Portico's refs are 32 hex characters; anything else cannot name a session.
    if session.len() != 32 || !session.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("no such portal session"));
    }
    let action = query.and_then(|q| q.first("action")).map(str::to_string);
    if let Some(action) = &action {
        let valid = !action.is_empty()
            && action.len() <= 64
            && action
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidField,
                "action must be 1-64 letters, digits, _ or -",
            )
            .with_field("action"));
        }
    }
    let outcome = handle_return(
        services.sync_context(),
        &user,
        ReturnRequest {
            session: session.to_string(),
            action,
        },
        services.config.sync_refresh_min_interval,
    )
    .await?;
    let changed = |kind| outcome.changes.iter().any(|c| c.kind == kind);
    Ok(http::json(
        StatusCode::OK,
        json!({
            "synchronized_data": {
                "customer_updated": changed(ChangeKind::Customer),
                "subscription_changed": changed(ChangeKind::Subscription),
                "payment_method_updated": changed(ChangeKind::PaymentMethod),
                "changes": outcome.changes.iter().map(|c| c.message.as_str()).collect::<Vec<_>>(),
                "details": outcome.changes.iter().map(|c| json!({"field": c.field, "from": c.from, "to": c.to})).collect::<Vec<_>>(),
            },
            "premium": outcome.sync.premium,
            "redirect_url": outcome.redirect_url,
            "first_return": outcome.first_return,
            "refreshed": outcome.refreshed,
        }),
    ))
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fault_tests.rs"]
mod fault_tests;

#[cfg(test)]
#[path = "analytics_tests.rs"]
mod analytics_tests;
