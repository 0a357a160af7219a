//! The deep-link workflows the SPA opens the portal with.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
