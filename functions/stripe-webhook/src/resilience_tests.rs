//! The webhook under the faults production has: a Stripe slower than the invocation's time, a
//! process that dies after claiming an event, a customer Stripe no longer knows, and a customer
//! too large for one DynamoDB transaction.

use std::time::{Duration, Instant};

use portico_testkit::{call, with_deadline, Harness};
use shared::clock::Clock;
use shared::ids::{CustomerId, UserId};
use shared::store::{CustomerStore, LedgerState, UserStore};
use shared::sync::ChangeKind;

use super::handle;
use super::tests::{event_id, events_of, ledger_state, signed};

#[tokio::test]
async fn a_slow_stripe_is_answered_inside_the_deadline_and_the_attempt_recorded_as_failed() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("slow-stripe").await;
    let body = events_of(&h, "customer.created", &customer).pop().unwrap();
    let id = event_id(&body);
    // Each refetch of the customer takes longer than the whole invocation has.
    h.emulator.set_latency(
        "GET",
        &format!("/v1/customers/{customer}"),
        Some(Duration::from_secs(6)),
    );

    let started = Instant::now();
    let left = Duration::from_millis(2500);
    let (status, answer) = call!(handle(&h.services, with_deadline(signed(&body), left)));
    let took = started.elapsed();
    assert_eq!(
        (status.as_u16(), answer["error_code"].as_str()),
        (503, Some("upstream_timeout")),
        "{answer}"
    );
    assert_eq!(answer["request_id"], "req-with-deadline");
    assert!(took < left, "answered after the deadline: {took:?}");
    assert_eq!(
        ledger_state(&h, &id).await,
        Some(LedgerState::Failed),
        "the claim is given up as failed, so Stripe's retry is processed at once"
    );
    h.assert_nothing_synced(&customer).await;

    // Stripe recovers: the redelivery is processed.
    h.emulator
        .set_latency("GET", &format!("/v1/customers/{customer}"), None);
    let (status, _) = call!(handle(&h.services, signed(&body)));
    assert_eq!(status.as_u16(), 200);
    assert_eq!(ledger_state(&h, &id).await, Some(LedgerState::Done));
}

