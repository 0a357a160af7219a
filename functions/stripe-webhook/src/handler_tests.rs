use std::sync::Arc;

use base64::Engine;
use portico_testkit::{call, fixtures, Harness};
use serde_json::{json, Value};
use shared::ids::CustomerId;
use shared::store::{AuditSource, CustomerStore, LedgerState};
use shared::stripe::signature::sign;
use shared::testing::{keys::now, WEBHOOK_TEST_SECRET};

use super::handle;

/// The function-URL event carrying `body`, signed with `secret` at `timestamp`.
fn delivery(body: &str, signature: Option<String>) -> lambda_http::Request {
    let mut event: Value =
        serde_json::from_str(&fixtures::event_text("stripe-webhook/event", &[])).unwrap();
    event["body"] = Value::String(body.to_string());
    match signature {
        Some(sig) => event["headers"]["stripe-signature"] = Value::String(sig),
        None => {
            event["headers"]
                .as_object_mut()
                .unwrap()
                .remove("stripe-signature");
        }
    }
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

pub(super) fn signed(body: &str) -> lambda_http::Request {
    delivery(
        body,
        Some(sign(body.as_bytes(), WEBHOOK_TEST_SECRET, now())),
    )
}

async fn deliver(h: &Harness, body: &str) -> (u16, Value) {
    let (status, answer) = call!(handle(&h.services, signed(body)));
    (status.as_u16(), answer)
}

/// The event id of a delivery's body.
pub(super) fn event_id(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The ledger's state for an event, if it has an entry.
pub(super) async fn ledger_state(h: &Harness, event_id: &str) -> Option<LedgerState> {
    h.services
        .table
        .ledger_entry(event_id)
        .await
        .unwrap()
        .map(|e| e.state)
}

/// The emulator's recorded events of `event_type` for `customer`, oldest first, as sent bytes.
pub(super) fn events_of(h: &Harness, event_type: &str, customer: &CustomerId) -> Vec<String> {
    h.emulator
        .events()
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e["type"] == event_type)
        .filter(|e| {
            let object = &e["data"]["object"];
            object["customer"] == customer.as_str() || object["id"] == customer.as_str()
        })
        .map(|e| e.to_string())
        .collect()
}

#[tokio::test]
async fn an_event_syncs_the_customer_once_and_a_duplicate_changes_nothing() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("hook-user").await;
    let sub = h.subscription_of(&customer).await;
    h.stripe_api(
        "POST",
        &format!("/v1/subscriptions/{sub}"),
        &[("cancel_at_period_end", "true")],
    )
    .await;
    let updated = events_of(&h, "customer.subscription.updated", &customer)
        .pop()
        .unwrap();
    let event_id = serde_json::from_str::<Value>(&updated).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, answer) = deliver(&h, &updated).await;
    assert_eq!(
        (status, &answer),
        (200, &json!({"success": true, "received": true}))
    );
    let state = h.stored_state(&customer).await;
    assert!(state.snapshot.subscriptions[0].cancel_at_period_end);
    assert!(state.premium.premium, "premium until the period ends");
    let audit = h.services.table.audit_entries(&customer).await.unwrap();
    assert!(!audit.is_empty());
    assert!(audit
        .iter()
        .all(|e| e.source == AuditSource::Webhook
            && e.reference.as_deref() == Some(event_id.as_str())));
    assert_eq!(
        h.services
            .table
            .ledger_entry(&event_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        LedgerState::Done
    );

    let (status, answer) = deliver(&h, &updated).await;
    assert_eq!((status, answer["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(
        h.services
            .table
            .audit_entries(&customer)
            .await
            .unwrap()
            .len(),
        audit.len()
    );
}

#[tokio::test]
async fn concurrent_duplicates_have_one_effect() {
    let h = Arc::new(Harness::new().await);
    let customer = h.subscribed_customer("burst-user").await;
    let created = events_of(&h, "customer.subscription.created", &customer)
        .pop()
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (h, body) = (h.clone(), created.clone());
            tokio::spawn(async move { deliver(&h, &body).await })
        })
        .collect();
    let mut processed = 0;
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        match status {
            200 if answer["duplicate"] == true => {}
            200 => processed += 1,
            503 => assert_eq!(answer["error_code"], "event_in_progress"),
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(processed, 1, "exactly one delivery did the work");
    // Stripe retries the 503s later; by then they are duplicates.
    let (status, answer) = deliver(&h, &created).await;
    assert_eq!((status, answer["duplicate"].as_bool()), (200, Some(true)));
    let audit = h.services.table.audit_entries(&customer).await.unwrap();
    let mut fields: Vec<&str> = audit.iter().map(|e| e.change.field.as_str()).collect();
    let before = fields.len();
    fields.sort();
    fields.dedup();
    assert_eq!(before, fields.len(), "each change audited once");
}

#[tokio::test]
async fn events_in_any_order_leave_stripes_final_state() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("order-user").await;
    let sub = h.subscription_of(&customer).await;
    h.stripe_api(
        "POST",
        &format!("/v1/subscriptions/{sub}"),
        &[("cancel_at_period_end", "true")],
    )
    .await;
    h.stripe_api(
        "POST",
        &format!("/v1/subscriptions/{sub}"),
        &[("cancel_at_period_end", "false")],
    )
    .await;
    h.stripe_api("DELETE", &format!("/v1/subscriptions/{sub}"), &[])
        .await;
    let mut bodies = events_of(&h, "customer.subscription.created", &customer);
    bodies.extend(events_of(&h, "customer.subscription.updated", &customer));
    bodies.extend(events_of(&h, "customer.subscription.deleted", &customer));
    assert_eq!(bodies.len(), 4);
    // Deleted first, then the older updates, created last: the worst order Stripe may use.
    bodies.reverse();
    for body in &bodies {
        let (status, answer) = deliver(&h, body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let state = h.stored_state(&customer).await;
    assert_eq!(state.snapshot.subscriptions[0].status, "canceled");
    assert!(!state.premium.premium);
}

#[tokio::test]
async fn a_stale_view_answered_late_never_replaces_a_newer_one() {
    use shared::sync::{sync_customer, SyncTrigger};
    let h = Arc::new(Harness::new().await);
    let customer = h.subscribed_customer("stale-view").await;
    let sub = h.subscription_of(&customer).await;
    let baseline = SyncTrigger {
        source: AuditSource::Reconcile,
        reference: None,
    };
    sync_customer(h.services.sync_context(), &customer, &baseline, &())
        .await
        .unwrap();
    let created = events_of(&h, "customer.subscription.created", &customer)
        .pop()
        .unwrap();

    // Delivery A's refetch reads the subscription while it is still active; Stripe's answer
    // to it is held, so A holds a view older than anything that happens next.
    let held = h.emulator.hold_first_answer("GET", "/v1/subscriptions");
    let a = tokio::spawn({
        let h = h.clone();
        async move { deliver(&h, &created).await }
    });
    held.wait_for_arrivals(1).await;

    // The subscription ends and delivery B stores that newer view before A's answer arrives.
    h.stripe_api("DELETE", &format!("/v1/subscriptions/{sub}"), &[])
        .await;
    let deleted = events_of(&h, "customer.subscription.deleted", &customer)
        .pop()
        .unwrap();
    let (status, answer) = deliver(&h, &deleted).await;
    assert_eq!(status, 200, "{answer}");
    held.release();
    let (status, answer) = a.await.unwrap();
    assert_eq!(status, 200, "{answer}");

    let state = h.stored_state(&customer).await;
    assert_eq!(state.snapshot.subscriptions[0].status, "canceled");
    assert!(!state.premium.premium);
    let statuses: Vec<(Value, Value)> = h
        .services
        .table
        .audit_entries(&customer)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.change.field.ends_with("status"))
        .map(|e| (e.change.from, e.change.to))
        .collect();
    assert_eq!(
        statuses,
        vec![(json!("active"), json!("canceled"))],
        "the cancellation is audited once and never undone by the stale view"
    );
}

#[tokio::test]
async fn other_types_and_the_other_mode_are_acknowledged_and_ignored() {
    let h = Harness::new().await;
    let other = json!({"id": "evt_other", "object": "event", "type": "charge.dispute.created", "created": now(), "livemode": false,
                       "data": {"object": {"id": "dp_1", "customer": "cus_Nobody"}}});
    let (status, answer) = deliver(&h, &other.to_string()).await;
    assert_eq!((status, answer["ignored"].as_bool()), (200, Some(true)));
    let live = json!({"id": "evt_live", "object": "event", "type": "customer.updated", "created": now(), "livemode": true,
                      "data": {"object": {"id": "cus_Live", "object": "customer"}}});
    let (status, answer) = deliver(&h, &live.to_string()).await;
    assert_eq!((status, answer["ignored"].as_bool()), (200, Some(true)));
    assert!(h
        .services
        .table
        .ledger_entry("evt_other")
        .await
        .unwrap()
        .is_none());
    assert!(h
        .services
        .table
        .ledger_entry("evt_live")
        .await
        .unwrap()
        .is_none());
    assert!(h.stripe_calls().is_empty());
}

#[tokio::test]
async fn bad_signatures_are_400_and_write_nothing() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("sig-user").await;
    let body = events_of(&h, "customer.created", &customer).pop().unwrap();
    let id = event_id(&body);
    let cases = [
        (
            "tampered",
            delivery(
                &body.replace("sig-user", "sig-evil"),
                Some(sign(body.as_bytes(), WEBHOOK_TEST_SECRET, now())),
            ),
        ),
        (
            "wrong secret",
            delivery(
                &body,
                Some(sign(body.as_bytes(), "whsec_someone_else", now())),
            ),
        ),
        (
            "stale",
            delivery(
                &body,
                Some(sign(body.as_bytes(), WEBHOOK_TEST_SECRET, now() - 301)),
            ),
        ),
        ("missing header", delivery(&body, None)),
        ("malformed header", delivery(&body, Some("v1=abc".into()))),
    ];
    for (name, request) in cases {
        let (status, answer) = call!(handle(&h.services, request));
        assert_eq!(
            (status.as_u16(), answer["error_code"].as_str()),
            (400, Some("invalid_signature")),
            "{name}: {answer}"
        );
    }
    let (status, _) = call!(handle(
        &h.services,
        fixtures::request_with("stripe-webhook/event-unsigned", &[]),
    ));
    assert_eq!(status, 400);
    assert!(ledger_state(&h, &id).await.is_none());
    assert!(h
        .services
        .table
        .get_customer_state(&customer)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_rotated_secret_is_picked_up_and_base64_bodies_verify() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("rotation-user").await;
    let body = events_of(&h, "customer.created", &customer).pop().unwrap();
    // Warm the cache with the old secret, then rotate: Stripe now signs with both.
    assert_eq!(
        deliver(
            &h,
            &events_of(&h, "payment_method.attached", &customer)
                .pop()
                .unwrap()
        )
        .await
        .0,
        200
    );
    aws_sdk_secretsmanager::Client::new(&h.stack.aws)
        .put_secret_value()
        .secret_id(&h.stack.secret_id)
        .secret_string(shared::testing::secret_json(
            shared::testing::STRIPE_TEST_KEY,
            &["whsec_portico_FAKE_rotated", WEBHOOK_TEST_SECRET],
        ))
        .send()
        .await
        .unwrap();
    let t = now();
    let header = format!(
        "t={t},v1={},v0=ignored",
        shared::stripe::signature::compute_signature(
            body.as_bytes(),
            "whsec_portico_FAKE_rotated",
            t
        )
    );
    let mut event: Value =
        serde_json::from_str(&fixtures::event_text("stripe-webhook/event", &[])).unwrap();
    event["body"] =
        Value::String(base64::engine::general_purpose::STANDARD.encode(body.as_bytes()));
    event["isBase64Encoded"] = Value::Bool(true);
    event["headers"]["stripe-signature"] = Value::String(header);
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let (status, answer) = call!(handle(&h.services, request));
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_stripe_failure_answers_500_records_the_failure_and_the_redelivery_succeeds() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("fault-user").await;
    let body = events_of(&h, "customer.created", &customer).pop().unwrap();
    let id = event_id(&body);
    let down = h.services_with_stripe_down();
    let (status, answer) = call!(handle(&down, signed(&body)));
    assert_eq!(
        (status.as_u16(), answer["error_code"].as_str()),
        (500, Some("processing_failed")),
        "{answer}"
    );
    assert_eq!(
        ledger_state(&h, &id).await,
        Some(LedgerState::Failed),
        "the failure is recorded"
    );
    assert!(
        h.services
            .table
            .get_customer_state(&customer)
            .await
            .unwrap()
            .is_none(),
        "nothing partial"
    );

    let (status, answer) = deliver(&h, &body).await;
    assert_eq!(
        (status, &answer),
        (200, &json!({"success": true, "received": true}))
    );
    assert_eq!(ledger_state(&h, &id).await, Some(LedgerState::Done));
}

fn checkout_completed(id: &str, customer: &str, user: &str) -> String {
    session_completed(id, &format!("cs_test_{id}"), customer, user)
}

fn session_completed(id: &str, session: &str, customer: &str, user: &str) -> String {
    json!({"id": id, "object": "event", "type": "checkout.session.completed", "created": now(), "livemode": false,
           "data": {"object": {"id": session, "object": "checkout.session", "mode": "subscription",
                                "customer": customer, "client_reference_id": user}}})
    .to_string()
}

/// A customer made straight in Stripe (a Payment Link, a Pricing Table), not by Portico.
async fn stranger_customer(h: &Harness, form: &[(&str, &str)]) -> String {
    let customer = h.stripe_api("POST", "/v1/customers", form).await;
    customer["id"].as_str().unwrap().to_string()
}

/// What `GET /billing/account` answers the user: the account operation the endpoint calls.
async fn account_of(h: &Harness, sub: &str) -> shared::account::AccountView {
    let user = shared::auth::User {
        id: shared::ids::UserId::parse(sub).unwrap(),
        email: None,
        is_admin: false,
    };
    shared::account::get_account(
        h.services.sync_context(),
        &user,
        false,
        std::time::Duration::ZERO,
        "req-test",
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_strangers_checkout_does_not_hand_its_customer_to_the_user_it_names() {
    use shared::sync::ChangeKind;
    let h = Harness::new().await;
    let stranger = stranger_customer(&h, &[("email", "payer@example.test")]).await;
    let (status, answer) =
        deliver(&h, &checkout_completed("evt_attack_1", &stranger, "victim")).await;
    assert_eq!(
        (status, &answer),
        (200, &json!({"success": true, "received": true})),
        "Stripe is told it was received"
    );
    assert_eq!(account_of(&h, "victim").await.customer_id, None);
    let victim = shared::ids::UserId::parse("victim").unwrap();
    use shared::store::UserStore;
    assert!(h
        .services
        .table
        .get_user(&victim)
        .await
        .unwrap()
        .and_then(|u| u.customer_id)
        .is_none());
    let stranger = CustomerId::parse(stranger).unwrap();
    let audit = h.services.table.audit_entries(&stranger).await.unwrap();
    let refusal = audit
        .iter()
        .find(|e| e.change.kind == ChangeKind::Link)
        .expect("the refusal is audited");
    assert_eq!(refusal.reference.as_deref(), Some("evt_attack_1"));
    assert_eq!(refusal.change.to["refused_user"], victim.short_digest());
    // A redelivery is a duplicate: still nothing linked, the refusal recorded once.
    let (status, answer) = deliver(
        &h,
        &checkout_completed("evt_attack_1", stranger.as_str(), "victim"),
    )
    .await;
    assert_eq!((status, answer["duplicate"].as_bool()), (200, Some(true)));
    let audit = h.services.table.audit_entries(&stranger).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.change.kind == ChangeKind::Link)
            .count(),
        1
    );
}

#[tokio::test]
async fn checkout_links_a_customer_whose_metadata_names_the_user() {
    let h = Harness::new().await;
    let theirs = stranger_customer(
        &h,
        &[
            ("email", "buyer@example.test"),
            ("metadata[portico_user_id]", "buyer"),
        ],
    )
    .await;
    // Metadata naming someone else proves nothing for this user.
    let (status, _) = deliver(&h, &checkout_completed("evt_checkout_0", &theirs, "other")).await;
    assert_eq!(status, 200);
    assert_eq!(account_of(&h, "other").await.customer_id, None);

    let (status, answer) =
        deliver(&h, &checkout_completed("evt_checkout_1", &theirs, "buyer")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        account_of(&h, "buyer").await.customer_id.unwrap().as_str(),
        theirs
    );
}

#[tokio::test]
async fn checkout_links_a_session_portico_recorded_for_the_user() {
    use shared::store::CheckoutRecord;
    let h = Harness::new().await;
    let customer = stranger_customer(&h, &[("email", "recorded@example.test")]).await;
    h.services
        .table
        .record_checkout(&CheckoutRecord {
            session_id: "cs_test_recorded".into(),
            user_id: shared::ids::UserId::parse("recorded").unwrap(),
            customer_id: CustomerId::parse(customer.clone()).unwrap(),
            price: "price_pro_monthly".into(),
            created_at: "2026-11-21T00:00:00Z".into(),
            expires_at: now() + 3600,
        })
        .await
        .unwrap();
    // The record is for `recorded`: the same session naming another user links nothing.
    let forged = session_completed("evt_forged", "cs_test_recorded", &customer, "intruder");
    assert_eq!(deliver(&h, &forged).await.0, 200);
    assert_eq!(account_of(&h, "intruder").await.customer_id, None);
    let genuine = session_completed("evt_genuine", "cs_test_recorded", &customer, "recorded");
    assert_eq!(deliver(&h, &genuine).await.0, 200);
    assert_eq!(
        account_of(&h, "recorded")
            .await
            .customer_id
            .unwrap()
            .as_str(),
        customer
    );
}

#[tokio::test]
async fn checkout_never_replaces_a_users_customer() {
    let h = Harness::new().await;
    let existing = h.subscribed_customer("loyal").await;
    let other = stranger_customer(
        &h,
        &[
            ("email", "loyal-2@example.test"),
            ("metadata[portico_user_id]", "loyal"),
        ],
    )
    .await;
    let (status, _) = deliver(&h, &checkout_completed("evt_checkout_2", &other, "loyal")).await;
    assert_eq!(status, 200);
    assert_eq!(account_of(&h, "loyal").await.customer_id, Some(existing));
}

#[tokio::test]
async fn concurrent_syncs_of_one_change_audit_it_once_and_store_the_truth() {
    use shared::store::AuditSource;
    use shared::sync::{sync_customer, SyncTrigger};
    let h = Arc::new(Harness::new().await);
    let customer = h.subscribed_customer("racing-syncs").await;
    let trigger = SyncTrigger {
        source: AuditSource::Reconcile,
        reference: None,
    };
    sync_customer(h.services.sync_context(), &customer, &trigger, &())
        .await
        .unwrap();
    h.stripe_api(
        "POST",
        &format!("/v1/customers/{customer}"),
        &[("email", "raced@example.test")],
    )
    .await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (h, customer) = (h.clone(), customer.clone());
            tokio::spawn(async move {
                let trigger = SyncTrigger {
                    source: AuditSource::Webhook,
                    reference: Some(format!("evt_race_{i}")),
                };
                sync_customer(h.services.sync_context(), &customer, &trigger, &())
                    .await
                    .map(|o| o.changes.len())
            })
        })
        .collect();
    let mut reported = 0;
    for task in tasks {
        reported += task.await.unwrap().unwrap();
    }
    assert_eq!(reported, 1, "one sync reports the change");
    let email_entries = h
        .services
        .table
        .audit_entries(&customer)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.change.field == "email" && e.change.to == "raced@example.test")
        .count();
    assert_eq!(email_entries, 1);
    let state = h.stored_state(&customer).await;
    assert_eq!(state.snapshot.email.as_deref(), Some("raced@example.test"));
}

