//! Every route in template.yaml has a sample event in events/, and a handler test loads it, so
//! the samples that `make invoke` sends stay the ones the tests prove; and openapi.yaml names
//! exactly the template's routes.

use std::path::Path;

use serde_json::Value;
use shared::testing::workspace_root;

/// `(METHOD, /path/{param})` of every route in the template (the webhook's function URL too).
fn template_routes() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    portico_gateway::template::routes(&text)
        .unwrap()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect()
}

fn matches(pattern: &str, path: &str) -> bool {
    let (p, q): (Vec<_>, Vec<_>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == q.len() && p.iter().zip(&q).all(|(a, b)| a.starts_with('{') || a == b)
}

fn events(dir: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(events(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .strip_prefix(workspace_root().join("events"))
                .unwrap()
                .with_extension("");
            let value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            out.push((name.to_string_lossy().into_owned(), value));
        }
    }
    out
}

fn test_sources(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.push_str(&test_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            all.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    all
}

#[test]
fn every_template_route_has_an_event_a_test_uses() {
    let root = workspace_root();
    let routes = template_routes();
    assert!(routes.len() >= 3, "routes found: {routes:?}");
    let events = events(&root.join("events"));
    let tests = test_sources(&root.join("functions"));
    for (method, path) in routes {
        let used: Vec<&String> = events
            .iter()
            .filter(|(_, e)| {
                e["requestContext"]["http"]["method"] == method.as_str()
                    && e["rawPath"].as_str().is_some_and(|p| matches(&path, p))
            })
            .map(|(name, _)| name)
            .filter(|name| tests.contains(&format!("\"{name}\"")))
            .collect();
        assert!(
            !used.is_empty(),
            "{method} {path} has no event in events/ that a handler test loads"
        );
    }
}

#[test]
fn openapi_names_exactly_the_template_routes() {
    let mut template = template_routes();
    let mut spec = portico_testkit::contract::operations();
    template.sort();
    spec.sort();
    let missing: Vec<_> = template.iter().filter(|r| !spec.contains(r)).collect();
    let extra: Vec<_> = spec.iter().filter(|r| !template.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi.yaml lacks {missing:?} and names {extra:?}, which template.yaml does not have"
    );
}
