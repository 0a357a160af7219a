//! Portal analytics over a period of days, read through the by-day index (`gsi1`): the portal
//! sessions created each day and the audit entries recorded each day. Never a table scan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime};
use tokio::task::JoinSet;

use crate::ids::CustomerId;
use crate::portal::Workflow;
use crate::store::{
    AuditEntry, AuditSource, CancellationDetails, PortalSessionRecord, StoreError, Table,
};
use crate::sync::ChangeKind;

/// The longest period one request may cover.
pub const MAX_DAYS: i64 = 366;
/// Days queried at once: enough to hide round trips, few enough not to throttle the index.
const DAY_QUERY_CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnalyticsError {
    #[error("`{field}` must be a date like 2026-01-31, got `{value}`")]
    InvalidDate { field: &'static str, value: String },
    #[error("end_date {end} is before start_date {start}")]
    EndBeforeStart { start: Date, end: Date },
    #[error("the period covers {0} days; at most {MAX_DAYS} are allowed")]
    TooLong(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Inclusive days, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: Date,
    pub end: Date,
}

impl Period {
    /// From the query's `start_date` / `end_date`; without them, the 30 days ending `today`.
    pub fn parse(
        start: Option<&str>,
        end: Option<&str>,
        today: Date,
    ) -> Result<Self, AnalyticsError> {
        let date = |field: &'static str, value: &str| {
            let invalid = || AnalyticsError::InvalidDate {
                field,
                value: value.chars().take(40).collect(),
            };
            // Exactly YYYY-MM-DD: `[year]` alone would also take signs and longer years.
            let shaped = value.len() == 10
                && value.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if !shaped {
                return Err(invalid());
            }
            Date::parse(value, format_description!("[year]-[month]-[day]")).map_err(|_| invalid())
        };
        let end = end
            .map(|v| date("end_date", v))
            .transpose()?
            .unwrap_or(today);
        let start = match start {
            Some(v) => date("start_date", v)?,
            None => end.checked_sub(Duration::days(29)).unwrap_or(Date::MIN),
        };
        if end < start {
            return Err(AnalyticsError::EndBeforeStart { start, end });
        }
        let days = (end - start).whole_days() + 1;
        if days > MAX_DAYS {
            return Err(AnalyticsError::TooLong(days));
        }
        Ok(Period { start, end })
    }

    pub fn days(&self) -> Vec<String> {
        let mut days = Vec::new();
        let mut day = self.start;
        while day <= self.end {
            days.push(day.to_string());
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
        days
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationStats {
    /// Returned sessions the figures are computed from.
    pub samples: usize,
    pub average_duration_minutes: Option<f64>,
    pub median_duration_minutes: Option<f64>,
    pub p90_duration_minutes: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodView {
    pub start_date: String,
    pub end_date: String,
    pub days: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortalAnalytics {
    pub total_sessions: usize,
    pub unique_customers: usize,
    pub sessions_by_workflow: BTreeMap<String, usize>,
    /// `[feature, uses]`, most used first.
    pub most_used_features: Vec<(String, usize)>,
    pub returned_sessions: usize,
    /// Returned sessions / sessions (0 without sessions).
    pub return_rate: f64,
    /// Created → first return.
    pub session_duration_stats: DurationStats,
    /// `[reason, cancellations]`, most frequent first.
    pub cancellation_reasons: Vec<(String, usize)>,
    pub retention_offers: RetentionStats,
    pub period: PeriodView,
}

/// Retention coupons offered by cancellation sessions, and how many were taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionStats {
    /// Sessions whose cancellation flow offered a coupon.
    pub shown: usize,
    /// Of those, sessions after which that coupon's discount was applied to the customer's
    /// subscription (in the audit trail of the period).
    pub accepted: usize,
    /// accepted / shown (0 without offers).
    pub acceptance_rate: f64,
}

/// Runs `fetch` for every day, at most a few days at once (a new one starts as soon as one
/// finishes), and gathers the results.
async fn per_day<T, F, Fut>(table: &Table, days: &[String], fetch: F) -> Result<Vec<T>, StoreError>
where
    T: Send + 'static,
    F: Fn(Table, String) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>> + Send + 'static,
{
    let mut all = Vec::new();
    let mut pending = days.iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < DAY_QUERY_CONCURRENCY {
            match pending.next() {
                Some(day) => {
                    running.spawn(fetch(table.clone(), day.clone()));
                }
                None => break,
            }
        }
        match running.join_next().await {
            Some(joined) => {
                all.extend(joined.map_err(|e| StoreError::Unavailable(e.to_string()))??)
            }
            None => return Ok(all),
        }
    }
}

pub async fn portal_analytics(
    table: &Table,
    period: Period,
) -> Result<PortalAnalytics, AnalyticsError> {
    let days = period.days();
    let (sessions, audit) = tokio::join!(
        per_day(table, &days, |t, day| async move {
            t.portal_sessions_created_on(&day).await
        }),
        per_day(table, &days, |t, day| async move {
            t.audit_entries_on(&day).await
        }),
    );
    let (sessions, audit) = (sessions?, audit?);

    let customers: HashSet<&CustomerId> = sessions.iter().map(|s| &s.customer_id).collect();
    let mut sessions_by_workflow: BTreeMap<String, usize> = Workflow::ALL
        .iter()
        .map(|w| (w.as_str().to_string(), 0))
        .collect();
    for session in &sessions {
        *sessions_by_workflow
            .entry(session.workflow.clone())
            .or_default() += 1;
    }
    let durations: Vec<f64> = sessions
        .iter()
        .filter_map(|s| {
            let created = OffsetDateTime::parse(&s.created_at, &Rfc3339).ok()?;
            let returned = OffsetDateTime::parse(s.returned_at.as_deref()?, &Rfc3339).ok()?;
            Some((returned - created).as_seconds_f64().max(0.0) / 60.0)
        })
        .collect();
    let returned_sessions = sessions.iter().filter(|s| s.returned_at.is_some()).count();

    let portal_use = portal_use(&audit, &customers);
    let retention_offers = retention(&sessions, &audit);
    let total = sessions.len();
    Ok(PortalAnalytics {
        total_sessions: total,
        unique_customers: customers.len(),
        sessions_by_workflow,
        most_used_features: ranked(portal_use.features),
        returned_sessions,
        return_rate: if total == 0 {
            0.0
        } else {
            round(returned_sessions as f64 / total as f64, 4)
        },
        session_duration_stats: duration_stats(durations),
        cancellation_reasons: ranked(portal_use.cancellation_reasons),
        retention_offers,
        period: PeriodView {
            start_date: period.start.to_string(),
            end_date: period.end.to_string(),
            days: days.len(),
        },
    })
}

/// What portal users did, from the audit trail.
struct PortalUse {
    features: HashMap<String, usize>,
    cancellation_reasons: HashMap<String, usize>,
}

/// Counts the changes synced for the customers who opened the portal (Portico's own account
/// endpoints excluded). A sync that changed several fields of one feature is one use; a
/// cancellation is one use per subscription, though it shows first as scheduled and later as
/// ended, unless Stripe ended it for non-payment; its reason is the customer's feedback if any
/// entry recorded one.
fn portal_use(audit: &[AuditEntry], customers: &HashSet<&CustomerId>) -> PortalUse {
    let mut seen: HashSet<(String, &'static str)> = HashSet::new();
    let mut features: HashMap<String, usize> = HashMap::new();
    let mut cancellations: HashMap<String, Option<&CancellationDetails>> = HashMap::new();
    for entry in audit {
        if entry.source == AuditSource::Account || !customers.contains(&entry.customer_id) {
            continue;
        }
        let change = &entry.change;
        if let Some(subscription) = change.cancelled_subscription() {
            // Counted below, once it is known whether the customer chose it.
            let details = cancellations.entry(subscription.to_string()).or_default();
            if details.is_none_or(|d| d.feedback.is_none()) && entry.cancellation.is_some() {
                *details = entry.cancellation.as_ref();
            }
            continue;
        }
        let feature = match change.kind {
            ChangeKind::PaymentMethod => "payment_method_update",
            ChangeKind::Customer => "customer_update",
            ChangeKind::Subscription if change.field.ends_with(".price") => "subscription_update",
            ChangeKind::Subscription
            | ChangeKind::Omitted
            | ChangeKind::Link
            | ChangeKind::Purchase => continue,
        };
        let sync = format!(
            "{}#{}",
            entry.customer_id,
            entry.reference.as_deref().unwrap_or(&entry.at)
        );
        if seen.insert((sync, feature)) {
            *features.entry(feature.to_string()).or_default() += 1;
        }
    }
    let mut cancellation_reasons: HashMap<String, usize> = HashMap::new();
    for details in cancellations.into_values() {
        // Stripe ending a subscription for non-payment is no use of the portal.
        let involuntary = details
            .and_then(|d| d.reason.as_deref())
            .is_some_and(|r| r.starts_with("payment_"));
        if !involuntary {
            *features.entry("subscription_cancel".into()).or_default() += 1;
        }
        let reason = details
            .and_then(|d| {
                d.feedback
                    .clone()
                    .or_else(|| d.reason.clone().filter(|r| r != "cancellation_requested"))
            })
            .unwrap_or_else(|| "unspecified".into());
        *cancellation_reasons.entry(reason).or_default() += 1;
    }
    PortalUse {
        features,
        cancellation_reasons,
    }
}

/// An offer counts as accepted when a discount with the offered coupon was applied to the
/// session's customer at or after the session opened.
fn retention(sessions: &[PortalSessionRecord], audit: &[AuditEntry]) -> RetentionStats {
    let offered: Vec<(&PortalSessionRecord, &str)> = sessions
        .iter()
        .filter_map(|s| Some((s, s.retention_offer.as_deref()?)))
        .collect();
    let accepted = offered
        .iter()
        .filter(|(session, coupon)| {
            audit.iter().any(|e| {
                e.customer_id == session.customer_id
                    && e.at >= session.created_at
                    && e.change.field.ends_with(".discount")
                    && e.change.to["coupon_id"] == *coupon
            })
        })
        .count();
    let shown = offered.len();
    RetentionStats {
        shown,
        accepted,
        acceptance_rate: if shown == 0 {
            0.0
        } else {
            round(accepted as f64 / shown as f64, 4)
        },
    }
}

fn ranked(counts: HashMap<String, usize>) -> Vec<(String, usize)> {
    let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked
}

fn round(value: f64, places: i32) -> f64 {
    let factor = 10f64.powi(places);
    (value * factor).round() / factor
}

/// Average, median (mean of the middle two for an even count) and p90 (nearest rank), in
/// minutes rounded to hundredths.
fn duration_stats(mut minutes: Vec<f64>) -> DurationStats {
    minutes.sort_by(f64::total_cmp);
    let n = minutes.len();
    if n == 0 {
        return DurationStats {
            samples: 0,
            average_duration_minutes: None,
            median_duration_minutes: None,
            p90_duration_minutes: None,
        };
    }
    let median = if n % 2 == 1 {
        minutes[n / 2]
    } else {
        (minutes[n / 2 - 1] + minutes[n / 2]) / 2.0
    };
    let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
    DurationStats {
        samples: n,
        average_duration_minutes: Some(round(minutes.iter().sum::<f64>() / n as f64, 2)),
        median_duration_minutes: Some(round(median, 2)),
        p90_duration_minutes: Some(round(minutes[rank - 1], 2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn periods_parse_strictly_and_are_bounded() {
        let today = date!(2026 - 11 - 29);
        let p = Period::parse(Some("2026-01-01"), Some("2026-01-31"), today).unwrap();
        assert_eq!(p.days().len(), 31);
        let default = Period::parse(None, None, today).unwrap();
        assert_eq!((default.start, default.end), (date!(2026 - 10 - 31), today));
        assert!(matches!(
            Period::parse(Some("2026-1-1"), None, today),
            Err(AnalyticsError::InvalidDate {
                field: "start_date",
                ..
            })
        ));
        assert!(matches!(
            Period::parse(Some("2026-02-30"), Some("2026-03-01"), today),
            Err(AnalyticsError::InvalidDate { .. })
        ));
        assert!(matches!(
            Period::parse(Some("2026-03-02"), Some("2026-03-01"), today),
            Err(AnalyticsError::EndBeforeStart { .. })
        ));
        assert!(Period::parse(Some("2024-01-01"), Some("2024-12-31"), today).is_ok());
        assert_eq!(
            Period::parse(Some("2025-01-01"), Some("2026-01-02"), today),
            Err(AnalyticsError::TooLong(367))
        );
    }

    #[test]
    fn duration_stats_use_the_middle_and_the_nearest_rank() {
        let stats = duration_stats(vec![10.0, 1.0, 4.0, 3.0]);
        assert_eq!(stats.median_duration_minutes, Some(3.5));
        assert_eq!(stats.average_duration_minutes, Some(4.5));
        assert_eq!(stats.p90_duration_minutes, Some(10.0));
        assert_eq!(duration_stats(vec![]).median_duration_minutes, None);
    }
}
