use std::collections::{BTreeMap, HashSet};

use lambda_http::http::StatusCode;
use portico_testkit::{call, fixtures};
use serde_json::{json, Value};
use shared::analytics::{
    backfill, count_portal_use, portal_analytics, Period, PortalAnalytics, RecordedChanges,
};
use shared::ids::{CustomerId, UserId};
use shared::portal::Workflow;
use shared::services::Services;
use shared::store::{
    AuditEntry, AuditSource, CancellationDetails, PortalSessionRecord, PortalVisit, Table,
    Transaction,
};
use shared::sync::{Change, ChangeKind};
use shared::testing::operations::OperationLog;
use shared::testing::TestStack;
use time::format_description::well_known::Rfc3339;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

use super::handle;

/// A small deterministic generator, so the seeded month is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn customer(i: usize) -> CustomerId {
    CustomerId::parse(format!("cus_analytics{i}")).unwrap()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

struct Seeded {
    /// (customer, workflow, minutes to return) of every session inside October 2026.
    in_period: Vec<(usize, Workflow, Option<f64>)>,
}

async fn seed_sessions(table: &Table) -> Seeded {
    let mut rng = Lcg(7);
    let mut in_period = Vec::new();
    let start = datetime!(2026-10-01 00:00:00 UTC);
    for i in 0..160usize {
        // The first sessions give customers 0..=10 one each; customer 11 never opens the portal
        // in October (its sessions fall just outside).
        let who = if i <= 10 { i } else { rng.below(11) as usize };
        let workflow = Workflow::ALL[rng.below(5) as usize];
        let created = start + Duration::seconds(rng.below(31 * 86_400) as i64);
        let returned =
            (rng.below(4) > 0).then(|| Duration::seconds(30 + rng.below(120 * 60) as i64));
        insert_session(table, i, who, workflow, created, returned).await;
        in_period.push((who, workflow, returned.map(|d| d.as_seconds_f64() / 60.0)));
    }
    insert_session(
        table,
        900,
        11,
        Workflow::PaymentUpdate,
        datetime!(2026-09-30 23:59:59 UTC),
        Some(Duration::minutes(3)),
    )
    .await;
    insert_session(
        table,
        901,
        11,
        Workflow::PaymentUpdate,
        datetime!(2026-11-01 00:00:00 UTC),
        None,
    )
    .await;
    Seeded { in_period }
}

async fn insert_session(
    table: &Table,
    n: usize,
    who: usize,
    workflow: Workflow,
    created: OffsetDateTime,
    returned: Option<Duration>,
) {
    table
        .insert_portal_session(&PortalSessionRecord {
            reference: format!("{n:032x}"),
            user_id: UserId::parse(format!("user-{who}")).unwrap(),
            customer_id: customer(who),
            workflow,
            stripe_session_id: format!("bps_{n}"),
            configuration_id: "bpc_analytics".into(),
            return_url: "https://app.portico.test/x".into(),
            created_at: rfc3339(created),
            returned_at: returned.map(|d| rfc3339(created + d)),
            action: None,
            return_until: None,
            retention_offer: None,
            counted: false,
        })
        .await
        .unwrap();
}

fn change(kind: ChangeKind, field: &str, from: Value, to: Value) -> Change {
    Change {
        kind,
        field: field.into(),
        from,
        to,
        message: field.into(),
    }
}

