//! The HTTP edge every function shares: routing, JSON bodies, the response envelope, and the one
//! place where errors of every module become HTTP responses.
//!
//! Success: `{"success": true, ...}`. Failure: `{"success": false, "error", "error_code",
//! "request_id", "timestamp"}` (plus `field` when one input field is to blame).

use std::time::Duration;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::account::AccountError;
use crate::analytics::AnalyticsError;
use crate::auth::AuthError;
use crate::customer_link::CustomerError;
pub use crate::error_code::ErrorCode;
use crate::portal::return_url::ReturnUrlError;
use crate::portal::PortalError;
use crate::portal_admin::PortalAdminError;
use crate::secrets::SecretsError;
use crate::store::StoreError;
use crate::stripe::StripeClientError;
use crate::support::SupportError;
use crate::sync::SyncError;
use crate::webhook::WebhookError;

/// An error on its way to the caller: status, stable machine-readable code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    pub allow: Vec<Method>,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            allow: Vec::new(),
            retry_after: None,
        }
    }

    /// 429: Portico itself refuses for now; `Retry-After` says when to come back.
    pub fn too_many_requests(
        code: ErrorCode,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        // Whole seconds, rounded up, never 0: a client retrying at once would be refused again.
        error.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
        error
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// A failure of ours. The detail goes to the log; the caller gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(detail = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "internal error",
        )
    }

    /// The invocation's time ran out while a dependency was slow; the caller may retry.
    pub fn out_of_time() -> Self {
        tracing::warn!("the invocation's time budget ran out");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::UpstreamTimeout,
            "a service Portico depends on is too slow right now; retry shortly",
        )
    }

    /// A dependency is down or throttling; the caller may retry.
    pub fn unavailable(code: ErrorCode, detail: impl std::fmt::Display) -> Self {
        tracing::warn!(code = code.as_str(), detail = %detail, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "a service Portico depends on is unavailable; retry shortly",
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match e {
            AuthError::NotAdmin => StatusCode::FORBIDDEN,
            AuthError::KeysUnavailable(_) => return ApiError::unavailable(e.code(), &e),
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::unavailable(ErrorCode::StorageUnavailable, &e),
            StoreError::Budget(_) => ApiError::out_of_time(),
            StoreError::ConditionFailed
            | StoreError::TransactionConditionsFailed(_)
            | StoreError::TransactionConflict => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "the record changed concurrently; retry",
            ),
            StoreError::Corrupt { .. } | StoreError::Request(_) => ApiError::internal(&e),
        }
    }
}

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::Unavailable { .. } => {
                ApiError::unavailable(ErrorCode::SecretsUnavailable, &e)
            }
            _ => ApiError::internal(&e),
        }
    }
}

impl From<StripeClientError> for ApiError {
    fn from(e: StripeClientError) -> Self {
        match &e {
            StripeClientError::Budget(_) => ApiError::out_of_time(),
            StripeClientError::Key(_)
            | StripeClientError::Transport(_)
            | StripeClientError::Timeout => ApiError::unavailable(ErrorCode::StripeUnavailable, &e),
            _ if e.is_retryable() => ApiError::unavailable(ErrorCode::StripeUnavailable, &e),
            // The caller's Idempotency-Key was used before with another body: theirs to change.
            StripeClientError::Api(api) if api.error_type == "idempotency_error" => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request; use a new key",
            ),
            StripeClientError::Deleted { .. } => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::CustomerDeleted,
                "the Stripe customer behind this account was deleted",
            ),
            StripeClientError::Api(_) => {
                // Stripe refused a request we built: our bug or our set-up, not the caller's input.
                tracing::error!(error = %e, "Stripe rejected a request");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::StripeError,
                    "Stripe rejected the request",
                )
            }
            _ => ApiError::internal(&e),
        }
    }
}

