//! `stripe-emulator [--port 12111] [--state-file path]`: serves the emulator on 127.0.0.1.

use std::path::PathBuf;
use stripe_emulator::{Emulator, EmulatorConfig};

const USAGE: &str = "usage: stripe-emulator [--port PORT] [--state-file PATH]\n\
  --port        port on 127.0.0.1 (default 12111, or STRIPE_EMULATOR_PORT)\n\
  --state-file  JSON file: loaded at start, rewritten after every change";

fn parse_args() -> Result<EmulatorConfig, String> {
    let mut config = EmulatorConfig {
        port: 12111,
        ..Default::default()
    };
    if let Ok(p) = std::env::var("STRIPE_EMULATOR_PORT") {
        config.port = p
            .parse()
            .map_err(|_| format!("invalid STRIPE_EMULATOR_PORT: {p}"))?;
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--port" => {
                let v = value()?;
                config.port = v.parse().map_err(|_| format!("invalid port: {v}"))?;
            }
            "--state-file" => config.state_file = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(config)
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "stripe_emulator=info".into()),
        )
        .init();
    let config = match parse_args() {
        Ok(c) => c,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            eprintln!("{USAGE}");
            return if msg.is_empty() { 0.into() } else { 2.into() };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return 1.into();
        }
    };
    runtime.block_on(async {
        let state_file = config.state_file.clone();
        let emulator = match Emulator::start(config).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{e}");
                return 1.into();
            }
        };
        if let Some(p) = state_file {
            println!("state file: {}", p.display());
        }
        println!("Stripe emulator listening on {}", emulator.base_url());
        let _ = tokio::signal::ctrl_c().await;
        emulator.shutdown().await;
        0.into()
    })
}
