//! The contract between the gateway and one upstream dialect.

use std::borrow::Cow;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use http::{HeaderMap, StatusCode};

use crate::body::SplicedBody;
use crate::error::GatewayError;
use crate::types::{ChatEvent, ChatRequest, ChatResponse};

/// A stream of canonical events. Dropping it cancels the upstream call.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, GatewayError>> + Send>>;

/// Raw upstream response bytes, chunk by chunk. Dropping it closes the
/// upstream connection.
pub type UpstreamBody = Pin<Box<dyn Stream<Item = Result<Bytes, GatewayError>> + Send>>;

/// A request forwarded without translation, because the caller's dialect is
/// the backend's.
#[derive(Debug, Clone)]
pub struct PassthroughRequest {
    /// The operation, as a path relative to the backend endpoint, query
    /// included (`chat/completions`, `v1/messages`,
    /// `v1beta/models/m:streamGenerateContent?alt=sse`).
    pub operation: Cow<'static, str>,
    /// The caller's body with only `model` rewritten (spliced in, so a
    /// long body is not copied).
    pub body: SplicedBody,
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// Caller headers the dialect defines as part of the request (such as
    /// `anthropic-version`), chosen by the frontend. Never credentials.
    pub headers: HeaderMap,
}

/// The upstream's answer to a [`PassthroughRequest`], status and all.
pub struct PassthroughResponse {
    /// The upstream's status, kept as is (DESIGN §4).
    pub status: StatusCode,
    /// The response headers worth returning (content type and the like;
    /// never hop-by-hop or credential headers).
    pub headers: HeaderMap,
    /// The body, streamed as it arrives.
    pub body: UpstreamBody,
}

/// True when `headers` say the body is a server-sent event stream.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"))
}

impl PassthroughResponse {
    /// True when the answer is a server-sent event stream.
    pub fn is_event_stream(&self) -> bool {
        is_event_stream(&self.headers)
    }
}

impl std::fmt::Debug for PassthroughResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassthroughResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// One upstream dialect: encodes canonical requests, calls the upstream and
/// decodes its answers. Built per backend by an
/// [`AdapterFactory`](crate::registry::AdapterFactory).
///
/// Adapters receive requests whose `model` is already the upstream model id.
#[async_trait]
pub trait ProviderAdapter: Send + Sync {
    /// The dialect name this adapter speaks (`openai`, `mock`, ...).
    fn dialect(&self) -> &str;

    /// Sends one request and waits for the whole answer.
    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError>;

    /// Sends one request and returns its events as they arrive. Returns an
    /// error, not a stream, when the upstream fails before its first byte.
    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError>;

    /// The models the upstream itself lists, when the dialect can ask.
    async fn list_models(&self) -> Result<Vec<String>, GatewayError> {
        Err(GatewayError::new(
            crate::ErrorKind::Unsupported,
            format!("dialect {} cannot list upstream models", self.dialect()),
        ))
    }

    /// Whether [`ProviderAdapter::count_tokens`] asks the upstream (or knows
    /// exactly); when false, frontends estimate.
    fn supports_count_tokens(&self) -> bool {
        false
    }

    /// The prompt tokens `request` would use, as the upstream counts them.
    async fn count_tokens(&self, request: ChatRequest) -> Result<u64, GatewayError> {
        let _ = request;
        Err(GatewayError::internal(format!(
            "dialect {} cannot count tokens",
            self.dialect()
        )))
    }

    /// Whether [`ProviderAdapter::passthrough`] is implemented.
    fn supports_passthrough(&self) -> bool {
        false
    }

    /// Forwards a same-dialect request untouched and returns the upstream's
    /// answer untouched. Upstream error statuses are returned as responses,
    /// not as errors; only failures to get an answer at all are errors.
    async fn passthrough(
        &self,
        request: PassthroughRequest,
    ) -> Result<PassthroughResponse, GatewayError> {
        let _ = request;
        Err(GatewayError::internal(format!(
            "dialect {} has no pass-through",
            self.dialect()
        )))
    }
}