impl From<CustomerError> for ApiError {
    fn from(e: CustomerError) -> Self {
        match e {
            CustomerError::Stripe(e) => e.into(),
            CustomerError::Store(e) => e.into(),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Stripe(e) => e.into(),
            SyncError::Store(e) => e.into(),
            SyncError::Contended(_) => ApiError::unavailable(ErrorCode::SyncContended, &e),
            SyncError::Erased(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::CustomerErased,
                "this customer's data was erased",
            ),
            SyncError::CallerConditionFailed(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "the record changed concurrently; retry",
            ),
        }
    }
}

impl From<SupportError> for ApiError {
    fn from(e: SupportError) -> Self {
        let message = e.to_string();
        match e {
            SupportError::Store(e) => e.into(),
            SupportError::Stripe(e) => e.into(),
            SupportError::Sync(e) => e.into(),
            SupportError::UserNotFound => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::UserNotFound, message)
            }
            SupportError::CustomerNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::CustomerNotFound, message)
                    .with_field("customer_id")
            }
            SupportError::NoCustomer => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::NoCustomer, message)
            }
            SupportError::UserAlreadyLinked(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::UserAlreadyLinked, message)
            }
            SupportError::CustomerLinkedToOtherUser(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::CustomerLinkedToOtherUser,
                message,
            )
            .with_field("customer_id"),
            SupportError::CustomerDeleted(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::CustomerDeleted, message)
                    .with_field("customer_id")
            }
            SupportError::LinkNotProven(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::LinkNotProven, message)
                    .with_field("customer_id")
            }
            SupportError::ReasonRequired => {
                ApiError::bad_request(ErrorCode::ReasonRequired, message).with_field("reason")
            }
            SupportError::InvalidCursor => {
                ApiError::bad_request(ErrorCode::InvalidCursor, message).with_field("cursor")
            }
        }
    }
}

impl From<PortalError> for ApiError {
    fn from(e: PortalError) -> Self {
        let message = e.to_string();
        match e {
            PortalError::InvalidReturnUrl(e) => e.into(),
            PortalError::RefreshThrottled(retry_after) => {
                ApiError::too_many_requests(ErrorCode::RefreshThrottled, message, retry_after)
            }
            PortalError::NotConfigured(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::PortalNotConfigured,
                message,
            ),
            PortalError::NoActiveSubscription(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::NoActiveSubscription,
                message,
            ),
            PortalError::SubscriptionRequired(_) => {
                ApiError::bad_request(ErrorCode::SubscriptionIdRequired, message)
                    .with_field("subscription_id")
            }
            PortalError::SubscriptionNotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::SubscriptionNotFound,
                message,
            ),
            PortalError::SessionNotFound => ApiError::not_found(message),
            PortalError::SessionExpired => {
                ApiError::new(StatusCode::GONE, ErrorCode::SessionExpired, message)
            }
            PortalError::PriceNotAllowed(_) => {
                ApiError::bad_request(ErrorCode::PriceNotAllowed, message).with_field("price")
            }
            PortalError::AlreadyOnPrice(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyOnPrice, message)
                    .with_field("price")
            }
            PortalError::PriceWithoutPlanChange => {
                ApiError::bad_request(ErrorCode::InvalidField, message).with_field("price")
            }
            PortalError::Customer(e) => e.into(),
            PortalError::Stripe(e) => e.into(),
            PortalError::Store(e) => e.into(),
            PortalError::Sync(e) => e.into(),
        }
    }
}

