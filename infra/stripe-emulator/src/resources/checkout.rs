//! Checkout sessions: create, retrieve, expire, and completion (what the hosted payment page does).

use super::{arg, catalog, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::new_id;
use crate::object::Fields;
use crate::params::{apply_metadata, Params};
use crate::server::V1Routes;
use crate::state::{Ctx, State};
use serde_json::{json, Value};

pub const CREATE: Handler = create;
fn create(st: &mut State, ctx: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "mode",
        "customer",
        "customer_email",
        "line_items",
        "success_url",
        "cancel_url",
        "client_reference_id",
        "metadata",
        "subscription_data",
        "payment_intent_data",
        "allow_promotion_codes",
        "billing_address_collection",
        "locale",
        "payment_method_types",
        "ui_mode",
        "return_url",
    ])?;
    let mode = p
        .one_of("mode", &["payment", "setup", "subscription"])?
        .ok_or_else(|| EmulatorError::missing("mode"))?;
    let ui_mode = p
        .one_of("ui_mode", &["custom", "embedded", "hosted"])?
        .unwrap_or("hosted");
    let success_url = p.text("success_url")?;
    if ui_mode == "hosted" && success_url.is_none() {
        return Err(EmulatorError::missing("success_url"));
    }
    let customer = p.text("customer")?;
    let customer_email = p.text("customer_email")?;
    if customer.is_some() && customer_email.is_some() {
        return Err(EmulatorError::invalid(
            "You may only specify one of these parameters: customer, customer_email.",
        )
        .code("parameters_exclusive")
        .param("customer_email"));
    }
    if let Some(c) = customer {
        st.customer(c, "customer")?;
    }
    let items = p.objects("line_items")?.unwrap_or_default();
    if mode != "setup" && items.is_empty() {
        return Err(EmulatorError::missing("line_items"));
    }
    let mut line_items = Vec::new();
    let mut total = 0i64;
    let mut currency = Value::Null;
    let mut recurring = false;
    for (i, it) in items.iter().enumerate() {
        it.allow(&["price", "quantity", "adjustable_quantity"])?;
        let price_id = it.require("price")?;
        let price = catalog::price(st, price_id, &format!("line_items[{i}][price]"))?.clone();
        let qty = it.integer("quantity")?.ok_or_else(|| {
            EmulatorError::invalid_param(
                format!("line_items[{i}][quantity]"),
                format!("Quantity is required. Add `quantity` to `line_items[{i}]`"),
            )
        })?;
        recurring |= price["type"] == "recurring";
        let amount = price.i64_field("unit_amount")? * qty;
        total += amount;
        currency = price["currency"].clone();
        line_items.push(json!({
            "id": new_id("li_"),
            "object": "item",
            "amount_discount": 0,
            "amount_subtotal": amount,
            "amount_tax": 0,
            "amount_total": amount,
            "currency": price["currency"],
            "description": st.products.get(price.str_field("product")?).map(|p| p["name"].clone()),
            "price": price,
            "quantity": qty,
        }));
    }
    if mode == "payment" && recurring {
        return Err(EmulatorError::invalid_param(
            "line_items",
            "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
        ));
    }
    if mode != "payment" && p.raw("payment_intent_data").is_some() {
        return Err(EmulatorError::invalid_param(
            "payment_intent_data",
            "You can not pass `payment_intent_data` in `subscription` or `setup` mode.",
        ));
    }
    if let Some(pd) = p.sub("payment_intent_data")? {
        pd.allow(&["metadata", "description", "receipt_email"])?;
    }
    if mode == "subscription" && !recurring {
        return Err(EmulatorError::invalid_param(
            "line_items",
            "You must provide at least one recurring price in `subscription` mode when using prices.",
        ));
    }
    let now = st.now();
    let id = new_id("cs_test_");
    let mut metadata = json!({});
    apply_metadata(&mut metadata, p.raw("metadata"))?;
    if let Some(sd) = p.sub("subscription_data")? {
        sd.allow(&["metadata", "trial_period_days", "description"])?;
    }
    let url = (ui_mode == "hosted").then(|| format!("{}/c/pay/{id}", ctx.base_url));
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": false},
        "after_expiration": null,
        "allow_promotion_codes": p.boolean("allow_promotion_codes")?,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": p.one_of("billing_address_collection", &["auto", "required"])?,
        "cancel_url": p.text("cancel_url")?,
        "client_reference_id": p.text("client_reference_id")?,
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": now,
        "currency": currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "customer": customer,
        "customer_account": null,
        "customer_creation": if customer.is_none() && mode == "payment" { json!("if_required") } else { Value::Null },
        "customer_details": null,
        "customer_email": customer_email,
        "discounts": [],
        "expires_at": now + 24 * 3600,
        "integration_identifier": null,
        "invoice": null,
        "invoice_creation": if mode == "payment" {
            json!({"enabled": false, "invoice_data": {"account_tax_ids": null, "custom_fields": null, "description": null, "footer": null, "issuer": null, "metadata": {}, "rendering_options": null}})
        } else { Value::Null },
        "livemode": false,
        "locale": p.text("locale")?,
        "managed_payments": {"enabled": false},
        "metadata": metadata,
        "mode": mode,
        "origin_context": null,
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": "always",
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": if mode == "setup" { "no_payment_required" } else { "unpaid" },
        "permissions": null,
        "phone_number_collection": {"enabled": false},
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": null,
        "subscription": null,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": ui_mode,
        "url": url,
        "wallet_options": null,
    });
    st.checkout_sessions.insert(session.clone())?;
    // Kept aside for completing the session later (`line_items` is not part of the object).
    let subscription_data = p.raw("subscription_data").cloned().unwrap_or(Value::Null);
    let payment_intent_data = p.raw("payment_intent_data").cloned().unwrap_or(Value::Null);
    st.checkout_extras.insert(
        id,
        json!({"line_items": line_items, "subscription_data": subscription_data, "payment_intent_data": payment_intent_data}),
    );
    Ok(session)
}

