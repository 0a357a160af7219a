//! `expand[]`: replace id strings along a dotted path with the objects they name.

use crate::error::{EmulatorError, EmulatorResult};
use crate::state::State;
use serde_json::Value;

/// Stripe refuses paths deeper than four levels.
const MAX_DEPTH: usize = 4;

pub fn apply(state: &State, value: &mut Value, paths: &[String]) -> EmulatorResult<()> {
    for path in paths {
        let segs: Vec<&str> = path.split('.').collect();
        if segs.len() > MAX_DEPTH || segs.iter().any(|s| s.is_empty()) {
            return Err(EmulatorError::invalid_param(
                "expand",
                format!("You cannot expand more than {MAX_DEPTH} levels of a property. Property: {path}"),
            ));
        }
        walk(state, value, &segs)?;
    }
    Ok(())
}

fn walk(state: &State, value: &mut Value, segs: &[&str]) -> EmulatorResult<()> {
    let Some((seg, rest)) = segs.split_first() else {
        return Ok(());
    };
    let cannot = || {
        EmulatorError::invalid_param(
            "expand",
            format!("This property cannot be expanded ({seg})."),
        )
    };
    let Some(obj) = value.as_object_mut() else {
        return Err(cannot());
    };
    let Some(field) = obj.get_mut(*seg) else {
        return Err(cannot());
    };
    match field {
        Value::Null => Ok(()),
        Value::Array(items) if *seg == "data" => {
            for item in items.iter_mut() {
                walk(state, item, rest)?;
            }
            Ok(())
        }
        // A list of ids (`discounts`): each one expanded, then walked on.
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::String(id) = item {
                    *item = state.lookup(id).cloned().ok_or_else(cannot)?;
                }
                if !rest.is_empty() {
                    let mut wrapped = serde_json::json!({ "x": item.take() });
                    let mut path = vec!["x"];
                    path.extend_from_slice(rest);
                    walk(state, &mut wrapped, &path)?;
                    *item = wrapped["x"].take();
                }
            }
            Ok(())
        }
        Value::String(id) => {
            let Some(found) = state.lookup(id) else {
                return Err(cannot());
            };
            *field = found.clone();
            walk(state, field, rest)
        }
        Value::Object(_) if !rest.is_empty() => walk(state, field, rest),
        // Already an object (embedded like `items.data.price`): nothing to do.
        Value::Object(_) => Ok(()),
        _ => Err(cannot()),
    }
}
