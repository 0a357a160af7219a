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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    pub id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

impl CardSummary {
    fn label(&self) -> String {
        format!("{} {}", self.brand, self.last4)
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSnapshot {
    pub customer_id: CustomerId,
    pub deleted: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<Address>,
    pub default_payment_method: Option<CardSummary>,
    pub payment_methods: Vec<CardSummary>,
    pub subscriptions: Vec<SubscriptionSummary>,
    #[serde(default)]
    pub invoices: Vec<InvoiceSummary>,
    /// What the lists leave out; empty for nearly every customer.
    #[serde(default, skip_serializing_if = "Truncated::is_empty")]
    pub truncated: Truncated,
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
        let label =
            |c: &Option<CardSummary>| c.as_ref().map_or("(none)".to_string(), CardSummary::label);
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
    let ids = |cards: &[CardSummary]| cards.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
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
    /// or the end of the grace period of a past-due one.
    pub until: Option<i64>,
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
    match best {
        Some(s) => PremiumStatus {
            premium: true,
            subscription_id: Some(s.id.clone()),
            status: Some(s.status.clone()),
            until: until(s),
        },
        None => PremiumStatus {
            premium: false,
            subscription_id: None,
            status: None,
            until: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: &str, brand: &str, last4: &str) -> CardSummary {
        CardSummary {
            id: id.into(),
            brand: brand.into(),
            last4: last4.into(),
            exp_month: 12,
            exp_year: 2030,
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

    #[test]
    fn a_cancelling_subscription_is_premium_until_its_period_end() {
        let mut s = snapshot();
        s.subscriptions[0].cancel_at_period_end = true;
        let status = premium(&s, 1_795_100_000, 0);
        assert!(status.premium);
        assert_eq!(status.until, Some(1_797_592_000));
    }
}
