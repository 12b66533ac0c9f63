//! `generateContent` requests: Gemini JSON ↔ [`ChatRequest`].

use std::collections::VecDeque;

use gateway_core::{
    ChatRequest, ContentPart, Extra, GatewayError, ImageSource, Message, Param, ResponseFormat,
    Role, Tool, ToolCall, ToolChoice,
};
use serde_json::{Map, Value, json};

use crate::{DIALECT, field};

/// The id made up for the `n`-th function call of a conversation that came
/// without ids.
pub fn made_up_call_id(n: usize) -> String {
    format!("call_{n}")
}

/// Decodes a `generateContent` body (the model comes from the URL) into the
/// canonical request.
pub fn decode_request(model: &str, body: &[u8]) -> Result<ChatRequest, GatewayError> {
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        GatewayError::invalid_request(format!("the request body is not valid JSON: {err}"))
    })?;
    decode_value(model, &value)
}

/// [`decode_request`] for a body already parsed (`countTokens` nests the
/// request inside its own body).
pub fn decode_value(model: &str, value: &Value) -> Result<ChatRequest, GatewayError> {
    if !value.is_object() {
        return Err(GatewayError::invalid_request(
            "the request body must be a JSON object",
        ));
    }
    let mut messages = Vec::new();
    if let Some(system) = field(value, "systemInstruction", "system_instruction") {
        let system_param = Param::Root("systemInstruction");
        let parts_param = system_param.field("parts");
        let parts = parts_of(system_param, system)?;
        let content = parts
            .iter()
            .enumerate()
            .map(|(index, part)| text_part(parts_param.index(index), part))
            .collect::<Result<Vec<_>, _>>()?;
        messages.push(Message {
            role: Role::System,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        });
    }
    let contents = match value.get("contents") {
        Some(Value::Array(contents)) if !contents.is_empty() => contents,
        Some(Value::Array(_)) => {
            return Err(GatewayError::invalid_param(
                "contents",
                "'contents' must not be empty",
            ));
        }
        Some(_) => {
            return Err(GatewayError::invalid_param(
                "contents",
                "'contents' must be an array",
            ));
        }
        None => {
            return Err(GatewayError::invalid_param(
                "contents",
                "missing required parameter: 'contents'",
            ));
        }
    };
    let mut pairing = Pairing::default();
    for (index, content) in contents.iter().enumerate() {
        decode_content(index, content, &mut pairing, &mut messages)?;
    }

    let mut tools = Vec::new();
    for (index, tool) in value
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(declarations) = field(tool, "functionDeclarations", "function_declarations")
        else {
            let kind = tool
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            return Err(GatewayError::invalid_param(
                format!("tools[{index}]"),
                format!(
                    "tool '{kind}' is a Gemini built-in and cannot be translated; only functionDeclarations can"
                ),
            ));
        };
        for declaration in declarations.as_array().into_iter().flatten() {
            let name = declaration
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::invalid_param(
                        format!("tools[{index}].functionDeclarations"),
                        "every function declaration needs a 'name'",
                    )
                })?;
            let parameters = field(
                declaration,
                "parametersJsonSchema",
                "parameters_json_schema",
            )
            .cloned()
            .or_else(|| declaration.get("parameters").map(lowercase_types))
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            tools.push(Tool {
                name: name.to_owned(),
                description: declaration
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters,
                strict: None,
            });
        }
    }

    let tool_choice = field(value, "toolConfig", "tool_config")
        .and_then(|config| field(config, "functionCallingConfig", "function_calling_config"))
        .map(decode_tool_choice)
        .transpose()?;

    let mut request = ChatRequest {
        model: model.to_owned(),
        messages,
        tools,
        tool_choice,
        extra: Extra {
            dialect: Some(DIALECT.to_owned()),
            fields: Map::new(),
        },
        ..ChatRequest::default()
    };
    if let Some(config) = field(value, "generationConfig", "generation_config") {
        decode_generation_config(config, &mut request)?;
    }
    for (key, extra) in value.as_object().into_iter().flatten() {
        let known = [
            "contents",
            "systemInstruction",
            "system_instruction",
            "tools",
            "toolConfig",
            "tool_config",
            "generationConfig",
            "generation_config",
            "model",
        ];
        if !known.contains(&key.as_str()) && !extra.is_null() {
            request.extra.fields.insert(key.clone(), extra.clone());
        }
    }
    Ok(request)
}

/// Gemini's `Schema` type names are upper case (`OBJECT`); JSON Schema's are
/// lower case.
fn lowercase_types(schema: &Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("type", Value::String(kind)) => json!(kind.to_lowercase()),
                        _ => lowercase_types(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(lowercase_types).collect()),
        other => other.clone(),
    }
}

