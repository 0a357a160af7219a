//! A tiny Stripe client over reqwest for the emulator's integration tests.
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use serde_json::Value;
use stripe_emulator::{Emulator, EmulatorConfig};

pub const KEY: &str = "sk_test_emulator";

pub struct Api {
    pub emulator: Emulator,
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "unexpected error: {}", self.body);
        self.body
    }

    /// Asserts a Stripe error and returns its `error` object.
    #[track_caller]
    pub fn err(self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        self.body["error"].clone()
    }
}

pub async fn start() -> Api {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> Api {
    let emulator = Emulator::start(config).await.expect("emulator starts");
    let base = emulator.base_url();
    Api {
        emulator,
        base,
        http: reqwest::Client::new(),
    }
}

async fn reply(r: reqwest::RequestBuilder) -> Reply {
    let resp = r.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        headers,
    }
}

impl Api {
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        reply(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(KEY)
                .query(query),
        )
        .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        reply(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(KEY)
                .form(form),
        )
        .await
    }

    pub async fn post_idem(&self, path: &str, form: &[(&str, &str)], key: &str) -> Reply {
        reply(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(KEY)
                .header("Idempotency-Key", key)
                .form(form),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        reply(
            self.http
                .delete(format!("{}{path}", self.base))
                .bearer_auth(KEY),
        )
        .await
    }

    pub async fn raw(&self, r: reqwest::RequestBuilder) -> Reply {
        reply(r).await
    }

    /// `POST /_emulator/customers`: customer + visa default + active subscription.
    pub async fn seeded_customer(&self, email: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({"email": email});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        reply(
            self.http
                .post(format!("{}/_emulator/customers", self.base))
                .json(&body),
        )
        .await
        .ok()
    }

    /// A portal configuration with every feature a flow may need enabled.
    pub async fn portal_configuration(&self) -> Value {
        self.post(
            "/v1/billing_portal/configurations",
            &[
                ("features[customer_update][enabled]", "true"),
                ("features[customer_update][allowed_updates][0]", "email"),
                ("features[invoice_history][enabled]", "true"),
                ("features[payment_method_update][enabled]", "true"),
                ("features[subscription_cancel][enabled]", "true"),
                ("features[subscription_cancel][mode]", "at_period_end"),
                (
                    "features[subscription_cancel][cancellation_reason][enabled]",
                    "true",
                ),
                (
                    "features[subscription_cancel][cancellation_reason][options][0]",
                    "too_expensive",
                ),
                ("features[subscription_update][enabled]", "true"),
                (
                    "features[subscription_update][default_allowed_updates][0]",
                    "price",
                ),
                (
                    "features[subscription_update][products][0][product]",
                    "prod_portico_pro",
                ),
                (
                    "features[subscription_update][products][0][prices][0]",
                    "price_pro_monthly",
                ),
                (
                    "features[subscription_update][products][0][prices][1]",
                    "price_pro_yearly",
                ),
                (
                    "features[subscription_update][proration_behavior]",
                    "create_prorations",
                ),
                ("business_profile[headline]", "Portico"),
                ("default_return_url", "https://app.example.com/account"),
            ],
        )
        .await
        .ok()
    }
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("object has an id").to_string()
}
