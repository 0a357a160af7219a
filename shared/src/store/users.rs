//! The user item: `USER#<sub>` / `PROFILE`, linking a signed-in user to their Stripe customer.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
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
    /// Links the user to `customer` unless they are linked already; returns the customer the
    /// user is linked to afterwards (theirs if they already had one: a lost race is not an error).
    fn link_customer(
        &self,
        id: &UserId,
        email: Option<&str>,
        customer: &CustomerId,
        now: &str,
    ) -> impl Future<Output = Result<CustomerId, StoreError>> + Send;
    fn get_user(
        &self,
        id: &UserId,
    ) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;
    /// Creates the user item; [`StoreError::ConditionFailed`] when it already exists.
    fn insert_user(&self, user: &UserRecord)
        -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub(super) fn user_key(id: &UserId) -> super::Item {
    key(format!("USER#{id}"), "PROFILE")
}

impl UserStore for Table {
    async fn link_customer(
        &self,
        id: &UserId,
        email: Option<&str>,
        customer: &CustomerId,
        now: &str,
    ) -> Result<CustomerId, StoreError> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(user_key(id)))
            .update_expression(
                "SET customer_id = :cus, user_id = :uid, premium = if_not_exists(premium, :no), \
                 created_at = if_not_exists(created_at, :now), updated_at = :now, email = :email",
            )
            .condition_expression("attribute_not_exists(customer_id) OR customer_id = :null")
            .expression_attribute_values(":cus", AttributeValue::S(customer.to_string()))
            .expression_attribute_values(":uid", AttributeValue::S(id.to_string()))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":now", AttributeValue::S(now.to_string()))
            .expression_attribute_values(":null", AttributeValue::Null(true));
        update = update.expression_attribute_values(
            ":email",
            email.map_or(AttributeValue::Null(true), |e| {
                AttributeValue::S(e.to_string())
            }),
        );
        match self.send(|| update.clone().send()).await {
            Ok(_) => Ok(customer.clone()),
            Err(StoreError::ConditionFailed) => self
                .get_user(id)
                .await?
                .and_then(|u| u.customer_id)
                .ok_or_else(|| StoreError::Corrupt {
                    key: format!("USER#{id}"),
                    reason: "lost link race to nothing".into(),
                }),
            Err(e) => Err(e),
        }
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.get(user_key(id)).await?.map(from_item).transpose()
    }

    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.put_new(to_item(user_key(&user.user_id), user)?).await
    }
}

/// Why a support link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefused {
    /// The user has another customer.
    UserHasCustomer,
    /// Another link claimed the customer for another user.
    CustomerHasUser,
}

impl Table {
    /// Links the user to `customer` and claims the customer for them, with the audit entry, in
    /// one transaction: the user must have no customer (or this one) and the customer no other
    /// claimed user. A customer linked anew is no longer marked erased.
    pub async fn link_with_owner(
        &self,
        id: &UserId,
        email: Option<&str>,
        customer: &CustomerId,
        now: &str,
        audit: &super::AuditEntry,
    ) -> Result<Result<(), LinkRefused>, StoreError> {
        let mut tx = super::Transaction::new();
        let user = tx.update(
            self,
            user_key(id),
            "SET customer_id = :cus, user_id = :uid, premium = if_not_exists(premium, :no), \
             created_at = if_not_exists(created_at, :now), updated_at = :now, \
             email = if_not_exists(email, :email)",
            vec![
                (":cus", AttributeValue::S(customer.to_string())),
                (":uid", AttributeValue::S(id.to_string())),
                (":no", AttributeValue::Bool(false)),
                (":now", AttributeValue::S(now.to_string())),
                (":null", AttributeValue::Null(true)),
                (
                    ":email",
                    email.map_or(AttributeValue::Null(true), |e| {
                        AttributeValue::S(e.to_string())
                    }),
                ),
            ],
            Some("attribute_not_exists(customer_id) OR customer_id = :null OR customer_id = :cus"),
        )?;
        // The customer's sync counter item carries its claimed user.
        let owner = tx.update(
            self,
            key(format!("CUS#{customer}"), "SYNC"),
            "SET linked_user = :uid",
            vec![(":uid", AttributeValue::S(id.to_string()))],
            Some("attribute_not_exists(linked_user) OR linked_user = :uid"),
        )?;
        tx.clear_customer_erased(self, customer)?;
        tx.put_audit_entry(self, audit, 0, 0)?;
        match self.commit(tx).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::TransactionConditionsFailed(failed)) if failed.contains(&user) => {
                Ok(Err(LinkRefused::UserHasCustomer))
            }
            Err(StoreError::TransactionConditionsFailed(failed)) if failed.contains(&owner) => {
                Ok(Err(LinkRefused::CustomerHasUser))
            }
            Err(e) => Err(e),
        }
    }
}

impl super::Transaction {
    /// Sets the user's premium flag, only while the user is linked to `customer`.
    pub fn update_user_premium(
        &mut self,
        table: &Table,
        user: &UserId,
        customer: &CustomerId,
        premium: &crate::sync::PremiumStatus,
        now: &str,
    ) -> Result<usize, StoreError> {
        self.update(
            table,
            user_key(user),
            "SET premium = :premium, premium_until = :until, updated_at = :now",
            vec![
                (":premium", AttributeValue::Bool(premium.premium)),
                (
                    ":until",
                    premium.until.map_or(AttributeValue::Null(true), |u| {
                        AttributeValue::N(u.to_string())
                    }),
                ),
                (":now", AttributeValue::S(now.to_string())),
                (":cus", AttributeValue::S(customer.to_string())),
            ],
            Some("customer_id = :cus"),
        )
    }
}
