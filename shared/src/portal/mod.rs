//! Portal sessions with deep-link workflows, and the return that re-syncs and reports.

pub mod fields;
pub mod return_url;
mod returning;
mod session;
pub mod workflow;

pub use returning::{handle_return, ReturnOutcome, ReturnRequest};
pub use session::{create_session, CreateSessionRequest, CreatedSession, RETURN_WINDOW_SECONDS};
pub use workflow::{AfterCompletion, Branding, Locale, Workflow, WorkflowSettings};

use crate::customer_link::CustomerError;
use crate::store::StoreError;
use crate::stripe::StripeClientError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error(transparent)]
    InvalidReturnUrl(#[from] return_url::ReturnUrlError),
    #[error("{0}")]
    NotConfigured(String),
    #[error("there is no active subscription to {0}")]
    NoActiveSubscription(&'static str),
    #[error("several subscriptions are active ({0}); say which one with subscription_id")]
    SubscriptionRequired(String),
    #[error("no such subscription of yours: {0}")]
    SubscriptionNotFound(String),
    #[error("no such portal session")]
    SessionNotFound,
    #[error("this account was re-synced moments ago and has not been stored yet; retry shortly")]
    RefreshThrottled(std::time::Duration),
    #[error("this portal session's return link has expired; open the portal again")]
    SessionExpired,
    #[error("price {0} is not offered")]
    PriceNotAllowed(String),
    #[error("the subscription is already on price {0}")]
    AlreadyOnPrice(String),
    #[error("price is only for the subscription_management workflow")]
    PriceWithoutPlanChange,
    #[error(transparent)]
    Customer(#[from] CustomerError),
    #[error(transparent)]
    Stripe(#[from] StripeClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// The message for a missing portal configuration: what happened and how to fix it.
pub(crate) const NOT_CONFIGURED: &str = "the billing portal is not configured for this workflow: \
    map the workflow to a portal configuration (PUT /portal/workflows/{workflow}), set \
    DEFAULT_PORTAL_CONFIGURATION, or run `make portal-config`";
