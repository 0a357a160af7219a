//! Shortcuts for tests and demos (not Stripe API): a customer with a card and an active
//! subscription in one call, and a reset to the seeded state.

use crate::error::EmulatorResult;
use crate::object::Fields;
use crate::params::Params;
use crate::resources::{customers, subscriptions};
use crate::server::{lock, lock_anyway, mutate, Shared};
use crate::state::{Ctx, State};
use serde_json::{json, Map, Value};

/// What `POST /_emulator/customers` and [`crate::Emulator::create_customer`] take.
#[derive(Debug, Clone, Default)]
pub struct NewCustomer {
    pub email: String,
    pub name: Option<String>,
    pub metadata: Vec<(String, String)>,
    /// Defaults to `price_pro_monthly`.
    pub price: Option<String>,
    /// A test token; defaults to `pm_card_visa`.
    pub payment_method: Option<String>,
}

impl NewCustomer {
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            ..Default::default()
        }
    }
}

pub(crate) fn create_customer(shared: &Shared, c: &NewCustomer) -> EmulatorResult<Value> {
    let mut p = json!({"email": c.email});
    if let Some(n) = &c.name {
        p["name"] = json!(n);
    }
    if !c.metadata.is_empty() {
        p["metadata"] = Value::Object(
            c.metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        );
    }
    if let Some(pr) = &c.price {
        p["price"] = json!(pr);
    }
    if let Some(pm) = &c.payment_method {
        p["payment_method"] = json!(pm);
    }
    create_customer_from_params(shared, &p)
}

/// Runs customer create (with a default card) and subscription create as Stripe would,
/// recording the same events; all or nothing.
pub(crate) fn create_customer_from_params(shared: &Shared, p: &Value) -> EmulatorResult<Value> {
    let params = Params::root(p);
    params.allow(&["email", "name", "metadata", "price", "payment_method"])?;
    let email = params.require("email")?;
    let price = params
        .text("price")?
        .unwrap_or(crate::seed::PRICE_PRO_MONTHLY);
    let pm = params
        .text("payment_method")?
        .unwrap_or(crate::seed::PM_VISA);
    let mut customer_params = Map::new();
    customer_params.insert("email".into(), json!(email));
    if let Some(n) = params.text("name")? {
        customer_params.insert("name".into(), json!(n));
    }
    if let Some(m) = params.raw("metadata") {
        // JSON bodies may carry non-string metadata values; Stripe stores strings.
        let m = match m {
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map_or_else(|| json!(v.to_string()), |s| json!(s)),
                        )
                    })
                    .collect(),
            ),
            other => other.clone(),
        };
        customer_params.insert("metadata".into(), m);
    }
    customer_params.insert("payment_method".into(), json!(pm));
    customer_params.insert(
        "invoice_settings".into(),
        json!({"default_payment_method": pm}),
    );
    // Automatic actions carry no request in their events.
    let ctx = Ctx {
        base_url: shared.base_url.clone(),
        ..Default::default()
    };

    // One transaction for both steps: nothing interleaves, a failure undoes both.
    mutate(shared, |st| {
        let customer = customers::CREATE(
            st,
            &ctx,
            &Params::root(&Value::Object(customer_params)),
            &[],
        )?;
        let cid = customer.id()?.to_string();
        let sub_params = json!({"customer": cid, "items": [{"price": price}]});
        let sub = subscriptions::CREATE(st, &ctx, &Params::root(&sub_params), &[])?;
        let customer = st.customer(&cid, "customer")?.clone();
        let payment_method = customer
            .field("invoice_settings")?
            .opt_str_field("default_payment_method")?
            .and_then(|pm| st.payment_methods.get(pm))
            .cloned()
            .unwrap_or(Value::Null);
        let invoice = sub
            .opt_str_field("latest_invoice")?
            .and_then(|i| st.invoices.get(i))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(
            json!({"customer": customer, "payment_method": payment_method, "subscription": sub, "invoice": invoice}),
        )
    })
}

/// Back to the seeded state; forgets idempotency keys, the request log, webhook deliveries
/// and injected faults too.
pub(crate) fn reset(shared: &Shared) -> EmulatorResult<()> {
    {
        let mut st = lock(&shared.state)?;
        *st = State::new(&shared.api_version)?;
        crate::server::persist(shared, &st);
        // Under the state lock, so no new event slips between the two resets.
        shared.delivery.reset();
    }
    lock_anyway(&shared.idempotency).clear();
    lock_anyway(&shared.log).clear();
    shared.faults.clear();
    Ok(())
}
