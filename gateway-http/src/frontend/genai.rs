//! The Google GenAI frontend: `POST /v1beta/models/{model}:{method}` for
//! `generateContent`, `streamGenerateContent` and `countTokens` (also under
//! `/v1/models/...`, where `google-genai` 3.x sends them), and the model
//! listing `GET /v1beta/models`.
//!
//! The model is the URL path between `models/` and the last `:`, slashes
//! included (`models/up/gpt-4o:generateContent`), URL-encoded or not; it
//! resolves by the same rules as every other name. A request routed to a
//! `gemini` backend is passed through; any other backend gets it translated.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use dialect_gemini::error::error_body;
use dialect_gemini::model_path;
use dialect_gemini::request::{decode_request, decode_value};
use dialect_gemini::response::encode_response;
use dialect_gemini::stream::{ChunkEncoder, write_chunk};
use gateway_core::pipeline::KeyPolicy;
use gateway_core::{GatewayError, PassthroughRequest, Route};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::app::AppState;
use crate::auth::Caller;
use crate::frontend::exchange::{Dialect, Exchange, needs_translation, respond};
use crate::frontend::shared::{
    self, body_rejection, json_response, passthrough_response, sse_response,
};
use crate::frontend::{tokens, usage};
use crate::request_id::RequestId;

/// Renders `err` as Google does.
pub(crate) fn error_response(err: &GatewayError) -> Response {
    shared::error_response(err, error_body(err))
}

/// The methods this frontend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Generate,
    Stream,
    CountTokens,
}

/// Splits `model:method` (the part of the path after `models/`).
fn parse_action(rest: &str) -> Result<(&str, Method), GatewayError> {
    let (model, method) = rest.rsplit_once(':').ok_or_else(|| {
        GatewayError::not_found(format!(
            "no method in 'models/{rest}'; use models/{{model}}:generateContent, :streamGenerateContent or :countTokens"
        ))
    })?;
    let model = model.strip_prefix("models/").unwrap_or(model);
    let method = match method {
        "generateContent" => Method::Generate,
        "streamGenerateContent" => Method::Stream,
        "countTokens" => Method::CountTokens,
        other => {
            return Err(GatewayError::not_found(format!(
                "method '{other}' is not served; use generateContent, streamGenerateContent or countTokens"
            )));
        }
    };
    Ok((model, method))
}

/// How this frontend renders answers and reads usage.
pub(crate) static DIALECT: Dialect = Dialect {
    name: dialect_gemini::DIALECT,
    error_frame,
    usage_in: usage::gemini_usage,
    output_limit_fields: &["/generationConfig/maxOutputTokens"],
};

/// `POST /v1beta/models/{model}:{method}`.
pub(crate) async fn model_action(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    Extension(Caller(key)): Extension<Caller>,
    rest: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error_response(&body_rejection(&rejection, &state)),
    };
    let Path(rest) = match rest {
        Ok(rest) => rest,
        Err(rejection) => {
            return error_response(&GatewayError::invalid_request(format!(
                "the model in the path is not valid: {rejection}"
            )));
        }
    };
    shared::respond(
        handle(&state, request_id.as_str(), key, &rest, body).await,
        error_response,
    )
}

fn operation(route: &Route, method: Method) -> String {
    match method {
        Method::Generate => model_path(&route.upstream_model, "generateContent"),
        Method::Stream => model_path(&route.upstream_model, "streamGenerateContent?alt=sse"),
        Method::CountTokens => model_path(&route.upstream_model, "countTokens"),
    }
}

