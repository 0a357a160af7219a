//! Every request in the client's catalogue must exist in Stripe's OpenAPI spec: the path with
//! its method, the path placeholders, and every parameter name down to the last bracket.
//!
//! The spec is `$STRIPE_REFERENCE_DIR/spec3.json` (API 2023-08-16). Without the variable the
//! default `<workspace>/../shared/stripe` is used when present, else the test is skipped with
//! a note; with the variable set, or under CI, a missing spec fails the test. Names newer than that spec are
//! allowed only through [`NEWER_THAN_SPEC`], each with its reason.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;
use shared::stripe::{request_catalogue, HttpMethod, RequestShape};

/// Parameters added to Stripe's API after 2023-08-16, as (request-name prefix, parameter,
/// reason). Each was announced in Stripe's API changelog and stripe-node's CHANGELOG after the
/// spec's version, so the reference spec cannot know it.
const NEWER_THAN_SPEC: &[(&str, &str, &str)] = &[
    (
        "billing_portal.configurations.",
        "name",
        "billing_portal configuration `name`, added 2025-08 (stripe-node CHANGELOG)",
    ),
    (
        "billing_portal.configurations.",
        "features[subscription_update][schedule_at_period_end][conditions][][type]",
        "portal `schedule_at_period_end`, added 2024-10",
    ),
    (
        "billing_portal.configurations.",
        "features[subscription_update][products][][adjustable_quantity][enabled]",
        "portal per-product `adjustable_quantity`, added 2025-07",
    ),
    (
        "billing_portal.configurations.",
        "features[subscription_update][products][][adjustable_quantity][minimum]",
        "portal per-product `adjustable_quantity`, added 2025-07",
    ),
    (
        "billing_portal.configurations.",
        "features[subscription_update][products][][adjustable_quantity][maximum]",
        "portal per-product `adjustable_quantity`, added 2025-07",
    ),
    (
        "billing_portal.configurations.",
        "features[subscription_update][trial_update_behavior]",
        "portal `trial_update_behavior`, added 2025-09",
    ),
    (
        "billing_portal.configurations.",
        "features[subscription_update][billing_cycle_anchor]",
        "portal `billing_cycle_anchor`, added 2025-12",
    ),
    (
        "billing_portal.configurations.",
        "features[payment_method_update][payment_method_configuration]",
        "portal `payment_method_configuration`, params added 2025-10-29",
    ),
];

/// Requests whose endpoint is newer than the spec, as (request name, reason). Their parameters
/// follow Stripe's typed params of the SDKs named in the reason.
const NEWER_REQUESTS: &[(&str, &str)] = &[(
    "invoices.create_preview",
    "POST /v1/invoices/create_preview replaced GET /v1/invoices/upcoming in 2025-03-31.basil \
     (`subscription_details[items][]`, `subscription_details[proration_behavior]`, \
     `subscription_details[proration_date]`: stripe-python InvoiceCreatePreviewParams)",
)];

fn spec_path() -> Option<PathBuf> {
    shared::testing::stripe_reference(&["spec3.json"]).map(|dir| dir.join("spec3.json"))
}

/// The spec, parsed once per test process.
fn spec() -> Option<&'static Value> {
    static SPEC: OnceLock<Option<Value>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = spec_path()?;
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display())),
        )
    })
    .as_ref()
}

/// Follows `$ref`s to the schema they name.
fn resolve<'a>(spec: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let Some(pointer) = reference.strip_prefix('#') else {
            return schema;
        };
        match spec.pointer(pointer) {
            Some(target) => schema = target,
            None => return schema,
        }
    }
    schema
}

/// `flow_data[after_completion][type]` → `["flow_data", "after_completion", "type"]`;
/// list positions stay as `""`, map wildcards as `"*"`.
fn segments(name: &str) -> Vec<&str> {
    let mut parts = name.split('[');
    let mut out = vec![parts.next().unwrap_or_default()];
    out.extend(parts.map(|p| p.strip_suffix(']').unwrap_or(p)));
    out
}

/// Does `path` lead somewhere inside `schema`?
fn schema_has(spec: &Value, schema: &Value, path: &[&str]) -> bool {
    let schema = resolve(spec, schema);
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            if branches.iter().any(|b| schema_has(spec, b, path)) {
                return true;
            }
        }
    }
    match *first {
        "" => schema
            .get("items")
            .is_some_and(|items| schema_has(spec, items, rest)),
        "*" => match schema.get("additionalProperties") {
            Some(Value::Bool(true)) => rest.is_empty(),
            Some(inner @ Value::Object(_)) => schema_has(spec, inner, rest),
            _ => false,
        },
        name => schema
            .get("properties")
            .and_then(|p| p.get(name))
            .is_some_and(|field| schema_has(spec, field, rest)),
    }
}

