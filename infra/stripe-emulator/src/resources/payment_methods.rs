//! Payment methods: Stripe's test tokens as templates, attach (clones a template), detach,
//! list and retrieve.

use super::{arg, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::new_id;
use crate::list::paginate;
use crate::params::Params;
use crate::seed::PM_DECLINED;
use crate::server::V1Routes;
use crate::state::{previous_attributes, Ctx, State};
use serde_json::{json, Value};

pub fn card_template(id: &str, brand: &str, last4: &str, fingerprint: &str, now: i64) -> Value {
    json!({
        "id": id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
            "email": null,
            "name": null,
            "phone": null,
            "tax_id": null,
        },
        "card": {
            "brand": brand,
            "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "unchecked"},
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": fingerprint,
            "funding": "credit",
            "generated_from": null,
            "last4": last4,
            "networks": {"available": [brand], "preferred": null},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": true},
            "wallet": null,
        },
        "created": now,
        "customer": null,
        "customer_account": null,
        "livemode": false,
        "metadata": {},
        "type": "card",
    })
}

/// A bank debit test token: `us_bank_account` (ACH) or `sepa_debit`, with that type's fields.
pub fn bank_template(id: &str, kind: &str, last4: &str, fingerprint: &str, now: i64) -> Value {
    let details = match kind {
        "us_bank_account" => json!({
            "account_holder_type": "individual",
            "account_type": "checking",
            "bank_name": "STRIPE TEST BANK",
            "financial_connections_account": null,
            "fingerprint": fingerprint,
            "last4": last4,
            "networks": {"preferred": "ach", "supported": ["ach"]},
            "routing_number": "110000000",
            "status_details": {},
        }),
        _ => json!({
            "bank_code": "37040044",
            "branch_code": "",
            "country": "DE",
            "fingerprint": fingerprint,
            "generated_from": {"charge": null, "setup_attempt": null},
            "last4": last4,
        }),
    };
    let mut pm = card_template(id, "", last4, fingerprint, now);
    let object = pm.as_object_mut();
    if let Some(o) = object {
        o.remove("card");
        o.insert(kind.to_string(), details);
        o.insert("type".into(), json!(kind));
    }
    pm["billing_details"]["name"] = json!("Jenny Rosen");
    pm["billing_details"]["email"] = json!("jenny@example.com");
    pm
}

/// Attaches `pm_id` to `customer_id` and returns the attached payment method's id. A test
/// token (`pm_card_visa`) is cloned into a fresh `pm_...`, as Stripe does.
pub fn attach(
    st: &mut State,
    ctx: &Ctx,
    pm_id: &str,
    customer_id: &str,
    pm_param: &str,
) -> EmulatorResult<String> {
    attach_as(st, ctx, pm_id, customer_id, pm_param, new_id("pm_"))
}

/// [`attach`] with the id a cloned test token will get chosen by the caller (customer
/// create names it as the default before the attach event).
pub fn attach_as(
    st: &mut State,
    ctx: &Ctx,
    pm_id: &str,
    customer_id: &str,
    pm_param: &str,
    clone_id: String,
) -> EmulatorResult<String> {
    st.customer(customer_id, "customer")?;
    if pm_id == PM_DECLINED {
        return Err(EmulatorError::card_declined());
    }
    let now = st.now();
    let id = if let Some(t) = st.pm_templates.get(pm_id) {
        let mut pm = t.clone();
        let id = clone_id;
        pm["id"] = json!(id);
        pm["created"] = json!(now);
        pm["customer"] = json!(customer_id);
        st.payment_methods.insert(pm)?;
        id
    } else {
        let pm = st
            .payment_methods
            .get_mut(pm_id)
            .ok_or_else(|| EmulatorError::no_such("PaymentMethod", pm_id, pm_param))?;
        match pm["customer"].as_str() {
            Some(c) if c == customer_id => return Ok(pm_id.to_string()),
            Some(_) => {
                return Err(EmulatorError::invalid(
                    "The payment method you provided has already been attached to a customer.",
                )
                .param(pm_param))
            }
            None => {
                // Stripe refuses to reuse a payment method once it has been detached.
                return Err(EmulatorError::invalid(
                    "This PaymentMethod was previously used without being attached to a Customer or was detached from a Customer, and may not be used again.",
                )
                .param(pm_param));
            }
        }
    };
    if let Some(pm) = st.payment_methods.get(&id).cloned() {
        st.emit(ctx, "payment_method.attached", &pm, None);
    }
    Ok(id)
}

/// A fresh `pm_...` from a test token, attached to no customer: what a one-time payment
/// leaves behind when the method is not saved.
pub fn clone_unattached(st: &mut State, template: &str) -> EmulatorResult<Value> {
    let mut pm = st
        .pm_templates
        .get(template)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("PaymentMethod", template, "payment_method"))?;
    pm["id"] = json!(new_id("pm_"));
    pm["created"] = json!(st.now());
    st.payment_methods.insert(pm.clone())?;
    Ok(pm)
}

