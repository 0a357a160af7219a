//! The shared HTTP edge: body limits, JSON errors that name the field, and the envelope.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request};
use serde::Deserialize;
use serde_json::Value;
use shared::http::{self, parse_json, ApiError, ErrorCode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Checkout {
    price: String,
    quantity: Option<u32>,
    options: Option<Options>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Options {
    immediately: bool,
}

fn post(body: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.portico.example/billing/checkout-sessions")
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .unwrap()
}

fn envelope(request: &Request, error: ApiError) -> (StatusCode, Value) {
    let response = http::finish(request, Err(error));
    (
        response.status(),
        serde_json::from_slice(response.body().as_ref()).unwrap(),
    )
}

#[test]
fn an_oversized_body_is_413() {
    let request = post(&format!(r#"{{"price": "{}"}}"#, "x".repeat(200)));
    let err = parse_json::<Checkout>(&request, 100).unwrap_err();
    let (status, body) = envelope(&request, err);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error_code"], "payload_too_large");
}

#[test]
fn malformed_json_is_400_saying_where() {
    let request = post(r#"{"price": "price_1",,}"#);
    let err = parse_json::<Checkout>(&request, 1000).unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::BAD_REQUEST, ErrorCode::MalformedJson)
    );
    assert!(err.message.contains("line 1 column"), "{}", err.message);
}

#[test]
fn a_wrong_field_is_400_naming_it() {
    let err = parse_json::<Checkout>(&post(r#"{"price": "p", "quantity": -1}"#), 1000).unwrap_err();
    assert_eq!(
        (err.code, err.field.as_deref()),
        (ErrorCode::InvalidField, Some("quantity"))
    );

    let err = parse_json::<Checkout>(
        &post(r#"{"price": "p", "options": {"immediately": "yes"}}"#),
        1000,
    )
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("options.immediately"));
    let (status, body) = envelope(&post(""), err);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "options.immediately");
    assert_eq!(body["success"], false);

    let err = parse_json::<Checkout>(&post(r#"{}"#), 1000).unwrap_err();
    assert!(
        err.message.contains("missing field `price`"),
        "{}",
        err.message
    );
    let err = parse_json::<Checkout>(&post(r#"{"price": "p", "colour": 1}"#), 1000).unwrap_err();
    assert!(
        err.message.contains("unknown field `colour`"),
        "{}",
        err.message
    );
}

#[test]
fn trailing_garbage_and_wrong_content_types_are_refused() {
    let err = parse_json::<Checkout>(&post(r#"{"price": "p"} {}"#), 1000).unwrap_err();
    assert_eq!(err.code, ErrorCode::MalformedJson);
    let mut request = post(r#"{"price": "p"}"#);
    request
        .headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    let err = parse_json::<Checkout>(&request, 1000).unwrap_err();
    assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[test]
fn an_empty_body_is_an_empty_object() {
    #[derive(Deserialize, Default)]
    struct AllOptional {
        workflow: Option<String>,
    }
    let parsed: AllOptional = parse_json(&post(""), 1000).unwrap();
    assert!(parsed.workflow.is_none());
}

#[test]
fn internal_errors_do_not_leak_details() {
    let (status, body) = envelope(
        &post(""),
        ApiError::internal("dynamo table portico-x missing column"),
    );
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "internal error");
    assert!(!body.to_string().contains("portico-x"));
}

#[test]
fn an_unavailable_dependency_or_spent_budget_says_when_to_retry() {
    let request = post("");
    let cases = [
        ApiError::unavailable(ErrorCode::StorageUnavailable, "throttled"),
        ApiError::out_of_time(),
    ];
    for error in cases {
        let code = error.code;
        let response = http::finish(&request, Err(error));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{code}");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1"),
            "{code}"
        );
    }
    let (status, body) = envelope(&request, ApiError::out_of_time());
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("upstream_timeout"))
    );
    // A refusal of the caller's own says nothing about retrying.
    let response = http::finish(&request, Err(ApiError::not_found("no such thing")));
    assert!(response.headers().get("retry-after").is_none());
}
