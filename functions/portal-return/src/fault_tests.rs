//! The return under DynamoDB's own faults, injected at the protocol by the fault proxy in front
//! of DynamoDB Local: a lost transaction race, throttling and 500s beyond the SDK's retries, and
//! a request that never answers.

use std::time::{Duration, Instant};

use portico_testkit::fault_proxy::{Fault, Rule};
use portico_testkit::{call, fixtures, with_deadline, Harness};
use shared::metrics::names;
use shared::portal::Workflow;
use shared::store::AuditSource;
use shared::sync::{sync_customer, SyncTrigger};
use shared::testing::observe::metric;

use super::handle;
use super::tests::{come_back, session_for};

fn faults(h: &Harness) -> &portico_testkit::fault_proxy::FaultProxy {
    h.store_faults.as_ref().expect("a faulted harness")
}

#[tokio::test]
async fn a_return_and_a_webhook_racing_on_one_customer_both_succeed_and_audit_once() {
    let h = Harness::faulted(&[]).await;
    let (customer, reference) = session_for(&h, "racer", Workflow::PaymentUpdate).await;
    h.stripe_api(
        "POST",
        &format!("/v1/customers/{customer}"),
        &[("email", "raced@example.test")],
    )
    .await;
    // The first commit that writes this customer loses a transaction race, as DynamoDB answers
    // when two transactions touch one item at once.
    faults(&h).inject(
        Rule::new(Fault::TransactionConflict)
            .operation("TransactWriteItems")
            .key_contains(format!("CUS#{customer}"))
            .times(1),
    );
    let webhook = SyncTrigger {
        source: AuditSource::Webhook,
        reference: Some("evt_race".into()),
    };
    let (back, synced) = tokio::join!(
        come_back(&h, "racer", &reference),
        sync_customer(h.services.sync_context(), &customer, &webhook, &()),
    );
    assert_eq!(back.0, 200, "{}", back.1);
    synced.expect("the webhook's sync succeeds too");
    assert_eq!(
        faults(&h).injected().values().sum::<u64>(),
        1,
        "one conflict"
    );

    let audit = h.services.table.audit_entries(&customer).await.unwrap();
    let emails: Vec<_> = audit
        .iter()
        .filter(|e| e.change.field == "email" && e.change.to == "raced@example.test")
        .collect();
    assert_eq!(emails.len(), 1, "the change is audited once: {audit:?}");
    let state = h.stored_state(&customer).await;
    assert_eq!(state.snapshot.email.as_deref(), Some("raced@example.test"));
}

#[tokio::test]
async fn throttling_and_500s_beyond_the_sdks_retries_are_503_and_write_nothing() {
    let h = Harness::faulted(&[]).await;
    let (_, reference) = session_for(&h, "throttled", Workflow::PaymentUpdate).await;

    // Fewer throttles than the SDK's attempts are absorbed, and still counted as failed
    // attempts, though not as throttled requests.
    faults(&h).inject(Rule::new(Fault::Throttling).operation("GetItem").times(2));
    h.services.metrics.take_lines();
    let (status, body) = come_back(&h, "throttled", &reference).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(faults(&h).injected()["throttling"], 2);
    let lines = h.services.metrics.take_lines();
    assert_eq!(
        metric(
            &lines,
            names::DYNAMODB_FAILED_ATTEMPTS,
            &[("Class", "throttled")]
        ),
        Some(serde_json::json!(2)),
        "{lines:?}"
    );
    assert_eq!(metric(&lines, names::DYNAMODB_THROTTLES, &[]), None);

    // More than it makes: a typed 503 the SPA can retry, and nothing half-written.
    let (_, second) = session_for(&h, "throttled-2", Workflow::PaymentUpdate).await;
    let other = h
        .services
        .table
        .get_portal_session(&second)
        .await
        .unwrap()
        .unwrap()
        .customer_id;
    for fault in [Fault::Throttling, Fault::InternalServerError] {
        faults(&h).clear();
        faults(&h).inject(Rule::new(fault).operation("TransactWriteItems"));
        let token = h.stack.token("throttled-2");
        let request = fixtures::request_with(
            "portal-return/return",
            &[("TOKEN", &token), ("SESSION", &second)],
        );
        let (status, body) = call!(handle(&h.services, request));
        let response_code = body["error_code"].as_str();
        assert_eq!(
            (status.as_u16(), response_code),
            (503, Some("storage_unavailable")),
            "{body}"
        );
        faults(&h).clear();
        h.assert_nothing_synced(&other).await;
        let record = h
            .services
            .table
            .get_portal_session(&second)
            .await
            .unwrap()
            .unwrap();
        assert!(record.returned_at.is_none(), "the return is not counted");
    }
}

#[tokio::test]
async fn a_dynamodb_call_that_hangs_ends_at_its_timeout_inside_the_deadline() {
    let h = Harness::faulted(&[("DYNAMODB_TIMEOUT_MS", "300")]).await;
    let (_, reference) = session_for(&h, "hung", Workflow::PaymentUpdate).await;

    // One hung attempt costs its timeout, then the SDK's retry answers.
    faults(&h).inject(Rule::new(Fault::Hang).operation("GetItem").times(1));
    let started = Instant::now();
    let (status, body) = come_back(&h, "hung", &reference).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Every attempt hangs: the function answers its own envelope before Lambda's deadline.
    faults(&h).inject(Rule::new(Fault::Hang).operation("GetItem"));
    let token = h.stack.token("hung");
    let request = fixtures::request_with(
        "portal-return/return",
        &[("TOKEN", &token), ("SESSION", &reference)],
    );
    let left = Duration::from_millis(2500);
    let started = Instant::now();
    let (status, body) = call!(handle(&h.services, with_deadline(request, left)));
    assert!(started.elapsed() < left, "{:?}", started.elapsed());
    assert_eq!(status.as_u16(), 503, "{body}");
    assert!(
        matches!(
            body["error_code"].as_str(),
            Some("upstream_timeout" | "storage_unavailable")
        ),
        "{body}"
    );
}
