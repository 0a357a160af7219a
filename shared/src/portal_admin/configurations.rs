//! Stripe's portal configurations, listed with the workflows that use them; created and updated
//! from validated bodies. Stripe has no delete: `active: false` retires one.

use serde::Serialize;

use super::{AdminContext, ConfigurationSpec, PortalAdminError};
use crate::ids::{ConfigurationId, UserId};
use crate::portal::Workflow;
use crate::store::WorkflowMapping;
use crate::stripe::{list_all, Page, PortalConfiguration, PortalConfigurationListParams};

/// A configuration as Stripe holds it, plus how Portico uses it.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigurationView {
    #[serde(flatten)]
    pub configuration: PortalConfiguration,
    /// The workflows whose sessions open with this configuration (mapped, or by default).
    pub workflows: Vec<Workflow>,
    /// Whether this is `DEFAULT_PORTAL_CONFIGURATION`, used by workflows without their own.
    pub portico_default: bool,
}

impl ConfigurationView {
    fn new(
        configuration: PortalConfiguration,
        mapping: &WorkflowMapping,
        ctx: &AdminContext<'_>,
    ) -> Self {
        let id = configuration.id.as_str();
        ConfigurationView {
            workflows: mapping.users_of(id, ctx.default_configuration),
            portico_default: ctx.default_configuration == Some(id),
            configuration,
        }
    }
}

/// Every configuration of the Stripe account, newest first, all pages.
pub async fn list_configurations(
    ctx: AdminContext<'_>,
) -> Result<Vec<ConfigurationView>, PortalAdminError> {
    let (configurations, mapping) =
        tokio::join!(all_configurations(&ctx), ctx.table.workflow_mapping());
    let mapping = mapping?;
    Ok(configurations?
        .into_iter()
        .map(|c| ConfigurationView::new(c, &mapping, &ctx))
        .collect())
}

pub(super) async fn all_configurations(
    ctx: &AdminContext<'_>,
) -> Result<Vec<PortalConfiguration>, PortalAdminError> {
    list_all(|cursor| {
        let params = PortalConfigurationListParams {
            page: Page::full(cursor),
            ..Default::default()
        };
        async move { ctx.stripe.list_portal_configurations(&params).await }
    })
    .await
    .map_err(PortalAdminError::Stripe)
}

pub async fn get_configuration(
    ctx: AdminContext<'_>,
    id: &ConfigurationId,
) -> Result<ConfigurationView, PortalAdminError> {
    let (configuration, mapping) = tokio::join!(retrieve(&ctx, id), ctx.table.workflow_mapping());
    Ok(ConfigurationView::new(configuration?, &mapping?, &ctx))
}

pub(super) async fn retrieve(
    ctx: &AdminContext<'_>,
    id: &ConfigurationId,
) -> Result<PortalConfiguration, PortalAdminError> {
    ctx.stripe
        .retrieve_portal_configuration(id.as_str())
        .await
        .map_err(|e| PortalAdminError::from_stripe(e, Some(id.as_str())))
}

/// Creates a configuration; the same admin's same `idempotency_key` (a retried click) creates
/// it once.
pub async fn create_configuration(
    ctx: AdminContext<'_>,
    spec: &ConfigurationSpec,
    admin: &UserId,
    idempotency_key: Option<&str>,
) -> Result<ConfigurationView, PortalAdminError> {
    spec.check_create()?;
    // Stripe's keys are account-wide: namespaced, one admin's key never meets another's.
    let key =
        idempotency_key.map(|key| format!("portico-admin-config-{}-{key}", admin.short_digest()));
    let created = ctx
        .stripe
        .create_portal_configuration(&spec.to_stripe_params()?, key.as_deref())
        .await
        .map_err(|e| PortalAdminError::from_stripe(e, None))?;
    Ok(ConfigurationView::new(
        created,
        &WorkflowMapping::default(),
        &ctx,
    ))
}

/// Applies the fields given and leaves the rest. Deactivating a configuration that a workflow
/// still opens with would break that workflow, so it is refused while one does.
pub async fn update_configuration(
    ctx: AdminContext<'_>,
    id: &ConfigurationId,
    spec: &ConfigurationSpec,
) -> Result<ConfigurationView, PortalAdminError> {
    spec.check_update()?;
    let mapping = ctx.table.workflow_mapping().await?;
    if spec.active == Some(false) {
        let mut users: Vec<&str> = mapping
            .users_of(id.as_str(), ctx.default_configuration)
            .into_iter()
            .map(Workflow::as_str)
            .collect();
        if ctx.default_configuration == Some(id.as_str()) {
            users.push("DEFAULT_PORTAL_CONFIGURATION");
        }
        if !users.is_empty() {
            return Err(PortalAdminError::ConfigurationInUse {
                id: id.to_string(),
                uses: users.join(", "),
            });
        }
    }
    let updated = ctx
        .stripe
        .update_portal_configuration(id.as_str(), &spec.to_stripe_params()?)
        .await
        .map_err(|e| PortalAdminError::from_stripe(e, Some(id.as_str())))?;
    Ok(ConfigurationView::new(updated, &mapping, &ctx))
}