fn operation<'a>(spec: &'a Value, shape: &RequestShape) -> Option<&'a Value> {
    let method = shape.method.as_str().to_ascii_lowercase();
    spec.get("paths")?.get(shape.path)?.get(method)
}

fn parameter<'a>(spec: &'a Value, op: &'a Value, location: &str, name: &str) -> Option<&'a Value> {
    op.get("parameters")?
        .as_array()?
        .iter()
        .map(|p| resolve(spec, p))
        .find(|p| p["in"] == location && p["name"] == name)
}

fn form_schema<'a>(spec: &'a Value, op: &'a Value) -> Option<&'a Value> {
    let schema = op
        .get("requestBody")?
        .get("content")?
        .get("application/x-www-form-urlencoded")?
        .get("schema")?;
    Some(resolve(spec, schema))
}

/// Where the spec says the parameter `name` lives, and whether its full path exists there.
fn request_has_param(spec: &Value, op: &Value, method: HttpMethod, name: &str) -> bool {
    let path = segments(name);
    let (root, rest) = path.split_first().unwrap_or((&"", &[]));
    let in_query = || {
        parameter(spec, op, "query", root)
            .and_then(|p| p.get("schema"))
            .is_some_and(|schema| schema_has(spec, schema, rest))
    };
    let in_form = || form_schema(spec, op).is_some_and(|schema| schema_has(spec, schema, &path));
    match method {
        HttpMethod::Get => in_query(),
        HttpMethod::Post => in_form(),
        // Stripe's SDKs send DELETE parameters in the query; the spec lists them as a body.
        HttpMethod::Delete => in_query() || in_form(),
    }
}

fn allowed_newer(shape: &RequestShape, name: &str) -> bool {
    NEWER_THAN_SPEC
        .iter()
        .any(|(prefix, n, _)| shape.name.starts_with(prefix) && *n == name)
}

#[test]
fn every_catalogued_request_exists_in_stripes_spec() {
    let Some(spec) = spec() else {
        return;
    };
    let mut problems = Vec::new();
    for shape in request_catalogue() {
        if NEWER_REQUESTS.iter().any(|(name, _)| *name == shape.name) {
            assert!(
                operation(spec, &shape).is_none(),
                "{} is in the spec now; check it there",
                shape.name
            );
            continue;
        }
        let Some(op) = operation(spec, &shape) else {
            problems.push(format!(
                "{}: {} {} is not in the spec",
                shape.name,
                shape.method.as_str(),
                shape.path
            ));
            continue;
        };
        for placeholder in shape.path_params() {
            if parameter(spec, op, "path", placeholder).is_none() {
                problems.push(format!("{}: no path parameter {placeholder}", shape.name));
            }
        }
        for name in shape.params {
            if !request_has_param(spec, op, shape.method, name) && !allowed_newer(&shape, name) {
                problems.push(format!(
                    "{}: parameter {name} is not in the spec",
                    shape.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_allow_list_holds_only_names_the_spec_lacks() {
    let Some(spec) = spec() else {
        return;
    };
    for (prefix, name, reason) in NEWER_THAN_SPEC {
        assert!(!reason.is_empty());
        let users: Vec<_> = request_catalogue()
            .into_iter()
            .filter(|s| s.name.starts_with(prefix) && s.params.contains(name))
            .collect();
        assert!(!users.is_empty(), "{name} is allowed but never sent");
        for shape in users {
            let op = operation(spec, &shape).unwrap_or(&Value::Null);
            assert!(
                !request_has_param(spec, op, shape.method, name),
                "{name} is in the spec for {}; drop it from NEWER_THAN_SPEC",
                shape.name
            );
        }
    }
}

#[test]
fn the_checker_itself_rejects_what_stripe_does_not_have() {
    let Some(spec) = spec() else {
        return;
    };
    let shape = request_catalogue()
        .into_iter()
        .find(|s| s.name == "billing_portal.sessions.create")
        .unwrap();
    let op = operation(spec, &shape).unwrap();
    let has = |name| request_has_param(spec, op, shape.method, name);
    assert!(has("flow_data[after_completion][redirect][return_url]"));
    assert!(has(
        "flow_data[subscription_update_confirm][items][][price]"
    ));
    assert!(!has("flow_data[after_completion][redirect][url]"));
    assert!(!has("flow_data[subscription_update_confirm][items][price]"));
    assert!(!has("expires_at"));
    let list = request_catalogue()
        .into_iter()
        .find(|s| s.name == "subscriptions.list")
        .unwrap();
    let op = operation(spec, &list).unwrap();
    assert!(request_has_param(spec, op, list.method, "expand[]"));
    assert!(!request_has_param(spec, op, list.method, "email"));
}
