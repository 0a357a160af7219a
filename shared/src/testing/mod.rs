//! Test and local-development support, shared by every crate's tests (`test-support` feature).
//!
//! DynamoDB is Amazon's DynamoDB Local (one instance per `make test` run, or per test process
//! run on its own); Secrets Manager is a moto server per test process. Each [`TestStack`] gets
//! its own table, secret and signing keys in them, so tests run in parallel and never touch a
//! running `make dev` stack.

pub mod dynamodb;
pub mod fixtures;
pub mod keys;
pub mod moto;
pub mod observe;
pub mod operations;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::{json, Value};

use crate::aws::AwsEnv;
use crate::config::Config;
use crate::services::Services;
use keys::SigningKey;

/// The workspace root, for fixtures and scripts.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The directory of Stripe's reference files (its OpenAPI spec and sample objects) when it holds
/// every one of `files`: `$STRIPE_REFERENCE_DIR`, else `../shared/stripe` beside the workspace.
///
/// A test that needs them may skip on a developer's machine without them, but never silently
/// where they are promised: a set `STRIPE_REFERENCE_DIR` that lacks a file, or a missing
/// reference under CI (`CI` set to `true` or `1`), fails the test instead.
pub fn stripe_reference(files: &[&str]) -> Option<PathBuf> {
    let explicit = std::env::var_os("STRIPE_REFERENCE_DIR").map(PathBuf::from);
    let dir = explicit
        .clone()
        .unwrap_or_else(|| workspace_root().join("../shared/stripe"));
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        explicit.is_none() && !ci,
        "Stripe's reference files {missing:?} are missing from {} (STRIPE_REFERENCE_DIR {}, CI {})",
        dir.display(),
        if explicit.is_some() { "set" } else { "unset" },
        if ci { "set" } else { "unset" },
    );
    eprintln!(
        "NOTE: skipped: Stripe's reference files {missing:?} are not at {} (set STRIPE_REFERENCE_DIR)",
        dir.display()
    );
    None
}

/// An AWS SDK configuration aimed at `endpoint` with obviously fake credentials.
pub async fn aws_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "portico-test",
        ))
        .load()
        .await
}

/// The functions' AWS configuration aimed at local servers, with the same fake credentials.
pub fn aws_env(dynamodb: &str, secrets_manager: &str) -> AwsEnv {
    AwsEnv {
        region: Region::new("us-east-1"),
        credentials: aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "portico-test",
        ),
        dynamodb_endpoint: Some(dynamodb.to_string()),
        secrets_manager_endpoint: Some(secrets_manager.to_string()),
    }
}

/// A name no other stack in this or a concurrent test process uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

pub const ISSUER: &str = "https://issuer.portico.test/";
pub const AUDIENCE: &str = "portico-tests";
pub const ADMIN_CLAIM: &str = "roles";
/// Obviously fake values; the emulator accepts any `sk_test_` key.
pub const STRIPE_TEST_KEY: &str = "sk_test_portico_FAKE_key";
pub const WEBHOOK_TEST_SECRET: &str = "whsec_portico_FAKE_local_test_secret";

pub fn secret_json(stripe_key: &str, webhook_secrets: &[&str]) -> String {
    json!({"stripe_secret_key": stripe_key, "webhook_signing_secrets": webhook_secrets}).to_string()
}

/// A private slice of the local AWS stack: a table, a secret, a JWKS file and its signing key.
pub struct TestStack {
    /// Secrets Manager (moto).
    pub aws: SdkConfig,
    /// DynamoDB (DynamoDB Local).
    pub dynamodb_aws: SdkConfig,
    /// What the functions' own clients are given: DynamoDB at `dynamodb_endpoint`, Secrets
    /// Manager at moto.
    pub functions_aws: AwsEnv,
    pub table_name: String,
    pub secret_id: String,
    pub key: SigningKey,
    pub dir: PathBuf,
    pub jwks_path: PathBuf,
}

impl TestStack {
    pub async fn new() -> Self {
        Self::with_dynamodb(&dynamodb::endpoint()).await
    }

