//! Return URLs: only to the SPA's own origins, never an open redirect.

use url::Url;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReturnUrlError {
    #[error("return_url is not an absolute URL")]
    NotAbsolute,
    #[error("return_url must use https (or http for a configured local origin)")]
    Scheme,
    #[error("return_url must not carry credentials")]
    Credentials,
    #[error("return_url's origin {0} is not an allowed return origin")]
    Origin(String),
}

/// `raw` if its origin is exactly one of `allowed` (`scheme://host[:port]`). Parsing with the
/// WHATWG rules first means `//evil.test`, `https:evil.test`, `https://app.test@evil.test`,
/// `javascript:` and look-alike hosts are judged by what a browser would actually open.
pub fn validate(raw: &str, allowed: &[String]) -> Result<Url, ReturnUrlError> {
    let url = Url::parse(raw.trim()).map_err(|_| ReturnUrlError::NotAbsolute)?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(ReturnUrlError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ReturnUrlError::Credentials);
    }
    let origin = url.origin().ascii_serialization();
    if !allowed.contains(&origin) {
        return Err(ReturnUrlError::Origin(origin));
    }
    Ok(url)
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

    fn allowed() -> Vec<String> {
        vec![
            "https://app.example.com".into(),
            "http://localhost:5173".into(),
        ]
    }

    #[test]
    fn same_origin_urls_pass() {
        assert!(validate("https://app.example.com/dashboard?tab=1", &allowed()).is_ok());
        assert!(validate("https://APP.example.com:443/x", &allowed()).is_ok());
        assert!(validate("http://localhost:5173/billing", &allowed()).is_ok());
    }

    #[test]
    fn open_redirect_attempts_fail() {
        let attempts = [
            ("//evil.test/x", ReturnUrlError::NotAbsolute),
            ("/relative", ReturnUrlError::NotAbsolute),
            ("javascript:alert(1)", ReturnUrlError::Scheme),
            ("data:text/html,hi", ReturnUrlError::Scheme),
            ("ftp://app.example.com/", ReturnUrlError::Scheme),
            (
                "https://app.example.com@evil.test/",
                ReturnUrlError::Credentials,
            ),
            (
                "https://user:pw@app.example.com/",
                ReturnUrlError::Credentials,
            ),
            (
                "https://app.example.com.evil.test/",
                ReturnUrlError::Origin("https://app.example.com.evil.test".into()),
            ),
            (
                "https://evilapp.example.com/",
                ReturnUrlError::Origin("https://evilapp.example.com".into()),
            ),
            (
                "http://app.example.com/",
                ReturnUrlError::Origin("http://app.example.com".into()),
            ),
            (
                "https://app.example.com:8443/",
                ReturnUrlError::Origin("https://app.example.com:8443".into()),
            ),
            (
                "https://xn--pp-7ka.example.com/",
                ReturnUrlError::Origin("https://xn--pp-7ka.example.com".into()),
            ),
        ];
        for (raw, expected) in attempts {
            assert_eq!(validate(raw, &allowed()).unwrap_err(), expected, "{raw}");
        }
        // A backslash is a slash to browsers, so this is evil.test's origin, not ours.
        assert!(validate("https:\\\\evil.test\\app.example.com", &allowed()).is_err());
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
