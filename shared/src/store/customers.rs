//! Customer items: the last synced state (`CUS#<id>` / `STATE`), the sync ticket counter
//! (`CUS#<id>` / `SYNC`, with the start of the last user-triggered sync), audit entries
//! (`CUS#<id>` / `AUDIT#<time>#<ticket>#<n>`) and lifetime purchases
//! (`CUS#<id>` / `LIFETIME#<payment intent>`).

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use super::transaction::{Condition, Transaction};
use super::{from_item, key, to_item, Item, StoreError, Table, GSI1, TTL_ATTRIBUTE};
use crate::ids::{CustomerId, UserId};
use crate::sync::snapshot::PurchaseSummary;
use crate::sync::{Change, CustomerSnapshot, PremiumStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    pub snapshot: CustomerSnapshot,
    pub premium: PremiumStatus,
    /// The sync ticket of the fetch that produced this state; only a higher ticket replaces it.
    pub synced_version: u64,
    pub synced_at: String,
    pub user_id: Option<UserId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSource {
    PortalReturn,
    Webhook,
    Account,
    Reconcile,
    /// An administrator's or operator's support action; the reference names them.
    Support,
    Import,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub customer_id: CustomerId,
    pub source: AuditSource,
    /// The portal session ref, webhook event id, or request id that caused the sync.
    pub reference: Option<String>,
    pub at: String,
    pub change: Change,
    /// For a change that cancels a subscription: why, as Stripe recorded it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation: Option<CancellationDetails>,
}

/// Stripe's `cancellation_details` without the free-text comment: `reason` is Stripe's
/// (`cancellation_requested`, `payment_failed`, ...), `feedback` the customer's choice in the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationDetails {
    pub reason: Option<String>,
    pub feedback: Option<String>,
}

/// A lifetime purchase as the sync last saw it, kept as its own item: written in the same
/// transaction as the customer state it came with, so it is as order-safe as that state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifetimePurchaseRecord {
    pub customer_id: CustomerId,
    pub purchase: PurchaseSummary,
    /// The sync ticket of the state this record was written with.
    pub synced_version: u64,
    pub synced_at: String,
}

const LIFETIME_PREFIX: &str = "LIFETIME#";
/// Index partitions of customer states by sync time (`SYNCED#<shard>`).
const SYNCED: &str = "SYNCED#";
/// The index partition of customers whose last sync failed.
const SYNC_FAILED: &str = "SYNCFAIL";
const AUDIT_DAY: &str = "AUDITDAY#";
/// Index partitions per day for audit entries: one partition takes about 1,000 writes a second,
/// and a throttled index throttles the table's writes, so a renewal burst is spread over four.
pub const AUDIT_DAY_SHARDS: u8 = 4;

fn audit_day_shard(customer: &CustomerId) -> u8 {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, customer.as_str().as_bytes());
    hash.as_ref()[0] % AUDIT_DAY_SHARDS
}

fn state_key(id: &CustomerId) -> Item {
    key(format!("CUS#{id}"), "STATE")
}

/// The sync ticket counter; it also holds when the last user-triggered sync began.
fn sync_key(id: &CustomerId) -> Item {
    key(format!("CUS#{id}"), "SYNC")
}

pub trait CustomerStore {
    /// A number higher than any handed out before for this customer. A fetch from Stripe that
    /// starts after taking ticket n sees at least what a fetch with ticket n-1 saw, so tickets
    /// order views without trusting clocks or `event.created`.
    fn next_sync_ticket(
        &self,
        id: &CustomerId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn get_customer_state(
        &self,
        id: &CustomerId,
    ) -> impl Future<Output = Result<Option<CustomerState>, StoreError>> + Send;
}

impl CustomerStore for Table {
    async fn next_sync_ticket(&self, id: &CustomerId) -> Result<u64, StoreError> {
        Ok(self.next_sync_ticket_and_visit(id).await?.0)
    }

