//! The clients a function builds once at cold start and borrows into every invocation.

use std::sync::Arc;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::BehaviorVersion;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::auth::Authenticator;
use crate::aws::{AwsEnv, AwsEnvError, AwsHttpClient};
use crate::clock::Clock;
use crate::config::{AwsConfig, Config, ConfigError};
use crate::metrics::Metrics;
use crate::secrets::SecretsProvider;
use crate::store::Table;
use crate::stripe::{ApiKey, StripeClient};
use crate::sync::{ProductNames, SyncContext};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Aws(#[from] AwsEnvError),
    #[error("HTTP client could not be built: {0}")]
    HttpClient(String),
}

pub struct Services {
    pub config: Config,
    pub table: Table,
    pub secrets: Arc<SecretsProvider>,
    pub auth: Authenticator,
    pub stripe: StripeClient,
    pub products: ProductNames,
    pub clock: Clock,
    /// The function's name in logs and metrics (its crate name in Lambda).
    pub function: &'static str,
    pub metrics: Metrics,
}

/// The TLS configuration of every HTTPS call (AWS, Stripe, the JWKS): Mozilla's root
/// certificates compiled in, so a cold start reads and parses no certificate files, which
/// reqwest's default verifier and the AWS SDK's default client do for the whole system store.
fn tls_config() -> Result<rustls::ClientConfig, StartupError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartupError::HttpClient(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The function name of services not built by [`Services::from_env`].
pub const TEST_FUNCTION: &str = "test";

impl Services {
    /// Reads the environment and builds every client for `function` (its metrics go to
    /// stdout); AWS endpoints and credentials come from the standard AWS variables (locally
    /// `AWS_ENDPOINT_URL_DYNAMODB` points at DynamoDB Local and `AWS_ENDPOINT_URL_SECRETS_MANAGER`
    /// at moto).
    pub fn from_env(function: &'static str) -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let metrics = Metrics::stdout(&config.metrics_namespace, function);
        Self::build(config, &AwsEnv::from_env()?, function, metrics)
    }

    /// Builds every client, with metrics captured in memory for a test to read;
    /// [`Services::from_env`] sends them to stdout.
    pub fn new(config: Config, aws: &AwsEnv) -> Result<Self, StartupError> {
        let metrics = Metrics::capture(&config.metrics_namespace, TEST_FUNCTION);
        Self::build(config, aws, TEST_FUNCTION, metrics)
    }

    /// Nothing here touches the network or the disk: connections, the secrets and the signing
    /// keys are fetched on first use.
    fn build(
        config: Config,
        aws: &AwsEnv,
        function: &'static str,
        metrics: Metrics,
    ) -> Result<Self, StartupError> {
        let tls = tls_config()?;
        let aws_http = AwsHttpClient::shared(tls.clone());
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| StartupError::HttpClient(e.to_string()))?;
        let secrets = Arc::new(
            SecretsProvider::new(
                secrets_client(aws, &aws_http, config.aws),
                &config.secret_id,
                config.secrets_ttl,
            )
            .with_refresh_min_interval(config.secrets_refresh_min_interval),
        );
        Ok(Services {
            table: Table::new(
                dynamodb_client(aws, &aws_http, config.aws),
                &config.table_name,
            )
            .with_retention(config.retention),
            stripe: StripeClient::new(
                &config.stripe,
                http.clone(),
                ApiKey::Secrets(secrets.clone()),
            ),
            secrets,
            auth: Authenticator::new(config.auth.clone(), http),
            products: ProductNames::default(),
            clock: Clock::system(),
            function,
            metrics,
            config,
        })
    }

    pub fn sync_context(&self) -> SyncContext<'_> {
        SyncContext {
            table: &self.table,
            stripe: &self.stripe,
            products: &self.products,
            premium_grace: self.config.premium_grace,
            clock: &self.clock,
        }
    }
}

/// Each attempt ends at `attempt_timeout` (a hung connection costs one attempt, not the
/// invocation); throttling and 5xx get the SDK's standard retries with a short first back-off,
/// so `max_attempts` of them fit inside a function's timeout. The invocation's budget bounds
/// the whole call on top of that.
fn resilience(aws: AwsConfig) -> (TimeoutConfig, RetryConfig) {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(aws.attempt_timeout)
        .operation_attempt_timeout(aws.attempt_timeout)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(aws.max_attempts)
        .with_initial_backoff(std::time::Duration::from_millis(50))
        .with_max_backoff(std::time::Duration::from_secs(1));
    (timeouts, retries)
}

fn dynamodb_client(
    aws: &AwsEnv,
    http: &SharedHttpClient,
    limits: AwsConfig,
) -> aws_sdk_dynamodb::Client {
    let (timeouts, retries) = resilience(limits);
    let mut config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(aws.region.clone())
        .credentials_provider(aws.credentials.clone())
        .http_client(http.clone())
        .timeout_config(timeouts)
        .retry_config(retries)
        .interceptor(crate::aws::CountFailedAttempts);
    config.set_endpoint_url(aws.dynamodb_endpoint.clone());
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

fn secrets_client(
    aws: &AwsEnv,
    http: &SharedHttpClient,
    limits: AwsConfig,
) -> aws_sdk_secretsmanager::Client {
    let (timeouts, retries) = resilience(limits);
    let mut config = aws_sdk_secretsmanager::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(aws.region.clone())
        .credentials_provider(aws.credentials.clone())
        .http_client(http.clone())
        .timeout_config(timeouts)
        .retry_config(retries);
    config.set_endpoint_url(aws.secrets_manager_endpoint.clone());
    aws_sdk_secretsmanager::Client::from_conf(config.build())
}
