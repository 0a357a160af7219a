//! The signed-in user's billing account as Portico has stored it.

use serde::Serialize;

use crate::auth::User;
use crate::ids::CustomerId;
use crate::store::{StoreError, UserStore};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    pub customer_id: Option<CustomerId>,
    pub email: Option<String>,
    pub premium: bool,
}

/// A user Portico has never linked to a Stripe customer is a valid, non-premium account.
pub async fn get_account(store: &impl UserStore, user: &User) -> Result<AccountView, StoreError> {
    Ok(match store.get_user(&user.id).await? {
        Some(record) => AccountView {
            customer_id: record.customer_id,
            email: record.email.or_else(|| user.email.clone()),
            premium: record.premium,
        },
        None => AccountView {
            customer_id: None,
            email: user.email.clone(),
            premium: false,
        },
    })
}
