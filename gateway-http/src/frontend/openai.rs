//! The OpenAI frontend: `POST /v1/chat/completions` and `GET /v1/models`.
//!
//! A request whose route leads to an `openai` backend is passed through: the
//! body goes upstream with only `model` rewritten and the upstream's answer
//! (status, body, stream) comes back as it was. Any other backend gets the
//! request translated through the canonical types.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use dialect_openai::error::error_body;
use dialect_openai::passthrough::probe;
use dialect_openai::request::decode_request;
use dialect_openai::response::encode_response;
use dialect_openai::stream::ChunkEncoder;
use futures::StreamExt;
use gateway_core::{
    ChatStream, ErrorKind, GatewayError, PassthroughRequest, PassthroughResponse, Route,
};
use serde_json::json;

use crate::app::AppState;
use crate::request_id::RequestId;

/// Renders `err` as OpenAI does: its status and `{"error": {...}}`.
pub(crate) fn error_response(err: &GatewayError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(error_body(err))).into_response();
    if let Some(retry_after) = err.retry_after
        && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Maps axum's body extraction failure (too large, unreadable) to ours.
pub(crate) fn body_rejection(rejection: &BytesRejection) -> GatewayError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body is larger than {} bytes",
                crate::app::MAX_BODY_BYTES
            ),
        )
    } else {
        GatewayError::invalid_request(format!("cannot read the request body: {rejection}"))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
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
    match handle(&state, request_id, body).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(status = err.status(), backend = ?err.backend, "request failed: {err}");
            error_response(&err)
        }
    }
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
            operation: "chat/completions",
            body: upstream_body,
            stream: probed.stream,
        };
        let response = state.gateway.passthrough(&route, request).await?;
        return Ok(passthrough_response(response));
    }
    translated(state, &route, request_id, &body).await
}

/// Streams the upstream's answer back untouched. A transport failure in the
/// middle of an SSE stream becomes an OpenAI error event, so the SDK raises
/// instead of seeing a silently cut stream.
fn passthrough_response(upstream: PassthroughResponse) -> Response {
    let PassthroughResponse {
        status,
        headers,
        body,
    } = upstream;
    let is_sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    let mut failed = false;
    let body = body.filter_map(move |chunk| {
        let item = match chunk {
            _ if failed => None,
            Ok(bytes) => Some(Ok(bytes)),
            Err(err) if is_sse => {
                failed = true;
                let frame = format!("data: {}\n\n", json!(error_body(&err)));
                Some(Ok(Bytes::from(frame)))
            }
            Err(err) => {
                failed = true;
                Some(Err(err))
            }
        };
        futures::future::ready(item)
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    response.headers_mut().extend(headers);
    if is_sse {
        add_sse_headers(&mut response);
    }
    response
}

fn add_sse_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
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
        return Ok(sse_response(
            events,
            ChunkEncoder::new(created, decoded.include_usage),
        ));
    }
    let response = state.gateway.chat_once_on(route, request).await?;
    Ok(Json(encode_response(&response, created)).into_response())
}

/// Encodes canonical events as OpenAI SSE, one frame group per event, as
/// they arrive.
fn sse_response(events: ChatStream, mut encoder: ChunkEncoder) -> Response {
    let frames = events.filter_map(move |event| {
        let mut out = BytesMut::new();
        match event {
            Ok(event) => encoder.encode(&event, &mut out),
            Err(err) => encoder.encode_error(&err, &mut out),
        }
        let frame = (!out.is_empty()).then(|| Ok::<_, Infallible>(out.freeze()));
        futures::future::ready(frame)
    });
    let mut response = Response::new(Body::from_stream(frames));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    add_sse_headers(&mut response);
    response
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
