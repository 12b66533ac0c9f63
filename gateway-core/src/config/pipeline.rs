//! The config sections of the request pipeline: app tokens (`[[keys]]`),
//! caller guards (`[limits]`) and provider reliability (`[reliability]`, with
//! per-backend overrides).
//!
//! Defaults live here, next to the fields they fill, and are stated in each
//! field's doc comment (which is also its description in the JSON Schema).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::EnvCredential;

/// One `[[keys]]` entry: an app token and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for the key, shown in logs and errors instead of the token.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.-]+$"), length(min = 1, max = 64))]
    pub id: String,
    /// Where the token comes from: `{ env = "VAR" }` or `{ sha256 = "<hex>" }`
    /// (the SHA-256 of the token, so the config holds no secret).
    pub token: KeyToken,
    /// Models this key may use: alias names and `backend/model` globs
    /// (`openai/*`, `*/gpt-4o*`). Empty or absent: every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Requests per minute; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub rpm: Option<u32>,
    /// Tokens per minute (input + output, as the upstream reports them);
    /// unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tpm: Option<u64>,
    /// Requests in flight at once; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent: Option<u32>,
    /// The largest output token limit a request may ask for (see
    /// `limits.output_cap`); no cap when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_output_tokens: Option<u32>,
}

/// Where an app token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KeyToken {
    /// Read from an environment variable at start-up.
    Env(EnvCredential),
    /// Only the token's SHA-256 is stored.
    Sha256(Sha256Token),
}

/// A token stored as its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sha256Token {
    /// 64 hex digits: `printf %s "$TOKEN" | sha256sum`.
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub sha256: String,
}

/// What to do with a request that asks for more output tokens than its cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputCap {
    /// Lower the request's limit to the cap (and set it when absent).
    #[default]
    Clamp,
    /// Answer 400 naming the cap (a request without a limit gets the cap).
    Reject,
}

/// The `[limits]` section: guards on what callers may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest request body, in bytes; larger bodies get 413. Default
    /// 33554432 (32 MiB: images travel inline).
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1024))]
    pub max_body_bytes: u64,
    /// A cap on requested output tokens for every request (keys and models
    /// may set lower ones); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_output_tokens: Option<u32>,
    /// `clamp` (default) or `reject` a request over its output token cap.
    #[serde(default)]
    pub output_cap: OutputCap,
    /// Streams are ended with an error event after this many milliseconds;
    /// unlimited by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_stream_duration_ms: Option<u64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            max_output_tokens: None,
            output_cap: OutputCap::Clamp,
            max_stream_duration_ms: None,
        }
    }
}

fn default_max_body_bytes() -> u64 {
    32 * 1024 * 1024
}

/// `[reliability]`, and a backend's `reliability` table that overrides it
/// field by field. Every field is optional; what is unset anywhere takes the
/// default its description states.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReliabilityConfig {
    /// Attempts per target, the first included (default 2; 1 = no retries).
    /// Only failures before any output reached the client are retried:
    /// connect errors, 429, 5xx, timeouts before the first byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: Option<u32>,
    /// First retry delay in ms, doubled per retry, with full jitter
    /// (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_base_ms: Option<u64>,
    /// Longest delay between attempts in ms (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max_ms: Option<u64>,
    /// An upstream `Retry-After` up to this many ms is waited out before the
    /// retry; a longer one ends the retries and is passed to the client
    /// (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_after_ms: Option<u64>,
    /// Consecutive failures that open the backend's breaker (default 5;
    /// 0 disables the breaker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_failures: Option<u32>,
    /// How long an open breaker refuses requests before one probe is let
    /// through, in ms (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub breaker_cooldown_ms: Option<u64>,
    /// TCP (and TLS) connect timeout in ms (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub connect_timeout_ms: Option<u64>,
    /// Time until the upstream's first byte (a stream's first event, or a
    /// whole non-streamed answer) in ms (default 120000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub first_byte_timeout_ms: Option<u64>,
    /// Longest gap between two stream chunks in ms (default 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub idle_timeout_ms: Option<u64>,
    /// Longest whole request, first attempt to last byte, in ms (default
    /// 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub total_timeout_ms: Option<u64>,
    /// Requests in flight to the backend at once; unlimited by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent: Option<u32>,
    /// Requests that may wait for a slot when `max_concurrent` are in flight
    /// (default 0: answer 503 at once); a full queue answers 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
    /// How long a queued request waits for a slot before 503, in ms
    /// (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub queue_timeout_ms: Option<u64>,
}

