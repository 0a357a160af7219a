//! Every request the client can make, described once: method, path template and the parameter
//! names it may send. Endpoint methods build their requests from these shapes and the client
//! refuses any parameter not listed, so the conformance test over [`request_catalogue`] covers
//! everything that can reach Stripe.
//!
//! Names are full bracket paths; `[]` stands for a list position (`items[0]` → `items[]`) and
//! a trailing `[*]` for any key of a map (`metadata[*]`).

use super::encode::normalize_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
        }
    }

    /// GET and DELETE carry their parameters in the query string, POST in a form body.
    pub fn uses_query(self) -> bool {
        !matches!(self, HttpMethod::Post)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestShape {
    /// A stable name for logs and tests, e.g. `customers.create`.
    pub name: &'static str,
    pub method: HttpMethod,
    /// Path template with `{name}` placeholders, as in Stripe's OpenAPI spec.
    pub path: &'static str,
    pub params: &'static [&'static str],
}

impl RequestShape {
    /// Is `key` (as sent, e.g. `items[0][price]` or `metadata[user]`) one this request declares?
    pub fn allows(&self, key: &str) -> bool {
        let normalized = normalize_key(key);
        self.params
            .iter()
            .any(|declared| match declared.strip_suffix("[*]") {
                Some(map) => {
                    let map = map.to_string();
                    key_is_map_entry(key, &map) || key_is_map_entry(&normalized, &map)
                }
                None => *declared == normalized,
            })
    }

    /// Names of the `{placeholders}` in the path template.
    pub fn path_params(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }
}

/// `metadata[anything]` with exactly one segment after `map`.
fn key_is_map_entry(key: &str, map: &str) -> bool {
    key.strip_prefix(map)
        .and_then(|rest| rest.strip_prefix('['))
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|inner| !inner.contains('[') && !inner.contains(']'))
}

const fn shape(
    name: &'static str,
    method: HttpMethod,
    path: &'static str,
    params: &'static [&'static str],
) -> RequestShape {
    RequestShape {
        name,
        method,
        path,
        params,
    }
}

use HttpMethod::{Delete, Get, Post};

pub const CUSTOMER_CREATE: RequestShape = shape(
    "customers.create",
    Post,
    "/v1/customers",
    &[
        "email",
        "name",
        "phone",
        "description",
        "preferred_locales[]",
        "address[line1]",
        "address[line2]",
        "address[city]",
        "address[state]",
        "address[postal_code]",
        "address[country]",
        "metadata[*]",
        "expand[]",
    ],
);

pub const CUSTOMER_RETRIEVE: RequestShape = shape(
    "customers.retrieve",
    Get,
    "/v1/customers/{customer}",
    &["expand[]"],
);

pub const CUSTOMER_UPDATE: RequestShape = shape(
    "customers.update",
    Post,
    "/v1/customers/{customer}",
    &[
        "email",
        "name",
        "phone",
        "description",
        "preferred_locales[]",
        "address",
        "address[line1]",
        "address[line2]",
        "address[city]",
        "address[state]",
        "address[postal_code]",
        "address[country]",
        "invoice_settings[default_payment_method]",
        "metadata",
        "metadata[*]",
        "expand[]",
    ],
);

pub const CUSTOMER_DELETE: RequestShape =
    shape("customers.delete", Delete, "/v1/customers/{customer}", &[]);

pub const CUSTOMER_LIST: RequestShape = shape(
    "customers.list",
    Get,
    "/v1/customers",
    &[
        "email",
        "created[gte]",
        "limit",
        "starting_after",
        "expand[]",
    ],
);

pub const CUSTOMER_SEARCH: RequestShape = shape(
    "customers.search",
    Get,
    "/v1/customers/search",
    &["query", "limit", "page", "expand[]"],
);

pub const CUSTOMER_PAYMENT_METHODS: RequestShape = shape(
    "customers.payment_methods.list",
    Get,
    "/v1/customers/{customer}/payment_methods",
    &["type", "limit", "starting_after", "expand[]"],
);

pub const PAYMENT_METHOD_RETRIEVE: RequestShape = shape(
    "payment_methods.retrieve",
    Get,
    "/v1/payment_methods/{payment_method}",
    &["expand[]"],
);

pub const SUBSCRIPTION_LIST: RequestShape = shape(
    "subscriptions.list",
    Get,
    "/v1/subscriptions",
    &[
        "customer",
        "status",
        "price",
        "limit",
        "starting_after",
        "expand[]",
    ],
);

pub const SUBSCRIPTION_RETRIEVE: RequestShape = shape(
    "subscriptions.retrieve",
    Get,
    "/v1/subscriptions/{subscription_exposed_id}",
    &["expand[]"],
);

pub const SUBSCRIPTION_UPDATE: RequestShape = shape(
    "subscriptions.update",
    Post,
    "/v1/subscriptions/{subscription_exposed_id}",
    &[
        "cancel_at_period_end",
        "cancel_at",
        "cancellation_details[comment]",
        "cancellation_details[feedback]",
        "default_payment_method",
        "items[][id]",
        "items[][price]",
        "items[][quantity]",
        "items[][deleted]",
        "proration_behavior",
        "metadata",
        "metadata[*]",
        "expand[]",
    ],
);

