use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::json;
use shared::http::{self, ApiError, ErrorCode, HandlerResult, PathParams, Router};
use shared::ids::UserId;
use shared::services::Services;
use shared::support::{self, Actor, EraseOptions, LinkRequest, DEFAULT_PAGE, MAX_PAGE};

#[derive(Debug, Clone, Copy)]
enum Route {
    Show,
    Erase,
    Sync,
    Link,
}

const ROUTES: Router<Route> = Router::new(&[
    (Method::GET, "/admin/users/{sub}", Route::Show),
    (Method::DELETE, "/admin/users/{sub}", Route::Erase),
    (Method::POST, "/admin/users/{sub}/sync", Route::Sync),
    (Method::POST, "/admin/users/{sub}/link", Route::Link),
]);

pub async fn handle(services: &Services, request: Request) -> Result<Response<Body>, Error> {
    Ok(http::serve(services, &request, dispatch(services, &request)).await)
}

/// The `{sub}` segment, percent-decoded: identity providers' subs hold `|` and other characters
/// a client escapes in a path.
fn sub(params: &PathParams) -> Result<UserId, ApiError> {
    let raw = params.get("sub").unwrap_or_default();
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UserNotFound,
            "Portico has no such user",
        )
    };
    let decoded = percent_decode(raw).ok_or_else(not_found)?;
    UserId::parse(decoded).map_err(|_| not_found())
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidLimit,
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                )
                .with_field("limit")
            }),
    }
}

async fn dispatch(services: &Services, request: &Request) -> HandlerResult {
    let (route, params) = ROUTES.route(request)?;
    let admin = services.auth.authenticate_request(request).await?;
    admin.require_admin()?;
    let sub = sub(&params)?;
    let actor = Actor::Admin(admin.id.clone());
    let max_body = services.config.max_body_bytes;
    match route {
        Route::Show => {
            let query = request.query_string_parameters_ref();
            // `cursor=` (empty) is the first page, as no cursor is.
            let cursor = query
                .and_then(|q| q.first("cursor"))
                .filter(|c| !c.is_empty());
            let limit = limit(query.and_then(|q| q.first("limit")))?;
            let user = support::user_details(&services.table, &sub, cursor, limit).await?;
            Ok(http::json(StatusCode::OK, json!({ "user": user })))
        }
        Route::Sync => {
            let sync = support::force_sync(services.sync_context(), &sub, &actor).await?;
            Ok(http::json(StatusCode::OK, json!({ "sync": sync })))
        }
        Route::Link => {
            let link: LinkRequest = http::parse_json(request, max_body)?;
            let outcome = support::link(services.sync_context(), &sub, &link, &actor).await?;
            Ok(http::json(StatusCode::OK, json!({ "link": outcome })))
        }
        Route::Erase => {
            let options: EraseOptions = http::parse_json(request, max_body)?;
            let erasure = support::erase(
                &services.table,
                &services.stripe,
                &services.clock,
                &sub,
                options,
                &actor,
            )
            .await?;
            Ok(http::json(StatusCode::OK, json!({ "erasure": erasure })))
        }
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
