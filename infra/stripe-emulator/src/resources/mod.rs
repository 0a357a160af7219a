//! One module per Stripe resource: object builders and endpoint handlers.

pub mod catalog;
pub mod checkout;
pub mod coupons;
pub mod customers;
pub mod events;
pub mod invoices;
pub mod payment_methods;
pub mod payments;
pub mod portal;
pub mod subscriptions;

use crate::error::EmulatorResult;
use crate::params::Params;
use crate::server::Shared;
use crate::state::{Ctx, State};
use axum::Router;
use serde_json::Value;
use std::sync::Arc;

/// Every endpoint: state (locked), request context, parameters, path ids.
pub type Handler = fn(&mut State, &Ctx, &Params, &[&str]) -> EmulatorResult<Value>;

/// Every `/v1` endpoint, each resource contributing its own.
pub fn routes() -> Router<Arc<Shared>> {
    [
        customers::routes(),
        payment_methods::routes(),
        subscriptions::routes(),
        invoices::routes(),
        catalog::routes(),
        portal::routes(),
        checkout::routes(),
        payments::routes(),
        coupons::routes(),
        events::routes(),
    ]
    .into_iter()
    .fold(Router::new(), |all, r| all.merge(r.into_router()))
}

/// `address` hash → Stripe's address object with every key present.
pub fn address(p: &Params, key: &str) -> EmulatorResult<Option<Value>> {
    let Some(a) = p.sub(key)? else {
        return Ok(None);
    };
    a.allow(&["city", "country", "line1", "line2", "postal_code", "state"])?;
    let mut out = serde_json::Map::new();
    for k in ["city", "country", "line1", "line2", "postal_code", "state"] {
        out.insert(k.into(), a.text(k)?.map(Value::from).unwrap_or(Value::Null));
    }
    Ok(Some(Value::Object(out)))
}

/// The `i`th id from the path (the router always supplies them).
pub fn arg<'a>(ids: &[&'a str], i: usize) -> &'a str {
    ids.get(i).copied().unwrap_or("")
}
