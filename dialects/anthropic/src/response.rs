//! Non-streamed messages: Anthropic JSON ↔ [`ChatResponse`].

use std::borrow::Cow;

use gateway_core::json::Reader;
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
    if let Some(response) = read_text_message(body) {
        return Ok(response);
    }
    decode_with_serde(body)
}

/// [`decode_response`] for what [`read_text_message`] leaves: the answer, or
/// why the body is not a message.
fn decode_with_serde(body: &[u8]) -> Result<ChatResponse, GatewayError> {
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

/// The common answer, a message of text blocks, read with [`Reader`]
/// rather than serde (a third of a translated request's instructions went
/// to serde's field matching). `None` for anything else, tool calls
/// included, and for any body the serde path would read differently or
/// refuse: a repeated field, a field of another type, a value serde reads
/// from an array.
fn read_text_message(body: &[u8]) -> Option<ChatResponse> {
    let mut reader = Reader::new(body);
    let mut id = None;
    let mut model = None;
    let mut text: Option<String> = None;
    let mut stop_reason = None;
    let mut usage = None;
    reader.object(|reader, key| {
        match key {
            b"id" if id.is_none() => id = Some(reader.string()?),
            b"model" if model.is_none() => model = Some(reader.string()?),
            b"content" if text.is_none() => {
                let mut joined = String::new();
                reader.array(|reader| read_text_block(reader, &mut joined))?;
                text = Some(joined);
            }
            b"stop_reason" if stop_reason.is_none() => {
                stop_reason = Some(reader.nullable(Reader::string)?);
            }
            b"usage" if usage.is_none() => usage = Some(reader.nullable(read_usage)?),
            b"id" | b"model" | b"content" | b"stop_reason" | b"usage" => return None,
            _ => reader.skip()?,
        }
        Some(())
    })?;
    reader.end()?;
    Some(ChatResponse {
        id: id.map(Cow::into_owned).unwrap_or_default(),
        model: model.map(Cow::into_owned).unwrap_or_default(),
        text: text.unwrap_or_default(),
        finish_reason: match stop_reason.flatten() {
            Some(reason) => parse_stop_reason(&reason),
            None => FinishReason::Stop,
        },
        tool_calls: Vec::new(),
        usage: usage.flatten().map(WireUsage::to_canonical),
    })
}

/// One content block of [`read_text_message`]: a text block's text is
/// appended to `text`; a tool call gives `None` (the serde path reads
/// those); other kinds are checked and left out, as the serde path does.
fn read_text_block(reader: &mut Reader<'_>, text: &mut String) -> Option<()> {
    let block = read_block(reader)?;
    match block.kind.as_deref() {
        Some("text") => text.push_str(block.text.as_deref().unwrap_or_default()),
        Some("tool_use") => return None,
        _ => {}
    }
    Some(())
}

/// A content block read with [`Reader`] (of a message, or a stream's
/// `content_block_start`): any block but one with an `input`, which serde
/// reads as a JSON value, checking every string and number in it (a skip
/// does not).
pub(crate) fn read_block<'a>(reader: &mut Reader<'a>) -> Option<WireBlock<'a>> {
    let mut block = WireBlock {
        kind: None,
        text: None,
        id: None,
        name: None,
        input: None,
    };
    let mut seen = [false; 4];
    reader.object(|reader, key| {
        let slot = match key {
            b"type" => 0,
            b"text" => 1,
            b"id" => 2,
            b"name" => 3,
            b"input" => return None,
            _ => return reader.skip(),
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        let value = reader.nullable(Reader::string)?;
        match slot {
            0 => block.kind = value,
            1 => block.text = value,
            2 => block.id = value.map(Cow::into_owned),
            _ => block.name = value.map(Cow::into_owned),
        }
        Some(())
    })?;
    Some(block)
}

/// `usage` for [`read_text_message`]: each count a `u64` or null.
pub(crate) fn read_usage(reader: &mut Reader<'_>) -> Option<WireUsage> {
    let [
        input_tokens,
        output_tokens,
        cache_creation_input_tokens,
        cache_read_input_tokens,
    ] = reader.fields(
        [
            b"input_tokens",
            b"output_tokens",
            b"cache_creation_input_tokens",
            b"cache_read_input_tokens",
        ],
        Reader::u64,
    )?;
    Some(WireUsage {
        input_tokens,
        output_tokens,
        cache_creation_input_tokens,
        cache_read_input_tokens,
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

    /// The reader is a fast path only: wherever it answers, the answer is
    /// the serde path's, and it answers for the common message.
    #[test]
    fn text_messages_read_as_serde_reads_them() {
        let answered: [&[u8]; 6] = [
            br#"{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{"type":"text","text":"Hello there"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":8,"output_tokens":20}}"#,
            br#" {"usage":{"input_tokens":3,"cache_read_input_tokens":5,"cache_creation_input_tokens":null,"service_tier":"standard","server_tool_use":{"web_search_requests":0}},"content":[{"type":"thinking","thinking":"hm","signature":"s"},{"text":"a\nb \"c\" \u00e9","type":"text"},{"type":"text","text":"!"}],"model":"claude-x","id":"msg_\u0031","stop_reason":"max_tokens"} "#,
            br#"{"id":"m","model":"c","content":[],"stop_reason":null,"usage":null}"#,
            br#"{}"#,
            br#"{"content":[{"type":"text"},{"type":null,"text":"skipped"},{"type":"redacted_thinking","data":"x","id":null}],"stop_reason":"refusal"}"#,
            br#"{"id":"m","content":[{"type":"text","text":"x"}],"stop_reason":"pause_turn","usage":{"output_tokens":18446744073709551615}}"#,
        ];
        for body in answered {
            let read = read_text_message(body)
                .unwrap_or_else(|| panic!("not read: {}", String::from_utf8_lossy(body)));
            assert_eq!(Ok(read), decode_with_serde(body).map_err(|err| err.message));
        }
        let left_to_serde: [&[u8]; 15] = [
            br#"{"content":[{"type":"text","text":"x","input":{"n":1e400}}]}"#,
            br#"{"id":"m","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}"#,
            br#"{"id":null}"#,
            br#"{"id":"a","id":"b"}"#,
            br#"{"content":null}"#,
            br#"{"content":[{"type":"text","text":5}]}"#,
            br#"{"content":[{"type":"text","type":"text","text":"x"}]}"#,
            br#"{"content":[["text","x"]]}"#,
            br#"{"usage":[1,2]}"#,
            br#"{"usage":{"input_tokens":-1}}"#,
            br#"{"usage":{"input_tokens":1.0}}"#,
            br#"{"usage":{"input_tokens":1,"input_tokens":2}}"#,
            br#"{"stop_reason":1}"#,
            br#"{"id":"m"} x"#,
            br#"[]"#,
        ];
        for body in left_to_serde {
            assert_eq!(
                read_text_message(body),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

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
