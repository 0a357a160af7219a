//! Stripe's portal configurations, listed with the workflows that use them; created and updated
//! from validated bodies. Stripe has no delete: `active: false` retires one.

use serde::Serialize;

use super::{AdminContext, ConfigurationSpec, PortalAdminError};
use crate::ids::ConfigurationId;
use crate::portal::Workflow;
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
    fn new(configuration: PortalConfiguration, uses: &[(Workflow, Option<String>, bool)]) -> Self {
        let workflows = uses
            .iter()
            .filter(|(_, id, _)| id.as_deref() == Some(configuration.id.as_str()))
            .map(|(workflow, _, _)| *workflow)
            .collect();
        ConfigurationView {
            portico_default: false,
            workflows,
            configuration,
        }
    }

    fn marking_default(mut self, ctx: &AdminContext<'_>) -> Self {
        self.portico_default = ctx.default_configuration == Some(self.configuration.id.as_str());
        self
    }
}

/// Every configuration of the Stripe account, newest first, all pages.
pub async fn list_configurations(
    ctx: AdminContext<'_>,
) -> Result<Vec<ConfigurationView>, PortalAdminError> {
    let (configurations, uses) =
        tokio::join!(all_configurations(&ctx), ctx.effective_configurations());
    let uses = uses?;
    Ok(configurations?
        .into_iter()
        .map(|c| ConfigurationView::new(c, &uses).marking_default(&ctx))
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
    let (configuration, uses) = tokio::join!(retrieve(&ctx, id), ctx.effective_configurations());
    Ok(ConfigurationView::new(configuration?, &uses?).marking_default(&ctx))
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

/// Creates a configuration; the same `idempotency_key` (a retried click) creates it once.
pub async fn create_configuration(
    ctx: AdminContext<'_>,
    spec: &ConfigurationSpec,
    idempotency_key: Option<&str>,
) -> Result<ConfigurationView, PortalAdminError> {
    spec.check_create()?;
    let created = ctx
        .stripe
        .create_portal_configuration(&spec.to_stripe_params()?, idempotency_key)
        .await
        .map_err(|e| PortalAdminError::from_stripe(e, None))?;
    Ok(ConfigurationView::new(created, &[]).marking_default(&ctx))
}

/// Applies the fields given and leaves the rest. Deactivating a configuration that a workflow
/// still opens with would break that workflow, so it is refused while one does.
pub async fn update_configuration(
    ctx: AdminContext<'_>,
    id: &ConfigurationId,
    spec: &ConfigurationSpec,
) -> Result<ConfigurationView, PortalAdminError> {
    spec.check()?;
    if spec == &ConfigurationSpec::default() {
        return Err(PortalAdminError::InvalidField {
            field: ".".into(),
            message: "the body names nothing to change".into(),
        });
    }
    let uses = ctx.effective_configurations().await?;
    if spec.active == Some(false) {
        let mut users: Vec<String> = uses
            .iter()
            .filter(|(_, used, _)| used.as_deref() == Some(id.as_str()))
            .map(|(workflow, _, _)| workflow.as_str().to_string())
            .collect();
        if ctx.default_configuration == Some(id.as_str()) {
            users.push("DEFAULT_PORTAL_CONFIGURATION".into());
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
    Ok(ConfigurationView::new(updated, &uses).marking_default(&ctx))
}