    /// A stack whose DynamoDB calls go to `endpoint` (a fault proxy in front of DynamoDB Local).
    pub async fn with_dynamodb(endpoint: &str) -> Self {
        let aws = aws_config(&moto::endpoint()).await;
        let dynamodb_aws = aws_config(endpoint).await;
        let table_name = unique_name("portico-test");
        let secret_id = unique_name("portico/test");
        crate::store::create_table(&aws_sdk_dynamodb::Client::new(&dynamodb_aws), &table_name)
            .await
            .expect("create test table in DynamoDB Local");
        aws_sdk_secretsmanager::Client::new(&aws)
            .create_secret()
            .name(&secret_id)
            .secret_string(secret_json(STRIPE_TEST_KEY, &[WEBHOOK_TEST_SECRET]))
            .send()
            .await
            .expect("create test secret in moto");
        let dir = std::env::temp_dir().join(unique_name("portico-test"));
        std::fs::create_dir_all(&dir).expect("create test dir");
        let key = SigningKey::generate_es256("test-key-1");
        let jwks_path = dir.join("jwks.json");
        keys::write_jwks(&jwks_path, &[&key]);
        TestStack {
            aws,
            dynamodb_aws,
            functions_aws: aws_env(endpoint, &moto::endpoint()),
            table_name,
            secret_id,
            key,
            dir,
            jwks_path,
        }
    }

    /// Every item in the test's table, as JSON, sorted by key: a whole-table view for tests that
    /// assert what a request wrote (or that it wrote nothing).
    pub async fn table_items(&self) -> Vec<Value> {
        let client = aws_sdk_dynamodb::Client::new(&self.dynamodb_aws);
        let mut items: Vec<Value> = Vec::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(&self.table_name)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan the test table");
            for item in page.items.unwrap_or_default() {
                items.push(serde_dynamo::from_item(item).expect("an item reads as JSON"));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let key = |v: &Value| format!("{}\u{0}{}", v["pk"], v["sk"]);
        items.sort_by_key(key);
        items
    }

    /// The environment a function would see, as (name, value) pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("TABLE_NAME", self.table_name.as_str()),
            ("SECRET_ID", self.secret_id.as_str()),
            ("JWT_ISSUER", ISSUER),
            ("JWT_AUDIENCE", AUDIENCE),
            ("JWKS_FILE", self.jwks_path.to_str().unwrap_or_default()),
            ("JWKS_REFRESH_MIN_SECONDS", "0"),
            ("SECRETS_REFRESH_MIN_SECONDS", "0"),
            // DynamoDB Local on a busy two-core machine can take longer than AWS's default
            // attempt budget; a spurious retry would test the machine, not Portico.
            ("DYNAMODB_TIMEOUT_MS", "5000"),
            ("ADMIN_CLAIM", ADMIN_CLAIM),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The configuration with `overrides` applied on top of [`TestStack::env`].
    pub fn config_with(&self, overrides: &[(&str, &str)]) -> Config {
        let mut env = self.env();
        for (k, v) in overrides {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        Config::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("test configuration is valid")
    }

    pub fn services(&self) -> Services {
        self.services_with(&[])
    }

    pub fn services_with(&self, overrides: &[(&str, &str)]) -> Services {
        Services::new(self.config_with(overrides), &self.functions_aws).expect("services build")
    }

    /// Claims for a user of this stack's issuer and audience, valid for an hour.
    pub fn claims(&self, sub: &str) -> Value {
        keys::claims(ISSUER, AUDIENCE, sub)
    }

    /// A valid bearer token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.key.sign(&self.claims(sub))
    }

    pub fn admin_token(&self, sub: &str) -> String {
        let mut claims = self.claims(sub);
        claims[ADMIN_CLAIM] = json!(["admin"]);
        self.key.sign(&claims)
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes the table look as before the analytics aggregates existed: none of them, and the given
/// portal sessions not marked counted (for backfill tests).
pub async fn forget_aggregates(table: &crate::store::Table, sessions: &[String]) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (client, name) = (table.client(), table.name());
    let items = client
        .query()
        .table_name(name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("ANALYTICS".into()))
        .send()
        .await
        .expect("list the aggregates");
    for item in items.items() {
        client
            .delete_item()
            .table_name(name)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .expect("delete an aggregate");
    }
    for reference in sessions {
        client
            .update_item()
            .table_name(name)
            .key("pk", AttributeValue::S(format!("PSESS#{reference}")))
            .key("sk", AttributeValue::S("META".into()))
            .update_expression("REMOVE counted")
            .send()
            .await
            .expect("unmark a session");
    }
}
