//! Stripe's error body and the client's error type.
//!
//! Classification is by HTTP status first and `type`/`code` second, because the
//! SDKs' error types (`rate_limit_error`, …) are not all in the spec's enum.

use std::fmt;

use serde::Deserialize;

use crate::secrets::SecretsError;

/// An error answer from Stripe: `{"error": {...}}` plus the `Request-Id` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeError {
    pub status: u16,
    pub error_type: String,
    pub code: Option<String>,
    pub param: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    error_type: Option<String>,
    code: Option<String>,
    param: Option<String>,
    message: Option<String>,
}

impl StripeError {
    /// Parses an error response; a body that is not Stripe's shape still yields an error that
    /// keeps the status (a proxy's HTML 502 must stay a retryable 502).
    pub fn from_response(status: u16, body: &[u8], request_id: Option<String>) -> Self {
        match serde_json::from_slice::<ErrorEnvelope>(body) {
            Ok(ErrorEnvelope { error }) => StripeError {
                status,
                error_type: error.error_type.unwrap_or_else(|| "api_error".into()),
                code: error.code,
                param: error.param,
                message: error.message.unwrap_or_default(),
                request_id,
            },
            Err(_) => StripeError {
                status,
                error_type: "api_error".into(),
                code: None,
                param: None,
                message: format!("HTTP {status} without a Stripe error body"),
                request_id,
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == 404 || self.code.as_deref() == Some("resource_missing")
    }
}

impl fmt::Display for StripeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stripe {} {}", self.status, self.error_type)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(param) = &self.param {
            write!(f, " param {param}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " [request {id}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StripeClientError {
    /// Stripe answered with an error status (boxed: it is much larger than the other variants).
    #[error("{0}")]
    Api(Box<StripeError>),
    /// The request did not reach Stripe or the connection broke.
    #[error("Stripe unreachable: {0}")]
    Transport(String),
    /// An attempt exceeded the configured timeout.
    #[error("Stripe request timed out")]
    Timeout,
    /// The invocation's time budget left no room for another attempt.
    #[error(transparent)]
    Budget(#[from] crate::budget::BudgetSpent),
    /// Stripe's 2xx body did not have the shape we model.
    #[error("Stripe response could not be decoded: {0}")]
    Decode(String),
    /// The API key could not be read from Secrets Manager.
    #[error("Stripe API key unavailable: {0}")]
    Key(#[from] SecretsError),
    /// The object exists but was deleted (Stripe answers 200 with `deleted: true`).
    #[error("{object} {id} has been deleted")]
    Deleted { object: &'static str, id: String },
    /// The client refused to build the request (a bug or unvalidated input on our side).
    #[error("invalid Stripe request: {0}")]
    InvalidRequest(String),
}

impl From<StripeError> for StripeClientError {
    fn from(error: StripeError) -> Self {
        StripeClientError::Api(Box::new(error))
    }
}

impl StripeClientError {
    /// Stripe says the object does not exist (404 / `resource_missing`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StripeClientError::Api(e) if e.is_not_found())
    }

    /// Missing or deleted: either way there is no live object behind the id.
    pub fn is_gone(&self) -> bool {
        self.is_not_found() || matches!(self, StripeClientError::Deleted { .. })
    }

    /// Worth trying again later (after the client's own retries gave up).
    pub fn is_retryable(&self) -> bool {
        match self {
            StripeClientError::Api(e) => e.status == 409 || e.status == 429 || e.status >= 500,
            StripeClientError::Transport(_) | StripeClientError::Timeout => true,
            StripeClientError::Key(SecretsError::Unavailable { .. }) => true,
            _ => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            StripeClientError::Api(e) => Some(e.status),
            _ => None,
        }
    }

    pub fn api_error(&self) -> Option<&StripeError> {
        match self {
            StripeClientError::Api(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> StripeClientError {
        StripeClientError::Api(Box::new(StripeError::from_response(
            status,
            body.as_bytes(),
            Some("req_123".into()),
        )))
    }

    #[test]
    fn missing_resource_is_distinguishable() {
        let e = api(
            404,
            r#"{"error":{"type":"invalid_request_error","code":"resource_missing","param":"id","message":"No such customer: 'cus_x'"}}"#,
        );
        assert!(e.is_not_found() && e.is_gone());
        assert!(!e.is_retryable());
        assert_eq!(e.status(), Some(404));
        let others = [
            api(
                400,
                r#"{"error":{"type":"invalid_request_error","param":"email","message":"bad"}}"#,
            ),
            api(
                401,
                r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}"#,
            ),
            api(500, "{}"),
            StripeClientError::Timeout,
            StripeClientError::Transport("refused".into()),
            StripeClientError::Decode("x".into()),
        ];
        for e in others {
            assert!(!e.is_not_found(), "{e}");
        }
        let deleted = StripeClientError::Deleted {
            object: "customer",
            id: "cus_1".into(),
        };
        assert!(!deleted.is_not_found() && deleted.is_gone());
    }

    #[test]
    fn resource_missing_code_counts_even_without_404() {
        let e = api(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"resource_missing"}}"#,
        );
        assert!(e.is_not_found());
    }

    #[test]
    fn bad_request_keeps_param_and_request_id() {
        let e = api(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"parameter_unknown","param":"flow_data[type]","message":"Received unknown parameter","doc_url":"https://x"}}"#,
        );
        let inner = e.api_error().unwrap();
        assert_eq!(inner.param.as_deref(), Some("flow_data[type]"));
        assert_eq!(inner.code.as_deref(), Some("parameter_unknown"));
        assert_eq!(inner.request_id.as_deref(), Some("req_123"));
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(
            text.contains("400") && text.contains("flow_data[type]") && text.contains("req_123")
        );
    }

    #[test]
    fn unauthorized_and_retryable_statuses() {
        let e = api(
            401,
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****"}}"#,
        );
        assert_eq!(e.status(), Some(401));
        assert!(!e.is_retryable());
        for status in [409, 429, 500, 503] {
            assert!(api(status, "{}").is_retryable(), "{status}");
        }
        assert!(StripeClientError::Timeout.is_retryable());
    }

    #[test]
    fn a_non_stripe_body_keeps_the_status() {
        let e = StripeError::from_response(502, b"<html>bad gateway</html>", None);
        assert_eq!((e.status, e.error_type.as_str()), (502, "api_error"));
        assert!(e.message.contains("502"));
    }
}
