//! One Stripe customer per user, ever.
//!
//! The customer is created with an idempotency key derived from the user id (so concurrent first
//! requests get Stripe's one answer), carries the user id in its metadata, and is linked with a
//! conditional write (so a lost race adopts the winner's link). Existing customers are never
//! adopted by email: emails are not unique in Stripe and are not proof of identity.

use crate::auth::User;
use crate::clock::Clock;
use crate::ids::CustomerId;
use crate::store::{CustomerState, StoreError, Table, Transaction, UserRecord, UserStore};
use crate::stripe::{Customer, CustomerCreateParams, StripeClient, StripeClientError};
use crate::sync::{premium, CustomerSnapshot};

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
    format!(
        "portico-customer-{}",
        crate::ids::sha256_hex(user.id.as_str().as_bytes(), 32)
    )
}

/// The user's customer: the stored one, else a new one linked now.
pub async fn ensure_customer(
    table: &Table,
    stripe: &StripeClient,
    clock: &Clock,
    user: &User,
    stored: Option<&UserRecord>,
) -> Result<CustomerId, CustomerError> {
    if let Some(id) = stored.and_then(|u| u.customer_id.clone()) {
        return Ok(id);
    }
    let customer = match created_earlier(stripe, user).await {
        Some(orphan) => {
            tracing::warn!(user = %user.id, customer = %orphan.id, "linking the customer an earlier, unfinished request created");
            // Its data may have been erased while Stripe kept it; the user is back, so it may
            // be written again.
            table.clear_customer_erased(&orphan.id).await?;
            orphan
        }
        None => {
            let mut params = CustomerCreateParams {
                email: user.email.clone(),
                ..Default::default()
            };
            params
                .metadata
                .insert(USER_ID_METADATA.to_string(), user.id.to_string());
            stripe
                .create_customer(&params, Some(&creation_key(user)))
                .await?
        }
    };
    let linked = table
        .link_customer(
            &user.id,
            user.email.as_deref(),
            &customer.id,
            &clock.timestamp(),
        )
        .await?;
    if linked != customer.id {
        // Only possible past Stripe's 24 h key window; the stored link wins and stays the one.
        tracing::warn!(user = %user.id, kept = %linked, unused = %customer.id, "user already linked");
    } else {
        tracing::info!(user = %user.id, customer = %linked, "customer created and linked");
        store_baseline(table, clock, &customer).await?;
    }
    Ok(linked)
}

/// A customer Portico created for this user whose link was never stored (the request failed
/// between Stripe and DynamoDB). Within 24 hours the idempotency key would return it anyway;
/// after that only this search (by the user id in its metadata) keeps it one customer per user.
/// Search lags writes by up to a minute or so, which the idempotency key covers. A failed
/// search (search has its own, lower rate limit) must not fail the user's request: the
/// idempotent create still holds within 24 hours.
async fn created_earlier(stripe: &StripeClient, user: &User) -> Option<Customer> {
    let id = user.id.as_str();
    if id.contains(['\\', '\'']) {
        // Not expressible safely in Stripe's query language; the idempotency key still holds.
        return None;
    }
    let query = format!("metadata['{USER_ID_METADATA}']:'{id}'");
    let found = match stripe.search_customers(&query, None).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(user = %user.id, error = %e, "customer search failed; creating idempotently");
            return None;
        }
    };
    found
        .data
        .into_iter()
        .filter(|c| !c.deleted && c.metadata.get(USER_ID_METADATA).map(String::as_str) == Some(id))
        .min_by_key(|c| c.created.unwrap_or(i64::MAX))
}

/// What the new customer is before the user touches the portal, stored as the sync baseline
/// (ticket 0: any real sync replaces it). Without it the first return would report the
/// customer's creation itself as changes.
async fn store_baseline(
    table: &Table,
    clock: &Clock,
    customer: &Customer,
) -> Result<(), StoreError> {
    let mut snapshot = CustomerSnapshot::empty(customer.id.clone());
    snapshot.email = customer.email.clone();
    snapshot.name = customer.name.clone();
    snapshot.phone = customer.phone.clone();
    let state = CustomerState {
        premium: premium(&snapshot, 0, 0),
        snapshot,
        synced_version: 0,
        synced_at: clock.timestamp(),
        user_id: customer
            .metadata
            .get(USER_ID_METADATA)
            .and_then(|u| crate::ids::UserId::parse(u.clone()).ok()),
    };
    let mut tx = Transaction::new();
    tx.put_customer_state(table, &state, None)?;
    match table.commit(tx).await {
        // A sync or a concurrent request's baseline got there first (or is being written right
        // now): its state is at least as good a baseline.
        Err(StoreError::TransactionConditionsFailed(_) | StoreError::TransactionConflict) => Ok(()),
        other => other,
    }
}
