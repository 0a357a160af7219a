//! Analytics aggregates: per-day counters (`ANALYTICS` / `DAY#<date>#<shard>`), added to in the
//! same transaction as the event they count, so a period is one `Query` and a retried event is
//! counted once (its own condition fails, and the counters with it).
//!
//! Why shards: transactions touching one item at once conflict, and an update costs write units
//! by the size of the whole item (1 KB each, twice in a transaction) against DynamoDB's 1,000
//! write units a second per partition. Spreading a day over [`AGGREGATE_SHARDS`] items, chosen by
//! a hash of the customer (one customer is never hot), keeps each item small and rarely
//! contended; a 30-day read is still one `Query` of 240 small items.
//!
//! They hold no user id, email or customer id (a truncated hash stands for a customer), and
//! carry no TTL: they are what outlives the retention of sessions and audit entries.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::transaction::{Condition, Transaction};
use super::{key, Item, PortalSessionRecord, StoreError, Table};
use crate::ids::CustomerId;

pub const AGGREGATE_SHARDS: u8 = 8;
/// Customer hashes kept exactly per shard and day (512 a day); past that, a sketch.
pub const EXACT_CUSTOMERS_PER_SHARD: usize = 64;
const AGGREGATE_PK: &str = "ANALYTICS";
const DAY_PREFIX: &str = "DAY#";

/// Counter names. A name with a value after the prefix (`wf_payment_update`) is one of a family.
pub mod names {
    pub const SESSIONS: &str = "sessions";
    pub const RETURNED: &str = "returned";
    /// Sum of the returned sessions' durations, milliseconds (the exact average).
    pub const DURATION_MS: &str = "duration_ms";
    pub const OFFERS_SHOWN: &str = "offers_shown";
    pub const OFFERS_ACCEPTED: &str = "offers_accepted";
    pub const WORKFLOW: &str = "wf_";
    pub const FEATURE: &str = "feat_";
    pub const REASON: &str = "reason_";
    /// Histogram bucket, named by its lower bound in seconds.
    pub const DURATION_BUCKET: &str = "dur_";
    /// String set of customer hashes, while the shard's day has at most
    /// [`super::EXACT_CUSTOMERS_PER_SHARD`].
    pub const CUSTOMERS: &str = "cust";
    /// Number set of sketch entries (register × 64 + rank) of customers past the exact set.
    pub const CUSTOMER_SKETCH: &str = "cust_sketch";
    pub const CUSTOMER_OVERFLOW: &str = "cust_overflow";
}

/// What a customer contributes to unique-customer counts: a 64-bit digest of its id (never the
/// id), its shard, and its HyperLogLog register and rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerMark {
    pub hash: String,
    pub shard: u8,
    pub register: u8,
    pub rank: u8,
}

impl CustomerMark {
    pub fn of(customer: &CustomerId) -> Self {
        let mut input = b"portico-analytics:".to_vec();
        input.extend_from_slice(customer.as_str().as_bytes());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest.as_ref()[..8]);
        Self::from_bits(u64::from_be_bytes(bytes))
    }

    /// From a stored hash (16 hex digits).
    pub fn parse(hash: &str) -> Option<Self> {
        (hash.len() == 16)
            .then(|| u64::from_str_radix(hash, 16).ok())
            .flatten()
            .map(Self::from_bits)
    }

    fn from_bits(bits: u64) -> Self {
        let register = (bits >> 56) as u8;
        // Rank: one more than the leading zeros of the 56 bits after the register (1..=57).
        let rank = ((bits << 8).leading_zeros().min(56) + 1) as u8;
        CustomerMark {
            hash: format!("{bits:016x}"),
            // Each shard sees its own registers, so a shard's sketch stays 32 registers wide.
            shard: register % AGGREGATE_SHARDS,
            register,
            rank,
        }
    }

    pub fn sketch_entry(&self) -> u16 {
        u16::from(self.register) * 64 + u16::from(self.rank)
    }
}

/// A counter name made of a prefix and a value from Stripe or Portico (`reason_too_expensive`):
/// values are snake_case words; anything else is counted as `other`.
pub fn counter(prefix: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value.len() <= 48
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    format!("{prefix}{}", if plain { value } else { "other" })
}

