//! The workflow mapping: which configuration, return path, after-completion behaviour and
//! branding each deep-link workflow opens with.

use serde::Serialize;
use serde_json::Value;

use super::configurations::retrieve;
use super::{AdminContext, PortalAdminError};
use crate::http::now_rfc3339;
use crate::ids::ConfigurationId;
use crate::portal::{AfterCompletion, Branding, Workflow, WorkflowSettings};
use crate::store::WorkflowConfigRecord;

/// A workflow as its sessions will open: the admin's settings with Portico's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowView {
    pub workflow: Workflow,
    /// The configuration sessions use: the workflow's own, else `DEFAULT_PORTAL_CONFIGURATION`.
    pub configuration_id: Option<String>,
    pub uses_default_configuration: bool,
    pub return_path: String,
    pub after_completion: AfterCompletion,
    pub branding: Option<Branding>,
    /// Exactly what an admin saved (empty when nothing was).
    pub settings: WorkflowSettings,
    pub updated_at: Option<String>,
}

impl WorkflowView {
    fn new(
        workflow: Workflow,
        record: Option<&WorkflowConfigRecord>,
        default: Option<&str>,
    ) -> Self {
        let settings = record.map(|r| r.settings.clone()).unwrap_or_default();
        let own = settings
            .configuration_id
            .as_ref()
            .map(ConfigurationId::to_string);
        WorkflowView {
            workflow,
            uses_default_configuration: own.is_none(),
            configuration_id: own.or_else(|| default.map(str::to_string)),
            return_path: settings
                .return_path
                .as_ref()
                .map_or(workflow.default_return_path(), |p| p.as_str())
                .to_string(),
            after_completion: settings.after_completion.unwrap_or_default(),
            branding: settings.branding.clone(),
            settings,
            updated_at: record.map(|r| r.updated_at.clone()),
        }
    }
}

/// The outcome of a `PUT`: the workflow now, and whether anything was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowPut {
    pub workflow: WorkflowView,
    pub changed: bool,
}

pub async fn list_workflows(ctx: AdminContext<'_>) -> Result<Vec<WorkflowView>, PortalAdminError> {
    let stored = ctx.table.workflow_configs().await?;
    Ok(Workflow::ALL
        .into_iter()
        .map(|w| {
            let record = stored.iter().find(|r| r.workflow == w);
            WorkflowView::new(w, record, ctx.default_configuration)
        })
        .collect())
}

/// Replaces a workflow's settings. The configuration must exist and be active; the branding's
/// headline and policy URLs are applied to it, which is refused when another workflow sharing it
/// wants other values. Saving what is already saved writes nothing.
pub async fn put_workflow(
    ctx: AdminContext<'_>,
    workflow: Workflow,
    settings: WorkflowSettings,
) -> Result<WorkflowPut, PortalAdminError> {
    let stored = ctx.table.workflow_configs().await?;
    let mut configuration = None;
    if let Some(id) = &settings.configuration_id {
        let found = match retrieve(&ctx, id).await {
            Err(PortalAdminError::ConfigurationNotFound(_)) => {
                return Err(PortalAdminError::InvalidField {
                    field: "configuration_id".into(),
                    message: format!("no portal configuration {id} in this Stripe account"),
                })
            }
            other => other?,
        };
        if !found.active {
            return Err(PortalAdminError::ConfigurationInactive(id.to_string()));
        }
        configuration = Some(found);
    }

    let mut changed = false;
    if let Some(profile) = settings
        .branding
        .as_ref()
        .and_then(Branding::business_profile)
    {
        let target = settings
            .configuration_id
            .as_ref()
            .map(ConfigurationId::to_string)
            .or_else(|| ctx.default_configuration.map(str::to_string))
            .ok_or_else(|| PortalAdminError::InvalidField {
                field: "branding".into(),
                message: "headline and policy URLs are applied to the workflow's portal \
                          configuration: set configuration_id or DEFAULT_PORTAL_CONFIGURATION"
                    .into(),
            })?;
        check_not_contradicted(&ctx, workflow, &target, &profile, &stored)?;
        let current = match configuration {
            Some(c) => c,
            None => {
                let id = ConfigurationId::parse(target.clone()).map_err(|e| {
                    PortalAdminError::Internal(format!("DEFAULT_PORTAL_CONFIGURATION: {e}"))
                })?;
                retrieve(&ctx, &id).await?
            }
        };
        if !is_subset(
            &profile,
            current.business_profile.as_ref().unwrap_or(&Value::Null),
        ) {
            ctx.stripe
                .update_portal_configuration(
                    &target,
                    &serde_json::json!({ "business_profile": profile }),
                )
                .await
                .map_err(|e| PortalAdminError::from_stripe(e, Some(&target)))?;
            changed = true;
        }
    }

    let existing = stored.iter().find(|r| r.workflow == workflow);
    let record = match existing {
        Some(record) if record.settings == settings => record.clone(),
        _ => {
            let record = WorkflowConfigRecord {
                workflow,
                settings,
                updated_at: now_rfc3339(),
            };
            ctx.table.put_workflow_config(&record).await?;
            changed = true;
            record
        }
    };
    Ok(WorkflowPut {
        workflow: WorkflowView::new(workflow, Some(&record), ctx.default_configuration),
        changed,
    })
}

