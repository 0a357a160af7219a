//! One moto server per test process, on a free loopback port, gone when the process ends.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

struct Moto {
    endpoint: String,
    // Kept open: serve.py exits when its stdin closes, i.e. when this process exits.
    _stdin: ChildStdin,
    _child: Child,
}

/// The python that has moto: `PORTICO_PYTHON`, else the workspace's `.venv` (made by `make`).
pub fn python() -> PathBuf {
    std::env::var_os("PORTICO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::workspace_root().join(".venv/bin/python"))
}

/// The endpoint of this process's moto server, started on first use.
pub fn endpoint() -> String {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start).endpoint.clone()
}

fn start() -> Moto {
    let python = python();
    let script = super::workspace_root().join("infra/moto/serve.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg("--until-stdin-closes")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start moto with {}: {e}; run `make test`, which installs it",
                python.display()
            )
        });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read moto's port");
    let port: u16 = line
        .trim()
        .strip_prefix("port=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("moto did not report its port (got {line:?})"));
    let stdin = child.stdin.take().expect("piped stdin");
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _stdin: stdin,
        _child: child,
    }
}
