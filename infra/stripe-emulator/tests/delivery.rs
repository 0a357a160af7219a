//! Webhook delivery, delivery controls, fault injection and the clock.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::{id, start_with, Api};
use serde_json::{json, Value};
use shared::secrets::Redacted;
use shared::stripe::signature::Verifier;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stripe_emulator::{EmulatorConfig, WebhookEndpoint};
use tokio::sync::mpsc;

const SECRET: &str = "whsec_test_secret";
const WAIT: Duration = Duration::from_secs(10);

/// What the test receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: HeaderMap,
    body: Bytes,
    event: Value,
}

struct Inner {
    script: Mutex<VecDeque<u16>>,
    tx: mpsc::UnboundedSender<Got>,
}

/// A webhook receiver answering statuses from `script`, then 200.
struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Got>,
}

async fn hook(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = inner.tx.send(Got {
        headers,
        body,
        event,
    });
    let status = inner.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn receiver(script: &[u16]) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let inner = Arc::new(Inner {
        script: Mutex::new(script.iter().copied().collect()),
        tx,
    });
    let app = Router::new().route("/hook", post(hook)).with_state(inner);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url, rx }
}

impl Receiver {
    async fn next(&mut self) -> Got {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a delivery arrives in time")
            .expect("receiver open")
    }

    async fn take(&mut self, n: usize) -> Vec<Got> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    fn endpoint(&self, events: &[&str]) -> WebhookEndpoint {
        WebhookEndpoint {
            url: self.url.clone(),
            secret: SECRET.to_string(),
            enabled_events: events.iter().map(|e| e.to_string()).collect(),
        }
    }
}

