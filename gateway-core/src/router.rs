//! Deterministic model name resolution (DESIGN §4).
//!
//! A name resolves, first match wins, as: an alias; `backend/model`;
//! `backend.model` (split at the first dot, only when that backend exists);
//! a bare model id that exactly one backend serves. Nothing else: no
//! implicit fallback, no guessing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{AliasConfig, Config};
use crate::error::GatewayError;

/// Which rule of DESIGN §4 matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRule {
    /// Rule 1: a configured alias.
    Alias,
    /// Rule 2: `backend/model`.
    BackendSlashModel,
    /// Rule 3: `backend.model`.
    BackendDotModel,
    /// Rule 4: a model id exactly one backend serves.
    BareModel,
}

/// Where a name leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The backend id.
    pub backend: Arc<str>,
    /// The backend's dialect.
    pub dialect: Arc<str>,
    /// The model id as configured (`backend/<this>`).
    pub model: Arc<str>,
    /// The id sent upstream.
    pub upstream_model: Arc<str>,
    /// The rule that matched.
    pub rule: RouteRule,
    /// The model's configured `default_max_tokens`.
    pub default_max_tokens: Option<u32>,
    /// The model's cap on requested output tokens.
    pub max_output_tokens: Option<u32>,
    /// Where the backend stands in the config's `backends`: the gateway
    /// built from the same config finds it there without hashing its id.
    pub backend_index: usize,
}

impl Route {
    /// The canonical `backend/model` name of the target.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.backend, self.model)
    }
}

/// Every target a name leads to: one route, or an alias's several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// One route.
    One(Route),
    /// Tried in order; the next on a retryable failure before any output.
    Fallback(Arc<[Route]>),
    /// One picked per request by weight.
    Weighted(Arc<[(Route, u32)]>),
}

impl Targets {
    /// The first target: the one listings show.
    pub fn primary(&self) -> &Route {
        match self {
            Targets::One(route) => route,
            Targets::Fallback(routes) => &routes[0],
            Targets::Weighted(routes) => &routes[0].0,
        }
    }

    /// Every target route, in config order (no allocation: this runs on
    /// every request).
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        let (one, chain, weighted): (Option<&Route>, &[Route], &[(Route, u32)]) = match self {
            Targets::One(route) => (Some(route), &[], &[]),
            Targets::Fallback(routes) => (None, routes, &[]),
            Targets::Weighted(routes) => (None, &[], routes),
        };
        one.into_iter()
            .chain(chain)
            .chain(weighted.iter().map(|(route, _)| route))
    }
}

#[derive(Debug)]
struct BackendModels {
    /// Where the backend stands in the config's `backends`.
    index: usize,
    dialect: Arc<str>,
    /// The models, in config order for listings.
    models: Vec<RoutedModel>,
}

#[derive(Debug)]
struct RoutedModel {
    id: Arc<str>,
    upstream: Arc<str>,
    default_max_tokens: Option<u32>,
    max_output_tokens: Option<u32>,
}

impl BackendModels {
    fn find(&self, model: &str) -> Option<&RoutedModel> {
        self.models.iter().find(|routed| &*routed.id == model)
    }
}

/// Resolves names to routes. Built once from a validated config; lookups
/// take no locks.
#[derive(Debug)]
pub struct Router {
    backends: crate::LookupMap<Arc<str>, BackendModels>,
    backend_order: Vec<Arc<str>>,
    /// Model id → backends serving it, in config order.
    bare: crate::LookupMap<Arc<str>, Vec<Arc<str>>>,
    aliases: BTreeMap<String, AliasConfig>,
    /// Alias targets resolved once at build time.
    alias_routes: crate::LookupMap<String, Targets>,
    /// Every name that resolves, with what it resolves to, so that a
    /// request's name costs one lookup and borrows its routes (cloning a
    /// route's shared names on every request made the worker threads
    /// fight over their reference counts). Built from the rules
    /// themselves, so it cannot disagree with them.
    resolved: crate::LookupMap<Box<str>, Targets>,
}

