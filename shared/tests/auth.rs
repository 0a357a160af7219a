//! Token verification: every rejection has its own code, and key rotation needs no restart.

use serde_json::{json, Value};
use shared::auth::{AuthError, Authenticator};
use shared::error_code::ErrorCode;
use shared::testing::keys::{self, b64, SigningKey};
use shared::testing::TestStack;

fn authenticator(stack: &TestStack, overrides: &[(&str, &str)]) -> Authenticator {
    stack.services_with(overrides).auth
}

async fn verify(auth: &Authenticator, token: &str) -> Result<shared::auth::User, AuthError> {
    auth.authenticate(Some(&format!("Bearer {token}"))).await
}

fn with(claims: &Value, key: &str, value: Value) -> Value {
    let mut c = claims.clone();
    c[key] = value;
    c
}

#[tokio::test]
async fn a_valid_token_yields_the_user() {
    let stack = TestStack::new().await;
    let auth = authenticator(&stack, &[]);
    let user = verify(&auth, &stack.token("auth0|alice")).await.unwrap();
    assert_eq!(user.id.as_str(), "auth0|alice");
    assert_eq!(user.email.as_deref(), Some("auth0_alice@example.test"));
    assert!(!user.is_admin);
    assert!(
        verify(&auth, &stack.admin_token("root"))
            .await
            .unwrap()
            .is_admin
    );
}

#[tokio::test]
async fn rs256_keys_are_accepted_too() {
    let stack = TestStack::new().await;
    let rsa = SigningKey::generate_rs256("rsa-1");
    keys::write_jwks(&stack.jwks_path, &[&stack.key, &rsa]);
    let auth = authenticator(&stack, &[]);
    let user = verify(&auth, &rsa.sign(&stack.claims("bob")))
        .await
        .unwrap();
    assert_eq!(user.id.as_str(), "bob");
}

#[tokio::test]
async fn admin_claim_may_be_a_string_or_a_list_and_must_hold_the_value() {
    let stack = TestStack::new().await;
    let auth = authenticator(&stack, &[]);
    let claims = stack.claims("carol");
    let as_string = stack.key.sign(&with(&claims, "roles", json!("admin")));
    let wrong_value = stack
        .key
        .sign(&with(&claims, "roles", json!(["support", "billing"])));
    assert!(verify(&auth, &as_string).await.unwrap().is_admin);
    assert!(!verify(&auth, &wrong_value).await.unwrap().is_admin);
    assert_eq!(
        verify(&auth, &wrong_value).await.unwrap().require_admin(),
        Err(AuthError::NotAdmin)
    );
}

#[tokio::test]
async fn each_rejection_has_its_own_code() {
    let stack = TestStack::new().await;
    let auth = authenticator(&stack, &[]);
    let claims = stack.claims("mallory");
    let now = keys::now();
    let valid = stack.token("mallory");
    let (head, rest) = valid.split_once('.').unwrap();
    let (body, signature) = rest.split_once('.').unwrap();

    let unsigned = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), body);
    // Key confusion: HS256 keyed with the public key the JWKS publishes.
    let hs_input = format!(
        "{}.{body}",
        b64(json!({"alg": "HS256", "kid": stack.key.kid})
            .to_string()
            .as_bytes())
    );
    let hs_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &stack.key.public_der());
    let hs = format!(
        "{hs_input}.{}",
        b64(aws_lc_rs::hmac::sign(&hs_key, hs_input.as_bytes()).as_ref())
    );
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!("admin");
    let tampered = format!(
        "{head}.{}.{signature}",
        b64(tampered_claims.to_string().as_bytes())
    );
    let stranger = SigningKey::generate_es256("not-published");

    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing header", None, "missing_token"),
        (
            "not bearer",
            Some(format!("Basic {valid}")),
            "missing_token",
        ),
        (
            "malformed",
            Some("Bearer abc.def".into()),
            "malformed_token",
        ),
        (
            "garbage header",
            Some("Bearer %%%.e30.sig".into()),
            "malformed_token",
        ),
        (
            "alg none",
            Some(format!("Bearer {unsigned}")),
            "unsigned_token",
        ),
        (
            "HS256 with the public key",
            Some(format!("Bearer {hs}")),
            "algorithm_not_allowed",
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                stack.key.sign(&with(&claims, "exp", json!(now - 3600)))
            )),
            "token_expired",
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                stack.key.sign(&with(&claims, "nbf", json!(now + 3600)))
            )),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                stack
                    .key
                    .sign(&with(&claims, "iss", json!("https://evil.test/")))
            )),
            "invalid_issuer",
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                stack.key.sign(&with(&claims, "aud", json!("someone-else")))
            )),
            "invalid_audience",
        ),
        (
            "unknown kid",
            Some(format!("Bearer {}", stranger.sign(&claims))),
            "unknown_key",
        ),
        (
            "tampered signature",
            Some(format!("Bearer {tampered}")),
            "invalid_signature",
        ),
    ];
    for (name, header, code) in cases {
        let err = auth.authenticate(header.as_deref()).await.unwrap_err();
        assert_eq!(err.code().as_str(), code, "{name}: {err}");
        let api: shared::http::ApiError = err.into();
        assert_eq!(api.status.as_u16(), 401, "{name}");
    }
}

