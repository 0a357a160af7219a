use portico_testkit::{call, fixtures, Harness};
use serde_json::{json, Value};

use super::handle;

const PRICES: (&str, &str) = ("ALLOWED_PRICES", "price_pro_monthly,price_pro_yearly");

async fn call(h: &Harness, event: &str, sub: &str, vars: &[(&str, &str)]) -> (u16, Value) {
    let token = h.stack.token(sub);
    let mut all = vec![("TOKEN", token.as_str())];
    all.extend_from_slice(vars);
    let (status, body) = call!(handle(&h.services, fixtures::request_with(event, &all)));
    (status.as_u16(), body)
}

#[tokio::test]
async fn a_user_without_a_customer_gets_an_empty_account() {
    let h = Harness::new().await;
    let (status, body) = call(&h, "billing-account/get-account", "auth0|new-user", &[]).await;
    assert_eq!(status, 200, "{body}");
    let account = &body["account"];
    assert_eq!(
        (account["customer_id"].clone(), account["premium"].clone()),
        (Value::Null, Value::Bool(false))
    );
    assert_eq!(account["invoices"], serde_json::json!([]));
    assert_eq!(account["email"], "auth0_new-user@example.test");
    assert!(h.stripe_calls().is_empty());
}

#[tokio::test]
async fn refresh_syncs_and_then_the_stored_state_is_served() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("paying").await;
    let (_, before) = call(&h, "billing-account/get-account", "paying", &[]).await;
    assert_eq!(before["account"]["customer_id"], customer.as_str());
    assert_eq!(before["account"]["premium"], false, "nothing synced yet");

    let (status, body) = call(&h, "billing-account/get-account-refresh", "paying", &[]).await;
    assert_eq!(status, 200, "{body}");
    let account = &body["account"];
    assert_eq!(account["premium"], true);
    assert_eq!(account["plan"]["product_name"], "Portico Pro");
    assert_eq!(account["plan"]["price_id"], "price_pro_monthly");
    assert_eq!(account["subscription"]["status"], "active");
    assert!(account["subscription"]["current_period_end"]
        .as_i64()
        .is_some());
    assert_eq!(account["default_payment_method"]["brand"], "visa");
    assert_eq!(account["default_payment_method"]["last4"], "4242");
    assert_eq!(account["invoices"][0]["status"], "paid");
    assert!(account["invoices"][0]["hosted_invoice_url"].is_string());

    h.emulator.clear_requests();
    let (_, stored) = call(&h, "billing-account/get-account", "paying", &[]).await;
    assert_eq!(stored["account"]["plan"], account["plan"]);
    assert!(h.stripe_calls().is_empty(), "served from the synced state");
}

#[tokio::test]
async fn cancel_then_resume() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("waverer").await;
    let sub = h.subscription_of(&customer).await;
    let vars = [("SUBSCRIPTION", sub.as_str())];
    // A first sync stores the baseline the cancellation is compared with.
    call(&h, "billing-account/get-account-refresh", "waverer", &[]).await;

    let (status, body) = call(&h, "billing-account/cancel", "waverer", &vars).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["changed"], true);
    assert_eq!(body["result"]["subscription"]["cancel_at_period_end"], true);
    let stripe = h.emulator.object(&sub).unwrap();
    assert_eq!(stripe["cancel_at_period_end"], true);
    let audit = h.services.table.audit_entries(&customer).await.unwrap();
    assert!(
        audit.iter().any(|e| e.change.field.ends_with(".cancel_at")),
        "{audit:?}"
    );

    let (status, body) = call(&h, "billing-account/cancel", "waverer", &vars).await;
    assert_eq!(
        (status, body["result"]["changed"].as_bool()),
        (200, Some(false)),
        "already cancelling"
    );

    let (_, account) = call(&h, "billing-account/get-account", "waverer", &[]).await;
    assert_eq!(
        account["account"]["premium"], true,
        "premium until the period ends"
    );

    let (status, body) = call(&h, "billing-account/resume", "waverer", &vars).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["changed"], true);
    assert_eq!(
        body["result"]["subscription"]["cancel_at_period_end"],
        false
    );
    assert_eq!(
        h.emulator.object(&sub).unwrap()["cancel_at_period_end"],
        false
    );
}

