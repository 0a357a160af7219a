//! `openapi.yaml` as a contract: every answer a handler test decodes is checked against the
//! operation its request names (method and path) and the answer's status. An answer whose status
//! the operation does not declare, whose body breaks the declared schema, or whose `error_code`
//! is not in that status's list fails the test that caused it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use lambda_http::{Request, RequestExt};
use serde_json::{json, Value};
use shared::testing::workspace_root;

/// The method and path a request was sent to.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub path: String,
}

impl Sent {
    pub fn of(request: &Request) -> Self {
        Sent {
            method: request.method().as_str().to_string(),
            path: request.raw_http_path().to_string(),
        }
    }
}

/// The parsed `openapi.yaml` (as JSON).
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = workspace_root().join("openapi.yaml");
        let text = std::fs::read_to_string(&path).expect("read openapi.yaml");
        serde_saphyr::from_str(&text).expect("openapi.yaml is YAML")
    })
}

/// `(METHOD, /path/{param})` of every operation in the spec.
pub fn operations() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in spec()["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "options", "head"] {
            if item.get(method).is_some() {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn pattern_matches(pattern: &str, path: &str) -> bool {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let (p, q): (Vec<_>, Vec<_>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == q.len()
        && p.iter()
            .zip(&q)
            .all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
}

/// Follows a local `$ref` (`#/components/responses/X`) once.
fn resolve(value: &Value) -> &Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => spec()
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("openapi.yaml: dangling $ref {pointer}")),
        None => value,
    }
}

/// A validator for one schema of the spec, its `$ref`s resolved against the whole document.
fn validator(key: String, schema: &Value) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().expect("cache").get(&key) {
        return found.clone();
    }
    let document = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": spec()["components"],
        "allOf": [schema],
    });
    let compiled = Arc::new(
        jsonschema::draft202012::new(&document)
            .unwrap_or_else(|e| panic!("openapi.yaml: schema of {key} does not compile: {e}")),
    );
    cache.lock().expect("cache").insert(key, compiled.clone());
    compiled
}

/// Checks an answer against the spec; the error says what is wrong and where.
pub fn check(sent: &Sent, status: u16, body: &Value) -> Result<(), String> {
    let paths = spec()["paths"].as_object().expect("paths");
    let Some((pattern, item)) = paths.iter().find(|(p, _)| pattern_matches(p, &sent.path)) else {
        // No such route: the function's router answers 404 in the envelope (API Gateway would
        // not even call it).
        return envelope_with(sent, status, body, 404, "not_found");
    };
    let Some(operation) = item.get(sent.method.to_lowercase()) else {
        return envelope_with(sent, status, body, 405, "method_not_allowed");
    };
    let name = format!("{} {pattern} {status}", sent.method);
    let response = operation["responses"]
        .get(status.to_string())
        .ok_or_else(|| {
            format!("{name}: status {status} is not declared in openapi.yaml; body {body}")
        })?;
    let schema = &resolve(response)["content"]["application/json"]["schema"];
    if schema.is_null() {
        return Err(format!("{name}: openapi.yaml declares no JSON schema"));
    }
    let validator = validator(name.clone(), schema);
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name}: the body breaks openapi.yaml: {}\nbody: {body}",
            errors.join("; ")
        ))
    }
}

fn envelope_with(
    sent: &Sent,
    status: u16,
    body: &Value,
    want: u16,
    code: &str,
) -> Result<(), String> {
    let envelope = validator(
        "Error".into(),
        &json!({"$ref": "#/components/schemas/Error"}),
    );
    if status == want && body["error_code"] == code && envelope.is_valid(body) {
        Ok(())
    } else {
        Err(format!(
            "{} {} is not in openapi.yaml, so only the router's {want} {code} envelope may answer it; got {status} {body}",
            sent.method, sent.path
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(method: &str, path: &str) -> Sent {
        Sent {
            method: method.into(),
            path: path.into(),
        }
    }

    fn error(code: &str) -> Value {
        json!({"success": false, "error": "x", "error_code": code, "request_id": "r",
               "timestamp": "2026-11-21T10:00:00Z"})
    }

    #[test]
    fn the_check_refuses_what_the_spec_does_not_say() {
        let cancel = sent("POST", "/billing/subscriptions/sub_1/cancel");
        assert!(check(&cancel, 404, &error("subscription_not_found")).is_ok());
        // A code of another status, an undeclared status, a missing envelope field.
        assert!(check(&cancel, 404, &error("configuration_not_found")).is_err());
        assert!(check(&cancel, 418, &error("subscription_not_found")).is_err());
        let mut partial = error("subscription_not_found");
        partial.as_object_mut().unwrap().remove("request_id");
        assert!(check(&cancel, 404, &partial).is_err());
        // A success body with a field the spec does not know.
        let account = sent("GET", "/billing/account");
        let body = json!({"success": true, "account": {"customer_id": null, "email": null,
            "premium": false, "premium_until": null, "subscription": null,
            "plan": {"kind": "none", "product_id": null, "product_name": null, "price_id": null,
                     "interval": null, "amount": null, "currency": null},
            "lifetime": null, "refreshed": false,
            "default_payment_method": null, "invoices": [], "synced_at": null}});
        assert!(check(&account, 200, &body).is_ok());
        let mut extra = body.clone();
        extra["account"]["surprise"] = json!(1);
        assert!(check(&account, 200, &extra).is_err());
        // API Gateway's own 401 is part of the contract too.
        assert!(check(&account, 401, &json!({"message": "Unauthorized"})).is_ok());
    }

    #[test]
    fn every_ref_in_the_spec_resolves() {
        fn walk(value: &Value, at: &str) {
            match value {
                Value::Object(map) => {
                    if let Some(pointer) = map.get("$ref").and_then(Value::as_str) {
                        assert!(
                            spec().pointer(pointer.trim_start_matches('#')).is_some(),
                            "{at}: dangling $ref {pointer}"
                        );
                    }
                    map.iter().for_each(|(k, v)| walk(v, &format!("{at}/{k}")));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, at)),
                _ => {}
            }
        }
        walk(spec(), "");
    }

    #[test]
    fn the_spec_lists_exactly_the_codes_of_the_error_code_table() {
        use shared::error_code::ErrorCode;
        use std::collections::BTreeSet;
        fn collect(value: &Value, codes: &mut BTreeSet<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(list) = map.get("error_code").and_then(|c| c["enum"].as_array()) {
                        codes.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
                    }
                    map.values().for_each(|v| collect(v, codes));
                }
                Value::Array(items) => items.iter().for_each(|v| collect(v, codes)),
                _ => {}
            }
        }
        let mut documented = BTreeSet::new();
        collect(spec(), &mut documented);
        // A 405 is the functions' router's answer outside every operation: API Gateway routes
        // by method, so only a direct invocation can meet it (checked above).
        let table: BTreeSet<String> = ErrorCode::ALL
            .iter()
            .filter(|c| **c != ErrorCode::MethodNotAllowed)
            .map(|c| c.as_str().to_string())
            .collect();
        assert_eq!(documented, table);
    }

    #[test]
    fn paths_outside_the_spec_may_only_get_the_routers_answers() {
        assert!(check(&sent("GET", "/nope"), 404, &error("not_found")).is_ok());
        assert!(check(&sent("GET", "/nope"), 200, &json!({"success": true})).is_err());
        let wrong = sent("DELETE", "/billing/account");
        assert!(check(&wrong, 405, &error("method_not_allowed")).is_ok());
        assert!(check(&wrong, 404, &error("not_found")).is_err());
    }
}
