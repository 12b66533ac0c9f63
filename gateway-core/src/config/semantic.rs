//! Checks the JSON Schema cannot express: uniqueness, references between
//! sections, parseable addresses.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::error::ConfigIssue;
use super::path::FieldPath;
use super::{Config, Credential};
use crate::router::Router;

/// Every semantic problem in `config`; empty when it is sound.
pub(super) fn check(config: &Config) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let root = FieldPath::root();

    if config.server.listen.parse::<SocketAddr>().is_err() {
        issues.push(ConfigIssue::new(
            root.key("server").key("listen"),
            format!(
                "'{}' is not a socket address; write host:port, for example 127.0.0.1:8848",
                config.server.listen
            ),
        ));
    }

    let mut seen_backends: HashMap<&str, usize> = HashMap::new();
    for (index, backend) in config.backends.iter().enumerate() {
        let at = root.key("backends").index(index);
        if let Some(first) = seen_backends.insert(&backend.id, index) {
            issues.push(ConfigIssue::new(
                at.key("id"),
                format!(
                    "duplicate backend id '{}' (first defined at backends[{first}])",
                    backend.id
                ),
            ));
        }
        if let Some(endpoint) = &backend.endpoint {
            match url::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                Ok(url) => issues.push(ConfigIssue::new(
                    at.key("endpoint"),
                    format!("scheme '{}' is not http or https", url.scheme()),
                )),
                Err(err) => issues.push(ConfigIssue::new(
                    at.key("endpoint"),
                    format!("'{endpoint}' is not a URL: {err}"),
                )),
            }
        }
        if let Credential::Env(env) = &backend.credential
            && (env.env.contains('=') || env.env.contains('\0'))
        {
            issues.push(ConfigIssue::new(
                at.key("credential").key("env"),
                format!("'{}' is not an environment variable name", env.env),
            ));
        }
        let mut seen_models: HashMap<&str, usize> = HashMap::new();
        for (model_index, model) in backend.models.iter().enumerate() {
            if let Some(first) = seen_models.insert(&model.id, model_index) {
                issues.push(ConfigIssue::new(
                    at.key("models").index(model_index).key("id"),
                    format!(
                        "duplicate model id '{}' in backend '{}' (first at models[{first}])",
                        model.id, backend.id
                    ),
                ));
            }
        }
    }

    let mut seen_keys: HashMap<&str, usize> = HashMap::new();
    for (index, key) in config.keys.iter().enumerate() {
        if let Some(first) = seen_keys.insert(&key.id, index) {
            issues.push(ConfigIssue::new(
                root.key("keys").index(index).key("id"),
                format!(
                    "duplicate key id '{}' (first defined at keys[{first}])",
                    key.id
                ),
            ));
        }
    }

    if !config.aliases.contains_key("default") {
        issues.push(ConfigIssue::new(
            root.key("aliases").key("default"),
            "is required: every config names the route for model \"default\"",
        ));
    }
    let router = Router::new(config);
    for (name, alias) in &config.aliases {
        for target in alias.targets() {
            if let Err(err) = router.resolve_target(target) {
                issues.push(ConfigIssue::new(
                    root.key("aliases").key(name.clone()),
                    format!("target '{target}' resolves to nothing: {}", err.message),
                ));
            }
        }
    }
    issues
}
