//! Invoices: created by subscriptions (first period), listed and retrieved through the API.

use super::{arg, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::new_id;
use crate::list::paginate;
use crate::object::Fields;
use crate::params::Params;
use crate::server::V1Routes;
use crate::state::{Ctx, State};
use serde_json::{json, Value};

fn money(amount: i64) -> String {
    format!("${}.{:02}", amount / 100, amount % 100)
}

/// How an invoice's payment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payment {
    /// Charged successfully: `invoice.paid` and `invoice.payment_succeeded`.
    Succeed,
    /// The charge is declined: the invoice stays open, `invoice.payment_failed`.
    Fail,
    /// No attempt (no payment method): the invoice stays open.
    NoAttempt,
}

/// The payment outcome of charging a subscription's default payment method (or else its
/// customer's): Stripe's `pm_card_chargeCustomerFail` attaches fine and then declines.
pub fn payment_for(st: &State, sub: &Value) -> EmulatorResult<Payment> {
    let pm = match sub.opt_str_field("default_payment_method")? {
        Some(pm) => Some(pm),
        None => match st.customers.get(sub.str_field("customer")?) {
            Some(c) => c
                .field("invoice_settings")?
                .opt_str_field("default_payment_method")?,
            None => None,
        },
    };
    Ok(match pm {
        None => Payment::NoAttempt,
        Some(pm) if super::payment_methods::charge_fails(st, pm) => Payment::Fail,
        Some(_) => Payment::Succeed,
    })
}

/// The invoice line for one pending invoice item (a proration).
fn invoice_item_line(ii: &Value, invoice: &str) -> EmulatorResult<Value> {
    Ok(json!({
        "id": new_id("il_"),
        "object": "line_item",
        "amount": ii["amount"],
        "currency": ii["currency"],
        "description": ii["description"],
        "discount_amounts": [],
        "discountable": false,
        "discounts": [],
        "invoice": invoice,
        "livemode": false,
        "metadata": {},
        "parent": {
            "invoice_item_details": null,
            "subscription_item_details": {
                "invoice_item": ii["id"],
                "proration": true,
                "proration_details": {"credited_items": null},
                "subscription": ii["parent"]["subscription_details"]["subscription"],
                "subscription_item": ii["parent"]["subscription_details"]["subscription_item"],
            },
            "type": "subscription_item_details",
        },
        "period": ii["period"],
        "pretax_credit_amounts": [],
        "pricing": ii["pricing"],
        "quantity": ii["quantity"],
        "quantity_decimal": ii.i64_field("quantity")?.to_string(),
        "subscription": ii["parent"]["subscription_details"]["subscription"],
        "subtotal": ii["amount"],
        "taxes": [],
    }))
}

/// Creates a pending invoice item (a proration) for a subscription item, with
/// `invoiceitem.created`. It goes on the subscription's next invoice.
pub fn create_proration_item(
    st: &mut State,
    ctx: &Ctx,
    sub: &Value,
    item: &Value,
    amount: i64,
    description: String,
    period: (i64, i64),
) -> EmulatorResult<Value> {
    let now = st.now();
    let price = &item["price"];
    let ii = json!({
        "id": new_id("ii_"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": price["currency"],
        "customer": sub["customer"],
        "customer_account": null,
        "date": now,
        "description": description,
        "discountable": false,
        "discounts": [],
        "invoice": null,
        "livemode": false,
        "metadata": {},
        "net_amount": amount,
        "parent": {
            "subscription_details": {"subscription": sub["id"], "subscription_item": item["id"]},
            "type": "subscription_details",
        },
        "period": {"end": period.1, "start": period.0},
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": amount.to_string(),
        },
        "proration": true,
        "proration_details": {"discount_amounts": []},
        "quantity": 1,
        "tax_rates": [],
        "test_clock": null,
    });
    st.invoice_items.insert(ii.clone())?;
    st.emit(ctx, "invoiceitem.created", &ii, None);
    Ok(ii)
}

