//! Checkout items: every Checkout session Portico created (`CHKS#<session id>` / `META`), so a
//! completion can be tied to the user it was created for.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::transaction::{Condition, Transaction};
use super::{from_item, key, to_item, Item, StoreError, Table};
use crate::ids::{CustomerId, UserId};

/// Kept past Stripe's 3-day retry window for `checkout.session.completed` and the Events API's
/// 30 days, like the webhook ledger.
pub const CHECKOUT_RETENTION_SECONDS: i64 = super::LEDGER_RETENTION_SECONDS;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRecord {
    pub session_id: String,
    pub user_id: UserId,
    pub customer_id: CustomerId,
    pub price: String,
    pub created_at: String,
    /// Epoch seconds after which DynamoDB deletes the record (the table's TTL attribute).
    pub expires_at: i64,
}

fn record_key(session_id: &str) -> Item {
    key(format!("CHKS#{session_id}"), "META")
}

impl Table {
    /// The record of a Checkout session Portico created, if it did.
    pub async fn checkout_record(
        &self,
        session_id: &str,
    ) -> Result<Option<CheckoutRecord>, StoreError> {
        self.get(record_key(session_id))
            .await?
            .map(from_item)
            .transpose()
    }
}

impl Transaction {
    /// Records a Checkout session Portico created; a session is recorded once.
    pub fn put_checkout_record(
        &mut self,
        table: &Table,
        record: &CheckoutRecord,
    ) -> Result<usize, StoreError> {
        self.put(
            table,
            to_item(record_key(&record.session_id), record)?,
            Some(Condition {
                expression: "attribute_not_exists(pk) OR user_id = :user",
                values: vec![(":user", AttributeValue::S(record.user_id.to_string()))],
            }),
        )
    }
}