#[tokio::test]
async fn a_burst_of_twenty_events_delivered_a_hundred_times_has_each_effect_once() {
    let h = Arc::new(Harness::new().await);
    let mut customers = Vec::new();
    for n in 0..4 {
        customers.push(h.subscribed_customer(&format!("burst-{n}")).await);
    }
    let events: Vec<String> = h
        .emulator
        .events()
        .into_iter()
        .map(|e| e.event)
        .filter(|e| shared::webhook::is_handled(e["type"].as_str().unwrap_or_default()))
        .take(20)
        .map(|e| e.to_string())
        .collect();
    assert_eq!(events.len(), 20);
    let tasks: Vec<_> = events
        .iter()
        .flat_map(|body| std::iter::repeat_n(body.clone(), 5))
        .map(|body| {
            let h = h.clone();
            tokio::spawn(async move { deliver(&h, &body).await })
        })
        .collect();
    let mut retry = Vec::new();
    for (task, body) in tasks
        .into_iter()
        .zip(events.iter().flat_map(|b| std::iter::repeat_n(b, 5)))
    {
        let (status, answer) = task.await.unwrap();
        match status {
            200 => {}
            503 => retry.push(body.clone()),
            other => panic!("{other}: {answer}"),
        }
    }
    // What Stripe does with a 5xx: deliver again later.
    for body in retry {
        assert_eq!(deliver(&h, &body).await.0, 200);
    }
    for body in &events {
        let id = serde_json::from_str::<Value>(body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(ledger_state(&h, &id).await, Some(LedgerState::Done), "{id}");
    }
    for customer in &customers {
        let Some(state) = h.services.table.get_customer_state(customer).await.unwrap() else {
            continue;
        };
        let truth = shared::sync::diff(
            &shared::sync::CustomerSnapshot::empty(customer.clone()),
            &state.snapshot,
        );
        let audit = h.services.table.audit_entries(customer).await.unwrap();
        assert_eq!(
            audit.len(),
            truth.len(),
            "every change audited exactly once for {customer}"
        );
    }
}

#[tokio::test]
async fn a_dynamodb_failure_is_500_and_writes_nothing() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("ddb-down").await;
    let body = events_of(&h, "customer.created", &customer).pop().unwrap();
    let id = event_id(&body);
    // The same configuration, but DynamoDB unreachable.
    let broken = shared::testing::aws_env("http://127.0.0.1:9", &shared::testing::moto::endpoint());
    let mut services = shared::services::Services::new(h.services.config.clone(), &broken).unwrap();
    services.secrets = h.services.secrets.clone();
    let (status, answer) = call!(handle(&services, signed(&body)));
    assert_eq!(
        (status.as_u16(), answer["error_code"].as_str()),
        (500, Some("processing_failed")),
        "{answer}"
    );
    assert!(ledger_state(&h, &id).await.is_none());
    h.assert_nothing_synced(&customer).await;
}

