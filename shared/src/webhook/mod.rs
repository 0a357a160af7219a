//! Stripe webhooks: verified, filtered, exactly-once, and processed by the shared sync.
//!
//! A webhook is a signal, not data: only a minimal envelope is parsed (so payloads of any API
//! version are accepted), and the customer's truth is refetched from Stripe.

mod envelope;
pub mod replay;

use std::sync::Arc;
use std::time::Duration;

pub use envelope::{event_envelope, parse_envelope, Envelope};

use serde_json::{json, Value};

use crate::customer_link::USER_ID_METADATA;
use crate::ids::{random_hex, CustomerId, RandomUnavailable, UserId};
use crate::metrics::Delivery;
use crate::secrets::{SecretsError, SecretsProvider, StripeSecrets};
use crate::store::{
    AuditEntry, AuditSource, Claim, LedgerEntry, LedgerState, StoreError, Table, Transaction,
    UserStore, LEDGER_RETENTION_SECONDS,
};
use crate::stripe::signature::{SignatureError, Verifier};
use crate::sync::{sync_customer, Change, ChangeKind, SyncContext, SyncError, SyncTrigger};

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
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
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

/// One delivery, start to end: verifies the signature over the exact `body`, parses the
/// envelope and processes the event; records the delivery's outcome, event type, lag and
/// duration as metrics.
pub async fn receive(
    ctx: SyncContext<'_>,
    secrets: &SecretsProvider,
    body: &[u8],
    signature: Option<&str>,
    tolerance_seconds: i64,
) -> Result<(Envelope, Outcome), WebhookError> {
    let started = std::time::Instant::now();
    let mut event_type = None;
    let mut lag = None;
    let result = async {
        let verified = verify(secrets, body, signature, tolerance_seconds).await?;
        let event = parse_envelope(body)?;
        event_type = Some(event.event_type.clone());
        let lag_ms = ctx
            .clock
            .unix_ms()
            .saturating_sub(event.created.saturating_mul(1000));
        lag = u64::try_from(lag_ms).ok().map(Duration::from_millis);
        let live = verified.stripe_secret_key.expose().contains("_live_");
        let outcome = process(ctx, &event, live).await?;
        Ok((event, outcome))
    }
    .await;
    let delivery = match &result {
        Ok((_, Outcome::Processed { .. })) => Delivery::Processed,
        Ok((_, Outcome::Duplicate)) => Delivery::Duplicate,
        Ok((_, Outcome::Ignored(_))) => Delivery::Ignored,
        Err(WebhookError::Signature(_)) => Delivery::RejectedSignature,
        // Another delivery of the event holds it: that one's outcome is the event's.
        Err(WebhookError::InProgress) => Delivery::Duplicate,
        Err(_) => Delivery::Failed,
    };
    crate::metrics::webhook_delivery(delivery, event_type.as_deref(), lag, started.elapsed());
    result
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
    let now = ctx.clock.unix();
    // This delivery's own id: only the holder of the claim may complete or release it.
    let owner = random_hex::<16>()?;
    let entry = LedgerEntry {
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        event_created: event.created,
        state: LedgerState::Processing,
        lease_owner: owner.clone(),
        lease_until: now + LEASE.as_secs() as i64,
        received_at: ctx.clock.timestamp(),
        processed_at: None,
        expires_at: now + LEDGER_RETENTION_SECONDS,
        attempts: 1,
        last_error: None,
        failed_at: None,
    };
    match ctx.table.claim_event(&entry, now).await? {
        Claim::AlreadyDone => return Ok(Outcome::Duplicate),
        Claim::InProgress => return Err(WebhookError::InProgress),
        Claim::Claimed => {}
    }
    let result = apply(ctx, event, &owner).await;
    if let Err(error) = &result {
        // Recorded as failed, which lets Stripe's retry (or a replay) start over at once instead
        // of waiting out the lease; this may use the time the invocation holds back for it.
        let (error, at) = (error.to_string(), ctx.clock.timestamp());
        let failed = ctx.table.fail_event(&event.id, &owner, &error, &at);
        if let Err(e) = crate::budget::cleanup(failed).await {
            tracing::error!(event = %event.id, error = %e, "could not record the failed attempt; the claim expires with its lease");
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
        tx.complete_event(table, &event.id, owner, &ctx.clock.timestamp())
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
    if ctx.table.customer_erased(&customer).await? {
        // Late events of an erased customer (its `customer.deleted` too) write nothing, so the
        // user's data is not brought back; the event is still recorded as done.
        return complete_only(ctx, &complete).await;
    }
    let refused = match (event.event_type.as_str(), client_reference(event)) {
        ("checkout.session.completed", Some(user)) => {
            link_checkout_customer(ctx, event, &user, &customer).await?
        }
        _ => None,
    };
    let finish = |table: &Table, tx: &mut Transaction| {
        complete(table, tx)?;
        match &refused {
            // Recorded with the event's completion, so a redelivery cannot record it twice.
            Some(entry) => tx.put_audit_entry(table, entry, 0, 0).map(|_| ()),
            None => Ok(()),
        }
    };
    let trigger = SyncTrigger {
        source: AuditSource::Webhook,
        reference: Some(event.id.clone()),
    };
    match sync_customer(ctx, &customer, &trigger, &finish).await {
        Ok(outcome) => Ok(Outcome::Processed {
            changes: outcome.changes.len(),
        }),
        // Our lease ran out and another instance took the event over: it finishes it.
        Err(SyncError::CallerConditionFailed(_)) => Err(WebhookError::InProgress),
        // Erased while this event was being processed.
        Err(SyncError::Erased(_)) => complete_only(ctx, &complete).await,
        Err(e) => Err(e.into()),
    }
}

async fn complete_only(
    ctx: SyncContext<'_>,
    complete: &impl Fn(&Table, &mut Transaction) -> Result<(), StoreError>,
) -> Result<Outcome, WebhookError> {
    let mut tx = Transaction::new();
    complete(ctx.table, &mut tx)?;
    ctx.table.commit(tx).await.map_err(|e| match e {
        StoreError::TransactionConditionsFailed(_) => WebhookError::InProgress,
        e => e.into(),
    })?;
    Ok(Outcome::Ignored("customer erased"))
}

fn client_reference(event: &Envelope) -> Option<UserId> {
    event
        .client_reference_id
        .as_deref()
        .and_then(|u| UserId::parse(u).ok())
}

/// Links the user a completed Checkout names to its customer, but only on proof that the
/// customer is theirs: `client_reference_id` is whatever the page that opened the Checkout put
/// there (a Payment Link or Pricing Table on a page someone else controls can name anyone).
/// Proof is a session Portico recorded creating for this user and customer, or the customer's
/// metadata naming the user (what Portico writes when it creates one). Without proof nothing is
/// linked, and the refusal is returned as an audit entry for the customer.
async fn link_checkout_customer(
    ctx: SyncContext<'_>,
    event: &Envelope,
    user: &UserId,
    customer: &CustomerId,
) -> Result<Option<AuditEntry>, WebhookError> {
    let session = event.object_id.as_deref().unwrap_or_default();
    if let Some(linked) = ctx.table.get_user(user).await?.and_then(|u| u.customer_id) {
        // One who has a customer keeps theirs.
        if linked != *customer {
            tracing::warn!(event = %event.id, session, "checkout completed for a user already linked to another customer; kept theirs");
        }
        return Ok(None);
    }
    let recorded = ctx
        .table
        .checkout_record(session)
        .await?
        .is_some_and(|r| r.user_id == *user && r.customer_id == *customer);
    let proven = if recorded {
        true
    } else {
        match ctx.stripe.retrieve_customer(customer, &[]).await {
            Ok(c) => c.metadata.get(USER_ID_METADATA).map(String::as_str) == Some(user.as_str()),
            Err(e) if e.is_gone() => false,
            Err(e) => return Err(WebhookError::Sync(SyncError::Stripe(e))),
        }
    };
    if proven {
        let linked = ctx
            .table
            .link_customer(user, None, customer, &ctx.clock.timestamp())
            .await?;
        if linked != *customer {
            tracing::warn!(event = %event.id, session, "user linked to another customer meanwhile; kept theirs");
        }
        return Ok(None);
    }
    // Ids only: the user id and the customer's details stay out of the log.
    tracing::warn!(event = %event.id, session, "checkout.session.completed names a user Portico cannot tie to its customer; not linked");
    Ok(Some(AuditEntry {
        customer_id: customer.clone(),
        source: AuditSource::Webhook,
        reference: Some(event.id.clone()),
        at: ctx.clock.timestamp(),
        change: Change {
            kind: ChangeKind::Link,
            field: "user".into(),
            from: Value::Null,
            // A digest, not the id: audit entries reach whoever owns the customer.
            to: json!({"refused_user": user.short_digest(), "checkout_session": session}),
            message: format!(
                "Checkout session {session} named a user this customer is not proven to belong to; not linked"
            ),
        },
        cancellation: None,
    }))
}
