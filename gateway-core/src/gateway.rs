//! The library API: build a gateway from a config, resolve names, send
//! requests.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde::Serialize;

use crate::adapter::{ChatStream, PassthroughRequest, PassthroughResponse, ProviderAdapter};
use crate::config::{
    Config, ConfigError, ConfigIssue, Credential, FieldPath, LimitsConfig, OutputCap,
};
use crate::error::{ErrorKind, GatewayError};
use crate::pipeline::dispatch::BackendPipeline;
use crate::pipeline::{
    Admission, Alarm, AttemptError, BreakerState, Dispatched, KeyPolicy, KeyRing, LimitStore,
    MemoryLimits, SlotCounts, Watchdog,
};
use crate::registry::{BackendContext, Registry};
use crate::router::{Route, Router, Targets};
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
    id: Arc<str>,
    dialect: Arc<str>,
    adapter: Arc<dyn ProviderAdapter>,
    info: ProviderInfo,
    pipeline: BackendPipeline,
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
}

/// A backend's live state as `GET /v1/providers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus<'a> {
    /// What the config says.
    #[serde(flatten)]
    pub info: &'a ProviderInfo,
    /// `healthy`, `degraded` (recent failures), `unavailable` (breaker
    /// open) or `probing` (breaker half-open).
    pub health: &'static str,
    /// The circuit breaker.
    pub breaker: BreakerStatus,
    /// Requests in flight and queued.
    pub concurrency: SlotCounts,
}

