//! HTTP layer: the axum router, `/v1` dispatch (auth, parameters, idempotency, test hooks,
//! request log, persistence) and the `/_emulator` helper endpoints.

use crate::error::{ApiError, ApiResult};
use crate::idempotency::{Begin, IdempotencyStore, StoredResponse};
use crate::ids::new_id;
use crate::params::Params;
use crate::resources::{
    catalog, checkout, coupons, customers, events, invoices, payment_methods, payments, portal,
    subscriptions, Handler,
};
use crate::state::{Ctx, State};
use axum::body::{Body, Bytes};
use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// One `/v1` request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub status: u16,
    pub request_id: String,
    pub stripe_version: Option<String>,
    /// True when the response was a replay of a stored idempotent response.
    pub idempotent_replayed: bool,
}

/// Test hooks that slow down or hold requests to one endpoint (`"POST /v1/customers"`).
#[derive(Default)]
pub(crate) struct Hooks {
    pub latency: HashMap<String, Duration>,
    pub holds: HashMap<String, Arc<Hold>>,
}

pub(crate) struct Hold {
    pub arrived: watch::Sender<usize>,
    pub open: watch::Sender<bool>,
    /// Only the first request is held, and only its answer: it reads the state as it was on
    /// arrival and delivers that view on release, while later requests pass.
    pub first_answer_only: bool,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub idempotency: Mutex<IdempotencyStore>,
    pub log: Mutex<Vec<LoggedRequest>>,
    pub hooks: Mutex<Hooks>,
    pub api_key: Option<String>,
    pub api_version: String,
    pub base_url: String,
    pub state_file: Option<PathBuf>,
    pub delivery: crate::delivery::Deliverer,
    pub faults: crate::faults::Faults,
}

/// Locks a mutex whose poisoning must not crash the server (it becomes a 500).
pub(crate) fn lock<T>(m: &Mutex<T>) -> ApiResult<MutexGuard<'_, T>> {
    m.lock().map_err(|_| {
        ApiError::internal("An unexpected error occurred (emulator state lock poisoned).")
    })
}

/// For bookkeeping (log, hooks) a poisoned lock still holds usable data.
pub(crate) fn lock_anyway<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_emulator/customers", post(emulator_customers))
        .route("/_emulator/requests", get(emulator_requests))
        .route("/_emulator/reset", post(emulator_reset))
        .route("/_emulator/events", get(emulator_events))
        .merge(crate::control::routes())
        .merge(crate::portal_pages::routes())
        .merge(crate::checkout_pages::routes())
        .fallback(v1)
        .with_state(shared)
}

/// Runs `f` under the state lock, all or nothing like a `/v1` mutation: on error (or a
/// panic, which becomes a 500) the state is restored; on success it is persisted and the
/// new events go to webhook delivery.
pub(crate) fn mutate<T>(
    shared: &Shared,
    f: impl FnOnce(&mut State) -> ApiResult<T>,
) -> ApiResult<T> {
    let mut st = lock(&shared.state)?;
    let before = st.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut st)))
        .unwrap_or_else(|_| {
            Err(ApiError::internal(
                "An unexpected error occurred in the emulator.",
            ))
        });
    match &outcome {
        Ok(_) => {
            persist(shared, &st);
            drop(st);
            shared.delivery.wake();
        }
        Err(_) => *st = before,
    }
    outcome
}

