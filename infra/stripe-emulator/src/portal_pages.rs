//! The hosted customer portal at a session's `url` (`/p/session/{id}`): a plain HTML page
//! with forms, and the same actions as JSON endpoints. Every action goes through the `/v1`
//! handlers' own functions, so state and events are what the API would produce.
//!
//! The session URL is the credential (no API key). Sessions expire 5 minutes after creation
//! unless visited; once visited they stay usable for an hour (emulator clock).

use crate::error::{EmulatorError, EmulatorResult};
use crate::object::Fields;
use crate::pages::{self, esc, is_form, layout, money, stringify};
use crate::params::Params;
use crate::resources::checkout::TEST_CARDS;
use crate::resources::subscriptions::UPDATABLE;
use crate::resources::{customers, invoices, payment_methods, subscriptions};
use crate::server::{helper_params, lock, mutate, Shared};
use crate::state::{Ctx, State};
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

/// An unvisited session URL stops working after this long.
pub const UNVISITED_TTL: i64 = 5 * 60;
/// A visited session stays usable this long after the first visit.
pub const VISITED_TTL: i64 = 60 * 60;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/p/session/{id}", get(page))
        .route("/p/session/{id}/state", get(state_json))
        .route("/p/session/{id}/invoices", get(invoices_json))
        .route("/p/session/{id}/return", get(return_link))
        .route("/p/session/{id}/payment_method", post(payment_method))
        .route("/p/session/{id}/customer", post(customer))
        .route("/p/session/{id}/cancel", post(cancel))
        .route("/p/session/{id}/update", post(update))
        .route("/p/session/{id}/retention", post(retention))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    PaymentMethod,
    Customer,
    Cancel,
    Update,
    Invoices,
}

impl Action {
    fn feature(self) -> &'static str {
        match self {
            Action::PaymentMethod => "payment_method_update",
            Action::Customer => "customer_update",
            Action::Cancel => "subscription_cancel",
            Action::Update => "subscription_update",
            Action::Invoices => "invoice_history",
        }
    }

    /// The flow type that offers this action.
    fn flow(self) -> &'static [&'static str] {
        match self {
            Action::PaymentMethod => &["payment_method_update"],
            Action::Cancel => &["subscription_cancel"],
            Action::Update => &["subscription_update", "subscription_update_confirm"],
            Action::Customer | Action::Invoices => &[],
        }
    }
}

fn expired() -> EmulatorError {
    EmulatorError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "This portal session has expired or does not exist. Create a new session to continue.",
    )
    .code("session_expired")
}

fn forbidden(message: impl Into<String>) -> EmulatorError {
    EmulatorError::new(StatusCode::FORBIDDEN, "invalid_request_error", message)
        .code("portal_action_not_allowed")
}

/// A live session and its configuration; the first use records the visit.
fn open(st: &mut State, id: &str) -> EmulatorResult<(Value, Value)> {
    let session = st.portal_sessions.get(id).cloned().ok_or_else(expired)?;
    let now = st.now();
    let live = match st.portal_visits.get(id) {
        Some(first) => now <= first + VISITED_TTL,
        None => now <= session.i64_field("created")? + UNVISITED_TTL,
    };
    if !live
        || st
            .customer(session.str_field("customer")?, "customer")
            .is_err()
    {
        return Err(expired());
    }
    st.portal_visits.entry(id.to_string()).or_insert(now);
    let cfg = st
        .portal_configurations
        .get(session.str_field("configuration")?)
        .cloned()
        .ok_or_else(expired)?;
    Ok((session, cfg))
}

/// Refuses an action the configuration or the session's flow does not offer.
fn allow(session: &Value, cfg: &Value, action: Action) -> EmulatorResult<()> {
    let feature = action.feature();
    if let Some(flow) = session["flow"]["type"].as_str() {
        if !action.flow().contains(&flow) {
            return Err(forbidden(format!(
                "This portal session is limited to the `{flow}` flow."
            )));
        }
    }
    if cfg["features"][feature]["enabled"] != true {
        return Err(forbidden(format!(
            "The portal configuration does not allow this: `features[{feature}][enabled]` is false."
        )));
    }
    Ok(())
}