/// A breaker's state for `/v1/providers`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BreakerStatus {
    /// `closed`, `open` or `half_open`.
    pub state: BreakerState,
    /// Consecutive failures counted.
    pub consecutive_failures: u32,
    /// Milliseconds until an open breaker lets a probe through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
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
    /// In config order, so a route's `backend_index` finds its backend.
    backends: Vec<Backend>,
    keys: KeyRing,
    limit_store: Arc<dyn LimitStore>,
    limits: LimitsConfig,
    global_output_cap: Option<u32>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field(
                "backends",
                &self
                    .backends
                    .iter()
                    .map(|backend| &backend.info.id)
                    .collect::<Vec<_>>(),
            )
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
        let mut backends = Vec::new();
        let router = Router::new(config);
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
            let reliability = config.reliability.resolve(backend.reliability.as_ref());
            let context = BackendContext {
                id: backend.id.clone(),
                endpoint: endpoint.clone(),
                credential,
                options: backend.options.clone(),
                connect_timeout: Some(reliability.connect_timeout),
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
            // The router's own id, so that a route's backend is found by
            // comparing pointers (see `Gateway::backend`).
            let id: Arc<str> = router
                .backend_id(&backend.id)
                .cloned()
                .unwrap_or_else(|| Arc::from(backend.id.as_str()));
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
            };
            backends.push(Backend {
                id,
                dialect: Arc::from(backend.dialect.as_str()),
                adapter,
                info,
                pipeline: BackendPipeline::new(&backend.id, reliability),
            });
        }
        // An unset token variable is treated like an unset credential one.
        let (keys, unset, invalid) = KeyRing::build(&config.keys, env);
        issues.extend(invalid);
        match missing_credential {
            MissingCredential::Fail => issues.extend(unset),
            MissingCredential::Warn => warnings.extend(unset),
        }
        if !issues.is_empty() {
            return Err(ConfigError {
                source_name: source_name.to_owned(),
                issues,
            });
        }
        let gateway = Self {
            router,
            backends,
            keys,
            limit_store: Arc::new(MemoryLimits::new(&config.keys)),
            limits: config.limits.clone(),
            global_output_cap: config.limits.max_output_tokens,
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
    pub fn providers(&self) -> Vec<ProviderStatus<'_>> {
        self.backends
            .iter()
            .map(|backend| {
                let breaker = &backend.pipeline.breaker;
                let state = breaker.state();
                let failures = breaker.failures();
                ProviderStatus {
                    info: &backend.info,
                    health: match state {
                        BreakerState::Open => "unavailable",
                        BreakerState::HalfOpen => "probing",
                        BreakerState::Closed if failures > 0 => "degraded",
                        BreakerState::Closed => "healthy",
                    },
                    breaker: BreakerStatus {
                        state,
                        consecutive_failures: failures,
                        retry_in_ms: breaker
                            .retry_in()
                            .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
                    },
                    concurrency: backend.pipeline.slots.counts(),
                }
            })
            .collect()
    }

    /// True when `[[keys]]` are configured (callers must authenticate).
    pub fn requires_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// How many app keys are configured.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The `[limits]` section.
    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// The key `token` belongs to (`None` when no keys are configured); a
    /// missing or unknown token is a 401.
    pub fn authenticate(
        &self,
        token: Option<&str>,
    ) -> Result<Option<Arc<KeyPolicy>>, GatewayError> {
        self.keys.authenticate(token)
    }

    /// Resolves a requested model name to every target it may be served
    /// by (DESIGN §4), borrowed from the router.
    pub fn plan(&self, requested: &str) -> Result<&Targets, GatewayError> {
        self.router.plan(requested)
    }

    /// Lets a request for `requested`, which leads to `targets`, in past
    /// `key`'s allowlist and limits (403 or 429 otherwise). Hold the
    /// admission until the answer is sent.
    pub async fn admit(
        &self,
        key: Option<Arc<KeyPolicy>>,
        requested: &str,
        targets: &Targets,
    ) -> Result<Admission, GatewayError> {
        crate::pipeline::admit(&self.limit_store, key, requested, targets).await
    }

    /// The output token limit to send to `route`, given what the request
    /// asked for: `Ok(None)` to leave the request as it is, `Ok(Some(n))` to
    /// set `n` (clamped, or the cap when the request set none), or a 400
    /// when the request is over its cap and `limits.output_cap` is `reject`.
    pub fn output_cap(
        &self,
        admission: &Admission,
        route: &Route,
        requested: Option<u64>,
    ) -> Result<Option<u32>, GatewayError> {
        let Some(cap) = self.output_cap_limit(admission, route) else {
            return Ok(None);
        };
        match requested {
            None => Ok(Some(cap)),
            Some(asked) if asked <= u64::from(cap) => Ok(None),
            Some(asked) => match self.limits.output_cap {
                OutputCap::Clamp => Ok(Some(cap)),
                OutputCap::Reject => {
                    let mut err = GatewayError::invalid_request(format!(
                        "the request asks for {asked} output tokens; at most {cap} are allowed \
                         for this key and model"
                    ));
                    err.param = Some("max_tokens".to_owned());
                    Err(err)
                }
            },
        }
    }

    /// The smallest output token cap that applies to a request on `route`
    /// (the key's, the model's, `limits.max_output_tokens`), if any.
    pub fn output_cap_limit(&self, admission: &Admission, route: &Route) -> Option<u32> {
        [
            admission.key.as_ref().and_then(|key| key.max_output_tokens),
            route.max_output_tokens,
            self.global_output_cap,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Sends one request to `targets` through the provider stages: breaker,
    /// backend slot, first-byte timeout, retries with backoff, fallback.
    /// `attempt` makes one upstream attempt on a route and returns once the
    /// upstream's first output is in hand. `alarm` is a timer the caller
    /// lends for the first-byte deadlines (see [`Alarm`]); without one,
    /// the request gets a timer of its own, set at its first attempt.
    pub async fn dispatch<'t, T, F, Fut>(
        &self,
        targets: &'t Targets,
        alarm: Option<&mut Alarm<'_>>,
        attempt: F,
    ) -> Result<Dispatched<'t, T>, GatewayError>
    where
        F: FnMut(&'t Route) -> Fut,
        Fut: Future<Output = Result<T, AttemptError<T>>>,
    {
        let max_stream = self
            .limits
            .max_stream_duration_ms
            .map(Duration::from_millis);
        // A caller that lends no timer gets one of the request's own, set
        // at its first attempt; boxed, so that it does not make the future
        // larger for callers that lend one (the hot path).
        let mut own_timer;
        let mut alarm = match alarm {
            Some(lent) => lent.reborrow(),
            None => {
                own_timer = Box::pin(tokio::time::sleep(Duration::MAX));
                Alarm::new(own_timer.as_mut())
            }
        };
        crate::pipeline::dispatch::dispatch(
            targets,
            |route| self.backend(route).map(|backend| &backend.pipeline),
            max_stream,
            &mut alarm,
            attempt,
        )
        .await
    }

    fn backend(&self, route: &Route) -> Result<&Backend, GatewayError> {
        let at_index = self.backends.get(route.backend_index).filter(|backend| {
            // The same allocation for routes from this gateway's router.
            Arc::ptr_eq(&backend.id, &route.backend) || backend.id == route.backend
        });
        // A route from another config's router: look the id up instead.
        at_index
            .or_else(|| {
                self.backends
                    .iter()
                    .find(|backend| backend.id == route.backend)
            })
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::Internal,
                    format!("route names unknown backend '{}'", route.backend),
                )
            })
    }

    /// True when a request in `frontend_dialect` to `route` can be passed
    /// through untranslated.
    pub fn can_pass_through(&self, route: &Route, frontend_dialect: &str) -> bool {
        self.backend(route).is_ok_and(|backend| {
            &*backend.dialect == frontend_dialect && backend.adapter.supports_passthrough()
        })
    }

    /// Resolves `request.model` and sends the request through the provider
    /// stages (retries, breaker, timeouts, fallback), waiting for the whole
    /// answer.
    pub async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let targets = self.router.plan(&request.model)?;
        let dispatched = self
            .dispatch(targets, None, |route| {
                let request = request.clone();
                async move {
                    self.chat_once_on(route, request)
                        .await
                        .map_err(AttemptError::from)
                }
            })
            .await?;
        Ok(dispatched.value)
    }

    /// Resolves `request.model` and sends the request as a stream through
    /// the provider stages; the stream keeps the idle and total timeouts.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let targets = self.router.plan(&request.model)?;
        let dispatched = self
            .dispatch(targets, None, |route| {
                let request = request.clone();
                async move {
                    self.chat_stream_on(route, request)
                        .await
                        .map_err(AttemptError::from)
                }
            })
            .await?;
        Ok(Box::pin(Watchdog::new(
            dispatched.value,
            dispatched.limits,
            dispatched.slot,
        )))
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

    /// Sends `request` to an already resolved route (one attempt, no
    /// retries) and returns its events once the first one after `Started`
    /// has arrived, so an upstream that fails before any output is an
    /// error here rather than inside the stream. The stream starts with
    /// `Started` and ends with one `Finished` or one error; dropping it
    /// cancels the upstream call.
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
        let mut events = Disciplined::new(inner, started, &route.backend);
        let mut head = Vec::with_capacity(2);
        while let Some(event) = events.next().await {
            let event = event?;
            let is_started = matches!(event, ChatEvent::Started { .. });
            head.push(Ok(event));
            if !is_started {
                break;
            }
        }
        Ok(Box::pin(futures::stream::iter(head).chain(events)))
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
    /// [`ProviderAdapter::passthrough`]); one attempt, no retries. A
    /// successful answer is returned once its first body chunk has arrived,
    /// so a connection that breaks before any output is an error here.
    ///
    /// Not an `async fn`: the adapter's call is made here, taking the
    /// request, so that the future does not also keep a dead copy of the
    /// request (an `async fn` keeps its arguments for its whole life), as
    /// every future that awaits it would in turn.
    pub fn passthrough<'a>(
        &'a self,
        route: &'a Route,
        request: PassthroughRequest,
    ) -> impl Future<Output = Result<PassthroughResponse, GatewayError>> + Send + 'a {
        let call = self
            .backend(route)
            .map(|backend| backend.adapter.passthrough(request))
            .map_err(Box::new);
        async move {
            let mut response = call
                .map_err(|err| *err)?
                .await
                .map_err(|err| err.with_backend(&route.backend))?;
            if response.status.is_success() {
                let first = response.body.next().await;
                if let Some(Err(err)) = first {
                    return Err(err.with_backend(&route.backend));
                }
                response.body = Box::pin(futures::stream::iter(first).chain(response.body));
            }
            Ok(response)
        }
    }

    /// The pass-through attempt for [`Gateway::dispatch`]: an upstream
    /// answer with a retryable status (408, 429, 5xx) is a failure to retry,
    /// that still goes back to the client untouched when no retry is left.
    ///
    /// Not an `async fn`, for the reason [`Gateway::passthrough`] gives.
    pub fn passthrough_attempt<'a>(
        &'a self,
        route: &'a Route,
        request: PassthroughRequest,
    ) -> impl Future<Output = Result<PassthroughResponse, AttemptError<PassthroughResponse>>> + Send + 'a
    {
        // A map rather than an async block, which would keep the
        // passthrough future twice: as captured, and as awaited.
        self.passthrough(route, request).map(move |answer| {
            let response = answer?;
            let status = response.status.as_u16();
            if !matches!(status, 408 | 429 | 500..=599) {
                return Ok(response);
            }
            let mut error = GatewayError::from_upstream_status(
                status,
                format!("upstream answered {status}"),
                "",
            )
            .with_backend(&route.backend);
            error.status_override = Some(status);
            error.retry_after = crate::error::retry_after(&response.headers);
            Err(AttemptError {
                error,
                answer: Some(response),
            })
        })
    }

    /// Collects a stream into one response; what `chat_once` does for
    /// adapters that only stream.
    pub async fn collect(mut stream: ChatStream) -> Result<ChatResponse, GatewayError> {
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