fn parts_of<'a>(param: Param<'_>, content: &'a Value) -> Result<&'a Vec<Value>, GatewayError> {
    match content {
        Value::Object(_) => content
            .get("parts")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                GatewayError::invalid_param(
                    format!("{param}.parts"),
                    format!("'{param}.parts' must be an array"),
                )
            }),
        _ => Err(GatewayError::invalid_param(
            param.to_string(),
            format!("'{param}' must be an object with 'parts'"),
        )),
    }
}

fn text_part(param: Param<'_>, part: &Value) -> Result<ContentPart, GatewayError> {
    part.get("text")
        .and_then(Value::as_str)
        .map(|text| ContentPart::Text {
            text: text.to_owned(),
        })
        .ok_or_else(|| {
            GatewayError::invalid_param(param.to_string(), format!("'{param}' must be a text part"))
        })
}

/// Made-up call ids, and which calls still wait for their result, so
/// `functionResponse` parts without ids pair with the right call.
#[derive(Default)]
struct Pairing {
    made_up: usize,
    open: VecDeque<(String, String)>,
}

impl Pairing {
    fn call(&mut self, id: Option<&str>, name: &str) -> String {
        let id = match id {
            Some(id) => id.to_owned(),
            None => {
                let id = made_up_call_id(self.made_up);
                self.made_up += 1;
                id
            }
        };
        self.open.push_back((id.clone(), name.to_owned()));
        id
    }

    fn result(&mut self, id: Option<&str>, name: &str) -> Option<String> {
        let position = match id {
            Some(id) => self.open.iter().position(|(open, _)| open == id),
            None => self.open.iter().position(|(_, open)| open == name),
        }?;
        self.open.remove(position).map(|(id, _)| id)
    }
}

