//! Every URL Portico sends a browser to on a caller's or admin's word: portal `return_url`s,
//! checkout success and cancel paths, workflow return paths. One check for all of them, made on
//! the final URL, after joining, by the parser that builds it: whatever the raw text looked like,
//! the URL Stripe receives must be on an allowed origin.

use url::Url;

use crate::config::PortalConfig;

/// Longest accepted URL or path; far above any real return address.
const MAX_LEN: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field} {reason}")]
pub struct ReturnUrlError {
    /// The input that is to blame, as the caller named it.
    pub field: &'static str,
    pub reason: Refusal,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// URL parsers drop TAB, CR and LF, so `/\t/evil.test` would become `//evil.test`.
    #[error("must not contain control characters (tab, CR, LF, ...)")]
    ControlCharacter,
    /// Browsers read a backslash as a slash.
    #[error("must not contain backslashes")]
    Backslash,
    #[error("is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("must be a path on the app, starting with a single /")]
    NotAPath,
    #[error("is not an absolute URL")]
    NotAbsolute,
    #[error("must use https (or http for a configured local origin)")]
    Scheme,
    #[error("must not carry credentials")]
    Credentials,
    #[error("leads to {0}, which is not an allowed return origin")]
    Origin(String),
}

/// The characters no return address may hold, whatever a parser would make of them. Shared
/// with the shape check of admins' stored return paths.
pub fn refuse_raw(raw: &str) -> Result<(), Refusal> {
    if raw.len() > MAX_LEN {
        Err(Refusal::TooLong)
    } else if raw.chars().any(char::is_control) {
        Err(Refusal::ControlCharacter)
    } else if raw.contains('\\') {
        Err(Refusal::Backslash)
    } else {
        Ok(())
    }
}

/// A caller's absolute URL (the portal's `return_url`): its origin must be one of
/// `ALLOWED_RETURN_ORIGINS`.
pub fn absolute_url(
    portal: &PortalConfig,
    field: &'static str,
    raw: &str,
) -> Result<Url, ReturnUrlError> {
    let refuse = |reason| ReturnUrlError { field, reason };
    refuse_raw(raw).map_err(refuse)?;
    let url = Url::parse(raw).map_err(|_| refuse(Refusal::NotAbsolute))?;
    check_final(&url, &portal.allowed_return_origins).map_err(refuse)?;
    Ok(url)
}

/// A path on the SPA (checkout's `success_path` / `cancel_path`, a workflow's return path),
/// joined onto `FRONTEND_URL`: the joined URL must still be on `FRONTEND_URL`'s origin.
pub fn spa_path(
    portal: &PortalConfig,
    field: &'static str,
    raw: &str,
) -> Result<Url, ReturnUrlError> {
    let refuse = |reason| ReturnUrlError { field, reason };
    refuse_raw(raw).map_err(refuse)?;
    if !raw.starts_with('/') || raw.starts_with("//") {
        return Err(refuse(Refusal::NotAPath));
    }
    let url = portal
        .frontend_url
        .join(raw)
        .map_err(|_| refuse(Refusal::NotAPath))?;
    check_final(&url, &[portal.frontend_url.origin().ascii_serialization()]).map_err(refuse)?;
    Ok(url)
}

/// The checks on the URL as it will be sent.
fn check_final(url: &Url, allowed: &[String]) -> Result<(), Refusal> {
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Refusal::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    let origin = url.origin().ascii_serialization();
    if !allowed.contains(&origin) {
        return Err(Refusal::Origin(origin));
    }
    // `/..//evil.test` normalises to the path `//evil.test`: on our origin here, but the SPA
    // navigating to that path (the portal return's `redirect_url`) would leave it.
    if url.path().starts_with("//") {
        return Err(Refusal::NotAPath);
    }
    Ok(())
}

