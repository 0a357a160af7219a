//! A stand-in upstream for the proxy's own tests: answers every AWS JSON request `{}` (or, for
//! the `Refuse` operation, a DynamoDB validation error) and records what reached it.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

#[derive(Clone, Default)]
pub struct Upstream {
    /// `(X-Amz-Target, body)` of every request that reached the upstream.
    pub seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Upstream {
    pub async fn start() -> (Upstream, String) {
        let upstream = Upstream::default();
        let seen = upstream.seen.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let refuse = target.ends_with(".Refuse");
                seen.lock()
                    .unwrap()
                    .push((target, String::from_utf8_lossy(&body).into_owned()));
                let content_type = [
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-upstream", "echo"),
                ];
                if refuse {
                    let body = r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"refused"}"#;
                    (StatusCode::BAD_REQUEST, content_type, body).into_response()
                } else {
                    (StatusCode::OK, content_type, "{}").into_response()
                }
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (upstream, format!("http://{addr}"))
    }

    pub fn targets(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}
