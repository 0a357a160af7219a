//! HTTP layer: the axum router and the `/v1` pipeline every Stripe endpoint runs through
//! (auth, faults, parameters, idempotency, test hooks, request log, persistence).

use crate::error::{EmulatorError, EmulatorResult};
use crate::idempotency::{Begin, IdempotencyStore, StoredResponse};
use crate::ids::new_id;
use crate::params::Params;
use crate::resources::Handler;
use crate::state::{Ctx, State};
use axum::body::{Body, Bytes};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{on, MethodFilter};
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
pub(crate) fn lock<T>(m: &Mutex<T>) -> EmulatorResult<MutexGuard<'_, T>> {
    m.lock().map_err(|_| {
        EmulatorError::internal("An unexpected error occurred (emulator state lock poisoned).")
    })
}

/// For bookkeeping (log, hooks) a poisoned lock still holds usable data.
pub(crate) fn lock_anyway<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The one router: `/v1` grouped by resource, the `/_emulator` control API, the hosted
/// portal and checkout pages. Whatever matches no route (or not with this method) gets
/// Stripe's 404 `Unrecognized request URL`, after the API key check and injected faults
/// when it is under `/v1`, as Stripe answers.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(crate::resources::routes())
        .merge(crate::control::routes())
        .merge(crate::portal_pages::routes())
        .merge(crate::checkout_pages::routes())
        .fallback(unrouted)
        // Applies to the routes above, so it comes after every merge.
        .method_not_allowed_fallback(unrouted)
        .with_state(shared)
}

/// One resource's `/v1` endpoints; each runs its [`Handler`] through the `/v1` pipeline
/// with the path parameters as its ids, in path order.
#[derive(Default)]
pub(crate) struct V1Routes(Router<Arc<Shared>>);

impl V1Routes {
    pub fn get(self, path: &str, handler: Handler) -> Self {
        let routes = self.on(MethodFilter::GET, path, handler);
        // axum would answer HEAD with the GET handler; no Stripe endpoint takes HEAD.
        Self(routes.0.route(path, on(MethodFilter::HEAD, unrouted)))
    }

    pub fn post(self, path: &str, handler: Handler) -> Self {
        self.on(MethodFilter::POST, path, handler)
    }

    pub fn delete(self, path: &str, handler: Handler) -> Self {
        self.on(MethodFilter::DELETE, path, handler)
    }

    fn on(self, filter: MethodFilter, path: &str, handler: Handler) -> Self {
        let run = move |AxState(shared): AxState<Arc<Shared>>,
                        ids: Result<RawPathParams, RawPathParamsRejection>,
                        method: Method,
                        uri: Uri,
                        headers: HeaderMap,
                        body: Bytes| async move {
            // A parameter that does not decode to UTF-8 names nothing: the URL is unknown.
            let endpoint = ids
                .ok()
                .map(|ids| (handler, ids.iter().map(|(_, v)| v.to_string()).collect()));
            v1(&shared, endpoint, &method, &uri, &headers, &body).await
        };
        Self(self.0.route(path, on(filter, run)))
    }

    pub fn into_router(self) -> Router<Arc<Shared>> {
        self.0
    }
}

async fn unrouted(
    AxState(shared): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    v1(&shared, None, &method, &uri, &headers, &body).await
}

/// Runs `f` under the state lock, all or nothing like a `/v1` mutation: on error (or a
/// panic, which becomes a 500) the state is restored; on success it is persisted and the
/// new events go to webhook delivery.
pub(crate) fn mutate<T>(
    shared: &Shared,
    f: impl FnOnce(&mut State) -> EmulatorResult<T>,
) -> EmulatorResult<T> {
    under_lock(shared, true, f)
}

