//! The workflow mapping: which configuration, return path, after-completion behaviour and
//! branding each deep-link workflow opens with.

use serde::Serialize;
use serde_json::Value;

use super::configurations::retrieve;
use super::{AdminContext, PortalAdminError};
use crate::ids::{ConfigurationId, CouponId};
use crate::portal::{AfterCompletion, Branding, Workflow, WorkflowSettings};
use crate::store::{WorkflowConfigRecord, WorkflowMapping};

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
    fn new(workflow: Workflow, mapping: &WorkflowMapping, default: Option<&str>) -> Self {
        let record = mapping.record(workflow);
        let settings = mapping.settings(workflow);
        WorkflowView {
            workflow,
            uses_default_configuration: settings.configuration_id.is_none(),
            configuration_id: settings
                .effective_configuration(default)
                .map(str::to_string),
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
    let mapping = ctx.table.workflow_mapping().await?;
    Ok(Workflow::ALL
        .into_iter()
        .map(|w| WorkflowView::new(w, &mapping, ctx.default_configuration))
        .collect())
}

/// A retention coupon belongs to the cancellation flow and must be redeemable now.
async fn check_retention_coupon(
    ctx: &AdminContext<'_>,
    workflow: Workflow,
    coupon: &CouponId,
) -> Result<(), PortalAdminError> {
    if workflow != Workflow::CancellationProcess {
        return Err(PortalAdminError::InvalidField {
            field: "retention_coupon".into(),
            message: "a retention coupon is offered only by cancellation_process".into(),
        });
    }
    match ctx.stripe.retrieve_coupon(coupon.as_str()).await {
        Err(e) if e.is_not_found() => Err(PortalAdminError::CouponNotFound(coupon.to_string())),
        Err(e) => Err(PortalAdminError::Stripe(e)),
        Ok(found) if !found.valid => Err(PortalAdminError::CouponNotUsable(coupon.to_string())),
        Ok(_) => Ok(()),
    }
}

/// Replaces a workflow's settings. The configuration must exist and be active; the branding's
/// headline and policy URLs are applied to it, which is refused when another workflow sharing it
/// wants other values. Saving what is already saved writes nothing.
///
/// The settings are stored first, conditionally on the mapping not having changed since it was
/// read (so concurrent edits cannot both pass the cross-workflow check), then applied to Stripe;
/// a failure there is repaired by saving again, which re-applies whatever Stripe lacks.
pub async fn put_workflow(
    ctx: AdminContext<'_>,
    workflow: Workflow,
    settings: WorkflowSettings,
) -> Result<WorkflowPut, PortalAdminError> {
    if let Some(coupon) = &settings.retention_coupon {
        check_retention_coupon(&ctx, workflow, coupon).await?;
    }
    let mut mapping = ctx.table.workflow_mapping().await?;
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
    let profile = settings
        .branding
        .as_ref()
        .and_then(Branding::business_profile);
    let target = settings
        .effective_configuration(ctx.default_configuration)
        .map(str::to_string);
    if let Some(profile) = &profile {
        let target = target
            .as_deref()
            .ok_or_else(|| PortalAdminError::InvalidField {
                field: "branding".into(),
                message: "headline and policy URLs are applied to the workflow's portal \
                      configuration: set configuration_id or DEFAULT_PORTAL_CONFIGURATION"
                    .into(),
            })?;
        check_not_contradicted(&ctx, workflow, target, profile, &mapping)?;
    }

    let mut changed = false;
    if mapping.settings(workflow) != settings {
        let record = WorkflowConfigRecord {
            workflow,
            settings: settings.clone(),
            updated_at: ctx.clock.timestamp(),
        };
        ctx.table
            .save_workflow_config(&record, mapping.version)
            .await?;
        mapping.records.retain(|r| r.workflow != workflow);
        mapping.records.push(record);
        changed = true;
    }

    if let (Some(profile), Some(target)) = (profile, target) {
        let current = match configuration {
            Some(c) => c,
            None => retrieve_default(&ctx, &target).await?,
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
    Ok(WorkflowPut {
        workflow: WorkflowView::new(workflow, &mapping, ctx.default_configuration),
        changed,
    })
}

/// `DEFAULT_PORTAL_CONFIGURATION`, which must exist: if it does not, the deployment is broken,
/// not the admin's request.
async fn retrieve_default(
    ctx: &AdminContext<'_>,
    id: &str,
) -> Result<crate::stripe::PortalConfiguration, PortalAdminError> {
    let broken = |why: String| {
        PortalAdminError::Internal(format!("DEFAULT_PORTAL_CONFIGURATION {id}: {why}"))
    };
    let id = ConfigurationId::parse(id).map_err(|e| broken(e.to_string()))?;
    match retrieve(ctx, &id).await {
        Err(PortalAdminError::ConfigurationNotFound(_)) => {
            Err(broken("not in this Stripe account".into()))
        }
        other => other,
    }
}

/// One Stripe configuration has one business profile: two workflows sharing it cannot brand it
/// differently.
fn check_not_contradicted(
    ctx: &AdminContext<'_>,
    workflow: Workflow,
    target: &str,
    profile: &Value,
    mapping: &WorkflowMapping,
) -> Result<(), PortalAdminError> {
    for field in ["headline", "privacy_policy_url", "terms_of_service_url"] {
        let Some(wanted) = profile.get(field) else {
            continue;
        };
        let others: Vec<&str> = mapping
            .records
            .iter()
            .filter(|r| r.workflow != workflow)
            .filter(|r| {
                r.settings
                    .effective_configuration(ctx.default_configuration)
                    == Some(target)
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