pub const SUBSCRIPTION_CANCEL: RequestShape = shape(
    "subscriptions.cancel",
    Delete,
    "/v1/subscriptions/{subscription_exposed_id}",
    &[
        "invoice_now",
        "prorate",
        "cancellation_details[comment]",
        "cancellation_details[feedback]",
        "expand[]",
    ],
);

pub const INVOICE_LIST: RequestShape = shape(
    "invoices.list",
    Get,
    "/v1/invoices",
    &[
        "customer",
        "subscription",
        "status",
        "limit",
        "starting_after",
        "expand[]",
    ],
);

/// Since 2025-03-31 the preview of a subscription change (it replaced `GET /v1/invoices/upcoming`).
pub const INVOICE_CREATE_PREVIEW: RequestShape = shape(
    "invoices.create_preview",
    Post,
    "/v1/invoices/create_preview",
    &[
        "customer",
        "subscription",
        "subscription_details[items][][id]",
        "subscription_details[items][][price]",
        "subscription_details[items][][quantity]",
        "subscription_details[proration_behavior]",
        "subscription_details[proration_date]",
        "expand[]",
    ],
);

pub const PORTAL_SESSION_CREATE: RequestShape = shape(
    "billing_portal.sessions.create",
    Post,
    "/v1/billing_portal/sessions",
    &[
        "customer",
        "configuration",
        "return_url",
        "locale",
        "flow_data[type]",
        "flow_data[after_completion][type]",
        "flow_data[after_completion][redirect][return_url]",
        "flow_data[after_completion][hosted_confirmation][custom_message]",
        "flow_data[subscription_cancel][subscription]",
        "flow_data[subscription_cancel][retention][type]",
        "flow_data[subscription_cancel][retention][coupon_offer][coupon]",
        "flow_data[subscription_update][subscription]",
        "flow_data[subscription_update_confirm][subscription]",
        "flow_data[subscription_update_confirm][items][][id]",
        "flow_data[subscription_update_confirm][items][][price]",
        "flow_data[subscription_update_confirm][items][][quantity]",
        "flow_data[subscription_update_confirm][discounts][][coupon]",
        "flow_data[subscription_update_confirm][discounts][][promotion_code]",
        "expand[]",
    ],
);

pub const PORTAL_CONFIGURATION_LIST: RequestShape = shape(
    "billing_portal.configurations.list",
    Get,
    "/v1/billing_portal/configurations",
    &[
        "active",
        "is_default",
        "limit",
        "starting_after",
        "expand[]",
    ],
);

pub const PORTAL_CONFIGURATION_RETRIEVE: RequestShape = shape(
    "billing_portal.configurations.retrieve",
    Get,
    "/v1/billing_portal/configurations/{configuration}",
    &["expand[]"],
);

/// Parameters shared by configuration create and update (update adds `active`).
macro_rules! portal_configuration_params {
    ($($extra:literal),*) => {
        &[
            $($extra,)*
            "business_profile[headline]",
            "business_profile[privacy_policy_url]",
            "business_profile[terms_of_service_url]",
            "default_return_url",
            "features[customer_update][enabled]",
            "features[customer_update][allowed_updates]",
            "features[customer_update][allowed_updates][]",
            "features[invoice_history][enabled]",
            "features[payment_method_update][enabled]",
            "features[payment_method_update][payment_method_configuration]",
            "features[subscription_cancel][enabled]",
            "features[subscription_cancel][mode]",
            "features[subscription_cancel][proration_behavior]",
            "features[subscription_cancel][cancellation_reason][enabled]",
            "features[subscription_cancel][cancellation_reason][options]",
            "features[subscription_cancel][cancellation_reason][options][]",
            "features[subscription_update][enabled]",
            "features[subscription_update][default_allowed_updates]",
            "features[subscription_update][default_allowed_updates][]",
            "features[subscription_update][proration_behavior]",
            "features[subscription_update][products]",
            "features[subscription_update][products][][product]",
            "features[subscription_update][products][][prices][]",
            "features[subscription_update][products][][adjustable_quantity][enabled]",
            "features[subscription_update][products][][adjustable_quantity][minimum]",
            "features[subscription_update][products][][adjustable_quantity][maximum]",
            "features[subscription_update][schedule_at_period_end][conditions][][type]",
            "features[subscription_update][billing_cycle_anchor]",
            "features[subscription_update][trial_update_behavior]",
            "login_page[enabled]",
            "metadata",
            "metadata[*]",
            "name",
            "expand[]",
        ]
    };
}

pub const PORTAL_CONFIGURATION_CREATE: RequestShape = shape(
    "billing_portal.configurations.create",
    Post,
    "/v1/billing_portal/configurations",
    portal_configuration_params!(),
);

pub const PORTAL_CONFIGURATION_UPDATE: RequestShape = shape(
    "billing_portal.configurations.update",
    Post,
    "/v1/billing_portal/configurations/{configuration}",
    portal_configuration_params!("active"),
);

