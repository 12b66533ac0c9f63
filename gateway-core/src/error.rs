//! The one error model every layer returns and every frontend renders.

use std::time::Duration;

/// What went wrong, coarsely; decides the HTTP status and each dialect's
/// error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or asks for something impossible (400).
    InvalidRequest,
    /// The request uses a feature the target backend cannot carry (400).
    Unsupported,
    /// Missing or bad client token (401).
    Unauthenticated,
    /// The token may not use this model (403).
    PermissionDenied,
    /// Unknown model, route or path (404).
    NotFound,
    /// Body larger than allowed (413).
    PayloadTooLarge,
    /// A limit was hit, here or upstream (429).
    RateLimited,
    /// The upstream failed or answered something unusable (502).
    Upstream,
    /// The backend cannot take the request now (503).
    Unavailable,
    /// The upstream did not answer in time (504).
    Timeout,
    /// A bug or an unexpected state inside the gateway (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind is reported with (DESIGN §5).
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::Unsupported => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Upstream => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal => 500,
        }
    }

    /// A stable snake_case name, used as the `code` in error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unsupported => "unsupported_feature",
            ErrorKind::Unauthenticated => "invalid_api_key",
            ErrorKind::PermissionDenied => "model_not_allowed",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Unavailable => "backend_unavailable",
            ErrorKind::Timeout => "upstream_timeout",
            ErrorKind::Internal => "internal_error",
        }
    }
}

/// Where a failure came from; retry and fallback logic use it together with
/// [`GatewayError::retryable`] instead of matching on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorOrigin {
    /// The caller's request or credentials.
    Client,
    /// The gateway itself (config, routing, internal state).
    Gateway,
    /// The upstream provider or the network to it.
    Upstream,
}

/// A failure anywhere in the gateway, with what each frontend needs to render
/// it in its own dialect.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct GatewayError {
    /// Coarse classification; decides the status.
    pub kind: ErrorKind,
    /// Human-readable explanation, safe to show to the caller.
    pub message: String,
    /// Where it came from.
    pub origin: ErrorOrigin,
    /// Whether trying again (maybe elsewhere) may succeed.
    pub retryable: bool,
    /// The request parameter at fault, for client errors (`messages[0].role`).
    pub param: Option<String>,
    /// The backend involved, if any.
    pub backend: Option<String>,
    /// The upstream's HTTP status, when it answered with an error.
    pub upstream_status: Option<u16>,
    /// The upstream's error body, truncated; never contains our credentials.
    pub upstream_body: Option<String>,
    /// How long the caller should wait before retrying, when known.
    pub retry_after: Option<Duration>,
    /// Overrides [`ErrorKind::status`]; used by pass-through, which keeps the
    /// upstream's status.
    pub status_override: Option<u16>,
}

/// The longest upstream body kept in an error, in bytes.
const MAX_UPSTREAM_BODY: usize = 2048;

