//! Chat completions requests: OpenAI JSON ↔ [`ChatRequest`].

use std::borrow::Cow;

use gateway_core::json::Reader;
use gateway_core::{
    ChatRequest, ContentPart, Extra, GatewayError, ImageSource, Message, Param, ResponseFormat,
    Role, Tool, ToolCall, ToolChoice,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::DIALECT;

/// A decoded request plus what only the OpenAI encoder needs back.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The canonical request.
    pub request: ChatRequest,
    /// `stream_options.include_usage`: send a final usage chunk.
    pub include_usage: bool,
}

/// The request body. `M` is one message: a [`PlainMessage`] when
/// [`read_plain_request`] reads the body, a JSON value when serde does
/// (see [`decode_request`]).
#[derive(Deserialize)]
struct WireRequest<M> {
    model: String,
    messages: Vec<M>,
    #[serde(default)]
    tools: Option<Vec<WireTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<StopField>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<WireStreamOptions>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct WireStreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct WireTool {
    #[serde(rename = "type")]
    kind: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

/// A message as [`read_plain_request`] reads it: the fields the decoder
/// reads, typed, with no map per message. (serde parses messages as JSON
/// values, which accept every message and let the decoder name what is
/// wrong in its own words; a typed serde parse would also take a message
/// written as an array, which the decoder refuses.)
struct PlainMessage {
    role: String,
    name: Option<String>,
    content: Option<Value>,
    tool_call_id: Option<String>,
}

/// What [`decode_message`] reads of a message, however it was parsed.
#[derive(Clone, Copy)]
struct MessageFields<'a> {
    role: Option<&'a str>,
    name: Option<&'a str>,
    content: Option<&'a Value>,
    tool_calls: Option<&'a Value>,
    tool_call_id: Option<&'a str>,
}

/// A parsed message, as [`MessageFields`].
trait WireMessage {
    /// The fields, or why this is no message.
    fn fields(&self, index: usize) -> Result<MessageFields<'_>, GatewayError>;
}

impl WireMessage for PlainMessage {
    fn fields(&self, _: usize) -> Result<MessageFields<'_>, GatewayError> {
        Ok(MessageFields {
            role: Some(&self.role),
            name: self.name.as_deref(),
            content: self.content.as_ref(),
            tool_calls: None,
            tool_call_id: self.tool_call_id.as_deref(),
        })
    }
}

impl WireMessage for Value {
    fn fields(&self, index: usize) -> Result<MessageFields<'_>, GatewayError> {
        let object = self.as_object().ok_or_else(|| {
            GatewayError::invalid_param(
                Param::Root("messages").index(index).to_string(),
                "each message must be an object",
            )
        })?;
        let text = |field: &str| object.get(field).and_then(Value::as_str);
        Ok(MessageFields {
            role: text("role"),
            name: text("name"),
            content: object.get("content"),
            tool_calls: object.get("tool_calls"),
            tool_call_id: text("tool_call_id"),
        })
    }
}

/// Decodes an OpenAI chat completions body into the canonical request.
/// Errors name the parameter at fault (`messages[1].content`).
pub fn decode_request(body: &[u8]) -> Result<Decoded, GatewayError> {
    match read_plain_request(body) {
        Some(wire) => decode_wire(wire),
        None => decode_wire(gateway_core::body::parse_body::<WireRequest<Value>>(body)?),
    }
}

