//! Signing keys and tokens for tests and the local stack, with aws-lc-rs (already our one
//! crypto stack). Tokens are assembled by hand so tests can also forge the bad ones.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

enum Pair {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

pub struct SigningKey {
    pub kid: String,
    pair: Pair,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    pub fn generate_es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC keygen");
        SigningKey {
            kid: kid.into(),
            pair: Pair::Es256(pair),
        }
    }

    pub fn generate_rs256(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA keygen");
        SigningKey {
            kid: kid.into(),
            pair: Pair::Rs256(pair),
        }
    }

    /// An ES256 key from PKCS#8 bytes written by [`SigningKey::es256_pkcs8`].
    pub fn es256_from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<Self, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|e| e.to_string())?;
        Ok(SigningKey {
            kid: kid.into(),
            pair: Pair::Es256(pair),
        })
    }

    pub fn es256_pkcs8(&self) -> Option<Vec<u8>> {
        match &self.pair {
            Pair::Es256(pair) => pair.to_pkcs8v1().ok().map(|d| d.as_ref().to_vec()),
            Pair::Rs256(_) => None,
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Es256(_) => "ES256",
            Pair::Rs256(_) => "RS256",
        }
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Es256(pair) => {
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Pair::Rs256(pair) => {
                let public = pair.public_key();
                json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                       "n": b64(public.modulus().big_endian_without_leading_zero()),
                       "e": b64(public.exponent().big_endian_without_leading_zero())})
            }
        }
    }

    /// The public key's DER bytes (what an HS256 key-confusion attack would use as the secret).
    pub fn public_der(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Es256(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Rs256(pair) => pair
                .public_key()
                .as_der()
                .map(|d| d.as_ref().to_vec())
                .unwrap_or_default(),
        }
    }

    /// A compact JWS of `claims` with the standard header for this key.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// A compact JWS with any header: the signature is always this key's own algorithm.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Es256(pair) => pair
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            Pair::Rs256(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .expect("sign");
                sig
            }
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// Standard claims valid for an hour from now.
pub fn claims(issuer: &str, audience: &str, sub: &str) -> Value {
    let now = now();
    json!({"iss": issuer, "aud": audience, "sub": sub, "email": format!("{}@example.test", sub.replace(['|', ' '], "_")), "email_verified": true,
           "iat": now, "nbf": now, "exp": now + 3600})
}

pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

pub fn write_jwks(path: &Path, keys: &[&SigningKey]) {
    // Write then rename, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, jwks(keys).to_string()).expect("write JWKS");
    std::fs::rename(&tmp, path).expect("move JWKS into place");
}
