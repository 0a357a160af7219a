//! `GET /portal/return?session=<ref>`: the user is back from the portal. Re-sync now (webhooks
//! may not have arrived yet) and say what changed.

use std::time::Duration;

use url::Url;

use super::PortalError;
use crate::auth::User;
use crate::store::{AuditSource, CustomerStore, SyncSlot, Table, Transaction};
use crate::sync::{sync_customer, Change, SyncContext, SyncError, SyncOutcome, SyncTrigger};

#[derive(Debug, Clone)]
pub struct ReturnRequest {
    pub session: String,
    pub action: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReturnOutcome {
    pub sync: SyncOutcome,
    /// Every change since the session was opened, whichever sync saw it first: a webhook may
    /// have recorded the portal's changes before the user came back.
    pub changes: Vec<Change>,
    /// The path of the session's return URL, where the SPA shows the outcome.
    pub redirect_url: String,
    /// False when this session had returned before (it is re-synced, not counted again).
    pub first_return: bool,
    /// False when the answer is the stored state: a re-sync of this customer ran moments ago.
    pub refreshed: bool,
}

pub async fn handle_return(
    ctx: SyncContext<'_>,
    user: &User,
    request: ReturnRequest,
    min_interval: Duration,
) -> Result<ReturnOutcome, PortalError> {
    let session = ctx
        .table
        .get_portal_session(&request.session)
        .await?
        // Someone else's session and no session look the same to the caller.
        .filter(|s| s.user_id == user.id)
        .ok_or(PortalError::SessionNotFound)?;
    // DynamoDB deletes expired items late (and keeps these longer for analytics): the deadline
    // is checked here.
    crate::telemetry::record_customer(&session.customer_id);
    let now = ctx.clock.unix();
    if session.return_until.is_some_and(|until| now > until) {
        return Err(PortalError::SessionExpired);
    }
    let trigger = SyncTrigger {
        source: AuditSource::PortalReturn,
        reference: Some(session.reference.clone()),
    };
    let returned_at = ctx.clock.timestamp();
    // The return is counted, and ends the visit, with the write that makes it the first.
    let mark_returned = |table: &Table, tx: &mut Transaction| {
        tx.mark_portal_session_returned(
            table,
            &session.reference,
            &returned_at,
            request.action.as_deref(),
        )?;
        if session.counted {
            tx.count_return(&session, &returned_at);
        }
        tx.close_portal_visit(table, &session.customer_id, &session.reference, now)
            .map(|_| ())
    };

    let mut first_return = session.returned_at.is_none();
    let first = if first_return {
        match sync_customer(ctx, &session.customer_id, &trigger, &mark_returned).await {
            // Two tabs returned at once and the other one counted the return.
            Err(SyncError::CallerConditionFailed(_)) => {
                first_return = false;
                None
            }
            other => Some(other?),
        }
    } else {
        None
    };
    let mut refreshed = true;
    let outcome = match first {
        Some(outcome) => outcome,
        // The first return follows the user's own changes in the portal and always syncs; a
        // return seen before is a re-sync on request, at most one per customer per interval.
        None => match ctx
            .table
            .claim_user_sync(&session.customer_id, ctx.clock.unix_ms(), min_interval)
            .await?
        {
            SyncSlot::Claimed => sync_customer(ctx, &session.customer_id, &trigger, &()).await?,
            SyncSlot::Taken { retry_after } => {
                refreshed = false;
                let state = ctx
                    .table
                    .get_customer_state(&session.customer_id)
                    .await?
                    .ok_or(PortalError::RefreshThrottled(retry_after))?;
                SyncOutcome {
                    previous: state.snapshot.clone(),
                    current: state.snapshot,
                    changes: Vec::new(),
                    premium: state.premium,
                    user_id: state.user_id,
                }
            }
        },
    };
    let changes = ctx
        .table
        .audit_entries_since(&session.customer_id, &session.created_at)
        .await?
        .into_iter()
        .map(|e| e.change)
        .collect::<Vec<_>>();
    crate::metrics::portal_return(!changes.is_empty());
    tracing::info!(
        first_return,
        refreshed,
        changes = changes.len(),
        "portal return handled"
    );
    // A path the SPA navigates to: never `//host` (sessions stored before return URLs were
    // checked as they are now could hold one).
    let redirect_url = Url::parse(&session.return_url)
        .ok()
        .map(|u| u.path().to_string())
        .filter(|p| !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    Ok(ReturnOutcome {
        sync: outcome,
        changes,
        redirect_url,
        first_return,
        refreshed,
    })
}
