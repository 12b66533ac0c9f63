//! The `openai` dialect: any server that speaks OpenAI's chat completions
//! (OpenAI, vLLM, DeepSeek, Groq, LM Studio, llama.cpp, ...).
//!
//! `endpoint` is the base URL the OpenAI SDK would use, version prefix
//! included (`https://api.openai.com/v1`); the adapter appends
//! `chat/completions` and `models`. The credential, when there is one, is
//! sent as `Authorization: Bearer`.

use std::sync::Arc;

use adapter_http::{
    PassthroughFuture, Upstream, body_bytes, decode_sse, error_answer, secret_header,
};
use async_trait::async_trait;
use dialect_openai::request::encode_request;
use dialect_openai::response::decode_response;
use dialect_openai::stream::ChunkDecoder;
use gateway_core::registry::{AdapterFactory, BackendContext, BuildError};
use gateway_core::{
    ChatRequest, ChatResponse, ChatStream, GatewayError, PassthroughRequest, ProviderAdapter,
};
use http::header::AUTHORIZATION;

pub use dialect_openai::DIALECT;

/// The chat completions path relative to the endpoint.
const CHAT: &str = "chat/completions";

gateway_core::inventory::submit! {
    AdapterFactory {
        dialect: DIALECT,
        description: "OpenAI-compatible chat completions (OpenAI, vLLM, DeepSeek, Groq, LM Studio, ...)",
        build,
    }
}

fn build(backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
    Ok(Arc::new(OpenAiAdapter::new(backend)?))
}

/// An adapter for one OpenAI-compatible backend. Holds one connection pool
/// for the backend's whole life.
#[derive(Debug)]
pub struct OpenAiAdapter {
    backend: String,
    upstream: Upstream,
}

impl OpenAiAdapter {
    /// Builds the adapter; the backend must have an endpoint.
    pub fn new(backend: &BackendContext) -> Result<Self, BuildError> {
        let endpoint = backend.endpoint.as_ref().ok_or_else(|| {
            BuildError::field(
                "endpoint",
                "the openai dialect needs an endpoint, for example https://api.openai.com/v1",
            )
        })?;
        let mut headers = Vec::new();
        if let Some(secret) = &backend.credential {
            headers.push((
                AUTHORIZATION,
                secret_header(&format!("Bearer {}", secret.expose()))?,
            ));
        }
        Ok(Self {
            backend: backend.id.clone(),
            upstream: Upstream::new(endpoint, headers, backend.connect_timeout)?,
        })
    }
}

#[async_trait]
impl ProviderAdapter for OpenAiAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let body = encode_request(&request, &self.backend)?;
        let response = self.upstream.post_json(CHAT, &body, false).await?;
        decode_response(&body_bytes(response).await?)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let body = encode_request(&request, &self.backend)?;
        let response = self.upstream.post_json(CHAT, &body, true).await?;
        Ok(decode_sse(response, ChunkDecoder::default()))
    }

    async fn list_models(&self) -> Result<Vec<String>, GatewayError> {
        let response = self.upstream.get("models").await?;
        if !response.status().is_success() {
            return Err(error_answer(response).await);
        }
        let listing: serde_json::Value = serde_json::from_slice(&body_bytes(response).await?)
            .map_err(|err| GatewayError::upstream(format!("bad model listing: {err}")))?;
        Ok(listing["data"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .filter_map(|model| model["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
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
