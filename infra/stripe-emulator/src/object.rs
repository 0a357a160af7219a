//! Typed reads of stored Stripe objects, which the emulator keeps as JSON. Every object it
//! stores has every field of its type (nullable ones as `null`), so a field that is absent
//! or of another type is an emulator bug, never a value: it fails as a 500 naming the
//! object and the field rather than reading as `""` or `0`.

use crate::error::{EmulatorError, EmulatorResult};
use serde_json::Value;

pub trait Fields {
    /// A field that must be present (any type, `null` included).
    fn field(&self, name: &str) -> EmulatorResult<&Value>;
    fn str_field(&self, name: &str) -> EmulatorResult<&str>;
    /// A nullable string field: present, and a string or `null`.
    fn opt_str_field(&self, name: &str) -> EmulatorResult<Option<&str>>;
    fn i64_field(&self, name: &str) -> EmulatorResult<i64>;
    /// A nullable integer field: present, and an integer or `null`.
    fn opt_i64_field(&self, name: &str) -> EmulatorResult<Option<i64>>;
    fn array_field(&self, name: &str) -> EmulatorResult<&Vec<Value>>;

    fn id(&self) -> EmulatorResult<&str> {
        self.str_field("id")
    }
}

impl Fields for Value {
    fn field(&self, name: &str) -> EmulatorResult<&Value> {
        self.get(name).ok_or_else(|| bad_field(self, name, ""))
    }

    fn str_field(&self, name: &str) -> EmulatorResult<&str> {
        self.field(name)?
            .as_str()
            .ok_or_else(|| bad_field(self, name, "string "))
    }

    fn opt_str_field(&self, name: &str) -> EmulatorResult<Option<&str>> {
        match self.field(name)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            _ => Err(bad_field(self, name, "nullable string ")),
        }
    }

    fn i64_field(&self, name: &str) -> EmulatorResult<i64> {
        self.field(name)?
            .as_i64()
            .ok_or_else(|| bad_field(self, name, "integer "))
    }

    fn opt_i64_field(&self, name: &str) -> EmulatorResult<Option<i64>> {
        match self.field(name)? {
            Value::Null => Ok(None),
            v => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad_field(self, name, "nullable integer ")),
        }
    }

    fn array_field(&self, name: &str) -> EmulatorResult<&Vec<Value>> {
        self.field(name)?
            .as_array()
            .ok_or_else(|| bad_field(self, name, "array "))
    }
}

/// `... subscription sub_1 has no string field `stauts`.` (ids are test-mode object ids,
/// never secrets). `kind` is the expected type, with its trailing space, or empty.
fn bad_field(object: &Value, name: &str, kind: &str) -> EmulatorError {
    let what = [object.get("object"), object.get("id")]
        .into_iter()
        .filter_map(|v| v.and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let what = if what.is_empty() { "a hash" } else { &what };
    EmulatorError::internal(format!(
        "An unexpected error occurred in the emulator: {what} has no {kind}field `{name}`."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    fn sub() -> Value {
        json!({"object": "subscription", "id": "sub_1", "status": "active",
               "cancel_at": null, "created": 7, "items": {"object": "list", "data": []}})
    }

    #[test]
    fn a_misspelt_field_fails_naming_object_and_field() {
        let e = sub().str_field("stauts").unwrap_err();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.kind, "api_error");
        assert!(
            e.message
                .ends_with("subscription sub_1 has no field `stauts`."),
            "{}",
            e.message
        );
        assert!(sub().opt_str_field("cancel_a").is_err());
        assert!(sub().i64_field("create").is_err());
        assert!(sub().opt_i64_field("cancel_a").is_err());
        assert!(sub().field("itmes").is_err());
    }

    #[test]
    fn a_field_of_another_type_fails() {
        let e = sub().str_field("created").unwrap_err();
        assert!(
            e.message.ends_with("has no string field `created`."),
            "{}",
            e.message
        );
        assert!(sub().i64_field("status").is_err());
        assert!(sub().opt_str_field("items").is_err());
        assert!(sub().array_field("items").is_err());
    }

    #[test]
    fn present_fields_read_typed() {
        let s = sub();
        assert_eq!(s.id().unwrap(), "sub_1");
        assert_eq!(s.str_field("status").unwrap(), "active");
        assert_eq!(s.opt_str_field("cancel_at").unwrap(), None);
        assert_eq!(s.i64_field("created").unwrap(), 7);
        assert_eq!(s.opt_i64_field("cancel_at").unwrap(), None);
        assert_eq!(s.opt_i64_field("created").unwrap(), Some(7));
        assert!(s
            .field("items")
            .unwrap()
            .array_field("data")
            .unwrap()
            .is_empty());
    }
}
