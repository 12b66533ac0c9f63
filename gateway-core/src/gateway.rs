//! The library API: build a gateway from a config, resolve names, send
//! requests.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::adapter::{ChatStream, PassthroughRequest, PassthroughResponse, ProviderAdapter};
use crate::config::{Config, ConfigError, ConfigIssue, Credential, FieldPath};
use crate::error::GatewayError;
use crate::registry::{BackendContext, Registry};
use crate::router::{Route, Router};
use crate::secret::Secret;
use crate::stream::{Collector, Disciplined};
use crate::types::{ChatEvent, ChatRequest, ChatResponse};

/// What to do when a `{ env = "VAR" }` credential's variable is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingCredential {
    /// Refuse to build: the server must not start half-configured.
    Fail,
    /// Build anyway and report a warning (`modelgate validate`, which often
    /// runs where the secrets are not).
    Warn,
}

/// How a gateway reads the environment; injected so tests and `validate`
/// never depend on the real process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A configured backend, ready to call.
struct Backend {
    dialect: Arc<str>,
    adapter: Arc<dyn ProviderAdapter>,
    info: ProviderInfo,
}

/// A backend as `GET /v1/providers` shows it: no secrets.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProviderInfo {
    /// The backend id.
    pub id: String,
    /// Its dialect.
    pub dialect: String,
    /// Its endpoint without user info or query string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Where the credential comes from: `env:VAR`, `inline` or `none`.
    pub credential: String,
    /// The models it serves.
    pub models: Vec<ProviderModel>,
    /// `unknown` until health checks and breakers exist.
    pub health: &'static str,
}

/// One model in a [`ProviderInfo`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProviderModel {
    /// The id clients use.
    pub id: String,
    /// The id sent upstream.
    pub upstream: String,
}

