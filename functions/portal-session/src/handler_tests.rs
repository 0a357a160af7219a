use std::sync::Arc;

use portico_testkit::{call, fixtures, Harness, FRONTEND};
use serde_json::{json, Value};
use shared::ids::UserId;
use shared::store::UserStore;

use super::handle;

async fn create(h: &Harness, event: &str, sub: &str) -> (lambda_http::http::StatusCode, Value) {
    call!(handle(
        &h.services,
        fixtures::request(event, &h.stack.token(sub))
    ))
}

/// The Stripe portal session behind a Portico session, as the emulator holds it.
async fn stripe_session(h: &Harness, reference: &str) -> Value {
    let record = h
        .services
        .table
        .get_portal_session(reference)
        .await
        .unwrap()
        .expect("session recorded");
    h.emulator
        .object(&record.stripe_session_id)
        .expect("session in the emulator")
}

#[tokio::test]
async fn each_workflow_opens_the_right_flow_with_an_explicit_configuration() {
    let h = Harness::new().await;
    let customer = h.subscribed_customer("wf-user").await;
    let subscriptions = h
        .stripe
        .list_subscriptions(&shared::stripe::SubscriptionListParams::all_for(&customer))
        .await
        .unwrap();
    let subscription = subscriptions.data[0].id.to_string();

    let cases: [(&str, Option<&str>, &str); 5] = [
        (
            "portal-session/create-payment-update",
            Some("payment_method_update"),
            "/dashboard/billing/payment-methods",
        ),
        (
            "portal-session/create-billing-review",
            None,
            "/dashboard/billing/history",
        ),
        (
            "portal-session/create-subscription-management",
            Some("subscription_update"),
            "/dashboard/billing/subscription-updated",
        ),
        (
            "portal-session/create-cancellation-process",
            Some("subscription_cancel"),
            "/dashboard/billing/cancellation-survey",
        ),
        (
            "portal-session/create-profile-update",
            None,
            "/dashboard/profile",
        ),
    ];
    for (event, flow, path) in cases {
        let (status, body) = create(&h, event, "wf-user").await;
        assert_eq!(status, 201, "{event}: {body}");
        let session = &body["portal_session"];
        let reference = session["id"].as_str().unwrap();
        let return_url = session["return_url"].as_str().unwrap();
        assert_eq!(
            return_url,
            format!("{FRONTEND}{path}?session={reference}"),
            "{event}"
        );
        let stripe = stripe_session(&h, reference).await;
        assert_eq!(stripe["configuration"], h.configuration.as_str(), "{event}");
        assert_eq!(stripe["customer"], customer.as_str());
        assert_eq!(stripe["return_url"], return_url);
        assert_eq!(session["url"], stripe["url"]);
        match flow {
            None => assert!(stripe["flow"].is_null(), "{event}: {}", stripe["flow"]),
            Some(flow) => {
                assert_eq!(stripe["flow"]["type"], flow, "{event}");
                assert_eq!(stripe["flow"]["after_completion"]["type"], "redirect");
                assert_eq!(
                    stripe["flow"]["after_completion"]["redirect"]["return_url"],
                    return_url
                );
            }
        }
        if flow == Some("subscription_cancel") {
            assert_eq!(
                stripe["flow"]["subscription_cancel"]["subscription"],
                subscription.as_str()
            );
        }
        if flow == Some("subscription_update") {
            assert_eq!(
                stripe["flow"]["subscription_update"]["subscription"],
                subscription.as_str()
            );
        }
    }
}

#[tokio::test]
async fn a_user_with_a_stored_customer_costs_one_stripe_call() {
    let h = Harness::new().await;
    h.subscribed_customer("one-call").await;
    h.emulator.clear_requests();
    let (status, body) = create(&h, "portal-session/create-billing-review", "one-call").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(h.stripe_calls(), vec!["POST /v1/billing_portal/sessions"]);
}

