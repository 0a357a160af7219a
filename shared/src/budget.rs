//! The time an invocation has: Lambda's deadline, less what cleaning up and answering need.
//!
//! Every Stripe attempt and AWS call takes at most what remains before [`IO_RESERVE`]; a retry
//! is not started when it cannot fit; cleanup (releasing a webhook claim) may use the reserve
//! down to [`ANSWER_RESERVE`]; and the handler answers its own envelope when even that is gone,
//! before the platform would end the invocation without one. Outside an invocation (tools,
//! most tests) there is no deadline and only the calls' own timeouts apply.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Held back from I/O: room to release a claim (one DynamoDB write) and to answer.
pub const IO_RESERVE: Duration = Duration::from_millis(700);
/// Held back from everything: room to render the answer and hand it to the runtime.
pub const ANSWER_RESERVE: Duration = Duration::from_millis(200);
/// An attempt with less time than this is not worth starting.
const SHORTEST_ATTEMPT: Duration = Duration::from_millis(50);

/// A factor in [0.5, 1] from the system RNG (1.0 should the RNG ever fail), so callers that
/// retry after the same failure do not retry in step.
pub fn jitter() -> f64 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 1.0;
    }
    0.5 + f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX) / 2.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the invocation's time budget is spent")]
pub struct BudgetSpent;

/// The current invocation's deadline, if it has one.
pub fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

fn io_left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(IO_RESERVE)
}

/// How long the next I/O attempt may take: `limit`, cut to what remains before the reserve.
pub fn attempt_limit(limit: Duration) -> Result<Duration, BudgetSpent> {
    let Some(deadline) = deadline() else {
        return Ok(limit);
    };
    let left = io_left(deadline);
    if left < SHORTEST_ATTEMPT {
        Err(BudgetSpent)
    } else {
        Ok(left.min(limit))
    }
}

/// Whether waiting `delay` still leaves room for a worthwhile attempt.
pub fn retry_fits(delay: Duration) -> bool {
    deadline().is_none_or(|d| io_left(d) >= delay + SHORTEST_ATTEMPT)
}

/// Runs one call (with whatever retries it makes itself) within what remains before the reserve.
pub async fn bounded<F: Future>(call: F) -> Result<F::Output, BudgetSpent> {
    match deadline() {
        None => Ok(call.await),
        Some(deadline) => {
            let left = attempt_limit(io_left(deadline))?;
            tokio::time::timeout(left, call)
                .await
                .map_err(|_| BudgetSpent)
        }
    }
}

/// Runs cleanup after a failure (releasing a webhook claim): its calls may use the I/O
/// reserve, up to the answer reserve.
pub async fn cleanup<F: Future>(work: F) -> F::Output {
    match deadline() {
        None => work.await,
        Some(deadline) => {
            DEADLINE
                .scope(deadline + IO_RESERVE - ANSWER_RESERVE, work)
                .await
        }
    }
}

/// Runs a whole invocation that must end by `deadline`; `Err` when it would not have ended
/// [`ANSWER_RESERVE`] before it, so the caller can still answer.
pub async fn invocation<F: Future>(
    deadline: Option<Instant>,
    work: F,
) -> Result<F::Output, BudgetSpent> {
    let Some(deadline) = deadline else {
        return Ok(work.await);
    };
    let answer_by = deadline.checked_sub(ANSWER_RESERVE).unwrap_or(deadline);
    DEADLINE
        .scope(
            deadline,
            tokio::time::timeout_at(tokio::time::Instant::from_std(answer_by), work),
        )
        .await
        .map_err(|_| BudgetSpent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_deadline_only_the_calls_own_limits_apply() {
        assert_eq!(deadline(), None);
        assert_eq!(
            attempt_limit(Duration::from_secs(9)),
            Ok(Duration::from_secs(9))
        );
        assert!(retry_fits(Duration::from_secs(3600)));
        assert_eq!(bounded(async { 7 }).await, Ok(7));
    }

    #[tokio::test]
    async fn attempts_are_cut_to_the_budget_and_stop_when_it_is_spent() {
        let deadline = Instant::now() + Duration::from_secs(2);
        invocation(Some(deadline), async {
            let limit = attempt_limit(Duration::from_secs(10)).unwrap();
            assert!(limit <= Duration::from_secs(2) - IO_RESERVE, "{limit:?}");
            assert!(limit > Duration::from_millis(900), "{limit:?}");
            assert_eq!(
                attempt_limit(Duration::from_millis(100)),
                Ok(Duration::from_millis(100))
            );
            assert!(retry_fits(Duration::from_millis(500)));
            assert!(!retry_fits(Duration::from_secs(2)));
        })
        .await
        .unwrap();
        let spent = Instant::now() + IO_RESERVE;
        invocation(Some(spent), async {
            assert_eq!(attempt_limit(Duration::from_secs(1)), Err(BudgetSpent));
            assert_eq!(bounded(async { 1 }).await, Err(BudgetSpent));
            // Cleanup may still use the reserve.
            cleanup(async { assert!(attempt_limit(Duration::from_secs(1)).is_ok()) }).await;
        })
        .await
        .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_that_would_overrun_ends_before_its_deadline() {
        let deadline = Instant::now() + Duration::from_secs(3);
        let started = tokio::time::Instant::now();
        let result = invocation(Some(deadline), std::future::pending::<()>()).await;
        assert_eq!(result, Err(BudgetSpent));
        // Ended at the answer reserve (timers tick in whole milliseconds), not at the deadline.
        let took = started.elapsed();
        let answer_by = Duration::from_secs(3) - ANSWER_RESERVE;
        assert!(took >= answer_by, "{took:?}");
        assert!(took < answer_by + Duration::from_millis(10), "{took:?}");
    }
}