impl Router {
    /// Builds the router for `config`. Aliases whose target resolves to
    /// nothing are left out (config validation reports them).
    pub fn new(config: &Config) -> Self {
        let mut backends = crate::LookupMap::default();
        let mut backend_order = Vec::new();
        let mut bare: crate::LookupMap<Arc<str>, Vec<Arc<str>>> = crate::LookupMap::default();
        for (index, backend) in config.backends.iter().enumerate() {
            let id: Arc<str> = Arc::from(backend.id.as_str());
            if backends.contains_key(&id) {
                continue;
            }
            let mut models = Vec::new();
            for model in &backend.models {
                if models
                    .iter()
                    .any(|routed: &RoutedModel| *routed.id == *model.id)
                {
                    continue;
                }
                let model_id: Arc<str> = Arc::from(model.id.as_str());
                models.push(RoutedModel {
                    id: model_id.clone(),
                    upstream: Arc::from(model.upstream_id()),
                    default_max_tokens: model.default_max_tokens,
                    max_output_tokens: model.max_output_tokens,
                });
                let servers = bare.entry(model_id).or_default();
                if !servers.contains(&id) {
                    servers.push(id.clone());
                }
            }
            backend_order.push(id.clone());
            backends.insert(
                id,
                BackendModels {
                    index,
                    dialect: Arc::from(backend.dialect.as_str()),
                    models,
                },
            );
        }
        let mut router = Self {
            backends,
            backend_order,
            bare,
            aliases: config.aliases.clone(),
            alias_routes: crate::LookupMap::default(),
            resolved: crate::LookupMap::default(),
        };
        let alias_routes = config
            .aliases
            .iter()
            .filter_map(|(name, alias)| Some((name.clone(), router.alias_targets(alias).ok()?)))
            .collect();
        router.alias_routes = alias_routes;
        router.resolved = router.every_resolution();
        router
    }

    /// Every name that resolves, resolved by the rules. A name can only
    /// resolve if it is an alias, `backend/model`, `backend.model` or a
    /// bare model id, so these candidates cover them all.
    fn every_resolution(&self) -> crate::LookupMap<Box<str>, Targets> {
        let mut candidates: Vec<String> = self.alias_routes.keys().cloned().collect();
        for (backend, models) in &self.backends {
            for routed in &models.models {
                candidates.push(format!("{backend}/{}", routed.id));
                candidates.push(format!("{backend}.{}", routed.id));
                candidates.push(routed.id.to_string());
            }
        }
        candidates
            .into_iter()
            .filter_map(|name| {
                let targets = self.plan_by_rules(&name).ok()?;
                Some((name.into_boxed_str(), targets))
            })
            .collect()
    }

    /// Resolves a requested model name by the four rules to its (first)
    /// target.
    pub fn resolve(&self, name: &str) -> Result<Route, GatewayError> {
        self.plan(name).map(|targets| targets.primary().clone())
    }

    /// Resolves a requested model name by the four rules to every target it
    /// may be served by.
    pub fn plan(&self, name: &str) -> Result<&Targets, GatewayError> {
        if let Some(targets) = self.resolved.get(name) {
            return Ok(targets);
        }
        match self.plan_by_rules(name) {
            Err(err) => Err(err),
            Ok(_) => Err(GatewayError::internal(format!(
                "the router's table lacks '{name}', which resolves"
            ))),
        }
    }

    /// What [`Router::plan`] answers, worked out by the rules.
    fn plan_by_rules(&self, name: &str) -> Result<Targets, GatewayError> {
        if name.trim().is_empty() {
            return Err(GatewayError::invalid_param(
                "model",
                "'model' is empty; name an alias, backend/model or a model id",
            ));
        }
        if let Some(targets) = self.alias_routes.get(name) {
            return Ok(targets.clone());
        }
        self.resolve_target(name).map(Targets::One)
    }

