//! `/api/chat` in Ollama's wire format (JSON and NDJSON), with the same
//! model-name behaviours as the OpenAI endpoint. Tool calls carry no ids,
//! as Ollama's do.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{MockState, Plan, Script, error_status, record, text_of};

fn plan(body: &Value, model: &str) -> Plan {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let prompt_tokens = messages
        .iter()
        .map(|m| text_of(&m["content"]).split_whitespace().count() as u64)
        .sum();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    if last["role"] == "tool" {
        let results: Vec<String> = messages
            .iter()
            .rev()
            .take_while(|m| m["role"] == "tool")
            .map(|m| text_of(&m["content"]))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Plan {
            text: format!("tool result was: {}", results.join(" | ")),
            tool_calls: Vec::new(),
            prompt_tokens,
        };
    }
    let last_user = text_of(&last["content"]);
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    if !tools.is_empty() && last["role"] == "user" {
        let count = if model.contains("parallel") { 2 } else { 1 };
        let tool_calls = tools
            .iter()
            .cycle()
            .take(count)
            .enumerate()
            .map(|(index, tool)| {
                (
                    String::new(),
                    tool["function"]["name"]
                        .as_str()
                        .unwrap_or("tool")
                        .to_owned(),
                    json!({"input": last_user, "n": index}).to_string(),
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

fn line(value: &Value) -> String {
    format!("{value}\n")
}

/// `POST /api/chat`.
pub(crate) async fn chat(
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
        return (
            status,
            axum::Json(json!({"error": format!("mock upstream failure {}", status.as_u16())})),
        )
            .into_response();
    }
    if model.contains("bad-json") {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"message\": ",
        )
            .into_response();
    }
    let plan = plan(&json, &model);
    let calls: Vec<Value> = plan
        .tool_calls
        .iter()
        .map(|(_, name, arguments)| json!({"function": {"name": name, "arguments": serde_json::from_str::<Value>(arguments).unwrap_or(Value::Null)}}))
        .collect();
    let eval_count = plan.text.split_whitespace().count();
    let done = |content: &str, calls: &[Value]| {
        let mut message = json!({"role": "assistant", "content": content});
        if !calls.is_empty() {
            message["tool_calls"] = json!(calls);
        }
        json!({"model": model, "created_at": "2026-01-01T00:00:00Z", "message": message, "done": true, "done_reason": "stop", "prompt_eval_count": plan.prompt_tokens, "eval_count": eval_count})
    };
    if json["stream"] == false {
        return axum::Json(done(&plan.text, &calls)).into_response();
    }
    let piece = |content: &str| {
        line(
            &json!({"model": model, "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": content}, "done": false}),
        )
    };
    let mut lines: Vec<String> = plan.text.split_inclusive(' ').map(piece).collect();
    if !calls.is_empty() {
        lines.push(line(&json!({"model": model, "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": false})));
    }
    lines.push(line(&done("", &[])));
    let tick = piece("tick ");
    let error = line(&json!({"error": "mock upstream broke mid-stream"}));
    let body = Script {
        frames: lines,
        head: 2,
        error,
        tick,
    }
    .body(&state, &model);
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}
