use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;
use shared::account::{self, CheckoutRequest};
use shared::http::{self, ApiError, ErrorCode, HandlerResult, PathParams, Router};
use shared::ids::SubscriptionId;
use shared::services::Services;

#[derive(Debug, Clone, Copy)]
enum Route {
    Account,
    Cancel,
    Resume,
    Preview,
    Checkout,
}

const ROUTES: Router<Route> = Router::new(&[
    (Method::GET, "/billing/account", Route::Account),
    (
        Method::POST,
        "/billing/subscriptions/{id}/cancel",
        Route::Cancel,
    ),
    (
        Method::POST,
        "/billing/subscriptions/{id}/resume",
        Route::Resume,
    ),
    (
        Method::GET,
        "/billing/subscriptions/{id}/preview",
        Route::Preview,
    ),
    (Method::POST, "/billing/checkout-sessions", Route::Checkout),
]);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    #[serde(default)]
    immediately: bool,
}

pub async fn handle(services: &Services, request: Request) -> Result<Response<Body>, Error> {
    Ok(http::serve(services, &request, dispatch(services, &request)).await)
}

fn subscription_id(params: &PathParams) -> Result<SubscriptionId, ApiError> {
    // An id that cannot be a subscription's cannot be the caller's either.
    params
        .get("id")
        .and_then(|id| SubscriptionId::parse(id).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::SubscriptionNotFound,
                "no such subscription of yours",
            )
        })
}

async fn dispatch(services: &Services, request: &Request) -> HandlerResult {
    let (route, params) = ROUTES.route(request)?;
    let user = services.auth.authenticate_request(request).await?;
    let request_id = http::request_id(request);
    let ctx = services.sync_context();
    match route {
        Route::Account => {
            let refresh = match request
                .query_string_parameters_ref()
                .and_then(|q| q.first("refresh"))
            {
                None | Some("false" | "0") => false,
                Some("true" | "1") => true,
                // A typo must not silently serve stale state as if it were fresh.
                Some(_) => {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidField,
                        "refresh must be true, false, 1 or 0",
                    )
                    .with_field("refresh"))
                }
            };
            let account = account::get_account(
                ctx,
                &user,
                refresh,
                services.config.sync_refresh_min_interval,
                &request_id,
            )
            .await?;
            Ok(http::json(StatusCode::OK, json!({ "account": account })))
        }
        Route::Cancel => {
            let id = subscription_id(&params)?;
            let body: CancelRequest = http::parse_json(request, services.config.max_body_bytes)?;
            let result = account::cancel(
                ctx,
                &services.config,
                &user,
                &id,
                body.immediately,
                &request_id,
            )
            .await?;
            Ok(http::json(StatusCode::OK, json!({ "result": result })))
        }
        Route::Resume => {
            let id = subscription_id(&params)?;
            let result = account::resume(ctx, &user, &id, &request_id).await?;
            Ok(http::json(StatusCode::OK, json!({ "result": result })))
        }
        Route::Preview => {
            let id = subscription_id(&params)?;
            let price = request
                .query_string_parameters_ref()
                .and_then(|q| q.first("price"))
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        ErrorCode::PriceRequired,
                        "say which price: ?price=price_...",
                    )
                    .with_field("price")
                })?
                .to_string();
            let preview =
                account::preview_plan_change(ctx, &services.config, &user, &id, price).await?;
            Ok(http::json(StatusCode::OK, json!({ "preview": preview })))
        }
        Route::Checkout => {
            let key = http::idempotency_key(request)?.ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::IdempotencyKeyRequired,
                    "send an Idempotency-Key header (1-200 printable characters), the same for retries of one click",
                )
            })?;
            let body: CheckoutRequest = http::parse_json(request, services.config.max_body_bytes)?;
            let session = account::checkout(
                &services.table,
                &services.stripe,
                &services.clock,
                &services.config,
                &user,
                body,
                key,
            )
            .await?;
            let status = if session.reused {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(http::json(status, json!({ "checkout_session": session })))
        }
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