    /// Resolves each target of `alias` by rules 2–4.
    pub fn alias_targets(&self, alias: &AliasConfig) -> Result<Targets, GatewayError> {
        let resolve = |target: &str| {
            let mut route = self.resolve_target(target)?;
            route.rule = RouteRule::Alias;
            Ok::<_, GatewayError>(route)
        };
        Ok(match alias {
            AliasConfig::Single(target) => Targets::One(resolve(target)?),
            AliasConfig::Fallback(chain) => Targets::Fallback(
                chain
                    .fallback
                    .iter()
                    .map(|target| resolve(target))
                    .collect::<Result<_, _>>()?,
            ),
            AliasConfig::Weighted(weighted) => Targets::Weighted(
                weighted
                    .weighted
                    .iter()
                    .map(|target| Ok((resolve(&target.target)?, target.weight)))
                    .collect::<Result<_, GatewayError>>()?,
            ),
        })
    }

    /// Resolves `name` by rules 2–4 only (what an alias target may be).
    pub fn resolve_target(&self, name: &str) -> Result<Route, GatewayError> {
        let mut notes = Vec::new();

        if let Some((backend, model)) = name.split_once('/')
            && let Some(found) = self.backends.get_key_value(backend)
        {
            match self.route_in(found, model, RouteRule::BackendSlashModel) {
                Some(route) => return Ok(route),
                None => notes.push(self.missing_model_note(found, model)),
            }
        }
        if let Some((backend, model)) = name.split_once('.')
            && let Some(found) = self.backends.get_key_value(backend)
        {
            match self.route_in(found, model, RouteRule::BackendDotModel) {
                Some(route) => return Ok(route),
                None => notes.push(self.missing_model_note(found, model)),
            }
        }
        if let Some(servers) = self.bare.get(name) {
            match servers.as_slice() {
                [only] => {
                    let found = self
                        .backends
                        .get_key_value(only)
                        .ok_or_else(|| GatewayError::internal("router index out of date"))?;
                    return self
                        .route_in(found, name, RouteRule::BareModel)
                        .ok_or_else(|| GatewayError::internal("router index out of date"));
                }
                several => {
                    let choices: Vec<String> =
                        several.iter().map(|b| format!("'{b}/{name}'")).collect();
                    return Err(GatewayError::invalid_param(
                        "model",
                        format!(
                            "model '{name}' is ambiguous: backends {} {} serve it; \
                             ask for {} instead",
                            several
                                .iter()
                                .map(|b| format!("'{b}'"))
                                .collect::<Vec<_>>()
                                .join(" and "),
                            if several.len() == 2 { "both" } else { "all" },
                            choices.join(" or "),
                        ),
                    ));
                }
            }
        }

        let mut message = format!(
            "unknown model '{name}': it is not an alias, a backend/model or backend.model \
             name, or a model id any backend serves"
        );
        for note in notes {
            message.push_str("; ");
            message.push_str(&note);
        }
        let near = self.near_names(name);
        if !near.is_empty() {
            message.push_str(&format!("; did you mean {}?", near.join(", ")));
        }
        message.push_str(" (GET /v1/models lists every name)");
        let mut err = GatewayError::not_found(message);
        err.param = Some("model".to_owned());
        Err(err)
    }

    fn route_in(
        &self,
        (backend, models): (&Arc<str>, &BackendModels),
        model: &str,
        rule: RouteRule,
    ) -> Option<Route> {
        let routed = models.find(model)?;
        Some(Route {
            backend: backend.clone(),
            dialect: models.dialect.clone(),
            model: routed.id.clone(),
            upstream_model: routed.upstream.clone(),
            rule,
            default_max_tokens: routed.default_max_tokens,
            max_output_tokens: routed.max_output_tokens,
            backend_index: models.index,
        })
    }

    fn missing_model_note(
        &self,
        (backend, models): (&Arc<str>, &BackendModels),
        model: &str,
    ) -> String {
        let served: Vec<&str> = models.models.iter().map(|routed| &*routed.id).collect();
        format!(
            "backend '{backend}' has no model '{model}' (it serves: {})",
            served.join(", ")
        )
    }