pub const GET: Handler = get;
fn get(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    st.checkout_sessions
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("checkout.session", id, "session"))
}

pub const EXPIRE: Handler = expire;
/// Only an open session can be expired; afterwards it cannot be paid.
fn expire(st: &mut State, ctx: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&["expand"])?;
    let id = arg(ids, 0);
    let mut session = st
        .checkout_sessions
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("checkout.session", id, "session"))?;
    if session["status"] != "open" {
        return Err(EmulatorError::invalid(format!(
            "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".",
            session.str_field("status")?
        )));
    }
    session["status"] = json!("expired");
    session["url"] = Value::Null;
    st.checkout_sessions.insert(session.clone())?;
    st.emit(ctx, "checkout.session.expired", &session, None);
    Ok(session)
}

/// Test cards the hosted pages offer.
pub const TEST_CARDS: &[(&str, &str)] = &[
    (crate::seed::PM_VISA, "Visa •••• 4242"),
    (crate::seed::PM_MASTERCARD, "Mastercard •••• 4444"),
    (crate::seed::PM_DECLINED, "Visa •••• 0002 (declined)"),
    (crate::seed::PM_US_BANK_ACCOUNT, "US bank account •••• 6789"),
    (crate::seed::PM_SEPA_DEBIT, "SEPA Direct Debit •••• 3000"),
];

