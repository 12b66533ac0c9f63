//! The `mock` dialect: a deterministic backend for demos and tests that needs
//! no network and no key.
//!
//! What it answers, in order of precedence:
//! 1. the last message is a tool result → `tool <name> returned: <content>`;
//! 2. tools are offered and asked for (`tool_choice` is `required` or names a
//!    tool, or the last user message mentions a tool by name) → a call to
//!    that tool, with every required string argument set to the user's text
//!    (numbers 1, booleans true);
//! 3. otherwise the last user message's text, verbatim.
//!
//! Streams send one text chunk per word (whitespace kept), tool arguments in
//! two pieces, then usage and the finish. Usage counts whitespace-separated
//! words. Sampling parameters and dialect extras are accepted and ignored:
//! the answer never depends on them.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream;
use gateway_core::registry::{AdapterFactory, BackendContext, BuildError};
use gateway_core::{
    ChatEvent, ChatRequest, ChatResponse, ChatStream, FinishReason, GatewayError, Message,
    ProviderAdapter, Role, Tool, ToolCall, ToolChoice, Usage,
};
use serde_json::{Map, Value, json};

/// The dialect name.
pub const DIALECT: &str = "mock";

gateway_core::inventory::submit! {
    AdapterFactory {
        dialect: DIALECT,
        description: "deterministic echo backend for demos and tests",
        build,
    }
}

fn build(_backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
    Ok(Arc::new(MockAdapter))
}

/// The mock backend. Stateless: every answer follows from the request alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct MockAdapter;

/// What the mock decided to say.
enum Reply {
    Text(String),
    Call(ToolCall),
}

impl MockAdapter {
    fn reply(request: &ChatRequest) -> Reply {
        let Some(last) = request.messages.last() else {
            return Reply::Text(String::new());
        };
        if last.role == Role::Tool {
            let name = last
                .tool_call_id
                .as_deref()
                .and_then(|id| find_call_name(&request.messages, id))
                .unwrap_or("unknown");
            return Reply::Text(format!("tool {name} returned: {}", last.joined_text()));
        }
        let user_text = request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == Role::User)
            .map(Message::joined_text)
            .unwrap_or_default();
        if let Some(tool) = chosen_tool(request, &user_text) {
            return Reply::Call(ToolCall {
                id: "call_0".to_owned(),
                name: tool.name.clone(),
                arguments: arguments_for(tool, &user_text).to_string(),
            });
        }
        Reply::Text(user_text)
    }

    fn usage(request: &ChatRequest, reply: &Reply) -> Usage {
        let input = request
            .messages
            .iter()
            .map(|message| words(&message.joined_text()))
            .sum();
        let output = match reply {
            Reply::Text(text) => words(text),
            Reply::Call(call) => words(&call.arguments).max(1),
        };
        Usage {
            input,
            output,
            cached: None,
        }
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn find_call_name<'a>(messages: &'a [Message], id: &str) -> Option<&'a str> {
    messages
        .iter()
        .flat_map(|message| &message.tool_calls)
        .find(|call| call.id == id)
        .map(|call| call.name.as_str())
}

fn chosen_tool<'a>(request: &'a ChatRequest, user_text: &str) -> Option<&'a Tool> {
    let by_name = |name: &str| request.tools.iter().find(|tool| tool.name == name);
    match &request.tool_choice {
        Some(ToolChoice::None) => None,
        Some(ToolChoice::Tool { name }) => by_name(name),
        Some(ToolChoice::Required) => request.tools.first(),
        Some(ToolChoice::Auto) | None => request
            .tools
            .iter()
            .find(|tool| user_text.contains(tool.name.as_str())),
    }
}

