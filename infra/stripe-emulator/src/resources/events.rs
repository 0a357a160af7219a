//! Events: list (type filter incl. `customer.*` wildcards, `created` ranges) and retrieve, both
//! within the last 30 days only, as on Stripe.

use super::{arg, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::list::{created_in, created_range, paginate};
use crate::params::Params;
use crate::server::V1Routes;
use crate::state::{Ctx, State};
use serde_json::Value;

/// Stripe lists and retrieves events of the last 30 days.
const WINDOW_SECONDS: i64 = 30 * 86_400;

fn in_window(st: &State, event: &Value) -> bool {
    event["created"]
        .as_i64()
        .is_some_and(|t| t > st.now() - WINDOW_SECONDS)
}

fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

pub const LIST: Handler = list;
fn list(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "type",
        "types",
        "created",
        "delivery_success",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let kind = p.text("type")?;
    let types = p.strings("types")?;
    if kind.is_some() && types.is_some() {
        return Err(EmulatorError::invalid(
            "You may only specify one of these parameters: type, types.",
        )
        .code("parameters_exclusive")
        .param("types"));
    }
    let created = created_range(p)?;
    let items = st
        .events
        .newest_first()
        .filter(|e| in_window(st, e) && created_in(e, created))
        .filter(|e| {
            let t = e["type"].as_str().unwrap_or_default();
            kind.is_none_or(|k| type_matches(k, t))
                && types
                    .as_ref()
                    .is_none_or(|ts| ts.iter().any(|k| type_matches(k, t)))
        })
        .cloned()
        .collect();
    paginate(items, p, "/v1/events", "event")
}

pub const GET: Handler = get;
fn get(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    st.events
        .get(id)
        .filter(|e| in_window(st, e))
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("event", id, "id"))
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .get("/v1/events", LIST)
        .get("/v1/events/{event}", GET)
}