#[tokio::test]
async fn stripe_errors_and_lock_timeouts_during_the_refetch_record_a_failed_attempt() {
    use portico_testkit::stripe_emulator::Fault;
    let h = Harness::new().await;
    for status in [500u16, 409] {
        let customer = h.subscribed_customer(&format!("locked-{status}")).await;
        let body = events_of(&h, "customer.created", &customer).pop().unwrap();
        let id = event_id(&body);
        // More failures than the client's retries: the delivery must fail, not hang or half-write.
        h.emulator
            .inject_fault(Fault::status(
                "GET",
                format!("/v1/customers/{customer}"),
                status,
                10,
            ))
            .unwrap();
        let (code, answer) = deliver(&h, &body).await;
        assert_eq!(
            (code, answer["error_code"].as_str()),
            (500, Some("processing_failed")),
            "{status}: {answer}"
        );
        assert_eq!(
            ledger_state(&h, &id).await,
            Some(LedgerState::Failed),
            "the failure is recorded"
        );
        h.assert_nothing_synced(&customer).await;
        h.emulator.clear_faults();
        let (code, answer) = deliver(&h, &body).await;
        assert_eq!(code, 200, "the redelivery succeeds: {answer}");
        assert_eq!(ledger_state(&h, &id).await, Some(LedgerState::Done));
    }
}

