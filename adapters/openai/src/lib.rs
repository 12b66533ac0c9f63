//! The `openai` dialect: any server that speaks OpenAI's chat completions
//! (OpenAI, vLLM, DeepSeek, Groq, LM Studio, llama.cpp, ...).
//!
//! `endpoint` is the base URL the OpenAI SDK would use, version prefix
//! included (`https://api.openai.com/v1`); the adapter appends
//! `/chat/completions` and `/models`. The credential, when there is one, is
//! sent as `Authorization: Bearer`.

mod client;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use dialect_openai::error::from_upstream;
use dialect_openai::request::encode_request;
use dialect_openai::response::decode_response;
use dialect_openai::stream::ChunkDecoder;
use eventsource_stream::Eventsource;
use futures::{StreamExt, TryStreamExt, stream};
use gateway_core::registry::{AdapterFactory, BackendContext, BuildError};
use gateway_core::{
    ChatEvent, ChatRequest, ChatResponse, ChatStream, GatewayError, PassthroughRequest,
    PassthroughResponse, ProviderAdapter,
};

use crate::client::{Upstream, transport_error};

pub use dialect_openai::DIALECT;

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
        Ok(Self {
            backend: backend.id.clone(),
            upstream: Upstream::new(endpoint, backend.credential.as_ref())?,
        })
    }

    async fn post_chat(&self, request: &ChatRequest) -> Result<reqwest::Response, GatewayError> {
        let body = encode_request(request, &self.backend)?;
        let bytes = serde_json::to_vec(&body)
            .map_err(|err| GatewayError::internal(format!("cannot encode request: {err}")))?;
        let response = self
            .upstream
            .post("chat/completions", Bytes::from(bytes), request.stream)
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(from_upstream(status.as_u16(), &body))
    }
}

#[async_trait]
impl ProviderAdapter for OpenAiAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let response = self.post_chat(&request).await?;
        let body = response.bytes().await.map_err(transport_error)?;
        decode_response(&body)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let response = self.post_chat(&request).await?;
        Ok(decode_sse(response))
    }

    async fn list_models(&self) -> Result<Vec<String>, GatewayError> {
        let response = self.upstream.get("models").await?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(from_upstream(status.as_u16(), &body));
        }
        let listing: serde_json::Value = serde_json::from_slice(&body)
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

    async fn passthrough(
        &self,
        request: PassthroughRequest,
    ) -> Result<PassthroughResponse, GatewayError> {
        let response = self
            .upstream
            .post(request.operation, request.body, request.stream)
            .await?;
        let status = response.status();
        let mut headers = http::HeaderMap::new();
        for name in [http::header::CONTENT_TYPE, http::header::RETRY_AFTER] {
            if let Some(value) = response.headers().get(&name) {
                headers.insert(name, value.clone());
            }
        }
        let body = response.bytes_stream().map_err(transport_error);
        Ok(PassthroughResponse {
            status,
            headers,
            body: Box::pin(body),
        })
    }
}

/// Decodes an upstream SSE response into canonical events, one upstream
/// chunk at a time.
fn decode_sse(response: reqwest::Response) -> ChatStream {
    struct State<S> {
        sse: S,
        decoder: ChunkDecoder,
        pending: VecDeque<ChatEvent>,
        ended: bool,
    }
    let state = State {
        sse: Box::pin(response.bytes_stream().eventsource()),
        decoder: ChunkDecoder::default(),
        pending: VecDeque::new(),
        ended: false,
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.ended {
                return None;
            }
            let mut out = Vec::new();
            let step = match state.sse.next().await {
                Some(Ok(event)) if event.data.trim().is_empty() => Ok(()),
                Some(Ok(event)) => state.decoder.decode(&event.data, &mut out),
                Some(Err(err)) => {
                    state.ended = true;
                    Err(match err {
                        eventsource_stream::EventStreamError::Transport(err) => {
                            transport_error(err)
                        }
                        other => GatewayError::upstream(format!(
                            "the upstream sent a malformed event stream: {other}"
                        )),
                    })
                }
                None => {
                    state.ended = true;
                    state.decoder.end(&mut out)
                }
            };
            state.pending.extend(out);
            if let Err(err) = step {
                state.ended = true;
                state.pending.clear();
                return Some((Err(err), state));
            }
        }
    }))
}
