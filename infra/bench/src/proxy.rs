//! The counting layer around the AWS client: a byte-for-byte TCP proxy in front of moto that
//! reads each request's head on the way through and counts it by its `X-Amz-Target`
//! (`DynamoDB_20120810.GetItem`, `secretsmanager.GetSecretValue`). The functions point
//! `AWS_ENDPOINT_URL` at it, so they run unchanged; the SDK's own retries count as calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

pub struct CountingProxy {
    addr: SocketAddr,
    counts: Counts,
    /// Nanoseconds callers waited for moto (request sent to first answer byte).
    waited: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counts = Counts::default();
        let waited = Arc::new(AtomicU64::new(0));
        let (shared, shared_wait) = (counts.clone(), waited.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = shared.clone();
                let waited = shared_wait.clone();
                tokio::spawn(async move {
                    if let Err(e) = relay(client, upstream, counts, waited).await {
                        eprintln!("counting proxy: {e}");
                    }
                });
            }
        });
        Ok(CountingProxy {
            addr,
            counts,
            waited,
            task,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The calls counted since the last `take`, by operation, and a fresh count.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Time spent waiting for moto since the last call, in nanoseconds; starts afresh.
    pub fn take_waited_ns(&self) -> u64 {
        self.waited.swap(0, Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    counts: Counts,
    waited: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // HTTP/1.1 without pipelining: the first bytes after a request are its answer.
    let sent: Arc<Mutex<Option<Instant>>> = Arc::default();
    let sent_answers = sent.clone();
    let answers = tokio::spawn(async move {
        let mut chunk = [0u8; 16384];
        while let Ok(n) = from_server.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            if let Some(at) = sent_answers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                waited.fetch_add(at.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            if to_client.write_all(&chunk[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_client.shutdown().await;
    });
    let result = forward_requests(&mut from_client, &mut to_server, &counts, &sent).await;
    let _ = to_server.shutdown().await;
    let _ = answers.await;
    result
}

/// Copies HTTP/1.1 requests one by one, counting each. A request framed other than by
/// `Content-Length` (never sent by the AWS SDK here) is counted, then the rest is copied blind.
async fn forward_requests(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    counts: &Counts,
    sent: &Mutex<Option<Instant>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buffer, b"\r\n\r\n") {
                break i + 4;
            }
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return writer.write_all(&buffer).await;
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let operation = header(&head, "x-amz-target").unwrap_or_else(|| "unknown".into());
        *counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(operation)
            .or_default() += 1;
        let Some(length) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok())
        else {
            if header(&head, "transfer-encoding").is_some() {
                writer.write_all(&buffer).await?;
                tokio::io::copy(reader, writer).await?;
                return Ok(());
            }
            writer.write_all(&buffer[..head_end]).await?;
            buffer.drain(..head_end);
            continue;
        };
        let total = head_end + length;
        while buffer.len() < total {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return writer.write_all(&buffer).await;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        writer.write_all(&buffer[..total]).await?;
        *sent.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        buffer.drain(..total);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// `DynamoDB_20120810.GetItem` → (`dynamodb`, `GetItem`).
pub fn split_operation(target: &str) -> (String, String) {
    match target.split_once('.') {
        Some((service, op)) => {
            let service = service.split('_').next().unwrap_or(service);
            (service.to_ascii_lowercase(), op.to_string())
        }
        None => ("other".into(), target.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_each_request_on_a_kept_alive_connection() {
        // An upstream that answers every request with the same fixed response.
        let upstream = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = upstream.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                while let Some(i) = find(&seen, b"}") {
                    seen.drain(..=i);
                    socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .unwrap();
                }
            }
        });
        let proxy = CountingProxy::start(upstream_addr).await.unwrap();
        let mut socket = TcpStream::connect(proxy.addr).await.unwrap();
        for target in [
            "DynamoDB_20120810.GetItem",
            "DynamoDB_20120810.PutItem",
            "DynamoDB_20120810.GetItem",
        ] {
            let body = "{}";
            let request = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: {target}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(request.as_bytes()).await.unwrap();
            let mut answer = [0u8; 40];
            socket.read_exact(&mut answer).await.unwrap();
            assert!(answer.ends_with(b"ok"));
        }
        let counts = proxy.take();
        assert_eq!(counts["DynamoDB_20120810.GetItem"], 2);
        assert_eq!(counts["DynamoDB_20120810.PutItem"], 1);
        assert!(proxy.take().is_empty());
        assert!(proxy.take_waited_ns() > 0);
    }

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
    }
}
