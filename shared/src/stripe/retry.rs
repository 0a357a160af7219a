//! When to retry a Stripe request and how long to wait, after stripe-node's `_shouldRetry` and
//! `_getSleepTimeInMS`, plus 429 which Portico also retries (rate limits and
//! `lock_timeout` clear after a short back-off).

use std::time::Duration;

/// What one attempt produced, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Connecting, sending or reading failed.
    ConnectionError,
    Timeout,
    /// Stripe answered; `should_retry` is the `Stripe-Should-Retry` header, when present.
    Status {
        status: u16,
        should_retry: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First delay, and the floor of every delay.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5);

    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base_delay: Self::DEFAULT_BASE_DELAY,
            max_delay: Self::DEFAULT_MAX_DELAY,
        }
    }

    /// Should the call be retried, `retries_done` retries having been made already?
    pub fn should_retry(&self, outcome: AttemptOutcome, retries_done: u32) -> bool {
        if retries_done >= self.max_retries {
            return false;
        }
        match outcome {
            AttemptOutcome::ConnectionError | AttemptOutcome::Timeout => true,
            AttemptOutcome::Status {
                should_retry: Some(told),
                ..
            } => told,
            AttemptOutcome::Status { status, .. } => {
                status == 409 || status == 429 || status >= 500
            }
        }
    }

    /// Delay before retry number `retry` (1-based): `min(base·2^(retry−1), max)` scaled by
    /// `jitter` ∈ [0.5, 1], never below `base`.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        let grown = self.base_delay.saturating_mul(1u32 << exponent);
        let capped = grown.min(self.max_delay);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.5, 1.0)
        } else {
            1.0
        };
        capped.mul_f64(jitter).max(self.base_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptOutcome::*;

    fn status(status: u16, should_retry: Option<bool>) -> AttemptOutcome {
        Status {
            status,
            should_retry,
        }
    }

    #[test]
    fn retry_decision_table() {
        let policy = RetryPolicy::new(2);
        let table = [
            (ConnectionError, 0, true),
            (Timeout, 1, true),
            (Timeout, 2, false),
            (status(500, None), 0, true),
            (status(502, None), 0, true),
            (status(503, None), 1, true),
            (status(409, None), 0, true),
            (status(429, None), 0, true),
            (status(400, None), 0, false),
            (status(401, None), 0, false),
            (status(402, None), 0, false),
            (status(403, None), 0, false),
            (status(404, None), 0, false),
            (status(424, None), 0, false),
            (status(500, Some(false)), 0, false),
            (status(429, Some(false)), 0, false),
            (status(400, Some(true)), 0, true),
            (status(500, Some(true)), 2, false),
            (status(500, None), 2, false),
            (ConnectionError, 2, false),
        ];
        for (outcome, done, expected) in table {
            assert_eq!(
                policy.should_retry(outcome, done),
                expected,
                "{outcome:?} after {done} retries"
            );
        }
        assert!(!RetryPolicy::new(0).should_retry(ConnectionError, 0));
    }

    #[test]
    fn backoff_doubles_caps_and_never_goes_below_base() {
        let policy = RetryPolicy::new(10);
        let ms = |retry, jitter| policy.delay(retry, jitter).as_millis();
        assert_eq!(ms(1, 1.0), 500);
        assert_eq!(ms(2, 1.0), 1000);
        assert_eq!(ms(3, 1.0), 2000);
        assert_eq!(ms(4, 1.0), 4000);
        assert_eq!(ms(5, 1.0), 5000);
        assert_eq!(ms(40, 1.0), 5000);
        assert_eq!(ms(1, 0.5), 500, "floor at base");
        assert_eq!(ms(3, 0.5), 1000);
        assert_eq!(ms(5, 0.5), 2500);
        assert_eq!(ms(3, 7.0), 2000, "jitter clamped to 1");
        assert_eq!(ms(3, f64::NAN), 2000);
    }

    #[test]
    fn jitter_stays_in_range_and_delays_in_bounds() {
        let policy = RetryPolicy::new(5);
        for retry in 1..=6 {
            for _ in 0..50 {
                let j = crate::budget::jitter();
                assert!((0.5..=1.0).contains(&j), "{j}");
                let d = policy.delay(retry, j);
                assert!(d >= policy.base_delay && d <= policy.max_delay, "{d:?}");
            }
        }
    }

    #[test]
    fn a_tiny_base_is_honoured_for_tests() {
        let policy = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        };
        assert_eq!(policy.delay(1, 0.5), Duration::from_millis(1));
        assert_eq!(policy.delay(9, 1.0), Duration::from_millis(4));
    }
}
