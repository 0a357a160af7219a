//! Customers: create, retrieve, update, delete, list, search.

use super::{address, arg, payment_methods, subscriptions, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::{new_id, random_alnum};
use crate::list::{created_in, created_range, limit, paginate};
use crate::object::Fields;
use crate::params::{apply_metadata, Params};
use crate::server::V1Routes;
use crate::state::{previous_attributes, Ctx, State};
use serde_json::{json, Value};

const WRITABLE: &[&str] = &[
    "address",
    "description",
    "email",
    "invoice_settings",
    "metadata",
    "name",
    "phone",
    "preferred_locales",
    "shipping",
    "tax_exempt",
];

fn new_customer(id: &str, now: i64) -> Value {
    json!({
        "id": id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": now,
        "currency": null,
        "customer_account": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "discount": null,
        "email": null,
        "invoice_prefix": random_alnum(8).to_uppercase(),
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null,
        },
        "livemode": false,
        "metadata": {},
        "name": null,
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null,
    })
}

/// Applies the writable fields shared by create and update. `default_pm` is resolved by
/// the caller because it must name a payment method attached to this customer.
fn apply_fields(c: &mut Value, p: &Params) -> EmulatorResult<()> {
    for key in ["description", "email", "name", "phone"] {
        if let Some(v) = p.string(key)? {
            c[key] = if v.is_empty() { Value::Null } else { json!(v) };
        }
    }
    if p.has("address") {
        c["address"] = address(p, "address")?.unwrap_or(Value::Null);
    }
    if p.has("shipping") {
        c["shipping"] = match p.sub("shipping")? {
            None => Value::Null,
            Some(s) => {
                s.allow(&["address", "name", "phone"])?;
                json!({
                    "address": address(&s, "address")?.ok_or_else(|| EmulatorError::missing(&s.name("address")))?,
                    "name": s.require("name")?,
                    "phone": s.text("phone")?,
                })
            }
        };
    }
    if let Some(locales) = p.strings("preferred_locales")? {
        c["preferred_locales"] = json!(locales);
    }
    if let Some(t) = p.one_of("tax_exempt", &["exempt", "none", "reverse"])? {
        c["tax_exempt"] = json!(t);
    }
    apply_metadata(&mut c["metadata"], p.raw("metadata"))?;
    if let Some(inv) = p.sub("invoice_settings")? {
        inv.allow(&[
            "default_payment_method",
            "footer",
            "custom_fields",
            "rendering_options",
        ])?;
        if let Some(f) = inv.string("footer")? {
            c["invoice_settings"]["footer"] = if f.is_empty() { Value::Null } else { json!(f) };
        }
    }
    Ok(())
}

fn default_pm_param<'a>(p: &Params<'a>) -> EmulatorResult<Option<&'a str>> {
    match p.sub("invoice_settings")? {
        Some(inv) => inv.string("default_payment_method"),
        None => Ok(None),
    }
}

pub const CREATE: Handler = create;
fn create(st: &mut State, ctx: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    let mut allowed = WRITABLE.to_vec();
    allowed.push("payment_method");
    p.allow(&allowed)?;
    let id = new_id("cus_");
    let mut c = new_customer(&id, st.now());
    apply_fields(&mut c, p)?;
    let pm_param = p.text("payment_method")?;
    let default_pm = default_pm_param(p)?.filter(|s| !s.is_empty());
    // Validate before any effect so a rejected request leaves nothing behind.
    if let Some(pm) = pm_param {
        if st.payment_methods.get(pm).is_none() && st.pm_templates.get(pm).is_none() {
            return Err(EmulatorError::no_such(
                "PaymentMethod",
                pm,
                "payment_method",
            ));
        }
        if pm == crate::seed::PM_DECLINED {
            return Err(EmulatorError::card_declined());
        }
    }
    if let Some(d) = default_pm {
        if Some(d) != pm_param {
            return Err(EmulatorError::invalid(format!(
                "The customer does not have a payment method with the ID {d}. The payment method must be attached to the customer."
            ))
            .param("invoice_settings[default_payment_method]"));
        }
    }
    // A test token is cloned on attach; its new id is chosen now so `customer.created`
    // already shows the default payment method, as on Stripe.
    let attach_id = pm_param.map(|pm| {
        if st.pm_templates.get(pm).is_some() {
            new_id("pm_")
        } else {
            pm.to_string()
        }
    });
    if let (Some(_), Some(a)) = (default_pm, &attach_id) {
        c["invoice_settings"]["default_payment_method"] = json!(a);
    }
    st.customers.insert(c.clone())?;
    st.emit(ctx, "customer.created", &c, None);
    if let (Some(pm), Some(a)) = (pm_param, attach_id) {
        payment_methods::attach_as(st, ctx, pm, &id, "payment_method", a)?;
    }
    Ok(st.customer(&id, "id")?.clone())
}

