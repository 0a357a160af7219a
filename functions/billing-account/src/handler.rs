use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{self, HandlerResult, Router};
use shared::services::Services;

#[derive(Debug, Clone, Copy)]
enum Route {
    Account,
}

const ROUTES: Router<Route> = Router::new(&[(Method::GET, "/billing/account", Route::Account)]);

pub async fn handle(services: &Services, request: Request) -> Result<Response<Body>, Error> {
    let result = dispatch(services, &request).await;
    Ok(http::finish(&request, result))
}

async fn dispatch(services: &Services, request: &Request) -> HandlerResult {
    let (route, _params) = ROUTES.route(request)?;
    let user = services.auth.authenticate_request(request).await?;
    match route {
        Route::Account => {
            let account = shared::account::get_account(&services.table, &user).await?;
            Ok(http::json(StatusCode::OK, json!({ "account": account })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use shared::ids::{CustomerId, UserId};
    use shared::store::{UserRecord, UserStore};
    use shared::testing::{fixtures, TestStack};

    async fn call(services: &Services, request: Request) -> (StatusCode, Value) {
        let response = handle(services, request).await.unwrap();
        let status = response.status();
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        (status, body)
    }

    #[tokio::test]
    async fn a_user_without_a_customer_gets_an_empty_account() {
        let stack = TestStack::new().await;
        let services = stack.services();
        let token = stack.token("auth0|new-user");
        let (status, body) = call(
            &services,
            fixtures::request("billing-account/get-account", &token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["account"]["customer_id"], Value::Null);
        assert_eq!(body["account"]["premium"], false);
        assert_eq!(body["account"]["email"], "auth0_new-user@example.test");
    }

    #[tokio::test]
    async fn a_linked_user_gets_the_stored_profile() {
        let stack = TestStack::new().await;
        let services = stack.services();
        services
            .table
            .insert_user(&UserRecord {
                user_id: UserId::parse("user-7").unwrap(),
                email: Some("seven@example.test".into()),
                customer_id: Some(CustomerId::parse("cus_Seven7").unwrap()),
                premium: true,
                created_at: "2026-11-01T00:00:00Z".into(),
                updated_at: "2026-11-01T00:00:00Z".into(),
            })
            .await
            .unwrap();
        let token = stack.token("user-7");
        let (status, body) = call(
            &services,
            fixtures::request("billing-account/get-account", &token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["account"]["customer_id"], "cus_Seven7");
        assert_eq!(body["account"]["premium"], true);
        assert_eq!(body["account"]["email"], "seven@example.test");
    }

    #[tokio::test]
    async fn no_token_is_401_in_the_envelope() {
        let stack = TestStack::new().await;
        let services = stack.services();
        let (status, body) = call(
            &services,
            fixtures::request("billing-account/get-account-unauthenticated", ""),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["success"], false);
        assert_eq!(body["error_code"], "missing_token");
        assert_eq!(body["request_id"], "req-get-account-unauthenticated");
        assert!(
            body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{body}"
        );
    }

    #[tokio::test]
    async fn an_invalid_token_is_401() {
        let stack = TestStack::new().await;
        let services = stack.services();
        let (status, body) = call(
            &services,
            fixtures::request("billing-account/get-account-invalid-token", ""),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error_code"], "malformed_token");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_404_and_405() {
        let stack = TestStack::new().await;
        let services = stack.services();
        let token = stack.token("user-1");
        let (status, body) = call(
            &services,
            fixtures::request("billing-account/unknown-route", &token),
        )
        .await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
        let response = handle(
            &services,
            fixtures::request("billing-account/get-account-wrong-method", &token),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "GET");
    }
}