/// A backend's reliability settings with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reliability {
    /// See [`ReliabilityConfig::max_attempts`].
    pub max_attempts: u32,
    /// See [`ReliabilityConfig::backoff_base_ms`].
    pub backoff_base: Duration,
    /// See [`ReliabilityConfig::backoff_max_ms`].
    pub backoff_max: Duration,
    /// See [`ReliabilityConfig::max_retry_after_ms`].
    pub max_retry_after: Duration,
    /// See [`ReliabilityConfig::breaker_failures`].
    pub breaker_failures: u32,
    /// See [`ReliabilityConfig::breaker_cooldown_ms`].
    pub breaker_cooldown: Duration,
    /// See [`ReliabilityConfig::connect_timeout_ms`].
    pub connect_timeout: Duration,
    /// See [`ReliabilityConfig::first_byte_timeout_ms`].
    pub first_byte_timeout: Duration,
    /// See [`ReliabilityConfig::idle_timeout_ms`].
    pub idle_timeout: Duration,
    /// See [`ReliabilityConfig::total_timeout_ms`].
    pub total_timeout: Duration,
    /// See [`ReliabilityConfig::max_concurrent`].
    pub max_concurrent: Option<u32>,
    /// See [`ReliabilityConfig::max_queue`].
    pub max_queue: u32,
    /// See [`ReliabilityConfig::queue_timeout_ms`].
    pub queue_timeout: Duration,
}

impl ReliabilityConfig {
    /// `backend` over `self` (the global section) over the defaults.
    pub fn resolve(&self, backend: Option<&ReliabilityConfig>) -> Reliability {
        let empty = ReliabilityConfig::default();
        let backend = backend.unwrap_or(&empty);
        let ms = |own: Option<u64>, global: Option<u64>, default: u64| {
            Duration::from_millis(own.or(global).unwrap_or(default))
        };
        Reliability {
            max_attempts: backend.max_attempts.or(self.max_attempts).unwrap_or(2),
            backoff_base: ms(backend.backoff_base_ms, self.backoff_base_ms, 200),
            backoff_max: ms(backend.backoff_max_ms, self.backoff_max_ms, 5_000),
            max_retry_after: ms(backend.max_retry_after_ms, self.max_retry_after_ms, 10_000),
            breaker_failures: backend
                .breaker_failures
                .or(self.breaker_failures)
                .unwrap_or(5),
            breaker_cooldown: ms(
                backend.breaker_cooldown_ms,
                self.breaker_cooldown_ms,
                30_000,
            ),
            connect_timeout: ms(backend.connect_timeout_ms, self.connect_timeout_ms, 10_000),
            first_byte_timeout: ms(
                backend.first_byte_timeout_ms,
                self.first_byte_timeout_ms,
                120_000,
            ),
            idle_timeout: ms(backend.idle_timeout_ms, self.idle_timeout_ms, 60_000),
            total_timeout: ms(backend.total_timeout_ms, self.total_timeout_ms, 600_000),
            max_concurrent: backend.max_concurrent.or(self.max_concurrent),
            max_queue: backend.max_queue.or(self.max_queue).unwrap_or(0),
            queue_timeout: ms(backend.queue_timeout_ms, self.queue_timeout_ms, 30_000),
        }
    }
}

/// An alias: one target, a fallback chain, or weighted targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AliasConfig {
    /// `name = "backend/model"`: one target.
    Single(String),
    /// `name = { fallback = ["a/x", "b/y"] }`: the next target is tried when
    /// one fails retryably before any output reached the client.
    Fallback(FallbackAlias),
    /// `name = { weighted = [{ target = "a/x", weight = 3 }, ...] }`: each
    /// request picks one target by weight (targets whose breaker is open are
    /// skipped).
    Weighted(WeightedAlias),
}

/// The `fallback` form of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackAlias {
    /// Targets in the order they are tried.
    #[schemars(length(min = 1))]
    pub fallback: Vec<String>,
}

/// The `weighted` form of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedAlias {
    /// Targets and their weights.
    #[schemars(length(min = 1))]
    pub weighted: Vec<WeightedTarget>,
}

/// One target of a weighted alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedTarget {
    /// A `backend/model` (or any name rules 2–4 resolve).
    pub target: String,
    /// Relative share of requests (default 1).
    #[serde(default = "default_weight")]
    #[schemars(range(min = 1))]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

impl AliasConfig {
    /// The target names, in order.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            AliasConfig::Single(target) => vec![target.as_str()],
            AliasConfig::Fallback(chain) => chain.fallback.iter().map(String::as_str).collect(),
            AliasConfig::Weighted(weighted) => weighted
                .weighted
                .iter()
                .map(|target| target.target.as_str())
                .collect(),
        }
    }
}

impl From<&str> for AliasConfig {
    fn from(target: &str) -> Self {
        AliasConfig::Single(target.to_owned())
    }
}
