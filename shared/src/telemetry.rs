//! JSON logs, one line per event, as CloudWatch and Lambda's JSON log format expect.
//!
//! Every line a request writes carries the request span: `request_id`, `function`, and once
//! known the pseudonymous `user_id` (the token's `sub`) and `customer_id` (Stripe's `cus_…`).
//! Emails, tokens, secrets and card numbers are never logged.

use tracing::Span;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::ids::{CustomerId, UserId};

/// Level from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging config), else `RUST_LOG`, else info.
pub fn init() {
    let filter = filter(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    // try_init: a second call (tests, tools) keeps the first subscriber instead of panicking.
    let _ = subscriber(filter, std::io::stdout).try_init();
}

/// The log format, writing to `writer`: the production subscriber, and the one tests read.
pub fn subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
    EnvFilter,
    W,
>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        // The request span's fields on every line; the runtime's outer span adds nothing more.
        .with_current_span(true)
        .with_span_list(false)
}

/// Lambda's levels are TRACE … FATAL; tracing has no FATAL, whose nearest is error. A
/// `RUST_LOG` is a full filter (`info,shared=debug`); an unparsable one falls back to info.
pub fn filter(aws_lambda_log_level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    if let Some(level) = aws_lambda_log_level.filter(|l| !l.trim().is_empty()) {
        let level = match level.trim().to_ascii_lowercase().as_str() {
            "fatal" => "error".to_string(),
            other => other.to_string(),
        };
        if let Ok(filter) = EnvFilter::try_new(level) {
            return filter;
        }
    }
    rust_log
        .filter(|l| !l.trim().is_empty())
        .and_then(|l| EnvFilter::try_new(l).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// The span one request's lines are written in. At error level, so that it stays enabled
/// (and its fields on the lines) whatever level the filter lets through.
pub fn request_span(function: &str, request_id: &str) -> Span {
    tracing::error_span!(
        "request",
        function,
        request_id,
        user_id = tracing::field::Empty,
        customer_id = tracing::field::Empty,
    )
}

/// Adds the signed-in user to the current request's lines.
pub fn record_user(user: &UserId) {
    Span::current().record("user_id", user.as_str());
}

/// Adds the Stripe customer to the current request's lines.
pub fn record_customer(customer: &CustomerId) {
    Span::current().record("customer_id", customer.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(filter: &EnvFilter) -> String {
        filter.to_string()
    }

    #[test]
    fn the_level_comes_from_lambda_then_rust_log_then_info() {
        assert_eq!(shown(&filter(Some("DEBUG"), Some("warn"))), "debug");
        assert_eq!(shown(&filter(Some("FATAL"), None)), "error");
        assert_eq!(
            shown(&filter(None, Some("warn,shared=debug"))),
            "shared=debug,warn"
        );
        assert_eq!(shown(&filter(Some(" "), None)), "info");
        assert_eq!(shown(&filter(None, None)), "info");
    }
}
