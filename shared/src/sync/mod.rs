//! The heart of Portico: fetch a customer's truth from Stripe, store it order-safely, and report
//! what changed. The portal return, the webhook and the account endpoints all call
//! [`sync_customer`].
//!
//! Order safety does not depend on clocks or on `event.created` (one-second resolution): each
//! sync first takes a ticket from a per-customer counter, then reads the stored state and
//! fetches. A fetch that started after ticket n sees at least what the fetch with ticket n-1
//! saw. The state is written only over the exact version it was compared with, and only by a
//! ticket newer than that version; a sync that loses starts over, so an older view never
//! replaces a newer one and no change is audited twice.

mod fetch;
pub mod snapshot;

use std::time::Duration;

pub use fetch::{
    lifetime_purchases, ProductNames, PRICE_METADATA, PRODUCT_METADATA, PURCHASE_LIFETIME,
    PURCHASE_METADATA,
};
pub use snapshot::{
    diff, itemised, premium, Change, ChangeKind, CustomerSnapshot, PremiumStatus, Truncated,
};

use crate::analytics::{self, RecordedChanges};
use crate::clock::Clock;
use crate::ids::{CustomerId, UserId};
use crate::metrics::SyncResult;
use crate::store::{
    conflict_pause, AuditEntry, AuditSource, CancellationDetails, CustomerState, CustomerStore,
    LifetimePurchaseRecord, StoreError, Table, Transaction,
};
use crate::stripe::{StripeClient, StripeClientError};

/// Attempts before giving up on a customer whose state keeps being replaced under us.
const MAX_ATTEMPTS: usize = 8;
/// Audit entries one sync writes, within DynamoDB's 100 writes a transaction: the state, the
/// user, the caller's (at most a few) writes and the analytics counters (two) take the rest.
const MAX_AUDITED_CHANGES: usize = 80;
/// Commits refused because another transaction held one of the items, per sync.
const MAX_CONFLICTS: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Stripe(#[from] StripeClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A write the caller added failed its condition (position within the caller's writes).
    #[error("the caller's write {0} failed its condition")]
    CallerConditionFailed(usize),
    #[error("customer {0} kept changing; sync gave up after {MAX_ATTEMPTS} attempts")]
    Contended(CustomerId),
    /// Support erased the customer's data: nothing of it is written again.
    #[error("customer {0} was erased")]
    Erased(CustomerId),
}

impl SyncError {
    /// The invocation's time ran out before Stripe or DynamoDB answered.
    pub fn is_out_of_time(&self) -> bool {
        matches!(
            self,
            SyncError::Stripe(StripeClientError::Budget(_))
                | SyncError::Store(StoreError::Budget(_))
        )
    }
}

/// What a sync needs; borrowed from the function's services.
#[derive(Clone, Copy)]
pub struct SyncContext<'a> {
    pub table: &'a Table,
    pub stripe: &'a StripeClient,
    pub products: &'a ProductNames,
    pub premium_grace: Duration,
    pub clock: &'a Clock,
}

