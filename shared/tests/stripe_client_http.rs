//! The Stripe client over real HTTP against a scripted mock server on 127.0.0.1: retries,
//! idempotency keys, headers, timeouts, key rotation and pagination. No Stripe logic here:
//! each test scripts the exact responses it needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use shared::config::StripeConfig;
use shared::ids::{CustomerId, SubscriptionId};
use shared::secrets::{Redacted, SecretsProvider};
use shared::stripe::{
    list_all, ApiKey, CustomerCreateParams, Page, RetryPolicy, StripeClient, StripeClientError,
    SubscriptionCancelParams, SubscriptionListParams, SubscriptionUpdateParams,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk_test_portico_FAKE_http";
const VERSION: &str = "2026-07-29.dahlia";

/// What the server does with the next request.
enum Reply {
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Answers only after the client (300 ms timeout) has given up.
    Hang,
}

fn reply(status: u16, body: serde_json::Value) -> Reply {
    Reply::Respond {
        status,
        headers: vec![("Request-Id", format!("req_{status}"))],
        body: body.to_string(),
    }
}

fn reply_with(status: u16, header: (&'static str, &str), body: serde_json::Value) -> Reply {
    Reply::Respond {
        status,
        headers: vec![(header.0, header.1.to_string())],
        body: body.to_string(),
    }
}

fn stripe_error(kind: &str, code: Option<&str>, param: Option<&str>) -> serde_json::Value {
    json!({"error": {"type": kind, "code": code, "param": param, "message": "scripted"}})
}

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn of(request: &wiremock::Request) -> Self {
        let target = match request.url.query() {
            Some(query) => format!("{}?{query}", request.url.path()),
            None => request.url.path().to_string(),
        };
        Recorded {
            method: request.method.to_string(),
            target,
            headers: request
                .headers
                .iter()
                .map(|(k, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes()).to_string();
                    (k.as_str().to_string(), value)
                })
                .collect(),
            body: String::from_utf8_lossy(&request.body).to_string(),
        }
    }
}

/// A mock Stripe that answers each request with the next scripted reply, in order; past the
/// script, every request gets a 599 that no test expects.
struct Server {
    base: String,
    mock: MockServer,
}

impl Server {
    async fn start(replies: Vec<Reply>) -> Self {
        let mock = MockServer::start().await;
        for (n, reply) in replies.into_iter().enumerate() {
            let template = match reply {
                Reply::Respond {
                    status,
                    headers,
                    body,
                } => headers.into_iter().fold(
                    ResponseTemplate::new(status).set_body_raw(body, "application/json"),
                    |t, (name, value)| t.insert_header(name, value.as_str()),
                ),
                Reply::Hang => ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
            };
            // The earliest unused reply wins: each answers once, in script order.
            let priority = u8::try_from(n + 1).expect("a script of at most 254 replies");
            Mock::given(any())
                .respond_with(template)
                .up_to_n_times(1)
                .with_priority(priority)
                .mount(&mock)
                .await;
        }
        Mock::given(any())
            .respond_with(ResponseTemplate::new(599).set_body_json(
                json!({"error": {"type": "api_error", "message": "script exhausted"}}),
            ))
            .with_priority(u8::MAX)
            .mount(&mock)
            .await;
        Server {
            base: mock.uri(),
            mock,
        }
    }

    async fn requests(&self) -> Vec<Recorded> {
        self.mock
            .received_requests()
            .await
            .expect("request recording is on")
            .iter()
            .map(Recorded::of)
            .collect()
    }

    fn client(&self, max_retries: u32) -> StripeClient {
        client_for(&self.base, max_retries, ApiKey::Static(Redacted::new(KEY)))
    }
}

fn client_for(base: &str, max_retries: u32, key: ApiKey) -> StripeClient {
    let config = StripeConfig {
        api_base: base.parse().unwrap(),
        api_version: VERSION.into(),
        max_retries,
        timeout: Duration::from_millis(300),
    };
    StripeClient::new(&config, reqwest::Client::new(), key).with_retry_policy(RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
    })
}

/// A server that reads each request and closes the connection without answering, which no
/// mock server crate scripts; it records the idempotency key each attempt carried.
async fn dropping_server() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(Vec::new()));
    let recorded = keys.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let key = String::from_utf8_lossy(&head)
                .split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("idempotency-key"))
                .map(|(_, v)| v.trim().to_string());
            recorded.lock().unwrap().push(key);
            drop(socket);
        }
    });
    (base, keys)
}

