//! portico-ops: the operator's tools for an existing Stripe account (see README, "Adopting
//! Portico"). Each subcommand parses its arguments, builds the clients once and calls one
//! domain operation in `shared`; the report goes to stdout (human, or JSON with `--json`),
//! progress to stderr when it is a terminal.
//!
//!   portico-ops import [--metadata-key <key>] [--mapping <file>] [--created-since <time>]
//!   portico-ops replay (--since <time> [--type <event type>]... | --event evt_... | --failed)
//!   portico-ops reconcile [--stale-hours <hours>] [--batch <customers>]
//!   portico-ops erase --user <sub> --operator <name> [--stripe]
//!
//! Every subcommand takes `--rate <Stripe requests per second>` and `--json`. Reads `TABLE_NAME`,
//! `SECRET_ID` (the Stripe key comes from Secrets Manager, as in the functions),
//! `STRIPE_API_BASE` and the other `STRIPE_*` settings, `PREMIUM_GRACE_DAYS` and the standard
//! AWS variables; `PORTICO_OPS_LOG` sets the log level (stderr, `warn` by default).

mod args;
mod report;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use args::{Command, Common};
use shared::clock::Clock;
use shared::config::StripeConfig;
use shared::secrets::SecretsProvider;
use shared::store::Table;
use shared::stripe::{ApiKey, Pace, StripeClient};
use shared::sync::{ProductNames, SyncContext};

#[tokio::main]
async fn main() -> ExitCode {
    let filter = std::env::var("PORTICO_OPS_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    let command = match args::parse(std::env::args().skip(1).collect()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("portico-ops: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(command).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portico-ops: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The clients every subcommand needs, built once.
struct Tools {
    table: Table,
    stripe: StripeClient,
    products: ProductNames,
    premium_grace: Duration,
    clock: Clock,
}

impl Tools {
    async fn from_env(common: &Common) -> Result<Self, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let required = |name: &str| env(name).ok_or_else(|| format!("set {name}"));
        let stripe_config = StripeConfig::from_lookup(env).map_err(|e| e.to_string())?;
        let grace_days: u64 = env("PREMIUM_GRACE_DAYS")
            .unwrap_or_else(|| "3".into())
            .parse()
            .map_err(|_| "PREMIUM_GRACE_DAYS must be a whole number of days".to_string())?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let secrets = SecretsProvider::new(
            aws_sdk_secretsmanager::Client::new(&aws),
            required("SECRET_ID")?,
            Duration::from_secs(300),
        );
        let pace = Pace::per_second(common.rate).ok_or("--rate must be a positive number")?;
        let stripe = StripeClient::new(
            &stripe_config,
            reqwest::Client::new(),
            ApiKey::Secrets(Arc::new(secrets)),
        )
        .with_pace(pace);
        Ok(Tools {
            table: Table::new(aws_sdk_dynamodb::Client::new(&aws), required("TABLE_NAME")?),
            stripe,
            products: ProductNames::default(),
            premium_grace: Duration::from_secs(grace_days * 86_400),
            clock: Clock::system(),
        })
    }

    fn sync_context(&self) -> SyncContext<'_> {
        SyncContext {
            table: &self.table,
            stripe: &self.stripe,
            products: &self.products,
            premium_grace: self.premium_grace,
            clock: &self.clock,
        }
    }
}

/// `label done/total` on one self-overwriting line, when stderr is a terminal.
fn progress(label: &'static str) -> impl Fn(usize, usize) + Sync {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            let end = if done >= total { "\n" } else { "" };
            eprint!("\r{label} {done}/{total}{end}");
        }
    }
}

async fn run(command: Command) -> Result<String, String> {
    let common = command.common().clone();
    let tools = Tools::from_env(&common).await?;
    let ctx = tools.sync_context();
    match command {
        Command::Import { options, .. } => {
            let report = shared::adopt::import(ctx, &options, &progress("linked"))
                .await
                .map_err(|e| e.to_string())?;
            report::render(&report, common.json, report::import)
        }
        Command::Reconcile { options, .. } => {
            let report = shared::reconcile::reconcile(ctx, &options, &progress("re-synced"))
                .await
                .map_err(|e| e.to_string())?;
            report::render(&report, common.json, report::reconcile)
        }
        Command::Erase {
            user,
            options,
            operator,
            ..
        } => {
            let actor = shared::support::Actor::Operator(operator);
            let erasure = shared::support::erase(
                &tools.table,
                &tools.stripe,
                &tools.clock,
                &user,
                options,
                &actor,
            )
            .await
            .map_err(|e| e.to_string())?;
            report::render(&erasure, common.json, report::erase)
        }
        Command::Replay { selection, .. } => {
            let report = shared::webhook::replay::replay(ctx, &selection, &progress("replayed"))
                .await
                .map_err(|e| e.to_string())?;
            report::render(&report, common.json, report::replay)
        }
    }
}
