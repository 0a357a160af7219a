//! The heart of Portico: fetch a customer's truth from Stripe, store it order-safely, and report
//! what changed. Both the portal return and the webhook call it.

pub mod snapshot;

pub use snapshot::{diff, premium, Change, ChangeKind, CustomerSnapshot, PremiumStatus};