impl From<ReturnUrlError> for ApiError {
    fn from(e: ReturnUrlError) -> Self {
        ApiError::bad_request(ErrorCode::InvalidReturnUrl, e.to_string()).with_field(e.field)
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Signature(reason) => ApiError::bad_request(
                ErrorCode::InvalidSignature,
                format!("signature rejected: {reason}"),
            ),
            WebhookError::Malformed(_) => {
                ApiError::bad_request(ErrorCode::InvalidEvent, "body is not a Stripe event")
            }
            // Any 5xx makes Stripe deliver again later, when the lease holder has finished.
            WebhookError::InProgress => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::EventInProgress,
                "another delivery of this event is being processed; retry later",
            ),
            WebhookError::Secrets(e) => e.into(),
            WebhookError::Store(StoreError::Budget(_)) => ApiError::out_of_time(),
            WebhookError::Sync(e) if e.is_out_of_time() => ApiError::out_of_time(),
            WebhookError::Store(_) | WebhookError::Sync(_) | WebhookError::Random(_) => {
                tracing::error!(error = %e, "webhook processing failed; Stripe will retry");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::ProcessingFailed,
                    "processing failed; retry",
                )
            }
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        let message = e.to_string();
        match e {
            AccountError::SubscriptionNotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::SubscriptionNotFound,
                message,
            ),
            AccountError::SubscriptionEnded => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::SubscriptionEnded,
                message,
            ),
            AccountError::ImmediateCancelNotAllowed => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::ImmediateCancelNotAllowed,
                message,
            ),
            AccountError::PriceNotAllowed(_) => {
                ApiError::bad_request(ErrorCode::PriceNotAllowed, message).with_field("price")
            }
            AccountError::AlreadySubscribed => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadySubscribed, message)
            }
            AccountError::InvalidReturn(e) => e.into(),
            AccountError::RefreshThrottled(retry_after) => {
                ApiError::too_many_requests(ErrorCode::RefreshThrottled, message, retry_after)
            }
            AccountError::AlreadyPurchased => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyPurchased, message)
            }
            AccountError::AlreadyOnPrice(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyOnPrice, message)
                    .with_field("price")
            }
            AccountError::Customer(e) => e.into(),
            AccountError::Stripe(e) => e.into(),
            AccountError::Store(e) => e.into(),
            AccountError::Sync(e) => e.into(),
        }
    }
}

impl From<PortalAdminError> for ApiError {
    fn from(e: PortalAdminError) -> Self {
        let message = e.to_string();
        match e {
            PortalAdminError::InvalidField { field, .. } if field == "." => {
                ApiError::bad_request(ErrorCode::InvalidBody, message)
            }
            PortalAdminError::InvalidField { field, .. } => {
                ApiError::bad_request(ErrorCode::InvalidField, message).with_field(field)
            }
            PortalAdminError::CouponNotFound(_) => {
                ApiError::bad_request(ErrorCode::CouponNotFound, message)
                    .with_field("retention_coupon")
            }
            PortalAdminError::CouponNotUsable(_) => {
                ApiError::bad_request(ErrorCode::CouponNotUsable, message)
                    .with_field("retention_coupon")
            }
            PortalAdminError::StripeRejected { param, .. } => {
                let error = ApiError::bad_request(ErrorCode::StripeInvalidRequest, message);
                match param {
                    Some(param) => error.with_field(param),
                    None => error,
                }
            }
            PortalAdminError::ConfigurationNotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::ConfigurationNotFound,
                message,
            ),
            PortalAdminError::ConfigurationInactive(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ConfigurationInactive,
                message,
            )
            .with_field("configuration_id"),
            PortalAdminError::ConfigurationInUse { .. } => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::ConfigurationInUse, message)
            }
            PortalAdminError::SharedConfiguration { .. } => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::ConfigurationShared,
                message,
            )
            .with_field("branding"),
            PortalAdminError::Stripe(e) => e.into(),
            PortalAdminError::Store(e) => e.into(),
            PortalAdminError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

impl From<AnalyticsError> for ApiError {
    fn from(e: AnalyticsError) -> Self {
        let message = e.to_string();
        match e {
            AnalyticsError::InvalidDate { field, .. } => {
                ApiError::bad_request(ErrorCode::InvalidDate, message).with_field(field)
            }
            AnalyticsError::EndBeforeStart { .. } => {
                ApiError::bad_request(ErrorCode::InvalidPeriod, message).with_field("end_date")
            }
            AnalyticsError::TooLong(_) => ApiError::bad_request(ErrorCode::PeriodTooLong, message),
            AnalyticsError::Store(e) => e.into(),
        }
    }
}

pub type HandlerResult = Result<Response<Body>, ApiError>;

