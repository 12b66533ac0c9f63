//! The `ollama` dialect: Ollama's native `/api/chat`.
//!
//! `endpoint` is Ollama's base URL (`http://127.0.0.1:11434`); the adapter
//! appends `api/chat`. Streams are NDJSON. A credential, when configured
//! (Ollama behind an authenticating proxy), is sent as
//! `Authorization: Bearer`.

use std::sync::Arc;

use adapter_http::{Upstream, body_bytes, decode_ndjson, secret_header};
use async_trait::async_trait;
use dialect_ollama::{LineDecoder, decode_response, encode_request};
use gateway_core::registry::{AdapterFactory, BackendContext, BuildError};
use gateway_core::{ChatRequest, ChatResponse, ChatStream, GatewayError, ProviderAdapter};
use http::header::AUTHORIZATION;

pub use dialect_ollama::DIALECT;

/// The chat path relative to the endpoint.
const CHAT: &str = "api/chat";

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
            upstream: Upstream::new(endpoint, headers, backend.connect_timeout)?,
        })
    }
}

/// Ollama's made-up tool call ids start with the gateway's request id.
fn id_prefix(request: &ChatRequest) -> String {
    request.request_id.clone().unwrap_or_else(|| "0".to_owned())
}

#[async_trait]
impl ProviderAdapter for OllamaAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let body = encode_request(&request, &self.backend)?;
        // Ollama streams by default: the body always says which it wants.
        let response = self.upstream.post_json(CHAT, &body, false).await?;
        decode_response(&body_bytes(response).await?, &id_prefix(&request))
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let body = encode_request(&request, &self.backend)?;
        let response = self.upstream.post_json(CHAT, &body, false).await?;
        Ok(decode_ndjson(
            response,
            LineDecoder::new(&id_prefix(&request)),
        ))
    }
}
