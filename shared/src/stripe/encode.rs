//! Stripe's form encoding, as its SDKs write it: `a[b][c]=v`, indexed arrays `items[0][price]=p`, booleans
//! as `true`/`false`, and the empty string that unsets a value. The same text is used as a POST
//! body and as a GET/DELETE query string.
//!
//! Brackets stay literal (Stripe accepts them raw or encoded); everything outside RFC 3986's
//! unreserved set is percent-encoded as UTF-8, with space as `%20`.

use serde::Serialize;
use serde_json::Value;

/// An ordered list of `(full bracketed key, value)` pairs, ready to encode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one pair; `key` is already in bracket form, e.g. `flow_data[type]`.
    pub fn set(mut self, key: impl Into<String>, value: impl ToParamValue) -> Self {
        self.push(key, value);
        self
    }

    /// Adds the pair only when `value` is present.
    pub fn set_opt<V: ToParamValue>(self, key: impl Into<String>, value: Option<V>) -> Self {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl ToParamValue) {
        self.pairs.push((key.into(), value.to_param_value()));
    }

    /// Adds `key[0]=…&key[1]=…`; an empty list adds nothing.
    pub fn set_list<V: ToParamValue>(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        for (index, value) in values.into_iter().enumerate() {
            self.push(format!("{key}[{index}]"), value);
        }
        self
    }

    /// Flattens a JSON tree: objects nest with `[name]`, arrays index with `[n]`, `null` becomes
    /// the empty (unsetting) value. Empty arrays and objects add nothing, as in Stripe's SDKs.
    pub fn from_json(value: &Value) -> Self {
        let mut params = Self::new();
        params.extend_json("", value);
        params
    }

    /// Flattens any serializable value through [`Params::from_json`].
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self::from_json(&serde_json::to_value(value)?))
    }

    /// Appends `value` under `prefix` (`""` for the top level).
    pub fn extend_json(&mut self, prefix: &str, value: &Value) {
        match value {
            Value::Object(fields) => {
                for (name, field) in fields {
                    self.extend_json(&nest(prefix, name), field);
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.extend_json(&nest(prefix, &index.to_string()), item);
                }
            }
            Value::Null => self.push(prefix, ""),
            Value::Bool(b) => self.push(prefix, *b),
            Value::Number(n) => self.push(prefix, n.to_string()),
            Value::String(s) => self.push(prefix, s.as_str()),
        }
    }

    pub fn append(&mut self, other: Params) {
        self.pairs.extend(other.pairs);
    }

    /// Drops every pair whose key is `key` (used to replace a pagination cursor).
    pub fn remove(&mut self, key: &str) {
        self.pairs.retain(|(k, _)| k != key);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `k=v&k=v`, percent-encoded.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.pairs {
            if !out.is_empty() {
                out.push('&');
            }
            encode_into(&mut out, key, true);
            out.push('=');
            encode_into(&mut out, value, false);
        }
        out
    }
}

fn nest(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}[{name}]")
    }
}