/// The subscription an action applies to: the flow's, else the one named (it must be the
/// customer's and still changeable), else the customer's only changeable one.
fn target_subscription(
    st: &State,
    session: &Value,
    requested: Option<&str>,
) -> EmulatorResult<Value> {
    let customer = session.str_field("customer")?;
    let flow = &session["flow"];
    let flow_sub = [
        "subscription_cancel",
        "subscription_update",
        "subscription_update_confirm",
    ]
    .iter()
    .find_map(|k| flow[*k]["subscription"].as_str());
    let id = match (flow_sub, requested) {
        (Some(f), Some(r)) if f != r => {
            return Err(forbidden(format!(
                "This portal session only manages subscription {f}."
            )))
        }
        (Some(f), _) => f.to_string(),
        (None, Some(r)) => r.to_string(),
        (None, None) => {
            let live: Vec<&Value> = customer_subscriptions(st, customer)?;
            match live.as_slice() {
                [one] => one.id()?.to_string(),
                [] => {
                    return Err(EmulatorError::invalid(
                        "The customer has no active subscription.",
                    ))
                }
                _ => return Err(EmulatorError::missing("subscription").param("subscription")),
            }
        }
    };
    match st.subscriptions.get(&id) {
        Some(s) if s["customer"] == customer => {
            let status = s.str_field("status")?;
            if UPDATABLE.contains(&status) {
                Ok(s.clone())
            } else {
                Err(EmulatorError::invalid(format!(
                    "The subscription {id} has status `{status}` and cannot be changed."
                )))
            }
        }
        _ => Err(EmulatorError::no_such("subscription", &id, "subscription")),
    }
}

fn customer_subscriptions<'s>(st: &'s State, customer: &str) -> EmulatorResult<Vec<&'s Value>> {
    let mut live = Vec::new();
    for s in st.subscriptions.iter() {
        if s.str_field("customer")? == customer && UPDATABLE.contains(&s.str_field("status")?) {
            live.push(s);
        }
    }
    Ok(live)
}

/// Prices the configuration offers for switching.
fn offered_prices(cfg: &Value) -> EmulatorResult<Vec<String>> {
    let mut prices = Vec::new();
    for product in cfg["features"]["subscription_update"]["products"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for price in product.array_field("prices")? {
            prices.extend(price.as_str().map(str::to_string));
        }
    }
    Ok(prices)
}

fn offered(session: &Value, cfg: &Value, action: Action) -> bool {
    allow(session, cfg, action).is_ok()
}

/// What the session offers (`GET .../state`).
fn describe(st: &State, session: &Value, cfg: &Value) -> EmulatorResult<Value> {
    let f = &cfg["features"];
    let customer_id = session.str_field("customer")?;
    let customer = st
        .customers
        .get(customer_id)
        .cloned()
        .unwrap_or(Value::Null);
    let subs: Vec<Value> = match session["flow"]["type"].as_str() {
        Some("payment_method_update") => Vec::new(),
        Some(_) => target_subscription(st, session, None).into_iter().collect(),
        None => customer_subscriptions(st, customer_id)?
            .into_iter()
            .cloned()
            .collect(),
    };
    let default_pm = customer["invoice_settings"]["default_payment_method"]
        .as_str()
        .and_then(|id| st.payment_methods.get(id))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(json!({
        "session": session["id"],
        "customer": customer,
        "configuration": cfg["id"],
        "flow": session["flow"],
        "return_url": session["return_url"],
        "default_payment_method": default_pm,
        "subscriptions": subs,
        "offers": {
            "payment_method_update": {
                "enabled": offered(session, cfg, Action::PaymentMethod),
                "test_cards": TEST_CARDS.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            },
            "customer_update": {
                "enabled": offered(session, cfg, Action::Customer),
                "allowed_updates": f["customer_update"]["allowed_updates"],
            },
            "subscription_cancel": {
                "enabled": offered(session, cfg, Action::Cancel),
                "mode": f["subscription_cancel"]["mode"],
                "cancellation_reason": f["subscription_cancel"]["cancellation_reason"],
            },
            "subscription_update": {
                "enabled": offered(session, cfg, Action::Update),
                "prices": offered_prices(cfg)?,
                "proration_behavior": f["subscription_update"]["proration_behavior"],
            },
            "invoice_history": {"enabled": offered(session, cfg, Action::Invoices)},
        },
    }))
}

