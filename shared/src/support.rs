//! Support tools: one user's billing as Portico sees it, a forced re-sync, linking a customer on
//! proof (or on an administrator's stated reason), and erasure.
//!
//! Erasure runs in an order that a re-run can always finish: mark the customer erased (so no
//! webhook or sync writes it again), delete the Stripe customer if asked, delete every item that
//! names the user or their customers, and last, in one transaction, delete the profile and leave
//! the tombstone. Until the profile is gone a re-run finds the customer id again and redoes
//! every step, each of which is harmless twice.

use std::collections::BTreeSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::customer_link::USER_ID_METADATA;
use crate::ids::{CustomerId, UserId};
use crate::store::{
    digest, AuditEntry, AuditPage, AuditSource, CustomerState, CustomerStore, LinkRefused,
    StoreError, Table, Tombstone, UserRecord, UserStore,
};
use crate::stripe::{CustomerUpdateParams, StripeClient, StripeClientError};
use crate::sync::{
    sync_customer, Change, ChangeKind, PremiumStatus, SyncContext, SyncError, SyncOutcome,
    SyncTrigger,
};

#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("Portico has no such user")]
    UserNotFound,
    #[error("the user has no Stripe customer to sync")]
    NoCustomer,
    #[error("the user is already linked to customer {0}")]
    UserAlreadyLinked(CustomerId),
    #[error("customer {0} belongs to another user")]
    CustomerLinkedToOtherUser(CustomerId),
    #[error("Stripe has no customer {0}")]
    CustomerNotFound(CustomerId),
    #[error("customer {0} is deleted in Stripe")]
    CustomerDeleted(CustomerId),
    #[error("customer {0}'s metadata does not name this user under `{USER_ID_METADATA}`; link with \"force\": true and a reason")]
    LinkNotProven(CustomerId),
    #[error("a forced link needs a non-empty reason")]
    ReasonRequired,
    #[error("the cursor is not one this endpoint issued for this user")]
    InvalidCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Stripe(#[from] StripeClientError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Who performs a support action, as the audit trail and the tombstone record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in administrator.
    Admin(UserId),
    /// Someone running the operator CLI, by the name they gave.
    Operator(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Admin(id) => write!(f, "admin:{id}"),
            Actor::Operator(name) => write!(f, "operator:{name}"),
        }
    }
}

/// Audit entries per page at most, and by default.
pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 25;

/// What Portico knows of a user, for support.
#[derive(Debug, Clone, Serialize)]
pub struct UserDetails {
    pub user_id: UserId,
    pub email: Option<String>,
    pub customer_id: Option<CustomerId>,
    pub premium: bool,
    /// Why the user is (not) premium, in a sentence.
    pub premium_reason: String,
    pub premium_status: Option<PremiumStatus>,
    pub last_synced_at: Option<String>,
    pub snapshot: Option<Value>,
    pub linked_at: String,
    pub audit: AuditView,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// The cursor names the customer (by digest) it was issued for and the position after which the
/// next page starts; any other string, or one issued for another user, is refused.
fn encode_cursor(customer: &CustomerId, after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1|{}|{after}", &digest(customer.as_str())[..16]))
}

fn decode_cursor(customer: &CustomerId, cursor: &str) -> Result<String, SupportError> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(SupportError::InvalidCursor)?;
    let mut parts = raw.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(owner), Some(after))
            if owner == &digest(customer.as_str())[..16] && crate::store::is_audit_key(after) =>
        {
            Ok(after.to_string())
        }
        _ => Err(SupportError::InvalidCursor),
    }
}

async fn user(table: &Table, sub: &UserId) -> Result<UserRecord, SupportError> {
    table.get_user(sub).await?.ok_or(SupportError::UserNotFound)
}

/// The user's link, state, premium and why, and one page of their audit trail, newest first.
pub async fn user_details(
    table: &Table,
    sub: &UserId,
    cursor: Option<&str>,
    limit: usize,
) -> Result<UserDetails, SupportError> {
    let record = user(table, sub).await?;
    let limit = limit.clamp(1, MAX_PAGE);
    let (state, audit) = match &record.customer_id {
        None => {
            if cursor.is_some() {
                // No customer, so no page this cursor could continue.
                return Err(SupportError::InvalidCursor);
            }
            let empty = AuditView {
                entries: Vec::new(),
                next_cursor: None,
            };
            (None, empty)
        }
        Some(customer) => {
            let after = cursor.map(|c| decode_cursor(customer, c)).transpose()?;
            let (state, page) = tokio::try_join!(
                table.get_customer_state(customer),
                table.audit_page(customer, after.as_deref(), limit),
            )?;
            let AuditPage { entries, last } = page;
            let view = AuditView {
                entries,
                next_cursor: last.map(|after| encode_cursor(customer, &after)),
            };
            (state, view)
        }
    };
    let premium_reason = premium_reason(&record, state.as_ref());
    Ok(UserDetails {
        user_id: record.user_id,
        email: record.email,
        customer_id: record.customer_id,
        premium: record.premium,
        premium_reason,
        premium_status: state.as_ref().map(|s| s.premium.clone()),
        last_synced_at: state.as_ref().map(|s| s.synced_at.clone()),
        snapshot: state
            .as_ref()
            .map(|s| serde_json::to_value(&s.snapshot).unwrap_or(Value::Null)),
        linked_at: record.created_at,
        audit,
    })
}

