//! Every environment variable Portico reads, parsed once at cold start into one typed struct.
//!
//! A missing or malformed variable fails start-up with an error naming it, so a misconfigured
//! deployment never serves a request. The README's variable table mirrors [`VARIABLES`].

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::store::Retention;

/// Name, meaning and default of every variable, in the order the README lists them.
#[rustfmt::skip]
pub const VARIABLES: &[(&str, &str, Option<&str>)] = &[
    ("TABLE_NAME", "DynamoDB table holding every Portico item", Some("portico")),
    ("SECRET_ID", "Secrets Manager secret (name or ARN) with the Stripe keys", Some("portico/stripe")),
    ("SECRETS_TTL_SECONDS", "how long a container trusts its cached copy of the secret", Some("300")),
    ("SECRETS_REFRESH_MIN_SECONDS", "least time between two forced re-reads of the secret (bad webhook signature, Stripe 401)", Some("10")),
    ("JWT_ISSUER", "required `iss` of user tokens", None),
    ("JWT_AUDIENCE", "required `aud` of user tokens", None),
    ("JWKS_URL", "https URL of the identity provider's JWKS (one of JWKS_URL / JWKS_FILE)", None),
    ("JWKS_FILE", "path of a JWKS file, for local development", None),
    ("JWT_LEEWAY_SECONDS", "clock skew allowed on `exp` and `nbf`", Some("30")),
    ("JWKS_REFRESH_MIN_SECONDS", "least time between two JWKS refetches for unknown key ids", Some("60")),
    ("JWKS_MAX_AGE_SECONDS", "how long loaded signing keys are used before the JWKS is fetched again (a revoked key stops working within it)", Some("3600")),
    ("TRUST_EMAIL_WITHOUT_VERIFIED_CLAIM", "use a token's email when the identity provider sends no email_verified claim", Some("false")),
    ("ADMIN_CLAIM", "token claim that marks administrators (string or array of strings)", Some("roles")),
    ("ADMIN_CLAIM_VALUE", "value of ADMIN_CLAIM that makes a user an administrator", Some("admin")),
    ("MAX_BODY_BYTES", "largest accepted request body; larger bodies get 413", Some("65536")),
    ("STRIPE_API_BASE", "Stripe API base URL (the emulator's URL locally)", Some("https://api.stripe.com")),
    ("STRIPE_API_VERSION", "Stripe-Version sent with every Stripe request", Some("2026-07-29.dahlia")),
    ("STRIPE_MAX_RETRIES", "retries of a failed Stripe request (after the first attempt)", Some("2")),
    ("STRIPE_TIMEOUT_MS", "timeout of one Stripe request attempt", Some("3000")),
    ("DYNAMODB_TIMEOUT_MS", "timeout of one DynamoDB or Secrets Manager request attempt", Some("1000")),
    ("AWS_MAX_ATTEMPTS", "attempts of a throttled or failed DynamoDB / Secrets Manager request (the AWS SDK's own retries)", Some("3")),
    ("FRONTEND_URL", "the SPA's base URL; default return URLs are built on it", Some("http://localhost:5173")),
    ("ALLOWED_RETURN_ORIGINS", "comma-separated origins a return_url may point to (FRONTEND_URL's origin when unset)", None),
    ("DEFAULT_PORTAL_CONFIGURATION", "portal configuration (bpc_...) for workflows without their own", None),
    ("PREMIUM_GRACE_DAYS", "days a past_due subscription keeps premium after its renewal failed", Some("3")),
    ("ALLOWED_PRICES", "comma-separated Stripe price ids users may check out (none when unset)", None),
    ("ALLOWED_ONE_TIME_PRICES", "comma-separated one-time Stripe price ids sold as lifetime access (none when unset)", None),
    ("ALLOW_IMMEDIATE_CANCEL", "whether users may cancel immediately instead of at period end", Some("false")),
    ("WEBHOOK_TOLERANCE_SECONDS", "how old a webhook signature's timestamp may be", Some("300")),
    ("SYNC_REFRESH_MIN_SECONDS", "least time between two user-triggered Stripe re-syncs of one customer (?refresh=true, repeated portal returns)", Some("10")),
    ("SESSION_RETENTION_DAYS", "days DynamoDB keeps a portal session record after its creation (its TTL)", Some("90")),
    ("AUDIT_RETENTION_DAYS", "days DynamoDB keeps an audit entry after it was recorded (its TTL)", Some("400")),
    ("METRICS_NAMESPACE", "CloudWatch namespace of the metrics the functions write into their logs (EMF)", Some("Portico")),
];