/// The common request read with [`Reader`] rather than serde (whose field
/// matching was a tenth of a translated request): the fields below, text
/// messages, no tools, response format, metadata or other fields. `None`
/// for anything else, and for any body serde would read differently or
/// refuse (a repeated field, a field of another type), which
/// [`decode_request`] then parses with serde as before.
fn read_plain_request(body: &[u8]) -> Option<WireRequest<PlainMessage>> {
    let mut reader = Reader::new(body);
    let mut model = None;
    let mut messages = None;
    let mut temperature = None;
    let mut top_p = None;
    let mut max_tokens = None;
    let mut max_completion_tokens = None;
    let mut stop = None;
    let mut stream = None;
    let mut stream_options = None;
    let mut n = None;
    // Fields taken only as null, as serde reads them when they are.
    let mut nulls = [false; 4];
    reader.object(|reader, key| {
        match key {
            b"model" if model.is_none() => model = Some(reader.string()?.into_owned()),
            b"messages" if messages.is_none() => {
                let mut list = Vec::new();
                reader.array(|reader| {
                    list.push(read_plain_message(reader)?);
                    Some(())
                })?;
                messages = Some(list);
            }
            b"temperature" if temperature.is_none() => {
                temperature = Some(reader.nullable(Reader::f64)?);
            }
            b"top_p" if top_p.is_none() => top_p = Some(reader.nullable(Reader::f64)?),
            b"max_tokens" if max_tokens.is_none() => max_tokens = Some(reader.nullable(read_u32)?),
            b"max_completion_tokens" if max_completion_tokens.is_none() => {
                max_completion_tokens = Some(reader.nullable(read_u32)?);
            }
            b"n" if n.is_none() => n = Some(reader.nullable(read_u32)?),
            b"stop" if stop.is_none() => stop = Some(reader.nullable(read_stop)?),
            b"stream" if stream.is_none() => stream = Some(reader.nullable(Reader::bool)?),
            b"stream_options" if stream_options.is_none() => {
                stream_options = Some(reader.nullable(read_stream_options)?);
            }
            b"tools" | b"tool_choice" | b"response_format" | b"metadata" => {
                let slot = match key {
                    b"tools" => 0,
                    b"tool_choice" => 1,
                    b"response_format" => 2,
                    _ => 3,
                };
                if std::mem::replace(&mut nulls[slot], true) || !reader.null() {
                    return None;
                }
            }
            _ => return None,
        }
        Some(())
    })?;
    reader.end()?;
    Some(WireRequest {
        model: model?,
        messages: messages?,
        tools: None,
        tool_choice: None,
        temperature: temperature.flatten(),
        top_p: top_p.flatten(),
        max_tokens: max_tokens.flatten(),
        max_completion_tokens: max_completion_tokens.flatten(),
        stop: stop.flatten(),
        response_format: None,
        stream: stream.flatten(),
        stream_options: stream_options.flatten(),
        metadata: None,
        n: n.flatten(),
        extra: Map::new(),
    })
}

/// A message of [`read_plain_request`]: role, name, content text or null,
/// tool call id; no tool calls and no other field.
fn read_plain_message(reader: &mut Reader<'_>) -> Option<PlainMessage> {
    let mut role = None;
    let mut name = None;
    let mut content = None;
    let mut tool_call_id = None;
    let mut tool_calls = false;
    reader.object(|reader, key| {
        match key {
            b"role" if role.is_none() => role = Some(reader.string()?.into_owned()),
            b"name" if name.is_none() => name = Some(reader.nullable(Reader::string)?),
            b"content" if content.is_none() => {
                content = Some(reader.nullable(Reader::string)?);
            }
            b"tool_call_id" if tool_call_id.is_none() => {
                tool_call_id = Some(reader.nullable(Reader::string)?);
            }
            b"tool_calls" if !tool_calls => {
                tool_calls = true;
                if !reader.null() {
                    return None;
                }
            }
            // Any other field too: serde reads a message whole as a JSON
            // value, checking every string and number in it, which a skip
            // does not.
            _ => return None,
        }
        Some(())
    })?;
    Some(PlainMessage {
        role: role?,
        name: name.flatten().map(Cow::into_owned),
        content: content
            .flatten()
            .map(|text| Value::String(text.into_owned())),
        tool_call_id: tool_call_id.flatten().map(Cow::into_owned),
    })
}

fn read_u32(reader: &mut Reader<'_>) -> Option<u32> {
    u32::try_from(reader.u64()?).ok()
}

