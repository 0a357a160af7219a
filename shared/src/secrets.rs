//! The Stripe keys, from one Secrets Manager secret, cached per container.
//!
//! The secret is JSON: `{"stripe_secret_key": "sk_…", "webhook_signing_secrets": ["whsec_…"]}`.
//! Values are wrapped in [`Redacted`], which has no way to print them, and parse errors are
//! written by hand so that no serde message can echo a value back.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use serde_json::Value;
use tokio::sync::Mutex;

/// A secret string. Debug and Display print a placeholder; only [`Redacted::expose`] reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redacted(..)")
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSecrets {
    pub stripe_secret_key: Redacted,
    /// Every secret currently valid for webhook signatures; more than one while rotating.
    pub webhook_signing_secrets: Vec<Redacted>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secret {secret_id} could not be read: {reason}")]
    Unavailable { secret_id: String, reason: String },
    #[error("secret has no string value")]
    NoStringValue,
    #[error("secret is not valid JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("secret is not a JSON object")]
    NotAnObject,
    #[error("secret field `{field}` is missing")]
    MissingField { field: &'static str },
    #[error("secret field `{field}` is invalid: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
}

impl StripeSecrets {
    pub fn parse(json: &str) -> Result<Self, SecretsError> {
        let value: Value = serde_json::from_str(json).map_err(|e| SecretsError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        let object = value.as_object().ok_or(SecretsError::NotAnObject)?;

        const KEY: &str = "stripe_secret_key";
        let key = match object.get(KEY) {
            None | Some(Value::Null) => return Err(SecretsError::MissingField { field: KEY }),
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(SecretsError::InvalidField {
                    field: KEY,
                    reason: "not a string",
                })
            }
        };
        // Secret (sk_) or restricted (rk_) keys only; a publishable key here is a set-up mistake.
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            return Err(SecretsError::InvalidField {
                field: KEY,
                reason: "must start with sk_ or rk_",
            });
        }

        const HOOKS: &str = "webhook_signing_secrets";
        let hooks = match object.get(HOOKS) {
            None | Some(Value::Null) => return Err(SecretsError::MissingField { field: HOOKS }),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(SecretsError::InvalidField {
                    field: HOOKS,
                    reason: "not an array",
                })
            }
        };
        if hooks.is_empty() {
            return Err(SecretsError::InvalidField {
                field: HOOKS,
                reason: "is empty",
            });
        }
        let mut webhook_signing_secrets = Vec::with_capacity(hooks.len());
        for item in hooks {
            match item {
                Value::String(s) if s.starts_with("whsec_") && s.len() > "whsec_".len() => {
                    webhook_signing_secrets.push(Redacted::new(s.clone()))
                }
                _ => {
                    return Err(SecretsError::InvalidField {
                        field: HOOKS,
                        reason: "every entry must be a string starting with whsec_",
                    })
                }
            }
        }
        Ok(StripeSecrets {
            stripe_secret_key: Redacted::new(key.clone()),
            webhook_signing_secrets,
        })
    }
}

struct Cached {
    secrets: Arc<StripeSecrets>,
    fetched_at: Instant,
}

/// Reads the secret at most once per TTL per container; `refresh` forces a read (rotation), at
/// most once per `refresh_min_interval`, so forged webhook signatures cannot turn into a flood of
/// Secrets Manager reads.
pub struct SecretsProvider {
    client: Client,
    secret_id: String,
    ttl: Duration,
    refresh_min_interval: Duration,
    // A mutex, not a RwLock: concurrent callers on an empty or stale cache wait for one fetch.
    cache: Mutex<Option<Cached>>,
}

