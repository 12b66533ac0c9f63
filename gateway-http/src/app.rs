//! The axum application: every route of DESIGN §5 that exists so far, served
//! at the root and under `/api/{project}/`.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use gateway_core::Gateway;

use crate::frontend::{anthropic, common, genai, openai};
use crate::{auth, request_id};

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The gateway the handlers call.
    pub gateway: Arc<Gateway>,
}

/// The routes of one API root; mounted at `/` and at `/api/{project}`.
fn api() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/models", get(common::list_models))
        .route("/v1/models/{*rest}", post(genai::model_action))
        .route("/v1beta/models", get(genai::list_models))
        .route(
            "/v1beta/models/{*rest}",
            post(genai::model_action).get(genai::get_model),
        )
        .route("/v1/providers", get(common::providers))
        .route("/health", get(common::health))
}

/// The whole application for `gateway`. Every request gets an id, then is
/// authenticated (except `/health`), then routed.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let body_limit = usize::try_from(gateway.limits().max_body_bytes).unwrap_or(usize::MAX);
    let state = AppState { gateway };
    Router::new()
        .merge(api())
        .nest("/api/{project}", api())
        .fallback(common::not_found)
        .method_not_allowed_fallback(common::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}
