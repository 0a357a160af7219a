//! Configuration as code: a checked-in file (`portal-config.json`) describing the portal
//! configurations and the workflow mapping, applied idempotently to a Stripe account and the
//! table. Each configuration carries its file key in Stripe metadata (`portico_key`), so a second
//! apply finds it again, compares, and changes nothing when nothing changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::configurations::all_configurations;
use super::workflows::is_subset;
use super::{put_workflow, AdminContext, ConfigurationSpec, PortalAdminError};
use crate::ids::{ConfigurationId, CouponId};
use crate::portal::fields::ReturnPath;
use crate::portal::{AfterCompletion, Branding, Workflow, WorkflowSettings};
use crate::store::StoreError;

/// The metadata key that ties a Stripe configuration to its entry in the file.
pub const KEY_METADATA: &str = "portico_key";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfigFile {
    /// Configurations by a stable key of the file's own.
    pub configurations: BTreeMap<String, ConfigurationSpec>,
    #[serde(default)]
    pub workflows: BTreeMap<Workflow, FileWorkflow>,
}

/// A workflow's settings, naming its configuration by file key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWorkflow {
    pub configuration: String,
    #[serde(default)]
    pub return_path: Option<ReturnPath>,
    #[serde(default)]
    pub after_completion: Option<AfterCompletion>,
    #[serde(default)]
    pub branding: Option<Branding>,
    #[serde(default)]
    pub retention_coupon: Option<CouponId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedConfiguration {
    pub id: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub configurations: BTreeMap<String, AppliedConfiguration>,
    pub workflows: BTreeMap<Workflow, Outcome>,
}

impl PortalConfigFile {
    /// Parses and checks the whole file before anything is applied; errors name the path. The
    /// configurations come back with their workflows' branding headline and URLs folded in.
    pub fn parse(text: &str) -> Result<Self, PortalAdminError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let file: PortalConfigFile =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                PortalAdminError::InvalidField {
                    field: e.path().to_string(),
                    message: e.into_inner().to_string(),
                }
            })?;
        for (key, spec) in &file.configurations {
            if key.is_empty() || key.len() > 40 {
                return Err(PortalAdminError::InvalidField {
                    field: format!("configurations.{key}"),
                    message: "keys are 1-40 characters".into(),
                });
            }
            spec.check_create().map_err(|e| match e {
                PortalAdminError::InvalidField { field, message } => {
                    PortalAdminError::InvalidField {
                        field: format!("configurations.{key}.{field}"),
                        message,
                    }
                }
                other => other,
            })?;
        }
        for (workflow, settings) in &file.workflows {
            if !file.configurations.contains_key(&settings.configuration) {
                return Err(PortalAdminError::InvalidField {
                    field: format!("workflows.{}.configuration", workflow.as_str()),
                    message: format!("no configuration `{}` in this file", settings.configuration),
                });
            }
        }
        // Every business-profile value a workflow's branding brings must agree with its
        // configuration's and with the other workflows on it, or applying would flip-flop.
        let mut merged = file.configurations.clone();
        for (workflow, settings) in &file.workflows {
            let Some(branding) = &settings.branding else {
                continue;
            };
            let spec = merged
                .get_mut(&settings.configuration)
                .ok_or_else(|| PortalAdminError::Internal("checked above".into()))?;
            let profile = spec.business_profile.get_or_insert_with(Default::default);
            let contradiction = |field: &str| PortalAdminError::InvalidField {
                field: format!("workflows.{}.branding.{field}", workflow.as_str()),
                message: format!(
                    "configuration `{}` already gets another {field} from the file; one \
                     configuration has one business profile",
                    settings.configuration
                ),
            };
            merge(&mut profile.headline, &branding.headline, || {
                contradiction("headline")
            })?;
            merge(
                &mut profile.privacy_policy_url,
                &branding.privacy_policy_url,
                || contradiction("privacy_policy_url"),
            )?;
            merge(
                &mut profile.terms_of_service_url,
                &branding.terms_of_service_url,
                || contradiction("terms_of_service_url"),
            )?;
        }
        Ok(PortalConfigFile {
            configurations: merged,
            workflows: file.workflows,
        })
    }
}

/// Sets `slot` to `value` unless it holds another value already.
fn merge<T: Clone + PartialEq>(
    slot: &mut Option<T>,
    value: &Option<T>,
    contradiction: impl FnOnce() -> PortalAdminError,
) -> Result<(), PortalAdminError> {
    match (slot.as_ref(), value) {
        (_, None) => Ok(()),
        (Some(held), Some(new)) if held != new => Err(contradiction()),
        _ => {
            slot.clone_from(value);
            Ok(())
        }
    }
}

