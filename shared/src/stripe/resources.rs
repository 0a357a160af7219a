//! The endpoint methods Portico uses, each built from its catalogue entry, with small typed
//! parameter structs. Optional fields left `None` (or empty) are not sent; an empty string is
//! sent and unsets the value on Stripe's side.

use serde::Serialize;
use serde_json::Value;

use super::catalogue::*;
use super::client::{StripeClient, StripeRequest};
use super::encode::Params;
use super::error::StripeClientError;
use super::types::*;
use crate::ids::{CustomerId, SubscriptionId};

type Result<T> = std::result::Result<T, StripeClientError>;

fn params<T: Serialize>(value: &T) -> Result<Params> {
    Params::from_serialize(value)
        .map_err(|e| StripeClientError::InvalidRequest(format!("parameters: {e}")))
}

fn expand(paths: &[&str]) -> Params {
    Params::new().set_list("expand", paths.iter().copied())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AddressParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CustomerCreateParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressParams>,
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvoiceSettingsParams {
    /// `pm_…`; an empty string clears the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_payment_method: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CustomerUpdateParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_settings: Option<InvoiceSettingsParams>,
    /// A value of `""` removes that key.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// Cursor and page size shared by the list endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Page {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_after: Option<String>,
}

impl Page {
    /// The largest page Stripe serves, after `cursor`: what [`super::list_all`] wants.
    pub fn full(cursor: Option<String>) -> Self {
        Self {
            limit: Some(100),
            starting_after: cursor,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionListParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    /// `all` includes canceled subscriptions; Stripe's default omits them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(flatten)]
    pub page: Page,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expand: Vec<String>,
}

impl SubscriptionListParams {
    /// Every subscription of `customer` in any status, prices and schedules expanded.
    pub fn all_for(customer: &CustomerId) -> Self {
        Self {
            customer: Some(customer.clone()),
            status: Some("all".into()),
            expand: vec![
                "data.items.data.price".into(),
                "data.schedule".into(),
                "data.discounts.source.coupon".into(),
            ],
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CancellationDetailsParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// One of Stripe's eight reasons (`too_expensive`, `missing_features`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionItemParams {
    /// The existing item (`si_…`) to change; absent to add an item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionUpdateParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_at_period_end: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_details: Option<CancellationDetailsParams>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<SubscriptionItemParams>,
    /// `create_prorations`, `none` or `always_invoice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proration_behavior: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_payment_method: Option<String>,
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionCancelParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_now: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prorate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_details: Option<CancellationDetailsParams>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvoiceListParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub page: Page,
}

/// What `POST /v1/invoices/create_preview` is asked: the invoice a subscription would get if
/// its items changed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoicePreviewParams {
    pub customer: CustomerId,
    pub subscription: SubscriptionId,
    pub subscription_details: SubscriptionPreviewDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionPreviewDetails {
    pub items: Vec<SubscriptionItemParams>,
    /// `create_prorations`, `none` or `always_invoice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proration_behavior: Option<String>,
}

/// A portal deep link (`flow_data` on a portal session). Build with the constructors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowData {
    #[serde(rename = "type")]
    pub flow_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_completion: Option<AfterCompletion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_cancel: Option<SubscriptionCancelFlow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_update: Option<SubscriptionRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_update_confirm: Option<SubscriptionUpdateConfirmFlow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AfterCompletion {
    #[serde(rename = "type")]
    pub completion_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted_confirmation: Option<HostedConfirmationParams>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedirectParams {
    pub return_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostedConfirmationParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionRef {
    pub subscription: SubscriptionId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionCancelFlow {
    pub subscription: SubscriptionId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionParams>,
}

/// A coupon offered before cancelling: `{type: coupon_offer, coupon_offer: {coupon}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionParams {
    #[serde(rename = "type")]
    pub retention_type: String,
    pub coupon_offer: CouponOffer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouponOffer {
    pub coupon: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionUpdateConfirmFlow {
    pub subscription: SubscriptionId,
    pub items: Vec<FlowItem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<FlowDiscount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowItem {
    /// The subscription item (`si_…`).
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowDiscount {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_code: Option<String>,
}

impl FlowData {
    fn of_type(flow_type: &str) -> Self {
        Self {
            flow_type: flow_type.into(),
            after_completion: None,
            subscription_cancel: None,
            subscription_update: None,
            subscription_update_confirm: None,
        }
    }

    pub fn payment_method_update() -> Self {
        Self::of_type("payment_method_update")
    }

    /// A cancellation flow; with a coupon, the portal offers it before the user cancels.
    pub fn subscription_cancel(subscription: SubscriptionId, offer: Option<String>) -> Self {
        Self {
            subscription_cancel: Some(SubscriptionCancelFlow {
                subscription,
                retention: offer.map(|coupon| RetentionParams {
                    retention_type: "coupon_offer".into(),
                    coupon_offer: CouponOffer { coupon },
                }),
            }),
            ..Self::of_type("subscription_cancel")
        }
    }

    pub fn subscription_update(subscription: SubscriptionId) -> Self {
        Self {
            subscription_update: Some(SubscriptionRef { subscription }),
            ..Self::of_type("subscription_update")
        }
    }

    pub fn subscription_update_confirm(subscription: SubscriptionId, items: Vec<FlowItem>) -> Self {
        Self {
            subscription_update_confirm: Some(SubscriptionUpdateConfirmFlow {
                subscription,
                items,
                discounts: Vec::new(),
            }),
            ..Self::of_type("subscription_update_confirm")
        }
    }

    /// After the flow, send the customer to `return_url`.
    pub fn then_redirect(mut self, return_url: impl Into<String>) -> Self {
        self.after_completion = Some(AfterCompletion {
            completion_type: "redirect".into(),
            redirect: Some(RedirectParams {
                return_url: return_url.into(),
            }),
            hosted_confirmation: None,
        });
        self
    }

    /// After the flow, show Stripe's confirmation page, optionally with a message.
    /// After the flow, back to the portal's home page.
    pub fn then_homepage(mut self) -> Self {
        self.after_completion = Some(AfterCompletion {
            completion_type: "portal_homepage".into(),
            redirect: None,
            hosted_confirmation: None,
        });
        self
    }

    pub fn then_confirm(mut self, custom_message: Option<String>) -> Self {
        self.after_completion = Some(AfterCompletion {
            completion_type: "hosted_confirmation".into(),
            redirect: None,
            hosted_confirmation: Some(HostedConfirmationParams { custom_message }),
        });
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortalSessionParams {
    pub customer: CustomerId,
    /// `bpc_…`; Stripe's default configuration when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_data: Option<FlowData>,
}

impl PortalSessionParams {
    pub fn new(customer: CustomerId) -> Self {
        Self {
            customer,
            configuration: None,
            return_url: None,
            locale: None,
            flow_data: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortalConfigurationListParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(flatten)]
    pub page: Page,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineItemParams {
    pub price: String,
    pub quantity: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckoutSubscriptionData {
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// What the payment intent of a `payment`-mode session carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckoutPaymentIntentData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutSessionParams {
    /// `subscription`, or `payment` for a one-time (lifetime) purchase.
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    pub line_items: Vec<LineItemParams>,
    pub success_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_reference_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_promotion_codes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data: Option<CheckoutSubscriptionData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_intent_data: Option<CheckoutPaymentIntentData>,
}

impl CheckoutSessionParams {
    /// A subscription checkout for one price.
    pub fn subscription(price: impl Into<String>, success_url: impl Into<String>) -> Self {
        Self::of_mode("subscription", price, success_url)
    }

    /// A one-time payment for one price (of type `one_time`).
    pub fn payment(price: impl Into<String>, success_url: impl Into<String>) -> Self {
        Self::of_mode("payment", price, success_url)
    }

    fn of_mode(mode: &str, price: impl Into<String>, success_url: impl Into<String>) -> Self {
        Self {
            mode: mode.into(),
            customer: None,
            line_items: vec![LineItemParams {
                price: price.into(),
                quantity: 1,
            }],
            success_url: success_url.into(),
            cancel_url: None,
            client_reference_id: None,
            allow_promotion_codes: None,
            locale: None,
            metadata: Metadata::new(),
            subscription_data: None,
            payment_intent_data: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PriceListParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(flatten)]
    pub page: Page,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expand: Vec<String>,
}

/// A page of the account's customers, newest first, optionally only those created at or after
/// `created_since` (epoch seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CustomerListParams {
    #[serde(rename = "created[gte]", skip_serializing_if = "Option::is_none")]
    pub created_since: Option<i64>,
    #[serde(flatten)]
    pub page: Page,
}

/// A page of the account's events, newest first: created at or after `created_since` and,
/// when `types` is not empty, of one of those exact types (Stripe takes up to 20).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventListParams {
    #[serde(rename = "created[gte]", skip_serializing_if = "Option::is_none")]
    pub created_since: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(flatten)]
    pub page: Page,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProductListParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    #[serde(flatten)]
    pub page: Page,
}

impl StripeClient {
    // --- customers -------------------------------------------------------------------------

    /// Creates a customer. Pass a key derived from the user (e.g. `portico-customer-{user}`)
    /// so a retried sign-up can never create two customers within Stripe's 24 h key window.
    pub async fn create_customer(
        &self,
        params: &CustomerCreateParams,
        idempotency_key: Option<&str>,
    ) -> Result<Customer> {
        let request = StripeRequest::new(CUSTOMER_CREATE)
            .params(self::params(params)?)
            .idempotency_key(idempotency_key);
        self.send(request).await
    }

    /// The customer; a deleted one is [`StripeClientError::Deleted`], a missing one
    /// [`StripeClientError::is_not_found`].
    pub async fn retrieve_customer(&self, id: &CustomerId, expand: &[&str]) -> Result<Customer> {
        let request = StripeRequest::new(CUSTOMER_RETRIEVE)
            .arg(id.as_str())
            .params(self::expand(expand));
        let customer: Customer = self.send(request).await?;
        if customer.deleted {
            return Err(StripeClientError::Deleted {
                object: "customer",
                id: id.to_string(),
            });
        }
        Ok(customer)
    }

    pub async fn update_customer(
        &self,
        id: &CustomerId,
        params: &CustomerUpdateParams,
    ) -> Result<Customer> {
        let request = StripeRequest::new(CUSTOMER_UPDATE)
            .arg(id.as_str())
            .params(self::params(params)?);
        self.send(request).await
    }

    /// Deletes the customer for good (Stripe cancels its subscriptions at once). Deleting it
    /// again is a 404 ([`StripeClientError::is_not_found`]).
    pub async fn delete_customer(&self, id: &CustomerId) -> Result<Customer> {
        self.send(StripeRequest::new(CUSTOMER_DELETE).arg(id.as_str()))
            .await
    }

    /// Customers whose email is exactly `email` (case-sensitive, strongly consistent).
    pub async fn list_customers_by_email(&self, email: &str, page: Page) -> Result<List<Customer>> {
        let request = StripeRequest::new(CUSTOMER_LIST)
            .params(Params::new().set("email", email))
            .params(self::params(&page)?);
        self.send(request).await
    }

    /// The account's customers (deleted ones are not listed), newest first.
    pub async fn list_customers(&self, params: &CustomerListParams) -> Result<List<Customer>> {
        let request = StripeRequest::new(CUSTOMER_LIST).params(self::params(params)?);
        self.send(request).await
    }

    /// Search with Stripe's query language; eventually consistent (up to an hour behind).
    pub async fn search_customers(
        &self,
        query: &str,
        page: Option<&str>,
    ) -> Result<SearchResult<Customer>> {
        let request = StripeRequest::new(CUSTOMER_SEARCH).params(
            Params::new()
                .set("query", query)
                .set("limit", 100u32)
                .set_opt("page", page),
        );
        self.send(request).await
    }

    // --- payment methods -------------------------------------------------------------------

    /// The customer's payment methods of every type (cards, bank accounts, Link, ...).
    pub async fn list_customer_payment_methods(
        &self,
        customer: &CustomerId,
        page: Page,
    ) -> Result<List<PaymentMethod>> {
        let request = StripeRequest::new(CUSTOMER_PAYMENT_METHODS)
            .arg(customer.as_str())
            .params(self::params(&page)?);
        self.send(request).await
    }

    pub async fn retrieve_payment_method(&self, id: &str) -> Result<PaymentMethod> {
        self.send(StripeRequest::new(PAYMENT_METHOD_RETRIEVE).arg(id))
            .await
    }

    // --- subscriptions ---------------------------------------------------------------------

    pub async fn list_subscriptions(
        &self,
        params: &SubscriptionListParams,
    ) -> Result<List<Subscription>> {
        let request = StripeRequest::new(SUBSCRIPTION_LIST).params(self::params(params)?);
        self.send(request).await
    }

    pub async fn retrieve_subscription(
        &self,
        id: &SubscriptionId,
        expand: &[&str],
    ) -> Result<Subscription> {
        let request = StripeRequest::new(SUBSCRIPTION_RETRIEVE)
            .arg(id.as_str())
            .params(self::expand(expand));
        self.send(request).await
    }

    pub async fn update_subscription(
        &self,
        id: &SubscriptionId,
        params: &SubscriptionUpdateParams,
        idempotency_key: Option<&str>,
    ) -> Result<Subscription> {
        let request = StripeRequest::new(SUBSCRIPTION_UPDATE)
            .arg(id.as_str())
            .params(self::params(params)?)
            .idempotency_key(idempotency_key);
        self.send(request).await
    }

    /// Cancels immediately (`DELETE`); for "at period end" use
    /// [`StripeClient::update_subscription`] with `cancel_at_period_end`.
    pub async fn cancel_subscription(
        &self,
        id: &SubscriptionId,
        params: &SubscriptionCancelParams,
    ) -> Result<Subscription> {
        let request = StripeRequest::new(SUBSCRIPTION_CANCEL)
            .arg(id.as_str())
            .params(self::params(params)?);
        self.send(request).await
    }

    // --- invoices --------------------------------------------------------------------------

    pub async fn list_invoices(&self, params: &InvoiceListParams) -> Result<List<Invoice>> {
        let request = StripeRequest::new(INVOICE_LIST).params(self::params(params)?);
        self.send(request).await
    }

    /// The invoice Stripe would issue for the change described (nothing changes).
    pub async fn preview_invoice(&self, params: &InvoicePreviewParams) -> Result<Invoice> {
        let request = StripeRequest::new(INVOICE_CREATE_PREVIEW).params(self::params(params)?);
        self.send(request).await
    }

    // --- billing portal --------------------------------------------------------------------

    pub async fn create_portal_session(
        &self,
        params: &PortalSessionParams,
        idempotency_key: Option<&str>,
    ) -> Result<PortalSession> {
        let request = StripeRequest::new(PORTAL_SESSION_CREATE)
            .params(self::params(params)?)
            .idempotency_key(idempotency_key);
        self.send(request).await
    }

    pub async fn list_portal_configurations(
        &self,
        params: &PortalConfigurationListParams,
    ) -> Result<List<PortalConfiguration>> {
        let request = StripeRequest::new(PORTAL_CONFIGURATION_LIST).params(self::params(params)?);
        self.send(request).await
    }

    pub async fn retrieve_portal_configuration(&self, id: &str) -> Result<PortalConfiguration> {
        self.send(StripeRequest::new(PORTAL_CONFIGURATION_RETRIEVE).arg(id))
            .await
    }

    /// Creates a configuration from a JSON tree (validated by the admin API); keys outside the
    /// catalogue are refused with [`StripeClientError::InvalidRequest`].
    pub async fn create_portal_configuration(
        &self,
        params: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<PortalConfiguration> {
        let request = StripeRequest::new(PORTAL_CONFIGURATION_CREATE)
            .params(Params::from_json(params))
            .idempotency_key(idempotency_key);
        self.send(request).await
    }

    pub async fn update_portal_configuration(
        &self,
        id: &str,
        params: &Value,
    ) -> Result<PortalConfiguration> {
        let request = StripeRequest::new(PORTAL_CONFIGURATION_UPDATE)
            .arg(id)
            .params(Params::from_json(params));
        self.send(request).await
    }

    // --- checkout --------------------------------------------------------------------------

    pub async fn create_checkout_session(
        &self,
        params: &CheckoutSessionParams,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutSession> {
        let request = StripeRequest::new(CHECKOUT_SESSION_CREATE)
            .params(self::params(params)?)
            .idempotency_key(idempotency_key);
        self.send(request).await
    }

    pub async fn retrieve_checkout_session(&self, id: &str) -> Result<CheckoutSession> {
        self.send(StripeRequest::new(CHECKOUT_SESSION_RETRIEVE).arg(id))
            .await
    }

    /// Expires an open session so it can no longer be paid (Stripe refuses any other status).
    pub async fn expire_checkout_session(&self, id: &str) -> Result<CheckoutSession> {
        self.send(StripeRequest::new(CHECKOUT_SESSION_EXPIRE).arg(id))
            .await
    }

    // --- payments ----------------------------------------------------------------------

    /// The customer's payment intents, newest first, each with its latest charge (refunds).
    pub async fn list_payment_intents(
        &self,
        customer: &CustomerId,
        page: Page,
    ) -> Result<List<PaymentIntent>> {
        let request = StripeRequest::new(PAYMENT_INTENT_LIST)
            .params(Params::new().set("customer", customer.as_str()))
            .params(self::params(&page)?)
            .params(self::expand(&["data.latest_charge"]));
        self.send(request).await
    }

    pub async fn retrieve_coupon(&self, id: &str) -> Result<Coupon> {
        self.send(StripeRequest::new(COUPON_RETRIEVE).arg(id)).await
    }

    // --- events, prices, products ----------------------------------------------------------

    pub async fn retrieve_event(&self, id: &str) -> Result<Event> {
        self.send(StripeRequest::new(EVENT_RETRIEVE).arg(id)).await
    }

    /// Events of the last 30 days (Stripe keeps no older ones), newest first.
    pub async fn list_events(&self, params: &EventListParams) -> Result<List<Event>> {
        let request = StripeRequest::new(EVENT_LIST).params(self::params(params)?);
        self.send(request).await
    }

    pub async fn retrieve_price(&self, id: &str, expand: &[&str]) -> Result<Price> {
        let request = StripeRequest::new(PRICE_RETRIEVE)
            .arg(id)
            .params(self::expand(expand));
        self.send(request).await
    }

    pub async fn list_prices(&self, params: &PriceListParams) -> Result<List<Price>> {
        self.send(StripeRequest::new(PRICE_LIST).params(self::params(params)?))
            .await
    }

    pub async fn retrieve_product(&self, id: &str) -> Result<Product> {
        self.send(StripeRequest::new(PRODUCT_RETRIEVE).arg(id))
            .await
    }

    pub async fn list_products(&self, params: &ProductListParams) -> Result<List<Product>> {
        self.send(StripeRequest::new(PRODUCT_LIST).params(self::params(params)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> SubscriptionId {
        SubscriptionId::parse("sub_1").unwrap()
    }

    #[test]
    fn portal_session_with_a_confirm_flow_and_redirect_encodes_fully() {
        let mut p = PortalSessionParams::new(CustomerId::parse("cus_1").unwrap());
        p.return_url = Some("https://app.test/billing".into());
        p.flow_data = Some(
            FlowData::subscription_update_confirm(
                sub(),
                vec![FlowItem {
                    id: "si_1".into(),
                    price: Some("price_2".into()),
                    quantity: Some(1),
                }],
            )
            .then_redirect("https://app.test/done"),
        );
        let encoded = params(&p).unwrap();
        let keys: Vec<_> = encoded.keys().collect();
        for key in &keys {
            assert!(PORTAL_SESSION_CREATE.allows(key), "{key}");
        }
        assert_eq!(
            encoded.encode(),
            "customer=cus_1&flow_data[after_completion][redirect][return_url]=https%3A%2F%2Fapp.test%2Fdone&\
             flow_data[after_completion][type]=redirect&\
             flow_data[subscription_update_confirm][items][0][id]=si_1&\
             flow_data[subscription_update_confirm][items][0][price]=price_2&\
             flow_data[subscription_update_confirm][items][0][quantity]=1&\
             flow_data[subscription_update_confirm][subscription]=sub_1&\
             flow_data[type]=subscription_update_confirm&return_url=https%3A%2F%2Fapp.test%2Fbilling"
        );
    }

    #[test]
    fn cancel_flow_with_hosted_confirmation() {
        let flow = FlowData::subscription_cancel(sub(), None).then_confirm(Some("Bye".into()));
        let encoded = params(&flow).unwrap().encode();
        assert_eq!(
            encoded,
            "after_completion[hosted_confirmation][custom_message]=Bye&\
             after_completion[type]=hosted_confirmation&\
             subscription_cancel[subscription]=sub_1&type=subscription_cancel"
        );
    }

    #[test]
    fn subscription_update_sends_only_what_is_set() {
        let p = SubscriptionUpdateParams {
            cancel_at_period_end: Some(true),
            cancellation_details: Some(CancellationDetailsParams {
                comment: None,
                feedback: Some("too_expensive".into()),
            }),
            metadata: Metadata::from([("old".to_string(), String::new())]),
            ..Default::default()
        };
        assert_eq!(
            params(&p).unwrap().encode(),
            "cancel_at_period_end=true&cancellation_details[feedback]=too_expensive&metadata[old]="
        );
    }

    #[test]
    fn list_params_flatten_the_page_and_index_expand() {
        let mut p = SubscriptionListParams::all_for(&CustomerId::parse("cus_1").unwrap());
        p.page = Page::full(Some("sub_9".into()));
        assert_eq!(
            params(&p).unwrap().encode(),
            "customer=cus_1&expand[0]=data.items.data.price&expand[1]=data.schedule&expand[2]=data.discounts.source.coupon&limit=100&starting_after=sub_9&status=all"
        );
    }

    #[test]
    fn checkout_session_params_cover_metadata_and_subscription_data() {
        let mut p = CheckoutSessionParams::subscription("price_1", "https://app.test/ok");
        p.client_reference_id = Some("user-1".into());
        p.subscription_data = Some(CheckoutSubscriptionData {
            metadata: Metadata::from([("portico_user".to_string(), "user-1".to_string())]),
        });
        let encoded = params(&p).unwrap();
        for key in encoded.keys() {
            assert!(CHECKOUT_SESSION_CREATE.allows(key), "{key}");
        }
        assert_eq!(encoded.get("line_items[0][price]"), Some("price_1"));
        assert_eq!(
            encoded.get("subscription_data[metadata][portico_user]"),
            Some("user-1")
        );
    }
}
