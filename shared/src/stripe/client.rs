//! The HTTP side of the Stripe client: headers, idempotency keys, retries with back-off, key
//! rotation on 401, decoding, and pagination.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::de::DeserializeOwned;

use super::catalogue::{HttpMethod, RequestShape};
use super::encode::Params;
use super::error::{StripeClientError, StripeError};
use super::retry::{AttemptOutcome, RetryPolicy};
use super::types::{HasId, List};
use crate::budget;
use crate::config::StripeConfig;
use crate::metrics::{self, StripeFailure};
use crate::secrets::{Redacted, SecretsProvider};

/// Where the Stripe secret key comes from.
#[derive(Clone)]
pub enum ApiKey {
    /// A fixed key (tests, local development against the emulator).
    Static(Redacted),
    /// The cached Secrets Manager secret; refreshed once when Stripe answers 401 (rotation).
    Secrets(Arc<SecretsProvider>),
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKey::Static(_) => f.write_str("ApiKey::Static(..)"),
            ApiKey::Secrets(_) => f.write_str("ApiKey::Secrets(..)"),
        }
    }
}

impl ApiKey {
    async fn current(&self) -> Result<Redacted, StripeClientError> {
        match self {
            ApiKey::Static(key) => Ok(key.clone()),
            ApiKey::Secrets(provider) => Ok(provider.get().await?.stripe_secret_key.clone()),
        }
    }

    /// A freshly read key, or `None` when the key cannot change.
    async fn refreshed(&self) -> Result<Option<Redacted>, StripeClientError> {
        match self {
            ApiKey::Static(_) => Ok(None),
            ApiKey::Secrets(provider) => {
                Ok(Some(provider.refresh().await?.stripe_secret_key.clone()))
            }
        }
    }
}

/// A Stripe API client; cheap to clone, build once per container.
#[derive(Clone, Debug)]
pub struct StripeClient {
    http: reqwest::Client,
    /// The API base without a trailing slash, e.g. `https://api.stripe.com`.
    base: String,
    api_version: String,
    timeout: Duration,
    retry: RetryPolicy,
    key: ApiKey,
    /// Every attempt waits its turn here when set (tools that walk the whole account).
    pace: Option<super::Pace>,
}

/// One request on its way out: which catalogue entry, the path's ids, the parameters.
#[derive(Debug, Clone)]
pub(crate) struct StripeRequest {
    shape: RequestShape,
    path_args: Vec<String>,
    params: Params,
    idempotency_key: Option<String>,
}

impl StripeRequest {
    pub(crate) fn new(shape: RequestShape) -> Self {
        Self {
            shape,
            path_args: Vec::new(),
            params: Params::new(),
            idempotency_key: None,
        }
    }

    /// Fills the next `{placeholder}` of the path template.
    pub(crate) fn arg(mut self, value: &str) -> Self {
        self.path_args.push(value.to_string());
        self
    }

    pub(crate) fn params(mut self, params: Params) -> Self {
        self.params.append(params);
        self
    }

    pub(crate) fn idempotency_key(mut self, key: Option<&str>) -> Self {
        self.idempotency_key = key.map(str::to_string);
        self
    }

    /// The concrete path, each id percent-encoded so it can never add a path segment.
    fn path(&self) -> Result<String, StripeClientError> {
        let mut args = self.path_args.iter();
        let mut out = String::new();
        for segment in self.shape.path.split('/').skip(1) {
            out.push('/');
            if segment.starts_with('{') {
                let arg = args.next().filter(|a| !a.is_empty()).ok_or_else(|| {
                    StripeClientError::InvalidRequest(format!(
                        "{}: missing {segment}",
                        self.shape.name
                    ))
                })?;
                out.push_str(&encode_path_segment(arg));
            } else {
                out.push_str(segment);
            }
        }
        if args.next().is_some() {
            return Err(StripeClientError::InvalidRequest(format!(
                "{}: too many path arguments",
                self.shape.name
            )));
        }
        Ok(out)
    }

