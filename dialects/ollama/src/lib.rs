//! Ollama's `/api/chat` dialect, upstream side: canonical requests to
//! Ollama JSON, Ollama answers and NDJSON stream lines to canonical types.
//!
//! Ollama's tool calls carry no ids; ids are made up on the way out
//! (`call_<request id>_<n>`), and tool results going back name their tool
//! (`tool_name`), found through the call id in the history.
//!
//! Architecture invariant: no I/O here, as in `dialect-openai`.

use gateway_core::stream::WireDecoder;
use gateway_core::{
    ChatEvent, ChatRequest, ChatResponse, ContentPart, FinishReason, GatewayError, ImageSource,
    ResponseFormat, Role, ToolCall, ToolChoice, Usage,
};
use serde_json::{Map, Value, json};

/// The dialect's name in config and in the registry.
pub const DIALECT: &str = "ollama";

/// Encodes a canonical request as an `/api/chat` body.
pub fn encode_request(request: &ChatRequest, backend: &str) -> Result<Value, GatewayError> {
    let mut messages = Vec::new();
    for message in &request.messages {
        let mut out = Map::new();
        let role = match message.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        out.insert("role".into(), json!(role));
        out.insert("content".into(), json!(message.joined_text()));
        let mut images = Vec::new();
        for part in &message.content {
            match part {
                ContentPart::Image {
                    source: ImageSource::Base64 { data, .. },
                } => images.push(json!(data)),
                ContentPart::Image {
                    source: ImageSource::Url { .. },
                } => {
                    return Err(GatewayError::unsupported(
                        "image URLs (send base64 data)",
                        backend,
                        DIALECT,
                    ));
                }
                ContentPart::Text { .. } => {}
            }
        }
        if !images.is_empty() {
            out.insert("images".into(), Value::Array(images));
        }
        if !message.tool_calls.is_empty() {
            let calls = message
                .tool_calls
                .iter()
                .map(|call| {
                    let arguments: Value =
                        serde_json::from_str(&call.arguments).map_err(|err| {
                            GatewayError::invalid_request(format!(
                                "the arguments of tool call '{}' are not JSON: {err}",
                                call.id
                            ))
                        })?;
                    Ok(json!({"function": {"name": call.name, "arguments": arguments}}))
                })
                .collect::<Result<Vec<_>, GatewayError>>()?;
            out.insert("tool_calls".into(), Value::Array(calls));
        }
        if let Some(id) = &message.tool_call_id
            && let Some(name) = request.tool_name_of_call(id)
        {
            out.insert("tool_name".into(), json!(name));
        }
        messages.push(Value::Object(out));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), Value::Array(messages));
    let offer_tools = !matches!(request.tool_choice, Some(ToolChoice::None));
    if let Some(ToolChoice::Required | ToolChoice::Tool { .. }) = &request.tool_choice {
        return Err(GatewayError::unsupported(
            "tool_choice (forcing a tool call)",
            backend,
            DIALECT,
        ));
    }
    if offer_tools && !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| json!({"type": "function", "function": {"name": tool.name, "description": tool.description.clone().unwrap_or_default(), "parameters": tool.parameters}}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut options = Map::new();
    if let Some(temperature) = request.temperature {
        options.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.top_p {
        options.insert("top_p".into(), json!(top_p));
    }
    if let Some(max) = request.max_output_tokens {
        options.insert("num_predict".into(), json!(max));
    }
    if !request.stop.is_empty() {
        options.insert("stop".into(), json!(request.stop));
    }
    for (key, value) in &request.extra.fields {
        match key.as_str() {
            "seed" => {
                options.insert("seed".into(), value.clone());
            }
            _ => return Err(GatewayError::unsupported(key, backend, DIALECT)),
        }
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            body.insert("format".into(), json!("json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert(
                "format".into(),
                schema.clone().unwrap_or_else(|| json!("json")),
            );
        }
    }
    body.insert("stream".into(), json!(request.stream));
    Ok(Value::Object(body))
}

fn finish_reason(reason: Option<&str>, called_tools: bool) -> FinishReason {
    match reason {
        _ if called_tools => FinishReason::ToolCalls,
        None | Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

fn usage(value: &Value) -> Usage {
    Usage {
        input: value["prompt_eval_count"].as_u64().unwrap_or(0),
        output: value["eval_count"].as_u64().unwrap_or(0),
        cached: None,
    }
}

fn calls(message: &Value, prefix: &str, next: &mut usize) -> Vec<ToolCall> {
    let mut out = Vec::new();
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        out.push(ToolCall {
            id: format!("call_{prefix}_{next}", next = *next),
            name: call["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            arguments: call["function"]["arguments"].to_string(),
        });
        *next += 1;
    }
    out
}

/// Decodes a non-streamed `/api/chat` answer; `request_id` makes the
/// tool call ids unique.
pub fn decode_response(body: &[u8], request_id: &str) -> Result<ChatResponse, GatewayError> {
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        GatewayError::upstream(format!(
            "the upstream's answer is not an Ollama chat response: {err}"
        ))
    })?;
    if !value["message"].is_object() {
        return Err(GatewayError::upstream(
            "the upstream's answer has no message",
        ));
    }
    let mut next = 0;
    let tool_calls = calls(&value["message"], request_id, &mut next);
    Ok(ChatResponse {
        id: request_id.to_owned(),
        model: value["model"].as_str().unwrap_or_default().to_owned(),
        text: value["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        finish_reason: finish_reason(value["done_reason"].as_str(), !tool_calls.is_empty()),
        tool_calls,
        usage: Some(usage(&value)),
    })
}

/// Turns NDJSON stream lines into canonical events.
#[derive(Debug)]
pub struct LineDecoder {
    prefix: String,
    next_call: usize,
    done: bool,
}

impl LineDecoder {
    /// A decoder whose made-up call ids start with `request_id`.
    pub fn new(request_id: &str) -> Self {
        Self {
            prefix: request_id.to_owned(),
            next_call: 0,
            done: false,
        }
    }
}

impl WireDecoder for LineDecoder {
    fn decode(&mut self, line: &str, out: &mut Vec<ChatEvent>) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        let value: Value = serde_json::from_str(line).map_err(|err| {
            GatewayError::upstream(format!("the upstream sent a malformed stream line: {err}"))
        })?;
        if let Some(message) = value["error"].as_str() {
            return Err(GatewayError::upstream(format!(
                "the upstream failed mid-stream: {message}"
            )));
        }
        if let Some(text) = value["message"]["content"]
            .as_str()
            .filter(|text| !text.is_empty())
        {
            out.push(ChatEvent::TextDelta {
                text: text.to_owned(),
            });
        }
        let first = self.next_call;
        for (offset, call) in calls(&value["message"], &self.prefix, &mut self.next_call)
            .into_iter()
            .enumerate()
        {
            out.push(ChatEvent::ToolCallDelta {
                index: (first + offset) as u32,
                id: Some(call.id),
                name: Some(call.name),
                arguments: call.arguments,
            });
        }
        if value["done"] == true {
            self.done = true;
            out.push(ChatEvent::Usage(usage(&value)));
            out.push(ChatEvent::Finished {
                reason: finish_reason(value["done_reason"].as_str(), self.next_call > 0),
            });
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<ChatEvent>) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        Err(GatewayError::upstream(
            "the upstream closed the stream before the answer was complete",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::Message;

    #[test]
    fn encodes_history_with_tool_names_and_options() {
        let mut assistant = Message::text(Role::Assistant, "");
        assistant.tool_calls = vec![ToolCall {
            id: "call_a".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Oslo\"}".into(),
        }];
        let request = ChatRequest {
            model: "llama3.2".into(),
            messages: vec![
                Message::text(Role::System, "sys"),
                Message::text(Role::User, "weather?"),
                assistant,
                Message {
                    tool_call_id: Some("call_a".into()),
                    ..Message::text(Role::Tool, "12 C")
                },
            ],
            temperature: Some(0.2),
            max_output_tokens: Some(64),
            stream: true,
            ..ChatRequest::default()
        };
        insta::assert_json_snapshot!(encode_request(&request, "local").expect("encodes"));
    }

    #[test]
    fn decodes_ndjson_lines() {
        let mut decoder = LineDecoder::new("r1");
        let mut out = Vec::new();
        for line in [
            r#"{"model":"llama3.2","message":{"role":"assistant","content":"Hel"},"done":false}"#,
            r#"{"model":"llama3.2","message":{"role":"assistant","content":"lo","tool_calls":[{"function":{"name":"f","arguments":{"x":1}}}]},"done":false}"#,
            r#"{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":9,"eval_count":4}"#,
        ] {
            decoder.decode(line, &mut out).expect("valid line");
        }
        decoder.end(&mut out).expect("complete");
        insta::assert_json_snapshot!(out);
    }

    #[test]
    fn decodes_a_whole_answer_with_made_up_call_ids() {
        let body = br#"{"model":"llama3.2","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":"",
            "tool_calls":[{"function":{"name":"f","arguments":{"x":1}}},{"function":{"name":"g","arguments":{}}}]},
            "done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":6}"#;
        insta::assert_json_snapshot!(decode_response(body, "req7").expect("valid"));
        let err = decode_response(b"{}", "r").expect_err("no message");
        assert_eq!(err.status(), 502);
    }

    #[test]
    fn forcing_a_tool_is_a_clear_400() {
        let request = ChatRequest {
            tool_choice: Some(ToolChoice::Required),
            ..ChatRequest::default()
        };
        let err = encode_request(&request, "local").expect_err("unsupported");
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.message,
            "'tool_choice (forcing a tool call)' is not supported by backend 'local' (dialect ollama); remove it or route to a backend that supports it"
        );
    }
}
