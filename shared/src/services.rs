//! The clients a function builds once at cold start and borrows into every invocation.

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError};
use crate::secrets::SecretsProvider;
use crate::store::Table;
use crate::stripe::{ApiKey, StripeClient};
use crate::sync::{ProductNames, SyncContext};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
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
}

/// The TLS configuration of every HTTPS call reqwest makes (Stripe, the JWKS): Mozilla's root
/// certificates compiled in, so a cold start reads and parses no certificate files, which
/// reqwest's default verifier does for the whole system store.
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

impl Services {
    /// Reads the environment and builds every client; AWS endpoints and credentials come from
    /// the standard AWS variables (`AWS_ENDPOINT_URL` points them at moto locally).
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let aws = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::new(config, &aws)
    }

    pub fn new(config: Config, aws: &SdkConfig) -> Result<Self, StartupError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .tls_backend_preconfigured(tls_config()?)
            .build()
            .map_err(|e| StartupError::HttpClient(e.to_string()))?;
        let secrets = Arc::new(
            SecretsProvider::new(
                aws_sdk_secretsmanager::Client::new(aws),
                &config.secret_id,
                config.secrets_ttl,
            )
            .with_refresh_min_interval(config.secrets_refresh_min_interval),
        );
        Ok(Services {
            table: Table::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name),
            stripe: StripeClient::new(
                &config.stripe,
                http.clone(),
                ApiKey::Secrets(secrets.clone()),
            ),
            secrets,
            auth: Authenticator::new(config.auth.clone(), http),
            products: ProductNames::default(),
            config,
        })
    }

    pub fn sync_context(&self) -> SyncContext<'_> {
        SyncContext {
            table: &self.table,
            stripe: &self.stripe,
            products: &self.products,
            premium_grace: self.config.premium_grace,
        }
    }
}