fn config(endpoints: Vec<WebhookEndpoint>, retries: &[u64]) -> EmulatorConfig {
    EmulatorConfig {
        webhooks: endpoints,
        retry_schedule: retries
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        webhook_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn event_ids(api: &Api, kind: Option<&str>) -> Vec<String> {
    api.emulator
        .events()
        .into_iter()
        .filter(|e| kind.is_none_or(|k| e.event["type"] == k))
        .map(|e| e.event["id"].as_str().unwrap().to_string())
        .collect()
}

fn ids_of(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| g.event["id"].as_str().unwrap().to_string())
        .collect()
}

async fn control(api: &Api, path: &str, body: Value) -> common::Reply {
    api.raw(
        api.http
            .post(format!("{}/_emulator{path}", api.base))
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn events_are_delivered_in_order_signed_like_stripe() {
    let mut rx = receiver(&[]).await;
    let api = start_with(config(vec![rx.endpoint(&[])], &[10])).await;
    api.seeded_customer("hook@example.com", json!({})).await;
    let expected = event_ids(&api, None);
    assert!(expected.len() >= 6);
    let got = rx.take(expected.len()).await;
    assert_eq!(ids_of(&got), expected, "event order per endpoint");
    let secrets = [Redacted::new(SECRET)];
    for g in &got {
        let sig = g.headers["stripe-signature"].to_str().unwrap();
        assert!(sig.starts_with("t=") && sig.contains(",v1="));
        Verifier::default()
            .verify(&g.body, Some(sig), &secrets)
            .expect("signature verifies");
        assert!(Verifier::default()
            .verify(&g.body, Some(sig), &[Redacted::new("whsec_other")])
            .is_err());
        assert!(g.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        assert!(g.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("Stripe/1.0 (+https://stripe.com/docs/webhooks)"));
    }
    // Every attempt is recorded with its outcome.
    let deliveries = api
        .emulator
        .wait_for_deliveries(WAIT, |d| d.len() == expected.len())
        .await
        .unwrap();
    assert!(deliveries
        .iter()
        .all(|d| d.succeeded && d.status == Some(200) && d.attempt == 1));
    let listed = api
        .get("/_emulator/deliveries", &[("event", &expected[0])])
        .await
        .ok();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["trigger"], "automatic");
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_until_it_answers_2xx() {
    let mut rx = receiver(&[500, 500]).await;
    let api = start_with(config(
        vec![rx.endpoint(&["customer.created"])],
        &[5, 5, 5, 5],
    ))
    .await;
    let cus = api
        .post("/v1/customers", &[("email", "retry@example.com")])
        .await
        .ok();
    let evt = event_ids(&api, Some("customer.created"))[0].clone();
    let got = rx.take(3).await;
    assert!(got.iter().all(|g| g.event["id"] == evt.as_str()));
    assert_eq!(got[0].event["data"]["object"]["id"], cus["id"]);
    let d = api
        .emulator
        .wait_for_deliveries(WAIT, |d| d.iter().any(|x| x.succeeded))
        .await
        .unwrap();
    let attempts: Vec<(u32, Option<u16>)> = d.iter().map(|x| (x.attempt, x.status)).collect();
    assert_eq!(
        attempts,
        [(1, Some(500)), (2, Some(500)), (3, Some(200))],
        "exactly three attempts"
    );
    assert_eq!(d[1].trigger, "retry");
}

#[tokio::test]
async fn a_down_receiver_does_not_block_later_events() {
    // The first event fails and its retry waits far in the future; the next still arrives.
    let mut rx = receiver(&[503]).await;
    let api = start_with(config(vec![rx.endpoint(&["customer.created"])], &[60_000])).await;
    api.post("/v1/customers", &[("email", "a@example.com")])
        .await
        .ok();
    let first = rx.next().await;
    api.post("/v1/customers", &[("email", "b@example.com")])
        .await
        .ok();
    let second = rx.next().await;
    assert_eq!(first.event["data"]["object"]["email"], "a@example.com");
    assert_eq!(second.event["data"]["object"]["email"], "b@example.com");
    let d = api
        .emulator
        .wait_for_deliveries(WAIT, |d| d.len() == 2)
        .await
        .unwrap();
    assert_eq!(d[0].status, Some(503));
    assert!(!d[0].succeeded && d[1].succeeded);

    // A receiver that is not listening at all: the attempt records a connection error.
    let api2 = start_with(config(
        vec![WebhookEndpoint::new("http://127.0.0.1:9/hook", SECRET)],
        &[],
    ))
    .await;
    api2.post("/v1/customers", &[("email", "c@example.com")])
        .await
        .ok();
    let d = api2
        .emulator
        .wait_for_deliveries(WAIT, |d| !d.is_empty())
        .await
        .unwrap();
    assert!(d[0].status.is_none() && d[0].error.is_some());
}

#[tokio::test]
async fn duplicates_ordering_and_pause_resume_controls() {
    let mut rx = receiver(&[]).await;
    let api = start_with(config(
        vec![rx.endpoint(&["customer.created", "customer.updated"])],
        &[],
    ))
    .await;
    let r = control(&api, "/delivery/pause", json!({})).await.ok();
    assert_eq!(r["paused"], true);
    let cus = id(&api
        .post("/v1/customers", &[("email", "o@example.com")])
        .await
        .ok());
    api.post(&format!("/v1/customers/{cus}"), &[("name", "One")])
        .await
        .ok();
    api.post(&format!("/v1/customers/{cus}"), &[("name", "Two")])
        .await
        .ok();
    let ids = event_ids(&api, None);
    assert_eq!(ids.len(), 3);
    let status = api.get("/_emulator/delivery", &[]).await.ok();
    assert_eq!(status["pending"], 3);
    assert!(api.emulator.deliveries(None).is_empty());

    // Duplicates: N concurrent deliveries of one event.
    let r = control(
        &api,
        &format!("/events/{}/deliver?times=3", ids[0]),
        json!({}),
    )
    .await
    .ok();
    assert_eq!(r["data"].as_array().unwrap().len(), 3);
    let got = rx.take(3).await;
    assert!(got.iter().all(|g| g.event["id"] == ids[0].as_str()));

    // A given order, one after the other.
    let order = vec![ids[2].clone(), ids[0].clone(), ids[1].clone()];
    let r = control(&api, "/deliver", json!({"events": order}))
        .await
        .ok();
    let statuses: Vec<&str> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        order.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(ids_of(&rx.take(3).await), order);

    // Redeliver one.
    let r = control(&api, &format!("/events/{}/redeliver", ids[1]), json!({}))
        .await
        .ok();
    assert_eq!(r["data"][0]["trigger"], "redeliver");
    assert_eq!(ids_of(&rx.take(1).await), [ids[1].clone()]);
    control(&api, "/events/evt_nope/redeliver", json!({}))
        .await
        .err(404);

    // Resume: what was recorded while paused goes out, in order.
    let r = control(&api, "/delivery/resume", json!({})).await.ok();
    assert_eq!(r["paused"], false);
    assert_eq!(ids_of(&rx.take(3).await), ids);

    // Pause, then resume dropping what was queued: only later events go out.
    api.emulator.pause_delivery();
    api.post(&format!("/v1/customers/{cus}"), &[("name", "Dropped")])
        .await
        .ok();
    api.emulator.resume_delivery(true);
    api.post(&format!("/v1/customers/{cus}"), &[("name", "Kept")])
        .await
        .ok();
    let got = rx.next().await;
    assert_eq!(got.event["data"]["object"]["name"], "Kept");
}

#[tokio::test]
async fn runtime_endpoints_and_reset_clear_deliveries() {
    let mut rx = receiver(&[]).await;
    let api = start_with(config(vec![], &[])).await;
    let ep = control(
        &api,
        "/webhook_endpoints",
        json!({"url": rx.url, "enabled_events": ["customer.created"]}),
    )
    .await
    .ok();
    let secret = ep["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    api.post("/v1/customers", &[("email", "rt@example.com")])
        .await
        .ok();
    let g = rx.next().await;
    let sig = g.headers["stripe-signature"].to_str().unwrap();
    Verifier::default()
        .verify(&g.body, Some(sig), &[Redacted::new(secret)])
        .unwrap();
    api.emulator
        .wait_for_deliveries(WAIT, |d| d.len() == 1)
        .await
        .unwrap();
    api.post("/_emulator/reset", &[]).await.ok();
    assert!(api.emulator.deliveries(None).is_empty());
    assert_eq!(
        api.get("/_emulator/webhook_endpoints", &[]).await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn injected_faults_fail_the_next_n_requests_without_touching_state() {
    let api = start_with(EmulatorConfig::default()).await;
    let made = api.seeded_customer("fault@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    let path = format!("/v1/customers/{cus}");
    control(
        &api,
        "/faults",
        json!({"path": path, "method": "GET", "times": 2, "status": 429}),
    )
    .await
    .ok();
    for _ in 0..2 {
        let err = api.get(&path, &[]).await.err(429);
        assert_eq!(err["code"], "rate_limit");
    }
    api.get(&path, &[]).await.ok();

    // 409 lock_timeout on a prefix, for POSTs: nothing is written.
    control(
        &api,
        "/faults",
        json!({"path": "/v1/customers*", "method": "POST", "times": 1, "status": 409}),
    )
    .await
    .ok();
    let n = api.emulator.events().len();
    let err = api.post(&path, &[("name", "Changed")]).await.err(409);
    assert_eq!(err["code"], "lock_timeout");
    assert_eq!(api.emulator.events().len(), n);
    assert!(api.emulator.object(&cus).unwrap()["name"].is_null());
    let ok = api.post(&path, &[("name", "Changed")]).await.ok();
    assert_eq!(ok["name"], "Changed");

    // 500 in Stripe's shape; the request log shows it.
    control(
        &api,
        "/faults",
        json!({"path": "/v1/customers", "times": 1, "status": 500}),
    )
    .await
    .ok();
    let err = api
        .post("/v1/customers", &[("email", "x@example.com")])
        .await
        .err(500);
    assert_eq!(err["type"], "api_error");
    assert_eq!(api.emulator.requests().last().unwrap().status, 500);
    api.post("/v1/customers", &[("email", "x@example.com")])
        .await
        .ok();
    control(&api, "/faults", json!({"path": "nope", "status": 500}))
        .await
        .err(400);

    // Latency only: the request succeeds after the delay.
    api.emulator
        .inject_fault(stripe_emulator::Fault {
            path: path.clone(),
            method: None,
            times: 1,
            status: None,
            latency_ms: Some(30),
        })
        .unwrap();
    let t = std::time::Instant::now();
    api.get(&path, &[]).await.ok();
    assert!(t.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn clock_advance_ends_cancelling_subscriptions_and_renews_active_ones() {
    let mut rx = receiver(&[]).await;
    let api = start_with(config(
        vec![rx.endpoint(&["customer.subscription.deleted", "invoice.payment_failed"])],
        &[],
    ))
    .await;
    let leaving = api.seeded_customer("leave@example.com", json!({})).await;
    let staying = api.seeded_customer("stay@example.com", json!({})).await;
    let failing = api.seeded_customer("fail@example.com", json!({})).await;
    let leaving_sub = id(&leaving["subscription"]);
    let staying_sub = id(&staying["subscription"]);
    let failing_sub = id(&failing["subscription"]);
    api.post(
        &format!("/v1/subscriptions/{leaving_sub}"),
        &[("cancel_at_period_end", "true")],
    )
    .await
    .ok();
    // A card that attaches but declines every charge becomes the default.
    let fcus = id(&failing["customer"]);
    let pm = api
        .post(
            "/v1/payment_methods/pm_card_chargeCustomerFail/attach",
            &[("customer", &fcus)],
        )
        .await
        .ok();
    api.post(
        &format!("/v1/customers/{fcus}"),
        &[("invoice_settings[default_payment_method]", &id(&pm))],
    )
    .await
    .ok();
    let old_end = staying["subscription"]["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    let before = api.emulator.events().len();

    let r = control(&api, "/clock/advance", json!({"seconds": 32 * 86_400}))
        .await
        .ok();
    assert_eq!(r["happened"].as_array().unwrap().len(), 3, "{r}");

    let s = api.emulator.object(&leaving_sub).unwrap();
    assert_eq!(s["status"], "canceled");
    assert_eq!(s["ended_at"], s["cancel_at"]);

    let s = api.emulator.object(&staying_sub).unwrap();
    assert_eq!(s["status"], "active");
    let item = &s["items"]["data"][0];
    assert_eq!(item["current_period_start"], old_end);
    assert!(item["current_period_end"].as_i64().unwrap() > old_end);
    let inv = api
        .emulator
        .object(s["latest_invoice"].as_str().unwrap())
        .unwrap();
    assert_eq!(inv["status"], "paid");
    assert_eq!(inv["billing_reason"], "subscription_cycle");

    let s = api.emulator.object(&failing_sub).unwrap();
    assert_eq!(s["status"], "past_due");
    let inv = api
        .emulator
        .object(s["latest_invoice"].as_str().unwrap())
        .unwrap();
    assert_eq!(inv["status"], "open");

    let new: Vec<Value> = api
        .emulator
        .events()
        .into_iter()
        .skip(before)
        .map(|e| e.event)
        .collect();
    let of = |sub: &str| -> Vec<String> {
        new.iter()
            .filter(|e| {
                e["data"]["object"]["id"] == sub || e["data"]["object"]["subscription"] == sub
            })
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(of(&leaving_sub), ["customer.subscription.deleted"]);
    assert_eq!(
        of(&staying_sub),
        [
            "customer.subscription.updated",
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded"
        ]
    );
    assert_eq!(
        of(&failing_sub),
        [
            "customer.subscription.updated",
            "invoice.created",
            "invoice.finalized",
            "invoice.payment_failed",
            "customer.subscription.updated"
        ]
    );
    let renewed = new
        .iter()
        .find(|e| {
            e["type"] == "customer.subscription.updated"
                && e["data"]["object"]["id"] == staying_sub.as_str()
        })
        .unwrap();
    assert_eq!(
        renewed["data"]["previous_attributes"]["items"]["data"][0]["current_period_start"],
        staying["subscription"]["items"]["data"][0]["current_period_start"]
    );

    // Delivered: the deletion and the failed payment.
    let got = rx.take(2).await;
    let mut kinds: Vec<&str> = got
        .iter()
        .map(|g| g.event["type"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["customer.subscription.deleted", "invoice.payment_failed"]
    );
    let deleted = got
        .iter()
        .find(|g| g.event["type"] == "customer.subscription.deleted")
        .unwrap();
    assert_eq!(deleted.event["data"]["object"]["id"], leaving_sub.as_str());
    assert_eq!(deleted.event["data"]["object"]["status"], "canceled");

    // The clock only moves forward.
    control(&api, "/clock/advance", json!({"to": 0}))
        .await
        .err(400);
}
