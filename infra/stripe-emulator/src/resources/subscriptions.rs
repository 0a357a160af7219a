//! Subscriptions and their items: create (bills the first period), list, retrieve, update
//! (cancel at period end, plan change, metadata), cancel.

use super::{arg, catalog, invoices, payment_methods, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::new_id;
use crate::list::paginate;
use crate::object::Fields;
use crate::params::{apply_metadata, Params};
use crate::server::V1Routes;
use crate::state::{add_interval, previous_attributes, Ctx, State};
use serde_json::{json, Value};

const FEEDBACK: &[&str] = &[
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
];
const STATUSES: &[&str] = &[
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
];
/// Statuses in which a subscription can still be changed by a customer (portal flows).
pub const UPDATABLE: &[&str] = &["active", "trialing", "past_due"];

fn new_item(
    st: &State,
    sub_id: &str,
    price_id: &str,
    qty: i64,
    start: i64,
    param: &str,
) -> EmulatorResult<Value> {
    let price = catalog::price(st, price_id, param)?;
    if price["type"] != "recurring" {
        return Err(EmulatorError::invalid_param(
            param,
            "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.",
        ));
    }
    item_object(&new_id("si_"), sub_id, price, qty, start, st.now())
}

fn item_object(
    id: &str,
    sub_id: &str,
    price: &Value,
    qty: i64,
    start: i64,
    now: i64,
) -> EmulatorResult<Value> {
    // Only recurring prices get here (`type=one_time` is refused above).
    let recurring = price.field("recurring")?;
    let interval = recurring.str_field("interval")?;
    let count = recurring.i64_field("interval_count")?;
    Ok(json!({
        "id": id,
        "object": "subscription_item",
        "billing_thresholds": null,
        "created": now,
        "current_period_end": add_interval(start, interval, count),
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "plan": catalog::plan_from_price(price),
        "price": price,
        "quantity": qty,
        "subscription": sub_id,
        "tax_rates": [],
    }))
}

fn quantity(p: &Params) -> EmulatorResult<Option<i64>> {
    match p.integer("quantity")? {
        Some(q) if q < 0 => Err(EmulatorError::invalid_param(
            p.name("quantity"),
            "Invalid quantity: must be non-negative",
        )),
        q => Ok(q),
    }
}

pub const CREATE: Handler = create;
fn create(st: &mut State, ctx: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "customer",
        "items",
        "default_payment_method",
        "metadata",
        "description",
        "cancel_at_period_end",
        "payment_behavior",
        "proration_behavior",
        "collection_method",
        "off_session",
        "trial_period_days",
    ])?;
    let customer_id = p.require("customer")?;
    let customer = st.customer(customer_id, "customer")?.clone();
    let items = p
        .objects("items")?
        .filter(|i| !i.is_empty())
        .ok_or_else(|| EmulatorError::missing("items"))?;
    p.one_of(
        "payment_behavior",
        &[
            "allow_incomplete",
            "default_incomplete",
            "error_if_incomplete",
            "pending_if_incomplete",
        ],
    )?;
    p.one_of(
        "proration_behavior",
        &["always_invoice", "create_prorations", "none"],
    )?;
    p.one_of("collection_method", &["charge_automatically"])?;
    let trial_days = p.integer("trial_period_days")?;
    let default_pm = p.text("default_payment_method")?;
    if let Some(pm) = default_pm {
        payment_methods::ensure_attached(st, pm, customer_id, "default_payment_method")?;
    }
    let pay_with = default_pm.map(str::to_string).or_else(|| {
        customer["invoice_settings"]["default_payment_method"]
            .as_str()
            .map(str::to_string)
    });

    let now = st.now();
    let id = new_id("sub_");
    let mut data = Vec::new();
    for (i, it) in items.iter().enumerate() {
        it.allow(&["price", "quantity", "metadata"])?;
        let price = it.require("price")?;
        let qty = quantity(it)?.unwrap_or(1);
        let mut item = new_item(st, &id, price, qty, now, &format!("items[{i}][price]"))?;
        apply_metadata(&mut item["metadata"], it.raw("metadata"))?;
        if let Some(days) = trial_days {
            item["current_period_end"] = json!(now + days * 86_400);
        }
        data.push(item);
    }
    let currency = data
        .first()
        .map(|i| i["price"]["currency"].clone())
        .unwrap_or(json!("usd"));
    let charge_fails = pay_with
        .as_deref()
        .is_some_and(|pm| payment_methods::charge_fails(st, pm));
    let status = match (trial_days, &pay_with) {
        (Some(d), _) if d > 0 => "trialing",
        (_, Some(_)) if charge_fails => "incomplete",
        (_, Some(_)) => "active",
        // allow_incomplete without a payment method: the first invoice stays open.
        (_, None) => "incomplete",
    };
    let mut sub = json!({
        "id": id,
        "object": "subscription",
        "application": null,
        "application_fee_percent": null,
        "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": null,
        "billing_mode": {"flexible": null, "type": "classic", "updated_at": null},
        "billing_schedules": [],
        "billing_thresholds": null,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "cancellation_details": {"comment": null, "feedback": null, "reason": null},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": currency,
        "customer": customer_id,
        "customer_account": null,
        "days_until_due": null,
        "default_payment_method": default_pm,
        "default_source": null,
        "default_tax_rates": [],
        "description": p.text("description")?,
        "discounts": [],
        "ended_at": null,
        "invoice_settings": {"account_tax_ids": null, "custom_fields": null, "description": null, "footer": null, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": data,
            "has_more": false,
            "total_count": items.len(),
            "url": format!("/v1/subscription_items?subscription={id}"),
        },
        "latest_invoice": null,
        "livemode": false,
        "managed_payments": {"enabled": false},
        "metadata": {},
        "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": {"payment_method_options": null, "payment_method_types": null, "save_default_payment_method": "off"},
        "pending_invoice_item_interval": null,
        "pending_setup_intent": null,
        "pending_update": null,
        "schedule": null,
        "start_date": now,
        "status": status,
        "test_clock": null,
        "transfer_data": null,
        "trial_end": trial_days.map(|d| now + d * 86_400),
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": trial_days.map(|_| now),
    });
    apply_metadata(&mut sub["metadata"], p.raw("metadata"))?;
    if p.boolean("cancel_at_period_end")? == Some(true) {
        sub["cancel_at_period_end"] = json!(true);
        sub["cancel_at"] = period_end(&sub);
        sub["canceled_at"] = json!(now);
    }

    // Stripe emits `customer.subscription.created` (already naming its first invoice)
    // before the invoice's own events, so the invoice id is chosen up front.
    let invoice_id = new_id("in_");
    sub["latest_invoice"] = json!(invoice_id);
    st.subscriptions.insert(sub.clone())?;
    st.emit(ctx, "customer.subscription.created", &sub, None);
    let payment = match (&pay_with, charge_fails) {
        (None, _) => invoices::Payment::NoAttempt,
        (Some(_), true) => invoices::Payment::Fail,
        (Some(_), false) => invoices::Payment::Succeed,
    };
    invoices::bill(
        st,
        ctx,
        &sub,
        &invoice_id,
        "subscription_create",
        payment,
        true,
    )?;
    // Stripe records the currency on the customer with its first subscription.
    if customer["currency"].is_null() {
        if let Ok(c) = st.customer_mut(customer_id, "customer") {
            let before = c.clone();
            c["currency"] = currency.clone();
            let after = c.clone();
            st.emit(
                ctx,
                "customer.updated",
                &after,
                Some(previous_attributes(&before, &after)),
            );
        }
    }
    Ok(sub)
}