/// `stop`: a string or an array of strings.
fn read_stop(reader: &mut Reader<'_>) -> Option<StopField> {
    if reader.at_string() {
        return Some(StopField::One(reader.string()?.into_owned()));
    }
    let mut many = Vec::new();
    reader.array(|reader| {
        many.push(reader.string()?.into_owned());
        Some(())
    })?;
    Some(StopField::Many(many))
}

/// `stream_options`, as the body probe reads it.
fn read_stream_options(reader: &mut Reader<'_>) -> Option<WireStreamOptions> {
    gateway_core::body::read_stream_options(reader)
        .map(|include_usage| WireStreamOptions { include_usage })
}

fn decode_wire<M: WireMessage>(wire: WireRequest<M>) -> Result<Decoded, GatewayError> {
    if let Some(n) = wire.n
        && n != 1
    {
        return Err(GatewayError::invalid_param(
            "n",
            format!("'n' = {n} is not supported when the request is translated; use n = 1"),
        ));
    }
    if wire.messages.is_empty() {
        return Err(GatewayError::invalid_param(
            "messages",
            "'messages' must contain at least one message",
        ));
    }
    let messages = wire
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| decode_message(index, message.fields(index)?))
        .collect::<Result<Vec<_>, _>>()?;

    let mut tools = Vec::new();
    for (index, tool) in wire.tools.unwrap_or_default().into_iter().enumerate() {
        if tool.kind != "function" {
            return Err(GatewayError::invalid_param(
                format!("tools[{index}].type"),
                format!("tool type '{}' is not supported; use 'function'", tool.kind),
            ));
        }
        tools.push(Tool {
            name: tool.function.name,
            description: tool.function.description,
            parameters: tool
                .function
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: tool.function.strict,
        });
    }

    Ok(Decoded {
        include_usage: wire
            .stream_options
            .and_then(|options| options.include_usage)
            .unwrap_or(false),
        request: ChatRequest {
            model: wire.model,
            messages,
            tools,
            tool_choice: wire.tool_choice.map(decode_tool_choice).transpose()?,
            temperature: wire.temperature,
            top_p: wire.top_p,
            max_output_tokens: wire.max_completion_tokens.or(wire.max_tokens),
            stop: match wire.stop {
                None => Vec::new(),
                Some(StopField::One(stop)) => vec![stop],
                Some(StopField::Many(stops)) => stops,
            },
            response_format: wire
                .response_format
                .map(decode_response_format)
                .transpose()?,
            stream: wire.stream.unwrap_or(false),
            metadata: wire.metadata,
            request_id: None,
            extra: Extra {
                dialect: Some(DIALECT.to_owned()),
                fields: wire
                    .extra
                    .into_iter()
                    .filter(|(_, value)| !value.is_null())
                    .collect(),
            },
        },
    })
}

fn decode_message(index: usize, fields: MessageFields<'_>) -> Result<Message, GatewayError> {
    let messages = Param::Root("messages");
    let at = messages.index(index);
    let role_param = at.field("role");
    let role = fields.role.ok_or_else(|| {
        GatewayError::invalid_param(
            role_param.to_string(),
            format!("'{role_param}' is required and must be a string"),
        )
    })?;
    let name = fields.name.map(str::to_owned);
    let content_param = at.field("content");
    let content = fields.content.filter(|value| !value.is_null());
    let mut message = match role {
        "system" | "developer" => Message {
            role: Role::System,
            content: decode_content(content_param, content, false)?,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name,
        },
        "user" => Message {
            role: Role::User,
            content: decode_content(content_param, content, true)?,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name,
        },
        "assistant" => Message {
            role: Role::Assistant,
            content: match content {
                None => Vec::new(),
                Some(_) => decode_content(content_param, content, false)?,
            },
            tool_calls: decode_tool_calls(index, fields.tool_calls)?,
            tool_call_id: None,
            name,
        },
        "tool" => Message {
            role: Role::Tool,
            content: decode_content(content_param, content, false)?,
            tool_calls: Vec::new(),
            tool_call_id: Some(
                fields
                    .tool_call_id
                    .ok_or_else(|| {
                        let param = at.field("tool_call_id");
                        GatewayError::invalid_param(
                            param.to_string(),
                            format!("'{param}' is required for tool messages"),
                        )
                    })?
                    .to_owned(),
            ),
            name,
        },
        "function" => {
            return Err(GatewayError::invalid_param(
                role_param.to_string(),
                "the legacy 'function' role is not supported; use 'tool' messages",
            ));
        }
        other => {
            return Err(GatewayError::invalid_param(
                role_param.to_string(),
                format!(
                    "unknown role '{other}'; expected system, developer, user, assistant or tool"
                ),
            ));
        }
    };
    if message.role != Role::Assistant && message.content.is_empty() && content.is_none() {
        return Err(GatewayError::invalid_param(
            content_param.to_string(),
            format!("'{content_param}' is required for {role} messages"),
        ));
    }
    message.content.shrink_to_fit();
    Ok(message)
}