/// Creates, finalizes and (per `payment`) pays an invoice for `sub`: the current period of
/// its items when `with_items`, plus its pending invoice items. Returns the invoice.
pub fn bill(
    st: &mut State,
    ctx: &Ctx,
    sub: &Value,
    id: &str,
    reason: &str,
    payment: Payment,
    with_items: bool,
) -> EmulatorResult<Value> {
    let now = st.now();
    let sub_id = sub.id()?;
    let customer_id = sub.str_field("customer")?;
    let trialing = sub["status"] == "trialing";
    let mut lines = Vec::new();
    let mut total = 0;
    let items = if with_items {
        sub.field("items")?.array_field("data")?.clone()
    } else {
        Vec::new()
    };
    for item in &items {
        let price = &item["price"];
        let qty = item.i64_field("quantity")?;
        // A trial's first invoice bills nothing ("Trial period for Portico Pro").
        let unit = if trialing {
            0
        } else {
            price.i64_field("unit_amount")?
        };
        let amount = unit * qty;
        total += amount;
        let product_name = st
            .products
            .get(price.str_field("product")?)
            .and_then(|p| p["name"].as_str())
            .unwrap_or("Subscription")
            .to_string();
        let description = if trialing {
            format!("Trial period for {product_name}")
        } else {
            format!(
                "{qty} × {product_name} (at {} / {})",
                money(price.i64_field("unit_amount")?),
                price.field("recurring")?.str_field("interval")?
            )
        };
        lines.push(json!({
            "id": new_id("il_"),
            "object": "line_item",
            "amount": amount,
            "currency": price["currency"],
            "description": description,
            "discount_amounts": [],
            "discountable": true,
            "discounts": [],
            "invoice": id,
            "livemode": false,
            "metadata": {},
            "parent": {
                "invoice_item_details": null,
                "subscription_item_details": {
                    "invoice_item": null,
                    "proration": false,
                    "proration_details": {"credited_items": null},
                    "subscription": sub_id,
                    "subscription_item": item["id"],
                },
                "type": "subscription_item_details",
            },
            "period": {"end": item["current_period_end"], "start": item["current_period_start"]},
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": price["id"], "product": price["product"]},
                "type": "price_details",
                "unit_amount_decimal": unit.to_string(),
            },
            "quantity": qty,
            "quantity_decimal": qty.to_string(),
            "subscription": sub_id,
            "subtotal": amount,
            "taxes": [],
        }));
    }
    let pending: Vec<String> = st
        .invoice_items
        .iter()
        .filter(|ii| ii["invoice"].is_null())
        .filter(|ii| ii["parent"]["subscription_details"]["subscription"] == sub_id)
        .filter_map(|ii| ii["id"].as_str().map(str::to_string))
        .collect();
    for ii_id in &pending {
        if let Some(ii) = st.invoice_items.get_mut(ii_id) {
            ii["invoice"] = json!(id);
            total += ii.i64_field("amount")?;
            lines.push(invoice_item_line(ii, id)?);
        }
    }
    let customer = st.customer(customer_id, "customer")?.clone();
    let mut invoice = json!({
        "id": id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Portico (Stripe emulator)",
        "account_tax_ids": null,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "application": null,
        "attempt_count": 0,
        "attempted": false,
        "auto_advance": true,
        "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null, "provider": null, "status": null},
        "automatically_finalizes_at": null,
        "billing_reason": reason,
        "collection_method": "charge_automatically",
        "created": now,
        "currency": "usd",
        "custom_fields": null,
        "customer": customer_id,
        "customer_account": null,
        "customer_address": customer["address"],
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": customer["phone"],
        "customer_shipping": customer["shipping"],
        "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [],
        "default_payment_method": null,
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "due_date": null,
        "effective_at": null,
        "ending_balance": null,
        "footer": null,
        "from_invoice": null,
        "hosted_invoice_url": null,
        "invoice_pdf": null,
        "issuer": {"type": "self"},
        "last_finalization_error": null,
        "latest_revision": null,
        "lines": {"object": "list", "data": lines, "has_more": false, "total_count": lines.len(), "url": format!("/v1/invoices/{id}/lines")},
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": null,
        "number": null,
        "on_behalf_of": null,
        "parent": {
            "quote_details": null,
            "subscription_details": {"metadata": sub["metadata"], "subscription": sub_id},
            "type": "subscription_details",
        },
        "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
        "period_end": now,
        "period_start": now,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": null,
        "rendering": null,
        "shipping_cost": null,
        "shipping_details": null,
        "starting_balance": 0,
        "statement_descriptor": null,
        "status": "draft",
        "status_transitions": {"finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null},
        "subscription": sub_id,
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": null,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": null,
    });
    st.emit(ctx, "invoice.created", &invoice, None);

    // Finalize: number from the customer's prefix and sequence, hosted pages on the emulator.
    let seq = customer.i64_field("next_invoice_sequence")?;
    if let Ok(c) = st.customer_mut(customer_id, "customer") {
        c["next_invoice_sequence"] = json!(seq + 1);
    }
    invoice["number"] = json!(format!(
        "{}-{seq:04}",
        customer.str_field("invoice_prefix")?
    ));
    invoice["status"] = json!("open");
    invoice["effective_at"] = json!(now);
    invoice["status_transitions"]["finalized_at"] = json!(now);
    invoice["hosted_invoice_url"] = json!(format!("{}/i/{id}", ctx.base_url));
    invoice["invoice_pdf"] = json!(format!("{}/i/{id}/pdf", ctx.base_url));
    invoice["webhooks_delivered_at"] = json!(now);
    st.emit(ctx, "invoice.finalized", &invoice, None);

    // A credit (negative total) goes to the customer balance; the invoice owes nothing.
    if total < 0 {
        invoice["amount_due"] = json!(0);
        invoice["amount_remaining"] = json!(0);
    }
    let due = total.max(0);
    if payment == Payment::Fail && due > 0 {
        invoice["attempted"] = json!(true);
        invoice["attempt_count"] = json!(1);
        invoice["next_payment_attempt"] = json!(now + 3 * 86_400);
        st.emit(ctx, "invoice.payment_failed", &invoice, None);
    } else if payment == Payment::Succeed || due == 0 {
        invoice["status"] = json!("paid");
        invoice["amount_paid"] = json!(due);
        invoice["amount_remaining"] = json!(0);
        invoice["ending_balance"] = json!(0);
        invoice["attempted"] = json!(true);
        invoice["attempt_count"] = json!(if due > 0 { 1 } else { 0 });
        invoice["auto_advance"] = json!(false);
        invoice["status_transitions"]["paid_at"] = json!(now);
        st.emit(ctx, "invoice.paid", &invoice, None);
        st.emit(ctx, "invoice.payment_succeeded", &invoice, None);
    }
    st.invoices.insert(invoice.clone())?;
    Ok(invoice)
}