fn decode_content(
    index: usize,
    content: &Value,
    pairing: &mut Pairing,
    out: &mut Vec<Message>,
) -> Result<(), GatewayError> {
    let contents = Param::Root("contents");
    let at = contents.index(index);
    let role = match content.get("role").and_then(Value::as_str) {
        None | Some("user") => Role::User,
        Some("model") => Role::Assistant,
        Some(other) => {
            return Err(GatewayError::invalid_param(
                format!("{at}.role"),
                format!("role '{other}' is not user or model"),
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
    let parts = at.field("parts");
    for (position, part) in parts_of(at, content)?.iter().enumerate() {
        let at = parts.index(position);
        if part.get("thought") == Some(&Value::Bool(true))
            || field(part, "thoughtSignature", "thought_signature").is_some()
                && part.get("text").is_some()
        {
            return Err(GatewayError::invalid_param(
                at.to_string(),
                "'thought' parts can only go to a Gemini backend; this request is translated",
            ));
        }
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            message.content.push(ContentPart::Text {
                text: text.to_owned(),
            });
        } else if let Some(data) = field(part, "inlineData", "inline_data") {
            message.content.push(image(at, data, "data")?);
        } else if let Some(data) = field(part, "fileData", "file_data") {
            message.content.push(image(at, data, "fileUri")?);
        } else if let Some(call) = field(part, "functionCall", "function_call") {
            let name = call.get("name").and_then(Value::as_str).ok_or_else(|| {
                GatewayError::invalid_param(
                    format!("{at}.functionCall.name"),
                    "a functionCall needs a 'name'",
                )
            })?;
            let id = pairing.call(call.get("id").and_then(Value::as_str), name);
            message.tool_calls.push(ToolCall {
                id,
                name: name.to_owned(),
                arguments: call
                    .get("args")
                    .cloned()
                    .unwrap_or_else(|| json!({}))
                    .to_string(),
            });
        } else if let Some(result) = field(part, "functionResponse", "function_response") {
            let name = result
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let id = pairing
                .result(result.get("id").and_then(Value::as_str), name)
                .ok_or_else(|| {
                    GatewayError::invalid_param(
                        format!("{at}.functionResponse"),
                        format!("functionResponse '{name}' answers no earlier functionCall"),
                    )
                })?;
            out.push(Message {
                role: Role::Tool,
                content: vec![ContentPart::Text {
                    text: result
                        .get("response")
                        .cloned()
                        .unwrap_or_else(|| json!({}))
                        .to_string(),
                }],
                tool_calls: Vec::new(),
                tool_call_id: Some(id),
                name: Some(name.to_owned()),
            });
        } else {
            let kind = part
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            return Err(GatewayError::invalid_param(
                at.to_string(),
                format!("part '{kind}' cannot be translated"),
            ));
        }
    }
    if !message.content.is_empty() || !message.tool_calls.is_empty() {
        out.push(message);
    }
    Ok(())
}

fn image(at: Param<'_>, data: &Value, payload_key: &str) -> Result<ContentPart, GatewayError> {
    let mime = field(data, "mimeType", "mime_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !mime.starts_with("image/") {
        return Err(GatewayError::invalid_param(
            at.to_string(),
            format!("'{mime}' data cannot be translated; only images can"),
        ));
    }
    let payload = match payload_key {
        "data" => data.get("data"),
        _ => field(data, "fileUri", "file_uri"),
    }
    .and_then(Value::as_str)
    .ok_or_else(|| GatewayError::invalid_param(at.to_string(), "the image part has no data"))?;
    let source = if payload_key == "data" {
        ImageSource::Base64 {
            media_type: mime.to_owned(),
            data: payload.to_owned(),
        }
    } else {
        ImageSource::Url {
            url: payload.to_owned(),
        }
    };
    Ok(ContentPart::Image { source })
}

fn decode_tool_choice(config: &Value) -> Result<ToolChoice, GatewayError> {
    let allowed: Vec<&str> = field(config, "allowedFunctionNames", "allowed_function_names")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match config
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("AUTO")
        .to_uppercase()
        .as_str()
    {
        "AUTO" | "MODE_UNSPECIFIED" => Ok(ToolChoice::Auto),
        "NONE" => Ok(ToolChoice::None),
        "ANY" | "VALIDATED" => match allowed.as_slice() {
            [only] => Ok(ToolChoice::Tool {
                name: (*only).to_owned(),
            }),
            _ => Ok(ToolChoice::Required),
        },
        other => Err(GatewayError::invalid_param(
            "toolConfig.functionCallingConfig.mode",
            format!("unknown mode '{other}'"),
        )),
    }
}

fn decode_generation_config(config: &Value, request: &mut ChatRequest) -> Result<(), GatewayError> {
    let Some(object) = config.as_object() else {
        return Err(GatewayError::invalid_param(
            "generationConfig",
            "'generationConfig' must be an object",
        ));
    };
    let mut mime = None;
    let mut schema = None;
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        let number = || {
            value.as_f64().ok_or_else(|| {
                GatewayError::invalid_param(
                    format!("generationConfig.{key}"),
                    format!("'generationConfig.{key}' must be a number"),
                )
            })
        };
        match key.as_str() {
            "temperature" => request.temperature = Some(number()?),
            "topP" | "top_p" => request.top_p = Some(number()?),
            "maxOutputTokens" | "max_output_tokens" => {
                request.max_output_tokens = Some(number()? as u32)
            }
            "stopSequences" | "stop_sequences" => {
                request.stop = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
            }
            "candidateCount" | "candidate_count" if value.as_u64() == Some(1) => {}
            "candidateCount" | "candidate_count" => {
                return Err(GatewayError::invalid_param(
                    "generationConfig.candidateCount",
                    "candidateCount > 1 is not supported when the request is translated",
                ));
            }
            "responseMimeType" | "response_mime_type" => mime = value.as_str().map(str::to_owned),
            "responseJsonSchema" | "response_json_schema" => schema = Some(value.clone()),
            "responseSchema" | "response_schema" => schema = Some(lowercase_types(value)),
            _ => {
                request
                    .extra
                    .fields
                    .insert(format!("generationConfig.{key}"), value.clone());
            }
        }
    }
    if mime.as_deref() == Some("application/json") {
        request.response_format = Some(match schema {
            Some(schema) => ResponseFormat::JsonSchema {
                name: "response".into(),
                schema: Some(schema),
                strict: None,
            },
            None => ResponseFormat::JsonObject,
        });
    }
    Ok(())
}

/// Encodes a canonical request as a `generateContent` body for an upstream
/// (the model goes in the URL). Tool results are paired to their calls'
/// names through the history; consecutive turns of one role are merged, so
/// parallel function responses travel in one turn as Gemini requires.
pub fn encode_request(request: &ChatRequest, backend: &str) -> Result<Value, GatewayError> {
    let mut body = Map::new();
    if let Some(system) = request.system_text() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system}]}),
        );
    }
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, parts) = match message.role {
            Role::User | Role::System => {
                ("user", message.content.iter().map(encode_part).collect())
            }
            Role::Assistant => {
                let mut parts: Vec<Value> = message
                    .content
                    .iter()
                    .filter(|part| !matches!(part, ContentPart::Text { text } if text.is_empty()))
                    .map(encode_part)
                    .collect();
                for call in &message.tool_calls {
                    let args: Value = serde_json::from_str(&call.arguments).map_err(|err| {
                        GatewayError::invalid_request(format!(
                            "the arguments of tool call '{}' are not JSON: {err}",
                            call.id
                        ))
                    })?;
                    parts.push(json!({"functionCall": {"name": call.name, "args": args}}));
                }
                ("model", parts)
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().unwrap_or_default();
                let name = request
                    .tool_name_of_call(id)
                    .map(str::to_owned)
                    .or_else(|| message.name.clone())
                    .ok_or_else(|| {
                        GatewayError::invalid_request(format!(
                            "the tool result for '{id}' answers no tool call in the conversation"
                        ))
                    })?;
                let text = message.joined_text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(object)) => Value::Object(object),
                    _ => json!({ "result": text }),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
        };
        match contents.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    body.insert(
        "contents".into(),
        contents
            .into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect(),
    );
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut declaration = Map::new();
                declaration.insert("name".into(), json!(tool.name));
                if let Some(description) = &tool.description {
                    declaration.insert("description".into(), json!(description));
                }
                declaration.insert("parametersJsonSchema".into(), tool.parameters.clone());
                Value::Object(declaration)
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool { name } => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": config }),
        );
    }
    let mut generation = Map::new();
    if let Some(temperature) = request.temperature {
        generation.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.top_p {
        generation.insert("topP".into(), json!(top_p));
    }
    if let Some(max) = request.max_output_tokens {
        generation.insert("maxOutputTokens".into(), json!(max));
    }
    if !request.stop.is_empty() {
        generation.insert("stopSequences".into(), json!(request.stop));
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            generation.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = schema {
                generation.insert("responseJsonSchema".into(), schema.clone());
            }
        }
    }
    let same_dialect = request.extra.dialect.as_deref() == Some(DIALECT);
    for (key, value) in &request.extra.fields {
        match (same_dialect, key.strip_prefix("generationConfig.")) {
            (true, Some(inner)) => {
                generation
                    .entry(inner.to_owned())
                    .or_insert_with(|| value.clone());
            }
            (true, None) => {
                body.entry(key.clone()).or_insert_with(|| value.clone());
            }
            (false, _) if key == "seed" => {
                generation.insert("seed".into(), value.clone());
            }
            (false, _) => return Err(GatewayError::unsupported(key, backend, DIALECT)),
        }
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(Value::Object(body))
}

