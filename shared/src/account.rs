//! The signed-in user's billing account: status from the synced state, cancel and resume,
//! and checkout for a new subscription or a lifetime purchase.

use std::time::Duration;

use serde::Serialize;

use crate::auth::User;
use crate::clock::Clock;
use crate::config::Config;
use crate::customer_link::{ensure_customer, CustomerError};
use crate::ids::{CustomerId, SubscriptionId};
use crate::portal::return_url::{spa_path, ReturnUrlError};
use crate::portal::Workflow;
use crate::store::{
    AuditSource, CheckoutRecord, CustomerStore, OpenCheckout, OpenCheckoutClaim, StoreError,
    SyncSlot, Table, UserStore, CHECKOUT_RETENTION_SECONDS,
};
use crate::stripe::{
    CheckoutPaymentIntentData, CheckoutSessionParams, InvoicePreviewParams, Metadata, StripeClient,
    StripeClientError, SubscriptionCancelParams, SubscriptionItemParams, SubscriptionListParams,
    SubscriptionPreviewDetails, SubscriptionStatus, SubscriptionUpdateParams,
};
use crate::sync::snapshot::{
    InvoiceSummary, PaymentMethodSummary, PurchaseSummary, ScheduledChange, SubscriptionSummary,
};
use crate::sync::{
    lifetime_purchases, sync_customer, CustomerSnapshot, PremiumStatus, SyncContext, SyncError,
    SyncOutcome, SyncTrigger, PRICE_METADATA, PRODUCT_METADATA, PURCHASE_LIFETIME,
    PURCHASE_METADATA,
};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no such subscription of yours")]
    SubscriptionNotFound,
    #[error("this subscription has already ended")]
    SubscriptionEnded,
    #[error(
        "immediate cancellation is not enabled; the subscription can be cancelled at period end"
    )]
    ImmediateCancelNotAllowed,
    #[error("price {0} is not offered")]
    PriceNotAllowed(String),
    #[error("you already subscribe to this price")]
    AlreadySubscribed,
    #[error(transparent)]
    InvalidReturn(#[from] ReturnUrlError),
    #[error("this account was re-synced moments ago and has not been stored yet; retry shortly")]
    RefreshThrottled(Duration),
    #[error("you already own lifetime access")]
    AlreadyPurchased,
    #[error("the subscription is already on price {0}")]
    AlreadyOnPrice(String),
    #[error(transparent)]
    Customer(#[from] CustomerError),
    #[error(transparent)]
    Stripe(#[from] StripeClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// What the account's premium rests on, so the SPA can label its billing button: a
/// subscription to manage, a lifetime purchase (invoices and payment methods only), or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    Subscription,
    Lifetime,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub kind: PlanKind,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub price_id: Option<String>,
    pub interval: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionView {
    pub id: String,
    pub status: String,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    /// A price change Stripe has waiting (a subscription schedule's next phase, or a
    /// `pending_update`).
    pub scheduled_change: Option<ScheduledChange>,
}

/// The method that pays, and the subscription it pays (`None`: the customer's default, with no
/// subscription it pays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentMethodView {
    #[serde(flatten)]
    pub method: PaymentMethodSummary,
    pub pays_subscription: Option<String>,
}

/// The lifetime purchase that grants premium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifetimeView {
    pub payment_intent: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub paid_at: i64,
    /// Refunded in part (a full refund ends the purchase).
    pub amount_refunded: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    pub customer_id: Option<CustomerId>,
    pub email: Option<String>,
    pub premium: bool,
    pub premium_until: Option<i64>,
    pub plan: Plan,
    pub subscription: Option<SubscriptionView>,
    pub lifetime: Option<LifetimeView>,
    pub default_payment_method: Option<PaymentMethodView>,
    pub invoices: Vec<InvoiceSummary>,
    pub synced_at: Option<String>,
    /// Whether this answer was re-synced from Stripe just now.
    pub refreshed: bool,
}

impl AccountView {
    fn empty(user: &User) -> Self {
        AccountView {
            customer_id: None,
            email: user.email.clone(),
            premium: false,
            premium_until: None,
            plan: Plan::none(),
            subscription: None,
            lifetime: None,
            default_payment_method: None,
            invoices: Vec::new(),
            synced_at: None,
            refreshed: false,
        }
    }

    fn from_state(
        customer: CustomerId,
        snapshot: &CustomerSnapshot,
        premium: &PremiumStatus,
        synced_at: Option<String>,
    ) -> Self {
        // The subscription that grants premium, else the newest live one, else the newest.
        let shown = premium
            .subscription_id
            .as_ref()
            .and_then(|id| snapshot.subscriptions.iter().find(|s| &s.id == id))
            .or_else(|| {
                snapshot
                    .subscriptions
                    .iter()
                    .filter(|s| s.is_live())
                    .max_by_key(|s| s.current_period_end)
            })
            .or_else(|| {
                snapshot
                    .subscriptions
                    .iter()
                    .max_by_key(|s| s.current_period_end)
            });
        let lifetime = snapshot.lifetime();
        // A live subscription is what there is to manage, lifetime or not.
        let plan = match (shown.filter(|s| s.is_live()), lifetime) {
            (Some(s), _) => subscription_plan(s),
            (None, Some(p)) => lifetime_plan(p),
            (None, None) => Plan::none(),
        };
        AccountView {
            customer_id: Some(customer),
            email: snapshot.email.clone(),
            premium: premium.premium,
            premium_until: premium.until,
            plan,
            subscription: shown.map(subscription_view),
            lifetime: lifetime.map(lifetime_view),
            default_payment_method: paying_method(snapshot, shown),
            invoices: snapshot.invoices.clone(),
            synced_at,
            refreshed: false,
        }
    }
}

/// What pays the shown subscription if it still bills; otherwise the customer's default.
fn paying_method(
    snapshot: &CustomerSnapshot,
    shown: Option<&SubscriptionSummary>,
) -> Option<PaymentMethodView> {
    match shown.filter(|s| s.is_live()) {
        Some(s) => s.payment_method.clone().map(|method| PaymentMethodView {
            method,
            pays_subscription: Some(s.id.clone()),
        }),
        None => snapshot
            .default_payment_method
            .clone()
            .map(|method| PaymentMethodView {
                method,
                pays_subscription: None,
            }),
    }
}

impl Plan {
    fn none() -> Self {
        Plan {
            kind: PlanKind::None,
            product_id: None,
            product_name: None,
            price_id: None,
            interval: None,
            amount: None,
            currency: None,
        }
    }
}

fn lifetime_plan(p: &PurchaseSummary) -> Plan {
    Plan {
        kind: PlanKind::Lifetime,
        product_id: p.product_id.clone(),
        product_name: p.product_name.clone(),
        price_id: p.price_id.clone(),
        interval: None,
        amount: Some(p.amount),
        currency: Some(p.currency.clone()),
    }
}

fn lifetime_view(p: &PurchaseSummary) -> LifetimeView {
    LifetimeView {
        payment_intent: p.payment_intent.clone(),
        price_id: p.price_id.clone(),
        product_id: p.product_id.clone(),
        product_name: p.product_name.clone(),
        amount: p.amount,
        currency: p.currency.clone(),
        paid_at: p.paid_at,
        amount_refunded: p.amount_refunded,
    }
}

fn subscription_plan(s: &SubscriptionSummary) -> Plan {
    Plan {
        kind: PlanKind::Subscription,
        product_id: s.product_id.clone(),
        product_name: s.plan_name.clone(),
        price_id: s.price_id.clone(),
        interval: s.interval.clone(),
        amount: s.amount,
        currency: s.currency.clone(),
    }
}

fn subscription_view(s: &SubscriptionSummary) -> SubscriptionView {
    SubscriptionView {
        id: s.id.clone(),
        status: s.status.clone(),
        current_period_end: s.current_period_end,
        cancel_at_period_end: s.cancel_at_period_end,
        cancel_at: s.cancel_at,
        scheduled_change: s.scheduled_change.clone(),
    }
}

/// The account as stored; with `refresh`, re-synced from Stripe first, at most once per
/// customer per `min_interval` (Stripe's rate limit is the account's, webhooks included): within
/// it the stored state is the answer, with `refreshed: false`. A user Portico has never linked
/// to a customer is a valid, non-premium account.
pub async fn get_account(
    ctx: SyncContext<'_>,
    user: &User,
    refresh: bool,
    min_interval: Duration,
    request_id: &str,
) -> Result<AccountView, AccountError> {
    let Some(customer) = ctx
        .table
        .get_user(&user.id)
        .await?
        .and_then(|u| u.customer_id)
    else {
        return Ok(AccountView::empty(user));
    };
    let mut throttled = None;
    if refresh {
        match ctx
            .table
            .claim_user_sync(&customer, ctx.clock.unix_ms(), min_interval)
            .await?
        {
            SyncSlot::Claimed => {
                let outcome = sync(ctx, &customer, request_id).await?;
                let mut view = AccountView::from_state(
                    customer,
                    &outcome.current,
                    &outcome.premium,
                    Some(ctx.clock.timestamp()),
                );
                view.refreshed = true;
                return Ok(view);
            }
            SyncSlot::Taken { retry_after } => throttled = Some(retry_after),
        }
    }
    match (ctx.table.get_customer_state(&customer).await?, throttled) {
        (Some(state), _) => Ok(AccountView::from_state(
            customer,
            &state.snapshot,
            &state.premium,
            Some(state.synced_at),
        )),
        // The sync that holds the slot has stored nothing yet: there is nothing to answer with.
        (None, Some(retry_after)) => Err(AccountError::RefreshThrottled(retry_after)),
        // Linked but never synced: nothing known beyond the link.
        (None, None) => Ok(AccountView {
            customer_id: Some(customer),
            ..AccountView::empty(user)
        }),
    }
}

async fn sync(
    ctx: SyncContext<'_>,
    customer: &CustomerId,
    request_id: &str,
) -> Result<SyncOutcome, SyncError> {
    let trigger = SyncTrigger {
        source: AuditSource::Account,
        reference: Some(request_id.to_string()),
    };
    sync_customer(ctx, customer, &trigger, &()).await
}

/// The caller's own subscription, or `SubscriptionNotFound` (for anyone else's too).
async fn own_subscription(
    ctx: SyncContext<'_>,
    user: &User,
    id: &SubscriptionId,
) -> Result<(CustomerId, crate::stripe::Subscription), AccountError> {
    let customer = ctx
        .table
        .get_user(&user.id)
        .await?
        .and_then(|u| u.customer_id)
        .ok_or(AccountError::SubscriptionNotFound)?;
    let subscription = match ctx.stripe.retrieve_subscription(id, &[]).await {
        Err(e) if e.is_not_found() => return Err(AccountError::SubscriptionNotFound),
        other => other?,
    };
    if subscription.customer.id() != customer.as_str() {
        return Err(AccountError::SubscriptionNotFound);
    }
    Ok((customer, subscription))
}

fn has_ended(status: SubscriptionStatus) -> bool {
    matches!(
        status,
        SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionChange {
    pub subscription: Option<SubscriptionView>,
    /// False when the subscription was already in the asked-for state.
    pub changed: bool,
    pub changes: Vec<String>,
}

fn change_result(id: &SubscriptionId, outcome: &SyncOutcome, changed: bool) -> SubscriptionChange {
    SubscriptionChange {
        subscription: outcome
            .current
            .subscriptions
            .iter()
            .find(|s| s.id == id.as_str())
            .map(subscription_view),
        changed,
        changes: outcome.changes.iter().map(|c| c.message.clone()).collect(),
    }
}

pub async fn cancel(
    ctx: SyncContext<'_>,
    config: &Config,
    user: &User,
    id: &SubscriptionId,
    immediately: bool,
    request_id: &str,
) -> Result<SubscriptionChange, AccountError> {
    if immediately && !config.allow_immediate_cancel {
        return Err(AccountError::ImmediateCancelNotAllowed);
    }
    let (customer, subscription) = own_subscription(ctx, user, id).await?;
    if has_ended(subscription.status) {
        return Err(AccountError::SubscriptionEnded);
    }
    let already =
        !immediately && (subscription.cancel_at_period_end || subscription.cancel_at.is_some());
    if !already {
        let key = format!("portico-cancel-{id}-{request_id}");
        if immediately {
            ctx.stripe
                .cancel_subscription(id, &SubscriptionCancelParams::default())
                .await?;
        } else {
            let params = SubscriptionUpdateParams {
                cancel_at_period_end: Some(true),
                ..Default::default()
            };
            ctx.stripe
                .update_subscription(id, &params, Some(&key))
                .await?;
        }
    }
    let outcome = sync(ctx, &customer, request_id).await?;
    Ok(change_result(id, &outcome, !already))
}

pub async fn resume(
    ctx: SyncContext<'_>,
    user: &User,
    id: &SubscriptionId,
    request_id: &str,
) -> Result<SubscriptionChange, AccountError> {
    let (customer, subscription) = own_subscription(ctx, user, id).await?;
    if has_ended(subscription.status) {
        return Err(AccountError::SubscriptionEnded);
    }
    let pending = subscription.cancel_at_period_end || subscription.cancel_at.is_some();
    if pending {
        let params = SubscriptionUpdateParams {
            cancel_at_period_end: Some(false),
            ..Default::default()
        };
        ctx.stripe
            .update_subscription(
                id,
                &params,
                Some(&format!("portico-resume-{id}-{request_id}")),
            )
            .await?;
    }
    let outcome = sync(ctx, &customer, request_id).await?;
    Ok(change_result(id, &outcome, pending))
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub price: String,
    pub success_path: Option<String>,
    pub cancel_path: Option<String>,
}

impl CheckoutRequest {
    /// Where Stripe sends the buyer after paying and after giving up: the caller's paths (or
    /// the defaults) on the SPA, through the one check every return address passes.
    pub fn return_urls(&self, config: &Config) -> Result<(String, String), ReturnUrlError> {
        let portal = &config.portal;
        let success = self
            .success_path
            .as_deref()
            .unwrap_or("/dashboard/billing?checkout=success");
        let cancel = self
            .cancel_path
            .as_deref()
            .unwrap_or("/dashboard/billing?checkout=cancelled");
        Ok((
            spa_path(portal, "success_path", success)?.to_string(),
            spa_path(portal, "cancel_path", cancel)?.to_string(),
        ))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckoutCreated {
    pub id: String,
    pub url: Option<String>,
    /// True when this is the session already open for this user and price, not a new one.
    pub reused: bool,
}

impl CheckoutCreated {
    fn reused(open: OpenCheckout) -> Self {
        CheckoutCreated {
            id: open.session_id,
            url: open.url,
            reused: true,
        }
    }
}

/// A Stripe Checkout session for the caller's own customer: subscription mode for a price of
/// ALLOWED_PRICES, payment mode (lifetime access) for one of ALLOWED_ONE_TIME_PRICES. The
/// caller's `Idempotency-Key` makes a double click one session, and while one is open for the
/// user and price every further request gets that one (`reused`), whatever its key.
pub async fn checkout(
    table: &Table,
    stripe: &StripeClient,
    clock: &Clock,
    config: &Config,
    user: &User,
    request: CheckoutRequest,
    idempotency_key: &str,
) -> Result<CheckoutCreated, AccountError> {
    let one_time = config.allowed_one_time_prices.contains(&request.price);
    if !one_time && !config.portal.allowed_prices.contains(&request.price) {
        return Err(AccountError::PriceNotAllowed(request.price));
    }
    let (success, cancel) = request.return_urls(config)?;
    let stored = table.get_user(&user.id).await?;
    let customer = ensure_customer(table, stripe, clock, user, stored.as_ref()).await?;
    if !one_time {
        let live = stripe
            .list_subscriptions(&SubscriptionListParams {
                customer: Some(customer.clone()),
                price: Some(request.price.clone()),
                ..Default::default()
            })
            .await?;
        if live
            .data
            .iter()
            .any(|s| !has_ended(s.status) && s.status != SubscriptionStatus::IncompleteExpired)
        {
            return Err(AccountError::AlreadySubscribed);
        }
    }
    // While a session for this price is open, a second purchase (another tab, another click
    // with a new key) gets it back: two open sessions could both be paid.
    let found = table.open_checkout(&user.id, &request.price).await?;
    let stale = match found {
        Some(open) if still_open(stripe, &open, clock.unix()).await? => {
            return Ok(CheckoutCreated::reused(open))
        }
        found => found.map(|o| o.session_id),
    };
    let mut params = if one_time {
        lifetime_checkout(stripe, &customer, request.price.clone(), success).await?
    } else {
        let mut params = CheckoutSessionParams::subscription(request.price.clone(), success);
        params.customer = Some(customer.clone());
        params
    };
    params.cancel_url = Some(cancel);
    params.client_reference_id = Some(user.id.to_string());
    // Namespaced by user, so two users' keys can never collide at Stripe.
    let key = format!(
        "portico-checkout-{}-{idempotency_key}",
        user.id.short_digest()
    );
    let session = stripe.create_checkout_session(&params, Some(&key)).await?;
    let now = clock.unix();
    // The record is what later proves that this session's completion is this user's.
    table
        .record_checkout(&CheckoutRecord {
            session_id: session.id.clone(),
            user_id: user.id.clone(),
            customer_id: customer,
            price: request.price.clone(),
            created_at: clock.timestamp(),
            expires_at: now + CHECKOUT_RETENTION_SECONDS,
        })
        .await?;
    let open = OpenCheckout {
        session_id: session.id.clone(),
        url: session.url.clone(),
        // Stripe's default lifetime when it does not say.
        expires_at: session.expires_at.unwrap_or(now + 24 * 3600),
    };
    match table
        .claim_open_checkout(&user.id, &request.price, &open, stale.as_deref())
        .await?
    {
        OpenCheckoutClaim::Recorded => Ok(CheckoutCreated {
            id: session.id,
            url: session.url,
            reused: false,
        }),
        OpenCheckoutClaim::Lost => {
            // A concurrent request made its session the open one first: ours is withdrawn
            // before anyone saw its URL, and theirs is the answer.
            let winner = table
                .open_checkout(&user.id, &request.price)
                .await?
                .ok_or(AccountError::Store(StoreError::ConditionFailed))?;
            if winner.session_id != session.id {
                if let Err(e) = stripe.expire_checkout_session(&session.id).await {
                    tracing::warn!(session = %session.id, error = %e, "could not expire a duplicate checkout session");
                }
            }
            Ok(CheckoutCreated::reused(winner))
        }
    }
}

/// Whether a recorded open session can still be paid: Stripe knows (it may have been paid or
/// expired meanwhile).
async fn still_open(
    stripe: &StripeClient,
    open: &OpenCheckout,
    now: i64,
) -> Result<bool, AccountError> {
    if open.expires_at <= now {
        return Ok(false);
    }
    match stripe.retrieve_checkout_session(&open.session_id).await {
        Ok(session) => Ok(session.status.as_deref() == Some("open")),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The parameters of a `payment`-mode checkout for lifetime access, unless the customer owns
/// it already (paid and not refunded in full, as Stripe says now). The payment intent carries
/// the metadata the sync recognises a lifetime purchase by, with the price's product.
async fn lifetime_checkout(
    stripe: &StripeClient,
    customer: &CustomerId,
    price: String,
    success_url: String,
) -> Result<CheckoutSessionParams, AccountError> {
    let (owned, found) = tokio::try_join!(
        lifetime_purchases(stripe, customer),
        stripe.retrieve_price(&price, &[])
    )?;
    if owned.iter().any(|p| !p.refunded) {
        return Err(AccountError::AlreadyPurchased);
    }
    // A recurring price in the one-time list is a configuration mistake Stripe would refuse.
    if found.recurring.is_some() || found.active == Some(false) {
        return Err(AccountError::PriceNotAllowed(price));
    }
    let mut metadata = Metadata::from([
        (PURCHASE_METADATA.to_string(), PURCHASE_LIFETIME.to_string()),
        (PRICE_METADATA.to_string(), price.clone()),
    ]);
    if let Some(product) = &found.product {
        metadata.insert(PRODUCT_METADATA.to_string(), product.id().to_string());
    }
    let mut params = CheckoutSessionParams::payment(price, success_url);
    params.customer = Some(customer.clone());
    params.metadata = metadata.clone();
    params.payment_intent_data = Some(CheckoutPaymentIntentData {
        description: None,
        metadata,
    });
    Ok(params)
}

/// What switching a subscription to another price now would cost, from Stripe's invoice
/// preview, so the SPA can show it before the user confirms in the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanChangePreview {
    pub subscription_id: String,
    pub current_price: Option<String>,
    pub new_price: String,
    pub currency: Option<String>,
    /// The portal configuration's `proration_behavior` the preview was made with.
    pub proration_behavior: String,
    /// Charged when the change is made (0 when the prorations go on the next invoice).
    pub amount_due_today: i64,
    pub proration_lines: Vec<PreviewLine>,
    pub next_invoice: NextInvoice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewLine {
    pub description: Option<String>,
    pub amount: i64,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextInvoice {
    pub amount: i64,
    pub date: Option<i64>,
}

/// The proration behaviour the subscription-management portal applies: its configuration's
/// `features.subscription_update.proration_behavior`, Stripe's `create_prorations` by default.
async fn portal_proration_behavior(
    ctx: SyncContext<'_>,
    config: &Config,
) -> Result<String, AccountError> {
    let mapping = ctx.table.workflow_mapping().await?;
    let settings = mapping.settings(Workflow::SubscriptionManagement);
    let behavior =
        match settings.effective_configuration(config.portal.default_configuration.as_deref()) {
            Some(id) => ctx
                .stripe
                .retrieve_portal_configuration(id)
                .await?
                .features
                .as_ref()
                .and_then(|f| f["subscription_update"]["proration_behavior"].as_str())
                .map(str::to_string),
            None => None,
        };
    Ok(behavior.unwrap_or_else(|| "create_prorations".into()))
}

/// `GET /billing/subscriptions/{id}/preview?price=`: the caller's own live subscription switched
/// to an allowed price, previewed (nothing changes).
pub async fn preview_plan_change(
    ctx: SyncContext<'_>,
    config: &Config,
    user: &User,
    id: &SubscriptionId,
    price: String,
) -> Result<PlanChangePreview, AccountError> {
    if !config.portal.allowed_prices.contains(&price) {
        return Err(AccountError::PriceNotAllowed(price));
    }
    let (customer, subscription) = own_subscription(ctx, user, id).await?;
    if has_ended(subscription.status) {
        return Err(AccountError::SubscriptionEnded);
    }
    let item = subscription
        .items
        .data
        .first()
        .ok_or(AccountError::SubscriptionNotFound)?;
    let current = item.price.as_ref();
    if current.is_some_and(|p| p.id == price) {
        return Err(AccountError::AlreadyOnPrice(price));
    }
    let behavior = portal_proration_behavior(ctx, config).await?;
    let params = InvoicePreviewParams {
        customer,
        subscription: id.clone(),
        subscription_details: SubscriptionPreviewDetails {
            items: vec![SubscriptionItemParams {
                id: Some(item.id.clone()),
                price: Some(price.clone()),
                ..Default::default()
            }],
            proration_behavior: Some(behavior.clone()),
        },
    };
    let (invoice, new_price) = tokio::try_join!(
        ctx.stripe.preview_invoice(&params),
        ctx.stripe.retrieve_price(&price, &[])
    )?;
    let interval = |p: Option<&crate::stripe::Price>| {
        p.and_then(|p| p.recurring.as_ref())
            .map(|r| (r.interval.clone(), r.interval_count))
    };
    // Stripe bills at once with `always_invoice`, and when the interval changes (the billing
    // period restarts now); otherwise the prorations wait for the next renewal.
    let due_now = behavior == "always_invoice" || interval(current) != interval(Some(&new_price));
    let (prorations, regular): (Vec<_>, Vec<_>) =
        invoice.lines.data.iter().partition(|l| l.is_proration());
    let period_end = subscription.current_period().map(|(_, end)| end);
    let amount_due = invoice.amount_due.unwrap_or_default();
    let next_invoice = if due_now {
        let quantity = i64::try_from(item.quantity.unwrap_or(1)).unwrap_or(1);
        NextInvoice {
            amount: new_price.unit_amount.unwrap_or_default() * quantity,
            date: regular
                .iter()
                .filter_map(|l| l.period.map(|p| p.end))
                .max()
                .or(period_end),
        }
    } else {
        NextInvoice {
            amount: amount_due,
            date: invoice.next_payment_attempt.or(period_end),
        }
    };
    Ok(PlanChangePreview {
        subscription_id: id.to_string(),
        current_price: current.map(|p| p.id.clone()),
        new_price: price,
        currency: invoice.currency.clone(),
        proration_behavior: behavior,
        amount_due_today: if due_now { amount_due } else { 0 },
        proration_lines: prorations
            .iter()
            .map(|l| PreviewLine {
                description: l.description.clone(),
                amount: l.amount,
                period_start: l.period.map(|p| p.start),
                period_end: l.period.map(|p| p.end),
            })
            .collect(),
        next_invoice,
    })
}
