//! The proxy's mechanics over raw HTTP/1.1: forwarding on kept-alive connections, counting,
//! injected answers, hangs, drops, latency, and the control endpoint.

mod support;

use std::time::{Duration, Instant};

use fault_proxy::{Fault, FaultProxy, Rule};
use support::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn send(socket: &mut TcpStream, target: &str, body: &str) {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: dynamodb.local\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: {target}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
}

/// Reads one answer framed by `content-length`: (status, lower-cased head, body).
async fn read_answer(socket: &mut TcpStream) -> Option<(u16, String, String)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    while buffer.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
    Some((status, head, body))
}

#[tokio::test]
async fn one_kept_alive_connection_carries_forwarded_and_faulted_requests() {
    let (upstream, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    proxy.inject(Rule::new(Fault::Throttling).operation("PutItem").times(1));
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();

    send(&mut socket, "DynamoDB_20120810.GetItem", r#"{"Key":1}"#).await;
    let (status, head, body) = read_answer(&mut socket).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert!(
        head.contains("x-upstream: echo"),
        "upstream headers pass: {head}"
    );

    send(&mut socket, "DynamoDB_20120810.PutItem", r#"{"Item":2}"#).await;
    let (status, head, body) = read_answer(&mut socket).await.unwrap();
    assert_eq!(status, 400);
    assert!(head.contains("content-type: application/x-amz-json-1.0"));
    assert!(head.contains("x-amzn-requestid: "));
    assert!(body.contains("#ThrottlingException"), "{body}");

    // The rule is used up; the connection still serves, and upstream errors pass unchanged.
    send(&mut socket, "DynamoDB_20120810.PutItem", r#"{"Item":3}"#).await;
    assert_eq!(read_answer(&mut socket).await.unwrap().0, 200);
    send(&mut socket, "DynamoDB_20120810.Refuse", "{}").await;
    let (status, _, body) = read_answer(&mut socket).await.unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("ValidationException"));

    assert_eq!(
        upstream.seen.lock().unwrap()[..2],
        [
            (
                "DynamoDB_20120810.GetItem".to_string(),
                r#"{"Key":1}"#.to_string()
            ),
            (
                "DynamoDB_20120810.PutItem".to_string(),
                r#"{"Item":3}"#.to_string()
            ),
        ]
    );
    let counts = proxy.take_counts();
    assert_eq!(counts["DynamoDB_20120810.GetItem"], 1);
    assert_eq!(
        counts["DynamoDB_20120810.PutItem"], 2,
        "the faulted one counts too"
    );
    assert_eq!(counts["DynamoDB_20120810.Refuse"], 1);
    assert!(proxy.take_counts().is_empty());
    assert_eq!(proxy.injected()["throttling"], 1);
    assert!(proxy.take_waited_ns() > 0);
    assert_eq!(proxy.take_waited_ns(), 0);
}

#[tokio::test]
async fn a_dropped_connection_ends_without_an_answer() {
    let (upstream, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    proxy.inject(Rule::new(Fault::DropConnection).times(1));
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    send(&mut socket, "DynamoDB_20120810.GetItem", "{}").await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection is closed, not left open");
    assert!(
        rest.is_empty(),
        "no answer bytes: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(upstream.targets().is_empty());
    assert_eq!(proxy.injected()["drop_connection"], 1);
}

#[tokio::test]
async fn a_hang_answers_nothing_until_the_proxy_goes() {
    let (upstream, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    proxy.inject(Rule::new(Fault::Hang).operation("Query"));
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    send(&mut socket, "DynamoDB_20120810.Query", "{}").await;
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut byte)).await;
    assert!(waited.is_err(), "no answer while the proxy runs");
    assert!(upstream.targets().is_empty());
    assert_eq!(proxy.injected()["hang"], 1);

    drop(proxy);
    let closed = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "dropping the proxy closes the hung connection"
    );
}

#[tokio::test]
async fn latency_delays_then_forwards() {
    let (upstream, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    proxy.inject(Rule::new(Fault::Latency(Duration::from_millis(300))).times(1));
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    let started = Instant::now();
    send(&mut socket, "DynamoDB_20120810.GetItem", "{}").await;
    assert_eq!(read_answer(&mut socket).await.unwrap().0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(upstream.targets(), ["DynamoDB_20120810.GetItem"]);
    assert_eq!(proxy.injected()["latency"], 1);
    assert!(
        proxy.take_waited_ns() < 300_000_000,
        "the injected delay is not upstream time"
    );
}

#[tokio::test]
async fn a_missing_upstream_is_a_502() {
    // A port that was free a moment ago: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let proxy = FaultProxy::start(&url).await.unwrap();
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    send(&mut socket, "DynamoDB_20120810.GetItem", "{}").await;
    assert_eq!(read_answer(&mut socket).await.unwrap().0, 502);
}

#[tokio::test]
async fn the_control_endpoint_manages_rules_and_reports() {
    let (upstream, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    let http = reqwest::Client::new();
    let control = format!("{}/_faults", proxy.endpoint());

    let post = |body: &'static str| http.post(&control).body(body).send();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(
            post(r#"{"operation":"GetItem","key_contains":"CUS#cus_1","fault":"internal_server_error","times":1}"#)
                .await
                .unwrap()
        ),
        204
    );
    for bad in [
        "not json",
        r#"{"fault":"meltdown"}"#,
        r#"{"fault":"hang","times":0}"#,
        r#"{"fault":"hang","probability":2}"#,
        r#"{"fault":"hang","operations":"GetItem"}"#,
    ] {
        let answer = post(bad).await.unwrap();
        assert_eq!(answer.status().as_u16(), 400, "{bad}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}"
        );
    }

    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    send(
        &mut socket,
        "DynamoDB_20120810.GetItem",
        r#"{"pk":"CUS#cus_2"}"#,
    )
    .await;
    assert_eq!(
        read_answer(&mut socket).await.unwrap().0,
        200,
        "another key"
    );
    send(
        &mut socket,
        "DynamoDB_20120810.GetItem",
        r#"{"pk":"CUS#cus_1"}"#,
    )
    .await;
    let (status_code, _, body) = read_answer(&mut socket).await.unwrap();
    assert_eq!(status_code, 500);
    assert!(body.contains("#InternalServerError"));

    assert_eq!(
        status(
            http.post(&control)
                .body(r#"{"fault":"throttling"}"#)
                .send()
                .await
                .unwrap()
        ),
        204
    );
    let report: serde_json::Value = http
        .get(&control)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["counts"]["DynamoDB_20120810.GetItem"], 2);
    assert_eq!(report["injected"]["internal_server_error"], 1);
    assert_eq!(
        report["rules"],
        serde_json::json!([{"fault": "throttling"}])
    );

    assert_eq!(status(http.delete(&control).send().await.unwrap()), 204);
    assert!(proxy.rules().is_empty());
    assert_eq!(status(http.put(&control).send().await.unwrap()), 405);
    assert_eq!(
        status(http.post(format!("{control}/more")).send().await.unwrap()),
        404
    );
    assert_eq!(
        upstream.targets(),
        ["DynamoDB_20120810.GetItem"],
        "control requests never reach the upstream"
    );
}

#[tokio::test]
async fn a_dropped_proxy_stops_listening() {
    let (_, url) = Upstream::start().await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    let addr = proxy.addr();
    drop(proxy);
    tokio::task::yield_now().await;
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused);
}