fn route(method: &Method, segs: &[&str]) -> Option<(Handler, Vec<String>)> {
    let m = method.as_str();
    let one = |h: Handler, id: &str| Some((h, vec![id.to_string()]));
    let none = |h: Handler| Some((h, Vec::new()));
    match (m, segs) {
        ("GET", ["customers"]) => none(customers::LIST),
        ("POST", ["customers"]) => none(customers::CREATE),
        ("GET", ["customers", "search"]) => none(customers::SEARCH),
        ("GET", ["customers", id]) => one(customers::GET, id),
        ("POST", ["customers", id]) => one(customers::UPDATE, id),
        ("DELETE", ["customers", id]) => one(customers::DELETE, id),
        ("GET", ["customers", id, "payment_methods"]) => {
            one(payment_methods::LIST_FOR_CUSTOMER, id)
        }
        ("GET", ["payment_methods"]) => none(payment_methods::LIST),
        ("GET", ["payment_methods", id]) => one(payment_methods::GET, id),
        ("POST", ["payment_methods", id, "attach"]) => one(payment_methods::ATTACH, id),
        ("POST", ["payment_methods", id, "detach"]) => one(payment_methods::DETACH, id),
        ("GET", ["subscriptions"]) => none(subscriptions::LIST),
        ("POST", ["subscriptions"]) => none(subscriptions::CREATE),
        ("GET", ["subscriptions", id]) => one(subscriptions::GET, id),
        ("POST", ["subscriptions", id]) => one(subscriptions::UPDATE, id),
        ("DELETE", ["subscriptions", id]) => one(subscriptions::CANCEL, id),
        ("GET", ["invoices"]) => none(invoices::LIST),
        ("POST", ["invoices", "create_preview"]) => none(invoices::CREATE_PREVIEW),
        ("GET", ["invoices", id]) => one(invoices::GET, id),
        ("GET", ["prices"]) => none(catalog::LIST_PRICES),
        ("GET", ["prices", id]) => one(catalog::GET_PRICE, id),
        ("GET", ["products"]) => none(catalog::LIST_PRODUCTS),
        ("GET", ["products", id]) => one(catalog::GET_PRODUCT, id),
        ("POST", ["billing_portal", "sessions"]) => none(portal::CREATE_SESSION),
        ("GET", ["billing_portal", "configurations"]) => none(portal::LIST_CONFIGURATIONS),
        ("POST", ["billing_portal", "configurations"]) => none(portal::CREATE_CONFIGURATION),
        ("GET", ["billing_portal", "configurations", id]) => one(portal::GET_CONFIGURATION, id),
        ("POST", ["billing_portal", "configurations", id]) => one(portal::UPDATE_CONFIGURATION, id),
        ("POST", ["checkout", "sessions"]) => none(checkout::CREATE),
        ("GET", ["checkout", "sessions", id]) => one(checkout::GET, id),
        ("POST", ["checkout", "sessions", id, "expire"]) => one(checkout::EXPIRE, id),
        ("GET", ["payment_intents"]) => none(payments::LIST_PAYMENT_INTENTS),
        ("GET", ["payment_intents", id]) => one(payments::GET_PAYMENT_INTENT, id),
        ("GET", ["charges"]) => none(payments::LIST_CHARGES),
        ("GET", ["charges", id]) => one(payments::GET_CHARGE, id),
        ("GET", ["refunds"]) => none(payments::LIST_REFUNDS),
        ("POST", ["refunds"]) => none(payments::CREATE_REFUND),
        ("GET", ["refunds", id]) => one(payments::GET_REFUND, id),
        ("POST", ["coupons"]) => none(coupons::CREATE),
        ("GET", ["coupons", id]) => one(coupons::GET, id),
        ("GET", ["events"]) => none(events::LIST),
        ("GET", ["events", id]) => one(events::GET, id),
        _ => None,
    }
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("request-id", v);
    }
    r
}

pub(crate) fn error_response(e: &ApiError, request_id: &str) -> Response {
    let body = serde_json::to_vec_pretty(&e.body(request_id)).unwrap_or_default();
    json_response(e.status, body, request_id)
}

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

const NO_KEY: &str = "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.";

/// The API key from `Authorization: Bearer sk_...` or Basic auth with the key as username.
fn api_key(headers: &HeaderMap, expected: Option<&str>) -> Result<String, ApiError> {
    let unauthorized =
        |m: String| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", m);
    let raw = header_str(headers, "authorization").ok_or_else(|| unauthorized(NO_KEY.into()))?;
    let key = if let Some(k) = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
    {
        k.trim().to_string()
    } else if let Some(b) = raw
        .strip_prefix("Basic ")
        .or_else(|| raw.strip_prefix("basic "))
    {
        let decoded = base64_decode(b.trim())
            .ok_or_else(|| unauthorized("Invalid Basic authorization header.".into()))?;
        decoded.split(':').next().unwrap_or_default().to_string()
    } else {
        return Err(unauthorized(NO_KEY.into()));
    };
    if key.is_empty() {
        return Err(unauthorized(NO_KEY.into()));
    }
    let well_formed = key.starts_with("sk_test_") || key.starts_with("rk_test_");
    if !well_formed || expected.is_some_and(|e| e != key) {
        let tail: String = key
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let head: String = key.chars().take(8).collect();
        return Err(unauthorized(format!(
            "Invalid API Key provided: {head}{}{tail}",
            "*".repeat(key.len().saturating_sub(12))
        )));
    }
    Ok(key)
}

fn base64_decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Query-string and body parameters merged (the body wins), as one tree.
fn request_params(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let mut params =
        crate::form::parse(uri.query().unwrap_or("")).map_err(|e| ApiError::invalid(e.0))?;
    if !body.is_empty() {
        let ct = header_str(headers, "content-type").unwrap_or("application/x-www-form-urlencoded");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(ApiError::invalid(format!(
                "Invalid request: unsupported Content-Type {ct}. If error persists and you need assistance, please contact support@stripe.com."
            )));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::invalid("Request body is not valid UTF-8"))?;
        let b = crate::form::parse(text).map_err(|e| ApiError::invalid(e.0))?;
        if let (Some(q), Value::Object(b)) = (params.as_object_mut(), b) {
            q.extend(b);
        }
    }
    Ok(params)
}