pub(crate) fn period_end(sub: &Value) -> Value {
    sub["items"]["data"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .filter_map(|i| i["current_period_end"].as_i64())
                .max()
        })
        .map_or(Value::Null, |e| json!(e))
}

fn sub_ref<'s>(st: &'s State, id: &str, param: &str) -> EmulatorResult<&'s Value> {
    st.subscriptions
        .get(id)
        .ok_or_else(|| EmulatorError::no_such("subscription", id, param))
}

pub const GET: Handler = get;
fn get(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    sub_ref(st, arg(ids, 0), "id").cloned()
}

pub const LIST: Handler = list;
fn list(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "customer",
        "price",
        "status",
        "created",
        "collection_method",
        "current_period_end",
        "current_period_start",
        "test_clock",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let customer = p.text("customer")?;
    let price = p.text("price")?;
    let status = p.one_of("status", STATUSES)?;
    let keep = |s: &Value| match status {
        None => s["status"] != "canceled",
        Some("all") => true,
        Some("ended") => s["status"] == "canceled" || s["status"] == "incomplete_expired",
        Some(x) => s["status"] == x,
    };
    let items = st
        .subscriptions
        .newest_first()
        .filter(|s| customer.is_none_or(|c| s["customer"] == c))
        .filter(|s| {
            price.is_none_or(|pr| {
                s["items"]["data"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|i| i["price"]["id"] == pr))
            })
        })
        .filter(|s| keep(s))
        .cloned()
        .collect();
    paginate(items, p, "/v1/subscriptions", "subscription")
}