/// A running gateway: the router plus one adapter per backend. Cheap to
/// share behind an `Arc`; every method takes `&self` and no lock.
pub struct Gateway {
    router: Router,
    backends: HashMap<Arc<str>, Backend>,
    backend_order: Vec<Arc<str>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("backends", &self.backend_order)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds a gateway from a validated config with the compiled-in
    /// dialects and the process environment. A credential variable that is
    /// not set is an error here, at start-up, not at first use.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        Self::build(
            &config,
            &Registry::builtin(),
            &env,
            MissingCredential::Fail,
            "config",
        )
        .map(|(gateway, _)| gateway)
    }

    /// Builds a gateway with an explicit registry and environment. Returns
    /// the gateway and any warnings; `source_name` labels errors.
    pub fn build(
        config: &Config,
        registry: &Registry,
        env: EnvLookup<'_>,
        missing_credential: MissingCredential,
        source_name: &str,
    ) -> Result<(Self, Vec<ConfigIssue>), ConfigError> {
        let mut issues = Vec::new();
        let mut warnings = Vec::new();
        let mut backends = HashMap::new();
        let mut backend_order = Vec::new();
        for (index, backend) in config.backends.iter().enumerate() {
            let at = FieldPath::root().key("backends").index(index);
            let Some(provider) = registry.get(&backend.dialect) else {
                let known: Vec<&str> = registry.dialects().collect();
                let message =
                    if crate::registry::FIRST_PARTY_DIALECTS.contains(&backend.dialect.as_str()) {
                        format!(
                            "dialect '{}' is not compiled into this build; rebuild with \
                         `--features {}` (this build knows: {})",
                            backend.dialect,
                            backend.dialect,
                            known.join(", ")
                        )
                    } else {
                        format!(
                            "unknown dialect '{}'; this build knows: {} (a run-time plugin may \
                         provide others)",
                            backend.dialect,
                            known.join(", ")
                        )
                    };
                issues.push(ConfigIssue::new(at.key("dialect"), message));
                continue;
            };
            let (credential, credential_label) = match &backend.credential {
                Credential::Keyword(_) => (None, "none".to_owned()),
                Credential::Inline(inline) => {
                    (Some(Secret::new(&inline.inline)), "inline".to_owned())
                }
                Credential::Env(var) => {
                    let label = format!("env:{}", var.env);
                    match env(&var.env) {
                        Some(value) if !value.is_empty() => (Some(Secret::new(value)), label),
                        _ => {
                            let issue = ConfigIssue::new(
                                at.key("credential").key("env"),
                                format!(
                                    "environment variable {} is not set (backend '{}' reads its \
                                     credential from it)",
                                    var.env, backend.id
                                ),
                            );
                            match missing_credential {
                                MissingCredential::Fail => issues.push(issue),
                                MissingCredential::Warn => warnings.push(issue),
                            }
                            (None, label)
                        }
                    }
                }
            };
            let endpoint = backend
                .endpoint
                .as_deref()
                .and_then(|text| url::Url::parse(text).ok());
            let context = BackendContext {
                id: backend.id.clone(),
                endpoint: endpoint.clone(),
                credential,
                options: backend.options.clone(),
            };
            let adapter = match provider.build(&context) {
                Ok(adapter) => adapter,
                Err(err) => {
                    let path = match err.field {
                        Some(field) => at.key(field),
                        None => at.clone(),
                    };
                    issues.push(ConfigIssue::new(
                        path,
                        format!("backend '{}': {}", backend.id, err.message),
                    ));
                    continue;
                }
            };
            let id: Arc<str> = Arc::from(backend.id.as_str());
            let info = ProviderInfo {
                id: backend.id.clone(),
                dialect: backend.dialect.clone(),
                endpoint: endpoint.map(|url| redact(&url)),
                credential: credential_label,
                models: backend
                    .models
                    .iter()
                    .map(|model| ProviderModel {
                        id: model.id.clone(),
                        upstream: model.upstream_id().to_owned(),
                    })
                    .collect(),
                health: "unknown",
            };
            backend_order.push(id.clone());
            backends.insert(
                id,
                Backend {
                    dialect: Arc::from(backend.dialect.as_str()),
                    adapter,
                    info,
                },
            );
        }
        if !issues.is_empty() {
            return Err(ConfigError {
                source_name: source_name.to_owned(),
                issues,
            });
        }
        let gateway = Self {
            router: Router::new(config),
            backends,
            backend_order,
        };
        Ok((gateway, warnings))
    }

    /// Resolves a model name (DESIGN §4).
    pub fn resolve(&self, name: &str) -> Result<Route, GatewayError> {
        self.router.resolve(name)
    }

    /// The router, for listings.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Every backend, in config order, as `/v1/providers` shows it.
    pub fn providers(&self) -> Vec<&ProviderInfo> {
        self.backend_order
            .iter()
            .filter_map(|id| self.backends.get(id).map(|backend| &backend.info))
            .collect()
    }

    fn backend(&self, route: &Route) -> Result<&Backend, GatewayError> {
        self.backends.get(&route.backend).ok_or_else(|| {
            GatewayError::internal(format!("route names unknown backend '{}'", route.backend))
        })
    }

    /// True when a request in `frontend_dialect` to `route` can be passed
    /// through untranslated.
    pub fn can_pass_through(&self, route: &Route, frontend_dialect: &str) -> bool {
        self.backend(route).is_ok_and(|backend| {
            &*backend.dialect == frontend_dialect && backend.adapter.supports_passthrough()
        })
    }

    /// Resolves `request.model` and sends the request, waiting for the
    /// whole answer.
    pub async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let route = self.resolve(&request.model)?;
        self.chat_once_on(&route, request).await
    }

    /// Resolves `request.model` and sends the request as a stream.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let route = self.resolve(&request.model)?;
        self.chat_stream_on(&route, request).await
    }

    /// Sends `request` to an already resolved route, waiting for the whole
    /// answer.
    pub async fn chat_once_on(
        &self,
        route: &Route,
        mut request: ChatRequest,
    ) -> Result<ChatResponse, GatewayError> {
        let backend = self.backend(route)?;
        let request_id = prepare(&mut request, route, false);
        let mut response = backend
            .adapter
            .chat_once(request)
            .await
            .map_err(|err| err.with_backend(&route.backend))?;
        // Adapters whose upstream names neither leave them empty.
        if response.id.is_empty() {
            response.id = request_id;
        }
        if response.model.is_empty() {
            response.model = route.upstream_model.to_string();
        }
        Ok(response)
    }

    /// Sends `request` to an already resolved route and returns its events.
    /// The stream starts with `Started` and ends with one `Finished` or one
    /// error; dropping it cancels the upstream call.
    pub async fn chat_stream_on(
        &self,
        route: &Route,
        mut request: ChatRequest,
    ) -> Result<ChatStream, GatewayError> {
        let backend = self.backend(route)?;
        let request_id = prepare(&mut request, route, true);
        let inner = backend
            .adapter
            .chat_stream(request)
            .await
            .map_err(|err| err.with_backend(&route.backend))?;
        let started = ChatEvent::Started {
            request_id,
            backend: route.backend.to_string(),
            model: route.upstream_model.to_string(),
        };
        Ok(Box::pin(Disciplined::new(inner, started, &route.backend)))
    }

    /// The prompt tokens `request` would use on `route`, counted by the
    /// upstream; `None` when its dialect cannot count (the caller estimates).
    pub async fn count_tokens_on(
        &self,
        route: &Route,
        mut request: ChatRequest,
    ) -> Result<Option<u64>, GatewayError> {
        let backend = self.backend(route)?;
        if !backend.adapter.supports_count_tokens() {
            return Ok(None);
        }
        prepare(&mut request, route, false);
        backend
            .adapter
            .count_tokens(request)
            .await
            .map(Some)
            .map_err(|err| err.with_backend(&route.backend))
    }

    /// Forwards a same-dialect request untouched (see
    /// [`ProviderAdapter::passthrough`]).
    pub async fn passthrough(
        &self,
        route: &Route,
        request: PassthroughRequest,
    ) -> Result<PassthroughResponse, GatewayError> {
        let backend = self.backend(route)?;
        backend
            .adapter
            .passthrough(request)
            .await
            .map_err(|err| err.with_backend(&route.backend))
    }

    /// Collects a stream into one response; what `chat_once` does for
    /// adapters that only stream.
    pub async fn collect(mut stream: ChatStream) -> Result<ChatResponse, GatewayError> {
        use futures::StreamExt;
        let mut collector = Collector::default();
        while let Some(event) = stream.next().await {
            collector.push(event?);
        }
        collector.finish()
    }
}

/// Sets the upstream model, the model's default output limit when the caller
/// gave none, the stream flag and the request id; returns the request id.
fn prepare(request: &mut ChatRequest, route: &Route, stream: bool) -> String {
    request.model = route.upstream_model.to_string();
    if request.max_output_tokens.is_none() {
        request.max_output_tokens = route.default_max_tokens;
    }
    request.stream = stream;
    request
        .request_id
        .get_or_insert_with(|| uuid::Uuid::new_v4().simple().to_string())
        .clone()
}

/// `url` without user info and query string, which may hold credentials.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_credentials_in_urls() {
        let url = url::Url::parse("https://user:pw@example.test/v1?key=secret#x").expect("url");
        assert_eq!(redact(&url), "https://example.test/v1");
    }
}
