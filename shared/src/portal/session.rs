//! `POST /portal/sessions`: a portal session for the caller's own customer.
//!
//! For a user with a stored customer this is one DynamoDB batch read (user + workflow
//! configuration), one Stripe call and one DynamoDB write.

use serde::{Deserialize, Serialize};
use url::Url;

use super::return_url::{absolute_url, spa_path, with_session_ref};
use super::{
    AfterCompletion, Branding, Locale, PortalError, Workflow, WorkflowSettings, NOT_CONFIGURED,
};
use crate::auth::User;
use crate::clock::Clock;
use crate::config::PortalConfig;
use crate::customer_link::ensure_customer;
use crate::ids::{CustomerId, SubscriptionId};
use crate::store::{PortalSessionRecord, Table};
use crate::stripe::{
    random_idempotency_key, FlowData, FlowItem, PortalSessionParams, StripeClient, Subscription,
    SubscriptionListParams, SubscriptionStatus,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub workflow: Option<Workflow>,
    pub return_url: Option<String>,
    pub locale: Option<Locale>,
    pub subscription_id: Option<SubscriptionId>,
    /// With `subscription_management`: the price to switch to, confirmed on the portal's
    /// `subscription_update_confirm` page (one of ALLOWED_PRICES).
    pub price: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedSession {
    pub id: String,
    pub url: String,
    pub workflow: Workflow,
    pub return_url: String,
    pub created_at: String,
    /// Until when (unix seconds) the return link (`return_url`) works. Stripe's portal `url`
    /// itself is short-lived: it expires if not visited soon, so open it at once.
    pub expires_at: i64,
    /// What Stripe's API cannot apply to the portal itself, for the SPA to show around it.
    pub branding: Option<Branding>,
}

/// How long after its creation a session's return link works: long enough for a user who
/// lingers in the portal, short enough that an old link in the browser history re-syncs nothing.
pub const RETURN_WINDOW_SECONDS: i64 = 24 * 3600;

pub async fn create_session(
    table: &Table,
    stripe: &StripeClient,
    clock: &Clock,
    portal: &PortalConfig,
    user: &User,
    request: CreateSessionRequest,
) -> Result<CreatedSession, PortalError> {
    let workflow = request.workflow.unwrap_or(Workflow::BillingReview);
    // Validate what we can before any I/O, so bad input changes nothing.
    let given_return = request
        .return_url
        .as_deref()
        .map(|raw| absolute_url(portal, "return_url", raw))
        .transpose()?;
    if let Some(price) = &request.price {
        if workflow != Workflow::SubscriptionManagement {
            return Err(PortalError::PriceWithoutPlanChange);
        }
        if !portal.allowed_prices.contains(price) {
            return Err(PortalError::PriceNotAllowed(price.clone()));
        }
    }

    let (stored_user, workflow_config) = table.get_user_and_workflow(&user.id, workflow).await?;
    let workflow_config = workflow_config.map(|r| r.settings).unwrap_or_default();
    let configuration = workflow_config
        .effective_configuration(portal.default_configuration.as_deref())
        .map(str::to_string)
        .ok_or_else(|| PortalError::NotConfigured(NOT_CONFIGURED.into()))?;
    let customer = ensure_customer(table, stripe, clock, user, stored_user.as_ref()).await?;
    crate::telemetry::record_customer(&customer);

    let reference = random_idempotency_key()?;
    let base = match given_return {
        Some(url) => url,
        None => default_return(portal, workflow, &workflow_config)?,
    };
    let return_url = with_session_ref(base, &reference).to_string();
    let flow = flow_for(
        stripe,
        workflow,
        &workflow_config,
        &customer,
        request.subscription_id,
        request.price,
        &return_url,
    )
    .await?;

    let mut params = PortalSessionParams {
        configuration: Some(configuration.clone()),
        return_url: Some(return_url.clone()),
        locale: request.locale.map(|l| l.as_str().to_string()),
        flow_data: flow,
        ..PortalSessionParams::new(customer.clone())
    };
    let mut created = stripe
        .create_portal_session(&params, Some(&reference))
        .await;
    let refused_offer = created
        .as_ref()
        .err()
        .and_then(|e| e.api_error())
        .is_some_and(|api| {
            api.param
                .as_deref()
                .is_some_and(|p| p.starts_with("flow_data[subscription_cancel][retention]"))
        });
    if refused_offer {
        // The coupon stopped being redeemable after an admin saved it: the user can still
        // cancel, without the offer (under a key of its own: the request differs).
        tracing::warn!(
            workflow = workflow.as_str(),
            "retention coupon refused by Stripe; cancelling without the offer"
        );
        if let Some(cancel) = params
            .flow_data
            .as_mut()
            .and_then(|f| f.subscription_cancel.as_mut())
        {
            cancel.retention = None;
        }
        created = stripe
            .create_portal_session(&params, Some(&format!("{reference}-without-offer")))
            .await;
    }
    let session = created.map_err(|e| {
        match e.api_error() {
            // Stripe's "no configuration" / unknown configuration: a set-up problem, say how to fix it.
            Some(api)
                if api.param.as_deref() == Some("configuration")
                    || api.message.contains("configuration") =>
            {
                PortalError::NotConfigured(format!(
                    "{NOT_CONFIGURED} (Stripe said: {})",
                    api.message
                ))
            }
            Some(api)
                if api
                    .param
                    .as_deref()
                    .is_some_and(|p| p.starts_with("flow_data")) =>
            {
                PortalError::NoActiveSubscription(workflow.as_str())
            }
            _ => PortalError::Stripe(e),
        }
    })?;

    let retention_offer = params
        .flow_data
        .as_ref()
        .and_then(|f| f.subscription_cancel.as_ref())
        .and_then(|c| c.retention.as_ref())
        .map(|r| r.coupon_offer.coupon.clone());
    let stripe_session_id = session.id;
    let created_at = clock.timestamp();
    let expires_at = clock.unix() + RETURN_WINDOW_SECONDS;
    table
        .insert_portal_session(&PortalSessionRecord {
            reference: reference.clone(),
            user_id: user.id.clone(),
            customer_id: customer,
            workflow,
            stripe_session_id: stripe_session_id.clone(),
            configuration_id: configuration,
            return_url: return_url.clone(),
            created_at: created_at.clone(),
            returned_at: None,
            action: None,
            return_until: Some(expires_at),
            retention_offer,
            counted: true,
        })
        .await?;
    crate::metrics::portal_session_created(workflow);
    tracing::info!(
        workflow = workflow.as_str(),
        stripe_session = %stripe_session_id,
        "portal session created"
    );
    Ok(CreatedSession {
        id: reference,
        url: session.url,
        workflow,
        return_url,
        created_at,
        expires_at,
        branding: workflow_config.branding,
    })
}

fn default_return(
    portal: &PortalConfig,
    workflow: Workflow,
    config: &WorkflowSettings,
) -> Result<Url, PortalError> {
    let path = config
        .return_path
        .as_ref()
        .map_or(workflow.default_return_path(), |p| p.as_str());
    // Stored paths were checked when saved; the joined URL is checked again, as every return is.
    Ok(spa_path(portal, "return_path", path)?)
}

/// The deep link for a workflow; `None` opens the portal home.
async fn flow_for(
    stripe: &StripeClient,
    workflow: Workflow,
    config: &WorkflowSettings,
    customer: &CustomerId,
    chosen: Option<SubscriptionId>,
    price: Option<String>,
    return_url: &str,
) -> Result<Option<FlowData>, PortalError> {
    let finish = |flow: FlowData| match config.after_completion.unwrap_or_default() {
        AfterCompletion::PortalHomepage => flow.then_homepage(),
        AfterCompletion::HostedConfirmation => flow.then_confirm(None),
        AfterCompletion::Redirect => flow.then_redirect(return_url),
    };
    Ok(match (workflow, price) {
        (Workflow::PaymentUpdate, _) => Some(finish(FlowData::payment_method_update())),
        (Workflow::BillingReview | Workflow::ProfileUpdate, _) => None,
        (Workflow::CancellationProcess, _) => {
            let subscription = pick_subscription(stripe, customer, chosen, workflow)
                .await?
                .ok_or(PortalError::NoActiveSubscription(workflow.as_str()))?;
            // Offered once: a subscription that already has a discount (an offer it took
            // before, or any other) cancels without a new one.
            let offer = config
                .retention_coupon
                .as_ref()
                .filter(|_| subscription.discounts.is_empty())
                .map(|c| c.to_string());
            Some(finish(FlowData::subscription_cancel(
                subscription.id,
                offer,
            )))
        }
        (Workflow::SubscriptionManagement, Some(price)) => {
            let subscription = pick_subscription(stripe, customer, chosen, workflow)
                .await?
                .ok_or(PortalError::NoActiveSubscription(workflow.as_str()))?;
            let item = subscription
                .items
                .data
                .first()
                .ok_or(PortalError::NoActiveSubscription(workflow.as_str()))?;
            if item.price.as_ref().is_some_and(|p| p.id == price) {
                return Err(PortalError::AlreadyOnPrice(price));
            }
            // The same change the preview (GET /billing/subscriptions/{id}/preview) priced.
            let items = vec![FlowItem {
                id: item.id.clone(),
                price: Some(price),
                quantity: item.quantity,
            }];
            Some(finish(FlowData::subscription_update_confirm(
                subscription.id,
                items,
            )))
        }
        (Workflow::SubscriptionManagement, None) => {
            match pick_subscription(stripe, customer, chosen, workflow).await {
                Ok(Some(subscription)) => {
                    Some(finish(FlowData::subscription_update(subscription.id)))
                }
                // With none, or several and no choice, the portal home lists them all.
                Ok(None) | Err(PortalError::SubscriptionRequired(_)) => None,
                Err(e) => return Err(e),
            }
        }
    })
}

/// The subscription a subscription workflow acts on: the chosen one if it is the customer's
/// and live, else the only live one.
async fn pick_subscription(
    stripe: &StripeClient,
    customer: &CustomerId,
    chosen: Option<SubscriptionId>,
    workflow: Workflow,
) -> Result<Option<Subscription>, PortalError> {
    let params = SubscriptionListParams {
        customer: Some(customer.clone()),
        ..Default::default()
    };
    let mut live: Vec<Subscription> = stripe
        .list_subscriptions(&params)
        .await?
        .data
        .into_iter()
        .filter(|s| {
            matches!(
                s.status,
                SubscriptionStatus::Active
                    | SubscriptionStatus::Trialing
                    | SubscriptionStatus::PastDue
            )
        })
        .collect();
    match chosen {
        Some(id) => match live.iter().position(|s| s.id == id) {
            Some(n) => Ok(Some(live.swap_remove(n))),
            None => Err(PortalError::SubscriptionNotFound(id.to_string())),
        },
        None => match live.len() {
            0 if workflow == Workflow::CancellationProcess => {
                Err(PortalError::NoActiveSubscription(workflow.as_str()))
            }
            0 => Ok(None),
            1 => Ok(live.pop()),
            _ => Err(PortalError::SubscriptionRequired(
                live.iter()
                    .map(|s| s.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        },
    }
}