fn decode_content(
    param: Param<'_>,
    content: Option<&Value>,
    images_allowed: bool,
) -> Result<Vec<ContentPart>, GatewayError> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![ContentPart::Text { text: text.clone() }]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(index, part)| decode_part(param.index(index), part, images_allowed))
            .collect(),
        Some(_) => Err(GatewayError::invalid_param(
            param.to_string(),
            format!("'{param}' must be a string or an array of content parts"),
        )),
    }
}

fn decode_part(
    param: Param<'_>,
    part: &Value,
    images_allowed: bool,
) -> Result<ContentPart, GatewayError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => part
            .get("text")
            .and_then(Value::as_str)
            .map(|text| ContentPart::Text {
                text: text.to_owned(),
            })
            .ok_or_else(|| {
                GatewayError::invalid_param(
                    format!("{param}.text"),
                    format!("'{param}.text' must be a string"),
                )
            }),
        "image_url" if images_allowed => {
            let url = part
                .get("image_url")
                .and_then(|image| image.get("url").or(Some(image)))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::invalid_param(
                        format!("{param}.image_url.url"),
                        format!("'{param}.image_url.url' must be a string"),
                    )
                })?;
            Ok(ContentPart::Image {
                source: image_source(url),
            })
        }
        "" => Err(GatewayError::invalid_param(
            format!("{param}.type"),
            format!("'{param}.type' is required"),
        )),
        other => Err(GatewayError::invalid_param(
            format!("{param}.type"),
            format!("content part type '{other}' is not supported here when translating"),
        )),
    }
}

/// Splits a `data:` URL into media type and base64 data; other URLs stay URLs.
fn image_source(url: &str) -> ImageSource {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media_type, data)) = rest.split_once(";base64,")
    {
        return ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        };
    }
    ImageSource::Url {
        url: url.to_owned(),
    }
}

fn decode_tool_calls(index: usize, value: Option<&Value>) -> Result<Vec<ToolCall>, GatewayError> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(Vec::new());
    };
    let param = format!("messages[{index}].tool_calls");
    let calls = value.as_array().ok_or_else(|| {
        GatewayError::invalid_param(&param, format!("'{param}' must be an array"))
    })?;
    calls
        .iter()
        .enumerate()
        .map(|(position, call)| {
            let field = |name: &str| {
                call.pointer(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        GatewayError::invalid_param(
                            format!("{param}[{position}]{}", name.replace('/', ".")),
                            format!(
                                "'{param}[{position}]{}' must be a string",
                                name.replace('/', ".")
                            ),
                        )
                    })
            };
            Ok(ToolCall {
                id: field("/id")?,
                name: field("/function/name")?,
                arguments: field("/function/arguments")?,
            })
        })
        .collect()
}