#[tokio::test]
async fn immediate_cancel_needs_the_setting_and_ended_subscriptions_cannot_resume() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("quitter").await;
    let sub = h.subscription_of(&customer).await;
    let vars = [("SUBSCRIPTION", sub.as_str())];
    let (status, body) = call(&h, "billing-account/cancel-immediately", "quitter", &vars).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("immediate_cancel_not_allowed"))
    );
    assert_eq!(
        h.emulator.object(&sub).unwrap()["status"],
        "active",
        "nothing changed"
    );

    let h2 = Harness::with(&[("ALLOW_IMMEDIATE_CANCEL", "true")]).await;
    let customer = h2.subscribed_customer("quitter").await;
    let sub = h2.subscription_of(&customer).await;
    let vars = [("SUBSCRIPTION", sub.as_str())];
    let (status, body) = call(&h2, "billing-account/cancel-immediately", "quitter", &vars).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["subscription"]["status"], "canceled");
    let (status, body) = call(&h2, "billing-account/resume", "quitter", &vars).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("subscription_ended"))
    );
}

#[tokio::test]
async fn another_users_subscription_is_404() {
    let h = Harness::new().await;
    let theirs = h.subscribed_customer("victim").await;
    h.subscribed_customer("attacker").await;
    let sub = h.subscription_of(&theirs).await;
    let vars = [("SUBSCRIPTION", sub.as_str())];
    for event in ["billing-account/cancel", "billing-account/resume"] {
        let (status, body) = call(&h, event, "attacker", &vars).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (404, Some("subscription_not_found")),
            "{event}"
        );
    }
    let (status, _) = call(
        &h,
        "billing-account/cancel",
        "attacker",
        &[("SUBSCRIPTION", "sub_DoesNotExist")],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        h.emulator.object(&sub).unwrap()["cancel_at_period_end"],
        false
    );
}

#[tokio::test]
async fn a_double_click_checkout_makes_one_session() {
    let h = Harness::with(&[PRICES]).await;
    let vars = [("IDEMPOTENCY_KEY", "click-1")];
    let (status, first) = call(&h, "billing-account/checkout", "shopper", &vars).await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = call(&h, "billing-account/checkout", "shopper", &vars).await;
    assert_eq!(
        (status, second["checkout_session"]["reused"].as_bool()),
        (200, Some(true)),
        "{second}"
    );
    let id = first["checkout_session"]["id"].as_str().unwrap();
    assert_eq!(second["checkout_session"]["id"], id);
    // The same key for another purchase is the caller's mistake, not Stripe's outage.
    let mut request = fixtures::request_with_body(
        "billing-account/checkout",
        &h.stack.token("shopper"),
        &json!({"price": "price_pro_yearly", "success_path": "/welcome", "cancel_path": "/pricing"}),
    );
    request
        .headers_mut()
        .insert("idempotency-key", "click-1".parse().unwrap());
    let (status, body) = call!(handle(&h.services, request));
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (409, Some("idempotency_key_reused")),
        "{body}"
    );
    let session = h.emulator.object(id).unwrap();
    assert_eq!(session["client_reference_id"], "shopper");
    assert_eq!(session["mode"], "subscription");
    assert_eq!(session["success_url"], "https://app.portico.test/welcome");
    let created = h
        .emulator
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/checkout/sessions" && r.status == 200 && !r.idempotent_replayed)
        .count();
    assert_eq!(created, 1);
}

#[tokio::test]
async fn checkout_refuses_other_prices_missing_keys_and_existing_subscribers() {
    let h = Harness::with(&[PRICES]).await;
    let token = h.stack.token("picky");
    let body = serde_json::json!({"price": "price_team_monthly"});
    let mut request = fixtures::request_with_body("billing-account/checkout", &token, &body);
    request
        .headers_mut()
        .insert("idempotency-key", "k-1".parse().unwrap());
    let (status, answer) = call!(handle(&h.services, request));
    assert_eq!(
        (status.as_u16(), answer["field"].as_str()),
        (400, Some("price")),
        "{answer}"
    );

    let (status, answer) = call(&h, "billing-account/checkout-without-key", "picky", &[]).await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (400, Some("idempotency_key_required"))
    );
    assert!(h.stripe_calls().is_empty());

    h.subscribed_customer("subscriber").await;
    let (status, answer) = call(
        &h,
        "billing-account/checkout",
        "subscriber",
        &[("IDEMPOTENCY_KEY", "k-2")],
    )
    .await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (409, Some("already_subscribed")),
        "{answer}"
    );
}

#[tokio::test]
async fn tokens_routes_and_methods() {
    let h = Harness::new().await;
    let (status, body) = call!(handle(
        &h.services,
        fixtures::request("billing-account/get-account-unauthenticated", ""),
    ));
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (401, Some("missing_token"))
    );
    assert_eq!(body["request_id"], "req-get-account-unauthenticated");
    let (status, body) = call!(handle(
        &h.services,
        fixtures::request("billing-account/get-account-invalid-token", ""),
    ));
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (401, Some("malformed_token"))
    );
    let (status, _) = call(&h, "billing-account/unknown-route", "u", &[]).await;
    assert_eq!(status, 404);
    let token = h.stack.token("u");
    let response = handle(
        &h.services,
        fixtures::request("billing-account/get-account-wrong-method", &token),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
}