/// Additions to one day's shard item.
#[derive(Debug, Default)]
pub(super) struct DayCounts {
    adds: BTreeMap<String, i64>,
    customer: Option<(CustomerMark, bool)>,
}

pub(super) type PendingCounts = BTreeMap<(String, u8), DayCounts>;

fn day_key(day: &str, shard: u8) -> Item {
    key(AGGREGATE_PK, format!("{DAY_PREFIX}{day}#{shard}"))
}

impl Transaction {
    /// Adds `n` to a counter of `day` (`YYYY-MM-DD`) in `shard`; written at commit, one update
    /// per item (a transaction may not touch an item twice).
    pub fn count(&mut self, day: &str, shard: u8, counter: &str, n: i64) {
        let counts = self
            .counts
            .entry((day.to_string(), shard % AGGREGATE_SHARDS))
            .or_default();
        *counts.adds.entry(counter.to_string()).or_default() += n;
    }

    /// Counts the customer among `day`'s unique customers: into the exact set while the shard's
    /// set has room (the update's condition says so), else (`overflow`) into the sketch.
    pub fn count_customer(&mut self, day: &str, customer: CustomerMark, overflow: bool) {
        let counts = self
            .counts
            .entry((day.to_string(), customer.shard))
            .or_default();
        counts.customer = Some((customer, overflow));
    }

