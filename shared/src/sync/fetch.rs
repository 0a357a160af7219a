//! Reading a customer's truth from Stripe, concurrently, into a [`CustomerSnapshot`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::snapshot::{
    Address, CustomerSnapshot, DiscountSummary, InvoiceSummary, PaymentMethodSummary,
    PurchaseSummary, ScheduledChange, SubscriptionSummary, Truncated,
};
use crate::customer_link::USER_ID_METADATA;
use crate::ids::{CustomerId, UserId};
use crate::stripe::{
    list_all, Customer, Expandable, Invoice, InvoiceListParams, List, Page, PaymentIntent,
    PaymentMethod, PaymentSource, StripeClient, StripeClientError, Subscription,
    SubscriptionListParams, SubscriptionStatus,
};

/// How many recent invoices the account view shows.
const RECENT_INVOICES: u32 = 10;
/// The most saved payment methods and subscriptions one stored state lists. A customer may
/// have thousands; with at most this many the state stays far below DynamoDB's 400 KB item
/// limit, and what was left out is recorded in [`Truncated`].
pub const MAX_LISTED: usize = 100;

/// Metadata Portico puts on the payment intent of a lifetime checkout. Only Portico's secret
/// key can set it, so a payment intent carrying it is a lifetime purchase whatever prices are
/// on sale today (a price withdrawn from ALLOWED_ONE_TIME_PRICES keeps its buyers).
pub const PURCHASE_METADATA: &str = "portico_purchase";
pub const PURCHASE_LIFETIME: &str = "lifetime";
pub const PRICE_METADATA: &str = "portico_price";
pub const PRODUCT_METADATA: &str = "portico_product";

/// The customer's lifetime purchases that Stripe says were paid, oldest first, with what was
/// refunded of each (from the payment's latest charge).
pub async fn lifetime_purchases(
    stripe: &StripeClient,
    customer: &CustomerId,
) -> Result<Vec<PurchaseSummary>, StripeClientError> {
    let intents =
        list_all(|cursor| stripe.list_payment_intents(customer, Page::full(cursor))).await?;
    let mut purchases: Vec<PurchaseSummary> = intents.iter().filter_map(purchase).collect();
    purchases.sort_by(|a, b| (a.paid_at, &a.payment_intent).cmp(&(b.paid_at, &b.payment_intent)));
    Ok(purchases)
}

fn purchase(pi: &PaymentIntent) -> Option<PurchaseSummary> {
    let lifetime =
        pi.metadata.get(PURCHASE_METADATA).map(String::as_str) == Some(PURCHASE_LIFETIME);
    if !lifetime || pi.status.as_deref() != Some("succeeded") {
        return None;
    }
    let charge = pi.latest_charge.as_ref().and_then(Expandable::object);
    let amount = if pi.amount_received > 0 {
        pi.amount_received
    } else {
        pi.amount
    };
    let amount_refunded = charge.map_or(0, |c| c.amount_refunded);
    Some(PurchaseSummary {
        payment_intent: pi.id.clone(),
        price_id: pi.metadata.get(PRICE_METADATA).cloned(),
        product_id: pi.metadata.get(PRODUCT_METADATA).cloned(),
        product_name: None,
        amount,
        currency: pi.currency.clone().unwrap_or_default(),
        paid_at: charge
            .and_then(|c| c.created)
            .or(pi.created)
            .unwrap_or_default(),
        amount_refunded,
        refunded: charge.is_some_and(|c| c.refunded) || amount_refunded >= amount,
    })
}

pub(super) struct Fetched {
    pub snapshot: CustomerSnapshot,
    pub user_id: Option<UserId>,
}

