//! Google's error shape: `{"error":{"code","message","status"}}`.

use gateway_core::GatewayError;
use serde_json::{Value, json};

/// Google's canonical status name for an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 405 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Renders `err` in Google's error shape.
pub fn error_body(err: &GatewayError) -> Value {
    let status = err.status();
    json!({"error": {"code": status, "message": err.message, "status": status_name(status)}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_google_errors() {
        let err = GatewayError::not_found("unknown model 'x'");
        insta::assert_snapshot!(error_body(&err).to_string(), @r#"{"error":{"code":404,"message":"unknown model 'x'","status":"NOT_FOUND"}}"#);
    }
}
