//! Non-streamed messages: Anthropic JSON ↔ [`ChatResponse`].

use std::borrow::Cow;

use gateway_core::{ChatResponse, FinishReason, GatewayError, ToolCall, Usage};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

/// Anthropic's `usage` object.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct WireUsage {
    /// Uncached prompt tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Prompt tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Prompt tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// The canonical usage: `input` counts every prompt token (uncached,
    /// cache writes and cache reads), as OpenAI's `prompt_tokens` does;
    /// `cached` is the cache reads.
    pub fn to_canonical(self) -> Usage {
        let cached = self.cache_read_input_tokens;
        Usage {
            input: self.input_tokens.unwrap_or(0)
                + self.cache_creation_input_tokens.unwrap_or(0)
                + cached.unwrap_or(0),
            output: self.output_tokens.unwrap_or(0),
            cached,
        }
    }
}

/// Anthropic's usage object for canonical usage (the inverse of
/// [`WireUsage::to_canonical`]).
pub fn usage_json(usage: &Usage) -> Value {
    let cached = usage.cached.unwrap_or(0);
    let mut out = Map::new();
    out.insert(
        "input_tokens".into(),
        json!(usage.input.saturating_sub(cached)),
    );
    out.insert("output_tokens".into(), json!(usage.output));
    if usage.cached.is_some() {
        out.insert("cache_read_input_tokens".into(), json!(cached));
    }
    Value::Object(out)
}

/// Anthropic's `stop_reason` for a canonical reason.
pub fn stop_reason_name(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
        FinishReason::Other(other) => other,
    }
}

/// The canonical reason for Anthropic's `stop_reason`.
pub fn parse_stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

#[derive(Deserialize)]
struct WireResponse<'a> {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default, borrow)]
    content: Vec<WireBlock<'a>>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// An optional string, borrowed from the input unless it has escapes.
/// `#[serde(borrow)]` alone borrows only a bare `Cow<str>`: an
/// `Option<Cow<str>>` goes through `Cow`'s own `Deserialize`, which always
/// copies (serde issue 1497), and that was two allocations per stream
/// event for the `type` fields alone.
pub(crate) fn borrowed<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Borrowed<'a>>::deserialize(deserializer).map(|text| text.map(|text| text.0))
}

/// One content block, of a whole message or a stream's
/// `content_block_start`, read into borrowed typed fields (only a tool
/// call's `input` becomes a `Value`, to be re-serialised compactly).
#[derive(Deserialize)]
pub(crate) struct WireBlock<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "borrowed")]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) input: Option<Value>,
}

/// Decodes an upstream's message body. Text blocks are joined; `thinking`
/// blocks have no canonical place yet and are left out of translated
/// answers.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let wire: WireResponse<'_> = serde_json::from_slice(body).map_err(|err| {
        GatewayError::upstream(format!("the upstream's answer is not a message: {err}"))
    })?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in wire.content {
        match block.kind.as_deref() {
            Some("text") => text.push_str(block.text.as_deref().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block.id.unwrap_or_default(),
                name: block.name.unwrap_or_default(),
                arguments: block.input.unwrap_or_else(|| json!({})).to_string(),
            }),
            _ => {}
        }
    }
    Ok(ChatResponse {
        id: wire.id,
        model: wire.model,
        text,
        finish_reason: match wire.stop_reason.as_deref() {
            Some(reason) => parse_stop_reason(reason),
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        },
        tool_calls,
        usage: wire.usage.map(WireUsage::to_canonical),
    })
}

/// Anthropic-style message id for a gateway id.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// Encodes a canonical response as an Anthropic message.
pub fn encode_response(response: &ChatResponse) -> Value {
    let mut content = Vec::new();
    if !response.text.is_empty() || response.tool_calls.is_empty() {
        content.push(json!({"type": "text", "text": response.text}));
    }
    for call in &response.tool_calls {
        let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
    }
    json!({
        "id": message_id(&response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": stop_reason_name(&response.finish_reason),
        "stop_sequence": null,
        "usage": usage_json(&response.usage.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_text_tools_and_cached_usage() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[
            {"type":"thinking","thinking":"hm","signature":"s"},
            {"type":"text","text":"Let me check."},
            {"type":"tool_use","id":"toolu_1","name":"f","input":{"x":1}}],
            "stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":90,"cache_creation_input_tokens":0}}"#;
        insta::assert_json_snapshot!(decode_response(body).expect("valid"));
    }

    #[test]
    fn encodes_like_anthropic() {
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
                input: 100,
                output: 7,
                cached: Some(90),
            }),
        };
        insta::assert_json_snapshot!(encode_response(&response));
    }
}
