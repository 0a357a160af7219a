//! A small Lambda Runtime API on 127.0.0.1: the `2018-06-01` interface a custom runtime polls
//! (`next`, `response`, `error`, `init/error`), enough to run a release `bootstrap` as Lambda
//! would, one invocation at a time, and to see when its initialisation ended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

/// Where the function's initialisation stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Starting,
    /// The runtime asked for its first event: init is over.
    Ready(Instant),
    /// The runtime reported `init/error` with this body.
    InitFailed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Bytes),
    Error(Bytes),
}

#[derive(Debug)]
pub struct Invocation {
    pub outcome: Outcome,
    /// From handing the event over to receiving the runtime's answer.
    pub latency: Duration,
}

struct Pending {
    id: String,
    event: Bytes,
    reply: oneshot::Sender<(Outcome, Instant)>,
}

struct Inner {
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    inflight: Mutex<HashMap<String, oneshot::Sender<(Outcome, Instant)>>>,
    phase: watch::Sender<Phase>,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    inner: Arc<Inner>,
    sender: mpsc::Sender<Pending>,
    counter: AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

const PREFIX: &str = "/2018-06-01/runtime";
/// Lambda's deadline header is epoch milliseconds; the template's timeout is 10 s.
pub const DEADLINE: Duration = Duration::from_secs(10);

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (sender, receiver) = mpsc::channel(1);
        let inner = Arc::new(Inner {
            queue: tokio::sync::Mutex::new(receiver),
            inflight: Mutex::new(HashMap::new()),
            phase: watch::Sender::new(Phase::Starting),
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("runtime API stopped: {e}");
            }
        });
        Ok(RuntimeApi {
            addr,
            inner,
            sender,
            counter: AtomicU64::new(0),
            server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    pub fn phase(&self) -> Phase {
        self.inner.phase.borrow().clone()
    }

    /// Waits up to `limit` for the end of initialisation.
    pub async fn wait_for_init(&self, limit: Duration) -> Phase {
        let mut phase = self.inner.phase.subscribe();
        let _ = tokio::time::timeout(limit, phase.wait_for(|p| *p != Phase::Starting)).await;
        self.phase()
    }

    /// Hands `event` to the runtime's pending (or next) `next` call and waits for its answer.
    pub async fn invoke(&self, event: Bytes, limit: Duration) -> Result<Invocation, String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("bench-{n:08}");
        let (reply, answer) = oneshot::channel();
        let sent = Instant::now();
        self.sender
            .send(Pending { id, event, reply })
            .await
            .map_err(|_| "runtime API stopped".to_string())?;
        let (outcome, at) = tokio::time::timeout(limit, answer)
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
            .map_err(|_| "invocation dropped".to_string())?;
        Ok(Invocation {
            outcome,
            latency: at.saturating_duration_since(sent),
        })
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(inner): State<Arc<Inner>>) -> Response {
    let now = Instant::now();
    inner.phase.send_if_modified(|phase| {
        let first = *phase == Phase::Starting;
        if first {
            *phase = Phase::Ready(now);
        }
        first
    });
    let pending = inner.queue.lock().await.recv().await;
    let Some(Pending { id, event, reply }) = pending else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(DEADLINE)
        .as_millis();
    let headers = [
        ("lambda-runtime-aws-request-id", id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench".to_string(),
        ),
        (
            "lambda-runtime-trace-id",
            format!("Root=1-00000000-{id:0>24};Sampled=0"),
        ),
        ("content-type", "application/json".to_string()),
    ];
    inner
        .inflight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, reply);
    let mut response = event.into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

fn complete(inner: &Inner, id: &str, outcome: Outcome) -> StatusCode {
    let at = Instant::now();
    let waiting = inner
        .inflight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(id);
    match waiting {
        Some(reply) => {
            let _ = reply.send((outcome, at));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    complete(&inner, &id, Outcome::Response(body))
}

async fn error(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    complete(&inner, &id, Outcome::Error(body))
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    let reason = String::from_utf8_lossy(&body).into_owned();
    inner.phase.send_replace(Phase::InitFailed(reason));
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays the runtime's side of the protocol, as lambda_runtime does.
    async fn fake_runtime(base: String, answer: &'static str) {
        let client = reqwest::Client::new();
        let event = client
            .get(format!("{base}{PREFIX}/invocation/next"))
            .send()
            .await
            .unwrap();
        assert!(event.headers().contains_key("lambda-runtime-deadline-ms"));
        let id = event.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body = event.text().await.unwrap();
        assert_eq!(body, r#"{"ping":1}"#);
        let status = client
            .post(format!("{base}{PREFIX}/invocation/{id}/{answer}"))
            .body(r#"{"pong":1}"#)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202);
    }

    #[tokio::test]
    async fn first_next_ends_init_and_an_invocation_round_trips() {
        let api = RuntimeApi::start().await.unwrap();
        assert_eq!(api.phase(), Phase::Starting);
        let base = format!("http://{}", api.host_port());
        let runtime = tokio::spawn(fake_runtime(base.clone(), "response"));
        assert!(matches!(
            api.wait_for_init(Duration::from_secs(5)).await,
            Phase::Ready(_)
        ));
        let done = api
            .invoke(Bytes::from_static(br#"{"ping":1}"#), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            done.outcome,
            Outcome::Response(Bytes::from_static(br#"{"pong":1}"#))
        );
        runtime.await.unwrap();

        let runtime = tokio::spawn(fake_runtime(base.clone(), "error"));
        let done = api
            .invoke(Bytes::from_static(br#"{"ping":1}"#), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(done.outcome, Outcome::Error(_)));
        runtime.await.unwrap();

        // An answer for an invocation nobody waits for is refused.
        let stray = reqwest::Client::new()
            .post(format!("{base}{PREFIX}/invocation/nobody/response"))
            .send()
            .await
            .unwrap();
        assert_eq!(stray.status(), 400);
    }

    #[tokio::test]
    async fn init_error_is_reported() {
        let api = RuntimeApi::start().await.unwrap();
        reqwest::Client::new()
            .post(format!("http://{}{PREFIX}/init/error", api.host_port()))
            .body("bad config")
            .send()
            .await
            .unwrap();
        assert_eq!(
            api.wait_for_init(Duration::from_secs(5)).await,
            Phase::InitFailed("bad config".into())
        );
    }
}
