//! Portal items: sessions (`PSESS#<ref>` / `META`, listed by day through `gsi1`) and the
//! per-workflow configuration (`CONFIG` / `WORKFLOW#<name>`).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::transaction::{Condition, Transaction};
use super::users::user_key;
use super::{
    conflict_pause, from_item, key, to_item, Item, StoreError, Table, UserRecord, GSI1,
    TTL_ATTRIBUTE,
};
use crate::ids::{CustomerId, UserId};
use crate::portal::{Workflow, WorkflowSettings};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSessionRecord {
    pub reference: String,
    pub user_id: UserId,
    pub customer_id: CustomerId,
    /// Stored as its snake_case name (`payment_update`), as when it was a string.
    pub workflow: Workflow,
    pub stripe_session_id: String,
    pub configuration_id: String,
    pub return_url: String,
    pub created_at: String,
    // Absent, not null, until the return: the first-return condition tests for absence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Unix time until which the session's return link works (absent on older records: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_until: Option<i64>,
    /// The coupon the cancellation flow offered, if it offered one (analytics: offers shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_offer: Option<String>,
    /// Counted in the analytics aggregates when stored (false on sessions stored before them,
    /// until the backfill counts them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted: bool,
}

/// A workflow's settings as an admin stored them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowConfigRecord {
    pub workflow: Workflow,
    pub settings: WorkflowSettings,
    pub updated_at: String,
}

/// The workflow mapping as read at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowMapping {
    pub records: Vec<WorkflowConfigRecord>,
    pub version: u64,
}

impl WorkflowMapping {
    pub fn record(&self, workflow: Workflow) -> Option<&WorkflowConfigRecord> {
        self.records.iter().find(|r| r.workflow == workflow)
    }

    /// What an admin saved for the workflow (nothing: every default).
    pub fn settings(&self, workflow: Workflow) -> WorkflowSettings {
        self.record(workflow)
            .map(|r| r.settings.clone())
            .unwrap_or_default()
    }

    /// The workflows whose sessions open with `configuration`, given the default.
    pub fn users_of(&self, configuration: &str, default: Option<&str>) -> Vec<Workflow> {
        Workflow::ALL
            .into_iter()
            .filter(|w| {
                self.record(*w)
                    .map_or(default, |r| r.settings.effective_configuration(default))
                    == Some(configuration)
            })
            .collect()
    }
}

pub(super) fn session_key(reference: &str) -> Item {
    key(format!("PSESS#{reference}"), "META")
}

const CONFIG_PK: &str = "CONFIG";
const WORKFLOW_PREFIX: &str = "WORKFLOW#";
/// The item whose version every change of the mapping bumps.
const MAPPING_SK: &str = "MAPPING";
const SESSION_DAY: &str = "PSESSDAY#";

fn workflow_key(workflow: Workflow) -> Item {
    key(CONFIG_PK, format!("{WORKFLOW_PREFIX}{}", workflow.as_str()))
}

impl Table {
    /// The user and the workflow's configuration in one round trip.
    pub async fn get_user_and_workflow(
        &self,
        user: &UserId,
        workflow: Workflow,
    ) -> Result<(Option<UserRecord>, Option<WorkflowConfigRecord>), StoreError> {
        let (mut user_record, mut workflow_record) = (None, None);
        for item in self
            .batch_get(vec![user_key(user), workflow_key(workflow)])
            .await?
        {
            match item.get("pk") {
                Some(AttributeValue::S(pk)) if pk == CONFIG_PK => {
                    workflow_record = Some(from_item(item)?)
                }
                _ => user_record = Some(from_item(item)?),
            }
        }
        Ok((user_record, workflow_record))
    }

    /// Every workflow an admin has configured, and the mapping's version, in one query.
    pub async fn workflow_mapping(&self) -> Result<WorkflowMapping, StoreError> {
        let mut mapping = WorkflowMapping::default();
        for item in self
            .query_all(
                None,
                "pk = :pk",
                vec![(":pk", AttributeValue::S(CONFIG_PK.into()))],
            )
            .await?
        {
            match item.get("sk") {
                Some(AttributeValue::S(sk)) if sk == MAPPING_SK => {
                    mapping.version = item
                        .get("version")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_default();
                }
                Some(AttributeValue::S(sk)) if sk.starts_with(WORKFLOW_PREFIX) => {
                    mapping.records.push(from_item(item)?)
                }
                _ => {}
            }
        }
        Ok(mapping)
    }

    /// Stores a workflow's settings if the mapping is still at the version they were decided
    /// on: two admins editing workflows at once cannot both pass checks that look across
    /// workflows. The loser gets a failed condition and decides again.
    pub async fn save_workflow_config(
        &self,
        record: &WorkflowConfigRecord,
        read_version: u64,
    ) -> Result<(), StoreError> {
        let mut tx = Transaction::new();
        tx.put(self, to_item(workflow_key(record.workflow), record)?, None)?;
        tx.update(
            self,
            key(CONFIG_PK, MAPPING_SK),
            "SET version = :next",
            vec![
                (":next", AttributeValue::N((read_version + 1).to_string())),
                (":read", AttributeValue::N(read_version.to_string())),
            ],
            Some("attribute_not_exists(pk) OR version = :read"),
        )?;
        self.commit(tx).await
    }