async fn seed_audit(table: &Table) {
    let sub = |id: &str, what: &str| format!("subscriptions.{id}.{what}");
    let entries = [
        // Two fields of one payment method update in one sync: one use.
        (
            0,
            AuditSource::PortalReturn,
            "ret-0",
            "2026-10-05T10:00:00Z",
            change(
                ChangeKind::PaymentMethod,
                "default_payment_method",
                json!("visa 4242"),
                json!("mastercard 4444"),
            ),
        ),
        (
            0,
            AuditSource::PortalReturn,
            "ret-0",
            "2026-10-05T10:00:00Z",
            change(
                ChangeKind::PaymentMethod,
                "payment_methods",
                json!(1),
                json!(2),
            ),
        ),
        (
            1,
            AuditSource::Webhook,
            "evt_1",
            "2026-10-07T08:00:00Z",
            change(
                ChangeKind::PaymentMethod,
                "default_payment_method",
                json!(null),
                json!("visa 4242"),
            ),
        ),
        (
            2,
            AuditSource::PortalReturn,
            "ret-2",
            "2026-10-08T09:00:00Z",
            change(
                ChangeKind::Customer,
                "email",
                json!("a@x.test"),
                json!("b@x.test"),
            ),
        ),
        // A resumed subscription is no cancellation.
        (
            2,
            AuditSource::Webhook,
            "evt_2",
            "2026-10-09T09:00:00Z",
            change(
                ChangeKind::Subscription,
                &sub("sub_a2", "cancel_at"),
                json!(1_800_000_000),
                json!(null),
            ),
        ),
        (
            3,
            AuditSource::Webhook,
            "evt_3",
            "2026-10-09T12:00:00Z",
            change(
                ChangeKind::Subscription,
                &sub("sub_a3", "price"),
                json!("price_pro_monthly"),
                json!("price_pro_yearly"),
            ),
        ),
        // Scheduled, then ended at the period end: one cancellation.
        (
            4,
            AuditSource::PortalReturn,
            "ret-4",
            "2026-10-10T12:00:00Z",
            change(
                ChangeKind::Subscription,
                &sub("sub_a4", "cancel_at"),
                json!(null),
                json!(1_793_000_000),
            ),
        ),
        (
            4,
            AuditSource::Webhook,
            "evt_4",
            "2026-10-28T12:00:00Z",
            change(
                ChangeKind::Subscription,
                &sub("sub_a4", "status"),
                json!("active"),
                json!("canceled"),
            ),
        ),
        // Portico's own account endpoint, not the portal.
        (
            5,
            AuditSource::Account,
            "req-5",
            "2026-10-11T12:00:00Z",
            change(
                ChangeKind::Subscription,
                &sub("sub_a5", "cancel_at"),
                json!(null),
                json!(1_793_000_000),
            ),
        ),
        // Not a portal user in October, and a change after the period.
        (
            11,
            AuditSource::Webhook,
            "evt_11",
            "2026-10-12T12:00:00Z",
            change(
                ChangeKind::PaymentMethod,
                "default_payment_method",
                json!(null),
                json!("visa 4242"),
            ),
        ),
        (
            0,
            AuditSource::Webhook,
            "evt_0b",
            "2026-11-02T12:00:00Z",
            change(
                ChangeKind::PaymentMethod,
                "default_payment_method",
                json!("mastercard 4444"),
                json!("visa 4242"),
            ),
        ),
    ];
    // Cancellations elsewhere in the month: (customer, source, reference, day, Stripe's reason,
    // the customer's feedback). Customer 8's falls before the period, customer 11 is no portal user.
    let cancellations = [
        (
            6,
            AuditSource::Webhook,
            "evt_6",
            "2026-10-20T12:00:00Z",
            "cancellation_requested",
            Some("too_expensive"),
        ),
        (
            7,
            AuditSource::PortalReturn,
            "ret-7",
            "2026-10-21T12:00:00Z",
            "cancellation_requested",
            None,
        ),
        (
            9,
            AuditSource::Webhook,
            "evt_9",
            "2026-10-03T12:00:00Z",
            "payment_failed",
            None,
        ),
        (
            8,
            AuditSource::Webhook,
            "evt_8",
            "2026-09-15T12:00:00Z",
            "cancellation_requested",
            Some("unused"),
        ),
        (
            11,
            AuditSource::Webhook,
            "evt_11c",
            "2026-10-15T12:00:00Z",
            "cancellation_requested",
            Some("unused"),
        ),
    ];
    let details = |reason: &str, feedback: Option<&str>| {
        Some(CancellationDetails {
            reason: Some(reason.into()),
            feedback: feedback.map(str::to_string),
        })
    };
    let mut all: Vec<AuditEntry> = entries
        .into_iter()
        .map(|(who, source, reference, at, change)| AuditEntry {
            customer_id: customer(who),
            source,
            reference: Some(reference.into()),
            at: at.into(),
            // Sub 4's feedback is given when the cancellation is scheduled, as in Stripe's portal.
            cancellation: match reference {
                "req-5" => details("cancellation_requested", None),
                "ret-4" | "evt_4" => details("cancellation_requested", Some("too_expensive")),
                _ => None,
            },
            change,
        })
        .collect();
    for (who, source, reference, at, reason, feedback) in cancellations {
        all.push(AuditEntry {
            customer_id: customer(who),
            source,
            reference: Some(reference.into()),
            at: at.into(),
            change: change(
                ChangeKind::Subscription,
                &sub(&format!("sub_a{who}"), "status"),
                json!("active"),
                json!("canceled"),
            ),
            cancellation: details(reason, feedback),
        });
    }
    // Each entry is one sync's record, counted as the sync counts it. Customer 11's portal
    // sessions were over before its changes; everyone else had one open.
    let visit = PortalVisit {
        opened_at: "2026-09-01T00:00:00.000000Z".into(),
        until: i64::MAX,
        offer: None,
    };
    for (n, entry) in all.iter().enumerate() {
        // The entries of one sync (two payment method fields of ret-0) are counted together.
        if all[..n].iter().any(|e| e.reference == entry.reference) {
            continue;
        }
        let sync: Vec<AuditEntry> = all
            .iter()
            .filter(|e| e.reference == entry.reference)
            .cloned()
            .collect();
        let mut tx = Transaction::new();
        for (k, e) in sync.iter().enumerate() {
            tx.put_audit_entry(table, e, n as u64, k).unwrap();
        }
        let at = OffsetDateTime::parse(&entry.at, &Rfc3339).unwrap();
        count_portal_use(
            &mut tx,
            &RecordedChanges {
                customer: &entry.customer_id,
                source: entry.source,
                at: &entry.at,
                at_unix: at.unix_timestamp(),
                entries: &sync,
                visit: (entry.customer_id != customer(11)).then_some(&visit),
                // Sub 4 was scheduled to cancel before its end was seen.
                already_cancelling: &|id| {
                    id == "sub_a4" && entry.reference.as_deref() == Some("evt_4")
                },
            },
        );
        table.commit(tx).await.unwrap();
    }
}

