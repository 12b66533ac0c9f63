//! A loopback model provider for tests: speaks OpenAI's chat completions
//! (`/v1/chat/completions`), Anthropic's Messages API (`/v1/messages`) and
//! Gemini's `generateContent` (`/v1beta/models/{model}:{method}`), JSON and
//! SSE, and Ollama's `/api/chat` (JSON and NDJSON), and records every request it receives, so tests can assert
//! what the gateway sent upstream.
//!
//! Its behaviour is chosen by the upstream model name, so one server covers
//! every case a config can route to:
//!
//! | model contains   | answer |
//! |------------------|--------|
//! | `error-NNN`      | status NNN with the dialect's error body (`Retry-After: 7` on 429) |
//! | `bad-json`       | 200 with a body that is not JSON |
//! | `midstream-error`| (stream) two chunks, then an error event |
//! | `truncated`      | (stream) two chunks, then the connection ends |
//! | `endless`        | (stream) a chunk every 10 ms until the client goes away |
//! | `hang-mid`       | (stream) two chunks, then nothing until the client goes away |
//! | `hang`           | nothing at all (no headers) until the client goes away |
//! | `reset`          | the connection is broken instead of answered |
//! | `first-N`        | with `error-NNN`: only the first N requests to the model fail |
//! | `retry-after-N`  | with `error-429`: `Retry-After: N` instead of 7 |
//! | `parallel`       | two tool calls in one turn when tools are offered |
//! | `mixed`          | (OpenAI stream) text and the first tool call in one chunk |
//! | anything else    | `echo: <last user text>`; a tool call when tools are offered and the last message is the user's; `tool result was: <content>` after a tool message |
//!
//! `GET /_mock/requests` lists what was received, `DELETE /_mock/requests`
//! forgets it, `GET /_mock/disconnects` counts streams the client abandoned.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt, stream};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

mod anthropic;
pub mod conformance;
mod gemini;
mod ollama;

/// One request as the mock received it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (`null` when it was not JSON).
    pub body: Value,
    /// The body exactly as received.
    pub raw_body: String,
}

/// Shared state of one mock server.
#[derive(Debug, Default)]
pub struct MockState {
    requests: Mutex<Vec<Recorded>>,
    disconnects: AtomicUsize,
    disconnected: Notify,
    pub(crate) counter: AtomicU64,
    /// Requests seen per model, for `first-N` failures.
    per_model: Mutex<std::collections::HashMap<String, u64>>,
}

