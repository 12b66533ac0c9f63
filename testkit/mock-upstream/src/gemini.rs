//! `/v1beta/models/{model}:{method}` in Gemini's wire format, with the same
//! model-name behaviours as the OpenAI endpoint. Function calls carry no
//! ids, as Gemini's do.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{MockState, Plan, Script, error_status, failure, record};

fn chunk(data: &Value) -> String {
    format!("data: {data}\r\n\r\n")
}

fn texts(content: &Value) -> String {
    content["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn plan(body: &Value, model: &str) -> Plan {
    let contents = body["contents"].as_array().cloned().unwrap_or_default();
    let system = body
        .get("systemInstruction")
        .or_else(|| body.get("system_instruction"))
        .cloned()
        .unwrap_or(Value::Null);
    let prompt_tokens =
        words(&texts(&system)) + contents.iter().map(|c| words(&texts(c))).sum::<u64>();
    let last = contents.last().cloned().unwrap_or(Value::Null);
    let results: Vec<String> = last["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part.get("functionResponse"))
        .map(|result| match result["response"]["result"].as_str() {
            Some(text) => text.to_owned(),
            None => result["response"].to_string(),
        })
        .collect();
    if !results.is_empty() {
        return Plan {
            text: format!("tool result was: {}", results.join(" | ")),
            tool_calls: Vec::new(),
            prompt_tokens,
        };
    }
    let last_user = texts(&last);
    let names: Vec<String> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|tool| {
            tool["functionDeclarations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|declaration| declaration["name"].as_str().map(str::to_owned))
        .collect();
    if !names.is_empty() && last["role"] != "model" {
        let count = if model.contains("parallel") { 2 } else { 1 };
        let tool_calls = names
            .iter()
            .cycle()
            .take(count)
            .enumerate()
            .map(|(index, name)| {
                (
                    String::new(),
                    name.clone(),
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

fn call_parts(plan: &Plan) -> Vec<Value> {
    plan.tool_calls
        .iter()
        .map(|(_, name, arguments)| {
            let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
            json!({"functionCall": {"name": name, "args": args}})
        })
        .collect()
}

/// `POST /v1beta/models/{model}:{method}`.
pub(crate) async fn models(
    State(state): State<Arc<MockState>>,
    Path(rest): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = record(&state, &method, &uri, &headers, &body);
    let Some((model, action)) = rest.rsplit_once(':') else {
        return (StatusCode::NOT_FOUND, "no method").into_response();
    };
    if let Some(response) = crate::fault(&state, model).await {
        return response;
    }
    if let Some(status) = error_status(&state, model) {
        let code = status.as_u16();
        return failure(
            model,
            status,
            json!({"error": {"code": code, "message": format!("mock upstream failure {code}"), "status": "MOCK"}}),
        );
    }
    if model.contains("bad-json") {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"candidates\": [",
        )
            .into_response();
    }
    let request = json.get("generateContentRequest").unwrap_or(&json);
    let plan = plan(request, model);
    if action == "countTokens" {
        return axum::Json(json!({ "totalTokens": plan.prompt_tokens })).into_response();
    }
    let id = format!("resp-mock-{}", state.counter.fetch_add(1, Ordering::SeqCst));
    let usage = json!({"promptTokenCount": plan.prompt_tokens, "candidatesTokenCount": words(&plan.text), "totalTokenCount": plan.prompt_tokens + words(&plan.text)});
    if action == "streamGenerateContent" {
        let envelope = |parts: Vec<Value>| json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}], "modelVersion": model, "responseId": id});
        let mut chunks: Vec<String> = plan
            .text
            .split_inclusive(' ')
            .map(|word| chunk(&envelope(vec![json!({"text": word})])))
            .collect();
        let mut last = envelope(call_parts(&plan));
        last["candidates"][0]["finishReason"] = json!("STOP");
        last["usageMetadata"] = usage;
        chunks.push(chunk(&last));
        let tick = chunk(
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "tick "}]}}], "modelVersion": model}),
        );
        let error = chunk(
            &json!({"error": {"code": 500, "message": "mock upstream broke mid-stream", "status": "INTERNAL"}}),
        );
        let body = Script {
            frames: chunks,
            head: 2,
            error,
            tick,
        }
        .body(&state, model);
        return ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
    }
    let mut parts = call_parts(&plan);
    if plan.tool_calls.is_empty() {
        parts.push(json!({"text": plan.text}));
    }
    axum::Json(json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": id,
    }))
    .into_response()
}