    async fn get_customer_state(
        &self,
        id: &CustomerId,
    ) -> Result<Option<CustomerState>, StoreError> {
        self.get(state_key(id)).await?.map(from_item).transpose()
    }
}

/// The customer's latest portal session as a sync needs it to tell a change made in the portal
/// from any other (analytics counts only the former). Kept on the sync item, which every sync
/// updates anyway, so knowing it costs no read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalVisit {
    /// The session's `created_at`.
    pub opened_at: String,
    /// Unix time until which changes count as made in the portal: the return link's end, or
    /// [`VISIT_AFTER_RETURN_SECONDS`] after the session's first return.
    pub until: i64,
    /// The retention coupon the session offered.
    pub offer: Option<String>,
}

/// After a return, webhooks of changes made in the portal may still be on their way.
pub const VISIT_AFTER_RETURN_SECONDS: i64 = 60;

impl PortalVisit {
    fn from_item(item: &Item) -> Option<Self> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let unix = |name: &str| item.get(name)?.as_n().ok()?.parse::<i64>().ok();
        let session = text("portal_session")?;
        let mut until = unix("portal_until")?;
        if text("portal_returned").as_ref() == Some(&session) {
            if let Some(returned) = unix("portal_returned_at") {
                until = until.min(returned + VISIT_AFTER_RETURN_SECONDS);
            }
        }
        Some(PortalVisit {
            opened_at: text("portal_opened_at")?,
            until,
            offer: text("portal_offer"),
        })
    }

    /// Whether a change recorded at `at` (a timestamp, `at_unix` its unix time) falls in it.
    pub fn covers(&self, at: &str, at_unix: i64) -> bool {
        at >= self.opened_at.as_str() && at_unix <= self.until
    }
}

impl Table {
    /// A new sync ticket (see [`CustomerStore::next_sync_ticket`]) and the customer's latest
    /// portal session, in one write.
    pub async fn next_sync_ticket_and_visit(
        &self,
        id: &CustomerId,
    ) -> Result<(u64, Option<PortalVisit>), StoreError> {
        let request = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(sync_key(id)))
            .update_expression("ADD ticket :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllNew);
        let output = self.send(|| request.clone().send()).await?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        let ticket = attributes
            .get("ticket")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("CUS#{id}/SYNC"),
                reason: "no ticket".into(),
            })?;
        Ok((ticket, PortalVisit::from_item(&attributes)))
    }
}

/// A customer the reconcile should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDue {
    pub customer_id: CustomerId,
    /// When its state was synced, or when its last sync failed.
    pub since: String,
    /// Whether the last sync failed (the marker to clear once a sync succeeds).
    pub failed: bool,
}

