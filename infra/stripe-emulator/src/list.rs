//! List envelopes and cursor pagination (`limit`, `starting_after`, `ending_before`).

use crate::error::{EmulatorError, EmulatorResult};
use crate::params::Params;
use serde_json::{json, Value};

/// Pages `items` (already filtered, newest first) the way Stripe's list endpoints do.
pub fn paginate(items: Vec<Value>, p: &Params, url: &str, noun: &str) -> EmulatorResult<Value> {
    let limit = limit(p)?;
    let after = p.text("starting_after")?;
    let before = p.text("ending_before")?;
    if after.is_some() && before.is_some() {
        return Err(EmulatorError::invalid(
            "You may only specify one of these parameters: ending_before, starting_after.",
        )
        .code("parameters_exclusive")
        .param("ending_before"));
    }
    let position = |id: &str, param: &str| {
        items
            .iter()
            .position(|v| v["id"] == id)
            .ok_or_else(|| EmulatorError::no_such(noun, id, param))
    };
    let (page, has_more) = if let Some(id) = after {
        let start = position(id, "starting_after")? + 1;
        let rest = &items[start..];
        (
            rest.iter().take(limit).cloned().collect::<Vec<_>>(),
            rest.len() > limit,
        )
    } else if let Some(id) = before {
        // The `limit` items just newer than the cursor, still newest first.
        let end = position(id, "ending_before")?;
        let from = end.saturating_sub(limit);
        (items[from..end].to_vec(), from > 0)
    } else {
        (
            items.iter().take(limit).cloned().collect(),
            items.len() > limit,
        )
    };
    Ok(json!({"object": "list", "data": page, "has_more": has_more, "url": url}))
}

pub fn limit(p: &Params) -> EmulatorResult<usize> {
    match p.integer("limit")? {
        None => Ok(10),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(n) if n < 1 => Err(EmulatorError::invalid_param(
            "limit",
            format!("Invalid limit: must be at least 1 (received {n})"),
        )),
        Some(n) => Err(EmulatorError::invalid_param(
            "limit",
            format!("Invalid limit: must be at most 100 (received {n})"),
        )),
    }
}

/// The `created` filter of a list endpoint: an exact time, or any of `gt`, `gte`, `lt`, `lte`
/// (epoch seconds), as Stripe takes it. Returns the bounds `[from, until]` inclusive.
pub fn created_range(p: &Params) -> EmulatorResult<(i64, i64)> {
    let (mut from, mut until) = (i64::MIN, i64::MAX);
    let range = match p.raw("created") {
        Some(Value::Object(_)) => p.sub("created")?,
        _ => None,
    };
    if let Some(range) = range {
        range.allow(&["gt", "gte", "lt", "lte"])?;
        if let Some(t) = range.integer("gt")? {
            from = from.max(t.saturating_add(1));
        }
        if let Some(t) = range.integer("gte")? {
            from = from.max(t);
        }
        if let Some(t) = range.integer("lt")? {
            until = until.min(t.saturating_sub(1));
        }
        if let Some(t) = range.integer("lte")? {
            until = until.min(t);
        }
    } else if let Some(t) = p.integer("created")? {
        (from, until) = (t, t);
    }
    Ok((from, until))
}

/// Whether `item`'s `created` lies in `range`.
pub fn created_in(item: &Value, (from, until): (i64, i64)) -> bool {
    item["created"]
        .as_i64()
        .is_some_and(|t| from <= t && t <= until)
}