impl SecretsProvider {
    pub fn new(client: Client, secret_id: impl Into<String>, ttl: Duration) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            ttl,
            refresh_min_interval: Duration::ZERO,
            cache: Mutex::new(None),
        }
    }

    pub fn with_refresh_min_interval(mut self, interval: Duration) -> Self {
        self.refresh_min_interval = interval;
        self
    }

    /// The cached secrets, fetched first when absent or older than the TTL.
    pub async fn get(&self) -> Result<Arc<StripeSecrets>, SecretsError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            if cached.fetched_at.elapsed() < self.ttl {
                return Ok(cached.secrets.clone());
            }
        }
        self.fetch_into(&mut cache).await
    }

    /// Fetches now, unless the cached copy was fetched less than `refresh_min_interval` ago.
    pub async fn refresh(&self) -> Result<Arc<StripeSecrets>, SecretsError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            if cached.fetched_at.elapsed() < self.refresh_min_interval {
                return Ok(cached.secrets.clone());
            }
        }
        self.fetch_into(&mut cache).await
    }

    async fn fetch_into(
        &self,
        cache: &mut Option<Cached>,
    ) -> Result<Arc<StripeSecrets>, SecretsError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretsError::Unavailable {
                secret_id: self.secret_id.clone(),
                // The SDK's error carries the service's message, never the secret value.
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?;
        let json = output.secret_string().ok_or(SecretsError::NoStringValue)?;
        let secrets = Arc::new(StripeSecrets::parse(json)?);
        *cache = Some(Cached {
            secrets: secrets.clone(),
            fetched_at: Instant::now(),
        });
        tracing::debug!(secret_id = %self.secret_id, "secret fetched");
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"stripe_secret_key":"sk_test_FAKE_for_tests","webhook_signing_secrets":["whsec_FAKE_one","whsec_FAKE_two"]}"#;

    #[test]
    fn parses_the_documented_shape() {
        let s = StripeSecrets::parse(GOOD).unwrap();
        assert_eq!(s.stripe_secret_key.expose(), "sk_test_FAKE_for_tests");
        assert_eq!(s.webhook_signing_secrets.len(), 2);
        assert_eq!(s.webhook_signing_secrets[1].expose(), "whsec_FAKE_two");
    }

    #[test]
    fn debug_and_display_never_show_values() {
        let s = StripeSecrets::parse(GOOD).unwrap();
        let printed = format!(
            "{s:?} {} {}",
            s.stripe_secret_key, s.webhook_signing_secrets[0]
        );
        assert!(!printed.contains("FAKE"), "{printed}");
        assert!(printed.contains("Redacted"));
    }

    #[test]
    fn errors_name_the_field_and_never_echo_values() {
        let cases = [
            (
                r#"{"webhook_signing_secrets":["whsec_FAKE"]}"#,
                "stripe_secret_key",
            ),
            (
                r#"{"stripe_secret_key":"sk_test_FAKE"}"#,
                "webhook_signing_secrets",
            ),
            (
                r#"{"stripe_secret_key":"pk_test_FAKE","webhook_signing_secrets":["whsec_FAKE"]}"#,
                "stripe_secret_key",
            ),
            (
                r#"{"stripe_secret_key":"sk_test_FAKE","webhook_signing_secrets":"whsec_FAKE"}"#,
                "webhook_signing_secrets",
            ),
            (
                r#"{"stripe_secret_key":"sk_test_FAKE","webhook_signing_secrets":[]}"#,
                "webhook_signing_secrets",
            ),
            (
                r#"{"stripe_secret_key":"sk_test_FAKE","webhook_signing_secrets":["FAKE"]}"#,
                "webhook_signing_secrets",
            ),
            (
                r#"{"stripe_secret_key":12,"webhook_signing_secrets":["whsec_FAKE"]}"#,
                "stripe_secret_key",
            ),
        ];
        for (json, field) in cases {
            let err = StripeSecrets::parse(json).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(field), "{json}: {message}");
            assert!(!message.contains("FAKE"), "{json}: {message}");
        }
    }

    #[test]
    fn bad_json_is_a_clear_error_without_content() {
        let err = StripeSecrets::parse(r#"{"stripe_secret_key": "sk_test_FAKE""#).unwrap_err();
        assert!(matches!(err, SecretsError::NotJson { .. }));
        assert!(!err.to_string().contains("FAKE"));
        assert!(matches!(
            StripeSecrets::parse("[1]"),
            Err(SecretsError::NotAnObject)
        ));
    }
}
