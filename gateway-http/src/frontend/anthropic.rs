//! The Anthropic frontend: `POST /v1/messages`.
//!
//! A request routed to an `anthropic` backend is passed through (body with
//! only `model` rewritten, plus the caller's `anthropic-version` and
//! `anthropic-beta` headers); any other backend gets it translated through
//! the canonical types. Errors use Anthropic's shape so the `anthropic` SDK
//! raises its own exceptions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dialect_anthropic::error::error_body;
use dialect_anthropic::request::decode_request;
use dialect_anthropic::response::encode_response;
use dialect_anthropic::stream::{EventEncoder, write_event};
use gateway_core::body::probe;
use gateway_core::{GatewayError, PassthroughRequest, Route};

use crate::app::AppState;
use crate::frontend::shared::{self, body_rejection, passthrough_response, sse_response};
use crate::request_id::RequestId;

/// Caller headers that are part of an Anthropic request and go upstream on
/// pass-through.
const FORWARDED_HEADERS: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// Renders `err` as Anthropic does.
pub(crate) fn error_response(err: &GatewayError) -> Response {
    shared::error_response(err, error_body(err))
}

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error_response(&body_rejection(&rejection)),
    };
    shared::respond(
        handle(&state, request_id, &headers, body).await,
        error_response,
    )
}

async fn handle(
    state: &AppState,
    request_id: String,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let probed = probe(&body)?;
    let route = state.gateway.resolve(&probed.model)?;
    if state
        .gateway
        .can_pass_through(&route, dialect_anthropic::DIALECT)
    {
        let mut forwarded = HeaderMap::new();
        for name in FORWARDED_HEADERS {
            if let Some(value) = headers.get(name) {
                forwarded.insert(name, value.clone());
            }
        }
        let request = PassthroughRequest {
            operation: "v1/messages".into(),
            body: probed.rewrite_model(&body, &route.upstream_model),
            stream: probed.stream,
            headers: forwarded,
        };
        let response = state.gateway.passthrough(&route, request).await?;
        return Ok(passthrough_response(response, error_frame));
    }
    translated(state, &route, request_id, &body).await
}

fn error_frame(err: &GatewayError) -> Bytes {
    let mut out = bytes::BytesMut::new();
    write_event("error", &error_body(err), &mut out);
    out.freeze()
}

async fn translated(
    state: &AppState,
    route: &Route,
    request_id: String,
    body: &[u8],
) -> Result<Response, GatewayError> {
    let mut request = decode_request(body)?;
    request.request_id = Some(request_id);
    if request.stream {
        let events = state.gateway.chat_stream_on(route, request).await?;
        let mut encoder = EventEncoder::new();
        return Ok(sse_response(events, move |event, out| match event {
            Ok(event) => encoder.encode(&event, out),
            Err(err) => encoder.encode_error(&err, out),
        }));
    }
    let response = state.gateway.chat_once_on(route, request).await?;
    Ok(Json(encode_response(&response)).into_response())
}
