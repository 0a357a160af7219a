//! The webhook event ledger: `EVT#<event id>` / `LEDGER`.
//!
//! An event is claimed with a conditional write and a lease before it is processed, and marked
//! done in the same transaction as its effects. A failed attempt is recorded (its error and the
//! number of attempts) and listed in the index under `LEDGER#FAILED`, so an operator's replay
//! finds failures without asking Stripe; a failed or crashed claim (lease expired) can be taken
//! over by Stripe's next delivery or a replay; a done event stays done.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::transaction::Transaction;
use super::{from_item, key, Item, StoreError, Table, GSI1};

/// Kept well past Stripe's 3-day retry window, and the Events API's 30 days.
pub const LEDGER_RETENTION_SECONDS: i64 = 35 * 86_400;
/// The index partition that lists failed events, oldest event first.
const FAILED_PARTITION: &str = "LEDGER#FAILED";
/// Stored errors are cut to this many characters: enough to tell causes apart.
const MAX_ERROR_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerState {
    /// A lease is held; its holder is applying the event.
    Processing,
    /// The effects are stored; any later delivery is a duplicate.
    Done,
    /// The last attempt failed (see `last_error`); the next delivery or a replay retries it.
    Failed,
}

impl LedgerState {
    fn as_str(self) -> &'static str {
        match self {
            LedgerState::Processing => "processing",
            LedgerState::Done => "done",
            LedgerState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub event_id: String,
    pub event_type: String,
    pub event_created: i64,
    pub state: LedgerState,
    pub lease_owner: String,
    pub lease_until: i64,
    pub received_at: String,
    pub processed_at: Option<String>,
    pub expires_at: i64,
    /// Claims taken of this event, the current one included.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub failed_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours to process.
    Claimed,
    /// Processed before: answer 2xx and do nothing.
    AlreadyDone,
    /// Another instance holds a live lease: answer 5xx so Stripe comes back later.
    InProgress,
}

fn ledger_key(event_id: &str) -> Item {
    key(format!("EVT#{event_id}"), "LEDGER")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl Table {
    /// Claims `entry.event_id` unless it is done or leased by someone else at `now`. The
    /// attempt count survives earlier failed claims; the first receipt time is kept.
    pub async fn claim_event(&self, entry: &LedgerEntry, now: i64) -> Result<Claim, StoreError> {
        let update = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(ledger_key(&entry.event_id)))
            .update_expression(
                "SET event_id = :id, event_type = :type, event_created = :created, #state = :processing, \
                 lease_owner = :owner, lease_until = :until, received_at = if_not_exists(received_at, :received), \
                 processed_at = :null, expires_at = :expires, attempts = if_not_exists(attempts, :zero) + :one \
                 REMOVE gsi1pk, gsi1sk",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR #state = :failed OR (#state = :processing AND lease_until < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":id", s(&entry.event_id))
            .expression_attribute_values(":type", s(&entry.event_type))
            .expression_attribute_values(":created", n(entry.event_created))
            .expression_attribute_values(":processing", s(LedgerState::Processing.as_str()))
            .expression_attribute_values(":failed", s(LedgerState::Failed.as_str()))
            .expression_attribute_values(":owner", s(&entry.lease_owner))
            .expression_attribute_values(":until", n(entry.lease_until))
            .expression_attribute_values(":received", s(&entry.received_at))
            .expression_attribute_values(":null", AttributeValue::Null(true))
            .expression_attribute_values(":expires", n(entry.expires_at))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now));
        match self.send(|| update.clone().send()).await {
            Ok(_) => Ok(Claim::Claimed),
            Err(StoreError::ConditionFailed) => {
                Ok(match self.ledger_entry(&entry.event_id).await? {
                    Some(e) if e.state == LedgerState::Done => Claim::AlreadyDone,
                    _ => Claim::InProgress,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Records that our attempt failed with `error`, so Stripe's retry (or a replay) is
    /// processed at once and `replay --failed` lists it. The error text is Portico's own
    /// (ids and causes, no customer details).
    pub async fn fail_event(
        &self,
        event_id: &str,
        owner: &str,
        error: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let update = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(ledger_key(event_id)))
            .update_expression(
                "SET #state = :failed, last_error = :error, failed_at = :at, lease_until = :zero, \
                 gsi1pk = :partition, gsi1sk = :sort",
            )
            .condition_expression("lease_owner = :owner AND #state = :processing")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":failed", s(LedgerState::Failed.as_str()))
            .expression_attribute_values(":processing", s(LedgerState::Processing.as_str()))
            .expression_attribute_values(":error", s(error))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":partition", s(FAILED_PARTITION))
            .expression_attribute_values(":sort", s(format!("{at}#{event_id}")))
            .expression_attribute_values(":owner", s(owner));
        match self.send(|| update.clone().send()).await {
            // Someone took the lease over meanwhile: it is theirs to finish or fail.
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn ledger_entry(&self, event_id: &str) -> Result<Option<LedgerEntry>, StoreError> {
        self.get(ledger_key(event_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Events whose last attempt failed, oldest failure first, at most `limit` (the index is
    /// read eventually consistently; each entry is read again before it is trusted).
    pub async fn failed_events(&self, limit: usize) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        while found.len() < limit {
            let page = i32::try_from(limit - found.len())
                .unwrap_or(i32::MAX)
                .min(100);
            let query = self
                .client()
                .query()
                .table_name(self.name())
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :failed")
                .expression_attribute_values(":failed", s(FAILED_PARTITION))
                .limit(page)
                .set_exclusive_start_key(start.take());
            let output = self.send(|| query.clone().send()).await?;
            for item in output.items.unwrap_or_default() {
                let entry: LedgerEntry = from_item(item)?;
                if let Some(current) = self.ledger_entry(&entry.event_id).await? {
                    if current.state == LedgerState::Failed {
                        found.push(current);
                    }
                }
            }
            match output.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        Ok(found)
    }
}

impl Transaction {
    /// Marks the event done, only while we still hold its lease.
    pub fn complete_event(
        &mut self,
        table: &Table,
        event_id: &str,
        owner: &str,
        processed_at: &str,
    ) -> Result<usize, StoreError> {
        self.update(
            table,
            ledger_key(event_id),
            "SET #state = :done, processed_at = :at",
            vec![
                (":done", s(LedgerState::Done.as_str())),
                (":at", s(processed_at)),
                (":owner", s(owner)),
                (":processing", s(LedgerState::Processing.as_str())),
            ],
            Some("lease_owner = :owner AND #state = :processing"),
        )
    }
}
