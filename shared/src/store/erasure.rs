//! Erasure items: the marker that a customer's data was erased (`ERASED#<customer digest>` /
//! `MARKER`, so late webhooks do not bring it back), the tombstone of an erased user
//! (`ERASURE#<user digest>` / `TOMBSTONE`), and the search and batched deletion of everything
//! that names a user or their customer. Neither the marker nor the tombstone holds an id in
//! clear: they are found by digest.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use super::users::user_key;
use super::{from_item, key, key_of, to_item, Item, StoreError, Table, Transaction, TTL_ATTRIBUTE};
use crate::ids::{CustomerId, UserId};

/// SHA-256 of an id, hex: stable, so a re-run finds what the first run wrote.
pub fn digest(id: &str) -> String {
    crate::ids::sha256_hex(id.as_bytes(), 32)
}

fn marker_key(customer: &CustomerId) -> Item {
    key(format!("ERASED#{}", digest(customer.as_str())), "MARKER")
}

fn tombstone_key(user: &UserId) -> Item {
    key(format!("ERASURE#{}", digest(user.as_str())), "TOMBSTONE")
}

/// What is left of an erased user: when, by whom, and whether Stripe's customer went too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The SHA-256 of the user id: lets an operator confirm that a given user was erased.
    pub erasure_id: String,
    /// The administrator (or `cli:<operator>`) who erased the user.
    pub actor: String,
    pub erased_at: String,
    pub stripe_customer_deleted: bool,
    /// Items removed from the table, the tombstone's own run only.
    pub items_deleted: usize,
}

/// Items one `BatchWriteItem` call deletes at most.
const BATCH: usize = 25;
/// Calls for one batch while DynamoDB leaves some of it unprocessed (throttling), before giving up.
const BATCH_ATTEMPTS: u32 = 6;

impl Table {
    /// Whether the customer's data was erased (and must not be written again).
    pub async fn customer_erased(&self, customer: &CustomerId) -> Result<bool, StoreError> {
        Ok(self.get(marker_key(customer)).await?.is_some())
    }

