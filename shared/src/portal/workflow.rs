//! The deep-link workflows the SPA opens the portal with.

use serde::{Deserialize, Serialize};

use super::fields::{BusinessProfile, HexColor, ReturnPath, Text, WebUrl};
use crate::ids::{ConfigurationId, CouponId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    PaymentUpdate,
    BillingReview,
    SubscriptionManagement,
    CancellationProcess,
    ProfileUpdate,
}

impl Workflow {
    pub const ALL: [Workflow; 5] = [
        Workflow::PaymentUpdate,
        Workflow::BillingReview,
        Workflow::SubscriptionManagement,
        Workflow::CancellationProcess,
        Workflow::ProfileUpdate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Workflow::PaymentUpdate => "payment_update",
            Workflow::BillingReview => "billing_review",
            Workflow::SubscriptionManagement => "subscription_management",
            Workflow::CancellationProcess => "cancellation_process",
            Workflow::ProfileUpdate => "profile_update",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == name)
    }

    /// Where the SPA shows the outcome of each workflow, unless an admin set another path.
    pub fn default_return_path(self) -> &'static str {
        match self {
            Workflow::PaymentUpdate => "/dashboard/billing/payment-methods",
            Workflow::BillingReview => "/dashboard/billing/history",
            Workflow::SubscriptionManagement => "/dashboard/billing/subscription-updated",
            Workflow::CancellationProcess => "/dashboard/billing/cancellation-survey",
            Workflow::ProfileUpdate => "/dashboard/profile",
        }
    }
}

/// What the portal does once a deep-link flow is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterCompletion {
    /// Back to the SPA's return URL (the default).
    #[default]
    Redirect,
    /// Stripe's own confirmation page.
    HostedConfirmation,
    /// The portal's home page.
    PortalHomepage,
}

/// A workflow's look. Stripe's API cannot set the portal's logo or colours (account settings in
/// the Dashboard), so those go to the SPA with each session; `headline` and the policy URLs are
/// applied to the workflow's portal configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<Text<100>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<WebUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_color: Option<HexColor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_color: Option<HexColor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_url: Option<WebUrl>,
    /// Stripe's `business_profile.headline` (60 characters at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<Text<60>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_policy_url: Option<WebUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_url: Option<WebUrl>,
}

impl Branding {
    /// The part Stripe's API can apply: the configuration's `business_profile`.
    pub fn business_profile(&self) -> Option<serde_json::Value> {
        let profile = BusinessProfile {
            headline: self.headline.clone(),
            privacy_policy_url: self.privacy_policy_url.clone(),
            terms_of_service_url: self.terms_of_service_url.clone(),
        };
        if profile == BusinessProfile::default() {
            return None;
        }
        serde_json::to_value(profile).ok()
    }
}

/// What an admin maps a workflow to; every absent field falls back to Portico's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_id: Option<ConfigurationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_path: Option<ReturnPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_completion: Option<AfterCompletion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branding: Option<Branding>,
    /// `cancellation_process` only: the coupon offered to a user who starts cancelling
    /// (Stripe's `flow_data.subscription_cancel.retention`, type `coupon_offer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_coupon: Option<CouponId>,
}

impl WorkflowSettings {
    /// The configuration sessions open with: the workflow's own, else `default`.
    pub fn effective_configuration<'a>(&'a self, default: Option<&'a str>) -> Option<&'a str> {
        self.configuration_id
            .as_ref()
            .map(ConfigurationId::as_str)
            .or(default)
    }
}

/// Stripe's portal locales (`auto` lets Stripe pick from the customer or browser).
pub const LOCALES: &[&str] = &[
    "auto", "bg", "cs", "da", "de", "el", "en", "en-AU", "en-CA", "en-GB", "en-IE", "en-IN",
    "en-NZ", "en-SG", "es", "es-419", "et", "fi", "fil", "fr", "fr-CA", "hr", "hu", "id", "it",
    "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sl",
    "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW",
];

/// A locale Stripe's portal accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Locale(String);

impl TryFrom<String> for Locale {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if LOCALES.contains(&value.as_str()) {
            Ok(Locale(value))
        } else {
            Err(format!("unsupported locale `{value}`; use one of Stripe's portal locales, e.g. en, de, fr-CA, auto"))
        }
    }
}

impl Locale {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