pub(super) async fn customer_truth(
    stripe: &StripeClient,
    products: &ProductNames,
    id: &CustomerId,
) -> Result<Fetched, StripeClientError> {
    let customer = stripe.retrieve_customer(
        id,
        &["invoice_settings.default_payment_method", "default_source"],
    );
    // One page (the newest 100): more are never listed, so they are not fetched either.
    let methods = stripe.list_customer_payment_methods(id, Page::full(None));
    let subscriptions = list_all(|cursor| {
        let mut params = SubscriptionListParams::all_for(id);
        params.page = Page::full(cursor);
        async move { stripe.list_subscriptions(&params).await }
    });
    let invoice_params = InvoiceListParams {
        customer: Some(id.clone()),
        page: Page {
            limit: Some(RECENT_INVOICES),
            starting_after: None,
        },
        ..Default::default()
    };
    let invoices = stripe.list_invoices(&invoice_params);
    let gone = || {
        let mut snapshot = CustomerSnapshot::empty(id.clone());
        snapshot.deleted = true;
        Ok(Fetched {
            snapshot,
            user_id: None,
        })
    };
    let purchases = lifetime_purchases(stripe, id);
    let customer = match customer.await {
        // Deleted (200 with `deleted: true`) or no longer known (404): either way the customer
        // is gone, and that is what gets stored, not an error retried for days.
        Err(e) if e.is_gone() => return gone(),
        // A deleted customer has no fields to expand, and Stripe refuses the expansion: asked
        // plainly, it says it is gone.
        Err(StripeClientError::Api(api)) if api.param.as_deref() == Some("expand") => {
            match stripe.retrieve_customer(id, &[]).await {
                Err(e) if e.is_gone() => return gone(),
                Err(e) => return Err(e),
                Ok(_) => return Err(StripeClientError::Api(api)),
            }
        }
        other => other?,
    };
    let (methods, subscriptions, invoices, mut purchases) =
        tokio::try_join!(methods, subscriptions, invoices, purchases)?;
    let wanted = subscriptions
        .iter()
        .flat_map(|s| s.items.data.iter())
        .filter_map(|i| i.price.as_ref()?.product.as_ref())
        .filter(|p| p.object().is_none())
        .map(|p| p.id().to_string())
        .chain(purchases.iter().filter_map(|p| p.product_id.clone()));
    let names = products.names_for(stripe, wanted).await?;
    for p in &mut purchases {
        p.product_name = p.product_id.as_ref().and_then(|id| names.get(id).cloned());
    }
    let user_id = user_of(&customer);
    let snapshot = snapshot(customer, methods, subscriptions, invoices.data, &names);
    Ok(Fetched {
        snapshot: CustomerSnapshot {
            purchases,
            ..snapshot
        },
        user_id,
    })
}

fn user_of(customer: &Customer) -> Option<UserId> {
    customer
        .metadata
        .get(USER_ID_METADATA)
        .and_then(|id| UserId::parse(id.clone()).ok())
}

/// A payment method's own fields, by type; types Portico has no fields for keep only their type.
fn method(pm: &PaymentMethod) -> PaymentMethodSummary {
    let kind = pm.method_type.clone().unwrap_or_else(|| "card".into());
    let mut summary = PaymentMethodSummary::of_kind(pm.id.clone(), kind);
    if let Some(card) = &pm.card {
        summary.brand = card.brand.clone();
        summary.last4 = card.last4.clone();
        summary.exp_month = card.exp_month;
        summary.exp_year = card.exp_year;
    }
    if let Some(bank) = pm.us_bank_account.as_ref().or(pm.sepa_debit.as_ref()) {
        summary.bank_name = bank.bank_name.clone();
        summary.bank_code = bank.bank_code.clone();
        summary.country = bank.country.clone();
        summary.last4 = bank.last4.clone();
    }
    if let Some(link) = &pm.link {
        summary.email = link.email.clone();
    }
    summary
}

fn source(s: &PaymentSource) -> PaymentMethodSummary {
    PaymentMethodSummary {
        brand: s.brand.clone(),
        last4: s.last4.clone(),
        exp_month: s.exp_month,
        exp_year: s.exp_year,
        bank_name: s.bank_name.clone(),
        ..PaymentMethodSummary::of_kind(
            s.id.clone(),
            s.object.clone().unwrap_or_else(|| "source".into()),
        )
    }
}

/// The customer's saved methods, by id, to resolve references that were not expanded.
struct Methods(Vec<PaymentMethodSummary>);

impl Methods {
    fn resolve(&self, reference: &Expandable<PaymentMethod>) -> PaymentMethodSummary {
        reference.object().map(method).unwrap_or_else(|| {
            self.0
                .iter()
                .find(|m| m.id == reference.id())
                // Not among the customer's methods (detached meanwhile): only its id is known.
                .cloned()
                .unwrap_or_else(|| PaymentMethodSummary::of_kind(reference.id(), "unknown"))
        })
    }
}

