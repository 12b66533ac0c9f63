//! Messages API requests: Anthropic JSON ↔ [`ChatRequest`].

use gateway_core::json::{write_array, write_f64, write_str, write_u64};
use gateway_core::{
    ChatRequest, ContentPart, Extra, GatewayError, ImageSource, Message, Param, ResponseFormat,
    Role, Tool, ToolCall, ToolChoice,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{DEFAULT_MAX_TOKENS, DIALECT};

#[derive(Deserialize)]
struct WireRequest {
    model: String,
    max_tokens: u32,
    messages: Vec<Value>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    tools: Option<Vec<WireTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct WireTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<Value>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// Decodes an Anthropic Messages body into the canonical request. Errors
/// name the parameter at fault (`messages[1].content[0].type`).
///
/// Tool results, which Anthropic carries as blocks of a user message, become
/// canonical `tool` messages placed before that message's other content.
/// `cache_control` markers are hints for Anthropic's prompt cache and are
/// not carried into other dialects; `thinking` blocks in the history cannot
/// be translated and are rejected.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    let wire: WireRequest = gateway_core::body::parse_body(body)?;
    if wire.messages.is_empty() {
        return Err(GatewayError::invalid_param(
            "messages",
            "'messages' must contain at least one message",
        ));
    }
    let mut messages = Vec::new();
    if let Some(system) = wire.system.filter(|value| !value.is_null()) {
        let content = decode_blocks_as_text(Param::Root("system"), &system)?;
        messages.push(Message {
            role: Role::System,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        });
    }
    for (index, message) in wire.messages.iter().enumerate() {
        decode_message(index, message, &mut messages)?;
    }
    let mut tools = Vec::new();
    for (index, tool) in wire.tools.unwrap_or_default().into_iter().enumerate() {
        if let Some(kind) = tool.kind.filter(|kind| kind != "custom") {
            return Err(GatewayError::invalid_param(
                format!("tools[{index}].type"),
                format!("server tool '{kind}' cannot be translated; only custom tools can"),
            ));
        }
        tools.push(Tool {
            name: tool.name,
            description: tool.description,
            parameters: tool
                .input_schema
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: None,
        });
    }
    let mut extra: Map<String, Value> = wire
        .extra
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .collect();
    let tool_choice = match wire.tool_choice {
        None => None,
        Some(choice) => {
            if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
                extra.insert("disable_parallel_tool_use".into(), Value::Bool(true));
            }
            Some(decode_tool_choice(&choice)?)
        }
    };
    Ok(ChatRequest {
        model: wire.model,
        messages,
        tools,
        tool_choice,
        temperature: wire.temperature,
        top_p: wire.top_p,
        max_output_tokens: Some(wire.max_tokens),
        stop: wire.stop_sequences.unwrap_or_default(),
        response_format: None,
        stream: wire.stream.unwrap_or(false),
        metadata: wire.metadata,
        request_id: None,
        extra: Extra {
            dialect: Some(DIALECT.to_owned()),
            fields: extra,
        },
    })
}

fn decode_tool_choice(choice: &Value) -> Result<ToolChoice, GatewayError> {
    match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(ToolChoice::Auto),
        Some("any") => Ok(ToolChoice::Required),
        Some("none") => Ok(ToolChoice::None),
        Some("tool") => choice
            .get("name")
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Tool {
                name: name.to_owned(),
            })
            .ok_or_else(|| {
                GatewayError::invalid_param("tool_choice.name", "'tool_choice.name' is required")
            }),
        _ => Err(GatewayError::invalid_param(
            "tool_choice.type",
            "'tool_choice.type' must be auto, any, tool or none",
        )),
    }
}

/// System prompts and tool results: a string or an array of text blocks.
fn decode_blocks_as_text(
    param: Param<'_>,
    value: &Value,
) -> Result<Vec<ContentPart>, GatewayError> {
    match value {
        Value::String(text) => Ok(vec![ContentPart::Text { text: text.clone() }]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(index, block)| {
                let at = param.index(index);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => text_of(at, block),
                    Some("image") => image_of(at, block),
                    other => Err(GatewayError::invalid_param(
                        format!("{at}.type"),
                        format!("block type {} is not allowed here", quoted(other)),
                    )),
                }
            })
            .collect(),
        _ => Err(GatewayError::invalid_param(
            param.to_string(),
            format!("'{param}' must be a string or an array of blocks"),
        )),
    }
}

fn quoted(kind: Option<&str>) -> String {
    kind.map(|kind| format!("'{kind}'"))
        .unwrap_or_else(|| "(missing)".to_owned())
}

