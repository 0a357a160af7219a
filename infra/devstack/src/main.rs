//! devstack: the local stack's chores, in Rust so they share the shared crate's own table
//! schema and key handling.
//!
//!   devstack keys  --dir .portico                      dev signing key + JWKS (made once)
//!   devstack init  --dynamodb URL --secrets URL --table T --secret-id S
//!                  [--stripe-key K --webhook-secret W]  table (index, TTL) in DynamoDB Local,
//!                                                       secret in moto
//!   devstack token --dir .portico --sub SUB [--email E] [--admin] [--ttl SECONDS]
//!                  [--issuer I --audience A]           a JWT the local stack accepts
//!   devstack event --dir .portico --event events/F.json --sub SUB [--admin]
//!                  [--set K=V,K2=V2] [--customer cus_...]  the sample event, ready to invoke:
//!                  a fresh token, `${K}` filled in, and for webhook events a `customer.updated`
//!                  body for the customer, signed with the local test secret

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use shared::testing::keys::{self, SigningKey};

const DEV_KID: &str = "portico-dev-1";
pub const DEV_ISSUER: &str = "https://portico.local/";
pub const DEV_AUDIENCE: &str = "portico-local";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("usage: devstack keys|init|token [--flag value ...]");
        return ExitCode::from(2);
    };
    let flags = match parse_flags(rest) {
        Ok(flags) => flags,
        Err(e) => {
            eprintln!("devstack: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command.as_str() {
        "keys" => dev_key(&flags).map(|_| ()),
        "init" => init(&flags).await,
        "token" => token(&flags).map(|t| println!("{t}")),
        "event" => event(&flags),
        other => Err(format!("unknown command {other}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devstack {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs; a flag followed by another flag (or nothing) is a boolean.
fn parse_flags(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut flags = HashMap::new();
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        let name = arg
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {arg}"))?;
        let value = match iter.peek() {
            Some(next) if !next.starts_with("--") => iter.next().cloned().unwrap_or_default(),
            _ => "true".to_string(),
        };
        flags.insert(name.to_string(), value);
    }
    Ok(flags)
}

fn flag<'a>(flags: &'a HashMap<String, String>, name: &str) -> Result<&'a str, String> {
    flags
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("--{name} is required"))
}

/// The dev signing key, made on first use; the JWKS beside it is rewritten from it every time.
fn dev_key(flags: &HashMap<String, String>) -> Result<SigningKey, String> {
    let dir = PathBuf::from(flag(flags, "dir")?);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let key_path = dir.join("dev-signing-key.p8");
    let key = match std::fs::read(&key_path) {
        Ok(pkcs8) => SigningKey::es256_from_pkcs8(DEV_KID, &pkcs8)?,
        Err(_) => {
            let key = SigningKey::generate_es256(DEV_KID);
            let pkcs8 = key.es256_pkcs8().ok_or("could not export the new key")?;
            write_private(&key_path, &pkcs8)?;
            eprintln!("generated a dev signing key in {}", key_path.display());
            key
        }
    };
    keys::write_jwks(&dir.join("jwks.json"), &[&key]);
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("write {}: {e}", path.display()))
}

async fn init(flags: &HashMap<String, String>) -> Result<(), String> {
    let dynamodb = shared::testing::aws_config(flag(flags, "dynamodb")?).await;
    let aws = shared::testing::aws_config(flag(flags, "secrets")?).await;
    let table = flag(flags, "table")?;
    shared::store::create_table(&aws_sdk_dynamodb::Client::new(&dynamodb), table)
        .await
        .map_err(|e| e.to_string())?;
    let secret_id = flag(flags, "secret-id")?;
    let stripe_key = flags
        .get("stripe-key")
        .map_or(shared::testing::STRIPE_TEST_KEY, String::as_str);
    let webhook_secret = flags
        .get("webhook-secret")
        .map_or(shared::testing::WEBHOOK_TEST_SECRET, String::as_str);
    let created = aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name(secret_id)
        .secret_string(shared::testing::secret_json(stripe_key, &[webhook_secret]))
        .send()
        .await;
    match created {
        Ok(_) => {}
        // Already there from an earlier run against the same moto: keep it.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) => {}
        Err(e) => return Err(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()),
    }
    println!("table {table} and secret {secret_id} ready");
    Ok(())
}

fn token(flags: &HashMap<String, String>) -> Result<String, String> {
    let key = dev_key(flags)?;
    let sub = flag(flags, "sub")?;
    let issuer = flags.get("issuer").map_or(DEV_ISSUER, String::as_str);
    let audience = flags.get("audience").map_or(DEV_AUDIENCE, String::as_str);
    let ttl: i64 = flags
        .get("ttl")
        .map_or(Ok(3600), |t| t.parse())
        .map_err(|_| "--ttl: seconds")?;
    let mut claims = keys::claims(issuer, audience, sub);
    claims["exp"] = (keys::now() + ttl).into();
    if let Some(email) = flags.get("email").filter(|e| !e.is_empty()) {
        claims["email"] = email.as_str().into();
    }
    if flags
        .get("admin")
        .is_some_and(|a| matches!(a.as_str(), "1" | "true" | "yes"))
    {
        claims[shared::testing::ADMIN_CLAIM] = serde_json::json!(["admin"]);
    }
    Ok(key.sign(&claims))
}

fn event(flags: &HashMap<String, String>) -> Result<(), String> {
    let path = flag(flags, "event")?;
    let mut text = std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    let mut vars = vec![("TOKEN".to_string(), token(flags)?)];
    for pair in flags
        .get("set")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
    {
        if let Some((name, value)) = pair.split_once('=') {
            vars.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    for (name, value) in &vars {
        // Placeholders sit inside JSON strings: fill them with the value's JSON escaping.
        let escaped = serde_json::to_string(value).map_err(|e| e.to_string())?;
        let escaped = &escaped[1..escaped.len() - 1];
        text = text.replace(&format!("${{{name}}}"), escaped);
    }
    let mut event: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    if event["body"] == "${BODY}" {
        // Stripe signs the exact bytes it sends; the signature is valid for 300 s.
        let customer = flag(flags, "customer")
            .map_err(|_| "webhook events need --customer cus_... (CUSTOMER=... for make invoke)")?;
        let now = keys::now();
        let body = serde_json::json!({
            "id": format!("evt_invoke_{now}"),
            "object": "event",
            "type": "customer.updated",
            "api_version": "2026-07-29.dahlia",
            "created": now,
            "livemode": false,
            "data": {"object": {"id": customer, "object": "customer"}},
        })
        .to_string();
        let signature = shared::stripe::signature::sign(
            body.as_bytes(),
            shared::testing::WEBHOOK_TEST_SECRET,
            now,
        );
        event["headers"]["stripe-signature"] = signature.into();
        event["body"] = body.into();
    }
    println!("{event}");
    Ok(())
}
