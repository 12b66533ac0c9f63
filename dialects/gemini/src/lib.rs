//! Google's Gemini / GenAI `generateContent` dialect: its wire types and
//! their mapping to and from the canonical types, in both directions.
//!
//! Field names are read in both spellings the API accepts (`systemInstruction`
//! and `system_instruction`, `parametersJsonSchema` and
//! `parameters_json_schema`), because the `google-genai` SDKs send a mix.
//! Gemini's function calls carry no ids; ids are made up on the way out
//! (`call_<n>`) and tool results are paired back to calls by id, or by name
//! in order when the caller sent none.
//!
//! Architecture invariant: no I/O here, as in `dialect-openai`.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

use serde_json::Value;

/// The dialect's name in config and in the registry.
pub const DIALECT: &str = "gemini";

/// The API path of `method` for `model`, relative to the endpoint. Model
/// ids that already name their collection (`tunedModels/x`) are kept.
pub fn model_path(model: &str, method: &str) -> String {
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        format!("v1beta/{model}:{method}")
    } else {
        format!("v1beta/models/{model}:{method}")
    }
}

/// The value of `key` in `object`, under its camelCase or snake_case name.
pub(crate) fn field<'a>(object: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    object
        .get(camel)
        .or_else(|| object.get(snake))
        .filter(|value| !value.is_null())
}
