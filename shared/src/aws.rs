//! How the functions reach AWS: a configuration read straight from the environment Lambda sets
//! (region, the execution role's credentials, local endpoints) and one HTTPS client, with
//! Mozilla's roots compiled in, shared by the DynamoDB and Secrets Manager clients.
//!
//! `aws_config::load` would resolve the region twice, read profile files and build a chain of
//! credential providers Lambda does not need, and the SDK's default HTTPS client would read and
//! parse the system certificate store once per service client; together most of a cold start.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::metrics::DynamoDbFailure;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AwsEnvError {
    #[error("{0} is not set (Lambda sets it for every function)")]
    Missing(&'static str),
}

/// Where and as whom the functions call AWS.
#[derive(Clone)]
pub struct AwsEnv {
    pub region: Region,
    pub credentials: Credentials,
    /// `AWS_ENDPOINT_URL_DYNAMODB`, else `AWS_ENDPOINT_URL`: DynamoDB Local in local runs.
    pub dynamodb_endpoint: Option<String>,
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else `AWS_ENDPOINT_URL`: moto in local runs.
    pub secrets_manager_endpoint: Option<String>,
}

impl std::fmt::Debug for AwsEnv {
    // Credentials' own Debug already redacts the secret; the region and endpoints are not secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEnv")
            .field("region", &self.region)
            .field("dynamodb_endpoint", &self.dynamodb_endpoint)
            .field("secrets_manager_endpoint", &self.secrets_manager_endpoint)
            .finish_non_exhaustive()
    }
}

impl AwsEnv {
    pub fn from_env() -> Result<Self, AwsEnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables Lambda sets: `AWS_REGION` (or `AWS_DEFAULT_REGION`), the execution
    /// role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, valid for
    /// the execution environment's lifetime, so they need no refresh.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AwsEnvError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| var(name).ok_or(AwsEnvError::Missing(name));
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or(AwsEnvError::Missing("AWS_REGION"))?;
        let credentials = Credentials::new(
            required("AWS_ACCESS_KEY_ID")?,
            required("AWS_SECRET_ACCESS_KEY")?,
            var("AWS_SESSION_TOKEN"),
            None,
            "lambda-environment",
        );
        let endpoint = |service: &str| var(service).or_else(|| var("AWS_ENDPOINT_URL"));
        Ok(AwsEnv {
            region: Region::new(region),
            credentials,
            dynamodb_endpoint: endpoint("AWS_ENDPOINT_URL_DYNAMODB"),
            secrets_manager_endpoint: endpoint("AWS_ENDPOINT_URL_SECRETS_MANAGER"),
        })
    }
}

type HyperClient = Client<hyper_rustls::HttpsConnector<TcpConnector>, SdkBody>;
/// Connectors by the connect timeout they were built for.
type Connectors = Arc<Mutex<Vec<(Option<Duration>, SharedHttpConnector)>>>;

/// The SDK clients' HTTP client: hyper with rustls, given a ready TLS configuration (the one
/// the Stripe client uses too). Connections are built on the first request, not at start.
#[derive(Debug, Clone)]
pub struct AwsHttpClient {
    tls: Arc<rustls::ClientConfig>,
    /// One connector per connect timeout the SDK asks for (in practice one, shared by both
    /// service clients, so they share a connection pool).
    connectors: Connectors,
}

impl AwsHttpClient {
    /// The client, in the shared form the SDK's configuration takes.
    pub fn shared(tls: rustls::ClientConfig) -> SharedHttpClient {
        SharedHttpClient::new(AwsHttpClient {
            tls: Arc::new(tls),
            connectors: Arc::default(),
        })
    }

    fn connector(&self, connect_timeout: Option<Duration>) -> SharedHttpConnector {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.tls).clone())
            // Local runs reach DynamoDB Local and moto over plain HTTP.
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            // Without a timer the pool never expires idle connections.
            .pool_timer(TokioTimer::new())
            .build(https);
        SharedHttpConnector::new(AwsConnector { client })
    }
}

impl HttpClient for AwsHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeout = settings.connect_timeout();
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, found)) = connectors.iter().find(|(t, _)| *t == timeout) {
            return found.clone();
        }
        let connector = self.connector(timeout);
        connectors.push((timeout, connector.clone()));
        connector
    }
}

#[derive(Debug)]
struct AwsConnector {
    client: HyperClient,
}

