//! The hosted portal and checkout pages, driven through their JSON endpoints.

mod common;

use common::{id, start, Api};
use serde_json::{json, Value};

async fn post_json(api: &Api, url: &str, body: Value) -> common::Reply {
    api.raw(api.http.post(url).json(&body)).await
}

async fn get_url(api: &Api, url: &str) -> common::Reply {
    api.raw(api.http.get(url)).await
}

fn events_after(api: &Api, n: usize) -> Vec<Value> {
    api.emulator
        .events()
        .into_iter()
        .skip(n)
        .map(|e| e.event)
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn portal_session(api: &Api, customer: &str, extra: &[(&str, &str)]) -> Value {
    let mut form = vec![("customer", customer)];
    form.extend_from_slice(extra);
    api.post("/v1/billing_portal/sessions", &form).await.ok()
}

#[tokio::test]
async fn portal_actions_change_state_with_stripes_events() {
    let api = start().await;
    api.portal_configuration().await;
    let made = api.seeded_customer("pa@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    let sub = id(&made["subscription"]);
    let old_pm = id(&made["payment_method"]);
    let session = portal_session(&api, &cus, &[]).await;
    let url = session["url"].as_str().unwrap().to_string();
    assert!(url.ends_with(&format!("/p/session/{}", id(&session))));
    let created = api.emulator.events();
    assert_eq!(
        created.last().unwrap().event["type"],
        "billing_portal.session.created"
    );

    let page = get_url(&api, &url).await;
    assert_eq!(page.status, 200);
    let html = page.body.as_str().unwrap();
    assert!(html.contains("<form") && html.contains("Portico"), "{html}");
    let state = get_url(&api, &format!("{url}/state")).await.ok();
    assert_eq!(
        state["offers"]["subscription_cancel"]["mode"],
        "at_period_end"
    );
    assert_eq!(
        state["offers"]["subscription_update"]["prices"],
        json!(["price_pro_monthly", "price_pro_yearly"])
    );
    assert_eq!(state["subscriptions"][0]["id"], sub.as_str());

    // Payment method: a clone of the test card, attached and made the default.
    let n = api.emulator.events().len();
    let r = post_json(
        &api,
        &format!("{url}/payment_method"),
        json!({"payment_method": "pm_card_mastercard"}),
    )
    .await
    .ok();
    let new_pm = id(&r["payment_method"]);
    assert!(new_pm.starts_with("pm_") && new_pm != "pm_card_mastercard");
    assert_eq!(r["payment_method"]["card"]["last4"], "4444");
    assert_eq!(
        r["customer"]["invoice_settings"]["default_payment_method"],
        new_pm.as_str()
    );
    let ev = events_after(&api, n);
    assert_eq!(types(&ev), ["payment_method.attached", "customer.updated"]);
    assert_eq!(
        ev[1]["data"]["previous_attributes"],
        json!({"invoice_settings": {"default_payment_method": old_pm}})
    );
    assert!(ev[1]["request"]["id"].is_null());

    // The declining card: Stripe's error, nothing changed.
    let n = api.emulator.events().len();
    let err = post_json(
        &api,
        &format!("{url}/payment_method"),
        json!({"payment_method": "pm_card_chargeDeclined"}),
    )
    .await
    .err(402);
    assert_eq!(err["code"], "card_declined");
    assert_eq!(err["decline_code"], "generic_decline");
    assert_eq!(api.emulator.events().len(), n);
    assert_eq!(
        api.emulator.object(&cus).unwrap()["invoice_settings"]["default_payment_method"],
        new_pm.as_str()
    );

    // Profile: only the allowed fields (this configuration allows email).
    let r = post_json(
        &api,
        &format!("{url}/customer"),
        json!({"email": "new@example.com"}),
    )
    .await
    .ok();
    assert_eq!(r["customer"]["email"], "new@example.com");
    let ev = events_after(&api, n);
    assert_eq!(types(&ev), ["customer.updated"]);
    assert_eq!(
        ev[0]["data"]["previous_attributes"],
        json!({"email": "pa@example.com"})
    );
    let n = api.emulator.events().len();
    let err = post_json(
        &api,
        &format!("{url}/customer"),
        json!({"email": "x@example.com", "name": "Mallory"}),
    )
    .await
    .err(403);
    assert_eq!(err["code"], "portal_action_not_allowed");
    assert_eq!(api.emulator.events().len(), n);
    assert_eq!(
        api.emulator.object(&cus).unwrap()["email"],
        "new@example.com"
    );

    // Price switch: a price the configuration does not offer is refused.
    let err = post_json(
        &api,
        &format!("{url}/update"),
        json!({"price": "price_team_monthly"}),
    )
    .await
    .err(403);
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("price_team_monthly"));
    assert_eq!(api.emulator.events().len(), n);
    let r = post_json(
        &api,
        &format!("{url}/update"),
        json!({"price": "price_pro_yearly"}),
    )
    .await
    .ok();
    assert_eq!(
        r["subscription"]["items"]["data"][0]["price"]["id"],
        "price_pro_yearly"
    );
    let ev = events_after(&api, n);
    assert_eq!(
        types(&ev),
        [
            "customer.subscription.updated",
            "invoiceitem.created",
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded"
        ]
    );
    assert_eq!(
        ev[0]["data"]["previous_attributes"]["items"]["data"][0]["price"]["id"],
        "price_pro_monthly"
    );
    assert!(
        ev[1]["data"]["object"]["amount"].as_i64().unwrap() < 0,
        "credit"
    );
    assert_eq!(ev[1]["data"]["object"]["proration"], true);
    assert_eq!(
        ev[2]["data"]["object"]["billing_reason"],
        "subscription_update"
    );

    // Cancel at period end with a reason from the configuration's options.
    let n = api.emulator.events().len();
    let err = post_json(&api, &format!("{url}/cancel"), json!({"reason": "unused"}))
        .await
        .err(400);
    assert_eq!(err["param"], "reason");
    assert_eq!(api.emulator.events().len(), n);
    let r = post_json(
        &api,
        &format!("{url}/cancel"),
        json!({"reason": "too_expensive", "comment": "pricey"}),
    )
    .await
    .ok();
    let s = &r["subscription"];
    assert_eq!(s["status"], "active");
    assert_eq!(s["cancel_at_period_end"], true);
    assert_eq!(s["cancel_at"], s["items"]["data"][0]["current_period_end"]);
    assert_eq!(
        s["cancellation_details"],
        json!({"reason": "cancellation_requested", "feedback": "too_expensive", "comment": "pricey"})
    );
    let ev = events_after(&api, n);
    assert_eq!(types(&ev), ["customer.subscription.updated"]);
    assert_eq!(
        ev[0]["data"]["previous_attributes"],
        json!({
            "cancel_at": null,
            "cancel_at_period_end": false,
            "canceled_at": null,
            "cancellation_details": {"comment": null, "feedback": null, "reason": null},
        })
    );
    assert!(r["after_completion"].is_null());

    // Invoice history.
    let inv = get_url(&api, &format!("{url}/invoices")).await.ok();
    assert_eq!(inv["data"].as_array().unwrap().len(), 2);
    assert!(inv["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["customer"] == cus.as_str()));
}

#[tokio::test]
async fn actions_the_configuration_does_not_allow_are_refused() {
    let api = start().await;
    api.post(
        "/v1/billing_portal/configurations",
        &[
            ("features[subscription_cancel][enabled]", "true"),
            ("features[subscription_cancel][mode]", "immediately"),
            ("default_return_url", "https://app.example.com/back"),
        ],
    )
    .await
    .ok();
    let made = api.seeded_customer("deny@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    let sub = id(&made["subscription"]);
    let url = portal_session(&api, &cus, &[]).await["url"]
        .as_str()
        .unwrap()
        .to_string();
    let n = api.emulator.events().len();
    let before = api.emulator.object(&cus).unwrap();
    for (path, body) in [
        ("payment_method", json!({"payment_method": "pm_card_visa"})),
        ("customer", json!({"email": "x@example.com"})),
        ("update", json!({"price": "price_pro_yearly"})),
    ] {
        let err = post_json(&api, &format!("{url}/{path}"), body)
            .await
            .err(403);
        assert_eq!(err["code"], "portal_action_not_allowed", "{path}");
    }
    get_url(&api, &format!("{url}/invoices")).await.err(403);
    assert_eq!(api.emulator.events().len(), n);
    assert_eq!(api.emulator.object(&cus).unwrap(), before);
    let state = get_url(&api, &format!("{url}/state")).await.ok();
    assert_eq!(state["offers"]["customer_update"]["enabled"], false);
    assert_eq!(state["offers"]["subscription_cancel"]["enabled"], true);

    // Immediate cancel; reasons are not collected by this configuration.
    let r = post_json(&api, &format!("{url}/cancel"), json!({"reason": "unused"}))
        .await
        .ok();
    assert_eq!(r["subscription"]["status"], "canceled");
    assert!(r["subscription"]["ended_at"].is_i64());
    assert!(r["subscription"]["canceled_at"].is_i64());
    assert_eq!(
        r["subscription"]["cancellation_details"]["reason"],
        "cancellation_requested"
    );
    assert!(r["subscription"]["cancellation_details"]["feedback"].is_null());
    let ev = events_after(&api, n);
    assert_eq!(types(&ev), ["customer.subscription.deleted"]);
    assert_eq!(ev[0]["data"]["object"]["id"], sub.as_str());

    // The return link goes to the configuration's default return URL.
    let resp = no_redirects()
        .get(format!("{url}/return"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        "https://app.example.com/back"
    );
}

#[tokio::test]
async fn a_flow_session_offers_only_its_flow() {
    let api = start().await;
    api.portal_configuration().await;
    let made = api.seeded_customer("flow@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    let sub = id(&made["subscription"]);
    let other_sub = api
        .post(
            "/v1/subscriptions",
            &[("customer", &cus), ("items[0][price]", "price_pro_yearly")],
        )
        .await
        .ok();

    // payment_method_update: only the payment method.
    let s = portal_session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "payment_method_update"),
            ("flow_data[after_completion][type]", "redirect"),
            (
                "flow_data[after_completion][redirect][return_url]",
                "https://app.example.com/done",
            ),
        ],
    )
    .await;
    let url = s["url"].as_str().unwrap().to_string();
    let n = api.emulator.events().len();
    for (path, body) in [
        ("cancel", json!({})),
        ("update", json!({"price": "price_pro_yearly"})),
        ("customer", json!({"email": "z@example.com"})),
    ] {
        let err = post_json(&api, &format!("{url}/{path}"), body)
            .await
            .err(403);
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("payment_method_update"),
            "{err}"
        );
    }
    get_url(&api, &format!("{url}/invoices")).await.err(403);
    assert_eq!(api.emulator.events().len(), n);
    let state = get_url(&api, &format!("{url}/state")).await.ok();
    let offers = &state["offers"];
    assert_eq!(offers["payment_method_update"]["enabled"], true);
    for f in [
        "customer_update",
        "subscription_cancel",
        "subscription_update",
        "invoice_history",
    ] {
        assert_eq!(offers[f]["enabled"], false, "{f}");
    }
    let r = post_json(
        &api,
        &format!("{url}/payment_method"),
        json!({"payment_method": "pm_card_visa"}),
    )
    .await
    .ok();
    assert_eq!(
        r["after_completion"],
        json!({"type": "redirect", "url": "https://app.example.com/done"})
    );
    // The HTML form posts to the same handler and follows after_completion.
    let no_redirects = no_redirects();
    let resp = no_redirects
        .post(format!("{url}/payment_method"))
        .form(&[("payment_method", "pm_card_mastercard")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        "https://app.example.com/done"
    );

    // subscription_cancel: only cancelling that subscription.
    let s = portal_session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_cancel"),
            ("flow_data[subscription_cancel][subscription]", &sub),
            ("flow_data[after_completion][type]", "hosted_confirmation"),
            (
                "flow_data[after_completion][hosted_confirmation][custom_message]",
                "See you soon",
            ),
        ],
    )
    .await;
    let url = s["url"].as_str().unwrap().to_string();
    let n = api.emulator.events().len();
    post_json(
        &api,
        &format!("{url}/payment_method"),
        json!({"payment_method": "pm_card_visa"}),
    )
    .await
    .err(403);
    let err = post_json(
        &api,
        &format!("{url}/cancel"),
        json!({"subscription": id(&other_sub)}),
    )
    .await
    .err(403);
    assert!(err["message"].as_str().unwrap().contains(&sub));
    assert_eq!(api.emulator.events().len(), n);
    let r = post_json(&api, &format!("{url}/cancel"), json!({}))
        .await
        .ok();
    assert_eq!(r["subscription"]["id"], sub.as_str());
    assert_eq!(r["subscription"]["cancel_at_period_end"], true);
    assert_eq!(
        r["after_completion"],
        json!({"type": "hosted_confirmation", "message": "See you soon"})
    );
    assert_eq!(
        api.emulator.object(&id(&other_sub)).unwrap()["cancel_at_period_end"],
        false
    );

    // subscription_update_confirm: only the prepared switch.
    let item = id(&other_sub["items"]["data"][0]);
    let s = portal_session(
        &api,
        &cus,
        &[
            ("flow_data[type]", "subscription_update_confirm"),
            (
                "flow_data[subscription_update_confirm][subscription]",
                &id(&other_sub),
            ),
            (
                "flow_data[subscription_update_confirm][items][0][id]",
                &item,
            ),
            (
                "flow_data[subscription_update_confirm][items][0][price]",
                "price_pro_monthly",
            ),
        ],
    )
    .await;
    let url = s["url"].as_str().unwrap().to_string();
    post_json(
        &api,
        &format!("{url}/update"),
        json!({"price": "price_team_monthly"}),
    )
    .await
    .err(403);
    let r = post_json(&api, &format!("{url}/update"), json!({}))
        .await
        .ok();
    assert_eq!(
        r["subscription"]["items"]["data"][0]["price"]["id"],
        "price_pro_monthly"
    );
    assert_eq!(r["after_completion"]["type"], "portal_homepage");
}

#[tokio::test]
async fn unknown_or_expired_session_urls_show_the_expired_page() {
    let api = start().await;
    api.portal_configuration().await;
    let made = api.seeded_customer("exp@example.com", json!({})).await;
    let cus = id(&made["customer"]);

    let r = get_url(&api, &format!("{}/p/session/bps_nope", api.base)).await;
    assert_eq!(r.status, 404);
    assert!(r.body.as_str().unwrap().contains("This link has expired"));
    let err = post_json(
        &api,
        &format!("{}/p/session/bps_nope/cancel", api.base),
        json!({}),
    )
    .await
    .err(404);
    assert_eq!(err["code"], "session_expired");

    // Not visited within 5 minutes: expired.
    let unvisited = portal_session(&api, &cus, &[]).await["url"]
        .as_str()
        .unwrap()
        .to_string();
    // Visited now: usable for an hour.
    let visited = portal_session(&api, &cus, &[]).await["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get_url(&api, &visited).await.status, 200);
    api.emulator.advance_clock(6 * 60).unwrap();
    let r = get_url(&api, &unvisited).await;
    assert_eq!(r.status, 404);
    assert!(r.body.as_str().unwrap().contains("expired"));
    assert_eq!(get_url(&api, &visited).await.status, 200);
    get_url(&api, &format!("{visited}/state")).await.ok();
    api.emulator.advance_clock(60 * 60).unwrap();
    assert_eq!(get_url(&api, &visited).await.status, 404);
    get_url(&api, &format!("{visited}/state")).await.err(404);
}

async fn checkout_session(api: &Api, extra: &[(&str, &str)]) -> Value {
    let mut form = vec![
        ("mode", "subscription"),
        ("line_items[0][price]", "price_pro_monthly"),
        ("line_items[0][quantity]", "1"),
        (
            "success_url",
            "https://app.example.com/ok?session_id={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "https://app.example.com/pricing"),
        ("subscription_data[metadata][user_id]", "u_1"),
    ];
    form.extend_from_slice(extra);
    api.post("/v1/checkout/sessions", &form).await.ok()
}

#[tokio::test]
async fn checkout_completes_with_a_test_card_and_declines_like_stripe() {
    let api = start().await;
    let cs = checkout_session(&api, &[("customer_email", "buyer@example.com")]).await;
    let cs_id = id(&cs);
    let url = cs["url"].as_str().unwrap().to_string();
    let page = get_url(&api, &url).await;
    assert_eq!(page.status, 200);
    let html = page.body.as_str().unwrap();
    assert!(html.contains("/complete") && html.contains("https://app.example.com/pricing"));

    // Declined: stays open, nothing created.
    let n = api.emulator.events().len();
    let customers = api.get("/v1/customers", &[]).await.ok()["data"]
        .as_array()
        .unwrap()
        .len();
    let err = post_json(
        &api,
        &format!("{url}/complete"),
        json!({"payment_method": "pm_card_chargeDeclined"}),
    )
    .await
    .err(402);
    assert_eq!(err["code"], "card_declined");
    assert_eq!(api.emulator.events().len(), n);
    assert_eq!(
        api.get("/v1/customers", &[]).await.ok()["data"]
            .as_array()
            .unwrap()
            .len(),
        customers
    );
    let still = api
        .get(&format!("/v1/checkout/sessions/{cs_id}"), &[])
        .await
        .ok();
    assert_eq!(still["status"], "open");
    assert!(still["subscription"].is_null());

    // Paid.
    let r = post_json(
        &api,
        &format!("{url}/complete"),
        json!({"payment_method": "pm_card_visa"}),
    )
    .await
    .ok();
    assert_eq!(
        r["redirect_url"],
        format!("https://app.example.com/ok?session_id={cs_id}").as_str()
    );
    let s = api
        .get(&format!("/v1/checkout/sessions/{cs_id}"), &[])
        .await
        .ok();
    assert_eq!(s["status"], "complete");
    assert_eq!(s["payment_status"], "paid");
    let cus = s["customer"].as_str().unwrap();
    let sub = api
        .get(
            &format!("/v1/subscriptions/{}", s["subscription"].as_str().unwrap()),
            &[],
        )
        .await
        .ok();
    assert_eq!(sub["customer"], cus);
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["metadata"]["user_id"], "u_1");
    assert_eq!(
        api.emulator.object(cus).unwrap()["email"],
        "buyer@example.com"
    );
    let inv = api
        .emulator
        .object(sub["latest_invoice"].as_str().unwrap())
        .unwrap();
    assert_eq!(inv["status"], "paid");
    let ev = types(&events_after(&api, n));
    for t in [
        "customer.created",
        "payment_method.attached",
        "customer.subscription.created",
        "invoice.paid",
    ] {
        assert!(ev.contains(&t.to_string()), "{t} in {ev:?}");
    }
    assert_eq!(ev.last().unwrap(), "checkout.session.completed");
    post_json(&api, &format!("{url}/complete"), json!({}))
        .await
        .err(400);

    // An existing customer is reused; the HTML form redirects to success_url.
    let cs2 = checkout_session(&api, &[("customer", cus)]).await;
    let no_redirects = no_redirects();
    let resp = no_redirects
        .post(format!("{}/complete", cs2["url"].as_str().unwrap()))
        .form(&[("payment_method", "pm_card_mastercard")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("https://app.example.com/ok?session_id={}", id(&cs2))
    );
    let s2 = api
        .get(&format!("/v1/checkout/sessions/{}", id(&cs2)), &[])
        .await
        .ok();
    assert_eq!(s2["customer"], cus);
    assert_eq!(s2["status"], "complete");
    // A declined form post shows the error on the page.
    let cs3 = checkout_session(&api, &[]).await;
    let resp = no_redirects
        .post(format!("{}/complete", cs3["url"].as_str().unwrap()))
        .form(&[("payment_method", "pm_card_chargeDeclined")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 402);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Your card was declined."));
}

#[tokio::test]
async fn checkout_sets_the_subscriptions_default_payment_method_not_the_customers() {
    let api = start().await;
    for (token, kind) in [
        ("pm_card_visa", "card"),
        ("pm_usBankAccount", "us_bank_account"),
        ("pm_sepaDebit", "sepa_debit"),
    ] {
        let cs = checkout_session(&api, &[("customer_email", "payer@example.com")]).await;
        let url = cs["url"].as_str().unwrap().to_string();
        let done = post_json(
            &api,
            &format!("{url}/complete"),
            json!({"payment_method": token}),
        )
        .await
        .ok();
        let session = &done["session"];
        let sub = api
            .emulator
            .object(session["subscription"].as_str().unwrap())
            .unwrap();
        let pm_id = sub["default_payment_method"]
            .as_str()
            .expect("set by Checkout");
        assert!(pm_id.starts_with("pm_") && pm_id != token, "{pm_id}");
        let pm = api.emulator.object(pm_id).unwrap();
        assert_eq!(pm["type"], kind);
        assert_eq!(pm["customer"], session["customer"]);
        let customer = api
            .emulator
            .object(session["customer"].as_str().unwrap())
            .unwrap();
        assert!(
            customer["invoice_settings"]["default_payment_method"].is_null(),
            "Checkout leaves the customer's invoice default alone ({kind})"
        );
    }
}

async fn lifetime_checkout(api: &Api, customer: &str) -> Value {
    api.post(
        "/v1/checkout/sessions",
        &[
            ("mode", "payment"),
            ("customer", customer),
            ("line_items[0][price]", "price_pro_lifetime"),
            ("line_items[0][quantity]", "1"),
            ("success_url", "https://app.example.com/ok"),
            ("payment_intent_data[metadata][purchase]", "lifetime"),
        ],
    )
    .await
    .ok()
}

#[tokio::test]
async fn a_payment_mode_checkout_charges_once_and_refunds_fully_or_in_part() {
    let api = start().await;
    let made = api.seeded_customer("once@example.com", json!({})).await;
    let cus = id(&made["customer"]);
    // Recurring prices are refused in payment mode, as on Stripe.
    let err = api
        .post(
            "/v1/checkout/sessions",
            &[
                ("mode", "payment"),
                ("customer", &cus),
                ("line_items[0][price]", "price_pro_monthly"),
                ("line_items[0][quantity]", "1"),
                ("success_url", "https://app.example.com/ok"),
            ],
        )
        .await
        .err(400);
    assert_eq!(err["param"], "line_items");

    let cs = lifetime_checkout(&api, &cus).await;
    assert_eq!(
        (cs["mode"].as_str(), cs["amount_total"].as_i64()),
        (Some("payment"), Some(29900))
    );
    let n = api.emulator.events().len();
    let saved_before = api.emulator.object(&cus).unwrap();
    let done = post_json(
        &api,
        &format!("{}/complete", cs["url"].as_str().unwrap()),
        json!({"payment_method": "pm_card_visa"}),
    )
    .await
    .ok();
    let session = &done["session"];
    assert_eq!(session["payment_status"], "paid");
    assert!(session["subscription"].is_null());
    let pi_id = session["payment_intent"].as_str().unwrap();
    let pi = api
        .get(&format!("/v1/payment_intents/{pi_id}"), &[])
        .await
        .ok();
    assert_eq!(
        (
            pi["status"].as_str(),
            pi["amount_received"].as_i64(),
            pi["customer"].as_str()
        ),
        (Some("succeeded"), Some(29900), Some(cus.as_str()))
    );
    assert_eq!(pi["metadata"]["purchase"], "lifetime");
    let ch_id = pi["latest_charge"].as_str().unwrap().to_string();
    assert_eq!(
        types(&events_after(&api, n)),
        vec![
            "payment_intent.created",
            "charge.succeeded",
            "payment_intent.succeeded",
            "checkout.session.completed"
        ]
    );
    // Not saved on the customer: no attach, no new default.
    assert_eq!(api.emulator.object(&cus).unwrap(), saved_before);
    let listed = api
        .get(
            "/v1/payment_intents",
            &[("customer", &cus), ("expand[]", "data.latest_charge")],
        )
        .await
        .ok();
    assert_eq!(listed["data"][0]["latest_charge"]["id"], ch_id.as_str());

    // A partial refund, then the rest by payment intent; then nothing is left.
    let n = api.emulator.events().len();
    let partial = api
        .post("/v1/refunds", &[("charge", &ch_id), ("amount", "9900")])
        .await
        .ok();
    assert_eq!(
        (partial["status"].as_str(), partial["amount"].as_i64()),
        (Some("succeeded"), Some(9900))
    );
    let charge = api.get(&format!("/v1/charges/{ch_id}"), &[]).await.ok();
    assert_eq!(
        (
            charge["amount_refunded"].as_i64(),
            charge["refunded"].as_bool()
        ),
        (Some(9900), Some(false))
    );
    let ev = events_after(&api, n);
    assert_eq!(types(&ev), vec!["refund.created", "charge.refunded"]);
    assert_eq!(ev[1]["data"]["previous_attributes"]["amount_refunded"], 0);
    let too_much = api
        .post("/v1/refunds", &[("charge", &ch_id), ("amount", "20001")])
        .await
        .err(400);
    assert_eq!(too_much["param"], "amount");
    let rest = api
        .post("/v1/refunds", &[("payment_intent", pi_id)])
        .await
        .ok();
    assert_eq!(rest["amount"], 20000);
    let charge = api.get(&format!("/v1/charges/{ch_id}"), &[]).await.ok();
    assert_eq!(
        (
            charge["amount_refunded"].as_i64(),
            charge["refunded"].as_bool()
        ),
        (Some(29900), Some(true))
    );
    assert_eq!(charge["refunds"]["data"].as_array().unwrap().len(), 2);
    let again = api
        .post("/v1/refunds", &[("charge", &ch_id)])
        .await
        .err(400);
    assert_eq!(again["code"], "charge_already_refunded");
    api.post("/v1/refunds", &[]).await.err(400);
    api.post("/v1/refunds", &[("charge", "ch_missing")])
        .await
        .err(404);
}

#[tokio::test]
async fn a_cancellation_flow_offers_its_coupon_and_accepting_applies_the_discount() {
    let api = start().await;
    let made = api.seeded_customer("stay@example.com", json!({})).await;
    let (cus, sub) = (id(&made["customer"]), id(&made["subscription"]));
    api.portal_configuration().await;
    let coupon = api
        .post(
            "/v1/coupons",
            &[
                ("id", "STAY25"),
                ("name", "25% off for 3 months"),
                ("percent_off", "25"),
                ("duration", "repeating"),
                ("duration_in_months", "3"),
            ],
        )
        .await
        .ok();
    assert_eq!(
        (coupon["valid"].as_bool(), coupon["times_redeemed"].as_i64()),
        (Some(true), Some(0))
    );
    assert_eq!(
        api.get("/v1/coupons/STAY25", &[]).await.ok()["percent_off"],
        25.0
    );
    api.get("/v1/coupons/NOPE", &[]).await.err(404);

    let cancel_flow = |coupon: &'static str| {
        vec![
            ("flow_data[type]", "subscription_cancel"),
            ("flow_data[subscription_cancel][subscription]", sub.as_str()),
            (
                "flow_data[subscription_cancel][retention][type]",
                "coupon_offer",
            ),
            (
                "flow_data[subscription_cancel][retention][coupon_offer][coupon]",
                coupon,
            ),
        ]
    };
    let err = api
        .post(
            "/v1/billing_portal/sessions",
            &[vec![("customer", cus.as_str())], cancel_flow("NOPE")].concat(),
        )
        .await
        .err(404);
    assert_eq!(
        err["param"],
        "flow_data[subscription_cancel][retention][coupon_offer][coupon]"
    );
    let session = portal_session(&api, &cus, &cancel_flow("STAY25")).await;
    assert_eq!(
        session["flow"]["subscription_cancel"]["retention"]["coupon_offer"]["coupon"],
        "STAY25"
    );
    let url = session["url"].as_str().unwrap().to_string();
    let page = get_url(&api, &url).await;
    assert!(page.body.as_str().unwrap().contains("25% off for 3 months"));

    let n = api.emulator.events().len();
    let accepted = post_json(&api, &format!("{url}/retention"), json!({}))
        .await
        .ok();
    let discount_id = accepted["subscription"]["discounts"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        types(&events_after(&api, n)),
        vec!["customer.discount.created", "customer.subscription.updated"]
    );
    let expanded = api
        .get(
            &format!("/v1/subscriptions/{sub}"),
            &[("expand[]", "discounts.source.coupon")],
        )
        .await
        .ok();
    assert_eq!(expanded["discounts"][0]["id"], discount_id.as_str());
    assert_eq!(expanded["discounts"][0]["source"]["coupon"]["id"], "STAY25");
    assert!(
        expanded["discounts"][0]["end"].as_i64().is_some(),
        "repeating: ends"
    );
    assert_eq!(
        accepted["subscription"]["cancel_at_period_end"], false,
        "not cancelled"
    );
    assert_eq!(
        api.get("/v1/coupons/STAY25", &[]).await.ok()["times_redeemed"],
        1
    );
    // Taken once: a second accept is refused; cancelling still works.
    post_json(&api, &format!("{url}/retention"), json!({}))
        .await
        .err(403);
    post_json(&api, &format!("{url}/cancel"), json!({}))
        .await
        .ok();

    // A used-up coupon is refused like an unknown one would be at Stripe.
    api.post(
        "/v1/coupons",
        &[
            ("id", "ONCE"),
            ("percent_off", "10"),
            ("max_redemptions", "1"),
        ],
    )
    .await
    .ok();
    let other = api.seeded_customer("other@example.com", json!({})).await;
    let other_sub = id(&other["subscription"]);
    let s = portal_session(
        &api,
        &id(&other["customer"]),
        &[
            ("flow_data[type]", "subscription_cancel"),
            ("flow_data[subscription_cancel][subscription]", &other_sub),
            (
                "flow_data[subscription_cancel][retention][type]",
                "coupon_offer",
            ),
            (
                "flow_data[subscription_cancel][retention][coupon_offer][coupon]",
                "ONCE",
            ),
        ],
    )
    .await;
    post_json(
        &api,
        &format!("{}/retention", s["url"].as_str().unwrap()),
        json!({}),
    )
    .await
    .ok();
    assert_eq!(api.get("/v1/coupons/ONCE", &[]).await.ok()["valid"], false);
}