fn customer_json(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "customer", "email": "a@x.test", "metadata": {}})
}

fn subscription_json(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "subscription", "customer": "cus_1", "status": "active",
           "items": {"object": "list", "data": [], "has_more": false}})
}

fn customer_params() -> CustomerCreateParams {
    CustomerCreateParams {
        email: Some("a+b@x.test".into()),
        ..Default::default()
    }
}

fn cus(id: &str) -> CustomerId {
    CustomerId::parse(id).unwrap()
}

#[tokio::test]
async fn a_500_then_200_retries_with_the_same_idempotency_key_and_headers() {
    let server = Server::start(vec![
        reply(500, stripe_error("api_error", None, None)),
        reply(200, customer_json("cus_new")),
    ])
    .await;
    let customer = server
        .client(2)
        .create_customer(&customer_params(), None)
        .await
        .unwrap();
    assert_eq!(customer.id.as_str(), "cus_new");

    let requests = server.requests().await;
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(
        (first.method.as_str(), first.target.as_str()),
        ("POST", "/v1/customers")
    );
    assert_eq!(first.body, "email=a%2Bb%40x.test");
    assert_eq!(
        first.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(first.header("stripe-version"), Some(VERSION));
    assert_eq!(
        first.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let key = first.header("idempotency-key").unwrap();
    assert_eq!(key.len(), 32);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(requests[1].header("idempotency-key"), Some(key));
}

#[tokio::test]
async fn a_caller_key_is_sent_and_each_call_gets_its_own_random_key() {
    let server = Server::start(vec![
        reply(200, customer_json("cus_1")),
        reply(200, customer_json("cus_2")),
        reply(200, customer_json("cus_3")),
    ])
    .await;
    let client = server.client(0);
    client
        .create_customer(&customer_params(), Some("portico-customer-user-1"))
        .await
        .unwrap();
    client
        .create_customer(&customer_params(), None)
        .await
        .unwrap();
    client
        .create_customer(&customer_params(), None)
        .await
        .unwrap();
    let keys: Vec<_> = server
        .requests()
        .await
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys[0], "portico-customer-user-1");
    assert_ne!(keys[1], keys[2]);
}

#[tokio::test]
async fn should_retry_false_on_a_500_stops_after_one_attempt() {
    let server = Server::start(vec![
        reply_with(
            500,
            ("Stripe-Should-Retry", "false"),
            stripe_error("api_error", None, None),
        ),
        reply(200, customer_json("cus_1")),
    ])
    .await;
    let err = server
        .client(3)
        .create_customer(&customer_params(), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(server.requests().await.len(), 1);
}

#[tokio::test]
async fn should_retry_true_overrides_a_status_that_is_not_retried() {
    let server = Server::start(vec![
        reply_with(
            400,
            ("Stripe-Should-Retry", "true"),
            stripe_error("invalid_request_error", None, None),
        ),
        reply(200, customer_json("cus_1")),
    ])
    .await;
    server
        .client(1)
        .create_customer(&customer_params(), None)
        .await
        .unwrap();
    assert_eq!(server.requests().await.len(), 2);
}

#[tokio::test]
async fn a_400_is_not_retried_and_keeps_param_and_request_id() {
    let server = Server::start(vec![
        reply(
            400,
            stripe_error(
                "invalid_request_error",
                Some("parameter_invalid_empty"),
                Some("email"),
            ),
        ),
        reply(200, customer_json("cus_1")),
    ])
    .await;
    let err = server
        .client(3)
        .create_customer(&customer_params(), None)
        .await
        .unwrap_err();
    let api = err.api_error().unwrap();
    assert_eq!(api.status, 400);
    assert_eq!(api.param.as_deref(), Some("email"));
    assert_eq!(api.request_id.as_deref(), Some("req_400"));
    assert!(!err.is_not_found());
    assert_eq!(server.requests().await.len(), 1);
}

#[tokio::test]
async fn a_429_and_a_409_are_retried() {
    let server = Server::start(vec![
        reply(
            429,
            stripe_error("invalid_request_error", Some("lock_timeout"), None),
        ),
        reply(
            409,
            stripe_error("idempotency_error", Some("idempotency_key_in_use"), None),
        ),
        reply(200, customer_json("cus_1")),
    ])
    .await;
    server
        .client(2)
        .create_customer(&customer_params(), None)
        .await
        .unwrap();
    assert_eq!(server.requests().await.len(), 3);
}

#[tokio::test]
async fn retries_stop_at_max_retries() {
    let server = Server::start(vec![
        reply(503, json!({})),
        reply(503, json!({})),
        reply(503, json!({})),
        reply(200, customer_json("cus_1")),
    ])
    .await;
    let err = server
        .client(2)
        .create_customer(&customer_params(), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.is_retryable());
    assert_eq!(server.requests().await.len(), 3);
}

#[tokio::test]
async fn a_dropped_connection_is_retried_then_reported_as_transport() {
    let (base, keys) = dropping_server().await;
    let err = client_for(&base, 2, ApiKey::Static(Redacted::new(KEY)))
        .create_customer(&customer_params(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StripeClientError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains(KEY));
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(keys[0].is_some());
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
}

#[tokio::test]
async fn connection_refused_is_retried_then_transport() {
    // Bind then drop a listener: its port is now (almost certainly) refusing connections.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = client_for(
        &format!("http://127.0.0.1:{port}"),
        2,
        ApiKey::Static(Redacted::new(KEY)),
    );
    let started = std::time::Instant::now();
    let err = client
        .retrieve_customer(&cus("cus_1"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StripeClientError::Transport(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_hung_attempt_times_out_and_is_retried() {
    let server = Server::start(vec![Reply::Hang, Reply::Hang]).await;
    let err = server
        .client(1)
        .retrieve_customer(&cus("cus_1"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StripeClientError::Timeout), "{err:?}");
    assert_eq!(server.requests().await.len(), 2);
}

#[tokio::test]
async fn gets_send_no_idempotency_key_and_404_is_not_found() {
    let server = Server::start(vec![reply(
        404,
        stripe_error(
            "invalid_request_error",
            Some("resource_missing"),
            Some("id"),
        ),
    )])
    .await;
    let err = server
        .client(2)
        .retrieve_customer(
            &cus("cus_gone"),
            &["invoice_settings.default_payment_method"],
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    let requests = server.requests().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].target,
        "/v1/customers/cus_gone?expand[0]=invoice_settings.default_payment_method"
    );
    assert_eq!(requests[0].header("idempotency-key"), None);
    assert_eq!(requests[0].header("stripe-version"), Some(VERSION));
}

#[tokio::test]
async fn a_deleted_customer_is_reported_as_deleted() {
    let server = Server::start(vec![reply(
        200,
        json!({"id": "cus_1", "object": "customer", "deleted": true}),
    )])
    .await;
    let err = server
        .client(0)
        .retrieve_customer(&cus("cus_1"), &[])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StripeClientError::Deleted {
            object: "customer",
            ..
        }
    ));
    assert!(err.is_gone() && !err.is_not_found());
}

#[tokio::test]
async fn a_401_with_a_static_key_is_not_retried() {
    let server = Server::start(vec![
        reply(401, stripe_error("invalid_request_error", None, None)),
        reply(200, customer_json("cus_1")),
    ])
    .await;
    let err = server
        .client(3)
        .retrieve_customer(&cus("cus_1"), &[])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(server.requests().await.len(), 1);
}

#[tokio::test]
async fn a_401_with_a_secrets_key_refreshes_the_secret_once() {
    let stack = shared::testing::TestStack::new().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.aws);
    let provider = Arc::new(SecretsProvider::new(
        secrets.clone(),
        &stack.secret_id,
        Duration::from_secs(3600),
    ));
    let old_key = provider.get().await.unwrap().stripe_secret_key.clone();
    // Rotate in Secrets Manager; the provider's cache still holds the old key.
    secrets
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(shared::testing::secret_json(
            "sk_test_portico_FAKE_rotated",
            &["whsec_FAKE_x"],
        ))
        .send()
        .await
        .unwrap();
    let server = Server::start(vec![
        reply(401, stripe_error("invalid_request_error", None, None)),
        reply(401, stripe_error("invalid_request_error", None, None)),
        reply(200, customer_json("cus_1")),
    ])
    .await;
    let client = client_for(&server.base, 3, ApiKey::Secrets(provider));
    let err = client
        .retrieve_customer(&cus("cus_1"), &[])
        .await
        .unwrap_err();
    // Exactly one refresh-and-retry: the second 401 is final.
    assert_eq!(err.status(), Some(401));
    let requests = server.requests().await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {}", old_key.expose()).as_str())
    );
    assert_eq!(
        requests[1].header("authorization"),
        Some("Bearer sk_test_portico_FAKE_rotated")
    );
}

#[tokio::test]
async fn list_all_follows_starting_after_across_three_pages() {
    let page = |ids: &[&str], more: bool| {
        let data: Vec<_> = ids.iter().map(|id| subscription_json(id)).collect();
        reply(
            200,
            json!({"object": "list", "data": data, "has_more": more, "url": "/v1/subscriptions"}),
        )
    };
    let server = Server::start(vec![
        page(&["sub_1", "sub_2"], true),
        page(&["sub_3", "sub_4"], true),
        page(&["sub_5"], false),
    ])
    .await;
    let client = server.client(0);
    let customer = cus("cus_1");
    let all = list_all(|cursor| {
        let params = SubscriptionListParams {
            page: Page::full(cursor),
            ..SubscriptionListParams::all_for(&customer)
        };
        let client = &client;
        async move { client.list_subscriptions(&params).await }
    })
    .await
    .unwrap();
    let ids: Vec<_> = all.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["sub_1", "sub_2", "sub_3", "sub_4", "sub_5"]);
    let targets: Vec<_> = server
        .requests()
        .await
        .into_iter()
        .map(|r| r.target)
        .collect();
    let base = "/v1/subscriptions?customer=cus_1&expand[0]=data.items.data.price&expand[1]=data.schedule&expand[2]=data.discounts.source.coupon&limit=100";
    assert_eq!(
        targets,
        [
            format!("{base}&status=all"),
            format!("{base}&starting_after=sub_2&status=all"),
            format!("{base}&starting_after=sub_4&status=all"),
        ]
    );
}

