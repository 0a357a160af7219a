//! Control endpoints under `/_emulator/` (no key; the emulator binds 127.0.0.1 only):
//! shortcuts (a ready customer, reset), the request and event logs, webhook deliveries,
//! endpoints, pause/resume, fault injection, the clock.

use crate::delivery::{self, WebhookEndpoint};
use crate::error::{EmulatorError, EmulatorResult};
use crate::faults::{self, Fault};
use crate::pages::{json, json_error};
use crate::server::{helper_params, lock, lock_anyway, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json as j, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/customers", post(create_customer))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/events", get(events))
        .route("/_emulator/deliveries", get(deliveries))
        .route("/_emulator/events/{id}/redeliver", post(redeliver))
        .route("/_emulator/events/{id}/deliver", post(deliver_times))
        .route("/_emulator/deliver", post(deliver_sequence))
        .route("/_emulator/delivery", get(delivery_status))
        .route("/_emulator/delivery/pause", post(pause))
        .route("/_emulator/delivery/resume", post(resume))
        .route(
            "/_emulator/webhook_endpoints",
            get(list_endpoints).post(add_endpoint),
        )
        .route(
            "/_emulator/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_emulator/clock", get(clock))
        .route("/_emulator/clock/advance", post(advance))
}

fn answer(r: EmulatorResult<Value>) -> Response {
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => json_error(&e),
    }
}

fn body_as<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &Bytes) -> EmulatorResult<T> {
    let v = helper_params(headers, body)?;
    serde_json::from_value(v).map_err(|e| EmulatorError::invalid(format!("Invalid body: {e}")))
}

fn list(data: impl serde::Serialize) -> Value {
    j!({"object": "list", "data": data})
}

async fn create_customer(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(
        helper_params(&headers, &body)
            .and_then(|p| crate::shortcuts::create_customer_from_params(&shared, &p)),
    )
}

async fn reset(AxState(shared): AxState<Arc<Shared>>) -> Response {
    answer(crate::shortcuts::reset(&shared).map(|()| j!({"reset": true})))
}

async fn requests(AxState(shared): AxState<Arc<Shared>>) -> Response {
    json(StatusCode::OK, &list(lock_anyway(&shared.log).clone()))
}

async fn events(AxState(shared): AxState<Arc<Shared>>) -> Response {
    answer(lock(&shared.state).map(|st| {
        let data: Vec<Value> = st
            .events_in_order()
            .into_iter()
            .map(|e| j!({"sequence": e.sequence, "event": e.event}))
            .collect();
        list(data)
    }))
}

async fn deliveries(
    AxState(shared): AxState<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let event = q.get("event").map(String::as_str);
    json(StatusCode::OK, &list(shared.delivery.deliveries(event)))
}

async fn redeliver(
    AxState(shared): AxState<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let endpoint = q.get("endpoint").map(String::as_str);
    answer(delivery::redeliver(&shared, &id, endpoint).await.map(list))
}

async fn deliver_times(
    AxState(shared): AxState<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let times = match q.get("times").map(|t| t.parse::<u32>()) {
        None => 1,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return json_error(&EmulatorError::invalid_param(
                "times",
                "times must be an integer from 1 to 100",
            ))
        }
    };
    let endpoint = q.get("endpoint").map(String::as_str);
    answer(
        delivery::deliver_times(&shared, &id, times, endpoint, "duplicate")
            .await
            .map(list),
    )
}

#[derive(Deserialize)]
struct Sequence {
    events: Vec<String>,
}

async fn deliver_sequence(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seq: Sequence = match body_as(&headers, &body) {
        Ok(s) => s,
        Err(e) => return json_error(&e),
    };
    answer(
        delivery::deliver_sequence(&shared, &seq.events)
            .await
            .map(list),
    )
}

fn status(shared: &Shared) -> EmulatorResult<Value> {
    let count = lock(&shared.state)?.events.len();
    Ok(j!({
        "paused": shared.delivery.is_paused(),
        "pending": shared.delivery.pending(count),
        "endpoints": shared.delivery.endpoints(),
    }))
}