/// `{"success": true, ...fields}` with the given status.
pub fn json(status: StatusCode, fields: Value) -> Response<Body> {
    let mut body = Map::new();
    body.insert("success".into(), Value::Bool(true));
    if let Value::Object(fields) = fields {
        body.extend(fields);
    }
    respond(status, &Value::Object(body))
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Turns a handler's result into the response, rendering an error in the envelope.
pub fn finish(request: &Request, result: HandlerResult) -> Response<Body> {
    let error = match result {
        Ok(response) => return response,
        Err(error) => error,
    };
    let request_id = request_id(request);
    if error.status.is_client_error() {
        tracing::info!(
            status = error.status.as_u16(),
            code = error.code.as_str(),
            request_id,
            "request refused"
        );
    }
    let mut body = json!({
        "success": false,
        "error": error.message,
        "error_code": error.code,
        "request_id": request_id,
        // When the answer was made, by the system clock: it tells the caller, and is stored nowhere.
        "timestamp": crate::clock::timestamp(OffsetDateTime::now_utc()),
    });
    if let Some(field) = &error.field {
        body["field"] = Value::String(field.clone());
    }
    let mut response = respond(error.status, &body);
    // A dependency down, slow or busy is worth trying again shortly.
    let unavailable = error.status == StatusCode::SERVICE_UNAVAILABLE;
    if let Some(seconds) = error.retry_after.or(unavailable.then_some(1)) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if !error.allow.is_empty() {
        let allow = error
            .allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
    }
    response
}

/// Every handler's frame: the request's log span, its metrics (written once, when it ends),
/// its deadline, and the mapping of its error to a response.
pub async fn serve(
    services: &crate::services::Services,
    request: &Request,
    work: impl std::future::Future<Output = HandlerResult>,
) -> Response<Body> {
    let request_id = request_id(request);
    let span = crate::telemetry::request_span(services.function, &request_id);
    // Boxed: the handler's future is large, and the frame would hold it inline on the stack.
    let answered = Box::pin(async { finish(request, within_deadline(request, work).await) });
    services
        .metrics
        .invocation(&request_id, tracing::Instrument::instrument(answered, span))
        .await
}

/// Runs a handler's work inside the invocation's deadline (Lambda's, from the request's
/// context), answering 503 `upstream_timeout` itself when the work would outlast it.
pub async fn within_deadline(
    request: &Request,
    work: impl std::future::Future<Output = HandlerResult>,
) -> HandlerResult {
    let deadline = request
        .lambda_context_ref()
        .and_then(|context| deadline_instant(context.deadline));
    // Boxed: a handler's future is large, and the deadline wrapper would hold it inline.
    crate::budget::invocation(deadline, Box::pin(work))
        .await
        .unwrap_or_else(|_| Err(ApiError::out_of_time()))
}

/// Before this (2001-09-09) a value is no epoch deadline: `cargo lambda watch` sends its timeout
/// (600000) where Lambda sends the deadline.
const NO_EARLIER_DEADLINE_MS: u64 = 1_000_000_000_000;

/// Lambda's deadline (epoch milliseconds) on this process's clock; `None` without a real one.
pub fn deadline_instant(epoch_ms: u64) -> Option<std::time::Instant> {
    if epoch_ms < NO_EARLIER_DEADLINE_MS {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let left = std::time::Duration::from_millis(epoch_ms).saturating_sub(now);
    Some(std::time::Instant::now() + left)
}

/// The Lambda request id, else API Gateway's, so a caller can quote it to support.
pub fn request_id(request: &Request) -> String {
    if let Some(context) = request.lambda_context_ref() {
        if !context.request_id.is_empty() {
            return context.request_id.clone();
        }
    }
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            context.request_id.clone().unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// The header's value when present and valid UTF-8.
pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `Idempotency-Key` header, when sent: 1-200 printable ASCII characters, the same for
/// every retry of one click.
pub fn idempotency_key(request: &Request) -> Result<Option<&str>, ApiError> {
    let Some(raw) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidIdempotencyKey,
                "Idempotency-Key must be 1-200 printable characters",
            )
        })
}

