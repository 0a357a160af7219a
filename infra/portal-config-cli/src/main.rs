//! portal-config-cli: applies the configuration-as-code file to a Stripe account and the table,
//! and counts the analytics of the days before the aggregates existed.
//!
//!   portal-config-cli apply [--file portal-config.json]
//!   portal-config-cli backfill-analytics [--from YYYY-MM-DD] [--to YYYY-MM-DD]
//!
//! `backfill-analytics` needs only `TABLE_NAME` and the AWS variables; it prints its report.
//!
//! Reads `TABLE_NAME`, `SECRET_ID` (the Stripe key comes from Secrets Manager, as in the
//! functions), `STRIPE_API_BASE` and the other `STRIPE_*` settings, `DEFAULT_PORTAL_CONFIGURATION`
//! and the standard AWS variables. Prints what it did as JSON; a second run with the same file
//! reports every item `unchanged` and writes nothing.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use shared::analytics::{backfill as backfill_analytics, Period};
use shared::config::StripeConfig;
use shared::portal_admin::as_code::{apply, PortalConfigFile};
use shared::portal_admin::AdminContext;
use shared::secrets::SecretsProvider;
use shared::store::Table;
use shared::stripe::{ApiKey, StripeClient};

const USAGE: &str = "usage: portal-config-cli apply [--file portal-config.json]\n       portal-config-cli backfill-analytics [--from YYYY-MM-DD] [--to YYYY-MM-DD]";

#[tokio::main]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portal-config-cli: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Vec<String>) -> Result<String, String> {
    if args.first().map(String::as_str) == Some("backfill-analytics") {
        return backfill(&args[1..]).await;
    }
    let file = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["apply"] => "portal-config.json".to_string(),
        ["apply", "--file", path] => path.to_string(),
        _ => return Err(USAGE.into()),
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("read {file}: {e}"))?;
    let spec = PortalConfigFile::parse(&text).map_err(|e| format!("{file}: {e}"))?;

    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let required = |name: &str| env(name).ok_or_else(|| format!("set {name}"));
    let stripe_config = StripeConfig::from_lookup(env).map_err(|e| e.to_string())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let secrets = SecretsProvider::new(
        aws_sdk_secretsmanager::Client::new(&aws),
        required("SECRET_ID")?,
        Duration::from_secs(300),
    );
    let stripe = StripeClient::new(
        &stripe_config,
        reqwest::Client::new(),
        ApiKey::Secrets(Arc::new(secrets)),
    );
    let table = Table::new(aws_sdk_dynamodb::Client::new(&aws), required("TABLE_NAME")?);
    let default_configuration = env("DEFAULT_PORTAL_CONFIGURATION");
    let ctx = AdminContext {
        table: &table,
        stripe: &stripe,
        clock: &shared::clock::Clock::system(),
        default_configuration: default_configuration.as_deref(),
    };
    let report = apply(ctx, &spec).await.map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
}

async fn backfill(args: &[String]) -> Result<String, String> {
    let (mut from, mut to) = (None, None);
    let mut rest = args.iter().map(String::as_str);
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or(USAGE)?;
        match flag {
            "--from" => from = Some(value),
            "--to" => to = Some(value),
            _ => return Err(USAGE.into()),
        }
    }
    let today = shared::clock::Clock::system().now().date();
    let period = Period::parse(from, to, today).map_err(|e| e.to_string())?;
    // Without --from: the longest period analytics answers for.
    let period = if from.is_some() {
        period
    } else {
        Period::longest(period.end)
    };
    let table_name = std::env::var("TABLE_NAME")
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or("set TABLE_NAME")?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&aws), table_name);
    let report = backfill_analytics(&table, period, today)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
}
