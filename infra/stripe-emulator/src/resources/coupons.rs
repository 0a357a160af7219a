//! Coupons (create, retrieve) and the discounts they become on a subscription (a retention
//! offer accepted in the portal).

use super::{arg, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::ids::new_id;
use crate::object::Fields;
use crate::params::{apply_metadata, Params};
use crate::server::V1Routes;
use crate::state::{previous_attributes, Ctx, State};
use serde_json::{json, Value};

pub const CREATE: Handler = create;
fn create(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "id",
        "name",
        "percent_off",
        "amount_off",
        "currency",
        "duration",
        "duration_in_months",
        "max_redemptions",
        "redeem_by",
        "metadata",
    ])?;
    let id = p.text("id")?.map_or_else(|| new_id(""), str::to_string);
    if st.coupons.get(&id).is_some() {
        return Err(EmulatorError::invalid_param("id", "Coupon already exists.")
            .code("resource_already_exists"));
    }
    let percent_off = match p.text("percent_off")? {
        None => None,
        Some(raw) => match raw.parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 100.0 => Some(v),
            _ => {
                return Err(EmulatorError::invalid_param(
                    "percent_off",
                    "Invalid percent_off: must be greater than 0 and at most 100.",
                ))
            }
        },
    };
    let amount_off = p.integer("amount_off")?;
    let currency = p.text("currency")?;
    match (percent_off, amount_off) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(EmulatorError::invalid(
                "You must pass exactly one of amount_off or percent_off.",
            ))
        }
        (None, Some(_)) if currency.is_none() => return Err(EmulatorError::missing("currency")),
        _ => {}
    }
    let duration = p
        .one_of("duration", &["forever", "once", "repeating"])?
        .unwrap_or("once");
    let months = p.integer("duration_in_months")?;
    if duration == "repeating" && months.is_none() {
        return Err(EmulatorError::missing("duration_in_months"));
    }
    let mut metadata = json!({});
    apply_metadata(&mut metadata, p.raw("metadata"))?;
    let coupon = json!({
        "id": id,
        "object": "coupon",
        "amount_off": amount_off,
        "created": st.now(),
        "currency": currency,
        "duration": duration,
        "duration_in_months": if duration == "repeating" { json!(months) } else { Value::Null },
        "livemode": false,
        "max_redemptions": p.integer("max_redemptions")?,
        "metadata": metadata,
        "name": p.text("name")?,
        "percent_off": percent_off,
        "redeem_by": p.integer("redeem_by")?,
        "times_redeemed": 0,
        "valid": true,
    });
    st.coupons.insert(coupon.clone())?;
    Ok(coupon)
}

/// A coupon with `valid` as of now (past `redeem_by` or used up: no longer redeemable).
fn current(st: &State, id: &str, param: &str) -> EmulatorResult<Value> {
    let mut coupon = st
        .coupons
        .get(id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("coupon", id, param))?;
    let expired = coupon
        .opt_i64_field("redeem_by")?
        .is_some_and(|t| t <= st.now());
    let used_up = match coupon.opt_i64_field("max_redemptions")? {
        Some(m) => coupon.i64_field("times_redeemed")? >= m,
        None => false,
    };
    coupon["valid"] = json!(!expired && !used_up);
    Ok(coupon)
}

pub const GET: Handler = get;
fn get(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    current(st, arg(ids, 0), "coupon")
}

/// Checks that a coupon named by `param` can be redeemed now.
pub fn ensure_redeemable(st: &State, id: &str, param: &str) -> EmulatorResult<()> {
    if current(st, id, param)?["valid"] == true {
        Ok(())
    } else {
        Err(EmulatorError::invalid_param(
            param,
            format!("Coupon {id} is no longer valid."),
        ))
    }
}

/// Applies `coupon` to the whole subscription as a new discount (replacing any), with
/// `customer.discount.created` and `customer.subscription.updated`.
pub fn apply_to_subscription(
    st: &mut State,
    ctx: &Ctx,
    sub_id: &str,
    coupon_id: &str,
) -> EmulatorResult<Value> {
    let coupon = current(st, coupon_id, "coupon")?;
    if coupon["valid"] != true {
        return Err(EmulatorError::invalid(format!(
            "Coupon {coupon_id} is no longer valid."
        )));
    }
    let before = st
        .subscriptions
        .get(sub_id)
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("subscription", sub_id, "subscription"))?;
    let now = st.now();
    let end = match coupon["duration"].as_str() {
        Some("repeating") => json!(crate::state::add_interval(
            now,
            "month",
            coupon.i64_field("duration_in_months")?
        )),
        _ => Value::Null,
    };
    let discount = json!({
        "id": new_id("di_"),
        "object": "discount",
        "checkout_session": null,
        "customer": before["customer"],
        "customer_account": null,
        "end": end,
        "invoice": null,
        "invoice_item": null,
        "promotion_code": null,
        "source": {"coupon": coupon_id, "type": "coupon"},
        "start": now,
        "subscription": sub_id,
        "subscription_item": null,
    });
    st.discounts.insert(discount.clone())?;
    if let Some(c) = st.coupons.get_mut(coupon_id) {
        let redeemed = c.i64_field("times_redeemed")?;
        c["times_redeemed"] = json!(redeemed + 1);
    }
    st.emit(ctx, "customer.discount.created", &discount, None);
    let mut sub = before.clone();
    sub["discounts"] = json!([discount["id"]]);
    st.subscriptions.insert(sub.clone())?;
    st.emit(
        ctx,
        "customer.subscription.updated",
        &sub,
        Some(previous_attributes(&before, &sub)),
    );
    Ok(sub)
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .post("/v1/coupons", CREATE)
        .get("/v1/coupons/{coupon}", GET)
}
