//! Non-streamed chat completions: OpenAI JSON ↔ [`ChatResponse`].

use gateway_core::json::{write_array, write_str, write_u64};
use gateway_core::{ChatResponse, FinishReason, GatewayError, ToolCall, Usage};
use serde::{Deserialize, Serialize};

/// OpenAI's `usage` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// Cached prompt tokens and friends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// Breakdown of prompt tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Tokens served from the provider's prompt cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl From<&WireUsage> for Usage {
    fn from(usage: &WireUsage) -> Self {
        Usage {
            input: usage.prompt_tokens,
            output: usage.completion_tokens,
            cached: usage
                .prompt_tokens_details
                .as_ref()
                .and_then(|details| details.cached_tokens),
        }
    }
}

impl From<&Usage> for WireUsage {
    fn from(usage: &Usage) -> Self {
        WireUsage {
            prompt_tokens: usage.input,
            completion_tokens: usage.output,
            total_tokens: usage.input + usage.output,
            prompt_tokens_details: usage.cached.map(|cached| PromptTokensDetails {
                cached_tokens: Some(cached),
            }),
        }
    }
}

/// OpenAI's `finish_reason` for a canonical reason.
pub fn finish_reason_name(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(other) => other,
    }
}

/// The canonical reason for OpenAI's `finish_reason`.
pub fn parse_finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: String,
    function: WireFunctionCall,
}

#[derive(Deserialize)]
struct WireFunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

/// Decodes an upstream's chat completion body.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let wire: WireResponse = serde_json::from_slice(body).map_err(|err| {
        GatewayError::upstream(format!(
            "the upstream's answer is not a chat completion: {err}"
        ))
    })?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| GatewayError::upstream("the upstream's answer has no choices"))?;
    let tool_calls: Vec<ToolCall> = choice
        .message
        .tool_calls
        .into_iter()
        .map(|call| ToolCall {
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
        })
        .collect();
    let finish_reason = match choice.finish_reason.as_deref() {
        Some(reason) => parse_finish_reason(reason),
        None if !tool_calls.is_empty() => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    Ok(ChatResponse {
        id: wire.id,
        model: wire.model,
        text: choice
            .message
            .content
            .or(choice.message.refusal)
            .unwrap_or_default(),
        tool_calls,
        finish_reason,
        usage: wire.usage.as_ref().map(Usage::from),
    })
}

/// Encodes a canonical response as an OpenAI chat completion (a typed body
/// serialised straight to the wire, fields in OpenAI's order).
pub fn encode_response(response: &ChatResponse, created: u64) -> Completion<'_> {
    let tool_calls: Vec<OutToolCall<'_>> = response
        .tool_calls
        .iter()
        .map(|call| OutToolCall {
            id: &call.id,
            kind: "function",
            function: OutFunction {
                name: &call.name,
                arguments: &call.arguments,
            },
        })
        .collect();
    let content = if response.text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(response.text.as_str())
    };
    Completion {
        id: completion_id(&response.id),
        object: "chat.completion",
        created,
        model: &response.model,
        choices: [OutChoice {
            index: 0,
            message: OutMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason: finish_reason_name(&response.finish_reason),
        }],
        usage: response.usage.as_ref().map(WireUsage::from),
    }
}

/// An OpenAI chat completion body, as [`encode_response`] builds it.
#[derive(Debug, Serialize)]
pub struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [OutChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

#[derive(Debug, Serialize)]
struct OutChoice<'a> {
    index: u32,
    message: OutMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Debug, Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
}

#[derive(Debug, Serialize)]
struct OutToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunction<'a>,
}

#[derive(Debug, Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl Completion<'_> {
    /// The body as JSON: the bytes serde writes for it, written without
    /// serde's per-field work (a test holds the two to the same bytes).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"id\":");
        write_str(&mut out, &self.id);
        out.extend_from_slice(b",\"object\":");
        write_str(&mut out, self.object);
        out.extend_from_slice(b",\"created\":");
        write_u64(&mut out, self.created);
        out.extend_from_slice(b",\"model\":");
        write_str(&mut out, self.model);
        out.extend_from_slice(b",\"choices\":");
        write_array(&mut out, &self.choices, |out, choice| {
            choice.write_json(out)
        });
        if let Some(usage) = &self.usage {
            out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
            write_u64(&mut out, usage.prompt_tokens);
            out.extend_from_slice(b",\"completion_tokens\":");
            write_u64(&mut out, usage.completion_tokens);
            out.extend_from_slice(b",\"total_tokens\":");
            write_u64(&mut out, usage.total_tokens);
            if let Some(details) = &usage.prompt_tokens_details {
                out.extend_from_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
                write_optional(&mut out, details.cached_tokens, write_u64);
                out.push(b'}');
            }
            out.push(b'}');
        }
        out.push(b'}');
        out
    }
}

