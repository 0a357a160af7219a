//! The reconcile: re-syncs, in a bounded batch and within the invocation's time budget, the
//! customers whose stored state is older than a threshold or whose last sync failed, so drift
//! that no webhook reported (a dropped delivery, an endpoint that was down, a Dashboard edit
//! while events were lost) is found and audited with source `reconcile`.
//!
//! Candidates come from the index: customer states by sync time (four partitions, one bounded
//! query each, oldest first) and the customers whose last sync failed. A re-synced customer's
//! state is newer than the threshold afterwards, so the next run moves on to others.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::store::{AuditSource, StoreError};
use crate::sync::{sync_customer, SyncContext, SyncTrigger};

/// Time kept back before the deadline to start no sync that could not finish: one sync's
/// Stripe retries (about 10.5 s with the default settings) and its commit.
pub const SYNC_RESERVE: Duration = Duration::from_secs(12);

#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// States synced longer ago than this are re-synced.
    pub stale_after: Duration,
    /// Customers one run re-syncs at most.
    pub batch: usize,
}

impl ReconcileOptions {
    /// `RECONCILE_STALE_HOURS` (default 24) and `RECONCILE_BATCH` (default 500).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match lookup(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name} must be a positive whole number")),
            }
        };
        Ok(Self {
            stale_after: Duration::from_secs(number("RECONCILE_STALE_HOURS", 24)? * 3_600),
            batch: usize::try_from(number("RECONCILE_BATCH", 500)?).unwrap_or(usize::MAX),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Customers the index named (stale or failed), up to the batch.
    pub due: usize,
    /// Of those, named because their last sync failed.
    pub failed_before: usize,
    pub resynced: usize,
    /// Re-synced customers whose state had drifted from Stripe's.
    pub drifted: usize,
    /// Changes audited across them.
    pub changes: usize,
    /// Syncs that failed (each recorded for the next run).
    pub failed: usize,
    /// Left for the next run because the time budget ran out.
    pub deferred: usize,
}

/// One run; `progress(done, total)` after each customer.
pub async fn reconcile(
    ctx: SyncContext<'_>,
    options: &ReconcileOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ReconcileReport, StoreError> {
    let now = ctx.clock.now();
    let cutoff = crate::clock::timestamp(now - options.stale_after);
    let due = ctx.table.syncs_due(&cutoff, options.batch).await?;
    let mut report = ReconcileReport {
        due: due.len(),
        failed_before: due.iter().filter(|d| d.failed).count(),
        ..Default::default()
    };
    let trigger = SyncTrigger {
        source: AuditSource::Reconcile,
        reference: Some(format!("reconcile {}", ctx.clock.timestamp())),
    };
    for (n, customer) in due.iter().enumerate() {
        if crate::budget::deadline()
            .is_some_and(|d| d.saturating_duration_since(Instant::now()) < SYNC_RESERVE)
        {
            report.deferred = due.len() - n;
            break;
        }
        match sync_customer(ctx, &customer.customer_id, &trigger, &()).await {
            Ok(outcome) => {
                report.resynced += 1;
                if !outcome.changes.is_empty() {
                    report.drifted += 1;
                    report.changes += outcome.changes.len();
                }
                if customer.failed {
                    ctx.table
                        .clear_sync_failure(&customer.customer_id, &customer.since)
                        .await?;
                }
            }
            Err(e) if e.is_out_of_time() => {
                report.deferred = due.len() - n;
                break;
            }
            Err(e) => {
                tracing::warn!(customer = %customer.customer_id, error = %e, "reconcile sync failed");
                report.failed += 1;
            }
        }
        progress(n + 1, due.len());
    }
    tracing::info!(
        due = report.due,
        failed_before = report.failed_before,
        resynced = report.resynced,
        drifted = report.drifted,
        changes = report.changes,
        failed = report.failed,
        deferred = report.deferred,
        "reconcile finished"
    );
    Ok(report)
}