pub fn status_name(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::PastDue => "past_due",
        SubscriptionStatus::Unpaid => "unpaid",
        SubscriptionStatus::Canceled => "canceled",
        SubscriptionStatus::Incomplete => "incomplete",
        SubscriptionStatus::IncompleteExpired => "incomplete_expired",
        SubscriptionStatus::Trialing => "trialing",
        SubscriptionStatus::Paused => "paused",
        SubscriptionStatus::Unknown => "unknown",
    }
}

fn subscription(
    s: &Subscription,
    names: &HashMap<String, String>,
    methods: &Methods,
    customer_default: Option<&PaymentMethodSummary>,
) -> SubscriptionSummary {
    let price = s.items.data.first().and_then(|i| i.price.as_ref());
    let product_id = price
        .and_then(|p| p.product.as_ref())
        .map(|p| p.id().to_string());
    let plan_name = price
        .and_then(|p| {
            p.product
                .as_ref()
                .and_then(Expandable::object)
                .and_then(|p| p.name.clone())
        })
        .or_else(|| product_id.as_ref().and_then(|id| names.get(id).cloned()))
        .or_else(|| price.and_then(|p| p.nickname.clone()));
    let period = s.current_period();
    let details = s.cancellation_details.clone().unwrap_or_default();
    SubscriptionSummary {
        id: s.id.to_string(),
        status: status_name(s.status).to_string(),
        price_id: price.map(|p| p.id.clone()),
        product_id,
        plan_name,
        interval: price
            .and_then(|p| p.recurring.as_ref())
            .and_then(|r| r.interval.clone()),
        amount: price.and_then(|p| p.unit_amount),
        currency: price.and_then(|p| p.currency.clone()),
        current_period_start: period.map(|(start, _)| start),
        current_period_end: period.map(|(_, end)| end),
        cancel_at_period_end: s.cancel_at_period_end,
        cancel_at: s.cancel_at,
        canceled_at: s.canceled_at,
        ended_at: s.ended_at,
        cancellation_reason: details.reason,
        cancellation_feedback: details.feedback,
        cancellation_comment: details.comment,
        scheduled_change: scheduled_change(s),
        discount: s
            .discounts
            .iter()
            .filter_map(Expandable::object)
            .next()
            .map(|d| {
                let coupon = d.coupon.as_ref().or_else(|| {
                    d.source
                        .as_ref()?
                        .coupon
                        .as_ref()
                        .and_then(Expandable::object)
                });
                DiscountSummary {
                    coupon_id: d.coupon_id().map(str::to_string),
                    coupon_name: coupon.and_then(|c| c.name.clone()),
                    percent_off: coupon.and_then(|c| c.percent_off),
                    amount_off: coupon.and_then(|c| c.amount_off),
                    duration: coupon.and_then(|c| c.duration.clone()),
                    end: d.end,
                }
            }),
        payment_method: s
            .default_payment_method
            .as_ref()
            .map(|pm| methods.resolve(pm))
            .or_else(|| customer_default.cloned()),
    }
}

/// The price change Stripe has waiting for `s`: the schedule's first phase that starts after the
/// current period began (with its first item's price), else a pending update.
fn scheduled_change(s: &Subscription) -> Option<ScheduledChange> {
    let started = s.current_period().map_or(0, |(start, _)| start);
    let from_schedule = s
        .schedule
        .as_ref()
        .and_then(Expandable::object)
        .filter(|schedule| {
            matches!(
                schedule.status.as_deref(),
                None | Some("active" | "not_started")
            )
        })
        .and_then(|schedule| schedule.phases.iter().find(|p| p.start_date > started))
        .map(|phase| ScheduledChange {
            source: "subscription_schedule".into(),
            price_id: phase
                .items
                .first()
                .and_then(|i| i.price.as_ref())
                .map(|p| p.id().to_string()),
            at: Some(phase.start_date),
        });
    from_schedule.or_else(|| {
        s.pending_update.as_ref().map(|u| ScheduledChange {
            source: "pending_update".into(),
            price_id: u
                .subscription_items
                .as_ref()
                .and_then(|items| items.first())
                .and_then(|i| i.price.as_ref())
                .map(|p| p.id.clone()),
            at: u.expires_at,
        })
    })
}

