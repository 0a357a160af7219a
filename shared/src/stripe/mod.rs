//! Portico's Stripe client: form encoding, errors, retries, the typed objects Portico reads,
//! the endpoint methods, and webhook signatures.
//!
//! Build once per container:
//! `StripeClient::new(&config.stripe, reqwest_client, ApiKey::Secrets(provider))`.

mod catalogue;
mod client;
pub mod encode;
mod error;
mod pace;
mod resources;
mod retry;
pub mod types;
pub mod webhook;

pub use catalogue::{request_catalogue, HttpMethod, RequestShape};
pub use client::{list_all, random_idempotency_key, ApiKey, StripeClient};
pub use encode::Params;
pub use error::{StripeClientError, StripeError};
pub use pace::Pace;
pub use resources::*;
pub use retry::{AttemptOutcome, RetryPolicy};
pub use types::*;

#[cfg(test)]
pub(crate) mod tests_support {
    use std::path::PathBuf;

    /// `$STRIPE_REFERENCE_DIR`, else `<workspace>/../shared/stripe` when it exists.
    pub fn reference_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("STRIPE_REFERENCE_DIR") {
            return Some(PathBuf::from(dir));
        }
        let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/stripe");
        default.is_dir().then_some(default)
    }
}
