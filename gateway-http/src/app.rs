//! The axum application: every route of DESIGN §5 that exists so far, served
//! at the root and under `/api/{project}/`, behind one front service that
//! gives each request its id and authenticates it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use axum::routing::{get, post};
use futures::FutureExt;
use gateway_core::Gateway;
use gateway_core::pipeline::Alarm;
use tower_service::Service;

use crate::frontend::{anthropic, common, genai, openai};
use crate::http1::request::RequestHead;
use crate::http1::response::refusal_json;
use crate::request_id::RequestId;
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
pub fn router(gateway: Arc<Gateway>) -> App {
    let body_limit = usize::try_from(gateway.limits().max_body_bytes).unwrap_or(usize::MAX);
    let state = AppState { gateway };
    let routes = Router::new()
        .merge(api())
        .nest("/api/{project}", api())
        .fallback(common::not_found)
        .method_not_allowed_fallback(common::method_not_allowed)
        .with_state(state.clone());
    App {
        routes,
        state,
        body_limit: DefaultBodyLimit::max(body_limit),
        body_limit_bytes: body_limit,
    }
}

/// The routes that carry nearly all of a gateway's traffic, which a
/// request whose body is already read reaches without the router.
#[derive(Debug, Clone, Copy)]
enum HotRoute {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/messages`.
    Messages,
}

impl HotRoute {
    /// The route's path.
    fn path(self) -> &'static str {
        match self {
            HotRoute::ChatCompletions => "/v1/chat/completions",
            HotRoute::Messages => "/v1/messages",
        }
    }

    /// The hot route `method target` is, if it is one. A target with a
    /// query goes the general way (where `?key=` is read).
    fn of(method: &Method, target: &[u8]) -> Option<HotRoute> {
        if *method != Method::POST {
            return None;
        }
        [HotRoute::ChatCompletions, HotRoute::Messages]
            .into_iter()
            .find(|hot| hot.path().as_bytes() == target)
    }
}

/// The application as one service: request id, authentication and the
/// body limit run once per request in front of the router.
///
/// They are not `Router::layer`s on purpose: axum wraps every route in each
/// layer and clones the boxed stack on every request, which cost a dozen
/// allocations per request on the hot path.
#[derive(Clone, Debug)]
pub struct App {
    routes: Router,
    state: AppState,
    body_limit: DefaultBodyLimit,
    /// `limits.max_body_bytes`, which `body_limit` applies to extractors.
    body_limit_bytes: usize,
}

impl App {
    /// Serves `request` whose body, `body`, has been read whole (the
    /// HTTP/1.1 connection's case). The hot routes are called straight
    /// away, as the router would call them but without its matching, its
    /// boxed route future, its extractors and the extensions they read
    /// (together about a seventh of the gateway's instructions per
    /// pass-through request), and with the headers they read taken from
    /// the head's bytes; everything else, a body over the limit included,
    /// gets `http` types and goes the way of [`App::call`]. `alarm` is the
    /// connection's timer, lent for the first-byte deadlines of the hot
    /// routes' attempts (see [`Alarm`]).
    ///
    /// A hot route leaves the request's id in `id_slot` for the
    /// connection to write into the answer's head (putting it into the
    /// response's header map made a header value and an insert per
    /// request); the other routes stamp it on the response themselves and
    /// leave `None`. The body and the id are the caller's, borrowed: the
    /// future is boxed per request, and the box stays within the
    /// allocator's small sizes (1 KiB) only without copies of them.
    pub(crate) fn call_whole<'a>(
        &'a mut self,
        request: RequestHead,
        body: &'a Bytes,
        id_slot: &'a mut Option<RequestId>,
        alarm: &'a mut Alarm<'_>,
    ) -> WholeFuture<'a> {
        let hot = HotRoute::of(request.method(), request.target())
            .filter(|_| body.len() <= self.body_limit_bytes);
        let Some(hot) = hot else {
            let request = match request.into_request() {
                Ok(request) => request,
                Err(message) => return Box::pin(std::future::ready(unreadable(message))),
            };
            let body = if body.is_empty() {
                Body::empty()
            } else {
                Body::from(body.clone())
            };
            // `App::call` stamps the id itself. (A second box, around
            // its own: these routes are not the hot ones.)
            return Box::pin(
                self.call(request.map(|()| body))
                    .map(|answered| match answered {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }),
            );
        };
        let id: &RequestId = id_slot.insert(request_id::choose(&request));
        let key = match auth::identify(&self.state, &request, hot.path(), None) {
            Ok(auth::Caller(key)) => key,
            Err(refused) => return Box::pin(std::future::ready(refused)),
        };
        // Borrowed, not cloned: a clone per request is an atomic write to
        // a count both worker threads share.
        let state = &self.state;
        // One box per route, holding only what that route's future needs
        // (the head is read now, so that it is not kept): a box sized for
        // the largest route, with the caller and headers of every route
        // beside it, was twice the pass-through request's.
        match hot {
            HotRoute::ChatCompletions => Box::pin(openai::serve(state, id, key, body, Some(alarm))),
            HotRoute::Messages => {
                let forwarded = anthropic::forwarded_headers(&request);
                Box::pin(anthropic::serve(
                    state,
                    id,
                    key,
                    forwarded,
                    body,
                    Some(alarm),
                ))
            }
        }
    }
}

/// The 400 for a request whose head cannot be turned into `http` types.
fn unreadable(message: &str) -> Response {
    let status = axum::http::StatusCode::BAD_REQUEST;
    let mut response = Response::new(Body::from(refusal_json(status, message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The future of one request through [`App`].
pub(crate) type AppFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The future of one request through [`App::call_whole`], which borrows
/// the application and the request's body.
pub(crate) type WholeFuture<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// `response` with the request's id in `x-request-id`.
fn with_request_id(mut response: Response, id: HeaderValue) -> Response {
    response.headers_mut().insert(request_id::HEADER, id);
    response
}

impl Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request_id::assign(&mut request);
        let routed = match auth::authenticate(&self.state, &mut request) {
            Ok(()) => {
                self.body_limit.apply(&mut request);
                Ok(self.routes.call(request))
            }
            Err(refused) => Err(refused),
        };
        Box::pin(async move {
            let response = match routed {
                Ok(routed) => routed.await?,
                Err(refused) => refused,
            };
            Ok(with_request_id(response, id))
        })
    }
}