#[tokio::test]
async fn a_token_missing_any_required_claim_is_refused() {
    // jsonwebtoken checks `iss` and `aud` only when the token carries them: without the
    // required-claims rule, a token that omits its issuer or audience would pass.
    let stack = TestStack::new().await;
    let auth = authenticator(&stack, &[]);
    for claim in ["exp", "sub", "iss", "aud"] {
        let mut claims = stack.claims("nemo");
        claims.as_object_mut().unwrap().remove(claim);
        let err = verify(&auth, &stack.key.sign(&claims)).await.unwrap_err();
        assert_eq!(err, AuthError::MissingClaim(claim.to_string()), "{claim}");
        assert_eq!(err.code(), ErrorCode::MissingClaim);
    }
}

#[tokio::test]
async fn expiry_within_the_leeway_is_accepted() {
    let stack = TestStack::new().await;
    let auth = authenticator(&stack, &[("JWT_LEEWAY_SECONDS", "30")]);
    let just_expired = with(&stack.claims("dave"), "exp", json!(keys::now() - 5));
    assert!(verify(&auth, &stack.key.sign(&just_expired)).await.is_ok());
}

#[tokio::test]
async fn a_rotated_key_verifies_without_a_restart() {
    let stack = TestStack::new().await;
    let auth = authenticator(&stack, &[]);
    assert!(verify(&auth, &stack.token("erin")).await.is_ok());

    let next = SigningKey::generate_es256("test-key-2");
    keys::write_jwks(&stack.jwks_path, &[&stack.key, &next]);
    let user = verify(&auth, &next.sign(&stack.claims("erin")))
        .await
        .unwrap();
    assert_eq!(user.id.as_str(), "erin");
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let stack = TestStack::new().await;
    let auth = authenticator(&stack, &[("JWKS_REFRESH_MIN_SECONDS", "3600")]);
    assert!(verify(&auth, &stack.token("frank")).await.is_ok());

    // Published after our last fetch: within the interval we do not look again.
    let next = SigningKey::generate_es256("test-key-2");
    keys::write_jwks(&stack.jwks_path, &[&stack.key, &next]);
    let err = verify(&auth, &next.sign(&stack.claims("frank")))
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownKey);
    // Known keys keep working meanwhile.
    assert!(verify(&auth, &stack.token("frank")).await.is_ok());
}

#[tokio::test]
async fn an_unreadable_jwks_is_a_503_not_a_401() {
    let stack = TestStack::new().await;
    let auth = authenticator(&stack, &[("JWKS_FILE", "/nonexistent/jwks.json")]);
    let err = verify(&auth, &stack.token("gina")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::AuthUnavailable);
    let api: shared::http::ApiError = err.into();
    assert_eq!(api.status.as_u16(), 503);
}

