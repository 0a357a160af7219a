//! The test harness every function's tests use: a private slice of moto (table, secret, keys),
//! an in-process Stripe emulator, and Portico's services wired to both, as in production.

use std::time::Duration;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use shared::ids::CustomerId;
use shared::services::Services;
use shared::stripe::{ApiKey, RetryPolicy, StripeClient};
use shared::testing::{TestStack, STRIPE_TEST_KEY};
use stripe_emulator::{Emulator, EmulatorConfig};

pub mod contract;

pub use fault_proxy;
pub use lambda_http;
pub use shared::testing::fixtures;
pub use stripe_emulator;

use fault_proxy::FaultProxy;

/// The SPA origin the harness allows returns to.
pub const FRONTEND: &str = "https://app.portico.test";

pub struct Harness {
    pub stack: TestStack,
    pub emulator: Emulator,
    pub services: Services,
    /// A client with a fixed key, for arranging state in the emulator.
    pub stripe: StripeClient,
    /// The portal configuration every workflow uses unless a test maps another.
    pub configuration: String,
    /// The fault proxy every DynamoDB call goes through, for a harness made [`Harness::faulted`].
    pub store_faults: Option<FaultProxy>,
}

/// Retries quickly: tests exercise the retry logic, not the wall clock.
fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(&[]).await
    }

    /// A harness whose configuration has `overrides` applied.
    pub async fn with(overrides: &[(&str, &str)]) -> Self {
        Self::build(TestStack::new().await, None, overrides).await
    }

    /// A harness whose DynamoDB calls pass through a fault proxy (`store_faults`), so a test
    /// can make DynamoDB answer as it does under load: conflicts, throttling, 500s, hangs.
    pub async fn faulted(overrides: &[(&str, &str)]) -> Self {
        let proxy = FaultProxy::start(&shared::testing::dynamodb::endpoint())
            .await
            .expect("start the fault proxy");
        let stack = TestStack::with_dynamodb(&proxy.endpoint()).await;
        Self::build(stack, Some(proxy), overrides).await
    }

    async fn build(
        stack: TestStack,
        store_faults: Option<FaultProxy>,
        overrides: &[(&str, &str)],
    ) -> Self {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("start the Stripe emulator");
        let base = emulator.base_url();
        let probe = stack.config_with(&[("STRIPE_API_BASE", &base)]);
        let stripe = StripeClient::new(
            &probe.stripe,
            reqwest_client(),
            ApiKey::Static(shared::secrets::Redacted::new(STRIPE_TEST_KEY)),
        )
        .with_retry_policy(fast_retries());
        let configuration = stripe
            .create_portal_configuration(&default_configuration(), None)
            .await
            .expect("create the default portal configuration")
            .id;
        let mut env = vec![
            ("STRIPE_API_BASE", base.as_str()),
            ("FRONTEND_URL", FRONTEND),
            ("DEFAULT_PORTAL_CONFIGURATION", configuration.as_str()),
            // Tests re-sync back to back; the throttle's own tests set an interval.
            ("SYNC_REFRESH_MIN_SECONDS", "0"),
        ];
        env.extend_from_slice(overrides);
        let mut services = stack.services_with(&env);
        services.stripe = services.stripe.clone().with_retry_policy(fast_retries());
        // Tests count the Stripe calls they cause, not the harness's set-up.
        emulator.clear_requests();
        Harness {
            stack,
            emulator,
            services,
            stripe,
            configuration,
            store_faults,
        }
    }

    /// A customer in the emulator with a card and an active Pro subscription, linked to `sub`.
    pub async fn subscribed_customer(&self, sub: &str) -> CustomerId {
        let mut new = stripe_emulator::NewCustomer::new(format!("{sub}@example.test"));
        new.metadata
            .push((shared::customer_link::USER_ID_METADATA.into(), sub.into()));
        let created = self
            .emulator
            .create_customer(new)
            .expect("emulator customer");
        let id = CustomerId::parse(
            created["customer"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
        .expect("customer id");
        use shared::store::UserStore;
        let user = shared::ids::UserId::parse(sub).expect("user id");
        self.services
            .table
            .link_customer(
                &user,
                Some(&format!("{sub}@example.test")),
                &id,
                "2026-11-21T00:00:00Z",
            )
            .await
            .expect("link");
        id
    }

    /// A raw Stripe API call to the emulator (form-encoded), for arranging what a customer did
    /// elsewhere. Panics unless Stripe answers 2xx.
    pub async fn stripe_api(&self, method: &str, path: &str, form: &[(&str, &str)]) -> Value {
        let url = format!("{}{path}", self.emulator.base_url());
        let client = reqwest_client();
        let request = match method {
            "GET" => client.get(url),
            "DELETE" => client.delete(url),
            _ => client.post(url),
        };
        let mut params = shared::stripe::Params::new();
        for (key, value) in form {
            params.push(*key, *value);
        }
        let body = params.encode();
        let response = request
            .bearer_auth(STRIPE_TEST_KEY)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("emulator reachable");
        let status = response.status();
        let value: Value = response.json().await.expect("emulator answers JSON");
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    /// The same stack's services, but with Stripe unreachable (nothing listens on port 9).
    pub fn services_with_stripe_down(&self) -> Services {
        let mut down = self
            .stack
            .services_with(&[("STRIPE_API_BASE", "http://127.0.0.1:9")]);
        down.stripe = down.stripe.clone().with_retry_policy(fast_retries());
        down
    }

    /// The id of the customer's first subscription, as Stripe lists it.
    pub async fn subscription_of(&self, customer: &CustomerId) -> String {
        let subs = self
            .stripe_api(
                "GET",
                &format!("/v1/subscriptions?customer={customer}"),
                &[],
            )
            .await;
        subs["data"][0]["id"]
            .as_str()
            .expect("the customer has a subscription")
            .to_string()
    }

    /// The customer's stored state; fails the test when there is none.
    pub async fn stored_state(&self, customer: &CustomerId) -> shared::store::CustomerState {
        use shared::store::CustomerStore;
        self.services
            .table
            .get_customer_state(customer)
            .await
            .expect("read state")
            .expect("a stored state")
    }

    /// Asserts that no sync of `customer` was stored: no state and no audit entry.
    pub async fn assert_nothing_synced(&self, customer: &CustomerId) {
        use shared::store::CustomerStore;
        let table = &self.services.table;
        assert!(
            table
                .get_customer_state(customer)
                .await
                .expect("read state")
                .is_none(),
            "state stored"
        );
        assert!(
            table
                .audit_entries(customer)
                .await
                .expect("read audit")
                .is_empty(),
            "audit written"
        );
    }

    /// Stripe calls made so far, as `METHOD path` lines.
    pub fn stripe_calls(&self) -> Vec<String> {
        self.emulator
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// `request` as Lambda hands it over with `left` until the invocation's deadline.
pub fn with_deadline(request: lambda_http::Request, left: Duration) -> lambda_http::Request {
    use lambda_http::RequestExt;
    let mut context = lambda_http::Context::default();
    context.request_id = "req-with-deadline".into();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    context.deadline = u64::try_from((now + left).as_millis()).unwrap_or(u64::MAX);
    request.with_lambda_context(context)
}

/// Sends a request to a handler and gives its answer as status and JSON body, after checking
/// the answer against `openapi.yaml` for the request's route and the answer's status (see
/// `contract`): `call!(handle(&h.services, request))`.
#[macro_export]
macro_rules! call {
    ($handler:ident ( $services:expr, $request:expr $(,)? )) => {{
        let request: $crate::lambda_http::Request = $request;
        let sent = $crate::contract::Sent::of(&request);
        $crate::checked(&sent, $handler($services, request).await)
    }};
}

/// A handler's answer as status and JSON body; panics when it breaks the contract.
pub fn checked(
    sent: &contract::Sent,
    response: Result<Response<Body>, lambda_http::Error>,
) -> (StatusCode, Value) {
    let response = response.expect("handlers never return Err");
    let status = response.status();
    let body = serde_json::from_slice(response.body().as_ref())
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(response.body().as_ref())}));
    if let Err(broken) = contract::check(sent, status.as_u16(), &body) {
        panic!("{broken}");
    }
    (status, body)
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::new()
}

/// The default configuration of the checked-in `portal-config.json`, as `make dev` applies it.
pub fn default_configuration() -> Value {
    let path = shared::testing::workspace_root().join("portal-config.json");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read portal-config.json"))
            .expect("portal-config.json is JSON");
    file["configurations"]["default"].clone()
}
