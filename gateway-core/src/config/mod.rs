//! The config file model (DESIGN §3), its loader and its validation.
//!
//! Loading is validate-then-build: [`load`] parses a file, checks it against
//! the JSON Schema generated from these types and then semantically, and
//! yields a [`Config`]; [`crate::Gateway::from_config`] builds adapters from
//! it. Every error names the field path and, for TOML, the line.

mod default;
mod error;
mod load;
mod path;
mod pipeline;
mod semantic;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use default::{DEFAULT_LISTEN, embedded_default};
pub use error::{ConfigError, ConfigIssue};
pub use load::{Format, load, load_file, parse_str, schema, schema_json};
pub use path::FieldPath;
pub use pipeline::{
    AliasConfig, FallbackAlias, KeyConfig, KeyToken, LimitsConfig, OutputCap, Reliability,
    ReliabilityConfig, Sha256Token, WeightedAlias, WeightedTarget,
};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "modelgate configuration")]
pub struct Config {
    /// How the HTTP server listens.
    #[serde(default)]
    pub server: ServerConfig,
    /// Upstream providers and the models each serves.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// Names that route to a `backend/model` (or to several, as a fallback
    /// chain or weighted); `default` must be present.
    #[serde(default)]
    pub aliases: BTreeMap<String, AliasConfig>,
    /// App tokens. With none, any caller is accepted (and the server listens
    /// on loopback only unless `server.allow_unauthenticated` is set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyConfig>,
    /// Guards on what callers may send.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Retries, breakers, timeouts and concurrency for every backend (each
    /// backend's `reliability` overrides these field by field).
    #[serde(default)]
    pub reliability: ReliabilityConfig,
    /// Shared libraries that provide more dialects, loaded at start-up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfig>,
}

/// One `[[plugins]]` entry: a provider plugin built as a shared library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The library's path; relative paths are relative to the config file.
    #[schemars(length(min = 1))]
    pub path: String,
    /// Skip the plugin (with a warning) when it cannot be loaded, instead
    /// of refusing to start.
    #[serde(default)]
    pub optional: bool,
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address to listen on, `host:port`.
    #[serde(default = "default_listen")]
    #[schemars(default = "default_listen", example = &"127.0.0.1:8848")]
    pub listen: String,
    /// Serve on a non-loopback address with no `[[keys]]` (anyone who can
    /// reach the port may use every backend). Default false.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// How long a client may take to send a request's head, in ms; the
    /// same limit closes a kept-alive connection that sends nothing for
    /// that long, and one that stops sending in the middle of a body
    /// (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub header_timeout_ms: Option<u64>,
    /// How many requests one client connection (HTTP/1.1) may carry; the
    /// answer to the last says `Connection: close` and the client opens a
    /// new connection, which may land on another worker thread or, behind
    /// a load balancer, another gateway (default 1000, as nginx's
    /// `keepalive_requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keepalive_requests: Option<u64>,
    /// On SIGTERM or SIGINT, how long requests in flight (open streams
    /// included) may go on before they are cut, in ms (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_ms: Option<u64>,
}

impl ServerConfig {
    /// [`ServerConfig::header_timeout_ms`], or its default.
    pub fn header_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.header_timeout_ms.unwrap_or(30_000))
    }

    /// [`ServerConfig::keepalive_requests`], or its default.
    pub fn keepalive_requests(&self) -> u64 {
        self.keepalive_requests.unwrap_or(1000)
    }

    /// [`ServerConfig::shutdown_grace_ms`], or its default.
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shutdown_grace_ms.unwrap_or(30_000))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            allow_unauthenticated: false,
            header_timeout_ms: None,
            keepalive_requests: None,
            shutdown_grace_ms: None,
        }
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}

/// One `[[backends]]` entry: an upstream provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Unique id, used in route names (`id/model`); letters, digits, `_` and
    /// `-` only, so that `backend/model` and `backend.model` split cleanly.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"), length(min = 1, max = 64))]
    pub id: String,
    /// The wire dialect: `openai`, `mock`, or one a plugin provides.
    #[schemars(length(min = 1))]
    pub dialect: String,
    /// Base URL the provider's own SDK uses (OpenAI-compatible servers
    /// include `/v1`). Not needed by the `mock` dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"https://api.openai.com/v1")]
    pub endpoint: Option<String>,
    /// Where the upstream credential comes from; `"none"` when omitted.
    #[serde(default)]
    pub credential: Credential,
    /// The models this backend serves.
    #[schemars(length(min = 1))]
    pub models: Vec<ModelConfig>,
    /// Dialect-specific settings, passed to plugin dialects (built-in
    /// dialects take none).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub options: serde_json::Map<String, serde_json::Value>,
    /// Overrides of `[reliability]` for this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliability: Option<ReliabilityConfig>,
}

/// Where a backend's upstream credential comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Credential {
    /// `"none"`: send no credential (local servers).
    Keyword(NoCredential),
    /// `{ env = "VAR" }`: read from an environment variable at start-up.
    Env(EnvCredential),
    /// `{ inline = "..." }`: written in the config file itself.
    Inline(InlineCredential),
}

impl Default for Credential {
    fn default() -> Self {
        Credential::Keyword(NoCredential::None)
    }
}

/// The keyword `"none"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoCredential {
    /// No credential at all.
    None,
}

/// A credential read from the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvCredential {
    /// The variable's name.
    #[schemars(length(min = 1))]
    pub env: String,
}

/// A credential written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineCredential {
    /// The credential itself.
    pub inline: String,
}

/// One model a backend serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients use (after `backend/`); may contain dots and slashes.
    #[schemars(length(min = 1))]
    pub id: String,
    /// The name sent upstream, when it differs from `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Output token limit used when the caller sets none. Dialects that
    /// require one (Anthropic) otherwise send their adapter's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub default_max_tokens: Option<u32>,
    /// The largest output token limit a request to this model may ask for
    /// (see `limits.output_cap`); no cap when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_output_tokens: Option<u32>,
}

impl ModelConfig {
    /// The model id sent upstream.
    pub fn upstream_id(&self) -> &str {
        self.upstream.as_deref().unwrap_or(&self.id)
    }
}
