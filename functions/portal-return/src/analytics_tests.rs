//! The analytics counters follow the exactly-once rules of what they count: a session whose
//! write's answer was lost, a return retried the same way, a second return, and a redelivered
//! webhook are each counted once. Faults are injected at the protocol by the fault proxy.

use portico_testkit::fault_proxy::{Fault, Rule};
use portico_testkit::Harness;
use shared::analytics::{portal_analytics, Period, PortalAnalytics};
use shared::ids::CustomerId;
use shared::portal::Workflow;
use shared::webhook::{parse_envelope, process, Outcome};

use super::tests::{come_back, session_for};

fn faults(h: &Harness) -> &portico_testkit::fault_proxy::FaultProxy {
    h.store_faults.as_ref().expect("a faulted harness")
}

async fn today(h: &Harness) -> PortalAnalytics {
    let today = h.services.clock.now().date();
    let period = Period {
        start: today,
        end: today,
    };
    portal_analytics(&h.services.table, period).await.unwrap()
}

fn feature(stats: &PortalAnalytics, name: &str) -> usize {
    stats
        .most_used_features
        .iter()
        .find(|(f, _)| f == name)
        .map_or(0, |(_, n)| *n)
}

async fn deliver(h: &Harness, event: &str, customer: &CustomerId) -> Outcome {
    let body = serde_json::json!({
        "id": event,
        "object": "event",
        "type": "customer.updated",
        "created": 1_800_000_000,
        "livemode": false,
        "data": {"object": {"id": customer.as_str(), "object": "customer"}},
    });
    let envelope = parse_envelope(body.to_string().as_bytes()).unwrap();
    process(h.services.sync_context(), &envelope, false)
        .await
        .unwrap()
}

#[tokio::test]
async fn writes_whose_answer_was_lost_and_second_returns_are_counted_once() {
    let h = Harness::faulted(&[]).await;
    // The session's transaction reaches DynamoDB, its answer does not; the SDK sends it again.
    faults(&h).inject(
        Rule::new(Fault::AnswerLost)
            .operation("TransactWriteItems")
            .key_contains("PSESS#")
            .times(1),
    );
    let (customer, reference) = session_for(&h, "lost-answers", Workflow::PaymentUpdate).await;
    assert_eq!(faults(&h).injected()["answer_lost"], 1);
    let opened = today(&h).await;
    assert_eq!(
        (
            opened.total_sessions,
            opened.unique_customers,
            opened.sessions_by_workflow["payment_update"]
        ),
        (1, 1, 1),
        "{opened:?}"
    );

    // A card changed in the portal, then a return whose commit's answer is lost.
    let attached = h
        .stripe_api(
            "POST",
            "/v1/payment_methods/pm_card_mastercard/attach",
            &[("customer", customer.as_str())],
        )
        .await;
    h.stripe_api(
        "POST",
        &format!("/v1/customers/{customer}"),
        &[(
            "invoice_settings[default_payment_method]",
            attached["id"].as_str().unwrap(),
        )],
    )
    .await;
    faults(&h).inject(
        Rule::new(Fault::AnswerLost)
            .operation("TransactWriteItems")
            .key_contains(format!("PSESS#{reference}"))
            .times(1),
    );
    let (status, body) = come_back(&h, "lost-answers", &reference).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(faults(&h).injected()["answer_lost"], 2);
    // And the user comes back through the same link again.
    let (status, body) = come_back(&h, "lost-answers", &reference).await;
    assert_eq!(
        (status, &body["first_return"]),
        (200, &false.into()),
        "{body}"
    );

    let stats = today(&h).await;
    assert_eq!(stats.total_sessions, 1, "{stats:?}");
    assert_eq!(stats.returned_sessions, 1, "{stats:?}");
    assert_eq!(stats.session_duration_stats.samples, 1);
    assert_eq!(feature(&stats, "payment_method_update"), 1, "{stats:?}");

    // The whole period is one read.
    faults(&h).take_counts();
    today(&h).await;
    let counts = faults(&h).take_counts();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![("DynamoDB_20120810.Query".to_string(), 1)]
    );
}

#[tokio::test]
async fn a_redelivered_webhook_counts_once_and_changes_outside_a_visit_not_at_all() {
    let h = Harness::new().await;
    let (customer, _) = session_for(&h, "webhooked", Workflow::ProfileUpdate).await;
    h.stripe_api(
        "POST",
        &format!("/v1/customers/{customer}"),
        &[("email", "new@example.test")],
    )
    .await;
    assert!(matches!(
        deliver(&h, "evt_visit_1", &customer).await,
        Outcome::Processed { changes } if changes > 0
    ));
    assert_eq!(
        deliver(&h, "evt_visit_1", &customer).await,
        Outcome::Duplicate
    );
    assert_eq!(feature(&today(&h).await, "customer_update"), 1);

    // A customer who never opened the portal: its change is no portal use.
    let outsider = h.subscribed_customer("no-portal").await;
    h.stripe_api(
        "POST",
        &format!("/v1/customers/{outsider}"),
        &[("email", "other@example.test")],
    )
    .await;
    assert!(matches!(
        deliver(&h, "evt_outside_1", &outsider).await,
        Outcome::Processed { .. }
    ));
    let stats = today(&h).await;
    assert_eq!(feature(&stats, "customer_update"), 1, "{stats:?}");
    assert_eq!(stats.unique_customers, 1);
}