    /// Refuses parameters the catalogue does not declare for this request.
    fn check_params(&self) -> Result<(), StripeClientError> {
        match self.params.keys().find(|k| !self.shape.allows(k)) {
            Some(key) => Err(StripeClientError::InvalidRequest(format!(
                "{}: parameter `{key}` is not supported",
                self.shape.name
            ))),
            None => Ok(()),
        }
    }
}

fn encode_path_segment(raw: &str) -> String {
    // Params' encoder keeps only unreserved characters (brackets are for keys only).
    let encoded = Params::new().set("x", raw).encode();
    encoded.trim_start_matches("x=").to_string()
}

/// What came back from one attempt that reached Stripe.
struct RawResponse {
    status: u16,
    should_retry: Option<bool>,
    request_id: Option<String>,
    body: Vec<u8>,
}

enum AttemptFailure {
    Timeout,
    Connection(String),
}

impl StripeClient {
    pub fn new(config: &StripeConfig, http: reqwest::Client, key: ApiKey) -> Self {
        Self {
            http,
            base: config.api_base.as_str().trim_end_matches('/').to_string(),
            api_version: config.api_version.clone(),
            timeout: config.timeout,
            retry: RetryPolicy::new(config.max_retries),
            key,
            pace: None,
        }
    }

    /// Holds every attempt of this client (and its clones) to `pace`.
    pub fn with_pace(mut self, pace: super::Pace) -> Self {
        self.pace = Some(pace);
        self
    }