/// One Stripe configuration has one business profile: two workflows sharing it cannot brand it
/// differently.
fn check_not_contradicted(
    ctx: &AdminContext<'_>,
    workflow: Workflow,
    target: &str,
    profile: &Value,
    stored: &[WorkflowConfigRecord],
) -> Result<(), PortalAdminError> {
    for field in ["headline", "privacy_policy_url", "terms_of_service_url"] {
        let Some(wanted) = profile.get(field) else {
            continue;
        };
        let others: Vec<&str> = stored
            .iter()
            .filter(|r| r.workflow != workflow)
            .filter(|r| {
                let theirs = r
                    .settings
                    .configuration_id
                    .as_ref()
                    .map(ConfigurationId::as_str)
                    .or(ctx.default_configuration);
                theirs == Some(target)
            })
            .filter(|r| {
                r.settings
                    .branding
                    .as_ref()
                    .and_then(Branding::business_profile)
                    .and_then(|p| p.get(field).cloned())
                    .is_some_and(|v| &v != wanted)
            })
            .map(|r| r.workflow.as_str())
            .collect();
        if !others.is_empty() {
            return Err(PortalAdminError::SharedConfiguration {
                id: target.to_string(),
                workflows: others.join(", "),
                field,
            });
        }
    }
    Ok(())
}

/// Whether every value in `wanted` is already in `current` (objects recursively, lists by
/// position). Stripe answers with every field filled in, so equality would never hold. An empty
/// string clears a list in Stripe's form encoding, so it matches an empty list.
pub(super) fn is_subset(wanted: &Value, current: &Value) -> bool {
    match (wanted, current) {
        (Value::Object(w), Value::Object(c)) => w
            .iter()
            .all(|(k, v)| is_subset(v, c.get(k).unwrap_or(&Value::Null))),
        (Value::Array(w), Value::Array(c)) => {
            w.len() == c.len() && w.iter().zip(c).all(|(a, b)| is_subset(a, b))
        }
        (Value::String(s), Value::Array(c)) if s.is_empty() => c.is_empty(),
        (Value::String(s), Value::Null) if s.is_empty() => true,
        _ => wanted == current,
    }
}

#[cfg(test)]
mod tests {
    use super::is_subset;
    use serde_json::json;

    #[test]
    fn subsets_ignore_extra_fields_but_not_other_values() {
        let current = json!({"a": {"b": [1, {"c": 2, "d": 3}], "e": []}, "f": null});
        assert!(is_subset(&json!({"a": {"b": [1, {"c": 2}]}}), &current));
        assert!(is_subset(&json!({"a": {"e": ""}, "f": ""}), &current));
        assert!(!is_subset(&json!({"a": {"b": [1]}}), &current));
        assert!(!is_subset(&json!({"a": {"b": [1, {"c": 9}]}}), &current));
        assert!(!is_subset(&json!({"g": 1}), &current));
    }
}