impl OutChoice<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"index\":");
        write_u64(out, u64::from(self.index));
        out.extend_from_slice(b",\"message\":{\"role\":");
        write_str(out, self.message.role);
        out.extend_from_slice(b",\"content\":");
        write_optional(out, self.message.content, write_str);
        out.extend_from_slice(b",\"refusal\":");
        write_optional(out, self.message.refusal, write_str);
        if !self.message.tool_calls.is_empty() {
            out.extend_from_slice(b",\"tool_calls\":");
            write_array(out, &self.message.tool_calls, |out, call| {
                out.extend_from_slice(b"{\"id\":");
                write_str(out, call.id);
                out.extend_from_slice(b",\"type\":");
                write_str(out, call.kind);
                out.extend_from_slice(b",\"function\":{\"name\":");
                write_str(out, call.function.name);
                out.extend_from_slice(b",\"arguments\":");
                write_str(out, call.function.arguments);
                out.extend_from_slice(b"}}");
            });
        }
        out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":");
        write_str(out, self.finish_reason);
        out.push(b'}');
    }
}

/// `value` written by `write`, or `null`.
fn write_optional<T>(out: &mut Vec<u8>, value: Option<T>, write: fn(&mut Vec<u8>, T)) {
    match value {
        Some(value) => write(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

/// OpenAI-style completion id for a gateway id: kept when it already looks
/// like one.
pub fn completion_id(id: &str) -> String {
    if id.starts_with("chatcmpl-") {
        id.to_owned()
    } else {
        format!("chatcmpl-{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_tool_calls_and_usage() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
            "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
              {"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},
              {"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}]},
              "finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3}}}"#;
        let response = decode_response(body).expect("valid");
        insta::assert_json_snapshot!(response);
    }

    #[test]
    fn broken_upstream_bodies_are_upstream_errors() {
        for body in [&b"not json"[..], br#"{"choices":[]}"#] {
            let err = decode_response(body).expect_err("broken");
            assert_eq!(err.status(), 502);
        }
    }

    #[test]
    fn the_hand_written_body_is_the_bytes_serde_writes() {
        let call = |id: &str, arguments: &str| ToolCall {
            id: id.into(),
            name: "f\"n".into(),
            arguments: arguments.into(),
        };
        let responses = [
            ChatResponse {
                id: "req1".into(),
                model: "echo".into(),
                text: "Hello \"there\"\n\u{1}é".into(),
                tool_calls: Vec::new(),
                finish_reason: FinishReason::Stop,
                usage: Some(Usage {
                    input: 3,
                    output: 2,
                    cached: Some(1),
                }),
            },
            ChatResponse {
                id: "chatcmpl-x".into(),
                model: "m".into(),
                text: String::new(),
                tool_calls: vec![call("call_0", "{}"), call("call_1", r#"{"x":1}"#)],
                finish_reason: FinishReason::ToolCalls,
                usage: None,
            },
            ChatResponse {
                id: String::new(),
                model: String::new(),
                text: "both".into(),
                tool_calls: vec![call("c", "")],
                finish_reason: FinishReason::Other("odd".into()),
                usage: Some(Usage {
                    input: u64::MAX / 2,
                    output: 0,
                    cached: None,
                }),
            },
        ];
        for response in &responses {
            let completion = encode_response(response, 1_700_000_000);
            assert_eq!(
                String::from_utf8(completion.to_json()).expect("utf8"),
                serde_json::to_string(&completion).expect("json")
            );
        }
    }

    #[test]
    fn encodes_like_openai() {
        let response = ChatResponse {
            id: "req1".into(),
            model: "echo".into(),
            text: String::new(),
            tool_calls: vec![ToolCall {
                id: "call_0".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            finish_reason: FinishReason::ToolCalls,
            usage: Some(Usage {
                input: 3,
                output: 2,
                cached: None,
            }),
        };
        insta::assert_json_snapshot!(encode_response(&response, 1700000000));
    }
}