impl GatewayError {
    /// A new error of `kind` with `message`, from the gateway, not retryable.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            origin: ErrorOrigin::Gateway,
            retryable: false,
            param: None,
            backend: None,
            upstream_status: None,
            upstream_body: None,
            retry_after: None,
            status_override: None,
        }
    }

    /// The caller's request is malformed.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message).with_origin(ErrorOrigin::Client)
    }

    /// A request parameter is malformed.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        let mut err = Self::invalid_request(message);
        err.param = Some(param.into());
        err
    }

    /// The request uses a feature `backend` cannot carry.
    pub fn unsupported(feature: &str, backend: &str, dialect: &str) -> Self {
        let mut err = Self::new(
            ErrorKind::Unsupported,
            format!(
                "'{feature}' is not supported by backend '{backend}' (dialect {dialect}); \
                 remove it or route to a backend that supports it"
            ),
        )
        .with_origin(ErrorOrigin::Client);
        err.param = Some(feature.to_owned());
        err.backend = Some(backend.to_owned());
        err
    }

    /// Something unknown was asked for.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message).with_origin(ErrorOrigin::Client)
    }

    /// The gateway reached an unexpected state.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The upstream failed in a way that has no HTTP status (bad body,
    /// broken stream).
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, message).with_origin(ErrorOrigin::Upstream)
    }

    /// The upstream answered with an error status. Kinds follow DESIGN §4 for
    /// translated requests: 429 stays 429, 5xx becomes 502, a rejected
    /// request stays 400, and a backend credential or model the upstream
    /// refuses is the gateway's misconfiguration, reported as 502.
    pub fn from_upstream_status(status: u16, message: impl Into<String>, body: &str) -> Self {
        let (kind, retryable) = match status {
            429 => (ErrorKind::RateLimited, true),
            408 => (ErrorKind::Timeout, true),
            400 | 413 | 422 => (ErrorKind::InvalidRequest, false),
            500..=599 => (ErrorKind::Upstream, true),
            _ => (ErrorKind::Upstream, false),
        };
        let mut err = Self::new(kind, message).with_origin(ErrorOrigin::Upstream);
        err.retryable = retryable;
        err.upstream_status = Some(status);
        err.upstream_body = Some(truncate(body, MAX_UPSTREAM_BODY).to_owned());
        err
    }

    /// The upstream answered `status` with `body`: the message is the one the
    /// body carries (`error.message` or `error` as text, which covers the
    /// OpenAI, Anthropic, Google and Ollama shapes) or an excerpt of it.
    pub fn from_upstream_answer(status: u16, body: &[u8]) -> Self {
        Self::from_upstream_status(
            status,
            format!("upstream answered {status}: {}", upstream_message(body)),
            &String::from_utf8_lossy(body),
        )
    }

    /// The upstream could not be reached or broke the connection.
    pub fn connect(message: impl Into<String>) -> Self {
        let mut err = Self::upstream(message);
        err.retryable = true;
        err
    }

    /// The upstream did not answer in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        let mut err = Self::new(ErrorKind::Timeout, message).with_origin(ErrorOrigin::Upstream);
        err.retryable = true;
        err
    }

    /// Sets where the error came from.
    pub fn with_origin(mut self, origin: ErrorOrigin) -> Self {
        self.origin = origin;
        self
    }

    /// Names the backend involved, unless one is named already.
    pub fn with_backend(mut self, backend: &str) -> Self {
        if self.backend.is_none() {
            self.backend = Some(backend.to_owned());
        }
        self
    }

    /// The HTTP status a frontend should answer with.
    pub fn status(&self) -> u16 {
        self.status_override.unwrap_or_else(|| self.kind.status())
    }
}

/// An upstream's `Retry-After` in whole seconds, when it sent one (the
/// HTTP-date form is not used by model providers and is ignored).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The message in an upstream error body, or the start of the body itself.
pub fn upstream_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let error = &value["error"];
        if let Some(message) = error["message"].as_str().or_else(|| error.as_str()) {
            return message.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.trim().chars().take(300).collect();
    if excerpt.is_empty() {
        "(empty body)".to_owned()
    } else {
        excerpt
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_statuses_map_per_design() {
        let cases = [
            (429, 429, true),
            (500, 502, true),
            (503, 502, true),
            (400, 400, false),
            (401, 502, false),
            (404, 502, false),
        ];
        for (upstream, expected, retryable) in cases {
            let err = GatewayError::from_upstream_status(upstream, "x", "body");
            assert_eq!(err.status(), expected, "upstream {upstream}");
            assert_eq!(err.retryable, retryable, "upstream {upstream}");
            assert_eq!(err.upstream_status, Some(upstream));
        }
    }

    #[test]
    fn upstream_messages_are_extracted_from_every_shape_or_quoted() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{"error":{"message":"quota","type":"x"}}"#, "quota"),
            (
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "Overloaded",
            ),
            (
                br#"{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}"#,
                "slow down",
            ),
            (br#"{"error":"model 'x' not found"}"#, "model 'x' not found"),
            (b"<html>bad gateway</html>", "<html>bad gateway</html>"),
            (b"  ", "(empty body)"),
        ];
        for (body, expected) in cases {
            assert_eq!(upstream_message(body), expected);
        }
        let err = GatewayError::from_upstream_answer(503, br#"{"error":{"message":"overloaded"}}"#);
        assert_eq!(
            (err.status(), err.message.as_str()),
            (502, "upstream answered 503: overloaded")
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let text = "é".repeat(2000);
        let err = GatewayError::from_upstream_status(500, "x", &text);
        let kept = err.upstream_body.unwrap_or_default();
        assert!(kept.len() <= MAX_UPSTREAM_BODY);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
