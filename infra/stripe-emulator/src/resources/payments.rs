//! One-time payments: the payment intent and charge a `payment`-mode Checkout creates, and
//! refunds of those charges (full or partial) with `charge.refunded`.

use super::{arg, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::new_id;
use crate::list::paginate;
use crate::object::Fields;
use crate::params::{apply_metadata, Params};
use crate::server::V1Routes;
use crate::state::{previous_attributes, Ctx, State};
use serde_json::{json, Value};

fn money(amount: i64) -> String {
    format!("${}.{:02}", amount / 100, amount % 100)
}

/// What a charge's `payment_method_details` says of the method that paid.
fn method_details(pm: &Value) -> Value {
    let kind = pm["type"].as_str().unwrap_or("card");
    let details = match kind {
        "card" => json!({
            "amount_authorized": pm["amount"],
            "authorization_code": null,
            "brand": pm["card"]["brand"],
            "checks": pm["card"]["checks"],
            "country": pm["card"]["country"],
            "exp_month": pm["card"]["exp_month"],
            "exp_year": pm["card"]["exp_year"],
            "extended_authorization": {"status": "disabled"},
            "fingerprint": pm["card"]["fingerprint"],
            "funding": pm["card"]["funding"],
            "incremental_authorization": {"status": "unavailable"},
            "installments": null,
            "last4": pm["card"]["last4"],
            "mandate": null,
            "multicapture": {"status": "unavailable"},
            "network": pm["card"]["brand"],
            "network_token": {"used": false},
            "network_transaction_id": null,
            "overcapture": {"maximum_amount_capturable": pm["amount"], "status": "unavailable"},
            "regulated_status": "unregulated",
            "three_d_secure": null,
            "transaction_link_id": null,
            "wallet": null,
        }),
        other => pm[other].clone(),
    };
    let mut out = serde_json::Map::new();
    out.insert(kind.to_string(), details);
    out.insert("type".into(), json!(kind));
    Value::Object(out)
}

/// Charges `amount` to `pm` (a payment method object) for `customer` now: a succeeded
/// payment intent and its charge, with `payment_intent.created`, `charge.succeeded` and
/// `payment_intent.succeeded`. Returns the payment intent.
pub fn charge_now(
    st: &mut State,
    ctx: &Ctx,
    customer: &str,
    pm: &Value,
    amount: i64,
    currency: &Value,
    intent_data: &Value,
) -> EmulatorResult<Value> {
    let now = st.now();
    let pi_id = new_id("pi_");
    let ch_id = new_id("ch_");
    let mut metadata = json!({});
    apply_metadata(&mut metadata, intent_data.get("metadata"))?;
    let description = intent_data["description"].clone();
    let created = json!({
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic_async",
        "client_secret": format!("{pi_id}_secret_{}", new_id("")),
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": customer,
        "customer_account": null,
        "description": description,
        "excluded_payment_method_types": null,
        "last_payment_error": null,
        "latest_charge": null,
        "livemode": false,
        "managed_payments": {"enabled": false},
        "metadata": metadata,
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": null,
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": [pm["type"]],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "requires_payment_method",
        "transfer_data": null,
        "transfer_group": null,
    });
    st.emit(ctx, "payment_intent.created", &created, None);
    let mut pm_for_details = pm.clone();
    pm_for_details["amount"] = json!(amount);
    let charge = json!({
        "id": ch_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": format!("txn_{}", new_id("")),
        "billing_details": pm["billing_details"],
        "calculated_statement_descriptor": "PORTICO",
        "captured": true,
        "created": now,
        "currency": currency,
        "customer": customer,
        "description": description,
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "livemode": false,
        "metadata": {},
        "on_behalf_of": null,
        "outcome": {
            "advice_code": null,
            "network_advice_code": null,
            "network_decline_code": null,
            "network_status": "approved_by_network",
            "reason": null,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": true,
        "payment_intent": pi_id,
        "payment_method": pm["id"],
        "payment_method_details": method_details(&pm_for_details),
        "receipt_email": null,
        "receipt_number": null,
        "receipt_url": format!("{}/r/{ch_id}", ctx.base_url),
        "refunded": false,
        "refunds": {"object": "list", "data": [], "has_more": false, "total_count": 0, "url": format!("/v1/charges/{ch_id}/refunds")},
        "review": null,
        "shipping": null,
        "source": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null,
    });
    st.charges.insert(charge.clone())?;
    st.emit(ctx, "charge.succeeded", &charge, None);
    let mut pi = created.clone();
    pi["amount_received"] = json!(amount);
    pi["latest_charge"] = json!(ch_id);
    pi["payment_method"] = pm["id"].clone();
    pi["status"] = json!("succeeded");
    st.payment_intents.insert(pi.clone())?;
    st.emit(ctx, "payment_intent.succeeded", &pi, None);
    Ok(pi)
}

pub const GET_PAYMENT_INTENT: Handler = get_payment_intent;
fn get_payment_intent(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&["client_secret"])?;
    let id = arg(ids, 0);
    st.payment_intents
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("payment_intent", id, "intent"))
}

pub const LIST_PAYMENT_INTENTS: Handler = list_payment_intents;
fn list_payment_intents(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "customer",
        "created",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let customer = p.text("customer")?;
    let items = st
        .payment_intents
        .newest_first()
        .filter(|v| customer.is_none_or(|c| v["customer"] == c))
        .cloned()
        .collect();
    paginate(items, p, "/v1/payment_intents", "payment_intent")
}