fn decode_tool_choice(value: Value) -> Result<ToolChoice, GatewayError> {
    match &value {
        Value::String(choice) => match choice.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(GatewayError::invalid_param(
                "tool_choice",
                format!(
                    "unknown tool_choice '{other}'; expected auto, none, required or an object"
                ),
            )),
        },
        Value::Object(_) => value
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Tool {
                name: name.to_owned(),
            })
            .ok_or_else(|| {
                GatewayError::invalid_param(
                    "tool_choice.function.name",
                    "'tool_choice.function.name' must be a string",
                )
            }),
        _ => Err(GatewayError::invalid_param(
            "tool_choice",
            "'tool_choice' must be a string or an object",
        )),
    }
}

fn decode_response_format(value: Value) -> Result<ResponseFormat, GatewayError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let schema = value.get("json_schema");
            Ok(ResponseFormat::JsonSchema {
                name: schema
                    .and_then(|s| s.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("response")
                    .to_owned(),
                schema: schema.and_then(|s| s.get("schema")).cloned(),
                strict: schema
                    .and_then(|s| s.get("strict"))
                    .and_then(Value::as_bool),
            })
        }
        _ => Err(GatewayError::invalid_param(
            "response_format.type",
            "'response_format.type' must be text, json_object or json_schema",
        )),
    }
}

/// Encodes a canonical request as an OpenAI chat completions body for an
/// upstream. Streams ask for `stream_options.include_usage` so usage is
/// always reported. Fields in [`ChatRequest::extra`] are forwarded when
/// they came from the OpenAI dialect, mapped when another dialect's spelling
/// has an OpenAI equivalent, and rejected otherwise.
pub fn encode_request(request: &ChatRequest, backend: &str) -> Result<Value, GatewayError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert(
        "messages".into(),
        Value::Array(request.messages.iter().map(encode_message).collect()),
    );
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let mut function = Map::new();
                function.insert("name".into(), json!(tool.name));
                if let Some(description) = &tool.description {
                    function.insert("description".into(), json!(description));
                }
                function.insert("parameters".into(), tool.parameters.clone());
                if let Some(strict) = tool.strict {
                    function.insert("strict".into(), json!(strict));
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let encoded = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool { name } => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), encoded);
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if let Some(max) = request.max_output_tokens {
        body.insert("max_tokens".into(), json!(max));
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), json!(request.stop));
    }
    if let Some(format) = &request.response_format {
        let encoded = match format {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => {
                let mut inner = Map::new();
                inner.insert("name".into(), json!(name));
                if let Some(schema) = schema {
                    inner.insert("schema".into(), schema.clone());
                }
                if let Some(strict) = strict {
                    inner.insert("strict".into(), json!(strict));
                }
                json!({"type": "json_schema", "json_schema": inner})
            }
        };
        body.insert("response_format".into(), encoded);
    }
    if let Some(metadata) = &request.metadata {
        body.insert("metadata".into(), Value::Object(metadata.clone()));
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let same_dialect = request.extra.dialect.as_deref() == Some(DIALECT);
    for (key, value) in &request.extra.fields {
        match (same_dialect, key.as_str(), value) {
            (true, _, _) => {
                body.entry(key.clone()).or_insert_with(|| value.clone());
            }
            // Anthropic's spelling of something OpenAI has.
            (false, "disable_parallel_tool_use", Value::Bool(disable)) => {
                body.insert("parallel_tool_calls".into(), json!(!disable));
            }
            (false, field, _) => return Err(GatewayError::unsupported(field, backend, DIALECT)),
        }
    }
    Ok(Value::Object(body))
}

fn encode_message(message: &Message) -> Value {
    let role = match message.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    let has_image = message
        .content
        .iter()
        .any(|part| matches!(part, ContentPart::Image { .. }));
    let content = if has_image {
        Value::Array(message.content.iter().map(encode_part).collect())
    } else if message.content.is_empty() && message.role == Role::Assistant {
        Value::Null
    } else {
        json!(message.joined_text())
    };
    out.insert("content".into(), content);
    if !message.tool_calls.is_empty() {
        let calls = message
            .tool_calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &message.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
    }
    if let Some(name) = &message.name {
        out.insert("name".into(), json!(name));
    }
    Value::Object(out)
}