    /// Replaces the retry policy (tests use millisecond back-off).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Sends `request` with retries and decodes a 2xx body as `T`.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        request: StripeRequest,
    ) -> Result<T, StripeClientError> {
        request.check_params()?;
        let shape = request.shape;
        let method = shape.method;
        let mut url = format!("{}{}", self.base, request.path()?);
        let encoded = request.params.encode();
        let body = if method.uses_query() {
            if !encoded.is_empty() {
                url.push('?');
                url.push_str(&encoded);
            }
            None
        } else {
            Some(encoded)
        };
        // One key for every attempt of this call, so Stripe runs the POST at most once.
        let idempotency_key = match (method, request.idempotency_key) {
            (HttpMethod::Post, Some(key)) => Some(checked_idempotency_key(key)?),
            (HttpMethod::Post, None) => Some(random_idempotency_key()?),
            _ => None,
        };

        let mut api_key = self.key.current().await?;
        let mut key_refreshed = false;
        let mut retries = 0u32;
        loop {
            if let Some(pace) = &self.pace {
                budget::bounded(pace.wait()).await?;
            }
            // Each attempt gets at most what the invocation has left.
            let limit = budget::attempt_limit(self.timeout)?;
            metrics::stripe_call();
            let attempt = self
                .attempt(
                    method,
                    &url,
                    body.as_deref(),
                    &api_key,
                    idempotency_key.as_deref(),
                    limit,
                )
                .await;
            let (outcome, error) = match attempt {
                Ok(response) if (200..300).contains(&response.status) => {
                    return decode(shape, &response.body);
                }
                Ok(response) => {
                    if response.status == 401 && !key_refreshed {
                        if let Some(fresh) = self.key.refreshed().await? {
                            tracing::warn!(
                                request = shape.name,
                                "Stripe rejected the API key; retrying once with a refreshed secret"
                            );
                            key_refreshed = true;
                            api_key = fresh;
                            continue;
                        }
                    }
                    let outcome = AttemptOutcome::Status {
                        status: response.status,
                        should_retry: response.should_retry,
                    };
                    let error = StripeError::from_response(
                        response.status,
                        &response.body,
                        response.request_id,
                    );
                    (outcome, StripeClientError::from(error))
                }
                Err(AttemptFailure::Timeout) => {
                    (AttemptOutcome::Timeout, StripeClientError::Timeout)
                }
                Err(AttemptFailure::Connection(detail)) => (
                    AttemptOutcome::ConnectionError,
                    StripeClientError::Transport(detail),
                ),
            };
            if !self.retry.should_retry(outcome, retries) {
                metrics::stripe_error(failure_class(&error));
                return Err(error);
            }
            let delay = self.retry.delay(retries + 1, budget::jitter());
            if !budget::retry_fits(delay) {
                tracing::warn!(
                    request = shape.name,
                    retries,
                    "no time left in the invocation for another Stripe attempt"
                );
                metrics::stripe_error(failure_class(&error));
                // A slow Stripe that used up the invocation is the budget's doing; an answer
                // Stripe gave stays the error.
                return Err(match error {
                    StripeClientError::Timeout | StripeClientError::Transport(_) => {
                        budget::BudgetSpent.into()
                    }
                    answered => answered,
                });
            }
            retries += 1;
            metrics::stripe_retry(failure_class(&error));
            tracing::warn!(
                method = method.as_str(),
                path = shape.path,
                request = shape.name,
                attempt = retries,
                status = error.status(),
                error = %error_kind(&error),
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying Stripe request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        method: HttpMethod,
        url: &str,
        body: Option<&str>,
        api_key: &Redacted,
        idempotency_key: Option<&str>,
        timeout: Duration,
    ) -> Result<RawResponse, AttemptFailure> {
        let headers = self
            .headers(api_key, idempotency_key)
            .map_err(AttemptFailure::Connection)?;
        let builder = match method {
            HttpMethod::Get => self.http.get(url),
            HttpMethod::Post => self.http.post(url),
            HttpMethod::Delete => self.http.delete(url),
        };
        let mut builder = builder.headers(headers).timeout(timeout);
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.to_string());
        }
        let response = builder.send().await.map_err(transport_failure)?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let should_retry = header("stripe-should-retry").and_then(|v| match v.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
        let request_id = header("request-id");
        let body = response.bytes().await.map_err(transport_failure)?.to_vec();
        Ok(RawResponse {
            status,
            should_retry,
            request_id,
            body,
        })
    }

    fn headers(
        &self,
        api_key: &Redacted,
        idempotency_key: Option<&str>,
    ) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", api_key.expose()))
            .map_err(|_| "the API key is not a valid header value".to_string())?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        let version = HeaderValue::from_str(&self.api_version)
            .map_err(|_| "the API version is not a valid header value".to_string())?;
        headers.insert("stripe-version", version);
        if let Some(key) = idempotency_key {
            let key = HeaderValue::from_str(key)
                .map_err(|_| "the idempotency key is not a valid header value".to_string())?;
            headers.insert("idempotency-key", key);
        }
        Ok(headers)
    }
}

/// A short label for logs: never a body, never a key.
fn failure_class(error: &StripeClientError) -> StripeFailure {
    match error.status() {
        Some(429) => StripeFailure::RateLimited,
        Some(500..) => StripeFailure::Server,
        Some(_) => StripeFailure::Client,
        None => match error {
            StripeClientError::Timeout => StripeFailure::Timeout,
            StripeClientError::Transport(_) => StripeFailure::Connection,
            _ => StripeFailure::Other,
        },
    }
}

fn error_kind(error: &StripeClientError) -> &'static str {
    match error {
        StripeClientError::Api(_) => "api",
        StripeClientError::Timeout => "timeout",
        StripeClientError::Transport(_) => "transport",
        _ => "other",
    }
}

fn transport_failure(error: reqwest::Error) -> AttemptFailure {
    if error.is_timeout() {
        return AttemptFailure::Timeout;
    }
    // The URL may carry an email in its query; the error chain says what went wrong.
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    AttemptFailure::Connection(detail)
}

