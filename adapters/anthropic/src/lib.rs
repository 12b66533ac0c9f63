//! The `anthropic` dialect: Anthropic's Messages API.
//!
//! `endpoint` is the base URL the Anthropic SDK uses
//! (`https://api.anthropic.com`); the adapter appends `v1/messages`. The
//! credential is sent as `x-api-key`, with `anthropic-version: 2023-06-01`
//! unless a pass-through caller sent its own.

use std::sync::Arc;

use adapter_http::{
    PassthroughFuture, Upstream, UpstreamResponse, body_bytes, decode_sse, secret_header,
};
use async_trait::async_trait;
use bytes::Bytes;
use dialect_anthropic::request::{encode_plain_request, encode_request};
use dialect_anthropic::response::decode_response;
use dialect_anthropic::stream::EventDecoder;
use gateway_core::registry::{AdapterFactory, BackendContext, BuildError};
use gateway_core::{
    ChatRequest, ChatResponse, ChatStream, GatewayError, PassthroughRequest, ProviderAdapter,
};
use http::{HeaderName, HeaderValue};

pub use dialect_anthropic::DIALECT;

/// The Messages API path relative to the endpoint.
const MESSAGES: &str = "v1/messages";
/// The token counting path relative to the endpoint.
const COUNT_TOKENS: &str = "v1/messages/count_tokens";

gateway_core::inventory::submit! {
    AdapterFactory {
        dialect: DIALECT,
        description: "Anthropic Messages API",
        build,
    }
}

fn build(backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
    Ok(Arc::new(AnthropicAdapter::new(backend)?))
}

/// An adapter for one Anthropic backend.
#[derive(Debug)]
pub struct AnthropicAdapter {
    backend: String,
    upstream: Upstream,
}

impl AnthropicAdapter {
    /// Builds the adapter; the backend must have an endpoint.
    pub fn new(backend: &BackendContext) -> Result<Self, BuildError> {
        let endpoint = backend.endpoint.as_ref().ok_or_else(|| {
            BuildError::field(
                "endpoint",
                "the anthropic dialect needs an endpoint, for example https://api.anthropic.com",
            )
        })?;
        let mut headers = vec![(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(dialect_anthropic::API_VERSION),
        )];
        if let Some(secret) = &backend.credential {
            headers.push((
                HeaderName::from_static("x-api-key"),
                secret_header(secret.expose())?,
            ));
        }
        Ok(Self {
            backend: backend.id.clone(),
            upstream: Upstream::new(endpoint, headers, backend.connect_timeout)?,
        })
    }

    /// POSTs `request` to `v1/messages`; a plain request is serialised
    /// without a `Value` tree (see [`encode_plain_request`]).
    async fn post_messages(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<UpstreamResponse, GatewayError> {
        if let Some(body) = encode_plain_request(request) {
            return self
                .upstream
                .post_encoded(MESSAGES, Bytes::from(body), stream)
                .await;
        }
        let body = encode_request(request, &self.backend)?;
        self.upstream.post_json(MESSAGES, &body, stream).await
    }
}

#[async_trait]
impl ProviderAdapter for AnthropicAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let response = self.post_messages(&request, false).await?;
        decode_response(&body_bytes(response).await?)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let response = self.post_messages(&request, true).await?;
        Ok(decode_sse(response, EventDecoder::default()))
    }

    fn supports_count_tokens(&self) -> bool {
        true
    }

    /// Anthropic's `v1/messages/count_tokens`.
    async fn count_tokens(&self, request: ChatRequest) -> Result<u64, GatewayError> {
        let mut body = encode_request(&request, &self.backend)?;
        if let Some(object) = body.as_object_mut() {
            object.remove("max_tokens");
            object.remove("stream");
        }
        let response = self.upstream.post_json(COUNT_TOKENS, &body, false).await?;
        let counted: serde_json::Value = serde_json::from_slice(&body_bytes(response).await?)
            .map_err(|err| GatewayError::upstream(format!("bad count_tokens answer: {err}")))?;
        counted["input_tokens"]
            .as_u64()
            .ok_or_else(|| GatewayError::upstream("the count_tokens answer has no input_tokens"))
    }

    fn supports_passthrough(&self) -> bool {
        true
    }

    // Not `async`: the upstream's future is handed on as it is, boxed
    // once, rather than wrapped in one more future and boxed again.
    fn passthrough<'life0, 'async_trait>(
        &'life0 self,
        request: PassthroughRequest,
    ) -> PassthroughFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.upstream.passthrough(request)
    }
}