/// Clock skew worth allowing is seconds; minutes more would keep expired tokens alive.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {name} is required but not set")]
    Missing { name: &'static str },
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where the identity provider's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(Url),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    pub leeway: Duration,
    pub jwks_refresh_min_interval: Duration,
    pub jwks_max_age: Duration,
    /// Whether a token's `email` counts when the token has no `email_verified` claim at all.
    pub trust_email_without_verified_claim: bool,
    pub admin_claim: String,
    pub admin_claim_value: String,
}

#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub api_base: Url,
    pub api_version: String,
    pub max_retries: u32,
    pub timeout: Duration,
}

/// How Portico's AWS calls (DynamoDB, Secrets Manager) time out and retry.
#[derive(Debug, Clone, Copy)]
pub struct AwsConfig {
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
}

#[derive(Debug, Clone)]
pub struct PortalConfig {
    pub frontend_url: Url,
    /// `scheme://host[:port]` strings, compared exactly with a return URL's origin.
    pub allowed_return_origins: Vec<String>,
    pub default_configuration: Option<String>,
    /// ALLOWED_PRICES: the subscription prices users may check out or switch a plan to.
    pub allowed_prices: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub secret_id: String,
    pub secrets_ttl: Duration,
    pub secrets_refresh_min_interval: Duration,
    pub aws: AwsConfig,
    pub auth: AuthConfig,
    pub max_body_bytes: usize,
    pub stripe: StripeConfig,
    pub portal: PortalConfig,
    pub premium_grace: Duration,
    pub webhook_tolerance_seconds: i64,
    /// One-time prices whose purchase grants lifetime premium.
    pub allowed_one_time_prices: Vec<String>,
    pub allow_immediate_cancel: bool,
    /// Least time between two Stripe re-syncs of one customer that users trigger.
    pub sync_refresh_min_interval: Duration,
    pub retention: Retention,
    pub metrics_namespace: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests never mutate the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars { lookup: &lookup };
        let jwks = match (vars.optional("JWKS_URL"), vars.optional("JWKS_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "JWKS_URL",
                    reason: "set either JWKS_URL or JWKS_FILE, not both".into(),
                })
            }
            (Some(url), None) => JwksSource::Url(parse_jwks_url(&url)?),
            (None, Some(path)) => JwksSource::File(PathBuf::from(path)),
            (None, None) => return Err(ConfigError::Missing { name: "JWKS_URL" }),
        };
        Ok(Config {
            table_name: vars.string("TABLE_NAME")?,
            secret_id: vars.string("SECRET_ID")?,
            secrets_ttl: Duration::from_secs(vars.number("SECRETS_TTL_SECONDS")?),
            secrets_refresh_min_interval: Duration::from_secs(
                vars.number("SECRETS_REFRESH_MIN_SECONDS")?,
            ),
            aws: AwsConfig {
                attempt_timeout: Duration::from_millis(vars.number("DYNAMODB_TIMEOUT_MS")?),
                max_attempts: match vars.number("AWS_MAX_ATTEMPTS")? {
                    0 => {
                        return Err(ConfigError::Invalid {
                            name: "AWS_MAX_ATTEMPTS",
                            reason: "at least one attempt is needed".into(),
                        })
                    }
                    n => n,
                },
            },
            auth: AuthConfig {
                issuer: vars.string("JWT_ISSUER")?,
                audience: vars.string("JWT_AUDIENCE")?,
                jwks,
                leeway: Duration::from_secs(
                    vars.at_most("JWT_LEEWAY_SECONDS", MAX_LEEWAY_SECONDS)?,
                ),
                jwks_refresh_min_interval: Duration::from_secs(
                    vars.number("JWKS_REFRESH_MIN_SECONDS")?,
                ),
                jwks_max_age: Duration::from_secs(vars.number("JWKS_MAX_AGE_SECONDS")?),
                trust_email_without_verified_claim: vars
                    .boolean("TRUST_EMAIL_WITHOUT_VERIFIED_CLAIM")?,
                admin_claim: vars.string("ADMIN_CLAIM")?,
                admin_claim_value: vars.string("ADMIN_CLAIM_VALUE")?,
            },
            max_body_bytes: vars.number("MAX_BODY_BYTES")?,
            stripe: stripe_config(&vars)?,
            portal: portal_config(&vars)?,
            webhook_tolerance_seconds: match vars.number("WEBHOOK_TOLERANCE_SECONDS")? {
                // Not a lenient setting but none: every replayed webhook would be accepted.
                t if t <= 0 => {
                    return Err(ConfigError::Invalid {
                        name: "WEBHOOK_TOLERANCE_SECONDS",
                        reason: "must be more than 0; 0 or less would switch off the replay check"
                            .into(),
                    })
                }
                t => t,
            },
            allowed_one_time_prices: one_time_prices(&vars)?,
            allow_immediate_cancel: vars.boolean("ALLOW_IMMEDIATE_CANCEL")?,
            premium_grace: Duration::from_secs(vars.number::<u64>("PREMIUM_GRACE_DAYS")? * 86_400),
            sync_refresh_min_interval: Duration::from_secs(
                vars.number("SYNC_REFRESH_MIN_SECONDS")?,
            ),
            retention: Retention {
                portal_sessions: vars.days("SESSION_RETENTION_DAYS")?,
                audit: vars.days("AUDIT_RETENTION_DAYS")?,
            },
            metrics_namespace: vars.string("METRICS_NAMESPACE")?,
        })
    }
}

