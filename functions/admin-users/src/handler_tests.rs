use std::sync::Arc;

use lambda_http::http::StatusCode;
use portico_testkit::stripe_emulator::{Fault, NewCustomer};
use portico_testkit::{call, fixtures, Harness};
use serde_json::{json, Value};
use shared::auth::User;
use shared::customer_link::USER_ID_METADATA;
use shared::ids::{CustomerId, UserId};
use shared::store::{CheckoutRecord, CustomerStore, OpenCheckout, PortalSessionRecord, UserStore};
use shared::webhook::{parse_envelope, process, Outcome};

use super::handle;

const ADMIN: &str = "admin-1";

/// A sub the way identity providers write them, and as it travels in a path.
fn path_sub(sub: &str) -> String {
    sub.replace('|', "%7C")
}

async fn send(h: &Harness, event: &str, token: &str, vars: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut all = vec![("TOKEN", token)];
    all.extend_from_slice(vars);
    call!(handle(&h.services, fixtures::request_with(event, &all)))
}

async fn admin(h: &Harness, event: &str, sub: &str, vars: &[(&str, &str)]) -> (StatusCode, Value) {
    admin_as(h, ADMIN, event, sub, vars).await
}

async fn admin_as(
    h: &Harness,
    who: &str,
    event: &str,
    sub: &str,
    vars: &[(&str, &str)],
) -> (StatusCode, Value) {
    let sub = path_sub(sub);
    let mut all = vec![("SUB", sub.as_str())];
    all.extend_from_slice(vars);
    send(h, event, &h.stack.admin_token(who), &all).await
}

fn error_code(body: &Value) -> &str {
    body["error_code"].as_str().unwrap_or_default()
}

/// Sends `event` as the admin and asserts its refusal: the status and the `error_code`. The
/// body, for what else a test reads of it.
async fn assert_refused(
    h: &Harness,
    event: &str,
    sub: &str,
    vars: &[(&str, &str)],
    status: StatusCode,
    code: &str,
) -> Value {
    let (got, body) = admin(h, event, sub, vars).await;
    assert_eq!((got, error_code(&body)), (status, code), "{body}");
    body
}

/// A customer in the emulator; `owner` is the user its metadata names, if any.
fn stripe_customer(h: &Harness, email: &str, owner: Option<&str>) -> CustomerId {
    let mut new = NewCustomer::new(email);
    if let Some(owner) = owner {
        new.metadata.push((USER_ID_METADATA.into(), owner.into()));
    }
    let created = h.emulator.create_customer(new).expect("emulator customer");
    CustomerId::parse(created["customer"]["id"].as_str().unwrap().to_string()).unwrap()
}

#[tokio::test]
async fn only_admins_reach_any_route() {
    let h = Harness::new().await;
    let plain = h.stack.token("plain-user");
    let customer = h.subscribed_customer("auth0|victim").await;
    let sub = path_sub("auth0|victim");
    let vars = [
        ("SUB", sub.as_str()),
        ("CUSTOMER", customer.as_str()),
        ("REASON", "x"),
        ("LIMIT", "5"),
        ("CURSOR", "x"),
    ];
    for event in [
        "admin-users/get-user",
        "admin-users/get-user-page",
        "admin-users/sync-user",
        "admin-users/link-user",
        "admin-users/link-user-forced",
        "admin-users/erase-user",
        "admin-users/erase-user-and-stripe",
    ] {
        let (status, body) = send(&h, event, &plain, &vars).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::FORBIDDEN, "admin_required"),
            "{event}: {body}"
        );
    }
    let (status, body) = send(&h, "admin-users/get-user-unauthenticated", "", &vars).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    // Nothing was touched.
    assert!(h
        .services
        .table
        .get_user(&UserId::parse("auth0|victim").unwrap())
        .await
        .unwrap()
        .is_some());
    assert!(h.stripe_calls().is_empty(), "{:?}", h.stripe_calls());
}

