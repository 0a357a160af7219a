//! Webhook signatures, as Stripe documents and its SDKs check them: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]`, where
//! each `v1` is lowercase-hex HMAC-SHA256 over `"{t}.{raw body}"` keyed with the whole endpoint
//! secret (`whsec_…` included). Several `v1` appear while a secret is being rolled, so any `v1`
//! matching any configured secret is accepted; other schemes (the test-mode `v0`) are ignored.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;

use crate::secrets::Redacted;

/// Stripe's libraries' default: events older than five minutes are refused (replay defence).
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    MissingHeader,
    #[error("Stripe-Signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("no signature matches the payload")]
    NoMatchingSignature,
    #[error("signature timestamp is outside the tolerance")]
    TimestampOutsideTolerance,
}

/// The parts of a `Stripe-Signature` header we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    /// Every `v1` value, still hex.
    pub v1: Vec<String>,
}

impl SignatureHeader {
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for item in header.split(',') {
            let Some((key, value)) = item.trim().split_once('=') else {
                continue;
            };
            match key {
                // Which one would be checked is a parser's whim: a header with two is forged.
                "t" if timestamp.is_some() => {
                    return Err(SignatureError::MalformedHeader("more than one timestamp"))
                }
                "t" => {
                    let parsed = value.parse::<i64>().map_err(|_| {
                        SignatureError::MalformedHeader("timestamp is not a number")
                    })?;
                    timestamp = Some(parsed);
                }
                "v1" => v1.push(value.to_string()),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::MalformedHeader("no timestamp"))?;
        if v1.is_empty() {
            return Err(SignatureError::MalformedHeader("no v1 signature"));
        }
        Ok(Self { timestamp, v1 })
    }
}

/// How a payload is checked: signatures older than `tolerance_seconds` are refused (the
/// configuration refuses a tolerance that is not positive, which would switch that off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verifier {
    pub tolerance_seconds: i64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
        }
    }
}

impl Verifier {
    /// Checks `header` against `payload` at the current time.
    pub fn verify(
        &self,
        payload: &[u8],
        header: Option<&str>,
        secrets: &[Redacted],
    ) -> Result<SignatureHeader, SignatureError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.verify_at(payload, header, secrets, now)
    }

    /// Checks at `now` (unix seconds), for deterministic tests. Only old timestamps are
    /// refused, as in Stripe's libraries; the signature is checked first so a forged header
    /// learns nothing about the clock.
    pub fn verify_at(
        &self,
        payload: &[u8],
        header: Option<&str>,
        secrets: &[Redacted],
        now: i64,
    ) -> Result<SignatureHeader, SignatureError> {
        let header = header
            .filter(|h| !h.trim().is_empty())
            .ok_or(SignatureError::MissingHeader)?;
        let parsed = SignatureHeader::parse(header)?;
        let matches = secrets.iter().any(|secret| {
            let expected = compute_signature(payload, secret.expose(), parsed.timestamp);
            parsed
                .v1
                .iter()
                .any(|given| verify_slices_are_equal(given.as_bytes(), expected.as_bytes()).is_ok())
        });
        if !matches {
            return Err(SignatureError::NoMatchingSignature);
        }
        if now.saturating_sub(parsed.timestamp) > self.tolerance_seconds {
            return Err(SignatureError::TimestampOutsideTolerance);
        }
        Ok(parsed)
    }
}

/// Lowercase hex HMAC-SHA256 of `"{timestamp}.{payload}"` keyed with `secret`.
pub fn compute_signature(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(payload);
    hex::encode(context.sign())
}

