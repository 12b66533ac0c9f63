//! `generateContent` answers: Gemini JSON ↔ [`ChatResponse`].

use gateway_core::{ChatResponse, FinishReason, GatewayError, ToolCall, Usage};
use serde_json::{Map, Value, json};

use crate::field;
use crate::request::made_up_call_id;

/// Gemini's `finishReason` for a canonical reason (Gemini says `STOP` for
/// answers that call functions too).
pub fn finish_reason_name(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop | FinishReason::ToolCalls => "STOP",
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter => "SAFETY",
        FinishReason::Other(other) => other,
    }
}

/// The canonical reason for Gemini's `finishReason`.
pub fn parse_finish_reason(reason: &str, called_tools: bool) -> FinishReason {
    match reason {
        "STOP" if called_tools => FinishReason::ToolCalls,
        "STOP" | "FINISH_REASON_UNSPECIFIED" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Canonical usage from `usageMetadata` (thinking tokens count as output).
pub fn parse_usage(metadata: &Value) -> Usage {
    let count = |camel: &str, snake: &str| field(metadata, camel, snake).and_then(Value::as_u64);
    Usage {
        input: count("promptTokenCount", "prompt_token_count").unwrap_or(0),
        output: count("candidatesTokenCount", "candidates_token_count").unwrap_or(0)
            + count("thoughtsTokenCount", "thoughts_token_count").unwrap_or(0),
        cached: count("cachedContentTokenCount", "cached_content_token_count"),
    }
}

/// `usageMetadata` for canonical usage.
pub fn usage_json(usage: &Usage) -> Value {
    let mut out = Map::new();
    out.insert("promptTokenCount".into(), json!(usage.input));
    out.insert("candidatesTokenCount".into(), json!(usage.output));
    out.insert("totalTokenCount".into(), json!(usage.input + usage.output));
    if let Some(cached) = usage.cached {
        out.insert("cachedContentTokenCount".into(), json!(cached));
    }
    Value::Object(out)
}

/// Text and function calls of one response chunk's first candidate. Calls
/// without ids get ids numbered from `next_call`: `call_<responseId>_<n>`,
/// or `call_<n>` when the response has no id.
pub(crate) fn candidate_parts(response: &Value, next_call: &mut usize) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let response_id = field(response, "responseId", "response_id").and_then(Value::as_str);
    let parts = response["candidates"][0]["content"]["parts"].as_array();
    for part in parts.into_iter().flatten() {
        if part.get("thought") == Some(&Value::Bool(true)) {
            continue;
        }
        if let Some(piece) = part.get("text").and_then(Value::as_str) {
            text.push_str(piece);
        } else if let Some(call) = field(part, "functionCall", "function_call") {
            let id = match (call.get("id").and_then(Value::as_str), response_id) {
                (Some(id), _) => id.to_owned(),
                // Unique across turns, so results pair with the right call.
                (None, Some(response)) => format!("call_{response}_{next}", next = *next_call),
                (None, None) => made_up_call_id(*next_call),
            };
            *next_call += 1;
            calls.push(ToolCall {
                id,
                name: call
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                arguments: call
                    .get("args")
                    .cloned()
                    .unwrap_or_else(|| json!({}))
                    .to_string(),
            });
        }
    }
    (text, calls)
}

/// Decodes an upstream's `generateContent` answer.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        GatewayError::upstream(format!(
            "the upstream's answer is not a generateContent response: {err}"
        ))
    })?;
    if !value.is_object() {
        return Err(GatewayError::upstream(
            "the upstream's answer is not a generateContent response",
        ));
    }
    let mut next_call = 0;
    let (text, tool_calls) = candidate_parts(&value, &mut next_call);
    let finish =
        field(&value["candidates"][0], "finishReason", "finish_reason").and_then(Value::as_str);
    let finish_reason = match finish {
        Some(reason) => parse_finish_reason(reason, !tool_calls.is_empty()),
        None if value["promptFeedback"]["blockReason"].is_string() => FinishReason::ContentFilter,
        None if !tool_calls.is_empty() => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    Ok(ChatResponse {
        id: field(&value, "responseId", "response_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        model: field(&value, "modelVersion", "model_version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        text,
        tool_calls,
        finish_reason,
        usage: field(&value, "usageMetadata", "usage_metadata").map(parse_usage),
    })
}

/// The parts of an answer: its text, then its function calls (with ids, so
/// clients that keep them can pair results exactly).
pub(crate) fn answer_parts(text: &str, calls: &[ToolCall]) -> Vec<Value> {
    let mut parts = Vec::new();
    if !text.is_empty() {
        parts.push(json!({ "text": text }));
    }
    for call in calls {
        let args: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
        parts.push(json!({"functionCall": {"id": call.id, "name": call.name, "args": args}}));
    }
    parts
}

/// Encodes a canonical response as a `generateContent` answer.
pub fn encode_response(response: &ChatResponse) -> Value {
    let mut parts = answer_parts(&response.text, &response.tool_calls);
    if parts.is_empty() {
        parts.push(json!({ "text": "" }));
    }
    let mut body = json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_reason_name(&response.finish_reason),
            "index": 0,
        }],
        "modelVersion": response.model,
        "responseId": response.id,
    });
    if let Some(usage) = &response.usage {
        body["usageMetadata"] = usage_json(usage);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_calls_without_ids_and_usage() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[
            {"text":"thinking...","thought":true},{"text":"Checking."},
            {"functionCall":{"name":"f","args":{"x":1}}},{"functionCall":{"name":"g","args":{}}}]},
            "finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"thoughtsTokenCount":2,"totalTokenCount":17},
            "modelVersion":"gemini-2.5-flash","responseId":"r1"}"#;
        insta::assert_json_snapshot!(decode_response(body).expect("valid"));
    }

    #[test]
    fn encodes_like_gemini() {
        let response = ChatResponse {
            id: "req1".into(),
            model: "gpt-4o".into(),
            text: "Checking.".into(),
            tool_calls: vec![ToolCall {
                id: "call_0".into(),
                name: "f".into(),
                arguments: "{\"x\":1}".into(),
            }],
            finish_reason: FinishReason::ToolCalls,
            usage: Some(Usage {
                input: 10,
                output: 7,
                cached: None,
            }),
        };
        insta::assert_json_snapshot!(encode_response(&response));
    }
}
