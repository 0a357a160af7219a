//! The webhook event ledger: `EVT#<event id>` / `LEDGER`.
//!
//! An event is claimed with a conditional put and a lease before it is processed, and marked
//! done in the same transaction as its effects. A crashed or failed instance's claim expires
//! (or is released), so Stripe's next delivery can take it over; a done event stays done.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::transaction::Transaction;
use super::{from_item, key, to_item, Item, StoreError, Table, TTL_ATTRIBUTE};

/// Kept well past Stripe's 3-day retry window, and the Events API's 30 days.
pub const LEDGER_RETENTION_SECONDS: i64 = 35 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub event_id: String,
    pub event_type: String,
    pub event_created: i64,
    /// `processing` while a lease is held, `done` once the effects are stored.
    pub state: String,
    pub lease_owner: String,
    pub lease_until: i64,
    pub received_at: String,
    pub processed_at: Option<String>,
    pub expires_at: i64,
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

impl Table {
    /// Claims `entry.event_id` unless it is done or leased by someone else at `now`.
    pub async fn claim_event(&self, entry: &LedgerEntry, now: i64) -> Result<Claim, StoreError> {
        let mut item = to_item(ledger_key(&entry.event_id), entry)?;
        item.insert(
            TTL_ATTRIBUTE.into(),
            AttributeValue::N(entry.expires_at.to_string()),
        );
        let put = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :processing AND lease_until < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":processing", AttributeValue::S("processing".into()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()));
        match self.send(|| put.clone().send()).await {
            Ok(_) => Ok(Claim::Claimed),
            Err(StoreError::ConditionFailed) => {
                let existing: Option<LedgerEntry> = self
                    .get(ledger_key(&entry.event_id))
                    .await?
                    .map(from_item)
                    .transpose()?;
                Ok(match existing {
                    Some(e) if e.state == "done" => Claim::AlreadyDone,
                    _ => Claim::InProgress,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the claim up after a failure, so Stripe's retry is processed at once.
    pub async fn release_event(&self, event_id: &str, owner: &str) -> Result<(), StoreError> {
        let deleted = self
            .client()
            .delete_item()
            .table_name(self.name())
            .set_key(Some(ledger_key(event_id)))
            .condition_expression("lease_owner = :owner AND #state = :processing")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .expression_attribute_values(":processing", AttributeValue::S("processing".into()));
        match self.send(|| deleted.clone().send()).await {
            // Someone took the lease over meanwhile: it is theirs to finish or release.
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
                (":done", AttributeValue::S("done".into())),
                (":at", AttributeValue::S(processed_at.into())),
                (":owner", AttributeValue::S(owner.into())),
                (":processing", AttributeValue::S("processing".into())),
            ],
            Some("lease_owner = :owner AND #state = :processing"),
        )
    }
}