fn apply_cancellation_details(sub: &mut Value, p: &Params) -> EmulatorResult<()> {
    if let Some(cd) = p.sub("cancellation_details")? {
        cd.allow(&["comment", "feedback"])?;
        if let Some(c) = cd.string("comment")? {
            sub["cancellation_details"]["comment"] =
                if c.is_empty() { Value::Null } else { json!(c) };
        }
        if cd.string("feedback")? == Some("") {
            sub["cancellation_details"]["feedback"] = Value::Null;
        } else if let Some(f) = cd.one_of("feedback", FEEDBACK)? {
            sub["cancellation_details"]["feedback"] = json!(f);
        }
    }
    Ok(())
}

pub const UPDATE: Handler = update;
fn update(st: &mut State, ctx: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "cancel_at_period_end",
        "cancel_at",
        "cancellation_details",
        "items",
        "proration_behavior",
        "proration_date",
        "payment_behavior",
        "metadata",
        "default_payment_method",
        "description",
        "off_session",
    ])?;
    let id = arg(ids, 0);
    let before = sub_ref(st, id, "id")?.clone();
    let now = st.now();
    let mut sub = before.clone();
    if sub["status"] == "canceled" {
        let only_allowed = p
            .map
            .keys()
            .all(|k| ["cancellation_details", "metadata", "expand"].contains(&k.as_str()));
        if !only_allowed {
            return Err(EmulatorError::invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
            ));
        }
    }
    p.one_of(
        "proration_behavior",
        &["always_invoice", "create_prorations", "none"],
    )?;
    p.one_of(
        "payment_behavior",
        &[
            "allow_incomplete",
            "default_incomplete",
            "error_if_incomplete",
            "pending_if_incomplete",
        ],
    )?;
    apply_metadata(&mut sub["metadata"], p.raw("metadata"))?;
    apply_cancellation_details(&mut sub, p)?;
    if let Some(d) = p.string("description")? {
        sub["description"] = if d.is_empty() { Value::Null } else { json!(d) };
    }
    if let Some(pm) = p.string("default_payment_method")? {
        if pm.is_empty() {
            sub["default_payment_method"] = Value::Null;
        } else {
            let customer = sub.str_field("customer")?.to_string();
            payment_methods::ensure_attached(st, pm, &customer, "default_payment_method")?;
            sub["default_payment_method"] = json!(pm);
        }
    }

    // Items: `id` (+ `price`/`quantity`/`deleted`) changes an item, no `id` adds one.
    let mut price_changes: Vec<(Value, Value)> = Vec::new();
    if let Some(items) = p.objects("items")? {
        let mut data: Vec<Value> = sub.field("items")?.array_field("data")?.clone();
        for (i, it) in items.iter().enumerate() {
            it.allow(&[
                "id",
                "price",
                "quantity",
                "deleted",
                "metadata",
                "clear_usage",
            ])?;
            let qty = quantity(it)?;
            match it.text("id")? {
                Some(si) => {
                    let pos = data.iter().position(|d| d["id"] == si).ok_or_else(|| {
                        EmulatorError::invalid_param(
                            format!("items[{i}][id]"),
                            format!("Invalid subscription_item: {si} does not belong to subscription {id}"),
                        )
                    })?;
                    if it.boolean("deleted")? == Some(true) {
                        data.remove(pos);
                        continue;
                    }
                    if let Some(price) = it.text("price")? {
                        let pr = catalog::price(st, price, &format!("items[{i}][price]"))?.clone();
                        let start = data[pos].i64_field("current_period_start")?;
                        let q = qty.or(data[pos]["quantity"].as_i64()).unwrap_or(1);
                        let mut item =
                            item_object(si, id, &pr, q, start, data[pos].i64_field("created")?)?;
                        item["metadata"] = data[pos]["metadata"].clone();
                        // A change of interval restarts the period now, as Stripe resets the anchor.
                        if pr["recurring"]["interval"]
                            != data[pos]["price"]["recurring"]["interval"]
                        {
                            item =
                                item_object(si, id, &pr, q, now, data[pos].i64_field("created")?)?;
                            sub["billing_cycle_anchor"] = json!(now);
                        }
                        if data[pos]["price"]["id"] != item["price"]["id"] {
                            price_changes.push((data[pos].clone(), item.clone()));
                        }
                        data[pos] = item;
                    } else if let Some(q) = qty {
                        data[pos]["quantity"] = json!(q);
                    }
                    apply_metadata(&mut data[pos]["metadata"], it.raw("metadata"))?;
                }
                None => {
                    let price = it.require("price")?;
                    let start = data
                        .first()
                        .and_then(|d| d["current_period_start"].as_i64())
                        .unwrap_or(now);
                    let mut item = new_item(
                        st,
                        id,
                        price,
                        qty.unwrap_or(1),
                        start,
                        &format!("items[{i}][price]"),
                    )?;
                    apply_metadata(&mut item["metadata"], it.raw("metadata"))?;
                    data.push(item);
                }
            }
        }
        if data.is_empty() {
            return Err(EmulatorError::invalid_param(
                "items",
                "A subscription must have at least one active plan.",
            ));
        }
        sub["items"]["total_count"] = json!(data.len());
        sub["items"]["data"] = Value::Array(data);
    }

    let at_period_end = p.boolean("cancel_at_period_end")?;
    let cancel_at = p.string("cancel_at")?;
    if at_period_end == Some(true) && cancel_at.is_some_and(|c| !c.is_empty()) {
        return Err(EmulatorError::invalid(
            "You may only specify one of these parameters: cancel_at, cancel_at_period_end.",
        )
        .code("parameters_exclusive")
        .param("cancel_at"));
    }
    match at_period_end {
        Some(true) => {
            sub["cancel_at_period_end"] = json!(true);
            sub["cancel_at"] = period_end(&sub);
            sub["canceled_at"] = json!(now);
        }
        Some(false) => {
            sub["cancel_at_period_end"] = json!(false);
            sub["cancel_at"] = Value::Null;
            sub["canceled_at"] = Value::Null;
            if p.sub("cancellation_details")?.is_none() {
                sub["cancellation_details"] =
                    json!({"comment": null, "feedback": null, "reason": null});
            }
        }
        None => {}
    }
    match cancel_at {
        None => {}
        Some("") => {
            sub["cancel_at"] = Value::Null;
            sub["canceled_at"] = Value::Null;
            sub["cancel_at_period_end"] = json!(false);
        }
        Some(v) => {
            let ts = match v {
                "max_period_end" => period_end(&sub).as_i64(),
                "min_period_end" => sub["items"]["data"].as_array().and_then(|d| {
                    d.iter()
                        .filter_map(|i| i["current_period_end"].as_i64())
                        .min()
                }),
                other => Some(other.parse::<i64>().map_err(|_| {
                    EmulatorError::invalid_param(
                        "cancel_at",
                        "Invalid timestamp: must be an integer Unix timestamp in the future.",
                    )
                })?),
            };
            let ts = ts.unwrap_or(now);
            if ts <= now {
                return Err(EmulatorError::invalid_param(
                    "cancel_at",
                    "Invalid timestamp: must be an integer Unix timestamp in the future.",
                ));
            }
            sub["cancel_at"] = json!(ts);
            sub["canceled_at"] = json!(now);
            // Since 2025 a cancel_at equal to the period end is reported as at-period-end.
            sub["cancel_at_period_end"] = json!(period_end(&sub).as_i64() == Some(ts));
        }
    }
    if sub["cancel_at"].is_null() {
        sub["cancellation_details"]["reason"] = Value::Null;
    } else if sub["status"] != "canceled" {
        sub["cancellation_details"]["reason"] = json!("cancellation_requested");
    }

    // Stripe's default for a plan change is `create_prorations`.
    let proration = p
        .one_of(
            "proration_behavior",
            &["always_invoice", "create_prorations", "none"],
        )?
        .unwrap_or("create_prorations");
    let interval_changed = price_changes.iter().any(|(old, new)| {
        old["price"]["recurring"]["interval"] != new["price"]["recurring"]["interval"]
    });
    // A change of interval bills the new period now; `always_invoice` bills prorations now.
    let invoice_now =
        !price_changes.is_empty() && (interval_changed || (proration == "always_invoice"));
    let invoice_id = new_id("in_");
    if invoice_now {
        sub["latest_invoice"] = json!(invoice_id);
    }

    if sub != before {
        st.subscriptions.insert(sub.clone())?;
        st.emit(
            ctx,
            "customer.subscription.updated",
            &sub,
            Some(previous_attributes(&before, &sub)),
        );
    }
    if proration != "none" {
        for (old, new) in &price_changes {
            create_prorations(st, ctx, &sub, old, new, now)?;
        }
    }
    if invoice_now {
        let payment = invoices::payment_for(st, &sub)?;
        invoices::bill(
            st,
            ctx,
            &sub,
            &invoice_id,
            "subscription_update",
            payment,
            interval_changed,
        )?;
    }
    Ok(sub)
}

