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
pub mod signature;
pub mod types;

pub use catalogue::{request_catalogue, HttpMethod, RequestShape};
pub use client::{list_all, random_idempotency_key, ApiKey, StripeClient};
pub use encode::Params;
pub use error::{StripeClientError, StripeError};
pub use pace::Pace;
pub use resources::*;
pub use retry::{AttemptOutcome, RetryPolicy};
pub use types::*;
