//! Portal analytics over a period of days, from the per-day aggregates the portal session, the
//! return and the sync add to as things happen (`store::aggregates`): one `Query` per period.
//!
//! What counts as portal use is decided when it happens: a change recorded by a portal return,
//! or by a webhook or reconcile sync while the customer's newest portal session was open (from
//! its creation to shortly after its first return, at most until its return link expires).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime};

use crate::ids::CustomerId;
use crate::portal::Workflow;
use crate::portal::RETURN_WINDOW_SECONDS;
use crate::store::{
    bucket_width, counter, counters, AuditEntry, AuditSource, CustomerMark, DayAggregate,
    PortalSessionRecord, PortalVisit, StoreError, Table, Transaction, VISIT_AFTER_RETURN_SECONDS,
};
use crate::sync::ChangeKind;

/// The longest period one request may cover.
pub const MAX_DAYS: i64 = 366;

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

    /// The [`MAX_DAYS`] days ending `end`.
    pub fn longest(end: Date) -> Self {
        Period {
            start: end
                .checked_sub(Duration::days(MAX_DAYS - 1))
                .unwrap_or(Date::MIN),
            end,
        }
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
    /// True when some day had more customers than are kept exactly: `unique_customers` is then
    /// a HyperLogLog estimate (standard error about 6.5%).
    pub unique_customers_estimated: bool,
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
    /// Of those, sessions during whose visit that coupon became the subscription's discount.
    pub accepted: usize,
    /// accepted / shown (0 without offers).
    pub acceptance_rate: f64,
}

pub async fn portal_analytics(
    table: &Table,
    period: Period,
) -> Result<PortalAnalytics, AnalyticsError> {
    let aggregates = table
        .day_aggregates(&period.start.to_string(), &period.end.to_string())
        .await?;
    Ok(figures(&aggregates, period))
}

