//! The hosted Checkout page at a session's `url` (`/c/pay/{id}`): pay with a test card
//! (`POST /c/pay/{id}/complete`, form or JSON), then on to `success_url`; "back" goes to
//! `cancel_url`.

use crate::error::EmulatorError;
use crate::pages::{self, esc, is_form, layout, money, stringify};
use crate::params::Params;
use crate::resources::checkout::{self, TEST_CARDS};
use crate::server::{helper_params, lock, mutate, Shared};
use crate::state::Ctx;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/c/pay/{id}", get(page))
        .route("/c/pay/{id}/complete", post(complete))
}

fn not_found_page() -> Response {
    pages::html(
        StatusCode::NOT_FOUND,
        layout(
            "Checkout session not found",
            "<section class=\"error\"><h1>Something went wrong</h1>\
<p>The page you were looking for could not be found. This Checkout session may have expired \
or been completed.</p></section>",
        ),
    )
}

async fn page(AxState(shared): AxState<Arc<Shared>>, Path(id): Path<String>) -> Response {
    render(&shared, &id, None, StatusCode::OK)
}

fn render(shared: &Shared, id: &str, error: Option<&str>, status: StatusCode) -> Response {
    let (session, extras) = match lock(&shared.state) {
        Ok(st) => match st.checkout_sessions.get(id) {
            Some(s) => (
                s.clone(),
                st.checkout_extras.get(id).cloned().unwrap_or(Value::Null),
            ),
            None => return not_found_page(),
        },
        Err(_) => return not_found_page(),
    };
    if session["status"] != "open" {
        let mut body =
            "<section class=\"notice\"><h1>This Checkout session is complete</h1></section>"
                .to_string();
        match checkout::success_url(&session) {
            Ok(Some(u)) => body.push_str(&format!("<p><a href=\"{}\">Continue</a></p>", esc(&u))),
            Ok(None) => {}
            Err(e) => return pages::json_error(&e),
        }
        return pages::html(StatusCode::OK, layout("Checkout", &body));
    }
    let currency = session["currency"].as_str().unwrap_or("usd");
    let lines: String = extras["line_items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|li| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(li["description"].as_str().unwrap_or("Item")),
                li["quantity"],
                money(li["amount_total"].as_i64().unwrap_or(0), currency)
            )
        })
        .collect();
    let cards: String = TEST_CARDS
        .iter()
        .enumerate()
        .map(|(i, (pm, label))| {
            format!(
                "<label><input type=\"radio\" name=\"payment_method\" value=\"{pm}\"{}> {}</label>",
                if i == 0 { " checked" } else { "" },
                esc(label)
            )
        })
        .collect();
    let mut body = String::new();
    if let Some(u) = session["cancel_url"].as_str() {
        body.push_str(&format!(
            "<p><a id=\"back\" href=\"{}\">← Back</a></p>",
            esc(u)
        ));
    }
    body.push_str("<h1>Checkout</h1>");
    if let Some(e) = error {
        body.push_str(&format!(
            "<section class=\"error\" id=\"error\">{}</section>",
            esc(e)
        ));
    }
    if let Some(email) = session["customer_email"].as_str() {
        body.push_str(&format!("<p>Email: {}</p>", esc(email)));
    }
    body.push_str(&format!(
        "<section><table><tr><th>Item</th><th>Qty</th><th>Amount</th></tr>{lines}</table>\
<p><b>Total: {}</b></p></section>\
<form method=\"post\" action=\"/c/pay/{}/complete\"><section><h2>Pay with a test card</h2>{cards}</section>\
<button type=\"submit\">{}</button></form>",
        money(session["amount_total"].as_i64().unwrap_or(0), currency),
        esc(id),
        if session["mode"] == "subscription" { "Subscribe" } else { "Pay" }
    ));
    pages::html(status, layout("Checkout", &body))
}

async fn complete(
    AxState(shared): AxState<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = is_form(&headers);
    let ctx = Ctx {
        base_url: shared.base_url.clone(),
        ..Default::default()
    };
    let result = helper_params(&headers, &body).and_then(|p| {
        let p = stringify(&p);
        let params = Params::root(&p);
        params.allow(&["payment_method"])?;
        let pm = params
            .text("payment_method")?
            .unwrap_or(crate::seed::PM_VISA)
            .to_string();
        mutate(&shared, |st| checkout::complete(st, &ctx, &id, &pm))
    });
    match result {
        Ok(session) => {
            let redirect = match checkout::success_url(&session) {
                Ok(r) => r,
                Err(e) => return pages::json_error(&e),
            };
            if form {
                match redirect {
                    Some(u) => pages::redirect(&u),
                    None => render(&shared, &id, None, StatusCode::OK),
                }
            } else {
                pages::json(
                    StatusCode::OK,
                    &json!({"session": session, "redirect_url": redirect}),
                )
            }
        }
        Err(e) if form => {
            if e.status == StatusCode::NOT_FOUND {
                return not_found_page();
            }
            render(&shared, &id, Some(&error_text(&e)), e.status)
        }
        Err(e) => pages::json_error(&e),
    }
}

fn error_text(e: &EmulatorError) -> String {
    e.message.clone()
}
