//! Replay: events read back from Stripe's Events API (or the ledger's failures) and run through
//! the webhook's own exactly-once pipeline ([`super::process`]): a done event is a duplicate,
//! a failed or never-seen one is processed. For a webhook endpoint that was down, or events
//! whose processing failed.

use serde::Serialize;

use super::{event_envelope, process, Envelope, Outcome, WebhookError};
use crate::stripe::{EventListParams, Page, StripeClientError};
use crate::sync::SyncContext;

/// Stripe lists and retrieves events of the last 30 days only.
pub const EVENTS_WINDOW_SECONDS: i64 = 30 * 86_400;
/// Stripe's `types` filter takes at most this many names.
pub const MAX_TYPES: usize = 20;
/// Failed events one `--failed` replay takes from the ledger.
pub const MAX_FAILED: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every event created at or after this time (epoch seconds), optionally of these types.
    Since { since: i64, types: Vec<String> },
    /// One event.
    Event(String),
    /// The events the ledger records as failed.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("Stripe keeps events for 30 days: --since must be after {earliest}")]
    OutsideWindow { earliest: String },
    #[error("at most {MAX_TYPES} event types can be filtered on")]
    TooManyTypes,
    #[error("{0} is not an event id (evt_...)")]
    NotAnEvent(String),
    #[error("listing events: {0}")]
    Stripe(#[from] StripeClientError),
    #[error("reading the ledger: {0}")]
    Store(#[from] crate::store::StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedEvent {
    pub event: String,
    pub event_type: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Events selected, in the order they were replayed (oldest first).
    pub selected: usize,
    pub processed: usize,
    pub duplicate: usize,
    pub ignored: usize,
    /// Being processed by a webhook delivery right now; replay again later.
    pub in_progress: usize,
    pub failed: Vec<FailedEvent>,
    /// Named (by `--event` or the ledger) but gone from Stripe's 30 days.
    pub unavailable: Vec<String>,
}

/// Replays the selected events oldest first; `progress(done, total)` after each.
pub async fn replay(
    ctx: SyncContext<'_>,
    selection: &Selection,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ReplayReport, ReplayError> {
    let mut report = ReplayReport::default();
    let events = select(ctx, selection, &mut report).await?;
    report.selected = events.len();
    for (n, event) in events.iter().enumerate() {
        // Events read with this account's key are of the key's mode.
        match process(ctx, event, event.livemode).await {
            Ok(Outcome::Processed { .. }) => report.processed += 1,
            Ok(Outcome::Duplicate) => report.duplicate += 1,
            Ok(Outcome::Ignored(_)) => report.ignored += 1,
            Err(WebhookError::InProgress) => report.in_progress += 1,
            Err(e) => report.failed.push(FailedEvent {
                event: event.id.clone(),
                event_type: event.event_type.clone(),
                error: e.to_string(),
            }),
        }
        progress(n + 1, events.len());
    }
    tracing::info!(
        selected = report.selected,
        processed = report.processed,
        duplicate = report.duplicate,
        ignored = report.ignored,
        in_progress = report.in_progress,
        failed = report.failed.len(),
        unavailable = report.unavailable.len(),
        "replay finished"
    );
    Ok(report)
}

async fn select(
    ctx: SyncContext<'_>,
    selection: &Selection,
    report: &mut ReplayReport,
) -> Result<Vec<Envelope>, ReplayError> {
    match selection {
        Selection::Since { since, types } => {
            let earliest = ctx.clock.unix() - EVENTS_WINDOW_SECONDS;
            if *since < earliest {
                let at = time::OffsetDateTime::from_unix_timestamp(earliest)
                    .map(crate::clock::timestamp)
                    .unwrap_or_default();
                return Err(ReplayError::OutsideWindow { earliest: at });
            }
            if types.len() > MAX_TYPES {
                return Err(ReplayError::TooManyTypes);
            }
            list_since(ctx, *since, types).await
        }
        Selection::Event(id) => {
            if !id.starts_with("evt_") {
                return Err(ReplayError::NotAnEvent(id.clone()));
            }
            Ok(retrieve(ctx, std::slice::from_ref(id), report).await?)
        }
        Selection::Failed => {
            let ids: Vec<String> = ctx
                .table
                .failed_events(MAX_FAILED)
                .await?
                .into_iter()
                .map(|e| e.event_id)
                .collect();
            Ok(retrieve(ctx, &ids, report).await?)
        }
    }
}

/// Every event since `since`, oldest first. Pages run newest to oldest after a cursor, so
/// events created meanwhile land before the first page and shift nothing.
async fn list_since(
    ctx: SyncContext<'_>,
    since: i64,
    types: &[String],
) -> Result<Vec<Envelope>, ReplayError> {
    let mut params = EventListParams {
        created_since: Some(since),
        types: types.to_vec(),
        page: Page::full(None),
    };
    let mut events = Vec::new();
    loop {
        let page = ctx.stripe.list_events(&params).await?;
        let last = page.data.last().map(|e| e.id.clone());
        for event in &page.data {
            match event_envelope(event) {
                Ok(envelope) => events.push(envelope),
                Err(e) => tracing::warn!(event = %event.id, error = %e, "event not replayable"),
            }
        }
        match last {
            Some(last) if page.has_more && params.page.starting_after.as_ref() != Some(&last) => {
                params.page.starting_after = Some(last);
            }
            _ => break,
        }
    }
    events.reverse();
    Ok(events)
}

async fn retrieve(
    ctx: SyncContext<'_>,
    ids: &[String],
    report: &mut ReplayReport,
) -> Result<Vec<Envelope>, StripeClientError> {
    let mut events = Vec::new();
    for id in ids {
        match ctx.stripe.retrieve_event(id).await {
            Ok(event) => match event_envelope(&event) {
                Ok(envelope) => events.push(envelope),
                Err(e) => tracing::warn!(event = %id, error = %e, "event not replayable"),
            },
            Err(e) if e.is_not_found() => report.unavailable.push(id.clone()),
            Err(e) => return Err(e),
        }
    }
    events.sort_by_key(|e| e.created);
    Ok(events)
}
