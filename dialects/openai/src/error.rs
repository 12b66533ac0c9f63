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
}
