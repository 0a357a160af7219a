//! Stripe's idempotency layer for POST requests: the first response for a key is stored
//! and replayed; a key reused with other parameters is an `idempotency_error`; a key whose
//! first request is still executing answers 409 `idempotency_key_in_use`.
//!
//! Stored: every response once the endpoint began executing (including 402 and 500).
//! Not stored (same key may be retried): 400 validation failures, 409 conflicts, and
//! 401s (those never reach this layer). Keys are scoped per API key and pruned after 24 h.

use serde_json::Value;
use std::collections::HashMap;

const RETENTION_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq)]
struct Request {
    method: String,
    path: String,
    params: Value,
}

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub request_id: String,
}

#[derive(Debug)]
enum Slot {
    InFlight(Request),
    Done {
        request: Request,
        response: StoredResponse,
        at: i64,
    },
}

pub enum Begin {
    /// First use: run the request, then call `finish`.
    Proceed,
    Replay(StoredResponse),
    /// Same key, different endpoint or parameters: the message to return.
    Mismatch(String),
    InUse,
}

#[derive(Debug, Default)]
pub struct IdempotencyStore {
    slots: HashMap<(String, String), Slot>,
}

impl IdempotencyStore {
    pub fn begin(
        &mut self,
        api_key: &str,
        key: &str,
        method: &str,
        path: &str,
        params: &Value,
        now: i64,
    ) -> Begin {
        self.slots
            .retain(|_, s| !matches!(s, Slot::Done { at, .. } if now - *at > RETENTION_SECS));
        let req = Request {
            method: method.into(),
            path: path.into(),
            params: params.clone(),
        };
        let scope = (api_key.to_string(), key.to_string());
        match self.slots.get(&scope) {
            None => {
                self.slots.insert(scope, Slot::InFlight(req));
                Begin::Proceed
            }
            Some(Slot::InFlight(_)) => Begin::InUse,
            Some(Slot::Done {
                request, response, ..
            }) => {
                if request.method != req.method || request.path != req.path {
                    Begin::Mismatch(format!(
                        "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{} {}' vs '{} {}'). Try using a key other than '{key}' if you meant to execute a different request.",
                        request.method, request.path, req.method, req.path
                    ))
                } else if request.params != req.params {
                    Begin::Mismatch(format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                    ))
                } else {
                    Begin::Replay(response.clone())
                }
            }
        }
    }

    /// Stores the response, or (`None`) forgets the key so it can be used again.
    pub fn finish(&mut self, api_key: &str, key: &str, response: Option<StoredResponse>, now: i64) {
        let scope = (api_key.to_string(), key.to_string());
        match (self.slots.remove(&scope), response) {
            (Some(Slot::InFlight(request)), Some(response)) => {
                self.slots.insert(
                    scope,
                    Slot::Done {
                        request,
                        response,
                        at: now,
                    },
                );
            }
            (Some(other @ Slot::Done { .. }), _) => {
                self.slots.insert(scope, other);
            }
            _ => {}
        }
    }

    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resp() -> StoredResponse {
        StoredResponse {
            status: 200,
            body: b"{}".to_vec(),
            request_id: "req_1".into(),
        }
    }

    #[test]
    fn lifecycle() {
        let mut s = IdempotencyStore::default();
        let p = json!({"email": "a"});
        assert!(matches!(
            s.begin("sk", "k", "POST", "/v1/customers", &p, 0),
            Begin::Proceed
        ));
        assert!(matches!(
            s.begin("sk", "k", "POST", "/v1/customers", &p, 0),
            Begin::InUse
        ));
        // Another API key is another scope.
        assert!(matches!(
            s.begin("sk2", "k", "POST", "/v1/customers", &p, 0),
            Begin::Proceed
        ));
        s.finish("sk", "k", Some(resp()), 0);
        assert!(matches!(
            s.begin("sk", "k", "POST", "/v1/customers", &p, 1),
            Begin::Replay(_)
        ));
        assert!(matches!(
            s.begin("sk", "k", "POST", "/v1/customers", &json!({}), 1),
            Begin::Mismatch(_)
        ));
        assert!(matches!(
            s.begin("sk", "k", "POST", "/v1/subscriptions", &p, 1),
            Begin::Mismatch(_)
        ));
        // Pruned after 24 hours.
        assert!(matches!(
            s.begin("sk", "k", "POST", "/v1/customers", &json!({}), 90_000),
            Begin::Proceed
        ));
    }

    #[test]
    fn validation_failures_are_forgotten() {
        let mut s = IdempotencyStore::default();
        let p = json!({});
        assert!(matches!(
            s.begin("sk", "k", "POST", "/v1/customers", &p, 0),
            Begin::Proceed
        ));
        s.finish("sk", "k", None, 0);
        assert!(matches!(
            s.begin("sk", "k", "POST", "/v1/customers", &json!({"x": "1"}), 0),
            Begin::Proceed
        ));
    }
}