pub const GET: Handler = get;
fn get(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    // Deleted customers stay retrievable as a stub, as on Stripe.
    st.customers
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("customer", id, "id"))
}

pub const UPDATE: Handler = update;
fn update(st: &mut State, ctx: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(WRITABLE)?;
    let id = arg(ids, 0);
    let before = st.customer(id, "id")?.clone();
    let mut after = before.clone();
    apply_fields(&mut after, p)?;
    if let Some(d) = default_pm_param(p)? {
        if d.is_empty() {
            after["invoice_settings"]["default_payment_method"] = Value::Null;
        } else {
            payment_methods::ensure_attached(
                st,
                d,
                id,
                "invoice_settings[default_payment_method]",
            )?;
            after["invoice_settings"]["default_payment_method"] = json!(d);
        }
    }
    if after != before {
        st.customers.insert(after.clone())?;
        st.emit(
            ctx,
            "customer.updated",
            &after,
            Some(previous_attributes(&before, &after)),
        );
    }
    Ok(after)
}

pub const DELETE: Handler = delete;
fn delete(st: &mut State, ctx: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    let before = st.customer(id, "id")?.clone();
    // Deleting a customer cancels its subscriptions immediately.
    let live: Vec<String> = st
        .subscriptions
        .iter()
        .filter(|s| {
            s["customer"] == id && s["status"] != "canceled" && s["status"] != "incomplete_expired"
        })
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    for sub in live {
        subscriptions::cancel_now(st, ctx, &sub, None)?;
    }
    let stub = json!({"id": id, "object": "customer", "deleted": true});
    st.customers.insert(stub.clone())?;
    st.emit(ctx, "customer.deleted", &before, None);
    Ok(stub)
}

pub const LIST: Handler = list;
fn list(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "email",
        "created",
        "test_clock",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let email = p.text("email")?;
    let created = created_range(p)?;
    let items = st
        .customers
        .newest_first()
        .filter(|c| c["deleted"] != json!(true))
        .filter(|c| email.is_none_or(|e| c["email"] == e))
        .filter(|c| created_in(c, created))
        .cloned()
        .collect();
    paginate(items, p, "/v1/customers", "customer")
}

/// One `field:'value'` term of Stripe's search query language.
#[derive(Debug, PartialEq)]
struct Clause {
    field: Vec<String>,
    value: String,
    substring: bool,
    negated: bool,
}