#[tokio::test]
async fn a_given_return_url_must_be_on_an_allowed_origin() {
    let h = Harness::new().await;
    let (status, body) = create(&h, "portal-session/create-open-redirect", "redirector").await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (400, Some("invalid_return_url")),
        "{body}"
    );
    assert!(
        h.stripe_calls().is_empty(),
        "nothing reached Stripe: {:?}",
        h.stripe_calls()
    );
    let user = UserId::parse("redirector").unwrap();
    assert_eq!(
        h.services.table.get_user(&user).await.unwrap(),
        None,
        "no customer was created"
    );

    let token = h.stack.token("redirector");
    for evil in [
        "//evil.example/x",
        "https://app.portico.test@evil.example/",
        "javascript:alert(1)",
        "https://evil.example/",
        // The URL parser drops TAB, CR and LF: refused before parsing.
        "https://app.portico.test/\t/evil.example",
        "https:/\n/evil.example",
        "https://app.portico.test\\@evil.example/",
        // On our origin, but the path would send the SPA to //evil.example.
        "https://app.portico.test/..//evil.example",
    ] {
        let request = fixtures::request_with_body(
            "portal-session/create-default",
            &token,
            &json!({"return_url": evil}),
        );
        let (status, body) = call!(handle(&h.services, request));
        assert_eq!(
            (status.as_u16(), body["field"].as_str()),
            (400, Some("return_url")),
            "{evil}: {body}"
        );
    }

    let (status, body) = create(&h, "portal-session/create-with-return-url", "redirector").await;
    assert_eq!(status, 201, "{body}");
    let reference = body["portal_session"]["id"].as_str().unwrap();
    assert_eq!(
        body["portal_session"]["return_url"],
        format!("{FRONTEND}/settings/billing?tab=cards&session={reference}")
    );
    let stored = stripe_session(&h, reference).await;
    assert_eq!(stored["locale"], "de");
    // Stripe holds exactly the checked URL.
    assert_eq!(stored["return_url"], body["portal_session"]["return_url"]);
}

#[tokio::test]
async fn fifty_concurrent_first_requests_create_one_customer() {
    let h = Arc::new(Harness::new().await);
    let token = h.stack.token("newcomer");
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (h, token, barrier) = (h.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                let request = fixtures::request("portal-session/create-billing-review", &token);
                barrier.wait().await;
                call!(handle(&h.services, request))
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let customers = h
        .stripe
        .list_customers_by_email("newcomer@example.test", Default::default())
        .await
        .unwrap();
    assert_eq!(customers.data.len(), 1, "exactly one Stripe customer");
    assert_eq!(
        customers.data[0]
            .metadata
            .get("portico_user_id")
            .map(String::as_str),
        Some("newcomer")
    );
    let stored = h
        .services
        .table
        .get_user(&UserId::parse("newcomer").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.customer_id.as_ref(), Some(&customers.data[0].id));
    let created = h
        .emulator
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.path == "/v1/customers"
                && r.status == 200
                && !r.idempotent_replayed
        })
        .count();
    assert_eq!(created, 1);
}

#[tokio::test]
async fn a_customer_whose_link_was_lost_is_adopted_not_duplicated() {
    let h = Harness::new().await;
    // Created for this user by a request that died before storing the link, longer ago than
    // Stripe keeps idempotency keys: only the user id in its metadata still ties it to the user.
    let mut orphan = portico_testkit::stripe_emulator::NewCustomer::new("lost@example.test");
    orphan.metadata.push((
        shared::customer_link::USER_ID_METADATA.into(),
        "lost-link".into(),
    ));
    let orphan = h.emulator.create_customer(orphan).unwrap()["customer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.emulator.clear_requests();

    let (status, body) = create(&h, "portal-session/create-billing-review", "lost-link").await;
    assert_eq!(status, 201, "{body}");
    let stored = h
        .services
        .table
        .get_user(&UserId::parse("lost-link").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.customer_id.map(|c| c.to_string()), Some(orphan));
    assert!(
        !h.stripe_calls().contains(&"POST /v1/customers".to_string()),
        "{:?}",
        h.stripe_calls()
    );
}

#[tokio::test]
async fn a_failing_customer_search_does_not_fail_the_first_session() {
    let h = Harness::new().await;
    h.emulator
        .inject_fault(portico_testkit::stripe_emulator::Fault::status(
            "GET",
            "/v1/customers/search",
            500,
            10,
        ))
        .unwrap();
    let (status, body) = create(&h, "portal-session/create-billing-review", "unsearchable").await;
    assert_eq!(status, 201, "{body}");
    assert!(h.stripe_calls().contains(&"POST /v1/customers".to_string()));
}

#[tokio::test]
async fn cancellation_without_a_subscription_is_422() {
    let h = Harness::new().await;
    let (status, body) = create(&h, "portal-session/create-cancellation-process", "no-sub").await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (422, Some("no_active_subscription")),
        "{body}"
    );
    // Subscription management without one opens the portal home instead.
    let (status, body) = create(
        &h,
        "portal-session/create-subscription-management",
        "no-sub",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let reference = body["portal_session"]["id"].as_str().unwrap();
    assert!(stripe_session(&h, reference).await["flow"].is_null());
}

#[tokio::test]
async fn without_any_configuration_the_answer_says_how_to_fix_it() {
    let h = Harness::with(&[("DEFAULT_PORTAL_CONFIGURATION", "")]).await;
    let (status, body) = create(&h, "portal-session/create-billing-review", "early-user").await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (422, Some("portal_not_configured")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("make portal-config"),
        "{body}"
    );
}

#[tokio::test]
async fn a_configuration_stripe_does_not_know_is_portal_not_configured() {
    let h = Harness::with(&[("DEFAULT_PORTAL_CONFIGURATION", "bpc_DoesNotExist")]).await;
    let (status, body) = create(&h, "portal-session/create-billing-review", "misconfigured").await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (422, Some("portal_not_configured")),
        "{body}"
    );
}