    /// Portal sessions created on `day` (`YYYY-MM-DD`), through the index.
    pub async fn portal_sessions_created_on(
        &self,
        day: &str,
    ) -> Result<Vec<PortalSessionRecord>, StoreError> {
        self.query_all(
            Some(GSI1),
            "gsi1pk = :day",
            vec![(":day", AttributeValue::S(format!("{SESSION_DAY}{day}")))],
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    /// Records a new portal session, indexed by its creation day, with its analytics counts
    /// and as the customer's newest visit, in one transaction.
    pub async fn insert_portal_session(
        &self,
        record: &PortalSessionRecord,
    ) -> Result<(), StoreError> {
        let mut record = record.clone();
        record.counted = true;
        let mut item = to_item(session_key(&record.reference), &record)?;
        let day = record.created_at.get(..10).unwrap_or_default();
        item.insert(
            "gsi1pk".into(),
            AttributeValue::S(format!("{SESSION_DAY}{day}")),
        );
        item.insert(
            "gsi1sk".into(),
            AttributeValue::S(format!("{}#{}", record.created_at, record.reference)),
        );
        // Kept for the retention setting from its creation, never less than its return link
        // works. Analytics keeps its own per-day counts, so past figures outlive the record.
        if let Some(ttl) = super::expiry(&record.created_at, self.retention().portal_sessions) {
            let ttl = record.return_until.map_or(ttl, |until| ttl.max(until));
            item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(ttl.to_string()));
        }
        let mut overflow = false;
        let mut conflicts = 0;
        loop {
            let mut tx = Transaction::new();
            tx.put(
                self,
                item.clone(),
                Some(Condition {
                    expression: "attribute_not_exists(pk)",
                    values: vec![],
                }),
            )?;
            if let Some(until) = record.return_until {
                tx.open_portal_visit(
                    self,
                    &record.customer_id,
                    &record.reference,
                    &record.created_at,
                    until,
                    record.retention_offer.as_deref(),
                )?;
            }
            let counters = tx.len();
            tx.count_session(&record, overflow);
            match self.commit(tx).await {
                Ok(()) => return Ok(()),
                // An attempt whose answer was lost may have written the session (and counted
                // it) before the SDK's retry found it there: exactly ours means done, once.
                Err(StoreError::TransactionConditionsFailed(failed)) if failed.contains(&0) => {
                    return match self.get(session_key(&record.reference)).await? {
                        Some(stored) if stored == item => Ok(()),
                        _ => Err(StoreError::ConditionFailed),
                    };
                }
                // The day's exact set of customers is full in this shard: sketch from now on.
                Err(StoreError::TransactionConditionsFailed(failed))
                    if failed.contains(&counters) && !overflow =>
                {
                    overflow = true;
                }
                Err(StoreError::TransactionConflict) if conflicts < 4 => {
                    conflicts += 1;
                    conflict_pause(conflicts).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Counts a session stored before the aggregates existed (the backfill), once: its
    /// `counted` flag is set with its counts, on the state it was read in (a return in between
    /// fails the condition, and the caller reads it again).
    pub async fn count_stored_session(
        &self,
        record: &PortalSessionRecord,
    ) -> Result<(), StoreError> {
        let mut overflow = false;
        loop {
            let mut tx = Transaction::new();
            let returned = if record.returned_at.is_some() {
                "attribute_exists(returned_at)"
            } else {
                "attribute_not_exists(returned_at)"
            };
            let condition =
                format!("attribute_exists(pk) AND attribute_not_exists(#counted) AND {returned}");
            tx.update(
                self,
                session_key(&record.reference),
                "SET #counted = :counted",
                vec![(":counted", AttributeValue::Bool(true))],
                Some(condition.as_str()),
            )?;
            let counters = tx.len();
            tx.count_session(record, overflow);
            match self.commit(tx).await {
                Err(StoreError::TransactionConditionsFailed(failed))
                    if failed.contains(&counters) && !failed.contains(&0) && !overflow =>
                {
                    overflow = true;
                }
                Err(StoreError::TransactionConditionsFailed(_)) => {
                    return Err(StoreError::ConditionFailed)
                }
                other => return other,
            }
        }
    }

    pub async fn get_portal_session(
        &self,
        reference: &str,
    ) -> Result<Option<PortalSessionRecord>, StoreError> {
        self.get(session_key(reference))
            .await?
            .map(from_item)
            .transpose()
    }
}

impl Transaction {
    /// Marks the session returned, only the first time.
    pub fn mark_portal_session_returned(
        &mut self,
        table: &Table,
        reference: &str,
        returned_at: &str,
        action: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut values = vec![(":at", AttributeValue::S(returned_at.to_string()))];
        let expression = match action {
            Some(action) => {
                values.push((":action", AttributeValue::S(action.to_string())));
                "SET returned_at = :at, #action = :action"
            }
            None => "SET returned_at = :at",
        };
        self.update(
            table,
            session_key(reference),
            expression,
            values,
            Some("attribute_exists(pk) AND attribute_not_exists(returned_at)"),
        )
    }
}
