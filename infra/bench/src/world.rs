//! The state the sample events need, arranged once: DynamoDB Local (behind the fault proxy),
//! the Stripe emulator with the checked-in portal configuration, a signed-in admin user with a
//! stored, linked customer (card + subscription), an open portal session, and fresh Stripe
//! events for the webhook. Also what each function process is given: the real configuration's
//! variables.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use axum::body::Bytes;
use fault_proxy::FaultProxy;
use portico_testkit::{Harness, FRONTEND};
use serde_json::Value;
use shared::auth::User;
use shared::ids::{CustomerId, UserId};
use shared::store::UserStore;
use shared::stripe::signature::sign;
use shared::testing::keys::now;
use shared::testing::WEBHOOK_TEST_SECRET;
use stripe_emulator::NewCustomer;

/// The bench user: an administrator, so every route (admin ones included) accepts its token.
pub const USER: &str = "bench-user";
/// Team, so that checking out Pro is a real new checkout rather than `already_subscribed`.
const USER_PRICE: &str = "price_team_monthly";

/// One sample event of one function, as checked in.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub template: String,
}

pub struct World {
    pub h: Harness,
    pub proxy: FaultProxy,
    env: Vec<(String, String)>,
    token: String,
    subscription: String,
    session: String,
    /// The bench user's customer, for the support cases.
    customer: String,
    /// A portal configuration of its own, for the admin cases that change or deactivate one.
    configuration: String,
    /// The analytics period: the 30 days ending today, the default an admin sees first.
    period: (String, String),
    webhook_events: Mutex<VecDeque<String>>,
    keys: AtomicU64,
}

impl World {
    /// Arranges everything; `webhook_events` is how many fresh events to prepare.
    pub async fn arrange(webhook_events: usize) -> Result<World, String> {
        let h = Harness::new().await;
        let proxy = FaultProxy::start(&aws_upstream())
            .await
            .map_err(|e| format!("fault proxy: {e}"))?;

        let user_id = UserId::parse(USER).map_err(|e| format!("user id: {e}"))?;
        let email = format!("{USER}@example.test");
        let mut new = NewCustomer::new(email.clone());
        new.price = Some(USER_PRICE.into());
        new.metadata
            .push((shared::customer_link::USER_ID_METADATA.into(), USER.into()));
        let created = h
            .emulator
            .create_customer(new)
            .map_err(|e| format!("emulator customer: {e:?}"))?;
        let customer = CustomerId::parse(
            created["customer"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
        .map_err(|e| format!("customer id: {e}"))?;
        h.services
            .table
            .link_customer(
                &user_id,
                Some(&email),
                &customer,
                &h.services.clock.timestamp(),
            )
            .await
            .map_err(|e| format!("link customer: {e}"))?;
        let user = User {
            id: user_id,
            email: Some(email),
            is_admin: true,
        };
        // Synced once, as after the user's first return: the account answers from stored state.
        shared::account::get_account(
            h.services.sync_context(),
            &user,
            true,
            std::time::Duration::ZERO,
            "bench-setup",
        )
        .await
        .map_err(|e| format!("first sync: {e:?}"))?;
        let subscription = h.subscription_of(&customer).await;
        let session = shared::portal::create_session(
            &h.services.table,
            &h.services.stripe,
            &h.services.clock,
            &h.services.config.portal,
            &user,
            Default::default(),
        )
        .await
        .map_err(|e| format!("portal session: {e:?}"))?
        .id;

        let configuration = h
            .stripe
            .create_portal_configuration(&portico_testkit::default_configuration(), None)
            .await
            .map_err(|e| format!("portal configuration: {e}"))?
            .id;
        let today = time::OffsetDateTime::now_utc().date();
        let day = |d: time::Date| d.to_string();
        let period = (day(today - time::Duration::days(29)), day(today));

        let webhook_events = fresh_customer_events(&h, &customer, webhook_events).await;
        let token = h.stack.admin_token(USER);
        let env = function_env(&h, &proxy.endpoint());
        Ok(World {
            h,
            proxy,
            env,
            token,
            subscription,
            session,
            customer: customer.to_string(),
            configuration,
            period,
            webhook_events: Mutex::new(webhook_events),
            keys: AtomicU64::new(0),
        })
    }

    /// The variables a function process starts with (the runtime API's address is added per
    /// process).
    pub fn env(&self, function: &str) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), function.into()));
        env
    }

    /// The event with every placeholder filled, ready to hand to a runtime. A placeholder this
    /// bench does not know is an error naming it, so a new kind of case is reported, not guessed.
    pub fn payload(&self, case: &Case) -> Result<Bytes, String> {
        if case.name.starts_with("erase-") {
            // Its first run would leave every later case a world without the bench user.
            return Err("erases the bench user: not repeatable".into());
        }
        let mut vars: Vec<(&str, String)> = vec![
            ("TOKEN", self.token.clone()),
            ("SESSION", self.session.clone()),
            ("SUBSCRIPTION", self.subscription.clone()),
            ("CONFIGURATION", self.configuration.clone()),
            ("START", self.period.0.clone()),
            ("END", self.period.1.clone()),
            ("SUB", USER.into()),
            ("CUSTOMER", self.customer.clone()),
            // The first page of the support listing.
            ("LIMIT", "20".into()),
            ("CURSOR", String::new()),
            ("REASON", "bench: the same link again".into()),
            // A plan change from the bench user's Team plan.
            ("PRICE", "price_pro_yearly".into()),
        ];
        if case.template.contains("${IDEMPOTENCY_KEY}") {
            let n = self.keys.fetch_add(1, Ordering::Relaxed);
            vars.push((
                "IDEMPOTENCY_KEY",
                format!("bench-{}-{n}", std::process::id()),
            ));
        }
        if case.template.contains("${BODY}") {
            let body = self
                .webhook_events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .ok_or("the prepared webhook events ran out")?;
            return webhook_payload(&case.template, &body);
        }
        fill(&case.template, &vars)
    }

    /// Stripe calls logged by the emulator since the last call, as `METHOD /path` with ids
    /// replaced by `{id}`; the log starts afresh.
    pub fn take_stripe_calls(&self) -> Vec<String> {
        let calls = self.h.emulator.requests();
        self.h.emulator.clear_requests();
        calls
            .iter()
            .map(|r| format!("{} {}", r.method, generic_path(&r.path)))
            .collect()
    }
}

