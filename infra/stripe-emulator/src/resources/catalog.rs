//! Prices and products (read-only through the API; the catalogue is seeded).

use super::{arg, Handler};
use crate::error::{EmulatorError, EmulatorResult};
use crate::list::paginate;
use crate::params::Params;
use crate::server::V1Routes;
use crate::state::{Ctx, State};
use serde_json::{json, Value};

pub fn product_object(id: &str, name: &str, default_price: Option<&str>, now: i64) -> Value {
    json!({
        "id": id,
        "object": "product",
        "active": true,
        "created": now,
        "default_price": default_price,
        "description": null,
        "images": [],
        "livemode": false,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": null,
        "shippable": null,
        "statement_descriptor": null,
        "tax_code": null,
        "type": "service",
        "unit_label": null,
        "updated": now,
        "url": null,
    })
}

pub fn price_object(id: &str, product: &str, unit_amount: i64, interval: &str, now: i64) -> Value {
    json!({
        "id": id,
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": now,
        "currency": "usd",
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": id.strip_prefix("price_"),
        "metadata": {},
        "nickname": null,
        "product": product,
        "recurring": {
            "interval": interval,
            "interval_count": 1,
            "meter": null,
            "trial_period_days": null,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount.to_string(),
    })
}

/// A one-time price (`type: one_time`, no `recurring`), e.g. a lifetime licence.
pub fn one_time_price_object(id: &str, product: &str, unit_amount: i64, now: i64) -> Value {
    let mut price = price_object(id, product, unit_amount, "month", now);
    price["recurring"] = Value::Null;
    price["type"] = json!("one_time");
    price
}

/// The legacy `plan` view of a recurring price, still embedded in subscription items.
pub fn plan_from_price(price: &Value) -> Value {
    json!({
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": price["recurring"]["interval"],
        "interval_count": price["recurring"]["interval_count"],
        "livemode": false,
        "metadata": price["metadata"],
        "meter": null,
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": null,
        "transform_usage": null,
        "trial_period_days": null,
        "usage_type": "licensed",
    })
}

pub fn price<'s>(st: &'s State, id: &str, param: &str) -> EmulatorResult<&'s Value> {
    st.prices
        .get(id)
        .ok_or_else(|| EmulatorError::no_such("price", id, param))
}

pub const LIST_PRICES: Handler = list_prices;
fn list_prices(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[
        "active",
        "currency",
        "product",
        "type",
        "lookup_keys",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let active = p.boolean("active")?;
    let product = p.text("product")?;
    let currency = p.text("currency")?;
    let kind = p.one_of("type", &["one_time", "recurring"])?;
    let lookup = p.strings("lookup_keys")?;
    let items = st
        .prices
        .newest_first()
        .filter(|v| active.is_none_or(|a| v["active"] == a))
        .filter(|v| product.is_none_or(|x| v["product"] == x))
        .filter(|v| currency.is_none_or(|x| v["currency"] == x))
        .filter(|v| kind.is_none_or(|x| v["type"] == x))
        .filter(|v| {
            lookup
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| v["lookup_key"] == k.as_str()))
        })
        .cloned()
        .collect();
    paginate(items, p, "/v1/prices", "price")
}

pub const GET_PRICE: Handler = get_price;
fn get_price(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    price(st, arg(ids, 0), "id").cloned()
}

pub const LIST_PRODUCTS: Handler = list_products;
fn list_products(st: &mut State, _: &Ctx, p: &Params, _: &[&str]) -> EmulatorResult<Value> {
    p.allow(&["active", "ids", "limit", "starting_after", "ending_before"])?;
    let active = p.boolean("active")?;
    let ids = p.strings("ids")?;
    let items = st
        .products
        .newest_first()
        .filter(|v| active.is_none_or(|a| v["active"] == a))
        .filter(|v| {
            ids.as_ref()
                .is_none_or(|ids| ids.iter().any(|i| v["id"] == i.as_str()))
        })
        .cloned()
        .collect();
    paginate(items, p, "/v1/products", "product")
}

pub const GET_PRODUCT: Handler = get_product;
fn get_product(st: &mut State, _: &Ctx, p: &Params, ids: &[&str]) -> EmulatorResult<Value> {
    p.allow(&[])?;
    st.products
        .get(arg(ids, 0))
        .cloned()
        .ok_or_else(|| EmulatorError::no_such("product", arg(ids, 0), "id"))
}

pub fn routes() -> V1Routes {
    V1Routes::default()
        .get("/v1/prices", LIST_PRICES)
        .get("/v1/prices/{price}", GET_PRICE)
        .get("/v1/products", LIST_PRODUCTS)
        .get("/v1/products/{product}", GET_PRODUCT)
}
