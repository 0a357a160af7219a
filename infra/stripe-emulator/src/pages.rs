//! Shared bits of the hosted pages (portal, checkout): escaping, layout, and answering
//! either HTML (form posts, browsers) or JSON (everything else) from the same handlers.

use crate::error::EmulatorError;
use crate::ids::new_id;
use crate::server::{error_response, header_str, json_response};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page around `body`.
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}}\
section{{border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}}\
.error{{background:#fde8e8;border-color:#e0a0a0}}.notice{{background:#e8f6ec;border-color:#9fd0ac}}\
label{{display:block;margin:.3rem 0}}table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #eee}}\
small{{color:#666}}</style></head><body>\n<p><small>Stripe emulator (test mode)</small></p>\n{body}\n</body></html>\n",
        t = esc(title)
    )
}

pub fn html(status: StatusCode, page: String) -> Response {
    let mut r = Response::new(Body::from(page));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

pub fn redirect(to: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub fn json(status: StatusCode, v: &Value) -> Response {
    json_response(
        status,
        serde_json::to_vec_pretty(v).unwrap_or_default(),
        &new_id("req_"),
    )
}

pub fn json_error(e: &EmulatorError) -> Response {
    error_response(e, &new_id("req_"))
}

/// An HTML form post (answer with a page) rather than a JSON client.
pub fn is_form(headers: &HeaderMap) -> bool {
    header_str(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
}

/// Request parameters as Stripe's form tree: every leaf a string (`null` → `""`), so JSON
/// bodies go through the same parameter handling as form bodies.
pub fn stringify(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), stringify(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(stringify).collect()),
        Value::String(s) => Value::String(s.clone()),
        Value::Null => Value::String(String::new()),
        other => Value::String(other.to_string()),
    }
}

/// `$12.00` for 1200 (usd-style minor units).
pub fn money(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.abs();
    format!(
        "{sign}{}{}.{:02}",
        if currency == "usd" { "$" } else { "" },
        a / 100,
        a % 100
    )
}
