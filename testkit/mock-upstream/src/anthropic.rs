//! `/v1/messages` in Anthropic's wire format, with the same model-name
//! behaviours as the OpenAI endpoint.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{MockState, Plan, Script, error_status, failure, record, text_of};

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// What to answer, from an Anthropic request body.
fn plan(body: &Value, model: &str) -> Plan {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let block_text = |content: &Value| -> String {
        match content {
            Value::Array(blocks) => blocks
                .iter()
                .map(|block| match block["type"].as_str() {
                    Some("tool_result") => text_of(&block["content"]),
                    _ => block["text"].as_str().unwrap_or_default().to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" "),
            other => text_of(other),
        }
    };
    let system_words = text_of(&body["system"]).split_whitespace().count() as u64;
    let prompt_tokens = system_words
        + messages
            .iter()
            .map(|message| block_text(&message["content"]).split_whitespace().count() as u64)
            .sum::<u64>();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let tool_results: Vec<String> = last["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|block| block["type"] == "tool_result")
                .map(|block| text_of(&block["content"]))
                .collect()
        })
        .unwrap_or_default();
    if !tool_results.is_empty() {
        return Plan {
            text: format!("tool result was: {}", tool_results.join(" | ")),
            tool_calls: Vec::new(),
            prompt_tokens,
        };
    }
    let last_user = block_text(&last["content"]);
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    if !tools.is_empty() && last["role"] == "user" {
        let count = if model.contains("parallel") { 2 } else { 1 };
        let tool_calls = tools
            .iter()
            .cycle()
            .take(count)
            .enumerate()
            .map(|(index, tool)| {
                let name = tool["name"].as_str().unwrap_or("tool").to_owned();
                (
                    format!("toolu_mock_{index}"),
                    name,
                    json!({ "input": last_user, "n": index }).to_string(),
                )
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

/// `POST /v1/messages`.
pub(crate) async fn messages(
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
        let kind = if status == StatusCode::TOO_MANY_REQUESTS {
            "rate_limit_error"
        } else {
            "api_error"
        };
        return failure(
            &model,
            status,
            json!({"type": "error", "error": {"type": kind, "message": format!("mock upstream failure {}", status.as_u16())}}),
        );
    }
    if model.contains("bad-json") {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"content\": [",
        )
            .into_response();
    }
    let id = format!("msg_mock_{}", state.counter.fetch_add(1, Ordering::SeqCst));
    let plan = plan(&json, &model);
    let output_tokens = plan.text.split_whitespace().count() as u64;
    if json["stream"] == true {
        let events = stream_events(&id, &model, &plan);
        let tick = event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "tick "}}),
        );
        let error = event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock upstream broke mid-stream"}}),
        );
        let body = Script {
            frames: events,
            head: 4,
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
    let mut content = Vec::new();
    if plan.tool_calls.is_empty() {
        content.push(json!({"type": "text", "text": plan.text}));
    }
    for (call_id, name, arguments) in &plan.tool_calls {
        let input: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
        content.push(json!({"type": "tool_use", "id": call_id, "name": name, "input": input}));
    }
    axum::Json(json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": if plan.tool_calls.is_empty() { "end_turn" } else { "tool_use" },
        "stop_sequence": null,
        "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": 0},
    }))
    .into_response()
}

fn stream_events(id: &str, model: &str, plan: &Plan) -> Vec<String> {
    let mut events = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": 1},
            }}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    let mut index = 0;
    if plan.tool_calls.is_empty() {
        events.push(event("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        for word in plan.text.split_inclusive(' ') {
            events.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}})));
        }
        events.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        index = 1;
    }
    for (call_id, name, arguments) in &plan.tool_calls {
        events.push(event("content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}}})));
        let (head, tail) = arguments.split_at(arguments.len() / 2);
        for piece in [head, tail] {
            events.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
        }
        events.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    let stop = if plan.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    events.push(event("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": plan.text.split_whitespace().count()}})));
    events.push(event("message_stop", &json!({"type": "message_stop"})));
    events
}

/// `POST /v1/messages/count_tokens`: the words of the prompt.
pub(crate) async fn count_tokens(
    State(state): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = record(&state, &method, &uri, &headers, &body);
    let model = json["model"].as_str().unwrap_or_default().to_owned();
    axum::Json(json!({ "input_tokens": plan(&json, &model).prompt_tokens })).into_response()
}
