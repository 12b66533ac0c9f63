//! Canonical request, response and stream types.
//!
//! Every frontend decodes its dialect into these and every adapter encodes
//! them into its upstream's dialect, so a translation between any two
//! dialects is two mappings, never one per pair.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A chat request in the gateway's own terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The name the caller asked for; the gateway rewrites it to the upstream
    /// model id before an adapter sees the request.
    pub model: String,
    /// The conversation, oldest first. System prompts are messages with
    /// [`Role::System`], wherever the source dialect kept them.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Upper bound on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sequences that end generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Structured output request (`text`, `json_object` or a JSON schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Whether the caller wants a stream of events.
    #[serde(default)]
    pub stream: bool,
    /// Caller-supplied key/value metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The gateway's id for this request; filled in by the gateway when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Fields the canonical model does not cover, in the wire spelling of
    /// [`Extra::dialect`]. An adapter of that dialect forwards them; any other
    /// adapter must reject them rather than drop them silently.
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

impl ChatRequest {
    /// The name of the tool the call `call_id` in this conversation invoked
    /// (the latest such call), for dialects whose tool results carry the
    /// tool's name instead of a call id.
    pub fn tool_name_of_call(&self, call_id: &str) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .flat_map(|message| message.tool_calls.iter().rev())
            .find(|call| call.id == call_id)
            .map(|call| call.name.as_str())
    }

    /// The system messages' texts joined by a blank line, for dialects that
    /// carry the instructions in one top-level field instead of as turns;
    /// `None` without system messages.
    pub fn system_text(&self) -> Option<String> {
        let system: Vec<String> = self
            .messages
            .iter()
            .filter(|message| message.role == Role::System)
            .map(Message::joined_text)
            .collect();
        (!system.is_empty()).then(|| system.join("\n\n"))
    }
}

/// Request fields the canonical model does not cover, tagged with the dialect
/// whose spelling they use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    /// The dialect the fields came from (`openai`, `anthropic`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    /// The fields, as the caller sent them.
    #[serde(default)]
    pub fields: Map<String, Value>,
}

impl Extra {
    /// True when there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text and image parts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ContentPart>,
    /// Tool calls the assistant made in this turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For [`Role::Tool`]: the id of the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message with a single text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: vec![ContentPart::Text { text: text.into() }],
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// The concatenation of the message's text parts.
    pub fn joined_text(&self) -> String {
        self.content
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::Image { .. } => None,
            })
            .collect()
    }
}

/// A piece of message content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, by URL or inline.
    Image {
        /// Where the image bytes are.
        source: ImageSource,
    },
}

/// Where an image's bytes come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// A URL the provider fetches itself.
    Url {
        /// The URL.
        url: String,
    },
    /// Base64-encoded bytes with their media type.
    Base64 {
        /// For example `image/png`.
        media_type: String,
        /// The base64 text, without a `data:` prefix.
        data: String,
    },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The function name.
    pub name: String,
    /// What the tool does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// OpenAI's strict schema adherence flag, where the dialect has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Tool {
        /// The tool's name.
        name: String,
    },
}

/// A complete tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, used to pair the result with the call.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model produced them.
    pub arguments: String,
}

/// How the caller wants the answer shaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The schema.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Value>,
        /// Strict adherence, where supported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// Token counts for one request, as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Prompt tokens served from the provider's cache, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<u64>,
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The output token limit.
    Length,
    /// The model called one or more tools.
    ToolCalls,
    /// The provider's content filter.
    ContentFilter,
    /// Anything else, in the upstream's own words.
    Other(String),
}

/// One event of a streamed answer.
///
/// A stream produced by [`crate::Gateway::chat_stream`] starts with exactly one
/// [`ChatEvent::Started`] and ends with exactly one [`ChatEvent::Finished`] or
/// one error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The upstream accepted the request.
    Started {
        /// The gateway's request id.
        request_id: String,
        /// The backend serving it.
        backend: String,
        /// The upstream model id.
        model: String,
    },
    /// More answer text.
    TextDelta {
        /// The new text.
        text: String,
    },
    /// A piece of a tool call. The first delta of each `index` carries `id`
    /// and `name`; later ones append to `arguments`. An adapter whose
    /// upstream sends whole calls emits one delta with everything.
    ToolCallDelta {
        /// Position of the call within this turn (0-based).
        index: u32,
        /// The call id, on the first delta of the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The tool name, on the first delta of the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// A fragment of the arguments' JSON text.
        #[serde(default)]
        arguments: String,
    },
    /// Token counts; may come before or after [`ChatEvent::Finished`]'s
    /// reason is known, but always before the `Finished` event itself.
    Usage(Usage),
    /// The answer is complete.
    Finished {
        /// Why it ended.
        reason: FinishReason,
    },
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The upstream's response id when it gave one, else the gateway's.
    pub id: String,
    /// The upstream model that answered.
    pub model: String,
    /// The answer text (empty when the model only called tools).
    pub text: String,
    /// Tool calls, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Token counts, when the upstream reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_text_joins_every_system_message_wherever_it_stands() {
        let request = ChatRequest {
            messages: vec![
                Message::text(Role::System, "Be brief."),
                Message::text(Role::User, "Hi"),
                Message::text(Role::System, "Answer in French."),
            ],
            ..ChatRequest::default()
        };
        assert_eq!(
            request.system_text().as_deref(),
            Some("Be brief.\n\nAnswer in French.")
        );
        let without = ChatRequest {
            messages: vec![Message::text(Role::User, "Hi")],
            ..ChatRequest::default()
        };
        assert_eq!(without.system_text(), None);
    }
}
