//! What administrators manage: Stripe portal configurations, the mapping of each workflow to a
//! configuration, return path and branding, and the configuration-as-code file that sets both.

pub mod as_code;
mod configurations;
pub mod spec;
mod workflows;

pub use configurations::{
    create_configuration, get_configuration, list_configurations, update_configuration,
    ConfigurationView,
};
pub use spec::ConfigurationSpec;
pub use workflows::{list_workflows, put_workflow, WorkflowPut, WorkflowView};

use crate::ids::ConfigurationId;
use crate::portal::Workflow;
use crate::store::{StoreError, Table};
use crate::stripe::{StripeClient, StripeClientError};

#[derive(Debug, thiserror::Error)]
pub enum PortalAdminError {
    #[error("`{field}`: {message}")]
    InvalidField { field: String, message: String },
    #[error("no portal configuration {0}")]
    ConfigurationNotFound(String),
    #[error("portal configuration {0} is inactive; activate it first")]
    ConfigurationInactive(String),
    #[error("portal configuration {id} is used by {uses}; map them elsewhere first")]
    ConfigurationInUse { id: String, uses: String },
    #[error("portal configuration {id} is shared with {workflows}, whose branding sets other values for {field}; give this workflow its own configuration")]
    SharedConfiguration {
        id: String,
        workflows: String,
        field: &'static str,
    },
    #[error("Stripe refused the configuration: {message}")]
    StripeRejected {
        param: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Stripe(StripeClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl PortalAdminError {
    /// Stripe's answer to a configuration write: its validation errors are the admin's to fix.
    fn from_stripe(error: StripeClientError, id: Option<&str>) -> Self {
        match (error.api_error(), id) {
            // The configuration itself is missing (Stripe names no other param).
            (Some(api), Some(id))
                if api.is_not_found()
                    && matches!(api.param.as_deref(), None | Some("configuration")) =>
            {
                PortalAdminError::ConfigurationNotFound(id.to_string())
            }
            // Invalid values, and objects the body names that do not exist (a product, a price).
            (Some(api), _) if api.status == 400 || (api.is_not_found() && api.param.is_some()) => {
                PortalAdminError::StripeRejected {
                    param: api.param.clone(),
                    message: api.message.clone(),
                }
            }
            _ => PortalAdminError::Stripe(error),
        }
    }
}

/// What every admin operation works with.
#[derive(Clone, Copy)]
pub struct AdminContext<'a> {
    pub table: &'a Table,
    pub stripe: &'a StripeClient,
    /// `DEFAULT_PORTAL_CONFIGURATION`: what workflows without their own configuration use.
    pub default_configuration: Option<&'a str>,
}

impl AdminContext<'_> {
    /// The configuration each workflow's sessions use now: its own, else the default.
    async fn effective_configurations(
        &self,
    ) -> Result<Vec<(Workflow, Option<String>, bool)>, PortalAdminError> {
        let stored = self.table.workflow_configs().await?;
        Ok(Workflow::ALL
            .into_iter()
            .map(|workflow| {
                let own = stored
                    .iter()
                    .find(|r| r.workflow == workflow)
                    .and_then(|r| r.settings.configuration_id.as_ref())
                    .map(ConfigurationId::to_string);
                let inherited = own.is_none();
                let effective = own.or_else(|| self.default_configuration.map(str::to_string));
                (workflow, effective, inherited)
            })
            .collect())
    }
}