fn product_name(st: &State, price: &Value) -> EmulatorResult<String> {
    Ok(st
        .products
        .get(price.str_field("product")?)
        .and_then(|p| p["name"].as_str())
        .unwrap_or("Subscription")
        .to_string())
}

/// Stripe's proration for a price change at `now`: a credit for the unused time on the old
/// price and, when the period continues, a charge for the remaining time on the new one.
fn create_prorations(
    st: &mut State,
    ctx: &Ctx,
    sub: &Value,
    old: &Value,
    new: &Value,
    now: i64,
) -> EmulatorResult<()> {
    let start = old.i64_field("current_period_start")?;
    let end = old.i64_field("current_period_end")?;
    if end <= start || now >= end {
        return Ok(());
    }
    let fraction = (end - now) as f64 / (end - start) as f64;
    let amount = |item: &Value| -> EmulatorResult<i64> {
        Ok(item.field("price")?.i64_field("unit_amount")? * item.i64_field("quantity")?)
    };
    let date = time::OffsetDateTime::from_unix_timestamp(now)
        .map(|t| format!("{} {}, {}", t.month(), t.day(), t.year()))
        .unwrap_or_default();
    let credit = -((amount(old)? as f64) * fraction).round() as i64;
    let old_desc = format!(
        "Unused time on {} × {} after {date}",
        old.i64_field("quantity")?,
        product_name(st, &old["price"])?
    );
    invoices::create_proration_item(st, ctx, sub, old, credit, old_desc, (now, end))?;
    if old["price"]["recurring"]["interval"] == new["price"]["recurring"]["interval"] {
        let charge = ((amount(new)? as f64) * fraction).round() as i64;
        let new_desc = format!(
            "Remaining time on {} × {} after {date}",
            new.i64_field("quantity")?,
            product_name(st, &new["price"])?
        );
        invoices::create_proration_item(st, ctx, sub, new, charge, new_desc, (now, end))?;
    }
    Ok(())
}

