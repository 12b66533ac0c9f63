//! Anthropic's Messages API dialect: its wire types and their mapping to and
//! from the canonical types, in both directions.
//!
//! The Anthropic frontend decodes requests and encodes responses, streams
//! and errors with it; the Anthropic adapter encodes requests and decodes
//! responses, streams and errors.
//!
//! Architecture invariant: no I/O here, as in `dialect-openai`.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

/// The dialect's name in config and in the registry.
pub const DIALECT: &str = "anthropic";

/// The `anthropic-version` header value the adapter sends.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` sent when neither the caller nor the model's config set one;
/// Anthropic requires the field.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
