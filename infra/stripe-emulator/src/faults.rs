//! Fault injection for `/v1` requests: the next N matching requests answer an error in
//! Stripe's shape without touching state, and/or are delayed.

use crate::error::EmulatorError;
use crate::server::lock_anyway;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

/// One injected fault, as `POST /_emulator/faults` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Exact path (`/v1/customers/cus_x`), or a prefix ending in `*` (`/v1/customers*`).
    pub path: String,
    /// Only this method (any when unset).
    #[serde(default)]
    pub method: Option<String>,
    /// How many matching requests it applies to.
    #[serde(default = "one")]
    pub times: u32,
    /// Answer this status instead of running the request: 500 (`api_error`), 429
    /// (`rate_limit`), 409 (`lock_timeout`), or any other 4xx/5xx.
    #[serde(default)]
    pub status: Option<u16>,
    /// Delay the request (before the error, or before running it normally).
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// The next `times` `method` requests to exactly `path` answer `status`, without running.
    pub fn status(method: &str, path: impl Into<String>, status: u16, times: u32) -> Self {
        Fault {
            path: path.into(),
            method: Some(method.into()),
            times,
            status: Some(status),
            latency_ms: None,
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        };
        path_ok
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }

    /// The error this fault answers, in Stripe's shape.
    pub fn error(&self) -> Option<EmulatorError> {
        let status = self.status?;
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Some(match status {
            429 => EmulatorError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request_error",
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            )
            .code("rate_limit"),
            409 => EmulatorError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request. If you see this error frequently and are making multiple concurrent requests to a single object, make your requests serially or at a lower rate. See https://stripe.com/docs/rate-limits for more details.",
            )
            .code("lock_timeout"),
            s if s >= 500 => EmulatorError::new(
                code,
                "api_error",
                "An unknown error occurred while processing your request. Please try again.",
            ),
            _ => EmulatorError::new(code, "invalid_request_error", "Injected fault."),
        })
    }
}

#[derive(Default)]
pub(crate) struct Faults {
    list: Mutex<Vec<Fault>>,
}

impl Faults {
    pub fn add(&self, fault: Fault) {
        if fault.times > 0 {
            lock_anyway(&self.list).push(fault);
        }
    }

    pub fn list(&self) -> Vec<Fault> {
        lock_anyway(&self.list).clone()
    }

    pub fn clear(&self) {
        lock_anyway(&self.list).clear();
    }

    /// Takes one use of the first fault matching this request, if any.
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut list = lock_anyway(&self.list);
        let pos = list.iter().position(|f| f.matches(method, path))?;
        let fault = list[pos].clone();
        list[pos].times -= 1;
        if list[pos].times == 0 {
            list.remove(pos);
        }
        Some(fault)
    }
}

/// Applies a taken fault: waits its latency, then returns its error, if any.
pub(crate) async fn apply(fault: &Fault) -> Option<EmulatorError> {
    if let Some(ms) = fault.latency_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    fault.error()
}

/// Validates a fault from the control endpoint.
pub(crate) fn validate(f: &Fault) -> Result<(), EmulatorError> {
    if !f.path.starts_with('/') {
        return Err(EmulatorError::invalid_param(
            "path",
            "path must start with /",
        ));
    }
    if let Some(s) = f.status {
        if !(400..600).contains(&s) {
            return Err(EmulatorError::invalid_param(
                "status",
                "status must be a 4xx or 5xx code",
            ));
        }
    }
    if f.status.is_none() && f.latency_ms.is_none() {
        return Err(EmulatorError::invalid(
            "A fault needs a status, a latency_ms, or both.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_and_counting() {
        let faults = Faults::default();
        faults.add(Fault {
            path: "/v1/customers*".into(),
            method: Some("get".into()),
            times: 2,
            status: Some(429),
            latency_ms: None,
        });
        assert!(faults.take("POST", "/v1/customers").is_none());
        assert!(faults.take("GET", "/v1/prices").is_none());
        let f = faults.take("GET", "/v1/customers/cus_1").unwrap();
        assert_eq!(f.error().unwrap().code, Some("rate_limit"));
        assert!(faults.take("GET", "/v1/customers").is_some());
        assert!(faults.take("GET", "/v1/customers").is_none());
    }
}