/// Completes an open checkout session with a test card, as paying on Stripe's page does:
/// the customer (created from `customer_email` if the session had none), the payment method
/// attached, in subscription mode the subscription and its paid first invoice, then the
/// session `complete`/`paid` and `checkout.session.completed`. A declined card is Stripe's
/// `card_declined` error and (the caller restoring state) changes nothing.
pub fn complete(st: &mut State, ctx: &Ctx, id: &str, pm: &str) -> EmulatorResult<Value> {
    let session = st
        .checkout_sessions
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("checkout.session", id, "session"))?;
    match session["status"].as_str() {
        Some("open") => {}
        Some("complete") => {
            return Err(EmulatorError::invalid(
                "This Checkout Session has already been completed.",
            ))
        }
        _ => {
            return Err(EmulatorError::invalid(
                "This Checkout Session is no longer active.",
            ))
        }
    }
    if st.pm_templates.get(pm).is_none() {
        return Err(EmulatorError::invalid_param(
            "payment_method",
            format!("Unknown test payment method: {pm}. Use pm_card_visa, pm_card_mastercard, pm_card_chargeDeclined, pm_usBankAccount or pm_sepaDebit."),
        ));
    }
    if pm == crate::seed::PM_DECLINED || super::payment_methods::charge_fails(st, pm) {
        return Err(EmulatorError::card_declined());
    }
    let customer_id = match session["customer"].as_str() {
        Some(c) => {
            st.customer(c, "customer")?;
            c.to_string()
        }
        None => {
            let mut cp = json!({});
            if let Some(e) = session["customer_email"].as_str() {
                cp["email"] = json!(e);
            }
            let c = super::customers::CREATE(st, ctx, &Params::root(&cp), &[])?;
            c.id()?.to_string()
        }
    };
    let extras = st.checkout_extras.get(id).cloned().unwrap_or(Value::Null);
    let mut subscription = Value::Null;
    let mut invoice = Value::Null;
    let mut payment_intent = Value::Null;
    if session["mode"] == "payment" {
        // A one-time payment does not save the method on the customer (no setup_future_usage).
        let used = super::payment_methods::clone_unattached(st, pm)?;
        let pi = super::payments::charge_now(
            st,
            ctx,
            &customer_id,
            &used,
            session.i64_field("amount_total")?,
            &session["currency"],
            &extras["payment_intent_data"],
        )?;
        payment_intent = pi["id"].clone();
    }
    let saved = match session["mode"].as_str() {
        Some("payment") => None,
        _ => Some(super::payment_methods::attach(
            st,
            ctx,
            pm,
            &customer_id,
            "payment_method",
        )?),
    };
    if session["mode"] == "subscription" {
        let items: Vec<Value> = extras["line_items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|li| json!({"price": li["price"]["id"], "quantity": li["quantity"].to_string()}))
            .collect();
        let mut sp =
            json!({"customer": customer_id, "items": items, "default_payment_method": saved});
        let sd = &extras["subscription_data"];
        for k in ["metadata", "trial_period_days", "description"] {
            if !sd[k].is_null() {
                sp[k] = sd[k].clone();
            }
        }
        let sub = super::subscriptions::CREATE(st, ctx, &Params::root(&sp), &[])?;
        invoice = sub["latest_invoice"].clone();
        subscription = sub["id"].clone();
    }
    let customer = st.customer(&customer_id, "customer")?.clone();
    let mut done = session.clone();
    done["status"] = json!("complete");
    done["payment_status"] = json!(if session["mode"] == "setup" {
        "no_payment_required"
    } else {
        "paid"
    });
    done["customer"] = json!(customer_id);
    done["subscription"] = subscription;
    done["invoice"] = invoice;
    done["payment_intent"] = payment_intent;
    done["customer_details"] = json!({
        "address": customer["address"],
        "business_name": null,
        "email": customer["email"].as_str().or(session["customer_email"].as_str()),
        "individual_name": null,
        "name": customer["name"],
        "phone": customer["phone"],
        "tax_exempt": customer["tax_exempt"],
        "tax_ids": [],
    });
    st.checkout_sessions.insert(done.clone())?;
    st.emit(ctx, "checkout.session.completed", &done, None);
    Ok(done)
}

/// `success_url` with `{CHECKOUT_SESSION_ID}` replaced, as Stripe does.
pub fn success_url(session: &Value) -> EmulatorResult<Option<String>> {
    let id = session.id()?;
    Ok(session
        .opt_str_field("success_url")?
        .map(|u| u.replace("{CHECKOUT_SESSION_ID}", id)))
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .post("/v1/checkout/sessions", CREATE)
        .get("/v1/checkout/sessions/{session}", GET)
        .post("/v1/checkout/sessions/{session}/expire", EXPIRE)
}
