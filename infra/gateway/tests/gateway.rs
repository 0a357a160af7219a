//! The gateway in front of a stand-in for cargo lambda watch that echoes what reached it: only the
//! template's routes pass, with a valid token, to `<upstream>/<function><path>?<query>`; CORS
//! follows the template; everything else gets API Gateway's own answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use portico_gateway::{app, template, Gateway};
use serde_json::{json, Value};
use shared::auth::Authenticator;
use shared::config::{AuthConfig, JwksSource};
use shared::testing::keys::{self, SigningKey};
use shared::testing::workspace_root;

const SPA: &str = "http://localhost:5173";

struct Setup {
    base: String,
    token: String,
    forwarded: Arc<AtomicUsize>,
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn setup() -> Setup {
    let forwarded = Arc::new(AtomicUsize::new(0));
    let count = forwarded.clone();
    let upstream = serve(axum::Router::new().fallback(move |request: Request<Body>| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            let seen = json!({
                "method": request.method().as_str(),
                "uri": request.uri().to_string(),
                "authorization": request.headers().contains_key("authorization"),
            });
            (StatusCode::CREATED, axum::Json(seen))
        }
    }))
    .await;

    let dir = std::env::temp_dir().join(format!("portico-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = SigningKey::generate_es256("gateway-test");
    let jwks = dir.join(format!("{}.json", shared::testing::unique_name("jwks")));
    keys::write_jwks(&jwks, &[&key]);
    let token = key.sign(&keys::claims("https://issuer.test/", "portico", "user-1"));

    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let http = reqwest::Client::new();
    let gateway = Gateway {
        routes: template::routes(&text).unwrap(),
        cors: template::cors(&text).unwrap(),
        origins: vec![SPA.into()],
        upstream: format!("{upstream}/lambda-url"),
        auth: Authenticator::new(
            AuthConfig {
                issuer: "https://issuer.test/".into(),
                audience: "portico".into(),
                jwks: JwksSource::File(jwks),
                leeway: Duration::from_secs(30),
                jwks_refresh_min_interval: Duration::from_secs(60),
                jwks_max_age: Duration::from_secs(3600),
                trust_email_without_verified_claim: false,
                admin_claim: "roles".into(),
                admin_claim_value: "admin".into(),
            },
            http.clone(),
        ),
        http,
    };
    Setup {
        base: serve(app(gateway)).await,
        token,
        forwarded,
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_template_route_with_a_valid_token_reaches_its_function() {
    let s = setup().await;
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/billing/subscriptions/sub_1/cancel?x=1", s.base))
        .bearer_auth(&s.token)
        .header("origin", SPA)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["access-control-allow-origin"], SPA);
    let seen = json_of(answer).await;
    assert_eq!(
        seen,
        json!({"method": "POST", "uri": "/lambda-url/billing-account/billing/subscriptions/sub_1/cancel?x=1", "authorization": true})
    );
}

#[tokio::test]
async fn no_token_or_a_bad_one_is_refused_before_any_function_runs() {
    let s = setup().await;
    let client = reqwest::Client::new();
    for auth in [None, Some("Bearer not.a.token"), Some("Basic dXNlcjpwdw==")] {
        let mut request = client.get(format!("{}/portal/analytics", s.base));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "{auth:?}");
        assert_eq!(json_of(answer).await, json!({"message": "Unauthorized"}));
    }
    assert_eq!(s.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn routes_outside_the_http_api_are_not_found() {
    let s = setup().await;
    let client = reqwest::Client::new();
    // A wrong method, an unknown path, and the webhook, which is a function URL of its own.
    for (method, path) in [
        ("DELETE", "/billing/account"),
        ("GET", "/nope"),
        ("POST", "/"),
    ] {
        let answer = client
            .request(method.parse().unwrap(), format!("{}{path}", s.base))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{method} {path}");
        assert_eq!(json_of(answer).await, json!({"message": "Not Found"}));
    }
    assert_eq!(s.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn preflights_follow_the_templates_cors_rules() {
    let s = setup().await;
    let client = reqwest::Client::new();
    let preflight = |origin: &str, method: &str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/portal/workflows/x", s.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight(SPA, "PUT").await.unwrap();
    assert_eq!(allowed.status(), 204);
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], SPA);
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PUT"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("idempotency-key"));
    assert_eq!(h["access-control-max-age"], "600");

    let foreign = preflight("https://evil.example", "PUT").await.unwrap();
    assert_eq!(foreign.status(), 204);
    assert!(!foreign
        .headers()
        .contains_key("access-control-allow-origin"));
    assert!(!foreign
        .headers()
        .contains_key("access-control-allow-methods"));
    let method = preflight(SPA, "PATCH").await.unwrap();
    assert!(!method
        .headers()
        .contains_key("access-control-allow-methods"));
    assert_eq!(s.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bytes_a_lambda_event_cannot_carry_get_a_400() {
    let s = setup().await;
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/portal/sessions", s.base))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!(json_of(answer).await, json!({"message": "Bad Request"}));
    assert_eq!(s.forwarded.load(Ordering::SeqCst), 0);
}