fn encode_into(out: &mut String, text: &str, keep_brackets: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (keep_brackets && matches!(byte, b'[' | b']'));
        if keep {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// A scalar that can be a parameter value.
pub trait ToParamValue {
    fn to_param_value(&self) -> String;
}

impl ToParamValue for &str {
    fn to_param_value(&self) -> String {
        (*self).to_string()
    }
}

impl ToParamValue for String {
    fn to_param_value(&self) -> String {
        self.clone()
    }
}

impl ToParamValue for &String {
    fn to_param_value(&self) -> String {
        (*self).clone()
    }
}

impl ToParamValue for bool {
    fn to_param_value(&self) -> String {
        if *self { "true" } else { "false" }.to_string()
    }
}

macro_rules! integer_param {
    ($($t:ty),*) => {$(
        impl ToParamValue for $t {
            fn to_param_value(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_param!(u8, u16, u32, u64, i32, i64, usize);

/// `line_items[0][price]` → `line_items[][price]`: the shape of a key, without list positions.
pub fn normalize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (index, segment) in key.split('[').enumerate() {
        if index == 0 {
            out.push_str(segment);
            continue;
        }
        out.push('[');
        let inner = segment.strip_suffix(']').unwrap_or(segment);
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(segment);
        } else {
            out.push(']');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_objects_use_brackets() {
        let p = Params::new()
            .set("customer", "cus_1")
            .set("flow_data[type]", "subscription_cancel")
            .set(
                "flow_data[after_completion][redirect][return_url]",
                "https://x.test/r",
            );
        assert_eq!(
            p.encode(),
            "customer=cus_1&flow_data[type]=subscription_cancel&\
             flow_data[after_completion][redirect][return_url]=https%3A%2F%2Fx.test%2Fr"
        );
    }

    #[test]
    fn arrays_are_indexed_including_expand_and_arrays_of_objects() {
        let p = Params::from_json(&json!({
            "expand": ["data.items.data.price", "data.customer"],
            "line_items": [{"price": "price_a", "quantity": 1}, {"price": "price_b", "quantity": 2}],
        }));
        assert_eq!(
            p.encode(),
            "expand[0]=data.items.data.price&expand[1]=data.customer&\
             line_items[0][price]=price_a&line_items[0][quantity]=1&\
             line_items[1][price]=price_b&line_items[1][quantity]=2"
        );
        let listed = Params::new().set_list("expand", ["a", "b"]);
        assert_eq!(listed.encode(), "expand[0]=a&expand[1]=b");
    }

    #[test]
    fn metadata_booleans_integers_and_empty_values() {
        let p = Params::from_json(&json!({
            "cancel_at_period_end": true,
            "active": false,
            "limit": 100,
            "metadata": {"portico_user": "u1", "old": null},
            "default_return_url": "",
            "empty_list": [],
            "empty_map": {},
        }));
        assert_eq!(
            p.encode(),
            "active=false&cancel_at_period_end=true&default_return_url=&limit=100&\
             metadata[old]=&metadata[portico_user]=u1"
        );
        assert_eq!(Params::new().set("metadata", "").encode(), "metadata=");
    }

    #[test]
    fn special_characters_are_percent_encoded() {
        let p = Params::new()
            .set("query", "email:'a+b@x.test' AND name~\"Zoë & co\"")
            .set("metadata[k=v&w]", "1=2&3+4 five/six");
        assert_eq!(
            p.encode(),
            "query=email%3A%27a%2Bb%40x.test%27%20AND%20name~%22Zo%C3%AB%20%26%20co%22&\
             metadata[k%3Dv%26w]=1%3D2%263%2B4%20five%2Fsix"
        );
        // Brackets are literal in keys but encoded inside values.
        assert_eq!(Params::new().set("a", "[x]").encode(), "a=%5Bx%5D");
    }

    #[test]
    fn unicode_is_utf8_percent_encoded() {
        assert_eq!(
            Params::new().set("name", "日本 €").encode(),
            "name=%E6%97%A5%E6%9C%AC%20%E2%82%AC"
        );
    }

    #[test]
    fn empty_params_encode_to_nothing() {
        assert_eq!(Params::new().encode(), "");
        assert!(Params::from_json(&json!({})).is_empty());
    }

    #[test]
    fn set_opt_and_remove() {
        let mut p = Params::new()
            .set_opt("a", Some(1u32))
            .set_opt::<&str>("b", None)
            .set("starting_after", "x");
        p.remove("starting_after");
        assert_eq!(p.encode(), "a=1");
        assert_eq!(p.get("a"), Some("1"));
    }

    #[test]
    fn keys_normalize_list_positions_only() {
        assert_eq!(
            normalize_key("line_items[10][price]"),
            "line_items[][price]"
        );
        assert_eq!(normalize_key("expand[0]"), "expand[]");
        assert_eq!(normalize_key("metadata[user]"), "metadata[user]");
        assert_eq!(
            normalize_key("features[subscription_update][products][0][prices][1]"),
            "features[subscription_update][products][][prices][]"
        );
        assert_eq!(normalize_key("customer"), "customer");
    }
}