/// Completes a checkout session on the emulator's hosted page with a test card.
async fn pay(url: &str) -> Value {
    pay_with(url, "pm_card_visa").await
}

async fn pay_with(url: &str, payment_method: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{url}/complete"))
        .json(&serde_json::json!({ "payment_method": payment_method }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

async fn checkout_and_pay(h: &Harness, sub: &str, key: &str) -> String {
    let (status, body) = call(
        h,
        "billing-account/checkout",
        sub,
        &[("IDEMPOTENCY_KEY", key)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    pay(body["checkout_session"]["url"].as_str().unwrap()).await;
    body["checkout_session"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_completed_checkout_shows_after_refresh() {
    let h = Harness::with(&[PRICES]).await;
    let (_, before) = call(&h, "billing-account/get-account", "buyer", &[]).await;
    assert_eq!(before["account"]["premium"], false);
    checkout_and_pay(&h, "buyer", "buy-1").await;
    let (status, after) = call(&h, "billing-account/get-account-refresh", "buyer", &[]).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["account"]["premium"], true);
    assert_eq!(after["account"]["plan"]["price_id"], "price_pro_monthly");
    assert_eq!(after["account"]["invoices"][0]["status"], "paid");
}

#[tokio::test]
async fn a_completed_checkout_shows_after_its_webhook() {
    let h = Harness::with(&[PRICES]).await;
    let session = checkout_and_pay(&h, "hooked-buyer", "buy-2").await;
    let completed = h
        .emulator
        .events()
        .into_iter()
        .map(|e| e.event)
        .find(|e| {
            e["type"] == "checkout.session.completed"
                && e["data"]["object"]["id"] == session.as_str()
        })
        .expect("checkout.session.completed recorded");
    // What the webhook function does with the delivery.
    let envelope = shared::webhook::parse_envelope(completed.to_string().as_bytes()).unwrap();
    shared::webhook::process(h.services.sync_context(), &envelope, false)
        .await
        .unwrap();
    let (_, after) = call(&h, "billing-account/get-account", "hooked-buyer", &[]).await;
    assert_eq!(after["account"]["premium"], true, "{after}");
    assert_eq!(after["account"]["subscription"]["status"], "active");
}

#[tokio::test]
async fn premium_lasts_until_the_period_ends_then_stops() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("leaver").await;
    let sub = h.subscription_of(&customer).await;
    call(&h, "billing-account/get-account-refresh", "leaver", &[]).await;
    let (status, _) = call(
        &h,
        "billing-account/cancel",
        "leaver",
        &[("SUBSCRIPTION", sub.as_str())],
    )
    .await;
    assert_eq!(status, 200);
    let (_, cancelling) = call(&h, "billing-account/get-account-refresh", "leaver", &[]).await;
    assert_eq!(cancelling["account"]["premium"], true);
    let end = cancelling["account"]["premium_until"].as_i64().unwrap();

    h.emulator
        .advance_clock(end - h.emulator.now() - 60)
        .unwrap();
    let (_, just_before) = call(&h, "billing-account/get-account-refresh", "leaver", &[]).await;
    assert_eq!(
        just_before["account"]["premium"], true,
        "a minute before the end"
    );

    h.emulator.advance_clock(120).unwrap();
    let (_, after) = call(&h, "billing-account/get-account-refresh", "leaver", &[]).await;
    assert_eq!(after["account"]["premium"], false, "{after}");
    assert_eq!(after["account"]["subscription"]["status"], "canceled");
}

async fn checkout_with(h: &Harness, sub: &str, key: &str, body: &Value) -> (u16, Value) {
    let mut request =
        fixtures::request_with_body("billing-account/checkout", &h.stack.token(sub), body);
    request
        .headers_mut()
        .insert("idempotency-key", key.parse().unwrap());
    let (status, answer) = call!(handle(&h.services, request));
    (status.as_u16(), answer)
}

#[tokio::test]
async fn checkout_paths_cannot_send_the_buyer_off_the_app() {
    let h = Harness::with(&[PRICES]).await;
    let attempts = [
        ("success_path", "/\t/evil.test"),
        ("success_path", "/\n/evil.test"),
        ("cancel_path", "/\r/evil.test"),
        ("cancel_path", "/\\evil.test"),
        ("success_path", "//evil.test"),
        ("success_path", "/..//evil.test"),
        ("cancel_path", "https://evil.test/"),
    ];
    for (n, (field, path)) in attempts.into_iter().enumerate() {
        let body = json!({"price": "price_pro_monthly", field: path});
        let (status, answer) = checkout_with(&h, "redirected", &format!("evil-{n}"), &body).await;
        assert_eq!(
            (
                status,
                answer["error_code"].as_str(),
                answer["field"].as_str()
            ),
            (400, Some("invalid_return_url"), Some(field)),
            "{path:?}: {answer}"
        );
    }
    assert!(
        h.stripe_calls().is_empty(),
        "nothing reached Stripe: {:?}",
        h.stripe_calls()
    );

    // What Stripe stores is exactly the checked URL, on the app's origin.
    let body = json!({"price": "price_pro_monthly", "success_path": "/welcome?from=checkout",
                      "cancel_path": "/pricing"});
    let (status, answer) = checkout_with(&h, "redirected", "fine", &body).await;
    assert_eq!(status, 201, "{answer}");
    let stored = h
        .emulator
        .object(answer["checkout_session"]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        stored["success_url"],
        format!("{}/welcome?from=checkout", portico_testkit::FRONTEND)
    );
    assert_eq!(
        stored["cancel_url"],
        format!("{}/pricing", portico_testkit::FRONTEND)
    );
}

const THROTTLED: (&str, &str) = ("SYNC_REFRESH_MIN_SECONDS", "10");

/// Stripe retrievals of the customer: one per sync.
fn customer_fetches(h: &Harness, customer: &shared::ids::CustomerId) -> usize {
    let path = format!("/v1/customers/{customer}");
    h.emulator
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

#[tokio::test]
async fn fifty_concurrent_refreshes_cause_one_stripe_sync() {
    use shared::store::AuditSource;
    use shared::sync::{sync_customer, SyncTrigger};
    let h = std::sync::Arc::new(Harness::with(&[THROTTLED]).await);
    let customer = h.subscribed_customer("hammer").await;
    // A state stored by a webhook (not a user-triggered sync) to answer with.
    let trigger = SyncTrigger {
        source: AuditSource::Webhook,
        reference: None,
    };
    sync_customer(h.services.sync_context(), &customer, &trigger, &())
        .await
        .unwrap();
    h.emulator.clear_requests();

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (h, barrier) = (h.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                call(&h, "billing-account/get-account-refresh", "hammer", &[]).await
            })
        })
        .collect();
    let mut refreshed = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let account = &body["account"];
        assert!(account["synced_at"].is_string(), "{body}");
        assert_eq!(account["premium"], true);
        refreshed += usize::from(account["refreshed"] == true);
    }
    assert_eq!(refreshed, 1, "exactly one request re-synced");
    assert_eq!(customer_fetches(&h, &customer), 1);
}

#[tokio::test]
async fn a_refresh_while_the_first_sync_stores_nothing_yet_is_429_and_actions_still_work() {
    let h = std::sync::Arc::new(Harness::with(&[THROTTLED]).await);
    let customer = h.subscribed_customer("eager").await;
    let held = h.emulator.hold("GET", &format!("/v1/customers/{customer}"));
    let first = {
        let h = h.clone();
        tokio::spawn(
            async move { call(&h, "billing-account/get-account-refresh", "eager", &[]).await },
        )
    };
    held.wait_for_arrivals(1).await;

    let request = fixtures::request_with(
        "billing-account/get-account-refresh",
        &[("TOKEN", &h.stack.token("eager"))],
    );
    let response = handle(&h.services, request).await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(
        (body["success"].as_bool(), body["error_code"].as_str()),
        (Some(false), Some("refresh_throttled"))
    );
    assert!(body["request_id"].is_string() && body["timestamp"].is_string());

    held.release();
    let (status, body) = first.await.unwrap();
    assert_eq!(
        (status, body["account"]["refreshed"].as_bool()),
        (200, Some(true))
    );
    let (status, body) = call(&h, "billing-account/get-account-refresh", "eager", &[]).await;
    assert_eq!(
        (status, body["account"]["refreshed"].as_bool()),
        (200, Some(false))
    );
    assert_eq!(customer_fetches(&h, &customer), 1);

    // Cancelling is the user's action, not a refresh: it is never throttled, and it re-syncs.
    let sub = h.subscription_of(&customer).await;
    let (status, body) = call(
        &h,
        "billing-account/cancel",
        "eager",
        &[("SUBSCRIPTION", sub.as_str())],
    )
    .await;
    assert_eq!(
        (status, body["result"]["changed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(body["result"]["subscription"]["cancel_at_period_end"], true);
    assert_eq!(customer_fetches(&h, &customer), 2);
}

/// Checkout sessions Stripe created (replays of an idempotent create excluded).
fn sessions_created(h: &Harness) -> usize {
    h.emulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/checkout/sessions")
        .filter(|r| r.status == 200 && !r.idempotent_replayed)
        .count()
}

/// The ids of the customer's sessions that were expired.
fn expired_sessions(h: &Harness, customer: &str) -> Vec<String> {
    h.emulator
        .events()
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e["type"] == "checkout.session.expired")
        .filter(|e| e["data"]["object"]["customer"] == customer)
        .map(|e| e["data"]["object"]["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn two_concurrent_checkouts_of_one_price_leave_one_payable_session() {
    let h = std::sync::Arc::new(Harness::with(&[PRICES]).await);
    // The customer exists first, so both requests reach the session creation.
    let customer = h.subscribed_customer("two-tabs").await;
    h.stripe_api(
        "DELETE",
        &format!("/v1/subscriptions/{}", h.subscription_of(&customer).await),
        &[],
    )
    .await;
    let body = json!({"price": "price_pro_monthly"});
    let held = h.emulator.hold("POST", "/v1/checkout/sessions");
    let tasks: Vec<_> = ["tab-a", "tab-b"]
        .into_iter()
        .map(|key| {
            let (h, body) = (h.clone(), body.clone());
            tokio::spawn(async move { checkout_with(&h, "two-tabs", key, &body).await })
        })
        .collect();
    // Both are past the open-session check and creating a session at Stripe at once.
    held.wait_for_arrivals(2).await;
    held.release();
    let mut answers = Vec::new();
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        assert!(status == 200 || status == 201, "{answer}");
        answers.push(answer["checkout_session"].clone());
    }
    assert_eq!(
        answers[0]["id"], answers[1]["id"],
        "both tabs pay the same session"
    );
    assert_eq!(
        answers.iter().filter(|a| a["reused"] == false).count(),
        1,
        "{answers:?}"
    );
    let winner = answers[0]["id"].as_str().unwrap();
    assert_eq!(sessions_created(&h), 2, "both requests created one");
    assert_eq!(h.emulator.object(winner).unwrap()["status"], "open");
    let expired = expired_sessions(&h, customer.as_str());
    assert_eq!(expired.len(), 1, "the other is no longer payable");
    assert_ne!(expired[0], winner);

    // A later click with a new key gets the open one back without creating anything.
    h.emulator.clear_requests();
    let (status, again) = checkout_with(&h, "two-tabs", "tab-c", &body).await;
    assert_eq!(
        (status, &again["checkout_session"]["id"]),
        (200, &answers[0]["id"])
    );
    assert!(
        !h.stripe_calls()
            .contains(&"POST /v1/checkout/sessions".to_string()),
        "{:?}",
        h.stripe_calls()
    );
    // Once it is no longer payable, a new one is made.
    h.stripe_api(
        "POST",
        &format!(
            "/v1/checkout/sessions/{}/expire",
            answers[0]["id"].as_str().unwrap()
        ),
        &[],
    )
    .await;
    let (status, fresh) = checkout_with(&h, "two-tabs", "tab-d", &body).await;
    assert_eq!(status, 201, "{fresh}");
    assert_ne!(fresh["checkout_session"]["id"], answers[0]["id"]);
    // Another price is another purchase.
    let yearly = json!({"price": "price_pro_yearly"});
    let (status, other) = checkout_with(&h, "two-tabs", "tab-e", &yearly).await;
    assert_eq!(status, 201, "{other}");
}

#[tokio::test]
async fn the_card_checkout_saved_on_the_subscription_is_the_one_shown() {
    let h = Harness::with(&[PRICES]).await;
    checkout_and_pay(&h, "card-buyer", "card-1").await;
    let (_, after) = call(&h, "billing-account/get-account-refresh", "card-buyer", &[]).await;
    let account = &after["account"];
    let method = &account["default_payment_method"];
    assert_eq!(
        (
            method["type"].as_str(),
            method["brand"].as_str(),
            method["last4"].as_str()
        ),
        (Some("card"), Some("visa"), Some("4242")),
        "{after}"
    );
    assert_eq!(method["pays_subscription"], account["subscription"]["id"]);
    // Checkout set the subscription's default, not the customer's.
    let customer = h
        .emulator
        .object(account["customer_id"].as_str().unwrap())
        .unwrap();
    assert!(customer["invoice_settings"]["default_payment_method"].is_null());
    let (_, stored) = call(&h, "billing-account/get-account", "card-buyer", &[]).await;
    assert_eq!(stored["account"]["default_payment_method"], *method);
}

#[tokio::test]
async fn bank_debits_are_shown_with_their_own_fields() {
    let h = Harness::with(&[PRICES]).await;
    for (user, token, expected) in [
        (
            "ach-buyer",
            "pm_usBankAccount",
            json!({"type": "us_bank_account", "bank_name": "STRIPE TEST BANK", "last4": "6789"}),
        ),
        (
            "sepa-buyer",
            "pm_sepaDebit",
            json!({"type": "sepa_debit", "bank_code": "37040044", "country": "DE", "last4": "3000"}),
        ),
    ] {
        let (status, body) = call(
            &h,
            "billing-account/checkout",
            user,
            &[("IDEMPOTENCY_KEY", user)],
        )
        .await;
        assert_eq!(status, 201, "{body}");
        pay_with(body["checkout_session"]["url"].as_str().unwrap(), token).await;
        let (_, after) = call(&h, "billing-account/get-account-refresh", user, &[]).await;
        let method = &after["account"]["default_payment_method"];
        for (field, value) in expected.as_object().unwrap() {
            assert_eq!(&method[field], value, "{field} of {method}");
        }
        assert!(method.get("brand").is_none(), "no card fields: {method}");
        assert!(method["id"].as_str().unwrap().starts_with("pm_"));
        assert_eq!(after["account"]["premium"], true);
    }
}

const LIFETIME: (&str, &str) = ("ALLOWED_ONE_TIME_PRICES", "price_pro_lifetime");

/// Buys lifetime access through the checkout route and the hosted page; returns the session.
async fn buy_lifetime(h: &Harness, sub: &str, key: &str) -> Value {
    let (status, body) = call(
        h,
        "billing-account/checkout-lifetime",
        sub,
        &[("IDEMPOTENCY_KEY", key)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let paid = pay(body["checkout_session"]["url"].as_str().unwrap()).await;
    paid["session"].clone()
}

/// Delivers every recorded event of `kind` to the webhook processing, as Stripe would.
async fn deliver(h: &Harness, kind: &str) {
    for event in h.emulator.events().into_iter().map(|e| e.event) {
        if event["type"] == kind {
            let envelope = shared::webhook::parse_envelope(event.to_string().as_bytes()).unwrap();
            shared::webhook::process(h.services.sync_context(), &envelope, false)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_lifetime_purchase_grants_premium_without_end_and_without_a_subscription() {
    let h = Harness::with(&[PRICES, LIFETIME]).await;
    let session = buy_lifetime(&h, "lifer", "life-1").await;
    assert_eq!(session["mode"], "payment");
    let pi = session["payment_intent"].as_str().unwrap();
    assert_eq!(
        h.emulator.object(pi).unwrap()["metadata"]["portico_purchase"],
        "lifetime"
    );
    // The webhook alone makes it premium (no refresh).
    deliver(&h, "checkout.session.completed").await;
    let (_, body) = call(&h, "billing-account/get-account", "lifer", &[]).await;
    let account = &body["account"];
    assert_eq!(account["premium"], true, "{body}");
    assert_eq!(account["premium_until"], Value::Null);
    assert_eq!(account["subscription"], Value::Null);
    assert_eq!(account["plan"]["kind"], "lifetime");
    assert_eq!(account["plan"]["product_name"], "Portico Pro");
    assert_eq!(account["plan"]["price_id"], "price_pro_lifetime");
    assert_eq!(account["lifetime"]["payment_intent"], pi);
    assert_eq!(account["lifetime"]["amount"], 29900);
    assert!(account["lifetime"]["paid_at"].as_i64().unwrap() > 0);
    // Stored as its own item too, and the user record is premium.
    let customer =
        shared::ids::CustomerId::parse(account["customer_id"].as_str().unwrap()).unwrap();
    let items = h
        .services
        .table
        .lifetime_purchases(&customer)
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].purchase.payment_intent, pi);
    assert_eq!(
        items[0].purchase.product_id.as_deref(),
        Some("prod_portico_pro")
    );
    use shared::store::UserStore;
    let user = h
        .services
        .table
        .get_user(&shared::ids::UserId::parse("lifer").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.premium);
    let audit = h.services.table.audit_entries(&customer).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.change.message == "Lifetime access purchased: Portico Pro (299.00 usd)"),
        "{audit:?}"
    );

    // A second lifetime checkout for an owner is refused before Stripe sees one.
    h.emulator.clear_requests();
    let (status, body) = call(
        &h,
        "billing-account/checkout-lifetime",
        "lifer",
        &[("IDEMPOTENCY_KEY", "life-2")],
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (409, Some("already_purchased")),
        "{body}"
    );
    assert!(!h
        .stripe_calls()
        .iter()
        .any(|c| c == "POST /v1/checkout/sessions"));
}

#[tokio::test]
async fn a_partial_refund_keeps_lifetime_and_a_full_refund_revokes_it() {
    let h = Harness::with(&[LIFETIME]).await;
    let session = buy_lifetime(&h, "refunded", "ref-1").await;
    let pi = session["payment_intent"].as_str().unwrap().to_string();
    call(&h, "billing-account/get-account-refresh", "refunded", &[]).await;

    h.stripe_api(
        "POST",
        "/v1/refunds",
        &[("payment_intent", &pi), ("amount", "9900")],
    )
    .await;
    deliver(&h, "charge.refunded").await;
    let (_, body) = call(&h, "billing-account/get-account", "refunded", &[]).await;
    assert_eq!(body["account"]["premium"], true, "{body}");
    assert_eq!(body["account"]["lifetime"]["amount_refunded"], 9900);

    h.stripe_api("POST", "/v1/refunds", &[("payment_intent", &pi)])
        .await;
    deliver(&h, "charge.refunded").await;
    let (_, body) = call(&h, "billing-account/get-account", "refunded", &[]).await;
    let account = &body["account"];
    assert_eq!(account["premium"], false, "{body}");
    assert_eq!(account["plan"]["kind"], "none");
    assert_eq!(account["lifetime"], Value::Null);
    let customer =
        shared::ids::CustomerId::parse(account["customer_id"].as_str().unwrap()).unwrap();
    let audit: Vec<String> = h
        .services
        .table
        .audit_entries(&customer)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.change.kind == shared::sync::ChangeKind::Purchase)
        .map(|e| e.change.message)
        .collect();
    assert_eq!(
        audit,
        vec![
            "Lifetime access purchased: Portico Pro (299.00 usd)",
            "Partial refund on the lifetime purchase of Portico Pro: 99.00 usd refunded in all (access kept)",
            "Lifetime purchase refunded in full: Portico Pro (lifetime access revoked)",
        ]
    );
    let items = h
        .services
        .table
        .lifetime_purchases(&customer)
        .await
        .unwrap();
    assert!(items[0].purchase.refunded);
    // Refunded, it can be bought again.
    let (status, _) = call(
        &h,
        "billing-account/checkout-lifetime",
        "refunded",
        &[("IDEMPOTENCY_KEY", "ref-2")],
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_subscriber_who_bought_lifetime_stays_premium_after_the_subscription_ends() {
    let h = Harness::with(&[PRICES, LIFETIME, ("ALLOW_IMMEDIATE_CANCEL", "true")]).await;
    let customer = h.subscribed_customer("both").await;
    buy_lifetime(&h, "both", "both-1").await;
    let (_, body) = call(&h, "billing-account/get-account-refresh", "both", &[]).await;
    assert_eq!(
        body["account"]["plan"]["kind"], "subscription",
        "a subscription to manage"
    );
    assert_eq!(body["account"]["premium_until"], Value::Null);
    let sub = h.subscription_of(&customer).await;
    let (status, body) = call(
        &h,
        "billing-account/cancel-immediately",
        "both",
        &[("SUBSCRIPTION", sub.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = call(&h, "billing-account/get-account", "both", &[]).await;
    let account = &body["account"];
    assert_eq!(account["premium"], true, "{body}");
    assert_eq!(account["plan"]["kind"], "lifetime");
    assert_eq!(account["subscription"]["status"], "canceled");
}

#[tokio::test]
async fn one_time_prices_are_sold_only_when_configured() {
    let h = Harness::with(&[PRICES]).await;
    let (status, body) = call(
        &h,
        "billing-account/checkout-lifetime",
        "nolife",
        &[("IDEMPOTENCY_KEY", "n-1")],
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("price_not_allowed"))
    );
    // A recurring price listed as one-time is refused, not sold as a subscription.
    let h = Harness::with(&[("ALLOWED_ONE_TIME_PRICES", "price_pro_monthly")]).await;
    let (status, body) = call(
        &h,
        "billing-account/checkout",
        "misconfigured",
        &[("IDEMPOTENCY_KEY", "m-1")],
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("price_not_allowed")),
        "{body}"
    );
}

async fn preview(h: &Harness, sub: &str, subscription: &str, price: &str) -> (u16, Value) {
    call(
        h,
        "billing-account/preview-plan-change",
        sub,
        &[("SUBSCRIPTION", subscription), ("PRICE", price)],
    )
    .await
}

#[tokio::test]
async fn a_plan_change_is_priced_before_it_is_made() {
    let h = Harness::with(&[
        PRICES,
        (
            "ALLOWED_PRICES",
            "price_pro_monthly,price_pro_yearly,price_team_monthly",
        ),
    ])
    .await;
    let customer = h.subscribed_customer("upgrader").await;
    let sub = h.subscription_of(&customer).await;
    let before = h.emulator.object(&sub).unwrap();
    let period_end = before["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    let events = h.emulator.events().len();

    // Same interval, the portal's create_prorations: nothing today, prorations next time.
    let (status, body) = preview(&h, "upgrader", &sub, "price_team_monthly").await;
    assert_eq!(status, 200, "{body}");
    let p = &body["preview"];
    assert_eq!(
        (p["current_price"].as_str(), p["new_price"].as_str()),
        (Some("price_pro_monthly"), Some("price_team_monthly"))
    );
    assert_eq!(p["proration_behavior"], "create_prorations");
    assert_eq!(p["amount_due_today"], 0);
    let lines = p["proration_lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{p}");
    let credit = lines[0]["amount"].as_i64().unwrap();
    let charge = lines[1]["amount"].as_i64().unwrap();
    assert!(credit < 0 && charge > 0 && charge > -credit, "{lines:?}");
    assert_eq!(p["next_invoice"]["date"], period_end);
    assert_eq!(p["next_invoice"]["amount"], 2900 + credit + charge);

    // A new interval restarts the period: billed today.
    let (status, body) = preview(&h, "upgrader", &sub, "price_pro_yearly").await;
    assert_eq!(status, 200, "{body}");
    let p = &body["preview"];
    assert!(p["amount_due_today"].as_i64().unwrap() > 0, "{p}");
    assert_eq!(p["next_invoice"]["amount"], 12000);
    assert!(p["next_invoice"]["date"].as_i64().unwrap() > period_end);

    // Nothing changed at Stripe.
    assert_eq!(h.emulator.object(&sub).unwrap(), before);
    assert_eq!(h.emulator.events().len(), events);

    let (status, body) = preview(&h, "upgrader", &sub, "price_pro_monthly").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (409, Some("already_on_price"))
    );
    let (status, body) = preview(&h, "upgrader", &sub, "price_team_yearly").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("price_not_allowed"))
    );
    let (status, body) = preview(&h, "upgrader", &sub, "").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("price_required"))
    );
    h.subscribed_customer("nosy").await;
    let (status, body) = preview(&h, "nosy", &sub, "price_team_monthly").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("subscription_not_found"))
    );
}

#[tokio::test]
async fn a_checkout_subscriber_without_a_customer_default_shows_the_subscriptions_card() {
    // What Checkout leaves in subscription mode: the card is the subscription's default, and the
    // customer has none of its own.
    let h = Harness::new().await;
    let customer = h
        .stripe_api(
            "POST",
            "/v1/customers",
            &[
                ("email", "checkout@example.test"),
                ("metadata[portico_user_id]", "checkout-user"),
            ],
        )
        .await;
    let customer_id = customer["id"].as_str().unwrap().to_string();
    let id = shared::ids::CustomerId::parse(customer_id.clone()).unwrap();
    use shared::store::UserStore;
    h.services
        .table
        .link_customer(
            &shared::ids::UserId::parse("checkout-user").unwrap(),
            Some("checkout@example.test"),
            &id,
            "2026-11-21T00:00:00Z",
        )
        .await
        .unwrap();
    let pm = h
        .stripe_api(
            "POST",
            "/v1/payment_methods/pm_card_mastercard/attach",
            &[("customer", &customer_id)],
        )
        .await;
    let pm = pm["id"].as_str().unwrap().to_string();
    h.stripe_api(
        "POST",
        "/v1/subscriptions",
        &[
            ("customer", &customer_id),
            ("items[0][price]", "price_pro_monthly"),
            ("default_payment_method", &pm),
        ],
    )
    .await;

    let (status, body) = call(
        &h,
        "billing-account/get-account-refresh",
        "checkout-user",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let card = &body["account"]["default_payment_method"];
    assert_eq!(
        (card["brand"].as_str(), card["last4"].as_str()),
        (Some("mastercard"), Some("4444")),
        "{body}"
    );
    assert_eq!(card["id"], pm.as_str());
}

#[tokio::test]
async fn a_refresh_flag_that_is_neither_true_nor_false_is_refused() {
    let h = Harness::new().await;
    let token = h.stack.token("typo");
    let mut event: Value = serde_json::from_str(&fixtures::event_text(
        "billing-account/get-account-refresh",
        &[("TOKEN", token.as_str())],
    ))
    .unwrap();
    event["rawQueryString"] = json!("refresh=yes");
    event["queryStringParameters"] = json!({"refresh": "yes"});
    let request = portico_testkit::lambda_http::request::from_str(&event.to_string()).unwrap();
    let (status, body) = call!(handle(&h.services, request));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["error_code"].as_str(), body["field"].as_str()),
        (Some("invalid_field"), Some("refresh"))
    );
    assert!(h.stripe_calls().is_empty());
}