fn text_of(at: Param<'_>, block: &Value) -> Result<ContentPart, GatewayError> {
    block
        .get("text")
        .and_then(Value::as_str)
        .map(|text| ContentPart::Text {
            text: text.to_owned(),
        })
        .ok_or_else(|| {
            GatewayError::invalid_param(
                format!("{at}.text"),
                format!("'{at}.text' must be a string"),
            )
        })
}

fn image_of(at: Param<'_>, block: &Value) -> Result<ContentPart, GatewayError> {
    let source = &block["source"];
    let field = |name: &str| source.get(name).and_then(Value::as_str).map(str::to_owned);
    let image = match source.get("type").and_then(Value::as_str) {
        Some("base64") => field("media_type")
            .zip(field("data"))
            .map(|(media_type, data)| ImageSource::Base64 { media_type, data }),
        Some("url") => field("url").map(|url| ImageSource::Url { url }),
        _ => None,
    };
    image
        .map(|source| ContentPart::Image { source })
        .ok_or_else(|| {
            GatewayError::invalid_param(
                format!("{at}.source"),
                format!("'{at}.source' must be a base64 or url image source"),
            )
        })
}

fn decode_message(index: usize, value: &Value, out: &mut Vec<Message>) -> Result<(), GatewayError> {
    let messages = Param::Root("messages");
    let at = messages.index(index);
    let role = match value.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system") => {
            return Err(GatewayError::invalid_param(
                format!("{at}.role"),
                "Anthropic messages have no 'system' role; put the system prompt in the top-level 'system' field",
            ));
        }
        other => {
            return Err(GatewayError::invalid_param(
                format!("{at}.role"),
                format!("role {} is not user or assistant", quoted(other)),
            ));
        }
    };
    let mut message = Message {
        role,
        content: Vec::new(),
        tool_calls: Vec::new(),
        tool_call_id: None,
        name: None,
    };
    let blocks = match value.get("content") {
        Some(Value::String(text)) => {
            message
                .content
                .push(ContentPart::Text { text: text.clone() });
            out.push(message);
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(GatewayError::invalid_param(
                format!("{at}.content"),
                format!("'{at}.content' must be a string or an array of blocks"),
            ));
        }
    };
    for (position, block) in blocks.iter().enumerate() {
        let content = at.field("content");
        let at = content.index(position);
        match block.get("type").and_then(Value::as_str) {
            Some("text") => message.content.push(text_of(at, block)?),
            Some("image") => message.content.push(image_of(at, block)?),
            Some("tool_use") if role == Role::Assistant => {
                let id = block.get("id").and_then(Value::as_str);
                let name = block.get("name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(GatewayError::invalid_param(
                        at.to_string(),
                        format!("'{at}' needs string 'id' and 'name'"),
                    ));
                };
                message.tool_calls.push(ToolCall {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    arguments: block
                        .get("input")
                        .cloned()
                        .unwrap_or_else(|| json!({}))
                        .to_string(),
                });
            }
            Some("tool_result") if role == Role::User => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        GatewayError::invalid_param(
                            format!("{at}.tool_use_id"),
                            format!("'{at}.tool_use_id' is required"),
                        )
                    })?;
                let mut content = match block.get("content") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(content) => decode_blocks_as_text(at.field("content"), content)?,
                };
                if block.get("is_error") == Some(&Value::Bool(true)) {
                    content.insert(
                        0,
                        ContentPart::Text {
                            text: "Error: ".to_owned(),
                        },
                    );
                }
                out.push(Message {
                    role: Role::Tool,
                    content,
                    tool_calls: Vec::new(),
                    tool_call_id: Some(id.to_owned()),
                    name: None,
                });
            }
            Some(kind @ ("thinking" | "redacted_thinking")) => {
                return Err(GatewayError::invalid_param(
                    format!("{at}.type"),
                    format!(
                        "'{kind}' blocks can only go to an Anthropic backend; this request is translated"
                    ),
                ));
            }
            other => {
                return Err(GatewayError::invalid_param(
                    format!("{at}.type"),
                    format!(
                        "block type {} is not supported in {} messages",
                        quoted(other),
                        if role == Role::User {
                            "user"
                        } else {
                            "assistant"
                        }
                    ),
                ));
            }
        }
    }
    if !message.content.is_empty() || !message.tool_calls.is_empty() {
        out.push(message);
    }
    Ok(())
}

