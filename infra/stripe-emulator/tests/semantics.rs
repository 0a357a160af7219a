//! Stripe behaviours the emulator must reproduce, exercised over HTTP.

mod common;

use common::{id, start, start_with, KEY};
use serde_json::{json, Value};
use stripe_emulator::EmulatorConfig;

async fn count_customers(api: &common::Api) -> usize {
    api.get("/v1/customers", &[("limit", "100")]).await.ok()["data"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn idempotent_replay_returns_the_stored_response_once() {
    let api = start().await;
    let form = [("email", "idem@example.com"), ("metadata[user_id]", "u1")];
    let first = api.post_idem("/v1/customers", &form, "key-1").await;
    assert_eq!(first.status, 200);
    assert!(first
        .header("request-id")
        .is_some_and(|r| r.starts_with("req_")));
    let second = api.post_idem("/v1/customers", &form, "key-1").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body);
    assert_eq!(count_customers(&api).await, 1);
    let created = api
        .emulator
        .events()
        .iter()
        .filter(|e| e.event["type"] == "customer.created")
        .count();
    assert_eq!(created, 1);
    let posts: Vec<_> = api
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(posts
        .iter()
        .all(|r| r.idempotency_key.as_deref() == Some("key-1") && r.status == 200));
    assert!(posts[1].idempotent_replayed);
}

#[tokio::test]
async fn idempotency_key_with_other_parameters_is_an_idempotency_error() {
    let api = start().await;
    api.post_idem("/v1/customers", &[("email", "a@example.com")], "key-2")
        .await
        .ok();
    let err = api
        .post_idem("/v1/customers", &[("email", "b@example.com")], "key-2")
        .await
        .err(400);
    assert_eq!(err["type"], "idempotency_error");
    assert!(err["message"].as_str().unwrap().contains("same parameters"));
    // Another endpoint with the same key is refused as well.
    let err = api
        .post_idem(
            "/v1/billing_portal/configurations",
            &[("features[invoice_history][enabled]", "true")],
            "key-2",
        )
        .await
        .err(400);
    assert_eq!(err["type"], "idempotency_error");
    assert_eq!(count_customers(&api).await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_get_409_while_the_first_executes() {
    let api = start().await;
    let held = api.emulator.hold("POST", "/v1/customers");
    let form = [("email", "race@example.com")];
    let first = {
        let http = api.http.clone();
        let url = format!("{}/v1/customers", api.base);
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(KEY)
                .header("Idempotency-Key", "race")
                .form(&form)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    held.wait_for_arrivals(1).await;
    let others = futures_join(&api, &form).await;
    assert_eq!(others.len(), 4);
    for r in &others {
        assert_eq!(r.0, 409, "{}", r.1);
        assert_eq!(r.1["error"]["code"], "idempotency_key_in_use");
    }
    held.release();
    assert_eq!(first.await.unwrap().unwrap(), 200);
    assert_eq!(held.arrivals(), 1, "only the first request executed");
    assert_eq!(count_customers(&api).await, 1);
    let replay = api.post_idem("/v1/customers", &form, "race").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
}

async fn futures_join(
    api: &common::Api,
    form: &[(&'static str, &'static str)],
) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let http = api.http.clone();
        let url = format!("{}/v1/customers", api.base);
        let form = form.to_vec();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(KEY)
                .header("Idempotency-Key", "race")
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn validation_failures_are_not_stored_under_the_key() {
    let api = start().await;
    let err = api
        .post_idem(
            "/v1/subscriptions",
            &[("items[0][price]", "price_pro_monthly")],
            "k-val",
        )
        .await
        .err(400);
    assert_eq!(err["code"], "parameter_missing");
    assert_eq!(err["param"], "customer");
    let made = api.seeded_customer("v@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    let ok = api
        .post_idem(
            "/v1/subscriptions",
            &[
                ("customer", &cus),
                ("items[0][price]", "price_team_monthly"),
            ],
            "k-val",
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn authentication() {
    let api = start().await;
    let url = format!("{}/v1/customers", api.base);
    let none = api.raw(api.http.get(&url)).await;
    let err = none.err(401);
    assert_eq!(err["type"], "invalid_request_error");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("did not provide an API key"));
    let publishable = api.raw(api.http.get(&url).bearer_auth("pk_test_123")).await;
    assert!(publishable.header("request-id").is_some());
    publishable.err(401);
    let basic = api.raw(api.http.get(&url).basic_auth(KEY, Some(""))).await;
    assert_eq!(basic.status, 200);
    let versioned = api
        .raw(
            api.http
                .get(&url)
                .bearer_auth(KEY)
                .header("Stripe-Version", "2023-08-16"),
        )
        .await;
    assert_eq!(versioned.header("stripe-version"), Some("2023-08-16"));
    let log = api.emulator.requests();
    assert_eq!(
        log.last().unwrap().stripe_version.as_deref(),
        Some("2023-08-16")
    );
    assert_eq!(log[0].status, 401);
    // Helper endpoints need no key.
    assert_eq!(
        api.raw(api.http.get(format!("{}/_emulator/requests", api.base)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn configured_key_is_the_only_one_accepted() {
    let api = start_with(EmulatorConfig {
        api_key: Some("sk_test_only".into()),
        ..Default::default()
    })
    .await;
    let url = format!("{}/v1/customers", api.base);
    api.raw(api.http.get(&url).bearer_auth("sk_test_other"))
        .await
        .err(401);
    assert_eq!(
        api.raw(api.http.get(&url).bearer_auth("sk_test_only"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn errors_name_the_parameter() {
    let api = start().await;
    let err = api.get("/v1/customers/cus_missing", &[]).await.err(404);
    assert_eq!(err["code"], "resource_missing");
    assert_eq!(err["param"], "id");
    assert_eq!(err["message"], "No such customer: 'cus_missing'");
    let err = api
        .post(
            "/v1/subscriptions",
            &[
                ("customer", "cus_nope"),
                ("items[0][price]", "price_pro_monthly"),
            ],
        )
        .await
        .err(404);
    assert_eq!(
        (err["code"].as_str(), err["param"].as_str()),
        (Some("resource_missing"), Some("customer"))
    );
    let err = api.post("/v1/billing_portal/sessions", &[]).await.err(400);
    assert_eq!(
        (err["code"].as_str(), err["param"].as_str()),
        (Some("parameter_missing"), Some("customer"))
    );
    let err = api
        .post("/v1/customers", &[("emial", "x@example.com")])
        .await
        .err(400);
    assert_eq!(err["code"], "parameter_unknown");
    assert_eq!(err["param"], "emial");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .starts_with("Received unknown parameter: emial"));
    let err = api.get("/v1/customers", &[("limit", "101")]).await.err(400);
    assert_eq!(err["param"], "limit");
    let err = api
        .post(
            "/v1/subscriptions/sub_x",
            &[("cancel_at_period_end", "maybe")],
        )
        .await
        .err(404);
    assert_eq!(err["param"], "id");
    let err = api.get("/v1/nothing_here", &[]).await.err(404);
    assert!(err["message"]
        .as_str()
        .unwrap()
        .starts_with("Unrecognized request URL"));
}

async fn search(api: &common::Api, q: &str) -> common::Reply {
    api.get("/v1/customers/search", &[("query", q)]).await
}

#[tokio::test]
async fn search_by_email_and_metadata() {
    let api = start().await;
    api.seeded_customer(
        "ann@example.com",
        json!({"metadata": {"user_id": "u-ann", "tier": "pro"}}),
    )
    .await;
    api.seeded_customer(
        "bob@example.com",
        json!({"metadata": {"user_id": "u-bob", "tier": "pro"}}),
    )
    .await;
    let r = search(&api, "email:'ann@example.com'").await.ok();
    assert_eq!(r["object"], "search_result");
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    assert_eq!(r["data"][0]["email"], "ann@example.com");
    assert!(r["next_page"].is_null());
    let r = search(&api, "metadata['user_id']:'u-bob'").await.ok();
    assert_eq!(r["data"][0]["email"], "bob@example.com");
    let r = search(&api, "metadata['tier']:'pro' AND email:'bob@example.com'")
        .await
        .ok();
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    let r = search(&api, "metadata['tier']:'pro'").await.ok();
    assert_eq!(r["data"].as_array().unwrap().len(), 2);
    let page1 = api
        .get(
            "/v1/customers/search",
            &[("query", "metadata['tier']:'pro'"), ("limit", "1")],
        )
        .await
        .ok();
    assert_eq!(page1["has_more"], true);
    let next = page1["next_page"].as_str().unwrap().to_string();
    let page2 = api
        .get(
            "/v1/customers/search",
            &[
                ("query", "metadata['tier']:'pro'"),
                ("limit", "1"),
                ("page", &next),
            ],
        )
        .await
        .ok();
    assert_eq!(page2["has_more"], false);
    assert_ne!(page1["data"][0]["id"], page2["data"][0]["id"]);
    let err = search(&api, "nickname:'x'").await.err(400);
    assert_eq!(err["param"], "query");
}

#[tokio::test]
async fn pagination_walks_every_page_newest_first() {
    let api = start().await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(id(&api
            .post("/v1/customers", &[("email", &format!("p{i}@example.com"))])
            .await
            .ok()));
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = vec![("limit", "10".to_string())];
        if let Some(a) = &after {
            q.push(("starting_after", a.clone()));
        }
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = api.get("/v1/customers", &q).await.ok();
        assert_eq!(page["object"], "list");
        assert_eq!(page["url"], "/v1/customers");
        pages += 1;
        let data = page["data"].as_array().unwrap();
        seen.extend(data.iter().map(id));
        if page["has_more"] != true {
            break;
        }
        after = Some(id(data.last().unwrap()));
    }
    assert_eq!(pages, 3);
    created.reverse();
    assert_eq!(seen, created, "newest first, no gaps or repeats");
    // ending_before pages back towards newer objects.
    let back = api
        .get(
            "/v1/customers",
            &[("limit", "3"), ("ending_before", &created[5])],
        )
        .await
        .ok();
    let ids: Vec<String> = back["data"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, created[2..5].to_vec());
    assert_eq!(back["has_more"], true);
    let by_email = api
        .get("/v1/customers", &[("email", "p7@example.com")])
        .await
        .ok();
    assert_eq!(by_email["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn customer_updated_carries_previous_attributes() {
    let api = start().await;
    let c = api
        .post(
            "/v1/customers",
            &[
                ("email", "old@example.com"),
                ("name", "Old"),
                ("metadata[keep]", "1"),
                ("metadata[drop]", "x"),
            ],
        )
        .await
        .ok();
    let r = api
        .post_idem(
            &format!("/v1/customers/{}", id(&c)),
            &[
                ("email", "new@example.com"),
                ("metadata[drop]", ""),
                ("metadata[add]", "y"),
            ],
            "upd-1",
        )
        .await;
    let request_id = r.header("request-id").unwrap().to_string();
    let updated = r.ok();
    assert_eq!(updated["metadata"], json!({"keep": "1", "add": "y"}));
    let events = api
        .get("/v1/events", &[("type", "customer.updated")])
        .await
        .ok();
    let e = &events["data"][0];
    assert_eq!(
        e["data"]["previous_attributes"],
        json!({"email": "old@example.com", "metadata": {"drop": "x", "add": null}})
    );
    assert_eq!(e["data"]["object"]["email"], "new@example.com");
    assert_eq!(
        e["request"],
        json!({"id": request_id, "idempotency_key": "upd-1"})
    );
    assert_eq!(e["api_version"], stripe_emulator::DEFAULT_API_VERSION);
    assert_eq!(
        api.get(&format!("/v1/events/{}", id(e)), &[]).await.ok(),
        *e
    );
    // An update that changes nothing emits nothing.
    let before = api.emulator.events().len();
    api.post(&format!("/v1/customers/{}", id(&c)), &[("name", "Old")])
        .await
        .ok();
    assert_eq!(api.emulator.events().len(), before);
}

#[tokio::test]
async fn seeded_customer_records_stripes_events_in_order() {
    let api = start().await;
    let made = api
        .seeded_customer("ev@example.com", json!({"name": "Ev"}))
        .await;
    assert_eq!(made["subscription"]["status"], "active");
    assert_eq!(made["invoice"]["status"], "paid");
    assert_eq!(made["payment_method"]["card"]["last4"], "4242");
    assert_eq!(
        made["customer"]["invoice_settings"]["default_payment_method"],
        made["payment_method"]["id"]
    );
    let types: Vec<String> = api
        .emulator
        .events()
        .iter()
        .map(|e| e.event["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "customer.created",
            "payment_method.attached",
            "customer.subscription.created",
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded",
            "customer.updated",
        ]
    );
    let seqs: Vec<u64> = api.emulator.events().iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    // Items carry the period (API >= 2025-03-31); the subscription does not.
    let item = &made["subscription"]["items"]["data"][0];
    assert!(
        item["current_period_end"].as_i64().unwrap()
            > item["current_period_start"].as_i64().unwrap()
    );
    assert!(made["subscription"].get("current_period_end").is_none());
}

#[tokio::test]
async fn payment_methods_attach_detach_and_decline() {
    let api = start().await;
    let c = api
        .post("/v1/customers", &[("email", "pm@example.com")])
        .await
        .ok();
    let cus = id(&c);
    let pm = api
        .post(
            "/v1/payment_methods/pm_card_mastercard/attach",
            &[("customer", &cus)],
        )
        .await
        .ok();
    assert!(pm["id"].as_str().unwrap().starts_with("pm_") && pm["id"] != "pm_card_mastercard");
    assert_eq!(pm["customer"], cus.as_str());
    assert_eq!(pm["card"]["brand"], "mastercard");
    let listed = api
        .get(
            "/v1/payment_methods",
            &[("customer", &cus), ("type", "card")],
        )
        .await
        .ok();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let listed = api
        .get(&format!("/v1/customers/{cus}/payment_methods"), &[])
        .await
        .ok();
    assert_eq!(listed["data"][0]["id"], pm["id"]);
    let err = api
        .post(
            "/v1/payment_methods/pm_card_chargeDeclined/attach",
            &[("customer", &cus)],
        )
        .await
        .err(402);
    assert_eq!(err["type"], "card_error");
    assert_eq!(err["code"], "card_declined");
    assert_eq!(err["decline_code"], "generic_decline");
    api.post(
        &format!("/v1/customers/{cus}"),
        &[(
            "invoice_settings[default_payment_method]",
            pm["id"].as_str().unwrap(),
        )],
    )
    .await
    .ok();
    let detached = api
        .post(&format!("/v1/payment_methods/{}/detach", id(&pm)), &[])
        .await
        .ok();
    assert!(detached["customer"].is_null());
    let c = api.get(&format!("/v1/customers/{cus}"), &[]).await.ok();
    assert!(c["invoice_settings"]["default_payment_method"].is_null());
    let types: Vec<String> = api
        .emulator
        .events()
        .iter()
        .map(|e| e.event["type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        types.contains(&"payment_method.attached".into())
            && types.contains(&"payment_method.detached".into())
    );
    // A detached payment method cannot be attached again.
    api.post(
        &format!("/v1/payment_methods/{}/attach", id(&pm)),
        &[("customer", &cus)],
    )
    .await
    .err(400);
}

#[tokio::test]
async fn subscription_lifecycle() {
    let api = start().await;
    let made = api.seeded_customer("sub@example.com", json!({})).await;
    let sub = id(&made["subscription"]);
    let cus = id(&made["customer"]);
    let path = format!("/v1/subscriptions/{sub}");
    let s = api
        .post(
            &path,
            &[
                ("cancel_at_period_end", "true"),
                ("cancellation_details[feedback]", "too_expensive"),
                ("cancellation_details[comment]", "pricey"),
            ],
        )
        .await
        .ok();
    assert_eq!(s["cancel_at_period_end"], true);
    assert_eq!(s["cancel_at"], s["items"]["data"][0]["current_period_end"]);
    assert_eq!(s["cancellation_details"]["feedback"], "too_expensive");
    let ev = api
        .get("/v1/events", &[("type", "customer.subscription.updated")])
        .await
        .ok();
    assert_eq!(
        ev["data"][0]["data"]["previous_attributes"]["cancel_at_period_end"],
        false
    );
    // Plan change keeps the item id.
    let item = id(&s["items"]["data"][0]);
    let s = api
        .post(
            &path,
            &[
                ("items[0][id]", &item),
                ("items[0][price]", "price_team_monthly"),
                ("proration_behavior", "none"),
            ],
        )
        .await
        .ok();
    assert_eq!(s["items"]["data"][0]["price"]["id"], "price_team_monthly");
    assert_eq!(s["items"]["data"][0]["id"], item.as_str());
    let err = api
        .post(&path, &[("cancellation_details[feedback]", "bored")])
        .await
        .err(400);
    assert_eq!(err["param"], "cancellation_details[feedback]");
    // Cancel now.
    let s = api.delete(&path).await.ok();
    assert_eq!(s["status"], "canceled");
    assert!(s["ended_at"].is_i64() && s["canceled_at"].is_i64());
    assert_eq!(
        api.get("/v1/events", &[("type", "customer.subscription.deleted")])
            .await
            .ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let default = api
        .get("/v1/subscriptions", &[("customer", &cus)])
        .await
        .ok();
    assert_eq!(
        default["data"].as_array().unwrap().len(),
        0,
        "canceled excluded by default"
    );
    let all = api
        .get(
            "/v1/subscriptions",
            &[("customer", &cus), ("status", "all")],
        )
        .await
        .ok();
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
    api.post(&path, &[("cancel_at_period_end", "false")])
        .await
        .err(400);
    let invoices = api
        .get(
            "/v1/invoices",
            &[
                ("customer", &cus),
                ("subscription", &sub),
                ("status", "paid"),
            ],
        )
        .await
        .ok();
    assert_eq!(invoices["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn expansions() {
    let api = start().await;
    let made = api.seeded_customer("exp@example.com", json!({})).await;
    let sub = id(&made["subscription"]);
    let s = api
        .get(
            &format!("/v1/subscriptions/{sub}"),
            &[
                ("expand[]", "customer"),
                ("expand[]", "latest_invoice"),
                ("expand[]", "items.data.price.product"),
            ],
        )
        .await
        .ok();
    assert_eq!(s["customer"]["object"], "customer");
    assert_eq!(s["latest_invoice"]["object"], "invoice");
    assert_eq!(
        s["items"]["data"][0]["price"]["product"]["name"],
        "Portico Pro"
    );
    let list = api
        .get(
            "/v1/subscriptions",
            &[
                ("expand[0]", "data.default_payment_method"),
                ("expand[1]", "data.customer"),
            ],
        )
        .await
        .ok();
    assert_eq!(list["data"][0]["customer"]["email"], "exp@example.com");
    let c = api
        .get(
            &format!("/v1/customers/{}", id(&made["customer"])),
            &[("expand[]", "invoice_settings.default_payment_method")],
        )
        .await
        .ok();
    assert_eq!(
        c["invoice_settings"]["default_payment_method"]["object"],
        "payment_method"
    );
    let err = api
        .get(
            &format!("/v1/subscriptions/{sub}"),
            &[("expand[]", "status")],
        )
        .await
        .err(400);
    assert_eq!(err["param"], "expand");
}

#[tokio::test]
async fn deleted_customer_is_a_stub() {
    let api = start().await;
    let made = api.seeded_customer("del@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    let d = api.delete(&format!("/v1/customers/{cus}")).await.ok();
    assert_eq!(d, json!({"id": cus, "object": "customer", "deleted": true}));
    assert_eq!(api.get(&format!("/v1/customers/{cus}"), &[]).await.ok(), d);
    assert_eq!(
        api.get(
            &format!("/v1/subscriptions/{}", id(&made["subscription"])),
            &[]
        )
        .await
        .ok()["status"],
        "canceled"
    );
    assert_eq!(count_customers(&api).await, 0);
    api.post(&format!("/v1/customers/{cus}"), &[("name", "x")])
        .await
        .err(404);
}

#[tokio::test]
async fn portal_configurations_default_and_deactivation() {
    let api = start().await;
    let made = api.seeded_customer("portal@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    let err = api
        .post("/v1/billing_portal/sessions", &[("customer", &cus)])
        .await
        .err(400);
    assert_eq!(err["type"], "invalid_request_error");
    assert_eq!(
        err["message"],
        "No configuration provided and your test mode default configuration has not been created. Provide a configuration or create your default by saving your customer portal settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
    );
    let err = api
        .post(
            "/v1/billing_portal/configurations",
            &[("business_profile[headline]", "x")],
        )
        .await
        .err(400);
    assert_eq!(err["param"], "features");
    let first = api.portal_configuration().await;
    assert_eq!(first["is_default"], true);
    let second = api.portal_configuration().await;
    assert_eq!(second["is_default"], false);
    let err = api
        .post(
            &format!("/v1/billing_portal/configurations/{}", id(&first)),
            &[("active", "false")],
        )
        .await
        .err(400);
    assert_eq!(err["param"], "active");
    let off = api
        .post(
            &format!("/v1/billing_portal/configurations/{}", id(&second)),
            &[("active", "false")],
        )
        .await
        .ok();
    assert_eq!(off["active"], false);
    let err = api
        .post(
            "/v1/billing_portal/sessions",
            &[("customer", &cus), ("configuration", &id(&second))],
        )
        .await
        .err(400);
    assert_eq!(err["param"], "configuration");
    let active = api
        .get("/v1/billing_portal/configurations", &[("active", "true")])
        .await
        .ok();
    assert_eq!(active["data"].as_array().unwrap().len(), 1);
    let default = api
        .get(
            "/v1/billing_portal/configurations",
            &[("is_default", "true")],
        )
        .await
        .ok();
    assert_eq!(default["data"][0]["id"], first["id"]);
    let s = api
        .post(
            "/v1/billing_portal/sessions",
            &[("customer", &cus), ("expand[]", "configuration")],
        )
        .await
        .ok();
    assert_eq!(s["configuration"]["id"], first["id"]);
    assert_eq!(s["return_url"], "https://app.example.com/account");
    assert_eq!(s["url"], format!("{}/p/session/{}", api.base, id(&s)));
    assert!(s["flow"].is_null());
    let types: Vec<String> = api
        .emulator
        .events()
        .iter()
        .map(|e| e.event["type"].as_str().unwrap().to_string())
        .collect();
    for t in [
        "billing_portal.configuration.created",
        "billing_portal.configuration.updated",
        "billing_portal.session.created",
    ] {
        assert!(types.contains(&t.to_string()), "{t}");
    }
}

async fn session(api: &common::Api, customer: &str, extra: &[(&str, &str)]) -> common::Reply {
    let mut form = vec![("customer", customer)];
    form.extend_from_slice(extra);
    api.post("/v1/billing_portal/sessions", &form).await
}

#[tokio::test]
async fn portal_flow_data_is_validated_like_stripe() {
    let api = start().await;
    api.portal_configuration().await;
    let made = api.seeded_customer("flow@example.com", json!({})).await;
    let other = api.seeded_customer("other@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    let sub = id(&made["subscription"]);
    let item = id(&made["subscription"]["items"]["data"][0]);

    let err = session(
        &api,
        &cus,
        &[("flow_data[after_completion][type]", "portal_homepage")],
    )
    .await
    .err(400);
    assert_eq!(
        (err["code"].as_str(), err["param"].as_str()),
        (Some("parameter_missing"), Some("flow_data[type]"))
    );
    let err = session(&api, &cus, &[("flow_data[type]", "subscription_pause")])
        .await
        .err(400);
    assert_eq!(err["param"], "flow_data[type]");
    let err = session(&api, &cus, &[("flow_data[type]", "subscription_cancel")])
        .await
        .err(400);
    assert_eq!(err["code"], "parameter_missing");
    assert_eq!(err["param"], "flow_data[subscription_cancel]");
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_cancel"),
            (
                "flow_data[subscription_cancel][retention][type]",
                "coupon_offer",
            ),
        ],
    )
    .await
    .err(400);
    assert_eq!(err["param"], "flow_data[subscription_cancel][subscription]");
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_update"),
            (
                "flow_data[subscription_update][subscription]",
                &id(&other["subscription"]),
            ),
        ],
    )
    .await
    .err(400);
    assert_eq!(err["param"], "flow_data[subscription_update][subscription]");
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_update"),
            (
                "flow_data[subscription_update][subscription]",
                "sub_missing",
            ),
        ],
    )
    .await
    .err(404);
    assert_eq!(err["code"], "resource_missing");
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_update_confirm"),
            ("flow_data[subscription_update_confirm][subscription]", &sub),
        ],
    )
    .await
    .err(400);
    assert_eq!(
        err["param"],
        "flow_data[subscription_update_confirm][items]"
    );
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_update_confirm"),
            ("flow_data[subscription_update_confirm][subscription]", &sub),
            (
                "flow_data[subscription_update_confirm][items][0][id]",
                "si_notmine",
            ),
        ],
    )
    .await
    .err(400);
    assert_eq!(
        err["param"],
        "flow_data[subscription_update_confirm][items][0][id]"
    );
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "payment_method_update"),
            ("flow_data[after_completion][type]", "redirect"),
        ],
    )
    .await
    .err(400);
    assert!(
        err["param"]
            .as_str()
            .unwrap()
            .starts_with("flow_data[after_completion][redirect]"),
        "{err}"
    );
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "payment_method_update"),
            ("flow_data[after_completion][type]", "redirect"),
            ("flow_data[after_completion][redirect][foo]", "x"),
        ],
    )
    .await
    .err(400);
    assert_eq!(err["code"], "parameter_unknown");

    let ok = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_update_confirm"),
            ("flow_data[subscription_update_confirm][subscription]", &sub),
            (
                "flow_data[subscription_update_confirm][items][0][id]",
                &item,
            ),
            (
                "flow_data[subscription_update_confirm][items][0][price]",
                "price_pro_yearly",
            ),
            ("flow_data[after_completion][type]", "redirect"),
            (
                "flow_data[after_completion][redirect][return_url]",
                "https://app.example.com/done",
            ),
        ],
    )
    .await
    .ok();
    assert_eq!(
        ok["flow"],
        json!({
            "after_completion": {"hosted_confirmation": null, "redirect": {"return_url": "https://app.example.com/done"}, "type": "redirect"},
            "subscription_cancel": null,
            "subscription_update": null,
            "subscription_update_confirm": {"discounts": [], "items": [{"id": item, "price": "price_pro_yearly"}], "subscription": sub},
            "type": "subscription_update_confirm",
        })
    );
    // A price outside the configuration's products is refused.
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_update_confirm"),
            ("flow_data[subscription_update_confirm][subscription]", &sub),
            (
                "flow_data[subscription_update_confirm][items][0][id]",
                &item,
            ),
            (
                "flow_data[subscription_update_confirm][items][0][price]",
                "price_team_monthly",
            ),
        ],
    )
    .await
    .err(400);
    assert_eq!(
        err["param"],
        "flow_data[subscription_update_confirm][items][0][price]"
    );
    let ok = session(&api, &cus, &[("flow_data[type]", "payment_method_update")])
        .await
        .ok();
    assert_eq!(ok["flow"]["after_completion"]["type"], "portal_homepage");
    // A canceled subscription cannot be used in a flow.
    api.delete(&format!("/v1/subscriptions/{sub}")).await.ok();
    let err = session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_cancel"),
            ("flow_data[subscription_cancel][subscription]", &sub),
        ],
    )
    .await
    .err(400);
    assert_eq!(err["param"], "flow_data[subscription_cancel][subscription]");
}

