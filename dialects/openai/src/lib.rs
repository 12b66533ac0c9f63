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
pub mod passthrough;
pub mod request;
pub mod response;
pub mod stream;

/// The dialect's name in config and in the registry.
pub const DIALECT: &str = "openai";

use gateway_core::GatewayError;

/// Turns a body deserialisation failure into a 400 that names the parameter
/// at fault, in the words OpenAI itself uses.
pub(crate) fn body_error(err: serde_path_to_error::Error<serde_json::Error>) -> GatewayError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return GatewayError::invalid_request(format!(
            "the request body is not valid JSON: {inner}"
        ));
    }
    let text = inner.to_string();
    if let Some(rest) = text.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let param = if path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return GatewayError::invalid_param(
            param.clone(),
            format!("missing required parameter: '{param}'"),
        );
    }
    if path == "." {
        return GatewayError::invalid_request(format!("the request body is invalid: {text}"));
    }
    GatewayError::invalid_param(path.clone(), format!("'{path}': {text}"))
}
