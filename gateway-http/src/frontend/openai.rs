//! The OpenAI frontend: `POST /v1/chat/completions` and `GET /v1/models`.
//!
//! A request whose route leads to an `openai` backend is passed through: the
//! body goes upstream with only `model` rewritten and the upstream's answer
//! (status, body, stream) comes back as it was. Any other backend gets the
//! request translated through the canonical types.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use dialect_openai::error::error_body;
use dialect_openai::request::decode_request;
use dialect_openai::response::encode_response;
use dialect_openai::stream::ChunkEncoder;
use gateway_core::body::probe;
use gateway_core::{GatewayError, PassthroughRequest, Route};
use serde_json::json;

use crate::app::AppState;
use crate::frontend::shared::{self, body_rejection, passthrough_response, sse_response, unix_now};
use crate::request_id::RequestId;

/// Renders `err` as OpenAI does: its status and `{"error": {...}}`.
pub(crate) fn error_response(err: &GatewayError) -> Response {
    shared::error_response(err, json!(error_body(err)))
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error_response(&body_rejection(&rejection)),
    };
    shared::respond(handle(&state, request_id, body).await, error_response)
}

async fn handle(
    state: &AppState,
    request_id: String,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let probed = probe(&body)?;
    let route = state.gateway.resolve(&probed.model)?;
    if state
        .gateway
        .can_pass_through(&route, dialect_openai::DIALECT)
    {
        let upstream_body = probed.rewrite_model(&body, &route.upstream_model);
        let request = PassthroughRequest {
            operation: "chat/completions".into(),
            body: upstream_body,
            stream: probed.stream,
            headers: axum::http::HeaderMap::new(),
        };
        let response = state.gateway.passthrough(&route, request).await?;
        return Ok(passthrough_response(response, error_frame));
    }
    translated(state, &route, request_id, &body).await
}

fn error_frame(err: &GatewayError) -> Bytes {
    Bytes::from(format!("data: {}\n\n", json!(error_body(err))))
}

async fn translated(
    state: &AppState,
    route: &Route,
    request_id: String,
    body: &[u8],
) -> Result<Response, GatewayError> {
    let decoded = decode_request(body)?;
    let mut request = decoded.request;
    request.request_id = Some(request_id);
    let created = unix_now();
    if request.stream {
        let events = state.gateway.chat_stream_on(route, request).await?;
        let mut encoder = ChunkEncoder::new(created, decoded.include_usage);
        return Ok(sse_response(events, move |event, out| match event {
            Ok(event) => encoder.encode(&event, out),
            Err(err) => encoder.encode_error(&err, out),
        }));
    }
    let response = state.gateway.chat_once_on(route, request).await?;
    Ok(Json(encode_response(&response, created)).into_response())
}

/// `GET /v1/models`: every alias and every `backend/model`.
pub(crate) async fn list_models(State(state): State<AppState>) -> Json<serde_json::Value> {
    let router = state.gateway.router();
    let aliases = router.aliases();
    let data: Vec<serde_json::Value> = router
        .names()
        .into_iter()
        .map(|name| {
            let owned_by = match aliases.iter().find(|(alias, _)| *alias == name) {
                Some(_) => "modelgate".to_owned(),
                None => name.split('/').next().unwrap_or_default().to_owned(),
            };
            json!({ "id": name, "object": "model", "created": 0, "owned_by": owned_by })
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}
