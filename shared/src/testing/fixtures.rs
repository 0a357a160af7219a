//! The sample events in `events/`, loaded as the requests a function receives. Handler tests
//! use these same files, so the samples cannot rot.

use lambda_http::Request;

/// `events/<name>.json` with `${TOKEN}` replaced by `token`.
pub fn event_text(name: &str, token: &str) -> String {
    let path = super::workspace_root()
        .join("events")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read event {}: {e}", path.display()));
    text.replace("${TOKEN}", token)
}

pub fn request(name: &str, token: &str) -> Request {
    lambda_http::request::from_str(&event_text(name, token))
        .unwrap_or_else(|e| panic!("event {name} is not an API Gateway v2 request: {e}"))
}
