//! What `template.yaml` says about the HTTP API: each route and the function behind it, the
//! webhook's function URL, and the CORS rules. Read line by line: the template keeps every route
//! on one `{ ApiId: !Ref HttpApi, Path: ..., Method: ... }` line, and the tests that use this
//! fail loudly if that ever changes.

/// One route of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    /// `/billing/subscriptions/{id}/cancel`
    pub path: String,
    /// The function's binary (`BuildProperties: Binary:`), which is also its name under
    /// `cargo lambda watch`.
    pub function: String,
    /// Served by a function URL (`POST /` of the webhook), not by the HTTP API.
    pub function_url: bool,
}

impl Route {
    /// Whether a concrete path fits this route's pattern (`{name}` matches one non-empty segment).
    pub fn matches(&self, path: &str) -> bool {
        let pattern: Vec<&str> = self.path.split('/').collect();
        let given: Vec<&str> = path.split('/').collect();
        pattern.len() == given.len()
            && pattern
                .iter()
                .zip(&given)
                .all(|(p, g)| (p.starts_with('{') && !g.is_empty()) || p == g)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub max_age: u32,
}

/// Every HttpApi event of the template and every function URL, in template order.
pub fn routes(template: &str) -> Result<Vec<Route>, String> {
    let mut routes = Vec::new();
    // Resources sit at two spaces of indentation; a function's routes come after its Binary.
    let mut function: Option<String> = None;
    for line in template.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if indent == 2 && text.ends_with(':') {
            function = None;
        }
        if let Some(binary) = text.strip_prefix("Binary: ") {
            function = Some(binary.trim().to_string());
        }
        if text.starts_with("FunctionUrlConfig:") {
            let function = function
                .clone()
                .ok_or("FunctionUrlConfig outside a function")?;
            routes.push(Route {
                method: "POST".into(),
                path: "/".into(),
                function,
                function_url: true,
            });
        }
        if text.contains("ApiId: !Ref HttpApi") {
            let after = |name: &str| {
                text.split(&format!("{name}: "))
                    .nth(1)
                    .ok_or_else(|| format!("route line without {name}: {text}"))
            };
            let path = after("Path")?.split(", Method").next().unwrap_or_default();
            let method = after("Method")?
                .split([',', ' ', '}'])
                .next()
                .unwrap_or_default();
            let function = function
                .clone()
                .ok_or_else(|| format!("route outside a function: {text}"))?;
            routes.push(Route {
                method: method.to_string(),
                path: path.trim().trim_matches('"').to_string(),
                function,
                function_url: false,
            });
        }
    }
    if routes.is_empty() {
        return Err("no routes found in the template".into());
    }
    Ok(routes)
}

/// The HTTP API's `CorsConfiguration` (its origins are a parameter, given locally).
pub fn cors(template: &str) -> Result<Cors, String> {
    let section: Vec<&str> = template
        .lines()
        .skip_while(|l| !l.trim().starts_with("CorsConfiguration:"))
        .skip(1)
        .take_while(|l| l.starts_with("        "))
        .map(str::trim)
        .collect();
    let value = |key: &str| {
        section
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .ok_or_else(|| format!("CorsConfiguration has no {key}"))
    };
    let list = |key: &str| -> Result<Vec<String>, String> {
        let raw = value(key)?;
        let inner = raw
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| format!("{key} is not a [..] list: {raw}"))?;
        Ok(inner.split(',').map(|s| s.trim().to_string()).collect())
    };
    Ok(Cors {
        allow_methods: list("AllowMethods")?,
        allow_headers: list("AllowHeaders")?,
        max_age: value("MaxAge")?
            .parse()
            .map_err(|_| "MaxAge is not a number".to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        std::fs::read_to_string(root.join("template.yaml")).unwrap()
    }

    #[test]
    fn the_template_routes_name_their_functions() {
        let routes = routes(&template()).unwrap();
        let find = |method: &str, path: &str| {
            routes
                .iter()
                .find(|r| r.method == method && r.path == path)
                .map(|r| (r.function.as_str(), r.function_url))
        };
        assert_eq!(
            find("GET", "/billing/account"),
            Some(("billing-account", false))
        );
        assert_eq!(
            find("PUT", "/portal/workflows/{workflow}"),
            Some(("portal-config", false))
        );
        assert_eq!(find("POST", "/"), Some(("stripe-webhook", true)));
        assert_eq!(routes.iter().filter(|r| r.function_url).count(), 1);
    }

    #[test]
    fn patterns_match_one_segment_per_parameter() {
        let route = Route {
            method: "POST".into(),
            path: "/billing/subscriptions/{id}/cancel".into(),
            function: "billing-account".into(),
            function_url: false,
        };
        assert!(route.matches("/billing/subscriptions/sub_1/cancel"));
        assert!(!route.matches("/billing/subscriptions//cancel"));
        assert!(!route.matches("/billing/subscriptions/sub_1/cancel/x"));
    }

    #[test]
    fn cors_comes_from_the_template() {
        let cors = cors(&template()).unwrap();
        assert!(cors.allow_methods.contains(&"PUT".to_string()));
        assert!(cors.allow_headers.contains(&"authorization".to_string()));
        assert_eq!(cors.max_age, 600);
    }
}