impl HttpConnector for AwsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        HttpConnectorFuture::new(async move {
            match sent.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// Sorts a failed attempt the way the SDK's retry strategy needs it: timeouts and I/O errors
/// (refused, reset or closed connections) are transient and retried; a malformed request is
/// the caller's; anything else is not retried.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let io = sources(&error).find_map(|e| e.downcast_ref::<std::io::Error>());
    let hyper = sources(&error).find_map(|e| e.downcast_ref::<hyper::Error>());
    if io.is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        || hyper.is_some_and(hyper::Error::is_timeout)
    {
        return ConnectorError::timeout(error.into());
    }
    if error.is_connect() || io.is_some() {
        return ConnectorError::io(error.into());
    }
    match hyper {
        Some(h) if h.is_closed() || h.is_canceled() => ConnectorError::io(error.into()),
        // The server closed the connection mid-answer (an idle pooled connection it dropped).
        Some(h) if h.is_incomplete_message() => {
            ConnectorError::other(error.into(), Some(ErrorKind::TransientError))
        }
        Some(h) if h.is_user() => ConnectorError::user(error.into()),
        _ => ConnectorError::other(error.into(), None),
    }
}

/// Counts each failed attempt of a DynamoDB request ([`crate::metrics::DynamoDbFailure`]) as it
/// ends, so throttling the SDK absorbed with its retries still shows on the dashboard.
#[derive(Debug)]
pub struct CountFailedAttempts;

impl Intercept for CountFailedAttempts {
    fn name(&self) -> &'static str {
        "CountFailedAttempts"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let failure = match context.response() {
            Some(response) => failed_attempt(response.status().as_u16(), response.body().bytes()),
            None => context
                .output_or_error()
                .is_some_and(|result| result.is_err())
                .then_some(DynamoDbFailure::NoAnswer),
        };
        if let Some(failure) = failure {
            crate::metrics::dynamodb_failed_attempt(failure);
        }
        Ok(())
    }
}

/// The failure a DynamoDB answer reports, if it is one the SDK retries. DynamoDB names the
/// error in the body's `__type` (`com.amazonaws.dynamodb.v20120810#ThrottlingException`).
fn failed_attempt(status: u16, body: Option<&[u8]>) -> Option<DynamoDbFailure> {
    const THROTTLES: [&[u8]; 3] = [
        b"ThrottlingException",
        b"ProvisionedThroughputExceededException",
        b"RequestLimitExceeded",
    ];
    match status {
        500..=599 => Some(DynamoDbFailure::Server),
        400 => {
            let body = body.unwrap_or_default();
            let throttled = THROTTLES
                .iter()
                .any(|name| body.windows(name.len()).any(|w| w == *name));
            throttled.then_some(DynamoDbFailure::Throttled)
        }
        _ => None,
    }
}

/// `error` and its sources, outermost first.
fn sources<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_counted_as_failed_only_for_what_the_sdk_retries() {
        let body = |t: &str| format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{t}"}}"#);
        for throttle in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
        ] {
            let answer = body(throttle);
            assert_eq!(
                failed_attempt(400, Some(answer.as_bytes())),
                Some(DynamoDbFailure::Throttled),
                "{throttle}"
            );
        }
        for (status, answer) in [(500, body("InternalServerError")), (503, String::new())] {
            assert_eq!(
                failed_attempt(status, Some(answer.as_bytes())),
                Some(DynamoDbFailure::Server)
            );
        }
        // The caller's own errors and a lost condition are answers, not failed attempts.
        for answer in [
            body("ConditionalCheckFailedException"),
            body("TransactionCanceledException"),
            body("ValidationException"),
        ] {
            assert_eq!(failed_attempt(400, Some(answer.as_bytes())), None);
        }
        assert_eq!(failed_attempt(400, None), None);
        assert_eq!(failed_attempt(200, Some(b"{}")), None);
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "session"),
    ];

    #[test]
    fn lambda_variables_give_region_and_session_credentials() {
        let aws = AwsEnv::from_lookup(env(LAMBDA)).unwrap();
        assert_eq!(aws.region.as_ref(), "eu-west-1");
        assert_eq!(aws.credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(aws.credentials.secret_access_key(), "secret");
        assert_eq!(aws.credentials.session_token(), Some("session"));
        assert_eq!(aws.dynamodb_endpoint, None);
        let debug = format!("{aws:?}");
        assert!(
            !debug.contains("\"secret\"") && !debug.contains("\"session\""),
            "{debug}"
        );
    }

    #[test]
    fn service_endpoints_win_over_the_global_one() {
        let mut vars = LAMBDA.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:1"));
        vars.push(("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2"));
        let aws = AwsEnv::from_lookup(env(&vars)).unwrap();
        assert_eq!(aws.dynamodb_endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(
            aws.secrets_manager_endpoint.as_deref(),
            Some("http://127.0.0.1:1")
        );
    }

    #[test]
    fn missing_region_or_credentials_are_named() {
        let without = |name: &str| {
            let vars: Vec<_> = LAMBDA.iter().copied().filter(|(k, _)| *k != name).collect();
            AwsEnv::from_lookup(env(&vars)).map(|_| ())
        };
        assert_eq!(
            without("AWS_REGION"),
            Ok(()),
            "AWS_DEFAULT_REGION is the fallback"
        );
        assert_eq!(
            without("AWS_SECRET_ACCESS_KEY"),
            Err(AwsEnvError::Missing("AWS_SECRET_ACCESS_KEY"))
        );
        assert_eq!(
            AwsEnv::from_lookup(env(&LAMBDA[2..])).map(|_| ()),
            Err(AwsEnvError::Missing("AWS_REGION"))
        );
    }
}
