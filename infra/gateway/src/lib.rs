//! `make dev`'s stand-in for API Gateway: one base URL with the template's routes, its CORS rules
//! and its JWT check, forwarding each request to its function under `cargo lambda watch`
//! (`<upstream>/<function><path>`). Only routes of the template are served, so the SPA, the
//! OpenAPI document and the fuzzer see the API as the deployed HTTP API serves it.

pub mod template;

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode,
};
use axum::Router;
use shared::auth::Authenticator;

pub use template::{Cors, Route};

/// API Gateway's own payload limit; the functions enforce their smaller one.
const MAX_BODY: usize = 10 * 1024 * 1024;

pub struct Gateway {
    pub routes: Vec<Route>,
    pub cors: Cors,
    /// Origins the SPA is served from (the template's `SpaOrigins`).
    pub origins: Vec<String>,
    /// `http://127.0.0.1:9000/lambda-url`
    pub upstream: String,
    pub auth: Authenticator,
    pub http: reqwest::Client,
}

pub fn app(gateway: Gateway) -> Router {
    let gateway = Arc::new(gateway);
    Router::new().fallback(move |request: Request<Body>| {
        let gateway = gateway.clone();
        async move { gateway.handle(request).await }
    })
}

/// API Gateway's answers of its own: `{"message": "..."}`.
fn message(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(
        serde_json::json!({ "message": text }).to_string(),
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl Gateway {
    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .filter(|o| self.origins.iter().any(|allowed| allowed == o))
            .map(str::to_string);
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let mut response = if preflight {
            self.preflight(request.headers(), origin.is_some())
        } else {
            self.forward(request).await
        };
        if let Some(origin) = origin {
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&origin) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
            headers.insert(header::VARY, HeaderValue::from_static("origin"));
        }
        response
    }

    /// Like API Gateway: 204, with the allowed methods and headers only for an allowed origin
    /// asking for an allowed method.
    fn preflight(&self, headers: &HeaderMap, origin_allowed: bool) -> Response<Body> {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let asked = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default();
        let method_allowed = self
            .cors
            .allow_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(asked));
        if origin_allowed && method_allowed {
            let h = response.headers_mut();
            let join = |v: &[String]| HeaderValue::from_str(&v.join(",")).ok();
            if let Some(v) = join(&self.cors.allow_methods) {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
            }
            if let Some(v) = join(&self.cors.allow_headers) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            h.insert(header::ACCESS_CONTROL_MAX_AGE, self.cors.max_age.into());
        }
        response
    }

    async fn forward(&self, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path().to_string();
        let Some(route) = self
            .routes
            .iter()
            .filter(|r| !r.function_url)
            .find(|r| r.method == request.method().as_str() && r.matches(&path))
        else {
            // An HTTP API answers an unknown route key, wrong method included, with 404.
            return message(StatusCode::NOT_FOUND, "Not Found");
        };
        // A Lambda event is JSON text: header values and text bodies that are not UTF-8 cannot be
        // carried to cargo lambda watch (it answers 500 before any function runs), so they get
        // API Gateway's own 400, before the token is even looked at.
        if request
            .headers()
            .values()
            .any(|v| std::str::from_utf8(v.as_bytes()).is_err())
        {
            return message(StatusCode::BAD_REQUEST, "Bad Request");
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if self.auth.authenticate(authorization).await.is_err() {
            let mut response = message(StatusCode::UNAUTHORIZED, "Unauthorized");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let mut url = format!("{}/{}{path}", self.upstream, route.function);
        if let Some(query) = request.uri().query() {
            url.push('?');
            url.push_str(query);
        }
        let (parts, body) = request.into_parts();
        let Ok(body) = to_bytes(body, MAX_BODY).await else {
            return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
        };
        if std::str::from_utf8(&body).is_err() && is_text(&parts.headers) {
            return message(StatusCode::BAD_REQUEST, "Bad Request");
        }
        let mut upstream = self.http.request(parts.method, url).body(body);
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) {
                upstream = upstream.header(name, value);
            }
        }
        match upstream.send().await {
            Ok(answer) => {
                let status = answer.status();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap_or_default();
                let mut response = Response::new(Body::from(bytes));
                *response.status_mut() = status;
                for (name, value) in &headers {
                    if !hop_by_hop(name) {
                        response.headers_mut().append(name, value.clone());
                    }
                }
                response
            }
            Err(error) => {
                tracing::warn!(%error, function = route.function, "function unreachable");
                message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
        }
    }
}

/// Bodies cargo lambda watch puts into the event as text rather than base64.
fn is_text(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    content_type.is_empty()
        || content_type.starts_with("text/")
        || content_type.contains("json")
        || content_type.contains("xml")
        || content_type.contains("x-www-form-urlencoded")
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
    )
}