#[tokio::test]
async fn bad_bodies_and_missing_tokens_are_refused() {
    let h = Harness::new().await;
    let (status, body) = create(&h, "portal-session/create-bad-body", "someone").await;
    assert_eq!(
        (status.as_u16(), body["field"].as_str()),
        (400, Some("workflow")),
        "{body}"
    );
    let request = fixtures::request("portal-session/create-unauthenticated", "");
    let (status, body) = call!(handle(&h.services, request));
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (401, Some("missing_token"))
    );
    assert!(h.stripe_calls().is_empty());
}

#[tokio::test]
async fn stripe_down_is_503_and_records_nothing() {
    // Nothing listens on port 9: every Stripe call fails to connect.
    let h = Harness::with(&[("STRIPE_API_BASE", "http://127.0.0.1:9")]).await;
    h.subscribed_customer("outage").await;
    let before = h.stack.table_items().await;
    let (status, body) = create(&h, "portal-session/create-billing-review", "outage").await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (503, Some("stripe_unavailable")),
        "{body}"
    );
    // No session record, no counter, no touched profile: the table is exactly as it was.
    assert_eq!(h.stack.table_items().await, before);
}

#[tokio::test]
async fn an_unverified_email_never_reaches_the_stripe_customer() {
    let h = Harness::new().await;
    let mut claims = h.stack.claims("unverified");
    claims["email"] = json!("ceo@victim.example");
    claims["email_verified"] = json!(false);
    let token = h.stack.key.sign(&claims);
    let request = fixtures::request("portal-session/create-billing-review", &token);
    let (status, body) = call!(handle(&h.services, request));
    assert_eq!(status, 201, "{body}");
    let user = UserId::parse("unverified").unwrap();
    let stored = h.services.table.get_user(&user).await.unwrap().unwrap();
    assert_eq!(stored.email, None);
    let customer = h
        .emulator
        .object(stored.customer_id.unwrap().as_str())
        .unwrap();
    assert_eq!(customer["email"], Value::Null, "{customer}");
}

async fn plan_change(h: &Harness, sub: &str, body: Value) -> (u16, Value) {
    let request = fixtures::request_with_body(
        "portal-session/create-subscription-management",
        &h.stack.token(sub),
        &body,
    );
    let (status, body) = call!(handle(&h.services, request));
    (status.as_u16(), body)
}

