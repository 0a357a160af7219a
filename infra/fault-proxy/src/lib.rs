//! An HTTP/1.1 proxy in front of DynamoDB Local or moto that counts the AWS JSON 1.0 requests
//! going through (by `X-Amz-Target`) and injects the faults real AWS produces: transaction
//! conflicts, throttling, 500s, hangs, dropped connections, latency. Errors are answered in
//! DynamoDB's own shapes, so the real AWS SDK parses them into its typed errors.
//!
//! Controlled in-process ([`FaultProxy::inject`]) or, on the same listener, over HTTP:
//! `POST /_faults` with a [`Rule`] as JSON (204), `DELETE /_faults` (204, removes the rules),
//! `GET /_faults` (`{"counts": {...}, "injected": {...}, "rules": [...]}`). Nothing under
//! `/_faults` is forwarded.

mod aws_error;
mod rule;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use rule::{Fault, Rule};

/// The seed of the generator deciding which requests a `probability` rule fails.
const DEFAULT_SEED: u64 = 0x6661_756c_7473;
const CONTROL_PATH: &str = "/_faults";

/// A running proxy. Dropping it stops the server and closes its connections.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

struct State {
    upstream: String,
    client: reqwest::Client,
    rules: Mutex<rule::Rules>,
    counts: Mutex<BTreeMap<String, u64>>,
    injected: Mutex<BTreeMap<String, u64>>,
    /// Nanoseconds spent waiting for upstream answers (request sent to whole answer read).
    waited: AtomicU64,
    /// Answers made up so far, numbering their request ids.
    answers: AtomicU64,
}