/// Whether charging this payment method fails (a clone of `pm_card_chargeCustomerFail`).
pub fn charge_fails(st: &State, pm_id: &str) -> bool {
    st.payment_methods
        .get(pm_id)
        .or_else(|| st.pm_templates.get(pm_id))
        .is_some_and(|pm| pm["card"]["fingerprint"] == crate::seed::CHARGE_FAIL_FINGERPRINT)
}

/// Checks that `pm_id` is attached to `customer_id` (for default payment method params).
pub fn ensure_attached(
    st: &State,
    pm_id: &str,
    customer_id: &str,
    param: &str,
) -> EmulatorResult<()> {
    match st.payment_methods.get(pm_id) {
        Some(pm) if pm["customer"] == customer_id => Ok(()),
        Some(_) => Err(EmulatorError::invalid(format!(
            "The customer does not have a payment method with the ID {pm_id}. The payment method must be attached to the customer."
        ))
        .param(param)),
        None if st.pm_templates.get(pm_id).is_some() => Err(EmulatorError::invalid(format!(
            "The customer does not have a payment method with the ID {pm_id}. The payment method must be attached to the customer."
        ))
        .param(param)),
        None => Err(EmulatorError::no_such("PaymentMethod", pm_id, param)),
    }
}

pub const ATTACH: Handler = attach_handler;
fn attach_handler(st: &mut State, ctx: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&["customer"])?;
    let customer = p.require("customer")?;
    let pm = arg(ids, 0);
    if st.payment_methods.get(pm).is_none() && st.pm_templates.get(pm).is_none() {
        return Err(EmulatorError::no_such(
            "PaymentMethod",
            pm,
            "payment_method",
        ));
    }
    let id = attach(st, ctx, pm, customer, "payment_method")?;
    st.payment_methods
        .get(&id)
        .cloned()
        .ok_or_else(|| EmulatorError::internal("attach lost the payment method"))
}

pub const DETACH: Handler = detach_handler;
fn detach_handler(st: &mut State, ctx: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    let pm = st
        .payment_methods
        .get_mut(id)
        .ok_or_else(|| EmulatorError::no_such("PaymentMethod", id, "payment_method"))?;
    let Some(customer) = pm["customer"].as_str().map(str::to_string) else {
        return Err(EmulatorError::invalid("The payment method you provided is not attached to a customer so detachment is impossible.")
            .param("payment_method"));
    };
    let old = pm.clone();
    pm["customer"] = Value::Null;
    let snapshot = pm.clone();
    st.emit(
        ctx,
        "payment_method.detached",
        &snapshot,
        Some(previous_attributes(&old, &snapshot)),
    );
    // A detached default stops being the customer's default, which Stripe reports as a
    // customer change.
    if let Ok(c) = st.customer_mut(&customer, "customer") {
        if c["invoice_settings"]["default_payment_method"] == id {
            let before = c.clone();
            c["invoice_settings"]["default_payment_method"] = Value::Null;
            let after = c.clone();
            st.emit(
                ctx,
                "customer.updated",
                &after,
                Some(previous_attributes(&before, &after)),
            );
        }
    }
    Ok(snapshot)
}

pub const GET: Handler = get;
fn get(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    let id = arg(ids, 0);
    st.payment_methods
        .get(id)
        .or_else(|| st.pm_templates.get(id))
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("PaymentMethod", id, "id"))
}

pub const LIST: Handler = list;
fn list(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "customer",
        "type",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let customer = p.text("customer")?;
    if let Some(c) = customer {
        st.customer(c, "customer")?;
    }
    let kind = p.text("type")?;
    let items = st
        .payment_methods
        .newest_first()
        .filter(|v| customer.map_or(!v["customer"].is_null(), |c| v["customer"] == c))
        .filter(|v| kind.is_none_or(|k| v["type"] == k))
        .cloned()
        .collect();
    paginate(items, p, "/v1/payment_methods", "payment_method")
}

pub const LIST_FOR_CUSTOMER: Handler = list_for_customer;
fn list_for_customer(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "type",
        "allow_redisplay",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let customer = arg(ids, 0);
    st.customer(customer, "customer")?;
    let kind = p.text("type")?;
    let items = st
        .payment_methods
        .newest_first()
        .filter(|v| v["customer"] == customer)
        .filter(|v| kind.is_none_or(|k| v["type"] == k))
        .cloned()
        .collect();
    paginate(
        items,
        p,
        &format!("/v1/customers/{customer}/payment_methods"),
        "payment_method",
    )
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .get(
            "/v1/customers/{customer}/payment_methods",
            LIST_FOR_CUSTOMER,
        )
        .get("/v1/payment_methods", LIST)
        .get("/v1/payment_methods/{payment_method}", GET)
        .post("/v1/payment_methods/{payment_method}/attach", ATTACH)
        .post("/v1/payment_methods/{payment_method}/detach", DETACH)
}