fn encode_part(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text { text } => json!({"type": "text", "text": text}),
        ContentPart::Image { source } => {
            let url = match source {
                ImageSource::Url { url } => url.clone(),
                ImageSource::Base64 { media_type, data } => {
                    format!("data:{media_type};base64,{data}")
                }
            };
            json!({"type": "image_url", "image_url": {"url": url}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader is a fast path only: wherever it reads a body, serde
    /// reads the same request from it. Common bodies, then random edits
    /// of them with the bytes JSON's grammar turns on.
    #[test]
    fn plain_requests_read_as_serde_reads_them() {
        let seeds: [&str; 4] = [
            r#"{"model":"fastan/claude","messages":[{"role":"user","content":"Say something for the benchmark."}],"stream":false}"#,
            r#"{"model":"m","messages":[{"role":"system","content":"be \"brief\"\n"},{"role":"user","content":"hi","name":"ann"},{"role":"assistant","content":null,"tool_calls":null},{"role":"tool","content":"r","tool_call_id":"c"}],"temperature":0.7,"top_p":1,"max_tokens":64,"stop":["a","b"],"stream":true,"stream_options":{"include_usage":true,"x":[1]},"n":1,"tools":null}"#,
            r#" { "messages" : [ { "content" : "x" , "role" : "user" } ] , "model" : "m" , "stop" : "END" , "max_completion_tokens" : 9 , "temperature" : 1e-3 , "metadata" : null } "#,
            r#"{"model":"m","messages":[],"n":2}"#,
        ];
        let same = |body: &[u8]| -> bool {
            let Some(wire) = read_plain_request(body) else {
                return false;
            };
            let text = String::from_utf8_lossy(body);
            let typed =
                gateway_core::body::parse_body::<WireRequest<Value>>(body).unwrap_or_else(|err| {
                    panic!(
                        "serde refuses what the reader read ({}): {text}",
                        err.message
                    )
                });
            let outcome = |decoded: Result<Decoded, GatewayError>| {
                decoded.map_err(|err| (err.param, err.message))
            };
            assert_eq!(
                outcome(decode_wire(wire)),
                outcome(decode_wire(typed)),
                "{text}"
            );
            true
        };
        for seed in seeds {
            assert!(same(seed.as_bytes()), "not read: {seed}");
        }
        let alphabet = b"{}[]\":,\\ -+.0123456789eEtrufalsn_\x01\xc3\xa9";
        let mut rng = fastrand::Rng::with_seed(7);
        let mut read = 0;
        for round in 0..20_000 {
            let body = gateway_core::json::random_edits(
                seeds[round % seeds.len()].as_bytes(),
                alphabet,
                &mut rng,
            );
            read += usize::from(same(&body));
        }
        assert!(read > 1_000, "only {read} edited bodies were read");
    }

    /// Whichever path reads a body, the request (or the error) is the one
    /// the serde path gives, and a message written as an array is refused
    /// as it always was.
    #[test]
    fn every_body_decodes_as_the_serde_path_decodes_it() {
        let bodies = [
            FULL,
            r#"{"model":"m","messages":[{"role":"user","content":"hi","name":"ann","extra":[1]}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":null}]}"#,
            r#"{"model":"m","messages":[{"role":"user"}]}"#,
            r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
            r#"{"model":"m","messages":[{"role":"tool","content":"x","tool_call_id":"c1"}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":null}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","tool_calls":{"id":"c1"}}]}"#,
            r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
            r#"{"model":"m","messages":[{"role":"function","content":"x"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#,
            r#"{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":"u"}]}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
            r#"{"model":"m","messages":[{"role":5,"content":"x"}]}"#,
            r#"{"model":"m","messages":[{"content":"x"}]}"#,
            r#"{"model":"m","messages":["hi"]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x","name":7}]}"#,
            r#"{"model":"m","messages":[{"role":"user","role":"system","content":"x"}]}"#,
            r#"{"model":"m","messages":[{"role":"tool","content":"x","tool_call_id":9}]}"#,
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m","messages":[["user","hi"]]}"#,
        ];
        let outcome = |decoded: Result<Decoded, GatewayError>| {
            decoded.map_err(|err| (err.param, err.message))
        };
        let mut read = 0;
        for body in bodies {
            let by_value = outcome(
                gateway_core::body::parse_body::<WireRequest<Value>>(body.as_bytes())
                    .and_then(decode_wire),
            );
            read += usize::from(read_plain_request(body.as_bytes()).is_some());
            assert_eq!(outcome(decode_request(body.as_bytes())), by_value, "{body}");
        }
        assert!(read >= 8, "only {read} bodies took the reader's path");
        let array_message =
            decode_request(br#"{"model":"m","messages":[["user","hi"]]}"#).expect_err("refused");
        assert_eq!(array_message.message, "each message must be an object");
    }

    const FULL: &str = r#"{
        "model": "default",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"png\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a logo"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "search", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "temperature": 0.2,
        "max_completion_tokens": 64,
        "stop": "END",
        "stream": true,
        "stream_options": {"include_usage": true},
        "seed": 7,
        "user": null
    }"#;

    #[test]
    fn decodes_every_modelled_field() {
        let decoded = decode_request(FULL.as_bytes()).expect("valid");
        assert!(decoded.include_usage);
        insta::assert_json_snapshot!(decoded.request);
    }

    #[test]
    fn encodes_for_upstream() {
        let mut request = decode_request(FULL.as_bytes()).expect("valid").request;
        request.model = "gpt-4o-2024-08-06".into();
        insta::assert_json_snapshot!(encode_request(&request, "up").expect("encodes"));
    }

    #[test]
    fn anthropic_parallel_tool_switch_maps_to_openai() {
        let mut request = decode_request(FULL.as_bytes()).expect("valid").request;
        request.extra = Extra {
            dialect: Some("anthropic".into()),
            fields: Map::from_iter([("disable_parallel_tool_use".to_owned(), json!(true))]),
        };
        let body = encode_request(&request, "up").expect("encodes");
        assert_eq!(body["parallel_tool_calls"], json!(false));
    }

    #[test]
    fn foreign_extras_are_rejected_not_dropped() {
        let mut request = decode_request(FULL.as_bytes()).expect("valid").request;
        request.extra.dialect = Some("anthropic".into());
        request.extra.fields = Map::from_iter([("top_k".to_owned(), json!(5))]);
        let err = encode_request(&request, "up").expect_err("unsupported");
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.message,
            "'top_k' is not supported by backend 'up' (dialect openai); remove it or route to a backend that supports it"
        );
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let cases = [
            (
                r#"{"model":"m"}"#,
                "messages",
                "missing required parameter: 'messages'",
            ),
            (
                r#"{"model":"m","messages":[]}"#,
                "messages",
                "'messages' must contain at least one message",
            ),
            (
                r#"{"model":"m","messages":[{"content":"x"}]}"#,
                "messages[0].role",
                "'messages[0].role' is required and must be a string",
            ),
            (
                r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
                "messages[0].role",
                "unknown role 'robot'; expected system, developer, user, assistant or tool",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
                "messages[0].content",
                "'messages[0].content' must be a string or an array of content parts",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}]}"#,
                "messages[0].content",
                "'messages[0].content' is required for user messages",
            ),
            (
                r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
                "messages[0].tool_call_id",
                "'messages[0].tool_call_id' is required for tool messages",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}"#,
                "messages[0].content[0].type",
                "content part type 'input_audio' is not supported here when translating",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
                "temperature",
                "'temperature': invalid type: string \"hot\", expected f64 at line 1 column 75",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
                "n",
                "'n' = 2 is not supported when the request is translated; use n = 1",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"maybe"}"#,
                "tool_choice",
                "unknown tool_choice 'maybe'; expected auto, none, required or an object",
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
