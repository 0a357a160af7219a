use lambda_http::http::StatusCode;
use portico_testkit::{call, fixtures, Harness};
use serde_json::{json, Value};
use shared::portal::{create_session, CreateSessionRequest, Workflow};

use super::handle;

const ADMIN: &str = "admin-1";

async fn call(h: &Harness, event: &str, token: &str, vars: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut all = vec![("TOKEN", token)];
    all.extend_from_slice(vars);
    call!(handle(&h.services, fixtures::request_with(event, &all)))
}

async fn admin(h: &Harness, event: &str, vars: &[(&str, &str)]) -> (StatusCode, Value) {
    call(h, event, &h.stack.admin_token(ADMIN), vars).await
}

/// The event with another body, sent by an admin.
async fn admin_with_body(
    h: &Harness,
    event: &str,
    vars: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, Value) {
    admin_at(h, event, None, vars, body).await
}

/// The event with another body and, when given, another path, sent by an admin.
async fn admin_at(
    h: &Harness,
    event: &str,
    path: Option<&str>,
    vars: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, Value) {
    let token = h.stack.admin_token(ADMIN);
    let mut all = vec![("TOKEN", token.as_str())];
    all.extend_from_slice(vars);
    let mut event: Value =
        serde_json::from_str(&fixtures::event_text(event, &all)).expect("event is JSON");
    if let Some(path) = path {
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
    }
    event["body"] = Value::String(body.to_string());
    let request = lambda_http::request::from_str(&event.to_string()).expect("event");
    call!(handle(&h.services, request))
}

fn stripe_writes(h: &Harness) -> Vec<String> {
    h.stripe_calls()
        .into_iter()
        .filter(|c| c.starts_with("POST"))
        .collect()
}