/// Deterministic arguments that satisfy the tool's schema's required
/// properties (all properties when none are marked required).
fn arguments_for(tool: &Tool, user_text: &str) -> Value {
    let properties = tool
        .parameters
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required: Vec<String> = match tool.parameters.get("required").and_then(Value::as_array) {
        Some(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => properties.keys().cloned().collect(),
    };
    let mut arguments = Map::new();
    for name in required {
        let kind = properties
            .get(&name)
            .and_then(|schema| schema.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("string");
        let value = match kind {
            "integer" | "number" => json!(1),
            "boolean" => json!(true),
            "array" => json!([]),
            "object" => json!({}),
            _ => json!(user_text),
        };
        arguments.insert(name, value);
    }
    Value::Object(arguments)
}

#[async_trait]
impl ProviderAdapter for MockAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let reply = Self::reply(&request);
        let usage = Self::usage(&request, &reply);
        let id = format!("mock-{}", request.request_id.as_deref().unwrap_or("0"));
        let (text, tool_calls, finish_reason) = match reply {
            Reply::Text(text) => (text, Vec::new(), FinishReason::Stop),
            Reply::Call(call) => (String::new(), vec![call], FinishReason::ToolCalls),
        };
        Ok(ChatResponse {
            id,
            model: request.model,
            text,
            tool_calls,
            finish_reason,
            usage: Some(usage),
        })
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let reply = Self::reply(&request);
        let usage = Self::usage(&request, &reply);
        let mut events = Vec::new();
        let reason = match reply {
            Reply::Text(text) => {
                events.extend(text.split_inclusive(char::is_whitespace).map(|word| {
                    ChatEvent::TextDelta {
                        text: word.to_owned(),
                    }
                }));
                FinishReason::Stop
            }
            Reply::Call(call) => {
                let middle = call.arguments.len() / 2;
                let split = (0..=middle)
                    .rev()
                    .find(|&at| call.arguments.is_char_boundary(at))
                    .unwrap_or(0);
                let (head, tail) = call.arguments.split_at(split);
                events.push(ChatEvent::ToolCallDelta {
                    index: 0,
                    id: Some(call.id.clone()),
                    name: Some(call.name.clone()),
                    arguments: head.to_owned(),
                });
                events.push(ChatEvent::ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: tail.to_owned(),
                });
                FinishReason::ToolCalls
            }
        };
        events.push(ChatEvent::Usage(usage));
        events.push(ChatEvent::Finished { reason });
        Ok(Box::pin(stream::iter(events.into_iter().map(Ok))))
    }

    async fn list_models(&self) -> Result<Vec<String>, GatewayError> {
        Ok(vec!["echo".to_owned()])
    }

    fn supports_count_tokens(&self) -> bool {
        true
    }

    /// Exact for the mock: the words its usage would report as input.
    async fn count_tokens(&self, request: ChatRequest) -> Result<u64, GatewayError> {
        Ok(request
            .messages
            .iter()
            .map(|message| words(&message.joined_text()))
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "echo".into(),
            messages,
            ..ChatRequest::default()
        }
    }

    fn weather_tool() -> Tool {
        Tool {
            name: "get_weather".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}),
            strict: None,
        }
    }

    #[tokio::test]
    async fn echoes_the_last_user_message_in_word_chunks() {
        let adapter = MockAdapter;
        let req = request(vec![
            Message::text(Role::System, "be nice"),
            Message::text(Role::User, "Hello there, gateway!"),
        ]);
        let once = adapter.chat_once(req.clone()).await.expect("answer");
        assert_eq!(once.text, "Hello there, gateway!");
        assert_eq!(
            once.usage,
            Some(Usage {
                input: 5,
                output: 3,
                cached: None
            })
        );
        let events: Vec<ChatEvent> = adapter
            .chat_stream(req)
            .await
            .expect("stream")
            .map(|event| event.expect("event"))
            .collect()
            .await;
        insta::assert_json_snapshot!(events);
    }

    #[tokio::test]
    async fn calls_a_tool_when_asked_and_reads_the_result() {
        let adapter = MockAdapter;
        let mut req = request(vec![Message::text(Role::User, "weather in Paris?")]);
        req.tools = vec![weather_tool()];
        let plain = adapter.chat_once(req.clone()).await.expect("answer");
        assert!(plain.tool_calls.is_empty(), "not asked for: {plain:?}");

        req.tool_choice = Some(ToolChoice::Required);
        let call = adapter.chat_once(req.clone()).await.expect("answer");
        assert_eq!(call.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            call.tool_calls[0].arguments,
            r#"{"city":"weather in Paris?","days":1}"#
        );

        let streamed = Gateway::collect(adapter.chat_stream(req.clone()).await.expect("stream"))
            .await
            .expect("collected");
        assert_eq!(streamed.tool_calls, call.tool_calls);

        let mut assistant = Message::text(Role::Assistant, "");
        assistant.content.clear();
        assistant.tool_calls = call.tool_calls.clone();
        let mut result = Message::text(Role::Tool, "sunny");
        result.tool_call_id = Some("call_0".into());
        req.messages.extend([assistant, result]);
        let answer = adapter.chat_once(req).await.expect("answer");
        assert_eq!(answer.text, "tool get_weather returned: sunny");
    }

    #[tokio::test]
    async fn mentioning_a_tool_by_name_asks_for_it() {
        let mut req = request(vec![Message::text(Role::User, "use get_weather for Oslo")]);
        req.tools = vec![weather_tool()];
        let answer = MockAdapter.chat_once(req).await.expect("answer");
        assert_eq!(answer.tool_calls.len(), 1);
    }

    use gateway_core::Gateway;
}