/// The `Stripe-Signature` header Stripe would send for `payload` (emulator and tests).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    format!(
        "t={timestamp},v1={}",
        compute_signature(payload, secret, timestamp)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Stripe's official Python library, stripe==16.1.0 (PyPI), by:
    //   stripe.WebhookSignature.generate_signature_header(PAYLOAD, SECRET, timestamp=1767225600)
    // (equivalently `_compute_signature(f"{t}.{payload}", secret)`), and accepted by that
    // library's `WebhookSignature.verify_header(PAYLOAD, HEADER, SECRET, tolerance=None)`.
    const PAYLOAD: &str =
        r#"{"id":"evt_test_portico","object":"event","type":"customer.subscription.updated"}"#;
    const SECRET: &str = "whsec_test_portico_FAKE";
    const TIMESTAMP: i64 = 1_767_225_600;
    const HEADER: &str =
        "t=1767225600,v1=85ad2468a32f2c090521dddb909365d64b808f9a408510091355cd604c9ddf32";

    fn secrets(list: &[&str]) -> Vec<Redacted> {
        list.iter().map(|s| Redacted::new(*s)).collect()
    }

    fn verify(
        header: Option<&str>,
        payload: &str,
        keys: &[&str],
        now: i64,
    ) -> Result<(), SignatureError> {
        Verifier::default()
            .verify_at(payload.as_bytes(), header, &secrets(keys), now)
            .map(|_| ())
    }

    #[test]
    fn matches_stripes_python_library() {
        assert_eq!(sign(PAYLOAD.as_bytes(), SECRET, TIMESTAMP), HEADER);
        assert_eq!(
            verify(Some(HEADER), PAYLOAD, &[SECRET], TIMESTAMP + 10),
            Ok(())
        );
    }

    #[test]
    fn any_v1_among_several_matches_and_v0_is_ignored() {
        let good = compute_signature(PAYLOAD.as_bytes(), SECRET, TIMESTAMP);
        let header = format!("t={TIMESTAMP},v1={},v1={good},v0=deadbeef", "0".repeat(64));
        assert_eq!(verify(Some(&header), PAYLOAD, &[SECRET], TIMESTAMP), Ok(()));
        // A v0 alone (even if it were correct) is not accepted.
        let v0_only = format!("t={TIMESTAMP},v0={good}");
        assert_eq!(
            verify(Some(&v0_only), PAYLOAD, &[SECRET], TIMESTAMP),
            Err(SignatureError::MalformedHeader("no v1 signature"))
        );
    }

    #[test]
    fn the_second_of_two_secrets_matches() {
        assert_eq!(
            verify(
                Some(HEADER),
                PAYLOAD,
                &["whsec_other_FAKE", SECRET],
                TIMESTAMP
            ),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_and_wrong_secret_fail() {
        let tampered = PAYLOAD.replace("updated", "deleted");
        assert_eq!(
            verify(Some(HEADER), &tampered, &[SECRET], TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(Some(HEADER), PAYLOAD, &["whsec_wrong_FAKE"], TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(Some(HEADER), PAYLOAD, &[], TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        // The timestamp is signed too.
        let moved = HEADER.replace("t=1767225600", "t=1767225601");
        assert_eq!(
            verify(Some(&moved), PAYLOAD, &[SECRET], TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn only_old_timestamps_are_refused() {
        assert_eq!(
            verify(Some(HEADER), PAYLOAD, &[SECRET], TIMESTAMP + 300),
            Ok(())
        );
        assert_eq!(
            verify(Some(HEADER), PAYLOAD, &[SECRET], TIMESTAMP + 301),
            Err(SignatureError::TimestampOutsideTolerance)
        );
        assert_eq!(
            verify(Some(HEADER), PAYLOAD, &[SECRET], TIMESTAMP - 3600),
            Ok(())
        );
        let strict = Verifier {
            tolerance_seconds: 10,
        };
        assert_eq!(
            strict
                .verify_at(
                    PAYLOAD.as_bytes(),
                    Some(HEADER),
                    &secrets(&[SECRET]),
                    TIMESTAMP + 11
                )
                .map(|_| ()),
            Err(SignatureError::TimestampOutsideTolerance)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        assert_eq!(
            verify(None, PAYLOAD, &[SECRET], TIMESTAMP),
            Err(SignatureError::MissingHeader)
        );
        assert_eq!(
            verify(Some("  "), PAYLOAD, &[SECRET], TIMESTAMP),
            Err(SignatureError::MissingHeader)
        );
        for header in [
            "garbage",
            "v1=abc",
            "t=,v1=abc",
            "t=abc,v1=abc",
            "t=1767225600",
            // Two timestamps, each of them with the valid signature's.
            "t=1767225600,t=1767225600,v1=85ad2468a32f2c090521dddb909365d64b808f9a408510091355cd604c9ddf32",
            "t=1,v1=85ad2468a32f2c090521dddb909365d64b808f9a408510091355cd604c9ddf32,t=1767225600",
        ] {
            assert!(
                matches!(
                    verify(Some(header), PAYLOAD, &[SECRET], TIMESTAMP),
                    Err(SignatureError::MalformedHeader(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn raw_bytes_are_signed_as_received() {
        let body = b"{\"a\":\"\xc3\xa9\"}\n";
        let header = sign(body, SECRET, TIMESTAMP);
        let ok = Verifier::default().verify_at(body, Some(&header), &secrets(&[SECRET]), TIMESTAMP);
        assert!(ok.is_ok());
        let parsed = ok.unwrap();
        assert_eq!((parsed.timestamp, parsed.v1.len()), (TIMESTAMP, 1));
    }

    #[test]
    fn errors_never_show_secrets() {
        let err = verify(Some(HEADER), PAYLOAD, &["whsec_wrong_FAKE"], TIMESTAMP).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("FAKE"));
    }
}