    /// The pending counter updates as transaction items, after the others.
    pub(super) fn count_items(
        counts: PendingCounts,
        table: &Table,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut items = Vec::new();
        for ((day, shard), counts) in counts {
            let mut update = Update::builder()
                .table_name(table.name())
                .set_key(Some(day_key(&day, shard)));
            let mut adds = Vec::new();
            let mut sets = Vec::new();
            for (n, (name, value)) in counts.adds.iter().enumerate() {
                adds.push(format!("#a{n} :a{n}"));
                update = update
                    .expression_attribute_names(format!("#a{n}"), name)
                    .expression_attribute_values(format!(":a{n}"), number(*value));
            }
            match counts.customer {
                Some((customer, false)) => {
                    adds.push("#cust :cust".into());
                    update = update
                        .expression_attribute_names("#cust", names::CUSTOMERS)
                        .expression_attribute_values(
                            ":cust",
                            AttributeValue::Ss(vec![customer.hash.clone()]),
                        )
                        .expression_attribute_values(":hash", AttributeValue::S(customer.hash))
                        .expression_attribute_values(
                            ":room",
                            number(EXACT_CUSTOMERS_PER_SHARD as i64),
                        )
                        // A customer already in the set is no new member.
                        .condition_expression(
                            "attribute_not_exists(#cust) OR size(#cust) < :room OR contains(#cust, :hash)",
                        );
                }
                Some((customer, true)) => {
                    adds.push("#sketch :sketch".into());
                    sets.push("#overflow = :true".to_string());
                    update = update
                        .expression_attribute_names("#sketch", names::CUSTOMER_SKETCH)
                        .expression_attribute_names("#overflow", names::CUSTOMER_OVERFLOW)
                        .expression_attribute_values(
                            ":sketch",
                            AttributeValue::Ns(vec![customer.sketch_entry().to_string()]),
                        )
                        .expression_attribute_values(":true", AttributeValue::Bool(true));
                }
                None => {}
            }
            if adds.is_empty() && sets.is_empty() {
                continue;
            }
            let mut expression = String::new();
            if !adds.is_empty() {
                expression = format!("ADD {}", adds.join(", "));
            }
            if !sets.is_empty() {
                expression.push_str(&format!(" SET {}", sets.join(", ")));
            }
            let update = update
                .update_expression(expression)
                .build()
                .map_err(|e| StoreError::Request(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(items)
    }
}

/// Durations are counted in buckets: whole seconds below 64 s, then 64 buckets per doubling,
/// so a bucket is never wider than 1/64 of its lower bound. Returns (lower bound, width), seconds.
pub fn duration_bucket(ms: i64) -> (i64, i64) {
    let seconds = ms.max(0) / 1000;
    let width = bucket_width(seconds);
    (seconds - seconds % width, width)
}

/// The width of the bucket whose lower bound (or any member) is `seconds`.
pub fn bucket_width(seconds: i64) -> i64 {
    if seconds < 64 {
        return 1;
    }
    let octave = 63 - i64::from(seconds.leading_zeros());
    1 << (octave - 6)
}

impl Transaction {
    /// Marks `day`'s audit entries counted by the backfill, once (with their counts).
    pub fn mark_audit_day_backfilled(
        &mut self,
        table: &Table,
        day: &str,
    ) -> Result<usize, StoreError> {
        self.put(
            table,
            key(AGGREGATE_PK, format!("{BACKFILLED_PREFIX}{day}")),
            Some(Condition {
                expression: "attribute_not_exists(pk)",
                values: vec![],
            }),
        )
    }

    /// Counts a new session on its creation day: the session, its workflow, an offer shown and
    /// its customer; a record stored already returned (an import) counts its return too.
    pub fn count_session(&mut self, record: &PortalSessionRecord, overflow: bool) {
        let day = record.created_at.get(..10).unwrap_or_default();
        let customer = CustomerMark::of(&record.customer_id);
        let shard = customer.shard;
        self.count(day, shard, names::SESSIONS, 1);
        self.count(
            day,
            shard,
            &counter(names::WORKFLOW, record.workflow.as_str()),
            1,
        );
        if record.retention_offer.is_some() {
            self.count(day, shard, names::OFFERS_SHOWN, 1);
        }
        self.count_customer(day, customer, overflow);
        if let Some(returned_at) = &record.returned_at {
            self.count_return(record, returned_at);
        }
    }

    /// Counts a session's first return, on the session's creation day, with its duration.
    pub fn count_return(&mut self, record: &PortalSessionRecord, returned_at: &str) {
        let day = record.created_at.get(..10).unwrap_or_default();
        let shard = CustomerMark::of(&record.customer_id).shard;
        let ms = match (
            OffsetDateTime::parse(&record.created_at, &Rfc3339),
            OffsetDateTime::parse(returned_at, &Rfc3339),
        ) {
            (Ok(created), Ok(returned)) => {
                i64::try_from((returned - created).whole_milliseconds().max(0)).unwrap_or(0)
            }
            _ => 0,
        };
        let (bucket, _) = duration_bucket(ms);
        self.count(day, shard, names::RETURNED, 1);
        self.count(day, shard, names::DURATION_MS, ms);
        self.count(
            day,
            shard,
            &format!("{}{bucket}", names::DURATION_BUCKET),
            1,
        );
    }
}

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// One day's shard item as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayAggregate {
    pub day: String,
    pub counters: BTreeMap<String, i64>,
    pub customers: Vec<String>,
    pub sketch: Vec<u16>,
    pub overflow: bool,
}

impl DayAggregate {
    fn from_item(item: Item) -> Result<Self, StoreError> {
        let mut aggregate = DayAggregate::default();
        for (name, value) in item {
            match (name.as_str(), value) {
                ("pk", _) => {}
                ("sk", AttributeValue::S(sk)) => {
                    aggregate.day = sk
                        .strip_prefix(DAY_PREFIX)
                        .and_then(|rest| rest.split('#').next())
                        .unwrap_or_default()
                        .to_string();
                }
                (names::CUSTOMERS, AttributeValue::Ss(hashes)) => aggregate.customers = hashes,
                (names::CUSTOMER_SKETCH, AttributeValue::Ns(entries)) => {
                    aggregate.sketch = entries.iter().filter_map(|e| e.parse().ok()).collect()
                }
                (names::CUSTOMER_OVERFLOW, AttributeValue::Bool(b)) => aggregate.overflow = b,
                (_, AttributeValue::N(n)) => {
                    let n = n.parse().map_err(|_| StoreError::Corrupt {
                        key: format!("{AGGREGATE_PK}/{}", aggregate.day),
                        reason: format!("counter {name} is not an integer"),
                    })?;
                    aggregate.counters.insert(name.clone(), n);
                }
                _ => {}
            }
        }
        Ok(aggregate)
    }
}

const CUTOVER_SK: &str = "CUTOVER";
const BACKFILLED_PREFIX: &str = "BACKFILLED#";

impl Table {
    /// The first day the aggregates were written live: the earliest day item when first asked
    /// (`today` when there is none), then fixed, so a backfill run again decides the same.
    pub async fn aggregates_cutover(&self, today: &str) -> Result<String, StoreError> {
        let cutover_key = key(AGGREGATE_PK, CUTOVER_SK);
        let stored_day = |item: Option<Item>| {
            item.and_then(|i| i.get("day").and_then(|d| d.as_s().ok()).cloned())
        };
        if let Some(day) = stored_day(self.get(cutover_key.clone()).await?) {
            return Ok(day);
        }
        let request = self
            .client()
            .query()
            .table_name(self.name())
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :day)")
            .expression_attribute_values(":pk", AttributeValue::S(AGGREGATE_PK.into()))
            .expression_attribute_values(":day", AttributeValue::S(DAY_PREFIX.into()))
            .limit(1);
        let output = self.send(|| request.clone().send()).await?;
        let earliest = output
            .items()
            .first()
            .and_then(|i| {
                i.get("sk")?
                    .as_s()
                    .ok()?
                    .strip_prefix(DAY_PREFIX)?
                    .get(..10)
            })
            .map(str::to_string)
            .unwrap_or_else(|| today.to_string());
        let mut item = cutover_key.clone();
        item.insert("day".into(), AttributeValue::S(earliest));
        match self.put_new(item).await {
            Ok(()) | Err(StoreError::ConditionFailed) => {}
            Err(e) => return Err(e),
        }
        stored_day(self.get(cutover_key).await?).ok_or_else(|| StoreError::Corrupt {
            key: format!("{AGGREGATE_PK}/{CUTOVER_SK}"),
            reason: "no day".into(),
        })
    }

    /// Whether the backfill has counted `day`'s audit entries.
    pub async fn audit_day_backfilled(&self, day: &str) -> Result<bool, StoreError> {
        Ok(self
            .get(key(AGGREGATE_PK, format!("{BACKFILLED_PREFIX}{day}")))
            .await?
            .is_some())
    }

    /// Every shard item of the days `start..=end` (`YYYY-MM-DD`): one `Query` (more pages only
    /// past 1 MB, far beyond a month of a busy portal).
    pub async fn day_aggregates(
        &self,
        start: &str,
        end: &str,
    ) -> Result<Vec<DayAggregate>, StoreError> {
        self.query_all(
            None,
            // '~' sorts after every shard suffix.
            "pk = :pk AND sk BETWEEN :from AND :to",
            vec![
                (":pk", AttributeValue::S(AGGREGATE_PK.into())),
                (":from", AttributeValue::S(format!("{DAY_PREFIX}{start}"))),
                (":to", AttributeValue::S(format!("{DAY_PREFIX}{end}#~"))),
            ],
        )
        .await?
        .into_iter()
        .map(DayAggregate::from_item)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_stable_and_parse_back() {
        let mark = CustomerMark::of(&CustomerId::parse("cus_analytics1").unwrap());
        assert_eq!(CustomerMark::parse(&mark.hash), Some(mark.clone()));
        assert!(!mark.hash.contains("analytics"));
        assert!((1..=57).contains(&mark.rank));
        assert_eq!(mark.shard, mark.register % AGGREGATE_SHARDS);
        assert_eq!(CustomerMark::parse("xyz"), None);
    }

    #[test]
    fn buckets_are_seconds_then_a_sixty_fourth_of_their_bound() {
        assert_eq!(duration_bucket(-5), (0, 1));
        assert_eq!(duration_bucket(63_999), (63, 1));
        assert_eq!(duration_bucket(64_000), (64, 1));
        assert_eq!(duration_bucket(128_500), (128, 2));
        assert_eq!(duration_bucket(129_999), (128, 2));
        assert_eq!(duration_bucket(3_600_000), (3_584, 32));
        for seconds in [64i64, 100, 1_000, 5_000, 86_400, 1 << 30] {
            let (lower, width) = duration_bucket(seconds * 1000);
            assert!(lower <= seconds && seconds < lower + width);
            assert!(width * 64 <= lower.max(64), "{seconds}: {width}");
            assert_eq!(bucket_width(lower), width);
        }
    }

    #[test]
    fn counter_names_take_snake_case_values_only() {
        assert_eq!(counter("reason_", "too_expensive"), "reason_too_expensive");
        assert_eq!(counter("reason_", "Too Expensive"), "reason_other");
        assert_eq!(counter("reason_", ""), "reason_other");
    }
}
