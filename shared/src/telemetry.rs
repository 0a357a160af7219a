//! JSON logs, one line per event, as CloudWatch and Lambda's JSON log format expect.

use tracing_subscriber::EnvFilter;

/// Level from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging config), else `RUST_LOG`, else info.
pub fn init() {
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|level| EnvFilter::new(level.to_lowercase()))
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // try_init: a second call (tests, tools) keeps the first subscriber instead of panicking.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .try_init();
}
