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
    #[error("`retention_coupon`: no coupon {0} in this Stripe account")]
    CouponNotFound(String),
    #[error(
        "`retention_coupon`: coupon {0} can no longer be redeemed (expired, used up or deleted)"
    )]
    CouponNotUsable(String),
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
    /// Stripe's answer to a configuration request: its validation errors are the admin's to fix.
    /// `id` names the configuration the request addressed, if any.
    fn from_stripe(error: StripeClientError, id: Option<&str>) -> Self {
        let Some(api) = error.api_error() else {
            return PortalAdminError::Stripe(error);
        };
        // Stripe names the missing object of a path `id` (the emulator: `configuration`).
        let the_configuration = matches!(api.param.as_deref(), None | Some("id" | "configuration"));
        match id {
            Some(id) if api.is_not_found() && the_configuration => {
                PortalAdminError::ConfigurationNotFound(id.to_string())
            }
            // A reused Idempotency-Key: the shared Stripe mapping answers it.
            _ if api.error_type == "idempotency_error" => PortalAdminError::Stripe(error),
            // Invalid values, and objects the body names that do not exist (a product, a price).
            _ if api.status == 400 || (api.is_not_found() && api.param.is_some()) => {
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
    pub clock: &'a crate::clock::Clock,
    /// `DEFAULT_PORTAL_CONFIGURATION`: what workflows without their own configuration use.
    pub default_configuration: Option<&'a str>,
}