fn premium_reason(record: &UserRecord, state: Option<&CustomerState>) -> String {
    let Some(state) = state else {
        return match record.customer_id {
            None => "not premium: no Stripe customer".into(),
            Some(_) => "not premium: the customer was never synced".into(),
        };
    };
    let p = &state.premium;
    if state.snapshot.deleted {
        return "not premium: the customer is deleted in Stripe".into();
    }
    match (&p.lifetime, &p.subscription_id, p.status.as_deref()) {
        (Some(purchase), _, _) if p.premium => {
            format!("premium: lifetime purchase {purchase}")
        }
        (_, Some(sub), Some(status)) if p.premium => match p.until {
            Some(until) => format!("premium: subscription {sub} is {status}, until {until}"),
            None => format!("premium: subscription {sub} is {status}"),
        },
        (_, Some(sub), Some(status)) => {
            format!("not premium: subscription {sub} is {status}")
        }
        _ => "not premium: no subscription or lifetime purchase grants it".into(),
    }
}

/// What a sync run by support changed.
#[derive(Debug, Clone, Serialize)]
pub struct SupportSync {
    pub customer_id: CustomerId,
    pub changes: Vec<Change>,
    pub premium: PremiumStatus,
}

fn trigger(actor: &Actor) -> SyncTrigger {
    SyncTrigger {
        source: AuditSource::Support,
        reference: Some(actor.to_string()),
    }
}

fn synced(customer: CustomerId, outcome: SyncOutcome) -> SupportSync {
    SupportSync {
        customer_id: customer,
        changes: outcome.changes,
        premium: outcome.premium,
    }
}