/// Encodes a canonical request as an Anthropic Messages body for an
/// upstream: system messages become the top-level `system`, tool results
/// become `tool_result` blocks in one user turn, consecutive turns of one
/// role are merged (Anthropic requires alternation), and `max_tokens` falls
/// back to [`DEFAULT_MAX_TOKENS`].
pub fn encode_request(request: &ChatRequest, backend: &str) -> Result<Value, GatewayError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert(
        "max_tokens".into(),
        json!(request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if let Some(system) = request.system_text() {
        body.insert("system".into(), json!(system));
    }
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = encode_message(message)?;
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => {
                // Tool results must come first in a user turn.
                if message.role == Role::Tool {
                    let at = last_blocks
                        .iter()
                        .position(|block| block["type"] != "tool_result")
                        .unwrap_or(last_blocks.len());
                    last_blocks.splice(at..at, blocks);
                } else {
                    last_blocks.extend(blocks);
                }
            }
            _ => turns.push((role, blocks)),
        }
    }
    body.insert(
        "messages".into(),
        turns
            .into_iter()
            .map(|(role, content)| json!({ "role": role, "content": content }))
            .collect(),
    );
    if !request.tools.is_empty() {
        body.insert(
            "tools".into(),
            request
                .tools
                .iter()
                .map(|tool| {
                    let mut out = Map::new();
                    out.insert("name".into(), json!(tool.name));
                    if let Some(description) = &tool.description {
                        out.insert("description".into(), json!(description));
                    }
                    out.insert("input_schema".into(), tool.parameters.clone());
                    Value::Object(out)
                })
                .collect(),
        );
    }
    let mut tool_choice = request.tool_choice.as_ref().map(|choice| match choice {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Tool { name } => json!({"type": "tool", "name": name}),
    });
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(_) => {
            return Err(GatewayError::unsupported(
                "response_format",
                backend,
                DIALECT,
            ));
        }
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    let extra = &request.extra;
    if extra.dialect.as_deref() == Some(DIALECT) {
        for (key, value) in &extra.fields {
            if key == "disable_parallel_tool_use" {
                continue;
            }
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
        if extra.fields.contains_key("disable_parallel_tool_use") {
            let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
            choice["disable_parallel_tool_use"] = json!(true);
        }
    } else {
        for (key, value) in &extra.fields {
            match (key.as_str(), value) {
                // OpenAI's spellings of things Anthropic has.
                ("parallel_tool_calls", Value::Bool(parallel)) => {
                    if !parallel {
                        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
                        choice["disable_parallel_tool_use"] = json!(true);
                    }
                }
                ("user", Value::String(user)) => {
                    body.insert("metadata".into(), json!({ "user_id": user }));
                }
                _ => return Err(GatewayError::unsupported(key, backend, DIALECT)),
            }
        }
    }
    if let Some(choice) = tool_choice {
        body.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(body))
}

/// [`encode_request`]'s body, serialised, for a plain request: text-only
/// messages, without tools, tool choice, a response format or extra
/// fields. That is most translated traffic, and for it this writes the
/// same bytes from typed structs instead of building a `Value` tree and
/// serialising it (which cost about a fifth of a translated request).
/// `None` for any other request, which [`encode_request`] then encodes.
pub fn encode_plain_request(request: &ChatRequest) -> Option<Vec<u8>> {
    let plain = request.tools.is_empty()
        && request.tool_choice.is_none()
        && matches!(request.response_format, None | Some(ResponseFormat::Text))
        && request.extra.fields.is_empty()
        && request.messages.iter().all(|message| {
            message.role != Role::Tool
                && message.tool_calls.is_empty()
                && message
                    .content
                    .iter()
                    .all(|part| matches!(part, ContentPart::Text { .. }))
        });
    if !plain {
        return None;
    }
    // The turns as `encode_request` merges them, each a run of texts.
    let mut messages: Vec<PlainTurn<'_>> = Vec::new();
    for message in request.messages.iter().filter(|m| m.role != Role::System) {
        let role = if message.role == Role::Assistant {
            "assistant"
        } else {
            "user"
        };
        let texts = message.content.iter().filter_map(|part| match part {
            // An assistant's empty text blocks are dropped, as there.
            ContentPart::Text { text } if role == "user" || !text.is_empty() => {
                Some(PlainText { kind: "text", text })
            }
            _ => None,
        });
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(texts),
            _ => messages.push(PlainTurn {
                role,
                content: texts.collect(),
            }),
        }
    }
    let body = PlainRequest {
        model: &request.model,
        max_tokens: request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        system: request.system_text(),
        messages,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: &request.stop,
        stream: request.stream,
    };
    Some(body.to_json())
}

