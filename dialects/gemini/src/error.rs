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

/// The message in a Google error body, or the body itself (cut short).
pub fn upstream_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value["error"]["message"].is_string() => value["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        _ => {
            let text = String::from_utf8_lossy(body);
            let cut: String = text.trim().chars().take(300).collect();
            if cut.is_empty() {
                "(empty body)".to_owned()
            } else {
                cut
            }
        }
    }
}

/// Maps an upstream error answer to a [`GatewayError`] (translated path).
pub fn from_upstream(status: u16, body: &[u8]) -> GatewayError {
    GatewayError::from_upstream_status(
        status,
        format!("upstream answered {status}: {}", upstream_message(body)),
        &String::from_utf8_lossy(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_google_errors() {
        let err = GatewayError::not_found("unknown model 'x'");
        insta::assert_snapshot!(error_body(&err).to_string(), @r#"{"error":{"code":404,"message":"unknown model 'x'","status":"NOT_FOUND"}}"#);
        assert_eq!(
            upstream_message(
                br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#
            ),
            "quota"
        );
    }
}
