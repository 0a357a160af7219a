//! User authentication: JWT bearer tokens verified against the identity provider's JWKS.
//!
//! Only RS256 and ES256 are accepted, and a token's algorithm must be the one of the key its
//! `kid` names, so neither `alg: none` nor an HMAC token keyed with a public key can pass.
//! A token signed by a key we have not seen triggers one JWKS refetch, at most once per
//! configured interval, so rotation at the identity provider needs no redeploy; keys older than
//! their maximum age are refetched too, so a revoked key stops working.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::config::{AuthConfig, JwksSource};
use crate::error_code::ErrorCode;
use crate::ids::UserId;

/// The signed-in caller, as the token describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Option<String>,
    pub is_admin: bool,
}

/// Why a request is not authenticated (401) or not allowed (403); each reason has its own code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token in the Authorization header")]
    MissingToken,
    #[error("the bearer token is not a well-formed JWT")]
    MalformedToken,
    #[error("unsigned tokens (alg: none) are not accepted")]
    UnsignedToken,
    #[error("token algorithm {0} is not accepted for this key")]
    AlgorithmNotAllowed(String),
    #[error("the token names a signing key the identity provider does not publish")]
    UnknownKey,
    #[error("the token signature is invalid")]
    InvalidSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by an unexpected issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(String),
    #[error("this action needs an administrator")]
    NotAdmin,
    /// The identity provider's keys could not be loaded: our problem, not the caller's.
    #[error("signing keys could not be loaded: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::MissingToken => ErrorCode::MissingToken,
            AuthError::MalformedToken => ErrorCode::MalformedToken,
            AuthError::UnsignedToken => ErrorCode::UnsignedToken,
            AuthError::AlgorithmNotAllowed(_) => ErrorCode::AlgorithmNotAllowed,
            AuthError::UnknownKey => ErrorCode::UnknownKey,
            AuthError::InvalidSignature => ErrorCode::InvalidSignature,
            AuthError::Expired => ErrorCode::TokenExpired,
            AuthError::NotYetValid => ErrorCode::TokenNotYetValid,
            AuthError::WrongIssuer => ErrorCode::InvalidIssuer,
            AuthError::WrongAudience => ErrorCode::InvalidAudience,
            AuthError::MissingClaim(_) => ErrorCode::MissingClaim,
            AuthError::NotAdmin => ErrorCode::AdminRequired,
            AuthError::KeysUnavailable(_) => ErrorCode::AuthUnavailable,
        }
    }
}

impl User {
    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(AuthError::NotAdmin)
        }
    }
}

struct KeySet {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    /// The last fetch attempt, successful or not (refetches are rate limited).
    fetched_at: Option<Instant>,
    /// When the keys in use were loaded; past the maximum age they are refetched.
    loaded_at: Option<Instant>,
}

pub struct Authenticator {
    config: AuthConfig,
    http: reqwest::Client,
    keys: Mutex<KeySet>,
}

#[derive(Deserialize)]
struct TokenHeader {
    alg: Option<String>,
    kid: Option<String>,
}

impl Authenticator {
    pub fn new(config: AuthConfig, http: reqwest::Client) -> Self {
        Self {
            config,
            http,
            keys: Mutex::new(KeySet {
                keys: HashMap::new(),
                fetched_at: None,
                loaded_at: None,
            }),
        }
    }

    /// Authenticates the caller of an HTTP request.
    pub async fn authenticate_request(
        &self,
        request: &lambda_http::Request,
    ) -> Result<User, AuthError> {
        let authorization = request
            .headers()
            .get(lambda_http::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let user = self.authenticate(authorization).await?;
        crate::telemetry::record_user(&user.id);
        Ok(user)
    }

    /// Authenticates a request from its `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<User, AuthError> {
        let token = bearer_token(authorization)?;
        let header = token_header(token)?;
        let alg = match header.alg.as_deref() {
            None => return Err(AuthError::MalformedToken),
            Some(a) if a.eq_ignore_ascii_case("none") => return Err(AuthError::UnsignedToken),
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some(other) => return Err(AuthError::AlgorithmNotAllowed(other.to_string())),
        };
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let (key, key_alg) = self.key(&kid).await?;
        if key_alg != alg {
            return Err(AuthError::AlgorithmNotAllowed(format!("{alg:?}")));
        }

        let mut validation = Validation::new(key_alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway.as_secs();

        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| classify(e.kind()))?
            .claims;
        self.user_from(&claims)
    }