/// Runs `f` under the state lock; when `mutating`, all or nothing (see [`mutate`]). A
/// panic is caught and becomes a 500 instead of poisoning the lock.
fn under_lock<T>(
    shared: &Shared,
    mutating: bool,
    f: impl FnOnce(&mut State) -> EmulatorResult<T>,
) -> EmulatorResult<T> {
    let mut st = lock(&shared.state)?;
    let snapshot = mutating.then(|| st.clone());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut st)))
        .unwrap_or_else(|_| {
            Err(EmulatorError::internal(
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

pub(crate) fn error_response(e: &EmulatorError, request_id: &str) -> Response {
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
fn api_key(headers: &HeaderMap, expected: Option<&str>) -> Result<String, EmulatorError> {
    let unauthorized =
        |m: String| EmulatorError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", m);
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
fn request_params(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> EmulatorResult<Value> {
    let mut params =
        crate::form::parse(uri.query().unwrap_or("")).map_err(|e| EmulatorError::invalid(e.0))?;
    if !body.is_empty() {
        let ct = header_str(headers, "content-type").unwrap_or("application/x-www-form-urlencoded");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(EmulatorError::invalid(format!(
                "Invalid request: unsupported Content-Type {ct}. If error persists and you need assistance, please contact support@stripe.com."
            )));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| EmulatorError::invalid("Request body is not valid UTF-8"))?;
        let b = crate::form::parse(text).map_err(|e| EmulatorError::invalid(e.0))?;
        if let (Some(q), Value::Object(b)) = (params.as_object_mut(), b) {
            q.extend(b);
        }
    }
    Ok(params)
}

/// Runs one endpoint; POST and DELETE are all or nothing, as a Stripe request either
/// happens or does not.
fn execute(
    shared: &Shared,
    ctx: &Ctx,
    handler: Handler,
    params: &Value,
    ids: &[String],
    mutating: bool,
) -> EmulatorResult<Value> {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    under_lock(shared, mutating, |st| {
        let p = Params::root(params);
        let mut value = handler(st, ctx, &p, &ids)?;
        crate::expand::apply(st, &mut value, &p.expand()?)?;
        Ok(value)
    })
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

/// The `/v1` pipeline around one endpoint (`None`: no route matched): response headers
/// and the request log.
async fn v1(
    shared: &Shared,
    endpoint: Option<(Handler, Vec<String>)>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let request_id = new_id("req_");
    let path = uri.path().to_string();
    let idem_key = header_str(headers, "idempotency-key").map(str::to_string);
    let stripe_version = header_str(headers, "stripe-version").map(str::to_string);
    let (mut response, replayed) = handle_v1(
        shared,
        endpoint,
        method,
        uri,
        headers,
        body,
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

#[allow(clippy::too_many_arguments)]
async fn handle_v1(
    shared: &Shared,
    endpoint: Option<(Handler, Vec<String>)>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    request_id: &str,
    idem_key: Option<&str>,
) -> (Response, bool) {
    let fail = |e: EmulatorError| (error_response(&e, request_id), false);
    let path = uri.path();
    let unrecognized = || {
        EmulatorError::new(
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
    // Injected faults answer before anything runs, so state is untouched.
    if let Some(fault) = shared.faults.take(method.as_str(), path) {
        if let Some(e) = crate::faults::apply(&fault).await {
            return fail(e);
        }
    }
    let Some((handler, ids)) = endpoint else {
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
            return fail(EmulatorError::invalid_param(
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
                return fail(EmulatorError::new(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    message,
                ));
            }
            Begin::InUse => {
                return fail(EmulatorError::new(
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
pub(crate) fn helper_params(headers: &HeaderMap, body: &Bytes) -> EmulatorResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    if header_str(headers, "content-type").is_some_and(|c| c.starts_with("application/json")) {
        return serde_json::from_slice(body)
            .map_err(|e| EmulatorError::invalid(format!("Invalid JSON body: {e}")));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| EmulatorError::invalid("Request body is not valid UTF-8"))?;
    crate::form::parse(text).map_err(|e| EmulatorError::invalid(e.0))
}
