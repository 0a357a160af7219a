//! Portal configurations as admins write them: typed so that anything Stripe would refuse, and
//! anything Portico would not want, fails before Stripe is called, with the field named.
//!
//! One shape serves create and update: on update every part is optional (Stripe merges), on
//! create [`ConfigurationSpec::check_create`] asks for what Stripe requires.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::PortalAdminError;
use crate::portal::fields::{BusinessProfile, Text, WebUrl};

/// The body of `POST /portal/configurations` (create) and `POST /portal/configurations/{id}`
/// (partial update; only there may `active` appear).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<256>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_profile: Option<BusinessProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_return_url: Option<WebUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_page: Option<Enabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_update: Option<CustomerUpdate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_history: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method_update: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_cancel: Option<SubscriptionCancel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_update: Option<SubscriptionUpdate>,
}

/// A feature with nothing but its switch (optional on update).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerField {
    Address,
    Email,
    Name,
    Phone,
    Shipping,
    TaxId,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "list_or_empty"
    )]
    pub allowed_updates: Option<Vec<CustomerField>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelMode {
    AtPeriodEnd,
    Immediately,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProrationBehavior {
    AlwaysInvoice,
    CreateProrations,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReasonOption {
    CustomerService,
    LowQuality,
    MissingFeatures,
    Other,
    SwitchedService,
    TooComplex,
    TooExpensive,
    Unused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancellationReason {
    pub enabled: bool,
    #[serde(serialize_with = "vec_or_empty")]
    pub options: Vec<CancellationReasonOption>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionCancel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CancelMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proration_behavior: Option<ProrationBehavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<CancellationReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllowedUpdate {
    Price,
    PromotionCode,
    Quantity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductPrices {
    pub product: StripeRef<'p'>,
    pub prices: Vec<StripeRef<'r'>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleCondition {
    DecreasingItemAmount,
    ShorteningInterval,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionType {
    #[serde(rename = "type")]
    pub condition: ScheduleCondition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleAtPeriodEnd {
    pub conditions: Vec<ConditionType>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "list_or_empty"
    )]
    pub default_allowed_updates: Option<Vec<AllowedUpdate>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "list_or_empty"
    )]
    pub products: Option<Vec<ProductPrices>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proration_behavior: Option<ProrationBehavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_at_period_end: Option<ScheduleAtPeriodEnd>,
}

/// A Stripe product (`prod_…`, `'p'`) or price (`price_…`, `'r'`) id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StripeRef<const KIND: char>(String);

impl<const KIND: char> TryFrom<String> for StripeRef<KIND> {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let prefix = if KIND == 'p' { "prod_" } else { "price_" };
        let tail_ok = value.strip_prefix(prefix).is_some_and(|tail| {
            !tail.is_empty()
                && tail.len() <= 250
                && tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if tail_ok {
            Ok(StripeRef(value))
        } else {
            Err(format!(
                "`{value}` is not a Stripe id starting with {prefix}"
            ))
        }
    }
}

impl<const KIND: char> From<StripeRef<KIND>> for String {
    fn from(id: StripeRef<KIND>) -> String {
        id.0
    }
}

/// Stripe's metadata rules: at most 50 keys of up to 40 characters, values up to 500.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Metadata(BTreeMap<String, String>);

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = String;
    fn try_from(map: BTreeMap<String, String>) -> Result<Self, String> {
        if map.len() > 50 {
            return Err("may have at most 50 keys".into());
        }
        for (key, value) in &map {
            if key.is_empty() || key.chars().count() > 40 || key.contains(['[', ']']) {
                return Err(format!(
                    "key `{key}` must be 1-40 characters without square brackets"
                ));
            }
            if value.chars().count() > 500 {
                return Err(format!("value of `{key}` must be at most 500 characters"));
            }
        }
        Ok(Metadata(map))
    }
}

impl From<Metadata> for BTreeMap<String, String> {
    fn from(metadata: Metadata) -> Self {
        metadata.0
    }
}

impl Metadata {
    pub fn insert(&mut self, key: &str, value: &str) {
        self.0.insert(key.into(), value.into());
    }
}

/// Stripe clears a list with an empty string, not with an empty list.
fn list_or_empty<T: Serialize, S: Serializer>(
    list: &Option<Vec<T>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match list {
        Some(items) => vec_or_empty(items, serializer),
        None => serializer.serialize_none(),
    }
}

fn vec_or_empty<T: Serialize, S: Serializer>(
    items: &[T],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if items.is_empty() {
        serializer.serialize_str("")
    } else {
        items.serialize(serializer)
    }
}

fn invalid(field: &str, message: impl Into<String>) -> PortalAdminError {
    PortalAdminError::InvalidField {
        field: field.to_string(),
        message: message.into(),
    }
}

impl ConfigurationSpec {
    /// What Stripe requires of a new configuration, and what makes no sense in any.
    pub fn check_create(&self) -> Result<(), PortalAdminError> {
        if self.active.is_some() {
            return Err(invalid(
                "active",
                "a new configuration is always active; deactivate it with an update",
            ));
        }
        let features = self
            .features
            .as_ref()
            .filter(|f| **f != Features::default())
            .ok_or_else(|| {
                invalid(
                    "features",
                    "features is required: name at least one portal feature",
                )
            })?;
        let enabled = |given: Option<bool>, name: &str| {
            given
                .map(|_| ())
                .ok_or_else(|| invalid(&format!("features.{name}.enabled"), "enabled is required"))
        };
        if let Some(f) = &features.customer_update {
            enabled(f.enabled, "customer_update")?;
        }
        if let Some(f) = &features.invoice_history {
            enabled(f.enabled, "invoice_history")?;
        }
        if let Some(f) = &features.payment_method_update {
            enabled(f.enabled, "payment_method_update")?;
        }
        if let Some(f) = &features.subscription_cancel {
            enabled(f.enabled, "subscription_cancel")?;
        }
        if let Some(f) = &features.subscription_update {
            enabled(f.enabled, "subscription_update")?;
            if f.enabled == Some(true) {
                if f.products.as_ref().is_none_or(Vec::is_empty) {
                    return Err(invalid(
                        "features.subscription_update.products",
                        "name the products and prices customers may switch between",
                    ));
                }
                if f.default_allowed_updates.as_ref().is_none_or(Vec::is_empty) {
                    return Err(invalid(
                        "features.subscription_update.default_allowed_updates",
                        "say what customers may update: price, quantity, promotion_code",
                    ));
                }
            }
        }
        self.check_rules(true)
    }

    /// What makes no sense in an update.
    pub fn check_update(&self) -> Result<(), PortalAdminError> {
        // Empty objects encode to nothing: `{"features": {}}` asks Stripe for no change either.
        if crate::stripe::Params::from_json(&self.to_stripe_params()?).is_empty() {
            return Err(invalid(".", "the body names nothing to change"));
        }
        self.check_rules(false)
    }

    /// Rules that hold for create and update alike (`creating`: Stripe's defaults apply to
    /// what the body leaves out).
    fn check_rules(&self, creating: bool) -> Result<(), PortalAdminError> {
        let Some(features) = &self.features else {
            return Ok(());
        };
        if let Some(cancel) = &features.subscription_cancel {
            // Stripe prorates a cancellation only when it takes effect at once. An update that
            // leaves `mode` out keeps the stored one, which only Stripe knows.
            let mode = cancel.mode.or(creating.then_some(CancelMode::AtPeriodEnd));
            if cancel.proration_behavior == Some(ProrationBehavior::CreateProrations)
                && mode == Some(CancelMode::AtPeriodEnd)
            {
                return Err(invalid(
                    "features.subscription_cancel.proration_behavior",
                    "create_prorations needs mode immediately",
                ));
            }
            if let Some(reason) = &cancel.cancellation_reason {
                if reason.enabled && reason.options.is_empty() {
                    return Err(invalid(
                        "features.subscription_cancel.cancellation_reason.options",
                        "list at least one reason customers can choose",
                    ));
                }
            }
        }
        if let Some(products) = features
            .subscription_update
            .as_ref()
            .and_then(|u| u.products.as_ref())
        {
            for (i, product) in products.iter().enumerate() {
                if product.prices.is_empty() {
                    return Err(invalid(
                        &format!("features.subscription_update.products[{i}].prices"),
                        "list at least one price of the product",
                    ));
                }
                if products[..i].iter().any(|p| p.product == product.product) {
                    return Err(invalid(
                        &format!("features.subscription_update.products[{i}].product"),
                        "each product may appear once",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The form Stripe takes, as a JSON tree for the client's encoder.
    pub fn to_stripe_params(&self) -> Result<Value, PortalAdminError> {
        serde_json::to_value(self).map_err(|e| PortalAdminError::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<ConfigurationSpec, String> {
        let text = body.to_string();
        let mut de = serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| e.path().to_string())
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                json!({"features": {"subscription_cancel": {"enabled": true, "mode": "sometime"}}}),
                "features.subscription_cancel.mode",
            ),
            (
                json!({"business_profile": {"headline": "x".repeat(61)}, "features": {}}),
                "business_profile.headline",
            ),
            (
                json!({"business_profile": {"privacy_policy_url": "ftp://x"}, "features": {}}),
                "business_profile.privacy_policy_url",
            ),
            (
                json!({"features": {"customer_update": {"enabled": true, "allowed_updates": ["shoe_size"]}}}),
                "features.customer_update.allowed_updates[0]",
            ),
            (
                json!({"features": {"subscription_update": {"enabled": true, "products": [{"product": "price_x", "prices": []}]}}}),
                "features.subscription_update.products[0].product",
            ),
            (json!({"features": {}, "colour": "red"}), "colour"),
        ];
        for (body, field) in cases {
            assert_eq!(parse(body.clone()).unwrap_err(), field, "{body}");
        }
    }

    #[test]
    fn create_checks_name_the_missing_or_contradictory_field() {
        let check = |body: Value| match parse(body).unwrap().check_create() {
            Err(PortalAdminError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(check(json!({"name": "x"})), "features");
        assert_eq!(
            check(json!({"features": {"invoice_history": {}}})),
            "features.invoice_history.enabled"
        );
        assert_eq!(
            check(
                json!({"features": {"subscription_cancel": {"enabled": true, "proration_behavior": "create_prorations"}}})
            ),
            "features.subscription_cancel.proration_behavior"
        );
        assert_eq!(
            check(
                json!({"features": {"subscription_update": {"enabled": true, "default_allowed_updates": ["price"]}}})
            ),
            "features.subscription_update.products"
        );
        assert_eq!(check(json!({"active": false, "features": {}})), "active");
        assert_eq!(check(json!({"features": {}})), "features");
        let update = |body: Value| parse(body).unwrap().check_update();
        assert!(matches!(
            update(json!({"features": {}})),
            Err(PortalAdminError::InvalidField { field, .. }) if field == "."
        ));
        // Without `mode`, the stored one decides: Stripe's to judge, not refused here.
        assert!(update(json!({"features": {"subscription_cancel": {"proration_behavior": "create_prorations"}}})).is_ok());
        assert!(update(json!({"features": {"subscription_cancel": {"mode": "at_period_end", "proration_behavior": "create_prorations"}}})).is_err());
    }

    #[test]
    fn stripe_params_clear_lists_with_empty_strings_and_skip_absent_parts() {
        let spec = parse(json!({
            "name": "Basic",
            "features": {
                "customer_update": {"enabled": true, "allowed_updates": []},
                "subscription_update": {"enabled": true, "default_allowed_updates": ["price"],
                    "products": [{"product": "prod_a", "prices": ["price_a1", "price_a2"]}]}
            },
            "metadata": {"team": "billing"}
        }))
        .unwrap();
        spec.check_create().unwrap();
        let params = crate::stripe::Params::from_json(&spec.to_stripe_params().unwrap());
        assert_eq!(
            params.encode(),
            "features[customer_update][allowed_updates]=&features[customer_update][enabled]=true&\
             features[subscription_update][default_allowed_updates][0]=price&\
             features[subscription_update][enabled]=true&\
             features[subscription_update][products][0][prices][0]=price_a1&\
             features[subscription_update][products][0][prices][1]=price_a2&\
             features[subscription_update][products][0][product]=prod_a&\
             metadata[team]=billing&name=Basic"
        );
    }
}