/// Parses the JSON body into `T`. An empty body counts as `{}`, so requests whose fields are
/// all optional need none. Oversized → 413; not JSON → 400 `malformed_json`; a field of the wrong
/// shape → 400 `invalid_field` naming it.
pub fn parse_json<T: DeserializeOwned>(request: &Request, max_bytes: usize) -> Result<T, ApiError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "request body is {} bytes; the limit is {max_bytes}",
                bytes.len()
            ),
        ));
    }
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    if let Some(content_type) = header(request, "content-type") {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "request body must be application/json",
            ));
        }
    }
    // Every body of this API is an object; serde would also take a struct from a JSON array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "request body must be a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(
                ErrorCode::MalformedJson,
                format!("request body is not valid JSON: {inner}"),
            )
        } else if path == "." {
            ApiError::bad_request(
                ErrorCode::InvalidBody,
                format!("request body is invalid: {inner}"),
            )
        } else {
            ApiError::bad_request(ErrorCode::InvalidField, format!("`{path}`: {inner}"))
                .with_field(path)
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::bad_request(
            ErrorCode::MalformedJson,
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// The values bound by `{name}` segments of a route pattern.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A function's routes: method, pattern (`/a/{id}/b`), and what the handler calls the route.
pub struct Router<R: Copy + 'static> {
    routes: &'static [(Method, &'static str, R)],
}

impl<R: Copy + 'static> Router<R> {
    pub const fn new(routes: &'static [(Method, &'static str, R)]) -> Self {
        Self { routes }
    }

    /// The route for this request, or the 404 / 405 envelope's error.
    pub fn route(&self, request: &Request) -> Result<(R, PathParams), ApiError> {
        self.match_path(request.method(), request.raw_http_path())
    }

    pub fn match_path(&self, method: &Method, path: &str) -> Result<(R, PathParams), ApiError> {
        let mut allowed = Vec::new();
        for (route_method, pattern, id) in self.routes {
            if let Some(params) = match_pattern(pattern, path) {
                if route_method == method {
                    return Ok((*id, params));
                }
                allowed.push(route_method.clone());
            }
        }
        if allowed.is_empty() {
            return Err(ApiError::not_found(format!("no route for {path}")));
        }
        let mut error = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {path}"),
        );
        error.allow = allowed;
        Err(error)
    }
}

fn match_pattern(pattern: &'static str, path: &str) -> Option<PathParams> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut wanted = pattern.split('/');
    let mut given = path.split('/');
    let mut params = Vec::new();
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(PathParams(params)),
            (Some(w), Some(g)) => {
                if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    if g.is_empty() {
                        return None;
                    }
                    params.push((name, g.to_string()));
                } else if w != g {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum R {
        Account,
        Cancel,
    }

    const ROUTER: Router<R> = Router::new(&[
        (Method::GET, "/billing/account", R::Account),
        (
            Method::POST,
            "/billing/subscriptions/{id}/cancel",
            R::Cancel,
        ),
    ]);

    #[test]
    fn routes_match_methods_paths_and_params() {
        let (r, _) = ROUTER.match_path(&Method::GET, "/billing/account").unwrap();
        assert_eq!(r, R::Account);
        let (r, _) = ROUTER
            .match_path(&Method::GET, "/billing/account/")
            .unwrap();
        assert_eq!(r, R::Account);
        let (r, params) = ROUTER
            .match_path(&Method::POST, "/billing/subscriptions/sub_1/cancel")
            .unwrap();
        assert_eq!((r, params.get("id")), (R::Cancel, Some("sub_1")));
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
        let e = ROUTER.match_path(&Method::GET, "/nope").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::NOT_FOUND, ErrorCode::NotFound)
        );
        let e = ROUTER
            .match_path(&Method::GET, "/billing/subscriptions//cancel")
            .unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = ROUTER
            .match_path(&Method::DELETE, "/billing/account")
            .unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
        );
        assert_eq!(e.allow, vec![Method::GET]);
    }
}