/// Ends a subscription whose `cancel_at` has come (clock advance): status canceled,
/// `ended_at` now, `canceled_at` kept from the request, `customer.subscription.deleted`.
pub fn end_scheduled(st: &mut State, ctx: &Ctx, id: &str) -> EmulatorResult<Value> {
    let now = st.now();
    let mut sub = sub_ref(st, id, "id")?.clone();
    sub["status"] = json!("canceled");
    sub["ended_at"] = json!(now);
    if sub["canceled_at"].is_null() {
        sub["canceled_at"] = json!(now);
    }
    sub["cancellation_details"]["reason"] = json!("cancellation_requested");
    st.subscriptions.insert(sub.clone())?;
    st.emit(ctx, "customer.subscription.deleted", &sub, None);
    Ok(sub)
}

/// Starts the next period of every item (clock advance) and bills it: the subscription
/// update, then `invoice.created`/`finalized` and `paid` or `payment_failed` (→ `past_due`).
pub fn renew(st: &mut State, ctx: &Ctx, id: &str) -> EmulatorResult<Value> {
    let before = sub_ref(st, id, "id")?.clone();
    let mut sub = before.clone();
    if let Some(items) = sub["items"]["data"].as_array_mut() {
        for item in items {
            let start = item.i64_field("current_period_end")?;
            let interval = item["price"]["recurring"]["interval"]
                .as_str()
                .unwrap_or("month")
                .to_string();
            let count = item["price"]["recurring"]["interval_count"]
                .as_i64()
                .unwrap_or(1);
            item["current_period_start"] = json!(start);
            item["current_period_end"] = json!(add_interval(start, &interval, count));
        }
    }
    if sub["status"] == "trialing" {
        sub["status"] = json!("active");
    }
    let invoice_id = new_id("in_");
    sub["latest_invoice"] = json!(invoice_id);
    st.subscriptions.insert(sub.clone())?;
    st.emit(
        ctx,
        "customer.subscription.updated",
        &sub,
        Some(previous_attributes(&before, &sub)),
    );
    let payment = invoices::payment_for(st, &sub)?;
    let payment = if payment == invoices::Payment::NoAttempt {
        // An automatic charge with nothing to charge fails like a declined card.
        invoices::Payment::Fail
    } else {
        payment
    };
    let invoice = invoices::bill(
        st,
        ctx,
        &sub,
        &invoice_id,
        "subscription_cycle",
        payment,
        true,
    )?;
    let target = if invoice["status"] == "paid" {
        "active"
    } else {
        "past_due"
    };
    if sub["status"] != target {
        let prev = sub.clone();
        sub["status"] = json!(target);
        st.subscriptions.insert(sub.clone())?;
        st.emit(
            ctx,
            "customer.subscription.updated",
            &sub,
            Some(previous_attributes(&prev, &sub)),
        );
    }
    Ok(sub)
}

