//! The one clock Portico reads: the system's in production, a hand-moved one in tests, so the
//! premium grace period, the webhook lease and session expiry can be tested by moving time.
//!
//! Timestamps Portico stores or compares as strings are written at a fixed width (UTC,
//! microseconds, `Z`), so string order is time order: variable-width RFC 3339 (`…:07Z` beside
//! `…:07.5Z`) sorts entries of the same second out of order.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Unix time in nanoseconds set by hand; `None` reads the system clock.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands at `start` until moved with [`Clock::advance`] or [`Clock::set`].
    pub fn manual(start: OffsetDateTime) -> Self {
        let nanos = i64::try_from(start.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        Self {
            manual: Some(Arc::new(AtomicI64::new(nanos))),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        match &self.manual {
            None => OffsetDateTime::now_utc(),
            Some(nanos) => {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos.load(Ordering::SeqCst)))
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            }
        }
    }

    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> i64 {
        i64::try_from(self.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// The current time as a fixed-width timestamp (see [`timestamp`]).
    pub fn timestamp(&self) -> String {
        timestamp(self.now())
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        if let Some(nanos) = &self.manual {
            let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
            nanos.fetch_add(by, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock; the system clock cannot be set.
    pub fn set(&self, to: OffsetDateTime) {
        if let Some(nanos) = &self.manual {
            let to = i64::try_from(to.unix_timestamp_nanos()).unwrap_or(i64::MAX);
            nanos.store(to, Ordering::SeqCst);
        }
    }
}

/// `2026-12-01T19:36:50.123456Z`: UTC, always six fractional digits.
pub fn timestamp(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    // Years 0..=9999 always format; anything else is not a time Portico can see.
    at.to_offset(UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_have_one_width_and_sort_as_time() {
        let whole = datetime!(2026-12-01 10:00:07 UTC);
        let stamps: Vec<String> = [0u64, 1_000, 500_000_000, 999_999_000]
            .iter()
            .map(|n| timestamp(whole + Duration::from_nanos(*n)))
            .collect();
        assert_eq!(stamps[0], "2026-12-01T10:00:07.000000Z");
        assert_eq!(stamps[2], "2026-12-01T10:00:07.500000Z");
        assert!(stamps.iter().all(|s| s.len() == stamps[0].len()));
        let mut sorted = stamps.clone();
        sorted.sort();
        assert_eq!(sorted, stamps, "string order is time order");
        // Another offset is written as UTC.
        let east = datetime!(2026-12-01 12:00:07 +02:00);
        assert_eq!(timestamp(east), "2026-12-01T10:00:07.000000Z");
    }

    #[test]
    fn a_manual_clock_moves_only_by_hand() {
        let start = datetime!(2026-12-01 10:00:00 UTC);
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(61));
        assert_eq!(clock.unix(), start.unix_timestamp() + 61);
        let copy = clock.clone();
        copy.advance(Duration::from_secs(1));
        assert_eq!(
            clock.unix(),
            start.unix_timestamp() + 62,
            "clones share the time"
        );
        clock.set(start);
        assert_eq!(copy.now(), start);
        let system = Clock::system();
        let before = system.unix();
        system.advance(Duration::from_secs(3600));
        assert!(system.unix() - before < 60, "the system clock is not moved");
    }
}