async fn handle(
    state: &AppState,
    request_id: &str,
    key: Option<Arc<KeyPolicy>>,
    rest: &str,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let (model, method) = parse_action(rest)?;
    let targets = state.gateway.plan(model)?;
    let admission = state.gateway.admit(key, model, targets).await?;
    if method == Method::CountTokens {
        return count_tokens(state, targets.primary(), &body).await;
    }
    let translated = if needs_translation(state, targets, DIALECT.name) {
        let mut request = decode_request(model, &body)?;
        request.request_id = Some(request_id.to_owned());
        request.stream = method == Method::Stream;
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
                operation: operation(route, method).into(),
                body: body.clone().into(),
                stream: method == Method::Stream,
                headers: axum::http::HeaderMap::new(),
            })
        },
        translated,
    };
    let dispatched = exchange.run(None).await?;
    Ok(respond(
        dispatched,
        admission,
        &DIALECT,
        false,
        |events| {
            let mut encoder = ChunkEncoder::new();
            sse_response(events, move |event, out| match event {
                Ok(event) => encoder.encode(&event, out),
                Err(err) => encoder.encode_error(&err, out),
            })
        },
        |response| json_response(&encode_response(&response)),
    ))
}

fn error_frame(err: &GatewayError) -> Bytes {
    let mut out = bytes::BytesMut::new();
    write_chunk(&error_body(err), &mut out);
    out.freeze()
}

/// `countTokens`: the upstream's count where its dialect can count, else an
/// estimate with the `o200k_base` tokenizer (marked in the
/// `x-modelgate-token-count` header).
async fn count_tokens(
    state: &AppState,
    route: &Route,
    body: &Bytes,
) -> Result<Response, GatewayError> {
    if state.gateway.can_pass_through(route, DIALECT.name) {
        let request = PassthroughRequest {
            operation: operation(route, Method::CountTokens).into(),
            body: body.clone().into(),
            stream: false,
            headers: axum::http::HeaderMap::new(),
        };
        let response = state.gateway.passthrough(route, request).await?;
        return Ok(passthrough_response(response, error_frame));
    }
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        GatewayError::invalid_request(format!("the request body is not valid JSON: {err}"))
    })?;
    // countTokens takes either bare `contents` or a whole request.
    let inner = value.get("generateContentRequest").unwrap_or(&value);
    let request = decode_value(&route.upstream_model, inner)?;
    let (total, how) = match state
        .gateway
        .count_tokens_on(route, request.clone())
        .await?
    {
        Some(total) => (total, "upstream"),
        None => (tokens::estimate(&request), "estimate"),
    };
    let mut response = Json(json!({ "totalTokens": total })).into_response();
    response
        .headers_mut()
        .insert("x-modelgate-token-count", HeaderValue::from_static(how));
    Ok(response)
}

fn model_entry(name: &str) -> Value {
    json!({
        "name": format!("models/{name}"),
        "displayName": name,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

/// `GET /v1beta/models`: every resolvable name the caller may use, as
/// GenAI models.
pub(crate) async fn list_models(
    State(state): State<AppState>,
    Extension(Caller(key)): Extension<Caller>,
) -> Json<Value> {
    let models: Vec<Value> = shared::listable_names(&state, key.as_deref())
        .iter()
        .map(|name| model_entry(name))
        .collect();
    Json(json!({ "models": models }))
}

/// `GET /v1beta/models/{model}`: one model, if the name resolves.
pub(crate) async fn get_model(State(state): State<AppState>, Path(rest): Path<String>) -> Response {
    let name = rest.strip_prefix("models/").unwrap_or(&rest);
    match state.gateway.resolve(name) {
        Ok(_) => Json(model_entry(name)).into_response(),
        Err(err) => error_response(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_split_at_the_last_colon() {
        assert_eq!(
            parse_action("up/gpt-4o:generateContent").ok(),
            Some(("up/gpt-4o", Method::Generate))
        );
        assert_eq!(
            parse_action("models/x:countTokens").ok(),
            Some(("x", Method::CountTokens))
        );
        assert_eq!(
            parse_action("a:b:streamGenerateContent").ok(),
            Some(("a:b", Method::Stream))
        );
        assert_eq!(parse_action("x").map_err(|e| e.status()).err(), Some(404));
        assert_eq!(
            parse_action("x:embedContent").map_err(|e| e.status()).err(),
            Some(404)
        );
    }
}
