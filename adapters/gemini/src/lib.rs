//! The `gemini` dialect: Google's Gemini API (`generateContent`).
//!
//! `endpoint` is the base URL the GenAI SDK uses
//! (`https://generativelanguage.googleapis.com`); the adapter appends
//! `v1beta/models/{model}:generateContent` (or
//! `:streamGenerateContent?alt=sse`). The credential is sent as
//! `x-goog-api-key`.

use std::sync::Arc;

use adapter_http::{
    Upstream, decode_sse, error_answer, passthrough_response, secret_header, transport_error,
};
use async_trait::async_trait;
use bytes::Bytes;
use dialect_gemini::error::from_upstream;
use dialect_gemini::model_path;
use dialect_gemini::request::encode_request;
use dialect_gemini::response::decode_response;
use dialect_gemini::stream::ChunkDecoder;
use gateway_core::registry::{AdapterFactory, BackendContext, BuildError};
use gateway_core::{
    ChatRequest, ChatResponse, ChatStream, GatewayError, PassthroughRequest, PassthroughResponse,
    ProviderAdapter,
};
use http::{HeaderMap, HeaderName};

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
            upstream: Upstream::new(endpoint, headers)?,
        })
    }

    async fn post(&self, request: &ChatRequest) -> Result<reqwest::Response, GatewayError> {
        let body = encode_request(request, &self.backend)?;
        let bytes = serde_json::to_vec(&body)
            .map_err(|err| GatewayError::internal(format!("cannot encode request: {err}")))?;
        let path = if request.stream {
            model_path(&request.model, "streamGenerateContent?alt=sse")
        } else {
            model_path(&request.model, "generateContent")
        };
        let response = self
            .upstream
            .post(&path, Bytes::from(bytes), request.stream, &HeaderMap::new())
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, body) = error_answer(response).await;
        Err(from_upstream(status, &body))
    }
}

#[async_trait]
impl ProviderAdapter for GeminiAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let response = self.post(&request).await?;
        let body = response.bytes().await.map_err(transport_error)?;
        decode_response(&body)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let response = self.post(&request).await?;
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
        let bytes = serde_json::to_vec(&body)
            .map_err(|err| GatewayError::internal(format!("cannot encode request: {err}")))?;
        let path = model_path(&request.model, "countTokens");
        let response = self
            .upstream
            .post(&path, Bytes::from(bytes), false, &HeaderMap::new())
            .await?;
        if !response.status().is_success() {
            let (status, body) = error_answer(response).await;
            return Err(from_upstream(status, &body));
        }
        let body = response.bytes().await.map_err(transport_error)?;
        let counted: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|err| GatewayError::upstream(format!("bad countTokens answer: {err}")))?;
        counted["totalTokens"]
            .as_u64()
            .ok_or_else(|| GatewayError::upstream("the countTokens answer has no totalTokens"))
    }

    fn supports_passthrough(&self) -> bool {
        true
    }

    async fn passthrough(
        &self,
        request: PassthroughRequest,
    ) -> Result<PassthroughResponse, GatewayError> {
        let response = self
            .upstream
            .post(
                &request.operation,
                request.body,
                request.stream,
                &request.headers,
            )
            .await?;
        Ok(passthrough_response(response))
    }
}
