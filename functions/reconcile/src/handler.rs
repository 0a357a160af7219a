use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};
use shared::reconcile::{reconcile, ReconcileOptions};
use shared::services::Services;
use shared::stripe::Pace;

/// Stripe requests a second when `RECONCILE_STRIPE_RATE` is unset: a small share of Stripe's
/// limit, which the webhook and the users need.
const DEFAULT_RATE: f64 = 5.0;

/// The pace of reconcile's Stripe requests: `RECONCILE_STRIPE_RATE` a second, a positive number.
pub fn stripe_pace(lookup: impl Fn(&str) -> Option<String>) -> Result<Pace, String> {
    let rate = match lookup("RECONCILE_STRIPE_RATE").filter(|v| !v.is_empty()) {
        None => DEFAULT_RATE,
        Some(v) => v
            .parse()
            .map_err(|_| "RECONCILE_STRIPE_RATE must be a number".to_string())?,
    };
    Pace::per_second(rate).ok_or_else(|| "RECONCILE_STRIPE_RATE must be positive".into())
}

/// One scheduled run inside the invocation's deadline, with its metrics (the drift among them);
/// the report is the answer, and a run that fails or runs out of time is the invocation's error.
pub async fn handle(
    services: &Services,
    options: &ReconcileOptions,
    event: LambdaEvent<Value>,
) -> Result<Value, Error> {
    let deadline = shared::http::deadline_instant(event.context.deadline);
    let work = reconcile(services.sync_context(), options, &|_, _| {});
    let run = shared::budget::invocation(deadline, Box::pin(work));
    let outcome = services
        .metrics
        .invocation(&event.context.request_id, async {
            let outcome = run.await;
            if let Ok(Ok(report)) = &outcome {
                shared::metrics::reconcile_drift(report.drifted as u64);
            }
            outcome
        })
        .await;
    match outcome {
        Ok(Ok(report)) => Ok(json!(report)),
        Ok(Err(e)) => Err(e.into()),
        Err(spent) => Err(spent.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pace(value: Option<&str>) -> Result<Pace, String> {
        stripe_pace(|name| {
            assert_eq!(name, "RECONCILE_STRIPE_RATE");
            value.map(str::to_string)
        })
    }

    #[test]
    fn the_stripe_rate_defaults_and_must_be_a_positive_number() {
        let interval = |value| pace(value).map(|p| p.interval());
        assert_eq!(interval(None), Ok(Duration::from_millis(200)));
        assert_eq!(interval(Some("")), Ok(Duration::from_millis(200)));
        assert_eq!(interval(Some("0.5")), Ok(Duration::from_secs(2)));
        assert_eq!(
            interval(Some("fast")).unwrap_err(),
            "RECONCILE_STRIPE_RATE must be a number"
        );
        for bad in ["0", "-2", "inf", "NaN"] {
            assert_eq!(
                interval(Some(bad)).unwrap_err(),
                "RECONCILE_STRIPE_RATE must be positive",
                "{bad}"
            );
        }
    }
}