fn price_list(vars: &Vars<'_>, name: &str) -> Vec<String> {
    vars.optional(name)
        .map(|list| {
            list.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A price is sold either as a subscription or once, never both: the checkout mode follows
/// from the list the price is in.
fn one_time_prices(vars: &Vars<'_>) -> Result<Vec<String>, ConfigError> {
    let recurring = price_list(vars, "ALLOWED_PRICES");
    let once = price_list(vars, "ALLOWED_ONE_TIME_PRICES");
    if let Some(both) = once.iter().find(|p| recurring.contains(p)) {
        return Err(ConfigError::Invalid {
            name: "ALLOWED_ONE_TIME_PRICES",
            reason: format!("{both} is also in ALLOWED_PRICES; a price is recurring or one-time"),
        });
    }
    Ok(once)
}

impl StripeConfig {
    /// The Stripe settings alone (`STRIPE_*`), for tools that serve no users.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        stripe_config(&Vars { lookup: &lookup })
    }
}

fn stripe_config(vars: &Vars<'_>) -> Result<StripeConfig, ConfigError> {
    Ok(StripeConfig {
        api_base: parse_stripe_base(&vars.string("STRIPE_API_BASE")?)?,
        api_version: vars.string("STRIPE_API_VERSION")?,
        max_retries: vars.number("STRIPE_MAX_RETRIES")?,
        timeout: Duration::from_millis(vars.number("STRIPE_TIMEOUT_MS")?),
    })
}

struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// The variable's value, or its documented default; a variable with no default is required.
    fn string(&self, name: &'static str) -> Result<String, ConfigError> {
        if let Some(value) = self.optional(name) {
            return Ok(value.trim().to_string());
        }
        default_of(name)
            .map(str::to_string)
            .ok_or(ConfigError::Missing { name })
    }

    /// A whole number no larger than `max`: above it the setting defeats what it tunes.
    fn at_most(&self, name: &'static str, max: u64) -> Result<u64, ConfigError> {
        match self.number(name)? {
            n if n > max => Err(ConfigError::Invalid {
                name,
                reason: format!("must be at most {max}; more would accept tokens long expired"),
            }),
            n => Ok(n),
        }
    }

    /// A retention of at least one day: 0 would have DynamoDB delete items as they are written.
    fn days(&self, name: &'static str) -> Result<Duration, ConfigError> {
        match self.number::<u64>(name)? {
            0 => Err(ConfigError::Invalid {
                name,
                reason: "must be at least 1 day".into(),
            }),
            days => Ok(Duration::from_secs(days.saturating_mul(86_400))),
        }
    }

    fn boolean(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.string(name)?.as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name,
                reason: "expected true or false".into(),
            }),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<T, ConfigError> {
        self.string(name)?
            .parse()
            .map_err(|_| ConfigError::Invalid {
                name,
                reason: "expected a whole number".into(),
            })
    }
}

