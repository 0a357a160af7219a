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
    assert_eq!(status, 201, "{second}");
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
    let response = reqwest::Client::new()
        .post(format!("{url}/complete"))
        .json(&serde_json::json!({"payment_method": "pm_card_visa"}))
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
