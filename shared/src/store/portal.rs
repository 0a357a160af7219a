//! Portal items: sessions (`PSESS#<ref>` / `META`, listed by day through `gsi1`) and the
//! per-workflow configuration (`CONFIG` / `WORKFLOW#<name>`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde::{Deserialize, Serialize};

use super::transaction::Transaction;
use super::users::user_key;
use super::{from_item, key, to_item, Item, StoreError, Table, UserRecord};
use crate::ids::{CustomerId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSessionRecord {
    pub reference: String,
    pub user_id: UserId,
    pub customer_id: CustomerId,
    pub workflow: String,
    pub stripe_session_id: String,
    pub configuration_id: String,
    pub return_url: String,
    pub created_at: String,
    // Absent, not null, until the return: the first-return condition tests for absence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    pub company_name: Option<String>,
    pub logo_url: Option<String>,
    pub primary_color: Option<String>,
    pub secondary_color: Option<String>,
    pub support_url: Option<String>,
}

/// What an admin mapped a workflow to; every field falls back to Portico's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowConfigRecord {
    pub workflow: String,
    pub configuration_id: Option<String>,
    pub return_path: Option<String>,
    /// `redirect` (default), `hosted_confirmation` or `portal_homepage`.
    pub after_completion: Option<String>,
    pub branding: Option<Branding>,
    pub updated_at: Option<String>,
}

pub(super) fn session_key(reference: &str) -> Item {
    key(format!("PSESS#{reference}"), "META")
}

fn workflow_key(workflow: &str) -> Item {
    key("CONFIG", format!("WORKFLOW#{workflow}"))
}

impl Table {
    /// The user and the workflow's configuration in one round trip.
    pub async fn get_user_and_workflow(
        &self,
        user: &UserId,
        workflow: &str,
    ) -> Result<(Option<UserRecord>, Option<WorkflowConfigRecord>), StoreError> {
        let keys = KeysAndAttributes::builder()
            .keys(user_key(user))
            .keys(workflow_key(workflow))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Request(e.to_string()))?;
        let mut pending = HashMap::from([(self.name().to_string(), keys)]);
        let mut found: Vec<Item> = Vec::new();
        // BatchGetItem may leave keys unprocessed under load; ask again for those only.
        for _ in 0..5 {
            let output = self
                .client()
                .batch_get_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            if let Some(mut responses) = output.responses {
                found.extend(responses.remove(self.name()).unwrap_or_default());
            }
            match output.unprocessed_keys {
                Some(rest) if !rest.is_empty() => pending = rest,
                _ => {
                    let (mut user_record, mut workflow_record) = (None, None);
                    for item in found {
                        match item.get("pk") {
                            Some(AttributeValue::S(pk)) if pk == "CONFIG" => {
                                workflow_record = Some(from_item(item)?)
                            }
                            _ => user_record = Some(from_item(item)?),
                        }
                    }
                    return Ok((user_record, workflow_record));
                }
            }
        }
        Err(StoreError::Unavailable(
            "batch read left keys unprocessed".into(),
        ))
    }

    /// Records a new portal session, indexed by its creation day for analytics.
    pub async fn insert_portal_session(
        &self,
        record: &PortalSessionRecord,
    ) -> Result<(), StoreError> {
        let mut item = to_item(session_key(&record.reference), record)?;
        let day = record.created_at.get(..10).unwrap_or_default();
        item.insert(
            "gsi1pk".into(),
            AttributeValue::S(format!("PSESSDAY#{day}")),
        );
        item.insert(
            "gsi1sk".into(),
            AttributeValue::S(format!("{}#{}", record.created_at, record.reference)),
        );
        self.put_new(item).await
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