pub const GET_CHARGE: Handler = get_charge;
fn get_charge(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    st.charges
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("charge", id, "charge"))
}

pub const LIST_CHARGES: Handler = list_charges;
fn list_charges(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "customer",
        "payment_intent",
        "created",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let customer = p.text("customer")?;
    let intent = p.text("payment_intent")?;
    let items = st
        .charges
        .newest_first()
        .filter(|v| customer.is_none_or(|c| v["customer"] == c))
        .filter(|v| intent.is_none_or(|i| v["payment_intent"] == i))
        .cloned()
        .collect();
    paginate(items, p, "/v1/charges", "charge")
}

/// `POST /v1/refunds`: refunds `amount` (default: what is left) of a charge, named directly
/// or through its payment intent. Stripe refunds test cards at once (`succeeded`), records
/// `refund.created` and `charge.refunded` (the charge with its new `amount_refunded`).
pub const CREATE_REFUND: Handler = create_refund;
fn create_refund(st: &mut State, ctx: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&["charge", "payment_intent", "amount", "reason", "metadata"])?;
    let reason = p.one_of(
        "reason",
        &["duplicate", "fraudulent", "requested_by_customer"],
    )?;
    let charge_id = match (p.text("charge")?, p.text("payment_intent")?) {
        (Some(_), Some(_)) => {
            return Err(EmulatorError::invalid(
                "You may only specify one of these parameters: charge, payment_intent.",
            )
            .code("parameters_exclusive")
            .param("payment_intent"))
        }
        (Some(c), None) => c.to_string(),
        (None, Some(pi)) => {
            let intent = st
                .payment_intents
                .get(pi)
                .ok_or_else(|| EmulatorError::no_such("payment_intent", pi, "payment_intent"))?;
            intent["latest_charge"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    EmulatorError::invalid(format!(
                        "This PaymentIntent ({pi}) does not have a successful charge to refund."
                    ))
                    .param("payment_intent")
                })?
        }
        (None, None) => {
            return Err(EmulatorError::invalid(
                "One of the following params should be provided for this request: payment_intent or charge.",
            ))
        }
    };
    let before = st
        .charges
        .get(&charge_id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("charge", &charge_id, "charge"))?;
    let captured = before.i64_field("amount_captured")?;
    let left = captured - before.i64_field("amount_refunded")?;
    if left <= 0 {
        return Err(EmulatorError::invalid(format!(
            "Charge {charge_id} has already been refunded."
        ))
        .code("charge_already_refunded"));
    }
    let amount = match p.integer("amount")? {
        None => left,
        Some(a) if a <= 0 => {
            return Err(EmulatorError::invalid_param(
                "amount",
                "Invalid positive integer",
            ))
        }
        Some(a) if a > left => {
            return Err(EmulatorError::invalid_param(
                "amount",
                format!(
                    "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                    money(a),
                    money(left)
                ),
            ))
        }
        Some(a) => a,
    };
    let mut metadata = json!({});
    apply_metadata(&mut metadata, p.raw("metadata"))?;
    let kind = before["payment_method_details"]["type"]
        .as_str()
        .unwrap_or("card")
        .to_string();
    let refund = json!({
        "id": new_id("re_"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": format!("txn_{}", new_id("")),
        "charge": charge_id,
        "created": st.now(),
        "currency": before["currency"],
        "customer": before["customer"],
        "customer_account": null,
        "destination_details": {kind.clone(): {"type": "refund"}, "type": kind},
        "metadata": metadata,
        "payment_intent": before["payment_intent"],
        "payment_method": before["payment_method"],
        "reason": reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null,
    });
    st.refunds.insert(refund.clone())?;
    st.emit(ctx, "refund.created", &refund, None);
    let mut charge = before.clone();
    let refunded = captured - left + amount;
    charge["amount_refunded"] = json!(refunded);
    charge["refunded"] = json!(refunded == captured);
    if let Some(list) = charge["refunds"]["data"].as_array_mut() {
        list.insert(0, refund.clone());
    }
    charge["refunds"]["total_count"] =
        json!(charge["refunds"]["data"].as_array().map_or(0, Vec::len));
    st.charges.insert(charge.clone())?;
    st.emit(
        ctx,
        "charge.refunded",
        &charge,
        Some(previous_attributes(&before, &charge)),
    );
    Ok(refund)
}

pub const GET_REFUND: Handler = get_refund;
fn get_refund(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    st.refunds
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("refund", id, "refund"))
}

pub const LIST_REFUNDS: Handler = list_refunds;
fn list_refunds(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "charge",
        "payment_intent",
        "created",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let charge = p.text("charge")?;
    let intent = p.text("payment_intent")?;
    let items = st
        .refunds
        .newest_first()
        .filter(|v| charge.is_none_or(|c| v["charge"] == c))
        .filter(|v| intent.is_none_or(|i| v["payment_intent"] == i))
        .cloned()
        .collect();
    paginate(items, p, "/v1/refunds", "refund")
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .get("/v1/payment_intents", LIST_PAYMENT_INTENTS)
        .get("/v1/payment_intents/{intent}", GET_PAYMENT_INTENT)
        .get("/v1/charges", LIST_CHARGES)
        .get("/v1/charges/{charge}", GET_CHARGE)
        .get("/v1/refunds", LIST_REFUNDS)
        .post("/v1/refunds", CREATE_REFUND)
        .get("/v1/refunds/{refund}", GET_REFUND)
}
