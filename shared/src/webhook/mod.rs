//! Stripe webhooks: verified, filtered, exactly-once, and processed by the shared sync.
//!
//! A webhook is a signal, not data: only a minimal envelope is parsed (so payloads of any API
//! version are accepted), and the customer's truth is refetched from Stripe.

mod envelope;

use std::sync::Arc;
use std::time::Duration;

pub use envelope::{parse_envelope, Envelope};

use crate::http::now_rfc3339;
use crate::ids::UserId;
use crate::secrets::{SecretsError, SecretsProvider, StripeSecrets};
use crate::store::{
    AuditSource, Claim, LedgerEntry, StoreError, Table, Transaction, UserStore,
    LEDGER_RETENTION_SECONDS,
};
use crate::stripe::random_idempotency_key;
use crate::stripe::webhook::{Verifier, WebhookError as SignatureError};
use crate::sync::{sync_customer, SyncContext, SyncError, SyncTrigger};

/// How long a claim keeps other instances off an event; longer than the function's timeout.
pub const LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("signature rejected: {0}")]
    Signature(#[from] SignatureError),
    #[error("payload is not a Stripe event: {0}")]
    Malformed(String),
    #[error("another delivery of this event is being processed")]
    InProgress,
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// What became of a delivery; every variant answers 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Processed { changes: usize },
    Duplicate,
    Ignored(&'static str),
}

/// The event types Portico acts on; any other type is acknowledged and ignored.
pub fn is_handled(event_type: &str) -> bool {
    const EXACT: &[&str] = &[
        "payment_method.attached",
        "payment_method.detached",
        "payment_method.updated",
        "payment_method.automatically_updated",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.finalized",
        "checkout.session.completed",
        // Lifetime purchases: paid, and refunded in full or in part.
        "payment_intent.succeeded",
        "charge.refunded",
        "charge.refund.updated",
        "billing_portal.session.created",
        "billing_portal.configuration.created",
        "billing_portal.configuration.updated",
        "entitlements.active_entitlement_summary.updated",
    ];
    event_type.starts_with("customer.") || EXACT.contains(&event_type)
}

/// Verifies the signature over the exact bytes. When no configured secret matches, the secret is
/// read again once: a rotation may have added one since this container cached it. Returns the
/// secrets that verified, whose key also tells live mode from test mode.
pub async fn verify(
    secrets: &SecretsProvider,
    body: &[u8],
    header: Option<&str>,
    tolerance_seconds: i64,
) -> Result<Arc<StripeSecrets>, WebhookError> {
    let verifier = Verifier { tolerance_seconds };
    let cached = secrets.get().await?;
    match verifier.verify(body, header, &cached.webhook_signing_secrets) {
        Ok(_) => Ok(cached),
        Err(SignatureError::NoMatchingSignature) => {
            let fresh = secrets.refresh().await?;
            verifier.verify(body, header, &fresh.webhook_signing_secrets)?;
            tracing::info!("webhook verified with a refreshed signing secret");
            Ok(fresh)
        }
        Err(e) => Err(e.into()),
    }
}

/// Processes one verified event exactly once.
pub async fn process(
    ctx: SyncContext<'_>,
    event: &Envelope,
    livemode: bool,
) -> Result<Outcome, WebhookError> {
    if !is_handled(&event.event_type) {
        return Ok(Outcome::Ignored("event type not handled"));
    }
    if event.livemode != livemode {
        return Ok(Outcome::Ignored("event from the other mode"));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let owner = random_idempotency_key().map_err(|e| WebhookError::Sync(SyncError::Stripe(e)))?;
    let entry = LedgerEntry {
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        event_created: event.created,
        state: "processing".into(),
        lease_owner: owner.clone(),
        lease_until: now + LEASE.as_secs() as i64,
        received_at: now_rfc3339(),
        processed_at: None,
        expires_at: now + LEDGER_RETENTION_SECONDS,
    };
    match ctx.table.claim_event(&entry, now).await? {
        Claim::AlreadyDone => return Ok(Outcome::Duplicate),
        Claim::InProgress => return Err(WebhookError::InProgress),
        Claim::Claimed => {}
    }
    let result = apply(ctx, event, &owner).await;
    if result.is_err() {
        // Let Stripe's retry start over at once instead of waiting out the lease.
        if let Err(e) = ctx.table.release_event(&event.id, &owner).await {
            tracing::error!(event = %event.id, error = %e, "could not release the event claim; it expires with its lease");
        }
    }
    result
}

async fn apply(
    ctx: SyncContext<'_>,
    event: &Envelope,
    owner: &str,
) -> Result<Outcome, WebhookError> {
    let complete = |table: &Table, tx: &mut Transaction| {
        tx.complete_event(table, &event.id, owner, &now_rfc3339())
            .map(|_| ())
    };
    let Some(customer) = event.customer.clone() else {
        // Account-level events (portal configurations): nothing per customer to refetch.
        let mut tx = Transaction::new();
        complete(ctx.table, &mut tx)?;
        ctx.table.commit(tx).await.map_err(|e| match e {
            StoreError::TransactionConditionsFailed(_) => WebhookError::InProgress,
            e => e.into(),
        })?;
        return Ok(Outcome::Processed { changes: 0 });
    };
    if event.event_type == "checkout.session.completed" {
        if let Some(user) = event
            .client_reference_id
            .as_deref()
            .and_then(|u| UserId::parse(u).ok())
        {
            // Links only a user without a customer; one who has another keeps theirs.
            let linked = ctx
                .table
                .link_customer(&user, None, &customer, &now_rfc3339())
                .await?;
            if linked != customer {
                tracing::warn!(user = %user, kept = %linked, checkout_customer = %customer, "user already has another customer");
            }
        }
    }
    let trigger = SyncTrigger {
        source: AuditSource::Webhook,
        reference: Some(event.id.clone()),
    };
    match sync_customer(ctx, &customer, &trigger, &complete).await {
        Ok(outcome) => Ok(Outcome::Processed {
            changes: outcome.changes.len(),
        }),
        // Our lease ran out and another instance took the event over: it finishes it.
        Err(SyncError::CallerConditionFailed(_)) => Err(WebhookError::InProgress),
        Err(e) => Err(e.into()),
    }
}