fn invoice(i: &Invoice) -> Option<InvoiceSummary> {
    Some(InvoiceSummary {
        id: i.id.clone()?,
        number: i.number.clone(),
        amount_due: i.amount_due.unwrap_or_default(),
        amount_paid: i.amount_paid.unwrap_or_default(),
        currency: i.currency.clone().unwrap_or_default(),
        status: i.status.clone(),
        hosted_invoice_url: i.hosted_invoice_url.clone(),
        invoice_pdf: i.invoice_pdf.clone(),
        created: i.created.unwrap_or_default(),
    })
}

fn snapshot(
    customer: Customer,
    methods: List<PaymentMethod>,
    subscriptions: Vec<Subscription>,
    invoices: Vec<Invoice>,
    names: &HashMap<String, String>,
) -> CustomerSnapshot {
    let mut truncated = Truncated {
        payment_methods: methods.has_more,
        subscriptions: 0,
    };
    let methods = methods.data;
    let mut payment_methods: Vec<PaymentMethodSummary> = methods.iter().map(method).collect();
    payment_methods.sort_by(|a, b| a.id.cmp(&b.id));
    let methods = Methods(payment_methods);
    let default_payment_method = customer
        .invoice_settings
        .default_payment_method
        .as_ref()
        .map(|pm| methods.resolve(pm))
        .or_else(|| {
            customer.default_source.as_ref().map(|s| {
                s.object()
                    .map(source)
                    .unwrap_or_else(|| PaymentMethodSummary::of_kind(s.id(), "source"))
            })
        });
    let mut subscriptions: Vec<SubscriptionSummary> = subscriptions
        .iter()
        .map(|s| subscription(s, names, &methods, default_payment_method.as_ref()))
        .collect();
    if subscriptions.len() > MAX_LISTED {
        // Live subscriptions first, so premium is still derived from every one that counts.
        subscriptions.sort_by(|a, b| (!a.is_live(), &a.id).cmp(&(!b.is_live(), &b.id)));
        truncated.subscriptions = subscriptions.len() - MAX_LISTED;
        subscriptions.truncate(MAX_LISTED);
    }
    subscriptions.sort_by(|a, b| a.id.cmp(&b.id));
    CustomerSnapshot {
        deleted: customer.deleted,
        email: customer.email,
        name: customer.name,
        phone: customer.phone,
        address: customer.address.map(|a| Address {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            state: a.state,
            postal_code: a.postal_code,
            country: a.country,
        }),
        default_payment_method,
        payment_methods: methods.0,
        subscriptions,
        invoices: invoices.iter().filter_map(invoice).collect(),
        purchases: Vec::new(),
        truncated,
        customer_id: customer.id,
    }
}