/// A plain request's body, fields in [`encode_request`]'s order.
struct PlainRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    system: Option<String>,
    messages: Vec<PlainTurn<'a>>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop_sequences: &'a [String],
    stream: bool,
}

struct PlainTurn<'a> {
    role: &'static str,
    content: Vec<PlainText<'a>>,
}

struct PlainText<'a> {
    kind: &'static str,
    text: &'a str,
}

impl PlainRequest<'_> {
    /// The body as JSON, written piece by piece rather than serialised
    /// (serde escapes every field name on every call): the bytes
    /// [`encode_request`]'s `Value` serialises to, as a test holds it.
    fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"model\":");
        write_str(&mut out, self.model);
        out.extend_from_slice(b",\"max_tokens\":");
        write_u64(&mut out, u64::from(self.max_tokens));
        if let Some(system) = &self.system {
            out.extend_from_slice(b",\"system\":");
            write_str(&mut out, system);
        }
        out.extend_from_slice(b",\"messages\":");
        write_array(&mut out, &self.messages, |out, turn| {
            out.extend_from_slice(b"{\"role\":");
            write_str(out, turn.role);
            out.extend_from_slice(b",\"content\":");
            write_array(out, &turn.content, |out, text| {
                out.extend_from_slice(b"{\"type\":");
                write_str(out, text.kind);
                out.extend_from_slice(b",\"text\":");
                write_str(out, text.text);
                out.push(b'}');
            });
            out.push(b'}');
        });
        if let Some(temperature) = self.temperature {
            out.extend_from_slice(b",\"temperature\":");
            write_f64(&mut out, temperature);
        }
        if let Some(top_p) = self.top_p {
            out.extend_from_slice(b",\"top_p\":");
            write_f64(&mut out, top_p);
        }
        if !self.stop_sequences.is_empty() {
            out.extend_from_slice(b",\"stop_sequences\":");
            write_array(&mut out, self.stop_sequences, |out, stop| {
                write_str(out, stop)
            });
        }
        if self.stream {
            out.extend_from_slice(b",\"stream\":true");
        }
        out.push(b'}');
        out
    }
}

fn encode_message(message: &Message) -> Result<(&'static str, Vec<Value>), GatewayError> {
    let mut blocks: Vec<Value> = message.content.iter().map(encode_part).collect();
    match message.role {
        Role::Tool => {
            let id = message.tool_call_id.clone().unwrap_or_default();
            Ok((
                "user",
                vec![json!({"type": "tool_result", "tool_use_id": id, "content": blocks})],
            ))
        }
        Role::Assistant => {
            blocks.retain(|block| block["type"] != "text" || block["text"] != "");
            for call in &message.tool_calls {
                let input: Value = serde_json::from_str(&call.arguments).map_err(|err| {
                    GatewayError::invalid_request(format!(
                        "the arguments of tool call '{}' are not JSON: {err}",
                        call.id
                    ))
                })?;
                blocks.push(
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}),
                );
            }
            Ok(("assistant", blocks))
        }
        Role::User | Role::System => Ok(("user", blocks)),
    }
}

