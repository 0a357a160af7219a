//! The single DynamoDB table (DESIGN.md, "one table"), behind small traits per item kind.
//!
//! Every write that can race is conditional, and a lost race is [`StoreError::ConditionFailed`],
//! never a string to match on.

mod aggregates;
mod checkout;
mod cursor;
mod customers;
mod erasure;
mod ledger;
mod portal;
mod schema;
mod transaction;
mod users;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;

pub use aggregates::{bucket_width, counter, names as counters, CustomerMark, DayAggregate};
pub use checkout::{CheckoutRecord, OpenCheckout, OpenCheckoutClaim, CHECKOUT_RETENTION_SECONDS};
pub use cursor::RunCursor;
pub use customers::{
    is_audit_key, AuditEntry, AuditPage, AuditSource, CancellationDetails, CustomerState,
    CustomerStore, LifetimePurchaseRecord, PortalVisit, SyncDue, SyncSlot, AUDIT_DAY_SHARDS,
    VISIT_AFTER_RETURN_SECONDS,
};
pub use erasure::{digest, Tombstone};
pub use ledger::{Claim, LedgerEntry, LedgerState, LEDGER_RETENTION_SECONDS};
pub use portal::{PortalSessionRecord, WorkflowConfigRecord, WorkflowMapping};
pub use schema::{create_table, GSI1, TTL_ATTRIBUTE};
pub use transaction::{Condition, Transaction};
pub use users::{LinkRefused, UserRecord, UserStore};

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// A conditional write lost: the item exists, or changed since it was read.
    #[error("conditional write lost a race")]
    ConditionFailed,
    /// A transaction was cancelled because the conditions at these positions failed.
    #[error("transaction cancelled: conditions failed at {0:?}")]
    TransactionConditionsFailed(Vec<usize>),
    /// Another transaction held an item this request needed (`TransactionConflict`): a lost
    /// race, not an outage; read again and retry.
    #[error("another transaction held the item")]
    TransactionConflict,
    /// DynamoDB is unreachable, throttling or failing; worth retrying.
    #[error("DynamoDB unavailable: {0}")]
    Unavailable(String),
    /// The invocation's time budget ran out before DynamoDB answered.
    #[error(transparent)]
    Budget(#[from] crate::budget::BudgetSpent),
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
            (_, Some("TransactionConflictException")) => {
                crate::metrics::dynamodb_conflict();
                StoreError::TransactionConflict
            }
            (
                _,
                Some(
                    "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "ThrottlingException",
                ),
            ) => {
                // Still throttled after the SDK's own retries.
                crate::metrics::dynamodb_throttle();
                StoreError::Unavailable(detail)
            }
            (_, Some("InternalServerError" | "ServiceUnavailable")) => {
                StoreError::Unavailable(detail)
            }
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
    retention: Retention,
}

/// How long DynamoDB's TTL keeps items that hold a user's activity, counted from when each was
/// written (SESSION_RETENTION_DAYS, AUDIT_RETENTION_DAYS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub portal_sessions: Duration,
    pub audit: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            portal_sessions: Duration::from_secs(90 * 86_400),
            audit: Duration::from_secs(400 * 86_400),
        }
    }
}

/// The TTL (epoch seconds) of an item written at `at` (RFC 3339) and kept for `keep`; `None` for
/// a time that does not parse, which keeps the item rather than expiring it early.
fn expiry(at: &str, keep: Duration) -> Option<i64> {
    let written =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    let keep = i64::try_from(keep.as_secs()).ok()?;
    Some(written.unix_timestamp().saturating_add(keep))
}

pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk.into())),
        ("sk".to_string(), AttributeValue::S(sk.into())),
    ])
}

/// Sends of one request refused because a transaction held its item, before giving up.
const CONFLICT_ATTEMPTS: u32 = 4;

/// A short pause before another try after a lost transaction race, jittered so two racers part.
pub async fn conflict_pause(attempt: u32) {
    let jitter = crate::budget::jitter();
    let pause = Duration::from_millis(10 << attempt.min(6)).mul_f64(jitter);
    tokio::time::sleep(pause).await;
}

impl Table {
    /// Sends one request, built afresh by `request` for each try, within the invocation's
    /// budget. A request refused because a transaction held its item is a lost race and is
    /// sent again after a short pause; throttling and 5xx are retried by the SDK itself.
    pub(crate) async fn send<T, E, R, Fut>(
        &self,
        request: impl Fn() -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let mut attempt = 1;
        loop {
            // Boxed: the SDK's futures are large, and every store call would carry one inline.
            let sent = crate::budget::bounded(Box::pin(request())).await?;
            match sent.map_err(StoreError::from_sdk) {
                Err(StoreError::TransactionConflict) if attempt < CONFLICT_ATTEMPTS => {
                    conflict_pause(attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            retention: Retention::default(),
        }
    }

    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A strongly consistent read: callers decide on what they read.
    pub async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let request = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true);
        let output = self.send(|| request.clone().send()).await?;
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
            let output = self.send(|| query.clone().send()).await?;
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
            let request = self
                .client
                .batch_get_item()
                .set_request_items(Some(pending));
            let output = self.send(|| request.clone().send()).await?;
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
        let request = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(pk)");
        match self.send(|| request.clone().send()).await {
            // An attempt that timed out may have written the item before the SDK's retry found
            // it there: the item being exactly ours means the write happened, once.
            Err(StoreError::ConditionFailed) => {
                let key = key_of(&item);
                match self.get(key).await? {
                    Some(stored) if stored == item => Ok(()),
                    _ => Err(StoreError::ConditionFailed),
                }
            }
            other => other.map(|_| ()),
        }
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

pub(crate) fn key_of(item: &Item) -> Item {
    item.iter()
        .filter(|(name, _)| matches!(name.as_str(), "pk" | "sk"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

pub(crate) fn describe_key(item: &Item) -> String {
    let part = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.as_str(),
        _ => "?",
    };
    format!("{}/{}", part("pk"), part("sk"))
}
