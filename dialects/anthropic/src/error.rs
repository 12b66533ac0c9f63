//! Anthropic's error shape: `{"type":"error","error":{"type","message"}}`.

use gateway_core::{ErrorKind, GatewayError};
use serde_json::{Value, json};

/// Anthropic's error `type` for each kind, so the SDK's exception classes
/// line up with the status.
pub fn error_type(err: &GatewayError) -> &'static str {
    match err.status() {
        400 | 405 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => match err.kind {
            ErrorKind::Unavailable => "overloaded_error",
            _ => "api_error",
        },
    }
}

/// Renders `err` in Anthropic's error shape.
pub fn error_body(err: &GatewayError) -> Value {
    json!({
        "type": "error",
        "error": { "type": error_type(err), "message": err.message },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_anthropic_errors() {
        let mut err = GatewayError::not_found("unknown model 'x'");
        err.param = Some("model".into());
        insta::assert_snapshot!(error_body(&err).to_string(), @r#"{"type":"error","error":{"type":"not_found_error","message":"unknown model 'x'"}}"#);
        let err = GatewayError::from_upstream_answer(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!((err.status(), err.retryable), (502, true));
    }
}
