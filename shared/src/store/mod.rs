//! The single DynamoDB table (DESIGN.md, "one table"), behind small traits per item kind.
//!
//! Every write that can race is conditional, and a lost race is [`StoreError::ConditionFailed`],
//! never a string to match on.

mod customers;
mod ledger;
mod portal;
mod schema;
mod transaction;
mod users;

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;

pub use customers::{
    AuditEntry, AuditSource, CancellationDetails, CustomerState, CustomerStore,
    LifetimePurchaseRecord, AUDIT_DAY_SHARDS,
};
pub use ledger::{Claim, LedgerEntry, LEDGER_RETENTION_SECONDS};
pub use portal::{
    PortalSessionRecord, WorkflowConfigRecord, WorkflowMapping, PORTAL_SESSION_RETENTION_SECONDS,
};
pub use schema::{create_table, GSI1, TTL_ATTRIBUTE};
pub use transaction::{Condition, Transaction};
pub use users::{UserRecord, UserStore};

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// A conditional write lost: the item exists, or changed since it was read.
    #[error("conditional write lost a race")]
    ConditionFailed,
    /// A transaction was cancelled because the conditions at these positions failed.
    #[error("transaction cancelled: conditions failed at {0:?}")]
    TransactionConditionsFailed(Vec<usize>),
    /// DynamoDB is unreachable, throttling or failing; worth retrying.
    #[error("DynamoDB unavailable: {0}")]
    Unavailable(String),
    /// DynamoDB refused the request itself: a bug on our side.
    #[error("DynamoDB rejected the request: {0}")]
    Request(String),
    /// An item that does not have the shape we wrote.
    #[error("item {key} is malformed: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StoreError {
    fn from_sdk<E, R>(error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = error.code().map(str::to_string);
        let detail = aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string();
        match (&error, code.as_deref()) {
            (_, Some("ConditionalCheckFailedException")) => StoreError::ConditionFailed,
            (
                _,
                Some(
                    "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "ThrottlingException"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionConflictException",
                ),
            ) => StoreError::Unavailable(detail),
            (SdkError::ServiceError(_), _) => StoreError::Request(detail),
            // Dispatch failures, timeouts and unparseable responses: the service was not reached.
            _ => StoreError::Unavailable(detail),
        }
    }
}

/// The table and the client that reaches it; cheap to clone.
#[derive(Clone, Debug)]
pub struct Table {
    client: Client,
    name: String,
}

pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk.into())),
        ("sk".to_string(), AttributeValue::S(sk.into())),
    ])
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A strongly consistent read: callers decide on what they read.
    pub async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(output.item)
    }

    /// Every item a query matches, all pages. Reads of the table are strongly consistent; an
    /// index (`gsi1`) can only be read eventually consistently.
    pub async fn query_all(
        &self,
        index: Option<&str>,
        key_condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.name)
                .set_index_name(index.map(str::to_string))
                .consistent_read(index.is_none())
                .key_condition_expression(key_condition)
                .set_exclusive_start_key(start.take());
            for (name, value) in &values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let output = query.send().await.map_err(StoreError::from_sdk)?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// Strongly consistent reads of up to 100 keys in one call; absent items are left out.
    pub async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Request(e.to_string()))?;
        let mut pending = HashMap::from([(self.name.clone(), keys)]);
        let mut found = Vec::new();
        // BatchGetItem may leave keys unprocessed under load; ask again for those only.
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            if let Some(mut responses) = output.responses {
                found.extend(responses.remove(&self.name).unwrap_or_default());
            }
            match output.unprocessed_keys {
                Some(rest) if !rest.is_empty() => pending = rest,
                _ => return Ok(found),
            }
        }
        Err(StoreError::Unavailable(
            "batch read left keys unprocessed".into(),
        ))
    }

    /// Writes `item` only if no item with its key exists.
    pub async fn put_new(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }
}

/// Serialises a record into an item under the given key.
pub fn to_item<T: serde::Serialize>(key_attrs: Item, record: &T) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(record).map_err(|e| StoreError::Corrupt {
        key: describe_key(&key_attrs),
        reason: e.to_string(),
    })?;
    item.extend(key_attrs);
    Ok(item)
}

/// Reads a record from an item; the key attributes are ignored by the record's type.
pub fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    let key = describe_key(&item);
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
        key,
        reason: e.to_string(),
    })
}

fn describe_key(item: &Item) -> String {
    let part = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.as_str(),
        _ => "?",
    };
    format!("{}/{}", part("pk"), part("sk"))
}