fn encode_part(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text { text } => json!({"type": "text", "text": text}),
        ContentPart::Image {
            source: ImageSource::Base64 { media_type, data },
        } => {
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
        ContentPart::Image {
            source: ImageSource::Url { url },
        } => {
            json!({"type": "image", "source": {"type": "url", "url": url}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{
        "model": "claude",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "png"}},
                {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"q": "logo"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a logo"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "blue"}]},
                {"type": "text", "text": "and?"}
            ]}
        ],
        "tools": [{"name": "lookup", "description": "search", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "stream": true,
        "top_k": 5
    }"#;

    #[test]
    fn decodes_every_modelled_field() {
        insta::assert_json_snapshot!(decode_request(FULL.as_bytes()).expect("valid"));
    }

    #[test]
    fn round_trips_through_the_canonical_request() {
        let request = decode_request(FULL.as_bytes()).expect("valid");
        insta::assert_json_snapshot!(encode_request(&request, "claude").expect("encodes"));
    }

    #[test]
    fn encodes_openai_shaped_history_for_anthropic() {
        let mut assistant = Message::text(Role::Assistant, "");
        assistant.tool_calls = vec![
            ToolCall {
                id: "call_a".into(),
                name: "f".into(),
                arguments: "{\"x\":1}".into(),
            },
            ToolCall {
                id: "call_b".into(),
                name: "g".into(),
                arguments: "{}".into(),
            },
        ];
        let tool = |id: &str, text: &str| Message {
            tool_call_id: Some(id.into()),
            ..Message::text(Role::Tool, text)
        };
        let request = ChatRequest {
            model: "claude".into(),
            messages: vec![
                Message::text(Role::System, "sys one"),
                Message::text(Role::System, "sys two"),
                Message::text(Role::User, "hi"),
                assistant,
                tool("call_a", "A"),
                tool("call_b", "B"),
                Message::text(Role::User, "thanks"),
            ],
            tool_choice: Some(ToolChoice::Auto),
            extra: Extra {
                dialect: Some("openai".into()),
                fields: Map::from_iter([
                    ("parallel_tool_calls".to_owned(), json!(false)),
                    ("user".to_owned(), json!("u1")),
                ]),
            },
            ..ChatRequest::default()
        };
        insta::assert_json_snapshot!(encode_request(&request, "claude").expect("encodes"));
    }

    #[test]
    fn plain_requests_encode_to_the_same_bytes_without_a_value_tree() {
        let text = |role, text: &str| Message::text(role, text);
        let mut with_parts = text(Role::User, "one");
        with_parts.content.push(ContentPart::Text {
            text: String::new(),
        });
        with_parts.content.push(ContentPart::Text {
            text: "two \"quoted\"\n".into(),
        });
        let plain = [
            ChatRequest {
                model: "claude".into(),
                messages: vec![text(Role::User, "hi")],
                ..ChatRequest::default()
            },
            ChatRequest {
                model: "claude-x".into(),
                messages: vec![
                    text(Role::System, "sys one"),
                    text(Role::User, "hi"),
                    text(Role::System, ""),
                    with_parts,
                    text(Role::Assistant, ""),
                    text(Role::Assistant, "sure"),
                    text(Role::User, "ünï 😀"),
                ],
                temperature: Some(0.7),
                top_p: Some(f64::NAN),
                max_output_tokens: Some(99),
                stop: vec!["END".into(), "\t".into()],
                stream: true,
                response_format: Some(ResponseFormat::Text),
                extra: Extra {
                    dialect: Some("anthropic".into()),
                    fields: Map::new(),
                },
                ..ChatRequest::default()
            },
            ChatRequest::default(),
        ];
        for request in &plain {
            let general = serde_json::to_vec(&encode_request(request, "b").expect("encodes"))
                .expect("serialises");
            let quick = encode_plain_request(request).expect("plain");
            assert_eq!(
                String::from_utf8_lossy(&quick),
                String::from_utf8_lossy(&general)
            );
        }
        let full = decode_request(FULL.as_bytes()).expect("valid");
        assert!(encode_plain_request(&full).is_none());
        let mut extra = plain[0].clone();
        extra.extra.fields.insert("user".into(), json!("u1"));
        assert!(encode_plain_request(&extra).is_none());
        let mut tool = plain[0].clone();
        tool.messages.push(Message {
            tool_call_id: Some("call_a".into()),
            ..Message::text(Role::Tool, "A")
        });
        assert!(encode_plain_request(&tool).is_none());
    }

    #[test]
    fn untranslatable_features_are_400s_naming_them() {
        let mut request = decode_request(FULL.as_bytes()).expect("valid");
        request.extra = Extra {
            dialect: Some("openai".into()),
            fields: Map::from_iter([("seed".to_owned(), json!(1))]),
        };
        let err = encode_request(&request, "claude").expect_err("seed");
        assert_eq!(
            err.message,
            "'seed' is not supported by backend 'claude' (dialect anthropic); remove it or route to a backend that supports it"
        );
        request.extra = Extra::default();
        request.response_format = Some(ResponseFormat::JsonObject);
        let err = encode_request(&request, "claude").expect_err("json mode");
        assert_eq!(err.param.as_deref(), Some("response_format"));
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let cases = [
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens",
                "missing required parameter: 'max_tokens'",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[]}"#,
                "messages",
                "'messages' must contain at least one message",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#,
                "messages[0].role",
                "Anthropic messages have no 'system' role; put the system prompt in the top-level 'system' field",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":5}]}"#,
                "messages[0].content",
                "'messages[0].content' must be a string or an array of blocks",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"hm"}]}]}"#,
                "messages[0].content[0].type",
                "'thinking' blocks can only go to an Anthropic backend; this request is translated",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}"#,
                "messages[0].content[0].tool_use_id",
                "'messages[0].content[0].tool_use_id' is required",
            ),
        ];
        for (body, param, message) in cases {
            let err = decode_request(body.as_bytes()).expect_err(body);
            assert_eq!(err.status(), 400, "{body}");
            assert_eq!(err.param.as_deref(), Some(param), "{body}");
            assert_eq!(err.message, message, "{body}");
        }
    }
}
