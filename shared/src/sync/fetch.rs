//! Reading a customer's truth from Stripe, concurrently, into a [`CustomerSnapshot`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::snapshot::{
    Address, CardSummary, CustomerSnapshot, InvoiceSummary, SubscriptionSummary,
};
use crate::customers::USER_ID_METADATA;
use crate::ids::{CustomerId, UserId};
use crate::stripe::{
    list_all, Customer, Expandable, Invoice, InvoiceListParams, Page, PaymentMethod, StripeClient,
    StripeClientError, Subscription, SubscriptionListParams, SubscriptionStatus,
};

/// How many recent invoices the account view shows.
const RECENT_INVOICES: u32 = 10;

pub(super) struct Fetched {
    pub snapshot: CustomerSnapshot,
    pub user_id: Option<UserId>,
}

pub(super) async fn customer_truth(
    stripe: &StripeClient,
    products: &ProductNames,
    id: &CustomerId,
) -> Result<Fetched, StripeClientError> {
    let customer = stripe.retrieve_customer(id, &["invoice_settings.default_payment_method"]);
    let cards = list_all(|cursor| stripe.list_card_payment_methods(id, Page::full(cursor)));
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
    let customer = match customer.await {
        Err(StripeClientError::Deleted { .. }) => {
            let mut snapshot = CustomerSnapshot::empty(id.clone());
            snapshot.deleted = true;
            return Ok(Fetched {
                snapshot,
                user_id: None,
            });
        }
        other => other?,
    };
    let (cards, subscriptions, invoices) = tokio::try_join!(cards, subscriptions, invoices)?;
    let names = products.names_for(stripe, &subscriptions).await?;
    Ok(Fetched {
        user_id: user_of(&customer),
        snapshot: snapshot(customer, cards, subscriptions, invoices.data, &names),
    })
}

fn user_of(customer: &Customer) -> Option<UserId> {
    customer
        .metadata
        .get(USER_ID_METADATA)
        .and_then(|id| UserId::parse(id.clone()).ok())
}

fn card(pm: &PaymentMethod) -> Option<CardSummary> {
    let card = pm.card.as_ref()?;
    Some(CardSummary {
        id: pm.id.clone(),
        brand: card.brand.clone().unwrap_or_default(),
        last4: card.last4.clone().unwrap_or_default(),
        exp_month: card.exp_month.unwrap_or_default(),
        exp_year: card.exp_year.unwrap_or_default(),
    })
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

fn subscription(s: &Subscription, names: &HashMap<String, String>) -> SubscriptionSummary {
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
    }
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
    cards: Vec<PaymentMethod>,
    subscriptions: Vec<Subscription>,
    invoices: Vec<Invoice>,
    names: &HashMap<String, String>,
) -> CustomerSnapshot {
    let resolve = |pm: &Expandable<PaymentMethod>| {
        pm.object()
            .and_then(card)
            .or_else(|| cards.iter().find(|c| c.id == pm.id()).and_then(card))
    };
    // The card on file is the customer's default; a customer who subscribed through Checkout has
    // none, and the card paying a live subscription (its own default) is the one on file then.
    let default_payment_method = customer
        .invoice_settings
        .default_payment_method
        .as_ref()
        .and_then(resolve)
        .or_else(|| {
            let mut live: Vec<&Subscription> = subscriptions
                .iter()
                .filter(|s| {
                    matches!(
                        s.status,
                        SubscriptionStatus::Active
                            | SubscriptionStatus::Trialing
                            | SubscriptionStatus::PastDue
                    )
                })
                .collect();
            live.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
            live.iter()
                .find_map(|s| s.default_payment_method.as_ref().and_then(resolve))
        });
    let mut payment_methods: Vec<CardSummary> = cards.iter().filter_map(card).collect();
    payment_methods.sort_by(|a, b| a.id.cmp(&b.id));
    let mut subscriptions: Vec<SubscriptionSummary> = subscriptions
        .iter()
        .map(|s| subscription(s, names))
        .collect();
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
        payment_methods,
        subscriptions,
        invoices: invoices.iter().filter_map(invoice).collect(),
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
        subscriptions: &[Subscription],
    ) -> Result<HashMap<String, String>, StripeClientError> {
        let wanted: Vec<String> = subscriptions
            .iter()
            .flat_map(|s| s.items.data.iter())
            .filter_map(|i| i.price.as_ref()?.product.as_ref())
            .filter(|p| p.object().is_none())
            .map(|p| p.id().to_string())
            .collect();
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
