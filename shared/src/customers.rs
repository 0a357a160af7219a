//! One Stripe customer per user, ever.
//!
//! The customer is created with an idempotency key derived from the user id (so concurrent first
//! requests get Stripe's one answer), carries the user id in its metadata, and is linked with a
//! conditional write (so a lost race adopts the winner's link). Existing customers are never
//! adopted by email: emails are not unique in Stripe and are not proof of identity.

use aws_lc_rs::digest::{digest, SHA256};

use crate::auth::User;
use crate::http::now_rfc3339;
use crate::ids::CustomerId;
use crate::store::{StoreError, UserRecord, UserStore};
use crate::stripe::{CustomerCreateParams, StripeClient, StripeClientError};

/// The metadata key on Stripe customers that names the Portico user.
pub const USER_ID_METADATA: &str = "portico_user_id";

#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    #[error(transparent)]
    Stripe(#[from] StripeClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stripe keeps idempotency keys for 24 hours; within that, every caller gets one customer.
pub fn creation_key(user: &User) -> String {
    let hash = digest(&SHA256, user.id.as_str().as_bytes());
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("portico-customer-{hex}")
}

/// The user's customer: the stored one, else a new one linked now.
pub async fn ensure_customer(
    store: &impl UserStore,
    stripe: &StripeClient,
    user: &User,
    stored: Option<&UserRecord>,
) -> Result<CustomerId, CustomerError> {
    if let Some(id) = stored.and_then(|u| u.customer_id.clone()) {
        return Ok(id);
    }
    let mut params = CustomerCreateParams {
        email: user.email.clone(),
        ..Default::default()
    };
    params
        .metadata
        .insert(USER_ID_METADATA.to_string(), user.id.to_string());
    let customer = stripe
        .create_customer(&params, Some(&creation_key(user)))
        .await?;
    let linked = store
        .link_customer(
            &user.id,
            user.email.as_deref(),
            &customer.id,
            &now_rfc3339(),
        )
        .await?;
    if linked != customer.id {
        // Only possible past Stripe's 24 h key window; the stored link wins and stays the one.
        tracing::warn!(user = %user.id, kept = %linked, unused = %customer.id, "user already linked");
    } else {
        tracing::info!(user = %user.id, customer = %linked, "customer created and linked");
    }
    Ok(linked)
}