    fn user_from(&self, claims: &Map<String, Value>) -> Result<User, AuthError> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
        let id = UserId::parse(sub).map_err(|_| AuthError::MalformedToken)?;
        // Portico copies the email onto the Stripe customer (receipts, invoices), so only an
        // address the identity provider verified counts: anyone can type someone else's.
        let verified = match claims.get("email_verified") {
            Some(Value::Bool(v)) => *v,
            // Some providers (Cognito) send the flag as a string.
            Some(Value::String(v)) => v == "true",
            Some(_) => false,
            None => self.config.trust_email_without_verified_claim,
        };
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|_| verified)
            .map(str::to_string);
        let wanted = self.config.admin_claim_value.as_str();
        let is_admin = match claims.get(&self.config.admin_claim) {
            Some(Value::String(s)) => s == wanted,
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(wanted)),
            _ => false,
        };
        Ok(User {
            id,
            email,
            is_admin,
        })
    }

    /// The key for `kid`. The JWKS is refetched when `kid` is unknown or the keys in use are
    /// older than their maximum age (so a key the provider revoked stops working), at most once
    /// per refresh interval. A fetch that fails or yields no usable key never replaces the keys
    /// in use: a broken JWKS endpoint must not lock every user out.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), AuthError> {
        let mut set = self.keys.lock().await;
        let fresh = set
            .loaded_at
            .is_some_and(|at| at.elapsed() < self.config.jwks_max_age);
        if let (Some(found), true) = (set.keys.get(kid), fresh) {
            return Ok(found.clone());
        }
        let may_refetch = set
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.config.jwks_refresh_min_interval);
        if may_refetch {
            // Count failed fetches too, so a broken JWKS endpoint is not hammered by every request.
            set.fetched_at = Some(Instant::now());
            match self.fetch_jwks().await.and_then(|bytes| usable(&bytes)) {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "JWKS loaded");
                    set.keys = keys;
                    set.loaded_at = set.fetched_at;
                }
                Err(e) if set.keys.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, kept = set.keys.len(), "JWKS refetch failed; the keys in use are kept");
                }
            }
        }
        set.keys.get(kid).cloned().ok_or(AuthError::UnknownKey)
    }

    async fn fetch_jwks(&self) -> Result<Vec<u8>, AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| AuthError::KeysUnavailable(e.to_string());
        match &self.config.jwks {
            JwksSource::File(path) => std::fs::read(path).map_err(|e| unavailable(&e)),
            JwksSource::Url(url) => {
                let response = self
                    .http
                    .get(url.clone())
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| unavailable(&e))?;
                Ok(response
                    .bytes()
                    .await
                    .map_err(|e| unavailable(&e))?
                    .to_vec())
            }
        }
    }
}

fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::MissingToken)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token.trim())
}

/// Reads the JOSE header ourselves: jsonwebtoken cannot even represent `alg: none`, and we want
/// that case to have its own answer.
fn token_header(token: &str) -> Result<TokenHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::MalformedToken);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::MalformedToken)
}

fn classify(kind: &jsonwebtoken::errors::ErrorKind) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => AuthError::InvalidSignature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidIssuer => AuthError::WrongIssuer,
        K::InvalidAudience => AuthError::WrongAudience,
        K::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        K::InvalidAlgorithm => AuthError::AlgorithmNotAllowed("mismatch".into()),
        _ => AuthError::MalformedToken,
    }
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The document's usable keys; none at all is a failed fetch, not an empty key set.
fn usable(bytes: &[u8]) -> Result<HashMap<String, (DecodingKey, Algorithm)>, AuthError> {
    let keys = parse_jwks(bytes);
    if keys.is_empty() {
        return Err(AuthError::KeysUnavailable(
            "the JWKS holds no usable signing key".into(),
        ));
    }
    Ok(keys)
}

/// The usable signature keys of a JWKS document; keys of other types or uses are skipped, so
/// one exotic key published by the provider does not lock every user out.
fn parse_jwks(bytes: &[u8]) -> HashMap<String, (DecodingKey, Algorithm)> {
    #[derive(Deserialize)]
    struct Doc {
        keys: Vec<Value>,
    }
    let Ok(doc) = serde_json::from_slice::<Doc>(bytes) else {
        tracing::warn!("JWKS document is not valid JSON with a `keys` array");
        return HashMap::new();
    };
    doc.keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter(|k| k.usage.as_deref().is_none_or(|u| u == "sig"))
        .filter_map(|k| {
            let kid = k.kid.clone()?;
            let key = match (k.kty.as_str(), k.alg.as_deref(), k.crv.as_deref()) {
                ("RSA", None | Some("RS256"), _) => (
                    DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?,
                    Algorithm::RS256,
                ),
                ("EC", None | Some("ES256"), Some("P-256")) => (
                    DecodingKey::from_ec_components(k.x.as_deref()?, k.y.as_deref()?).ok()?,
                    Algorithm::ES256,
                ),
                _ => return None,
            };
            Some((kid, key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
        assert_eq!(
            bearer_token(Some("Basic abc")),
            Err(AuthError::MissingToken)
        );
        assert_eq!(bearer_token(Some("Bearer ")), Err(AuthError::MissingToken));
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ok", "alg": "RS256", "n": "AQAB", "e": "AQAB"}
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes());
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ok"]);
        assert!(parse_jwks(b"not json").is_empty());
    }
}
