use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::json;
use shared::analytics::{portal_analytics, Period};
use shared::http::{self, HandlerResult, Router};
use shared::services::Services;

#[derive(Debug, Clone, Copy)]
enum Route {
    Analytics,
}

const ROUTES: Router<Route> = Router::new(&[(Method::GET, "/portal/analytics", Route::Analytics)]);

pub async fn handle(services: &Services, request: Request) -> Result<Response<Body>, Error> {
    Ok(http::serve(services, &request, dispatch(services, &request)).await)
}

async fn dispatch(services: &Services, request: &Request) -> HandlerResult {
    let (Route::Analytics, _) = ROUTES.route(request)?;
    let user = services.auth.authenticate_request(request).await?;
    user.require_admin()?;
    let query = request.query_string_parameters_ref();
    let period = Period::parse(
        query.and_then(|q| q.first("start_date")),
        query.and_then(|q| q.first("end_date")),
        services.clock.now().date(),
    )?;
    let analytics = portal_analytics(&services.table, period).await?;
    Ok(http::json(
        StatusCode::OK,
        json!({ "analytics": analytics }),
    ))
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
