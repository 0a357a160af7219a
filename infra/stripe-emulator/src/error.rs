//! Stripe's error body `{"error": {...}}` and the HTTP status that goes with it.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub struct EmulatorError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    pub decline_code: Option<&'static str>,
}

impl EmulatorError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code: None,
            message: message.into(),
            param: None,
            decline_code: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(message).param(param)
    }

    pub fn missing(param: &str) -> Self {
        Self::invalid(format!("Missing required param: {param}."))
            .code("parameter_missing")
            .param(param)
    }

    pub fn unknown_param(param: &str) -> Self {
        Self::invalid(format!(
            "Received unknown parameter: {param}. Did you mean to pass this in a different parameter?"
        ))
        .code("parameter_unknown")
        .param(param)
    }

    /// `No such customer: 'cus_x'` with `param` naming where the id came from.
    pub fn no_such(noun: &str, id: &str, param: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No such {noun}: '{id}'"),
        )
        .code("resource_missing")
        .param(param)
    }

    /// What Stripe answers for its `pm_card_chargeDeclined` test card.
    pub fn card_declined() -> Self {
        let mut e = Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "card_error",
            "Your card was declined.",
        )
        .code("card_declined");
        e.decline_code = Some("generic_decline");
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "api_error", message)
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// A failure of parameter validation: Stripe does not save it under an idempotency key.
    pub fn is_validation_failure(&self) -> bool {
        self.status == StatusCode::BAD_REQUEST && self.kind == "invalid_request_error"
    }

    pub fn body(&self, request_id: &str) -> Value {
        let mut e = Map::new();
        if let Some(c) = self.code {
            e.insert("code".into(), json!(c));
            e.insert(
                "doc_url".into(),
                json!(format!(
                    "https://stripe.com/docs/error-codes/{}",
                    c.replace('_', "-")
                )),
            );
        }
        if let Some(d) = self.decline_code {
            e.insert("decline_code".into(), json!(d));
        }
        e.insert("message".into(), json!(self.message));
        if let Some(p) = &self.param {
            e.insert("param".into(), json!(p));
        }
        e.insert(
            "request_log_url".into(),
            json!(format!(
                "https://dashboard.stripe.com/test/logs/{request_id}"
            )),
        );
        e.insert("type".into(), json!(self.kind));
        json!({ "error": e })
    }
}

impl std::fmt::Display for EmulatorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for EmulatorError {}

pub type EmulatorResult<T> = Result<T, EmulatorError>;