async fn delivery_status(AxState(shared): AxState<Arc<Shared>>) -> Response {
    answer(status(&shared))
}

async fn pause(AxState(shared): AxState<Arc<Shared>>) -> Response {
    shared.delivery.pause();
    answer(status(&shared))
}

struct Resume {
    drop: bool,
}

async fn resume(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Form bodies carry strings: accept `drop=true` too.
    let r: EmulatorResult<Resume> = helper_params(&headers, &body).map(|v| Resume {
        drop: match &v["drop"] {
            Value::Bool(b) => *b,
            Value::String(s) => s == "true",
            _ => false,
        },
    });
    let r = match r {
        Ok(r) => r,
        Err(e) => return json_error(&e),
    };
    let count = match lock(&shared.state) {
        Ok(st) => st.events.len(),
        Err(e) => return json_error(&e),
    };
    shared.delivery.resume(r.drop, count);
    answer(status(&shared))
}

async fn list_endpoints(AxState(shared): AxState<Arc<Shared>>) -> Response {
    json(StatusCode::OK, &list(shared.delivery.endpoints()))
}

#[derive(Deserialize)]
struct NewEndpoint {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    enabled_events: Vec<String>,
}

async fn add_endpoint(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n: NewEndpoint = match body_as(&headers, &body) {
        Ok(n) => n,
        Err(e) => return json_error(&e),
    };
    if !n.url.starts_with("http://") && !n.url.starts_with("https://") {
        return json_error(&EmulatorError::invalid_param("url", "url must be http(s)"));
    }
    let endpoint = WebhookEndpoint {
        url: n.url,
        secret: n
            .secret
            .unwrap_or_else(|| format!("whsec_{}", crate::ids::random_alnum(32))),
        enabled_events: n.enabled_events,
    };
    shared.delivery.add_endpoint(endpoint.clone());
    json(StatusCode::OK, &j!(endpoint))
}

async fn list_faults(AxState(shared): AxState<Arc<Shared>>) -> Response {
    json(StatusCode::OK, &list(shared.faults.list()))
}

async fn add_fault(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f: Fault = match body_as(&headers, &body) {
        Ok(f) => f,
        Err(e) => return json_error(&e),
    };
    if let Err(e) = faults::validate(&f) {
        return json_error(&e);
    }
    shared.faults.add(f.clone());
    json(StatusCode::OK, &j!(f))
}

async fn clear_faults(AxState(shared): AxState<Arc<Shared>>) -> Response {
    shared.faults.clear();
    json(StatusCode::OK, &list(Vec::<Fault>::new()))
}

async fn clock(AxState(shared): AxState<Arc<Shared>>) -> Response {
    answer(lock(&shared.state).map(|st| j!({"now": st.now()})))
}

#[derive(Deserialize)]
struct Advance {
    #[serde(default)]
    seconds: Option<i64>,
    #[serde(default)]
    to: Option<i64>,
}

async fn advance(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Form bodies carry strings; JSON numbers too.
    let parsed = helper_params(&headers, &body).and_then(|v| {
        let num = |k: &str| -> EmulatorResult<Option<i64>> {
            match &v[k] {
                Value::Null => Ok(None),
                Value::Number(n) => Ok(n.as_i64()),
                Value::String(s) => s
                    .parse()
                    .map(Some)
                    .map_err(|_| EmulatorError::invalid_param(k, format!("Invalid integer: {s}"))),
                _ => Err(EmulatorError::invalid_param(k, "Invalid integer")),
            }
        };
        Ok(Advance {
            seconds: num("seconds")?,
            to: num("to")?,
        })
    });
    let result = parsed.and_then(|a| match (a.seconds, a.to) {
        (Some(s), None) => crate::clock::advance_by(&shared, s),
        (None, Some(t)) => crate::clock::advance_to(&shared, t),
        _ => Err(EmulatorError::invalid(
            "Send exactly one of `seconds` or `to`.",
        )),
    });
    answer(result)
}
