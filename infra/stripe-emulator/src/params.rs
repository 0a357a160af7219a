//! Typed access to a parsed parameter tree, with Stripe's error for each kind of bad value.

use crate::error::{EmulatorError, EmulatorResult};
use serde_json::{Map, Value};

/// The parameters of one request plus the bracketed name of where they sit (`flow_data[...]`).
#[derive(Clone)]
pub struct Params<'a> {
    pub map: &'a Map<String, Value>,
    prefix: Option<String>,
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl<'a> Params<'a> {
    pub fn root(v: &'a Value) -> Self {
        Self {
            map: v.as_object().unwrap_or(&EMPTY),
            prefix: None,
        }
    }

    /// Full Stripe name of a key here, e.g. `flow_data[after_completion][type]`.
    pub fn name(&self, key: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}[{key}]"),
            None => key.to_string(),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// Rejects any key not in `allowed` (`expand` is always allowed), as Stripe does.
    pub fn allow(&self, allowed: &[&str]) -> EmulatorResult<()> {
        for k in self.map.keys() {
            if k != "expand" && !allowed.contains(&k.as_str()) {
                return Err(EmulatorError::unknown_param(&self.name(k)));
            }
        }
        Ok(())
    }

    /// A nested hash; `None` when absent or empty. A scalar where a hash belongs is an error.
    pub fn sub(&self, key: &str) -> EmulatorResult<Option<Params<'a>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Params {
                map: m,
                prefix: Some(self.name(key)),
            })),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(_) => Err(EmulatorError::invalid_param(
                self.name(key),
                format!("Invalid object: {} must be a hash", self.name(key)),
            )),
        }
    }

    /// A string; `Some("")` is returned as-is so callers can treat it as "unset".
    pub fn string(&self, key: &str) -> EmulatorResult<Option<&'a str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(EmulatorError::invalid_param(
                self.name(key),
                format!("Invalid string: {}", self.name(key)),
            )),
        }
    }

    /// A non-empty string, or `None` when absent or empty.
    pub fn text(&self, key: &str) -> EmulatorResult<Option<&'a str>> {
        Ok(self.string(key)?.filter(|s| !s.is_empty()))
    }

    pub fn require(&self, key: &str) -> EmulatorResult<&'a str> {
        self.text(key)?
            .ok_or_else(|| EmulatorError::missing(&self.name(key)))
    }

    pub fn boolean(&self, key: &str) -> EmulatorResult<Option<bool>> {
        match self.text(key)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(EmulatorError::invalid_param(
                self.name(key),
                format!("Invalid boolean: {other}"),
            )),
        }
    }

    pub fn integer(&self, key: &str) -> EmulatorResult<Option<i64>> {
        match self.text(key)? {
            None => Ok(None),
            Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
                EmulatorError::invalid_param(self.name(key), format!("Invalid integer: {s}"))
                    .code("parameter_invalid_integer")
            }),
        }
    }

    /// One of a fixed set of strings.
    pub fn one_of(&self, key: &str, allowed: &[&str]) -> EmulatorResult<Option<&'a str>> {
        match self.text(key)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s) => Ok(Some(s)),
            Some(_) => Err(EmulatorError::invalid_param(
                self.name(key),
                format!(
                    "Invalid {}: must be one of {}",
                    self.name(key),
                    join_or(allowed)
                ),
            )),
        }
    }

    /// An array of strings (`a[0]=x`); an empty string clears (`a=`).
    pub fn strings(&self, key: &str) -> EmulatorResult<Option<Vec<String>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(Vec::new())),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        EmulatorError::invalid_param(
                            self.name(key),
                            format!("Invalid array: {}", self.name(key)),
                        )
                    })
                })
                .collect::<EmulatorResult<Vec<_>>>()
                .map(Some),
            Some(_) => Err(EmulatorError::invalid_param(
                self.name(key),
                format!("Invalid array: {}", self.name(key)),
            )),
        }
    }

    /// An array of hashes (`items[0][price]=p`).
    pub fn objects(&self, key: &str) -> EmulatorResult<Option<Vec<Params<'a>>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(Vec::new())),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(Params {
                        map: m,
                        prefix: Some(format!("{}[{i}]", self.name(key))),
                    }),
                    _ => Err(EmulatorError::invalid_param(
                        self.name(key),
                        format!("Invalid array: {}", self.name(key)),
                    )),
                })
                .collect::<EmulatorResult<Vec<_>>>()
                .map(Some),
            Some(_) => Err(EmulatorError::invalid_param(
                self.name(key),
                format!("Invalid array: {}", self.name(key)),
            )),
        }
    }

    pub fn expand(&self) -> EmulatorResult<Vec<String>> {
        Ok(self.strings("expand")?.unwrap_or_default())
    }
}

/// Applies a `metadata` parameter to an existing map: `metadata[k]=` deletes `k`,
/// `metadata=` clears everything, other values set keys.
pub fn apply_metadata(target: &mut Value, param: Option<&Value>) -> EmulatorResult<()> {
    let Some(param) = param else { return Ok(()) };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else {
        return Ok(());
    };
    match param {
        Value::String(s) if s.is_empty() => t.clear(),
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) if s.is_empty() => {
                        t.remove(k);
                    }
                    Value::String(s) => {
                        t.insert(k.clone(), Value::String(s.clone()));
                    }
                    _ => {
                        return Err(EmulatorError::invalid_param(
                            format!("metadata[{k}]"),
                            "Invalid metadata value",
                        ))
                    }
                }
            }
        }
        _ => {
            return Err(EmulatorError::invalid_param(
                "metadata",
                "Invalid object: metadata must be a hash",
            ))
        }
    }
    Ok(())
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{}, or {last}", init.join(", ")),
    }
}
