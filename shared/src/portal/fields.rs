//! Validated values admins write into portal configurations and workflow settings. Each parses
//! from a JSON string, so a bad value fails deserialisation and the 400 names its field.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

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

/// An absolute `https` URL (or `http` on a loopback host, for local development), without
/// credentials: what Stripe and a browser will open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebUrl(String);

impl TryFrom<String> for WebUrl {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        const MAX: usize = 2048;
        if value.len() > MAX {
            return Err(format!("must be at most {MAX} characters"));
        }
        let url = Url::parse(&value).map_err(|_| "must be an absolute URL".to_string())?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err("must be an https URL".into()),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        Ok(WebUrl(value))
    }
}

impl From<WebUrl> for String {
    fn from(url: WebUrl) -> String {
        url.0
    }
}

impl WebUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A CSS hex colour, `#rgb` or `#rrggbb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexColor(String);

impl TryFrom<String> for HexColor {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        match value.strip_prefix('#') {
            Some(hex)
                if matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                Ok(HexColor(value))
            }
            _ => Err(format!("`{value}` is not a colour like #1e40af")),
        }
    }
}

impl From<HexColor> for String {
    fn from(color: HexColor) -> String {
        color.0
    }
}

/// A path inside the SPA (`/dashboard/billing`), never a way to another origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReturnPath(String);

impl TryFrom<String> for ReturnPath {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let ok = value.starts_with('/')
            && !value.starts_with("//")
            && value.len() <= 1024
            && !value.contains('\\')
            && !value.chars().any(|c| c.is_control() || c.is_whitespace());
        if ok {
            Ok(ReturnPath(value))
        } else {
            Err(format!(
                "`{value}` is not a path inside the SPA: start with a single `/`, no spaces or backslashes"
            ))
        }
    }
}

impl From<ReturnPath> for String {
    fn from(path: ReturnPath) -> String {
        path.0
    }
}

impl ReturnPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReturnPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: TryFrom<String, Error = String>>(s: &str) -> Result<T, String> {
        T::try_from(s.to_string())
    }

    #[test]
    fn urls_must_be_https_absolute_and_without_credentials() {
        assert!(parse::<WebUrl>("https://example.com/privacy").is_ok());
        assert!(parse::<WebUrl>("http://localhost:5173/x").is_ok());
        assert!(parse::<WebUrl>("http://example.com/x").is_err());
        assert!(parse::<WebUrl>("javascript:alert(1)").is_err());
        assert!(parse::<WebUrl>("/relative").is_err());
        assert!(parse::<WebUrl>("https://user:pw@example.com/").is_err());
    }

    #[test]
    fn colours_paths_and_text_have_their_shapes() {
        assert!(parse::<HexColor>("#1e40af").is_ok());
        assert!(parse::<HexColor>("#FFF").is_ok());
        assert!(parse::<HexColor>("blue").is_err());
        assert!(parse::<HexColor>("#12345").is_err());
        assert!(parse::<ReturnPath>("/dashboard/billing?tab=1").is_ok());
        assert!(parse::<ReturnPath>("//evil.example").is_err());
        assert!(parse::<ReturnPath>("https://evil.example").is_err());
        assert!(parse::<ReturnPath>("/\\evil.example").is_err());
        assert!(parse::<Text<5>>("héllo").is_ok());
        assert!(parse::<Text<5>>("hello!").is_err());
        assert!(parse::<Text<5>>("a\nb").is_err());
    }
}
