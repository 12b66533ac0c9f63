//! The `ollama` dialect: Ollama's native `/api/chat`.
//!
//! `endpoint` is Ollama's base URL (`http://127.0.0.1:11434`); the adapter
//! appends `api/chat`. Streams are NDJSON. A credential, when configured
//! (Ollama behind an authenticating proxy), is sent as
//! `Authorization: Bearer`.

use std::sync::Arc;

use adapter_http::{Upstream, decode_ndjson, error_answer, secret_header, transport_error};
use async_trait::async_trait;
use bytes::Bytes;
use dialect_ollama::{LineDecoder, decode_response, encode_request, from_upstream};
use gateway_core::registry::{AdapterFactory, BackendContext, BuildError};
use gateway_core::{ChatRequest, ChatResponse, ChatStream, GatewayError, ProviderAdapter};
use http::HeaderMap;
use http::header::AUTHORIZATION;

pub use dialect_ollama::DIALECT;

gateway_core::inventory::submit! {
    AdapterFactory {
        dialect: DIALECT,
        description: "Ollama /api/chat",
        build,
    }
}

fn build(backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
    Ok(Arc::new(OllamaAdapter::new(backend)?))
}

/// An adapter for one Ollama server.
#[derive(Debug)]
pub struct OllamaAdapter {
    backend: String,
    upstream: Upstream,
}

impl OllamaAdapter {
    /// Builds the adapter; the backend must have an endpoint.
    pub fn new(backend: &BackendContext) -> Result<Self, BuildError> {
        let endpoint = backend.endpoint.as_ref().ok_or_else(|| {
            BuildError::field(
                "endpoint",
                "the ollama dialect needs an endpoint, for example http://127.0.0.1:11434",
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
            upstream: Upstream::new(endpoint, headers)?,
        })
    }

    async fn post(&self, request: &ChatRequest) -> Result<reqwest::Response, GatewayError> {
        let body = encode_request(request, &self.backend)?;
        let bytes = serde_json::to_vec(&body)
            .map_err(|err| GatewayError::internal(format!("cannot encode request: {err}")))?;
        let response = self
            .upstream
            .post("api/chat", Bytes::from(bytes), false, &HeaderMap::new())
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, body) = error_answer(response).await;
        Err(from_upstream(status, &body))
    }
}

#[async_trait]
impl ProviderAdapter for OllamaAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let response = self.post(&request).await?;
        let body = response.bytes().await.map_err(transport_error)?;
        decode_response(&body, request.request_id.as_deref().unwrap_or("0"))
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let response = self.post(&request).await?;
        Ok(decode_ndjson(
            response,
            LineDecoder::new(request.request_id.as_deref().unwrap_or("0")),
        ))
    }
}