    /// Up to three resolvable names close to `name`, best first.
    fn near_names(&self, name: &str) -> Vec<String> {
        let lowered = name.to_lowercase();
        let mut scored: Vec<(f64, String)> = self
            .names()
            .into_iter()
            .filter_map(|candidate| {
                let last = candidate
                    .rsplit('/')
                    .next()
                    .unwrap_or(&candidate)
                    .to_lowercase();
                let score = strsim::jaro_winkler(&lowered, &candidate.to_lowercase())
                    .max(strsim::jaro_winkler(&lowered, &last));
                (score >= 0.8).then_some((score, candidate))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(3)
            .map(|(_, name)| format!("'{name}'"))
            .collect()
    }

    /// The router's shared copy of backend `id`'s id, if it has that
    /// backend.
    pub fn backend_id(&self, id: &str) -> Option<&Arc<str>> {
        self.backends.get_key_value(id).map(|(id, _)| id)
    }

    /// Every name that resolves: aliases first (sorted), then each
    /// backend's `backend/model` in config order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .aliases
            .keys()
            .filter(|alias| self.alias_routes.contains_key(*alias))
            .cloned()
            .collect();
        for backend in &self.backend_order {
            if let Some(models) = self.backends.get(backend) {
                names.extend(
                    models
                        .models
                        .iter()
                        .map(|routed| format!("{backend}/{}", routed.id)),
                );
            }
        }
        names
    }

    /// Alias names with their targets, sorted by name.
    pub fn aliases(&self) -> Vec<(&str, &Targets)> {
        let mut aliases: Vec<(&str, &Targets)> = self
            .alias_routes
            .iter()
            .map(|(name, targets)| (name.as_str(), targets))
            .collect();
        aliases.sort_by_key(|(name, _)| *name);
        aliases
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, parse_str};

    fn router() -> Router {
        let config = parse_str(
            r#"
            [[backends]]
            id = "openai"
            dialect = "openai"
            endpoint = "http://127.0.0.1:1/v1"
            models = [{ id = "gpt-4o-mini" }, { id = "gpt-4o", upstream = "gpt-4o-2024-08-06" }, { id = "gpt-3.5-turbo" }]

            [[backends]]
            id = "vllm"
            dialect = "openai"
            endpoint = "http://127.0.0.1:2/v1"
            models = [{ id = "meta-llama/Llama-3.1-8B" }, { id = "gpt-4o-mini" }, { id = "qwen", upstream = "org/qwen-x" }]

            [aliases]
            default = "openai/gpt-4o-mini"
            smart = "openai.gpt-4o"
            local = "qwen"
            "#,
            Format::Toml,
            "test",
        )
        .expect("valid config");
        Router::new(&config)
    }

    fn target(route: &Route) -> (String, String, RouteRule) {
        (
            route.qualified_name(),
            route.upstream_model.to_string(),
            route.rule,
        )
    }

    #[test]
    fn each_rule_resolves() {
        let router = router();
        let cases = [
            (
                "default",
                "openai/gpt-4o-mini",
                "gpt-4o-mini",
                RouteRule::Alias,
            ),
            (
                "smart",
                "openai/gpt-4o",
                "gpt-4o-2024-08-06",
                RouteRule::Alias,
            ),
            ("local", "vllm/qwen", "org/qwen-x", RouteRule::Alias),
            (
                "openai/gpt-4o",
                "openai/gpt-4o",
                "gpt-4o-2024-08-06",
                RouteRule::BackendSlashModel,
            ),
            (
                "vllm/meta-llama/Llama-3.1-8B",
                "vllm/meta-llama/Llama-3.1-8B",
                "meta-llama/Llama-3.1-8B",
                RouteRule::BackendSlashModel,
            ),
            (
                "openai.gpt-3.5-turbo",
                "openai/gpt-3.5-turbo",
                "gpt-3.5-turbo",
                RouteRule::BackendDotModel,
            ),
            (
                "gpt-3.5-turbo",
                "openai/gpt-3.5-turbo",
                "gpt-3.5-turbo",
                RouteRule::BareModel,
            ),
            (
                "meta-llama/Llama-3.1-8B",
                "vllm/meta-llama/Llama-3.1-8B",
                "meta-llama/Llama-3.1-8B",
                RouteRule::BareModel,
            ),
            ("qwen", "vllm/qwen", "org/qwen-x", RouteRule::BareModel),
        ];
        for (name, qualified, upstream, rule) in cases {
            let route = router
                .resolve(name)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(
                target(&route),
                (qualified.to_owned(), upstream.to_owned(), rule),
                "{name}"
            );
        }
    }

    /// The table `plan` reads answers every name as the rules do: the
    /// names that resolve, and ones that do not (whose errors come from
    /// the rules).
    #[test]
    fn the_table_agrees_with_the_rules() {
        let router = router();
        let mut names: Vec<String> = router
            .resolved
            .keys()
            .map(|name| name.to_string())
            .collect();
        assert!(names.contains(&"vllm.meta-llama/Llama-3.1-8B".to_owned()));
        assert!(!names.contains(&"gpt-4o-mini".to_owned()), "ambiguous");
        names.extend(
            [
                "gpt-4o-mini",
                "openai/gpt-5",
                "zzz",
                "",
                "  ",
                "vllm/",
                "/qwen",
                "openai.",
                "smart ",
            ]
            .map(str::to_owned),
        );
        for name in names {
            match (router.plan(&name), router.plan_by_rules(&name)) {
                (Ok(table), Ok(rules)) => assert_eq!(*table, rules, "{name}"),
                (Err(table), Err(rules)) => assert_eq!(table.message, rules.message, "{name}"),
                (table, rules) => panic!("{name}: table {table:?}, rules {rules:?}"),
            }
        }
    }

    #[test]
    fn ambiguous_bare_id_names_both_backends() {
        let err = router().resolve("gpt-4o-mini").expect_err("ambiguous");
        assert_eq!(err.status(), 400);
        insta::assert_snapshot!(err.message, @"model 'gpt-4o-mini' is ambiguous: backends 'openai' and 'vllm' both serve it; ask for 'openai/gpt-4o-mini' or 'vllm/gpt-4o-mini' instead");
    }

    #[test]
    fn unknown_names_list_near_names() {
        let router = router();
        let err = router.resolve("gpt-4o-mni").expect_err("unknown");
        assert_eq!(err.status(), 404);
        insta::assert_snapshot!(err.message, @"unknown model 'gpt-4o-mni': it is not an alias, a backend/model or backend.model name, or a model id any backend serves; did you mean 'openai/gpt-4o-mini', 'vllm/gpt-4o-mini', 'openai/gpt-4o'? (GET /v1/models lists every name)");
        let err = router.resolve("openai/gpt-5").expect_err("unknown");
        insta::assert_snapshot!(err.message, @"unknown model 'openai/gpt-5': it is not an alias, a backend/model or backend.model name, or a model id any backend serves; backend 'openai' has no model 'gpt-5' (it serves: gpt-4o-mini, gpt-4o, gpt-3.5-turbo); did you mean 'openai/gpt-4o', 'openai/gpt-3.5-turbo', 'openai/gpt-4o-mini'? (GET /v1/models lists every name)");
        let err = router.resolve("zzz").expect_err("unknown");
        insta::assert_snapshot!(err.message, @"unknown model 'zzz': it is not an alias, a backend/model or backend.model name, or a model id any backend serves (GET /v1/models lists every name)");
        let err = router.resolve("  ").expect_err("empty");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn dot_rule_applies_only_to_existing_backends() {
        // "gpt-3" is not a backend, so the dotted name falls through to rule 4.
        let route = router().resolve("gpt-3.5-turbo").expect("bare");
        assert_eq!(route.rule, RouteRule::BareModel);
    }

    #[test]
    fn names_lists_aliases_then_backend_models() {
        let names = router().names();
        assert_eq!(&names[..3], ["default", "local", "smart"]);
        assert!(names.contains(&"vllm/meta-llama/Llama-3.1-8B".to_owned()));
        assert_eq!(names.len(), 3 + 6);
    }
}