pub const CHECKOUT_SESSION_CREATE: RequestShape = shape(
    "checkout.sessions.create",
    Post,
    "/v1/checkout/sessions",
    &[
        "mode",
        "customer",
        "line_items[][price]",
        "line_items[][quantity]",
        "success_url",
        "cancel_url",
        "client_reference_id",
        "allow_promotion_codes",
        "locale",
        "metadata[*]",
        "subscription_data[metadata][*]",
        "payment_intent_data[metadata][*]",
        "payment_intent_data[description]",
        "expand[]",
    ],
);

pub const PAYMENT_INTENT_LIST: RequestShape = shape(
    "payment_intents.list",
    Get,
    "/v1/payment_intents",
    &["customer", "limit", "starting_after", "expand[]"],
);

pub const CHECKOUT_SESSION_RETRIEVE: RequestShape = shape(
    "checkout.sessions.retrieve",
    Get,
    "/v1/checkout/sessions/{session}",
    &["expand[]"],
);

pub const CHECKOUT_SESSION_EXPIRE: RequestShape = shape(
    "checkout.sessions.expire",
    Post,
    "/v1/checkout/sessions/{session}/expire",
    &["expand[]"],
);

pub const COUPON_RETRIEVE: RequestShape = shape(
    "coupons.retrieve",
    Get,
    "/v1/coupons/{coupon}",
    &["expand[]"],
);

pub const EVENT_RETRIEVE: RequestShape =
    shape("events.retrieve", Get, "/v1/events/{id}", &["expand[]"]);

pub const EVENT_LIST: RequestShape = shape(
    "events.list",
    Get,
    "/v1/events",
    &[
        "types[]",
        "created[gte]",
        "limit",
        "starting_after",
        "expand[]",
    ],
);

pub const PRICE_RETRIEVE: RequestShape =
    shape("prices.retrieve", Get, "/v1/prices/{price}", &["expand[]"]);

pub const PRICE_LIST: RequestShape = shape(
    "prices.list",
    Get,
    "/v1/prices",
    &["active", "product", "limit", "starting_after", "expand[]"],
);

pub const PRODUCT_RETRIEVE: RequestShape =
    shape("products.retrieve", Get, "/v1/products/{id}", &["expand[]"]);

pub const PRODUCT_LIST: RequestShape = shape(
    "products.list",
    Get,
    "/v1/products",
    &["active", "ids[]", "limit", "starting_after", "expand[]"],
);

/// Every request the client can make.
pub fn request_catalogue() -> Vec<RequestShape> {
    vec![
        CUSTOMER_CREATE,
        CUSTOMER_RETRIEVE,
        CUSTOMER_UPDATE,
        CUSTOMER_DELETE,
        CUSTOMER_LIST,
        CUSTOMER_SEARCH,
        CUSTOMER_PAYMENT_METHODS,
        PAYMENT_METHOD_RETRIEVE,
        SUBSCRIPTION_LIST,
        SUBSCRIPTION_RETRIEVE,
        SUBSCRIPTION_UPDATE,
        SUBSCRIPTION_CANCEL,
        INVOICE_LIST,
        INVOICE_CREATE_PREVIEW,
        PORTAL_SESSION_CREATE,
        PORTAL_CONFIGURATION_LIST,
        PORTAL_CONFIGURATION_RETRIEVE,
        PORTAL_CONFIGURATION_CREATE,
        PORTAL_CONFIGURATION_UPDATE,
        CHECKOUT_SESSION_CREATE,
        CHECKOUT_SESSION_RETRIEVE,
        CHECKOUT_SESSION_EXPIRE,
        PAYMENT_INTENT_LIST,
        COUPON_RETRIEVE,
        EVENT_RETRIEVE,
        EVENT_LIST,
        PRICE_RETRIEVE,
        PRICE_LIST,
        PRODUCT_RETRIEVE,
        PRODUCT_LIST,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_allow_declared_keys_lists_and_map_entries() {
        assert!(SUBSCRIPTION_UPDATE.allows("items[0][price]"));
        assert!(SUBSCRIPTION_UPDATE.allows("metadata[portico_user]"));
        assert!(SUBSCRIPTION_UPDATE.allows("metadata[0]"));
        assert!(SUBSCRIPTION_UPDATE.allows("metadata"));
        assert!(!SUBSCRIPTION_UPDATE.allows("metadata[a][b]"));
        assert!(!SUBSCRIPTION_UPDATE.allows("items[0][plan]"));
        assert!(!CUSTOMER_CREATE.allows("metadata"));
        assert!(
            PORTAL_SESSION_CREATE.allows("flow_data[subscription_update_confirm][items][0][price]")
        );
        assert!(CHECKOUT_SESSION_CREATE.allows("subscription_data[metadata][user]"));
    }

    #[test]
    fn names_are_unique_and_paths_have_placeholders_parsed() {
        let catalogue = request_catalogue();
        let mut names: Vec<_> = catalogue.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), catalogue.len());
        assert_eq!(CUSTOMER_PAYMENT_METHODS.path_params(), vec!["customer"]);
        assert!(CUSTOMER_LIST.path_params().is_empty());
    }
}
