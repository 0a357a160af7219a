//! Portico's shared library: everything the Lambda functions have in common, by domain.

pub mod account;
pub mod adopt;
pub mod analytics;
pub mod auth;
pub mod aws;
pub mod budget;
pub mod clock;
pub mod config;
pub mod customer_link;
pub mod error_code;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod portal;
pub mod portal_admin;
pub mod reconcile;
pub mod secrets;
pub mod services;
pub mod store;
pub mod stripe;
pub mod support;
pub mod sync;
pub mod telemetry;
pub mod webhook;

#[cfg(feature = "test-support")]
pub mod testing;