/// Services whose DynamoDB client records every operation it sends.
fn counted(stack: &TestStack) -> (Services, OperationLog) {
    let log = OperationLog::default();
    let mut services = stack.services();
    services.table = Table::new(log.dynamodb_client(&stack.dynamodb_aws), &stack.table_name);
    (services, log)
}

async fn analytics(
    services: &Services,
    token: &str,
    start: &str,
    end: &str,
) -> (StatusCode, Value) {
    let request = fixtures::request_with(
        "portal-analytics/analytics",
        &[("TOKEN", token), ("START", start), ("END", end)],
    );
    call!(handle(services, request))
}

fn close(actual: &Value, expected: f64) -> bool {
    actual
        .as_f64()
        .is_some_and(|a| (a - expected).abs() < 0.006)
}

#[tokio::test]
async fn a_seeded_month_matches_figures_computed_here_and_reads_only_by_day() {
    let stack = TestStack::new().await;
    let plain = stack.services().table;
    let seeded = seed_sessions(&plain).await;
    seed_audit(&plain).await;
    let (services, log) = counted(&stack);

    let (status, body) = analytics(
        &services,
        &stack.admin_token("boss"),
        "2026-10-01",
        "2026-10-31",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a = &body["analytics"];

    // Figures from the seed itself.
    let total = seeded.in_period.len();
    let customers: HashSet<usize> = seeded.in_period.iter().map(|s| s.0).collect();
    let mut by_workflow: BTreeMap<&str, usize> =
        Workflow::ALL.iter().map(|w| (w.as_str(), 0)).collect();
    for (_, workflow, _) in &seeded.in_period {
        *by_workflow.get_mut(workflow.as_str()).unwrap() += 1;
    }
    let mut minutes: Vec<f64> = seeded.in_period.iter().filter_map(|s| s.2).collect();
    minutes.sort_by(f64::total_cmp);
    let n = minutes.len();
    let average = minutes.iter().sum::<f64>() / n as f64;
    let median = if n.is_multiple_of(2) {
        (minutes[n / 2 - 1] + minutes[n / 2]) / 2.0
    } else {
        minutes[n / 2]
    };
    let p90 = minutes[(n * 9).div_ceil(10) - 1];

    assert_eq!(a["total_sessions"], total);
    assert_eq!(a["unique_customers"], customers.len());
    assert_eq!(
        customers.len(),
        11,
        "customer 11 only has sessions outside October"
    );
    assert_eq!(a["sessions_by_workflow"], json!(by_workflow));
    assert_eq!(a["returned_sessions"], n);
    assert!(
        close(&a["return_rate"], n as f64 / total as f64),
        "{}",
        a["return_rate"]
    );
    let stats = &a["session_duration_stats"];
    assert_eq!(stats["samples"], n);
    assert!(
        close(&stats["average_duration_minutes"], average),
        "{stats} vs {average}"
    );
    // Bucketed: within half a bucket (0.5 s, or 1/128 of the duration), plus the rounding.
    let within_a_bucket = |actual: &Value, exact: f64| {
        let bound = (0.5 / 60.0f64).max(exact / 128.0) + 0.005;
        actual.as_f64().is_some_and(|a| (a - exact).abs() <= bound)
    };
    assert!(
        within_a_bucket(&stats["median_duration_minutes"], median),
        "{stats} vs {median}"
    );
    assert!(
        within_a_bucket(&stats["p90_duration_minutes"], p90),
        "{stats} vs {p90}"
    );
    assert_eq!(a["unique_customers_estimated"], false);
    assert_eq!(
        a["most_used_features"],
        json!([
            ["subscription_cancel", 3],
            ["payment_method_update", 2],
            ["customer_update", 1],
            ["subscription_update", 1]
        ])
    );
    assert_eq!(
        a["cancellation_reasons"],
        json!([
            ["too_expensive", 2],
            ["payment_failed", 1],
            ["unspecified", 1]
        ])
    );
    assert_eq!(
        a["period"],
        json!({"start_date": "2026-10-01", "end_date": "2026-10-31", "days": 31})
    );

    // The month's aggregates in one query, and nothing else.
    assert_eq!(log.operations(), vec!["Query".to_string()]);

    // A day on its own: only what happened that day.
    let (_, body) = analytics(
        &services,
        &stack.admin_token("boss"),
        "2026-09-30",
        "2026-09-30",
    )
    .await;
    assert_eq!(body["analytics"]["total_sessions"], 1);
    assert_eq!(body["analytics"]["unique_customers"], 1);
}

#[tokio::test]
async fn bad_periods_and_callers_are_refused_before_any_read() {
    let stack = TestStack::new().await;
    let (services, log) = counted(&stack);
    let admin = stack.admin_token("boss");
    let cases = [
        (
            "2026-10-1",
            "2026-10-31",
            "invalid_date",
            Some("start_date"),
        ),
        ("2026-10-01", "31.10.2026", "invalid_date", Some("end_date")),
        (
            "2026-02-30",
            "2026-03-01",
            "invalid_date",
            Some("start_date"),
        ),
        (
            "+2026-10-01",
            "2026-10-31",
            "invalid_date",
            Some("start_date"),
        ),
        (
            "2026-10-01",
            "-9999-01-01",
            "invalid_date",
            Some("end_date"),
        ),
        ("2025-01-01", "2026-01-02", "period_too_long", None),
    ];
    for (start, end, code, field) in cases {
        let (status, body) = analytics(&services, &admin, start, end).await;
        assert_eq!(
            (status, body["error_code"].as_str(), body["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code), field),
            "{start}..{end}: {body}"
        );
    }
    let request = fixtures::request("portal-analytics/analytics-end-before-start", &admin);
    let (status, body) = call!(handle(&services, request));
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_period"))
    );
    let (status, body) = analytics(
        &services,
        &stack.token("someone"),
        "2026-10-01",
        "2026-10-31",
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_required"))
    );
    let request = fixtures::request("portal-analytics/analytics-unauthenticated", "");
    let (status, _) = call!(handle(&services, request));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(log.operations().is_empty(), "{:?}", log.operations());
}

#[tokio::test]
async fn the_backfill_counts_stored_history_as_live_counting_did_and_only_once() {
    let stack = TestStack::new().await;
    let table = stack.services().table;
    seed_sessions(&table).await;
    let references: Vec<String> = (0..160usize)
        .chain([900, 901])
        .map(|n| format!("{n:032x}"))
        .collect();
    // Customer 0 changes its card in session 0's return, recorded before aggregates existed.
    let first = table
        .get_portal_session(&references[0])
        .await
        .unwrap()
        .unwrap();
    let mut tx = Transaction::new();
    tx.put_audit_entry(
        &table,
        &AuditEntry {
            customer_id: customer(0),
            source: AuditSource::PortalReturn,
            reference: Some(first.reference.clone()),
            at: first.created_at.clone(),
            change: change(
                ChangeKind::PaymentMethod,
                "default_payment_method",
                json!(null),
                json!("visa 4242"),
            ),
            cancellation: None,
        },
        1,
        0,
    )
    .unwrap();
    table.commit(tx).await.unwrap();

    let today = date!(2026 - 11 - 15);
    let period = Period::parse(Some("2026-09-30"), Some("2026-11-01"), today).unwrap();
    let live = portal_analytics(&table, period).await.unwrap();
    assert_eq!(live.total_sessions, 162);
    assert!(live.most_used_features.is_empty(), "not counted live");

    shared::testing::forget_aggregates(&table, &references).await;
    assert_eq!(
        portal_analytics(&table, period)
            .await
            .unwrap()
            .total_sessions,
        0
    );

    let report = backfill(&table, period, today).await.unwrap();
    assert_eq!(
        (
            report.cutover.as_str(),
            report.sessions_counted,
            report.audit_days_counted
        ),
        ("2026-11-15", 162, 33)
    );
    let backfilled = portal_analytics(&table, period).await.unwrap();
    assert_eq!(
        backfilled.most_used_features,
        vec![("payment_method_update".to_string(), 1)]
    );
    assert_eq!(
        PortalAnalytics {
            most_used_features: Vec::new(),
            ..backfilled.clone()
        },
        live
    );

    // Again: nothing is counted twice.
    let again = backfill(&table, period, today).await.unwrap();
    assert_eq!((again.sessions_counted, again.audit_days_counted), (0, 0));
    assert_eq!(portal_analytics(&table, period).await.unwrap(), backfilled);
}

#[tokio::test]
async fn past_the_exact_sets_unique_customers_are_an_estimate() {
    let stack = TestStack::new().await;
    let table = stack.services().table;
    let busy = datetime!(2026-10-05 08:00:00 UTC);
    for i in 0..1_000usize {
        insert_session(
            &table,
            i,
            i,
            Workflow::BillingReview,
            busy + Duration::seconds(i as i64),
            None,
        )
        .await;
    }
    // A customer seen again adds a session, not a customer.
    insert_session(&table, 1_000, 7, Workflow::BillingReview, busy, None).await;
    for i in 0..10usize {
        let quiet = datetime!(2026-10-06 08:00:00 UTC);
        insert_session(&table, 2_000 + i, i, Workflow::PaymentUpdate, quiet, None).await;
    }
    let today = date!(2026 - 11 - 15);
    let day = |d: &str| Period::parse(Some(d), Some(d), today).unwrap();
    let quiet = portal_analytics(&table, day("2026-10-06")).await.unwrap();
    assert_eq!(
        (quiet.unique_customers, quiet.unique_customers_estimated),
        (10, false)
    );

    let both = Period::parse(Some("2026-10-05"), Some("2026-10-06"), today).unwrap();
    let busy = portal_analytics(&table, both).await.unwrap();
    assert_eq!(busy.total_sessions, 1_011);
    assert!(busy.unique_customers_estimated);
    // Three standard errors of a 256-register HyperLogLog; the exact sets alone hold 512.
    let error = (busy.unique_customers as f64 - 1_000.0).abs() / 1_000.0;
    assert!(error < 0.2, "{} customers estimated", busy.unique_customers);
}