#[tokio::test]
async fn a_signature_header_with_two_timestamps_is_refused() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("two-stamps").await;
    let body = json!({"id": "evt_two_stamps", "object": "event", "type": "customer.updated",
                      "created": now(), "livemode": false,
                      "data": {"object": {"id": customer.as_str(), "object": "customer"}}})
    .to_string();
    let genuine = sign(body.as_bytes(), WEBHOOK_TEST_SECRET, now());
    let (stamp, signature) = genuine.split_once(',').unwrap();
    for header in [
        format!("{stamp},{stamp},{signature}"),
        format!("t=1,{signature},{stamp}"),
    ] {
        let (status, answer) = call!(handle(&h.services, delivery(&body, Some(header))));
        assert_eq!(
            (status.as_u16(), answer["error_code"].as_str()),
            (400, Some("invalid_signature")),
            "{answer}"
        );
    }
    h.assert_nothing_synced(&customer).await;
    assert!(h
        .services
        .table
        .ledger_entry("evt_two_stamps")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn each_delivery_writes_its_outcome_event_type_lag_and_stripe_calls_as_emf() {
    use portico_testkit::stripe_emulator::Fault;
    use shared::metrics::names;
    use shared::testing::observe::{assert_metrics_carry_no_identity, metric, LogCapture};
    let h = Harness::new().await;
    let customer = h.subscribed_customer("emf-user").await;
    let sub = h.subscription_of(&customer).await;
    h.stripe_api(
        "POST",
        &format!("/v1/subscriptions/{sub}"),
        &[("cancel_at_period_end", "true")],
    )
    .await;
    let updated = events_of(&h, "customer.subscription.updated", &customer)
        .pop()
        .unwrap();
    let logs = LogCapture::start();
    h.services.metrics.take_lines();
    let calls_before = h.stripe_calls().len();

    // One 503 from Stripe during the refetch: retried once, then processed.
    h.emulator
        .inject_fault(Fault::status(
            "GET",
            format!("/v1/customers/{customer}"),
            503,
            1,
        ))
        .unwrap();
    assert_eq!(deliver(&h, &updated).await.0, 200);
    let lines = h.services.metrics.take_lines();
    let processed = [("Outcome", "processed")];
    assert_eq!(
        metric(&lines, names::WEBHOOK_DELIVERIES, &processed),
        Some(json!(1))
    );
    assert_eq!(
        metric(
            &lines,
            names::WEBHOOK_EVENTS,
            &[
                ("EventType", "customer.subscription.updated"),
                ("Outcome", "processed")
            ]
        ),
        Some(json!(1))
    );
    let lag = metric(&lines, names::WEBHOOK_LAG, &[]).expect("lag written");
    assert!(
        lag.as_f64().is_some_and(|ms| (0.0..60_000.0).contains(&ms)),
        "{lag}"
    );
    assert!(metric(&lines, names::WEBHOOK_DURATION, &[]).is_some());
    assert_eq!(
        metric(&lines, names::SYNCS, &[("Outcome", "changed")]),
        Some(json!(1))
    );
    assert_eq!(
        metric(&lines, names::STRIPE_RETRIES, &[("Class", "server")]),
        Some(json!(1))
    );
    let calls = metric(&lines, names::STRIPE_CALLS, &[]).and_then(|v| v.as_u64());
    let sent = h.stripe_calls().len() - calls_before;
    assert_eq!(calls, Some(sent as u64), "every attempt counted once");
    assert_eq!(metric(&lines, names::COLD_STARTS, &[]), Some(json!(1)));
    // The request's id is a property of every line, never a dimension.
    assert!(lines
        .iter()
        .all(|l| l["request_id"] == lines[0]["request_id"]));

    // The same event again, one of another type, one badly signed.
    deliver(&h, &updated).await;
    let other = json!({"id": "evt_emf_other", "type": "account.updated", "created": now(), "livemode": false, "data": {"object": {"id": "acct_1"}}}).to_string();
    deliver(&h, &other).await;
    let (status, _) = call!(handle(
        &h.services,
        delivery(&updated, Some("t=1,v1=00".into()))
    ));
    assert_eq!(status, 400);
    let lines = h.services.metrics.take_lines();
    for (outcome, event_type) in [
        ("duplicate", "customer.subscription.updated"),
        ("ignored", "other"),
        ("rejected_signature", "unknown"),
    ] {
        assert_eq!(
            metric(&lines, names::WEBHOOK_DELIVERIES, &[("Outcome", outcome)]),
            Some(json!(1)),
            "{outcome}: {lines:?}"
        );
        assert_eq!(
            metric(
                &lines,
                names::WEBHOOK_EVENTS,
                &[("EventType", event_type), ("Outcome", outcome)]
            ),
            Some(json!(1)),
            "{outcome}"
        );
    }
    assert_eq!(metric(&lines, names::COLD_STARTS, &[]), None);

    assert_metrics_carry_no_identity(&lines, &[customer.as_str(), "emf-user"]);
    let handled = logs.with_message("webhook handled");
    assert_eq!(handled.len(), 3, "{}", logs.text());
    assert_eq!(
        handled[0]["span"]["function"],
        shared::services::TEST_FUNCTION
    );
    assert_eq!(handled[0]["span"]["customer_id"], customer.as_str());
    assert!(handled[0]["span"]["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    shared::testing::observe::assert_no_personal_data(
        &logs.text(),
        &[WEBHOOK_TEST_SECRET, shared::testing::STRIPE_TEST_KEY],
    );
}