/// Parses with plain serde; only a body that fails is parsed again, tracking the path, to say
/// where (tracking every value's path roughly doubles the cost of a parse that succeeds).
fn decode<T: DeserializeOwned>(shape: RequestShape, body: &[u8]) -> Result<T, StripeClientError> {
    serde_json::from_slice(body).map_err(|plain| {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
            Err(e) => StripeClientError::Decode(format!(
                "{} at `{}`: {}",
                shape.name,
                e.path(),
                e.inner()
            )),
            Ok(_) => StripeClientError::Decode(format!("{}: {plain}", shape.name)),
        }
    })
}

/// Stripe allows up to 255 characters; we also keep them printable ASCII for the header.
fn checked_idempotency_key(key: String) -> Result<String, StripeClientError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StripeClientError::InvalidRequest(
            "idempotency key must be 1-255 printable ASCII characters".into(),
        ));
    }
    Ok(key)
}

/// 16 random bytes from the system RNG, as 32 lowercase hex digits.
pub fn random_idempotency_key() -> Result<String, StripeClientError> {
    crate::ids::random_hex::<16>().map_err(|e| StripeClientError::InvalidRequest(e.to_string()))
}

/// Follows `has_more` / `starting_after = last id` until the list ends. `page` gets the cursor
/// (`None` first) and fetches one page, normally with `limit = 100`.
pub async fn list_all<T, F, Fut>(mut page: F) -> Result<Vec<T>, StripeClientError>
where
    T: HasId,
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<List<T>, StripeClientError>>,
{
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let list = page(cursor.clone()).await?;
        let last = list.data.last().map(|item| item.id().to_string());
        let has_more = list.has_more;
        all.extend(list.data);
        match last {
            Some(last) if has_more => {
                // A server that repeats a cursor would loop forever.
                if cursor.as_deref() == Some(last.as_str()) {
                    return Err(StripeClientError::Decode(
                        "pagination did not advance".into(),
                    ));
                }
                cursor = Some(last);
            }
            _ => return Ok(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::catalogue::{CUSTOMER_PAYMENT_METHODS, SUBSCRIPTION_UPDATE};

    #[test]
    fn random_idempotency_keys_are_32_hex_and_distinct() {
        let a = random_idempotency_key().unwrap();
        let b = random_idempotency_key().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn caller_idempotency_keys_are_checked() {
        assert!(checked_idempotency_key("portico-customer-user1".into()).is_ok());
        assert!(checked_idempotency_key(String::new()).is_err());
        assert!(checked_idempotency_key("a b".into()).is_err());
        assert!(checked_idempotency_key("x".repeat(256)).is_err());
    }

    #[test]
    fn paths_encode_ids_and_need_every_placeholder() {
        let r = StripeRequest::new(CUSTOMER_PAYMENT_METHODS).arg("cus_1/../x");
        assert_eq!(
            r.path().unwrap(),
            "/v1/customers/cus_1%2F..%2Fx/payment_methods"
        );
        assert!(StripeRequest::new(CUSTOMER_PAYMENT_METHODS).path().is_err());
        assert!(StripeRequest::new(CUSTOMER_PAYMENT_METHODS)
            .arg("")
            .path()
            .is_err());
    }

    #[test]
    fn undeclared_parameters_are_refused() {
        let ok = StripeRequest::new(SUBSCRIPTION_UPDATE)
            .params(Params::new().set("items[0][price]", "price_1"));
        assert!(ok.check_params().is_ok());
        let bad = StripeRequest::new(SUBSCRIPTION_UPDATE)
            .params(Params::new().set("pause_collection[behavior]", "void"));
        let err = bad.check_params().unwrap_err();
        assert!(err.to_string().contains("pause_collection[behavior]"));
    }

    #[test]
    fn api_key_debug_hides_the_key() {
        let key = ApiKey::Static(Redacted::new("sk_test_FAKE_secret"));
        assert!(!format!("{key:?}").contains("FAKE"));
    }
}