/// Product names for plan labels, cached per container: products are renamed rarely, and
/// Stripe's expansion depth stops at the price inside a subscription list.
pub struct ProductNames {
    ttl: Duration,
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

impl Default for ProductNames {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl ProductNames {
    async fn names_for(
        &self,
        stripe: &StripeClient,
        wanted: impl Iterator<Item = String>,
    ) -> Result<HashMap<String, String>, StripeClientError> {
        let mut cache = self.cache.lock().await;
        for id in wanted {
            let fresh = cache
                .get(&id)
                .is_some_and(|(_, at)| at.elapsed() < self.ttl);
            if !fresh {
                let product = stripe.retrieve_product(&id).await?;
                cache.insert(id.clone(), (product.name.unwrap_or(id), Instant::now()));
            }
        }
        Ok(cache
            .iter()
            .map(|(id, (name, _))| (id.clone(), name.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn customer(invoice_default: serde_json::Value, source: serde_json::Value) -> Customer {
        serde_json::from_value(json!({
            "id": "cus_1",
            "invoice_settings": {"default_payment_method": invoice_default},
            "default_source": source,
        }))
        .unwrap()
    }

    fn subscription(id: &str, default: serde_json::Value) -> Subscription {
        serde_json::from_value(json!({
            "id": id, "customer": "cus_1", "status": "active", "default_payment_method": default,
        }))
        .unwrap()
    }

    fn methods() -> List<PaymentMethod> {
        serde_json::from_value(json!({"object": "list", "has_more": false, "data": [
            {"id": "pm_card", "type": "card", "card": {"brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2031}},
            {"id": "pm_ach", "type": "us_bank_account", "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789"}},
            {"id": "pm_link", "type": "link", "link": {"email": "a@x.test"}},
        ]}))
        .unwrap()
    }

    fn paying(snapshot: &CustomerSnapshot, sub: &str) -> Option<String> {
        snapshot
            .subscriptions
            .iter()
            .find(|s| s.id == sub)
            .and_then(|s| s.payment_method.as_ref())
            .map(|m| m.id.clone())
    }

    #[test]
    fn the_subscriptions_default_pays_else_the_invoice_default_else_the_default_source() {
        let subs = vec![
            subscription("sub_own", json!("pm_ach")),
            subscription("sub_inherits", json!(null)),
        ];
        let names = HashMap::new();
        let s = snapshot(
            customer(json!("pm_card"), json!(null)),
            methods(),
            subs.clone(),
            vec![],
            &names,
        );
        assert_eq!(paying(&s, "sub_own").as_deref(), Some("pm_ach"));
        assert_eq!(paying(&s, "sub_inherits").as_deref(), Some("pm_card"));
        assert_eq!(s.default_payment_method.as_ref().unwrap().id, "pm_card");

        let source = json!({"id": "card_legacy", "object": "card", "brand": "Visa", "last4": "1881", "exp_month": 3, "exp_year": 2030});
        let s = snapshot(
            customer(json!(null), source),
            methods(),
            subs,
            vec![],
            &names,
        );
        assert_eq!(paying(&s, "sub_inherits").as_deref(), Some("card_legacy"));
        let legacy = s.default_payment_method.unwrap();
        assert_eq!(
            (legacy.kind.as_str(), legacy.last4.as_deref()),
            ("card", Some("1881"))
        );
    }

    #[test]
    fn non_card_methods_keep_their_own_fields() {
        let s = snapshot(
            customer(json!(null), json!(null)),
            methods(),
            vec![],
            vec![],
            &HashMap::new(),
        );
        let kinds: Vec<(&str, Option<&str>)> = s
            .payment_methods
            .iter()
            .map(|m| {
                (
                    m.kind.as_str(),
                    m.bank_name
                        .as_deref()
                        .or(m.email.as_deref())
                        .or(m.brand.as_deref()),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("us_bank_account", Some("STRIPE TEST BANK")),
                ("card", Some("visa")),
                ("link", Some("a@x.test")),
            ]
        );
    }

    #[test]
    fn a_schedules_next_phase_or_a_pending_update_is_the_scheduled_change() {
        let item = json!({"object": "list", "data": [{"id": "si_1", "current_period_start": 100,
            "current_period_end": 200, "price": {"id": "price_month"}}]});
        let scheduled: Subscription = serde_json::from_value(json!({
            "id": "sub_1", "customer": "cus_1", "status": "active", "items": item,
            "schedule": {"id": "sub_sched_1", "status": "active", "phases": [
                {"start_date": 100, "end_date": 200, "items": [{"price": "price_month"}]},
                {"start_date": 200, "end_date": null, "items": [{"price": "price_year"}]}
            ]}
        }))
        .unwrap();
        let change = scheduled_change(&scheduled).unwrap();
        assert_eq!(
            (
                change.source.as_str(),
                change.price_id.as_deref(),
                change.at
            ),
            ("subscription_schedule", Some("price_year"), Some(200))
        );
        let pending: Subscription = serde_json::from_value(json!({
            "id": "sub_2", "customer": "cus_1", "status": "active", "items": item,
            "schedule": null,
            "pending_update": {"expires_at": 150, "subscription_items": [{"id": "si_1", "price": {"id": "price_team"}}]}
        }))
        .unwrap();
        let change = scheduled_change(&pending).unwrap();
        assert_eq!(
            (
                change.source.as_str(),
                change.price_id.as_deref(),
                change.at
            ),
            ("pending_update", Some("price_team"), Some(150))
        );
        assert!(scheduled_change(&subscription("sub_3", json!(null))).is_none());
    }
}