fn encode_part(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text { text } => json!({ "text": text }),
        ContentPart::Image {
            source: ImageSource::Base64 { media_type, data },
        } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        ContentPart::Image {
            source: ImageSource::Url { url },
        } => {
            json!({"fileData": {"mimeType": "image/*", "fileUri": url}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `google-genai` 3.x sends, spellings and all.
    const SDK_BODY: &str = r#"{
        "contents": [
            {"parts": [{"text": "weather in Oslo and Lima?"}], "role": "user"},
            {"parts": [{"functionCall": {"args": {"city": "Oslo"}, "name": "get_weather"}}, {"functionCall": {"args": {"city": "Lima"}, "name": "get_weather"}}], "role": "model"},
            {"parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 12}}}, {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}}], "role": "user"}
        ],
        "systemInstruction": {"parts": [{"text": "be brief"}], "role": "user"},
        "tools": [{"functionDeclarations": [
            {"description": "w", "name": "get_weather", "parameters_json_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "legacy", "parameters": {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}}}
        ]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"temperature": 0.1, "maxOutputTokens": 50, "topK": 3},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    }"#;

    #[test]
    fn decodes_what_the_sdk_sends_and_pairs_results_by_name() {
        insta::assert_json_snapshot!(
            decode_request("default", SDK_BODY.as_bytes()).expect("valid")
        );
    }

    #[test]
    fn round_trips_through_the_canonical_request() {
        let request = decode_request("gemini-2.5-flash", SDK_BODY.as_bytes()).expect("valid");
        insta::assert_json_snapshot!(encode_request(&request, "g").expect("encodes"));
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let cases = [
            ("{}", "contents", "missing required parameter: 'contents'"),
            (
                r#"{"contents": []}"#,
                "contents",
                "'contents' must not be empty",
            ),
            (
                r#"{"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}"#,
                "contents[0].role",
                "role 'robot' is not user or model",
            ),
            (
                r#"{"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}"#,
                "contents[0].parts[0].functionResponse",
                "functionResponse 'f' answers no earlier functionCall",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}"#,
                "tools[0]",
                "tool 'googleSearch' is a Gemini built-in and cannot be translated; only functionDeclarations can",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}}"#,
                "generationConfig.candidateCount",
                "candidateCount > 1 is not supported when the request is translated",
            ),
        ];
        for (body, param, message) in cases {
            let err = decode_request("m", body.as_bytes()).expect_err(body);
            assert_eq!(err.status(), 400, "{body}");
            assert_eq!(err.param.as_deref(), Some(param), "{body}");
            assert_eq!(err.message, message, "{body}");
        }
    }
}
