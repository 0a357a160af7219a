//! Every `error_code` Portico answers with, in one table: the stable vocabulary a client
//! branches on (the message is for people and may change). `openapi.yaml` lists, per operation,
//! the codes it can answer; a test keeps the two in step.

macro_rules! error_codes {
    ($($variant:ident => $code:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    AdminRequired => "admin_required",
    AlgorithmNotAllowed => "algorithm_not_allowed",
    AlreadyOnPrice => "already_on_price",
    AlreadyPurchased => "already_purchased",
    AlreadySubscribed => "already_subscribed",
    AuthUnavailable => "auth_unavailable",
    ConfigurationInUse => "configuration_in_use",
    ConfigurationInactive => "configuration_inactive",
    ConfigurationNotFound => "configuration_not_found",
    ConfigurationShared => "configuration_shared",
    Conflict => "conflict",
    CouponNotFound => "coupon_not_found",
    CouponNotUsable => "coupon_not_usable",
    CustomerDeleted => "customer_deleted",
    CustomerErased => "customer_erased",
    CustomerLinkedToOtherUser => "customer_linked_to_other_user",
    CustomerNotFound => "customer_not_found",
    EventInProgress => "event_in_progress",
    IdempotencyKeyRequired => "idempotency_key_required",
    IdempotencyKeyReused => "idempotency_key_reused",
    ImmediateCancelNotAllowed => "immediate_cancel_not_allowed",
    InternalError => "internal_error",
    InvalidAudience => "invalid_audience",
    InvalidBody => "invalid_body",
    InvalidCursor => "invalid_cursor",
    InvalidDate => "invalid_date",
    InvalidEvent => "invalid_event",
    InvalidField => "invalid_field",
    InvalidIdempotencyKey => "invalid_idempotency_key",
    InvalidIssuer => "invalid_issuer",
    InvalidLimit => "invalid_limit",
    InvalidPeriod => "invalid_period",
    InvalidReturnUrl => "invalid_return_url",
    InvalidSignature => "invalid_signature",
    LinkNotProven => "link_not_proven",
    MalformedJson => "malformed_json",
    MalformedToken => "malformed_token",
    MethodNotAllowed => "method_not_allowed",
    MissingClaim => "missing_claim",
    MissingToken => "missing_token",
    NoActiveSubscription => "no_active_subscription",
    NoCustomer => "no_customer",
    NotFound => "not_found",
    PayloadTooLarge => "payload_too_large",
    PeriodTooLong => "period_too_long",
    PortalNotConfigured => "portal_not_configured",
    PriceNotAllowed => "price_not_allowed",
    PriceRequired => "price_required",
    ProcessingFailed => "processing_failed",
    ReasonRequired => "reason_required",
    RefreshThrottled => "refresh_throttled",
    SecretsUnavailable => "secrets_unavailable",
    SessionExpired => "session_expired",
    StorageUnavailable => "storage_unavailable",
    StripeError => "stripe_error",
    StripeInvalidRequest => "stripe_invalid_request",
    StripeUnavailable => "stripe_unavailable",
    SubscriptionEnded => "subscription_ended",
    SubscriptionIdRequired => "subscription_id_required",
    SubscriptionNotFound => "subscription_not_found",
    SyncContended => "sync_contended",
    TokenExpired => "token_expired",
    TokenNotYetValid => "token_not_yet_valid",
    UnknownKey => "unknown_key",
    UnknownWorkflow => "unknown_workflow",
    UnsignedToken => "unsigned_token",
    UnsupportedMediaType => "unsupported_media_type",
    UpstreamTimeout => "upstream_timeout",
    UserAlreadyLinked => "user_already_linked",
    UserNotFound => "user_not_found",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s} twice");
        }
    }
}