#[tokio::test]
async fn a_process_that_dies_after_its_claim_is_redelivered_after_the_lease_and_processed_once() {
    let mut h = Harness::new().await;
    h.services.clock = Clock::manual(Clock::system().now());
    let customer = h.subscribed_customer("dies-midway").await;
    let body = events_of(&h, "customer.created", &customer).pop().unwrap();
    let id = event_id(&body);

    // The first delivery claims the event and is stopped while Stripe answers its refetch:
    // dropping the future ends all its work there, as a killed process would, so neither its
    // sync nor its release ever runs.
    let held = h.emulator.hold("GET", &format!("/v1/customers/{customer}"));
    let mut first = Box::pin(handle(&h.services, signed(&body)));
    tokio::select! {
        _ = &mut first => panic!("the delivery finished while Stripe held its refetch"),
        _ = held.wait_for_arrivals(1) => {}
    }
    drop(first);
    held.release();
    let claim = h.services.table.ledger_entry(&id).await.unwrap().unwrap();
    assert_eq!(
        claim.state,
        LedgerState::Processing,
        "the dead process's claim is left held"
    );

    // Stripe redelivers while the lease holds: the event is busy, 5xx, try later.
    let (status, answer) = call!(handle(&h.services, signed(&body)));
    assert_eq!(
        (status.as_u16(), answer["error_code"].as_str()),
        (503, Some("event_in_progress")),
        "{answer}"
    );
    h.assert_nothing_synced(&customer).await;

    // Past the lease, the next redelivery takes the event over and processes it once.
    h.services
        .clock
        .advance(shared::webhook::LEASE + Duration::from_secs(1));
    let (status, answer) = call!(handle(&h.services, signed(&body)));
    assert_eq!(status.as_u16(), 200, "{answer}");
    let (status, answer) = call!(handle(&h.services, signed(&body)));
    assert_eq!(
        (status.as_u16(), answer["duplicate"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    assert_eq!(ledger_state(&h, &id).await, Some(LedgerState::Done));
    let audit = h.services.table.audit_entries(&customer).await.unwrap();
    let fields: Vec<&str> = audit.iter().map(|e| e.change.field.as_str()).collect();
    let distinct: std::collections::HashSet<&str> = fields.iter().copied().collect();
    assert!(!fields.is_empty());
    assert_eq!(
        distinct.len(),
        fields.len(),
        "each change audited once: {fields:?}"
    );
}

#[tokio::test]
async fn a_customer_stripe_no_longer_knows_is_stored_as_deleted_and_acknowledged() {
    let h = Harness::new().await;
    let real = h.subscribed_customer("template-user").await;
    let template = events_of(&h, "customer.created", &real).pop().unwrap();
    // An event about a customer Stripe answers 404 for (today: 500 for three days of retries).
    let gone = CustomerId::parse("cus_NeverExisted0001").unwrap();
    let body = template
        .replace(real.as_str(), gone.as_str())
        .replace("\"evt_", "\"evt_gone");
    let (status, answer) = call!(handle(&h.services, signed(&body)));
    assert_eq!(status.as_u16(), 200, "{answer}");
    let state = h
        .services
        .table
        .get_customer_state(&gone)
        .await
        .unwrap()
        .expect("the deletion is stored");
    assert!(state.snapshot.deleted);
    assert!(!state.premium.premium);
    let audit = h.services.table.audit_entries(&gone).await.unwrap();
    assert!(
        audit.iter().any(|e| e.change.field == "deleted"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_subscriber_deleted_in_stripe_loses_premium_by_webhook() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("deleted-later").await;
    let created = events_of(&h, "customer.created", &customer).pop().unwrap();
    let (status, _) = call!(handle(&h.services, signed(&created)));
    assert_eq!(status.as_u16(), 200);
    let user = UserId::parse("deleted-later").unwrap();
    assert!(
        h.services
            .table
            .get_user(&user)
            .await
            .unwrap()
            .unwrap()
            .premium
    );

    h.stripe_api("DELETE", &format!("/v1/customers/{customer}"), &[])
        .await;
    let deleted = events_of(&h, "customer.deleted", &customer).pop().unwrap();
    let (status, answer) = call!(handle(&h.services, signed(&deleted)));
    assert_eq!(status.as_u16(), 200, "{answer}");
    let state = h.stored_state(&customer).await;
    assert!(state.snapshot.deleted && !state.premium.premium);
    assert!(
        !h.services
            .table
            .get_user(&user)
            .await
            .unwrap()
            .unwrap()
            .premium
    );
}

#[tokio::test]
async fn a_customer_larger_than_one_transaction_is_synced_and_says_what_it_left_out() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("huge-customer").await;
    for _ in 0..149 {
        h.stripe_api(
            "POST",
            "/v1/subscriptions",
            &[
                ("customer", customer.as_str()),
                ("items[0][price]", "price_pro_monthly"),
            ],
        )
        .await;
    }
    // One more card than the one page a sync lists: a sync that read them all would store 101.
    for _ in 0..101 {
        h.stripe_api(
            "POST",
            "/v1/payment_methods/pm_card_visa/attach",
            &[("customer", customer.as_str())],
        )
        .await;
    }
    let body = events_of(&h, "customer.created", &customer).pop().unwrap();

    let (status, answer) = call!(handle(&h.services, signed(&body)));
    assert_eq!(status.as_u16(), 200, "{answer}");
    let state = h.stored_state(&customer).await;
    assert!(state.premium.premium);
    assert_eq!(state.snapshot.subscriptions.len(), 100);
    assert_eq!(state.snapshot.truncated.subscriptions, 50);
    assert_eq!(state.snapshot.payment_methods.len(), 100);
    assert!(state.snapshot.truncated.payment_methods);
    let audit = h.services.table.audit_entries(&customer).await.unwrap();
    assert_eq!(audit.len(), 80, "one transaction's worth of entries");
    let omitted: Vec<_> = audit
        .iter()
        .filter(|e| e.change.kind == ChangeKind::Omitted)
        .collect();
    assert_eq!(omitted.len(), 1, "the overflow is stated once");
    assert!(omitted[0].change.to.as_u64().unwrap() > 0);
}