#[tokio::test]
async fn a_user_shows_link_state_premium_and_a_paged_audit_trail_newest_first() {
    let h = Harness::new().await;
    let sub = "auth0|shown";
    let customer = h.subscribed_customer(sub).await;
    let (status, body) = admin(&h, "admin-users/sync-user", sub, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sync"]["premium"]["premium"], true);
    // Four more syncs, each with a change: a trail longer than one page.
    for n in 0..4 {
        h.stripe_api(
            "POST",
            &format!("/v1/customers/{customer}"),
            &[("name", &format!("Name {n}"))],
        )
        .await;
        let (status, body) = admin(&h, "admin-users/sync-user", sub, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["sync"]["changes"].as_array().unwrap().len(),
            1,
            "{body}"
        );
    }
    let (status, body) = admin(&h, "admin-users/get-user", sub, &[]).await;
    assert_eq!(status, 200, "{body}");
    let user = &body["user"];
    assert_eq!(user["user_id"], sub);
    assert_eq!(user["customer_id"], customer.as_str());
    assert_eq!(user["premium"], true);
    let reason = user["premium_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("premium: subscription sub_") && reason.contains("active"),
        "{reason}"
    );
    assert_eq!(user["snapshot"]["name"], "Name 3");
    assert!(user["last_synced_at"].is_string());

    let stored = h.services.table.audit_entries(&customer).await.unwrap();
    assert!(stored.len() >= 5, "{stored:?}");
    let newest_first: Vec<Value> = stored
        .iter()
        .rev()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert!(stored
        .iter()
        .all(|e| e.reference.as_deref() == Some("admin:admin-1")));

    // Pages of two, cursor to cursor, are the whole trail newest first, each entry once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (status, body) = match &cursor {
            None => {
                admin(
                    &h,
                    "admin-users/get-user-page",
                    sub,
                    &[("LIMIT", "2"), ("CURSOR", "")],
                )
                .await
            }
            Some(c) => {
                admin(
                    &h,
                    "admin-users/get-user-page",
                    sub,
                    &[("LIMIT", "2"), ("CURSOR", c)],
                )
                .await
            }
        };
        assert_eq!(status, 200, "{body}");
        let audit = &body["user"]["audit"];
        let entries = audit["entries"].as_array().unwrap();
        assert!(entries.len() <= 2);
        seen.extend(entries.iter().cloned());
        match audit["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
}

#[tokio::test]
async fn a_forged_or_foreign_cursor_is_400_and_reads_nothing() {
    let h = Harness::new().await;
    let (a, b) = ("auth0|cursor-a", "auth0|cursor-b");
    h.subscribed_customer(a).await;
    h.subscribed_customer(b).await;
    for sub in [a, b] {
        for _ in 0..2 {
            let (status, _) = admin(&h, "admin-users/sync-user", sub, &[]).await;
            assert_eq!(status, 200);
        }
    }
    let (_, body) = admin(
        &h,
        "admin-users/get-user-page",
        a,
        &[("LIMIT", "1"), ("CURSOR", "")],
    )
    .await;
    let a_cursor = body["user"]["audit"]["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    // A's cursor on B, and strings this endpoint never issued.
    let forged = [
        a_cursor.clone(),
        "bm90LWEtY3Vyc29y".to_string(),
        "%%%".to_string(),
        a_cursor[..a_cursor.len() - 2].to_string(),
    ];
    for cursor in forged {
        let (status, body) = admin(
            &h,
            "admin-users/get-user-page",
            b,
            &[("LIMIT", "1"), ("CURSOR", &cursor)],
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_cursor"),
            "{cursor}: {body}"
        );
        assert_eq!(body["field"], "cursor");
    }
    for limit in ["0", "101", "ten"] {
        let (status, body) = admin(
            &h,
            "admin-users/get-user-page",
            a,
            &[("LIMIT", limit), ("CURSOR", "")],
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_limit")
        );
    }
    let (status, body) = admin(&h, "admin-users/get-user", "auth0|nobody", &[]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
    let (status, body) = admin(&h, "admin-users/sync-user", "auth0|nobody", &[]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
}

#[tokio::test]
async fn a_link_needs_the_metadata_proof_or_a_forced_reason_never_an_email() {
    let h = Harness::new().await;
    let sub = "auth0|linked-later";
    // Same email as the user, no metadata: an email is no proof.
    let unnamed = stripe_customer(&h, "linked-later@example.test", None);
    assert_refused(
        &h,
        "admin-users/link-user",
        sub,
        &[("CUSTOMER", unnamed.as_str())],
        StatusCode::CONFLICT,
        "link_not_proven",
    )
    .await;
    assert_refused(
        &h,
        "admin-users/link-user-forced",
        sub,
        &[("CUSTOMER", unnamed.as_str()), ("REASON", "  ")],
        StatusCode::BAD_REQUEST,
        "reason_required",
    )
    .await;
    assert!(h
        .services
        .table
        .get_user(&UserId::parse(sub).unwrap())
        .await
        .unwrap()
        .is_none());

    // A customer named by another user's metadata is theirs, forced or not.
    let theirs = stripe_customer(&h, "x@example.test", Some("auth0|someone-else"));
    for event in ["admin-users/link-user", "admin-users/link-user-forced"] {
        assert_refused(
            &h,
            event,
            sub,
            &[("CUSTOMER", theirs.as_str()), ("REASON", "ticket 7")],
            StatusCode::CONFLICT,
            "customer_linked_to_other_user",
        )
        .await;
    }
    assert_refused(
        &h,
        "admin-users/link-user",
        sub,
        &[("CUSTOMER", "cus_DoesNotExist")],
        StatusCode::NOT_FOUND,
        "customer_not_found",
    )
    .await;
    let gone = stripe_customer(&h, "gone@example.test", Some(sub));
    h.stripe_api("DELETE", &format!("/v1/customers/{gone}"), &[])
        .await;
    assert_refused(
        &h,
        "admin-users/link-user",
        sub,
        &[("CUSTOMER", gone.as_str())],
        StatusCode::CONFLICT,
        "customer_deleted",
    )
    .await;

    // Forced with a reason: linked, audited with the admin and the reason, and the customer now
    // names the user in Stripe.
    let (status, body) = admin(
        &h,
        "admin-users/link-user-forced",
        sub,
        &[
            ("CUSTOMER", unnamed.as_str()),
            ("REASON", "migrated by hand, ticket 42"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["link"]["linked"].as_bool(),
            body["link"]["forced"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let stored = h
        .services
        .table
        .get_user(&UserId::parse(sub).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.customer_id.as_ref(), Some(&unnamed));
    assert_eq!(
        h.emulator.object(unnamed.as_str()).unwrap()["metadata"][USER_ID_METADATA],
        sub
    );
    let audit = h.services.table.audit_entries(&unnamed).await.unwrap();
    let link = audit
        .iter()
        .find(|e| e.change.field == "user")
        .expect("link audited");
    assert_eq!(link.reference.as_deref(), Some("admin:admin-1"));
    assert!(
        link.change.message.contains("ticket 42"),
        "{}",
        link.change.message
    );
    assert_eq!(link.change.to["proof"], "forced");

    // Once linked, another customer is refused; the same one again only re-syncs.
    let other = stripe_customer(&h, "other@example.test", Some(sub));
    assert_refused(
        &h,
        "admin-users/link-user",
        sub,
        &[("CUSTOMER", other.as_str())],
        StatusCode::CONFLICT,
        "user_already_linked",
    )
    .await;
    let (status, body) = admin(
        &h,
        "admin-users/link-user",
        sub,
        &[("CUSTOMER", unnamed.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["link"]["linked"], false);
    let links = h
        .services
        .table
        .audit_entries(&unnamed)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.change.field == "user")
        .count();
    assert_eq!(links, 1);
}

#[tokio::test]
async fn a_proven_link_runs_the_full_sync() {
    let h = Harness::new().await;
    let sub = "auth0|imported";
    // A customer from before Portico that names the user; Portico has no link yet.
    let imported = stripe_customer(&h, "imported@example.test", Some(sub));
    let (status, body) = admin(
        &h,
        "admin-users/link-user",
        sub,
        &[("CUSTOMER", imported.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["link"]["linked"].as_bool(),
            body["link"]["forced"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let state = h
        .services
        .table
        .get_customer_state(&imported)
        .await
        .unwrap()
        .expect("synced");
    assert_eq!(state.user_id.as_ref().map(UserId::as_str), Some(sub));
    assert_eq!(
        state.snapshot.email.as_deref(),
        Some("imported@example.test")
    );
}

#[tokio::test]
async fn two_admins_linking_one_user_at_once_have_one_winner() {
    let h = Arc::new(Harness::new().await);
    let sub = "auth0|contested";
    let first = stripe_customer(&h, "a@example.test", None);
    let second = stripe_customer(&h, "b@example.test", None);
    // Both have read the user (unlinked) and are at Stripe when they are let go.
    let held = [
        h.emulator.hold("GET", &format!("/v1/customers/{first}")),
        h.emulator.hold("GET", &format!("/v1/customers/{second}")),
    ];
    let link = |who: &'static str, customer: CustomerId| {
        let h = h.clone();
        tokio::spawn(async move {
            admin_as(
                &h,
                who,
                "admin-users/link-user-forced",
                sub,
                &[("CUSTOMER", customer.as_str()), ("REASON", "support case")],
            )
            .await
        })
    };
    let a = link("admin-a", first.clone());
    let b = link("admin-b", second.clone());
    for hold in &held {
        hold.wait_for_arrivals(1).await;
    }
    for hold in &held {
        hold.release();
    }
    let outcomes = [a.await.unwrap(), b.await.unwrap()];
    let won: Vec<_> = outcomes
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    let lost: Vec<_> = outcomes
        .iter()
        .filter(|(s, _)| *s != StatusCode::OK)
        .collect();
    assert_eq!((won.len(), lost.len()), (1, 1), "{outcomes:?}");
    assert_eq!(
        (lost[0].0, error_code(&lost[0].1)),
        (StatusCode::CONFLICT, "user_already_linked")
    );
    let winner = won[0].1["link"]["sync"]["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = h
        .services
        .table
        .get_user(&UserId::parse(sub).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.customer_id.unwrap().as_str(), winner);
    // The loser's customer was not claimed, audited or renamed.
    let loser = if winner == first.as_str() {
        &second
    } else {
        &first
    };
    assert!(h
        .services
        .table
        .audit_entries(loser)
        .await
        .unwrap()
        .is_empty());
    assert!(h.emulator.object(loser.as_str()).unwrap()["metadata"]
        .get(USER_ID_METADATA)
        .is_none());
}

#[tokio::test]
async fn two_admins_giving_one_customer_to_two_users_have_one_winner() {
    let h = Arc::new(Harness::new().await);
    let customer = stripe_customer(&h, "shared@example.test", None);
    let held = h.emulator.hold("GET", &format!("/v1/customers/{customer}"));
    let link = |sub: &'static str| {
        let (h, customer) = (h.clone(), customer.clone());
        tokio::spawn(async move {
            admin(
                &h,
                "admin-users/link-user-forced",
                sub,
                &[("CUSTOMER", customer.as_str()), ("REASON", "support case")],
            )
            .await
        })
    };
    let a = link("auth0|claimant-a");
    let b = link("auth0|claimant-b");
    held.wait_for_arrivals(2).await;
    held.release();
    let outcomes = [a.await.unwrap(), b.await.unwrap()];
    let codes: Vec<_> = outcomes
        .iter()
        .map(|(s, b)| (s.as_u16(), error_code(b).to_string()))
        .collect();
    assert!(codes.contains(&(200, String::new())), "{outcomes:?}");
    assert!(
        codes.contains(&(409, "customer_linked_to_other_user".into())),
        "{outcomes:?}"
    );
    let mut linked = 0;
    for sub in ["auth0|claimant-a", "auth0|claimant-b"] {
        let user = h
            .services
            .table
            .get_user(&UserId::parse(sub).unwrap())
            .await
            .unwrap();
        linked += usize::from(user.and_then(|u| u.customer_id) == Some(customer.clone()));
    }
    assert_eq!(linked, 1);
}

#[tokio::test]
async fn a_link_racing_the_users_first_portal_visit_leaves_one_customer() {
    let h = Arc::new(Harness::new().await);
    let sub = "auth0|first-visit";
    let proof = stripe_customer(&h, "first-visit@example.test", Some(sub));
    // The visit looks for a customer an earlier request created, and is held there.
    let search = h.emulator.hold("GET", "/v1/customers/search");
    let visit = {
        let h = h.clone();
        tokio::spawn(async move {
            let user = User {
                id: UserId::parse(sub).unwrap(),
                email: Some("first-visit@example.test".into()),
                is_admin: false,
            };
            let s = &h.services;
            shared::customer_link::ensure_customer(&s.table, &s.stripe, &s.clock, &user, None).await
        })
    };
    search.wait_for_arrivals(1).await;
    let (status, body) = admin(
        &h,
        "admin-users/link-user",
        sub,
        &[("CUSTOMER", proof.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    search.release();
    let visited = visit.await.unwrap().expect("the visit succeeds");
    assert_eq!(visited, proof, "the visit adopts the link that won");
    let stored = h
        .services
        .table
        .get_user(&UserId::parse(sub).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.customer_id, Some(proof.clone()));

    // The other order: a visit that created and linked a customer first wins over a later link.
    let late = "auth0|visited-first";
    let created = h.subscribed_customer(late).await;
    let proof = stripe_customer(&h, "visited-first@example.test", Some(late));
    let body = assert_refused(
        &h,
        "admin-users/link-user",
        late,
        &[("CUSTOMER", proof.as_str())],
        StatusCode::CONFLICT,
        "user_already_linked",
    )
    .await;
    assert!(body["error"].as_str().unwrap().contains(created.as_str()));
}

/// Every string anywhere in the table's items (keys included), by a full scan.
async fn every_string_in_the_table(h: &Harness) -> Vec<String> {
    // Every attribute name and every string or number value, at any depth.
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(list) => list.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.iter().for_each(|(name, v)| {
                out.push(name.clone());
                strings(v, out);
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for item in h.stack.table_items().await {
        strings(&item, &mut out);
    }
    out
}

fn mentions<'a>(strings: &'a [String], needles: &[&str]) -> Vec<&'a String> {
    strings
        .iter()
        .filter(|s| needles.iter().any(|n| s.contains(n)))
        .collect()
}

/// A user with everything Portico keeps: profile, synced state and audit, a portal session, a
/// checkout record and an open checkout.
async fn user_with_history(h: &Harness, sub: &str) -> CustomerId {
    let customer = h.subscribed_customer(sub).await;
    let (status, body) = admin(h, "admin-users/sync-user", sub, &[]).await;
    assert_eq!(status, 200, "{body}");
    let user = UserId::parse(sub).unwrap();
    let table = &h.services.table;
    let now = h.services.clock.timestamp();
    table
        .insert_portal_session(&PortalSessionRecord {
            reference: format!("ps_{}", user.short_digest()),
            user_id: user.clone(),
            customer_id: customer.clone(),
            workflow: shared::portal::Workflow::BillingReview,
            stripe_session_id: "bps_1".into(),
            configuration_id: h.configuration.clone(),
            return_url: "http://localhost:5173/dashboard/billing".into(),
            created_at: now.clone(),
            returned_at: None,
            action: None,
            return_until: Some(h.services.clock.unix() + 86_400),
            retention_offer: None,
            counted: false,
        })
        .await
        .unwrap();
    table
        .record_checkout(&CheckoutRecord {
            session_id: format!("cs_{}", user.short_digest()),
            user_id: user.clone(),
            customer_id: customer.clone(),
            price: "price_pro".into(),
            created_at: now,
            expires_at: h.services.clock.unix() + 86_400,
        })
        .await
        .unwrap();
    table
        .claim_open_checkout(
            &user,
            "price_pro",
            &OpenCheckout {
                session_id: format!("cs_{}", user.short_digest()),
                url: None,
                expires_at: h.services.clock.unix() + 86_400,
            },
            None,
        )
        .await
        .unwrap();
    customer
}

/// A late Stripe event for the customer, through the webhook's own pipeline.
async fn late_event(h: &Harness, customer: &CustomerId, event_type: &str) -> Outcome {
    let event = json!({
        "id": format!("evt_late{}", h.services.clock.unix_ms()),
        "object": "event",
        "type": event_type,
        "created": h.services.clock.unix(),
        "livemode": false,
        "data": {"object": {"id": customer.as_str(), "object": "customer", "customer": customer.as_str()}},
    });
    let envelope = parse_envelope(event.to_string().as_bytes()).unwrap();
    process(h.services.sync_context(), &envelope, false)
        .await
        .unwrap()
}

#[tokio::test]
async fn erasure_leaves_nothing_naming_the_user_and_late_events_bring_nothing_back() {
    let h = Harness::new().await;
    let sub = "auth0|erase-me";
    let email = "auth0|erase-me@example.test";
    let customer = user_with_history(&h, sub).await;
    // Someone else's data stays.
    let kept = user_with_history(&h, "auth0|keep-me").await;
    let before = every_string_in_the_table(&h).await;
    assert!(
        mentions(&before, &[sub]).len() >= 5,
        "the fixture holds the user's data"
    );
    assert!(!mentions(&before, &[email]).is_empty());

    let (status, body) = admin(&h, "admin-users/erase-user", sub, &[]).await;
    assert_eq!(status, 200, "{body}");
    let erasure = &body["erasure"];
    assert_eq!(erasure["outcome"], "erased");
    assert_eq!(erasure["stripe_customer_deleted"], false);
    assert_eq!(erasure["actor"], "admin:admin-1");
    assert_eq!(erasure["erasure_id"], shared::store::digest(sub));

    let after = every_string_in_the_table(&h).await;
    assert_eq!(
        mentions(&after, &[sub, email, customer.as_str()]),
        Vec::<&String>::new()
    );
    assert!(!mentions(&after, &["auth0|keep-me"]).is_empty());
    assert!(h
        .services
        .table
        .get_customer_state(&kept)
        .await
        .unwrap()
        .is_some());
    let user = UserId::parse(sub).unwrap();
    let premium = h
        .services
        .table
        .get_user(&user)
        .await
        .unwrap()
        .is_some_and(|u| u.premium);
    assert!(!premium);

    // Stripe still has the customer (stripe: false), and it keeps sending events: none writes.
    assert_eq!(
        h.emulator.object(customer.as_str()).unwrap()["email"],
        email
    );
    for event_type in [
        "invoice.paid",
        "customer.updated",
        "checkout.session.completed",
    ] {
        assert_eq!(
            late_event(&h, &customer, event_type).await,
            Outcome::Ignored("customer erased")
        );
    }
    let (status, body) = admin(&h, "admin-users/sync-user", sub, &[]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
    assert_eq!(
        mentions(
            &every_string_in_the_table(&h).await,
            &[sub, email, customer.as_str()]
        ),
        Vec::<&String>::new()
    );

    // Again: a clear no-op.
    let (status, again) = admin(&h, "admin-users/erase-user", sub, &[]).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["erasure"]["outcome"], "already_erased");
    assert_eq!(again["erasure"]["erased_at"], erasure["erased_at"]);
    let (status, body) = admin(&h, "admin-users/erase-user", "auth0|never-was", &[]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
}

#[tokio::test]
async fn an_erasure_that_fails_at_stripe_halfway_completes_when_run_again() {
    let h = Harness::new().await;
    let sub = "auth0|erase-stripe";
    let email = "auth0|erase-stripe@example.test";
    let customer = user_with_history(&h, sub).await;
    // More failures than the client retries.
    h.emulator
        .inject_fault(Fault::status(
            "DELETE",
            format!("/v1/customers/{customer}"),
            500,
            10,
        ))
        .unwrap();
    assert_refused(
        &h,
        "admin-users/erase-user-and-stripe",
        sub,
        &[],
        StatusCode::SERVICE_UNAVAILABLE,
        "stripe_unavailable",
    )
    .await;
    // Half-way: marked erased, nothing else gone yet, so the re-run knows the customer.
    let user = UserId::parse(sub).unwrap();
    assert!(h.services.table.get_user(&user).await.unwrap().is_some());
    assert!(h.services.table.customer_erased(&customer).await.unwrap());
    assert_eq!(
        late_event(&h, &customer, "invoice.paid").await,
        Outcome::Ignored("customer erased")
    );

    h.emulator.clear_faults();
    let (status, body) = admin(&h, "admin-users/erase-user-and-stripe", sub, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["erasure"]["outcome"], "erased");
    assert_eq!(body["erasure"]["stripe_customer_deleted"], true);
    assert_eq!(
        h.emulator.object(customer.as_str()).unwrap()["deleted"],
        true
    );
    // Stripe's own customer.deleted (it carries the customer as it was) writes nothing either.
    let deleted = h
        .emulator
        .events()
        .into_iter()
        .rev()
        .find(|e| e.event["type"] == "customer.deleted")
        .expect("customer.deleted emitted");
    let envelope = parse_envelope(deleted.event.to_string().as_bytes()).unwrap();
    assert_eq!(
        process(h.services.sync_context(), &envelope, false)
            .await
            .unwrap(),
        Outcome::Ignored("customer erased")
    );
    assert_eq!(
        mentions(
            &every_string_in_the_table(&h).await,
            &[sub, email, customer.as_str()]
        ),
        Vec::<&String>::new()
    );

    // A re-run once done: the Stripe customer is gone already, nothing to do.
    let (status, body) = admin(&h, "admin-users/erase-user-and-stripe", sub, &[]).await;
    assert_eq!(
        (status, body["erasure"]["outcome"].as_str()),
        (StatusCode::OK, Some("already_erased"))
    );
}

#[tokio::test]
async fn a_sync_racing_an_erasure_writes_nothing() {
    let h = Arc::new(Harness::new().await);
    let sub = "auth0|racing-erasure";
    let customer = user_with_history(&h, sub).await;
    // The sync has taken its ticket and read the state when Stripe holds it.
    let held = h.emulator.hold("GET", &format!("/v1/customers/{customer}"));
    let sync = {
        let h = h.clone();
        tokio::spawn(async move { admin(&h, "admin-users/sync-user", sub, &[]).await })
    };
    held.wait_for_arrivals(1).await;
    let (status, body) = admin(&h, "admin-users/erase-user", sub, &[]).await;
    assert_eq!(status, 200, "{body}");
    held.release();
    let (status, body) = sync.await.unwrap();
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "customer_erased"),
        "{body}"
    );
    assert_eq!(
        mentions(
            &every_string_in_the_table(&h).await,
            &[sub, customer.as_str()]
        ),
        Vec::<&String>::new()
    );
}
