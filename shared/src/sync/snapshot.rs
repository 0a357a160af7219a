//! What Portico keeps of a customer: a snapshot of the fields the SPA shows, the difference
//! between two snapshots, and the premium status derived from one.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::ids::CustomerId;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

fn card_type() -> String {
    "card".into()
}

/// A saved payment method as the SPA shows it: its type and that type's own fields (a card's
/// brand, last 4 and expiry; a bank account's bank and last 4; Link's email). States stored
/// before non-card methods were kept have no `type`: they were cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethodSummary {
    pub id: String,
    /// Stripe's payment method type (`card`, `us_bank_account`, `sepa_debit`, `link`, ...) or,
    /// for a legacy default source, its object (`card`, `bank_account`, `source`).
    #[serde(rename = "type", default = "card_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp_month: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp_year: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_name: Option<String>,
    /// SEPA's bank identifier (SEPA debits carry no bank name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl PaymentMethodSummary {
    /// A method of `kind` with no details yet.
    pub fn of_kind(id: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: kind.into(),
            brand: None,
            last4: None,
            exp_month: None,
            exp_year: None,
            bank_name: None,
            bank_code: None,
            country: None,
            email: None,
        }
    }

    /// "visa 4242", "STRIPE TEST BANK 6789", "SEPA debit 3000", "Link".
    fn label(&self) -> String {
        let last4 = self.last4.as_deref().unwrap_or("????");
        match self.kind.as_str() {
            "card" => format!("{} {last4}", self.brand.as_deref().unwrap_or("card")),
            "us_bank_account" | "bank_account" => {
                format!(
                    "{} {last4}",
                    self.bank_name.as_deref().unwrap_or("bank account")
                )
            }
            "sepa_debit" => format!("SEPA debit {last4}"),
            "link" => "Link".to_string(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSummary {
    pub id: String,
    pub status: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub plan_name: Option<String>,
    pub interval: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub cancellation_reason: Option<String>,
    pub cancellation_feedback: Option<String>,
    pub cancellation_comment: Option<String>,
    /// What pays this subscription: its own default payment method, else the customer's
    /// invoice default, else the customer's default source.
    #[serde(default)]
    pub payment_method: Option<PaymentMethodSummary>,
    #[serde(default)]
    pub scheduled_change: Option<ScheduledChange>,
    /// The discount on the whole subscription (a retention offer the user accepted, or any).
    #[serde(default)]
    pub discount: Option<DiscountSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscountSummary {
    pub coupon_id: Option<String>,
    pub coupon_name: Option<String>,
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub duration: Option<String>,
    pub end: Option<i64>,
}

// `percent_off` comes from JSON, which has no NaN, so equality is total.
impl Eq for DiscountSummary {}

impl DiscountSummary {
    fn label(&self) -> String {
        if let Some(name) = &self.coupon_name {
            return name.clone();
        }
        let id = self.coupon_id.as_deref().unwrap_or("a coupon");
        match (self.percent_off, self.amount_off) {
            (Some(p), _) => format!("{id} ({p}% off)"),
            (None, Some(a)) => format!("{id} ({}.{:02} off)", a / 100, a % 100),
            _ => id.to_string(),
        }
    }
}

/// A change of price Stripe will apply later: the next phase of a subscription schedule, or
/// a `pending_update` waiting for its payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledChange {
    /// `subscription_schedule` or `pending_update`.
    pub source: String,
    pub price_id: Option<String>,
    /// When the schedule's phase starts, or when the pending update expires.
    pub at: Option<i64>,
}

impl SubscriptionSummary {
    /// When a pending cancellation takes effect, if one is pending.
    pub fn pending_end(&self) -> Option<i64> {
        self.cancel_at.or(if self.cancel_at_period_end {
            self.current_period_end
        } else {
            None
        })
    }

    /// Statuses in which the subscription still bills or may bill again.
    pub fn is_live(&self) -> bool {
        matches!(
            self.status.as_str(),
            "active" | "trialing" | "past_due" | "unpaid" | "paused"
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceSummary {
    pub id: String,
    pub number: Option<String>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub status: Option<String>,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub created: i64,
}

/// A one-time purchase of lifetime access, as Stripe's payment intent and charge record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseSummary {
    pub payment_intent: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub paid_at: i64,
    pub amount_refunded: i64,
    /// Refunded in full: the purchase no longer grants anything.
    pub refunded: bool,
}

impl PurchaseSummary {
    fn label(&self) -> String {
        self.product_name
            .clone()
            .or_else(|| self.price_id.clone())
            .unwrap_or_else(|| self.payment_intent.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSnapshot {
    pub customer_id: CustomerId,
    pub deleted: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<Address>,
    /// The customer's own default: `invoice_settings.default_payment_method`, else the
    /// default source. A subscription may be paid by another method (see its `payment_method`).
    pub default_payment_method: Option<PaymentMethodSummary>,
    pub payment_methods: Vec<PaymentMethodSummary>,
    pub subscriptions: Vec<SubscriptionSummary>,
    #[serde(default)]
    pub invoices: Vec<InvoiceSummary>,
    /// Lifetime purchases, oldest first, refunded ones included.
    #[serde(default)]
    pub purchases: Vec<PurchaseSummary>,
    /// What the lists leave out; empty for nearly every customer.
    #[serde(default, skip_serializing_if = "Truncated::is_empty")]
    pub truncated: Truncated,
}

impl CustomerSnapshot {
    /// The lifetime purchase that grants premium: the first one not refunded in full.
    pub fn lifetime(&self) -> Option<&PurchaseSummary> {
        self.purchases.iter().find(|p| !p.refunded)
    }
}

/// What a snapshot's lists leave out so that it fits one DynamoDB item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncated {
    /// The customer has more saved payment methods than are listed.
    pub payment_methods: bool,
    /// Subscriptions not listed (ended ones first; every live one counts for premium).
    pub subscriptions: usize,
}

impl Truncated {
    pub fn is_empty(&self) -> bool {
        !self.payment_methods && self.subscriptions == 0
    }
}

impl CustomerSnapshot {
    /// What we know of a customer before the first sync: nothing.
    pub fn empty(customer_id: CustomerId) -> Self {
        CustomerSnapshot {
            customer_id,
            deleted: false,
            email: None,
            name: None,
            phone: None,
            address: None,
            default_payment_method: None,
            payment_methods: Vec::new(),
            subscriptions: Vec::new(),
            invoices: Vec::new(),
            purchases: Vec::new(),
            truncated: Truncated::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Customer,
    PaymentMethod,
    Subscription,
    /// Stands for changes of one sync that were not itemised (see [`itemised`]).
    Omitted,
    /// Which Portico user the customer belongs to (a link made or refused), not a Stripe field.
    Link,
    /// A lifetime purchase: bought, refunded in part, or refunded in full (access revoked).
    Purchase,
}

/// One field that differs between two snapshots, with a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub field: String,
    pub from: Value,
    pub to: Value,
    pub message: String,
}

impl Change {
    /// The subscription this change cancels, scheduled (a cancellation date appears) or at once
    /// (the status becomes `canceled`).
    pub fn cancelled_subscription(&self) -> Option<&str> {
        if self.kind != ChangeKind::Subscription {
            return None;
        }
        let (id, what) = self.field.strip_prefix("subscriptions.")?.split_once('.')?;
        let cancels = match what {
            "cancel_at" => !self.to.is_null(),
            "status" => self.to == "canceled",
            _ => false,
        };
        cancels.then_some(id)
    }
}

fn change(
    kind: ChangeKind,
    field: impl Into<String>,
    from: Value,
    to: Value,
    message: String,
) -> Change {
    Change {
        kind,
        field: field.into(),
        from,
        to,
        message,
    }
}

fn shown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("(none)")
}

fn date(epoch: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| epoch.to_string())
}

/// `changes` with at most `limit` entries: when there are more, the last entry says how many
/// were left out. One sync's audit entries are written in one transaction, which holds at most
/// 100 writes, so a customer with hundreds of changes (a first sync of 150 subscriptions) is
/// still recorded instead of failing on every retry.
pub fn itemised(changes: &[Change], limit: usize) -> Vec<Change> {
    if changes.len() <= limit || limit == 0 {
        return changes.iter().take(limit).cloned().collect();
    }
    let kept = limit - 1;
    let left_out = changes.len() - kept;
    let mut listed: Vec<Change> = changes[..kept].to_vec();
    listed.push(change(
        ChangeKind::Omitted,
        "changes",
        Value::Null,
        json!(left_out),
        format!("{left_out} more changes in this sync are not itemised"),
    ));
    listed
}

/// Everything that changed from `before` to `after`, customer fields first, in a stable order.
pub fn diff(before: &CustomerSnapshot, after: &CustomerSnapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    let text_fields: [(&str, &str, &Option<String>, &Option<String>); 3] = [
        ("email", "Email", &before.email, &after.email),
        ("name", "Name", &before.name, &after.name),
        ("phone", "Phone", &before.phone, &after.phone),
    ];
    for (field, label, from, to) in text_fields {
        if from != to {
            changes.push(change(
                ChangeKind::Customer,
                field,
                json!(from),
                json!(to),
                format!("{label} updated: {} → {}", shown(from), shown(to)),
            ));
        }
    }
    if before.address != after.address {
        changes.push(change(
            ChangeKind::Customer,
            "address",
            json!(before.address),
            json!(after.address),
            "Address updated".into(),
        ));
    }
    if before.deleted != after.deleted && after.deleted {
        changes.push(change(
            ChangeKind::Customer,
            "deleted",
            json!(false),
            json!(true),
            "Customer deleted".into(),
        ));
    }

    if before.default_payment_method != after.default_payment_method {
        let label = |c: &Option<PaymentMethodSummary>| {
            c.as_ref()
                .map_or("(none)".to_string(), PaymentMethodSummary::label)
        };
        let message = match (
            &before.default_payment_method,
            &after.default_payment_method,
        ) {
            (None, Some(new)) => format!("Payment method added: {}", new.label()),
            (Some(old), None) => format!("Payment method removed: {}", old.label()),
            (old, new) => format!("Payment method updated: {} → {}", label(old), label(new)),
        };
        changes.push(change(
            ChangeKind::PaymentMethod,
            "default_payment_method",
            json!(before.default_payment_method),
            json!(after.default_payment_method),
            message,
        ));
    }
    let ids =
        |methods: &[PaymentMethodSummary]| methods.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    if ids(&before.payment_methods) != ids(&after.payment_methods) {
        changes.push(change(
            ChangeKind::PaymentMethod,
            "payment_methods",
            json!(ids(&before.payment_methods)),
            json!(ids(&after.payment_methods)),
            format!(
                "Saved payment methods: {} → {}",
                before.payment_methods.len(),
                after.payment_methods.len()
            ),
        ));
    }

    for new in &after.subscriptions {
        match before.subscriptions.iter().find(|s| s.id == new.id) {
            None => changes.push(change(
                ChangeKind::Subscription,
                format!("subscriptions.{}", new.id),
                Value::Null,
                json!(new.status),
                format!("Subscription started: {} ({})", plan(new), new.status),
            )),
            Some(old) => subscription_changes(old, new, &mut changes),
        }
        let old_method = before
            .subscriptions
            .iter()
            .find(|s| s.id == new.id)
            .and_then(|s| s.payment_method.as_ref());
        // A change the customer's default explains is reported once, as that change.
        let follows_default = old_method == before.default_payment_method.as_ref()
            && new.payment_method == after.default_payment_method;
        if old_method != new.payment_method.as_ref() && !follows_default {
            changes.push(subscription_method_change(new, old_method));
        }
    }
    for new in &after.purchases {
        let old = before
            .purchases
            .iter()
            .find(|p| p.payment_intent == new.payment_intent);
        purchase_changes(old, new, &mut changes);
    }
    for gone in before
        .subscriptions
        .iter()
        .filter(|s| !after.subscriptions.iter().any(|n| n.id == s.id))
    {
        changes.push(change(
            ChangeKind::Subscription,
            format!("subscriptions.{}", gone.id),
            json!(gone.status),
            Value::Null,
            format!("Subscription removed: {}", plan(gone)),
        ));
    }
    changes
}

fn money(amount: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", amount / 100, amount % 100)
}

fn purchase_changes(old: Option<&PurchaseSummary>, new: &PurchaseSummary, out: &mut Vec<Change>) {
    let field = |name: &str| format!("purchases.{}.{name}", new.payment_intent);
    let (old_refunded, was_revoked) = old.map_or((0, false), |o| (o.amount_refunded, o.refunded));
    if old.is_none() {
        out.push(change(
            ChangeKind::Purchase,
            format!("purchases.{}", new.payment_intent),
            Value::Null,
            json!(new),
            format!(
                "Lifetime access purchased: {} ({})",
                new.label(),
                money(new.amount, &new.currency)
            ),
        ));
    }
    if new.refunded && !was_revoked {
        out.push(change(
            ChangeKind::Purchase,
            field("refunded"),
            json!(false),
            json!(true),
            format!(
                "Lifetime purchase refunded in full: {} (lifetime access revoked)",
                new.label()
            ),
        ));
    } else if new.amount_refunded != old_refunded && !new.refunded {
        out.push(change(
            ChangeKind::Purchase,
            field("amount_refunded"),
            json!(old_refunded),
            json!(new.amount_refunded),
            format!(
                "Partial refund on the lifetime purchase of {}: {} refunded in all (access kept)",
                new.label(),
                money(new.amount_refunded, &new.currency)
            ),
        ));
    }
}

fn subscription_method_change(
    new: &SubscriptionSummary,
    old: Option<&PaymentMethodSummary>,
) -> Change {
    let message = match (old, &new.payment_method) {
        (None, Some(m)) => format!("{} is paid with {}", plan(new), m.label()),
        (Some(m), None) => format!(
            "{} no longer has a payment method ({} removed)",
            plan(new),
            m.label()
        ),
        (Some(o), Some(n)) => format!(
            "Payment method for {} updated: {} → {}",
            plan(new),
            o.label(),
            n.label()
        ),
        (None, None) => String::new(),
    };
    change(
        ChangeKind::PaymentMethod,
        format!("subscriptions.{}.payment_method", new.id),
        json!(old),
        json!(new.payment_method),
        message,
    )
}

fn plan(s: &SubscriptionSummary) -> String {
    s.plan_name
        .clone()
        .or_else(|| s.price_id.clone())
        .unwrap_or_else(|| s.id.clone())
}

fn subscription_changes(
    old: &SubscriptionSummary,
    new: &SubscriptionSummary,
    out: &mut Vec<Change>,
) {
    let field = |name: &str| format!("subscriptions.{}.{name}", new.id);
    if old.status != new.status {
        let message = if new.status == "canceled" {
            format!("Subscription canceled: {}", plan(new))
        } else {
            format!("Subscription status: {} → {}", old.status, new.status)
        };
        out.push(change(
            ChangeKind::Subscription,
            field("status"),
            json!(old.status),
            json!(new.status),
            message,
        ));
    }
    if old.price_id != new.price_id {
        out.push(change(
            ChangeKind::Subscription,
            field("price"),
            json!(old.price_id),
            json!(new.price_id),
            format!("Plan changed: {} → {}", plan(old), plan(new)),
        ));
    }
    if old.discount != new.discount {
        let message = match (&old.discount, &new.discount) {
            (_, Some(d)) => format!("Discount applied to {}: {}", plan(new), d.label()),
            (Some(d), None) => format!("Discount ended on {}: {}", plan(new), d.label()),
            (None, None) => String::new(),
        };
        out.push(change(
            ChangeKind::Subscription,
            field("discount"),
            json!(old.discount),
            json!(new.discount),
            message,
        ));
    }
    let (old_end, new_end) = (old.pending_end(), new.pending_end());
    if old_end != new_end && new.status != "canceled" {
        let message = match new_end {
            Some(at) => format!("Subscription set to cancel on {}", date(at)),
            None => "Subscription renewed: pending cancellation removed".to_string(),
        };
        out.push(change(
            ChangeKind::Subscription,
            field("cancel_at"),
            json!(old_end),
            json!(new_end),
            message,
        ));
    }
    if old.current_period_end != new.current_period_end
        && new.status == old.status
        && old.price_id == new.price_id
    {
        out.push(change(
            ChangeKind::Subscription,
            field("current_period_end"),
            json!(old.current_period_end),
            json!(new.current_period_end),
            match new.current_period_end {
                Some(end) => format!("Subscription renewed until {}", date(end)),
                None => "Subscription period changed".to_string(),
            },
        ));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PremiumStatus {
    pub premium: bool,
    /// The subscription that grants (or last granted) premium.
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    /// When premium ends unless something changes: period end of a cancelling subscription,
    /// or the end of the grace period of a past-due one; never with a lifetime purchase.
    pub until: Option<i64>,
    /// The payment intent of the lifetime purchase that grants premium, if one does.
    #[serde(default)]
    pub lifetime: Option<String>,
}

/// Premium is derived from the subscriptions, never toggled by an event: active or trialing is
/// premium; past_due stays premium for `grace_seconds` after its current period began (the
/// failed renewal); anything else is not.
pub fn premium(snapshot: &CustomerSnapshot, now: i64, grace_seconds: i64) -> PremiumStatus {
    let grants = |s: &SubscriptionSummary| match s.status.as_str() {
        "active" | "trialing" => true,
        "past_due" => s
            .current_period_start
            .is_some_and(|start| now < start + grace_seconds),
        _ => false,
    };
    let until = |s: &SubscriptionSummary| match s.status.as_str() {
        "past_due" => s.current_period_start.map(|start| start + grace_seconds),
        _ => s.pending_end(),
    };
    // Of several granting subscriptions, report the one that lasts longest.
    let best = snapshot
        .subscriptions
        .iter()
        .filter(|s| grants(s))
        .max_by_key(|s| until(s).unwrap_or(i64::MAX));
    // A lifetime purchase grants premium whatever the subscriptions do, with no end.
    let lifetime = snapshot.lifetime().map(|p| p.payment_intent.clone());
    PremiumStatus {
        premium: best.is_some() || lifetime.is_some(),
        subscription_id: best.map(|s| s.id.clone()),
        status: best.map(|s| s.status.clone()),
        until: if lifetime.is_some() {
            None
        } else {
            best.and_then(until)
        },
        lifetime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: &str, brand: &str, last4: &str) -> PaymentMethodSummary {
        PaymentMethodSummary {
            brand: Some(brand.into()),
            last4: Some(last4.into()),
            exp_month: Some(12),
            exp_year: Some(2030),
            ..PaymentMethodSummary::of_kind(id, "card")
        }
    }

    fn sub(id: &str, status: &str) -> SubscriptionSummary {
        SubscriptionSummary {
            id: id.into(),
            status: status.into(),
            price_id: Some("price_pro_monthly".into()),
            product_id: Some("prod_pro".into()),
            plan_name: Some("Portico Pro".into()),
            interval: Some("month".into()),
            amount: Some(1500),
            currency: Some("usd".into()),
            current_period_start: Some(1_795_000_000),
            current_period_end: Some(1_797_592_000),
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            cancellation_reason: None,
            cancellation_feedback: None,
            cancellation_comment: None,
            payment_method: Some(card("pm_1", "visa", "4242")),
            scheduled_change: None,
            discount: None,
        }
    }

    fn snapshot() -> CustomerSnapshot {
        let mut s = CustomerSnapshot::empty(CustomerId::parse("cus_A1").unwrap());
        s.email = Some("a@x.test".into());
        s.default_payment_method = Some(card("pm_1", "visa", "4242"));
        s.payment_methods = vec![card("pm_1", "visa", "4242")];
        s.subscriptions = vec![sub("sub_1", "active")];
        s
    }

    #[test]
    fn cancellations_are_scheduled_dates_or_the_canceled_status() {
        let sub = |field: &str, from: Value, to: Value| Change {
            kind: ChangeKind::Subscription,
            field: field.into(),
            from,
            to,
            message: String::new(),
        };
        let scheduled = sub(
            "subscriptions.sub_1.cancel_at",
            Value::Null,
            json!(1_800_000_000),
        );
        assert_eq!(scheduled.cancelled_subscription(), Some("sub_1"));
        let ended = sub(
            "subscriptions.sub_2.status",
            json!("active"),
            json!("canceled"),
        );
        assert_eq!(ended.cancelled_subscription(), Some("sub_2"));
        let resumed = sub(
            "subscriptions.sub_1.cancel_at",
            json!(1_800_000_000),
            Value::Null,
        );
        assert_eq!(resumed.cancelled_subscription(), None);
        let past_due = sub(
            "subscriptions.sub_1.status",
            json!("active"),
            json!("past_due"),
        );
        assert_eq!(past_due.cancelled_subscription(), None);
        let started = sub("subscriptions.sub_3", Value::Null, json!("canceled"));
        assert_eq!(started.cancelled_subscription(), None);
    }

    #[test]
    fn identical_snapshots_have_no_changes() {
        assert!(diff(&snapshot(), &snapshot()).is_empty());
    }

    #[test]
    fn the_portal_round_trip_changes_read_as_the_spa_expects() {
        let before = snapshot();
        let mut after = snapshot();
        after.email = Some("b@x.test".into());
        after.default_payment_method = Some(card("pm_2", "mastercard", "4444"));
        after
            .payment_methods
            .push(card("pm_2", "mastercard", "4444"));
        after.subscriptions[0].cancel_at_period_end = true;
        after.subscriptions[0].cancel_at = Some(1_797_592_000);
        let changes = diff(&before, &after);
        let messages: Vec<&str> = changes.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "Email updated: a@x.test → b@x.test",
                "Payment method updated: visa 4242 → mastercard 4444",
                "Saved payment methods: 1 → 2",
                "Subscription set to cancel on 2026-12-18",
            ]
        );
        assert_eq!(changes[0].from, json!("a@x.test"));
        assert_eq!(changes[3].field, "subscriptions.sub_1.cancel_at");
    }

    #[test]
    fn a_subscriptions_own_method_is_reported_but_one_that_follows_the_default_is_not() {
        let before = snapshot();
        let mut after = snapshot();
        after.subscriptions[0].payment_method = Some(card("pm_9", "amex", "0005"));
        let messages: Vec<String> = diff(&before, &after)
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(
            messages,
            vec!["Payment method for Portico Pro updated: visa 4242 → amex 0005"]
        );

        // The customer's default changes and the subscription, paying with it, follows.
        let mut after = snapshot();
        after.default_payment_method = Some(card("pm_2", "mastercard", "4444"));
        after.subscriptions[0].payment_method = after.default_payment_method.clone();
        let messages: Vec<String> = diff(&before, &after)
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(
            messages,
            vec!["Payment method updated: visa 4242 → mastercard 4444"]
        );
    }

    #[test]
    fn states_stored_before_payment_method_types_read_as_cards() {
        let old = json!({"id": "pm_1", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030});
        let read: PaymentMethodSummary = serde_json::from_value(old).unwrap();
        assert_eq!(read, card("pm_1", "visa", "4242"));
    }

    #[test]
    fn first_sync_reports_everything_as_new() {
        let after = snapshot();
        let changes = diff(&CustomerSnapshot::empty(after.customer_id.clone()), &after);
        let messages: Vec<&str> = changes.iter().map(|c| c.message.as_str()).collect();
        assert!(
            messages.contains(&"Payment method added: visa 4242"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"Subscription started: Portico Pro (active)"),
            "{messages:?}"
        );
    }

    #[test]
    fn resuming_and_canceling_are_reported() {
        let mut cancelling = snapshot();
        cancelling.subscriptions[0].cancel_at_period_end = true;
        let resumed = snapshot();
        let messages: Vec<String> = diff(&cancelling, &resumed)
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(
            messages,
            vec!["Subscription renewed: pending cancellation removed"]
        );

        let mut canceled = snapshot();
        canceled.subscriptions[0].status = "canceled".into();
        canceled.subscriptions[0].ended_at = Some(1_797_592_000);
        let messages: Vec<String> = diff(&snapshot(), &canceled)
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(messages, vec!["Subscription canceled: Portico Pro"]);
    }

    #[test]
    fn plan_switch_is_one_change() {
        let mut after = snapshot();
        after.subscriptions[0].price_id = Some("price_pro_yearly".into());
        after.subscriptions[0].plan_name = Some("Portico Pro (yearly)".into());
        after.subscriptions[0].current_period_end = Some(1_826_536_000);
        let messages: Vec<String> = diff(&snapshot(), &after)
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(
            messages,
            vec!["Plan changed: Portico Pro → Portico Pro (yearly)"]
        );
    }

    #[test]
    fn premium_follows_status_and_grace() {
        let now = 1_795_100_000;
        let mut s = snapshot();
        assert!(premium(&s, now, 0).premium);
        s.subscriptions[0].status = "trialing".into();
        assert!(premium(&s, now, 0).premium);
        s.subscriptions[0].status = "past_due".into();
        assert!(
            premium(&s, now, 7 * 86_400).premium,
            "inside the grace period"
        );
        assert!(!premium(&s, now, 3600).premium, "grace over");
        assert_eq!(
            premium(&s, now, 7 * 86_400).until,
            Some(1_795_000_000 + 7 * 86_400)
        );
        for status in [
            "canceled",
            "unpaid",
            "incomplete",
            "incomplete_expired",
            "paused",
        ] {
            s.subscriptions[0].status = status.into();
            assert!(!premium(&s, now, 7 * 86_400).premium, "{status}");
        }
    }

    fn lifetime(refunded: i64) -> PurchaseSummary {
        PurchaseSummary {
            payment_intent: "pi_1".into(),
            price_id: Some("price_pro_lifetime".into()),
            product_id: Some("prod_pro".into()),
            product_name: Some("Portico Pro".into()),
            amount: 29900,
            currency: "usd".into(),
            paid_at: 1_795_000_000,
            amount_refunded: refunded,
            refunded: refunded >= 29900,
        }
    }

    #[test]
    fn lifetime_is_premium_without_end_until_refunded_in_full() {
        let now = 1_795_100_000;
        let mut s = snapshot();
        s.subscriptions[0].status = "canceled".into();
        assert!(!premium(&s, now, 0).premium);
        s.purchases = vec![lifetime(0)];
        let status = premium(&s, now, 0);
        assert!(status.premium);
        assert_eq!(
            (status.until, status.lifetime.as_deref()),
            (None, Some("pi_1"))
        );
        s.subscriptions[0].status = "active".into();
        s.subscriptions[0].cancel_at_period_end = true;
        assert_eq!(
            premium(&s, now, 0).until,
            None,
            "the subscription's end ends nothing"
        );
        s.purchases = vec![lifetime(9900)];
        assert!(
            premium(&s, now, 0).lifetime.is_some(),
            "a partial refund keeps it"
        );
        s.subscriptions[0].status = "canceled".into();
        s.purchases = vec![lifetime(29900)];
        assert!(!premium(&s, now, 0).premium, "a full refund revokes it");
    }

    #[test]
    fn purchases_and_refunds_are_reported() {
        let before = snapshot();
        let mut bought = snapshot();
        bought.purchases = vec![lifetime(0)];
        let mut partial = snapshot();
        partial.purchases = vec![lifetime(9900)];
        let mut refunded = snapshot();
        refunded.purchases = vec![lifetime(29900)];
        let messages = |a: &CustomerSnapshot, b: &CustomerSnapshot| -> Vec<String> {
            diff(a, b).into_iter().map(|c| c.message).collect()
        };
        assert_eq!(
            messages(&before, &bought),
            vec!["Lifetime access purchased: Portico Pro (299.00 usd)"]
        );
        assert_eq!(
            messages(&bought, &partial),
            vec!["Partial refund on the lifetime purchase of Portico Pro: 99.00 usd refunded in all (access kept)"]
        );
        assert_eq!(
            messages(&partial, &refunded),
            vec!["Lifetime purchase refunded in full: Portico Pro (lifetime access revoked)"]
        );
        assert!(messages(&refunded, &refunded).is_empty());
        let changes = diff(&bought, &refunded);
        assert_eq!(
            (changes[0].kind, changes[0].field.as_str()),
            (ChangeKind::Purchase, "purchases.pi_1.refunded")
        );
    }

    #[test]
    fn a_cancelling_subscription_is_premium_until_its_period_end() {
        let mut s = snapshot();
        s.subscriptions[0].cancel_at_period_end = true;
        let status = premium(&s, 1_795_100_000, 0);
        assert!(status.premium);
        assert_eq!(status.until, Some(1_797_592_000));
    }
}