#[tokio::test]
async fn checkout_session_create_and_retrieve() {
    let api = start().await;
    let c = api
        .post("/v1/customers", &[("email", "co@example.com")])
        .await
        .ok();
    let cs = api
        .post(
            "/v1/checkout/sessions",
            &[
                ("mode", "subscription"),
                ("customer", &id(&c)),
                ("line_items[0][price]", "price_pro_yearly"),
                ("line_items[0][quantity]", "2"),
                (
                    "success_url",
                    "https://app.example.com/ok?session_id={CHECKOUT_SESSION_ID}",
                ),
                ("cancel_url", "https://app.example.com/no"),
                ("client_reference_id", "user-9"),
                ("metadata[user_id]", "user-9"),
            ],
        )
        .await
        .ok();
    assert!(id(&cs).starts_with("cs_test_"));
    assert_eq!(cs["url"], format!("{}/c/pay/{}", api.base, id(&cs)));
    assert_eq!(cs["amount_total"], 24000);
    assert_eq!(cs["status"], "open");
    let got = api
        .get(
            &format!("/v1/checkout/sessions/{}", id(&cs)),
            &[("expand[]", "customer")],
        )
        .await
        .ok();
    assert_eq!(got["customer"]["email"], "co@example.com");
    assert_eq!(got["client_reference_id"], "user-9");
    let err = api
        .post(
            "/v1/checkout/sessions",
            &[
                ("mode", "subscription"),
                ("success_url", "https://x"),
                ("line_items[0][price]", "price_pro_yearly"),
            ],
        )
        .await
        .err(400);
    assert_eq!(err["param"], "line_items[0][quantity]");
}

