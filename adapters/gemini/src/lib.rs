//! The `gemini` dialect: Google's Gemini API (`generateContent`).
//!
//! `endpoint` is the base URL the GenAI SDK uses
//! (`https://generativelanguage.googleapis.com`); the adapter appends
//! `v1beta/models/{model}:generateContent` (or
//! `:streamGenerateContent?alt=sse`). The credential is sent as
//! `x-goog-api-key`.

use std::sync::Arc;

use adapter_http::{PassthroughFuture, Upstream, body_bytes, decode_sse, secret_header};
use async_trait::async_trait;
use dialect_gemini::model_path;
use dialect_gemini::request::encode_request;
use dialect_gemini::response::decode_response;
use dialect_gemini::stream::ChunkDecoder;
use gateway_core::registry::{AdapterFactory, BackendContext, BuildError};
use gateway_core::{
    ChatRequest, ChatResponse, ChatStream, GatewayError, PassthroughRequest, ProviderAdapter,
};
use http::HeaderName;

pub use dialect_gemini::DIALECT;

gateway_core::inventory::submit! {
    AdapterFactory {
        dialect: DIALECT,
        description: "Google Gemini generateContent",
        build,
    }
}

fn build(backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
    Ok(Arc::new(GeminiAdapter::new(backend)?))
}

/// An adapter for one Gemini backend.
#[derive(Debug)]
pub struct GeminiAdapter {
    backend: String,
    upstream: Upstream,
}

impl GeminiAdapter {
    /// Builds the adapter; the backend must have an endpoint.
    pub fn new(backend: &BackendContext) -> Result<Self, BuildError> {
        let endpoint = backend.endpoint.as_ref().ok_or_else(|| {
            BuildError::field(
                "endpoint",
                "the gemini dialect needs an endpoint, for example https://generativelanguage.googleapis.com",
            )
        })?;
        let mut headers = Vec::new();
        if let Some(secret) = &backend.credential {
            headers.push((
                HeaderName::from_static("x-goog-api-key"),
                secret_header(secret.expose())?,
            ));
        }
        Ok(Self {
            backend: backend.id.clone(),
            upstream: Upstream::new(endpoint, headers, backend.connect_timeout)?,
        })
    }
}

#[async_trait]
impl ProviderAdapter for GeminiAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let body = encode_request(&request, &self.backend)?;
        let path = model_path(&request.model, "generateContent");
        let response = self.upstream.post_json(&path, &body, false).await?;
        decode_response(&body_bytes(response).await?)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let body = encode_request(&request, &self.backend)?;
        let path = model_path(&request.model, "streamGenerateContent?alt=sse");
        let response = self.upstream.post_json(&path, &body, true).await?;
        Ok(decode_sse(response, ChunkDecoder::default()))
    }

    fn supports_count_tokens(&self) -> bool {
        true
    }

    /// Gemini's `countTokens`, given the whole request.
    async fn count_tokens(&self, request: ChatRequest) -> Result<u64, GatewayError> {
        let mut inner = encode_request(&request, &self.backend)?;
        inner["model"] = serde_json::json!(format!("models/{}", request.model));
        let body = serde_json::json!({ "generateContentRequest": inner });
        let path = model_path(&request.model, "countTokens");
        let response = self.upstream.post_json(&path, &body, false).await?;
        let counted: serde_json::Value = serde_json::from_slice(&body_bytes(response).await?)
            .map_err(|err| GatewayError::upstream(format!("bad countTokens answer: {err}")))?;
        counted["totalTokens"]
            .as_u64()
            .ok_or_else(|| GatewayError::upstream("the countTokens answer has no totalTokens"))
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