/// Creates what is missing, updates what differs, and leaves the rest untouched. Configurations
/// Portico created earlier but the file no longer lists are left as they are (deactivate them
/// with the admin API), and so are workflows the file does not name.
pub async fn apply(
    ctx: AdminContext<'_>,
    file: &PortalConfigFile,
) -> Result<ApplyReport, PortalAdminError> {
    let existing = all_configurations(&ctx).await?;
    let mut configurations = BTreeMap::new();
    for (key, spec) in &file.configurations {
        let mut desired = spec.clone();
        desired
            .metadata
            .get_or_insert_with(Default::default)
            .insert(KEY_METADATA, key);
        let params = desired.to_stripe_params()?;
        let found = existing
            .iter()
            .find(|c| c.metadata.get(KEY_METADATA) == Some(key));
        let applied = match found {
            None => {
                // Derived from the content, so a retried apply creates it once (within Stripe's
                // 24 hours of idempotency) and a changed file is a new request.
                let idempotency_key = format!("portico-config-{key}-{}", digest(&params));
                let created = ctx
                    .stripe
                    .create_portal_configuration(&params, Some(&idempotency_key))
                    .await
                    .map_err(|e| PortalAdminError::from_stripe(e, None))?;
                AppliedConfiguration {
                    id: created.id,
                    outcome: Outcome::Created,
                }
            }
            Some(current) => {
                let current_json = serde_json::to_value(current)
                    .map_err(|e| PortalAdminError::Internal(e.to_string()))?;
                if current.active && is_subset(&params, &current_json) {
                    AppliedConfiguration {
                        id: current.id.clone(),
                        outcome: Outcome::Unchanged,
                    }
                } else {
                    let mut params = params;
                    params["active"] = true.into();
                    ctx.stripe
                        .update_portal_configuration(&current.id, &params)
                        .await
                        .map_err(|e| PortalAdminError::from_stripe(e, Some(&current.id)))?;
                    AppliedConfiguration {
                        id: current.id.clone(),
                        outcome: Outcome::Updated,
                    }
                }
            }
        };
        configurations.insert(key.clone(), applied);
    }

    let mut workflows = BTreeMap::new();
    for (workflow, settings) in &file.workflows {
        let id = configurations
            .get(&settings.configuration)
            .map(|c| c.id.clone())
            .unwrap_or_default();
        let configuration_id = ConfigurationId::parse(id)
            .map_err(|e| PortalAdminError::Internal(format!("Stripe returned a bad id: {e}")))?;
        let desired = WorkflowSettings {
            configuration_id: Some(configuration_id),
            return_path: settings.return_path.clone(),
            after_completion: settings.after_completion,
            branding: settings.branding.clone(),
            retention_coupon: settings.retention_coupon.clone(),
        };
        // Another apply or admin changed the mapping meanwhile: decide again on the new one.
        let mut attempts = 0;
        let put = loop {
            match put_workflow(ctx, *workflow, desired.clone()).await {
                Err(PortalAdminError::Store(StoreError::TransactionConditionsFailed(_)))
                    if attempts < 5 =>
                {
                    attempts += 1;
                }
                other => break other?,
            }
        };
        let outcome = if put.changed {
            Outcome::Updated
        } else {
            Outcome::Unchanged
        };
        workflows.insert(*workflow, outcome);
    }
    Ok(ApplyReport {
        configurations,
        workflows,
    })
}

/// A short, stable digest of the Stripe parameters.
fn digest(params: &serde_json::Value) -> String {
    crate::ids::sha256_hex(params.to_string().as_bytes(), 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_file_parses_and_maps_every_workflow() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../portal-config.json");
        let file = PortalConfigFile::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        for workflow in Workflow::ALL {
            assert!(
                file.workflows.contains_key(&workflow),
                "{workflow:?} unmapped"
            );
        }
    }

    #[test]
    fn workflow_branding_folds_into_its_configuration_or_is_refused() {
        let file = PortalConfigFile::parse(
            r#"{"configurations": {"a": {"features": {"invoice_history": {"enabled": true}}}},
                "workflows": {
                  "payment_update": {"configuration": "a", "branding": {"headline": "Hi"}},
                  "billing_review": {"configuration": "a", "branding": {"headline": "Hi", "company_name": "X"}}}}"#,
        )
        .unwrap();
        let profile = file.configurations["a"].business_profile.clone().unwrap();
        assert_eq!(profile.headline.map(String::from).as_deref(), Some("Hi"));

        let field = |text: &str| match PortalConfigFile::parse(text) {
            Err(PortalAdminError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(
                r#"{"configurations": {"a": {"features": {"invoice_history": {"enabled": true}}}},
                    "workflows": {
                      "payment_update": {"configuration": "a", "branding": {"headline": "Hi"}},
                      "billing_review": {"configuration": "a", "branding": {"headline": "Ho"}}}}"#
            ),
            "workflows.billing_review.branding.headline"
        );
        assert_eq!(
            field(
                r#"{"configurations": {"a": {"business_profile": {"headline": "Own"},
                      "features": {"invoice_history": {"enabled": true}}}},
                    "workflows": {"profile_update": {"configuration": "a", "branding": {"headline": "Hi"}}}}"#
            ),
            "workflows.profile_update.branding.headline"
        );
    }

    #[test]
    fn file_errors_name_the_path() {
        let field = |text: &str| match PortalConfigFile::parse(text) {
            Err(PortalAdminError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(r#"{"configurations": {"a": {"features": {"invoice_history": {}}}}}"#),
            "configurations.a.features.invoice_history.enabled"
        );
        assert_eq!(
            field(
                r#"{"configurations": {}, "workflows": {"payment_update": {"configuration": "nope"}}}"#
            ),
            "workflows.payment_update.configuration"
        );
        assert_eq!(
            field(r#"{"configurations": {}, "workflows": {"upgrade": {"configuration": "a"}}}"#),
            "workflows.?"
        );
    }
}
