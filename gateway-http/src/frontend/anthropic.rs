//! The Anthropic frontend: `POST /v1/messages`.
//!
//! A request routed to an `anthropic` backend is passed through (body with
//! only `model` rewritten, plus the caller's `anthropic-version` and
//! `anthropic-beta` headers); any other backend gets it translated through
//! the canonical types. Errors use Anthropic's shape so the `anthropic` SDK
//! raises its own exceptions.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use dialect_anthropic::error::error_body;
use dialect_anthropic::request::decode_request;
use dialect_anthropic::response::encode_response;
use dialect_anthropic::stream::{EventEncoder, write_event};
use futures::FutureExt;
use gateway_core::body::probe;
use gateway_core::pipeline::{Alarm, KeyPolicy};
use gateway_core::{GatewayError, PassthroughRequest, Route};
use std::sync::Arc;

use crate::app::AppState;
use crate::auth::Caller;
use crate::frontend::exchange::{Dialect, Exchange, needs_translation, respond};
use crate::frontend::shared::{self, body_rejection, json_response, sse_response};
use crate::frontend::usage;
use crate::headers::HeaderLookup;
use crate::request_id::RequestId;

/// Caller headers that are part of an Anthropic request and go upstream on
/// pass-through.
const FORWARDED_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// Renders `err` as Anthropic does.
pub(crate) fn error_response(err: &GatewayError) -> Response {
    shared::error_response(err, error_body(err))
}

/// How this frontend renders answers and reads usage.
pub(crate) static DIALECT: Dialect = Dialect {
    name: dialect_anthropic::DIALECT,
    error_frame,
    usage_in: usage::anthropic_usage,
    output_limit_fields: &["/max_tokens"],
};

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    Extension(Caller(key)): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error_response(&body_rejection(&rejection, &state)),
    };
    serve(
        &state,
        &request_id,
        key,
        forwarded_headers(&headers),
        &body,
        None,
    )
    .await
}

/// The caller headers that go upstream with a pass-through request (see
/// [`FORWARDED_HEADERS`]). Boxed: the map is 96 bytes, and it rides in
/// the request's future, which stays within the allocator's small sizes
/// (1 KiB, see [`crate::app::App::call_whole`]) only without them.
pub(crate) fn forwarded_headers(headers: &impl HeaderLookup) -> Box<HeaderMap> {
    let mut forwarded = Box::new(HeaderMap::new());
    for name in FORWARDED_HEADERS {
        if let Some(value) = headers
            .header(&name)
            .and_then(|value| HeaderValue::from_bytes(value).ok())
        {
            forwarded.insert(name, value);
        }
    }
    forwarded
}

/// `POST /v1/messages` with its body read, its id given and its caller
/// known: what [`messages`] does after extraction, and what the HTTP/1.1
/// connection calls without the router (see
/// [`crate::app::App::call_whole`], lending its timer as `alarm`). Not an
/// `async fn`, and the body borrowed, as `openai::serve` and for its
/// reason.
pub(crate) fn serve<'a>(
    state: &'a AppState,
    request_id: &'a RequestId,
    key: Option<Arc<KeyPolicy>>,
    forwarded: Box<HeaderMap>,
    body: &'a Bytes,
    alarm: Option<&'a mut Alarm<'_>>,
) -> impl Future<Output = Response> + Send + 'a {
    handle(state, request_id, key, forwarded, body, alarm)
        .map(|handled| shared::respond(handled, error_response))
}

/// The request's way through the gateway. Not an `async fn`: an `async
/// fn` keeps a copy of each argument beside the one it works on.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn's future keeps a copy of each argument beside the one it uses"
)]
fn handle<'a>(
    state: &'a AppState,
    request_id: &'a RequestId,
    key: Option<Arc<KeyPolicy>>,
    forwarded: Box<HeaderMap>,
    body: &'a Bytes,
    alarm: Option<&'a mut Alarm<'_>>,
) -> impl Future<Output = Result<Response, GatewayError>> + Send + 'a {
    async move {
        let probed = probe(body)?;
        let targets = state.gateway.plan(&probed.model)?;
        let admission = state.gateway.admit(key, &probed.model, targets).await?;
        let translated = if needs_translation(state, targets, DIALECT.name) {
            let mut request = decode_request(body)?;
            request.request_id = Some(request_id.as_str().to_owned());
            Some(Box::new(request))
        } else {
            None
        };
        let exchange = Exchange {
            state,
            targets,
            admission: &admission,
            dialect: &DIALECT,
            passthrough: |route: &Route| {
                Ok(PassthroughRequest {
                    operation: "v1/messages".into(),
                    body: probed.rewrite_model(body, &route.upstream_model),
                    stream: probed.stream,
                    headers: HeaderMap::clone(&forwarded),
                })
            },
            translated,
        };
        let dispatched = exchange.run(alarm).await?;
        Ok(respond(
            dispatched,
            admission,
            &DIALECT,
            false,
            |events| {
                let mut encoder = EventEncoder::new();
                sse_response(events, move |event, out| match event {
                    Ok(event) => encoder.encode(&event, out),
                    Err(err) => encoder.encode_error(&err, out),
                })
            },
            |response| json_response(&encode_response(&response)),
        ))
    }
}

fn error_frame(err: &GatewayError) -> Bytes {
    let mut out = bytes::BytesMut::new();
    write_event("error", &error_body(err), &mut out);
    out.freeze()
}
