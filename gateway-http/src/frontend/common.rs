//! Routes that belong to no dialect: health, providers, unknown paths.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use gateway_core::{ErrorKind, GatewayError};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Caller;
use crate::frontend::{anthropic, genai, openai};

/// `GET /health`: the process is up and serving.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /v1/providers`: backends, dialects, models and health; no secrets.
pub(crate) async fn providers(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": state.gateway.providers(),
    }))
}

/// `GET /v1/models`: OpenAI's list, or GenAI's for callers that
/// authenticate the Google way (`google-genai` 3.x lists models here).
pub(crate) async fn list_models(
    state: State<AppState>,
    caller: Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let google = headers.contains_key("x-goog-api-key")
        || uri
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("key=")));
    if google {
        genai::list_models(state, caller).await.into_response()
    } else {
        openai::list_models(state, caller).await.into_response()
    }
}

/// Renders an error for a request no handler took, in the dialect its path
/// belongs to, so even a mistyped path gets an error its SDK can read.
pub(crate) fn error_for_path(path: &str, err: &GatewayError) -> Response {
    if path.contains("/v1beta/") || path.contains("/v1/models/") {
        genai::error_response(err)
    } else if path.contains("/v1/messages") {
        anthropic::error_response(err)
    } else {
        openai::error_response(err)
    }
}

/// Any path no route matches.
pub(crate) async fn not_found(method: Method, uri: Uri) -> Response {
    let err = GatewayError::not_found(format!(
        "no route for {method} {}; see the README for the HTTP surface",
        uri.path()
    ));
    error_for_path(uri.path(), &err)
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let mut err = GatewayError::new(
        ErrorKind::InvalidRequest,
        format!("{method} is not allowed on {}", uri.path()),
    );
    err.status_override = Some(405);
    error_for_path(uri.path(), &err)
}
