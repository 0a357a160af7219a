//! A request rate for tools that walk a whole Stripe account (import, replay, reconcile), so
//! they leave Stripe's account-wide rate limit to the webhook and the users' requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces requests at least `1 / rate` apart, whichever task sends them; cheap to clone (the
/// clones share one schedule).
#[derive(Debug, Clone)]
pub struct Pace {
    interval: Duration,
    next: Arc<Mutex<Instant>>,
}

impl Pace {
    /// `per_second` requests a second at most; `None` for a rate that is not a positive number.
    pub fn per_second(per_second: f64) -> Option<Self> {
        if !per_second.is_finite() || per_second <= 0.0 {
            return None;
        }
        Some(Self {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Arc::new(Mutex::new(Instant::now())),
        })
    }

    /// The shortest time between two requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this request's turn.
    pub async fn wait(&self) {
        let turn = {
            let mut next = self.next.lock().await;
            let turn = (*next).max(Instant::now());
            *next = turn + self.interval;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_rate_and_a_rate_must_be_positive() {
        assert!(Pace::per_second(0.0).is_none());
        assert!(Pace::per_second(f64::NAN).is_none());
        let pace = Pace::per_second(4.0).unwrap();
        let started = Instant::now();
        for _ in 0..9 {
            pace.wait().await;
        }
        // The first goes at once, each next a quarter second later.
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
