//! Checkout items: every Checkout session Portico created (`CHKS#<session id>` / `META`), so a
//! completion can be tied to the user it was created for, and the user's open session per price
//! (`USER#<sub>` / `CHECKOUT#<price>`), so a second purchase of the same price reuses it.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

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

/// The session a user is to pay for a price, while it can be paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCheckout {
    pub session_id: String,
    pub url: Option<String>,
    /// When Stripe stops accepting payment for it (unix seconds); also the item's TTL.
    pub expires_at: i64,
}

/// Whether recording a session as the open one for its price won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenCheckoutClaim {
    Recorded,
    /// Another request recorded another session meanwhile.
    Lost,
}

fn record_key(session_id: &str) -> Item {
    key(format!("CHKS#{session_id}"), "META")
}

fn open_key(user: &UserId, price: &str) -> Item {
    key(format!("USER#{user}"), format!("CHECKOUT#{price}"))
}

impl Table {
    /// Records a Checkout session Portico created (again, for a retried request, is harmless).
    pub async fn record_checkout(&self, record: &CheckoutRecord) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(to_item(record_key(&record.session_id), record)?))
            // A session id names one user's session: never re-attributed.
            .condition_expression("attribute_not_exists(pk) OR user_id = :user")
            .expression_attribute_values(":user", AttributeValue::S(record.user_id.to_string()))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

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

    /// The user's recorded open session for `price`, if any; it may have been paid or expired
    /// at Stripe since.
    pub async fn open_checkout(
        &self,
        user: &UserId,
        price: &str,
    ) -> Result<Option<OpenCheckout>, StoreError> {
        self.get(open_key(user, price))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Makes `open` the user's open session for `price`, if the place still holds what was read
    /// (`replaces`: the session found there, `None`: nothing) or `open` already: two requests
    /// that each created a session cannot both win.
    pub async fn claim_open_checkout(
        &self,
        user: &UserId,
        price: &str,
        open: &OpenCheckout,
        replaces: Option<&str>,
    ) -> Result<OpenCheckoutClaim, StoreError> {
        let mut put = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(to_item(open_key(user, price), open)?))
            .expression_attribute_values(":mine", AttributeValue::S(open.session_id.clone()));
        put = match replaces {
            None => put.condition_expression("attribute_not_exists(pk) OR session_id = :mine"),
            Some(old) => put
                .condition_expression("session_id = :old OR session_id = :mine")
                .expression_attribute_values(":old", AttributeValue::S(old.to_string())),
        };
        match put.send().await.map_err(StoreError::from_sdk) {
            Ok(_) => Ok(OpenCheckoutClaim::Recorded),
            Err(StoreError::ConditionFailed) => Ok(OpenCheckoutClaim::Lost),
            Err(e) => Err(e),
        }
    }
}
