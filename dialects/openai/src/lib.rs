//! OpenAI's chat completions dialect: its wire types and their mapping to and
//! from the canonical types, in both directions.
//!
//! Both sides of the gateway use this crate: the OpenAI frontend decodes
//! requests and encodes responses, streams and errors; the OpenAI adapter
//! encodes requests and decodes responses, streams and errors.
//!
//! Architecture invariant: no I/O here. Functions take bytes or values and
//! return bytes or values, so every mapping is unit-testable and shared.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

/// The dialect's name in config and in the registry.
pub const DIALECT: &str = "openai";