pub const LIST: Handler = list;
fn list(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "customer",
        "subscription",
        "status",
        "collection_method",
        "created",
        "due_date",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let customer = p.text("customer")?;
    let sub = p.text("subscription")?;
    let status = p.one_of(
        "status",
        &["draft", "open", "paid", "uncollectible", "void"],
    )?;
    let items = st
        .invoices
        .newest_first()
        .filter(|v| customer.is_none_or(|c| v["customer"] == c))
        .filter(|v| sub.is_none_or(|s| v["subscription"] == s))
        .filter(|v| status.is_none_or(|s| v["status"] == s))
        .cloned()
        .collect();
    paginate(items, p, "/v1/invoices", "invoice")
}

pub const GET: Handler = get;
fn get(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    st.invoices
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("invoice", id, "id"))
}

/// `POST /v1/invoices/create_preview` for a change of an existing subscription: the change is
/// made on a copy of the world and the invoice it leads to is returned; nothing is stored and no
/// event is recorded. When the change bills at once (`always_invoice`, or a new interval that
/// restarts the period) that is the invoice due now (`next_payment_attempt: null`); otherwise
/// it is the next renewal's invoice, the prorations included, dated at the period end.
pub const CREATE_PREVIEW: Handler = create_preview;
fn create_preview(st: &mut State, ctx: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&["customer", "subscription", "subscription_details", "expand"])?;
    let sub_id = p
        .text("subscription")?
        .ok_or_else(|| EmulatorError::missing("subscription"))?;
    let before = st
        .subscriptions
        .get(sub_id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("subscription", sub_id, "subscription"))?;
    if let Some(c) = p.text("customer")? {
        if before["customer"] != c {
            return Err(EmulatorError::invalid_param(
                "subscription",
                format!("The subscription {sub_id} does not belong to customer {c}."),
            ));
        }
    }
    if before["status"] == "canceled" {
        return Err(EmulatorError::invalid_param(
            "subscription",
            "You cannot preview the upcoming invoice for a canceled subscription.",
        ));
    }
    let mut update = json!({});
    if let Some(details) = p.sub("subscription_details")? {
        details.allow(&["items", "proration_behavior", "proration_date"])?;
        for key in ["items", "proration_behavior"] {
            if let Some(v) = details.raw(key) {
                update[key] = v.clone();
            }
        }
    }
    let mut world = st.clone();
    let changed = super::subscriptions::UPDATE(&mut world, ctx, &Params::root(&update), &[sub_id])
        .map_err(|e| match e.param.clone() {
            // `items[0][price]` of the update is `subscription_details[items][0][price]` here.
            Some(param) => {
                let nested = match param.split_once('[') {
                    Some((head, rest)) => format!("subscription_details[{head}][{rest}"),
                    None => format!("subscription_details[{param}]"),
                };
                e.param(nested)
            }
            None => e,
        })?;
    let (mut invoice, due_now) = if changed["latest_invoice"] != before["latest_invoice"] {
        let id = changed.str_field("latest_invoice")?;
        (world.invoices.get(id).cloned().unwrap_or(Value::Null), true)
    } else {
        let renewed = super::subscriptions::renew(&mut world, ctx, sub_id)?;
        let id = renewed.str_field("latest_invoice")?;
        (
            world.invoices.get(id).cloned().unwrap_or(Value::Null),
            false,
        )
    };
    let at = if due_now {
        st.now()
    } else {
        super::subscriptions::period_end(&before)
            .as_i64()
            .unwrap_or(st.now())
    };
    invoice["id"] = json!(format!("upcoming_{}", new_id("in_")));
    invoice["status"] = json!("draft");
    invoice["number"] = Value::Null;
    invoice["hosted_invoice_url"] = Value::Null;
    invoice["invoice_pdf"] = Value::Null;
    invoice["amount_paid"] = json!(0);
    invoice["amount_remaining"] = invoice["amount_due"].clone();
    invoice["attempted"] = json!(false);
    invoice["attempt_count"] = json!(0);
    invoice["created"] = json!(at);
    invoice["period_start"] = json!(at);
    invoice["period_end"] = json!(at);
    invoice["next_payment_attempt"] = if due_now { Value::Null } else { json!(at) };
    invoice["effective_at"] = Value::Null;
    invoice["webhooks_delivered_at"] = Value::Null;
    invoice["status_transitions"] = json!({"finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null});
    Ok(invoice)
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .get("/v1/invoices", LIST)
        .post("/v1/invoices/create_preview", CREATE_PREVIEW)
        .get("/v1/invoices/{invoice}", GET)
}
