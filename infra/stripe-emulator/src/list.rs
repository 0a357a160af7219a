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