/// Runs one handler under the state lock. Mutations are all-or-nothing: on error the
/// state is restored, as a Stripe request either happens or does not. A panic in a
/// handler is caught and becomes a 500 instead of poisoning the lock.
pub(crate) fn execute(
    shared: &Shared,
    ctx: &Ctx,
    handler: Handler,
    params: &Value,
    ids: &[String],
    mutating: bool,
) -> ApiResult<Value> {
    let mut st = lock(&shared.state)?;
    let snapshot = mutating.then(|| st.clone());
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> ApiResult<Value> {
        let p = Params::root(params);
        let mut value = handler(&mut st, ctx, &p, &ids)?;
        crate::expand::apply(&st, &mut value, &p.expand()?)?;
        Ok(value)
    }))
    .unwrap_or_else(|_| {
        Err(ApiError::internal(
            "An unexpected error occurred in the emulator.",
        ))
    });
    match (&outcome, snapshot) {
        (Err(_), Some(before)) => *st = before,
        (Ok(_), Some(_)) => {
            persist(shared, &st);
            drop(st);
            shared.delivery.wake();
        }
        _ => {}
    }
    outcome
}

/// Writes the state file (if configured) after a mutation: temp file + rename, so a crash
/// never leaves half a file.
pub(crate) fn persist(shared: &Shared, st: &State) {
    let Some(path) = &shared.state_file else {
        return;
    };
    let result = serde_json::to_vec(st)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not save emulator state");
    }
}

async fn v1(
    AxState(shared): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_id("req_");
    let path = uri.path().to_string();
    let idem_key = header_str(&headers, "idempotency-key").map(str::to_string);
    let stripe_version = header_str(&headers, "stripe-version").map(str::to_string);
    let (mut response, replayed) = handle_v1(
        &shared,
        &method,
        &uri,
        &headers,
        &body,
        &request_id,
        idem_key.as_deref(),
    )
    .await;
    let unauthorized = response.status() == StatusCode::UNAUTHORIZED;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(stripe_version.as_deref().unwrap_or(&shared.api_version)) {
        h.insert("stripe-version", v);
    }
    if let Some(k) = idem_key
        .as_deref()
        .and_then(|k| HeaderValue::from_str(k).ok())
    {
        h.insert("idempotency-key", k);
    }
    if unauthorized {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Stripe\""),
        );
    }
    tracing::debug!(%method, %path, status = response.status().as_u16(), %request_id, "request");
    if path.starts_with("/v1/") {
        lock_anyway(&shared.log).push(LoggedRequest {
            method: method.to_string(),
            path,
            idempotency_key: idem_key,
            status: response.status().as_u16(),
            request_id,
            stripe_version,
            idempotent_replayed: replayed,
        });
    }
    response
}

/// Releases an idempotency key if the request is abandoned (client gone) mid-flight.
struct InFlight<'a> {
    shared: &'a Shared,
    api_key: String,
    key: String,
    armed: bool,
}

impl InFlight<'_> {
    fn finish(mut self, response: Option<StoredResponse>) {
        self.armed = false;
        let now = lock(&self.shared.state)
            .map(|s| s.now())
            .unwrap_or_default();
        lock_anyway(&self.shared.idempotency).finish(&self.api_key, &self.key, response, now);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            lock_anyway(&self.shared.idempotency).finish(&self.api_key, &self.key, None, 0);
        }
    }
}

