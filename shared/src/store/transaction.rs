//! All-or-nothing writes of several items, each with its own condition.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};

use super::aggregates::PendingCounts;
use super::{Item, StoreError, Table};

/// Writes collected for one `TransactWriteItems` call; positions are reported back on failure.
/// Analytics counters (`count`) are merged per item and go after the other writes.
#[derive(Debug, Default)]
pub struct Transaction {
    items: Vec<TransactWriteItem>,
    pub(super) counts: PendingCounts,
}

/// A condition expression with its placeholder values.
pub struct Condition<'a> {
    pub expression: &'a str,
    pub values: Vec<(&'a str, AttributeValue)>,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes other than counters; the first counter update has this position.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.counts.is_empty()
    }

    /// Adds a put; returns its position.
    pub fn put(
        &mut self,
        table: &Table,
        item: Item,
        condition: Option<Condition<'_>>,
    ) -> Result<usize, StoreError> {
        let mut put = Put::builder().table_name(table.name()).set_item(Some(item));
        if let Some(condition) = condition {
            put = put.condition_expression(condition.expression);
            for name in attribute_names(condition.expression) {
                put = put.expression_attribute_names(format!("#{name}"), name);
            }
            for (name, value) in condition.values {
                put = put.expression_attribute_values(name, value);
            }
        }
        let put = put
            .build()
            .map_err(|e| StoreError::Request(e.to_string()))?;
        self.items
            .push(TransactWriteItem::builder().put(put).build());
        Ok(self.items.len() - 1)
    }

    /// Adds an update (`SET`/`ADD`/`REMOVE` expression on `key`); returns its position.
    pub fn update(
        &mut self,
        table: &Table,
        key: Item,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
        condition: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut update = Update::builder()
            .table_name(table.name())
            .set_key(Some(key))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_string));
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        for name in
            attribute_names(expression).chain(condition.into_iter().flat_map(attribute_names))
        {
            update = update.expression_attribute_names(format!("#{name}"), name);
        }
        let update = update
            .build()
            .map_err(|e| StoreError::Request(e.to_string()))?;
        self.items
            .push(TransactWriteItem::builder().update(update).build());
        Ok(self.items.len() - 1)
    }

    /// Adds an unconditional delete of `key`; returns its position.
    pub fn delete(&mut self, table: &Table, key: Item) -> Result<usize, StoreError> {
        let delete = Delete::builder()
            .table_name(table.name())
            .set_key(Some(key))
            .build()
            .map_err(|e| StoreError::Request(e.to_string()))?;
        self.items
            .push(TransactWriteItem::builder().delete(delete).build());
        Ok(self.items.len() - 1)
    }

    /// Adds a condition on an item the transaction does not write; returns its position.
    pub fn check(
        &mut self,
        table: &Table,
        key: Item,
        condition: &str,
    ) -> Result<usize, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(table.name())
            .set_key(Some(key))
            .condition_expression(condition)
            .build()
            .map_err(|e| StoreError::Request(e.to_string()))?;
        self.items
            .push(TransactWriteItem::builder().condition_check(check).build());
        Ok(self.items.len() - 1)
    }
}

/// The attributes an expression names as `#name`: by convention `#name` stands for `name`, which
/// lets expressions use DynamoDB's reserved words (`state`, `action`, …) as attribute names.
fn attribute_names(expression: &str) -> impl Iterator<Item = &str> {
    expression.split('#').skip(1).filter_map(|rest| {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    })
}

impl Table {
    /// Commits every write or none. Failed conditions come back as their positions.
    pub async fn commit(&self, transaction: Transaction) -> Result<(), StoreError> {
        if transaction.is_empty() {
            return Ok(());
        }
        let Transaction { mut items, counts } = transaction;
        items.extend(Transaction::count_items(counts, self)?);
        let result = crate::budget::bounded(
            self.client()
                .transact_write_items()
                .set_transact_items(Some(items))
                .send(),
        )
        .await?;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    e.as_service_error()
                else {
                    return Err(StoreError::from_sdk(e));
                };
                let failed: Vec<usize> = cancelled
                    .cancellation_reasons()
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                    .map(|(i, _)| i)
                    .collect();
                let conflict = cancelled
                    .cancellation_reasons()
                    .iter()
                    .any(|r| r.code() == Some("TransactionConflict"));
                if conflict {
                    crate::metrics::dynamodb_conflict();
                }
                if !failed.is_empty() {
                    Err(StoreError::TransactionConditionsFailed(failed))
                } else if conflict {
                    // Another transaction held one of the items: nothing was written.
                    Err(StoreError::TransactionConflict)
                } else {
                    if cancelled
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ThrottlingError"))
                    {
                        crate::metrics::dynamodb_throttle();
                    }
                    // Cancelled for throttling or capacity, not for our conditions: retryable.
                    Err(StoreError::Unavailable(format!(
                        "transaction cancelled: {:?}",
                        cancelled.message()
                    )))
                }
            }
        }
    }
}
