use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{self, HandlerResult, Router};
use shared::portal::{create_session, CreateSessionRequest};
use shared::services::Services;

#[derive(Debug, Clone, Copy)]
enum Route {
    Create,
}

const ROUTES: Router<Route> = Router::new(&[(Method::POST, "/portal/sessions", Route::Create)]);

pub async fn handle(services: &Services, request: Request) -> Result<Response<Body>, Error> {
    Ok(http::serve(services, &request, dispatch(services, &request)).await)
}

async fn dispatch(services: &Services, request: &Request) -> HandlerResult {
    let (Route::Create, _) = ROUTES.route(request)?;
    let user = services.auth.authenticate_request(request).await?;
    let body: CreateSessionRequest = http::parse_json(request, services.config.max_body_bytes)?;
    let session = create_session(
        &services.table,
        &services.stripe,
        &services.clock,
        &services.config.portal,
        &user,
        body,
    )
    .await?;
    Ok(http::json(
        StatusCode::CREATED,
        json!({ "portal_session": session }),
    ))
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
