//! A provider plugin for modelgate, ready to copy: it provides the dialect
//! `template-echo`, whose backends answer with the last user message,
//! prefixed. Replace [`TemplateAdapter`] with a real client for your
//! provider; keep [`build`] and the `export_plugin!` call.
//!
//! Build it with `cargo build --release` and add to the gateway's config:
//!
//! ```toml
//! [[plugins]]
//! path = "target/release/libmodelgate_plugin_template.so"
//!
//! [[backends]]
//! id = "mine"
//! dialect = "template-echo"
//! models = [{ id = "echo" }]
//! options = { prefix = "you said: " }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream;
use gateway_core::registry::{BackendContext, BuildError};
use gateway_core::{
    ChatEvent, ChatRequest, ChatResponse, ChatStream, FinishReason, GatewayError, Message,
    ProviderAdapter, Role, Usage,
};

modelgate_plugin::export_plugin! {
    name: "template",
    version: env!("CARGO_PKG_VERSION"),
    dialects: ["template-echo"],
    build: build,
}

/// Builds one backend's adapter from its config; `options` is the backend's
/// `options` table. Errors name the field at fault.
pub fn build(
    _dialect: &str,
    backend: &BackendContext,
) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
    let prefix = match backend.options.get("prefix") {
        None => String::new(),
        Some(value) => value
            .as_str()
            .ok_or_else(|| BuildError::field("options", "'prefix' must be a string"))?
            .to_owned(),
    };
    Ok(Arc::new(TemplateAdapter { prefix }))
}

/// The adapter: here, an echo; in your plugin, the provider's client.
#[derive(Debug)]
pub struct TemplateAdapter {
    prefix: String,
}

impl TemplateAdapter {
    fn answer(&self, request: &ChatRequest) -> String {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == Role::User)
            .map(Message::joined_text)
            .unwrap_or_default();
        format!("{}{last}", self.prefix)
    }
}

#[async_trait]
impl ProviderAdapter for TemplateAdapter {
    fn dialect(&self) -> &str {
        "template-echo"
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        let text = self.answer(&request);
        Ok(ChatResponse {
            id: String::new(),
            model: request.model,
            usage: Some(Usage {
                input: 0,
                output: text.split_whitespace().count() as u64,
                cached: None,
            }),
            text,
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
        })
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let text = self.answer(&request);
        let output = text.split_whitespace().count() as u64;
        Ok(Box::pin(stream::iter([
            Ok(ChatEvent::TextDelta { text }),
            Ok(ChatEvent::Usage(Usage {
                input: 0,
                output,
                cached: None,
            })),
            Ok(ChatEvent::Finished {
                reason: FinishReason::Stop,
            }),
        ])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_with_the_prefix() {
        let backend = BackendContext {
            id: "mine".into(),
            endpoint: None,
            credential: None,
            options: serde_json::from_str(r#"{"prefix": "you said: "}"#).expect("json"),
            connect_timeout: None,
        };
        let adapter = build("template-echo", &backend).expect("builds");
        let request = ChatRequest {
            messages: vec![Message::text(Role::User, "hi")],
            ..ChatRequest::default()
        };
        let answer = adapter.chat_once(request).await.expect("answer");
        assert_eq!(answer.text, "you said: hi");
    }
}
