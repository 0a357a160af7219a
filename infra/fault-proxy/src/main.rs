//! `fault-proxy --listen 127.0.0.1:<port> --upstream http://127.0.0.1:<port>`: the fault proxy
//! as a process, for the e2e and `make dev`; controlled over `/_faults` on the same port.

use std::net::SocketAddr;
use std::process::ExitCode;

use fault_proxy::FaultProxy;

const USAGE: &str = "usage: fault-proxy --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT";

fn parse(mut argv: impl Iterator<Item = String>) -> Result<(SocketAddr, String), String> {
    let (mut listen, mut upstream) = (None, None);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--listen" => {
                let addr: SocketAddr = value()?
                    .parse()
                    .map_err(|e| format!("--listen: {e}\n{USAGE}"))?;
                // The control endpoint has no authentication: loopback only.
                if !addr.ip().is_loopback() {
                    return Err(format!("--listen: {addr} is not a loopback address"));
                }
                listen = Some(addr);
            }
            "--upstream" => upstream = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    match (listen, upstream) {
        (Some(listen), Some(upstream)) => Ok((listen, upstream)),
        _ => Err(USAGE.into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (listen, upstream) = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let proxy = match FaultProxy::bind(listen, &upstream).await {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("fault-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("fault-proxy: {} -> {upstream}", proxy.endpoint());
    match tokio::signal::ctrl_c().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fault-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