#[tokio::test]
async fn prices_products_and_reset() {
    let api = start().await;
    let prices = api
        .get(
            "/v1/prices",
            &[("product", "prod_portico_team"), ("active", "true")],
        )
        .await
        .ok();
    let ids: Vec<String> = prices["data"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, ["price_team_yearly", "price_team_monthly"]);
    let products = api.get("/v1/products", &[]).await.ok();
    assert_eq!(products["data"].as_array().unwrap().len(), 2);
    api.seeded_customer("r@example.com", json!({})).await;
    assert_eq!(count_customers(&api).await, 1);
    let reset = api
        .raw(api.http.post(format!("{}/_emulator/reset", api.base)))
        .await;
    assert_eq!(reset.status, 200);
    assert_eq!(count_customers(&api).await, 0);
    assert!(api.emulator.events().is_empty());
    assert_eq!(api.emulator.requests().len(), 1, "log restarts at reset");
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let path =
        std::env::temp_dir().join(format!("stripe-emulator-test-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let config = EmulatorConfig {
        state_file: Some(path.clone()),
        ..Default::default()
    };
    let api = start_with(config.clone()).await;
    let made = api.seeded_customer("persist@example.com", json!({})).await;
    let events = api.emulator.events().len();
    api.emulator.shutdown().await;
    let api = start_with(config).await;
    let c = api
        .get(&format!("/v1/customers/{}", id(&made["customer"])), &[])
        .await
        .ok();
    assert_eq!(c["email"], "persist@example.com");
    assert_eq!(api.emulator.events().len(), events);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn emulator_requests_endpoint_lists_the_log() {
    let api = start().await;
    api.get("/v1/customers", &[]).await.ok();
    let r = api
        .raw(api.http.get(format!("{}/_emulator/requests", api.base)))
        .await
        .ok();
    assert_eq!(r["data"][0]["path"], "/v1/customers");
    assert_eq!(r["data"][0]["status"], 200);
    assert_eq!(r["data"][0]["method"], "GET");
}

#[tokio::test]
async fn invoice_previews_show_a_change_without_making_it() {
    let api = common::start().await;
    let made = api
        .seeded_customer("preview@example.com", serde_json::json!({}))
        .await;
    let sub = common::id(&made["subscription"]);
    let cus = common::id(&made["customer"]);
    let item = made["subscription"]["items"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let events = api.emulator.events().len();
    let before = api.emulator.object(&sub).unwrap();
    let preview = |price: &'static str, behavior: &'static str| {
        let (api, sub, cus, item) = (&api, sub.clone(), cus.clone(), item.clone());
        async move {
            api.post(
                "/v1/invoices/create_preview",
                &[
                    ("customer", cus.as_str()),
                    ("subscription", sub.as_str()),
                    ("subscription_details[items][0][id]", item.as_str()),
                    ("subscription_details[items][0][price]", price),
                    ("subscription_details[proration_behavior]", behavior),
                ],
            )
            .await
        }
    };
    let period_end = before["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();

    // Same interval, prorations on the next invoice: credit, charge and the new price's period.
    let next = preview("price_team_monthly", "create_prorations")
        .await
        .ok();
    assert_eq!(next["object"], "invoice");
    assert_eq!(next["next_payment_attempt"], period_end);
    let lines = next["lines"]["data"].as_array().unwrap();
    let prorations: Vec<i64> = lines
        .iter()
        .filter(|l| l["parent"]["subscription_item_details"]["proration"] == true)
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(prorations.len(), 2, "{lines:?}");
    assert!(prorations[0] < 0 && prorations[1] > 0, "{prorations:?}");
    assert!(lines
        .iter()
        .any(|l| l["amount"] == 2900
            && l["parent"]["subscription_item_details"]["proration"] == false));
    assert_eq!(
        next["amount_due"].as_i64().unwrap(),
        lines
            .iter()
            .map(|l| l["amount"].as_i64().unwrap())
            .sum::<i64>()
    );

    // always_invoice: the prorations are due now.
    let now = preview("price_team_monthly", "always_invoice").await.ok();
    assert!(now["next_payment_attempt"].is_null());
    assert_eq!(
        now["amount_due"].as_i64().unwrap(),
        prorations.iter().sum::<i64>().max(0)
    );

    // Nothing happened.
    assert_eq!(api.emulator.object(&sub).unwrap(), before);
    assert_eq!(api.emulator.events().len(), events);
    assert!(
        api.get("/v1/invoices", &[("customer", &cus)]).await.ok()["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !i["id"].as_str().unwrap().starts_with("upcoming_"))
    );

    let err = preview("price_nope", "create_prorations").await.err(404);
    assert_eq!(err["param"], "subscription_details[items][0][price]");
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|a| a.iter().map(id).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn customer_lists_filter_by_created_and_page_newest_first_without_the_deleted() {
    let api = start().await;
    let mut created = Vec::new();
    for n in 0..5 {
        let c = api
            .post("/v1/customers", &[("email", &format!("c{n}@example.com"))])
            .await
            .ok();
        created.push(id(&c));
        api.emulator.advance_clock(10).unwrap();
    }
    let third = api
        .get(&format!("/v1/customers/{}", created[2]), &[])
        .await
        .ok();
    let at = third["created"].as_i64().unwrap().to_string();
    let since = api
        .get("/v1/customers", &[("created[gte]", &at), ("limit", "2")])
        .await
        .ok();
    assert_eq!(ids(&since), vec![created[4].clone(), created[3].clone()]);
    assert_eq!(since["has_more"], true);
    let rest = api
        .get(
            "/v1/customers",
            &[
                ("created[gte]", &at),
                ("limit", "2"),
                ("starting_after", &created[3]),
            ],
        )
        .await
        .ok();
    assert_eq!(
        (ids(&rest), rest["has_more"].clone()),
        (vec![created[2].clone()], json!(false))
    );
    let before = api
        .get("/v1/customers", &[("created[lt]", &at), ("limit", "100")])
        .await
        .ok();
    assert_eq!(ids(&before), vec![created[1].clone(), created[0].clone()]);
    let exact = api.get("/v1/customers", &[("created", &at)]).await.ok();
    assert_eq!(ids(&exact), vec![created[2].clone()]);
    let bad = api
        .get("/v1/customers", &[("created[after]", &at)])
        .await
        .err(400);
    assert_eq!(bad["param"], "created[after]");

    // A deleted customer leaves the list, stays retrievable as a stub, and says so in an event.
    let deleted = api
        .delete(&format!("/v1/customers/{}", created[4]))
        .await
        .ok();
    assert_eq!(deleted["deleted"], true);
    let listed = api
        .get("/v1/customers", &[("created[gte]", &at)])
        .await
        .ok();
    assert!(!ids(&listed).contains(&created[4]));
    let stub = api
        .get(&format!("/v1/customers/{}", created[4]), &[])
        .await
        .ok();
    assert_eq!(
        (stub["deleted"].clone(), stub["object"].clone()),
        (json!(true), json!("customer"))
    );
    let events = api
        .get("/v1/events", &[("type", "customer.deleted")])
        .await
        .ok();
    assert_eq!(
        events["data"][0]["data"]["object"]["id"],
        created[4].as_str()
    );
}

#[tokio::test]
async fn events_filter_by_created_and_types_and_keep_thirty_days() {
    let api = start().await;
    api.post("/v1/customers", &[("email", "old@example.com")])
        .await
        .ok();
    let old_event = api
        .get("/v1/events", &[("type", "customer.created")])
        .await
        .ok()["data"][0]
        .clone();
    api.emulator.advance_clock(29 * 86_400).unwrap();
    let new = api
        .post("/v1/customers", &[("email", "new@example.com")])
        .await
        .ok();
    api.post(&format!("/v1/customers/{}", id(&new)), &[("name", "New")])
        .await
        .ok();
    let now = api.emulator.now().to_string();
    let since_now = api
        .get(
            "/v1/events",
            &[("created[gte]", &now), ("types[0]", "customer.updated")],
        )
        .await
        .ok();
    assert_eq!(since_now["data"].as_array().unwrap().len(), 1);
    assert_eq!(since_now["data"][0]["type"], "customer.updated");
    let both = api
        .get(
            "/v1/events",
            &[
                ("types[0]", "customer.created"),
                ("types[1]", "customer.updated"),
            ],
        )
        .await
        .ok();
    assert_eq!(both["data"].as_array().unwrap().len(), 3, "{both}");
    let exclusive = api
        .get(
            "/v1/events",
            &[
                ("type", "customer.created"),
                ("types[0]", "customer.updated"),
            ],
        )
        .await
        .err(400);
    assert_eq!(exclusive["code"], "parameters_exclusive");

    // Past 30 days an event is neither listed nor retrievable.
    api.emulator.advance_clock(2 * 86_400).unwrap();
    let created = api
        .get("/v1/events", &[("type", "customer.created")])
        .await
        .ok();
    let listed: Vec<Value> = created["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["object"]["id"].clone())
        .collect();
    assert_eq!(listed, vec![json!(id(&new))], "{created}");
    let gone = api
        .get(&format!("/v1/events/{}", id(&old_event)), &[])
        .await
        .err(404);
    assert_eq!(gone["code"], "resource_missing");
}

#[tokio::test]
async fn customers_are_found_by_metadata() {
    let api = start().await;
    let ours = api
        .post(
            "/v1/customers",
            &[
                ("email", "m@example.com"),
                ("metadata[portico_user_id]", "user-1"),
            ],
        )
        .await
        .ok();
    api.post(
        "/v1/customers",
        &[
            ("email", "m@example.com"),
            ("metadata[portico_user_id]", "user-2"),
        ],
    )
    .await
    .ok();
    let found = api
        .get(
            "/v1/customers/search",
            &[("query", "metadata['portico_user_id']:'user-1'")],
        )
        .await
        .ok();
    assert_eq!(ids(&found), vec![id(&ours)]);
    assert_eq!(found["object"], "search_result");
}
