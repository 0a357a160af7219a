//! Amazon's DynamoDB Local for tests: the instance `make test` started for the whole run
//! (`PORTICO_DYNAMODB_ENDPOINT`), else one per test process, started on first use and gone
//! when the process ends. Each test stack makes its own table in it.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct Local {
    endpoint: String,
    // Kept open: the launcher stops the JVM when its stdin closes, i.e. when this process exits.
    _stdin: ChildStdin,
    _child: Child,
}

/// The DynamoDB endpoint every test stack of this process uses.
pub fn endpoint() -> String {
    if let Some(endpoint) = std::env::var("PORTICO_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    {
        return endpoint;
    }
    static LOCAL: OnceLock<Local> = OnceLock::new();
    LOCAL.get_or_init(start).endpoint.clone()
}

fn start() -> Local {
    // DynamoDB Local refuses port 0, so a free port is found first.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let script = super::workspace_root().join("infra/dynamodb-local.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(port.to_string())
        .arg("--until-stdin-closes")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    // The JVM takes about ten seconds on a busy machine.
    let started = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("DynamoDB Local exited ({status}); run `make test`, which installs it");
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "DynamoDB Local did not listen on port {port} within 90 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Local {
        endpoint: format!("http://127.0.0.1:{port}"),
        _stdin: stdin,
        _child: child,
    }
}
