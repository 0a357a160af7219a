//! The user item: `USER#<sub>` / `PROFILE`, linking a signed-in user to their Stripe customer.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::{from_item, key, to_item, StoreError, Table};
use crate::ids::{CustomerId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: UserId,
    pub email: Option<String>,
    pub customer_id: Option<CustomerId>,
    pub premium: bool,
    pub created_at: String,
    pub updated_at: String,
}

pub trait UserStore {
    fn get_user(
        &self,
        id: &UserId,
    ) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;
    /// Creates the user item; [`StoreError::ConditionFailed`] when it already exists.
    fn insert_user(&self, user: &UserRecord)
        -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn user_key(id: &UserId) -> super::Item {
    key(format!("USER#{id}"), "PROFILE")
}

impl UserStore for Table {
    async fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.get(user_key(id)).await?.map(from_item).transpose()
    }

    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.put_new(to_item(user_key(&user.user_id), user)?).await
    }
}