/// Where the customer goes after completing the session's flow, if it has one.
fn after_completion(session: &Value) -> Value {
    let ac = &session["flow"]["after_completion"];
    match ac["type"].as_str() {
        Some("redirect") => json!({"type": "redirect", "url": ac["redirect"]["return_url"]}),
        Some("hosted_confirmation") => json!({
            "type": "hosted_confirmation",
            "message": ac["hosted_confirmation"]["custom_message"],
        }),
        Some(_) => json!({"type": "portal_homepage", "url": session["url"]}),
        None => Value::Null,
    }
}

// ---- actions (all under one state lock, all or nothing) ----

fn ctx(shared: &Shared) -> Ctx {
    Ctx {
        base_url: shared.base_url.clone(),
        ..Default::default()
    }
}

fn do_payment_method(st: &mut State, ctx: &Ctx, id: &str, body: &Value) -> EmulatorResult<Value> {
    let (session, cfg) = open(st, id)?;
    allow(&session, &cfg, Action::PaymentMethod)?;
    let p = Params::root(body);
    p.allow(&["payment_method"])?;
    let card = p.require("payment_method")?;
    if !TEST_CARDS.iter().any(|(c, _)| *c == card) {
        return Err(EmulatorError::invalid_param(
            "payment_method",
            format!(
                "Choose one of the test cards: {}.",
                TEST_CARDS
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let customer = session.str_field("customer")?;
    let pm = payment_methods::attach(st, ctx, card, customer, "payment_method")?;
    let params = json!({"invoice_settings": {"default_payment_method": pm}});
    let updated = customers::UPDATE(st, ctx, &Params::root(&params), &[customer])?;
    Ok(json!({
        "customer": updated,
        "payment_method": st.payment_methods.get(&pm).cloned().unwrap_or(Value::Null),
    }))
}

fn do_customer(st: &mut State, ctx: &Ctx, id: &str, body: &Value) -> EmulatorResult<Value> {
    let (session, cfg) = open(st, id)?;
    allow(&session, &cfg, Action::Customer)?;
    let allowed: Vec<&str> = cfg["features"]["customer_update"]["allowed_updates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let fields = body.as_object().cloned().unwrap_or_default();
    if fields.is_empty() {
        return Err(EmulatorError::invalid(
            "Nothing to update: send email, name, phone or address.",
        ));
    }
    for k in fields.keys() {
        if !["email", "name", "phone", "address", "shipping"].contains(&k.as_str()) {
            return Err(EmulatorError::unknown_param(k));
        }
        if !allowed.contains(&k.as_str()) {
            return Err(forbidden(format!(
                "The portal configuration does not allow updating `{k}` (features[customer_update][allowed_updates])."
            )));
        }
    }
    let customer = session.str_field("customer")?;
    let updated = customers::UPDATE(st, ctx, &Params::root(body), &[customer])?;
    Ok(json!({"customer": updated}))
}

fn do_cancel(st: &mut State, ctx: &Ctx, id: &str, body: &Value) -> EmulatorResult<Value> {
    let (session, cfg) = open(st, id)?;
    allow(&session, &cfg, Action::Cancel)?;
    let p = Params::root(body);
    p.allow(&["subscription", "reason", "comment"])?;
    let sub = target_subscription(st, &session, p.text("subscription")?)?;
    let sub_id = sub.id()?.to_string();
    let sc = &cfg["features"]["subscription_cancel"];
    let mut details = json!({});
    if sc["cancellation_reason"]["enabled"] == true {
        if let Some(reason) = p.text("reason")? {
            let ok = sc["cancellation_reason"]["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x == reason));
            if !ok {
                return Err(EmulatorError::invalid_param(
                    "reason",
                    format!("`{reason}` is not one of the configuration's cancellation reasons."),
                ));
            }
            details["feedback"] = json!(reason);
        }
        if let Some(c) = p.text("comment")? {
            details["comment"] = json!(c);
        }
    }
    let params = json!({"cancellation_details": details});
    let updated = if sc["mode"] == "immediately" {
        subscriptions::cancel_now(st, ctx, &sub_id, Some(&Params::root(&params)))?
    } else {
        if sub["cancel_at_period_end"] == true {
            return Err(EmulatorError::invalid(format!(
                "The subscription {sub_id} is already set to cancel at the end of the period."
            )));
        }
        let mut params = params;
        params["cancel_at_period_end"] = json!("true");
        subscriptions::UPDATE(st, ctx, &Params::root(&params), &[&sub_id])?
    };
    Ok(json!({"subscription": updated}))
}

/// Accepting the cancellation flow's retention offer: the coupon becomes the subscription's
/// discount and the subscription is not cancelled. Offered only by a `subscription_cancel` flow
/// with `retention`, and only to a subscription without a discount.
fn do_accept_offer(st: &mut State, ctx: &Ctx, id: &str, body: &Value) -> EmulatorResult<Value> {
    let (session, cfg) = open(st, id)?;
    allow(&session, &cfg, Action::Cancel)?;
    Params::root(body).allow(&["subscription"])?;
    let coupon = session["flow"]["subscription_cancel"]["retention"]["coupon_offer"]["coupon"]
        .as_str()
        .ok_or_else(|| forbidden("This portal session makes no retention offer."))?
        .to_string();
    let sub = target_subscription(st, &session, Params::root(body).text("subscription")?)?;
    if sub["discounts"].as_array().is_some_and(|d| !d.is_empty()) {
        return Err(forbidden("The subscription already has a discount."));
    }
    let sub_id = sub.id()?.to_string();
    let updated = crate::resources::coupons::apply_to_subscription(st, ctx, &sub_id, &coupon)?;
    Ok(json!({"subscription": updated}))
}

fn do_update(st: &mut State, ctx: &Ctx, id: &str, body: &Value) -> EmulatorResult<Value> {
    let (session, cfg) = open(st, id)?;
    allow(&session, &cfg, Action::Update)?;
    let p = Params::root(body);
    p.allow(&["subscription", "price"])?;
    let sub = target_subscription(st, &session, p.text("subscription")?)?;
    let sub_id = sub.id()?.to_string();
    let su = &cfg["features"]["subscription_update"];
    let confirm = &session["flow"]["subscription_update_confirm"];
    let (price, quantity) = if confirm.is_object() {
        // The flow fixed the change: the request may only confirm it.
        let item = &confirm["items"][0];
        let fixed = item["price"].as_str();
        match (fixed, p.text("price")?) {
            (Some(f), Some(r)) if f != r => {
                return Err(forbidden(format!(
                    "This portal session only confirms the switch to {f}."
                )))
            }
            (Some(f), _) => (f.to_string(), item["quantity"].as_i64()),
            (None, Some(r)) => (r.to_string(), item["quantity"].as_i64()),
            (None, None) => return Err(EmulatorError::missing("price")),
        }
    } else {
        let allows_price = su["default_allowed_updates"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "price"));
        if !allows_price {
            return Err(forbidden(
                "The portal configuration does not allow price changes (features[subscription_update][default_allowed_updates]).",
            ));
        }
        (p.require("price")?.to_string(), None)
    };
    if !offered_prices(&cfg)?.contains(&price) {
        return Err(forbidden(format!(
            "The price {price} is not offered by the portal configuration (features[subscription_update][products])."
        )));
    }
    let items = sub.field("items")?.array_field("data")?;
    let [item] = items.as_slice() else {
        return Err(EmulatorError::invalid(
            "Subscriptions with multiple items are not updatable in the portal.",
        ));
    };
    if item["price"]["id"] == price.as_str() && quantity.is_none() {
        return Err(EmulatorError::invalid_param(
            "price",
            format!("The subscription is already on {price}."),
        ));
    }
    let mut change = json!({"id": item["id"], "price": price});
    if let Some(q) = quantity {
        change["quantity"] = json!(q.to_string());
    }
    let params = json!({
        "items": [change],
        "proration_behavior": su.str_field("proration_behavior")?,
    });
    let updated = subscriptions::UPDATE(st, ctx, &Params::root(&params), &[&sub_id])?;
    let invoice = updated["latest_invoice"]
        .as_str()
        .filter(|i| sub["latest_invoice"] != *i)
        .and_then(|i| st.invoices.get(i))
        .cloned()
        .unwrap_or(Value::Null);
    let pending: Vec<Value> = st
        .invoice_items
        .iter()
        .filter(|ii| ii["parent"]["subscription_details"]["subscription"] == sub_id.as_str())
        .filter(|ii| ii["invoice"].is_null() || ii["invoice"] == invoice["id"])
        .cloned()
        .collect();
    Ok(json!({"subscription": updated, "invoice_items": pending, "invoice": invoice}))
}

fn do_invoices(st: &mut State, ctx: &Ctx, id: &str) -> EmulatorResult<Value> {
    let (session, cfg) = open(st, id)?;
    allow(&session, &cfg, Action::Invoices)?;
    let params = json!({"customer": session["customer"], "limit": "100"});
    invoices::LIST(st, ctx, &Params::root(&params), &[])
}

// ---- HTTP ----

type ActionFn = fn(&mut State, &Ctx, &str, &Value) -> EmulatorResult<Value>;

fn status_for(e: &EmulatorError) -> StatusCode {
    e.status
}

async fn run_action(
    shared: Arc<Shared>,
    id: String,
    headers: HeaderMap,
    body: Bytes,
    action: ActionFn,
) -> Response {
    let form = is_form(&headers);
    let params = match helper_params(&headers, &body) {
        Ok(p) => stringify(&p),
        Err(e) => return answer_error(&shared, &id, form, &e),
    };
    let ctx = ctx(&shared);
    match mutate(&shared, |st| action(st, &ctx, &id, &params)) {
        Ok(mut v) => {
            let session = lock(&shared.state)
                .ok()
                .and_then(|st| st.portal_sessions.get(&id).cloned())
                .unwrap_or(Value::Null);
            let next = after_completion(&session);
            if !form {
                v["after_completion"] = next;
                return pages::json(StatusCode::OK, &v);
            }
            match next["type"].as_str() {
                Some("redirect") | Some("portal_homepage") => match next.str_field("url") {
                    Ok(url) => pages::redirect(url),
                    Err(e) => pages::json_error(&e),
                },
                Some(_) => pages::html(
                    StatusCode::OK,
                    layout(
                        "Done",
                        &format!(
                            "<section class=\"notice\"><h1>All set</h1><p>{}</p></section>{}",
                            esc(next["message"]
                                .as_str()
                                .unwrap_or("Your changes have been saved.")),
                            return_html(&session)
                        ),
                    ),
                ),
                None => render(
                    &shared,
                    &id,
                    Some(("notice", "Your changes have been saved.")),
                ),
            }
        }
        Err(e) => answer_error(&shared, &id, form, &e),
    }
}

fn answer_error(shared: &Shared, id: &str, form: bool, e: &EmulatorError) -> Response {
    if !form {
        return pages::json_error(e);
    }
    if e.code == Some("session_expired") {
        return expired_page();
    }
    let mut r = render(shared, id, Some(("error", &e.message)));
    *r.status_mut() = status_for(e);
    r
}

fn expired_page() -> Response {
    pages::html(
        StatusCode::NOT_FOUND,
        layout(
            "Link expired",
            "<section class=\"error\"><h1>This link has expired</h1>\
<p>For security reasons, this link to the customer portal has expired. \
Return to the website you came from and open the portal again.</p></section>",
        ),
    )
}

macro_rules! action_handler {
    ($name:ident, $f:path) => {
        async fn $name(
            AxState(shared): AxState<Arc<Shared>>,
            Path(id): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            run_action(shared, id, headers, body, $f).await
        }
    };
}

action_handler!(payment_method, do_payment_method);
action_handler!(customer, do_customer);
action_handler!(cancel, do_cancel);
action_handler!(update, do_update);
action_handler!(retention, do_accept_offer);

async fn invoices_json(AxState(shared): AxState<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let ctx = ctx(&shared);
    let result = lock(&shared.state).and_then(|mut st| do_invoices(&mut st, &ctx, &id));
    match result {
        Ok(v) => pages::json(StatusCode::OK, &v),
        Err(e) => pages::json_error(&e),
    }
}

async fn state_json(AxState(shared): AxState<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let result = lock(&shared.state).and_then(|mut st| {
        let (session, cfg) = open(&mut st, &id)?;
        describe(&st, &session, &cfg)
    });
    match result {
        Ok(v) => pages::json(StatusCode::OK, &v),
        Err(e) => pages::json_error(&e),
    }
}

async fn return_link(AxState(shared): AxState<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let url = lock(&shared.state).ok().and_then(|mut st| {
        open(&mut st, &id)
            .ok()
            .and_then(|(s, _)| s["return_url"].as_str().map(str::to_string))
    });
    match url {
        Some(u) => pages::redirect(&u),
        None => expired_page(),
    }
}

async fn page(AxState(shared): AxState<Arc<Shared>>, Path(id): Path<String>) -> Response {
    render(&shared, &id, None)
}

fn return_html(session: &Value) -> String {
    match session["return_url"].as_str() {
        Some(u) => format!(
            "<p><a id=\"return\" href=\"{}\">← Return to the website</a></p>",
            esc(u)
        ),
        None => String::new(),
    }
}

/// The portal page (or the expired page), with an optional `(class, message)` banner.
fn render(shared: &Shared, id: &str, banner: Option<(&str, &str)>) -> Response {
    let Ok(mut st) = lock(&shared.state) else {
        return expired_page();
    };
    let Ok((session, cfg)) = open(&mut st, id) else {
        return expired_page();
    };
    match portal_html(&st, &session, &cfg, banner) {
        Ok(body) => pages::html(StatusCode::OK, layout("Customer portal", &body)),
        Err(e) => pages::json_error(&e),
    }
}

fn portal_html(
    st: &State,
    session: &Value,
    cfg: &Value,
    banner: Option<(&str, &str)>,
) -> EmulatorResult<String> {
    let d = describe(st, session, cfg)?;
    let o = &d["offers"];
    let base = esc(session.str_field("url")?);
    let mut body = String::new();
    let headline = cfg["business_profile"]["headline"]
        .as_str()
        .unwrap_or("Manage your billing");
    body.push_str(&format!("<h1>{}</h1>", esc(headline)));
    let c = &d["customer"];
    body.push_str(&format!(
        "<p>Signed in as <b>{}</b></p>",
        esc(c["email"]
            .as_str()
            .or(c["name"].as_str())
            .unwrap_or("customer"))
    ));
    if let Some((class, msg)) = banner {
        body.push_str(&format!(
            "<section class=\"{class}\" id=\"{class}\">{}</section>",
            esc(msg)
        ));
    }

    // Subscriptions, with cancel and switch forms.
    for sub in d["subscriptions"].as_array().into_iter().flatten() {
        let sid = esc(sub.id()?);
        let item = &sub["items"]["data"][0];
        let price = &item["price"];
        let product = st
            .products
            .get(price.str_field("product")?)
            .and_then(|p| p["name"].as_str())
            .unwrap_or("Subscription");
        body.push_str(&format!(
            "<section><h2>{} — {} / {}</h2><p>Status: {}{}</p>",
            esc(product),
            money(
                price.i64_field("unit_amount")?,
                price.str_field("currency")?
            ),
            esc(price.field("recurring")?.str_field("interval")?),
            esc(sub.str_field("status")?),
            if sub["cancel_at_period_end"] == true {
                " (cancels at the end of the period)"
            } else {
                ""
            }
        ));
        if o["subscription_update"]["enabled"] == true {
            let current = price.id()?;
            let mut options = String::new();
            for p in o["subscription_update"]["prices"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|p| *p != current)
            {
                let label = match st.prices.get(p) {
                    None => p.to_string(),
                    Some(pr) => format!(
                        "{} {} / {}",
                        st.products
                            .get(pr.str_field("product")?)
                            .and_then(|x| x["name"].as_str())
                            .unwrap_or(p),
                        money(pr.i64_field("unit_amount")?, pr.str_field("currency")?),
                        pr.field("recurring")?.str_field("interval")?
                    ),
                };
                options.push_str(&format!(
                    "<option value=\"{}\">{}</option>",
                    esc(p),
                    esc(&label)
                ));
            }
            body.push_str(&format!(
                "<form method=\"post\" action=\"{base}/update\"><input type=\"hidden\" name=\"subscription\" value=\"{sid}\">\
<label>Switch plan <select name=\"price\">{options}</select></label><button type=\"submit\">Update plan</button></form>"
            ));
        }
        if o["subscription_cancel"]["enabled"] == true && sub["cancel_at_period_end"] != true {
            let reasons = &o["subscription_cancel"]["cancellation_reason"];
            let mut reason_html = String::new();
            if reasons["enabled"] == true {
                let opts: String = reasons["options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|r| format!("<option value=\"{r}\">{}</option>", r.replace('_', " ")))
                    .collect();
                reason_html = format!(
                    "<label>Reason <select name=\"reason\"><option value=\"\">—</option>{opts}</select></label>\
<label>Comment <input name=\"comment\"></label>"
                );
            }
            let when = if o["subscription_cancel"]["mode"] == "immediately" {
                "Cancel now"
            } else {
                "Cancel at the end of the period"
            };
            let offer =
                &session["flow"]["subscription_cancel"]["retention"]["coupon_offer"]["coupon"];
            let no_discount = sub["discounts"].as_array().is_none_or(|d| d.is_empty());
            if let (Some(coupon), true) = (offer.as_str(), no_discount) {
                let label = st
                    .coupons
                    .get(coupon)
                    .and_then(|c| c["name"].as_str())
                    .unwrap_or(coupon);
                body.push_str(&format!(
                    "<section class=\"notice\" id=\"retention\"><h3>Before you go: {}</h3>\
<form method=\"post\" action=\"{base}/retention\"><input type=\"hidden\" name=\"subscription\" value=\"{sid}\">\
<button type=\"submit\">Accept offer</button></form></section>",
                    esc(label)
                ));
            }
            body.push_str(&format!(
                "<form method=\"post\" action=\"{base}/cancel\"><input type=\"hidden\" name=\"subscription\" value=\"{sid}\">{reason_html}\
<button type=\"submit\">{when}</button></form>"
            ));
        }
        body.push_str("</section>");
    }

    if o["payment_method_update"]["enabled"] == true {
        let pm = &d["default_payment_method"]["card"];
        let current = if pm.is_object() {
            format!(
                "<p>Default card: {} •••• {}</p>",
                esc(pm.str_field("brand")?),
                esc(pm.str_field("last4")?)
            )
        } else {
            "<p>No default payment method.</p>".to_string()
        };
        let cards: String = TEST_CARDS
            .iter()
            .enumerate()
            .map(|(i, (id, label))| {
                format!(
                    "<label><input type=\"radio\" name=\"payment_method\" value=\"{id}\"{}> {}</label>",
                    if i == 0 { " checked" } else { "" },
                    esc(label)
                )
            })
            .collect();
        body.push_str(&format!(
            "<section><h2>Payment method</h2>{current}<form method=\"post\" action=\"{base}/payment_method\">{cards}\
<button type=\"submit\">Use this card</button></form></section>"
        ));
    }

    if o["customer_update"]["enabled"] == true {
        let mut fields = String::new();
        for f in o["customer_update"]["allowed_updates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            match f {
                "email" | "name" | "phone" => fields.push_str(&format!(
                    "<label>{f} <input name=\"{f}\" value=\"{}\"></label>",
                    esc(c.opt_str_field(f)?.unwrap_or_default())
                )),
                "address" => {
                    for k in ["line1", "line2", "city", "state", "postal_code", "country"] {
                        fields.push_str(&format!(
                            "<label>address {} <input name=\"address[{k}]\" value=\"{}\"></label>",
                            k.replace('_', " "),
                            esc(c.field("address")?[k].as_str().unwrap_or_default())
                        ));
                    }
                }
                _ => {}
            }
        }
        if !fields.is_empty() {
            body.push_str(&format!(
                "<section><h2>Billing information</h2><form method=\"post\" action=\"{base}/customer\">{fields}\
<button type=\"submit\">Save</button></form></section>"
            ));
        }
    }

    if o["invoice_history"]["enabled"] == true {
        let customer = session.str_field("customer")?;
        let mut rows = String::new();
        for i in st.invoices.newest_first() {
            if i.str_field("customer")? != customer {
                continue;
            }
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(i.opt_str_field("number")?.unwrap_or_default()),
                money(i.i64_field("total")?, i.str_field("currency")?),
                esc(i.str_field("status")?)
            ));
        }
        body.push_str(&format!(
            "<section><h2>Invoice history</h2><table><tr><th>Number</th><th>Total</th><th>Status</th></tr>{rows}</table></section>"
        ));
    }
    body.push_str(&return_html(session));
    Ok(body)
}