/// The full sync a portal return runs, audited with the actor as its reference.
pub async fn force_sync(
    ctx: SyncContext<'_>,
    sub: &UserId,
    actor: &Actor,
) -> Result<SupportSync, SupportError> {
    let customer = user(ctx.table, sub)
        .await?
        .customer_id
        .ok_or(SupportError::NoCustomer)?;
    let outcome = sync_customer(ctx, &customer, &trigger(actor), &()).await?;
    tracing::info!(customer = %customer, actor = %actor, changes = outcome.changes.len(), "support re-synced a customer");
    Ok(synced(customer, outcome))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub customer_id: CustomerId,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkOutcome {
    /// False when the user was linked to this customer already (nothing new written but the sync).
    pub linked: bool,
    pub forced: bool,
    pub sync: SupportSync,
}

/// Links the user to a Stripe customer whose metadata names them under Portico's key, or, with
/// `force` and a reason, one that does not name anyone; never by email. The link is one
/// transaction over the user's profile and the customer's owner, so of two racing links (two
/// admins, or an admin and the user's first portal visit) exactly one stands.
pub async fn link(
    ctx: SyncContext<'_>,
    sub: &UserId,
    request: &LinkRequest,
    actor: &Actor,
) -> Result<LinkOutcome, SupportError> {
    let customer = &request.customer_id;
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if request.force && reason.is_none() {
        return Err(SupportError::ReasonRequired);
    }
    let existing = ctx.table.get_user(sub).await?;
    match existing.as_ref().and_then(|u| u.customer_id.as_ref()) {
        Some(linked) if linked != customer => {
            return Err(SupportError::UserAlreadyLinked(linked.clone()))
        }
        _ => {}
    }
    let found = match ctx.stripe.retrieve_customer(customer, &[]).await {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return Err(SupportError::CustomerNotFound(customer.clone())),
        Err(StripeClientError::Deleted { .. }) => {
            return Err(SupportError::CustomerDeleted(customer.clone()))
        }
        Err(e) => return Err(e.into()),
    };
    let named = found.metadata.get(USER_ID_METADATA).map(String::as_str);
    let proven = match named {
        Some(id) if id == sub.as_str() => true,
        // Forcing never takes a customer from the user its metadata names.
        Some(_) => return Err(SupportError::CustomerLinkedToOtherUser(customer.clone())),
        None if request.force => false,
        None => return Err(SupportError::LinkNotProven(customer.clone())),
    };
    let stored_owner = ctx
        .table
        .get_customer_state(customer)
        .await?
        .and_then(|s| s.user_id);
    if stored_owner.is_some_and(|owner| owner != *sub) {
        return Err(SupportError::CustomerLinkedToOtherUser(customer.clone()));
    }

    let already = existing.as_ref().and_then(|u| u.customer_id.as_ref()) == Some(customer);
    if !already {
        let now = ctx.clock.timestamp();
        let entry = AuditEntry {
            customer_id: customer.clone(),
            source: AuditSource::Support,
            reference: Some(actor.to_string()),
            at: now.clone(),
            change: Change {
                kind: ChangeKind::Link,
                field: "user".into(),
                from: Value::Null,
                to: json!({
                    "user_digest": sub.short_digest(),
                    "proof": if proven { "metadata" } else { "forced" },
                    "reason": reason,
                }),
                message: match reason {
                    Some(reason) if !proven => {
                        format!("linked by {actor} without proof: {reason}")
                    }
                    _ => format!("linked by {actor}: the customer's metadata names the user"),
                },
            },
            cancellation: None,
        };
        let email = existing.as_ref().and_then(|u| u.email.as_deref());
        match ctx
            .table
            .link_with_owner(sub, email, customer, &now, &entry)
            .await?
        {
            Ok(()) => {}
            Err(LinkRefused::UserHasCustomer) => {
                let theirs = ctx.table.get_user(sub).await?.and_then(|u| u.customer_id);
                return Err(match theirs {
                    Some(theirs) if theirs != *customer => SupportError::UserAlreadyLinked(theirs),
                    _ => StoreError::TransactionConflict.into(),
                });
            }
            Err(LinkRefused::CustomerHasUser) => {
                return Err(SupportError::CustomerLinkedToOtherUser(customer.clone()))
            }
        }
        tracing::info!(customer = %customer, actor = %actor, forced = !proven, "support linked a customer");
    }
    if !proven {
        // From now on the customer names its user as Portico's own customers do, so every
        // later sync, import and webhook ties it to them.
        let mut params = CustomerUpdateParams::default();
        params
            .metadata
            .insert(USER_ID_METADATA.to_string(), sub.to_string());
        ctx.stripe.update_customer(customer, &params).await?;
    }
    let outcome = sync_customer(ctx, customer, &trigger(actor), &()).await?;
    Ok(LinkOutcome {
        linked: !already,
        forced: !proven,
        sync: synced(customer.clone(), outcome),
    })
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseOptions {
    /// Delete the Stripe customer too (which cancels its subscriptions at once).
    #[serde(default)]
    pub stripe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Erasure {
    Erased(Tombstone),
    /// Erased before; nothing left to do.
    AlreadyErased(Tombstone),
}

/// Erases everything Portico holds about the user, and with `options.stripe` their Stripe
/// customer. Needs only the table, Stripe and the clock, so the operator CLI runs it as is.
pub async fn erase(
    table: &Table,
    stripe: &StripeClient,
    clock: &Clock,
    sub: &UserId,
    options: EraseOptions,
    actor: &Actor,
) -> Result<Erasure, SupportError> {
    let Some(record) = table.get_user(sub).await? else {
        return match table.tombstone(sub).await? {
            Some(tombstone) => Ok(Erasure::AlreadyErased(tombstone)),
            None => Err(SupportError::UserNotFound),
        };
    };
    let now = clock.timestamp();
    let mut customers: BTreeSet<CustomerId> = record.customer_id.iter().cloned().collect();
    // First: no sync or webhook writes these customers again, whatever happens below.
    for customer in &customers {
        table.mark_customer_erased(customer, &now).await?;
    }
    let mut stripe_deleted = false;
    if options.stripe {
        for customer in &customers {
            match stripe.delete_customer(customer).await {
                Ok(_) => {}
                // Deleted by an earlier run (or in the Dashboard): done.
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e.into()),
            }
        }
        stripe_deleted = !customers.is_empty();
    }
    let known = customers.clone();
    let mut keys = table.items_naming(sub, &mut customers).await?;
    for customer in customers.difference(&known) {
        // Another customer whose state names this user: erased with the rest.
        table.mark_customer_erased(customer, &now).await?;
        keys.extend(table.customer_partition(customer).await?);
    }
    // One batch may not name a key twice, and the scan and the partitions overlap.
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(crate::store::describe_key(k)));
    let deleted = table.delete_all(keys).await?;
    let tombstone = Tombstone {
        erasure_id: digest(sub.as_str()),
        actor: actor.to_string(),
        erased_at: now,
        stripe_customer_deleted: stripe_deleted,
        // The profile goes with the tombstone.
        items_deleted: deleted + 1,
    };
    table.finish_erasure(sub, &tombstone).await?;
    tracing::info!(erasure = %tombstone.erasure_id, actor = %actor, items = tombstone.items_deleted, stripe = stripe_deleted, "user erased");
    Ok(Erasure::Erased(tombstone))
}
