//! portal-config-cli: applies the configuration-as-code file to a Stripe account and the table.
//!
//!   portal-config-cli apply [--file portal-config.json]
//!
//! Reads `TABLE_NAME`, `SECRET_ID` (the Stripe key comes from Secrets Manager, as in the
//! functions), `STRIPE_API_BASE` and the other `STRIPE_*` settings, `DEFAULT_PORTAL_CONFIGURATION`
//! and the standard AWS variables. Prints what it did as JSON; a second run with the same file
//! reports every item `unchanged` and writes nothing.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use shared::config::StripeConfig;
use shared::portal_admin::as_code::{apply, PortalConfigFile};
use shared::portal_admin::AdminContext;
use shared::secrets::SecretsProvider;
use shared::store::Table;
use shared::stripe::{ApiKey, StripeClient};

const USAGE: &str = "usage: portal-config-cli apply [--file portal-config.json]";

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