impl MockState {
    /// Everything received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many streams a client abandoned before their end.
    pub fn disconnects(&self) -> usize {
        self.disconnects.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` streams have been abandoned.
    pub async fn wait_for_disconnects(&self, count: usize) {
        loop {
            let notified = self.disconnected.notified();
            if self.disconnects() >= count {
                return;
            }
            notified.await;
        }
    }
}

/// A running mock server on a loopback port.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a server on `127.0.0.1` at an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().map_err(std::io::Error::other)?).await
    }

    /// Starts a server on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::default());
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, for assertions.
    pub fn state(&self) -> &Arc<MockState> {
        &self.state
    }

    /// Waits for the server task (runs until the process ends).
    pub async fn run_forever(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The mock's routes, for embedding.
pub fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(crate::anthropic::messages))
        .route(
            "/v1/messages/count_tokens",
            post(crate::anthropic::count_tokens),
        )
        .route("/v1beta/models/{*rest}", post(crate::gemini::models))
        .route("/api/chat", post(crate::ollama::chat))
        .route("/v1/models", get(models))
        .route("/_mock/requests", get(list_requests).delete(clear_requests))
        .route("/_mock/disconnects", get(disconnects))
        .with_state(state)
}

async fn list_requests(State(state): State<Arc<MockState>>) -> Response {
    axum::Json(state.requests()).into_response()
}

async fn clear_requests(State(state): State<Arc<MockState>>) -> StatusCode {
    state
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    StatusCode::NO_CONTENT
}

async fn disconnects(State(state): State<Arc<MockState>>) -> Response {
    axum::Json(json!({ "disconnects": state.disconnects() })).into_response()
}

async fn models() -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": "gpt-test", "object": "model", "created": 0, "owned_by": "mock"}],
    }))
    .into_response()
}

pub(crate) fn record(
    state: &MockState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Value {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let recorded = Recorded {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: json.clone(),
        raw_body: String::from_utf8_lossy(body).into_owned(),
    };
    state
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(recorded);
    json
}

/// What the mock will answer, worked out from the request.
pub(crate) struct Plan {
    pub(crate) text: String,
    pub(crate) tool_calls: Vec<(String, String, String)>,
    pub(crate) prompt_tokens: u64,
}

pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn plan(body: &Value, model: &str) -> Plan {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let prompt_tokens = messages
        .iter()
        .map(|message| text_of(&message["content"]).split_whitespace().count() as u64)
        .sum();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let last_user = messages
        .iter()
        .rev()
        .find(|message| message["role"] == "user")
        .map(|message| text_of(&message["content"]))
        .unwrap_or_default();
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    if last["role"] == "tool" {
        return Plan {
            text: format!("tool result was: {}", text_of(&last["content"])),
            tool_calls: Vec::new(),
            prompt_tokens,
        };
    }
    if !tools.is_empty() && last["role"] == "user" {
        let count = if model.contains("parallel") { 2 } else { 1 };
        let tool_calls = tools
            .iter()
            .cycle()
            .take(count)
            .enumerate()
            .map(|(index, tool)| {
                let name = tool["function"]["name"]
                    .as_str()
                    .unwrap_or("tool")
                    .to_owned();
                let arguments = json!({ "input": last_user, "n": index }).to_string();
                (format!("call_mock_{index}"), name, arguments)
            })
            .collect();
        return Plan {
            text: String::new(),
            tool_calls,
            prompt_tokens,
        };
    }
    Plan {
        text: format!("echo: {last_user}"),
        tool_calls: Vec::new(),
        prompt_tokens,
    }
}

async fn chat_completions(
    State(state): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = record(&state, &method, &uri, &headers, &body);
    let model = json["model"].as_str().unwrap_or("").to_owned();
    if let Some(response) = crate::fault(&state, &model).await {
        return response;
    }
    if let Some(status) = error_status(&state, &model) {
        return failure(
            &model,
            status,
            json!({"error": {
                "message": format!("mock upstream failure {}", status.as_u16()),
                "type": "server_error",
                "param": null,
                "code": format!("mock_{}", status.as_u16()),
            }}),
        );
    }
    if model.contains("bad-json") {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"choices\": [",
        )
            .into_response();
    }
    let id = format!(
        "chatcmpl-mock-{}",
        state.counter.fetch_add(1, Ordering::SeqCst)
    );
    let plan = plan(&json, &model);
    if json["stream"] == true {
        let include_usage = json["stream_options"]["include_usage"] == true;
        let frames = stream_frames(&id, &model, &plan, include_usage);
        let tick = frame(&json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": {"content": "tick "}, "finish_reason": null}],
        }));
        let error = frame(
            &json!({"error": {"message": "mock upstream broke mid-stream", "type": "server_error"}}),
        );
        let body = Script {
            frames,
            head: 2,
            error,
            tick,
        }
        .body(&state, &model);
        return (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response();
    }
    let completion_tokens = plan.text.split_whitespace().count() as u64;
    let mut message = json!({"role": "assistant", "content": if plan.tool_calls.is_empty() { json!(plan.text) } else { Value::Null }});
    if !plan.tool_calls.is_empty() {
        message["tool_calls"] = plan
            .tool_calls
            .iter()
            .map(|(id, name, arguments)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
            .collect();
    }
    axum::Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": if plan.tool_calls.is_empty() { "stop" } else { "tool_calls" },
        }],
        "usage": {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": plan.prompt_tokens + completion_tokens,
        },
        "x_mock_extra": {"kept": true},
    }))
    .into_response()
}

/// The number after `marker` in a model name (`first-2` → 2).
fn number_after(model: &str, marker: &str) -> Option<u64> {
    let digits: String = model
        .split(marker)
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The error status this request gets: `error-NNN`, for every request, or
/// only for the first N requests to the model when it also says `first-N`.
pub(crate) fn error_status(state: &MockState, model: &str) -> Option<StatusCode> {
    let code = u16::try_from(number_after(model, "error-")?).ok()?;
    if let Some(limit) = number_after(model, "first-") {
        let mut seen = state
            .per_model
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = seen.entry(model.to_owned()).or_insert(0);
        *count += 1;
        if *count > limit {
            return None;
        }
    }
    StatusCode::from_u16(code).ok()
}

/// Transport faults, by model name: `hang` never answers (a disconnect is
/// counted when the client gives up); `reset` breaks the connection
/// instead of answering.
pub(crate) async fn fault(state: &Arc<MockState>, model: &str) -> Option<Response> {
    if model.contains("hang") && !model.contains("hang-mid") {
        let _guard = DisconnectGuard(state.clone());
        std::future::pending::<()>().await;
    }
    if model.contains("reset") {
        let broken = stream::once(async {
            Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "mock reset",
            ))
        });
        return Some(Body::from_stream(broken).into_response());
    }
    None
}

pub(crate) fn frame(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn stream_frames(id: &str, model: &str, plan: &Plan, include_usage: bool) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        frame(&json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for word in plan.text.split_inclusive(' ') {
        frames.push(chunk(json!({ "content": word }), Value::Null));
    }
    for (index, (call_id, name, arguments)) in plan.tool_calls.iter().enumerate() {
        let mut delta = json!({"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]});
        if index == 0 && model.contains("mixed") {
            // One chunk carrying both text and the start of a tool call.
            delta["content"] = json!("Let me check. ");
        }
        frames.push(chunk(delta, Value::Null));
        let (head, tail) = arguments.split_at(arguments.len() / 2);
        for piece in [head, tail] {
            frames.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    let finish = if plan.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    frames.push(chunk(json!({}), json!(finish)));
    if include_usage {
        let completion_tokens = plan.text.split_whitespace().count() as u64;
        frames.push(frame(&json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [],
            "usage": {"prompt_tokens": plan.prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": plan.prompt_tokens + completion_tokens},
        })));
    }
    frames.push("data: [DONE]\n\n".to_owned());
    frames
}

/// How a streamed answer is played back, by the model name's behaviour:
/// whole; the first `head` frames then `error` (`midstream-error`); the
/// first `head` frames only (`truncated`); the first `head` frames then
/// `tick` every 10 ms until the client goes away (`endless`).
pub(crate) struct Script {
    pub(crate) frames: Vec<String>,
    pub(crate) head: usize,
    pub(crate) error: String,
    pub(crate) tick: String,
}

impl Script {
    pub(crate) fn body(self, state: &Arc<MockState>, model: &str) -> Body {
        let Script {
            mut frames,
            head,
            error,
            tick,
        } = self;
        if model.contains("hang-mid") {
            // The first frames, then silence until the client goes away.
            let guard = DisconnectGuard(state.clone());
            frames.truncate(head);
            let silence = stream::pending().map(move |()| {
                let _keep_alive = &guard;
                Ok::<_, Infallible>(String::new())
            });
            return Body::from_stream(stream::iter(frames.into_iter().map(Ok)).chain(silence));
        }
        if model.contains("endless") {
            let guard = DisconnectGuard(state.clone());
            frames.truncate(head);
            let ticks = tokio_stream_interval(Duration::from_millis(10)).map(move |()| {
                let _keep_alive = &guard;
                Ok::<_, Infallible>(tick.clone())
            });
            return Body::from_stream(stream::iter(frames.into_iter().map(Ok)).chain(ticks));
        }
        if model.contains("midstream-error") {
            frames.truncate(head);
            frames.push(error);
        } else if model.contains("truncated") {
            frames.truncate(head);
        }
        Body::from_stream(stream::iter(frames.into_iter().map(Ok::<_, Infallible>)))
    }
}

/// An error answer; on 429 with `Retry-After: 7` as providers send it, or
/// N seconds when the model says `retry-after-N`.
pub(crate) fn failure(model: &str, status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let seconds = number_after(model, "retry-after-").unwrap_or(7);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
}

/// Counts a disconnect when the response body is dropped before its end.
pub(crate) struct DisconnectGuard(pub(crate) Arc<MockState>);

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        self.0.disconnects.fetch_add(1, Ordering::SeqCst);
        self.0.disconnected.notify_waiters();
    }
}

pub(crate) fn tokio_stream_interval(period: Duration) -> impl Stream<Item = ()> {
    stream::unfold(tokio::time::interval(period), |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
}
