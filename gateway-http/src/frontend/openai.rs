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
use axum::response::Response;
use dialect_openai::error::error_body;
use dialect_openai::request::decode_request;
use dialect_openai::response::encode_response;
use dialect_openai::stream::ChunkEncoder;
use futures::FutureExt;
use gateway_core::body::probe;
use gateway_core::pipeline::{Alarm, KeyPolicy};
use gateway_core::{GatewayError, PassthroughRequest, Route};
use serde_json::json;
use std::sync::Arc;

use crate::app::AppState;
use crate::auth::Caller;
use crate::frontend::exchange::{Dialect, Exchange, needs_translation, respond, set_pointer};
use crate::frontend::shared::{
    self, body_rejection, encoded_json_response, sse_response, unix_now,
};
use crate::frontend::usage;
use crate::request_id::RequestId;

/// Renders `err` as OpenAI does: its status and `{"error": {...}}`.
pub(crate) fn error_response(err: &GatewayError) -> Response {
    shared::error_response(err, json!(error_body(err)))
}

/// How this frontend renders answers and reads usage.
pub(crate) static DIALECT: Dialect = Dialect {
    name: dialect_openai::DIALECT,
    error_frame,
    usage_in: usage::openai_usage,
    output_limit_fields: &["/max_completion_tokens", "/max_tokens"],
};

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    Extension(Caller(key)): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error_response(&body_rejection(&rejection, &state)),
    };
    serve(&state, &request_id, key, &body, None).await
}

/// `POST /v1/chat/completions` with its body read, its id given and its
/// caller known: what [`chat_completions`] does after extraction, and what
/// the HTTP/1.1 connection calls without the router (see
/// [`crate::app::App::call_whole`], lending its timer as `alarm`).
///
/// Not an `async fn`, and the body borrowed: each `async` layer keeps its
/// own copy of the arguments it was called with (the compiler does not
/// overlap them with the future it awaits), and this future is boxed per
/// request (see [`crate::app::App::call_whole`]).
pub(crate) fn serve<'a>(
    state: &'a AppState,
    request_id: &'a RequestId,
    key: Option<Arc<KeyPolicy>>,
    body: &'a Bytes,
    alarm: Option<&'a mut Alarm<'_>>,
) -> impl Future<Output = Response> + Send + 'a {
    handle(state, request_id, key, body, alarm)
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
    body: &'a Bytes,
    alarm: Option<&'a mut Alarm<'_>>,
) -> impl Future<Output = Result<Response, GatewayError>> + Send + 'a {
    async move {
        let probed = probe(body)?;
        let targets = state.gateway.plan(&probed.model)?;
        let admission = state.gateway.admit(key, &probed.model, targets).await?;
        let translated = if needs_translation(state, targets, DIALECT.name) {
            let decoded = decode_request(body)?;
            let mut request = decoded.request;
            request.request_id = Some(request_id.as_str().to_owned());
            Some((Box::new(request), decoded.include_usage))
        } else {
            None
        };
        let include_usage = translated.as_ref().is_some_and(|(_, include)| *include);
        // A caller with a token budget is charged from real usage, so a stream
        // that did not ask for usage asks for it upstream; the extra chunk is
        // hidden from the caller again.
        let hide_usage_chunk =
            admission.meter().is_some() && probed.stream && !probed.include_usage;
        let exchange = Exchange {
            state,
            targets,
            admission: &admission,
            dialect: &DIALECT,
            passthrough: |route: &Route| {
                let mut body = probed.rewrite_model(body, &route.upstream_model);
                if hide_usage_chunk {
                    body = with_usage_requested(&body.to_bytes())?.into();
                }
                Ok(PassthroughRequest {
                    operation: "chat/completions".into(),
                    body,
                    stream: probed.stream,
                    headers: axum::http::HeaderMap::new(),
                })
            },
            translated: translated.map(|(request, _)| request),
        };
        let dispatched = exchange.run(alarm).await?;
        // `created` is read from the clock only for a translated answer.
        Ok(respond(
            dispatched,
            admission,
            &DIALECT,
            hide_usage_chunk,
            |events| {
                let mut encoder = ChunkEncoder::new(unix_now(), include_usage);
                sse_response(events, move |event, out| match event {
                    Ok(event) => encoder.encode(&event, out),
                    Err(err) => encoder.encode_error(&err, out),
                })
            },
            |response| encoded_json_response(encode_response(&response, unix_now()).to_json()),
        ))
    }
}

/// `body` with `stream_options.include_usage` set.
fn with_usage_requested(body: &Bytes) -> Result<Bytes, GatewayError> {
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|err| {
        GatewayError::invalid_request(format!("the request body is not valid JSON: {err}"))
    })?;
    set_pointer(
        &mut value,
        "/stream_options/include_usage",
        serde_json::Value::Bool(true),
    );
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|err| GatewayError::internal(format!("cannot encode the request: {err}")))
}

fn error_frame(err: &GatewayError) -> Bytes {
    Bytes::from(format!("data: {}\n\n", json!(error_body(err))))
}

/// `GET /v1/models`: every alias and every `backend/model` the caller may
/// use.
pub(crate) async fn list_models(
    State(state): State<AppState>,
    Extension(Caller(key)): Extension<Caller>,
) -> Json<serde_json::Value> {
    let router = state.gateway.router();
    let aliases = router.aliases();
    let data: Vec<serde_json::Value> = shared::listable_names(&state, key.as_deref())
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