async fn create_retention(h: &Harness, key: &str) -> String {
    let (status, body) = admin(
        h,
        "portal-config/create-configuration",
        &[("IDEMPOTENCY_KEY", key)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["configuration"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn only_admins_reach_any_route() {
    let h = Harness::new().await;
    let user = h.stack.token("plain-user");
    let vars = [
        ("CONFIGURATION", h.configuration.as_str()),
        ("IDEMPOTENCY_KEY", "k-1"),
    ];
    for event in [
        "portal-config/list-configurations",
        "portal-config/create-configuration",
        "portal-config/get-configuration",
        "portal-config/update-configuration",
        "portal-config/deactivate-configuration",
        "portal-config/list-workflows",
        "portal-config/put-workflow",
    ] {
        let (status, body) = call(&h, event, &user, &vars).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (StatusCode::FORBIDDEN, Some("admin_required")),
            "{event}: {body}"
        );
    }
    let (status, body) = call(
        &h,
        "portal-config/list-configurations-unauthenticated",
        "",
        &[],
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
    assert!(h.stripe_calls().is_empty(), "{:?}", h.stripe_calls());
    assert_eq!(
        h.services.table.workflow_mapping().await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn configurations_are_created_listed_read_updated_and_deactivated_in_stripe() {
    let h = Harness::new().await;
    let id = create_retention(&h, "create-1").await;
    let stripe = h.emulator.object(&id).expect("created in Stripe");
    assert_eq!(stripe["name"], "Retention");
    assert_eq!(stripe["business_profile"]["headline"], "Before you go");
    assert_eq!(
        stripe["features"]["subscription_cancel"]["cancellation_reason"]["options"],
        json!(["too_expensive", "missing_features", "other"])
    );
    assert_eq!(stripe["features"]["customer_update"]["enabled"], false);
    assert_eq!(stripe["metadata"]["team"], "growth");

    // A retried click with the same key is the same configuration; the key with another body
    // is refused; another admin's same key is theirs alone.
    assert_eq!(create_retention(&h, "create-1").await, id);
    let (status, body) = admin_with_body(
        &h,
        "portal-config/create-configuration",
        &[("IDEMPOTENCY_KEY", "create-1")],
        &json!({"name": "Other", "features": {"invoice_history": {"enabled": true}}}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_key_reused")),
        "{body}"
    );
    let (status, body) = call(
        &h,
        "portal-config/create-configuration",
        &h.stack.admin_token("admin-2"),
        &[("IDEMPOTENCY_KEY", "create-1")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let other_admins = body["configuration"]["id"].as_str().unwrap().to_string();
    assert_ne!(other_admins, id);
    let (_, list) = admin(&h, "portal-config/list-configurations", &[]).await;
    let configurations = list["configurations"].as_array().unwrap();
    assert_eq!(configurations.len(), 3, "{list}");
    let default = configurations
        .iter()
        .find(|c| c["id"] == h.configuration.as_str())
        .unwrap();
    assert_eq!(default["portico_default"], true);
    assert_eq!(
        default["workflows"].as_array().unwrap().len(),
        5,
        "every workflow inherits it"
    );
    let new = configurations
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        (new["portico_default"].clone(), new["workflows"].clone()),
        (json!(false), json!([]))
    );

    let (status, got) = admin(
        &h,
        "portal-config/get-configuration",
        &[("CONFIGURATION", &id)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["configuration"]["features"], stripe["features"]);

    let (status, updated) = admin(
        &h,
        "portal-config/update-configuration",
        &[("CONFIGURATION", &id)],
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    let stripe = h.emulator.object(&id).unwrap();
    assert_eq!(stripe["business_profile"]["headline"], "Manage your plan");
    assert_eq!(stripe["features"]["invoice_history"]["enabled"], false);
    // Partial: what the update did not name stays.
    assert_eq!(stripe["features"]["payment_method_update"]["enabled"], true);
    assert_eq!(stripe["name"], "Retention");

    let (status, body) = admin(
        &h,
        "portal-config/deactivate-configuration",
        &[("CONFIGURATION", &id)],
    )
    .await;
    assert_eq!(
        (status, body["configuration"]["active"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(h.emulator.object(&id).unwrap()["active"], false);

    for missing in ["bpc_doesnotexist", "not-an-id"] {
        let (status, body) = admin(
            &h,
            "portal-config/get-configuration",
            &[("CONFIGURATION", missing)],
        )
        .await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (StatusCode::NOT_FOUND, Some("configuration_not_found")),
            "{missing}"
        );
    }
}

#[tokio::test]
async fn invalid_bodies_name_the_field_and_never_reach_stripe() {
    let h = Harness::new().await;
    let (status, body) = admin(&h, "portal-config/create-configuration-invalid", &[]).await;
    assert_eq!(
        (status, body["error_code"].as_str(), body["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_field"),
            Some("features.subscription_cancel.mode")
        ),
        "{body}"
    );
    let cases = [
        (
            json!({"features": {"invoice_history": {"enabled": true}}, "business_profile": {"headline": "h".repeat(61)}}),
            "business_profile.headline",
        ),
        (
            json!({"features": {"invoice_history": {"enabled": true}}, "business_profile": {"terms_of_service_url": "http://example.com/terms"}}),
            "business_profile.terms_of_service_url",
        ),
        (
            json!({"features": {"invoice_history": {"enabled": true}}, "default_return_url": "javascript:alert(1)"}),
            "default_return_url",
        ),
        (
            json!({"features": {"customer_update": {"enabled": true, "allowed_updates": ["shoe_size"]}}}),
            "features.customer_update.allowed_updates[0]",
        ),
        (
            json!({"features": {"invoice_history": {}}}),
            "features.invoice_history.enabled",
        ),
        (
            json!({"features": {"subscription_cancel": {"enabled": true, "proration_behavior": "create_prorations"}}}),
            "features.subscription_cancel.proration_behavior",
        ),
        (
            json!({"features": {"subscription_update": {"enabled": true, "default_allowed_updates": ["price"], "products": [{"product": "prod_a", "prices": []}]}}}),
            "features.subscription_update.products[0].prices",
        ),
        (
            json!({"features": {"invoice_history": {"enabled": true}}, "metadata": {"k": "v".repeat(501)}}),
            "metadata",
        ),
        (
            json!({"features": {"invoice_history": {"enabled": true}}, "login_page": {"enabled": "yes"}}),
            "login_page.enabled",
        ),
        (json!({"name": "no features"}), "features"),
        (
            json!({"name": "empty features", "features": {}}),
            "features",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = admin_with_body(
            &h,
            "portal-config/create-configuration",
            &[("IDEMPOTENCY_KEY", "k")],
            &body,
        )
        .await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {answer}"
        );
    }
    let (status, answer) = admin_with_body(
        &h,
        "portal-config/update-configuration",
        &[("CONFIGURATION", &h.configuration)],
        &json!({}),
    )
    .await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    assert!(h.stripe_calls().is_empty(), "{:?}", h.stripe_calls());

    // What only Stripe can know (the product does not exist) comes back as 400 with its param.
    let unknown_product = json!({"features": {"subscription_update": {"enabled": true,
        "default_allowed_updates": ["price"], "products": [{"product": "prod_nope", "prices": ["price_nope"]}]}}});
    let (status, answer) = admin_with_body(
        &h,
        "portal-config/create-configuration",
        &[("IDEMPOTENCY_KEY", "k2")],
        &unknown_product,
    )
    .await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("stripe_invalid_request")),
        "{answer}"
    );
    assert!(
        answer["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("features[subscription_update][products]")),
        "{answer}"
    );
}

#[tokio::test]
async fn workflows_map_to_configurations_return_paths_and_branding() {
    let h = Harness::new().await;
    let retention = create_retention(&h, "wf").await;
    let (status, body) = admin(
        &h,
        "portal-config/put-workflow",
        &[("CONFIGURATION", &retention)],
    )
    .await;
    assert_eq!(
        (status, body["changed"].clone()),
        (StatusCode::OK, json!(true)),
        "{body}"
    );
    // The headline is applied to the configuration; logo and colours are not Stripe's to set.
    assert_eq!(
        h.emulator.object(&retention).unwrap()["business_profile"]["headline"],
        "Sorry to see you go"
    );

    let (_, list) = admin(&h, "portal-config/list-workflows", &[]).await;
    let workflows = list["workflows"].as_array().unwrap();
    assert_eq!(workflows.len(), 5);
    let cancel = workflows
        .iter()
        .find(|w| w["workflow"] == "cancellation_process")
        .unwrap();
    assert_eq!(cancel["configuration_id"], retention.as_str());
    assert_eq!(cancel["return_path"], "/goodbye");
    assert_eq!(cancel["after_completion"], "hosted_confirmation");
    let billing = workflows
        .iter()
        .find(|w| w["workflow"] == "billing_review")
        .unwrap();
    assert_eq!(
        (
            billing["configuration_id"].as_str(),
            billing["uses_default_configuration"].clone(),
            billing["return_path"].as_str()
        ),
        (
            Some(h.configuration.as_str()),
            json!(true),
            Some("/dashboard/billing/history")
        )
    );

    // Sessions for the workflow open with what was mapped, and carry the branding to the SPA.
    let customer = h.subscribed_customer("mapped-user").await;
    let user = h
        .services
        .auth
        .authenticate(Some(&format!("Bearer {}", h.stack.token("mapped-user"))))
        .await
        .unwrap();
    let session = create_session(
        &h.services.table,
        &h.services.stripe,
        &h.services.clock,
        &h.services.config.portal,
        &user,
        CreateSessionRequest {
            workflow: Some(Workflow::CancellationProcess),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(session
        .return_url
        .starts_with(&format!("{}/goodbye?session=", portico_testkit::FRONTEND)));
    let branding = serde_json::to_value(&session.branding).unwrap();
    assert_eq!(branding["primary_color"], "#1e40af");
    assert_eq!(branding["logo_url"], "https://app.portico.test/logo.svg");
    let record = h
        .services
        .table
        .get_portal_session(&session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.configuration_id, retention);
    assert_eq!(record.customer_id, customer);
    let stripe_session = h.emulator.object(&record.stripe_session_id).unwrap();
    assert_eq!(
        stripe_session["flow"]["after_completion"]["type"],
        "hosted_confirmation"
    );

    // Saving the same again writes nothing, in Stripe or the table.
    let before = h.services.table.workflow_mapping().await.unwrap().records;
    h.emulator.clear_requests();
    let (status, body) = admin(
        &h,
        "portal-config/put-workflow",
        &[("CONFIGURATION", &retention)],
    )
    .await;
    assert_eq!(
        (status, body["changed"].clone()),
        (StatusCode::OK, json!(false)),
        "{body}"
    );
    assert!(stripe_writes(&h).is_empty(), "{:?}", h.stripe_calls());
    assert_eq!(
        h.services.table.workflow_mapping().await.unwrap().records,
        before
    );
}

#[tokio::test]
async fn workflow_mappings_that_would_break_sessions_are_refused() {
    let h = Harness::new().await;
    let retention = create_retention(&h, "refuse").await;
    let put = |workflow: &'static str, body: Value| {
        let h = &h;
        async move {
            let path = format!("/portal/workflows/{workflow}");
            admin_at(h, "portal-config/put-workflow", Some(&path), &[], &body).await
        }
    };

    let (status, body) = admin(&h, "portal-config/put-workflow-unknown", &[]).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_workflow"))
    );
    let (status, body) = put("payment_update", json!({"configuration_id": "bpc_missing"})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("configuration_id")),
        "{body}"
    );
    let (status, body) = put("payment_update", json!({"return_path": "//evil.example/x"})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("return_path")),
        "{body}"
    );
    let (status, body) = put(
        "payment_update",
        json!({"branding": {"primary_color": "blue"}}),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("branding.primary_color")),
        "{body}"
    );

    // A mapped configuration cannot be deactivated, nor can the default.
    let (status, _) = put(
        "payment_update",
        json!({"configuration_id": retention, "branding": {"headline": "Update your card"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for id in [retention.as_str(), h.configuration.as_str()] {
        let (status, body) = admin(
            &h,
            "portal-config/deactivate-configuration",
            &[("CONFIGURATION", id)],
        )
        .await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (StatusCode::CONFLICT, Some("configuration_in_use")),
            "{body}"
        );
        assert_eq!(h.emulator.object(id).unwrap()["active"], true);
    }
    // Two workflows on one configuration cannot brand its headline differently.
    let (status, body) = put(
        "billing_review",
        json!({"configuration_id": retention, "branding": {"headline": "Your invoices"}}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::CONFLICT, Some("configuration_shared")),
        "{body}"
    );
    assert_eq!(
        h.emulator.object(&retention).unwrap()["business_profile"]["headline"],
        "Update your card"
    );

    // Moved elsewhere, it can be retired; and a retired one cannot be mapped.
    let (status, _) = put("payment_update", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin(
        &h,
        "portal-config/deactivate-configuration",
        &[("CONFIGURATION", &retention)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = put("payment_update", json!({"configuration_id": retention})).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("configuration_inactive")
        ),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mappings_cannot_both_brand_one_configuration() {
    let h = std::sync::Arc::new(Harness::new().await);
    let retention = create_retention(&h, "race").await;
    // Both requests read the mapping, then wait in Stripe's configuration lookup until both
    // are there: each decided on a mapping without the other's headline.
    let lookups = h.emulator.hold(
        "GET",
        &format!("/v1/billing_portal/configurations/{retention}"),
    );
    let tasks: Vec<_> = [
        ("payment_update", "Update your card"),
        ("billing_review", "Your invoices"),
    ]
    .into_iter()
    .map(|(workflow, headline)| {
        let (h, retention) = (h.clone(), retention.clone());
        tokio::spawn(async move {
            let body = json!({"configuration_id": retention, "branding": {"headline": headline}});
            let path = format!("/portal/workflows/{workflow}");
            let answer = admin_at(&h, "portal-config/put-workflow", Some(&path), &[], &body).await;
            (headline, answer)
        })
    })
    .collect();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        lookups.wait_for_arrivals(2),
    )
    .await
    .expect("both requests look the configuration up");
    lookups.release();
    let mut won = Vec::new();
    for task in tasks {
        let (headline, (status, body)) = task.await.unwrap();
        match status {
            StatusCode::OK => won.push(headline),
            StatusCode::CONFLICT => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one mapping is saved");
    // Stripe and the table agree on the winner.
    let stripe = h.emulator.object(&retention).unwrap();
    assert_eq!(stripe["business_profile"]["headline"], won[0]);
    let mapping = h.services.table.workflow_mapping().await.unwrap();
    assert_eq!(mapping.records.len(), 1);
    assert_eq!(mapping.version, 1);
}

#[tokio::test]
async fn a_retention_coupon_is_checked_offered_when_cancelling_and_counted_when_taken() {
    let h = Harness::new().await;
    let put = |workflow: &'static str, body: Value| {
        let h = &h;
        async move {
            let path = format!("/portal/workflows/{workflow}");
            admin_at(h, "portal-config/put-workflow", Some(&path), &[], &body).await
        }
    };
    h.stripe_api(
        "POST",
        "/v1/coupons",
        &[
            ("id", "STAY20"),
            ("name", "20% off"),
            ("percent_off", "20"),
            ("duration", "forever"),
        ],
    )
    .await;
    h.stripe_api(
        "POST",
        "/v1/coupons",
        &[
            ("id", "GONE"),
            ("percent_off", "5"),
            ("redeem_by", &(h.emulator.now() + 60).to_string()),
        ],
    )
    .await;
    h.emulator.advance_clock(120).unwrap();

    let (status, body) = put("cancellation_process", json!({"retention_coupon": "NOPE"})).await;
    assert_eq!(
        (status, body["error_code"].as_str(), body["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("coupon_not_found"),
            Some("retention_coupon")
        ),
        "{body}"
    );
    let (status, body) = put("cancellation_process", json!({"retention_coupon": "GONE"})).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("coupon_not_usable"))
    );
    let (status, body) = put("payment_update", json!({"retention_coupon": "STAY20"})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("retention_coupon"))
    );
    let (status, body) = put(
        "cancellation_process",
        json!({"retention_coupon": "bad coupon!"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        h.services
            .table
            .workflow_mapping()
            .await
            .unwrap()
            .records
            .is_empty(),
        "nothing saved"
    );
    let (status, body) = put(
        "cancellation_process",
        json!({"retention_coupon": "STAY20"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workflow"]["settings"]["retention_coupon"], "STAY20");

    // The user starts cancelling: the session offers the coupon.
    let customer = h.subscribed_customer("wavering").await;
    let user = shared::auth::User {
        id: shared::ids::UserId::parse("wavering").unwrap(),
        email: None,
        is_admin: false,
    };
    let services = &h.services;
    // A first sync stores the baseline the return is compared with.
    shared::account::get_account(
        services.sync_context(),
        &user,
        true,
        std::time::Duration::ZERO,
        "baseline",
    )
    .await
    .unwrap();
    let request = CreateSessionRequest {
        workflow: Some(Workflow::CancellationProcess),
        ..Default::default()
    };
    let session = create_session(
        &services.table,
        &services.stripe,
        &services.clock,
        &services.config.portal,
        &user,
        request,
    )
    .await
    .unwrap();
    let record = services
        .table
        .get_portal_session(&session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.retention_offer.as_deref(), Some("STAY20"));
    let flow = &h.emulator.object(&record.stripe_session_id).unwrap()["flow"];
    assert_eq!(
        flow["subscription_cancel"]["retention"]["type"],
        "coupon_offer"
    );
    assert_eq!(
        flow["subscription_cancel"]["retention"]["coupon_offer"]["coupon"],
        "STAY20"
    );

    // Accepted on the hosted page, then the user comes back.
    let accepted = reqwest::Client::new()
        .post(format!("{}/retention", session.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(accepted.status().is_success());
    let back = shared::portal::handle_return(
        services.sync_context(),
        &user,
        shared::portal::ReturnRequest {
            session: session.id.clone(),
            action: None,
        },
        std::time::Duration::ZERO,
    )
    .await
    .unwrap();
    let messages: Vec<&str> = back.changes.iter().map(|c| c.message.as_str()).collect();
    assert!(
        messages.contains(&"Discount applied to Portico Pro: 20% off"),
        "{messages:?}"
    );
    let audit = services.table.audit_entries(&customer).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.change.field.ends_with(".discount"))
        .expect("audited");
    assert_eq!(entry.change.to["coupon_id"], "STAY20");
    assert_eq!(entry.source, shared::store::AuditSource::PortalReturn);

    // A second cancellation session offers nothing: the discount is taken.
    let again = create_session(
        &services.table,
        &services.stripe,
        &services.clock,
        &services.config.portal,
        &user,
        CreateSessionRequest {
            workflow: Some(Workflow::CancellationProcess),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let record = services
        .table
        .get_portal_session(&again.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.retention_offer, None);

    let today = time::OffsetDateTime::now_utc().date();
    let period = shared::analytics::Period {
        start: today,
        end: today,
    };
    let stats = shared::analytics::portal_analytics(&services.table, period)
        .await
        .unwrap();
    assert_eq!(
        (
            stats.retention_offers.shown,
            stats.retention_offers.accepted
        ),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(stats.retention_offers.acceptance_rate, 1.0);

    // A coupon used up after it was saved: Stripe refuses the offer, the user can still cancel.
    h.stripe_api(
        "POST",
        "/v1/coupons",
        &[
            ("id", "LAST1"),
            ("percent_off", "10"),
            ("max_redemptions", "1"),
        ],
    )
    .await;
    let (status, _) = put("cancellation_process", json!({"retention_coupon": "LAST1"})).await;
    assert_eq!(status, StatusCode::OK);
    let redeemer = h.subscribed_customer("redeemer").await;
    let sub = h.subscription_of(&redeemer).await;
    let used = h
        .stripe_api(
            "POST",
            "/v1/billing_portal/sessions",
            &[
                ("customer", redeemer.as_str()),
                ("flow_data[type]", "subscription_cancel"),
                ("flow_data[subscription_cancel][subscription]", &sub),
                (
                    "flow_data[subscription_cancel][retention][type]",
                    "coupon_offer",
                ),
                (
                    "flow_data[subscription_cancel][retention][coupon_offer][coupon]",
                    "LAST1",
                ),
            ],
        )
        .await;
    reqwest::Client::new()
        .post(format!("{}/retention", used["url"].as_str().unwrap()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    h.subscribed_customer("late").await;
    let late = shared::auth::User {
        id: shared::ids::UserId::parse("late").unwrap(),
        email: None,
        is_admin: false,
    };
    let session = create_session(
        &services.table,
        &services.stripe,
        &services.clock,
        &services.config.portal,
        &late,
        CreateSessionRequest {
            workflow: Some(Workflow::CancellationProcess),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let record = services
        .table
        .get_portal_session(&session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.retention_offer, None);
    let flow = &h.emulator.object(&record.stripe_session_id).unwrap()["flow"];
    assert_eq!(flow["type"], "subscription_cancel");
    assert!(flow["subscription_cancel"]["retention"].is_null());
}

#[tokio::test]
async fn a_json_array_is_not_taken_for_the_settings_object() {
    // serde would build the settings struct from `[null, null]` and clear the mapping.
    let h = Harness::new().await;
    let (status, body) =
        admin_with_body(&h, "portal-config/put-workflow", &[], &json!([null, null])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error_code"], "invalid_body");
    let (_, workflows) = admin(&h, "portal-config/list-workflows", &[]).await;
    assert!(
        workflows["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["updated_at"].is_null()),
        "nothing was saved: {workflows}"
    );
}
