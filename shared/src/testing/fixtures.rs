//! The sample events in `events/`, loaded as the requests a function receives. Handler tests
//! use these same files, so the samples cannot rot. Placeholders like `${TOKEN}` or
//! `${SESSION}` are filled in per test.

use lambda_http::Request;

/// `events/<name>.json` with every `${KEY}` of `vars` replaced.
pub fn event_text(name: &str, vars: &[(&str, &str)]) -> String {
    let path = super::workspace_root()
        .join("events")
        .join(format!("{name}.json"));
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read event {}: {e}", path.display()));
    for (key, value) in vars {
        text = text.replace(&format!("${{{key}}}"), value);
    }
    text
}

pub fn request_with(name: &str, vars: &[(&str, &str)]) -> Request {
    lambda_http::request::from_str(&event_text(name, vars))
        .unwrap_or_else(|e| panic!("event {name} is not an API Gateway v2 request: {e}"))
}

pub fn request(name: &str, token: &str) -> Request {
    request_with(name, &[("TOKEN", token)])
}

/// The event with its JSON body replaced, for cases the files do not spell out.
pub fn request_with_body(name: &str, token: &str, body: &serde_json::Value) -> Request {
    let mut event: serde_json::Value =
        serde_json::from_str(&event_text(name, &[("TOKEN", token)])).expect("event is JSON");
    event["body"] = serde_json::Value::String(body.to_string());
    lambda_http::request::from_str(&event.to_string()).expect("event with body")
}