impl Table {
    /// Records that a sync of the customer failed, on its ticket counter: listed in the index
    /// for the reconcile until a reconcile sync succeeds. The error text is Portico's own.
    pub async fn record_sync_failure(
        &self,
        id: &CustomerId,
        error: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(300).collect();
        let request = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(sync_key(id)))
            .update_expression(
                "SET sync_failed_at = :at, sync_error = :error, gsi1pk = :failed, gsi1sk = :sort",
            )
            .expression_attribute_values(":at", AttributeValue::S(at.into()))
            .expression_attribute_values(":error", AttributeValue::S(error))
            .expression_attribute_values(":failed", AttributeValue::S(SYNC_FAILED.into()))
            .expression_attribute_values(":sort", AttributeValue::S(format!("{at}#{id}")))
            // Every sync takes its ticket on this item first, so it exists unless an erasure
            // removed it since: then there is nothing to re-sync, and nothing may be re-created.
            .condition_expression("attribute_exists(pk)");
        match self.send(|| request.clone().send()).await {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Clears the failure recorded at `at`; a failure recorded since stays.
    pub async fn clear_sync_failure(&self, id: &CustomerId, at: &str) -> Result<(), StoreError> {
        let request = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(sync_key(id)))
            .update_expression("REMOVE sync_failed_at, sync_error, gsi1pk, gsi1sk")
            .condition_expression("sync_failed_at = :at")
            .expression_attribute_values(":at", AttributeValue::S(at.into()));
        match self.send(|| request.clone().send()).await {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` customers whose last sync failed, oldest failure first, then up to the
    /// rest of `limit` whose state was synced before `cutoff`, oldest first: one bounded query
    /// per index partition, so a run reads no more than it can sync.
    pub async fn syncs_due(&self, cutoff: &str, limit: usize) -> Result<Vec<SyncDue>, StoreError> {
        let page = i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000);
        let query = |partition: String, before: Option<&str>| {
            let mut q = self
                .client()
                .query()
                .table_name(self.name())
                .index_name(GSI1)
                .expression_attribute_values(":p", AttributeValue::S(partition))
                .limit(page);
            q = match before {
                Some(cutoff) => q
                    .key_condition_expression("gsi1pk = :p AND gsi1sk < :cutoff")
                    .expression_attribute_values(":cutoff", AttributeValue::S(cutoff.into())),
                None => q.key_condition_expression("gsi1pk = :p"),
            };
            q
        };
        let mut due = Vec::new();
        let failed = query(SYNC_FAILED.into(), None);
        let output = self.send(|| failed.clone().send()).await?;
        for item in output.items.unwrap_or_default() {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let id = text("pk")
                .and_then(|pk| pk.strip_prefix("CUS#").map(str::to_string))
                .and_then(|id| CustomerId::parse(id).ok());
            if let (Some(customer_id), Some(since)) = (id, text("sync_failed_at")) {
                due.push(SyncDue {
                    customer_id,
                    since,
                    failed: true,
                });
            }
        }
        let mut stale = Vec::new();
        for shard in 0..AUDIT_DAY_SHARDS {
            let request = query(format!("{SYNCED}{shard}"), Some(cutoff));
            let output = self.send(|| request.clone().send()).await?;
            for item in output.items.unwrap_or_default() {
                let state: CustomerState = from_item(item)?;
                stale.push(SyncDue {
                    customer_id: state.snapshot.customer_id,
                    since: state.synced_at,
                    failed: false,
                });
            }
        }
        stale.sort_by(|a, b| a.since.cmp(&b.since));
        for s in stale {
            if !due.iter().any(|d| d.customer_id == s.customer_id) {
                due.push(s);
            }
        }
        due.truncate(limit);
        Ok(due)
    }
}

/// The answer to a claim of a customer's user-triggered sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncSlot {
    /// Ours: sync now.
    Claimed,
    /// Another user-triggered sync began less than the interval ago; free again after this.
    Taken { retry_after: Duration },
}

impl Table {
    /// Claims the customer's slot for a user-triggered Stripe re-sync at `now_ms` (epoch
    /// milliseconds), unless one was claimed less than `interval` before (a zero interval
    /// throttles nothing). One conditional write, so of any number of concurrent claims exactly
    /// one wins.
    pub async fn claim_user_sync(
        &self,
        id: &CustomerId,
        now_ms: i64,
        interval: Duration,
    ) -> Result<SyncSlot, StoreError> {
        if interval.is_zero() {
            return Ok(SyncSlot::Claimed);
        }
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let claimed = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(sync_key(id)))
            .update_expression("SET user_sync_at = :now")
            .condition_expression("attribute_not_exists(user_sync_at) OR user_sync_at <= :cutoff")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(
                ":cutoff",
                AttributeValue::N(now_ms.saturating_sub(interval_ms).to_string()),
            )
            .send()
            .await
            .map_err(StoreError::from_sdk);
        match claimed {
            Ok(_) => Ok(SyncSlot::Claimed),
            Err(StoreError::ConditionFailed) => {
                let last = self
                    .get(sync_key(id))
                    .await?
                    .and_then(|item| item.get("user_sync_at")?.as_n().ok()?.parse::<i64>().ok())
                    .unwrap_or(now_ms);
                let wait_ms = last.saturating_add(interval_ms).saturating_sub(now_ms);
                Ok(SyncSlot::Taken {
                    retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl Transaction {
    /// Records the customer's newest portal session for the syncs that follow (see
    /// [`PortalVisit`]).
    pub fn open_portal_visit(
        &mut self,
        table: &Table,
        customer: &CustomerId,
        reference: &str,
        opened_at: &str,
        until: i64,
        offer: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut values = vec![
            (":session", AttributeValue::S(reference.to_string())),
            (":at", AttributeValue::S(opened_at.to_string())),
            (":until", AttributeValue::N(until.to_string())),
        ];
        let expression = match offer {
            Some(offer) => {
                values.push((":offer", AttributeValue::S(offer.to_string())));
                "SET #portal_session = :session, #portal_opened_at = :at, #portal_until = :until, #portal_offer = :offer"
            }
            None => "SET #portal_session = :session, #portal_opened_at = :at, #portal_until = :until REMOVE #portal_offer",
        };
        self.update(table, sync_key(customer), expression, values, None)
    }

    /// Notes a session's first return: if it is still the customer's newest, its visit ends
    /// shortly after.
    pub fn close_portal_visit(
        &mut self,
        table: &Table,
        customer: &CustomerId,
        reference: &str,
        returned_unix: i64,
    ) -> Result<usize, StoreError> {
        self.update(
            table,
            sync_key(customer),
            "SET #portal_returned = :session, #portal_returned_at = :at",
            vec![
                (":session", AttributeValue::S(reference.to_string())),
                (":at", AttributeValue::N(returned_unix.to_string())),
            ],
            None,
        )
    }

    /// Stores `state` only over the state it was compared with: `replaces` is the version read
    /// before the fetch (`None`: there was none). Whoever wrote in between wins, and the caller
    /// starts over, so no change is diffed against a stale snapshot or audited twice.
    pub fn put_customer_state(
        &mut self,
        table: &Table,
        state: &CustomerState,
        replaces: Option<u64>,
    ) -> Result<usize, StoreError> {
        let id = &state.snapshot.customer_id;
        let mut item = to_item(state_key(id), state)?;
        // Listed by sync time for the reconcile, oldest first, in a few partitions.
        item.insert(
            "gsi1pk".into(),
            AttributeValue::S(format!("{SYNCED}{}", audit_day_shard(id))),
        );
        item.insert("gsi1sk".into(), AttributeValue::S(state.synced_at.clone()));
        let condition = match replaces {
            None => Condition {
                expression: "attribute_not_exists(pk)",
                values: vec![],
            },
            Some(version) => Condition {
                expression: "synced_version = :replaces",
                values: vec![(":replaces", AttributeValue::N(version.to_string()))],
            },
        };
        self.put(table, item, Some(condition))
    }

    /// Stores a lifetime purchase; unconditional because the customer state written in the same
    /// transaction carries the ordering condition.
    pub fn put_lifetime_purchase(
        &mut self,
        table: &Table,
        record: &LifetimePurchaseRecord,
    ) -> Result<usize, StoreError> {
        let sk = format!("{LIFETIME_PREFIX}{}", record.purchase.payment_intent);
        let item = to_item(key(format!("CUS#{}", record.customer_id), sk), record)?;
        self.put(table, item, None)
    }

    /// Adds the audit entry; `ticket` and `n` make its key unique per sync and change.
    pub fn put_audit_entry(
        &mut self,
        table: &Table,
        entry: &AuditEntry,
        ticket: u64,
        n: usize,
    ) -> Result<usize, StoreError> {
        let sk = format!("AUDIT#{}#{ticket:012}#{n:03}", entry.at);
        let mut item = to_item(key(format!("CUS#{}", entry.customer_id), &sk), entry)?;
        if let Some(ttl) = super::expiry(&entry.at, table.retention().audit) {
            item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(ttl.to_string()));
        }
        // Listed by day for portal analytics, which has no use for Portico's own account actions.
        if entry.source != AuditSource::Account {
            let day = entry.at.get(..10).unwrap_or_default();
            let shard = audit_day_shard(&entry.customer_id);
            item.insert(
                "gsi1pk".into(),
                AttributeValue::S(format!("{AUDIT_DAY}{day}#{shard}")),
            );
            item.insert(
                "gsi1sk".into(),
                AttributeValue::S(format!("{sk}#{}", entry.customer_id)),
            );
        }
        self.put(
            table,
            item,
            Some(Condition {
                expression: "attribute_not_exists(pk)",
                values: vec![],
            }),
        )
    }
}

/// One page of a customer's audit trail, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The sort key of the last entry, when older entries follow it.
    pub last: Option<String>,
}

/// Whether `sk` has the shape of an audit entry's sort key (`AUDIT#<time>#<ticket>#<n>`).
pub fn is_audit_key(sk: &str) -> bool {
    let Some(rest) = sk.strip_prefix("AUDIT#") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('#').collect();
    matches!(parts.as_slice(), [at, ticket, n]
        if time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok()
            && ticket.len() >= 12 && ticket.bytes().all(|b| b.is_ascii_digit())
            && n.len() >= 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Table {
    /// Up to `limit` audit entries of the customer, newest first, older than the entry whose
    /// sort key is `before` (from the previous page). The partition is always the customer's,
    /// whatever `before` says.
    pub async fn audit_page(
        &self,
        id: &CustomerId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let pk = format!("CUS#{id}");
        let mut start = before.map(|sk| key(pk.clone(), sk));
        let mut items: Vec<Item> = Vec::new();
        // One more than asked: whether it exists says if another page follows.
        let wanted = limit + 1;
        loop {
            let query = self
                .client()
                .query()
                .table_name(self.name())
                .consistent_read(true)
                .scan_index_forward(false)
                .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":audit", AttributeValue::S("AUDIT#".into()))
                .limit(i32::try_from(wanted - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            let output = self.send(|| query.clone().send()).await?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(next) if !next.is_empty() && items.len() < wanted => start = Some(next),
                _ => break,
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let last = match (more, items.last().and_then(|i| i.get("sk"))) {
            (true, Some(AttributeValue::S(sk))) => Some(sk.clone()),
            _ => None,
        };
        Ok(AuditPage {
            entries: items.into_iter().map(from_item).collect::<Result<_, _>>()?,
            last,
        })
    }

    /// The customer's lifetime purchases as last synced, refunded ones included.
    pub async fn lifetime_purchases(
        &self,
        id: &CustomerId,
    ) -> Result<Vec<LifetimePurchaseRecord>, StoreError> {
        self.query_all(
            None,
            "pk = :pk AND begins_with(sk, :prefix)",
            vec![
                (":pk", AttributeValue::S(format!("CUS#{id}"))),
                (":prefix", AttributeValue::S(LIFETIME_PREFIX.into())),
            ],
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    /// The customer's audit entries, oldest first.
    pub async fn audit_entries(&self, id: &CustomerId) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_entries_since(id, "").await
    }

    /// The customer's audit entries recorded at or after `since` (RFC 3339), oldest first.
    pub async fn audit_entries_since(
        &self,
        id: &CustomerId,
        since: &str,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.query_all(
            None,
            // '~' sorts after every character of a timestamp.
            "pk = :pk AND sk BETWEEN :from AND :to",
            vec![
                (":pk", AttributeValue::S(format!("CUS#{id}"))),
                (":from", AttributeValue::S(format!("AUDIT#{since}"))),
                (":to", AttributeValue::S("AUDIT#~".into())),
            ],
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    /// Audit entries of every customer recorded on `day` (`YYYY-MM-DD`) by a portal return,
    /// a webhook or a reconcile, through the index: one query per shard, at once.
    pub async fn audit_entries_on(&self, day: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let mut shards = tokio::task::JoinSet::new();
        for n in 0..AUDIT_DAY_SHARDS {
            let (table, partition) = (self.clone(), format!("{AUDIT_DAY}{day}#{n}"));
            shards.spawn(async move {
                table
                    .query_all(
                        Some(GSI1),
                        "gsi1pk = :day",
                        vec![(":day", AttributeValue::S(partition))],
                    )
                    .await
            });
        }
        let mut entries = Vec::new();
        while let Some(joined) = shards.join_next().await {
            for item in joined.map_err(|e| StoreError::Unavailable(e.to_string()))?? {
                entries.push(from_item(item)?);
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::is_audit_key;

    #[test]
    fn only_audit_sort_keys_pass() {
        assert!(is_audit_key(
            "AUDIT#2026-12-01T19:36:50.123456Z#000000000007#000"
        ));
        assert!(is_audit_key("AUDIT#2026-11-21T00:00:00Z#000000000000#000"));
        for forged in [
            "STATE",
            "AUDIT#",
            "AUDIT#~",
            "AUDIT#not-a-time#000000000007#000",
            "AUDIT#2026-12-01T19:36:50.123456Z#7#000",
            "AUDIT#2026-12-01T19:36:50.123456Z#000000000007",
            "LIFETIME#pi_1",
        ] {
            assert!(!is_audit_key(forged), "{forged}");
        }
    }
}