/// The webhook event template carrying `body`, signed now with the test secret.
pub fn webhook_payload(template: &str, body: &str) -> Result<Bytes, String> {
    let signature = sign(body.as_bytes(), WEBHOOK_TEST_SECRET, now());
    fill(
        template,
        &[("BODY", body.to_string()), ("SIGNATURE", signature)],
    )
}

fn fill(template: &str, vars: &[(&str, String)]) -> Result<Bytes, String> {
    let mut event: Value =
        serde_json::from_str(template).map_err(|e| format!("the event is not JSON: {e}"))?;
    replace_in(&mut event, vars);
    let text = event.to_string();
    if let Some(unknown) = leftover_placeholder(&text) {
        return Err(format!("unknown placeholder {unknown}"));
    }
    Ok(Bytes::from(text))
}

/// Replaces inside JSON strings, so a value (a whole event body) is escaped as JSON needs.
fn replace_in(value: &mut Value, vars: &[(&str, String)]) {
    match value {
        Value::String(s) => {
            for (key, replacement) in vars {
                let placeholder = format!("${{{key}}}");
                if s.contains(&placeholder) {
                    *s = s.replace(&placeholder, replacement);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace_in(v, vars)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_in(v, vars)),
        _ => {}
    }
}

fn leftover_placeholder(text: &str) -> Option<String> {
    let start = text.find("${")?;
    let end = text[start..].find('}')? + start;
    let name = &text[start + 2..end];
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .then(|| format!("${{{name}}}"))
}

/// `/v1/customers/cus_123/...` → `/v1/customers/{id}/...`.
fn generic_path(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|segment| {
            // Stripe ids are `prefix_` + random letters and digits; path words are lowercase.
            let is_id = segment.rsplit_once('_').is_some_and(|(_, tail)| {
                tail.chars()
                    .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            });
            if is_id {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `customer.updated` events for `customer`, made by updating its metadata `count` times.
async fn fresh_customer_events(
    h: &Harness,
    customer: &CustomerId,
    count: usize,
) -> VecDeque<String> {
    let before = h.emulator.events().len();
    for n in 0..count {
        h.stripe_api(
            "POST",
            &format!("/v1/customers/{customer}"),
            &[("metadata[bench_update]", &n.to_string())],
        )
        .await;
    }
    h.emulator
        .events()
        .into_iter()
        .skip(before)
        .map(|e| e.event)
        .filter(|e| e["type"] == "customer.updated")
        .map(|e| e.to_string())
        .collect()
}

/// Where the functions' DynamoDB calls go, behind the proxy: DynamoDB Local. Secrets Manager
/// (moto) is reached directly, so the counts and faults are DynamoDB's alone.
fn aws_upstream() -> String {
    shared::testing::dynamodb::endpoint()
}

/// The template's configuration for local use: AWS through the fault proxy, Stripe at the
/// emulator, keys from a JWKS file (the template's `JWKS_URL` must be https), Lambda's own
/// variables as the runtime sets them for a 256 MB function with JSON logs at INFO.
fn function_env(h: &Harness, aws_endpoint: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = h
        .stack
        .env()
        .into_iter()
        // A test setting; the bench keeps the deployed default.
        .filter(|(k, _)| k != "JWKS_REFRESH_MIN_SECONDS")
        .collect();
    let base = h.emulator.base_url();
    let moto = shared::testing::moto::endpoint();
    let more = [
        ("STRIPE_API_BASE", base.as_str()),
        ("FRONTEND_URL", FRONTEND),
        ("DEFAULT_PORTAL_CONFIGURATION", h.configuration.as_str()),
        ("ALLOWED_PRICES", "price_pro_monthly,price_pro_yearly"),
        ("ALLOW_IMMEDIATE_CANCEL", "false"),
        ("AWS_ENDPOINT_URL_DYNAMODB", aws_endpoint),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        // Lambda's execution-role credentials always carry a session token.
        ("AWS_SESSION_TOKEN", "test-session"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("TZ", ":UTC"),
    ];
    env.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Function names: the folders of `functions/` (each builds a binary of the same name).
pub fn discover_functions(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("functions"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The function's sample events, `events/<function>/*.json`, by name.
pub fn discover_cases(root: &Path, function: &str) -> Vec<Case> {
    let dir: PathBuf = root.join("events").join(function);
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter_map(|p| {
                    let name = p.file_stem()?.to_str()?.to_string();
                    let template = std::fs::read_to_string(&p).ok()?;
                    Some(Case { name, template })
                })
                .collect()
        })
        .unwrap_or_default();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_inside_json_strings() {
        let template = r#"{"headers": {"authorization": "Bearer ${TOKEN}"}, "body": "${BODY}"}"#;
        let filled = fill(
            template,
            &[("TOKEN", "t.k.n".into()), ("BODY", r#"{"a":"b"}"#.into())],
        )
        .unwrap();
        let event: Value = serde_json::from_slice(&filled).unwrap();
        assert_eq!(event["headers"]["authorization"], "Bearer t.k.n");
        assert_eq!(event["body"], r#"{"a":"b"}"#);
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let err = fill(r#"{"rawPath": "/x/${SOMETHING_NEW}"}"#, &[]).unwrap_err();
        assert_eq!(err, "unknown placeholder ${SOMETHING_NEW}");
    }

    #[test]
    fn stripe_paths_lose_their_ids() {
        assert_eq!(
            generic_path("/v1/customers/cus_1a2b/payment_methods?type=card"),
            "/v1/customers/{id}/payment_methods"
        );
        assert_eq!(
            generic_path("/v1/billing_portal/sessions"),
            "/v1/billing_portal/sessions"
        );
    }
}