/// The period's figures from its days' shard items.
fn figures(aggregates: &[DayAggregate], period: Period) -> PortalAnalytics {
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    let mut customers: HashSet<&str> = HashSet::new();
    let mut sketch: Vec<u16> = Vec::new();
    let mut overflow = false;
    for day in aggregates {
        for (name, n) in &day.counters {
            *totals.entry(name.as_str()).or_default() += n;
        }
        customers.extend(day.customers.iter().map(String::as_str));
        sketch.extend(&day.sketch);
        overflow |= day.overflow;
    }
    let total = |name: &str| usize::try_from(totals.get(name).copied().unwrap_or(0)).unwrap_or(0);
    let family = |prefix: &str| -> Vec<(String, usize)> {
        let mut ranked: Vec<(String, usize)> = totals
            .iter()
            .filter_map(|(name, n)| {
                let value = name.strip_prefix(prefix)?;
                let n = usize::try_from(*n).ok().filter(|n| *n > 0)?;
                Some((value.to_string(), n))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked
    };

    let mut sessions_by_workflow: BTreeMap<String, usize> = Workflow::ALL
        .iter()
        .map(|w| (w.as_str().to_string(), 0))
        .collect();
    for (workflow, n) in family(counters::WORKFLOW) {
        *sessions_by_workflow.entry(workflow).or_default() += n;
    }
    let (unique_customers, unique_customers_estimated) = if overflow {
        (estimate_customers(&customers, &sketch), true)
    } else {
        (customers.len(), false)
    };
    let buckets: Vec<(i64, usize)> = {
        let mut buckets: Vec<(i64, usize)> = family(counters::DURATION_BUCKET)
            .into_iter()
            .filter_map(|(lower, n)| Some((lower.parse().ok()?, n)))
            .collect();
        buckets.sort_unstable();
        buckets
    };
    let sessions = total(counters::SESSIONS);
    let returned = total(counters::RETURNED);
    let shown = total(counters::OFFERS_SHOWN);
    let accepted = total(counters::OFFERS_ACCEPTED);
    let duration_ms = totals.get(counters::DURATION_MS).copied().unwrap_or(0);
    PortalAnalytics {
        total_sessions: sessions,
        unique_customers,
        unique_customers_estimated,
        sessions_by_workflow,
        most_used_features: family(counters::FEATURE),
        returned_sessions: returned,
        return_rate: ratio(returned, sessions),
        session_duration_stats: duration_stats(returned, duration_ms, &buckets),
        cancellation_reasons: family(counters::REASON),
        retention_offers: RetentionStats {
            shown,
            accepted,
            acceptance_rate: ratio(accepted, shown),
        },
        period: PeriodView {
            start_date: period.start.to_string(),
            end_date: period.end.to_string(),
            days: period.days().len(),
        },
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round(part as f64 / whole as f64, 4)
    }
}

/// HyperLogLog over 256 registers (standard error about 6.5%), from the exact sets' hashes and
/// the sketch entries of the customers past them.
fn estimate_customers(hashes: &HashSet<&str>, sketch: &[u16]) -> usize {
    let mut registers = [0u8; 256];
    let mut note = |register: usize, rank: u8| {
        if let Some(r) = registers.get_mut(register) {
            *r = (*r).max(rank);
        }
    };
    for mark in hashes.iter().filter_map(|h| CustomerMark::parse(h)) {
        note(usize::from(mark.register), mark.rank);
    }
    for entry in sketch {
        note(usize::from(entry / 64), (entry % 64) as u8);
    }
    let m = registers.len() as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = registers.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
    let raw = alpha * m * m / sum;
    let empty = registers.iter().filter(|r| **r == 0).count();
    let estimate = if raw <= 2.5 * m && empty > 0 {
        m * (m / empty as f64).ln()
    } else {
        raw
    };
    estimate.round() as usize
}

fn round(value: f64, places: i32) -> f64 {
    let factor = 10f64.powi(places);
    (value * factor).round() / factor
}

/// Average (exact, from the summed milliseconds), median (mean of the middle two for an even
/// count) and p90 (nearest rank), in minutes rounded to hundredths. A rank's value is its
/// bucket's middle, within half a bucket of the true duration: 0.5 s under 64 s, 1/128 of the
/// duration above.
fn duration_stats(samples: usize, total_ms: i64, buckets: &[(i64, usize)]) -> DurationStats {
    if samples == 0 {
        return DurationStats {
            samples: 0,
            average_duration_minutes: None,
            median_duration_minutes: None,
            p90_duration_minutes: None,
        };
    }
    // The value of the k-th smallest duration (1-based), in seconds.
    let at_rank = |k: usize| {
        let mut seen = 0;
        for (lower, n) in buckets {
            seen += n;
            if seen >= k {
                return *lower as f64 + bucket_width(*lower) as f64 / 2.0;
            }
        }
        buckets.last().map_or(0.0, |(lower, _)| {
            *lower as f64 + bucket_width(*lower) as f64 / 2.0
        })
    };
    let n = samples;
    let median = if n % 2 == 1 {
        at_rank(n / 2 + 1)
    } else {
        (at_rank(n / 2) + at_rank(n / 2 + 1)) / 2.0
    };
    let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
    let minutes = |seconds: f64| Some(round(seconds / 60.0, 2));
    DurationStats {
        samples: n,
        average_duration_minutes: Some(round(total_ms as f64 / n as f64 / 60_000.0, 2)),
        median_duration_minutes: minutes(median),
        p90_duration_minutes: minutes(at_rank(rank)),
    }
}

/// One sync's audited changes of one customer, for [`count_portal_use`].
pub struct RecordedChanges<'a> {
    pub customer: &'a CustomerId,
    pub source: AuditSource,
    /// When the sync recorded them (its audit entries' `at`) and that as unix time.
    pub at: &'a str,
    pub at_unix: i64,
    pub entries: &'a [AuditEntry],
    /// The customer's newest portal session, as the sync's ticket read it.
    pub visit: Option<&'a PortalVisit>,
    /// Subscriptions already set to cancel before this sync: their end is not a new
    /// cancellation.
    pub already_cancelling: &'a dyn Fn(&str) -> bool,
}

/// Adds one sync's portal use to the day's counters, in the transaction that records it:
/// features (a sync that changed several fields of one feature is one use), cancellations (one
/// per subscription, when first seen: scheduled or at once; its reason is the customer's
/// feedback, else Stripe's reason, as recorded then; Stripe ending a subscription for
/// non-payment is no use of the portal but its reason counts), and the session's retention
/// offer when its coupon became the customer's discount.
pub fn count_portal_use(tx: &mut Transaction, changes: &RecordedChanges<'_>) {
    let in_portal = match changes.source {
        AuditSource::PortalReturn => true,
        AuditSource::Webhook | AuditSource::Reconcile | AuditSource::Support => changes
            .visit
            .is_some_and(|v| v.covers(changes.at, changes.at_unix)),
        AuditSource::Account | AuditSource::Import => false,
    };
    if !in_portal {
        return;
    }
    let day = changes.at.get(..10).unwrap_or_default();
    let shard = CustomerMark::of(changes.customer).shard;
    let mut features: HashSet<&'static str> = HashSet::new();
    let mut cancelled: HashSet<&str> = HashSet::new();
    let mut offer_taken = false;
    for entry in changes.entries {
        let change = &entry.change;
        if let Some(subscription) = change.cancelled_subscription() {
            let ends_scheduled =
                change.field.ends_with(".status") && (changes.already_cancelling)(subscription);
            if ends_scheduled || !cancelled.insert(subscription) {
                continue;
            }
            let details = entry.cancellation.as_ref();
            let involuntary = details
                .and_then(|d| d.reason.as_deref())
                .is_some_and(|r| r.starts_with("payment_"));
            if !involuntary {
                tx.count(
                    day,
                    shard,
                    &counter(counters::FEATURE, "subscription_cancel"),
                    1,
                );
            }
            let reason = details
                .and_then(|d| {
                    d.feedback
                        .clone()
                        .or_else(|| d.reason.clone().filter(|r| r != "cancellation_requested"))
                })
                .unwrap_or_else(|| "unspecified".into());
            tx.count(day, shard, &counter(counters::REASON, &reason), 1);
            continue;
        }
        let offer = changes.visit.and_then(|v| v.offer.as_deref());
        if change.field.ends_with(".discount")
            && offer.is_some_and(|coupon| change.to["coupon_id"] == coupon)
        {
            offer_taken = true;
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
        if features.insert(feature) {
            tx.count(day, shard, &counter(counters::FEATURE, feature), 1);
        }
    }
    if let Some(visit) = changes.visit.filter(|_| offer_taken) {
        // On the session's own day, beside the offer shown.
        let opened = visit.opened_at.get(..10).unwrap_or_default();
        tx.count(opened, shard, counters::OFFERS_ACCEPTED, 1);
    }
}

/// What a backfill counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// The first day the aggregates were written live; audit entries are counted before it.
    pub cutover: String,
    pub sessions_counted: usize,
    pub audit_days_counted: usize,
}

/// Counts into the aggregates what happened before they existed, from the session records and
/// audit entries still stored (those past their retention are gone: run it when upgrading).
/// Safe to run again, or while Portico serves: a session is counted once (its `counted` flag is
/// set with its counts), and a day's audit entries once (a marker item is written with them).
/// The audit entries of the cut-over day itself are not counted (the live writes counted that
/// day's later part), nor entries of syncs in flight during the upgrade.
pub async fn backfill(
    table: &Table,
    period: Period,
    today: Date,
) -> Result<BackfillReport, AnalyticsError> {
    let cutover = table.aggregates_cutover(&today.to_string()).await?;
    let mut report = BackfillReport {
        cutover: cutover.clone(),
        ..Default::default()
    };
    // The day before the period too: its sessions may still be open on the period's first day.
    let mut previous_sessions = match period.start.previous_day() {
        Some(day) => table.portal_sessions_created_on(&day.to_string()).await?,
        None => Vec::new(),
    };
    let mut cancelling: HashSet<(CustomerId, String)> = HashSet::new();
    for day in period.days() {
        let sessions = table.portal_sessions_created_on(&day).await?;
        for listed in sessions.iter().filter(|s| !s.counted) {
            // The index lags: count what the table holds now, and again if a return slips in.
            for _ in 0..3 {
                let Some(record) = table.get_portal_session(&listed.reference).await? else {
                    break;
                };
                if record.counted {
                    break;
                }
                match table.count_stored_session(&record).await {
                    Ok(()) => {
                        report.sessions_counted += 1;
                        break;
                    }
                    Err(StoreError::ConditionFailed) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if day < cutover && !table.audit_day_backfilled(&day).await? {
            let entries = table.audit_entries_on(&day).await?;
            let open: Vec<&PortalSessionRecord> =
                previous_sessions.iter().chain(&sessions).collect();
            let mut tx = Transaction::new();
            tx.mark_audit_day_backfilled(table, &day)?;
            count_stored_day(&mut tx, &entries, &open, &mut cancelling);
            match table.commit(tx).await {
                Ok(()) => report.audit_days_counted += 1,
                // Another run counted the day meanwhile.
                Err(StoreError::TransactionConditionsFailed(failed)) if failed.contains(&0) => {}
                Err(e) => return Err(e.into()),
            }
        }
        previous_sessions = sessions;
    }
    Ok(report)
}

/// One stored day's audit entries as [`count_portal_use`] would have counted them live: grouped
/// by sync, each against the customer's newest session then.
fn count_stored_day(
    tx: &mut Transaction,
    entries: &[AuditEntry],
    sessions: &[&PortalSessionRecord],
    cancelling: &mut HashSet<(CustomerId, String)>,
) {
    let mut syncs: BTreeMap<(&str, &CustomerId, Option<&str>), Vec<AuditEntry>> = BTreeMap::new();
    for entry in entries {
        syncs
            .entry((&entry.at, &entry.customer_id, entry.reference.as_deref()))
            .or_default()
            .push(entry.clone());
    }
    for ((at, customer, _), entries) in syncs {
        let Ok(at_time) = OffsetDateTime::parse(at, &Rfc3339) else {
            continue;
        };
        let visit = sessions
            .iter()
            .filter(|s| s.customer_id == *customer && s.created_at.as_str() <= at)
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
            .map(|s| stored_visit(s));
        let known: Vec<String> = cancelling
            .iter()
            .filter(|(c, _)| c == customer)
            .map(|(_, s)| s.clone())
            .collect();
        count_portal_use(
            tx,
            &RecordedChanges {
                customer,
                source: entries[0].source,
                at,
                at_unix: at_time.unix_timestamp(),
                entries: &entries,
                visit: visit.as_ref(),
                already_cancelling: &|id| known.iter().any(|k| k == id),
            },
        );
        for entry in &entries {
            if let Some(subscription) = entry.change.cancelled_subscription() {
                cancelling.insert((customer.clone(), subscription.to_string()));
            }
        }
    }
}

/// A stored session's visit: open from its creation until shortly after its return, at most
/// its return window (sessions stored without one: the window sessions have now).
fn stored_visit(session: &PortalSessionRecord) -> PortalVisit {
    let unix = |t: &str| OffsetDateTime::parse(t, &Rfc3339).map(|t| t.unix_timestamp());
    let created = unix(&session.created_at).unwrap_or(0);
    let mut until = session
        .return_until
        .unwrap_or(created + RETURN_WINDOW_SECONDS);
    if let Some(Ok(returned)) = session.returned_at.as_deref().map(unix) {
        until = until.min(returned + VISIT_AFTER_RETURN_SECONDS);
    }
    PortalVisit {
        opened_at: session.created_at.clone(),
        until,
        offer: session.retention_offer.clone(),
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
    fn duration_stats_use_bucket_middles_the_middle_and_the_nearest_rank() {
        // 60 s, 180 s, 240 s and 600 s: buckets [60,61), [180,182), [240,242), [600,608).
        let buckets = [(60, 1), (180, 1), (240, 1), (600, 1)];
        let stats = duration_stats(4, 1_080_000, &buckets);
        assert_eq!(stats.average_duration_minutes, Some(4.5));
        // (181 + 241) / 2 s, 604 s.
        assert_eq!(stats.median_duration_minutes, Some(3.52));
        assert_eq!(stats.p90_duration_minutes, Some(10.07));
        assert_eq!(duration_stats(0, 0, &[]).median_duration_minutes, None);
    }

    #[test]
    fn the_estimate_is_near_the_truth_past_the_exact_sets() {
        let marks: Vec<CustomerMark> = (0..20_000)
            .map(|i| CustomerMark::of(&CustomerId::parse(format!("cus_many{i}")).unwrap()))
            .collect();
        let hashes: HashSet<&str> = marks[..300].iter().map(|m| m.hash.as_str()).collect();
        let sketch: Vec<u16> = marks[300..]
            .iter()
            .map(CustomerMark::sketch_entry)
            .collect();
        let estimate = estimate_customers(&hashes, &sketch) as f64;
        assert!((estimate - 20_000.0).abs() < 20_000.0 * 0.13, "{estimate}");
        let few: HashSet<&str> = marks[..50].iter().map(|m| m.hash.as_str()).collect();
        let small = estimate_customers(&few, &[]) as f64;
        assert!((small - 50.0).abs() <= 5.0, "{small}");
    }
}