impl FaultProxy {
    /// Starts on a free port of 127.0.0.1, forwarding to `upstream` (`http://127.0.0.1:8000`).
    pub async fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        FaultProxy::bind(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Starts on `listen`, forwarding to `upstream`.
    pub async fn bind(listen: SocketAddr, upstream: &str) -> std::io::Result<FaultProxy> {
        let upstream = parse_upstream(upstream)?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            client,
            rules: Mutex::new(rule::Rules::new(DEFAULT_SEED)),
            counts: Mutex::default(),
            injected: Mutex::default(),
            waited: AtomicU64::new(0),
            answers: AtomicU64::new(0),
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(FaultProxy { addr, state, task })
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds a rule after the existing ones; a rule that cannot apply (`times` 0, a probability
    /// outside 0..=1) is ignored (the control endpoint refuses it with 400).
    pub fn inject(&self, rule: Rule) {
        lock(&self.state.rules).push(rule);
    }

    /// Removes every rule; counts stay.
    pub fn clear(&self) {
        lock(&self.state.rules).clear();
    }

    /// Restarts the generator `probability` rules draw from, for a reproducible run.
    pub fn reseed(&self, seed: u64) {
        lock(&self.state.rules).reseed(seed);
    }

    /// The rules still active (a rule with `times` leaves when used up).
    pub fn rules(&self) -> Vec<Rule> {
        lock(&self.state.rules).list().to_vec()
    }

    /// Requests seen since the last call, by `X-Amz-Target` (`DynamoDB_20120810.GetItem`,
    /// `unknown` without one), faulted ones included; starts afresh.
    pub fn take_counts(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *lock(&self.state.counts))
    }

    /// Faults injected since the start, by [`Fault::name`].
    pub fn injected(&self) -> BTreeMap<String, u64> {
        lock(&self.state.injected).clone()
    }

    /// Nanoseconds spent waiting for upstream answers since the last call; starts afresh.
    pub fn take_waited_ns(&self) -> u64 {
        self.state.waited.swap(0, Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `DynamoDB_20120810.GetItem` → (`dynamodb`, `GetItem`); `secretsmanager.GetSecretValue` →
/// (`secretsmanager`, `GetSecretValue`).
pub fn split_operation(target: &str) -> (String, String) {
    match target.split_once('.') {
        Some((service, op)) => {
            let service = service.split('_').next().unwrap_or(service);
            (service.to_ascii_lowercase(), op.to_string())
        }
        None => ("other".into(), target.to_string()),
    }
}

fn parse_upstream(upstream: &str) -> std::io::Result<String> {
    let invalid = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("upstream {upstream:?}: {why}"),
        )
    };
    let url = reqwest::Url::parse(upstream).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("expected http://host:port"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(invalid("expected no path"));
    }
    Ok(upstream.trim_end_matches('/').to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent across a panic elsewhere: every update is a single step.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections until aborted; the connections live in a set owned by this task, so
/// aborting it closes them too (a hung request included).
async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            handle(state.clone(), request)
                        });
                        // Errors here are closed or dropped connections: nothing to report.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors, say: wait for connections to end rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

type Answer = Response<Full<Bytes>>;

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Answer, DropConnection> {
    let path = request.uri().path();
    if path == CONTROL_PATH || path.starts_with("/_faults/") {
        return Ok(control(&state, request).await);
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Err(DropConnection);
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string();
    *lock(&state.counts).entry(target.clone()).or_default() += 1;
    let operation = target.split_once('.').map_or(target.as_str(), |(_, op)| op);
    let text = String::from_utf8_lossy(&body);
    let fired = lock(&state.rules).fire(operation, &text);
    if let Some(rule) = fired {
        *lock(&state.injected)
            .entry(rule.fault.name().to_string())
            .or_default() += 1;
        match &rule.fault {
            Fault::Hang => return Ok(std::future::pending::<Answer>().await),
            Fault::DropConnection => return Err(DropConnection),
            Fault::AnswerLost => {
                forward(&state, parts, body).await;
                return Err(DropConnection);
            }
            Fault::Latency(delay) => tokio::time::sleep(*delay).await,
            fault => {
                if let Some(error) = aws_error::for_fault(
                    fault,
                    &target,
                    operation,
                    &text,
                    rule.key_contains.as_deref(),
                ) {
                    let n = state.answers.fetch_add(1, Ordering::Relaxed);
                    return Ok(aws_answer(error, n));
                }
            }
        }
    }
    Ok(forward(&state, parts, body).await)
}

fn aws_answer(error: aws_error::AwsError, n: u64) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(error.body.to_string())));
    *answer.status_mut() =
        StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    let id = aws_error::request_id(rule::SplitMix64(DEFAULT_SEED ^ n));
    if let Ok(id) = HeaderValue::from_str(&id) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    answer
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the length, which
/// each side sets for the body it sends.
fn strip_hop_headers(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

async fn forward(state: &State, parts: hyper::http::request::Parts, body: Bytes) -> Answer {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    strip_hop_headers(&mut headers);
    let sent = Instant::now();
    let result = async {
        let response = state
            .client
            .request(parts.method, format!("{}{path}", state.upstream))
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let mut headers = response.headers().clone();
        let body = response.bytes().await?;
        strip_hop_headers(&mut headers);
        Ok::<_, reqwest::Error>((status, headers, body))
    }
    .await;
    state.waited.fetch_add(
        u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    match result {
        Ok((status, headers, body)) => {
            let mut answer = Response::new(Full::new(body));
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            answer
        }
        Err(e) => plain(
            StatusCode::BAD_GATEWAY,
            format!("fault-proxy: upstream {}: {e}", state.upstream),
        ),
    }
}

fn plain(status: StatusCode, text: String) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(text)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    answer
}

fn json(status: StatusCode, value: serde_json::Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(value.to_string())));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer
}

fn no_content() -> Answer {
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = StatusCode::NO_CONTENT;
    answer
}

async fn control(state: &State, request: Request<Incoming>) -> Answer {
    let refuse = |status, message: &str| json(status, serde_json::json!({"error": message}));
    if request.uri().path() != CONTROL_PATH {
        return refuse(StatusCode::NOT_FOUND, "no such control endpoint");
    }
    match *request.method() {
        Method::GET => {
            let counts = lock(&state.counts).clone();
            let injected = lock(&state.injected).clone();
            let rules = lock(&state.rules).list().to_vec();
            json(
                StatusCode::OK,
                serde_json::json!({"counts": counts, "injected": injected, "rules": rules}),
            )
        }
        Method::DELETE => {
            lock(&state.rules).clear();
            no_content()
        }
        Method::POST => {
            let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
                return refuse(StatusCode::BAD_REQUEST, "the body could not be read");
            };
            match serde_json::from_slice::<Rule>(&body) {
                Err(e) => refuse(StatusCode::BAD_REQUEST, &format!("not a rule: {e}")),
                Ok(rule) => match rule.invalid() {
                    Some(why) => refuse(StatusCode::BAD_REQUEST, why),
                    None => {
                        lock(&state.rules).push(rule);
                        no_content()
                    }
                },
            }
        }
        _ => {
            let mut answer = refuse(StatusCode::METHOD_NOT_ALLOWED, "use GET, POST or DELETE");
            answer
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_split_by_service() {
        assert_eq!(
            split_operation("DynamoDB_20120810.TransactWriteItems"),
            ("dynamodb".into(), "TransactWriteItems".into())
        );
        assert_eq!(
            split_operation("secretsmanager.GetSecretValue"),
            ("secretsmanager".into(), "GetSecretValue".into())
        );
        assert_eq!(
            split_operation("unknown"),
            ("other".into(), "unknown".into())
        );
    }

    #[test]
    fn upstreams_are_base_urls() {
        assert_eq!(
            parse_upstream("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert!(parse_upstream("127.0.0.1:8000").is_err());
        assert!(parse_upstream("http://127.0.0.1:8000/path").is_err());
    }
}
