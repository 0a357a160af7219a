//! Stripe's request encoding: `application/x-www-form-urlencoded` with bracket nesting
//! (`a[b][c]=v`), indexed arrays (`items[0][price]=p`), `expand[]=x`. Parsed into a
//! `serde_json::Value` tree whose leaves are strings; an empty string is kept as `""`
//! because Stripe gives it a meaning ("unset"), which handlers interpret.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

/// Parses a form body or query string into an object tree.
pub fn parse(input: &str) -> Result<Value, FormError> {
    let mut root = Map::new();
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_val) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key)?;
        let val = decode(raw_val)?;
        let segments = split_key(&key)?;
        insert(&mut root, &segments, val, &key)?;
    }
    let mut tree = Value::Object(root);
    arrays_from_indexes(&mut tree, true);
    Ok(tree)
}

/// Percent-decoding with `+` as space (HTML form rules, which Stripe's SDKs follow).
fn decode(s: &str) -> Result<String, FormError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| FormError(format!("Invalid percent-encoding in `{s}`")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError("Request body is not valid UTF-8".into()))
}

/// `a[b][]` → `["a", "b", ""]`; an empty segment means "append".
fn split_key(key: &str) -> Result<Vec<String>, FormError> {
    let bad = || FormError(format!("Invalid parameter name: {key}"));
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(bad());
    }
    let mut segs = vec![head.to_string()];
    while !rest.is_empty() {
        if !rest.starts_with('[') {
            return Err(bad());
        }
        let end = rest.find(']').ok_or_else(bad)?;
        segs.push(rest[1..end].to_string());
        rest = &rest[end + 1..];
    }
    Ok(segs)
}

fn insert(
    map: &mut Map<String, Value>,
    segs: &[String],
    val: String,
    key: &str,
) -> Result<(), FormError> {
    let conflict = || FormError(format!("Invalid parameter structure for `{key}`"));
    let seg = if segs[0].is_empty() {
        // `[]` appends: the next index is the number of entries already collected here.
        map.len().to_string()
    } else {
        segs[0].clone()
    };
    if segs.len() == 1 {
        if matches!(map.get(&seg), Some(Value::Object(_))) {
            return Err(conflict());
        }
        map.insert(seg, Value::String(val));
        return Ok(());
    }
    let child = map.entry(seg).or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(m) => insert(m, &segs[1..], val, key),
        // `a=1&a[b]=2`: a scalar and a hash under one name.
        _ => Err(conflict()),
    }
}

/// Objects whose keys are all array indexes become arrays ordered by index. `metadata`
/// maps are left alone: their keys are user data, even when they look numeric.
fn arrays_from_indexes(v: &mut Value, convert: bool) {
    if let Value::Object(m) = v {
        for (k, child) in m.iter_mut() {
            arrays_from_indexes(child, k != "metadata");
        }
        if convert && !m.is_empty() && m.keys().all(|k| k.parse::<usize>().is_ok()) {
            let mut entries: Vec<(usize, Value)> = std::mem::take(m)
                .into_iter()
                .filter_map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v)))
                .collect();
            entries.sort_by_key(|(i, _)| *i);
            *v = Value::Array(entries.into_iter().map(|(_, v)| v).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_and_nested() {
        let v = parse("email=a%40b.com&name=Jane+Doe&address[city]=Paris&a[b][c]=v").unwrap();
        assert_eq!(
            v,
            json!({"email":"a@b.com","name":"Jane Doe","address":{"city":"Paris"},"a":{"b":{"c":"v"}}})
        );
    }

    #[test]
    fn indexed_arrays_of_objects() {
        let v = parse("items[1][price]=p2&items[0][price]=p1&items[0][quantity]=2").unwrap();
        assert_eq!(
            v,
            json!({"items":[{"price":"p1","quantity":"2"},{"price":"p2"}]})
        );
    }

    #[test]
    fn expand_both_styles_and_encoded_brackets() {
        assert_eq!(
            parse("expand[]=a&expand[]=b").unwrap(),
            json!({"expand":["a","b"]})
        );
        assert_eq!(
            parse("expand[0]=a&expand[1]=b").unwrap(),
            json!({"expand":["a","b"]})
        );
        assert_eq!(
            parse("expand%5B%5D=customer").unwrap(),
            json!({"expand":["customer"]})
        );
    }

    #[test]
    fn empty_values_are_kept_as_unset_markers() {
        let v = parse("metadata[key]=&description=").unwrap();
        assert_eq!(v, json!({"metadata":{"key":""},"description":""}));
        assert_eq!(parse("metadata=").unwrap(), json!({"metadata":""}));
        assert_eq!(parse("flag").unwrap(), json!({"flag":""}));
    }

    #[test]
    fn metadata_numeric_keys_stay_a_map() {
        assert_eq!(
            parse("metadata[0]=x").unwrap(),
            json!({"metadata":{"0":"x"}})
        );
    }

    #[test]
    fn errors() {
        assert!(parse("a=1&a[b]=2").is_err());
        assert!(parse("a[b]=2&a=1").is_err());
        assert!(parse("a[b=1").is_err());
        assert!(parse("[x]=1").is_err());
        assert!(parse("a=%zz").is_err());
        assert_eq!(parse("").unwrap(), json!({}));
    }
}