fn portal_config(vars: &Vars<'_>) -> Result<PortalConfig, ConfigError> {
    let frontend_url = Url::parse(&vars.string("FRONTEND_URL")?)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or(ConfigError::Invalid {
            name: "FRONTEND_URL",
            reason: "not an http(s) URL".into(),
        })?;
    let allowed_return_origins = match vars.optional("ALLOWED_RETURN_ORIGINS") {
        None => vec![frontend_url.origin().ascii_serialization()],
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                let url = Url::parse(o).ok().filter(|u| {
                    matches!(u.scheme(), "http" | "https") && u.path() == "/" && u.query().is_none()
                });
                url.map(|u| u.origin().ascii_serialization())
                    .ok_or_else(|| ConfigError::Invalid {
                        name: "ALLOWED_RETURN_ORIGINS",
                        reason: format!("{o} is not an origin like https://app.example.com"),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let default_configuration = vars.optional("DEFAULT_PORTAL_CONFIGURATION");
    if let Some(id) = &default_configuration {
        if !id.starts_with("bpc_") {
            return Err(ConfigError::Invalid {
                name: "DEFAULT_PORTAL_CONFIGURATION",
                reason: "must be a portal configuration id (bpc_…)".into(),
            });
        }
    }
    Ok(PortalConfig {
        frontend_url,
        allowed_return_origins,
        default_configuration,
        allowed_prices: price_list(vars, "ALLOWED_PRICES"),
    })
}

fn default_of(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .and_then(|(_, _, d)| *d)
}

fn parse_jwks_url(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: "JWKS_URL",
        reason: reason.into(),
    };
    let url = Url::parse(raw).map_err(|_| invalid("not a URL"))?;
    // Keys fetched over plain http could be swapped in transit; only loopback (tests) may skip TLS.
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(invalid("must be an https URL")),
    }
}

fn parse_stripe_base(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: "STRIPE_API_BASE",
        reason: reason.into(),
    };
    let url = Url::parse(raw).map_err(|_| invalid("not a URL"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(invalid(
            "must be https (plain http only on loopback, for the emulator)",
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("JWT_ISSUER", "https://id.example.test/"),
        ("JWT_AUDIENCE", "portico"),
        ("JWKS_FILE", "/tmp/jwks.json"),
    ];

    #[test]
    fn defaults_fill_everything_but_the_identity_provider() {
        let config = Config::from_lookup(lookup(MINIMAL)).unwrap();
        assert_eq!(config.table_name, "portico");
        assert_eq!(config.secrets_ttl, Duration::from_secs(300));
        assert_eq!(config.stripe.api_version, "2026-07-29.dahlia");
        assert_eq!(config.stripe.api_base.as_str(), "https://api.stripe.com/");
        assert_eq!(config.auth.jwks, JwksSource::File("/tmp/jwks.json".into()));
        assert_eq!(config.max_body_bytes, 65536);
        assert_eq!(
            config.portal.allowed_return_origins,
            vec!["http://localhost:5173"]
        );
        assert_eq!(config.premium_grace, Duration::from_secs(3 * 86_400));
        assert_eq!(config.retention, Retention::default());
        assert_eq!(config.retention.audit, Duration::from_secs(400 * 86_400));
    }

    #[test]
    fn retention_is_read_in_days_and_never_zero() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("SESSION_RETENTION_DAYS", "30"),
            ("AUDIT_RETENTION_DAYS", "730"),
        ]);
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(
            config.retention.portal_sessions,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(config.retention.audit, Duration::from_secs(730 * 86_400));
        let zero = [MINIMAL, &[("AUDIT_RETENTION_DAYS", "0")]].concat();
        assert!(matches!(
            Config::from_lookup(lookup(&zero)),
            Err(ConfigError::Invalid {
                name: "AUDIT_RETENTION_DAYS",
                ..
            })
        ));
    }

    #[test]
    fn return_origins_are_normalised_and_checked() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push((
            "ALLOWED_RETURN_ORIGINS",
            "https://app.example.com, https://APP2.example.com:443/",
        ));
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(
            config.portal.allowed_return_origins,
            vec!["https://app.example.com", "https://app2.example.com"]
        );
        pairs.push(("ALLOWED_RETURN_ORIGINS", "https://app.example.com/path"));
        pairs.remove(pairs.len() - 2);
        assert!(matches!(
            Config::from_lookup(lookup(&pairs)),
            Err(ConfigError::Invalid {
                name: "ALLOWED_RETURN_ORIGINS",
                ..
            })
        ));
    }

    #[test]
    fn a_missing_required_variable_is_named() {
        let err = Config::from_lookup(lookup(&MINIMAL[1..])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "JWT_ISSUER" });
        assert!(err.to_string().contains("JWT_ISSUER"));
        let err = Config::from_lookup(lookup(&MINIMAL[..2])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "JWKS_URL" });
    }

    #[test]
    fn a_malformed_variable_is_named() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("STRIPE_MAX_RETRIES", "three"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "STRIPE_MAX_RETRIES",
                ..
            }
        ));
        assert!(err.to_string().contains("STRIPE_MAX_RETRIES"));
    }

    #[test]
    fn jwks_url_must_be_https_except_on_loopback() {
        let with_url = |url: &'static str| {
            let pairs = [MINIMAL[0], MINIMAL[1], ("JWKS_URL", url)];
            Config::from_lookup(lookup(&pairs))
        };
        assert!(with_url("https://id.example.test/.well-known/jwks.json").is_ok());
        assert!(with_url("http://127.0.0.1:4000/jwks.json").is_ok());
        let err = with_url("http://id.example.test/jwks.json").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "JWKS_URL",
                ..
            }
        ));
    }

    #[test]
    fn settings_that_would_switch_a_protection_off_are_refused_by_name() {
        for (name, value) in [
            ("WEBHOOK_TOLERANCE_SECONDS", "0"),
            ("WEBHOOK_TOLERANCE_SECONDS", "-1"),
            ("JWT_LEEWAY_SECONDS", "301"),
            ("JWT_LEEWAY_SECONDS", "86400"),
        ] {
            let mut pairs = MINIMAL.to_vec();
            pairs.push((name, value));
            let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { name: n, .. } if *n == name),
                "{name}={value}: {err}"
            );
            assert!(err.to_string().contains(name));
        }
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("WEBHOOK_TOLERANCE_SECONDS", "1"),
            ("JWT_LEEWAY_SECONDS", "300"),
        ]);
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.webhook_tolerance_seconds, 1);
        assert_eq!(config.auth.leeway, Duration::from_secs(300));
    }

    #[test]
    fn both_jwks_sources_at_once_is_ambiguous() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("JWKS_URL", "https://id.example.test/jwks.json"));
        assert!(matches!(
            Config::from_lookup(lookup(&pairs)),
            Err(ConfigError::Invalid {
                name: "JWKS_URL",
                ..
            })
        ));
    }

    #[test]
    fn a_price_is_recurring_or_one_time_never_both() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("ALLOWED_PRICES", "price_a, price_b"));
        pairs.push(("ALLOWED_ONE_TIME_PRICES", "price_life"));
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.allowed_one_time_prices, vec!["price_life"]);
        pairs.push(("ALLOWED_ONE_TIME_PRICES", "price_life,price_b"));
        pairs.remove(pairs.len() - 2);
        assert!(matches!(
            Config::from_lookup(lookup(&pairs)),
            Err(ConfigError::Invalid {
                name: "ALLOWED_ONE_TIME_PRICES",
                ..
            })
        ));
    }

    #[test]
    fn stripe_base_rejects_plain_http_to_remote_hosts() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("STRIPE_API_BASE", "http://api.stripe.com"));
        assert!(matches!(
            Config::from_lookup(lookup(&pairs)),
            Err(ConfigError::Invalid {
                name: "STRIPE_API_BASE",
                ..
            })
        ));
    }
}

#[cfg(test)]
mod readme {
    /// The README's variable table is the user's reference; it must list every variable.
    #[test]
    fn readme_documents_every_variable_with_its_default() {
        let readme = include_str!("../../README.md");
        for (name, _, default) in super::VARIABLES {
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| `{name}` |")))
                .unwrap_or_else(|| panic!("README has no row for {name}"));
            if let Some(default) = default {
                assert!(
                    row.contains(&format!("`{default}`")),
                    "README row for {name} lacks its default {default}"
                );
            }
        }
    }
}