#[tokio::test]
async fn cancel_is_a_delete_with_query_params_and_update_posts_a_form() {
    let server = Server::start(vec![
        reply(200, subscription_json("sub_1")),
        reply(200, subscription_json("sub_1")),
    ])
    .await;
    let client = server.client(0);
    let sub = SubscriptionId::parse("sub_1").unwrap();
    let cancel = SubscriptionCancelParams {
        prorate: Some(false),
        ..Default::default()
    };
    client.cancel_subscription(&sub, &cancel).await.unwrap();
    let update = SubscriptionUpdateParams {
        cancel_at_period_end: Some(true),
        ..Default::default()
    };
    client
        .update_subscription(&sub, &update, None)
        .await
        .unwrap();
    let requests = server.requests().await;
    assert_eq!(requests[0].method, "DELETE");
    assert_eq!(requests[0].target, "/v1/subscriptions/sub_1?prorate=false");
    assert_eq!(requests[0].header("idempotency-key"), None);
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].body, "cancel_at_period_end=true");
    assert!(requests[1].header("idempotency-key").is_some());
}

#[tokio::test]
async fn portal_configuration_json_with_an_unknown_key_is_refused_before_sending() {
    let server = Server::start(vec![]).await;
    let err = server
        .client(0)
        .create_portal_configuration(
            &json!({"features": {"subscription_pause": {"enabled": true}}}),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StripeClientError::InvalidRequest(_)),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains("features[subscription_pause][enabled]"));
    assert!(server.requests().await.is_empty());
}

#[tokio::test]
async fn a_2xx_body_of_the_wrong_shape_is_a_decode_error() {
    let server = Server::start(vec![reply(200, json!({"object": "customer"}))]).await;
    let err = server
        .client(2)
        .retrieve_customer(&cus("cus_1"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StripeClientError::Decode(_)), "{err:?}");
    assert_eq!(server.requests().await.len(), 1);
}

#[tokio::test]
async fn a_decode_error_names_where_the_body_went_wrong() {
    let body = json!({"id": "cus_1", "object": "customer", "metadata": {"plan": 7}});
    let server = Server::start(vec![reply(200, body)]).await;
    let err = server
        .client(0)
        .retrieve_customer(&cus("cus_1"), &[])
        .await
        .unwrap_err();
    let StripeClientError::Decode(message) = err else {
        panic!("{err:?}");
    };
    assert!(message.contains("`metadata.plan`"), "{message}");
}
