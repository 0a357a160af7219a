//! Validated values admins write into portal configurations and workflow settings. Each parses
//! from a JSON string, so a bad value fails deserialisation and the 400 names its field.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::ids::string_id;

/// Text of at most `MAX` characters, without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value.chars().count() > MAX {
            Err(format!("must be at most {MAX} characters"))
        } else if value.chars().any(char::is_control) {
            Err("must not contain control characters".into())
        } else {
            Ok(Text(value))
        }
    }
}

impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(text: Text<MAX>) -> String {
        text.0
    }
}

impl<const MAX: usize> Text<MAX> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_id!(
    /// An absolute `https` URL (or `http` on a loopback host, for local development), without
    /// credentials: what Stripe and a browser will open.
    WebUrl,
    "URL",
    |value| {
        if value.len() > 2048 {
            return Err("is longer than 2048 characters");
        }
        // Stored and sent as written: what the parser would silently drop must not be there.
        if crate::portal::return_url::refuse_raw(value).is_err() {
            return Err("must not contain control characters or backslashes");
        }
        let url = Url::parse(value).map_err(|_| "must be absolute")?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err("must use https"),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials");
        }
        Ok(())
    }
);

string_id!(
    /// A CSS hex colour, `#rgb` or `#rrggbb`.
    HexColor,
    "colour",
    |value| match value.strip_prefix('#') {
        Some(hex) if matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(())
        }
        _ => Err("must look like #1e40af"),
    }
);

string_id!(
    /// A path inside the SPA (`/dashboard/billing`), never a way to another origin.
    ReturnPath,
    "return path",
    |value| {
        // Joined as sessions will join it onto FRONTEND_URL (which is checked again then): the
        // parser's result must stay on the base's host, with no `//` path (`/..//evil.test`).
        let joined = Url::parse("https://spa.invalid/").and_then(|base| base.join(value));
        let inside = value.starts_with('/')
            && value.len() <= 1024
            && crate::portal::return_url::refuse_raw(value).is_ok()
            && !value.chars().any(char::is_whitespace)
            && joined.is_ok_and(|u| u.host_str() == Some("spa.invalid") && !u.path().starts_with("//"));
        if inside {
            Ok(())
        } else {
            Err("must start with a single `/`, without spaces or backslashes")
        }
    }
);

/// A portal configuration's `business_profile`, as admins, the configuration file and workflow
/// branding set it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<Text<60>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_policy_url: Option<WebUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_url: Option<WebUrl>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_absolute_and_without_credentials() {
        assert!(WebUrl::parse("https://example.com/privacy").is_ok());
        assert!(WebUrl::parse("http://localhost:5173/x").is_ok());
        assert!(WebUrl::parse("http://example.com/x").is_err());
        assert!(WebUrl::parse("javascript:alert(1)").is_err());
        assert!(WebUrl::parse("/relative").is_err());
        assert!(WebUrl::parse("https://user:pw@example.com/").is_err());
        assert!(WebUrl::parse("https://example.com/\t/x").is_err());
        assert!(WebUrl::parse("https://example.com\\@evil.example/").is_err());
    }

    #[test]
    fn colours_paths_and_text_have_their_shapes() {
        assert!(HexColor::parse("#1e40af").is_ok());
        assert!(HexColor::parse("#FFF").is_ok());
        assert!(HexColor::parse("blue").is_err());
        assert!(HexColor::parse("#12345").is_err());
        assert!(ReturnPath::parse("/dashboard/billing?tab=1").is_ok());
        assert!(ReturnPath::parse("//evil.example").is_err());
        assert!(ReturnPath::parse("https://evil.example").is_err());
        assert!(ReturnPath::parse("/\\evil.example").is_err());
        assert!(ReturnPath::parse("/\t/evil.example").is_err());
        assert!(ReturnPath::parse("/..//evil.example").is_err());
        assert!(Text::<5>::try_from("héllo".to_string()).is_ok());
        assert!(Text::<5>::try_from("hello!".to_string()).is_err());
        assert!(Text::<5>::try_from("a\nb".to_string()).is_err());
    }
}
