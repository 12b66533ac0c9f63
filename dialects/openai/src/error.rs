//! OpenAI's error shape: `{"error":{"message","type","param","code"}}`.

use gateway_core::{ErrorKind, GatewayError};
use serde::{Deserialize, Serialize};

/// The error object inside OpenAI's error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Human-readable message.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The parameter at fault.
    pub param: Option<String>,
    /// A machine-readable code.
    pub code: Option<String>,
}

/// The whole error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// OpenAI's `type` for each kind, so the SDK's exception classes line up.
fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest
        | ErrorKind::Unsupported
        | ErrorKind::NotFound
        | ErrorKind::PayloadTooLarge => "invalid_request_error",
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Upstream | ErrorKind::Unavailable | ErrorKind::Timeout => "api_error",
        ErrorKind::Internal => "server_error",
    }
}

/// Renders `err` in OpenAI's error shape.
pub fn error_body(err: &GatewayError) -> ErrorBody {
    let code = match err.kind {
        ErrorKind::NotFound if err.param.as_deref() == Some("model") => "model_not_found",
        kind => kind.code(),
    };
    ErrorBody {
        error: ErrorObject {
            message: err.message.clone(),
            kind: error_type(err.kind).to_owned(),
            param: err.param.clone(),
            code: Some(code.to_owned()),
        },
    }
}

/// The message an OpenAI-compatible upstream put in its error body, or the
/// body itself (cut short) when it is not in OpenAI's shape.
pub fn upstream_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Loose {
        error: LooseError,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum LooseError {
        Object { message: String },
        Text(String),
    }
    match serde_json::from_slice::<Loose>(body) {
        Ok(Loose {
            error: LooseError::Object { message } | LooseError::Text(message),
        }) => message,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let trimmed = text.trim();
            let cut: String = trimmed.chars().take(300).collect();
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
    let message = upstream_message(body);
    GatewayError::from_upstream_status(
        status,
        format!("upstream answered {status}: {message}"),
        &String::from_utf8_lossy(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_model_has_openai_code() {
        let mut err = GatewayError::not_found("unknown model 'x'");
        err.param = Some("model".into());
        let body = serde_json::to_string(&error_body(&err)).expect("json");
        insta::assert_snapshot!(body, @r#"{"error":{"message":"unknown model 'x'","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#);
    }

    #[test]
    fn upstream_messages_are_extracted_or_quoted() {
        assert_eq!(
            upstream_message(br#"{"error":{"message":"quota"}}"#),
            "quota"
        );
        assert_eq!(upstream_message(br#"{"error":"plain"}"#), "plain");
        assert_eq!(
            upstream_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(upstream_message(b""), "(empty body)");
        let err = from_upstream(503, br#"{"error":{"message":"overloaded"}}"#);
        assert_eq!(err.status(), 502);
        assert_eq!(err.message, "upstream answered 503: overloaded");
    }
}