    /// Marks the customer erased. No TTL: the customer may outlive the erasure in Stripe and
    /// send events for years.
    pub async fn mark_customer_erased(
        &self,
        customer: &CustomerId,
        at: &str,
    ) -> Result<(), StoreError> {
        let mut item = marker_key(customer);
        item.insert("erased_at".into(), AttributeValue::S(at.into()));
        let request = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(item));
        self.send(|| request.clone().send()).await?;
        Ok(())
    }

    /// Lifts the marker: the customer was linked to a user again.
    pub async fn clear_customer_erased(&self, customer: &CustomerId) -> Result<(), StoreError> {
        let request = self
            .client()
            .delete_item()
            .table_name(self.name())
            .set_key(Some(marker_key(customer)));
        self.send(|| request.clone().send()).await?;
        Ok(())
    }

    pub async fn tombstone(&self, user: &UserId) -> Result<Option<Tombstone>, StoreError> {
        self.get(tombstone_key(user))
            .await?
            .map(from_item)
            .transpose()
    }

    /// The keys of every item that belongs to the user or to one of `customers`, or names
    /// either in `user_id` / `customer_id`, except the user's profile: one strongly consistent
    /// scan of the whole table, because portal sessions and checkout records are keyed by their
    /// own ids. The customers whose state names the user are added to `customers`.
    pub async fn items_naming(
        &self,
        user: &UserId,
        customers: &mut BTreeSet<CustomerId>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut values = HashMap::from([
            (":user".to_string(), AttributeValue::S(user.to_string())),
            (
                ":upk".to_string(),
                AttributeValue::S(format!("USER#{user}")),
            ),
        ]);
        let mut filter = "pk = :upk OR user_id = :user".to_string();
        for (n, customer) in customers.iter().enumerate() {
            filter.push_str(&format!(" OR pk = :cpk{n} OR customer_id = :cus{n}"));
            values.insert(
                format!(":cpk{n}"),
                AttributeValue::S(format!("CUS#{customer}")),
            );
            values.insert(format!(":cus{n}"), AttributeValue::S(customer.to_string()));
        }
        let profile = user_key(user);
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let scan = self
                .client()
                .scan()
                .table_name(self.name())
                .consistent_read(true)
                .filter_expression(&filter)
                .set_expression_attribute_values(Some(values.clone()))
                .projection_expression("pk, sk, user_id")
                .set_exclusive_start_key(start.take());
            let output = self.send(|| scan.clone().send()).await?;
            for item in output.items.unwrap_or_default() {
                let item_key = key_of(&item);
                // Never another user's item, even one that names this customer (one customer
                // per user is the rule; an erasure must not act on a breach of it).
                let other_user = match (item.get("user_id"), item.get("pk")) {
                    (Some(AttributeValue::S(owner)), _) => owner != user.as_str(),
                    (_, Some(AttributeValue::S(pk))) => {
                        pk.starts_with("USER#") && *pk != format!("USER#{user}")
                    }
                    _ => false,
                };
                if item_key == profile || other_user {
                    continue;
                }
                // A customer whose state names the user: its whole partition is theirs too.
                if let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                    (item.get("pk"), item.get("sk"))
                {
                    if sk == "STATE" {
                        if let Some(id) = pk
                            .strip_prefix("CUS#")
                            .and_then(|c| CustomerId::parse(c).ok())
                        {
                            customers.insert(id);
                        }
                    }
                }
                keys.push(item_key);
            }
            match output.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    /// Every item of the customer's partition (state, sync counter, audit, lifetime purchases).
    pub async fn customer_partition(&self, customer: &CustomerId) -> Result<Vec<Item>, StoreError> {
        Ok(self
            .query_all(
                None,
                "pk = :pk",
                vec![(":pk", AttributeValue::S(format!("CUS#{customer}")))],
            )
            .await?
            .iter()
            .map(key_of)
            .collect())
    }

    /// Deletes the items in batches of 25, sending again what DynamoDB leaves unprocessed.
    /// Deleting an item that is gone already is no error, so a re-run is harmless.
    pub async fn delete_all(&self, keys: Vec<Item>) -> Result<usize, StoreError> {
        let total = keys.len();
        for chunk in keys.chunks(BATCH) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::Request(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt == BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "batch delete left items unprocessed".into(),
                    ));
                }
                if attempt > 0 {
                    let pause =
                        Duration::from_millis(25 << attempt).mul_f64(crate::budget::jitter());
                    tokio::time::sleep(pause).await;
                }
                attempt += 1;
                let request = self
                    .client()
                    .batch_write_item()
                    .request_items(self.name(), pending.clone());
                let output = self.send(|| request.clone().send()).await?;
                pending = output
                    .unprocessed_items
                    .and_then(|mut rest| rest.remove(self.name()))
                    .unwrap_or_default();
            }
        }
        Ok(total)
    }

    /// Deletes the user's profile and leaves the tombstone, in one transaction: the profile is
    /// the last item an erasure removes, so as long as it exists a re-run knows what to finish.
    pub async fn finish_erasure(
        &self,
        user: &UserId,
        tombstone: &Tombstone,
    ) -> Result<(), StoreError> {
        let mut item = to_item(tombstone_key(user), tombstone)?;
        if let Some(ttl) = super::expiry(&tombstone.erased_at, self.retention().audit) {
            item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(ttl.to_string()));
        }
        let mut tx = Transaction::new();
        tx.delete(self, user_key(user))?;
        tx.put(self, item, None)?;
        self.commit(tx).await
    }
}

impl Transaction {
    /// Holds the transaction to the customer not having been erased meanwhile.
    pub fn require_not_erased(
        &mut self,
        table: &Table,
        customer: &CustomerId,
    ) -> Result<usize, StoreError> {
        self.check(table, marker_key(customer), "attribute_not_exists(pk)")
    }

    /// Lifts the erasure marker as part of a new link.
    pub fn clear_customer_erased(
        &mut self,
        table: &Table,
        customer: &CustomerId,
    ) -> Result<usize, StoreError> {
        self.delete(table, marker_key(customer))
    }
}