/// A JWKS endpoint on 127.0.0.1 whose answer the test sets, counting the fetches.
struct JwksServer {
    url: String,
    answer: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: &[&SigningKey]) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let answer =
            std::sync::Arc::new(std::sync::Mutex::new((200, keys::jwks(keys).to_string())));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (served, counted) = (answer.clone(), fetches.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (status, body) = served.lock().unwrap().clone();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        JwksServer {
            url,
            answer,
            fetches,
        }
    }

    fn serve(&self, status: u16, body: impl Into<String>) {
        *self.answer.lock().unwrap() = (status, body.into());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An authenticator reading the JWKS from `server`, with the JWKS file setting dropped.
fn over_http(stack: &TestStack, server: &JwksServer, max_age: &str) -> Authenticator {
    let mut config = stack.config_with(&[("JWKS_MAX_AGE_SECONDS", max_age)]);
    config.auth.jwks = shared::config::JwksSource::Url(server.url.parse().unwrap());
    shared::services::Services::new(config, &stack.functions_aws)
        .unwrap()
        .auth
}

#[tokio::test]
async fn a_failed_or_empty_jwks_fetch_never_replaces_the_keys_in_use() {
    let stack = TestStack::new().await;
    let server = JwksServer::start(&[&stack.key]).await;
    // Max age 0: every verification refetches, so every bad answer below is tried.
    let auth = over_http(&stack, &server, "0");
    assert!(verify(&auth, &stack.token("ivy")).await.is_ok());
    assert_eq!(server.fetches(), 1);

    let stranger = SigningKey::generate_es256("not-published");
    for (status, body) in [
        (200, "this is not JSON"),
        (200, r#"{"keys": []}"#),
        (
            200,
            r#"{"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}"#,
        ),
        (200, r#"{"no_keys": true}"#),
        (500, "{}"),
        (404, "not found"),
    ] {
        server.serve(status, body);
        let before = server.fetches();
        let user = verify(&auth, &stack.token("ivy")).await;
        assert!(user.is_ok(), "{status} {body}: {user:?}");
        assert_eq!(server.fetches(), before + 1, "{status} {body}: refetched");
        // An unknown key is still unknown, not a reason to drop the known ones.
        assert_eq!(
            verify(&auth, &stranger.sign(&stack.claims("ivy"))).await,
            Err(AuthError::UnknownKey),
            "{status} {body}"
        );
    }
}

#[tokio::test]
async fn a_first_fetch_without_usable_keys_is_a_503() {
    let stack = TestStack::new().await;
    let server = JwksServer::start(&[]).await;
    server.serve(200, r#"{"keys": "garbage"}"#);
    let auth = over_http(&stack, &server, "3600");
    let err = verify(&auth, &stack.token("jack")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::AuthUnavailable);
    // Once the provider answers properly, the next request loads the keys.
    server.serve(200, keys::jwks(&[&stack.key]).to_string());
    assert!(verify(&auth, &stack.token("jack")).await.is_ok());
}

#[tokio::test]
async fn keys_past_their_maximum_age_are_refetched_so_a_revoked_key_stops_working() {
    let stack = TestStack::new().await;
    let doomed = SigningKey::generate_es256("doomed");
    let server = JwksServer::start(&[&stack.key, &doomed]).await;
    let aging = over_http(&stack, &server, "0");
    let cached = over_http(&stack, &server, "3600");
    for auth in [&aging, &cached] {
        assert!(verify(auth, &doomed.sign(&stack.claims("kim")))
            .await
            .is_ok());
    }

    // The identity provider revokes the key.
    server.serve(200, keys::jwks(&[&stack.key]).to_string());
    assert_eq!(
        verify(&aging, &doomed.sign(&stack.claims("kim"))).await,
        Err(AuthError::UnknownKey),
        "past its age the key set is fetched again"
    );
    assert!(verify(&aging, &stack.token("kim")).await.is_ok());
    // Within its age the loaded key is still used: the maximum age bounds that window.
    let fetched = server.fetches();
    assert!(verify(&cached, &doomed.sign(&stack.claims("kim")))
        .await
        .is_ok());
    assert_eq!(server.fetches(), fetched, "no refetch within the age");
}

#[tokio::test]
async fn only_a_verified_email_is_taken_from_the_token() {
    let stack = TestStack::new().await;
    let strict = authenticator(&stack, &[]);
    let trusting = authenticator(&stack, &[("TRUST_EMAIL_WITHOUT_VERIFIED_CLAIM", "true")]);
    let claims = stack.claims("lena");
    let mut absent = claims.clone();
    absent.as_object_mut().unwrap().remove("email_verified");
    let cases = [
        (
            json!(true),
            Some("lena@example.test"),
            Some("lena@example.test"),
        ),
        (
            json!("true"),
            Some("lena@example.test"),
            Some("lena@example.test"),
        ),
        (json!(false), None, None),
        (json!("false"), None, None),
        (json!(1), None, None),
    ];
    for (flag, strict_email, trusting_email) in cases {
        let token = stack
            .key
            .sign(&with(&claims, "email_verified", flag.clone()));
        let user = verify(&strict, &token).await.unwrap();
        assert_eq!(user.email.as_deref(), strict_email, "{flag}");
        let user = verify(&trusting, &token).await.unwrap();
        assert_eq!(user.email.as_deref(), trusting_email, "{flag} (trusting)");
    }
    // Without the claim, only a deployment that says its provider verifies every email uses it.
    let token = stack.key.sign(&absent);
    assert_eq!(verify(&strict, &token).await.unwrap().email, None);
    assert_eq!(
        verify(&trusting, &token).await.unwrap().email.as_deref(),
        Some("lena@example.test")
    );
}

/// Verified tokens are remembered; these pin down what a remembered token still has to pass.
mod remembered_tokens {
    use super::*;
    use shared::clock::Clock;
    use std::time::Duration;

    fn at_now(stack: &TestStack) -> (Authenticator, Clock) {
        let clock = Clock::manual(Clock::system().now());
        let auth = authenticator(stack, &[("JWT_LEEWAY_SECONDS", "0")]);
        (auth.with_clock(clock.clone()), clock)
    }

    #[tokio::test]
    async fn expiry_is_checked_on_every_use() {
        let stack = TestStack::new().await;
        let (auth, clock) = at_now(&stack);
        let token = stack
            .key
            .sign(&with(&stack.claims("mia"), "exp", json!(keys::now() + 60)));
        assert!(verify(&auth, &token).await.is_ok());
        assert!(verify(&auth, &token).await.is_ok(), "a repeat within exp");
        clock.advance(Duration::from_secs(61));
        assert_eq!(verify(&auth, &token).await, Err(AuthError::Expired));
    }

    #[tokio::test]
    async fn not_before_is_checked_on_every_use() {
        let stack = TestStack::new().await;
        let (auth, clock) = at_now(&stack);
        let token = stack.token("nils");
        assert!(verify(&auth, &token).await.is_ok());
        // The clock stepped back (NTP, a test) before the token's nbf.
        clock.set(clock.now() - Duration::from_secs(120));
        assert_eq!(verify(&auth, &token).await, Err(AuthError::NotYetValid));
    }

    #[tokio::test]
    async fn failures_are_not_remembered() {
        let stack = TestStack::new().await;
        let (auth, clock) = at_now(&stack);
        let early = stack
            .key
            .sign(&with(&stack.claims("olga"), "nbf", json!(keys::now() + 60)));
        assert_eq!(verify(&auth, &early).await, Err(AuthError::NotYetValid));
        clock.advance(Duration::from_secs(61));
        assert!(verify(&auth, &early).await.is_ok(), "its time has come");
    }

    #[tokio::test]
    async fn the_whole_token_is_the_key_so_a_tampered_signature_is_checked() {
        let stack = TestStack::new().await;
        let auth = authenticator(&stack, &[]);
        let token = stack.token("paul");
        assert!(verify(&auth, &token).await.is_ok());
        // Same header and claims, someone else's signature.
        let (signed, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", b64(&[7u8; 64]));
        assert_eq!(
            verify(&auth, &forged).await,
            Err(AuthError::InvalidSignature)
        );
        // And claims changed under the old signature.
        let (_, signature) = token.rsplit_once('.').unwrap();
        let header = token.split('.').next().unwrap();
        let claims = b64(with(&stack.claims("root"), "roles", json!(["admin"]))
            .to_string()
            .as_bytes());
        let swapped = format!("{header}.{claims}.{signature}");
        assert_eq!(
            verify(&auth, &swapped).await,
            Err(AuthError::InvalidSignature)
        );
    }

    #[tokio::test]
    async fn a_token_goes_when_its_key_leaves_the_jwks() {
        let stack = TestStack::new().await;
        let auth = authenticator(&stack, &[]);
        let old = stack.token("quinn");
        assert!(verify(&auth, &old).await.is_ok());

        // Rotation: the provider replaces the key; a token of the new key makes us refetch.
        let next = SigningKey::generate_es256("test-key-2");
        keys::write_jwks(&stack.jwks_path, &[&next]);
        assert!(verify(&auth, &next.sign(&stack.claims("quinn")))
            .await
            .is_ok());
        assert_eq!(verify(&auth, &old).await, Err(AuthError::UnknownKey));
    }
}