async fn handle_v1(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    request_id: &str,
    idem_key: Option<&str>,
) -> (Response, bool) {
    let fail = |e: ApiError| (error_response(&e, request_id), false);
    let path = uri.path();
    let unrecognized = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."),
        )
    };
    if !path.starts_with("/v1/") {
        return fail(unrecognized());
    }
    let key = match api_key(headers, shared.api_key.as_deref()) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let segs: Vec<&str> = path
        .trim_start_matches("/v1/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    // Injected faults answer before anything runs, so state is untouched.
    if let Some(fault) = shared.faults.take(method.as_str(), path) {
        if let Some(e) = crate::faults::apply(&fault).await {
            return fail(e);
        }
    }
    let Some((handler, ids)) = route(method, &segs) else {
        return fail(unrecognized());
    };
    let params = match request_params(uri, headers, body) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let is_post = method == Method::POST;
    let mutating = is_post || method == Method::DELETE;

    // Idempotency: GET and DELETE ignore the header, as on Stripe.
    let mut in_flight = None;
    if let (true, Some(k)) = (is_post, idem_key) {
        if k.len() > 255 {
            return fail(ApiError::invalid_param(
                "Idempotency-Key",
                "Idempotency keys must be at most 255 characters long.",
            ));
        }
        let now = lock(&shared.state).map(|s| s.now()).unwrap_or_default();
        let begin =
            lock_anyway(&shared.idempotency).begin(&key, k, method.as_str(), path, &params, now);
        match begin {
            Begin::Proceed => {
                in_flight = Some(InFlight {
                    shared,
                    api_key: key.clone(),
                    key: k.to_string(),
                    armed: true,
                })
            }
            Begin::Replay(stored) => {
                let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
                let mut r = json_response(status, stored.body, request_id);
                r.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                if let Ok(v) = HeaderValue::from_str(&stored.request_id) {
                    r.headers_mut().insert("original-request", v);
                }
                return (r, true);
            }
            Begin::Mismatch(message) => {
                return fail(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    message,
                ));
            }
            Begin::InUse => {
                return fail(ApiError::new(
                    StatusCode::CONFLICT,
                    "invalid_request_error",
                    format!("There is currently another in-progress request using this Stripe-Idempotency-Key (that probably means you submitted twice, and the other request is still going through): {k}. Please try again later."),
                )
                .code("idempotency_key_in_use"));
            }
        }
    }

    // Test hooks: hold or slow this endpoint while the request counts as executing.
    let hook_key = format!("{method} {path}");
    let (latency, hold) = {
        let hooks = lock_anyway(&shared.hooks);
        (
            hooks.latency.get(&hook_key).copied(),
            hooks.holds.get(&hook_key).cloned(),
        )
    };
    let mut held_answer = None;
    if let Some(h) = hold {
        let mut nth = 0;
        h.arrived.send_modify(|n| {
            *n += 1;
            nth = *n;
        });
        if !h.first_answer_only {
            let _ = h.open.subscribe().wait_for(|o| *o).await;
        } else if nth == 1 {
            held_answer = Some(h);
        }
    }
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }

    let ctx = Ctx {
        request_id: Some(request_id.to_string()),
        idempotency_key: idem_key.filter(|_| is_post).map(str::to_string),
        base_url: shared.base_url.clone(),
    };
    let result = execute(shared, &ctx, handler, &params, &ids, mutating);
    let (status, body, store) = match &result {
        Ok(v) => (
            StatusCode::OK,
            serde_json::to_vec_pretty(v).unwrap_or_default(),
            true,
        ),
        Err(e) => (
            e.status,
            serde_json::to_vec_pretty(&e.body(request_id)).unwrap_or_default(),
            !e.is_validation_failure(),
        ),
    };
    if let Some(f) = in_flight {
        let stored = store.then(|| StoredResponse {
            status: status.as_u16(),
            body: body.clone(),
            request_id: request_id.to_string(),
        });
        f.finish(stored);
    }
    if let Some(h) = held_answer {
        let _ = h.open.subscribe().wait_for(|o| *o).await;
    }
    (json_response(status, body, request_id), false)
}

/// Parameters of a helper endpoint: JSON or form body.
pub(crate) fn helper_params(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    if header_str(headers, "content-type").is_some_and(|c| c.starts_with("application/json")) {
        return serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("Invalid JSON body: {e}")));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid("Request body is not valid UTF-8"))?;
    crate::form::parse(text).map_err(|e| ApiError::invalid(e.0))
}

async fn emulator_customers(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_id("req_");
    let result = helper_params(&headers, &body)
        .and_then(|p| crate::testkit::create_customer_from_params(&shared, &p));
    match result {
        Ok(v) => json_response(
            StatusCode::OK,
            serde_json::to_vec_pretty(&v).unwrap_or_default(),
            &request_id,
        ),
        Err(e) => error_response(&e, &request_id),
    }
}

async fn emulator_requests(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let log = lock_anyway(&shared.log).clone();
    let body =
        serde_json::to_vec_pretty(&json!({"object": "list", "data": log})).unwrap_or_default();
    json_response(StatusCode::OK, body, &new_id("req_"))
}

async fn emulator_events(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let request_id = new_id("req_");
    match lock(&shared.state) {
        Ok(st) => {
            let data: Vec<Value> = st
                .events_in_order()
                .into_iter()
                .map(|e| json!({"sequence": e.sequence, "event": e.event}))
                .collect();
            json_response(
                StatusCode::OK,
                serde_json::to_vec_pretty(&json!({"object": "list", "data": data}))
                    .unwrap_or_default(),
                &request_id,
            )
        }
        Err(e) => error_response(&e, &request_id),
    }
}

async fn emulator_reset(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let request_id = new_id("req_");
    match crate::testkit::reset(&shared) {
        Ok(()) => json_response(StatusCode::OK, b"{\"reset\": true}".to_vec(), &request_id),
        Err(e) => error_response(&e, &request_id),
    }
}
