//! What the one router answers where no endpoint matches: Stripe's 404 `Unrecognized
//! request URL` (never axum's bare 404/405), after the API key check and injected faults
//! for `/v1`, with the request logged as every `/v1` request is.

mod common;

use common::{start, KEY};
use stripe_emulator::Fault;

#[track_caller]
fn assert_unrecognized(err: &serde_json::Value, method: &str, path: &str) {
    assert_eq!(err["type"], "invalid_request_error");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("Unrecognized request URL ({method}: {path}).")),
        "{message}"
    );
}

#[tokio::test]
async fn a_known_path_with_another_method_is_stripes_404_and_logged() {
    let api = start().await;
    let cases = [
        ("DELETE", "/v1/invoices/in_x"),
        ("PUT", "/v1/customers"),
        ("PATCH", "/v1/customers/cus_x"),
        ("POST", "/v1/events/evt_x"),
        ("HEAD", "/v1/customers"),
    ];
    for (method, path) in cases {
        let r = api
            .raw(
                api.http
                    .request(method.parse().unwrap(), format!("{}{path}", api.base))
                    .bearer_auth(KEY),
            )
            .await;
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r
            .header("request-id")
            .is_some_and(|id| id.starts_with("req_")));
        assert_eq!(
            r.header("stripe-version"),
            Some(stripe_emulator::DEFAULT_API_VERSION)
        );
        if method == "HEAD" {
            // No body to read; the status and the log say it was not the list.
            assert_eq!(r.status, 404);
            continue;
        }
        assert_unrecognized(&r.err(404), method, path);
    }
    let log = api.emulator.requests();
    let seen: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|l| (l.method.as_str(), l.path.as_str(), l.status))
        .collect();
    let expected: Vec<(&str, &str, u16)> = cases.iter().map(|(m, p)| (*m, *p, 404)).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn an_unknown_v1_path_checks_the_key_first_and_obeys_faults() {
    let api = start().await;
    let url = format!("{}/v1/nothing_here", api.base);
    let no_key = api.raw(api.http.get(&url)).await;
    assert_eq!(
        no_key.header("www-authenticate"),
        Some("Basic realm=\"Stripe\"")
    );
    no_key.err(401);

    api.emulator
        .inject_fault(Fault {
            path: "/v1/nothing_here".into(),
            method: None,
            times: 1,
            status: Some(500),
            latency_ms: None,
        })
        .unwrap();
    let faulted = api.get("/v1/nothing_here", &[]).await.err(500);
    assert_eq!(faulted["type"], "api_error");
    let after = api.get("/v1/nothing_here", &[]).await.err(404);
    assert_unrecognized(&after, "GET", "/v1/nothing_here");
    let statuses: Vec<u16> = api.emulator.requests().iter().map(|l| l.status).collect();
    assert_eq!(statuses, [401, 500, 404]);
}

#[tokio::test]
async fn paths_match_exactly() {
    let api = start().await;
    // An empty id names nothing: not the list (a client that lost its id must not list).
    for path in ["/v1/customers/", "/v1//customers", "/v1/customers/cus_x/"] {
        let err = api.get(path, &[]).await.err(404);
        assert_unrecognized(&err, "GET", path);
    }
    // Static segments win over ids; ids are percent-decoded.
    let search = api.get(
        "/v1/customers/search",
        &[("query", "email:'x@example.test'")],
    );
    assert_eq!(search.await.ok()["object"], "search_result");
    let customer = api
        .seeded_customer("route@example.test", serde_json::json!({}))
        .await;
    let id = customer["customer"]["id"].as_str().unwrap();
    let encoded = id.replace('_', "%5F");
    assert_eq!(
        api.get(&format!("/v1/customers/{encoded}"), &[]).await.ok()["id"],
        id
    );
}

#[tokio::test]
async fn outside_v1_unknown_routes_and_methods_are_stripes_404_without_a_key() {
    let api = start().await;
    let cases = [
        (reqwest::Method::GET, "/nothing"),
        (reqwest::Method::GET, "/_emulator/reset"),
        (reqwest::Method::DELETE, "/_emulator/clock"),
        (reqwest::Method::GET, "/_emulator/nothing"),
    ];
    for (method, path) in cases {
        let r = api
            .raw(
                api.http
                    .request(method.clone(), format!("{}{path}", api.base)),
            )
            .await;
        assert_unrecognized(&r.err(404), method.as_str(), path);
    }
    // Only `/v1` requests are logged.
    assert!(api.emulator.requests().is_empty());
    // And the control routes still answer their own methods.
    let reset = api
        .raw(api.http.post(format!("{}/_emulator/reset", api.base)))
        .await;
    assert_eq!(reset.ok()["reset"], true);
}