/// Adds Portico's session reference so the return call can be matched to the session.
pub fn with_session_ref(mut url: Url, reference: &str) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "session")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        query.append_pair("session", reference);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal(origins: &[&str]) -> PortalConfig {
        PortalConfig {
            frontend_url: Url::parse("https://app.example.com/").unwrap(),
            allowed_return_origins: origins.iter().map(|o| o.to_string()).collect(),
            default_configuration: None,
            allowed_prices: Vec::new(),
        }
    }

    fn allowed() -> PortalConfig {
        portal(&["https://app.example.com", "http://localhost:5173"])
    }

    fn refusal(result: Result<Url, ReturnUrlError>) -> Refusal {
        result.unwrap_err().reason
    }

    #[test]
    fn same_origin_urls_pass() {
        for ok in [
            "https://app.example.com/dashboard?tab=1",
            "https://APP.example.com:443/x",
            "http://localhost:5173/billing",
        ] {
            assert!(absolute_url(&allowed(), "return_url", ok).is_ok(), "{ok}");
        }
        let url = spa_path(&allowed(), "success_path", "/welcome?plan=pro#top").unwrap();
        assert_eq!(url.as_str(), "https://app.example.com/welcome?plan=pro#top");
    }

    #[test]
    fn open_redirect_attempts_fail() {
        let attempts = [
            ("//evil.test/x", Refusal::NotAbsolute),
            ("/relative", Refusal::NotAbsolute),
            ("javascript:alert(1)", Refusal::Scheme),
            ("data:text/html,hi", Refusal::Scheme),
            ("ftp://app.example.com/", Refusal::Scheme),
            ("https://app.example.com@evil.test/", Refusal::Credentials),
            ("https://user:pw@app.example.com/", Refusal::Credentials),
            (
                "https://app.example.com.evil.test/",
                Refusal::Origin("https://app.example.com.evil.test".into()),
            ),
            (
                "https://evilapp.example.com/",
                Refusal::Origin("https://evilapp.example.com".into()),
            ),
            (
                "http://app.example.com/",
                Refusal::Origin("http://app.example.com".into()),
            ),
            (
                "https://app.example.com:8443/",
                Refusal::Origin("https://app.example.com:8443".into()),
            ),
            (
                "https://xn--pp-7ka.example.com/",
                Refusal::Origin("https://xn--pp-7ka.example.com".into()),
            ),
            ("https:\\\\evil.test\\app.example.com", Refusal::Backslash),
            ("https://app.example.com/\t/x", Refusal::ControlCharacter),
            ("https://app.example.com//evil.test", Refusal::NotAPath),
            ("https://app.example.com/..//evil.test", Refusal::NotAPath),
        ];
        for (raw, expected) in attempts {
            let error = absolute_url(&allowed(), "return_url", raw).unwrap_err();
            assert_eq!(
                (error.field, error.reason),
                ("return_url", expected),
                "{raw}"
            );
        }
    }

    #[test]
    fn paths_cannot_leave_the_app_whatever_the_parser_drops() {
        let attempts = [
            ("/\t/evil.test", Refusal::ControlCharacter),
            ("/\n/evil.test", Refusal::ControlCharacter),
            ("/\r/evil.test", Refusal::ControlCharacter),
            ("/\u{85}/evil.test", Refusal::ControlCharacter),
            ("/\\evil.test", Refusal::Backslash),
            ("//evil.test", Refusal::NotAPath),
            ("https://evil.test/", Refusal::NotAPath),
            ("evil.test", Refusal::NotAPath),
            ("/..//evil.test", Refusal::NotAPath),
            ("/./..//evil.test/x", Refusal::NotAPath),
        ];
        for (raw, expected) in attempts {
            assert_eq!(
                refusal(spa_path(&allowed(), "success_path", raw)),
                expected,
                "{raw:?}"
            );
        }
        let long = format!("/{}", "a".repeat(MAX_LEN));
        assert_eq!(
            refusal(spa_path(&allowed(), "success_path", &long)),
            Refusal::TooLong
        );
        // Percent-encoded controls are plain text to the parser: they stay in the path.
        let url = spa_path(&allowed(), "success_path", "/%09/evil.test").unwrap();
        assert_eq!(
            url.origin().ascii_serialization(),
            "https://app.example.com"
        );
    }

    #[test]
    fn a_path_lands_on_the_frontend_origin_even_when_returns_may_go_elsewhere() {
        let other = portal(&["https://beta.example.com"]);
        assert!(spa_path(&other, "success_path", "/welcome").is_ok());
        assert!(absolute_url(&other, "return_url", "https://app.example.com/x").is_err());
    }

    #[test]
    fn the_session_ref_is_added_once() {
        let url = Url::parse("https://app.example.com/x?tab=1&session=forged").unwrap();
        let url = with_session_ref(url, "abc123");
        assert_eq!(
            url.as_str(),
            "https://app.example.com/x?tab=1&session=abc123"
        );
    }
}