/// Parses `email:'a@b.c' AND metadata['k']:'v'` (also `OR`, `~` substring, `-` negation).
fn parse_query(q: &str) -> EmulatorResult<(Vec<Clause>, bool)> {
    let err = |m: String| EmulatorError::invalid_param("query", m);
    let mut clauses = Vec::new();
    let mut joiner: Option<&str> = None;
    let mut rest = q.trim();
    if rest.is_empty() {
        return Err(err("The query cannot be empty.".into()));
    }
    loop {
        let negated = rest.starts_with('-');
        if negated {
            rest = &rest[1..];
        }
        let end = rest
            .find([':', '~'])
            .ok_or_else(|| err(format!("Invalid query: could not parse `{rest}`.")))?;
        let raw_field = rest[..end].trim();
        let substring = rest[end..].starts_with('~');
        rest = rest[end + 1..].trim_start();
        let field = if let Some(inner) = raw_field
            .strip_prefix("metadata[")
            .and_then(|s| s.strip_suffix(']'))
        {
            let key = inner.trim_matches(|c| c == '\'' || c == '"');
            vec!["metadata".to_string(), key.to_string()]
        } else {
            match raw_field {
                "email" | "name" | "phone" | "description" => vec![raw_field.to_string()],
                other => {
                    return Err(err(format!(
                        "Field `{other}` is an unsupported search field for resource `customers`. See http://stripe.com/docs/search#query-fields-for-customers for a list of supported fields."
                    )))
                }
            }
        };
        let quote = rest
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
            .ok_or_else(|| {
                err(format!(
                    "Invalid query: the value for `{raw_field}` must be a quoted string."
                ))
            })?;
        let close = rest[1..]
            .find(quote)
            .ok_or_else(|| err("Invalid query: unterminated string.".into()))?;
        let value = rest[1..1 + close].to_string();
        rest = rest[close + 2..].trim_start();
        clauses.push(Clause {
            field,
            value,
            substring,
            negated,
        });
        if rest.is_empty() {
            break;
        }
        let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let word = word.to_ascii_uppercase();
        if word != "AND" && word != "OR" {
            return Err(err(format!(
                "Invalid query: expected AND or OR, found `{word}`."
            )));
        }
        if joiner.is_some_and(|j| j != word) {
            return Err(err(
                "Invalid query: mixing AND and OR is not supported.".into()
            ));
        }
        joiner = Some(if word == "AND" { "AND" } else { "OR" });
        rest = tail.trim_start();
    }
    Ok((clauses, joiner == Some("OR")))
}

fn matches(c: &Value, clause: &Clause) -> bool {
    let mut v = c;
    for f in &clause.field {
        v = &v[f.as_str()];
    }
    let hit = match v.as_str() {
        // Stripe's `~` is a case-insensitive substring match (3+ characters).
        Some(s) if clause.substring => s.to_lowercase().contains(&clause.value.to_lowercase()),
        Some(s) => s == clause.value,
        None => false,
    };
    hit != clause.negated
}

pub const SEARCH: Handler = search;
fn search(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&["query", "limit", "page"])?;
    let query = p.require("query")?;
    let (clauses, any) = parse_query(query)?;
    let limit = limit(p)?;
    let all: Vec<Value> = st
        .customers
        .newest_first()
        .filter(|c| c["deleted"] != json!(true))
        .filter(|c| {
            if any {
                clauses.iter().any(|k| matches(c, k))
            } else {
                clauses.iter().all(|k| matches(c, k))
            }
        })
        .cloned()
        .collect();
    // Page tokens are opaque to clients; here one names the last customer already returned.
    let start = match p.text("page")? {
        None => 0,
        Some(tok) => {
            let after = tok.strip_prefix("page_").unwrap_or(tok);
            all.iter()
                .position(|c| c["id"] == after)
                .map(|i| i + 1)
                .ok_or_else(|| {
                    EmulatorError::invalid_param("page", format!("Invalid page token: {tok}"))
                })?
        }
    };
    let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let has_more = all.len() > start + page.len();
    let next_page = match (has_more, page.last()) {
        (true, Some(last)) => json!(format!("page_{}", last.id()?)),
        _ => Value::Null,
    };
    Ok(json!({
        "object": "search_result",
        "data": page,
        "has_more": has_more,
        "next_page": next_page,
        "url": "/v1/customers/search",
    }))
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .get("/v1/customers", LIST)
        .post("/v1/customers", CREATE)
        .get("/v1/customers/search", SEARCH)
        .get("/v1/customers/{customer}", GET)
        .post("/v1/customers/{customer}", UPDATE)
        .delete("/v1/customers/{customer}", DELETE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_language() {
        let (c, any) = parse_query("email:'a@b.c' AND metadata['user_id']:\"u1\"").unwrap();
        assert!(!any);
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].field, vec!["metadata", "user_id"]);
        assert_eq!(c[1].value, "u1");
        let (c, any) = parse_query("name~'jan' or -email:'x'").unwrap();
        assert!(any && c[0].substring && c[1].negated);
        assert!(parse_query("email:'a' AND name:'b' OR phone:'c'").is_err());
        assert!(parse_query("bogus:'a'").is_err());
        assert!(parse_query("email:a").is_err());
        assert!(parse_query("").is_err());
    }
}
