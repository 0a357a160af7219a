//! `stripe-emulator [--port 12111] [--state-file path] [--webhook-endpoint URL=SECRET]...`:
//! serves the emulator on 127.0.0.1.

use std::path::PathBuf;
use std::time::Duration;
use stripe_emulator::{Emulator, EmulatorConfig, WebhookEndpoint};

const USAGE: &str = "usage: stripe-emulator [--port PORT] [--state-file PATH] [--webhook-endpoint URL=SECRET[;events=a,b]]... [--webhook-retries MS,MS,..] [--webhook-timeout-ms MS]\n\
  --port              port on 127.0.0.1 (default 12111, or STRIPE_EMULATOR_PORT)\n\
  --state-file        JSON file: loaded at start, rewritten after every change\n\
  --webhook-endpoint  POST every event (signed with SECRET) to URL; repeatable; also\n\
                      STRIPE_EMULATOR_WEBHOOKS (one URL=SECRET[;events=a,b] per line)\n\
  --webhook-retries   retry delays in ms (default 1000,2000,5000; empty = no retries)\n\
  --webhook-timeout-ms  per-attempt timeout (default 10000)";

fn parse_ms_list(v: &str) -> Result<Vec<Duration>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("invalid milliseconds: {s}"))
        })
        .collect()
}

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
    if let Ok(list) = std::env::var("STRIPE_EMULATOR_WEBHOOKS") {
        config.webhooks = WebhookEndpoint::parse_list(&list)
            .map_err(|e| format!("STRIPE_EMULATOR_WEBHOOKS: {e}"))?;
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        // `--webhook-endpoint=URL=SECRET`: only the first `=` separates the flag.
        let (name, inline) = match arg.split_once('=').filter(|(n, _)| n.starts_with("--")) {
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
            "--webhook-endpoint" => config.webhooks.push(WebhookEndpoint::parse(&value()?)?),
            "--webhook-retries" => config.retry_schedule = parse_ms_list(&value()?)?,
            "--webhook-timeout-ms" => {
                let v = value()?;
                config.webhook_timeout =
                    Duration::from_millis(v.parse().map_err(|_| format!("invalid timeout: {v}"))?);
            }
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
        for w in emulator.webhook_endpoints() {
            println!("webhooks: {}", w.url);
        }
        println!("Stripe emulator listening on {}", emulator.base_url());
        let _ = tokio::signal::ctrl_c().await;
        emulator.shutdown().await;
        0.into()
    })
}
