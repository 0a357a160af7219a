//! Typed identifiers: parsed once at the edge, so the rest of the code never re-checks a string.

/// The system's random number generator failed (it does not, short of a broken kernel).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the system random number generator is unavailable")]
pub struct RandomUnavailable;

/// `N` bytes from the system RNG as `2N` lowercase hex digits: an unguessable one-use id.
pub fn random_hex<const N: usize>() -> Result<String, RandomUnavailable> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomUnavailable)?;
    Ok(hex::encode(bytes))
}

/// The first `bytes` bytes (at most 32) of `input`'s SHA-256, as lowercase hex: a stable
/// digest, for keys and names that must not show what they are made from.
pub fn sha256_hex(input: &[u8], bytes: usize) -> String {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input);
    let hash = hash.as_ref();
    hex::encode(&hash[..bytes.min(hash.len())])
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{kind} {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// A string newtype that can only hold what `$check` accepts: parsed once at the edge (serde
/// included), so the rest of the code never re-checks it. Used for ids here and for the
/// validated values of `portal::fields`.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: impl Into<String>) -> Result<Self, $crate::ids::InvalidId> {
                let raw = raw.into();
                let check: fn(&str) -> Result<(), &'static str> = $check;
                check(&raw).map_err(|reason| $crate::ids::InvalidId { kind: $kind, reason })?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::ids::InvalidId;
            fn try_from(raw: String) -> Result<Self, $crate::ids::InvalidId> {
                Self::parse(raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use string_id;

string_id!(
    /// The identity provider's `sub`: opaque, but bounded and printable.
    UserId,
    "user id",
    |s| {
        if s.is_empty() {
            Err("is empty")
        } else if s.len() > 255 {
            Err("is longer than 255 characters")
        } else if s.chars().any(char::is_control) {
            Err("contains control characters")
        } else {
            Ok(())
        }
    }
);

impl UserId {
    /// A short, stable digest of the id, for namespacing keys without exposing the id.
    pub fn short_digest(&self) -> String {
        sha256_hex(self.0.as_bytes(), 12)
    }
}

string_id!(
    /// A Stripe customer id, `cus_…`.
    CustomerId,
    "customer id",
    |s| stripe_id(s, "cus_")
);

string_id!(
    /// A Stripe subscription id, `sub_…`.
    SubscriptionId,
    "subscription id",
    |s| stripe_id(s, "sub_")
);

string_id!(
    /// A Stripe billing portal configuration id, `bpc_…`.
    ConfigurationId,
    "portal configuration id",
    |s| stripe_id(s, "bpc_")
);

string_id!(
    /// A Stripe coupon id: chosen by whoever created it (no prefix), 1 to 200 characters of
    /// letters, digits, `_` and `-`.
    CouponId,
    "coupon id",
    |s| {
        if s.is_empty() || s.len() > 200 {
            Err("has a bad length")
        } else if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            Err("contains characters other than letters, digits, _ and -")
        } else {
            Ok(())
        }
    }
);

/// Stripe ids are a fixed prefix and an alphanumeric tail.
fn stripe_id(s: &str, prefix: &str) -> Result<(), &'static str> {
    match s.strip_prefix(prefix) {
        None => Err("has the wrong prefix"),
        Some(tail) if tail.is_empty() || tail.len() > 250 => Err("has a bad length"),
        Some(tail) if !tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Err("contains characters Stripe ids never have")
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_the_digest_cut_to_its_first_bytes() {
        // SHA-256("abc"), FIPS 180-2's example: keys built on it must never change.
        let full = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc", 32), full);
        assert_eq!(sha256_hex(b"abc", 12), &full[..24]);
        assert_eq!(sha256_hex(b"abc", 99), full);
    }

    #[test]
    fn customer_ids_need_the_prefix_and_a_clean_tail() {
        assert!(CustomerId::parse("cus_NffrFeUfNV2Hib").is_ok());
        assert!(CustomerId::parse("sub_123").is_err());
        assert!(CustomerId::parse("cus_").is_err());
        assert!(CustomerId::parse("cus_12/../x").is_err());
        assert!(SubscriptionId::parse("sub_1NnmX4GPxmnHQRkJrhGrFloA").is_ok());
        assert!(SubscriptionId::parse("cus_1").is_err());
    }

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(UserId::parse("auth0|6571f2a0c9").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse("x".repeat(256)).is_err());
    }

    #[test]
    fn serde_rejects_invalid_ids() {
        let ok: CustomerId = serde_json::from_str("\"cus_abc\"").unwrap();
        assert_eq!(ok.as_str(), "cus_abc");
        assert!(serde_json::from_str::<CustomerId>("\"acct_abc\"").is_err());
    }
}