/// Why the sync ran, for the audit trail.
#[derive(Debug, Clone)]
pub struct SyncTrigger {
    pub source: AuditSource,
    pub reference: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SyncOutcome {
    pub previous: CustomerSnapshot,
    pub current: CustomerSnapshot,
    pub changes: Vec<Change>,
    pub premium: PremiumStatus,
    pub user_id: Option<UserId>,
}

/// Writes the caller wants committed together with the sync (all or nothing): the portal
/// session's return, the webhook ledger's completion.
pub trait CallerWrites: Sync {
    fn add(&self, table: &Table, transaction: &mut Transaction) -> Result<(), StoreError>;
}

impl CallerWrites for () {
    fn add(&self, _: &Table, _: &mut Transaction) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<F: Fn(&Table, &mut Transaction) -> Result<(), StoreError> + Sync> CallerWrites for F {
    fn add(&self, table: &Table, transaction: &mut Transaction) -> Result<(), StoreError> {
        self(table, transaction)
    }
}

/// Syncs one customer and records the sync's outcome and duration as metrics.
pub async fn sync_customer(
    ctx: SyncContext<'_>,
    customer_id: &CustomerId,
    trigger: &SyncTrigger,
    caller: &impl CallerWrites,
) -> Result<SyncOutcome, SyncError> {
    crate::telemetry::record_customer(customer_id);
    let started = std::time::Instant::now();
    let result = sync_attempts(ctx, customer_id, trigger, caller).await;
    let recorded = match &result {
        Ok(outcome) if outcome.changes.is_empty() => SyncResult::Unchanged,
        Ok(_) => SyncResult::Changed,
        // The caller's write lost a race (a second return of one session): nothing failed.
        Err(SyncError::Contended(_) | SyncError::CallerConditionFailed(_)) => SyncResult::Contended,
        Err(_) => SyncResult::Failed,
    };
    crate::metrics::sync(recorded, started.elapsed());
    if let Err(error) = &result {
        // A failed sync leaves the stored state behind Stripe: recorded so the reconcile
        // re-syncs the customer. The caller's own lost race is not a failure of the sync.
        // An erased customer is not behind Stripe: it is gone from Portico on purpose.
        if !matches!(
            error,
            SyncError::CallerConditionFailed(_) | SyncError::Erased(_)
        ) {
            let (text, at) = (error.to_string(), ctx.clock.timestamp());
            let recorded = ctx.table.record_sync_failure(customer_id, &text, &at);
            if let Err(e) = crate::budget::cleanup(recorded).await {
                tracing::warn!(customer = %customer_id, error = %e, "could not record the failed sync");
            }
        }
    }
    result
}

async fn sync_attempts(
    ctx: SyncContext<'_>,
    customer_id: &CustomerId,
    trigger: &SyncTrigger,
    caller: &impl CallerWrites,
) -> Result<SyncOutcome, SyncError> {
    let mut conflicts = 0u32;
    for attempt in 1..=MAX_ATTEMPTS {
        let (ticket, visit) = ctx.table.next_sync_ticket_and_visit(customer_id).await?;
        let (previous, fetched) = tokio::try_join!(
            async { Ok::<_, SyncError>(ctx.table.get_customer_state(customer_id).await?) },
            async {
                Ok::<_, SyncError>(
                    fetch::customer_truth(ctx.stripe, ctx.products, customer_id).await?,
                )
            },
        )?;
        let replaces = previous.as_ref().map(|p| p.synced_version);
        if let Some(newer) = previous.as_ref().filter(|p| p.synced_version > ticket) {
            // A sync that started after ours stored its view: it saw at least what we saw and
            // audited the changes, so ours has nothing to add.
            return adopt(ctx, customer_id, newer.clone(), caller).await;
        }
        let now = ctx.clock.unix();
        let grace = i64::try_from(ctx.premium_grace.as_secs()).unwrap_or(i64::MAX);
        let premium = premium(&fetched.snapshot, now, grace);
        let previous_snapshot = previous
            .as_ref()
            .map(|s| s.snapshot.clone())
            .unwrap_or_else(|| CustomerSnapshot::empty(customer_id.clone()));
        let changes = diff(&previous_snapshot, &fetched.snapshot);
        let user_id = fetched.user_id.or_else(|| previous.and_then(|p| p.user_id));
        let state = CustomerState {
            snapshot: fetched.snapshot,
            premium: premium.clone(),
            synced_version: ticket,
            synced_at: ctx.clock.timestamp(),
            user_id: user_id.clone(),
        };

        let audited = itemised(&changes, MAX_AUDITED_CHANGES);
        if audited.len() < changes.len() || !state.snapshot.truncated.is_empty() {
            tracing::warn!(
                customer = %customer_id,
                changes = changes.len(),
                itemised = audited.len(),
                truncated = ?state.snapshot.truncated,
                "customer too large to record in full; the rest is stated in its state and audit"
            );
        }

        let entries: Vec<AuditEntry> = audited
            .iter()
            .map(|change| AuditEntry {
                customer_id: customer_id.clone(),
                source: trigger.source,
                reference: trigger.reference.clone(),
                at: state.synced_at.clone(),
                change: change.clone(),
                cancellation: cancellation_details(change, &state.snapshot),
            })
            .collect();

        // The user's premium flag is updated only while the user is linked to this customer.
        let mut update_user = user_id.is_some();
        loop {
            let mut tx = Transaction::new();
            let state_position = tx.put_customer_state(ctx.table, &state, replaces)?;
            // An erasure that began after our read must win over this write.
            let erased_position = tx.require_not_erased(ctx.table, customer_id)?;
            let user_position = match (&user_id, update_user) {
                (Some(user), true) => Some(tx.update_user_premium(
                    ctx.table,
                    user,
                    customer_id,
                    &premium,
                    &state.synced_at,
                )?),
                _ => None,
            };
            for (n, entry) in entries.iter().enumerate() {
                tx.put_audit_entry(ctx.table, entry, ticket, n)?;
            }
            // Counted with the entries: a sync that is retried or loses a race writes neither.
            analytics::count_portal_use(
                &mut tx,
                &RecordedChanges {
                    customer: customer_id,
                    source: trigger.source,
                    at: &state.synced_at,
                    at_unix: now,
                    entries: &entries,
                    visit: visit.as_ref(),
                    already_cancelling: &|id| {
                        previous_snapshot.subscriptions.iter().any(|s| {
                            s.id == id && (s.cancel_at.is_some() || s.cancel_at_period_end)
                        })
                    },
                },
            );
            for purchase in state
                .snapshot
                .purchases
                .iter()
                .filter(|p| !previous_snapshot.purchases.contains(p))
            {
                let record = LifetimePurchaseRecord {
                    customer_id: customer_id.clone(),
                    purchase: purchase.clone(),
                    synced_version: ticket,
                    synced_at: state.synced_at.clone(),
                };
                tx.put_lifetime_purchase(ctx.table, &record)?;
            }
            let caller_start = tx.len();
            caller.add(ctx.table, &mut tx)?;
            match ctx.table.commit(tx).await {
                Ok(()) => {
                    tracing::info!(customer = %customer_id, ticket, changes = changes.len(), source = ?trigger.source, "customer synced");
                    return Ok(SyncOutcome {
                        previous: previous_snapshot,
                        current: state.snapshot,
                        changes,
                        premium,
                        user_id,
                    });
                }
                Err(StoreError::TransactionConditionsFailed(failed)) => {
                    if failed.contains(&erased_position) {
                        return Err(SyncError::Erased(customer_id.clone()));
                    }
                    if failed.contains(&state_position) {
                        // Someone wrote between our read and our write. A newer view: adopt it;
                        // an older one: compare again with what is stored now.
                        if let Some(newer) = ctx
                            .table
                            .get_customer_state(customer_id)
                            .await?
                            .filter(|s| s.synced_version > ticket)
                        {
                            return adopt(ctx, customer_id, newer, caller).await;
                        }
                        tracing::info!(customer = %customer_id, ticket, attempt, "state changed under the sync; comparing again");
                        break;
                    }
                    if user_position.is_some_and(|p| failed.contains(&p)) {
                        update_user = false;
                        continue;
                    }
                    if let Some(p) = failed.iter().find(|p| **p >= caller_start) {
                        return Err(SyncError::CallerConditionFailed(p - caller_start));
                    }
                    return Err(StoreError::TransactionConditionsFailed(failed).into());
                }
                Err(StoreError::TransactionConflict) if conflicts < MAX_CONFLICTS => {
                    // Another transaction (a concurrent sync of this customer, the session or
                    // ledger write of another request) held one of our items, and nothing was
                    // written: a lost race, not an outage. Look again at what is stored now.
                    conflicts += 1;
                    conflict_pause(conflicts).await;
                    let stored = ctx.table.get_customer_state(customer_id).await?;
                    match stored {
                        Some(newer) if newer.synced_version > ticket => {
                            return adopt(ctx, customer_id, newer, caller).await;
                        }
                        Some(same) if Some(same.synced_version) == replaces => continue,
                        None if replaces.is_none() => continue,
                        _ => {
                            tracing::info!(customer = %customer_id, ticket, attempt, "state changed during a transaction conflict; comparing again");
                            break;
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Err(SyncError::Contended(customer_id.clone()))
}

/// Finishes a sync whose view a newer sync has already stored: only the caller's writes remain.
async fn adopt(
    ctx: SyncContext<'_>,
    customer_id: &CustomerId,
    newer: CustomerState,
    caller: &impl CallerWrites,
) -> Result<SyncOutcome, SyncError> {
    let mut conflicts = 0u32;
    loop {
        let mut tx = Transaction::new();
        caller.add(ctx.table, &mut tx)?;
        match ctx.table.commit(tx).await {
            Ok(()) => break,
            Err(StoreError::TransactionConditionsFailed(failed)) => {
                return Err(SyncError::CallerConditionFailed(
                    failed.first().copied().unwrap_or_default(),
                ))
            }
            Err(StoreError::TransactionConflict) if conflicts < MAX_CONFLICTS => {
                conflicts += 1;
                conflict_pause(conflicts).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(customer = %customer_id, version = newer.synced_version, "a newer sync already stored this customer");
    Ok(SyncOutcome {
        previous: newer.snapshot.clone(),
        current: newer.snapshot,
        changes: Vec::new(),
        premium: newer.premium,
        user_id: newer.user_id,
    })
}

/// Why a subscription was cancelled, read from the snapshot the cancellation was seen in, so
/// analytics can count reasons from the audit trail alone.
fn cancellation_details(
    change: &Change,
    snapshot: &CustomerSnapshot,
) -> Option<CancellationDetails> {
    let id = change.cancelled_subscription()?;
    let subscription = snapshot.subscriptions.iter().find(|s| s.id == id)?;
    Some(CancellationDetails {
        reason: subscription.cancellation_reason.clone(),
        feedback: subscription.cancellation_feedback.clone(),
    })
}