/// Ends a subscription now: status canceled, `ended_at`/`canceled_at` set, and the
/// `customer.subscription.deleted` event.
pub fn cancel_now(
    st: &mut State,
    ctx: &Ctx,
    id: &str,
    p: Option<&Params>,
) -> EmulatorResult<Value> {
    let now = st.now();
    let mut sub = sub_ref(st, id, "id")?.clone();
    if sub["status"] == "canceled" {
        return Err(EmulatorError::invalid(format!(
            "This subscription has already been canceled: {id}"
        )));
    }
    if let Some(p) = p {
        apply_cancellation_details(&mut sub, p)?;
    }
    sub["status"] = json!("canceled");
    sub["ended_at"] = json!(now);
    sub["canceled_at"] = json!(now);
    sub["cancellation_details"]["reason"] = json!("cancellation_requested");
    st.subscriptions.insert(sub.clone())?;
    st.emit(ctx, "customer.subscription.deleted", &sub, None);
    Ok(sub)
}

pub const CANCEL: Handler = cancel;
fn cancel(st: &mut State, ctx: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&["cancellation_details", "invoice_now", "prorate"])?;
    p.boolean("invoice_now")?;
    p.boolean("prorate")?;
    cancel_now(st, ctx, arg(ids, 0), Some(p))
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .get("/v1/subscriptions", LIST)
        .post("/v1/subscriptions", CREATE)
        .get("/v1/subscriptions/{subscription}", GET)
        .post("/v1/subscriptions/{subscription}", UPDATE)
        .delete("/v1/subscriptions/{subscription}", CANCEL)
}