#[tokio::test]
async fn a_plan_change_opens_the_confirm_flow_and_the_hosted_page_makes_it() {
    let h = Harness::with(&[("ALLOWED_PRICES", "price_pro_monthly,price_pro_yearly")]).await;
    let customer = h.subscribed_customer("switcher").await;
    let sub = h.subscription_of(&customer).await;
    let item = h.emulator.object(&sub).unwrap()["items"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, body) = plan_change(
        &h,
        "switcher",
        json!({"workflow": "subscription_management", "price": "price_pro_yearly"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let session = &body["portal_session"];
    let stripe = stripe_session(&h, session["id"].as_str().unwrap()).await;
    let flow = &stripe["flow"];
    assert_eq!(flow["type"], "subscription_update_confirm");
    assert_eq!(
        flow["subscription_update_confirm"]["subscription"],
        sub.as_str()
    );
    assert_eq!(
        flow["subscription_update_confirm"]["items"][0]["id"],
        item.as_str()
    );
    assert_eq!(
        flow["subscription_update_confirm"]["items"][0]["price"],
        "price_pro_yearly"
    );
    assert_eq!(flow["after_completion"]["type"], "redirect");

    // The hosted confirm page makes the change.
    let url = session["url"].as_str().unwrap();
    let done: Value = reqwest::Client::new()
        .post(format!("{url}/update"))
        .json(&json!({"price": "price_pro_yearly"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        done["after_completion"]["url"]
            .as_str()
            .unwrap()
            .contains("subscription-updated"),
        "{done}"
    );
    assert_eq!(
        h.emulator.object(&sub).unwrap()["items"]["data"][0]["price"]["id"],
        "price_pro_yearly"
    );

    let (status, body) = plan_change(
        &h,
        "switcher",
        json!({"workflow": "subscription_management", "price": "price_pro_yearly"}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (409, Some("already_on_price")),
        "{body}"
    );
    let (status, body) = plan_change(
        &h,
        "switcher",
        json!({"workflow": "subscription_management", "price": "price_team_monthly"}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("price_not_allowed"))
    );
    let (status, body) = plan_change(
        &h,
        "switcher",
        json!({"workflow": "payment_update", "price": "price_pro_monthly"}),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("price")));
    let (status, body) = plan_change(
        &h,
        "no-subscription",
        json!({"workflow": "subscription_management", "price": "price_pro_monthly"}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("no_active_subscription")),
        "{body}"
    );
}

#[tokio::test]
async fn a_session_says_until_when_its_return_link_works_and_its_record_expires() {
    let h = Harness::with(&[("SESSION_RETENTION_DAYS", "30")]).await;
    h.subscribed_customer("ttl-user").await;
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let (status, body) = create(&h, "portal-session/create-billing-review", "ttl-user").await;
    assert_eq!(status, 201, "{body}");
    let session = &body["portal_session"];
    let expires_at = session["expires_at"].as_i64().unwrap();
    let window = shared::portal::RETURN_WINDOW_SECONDS;
    assert!(
        (before + window..=before + window + 5).contains(&expires_at),
        "{session}"
    );
    let reference = session["id"].as_str().unwrap();
    let record = h
        .services
        .table
        .get_portal_session(reference)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.return_until, Some(expires_at));
    // The table's TTL attribute: SESSION_RETENTION_DAYS after its creation (the same second as
    // the link's window starts).
    let item = h
        .services
        .table
        .get(shared::store::key(format!("PSESS#{reference}"), "META"))
        .await
        .unwrap()
        .unwrap();
    let ttl: i64 = item[shared::store::TTL_ATTRIBUTE]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ttl, expires_at - window + 30 * 86_400);
}

#[tokio::test]
async fn a_created_session_writes_its_workflow_metric_and_one_info_line_without_personal_data() {
    use shared::metrics::names;
    use shared::testing::observe::{
        assert_metrics_carry_no_identity, assert_no_personal_data, metric, LogCapture,
    };
    let h = Harness::new().await;
    let customer = h.subscribed_customer("emf-session").await;
    // Debug, the seeds' "debug mode": even then nothing personal is written.
    let logs = LogCapture::start();
    h.services.metrics.take_lines();

    let (status, body) = create(&h, "portal-session/create-payment-update", "emf-session").await;
    assert_eq!(status, 201, "{body}");
    let lines = h.services.metrics.take_lines();
    assert_eq!(
        metric(
            &lines,
            names::PORTAL_SESSIONS,
            &[("Workflow", "payment_update")]
        ),
        Some(json!(1))
    );
    assert_eq!(metric(&lines, names::COLD_STARTS, &[]), Some(json!(1)));
    assert!(metric(&lines, names::STRIPE_CALLS, &[]).is_some());

    // A refused request records no session.
    let (status, _) = call!(handle(
        &h.services,
        fixtures::request("portal-session/create-default", "not-a-token")
    ));
    assert_eq!(status, 401);
    let refused = h.services.metrics.take_lines();
    assert_eq!(
        metric(
            &refused,
            names::PORTAL_SESSIONS,
            &[("Workflow", "billing_review")]
        ),
        None
    );

    let created = logs.with_message("portal session created");
    assert_eq!(created.len(), 1, "{}", logs.text());
    let line = &created[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["workflow"], "payment_update");
    // The span's `user_id` and `customer_id`, recorded once known, are asserted by
    // `infra/e2e.sh` in the function's own log: this binary's process-wide capture missed a
    // recorded field once in a loaded run (see portal-return's metrics test).
    assert_eq!(line["span"]["function"], shared::services::TEST_FUNCTION);
    assert!(line["span"]["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let url = body["portal_session"]["url"].as_str().unwrap();
    let everything = format!("{}{}", logs.text(), json!([lines, refused]));
    assert_no_personal_data(
        &everything,
        &[
            &h.stack.token("emf-session"),
            url,
            shared::testing::STRIPE_TEST_KEY,
            shared::testing::WEBHOOK_TEST_SECRET,
        ],
    );
    assert_metrics_carry_no_identity(&lines, &[customer.as_str(), "emf-session"]);
}
