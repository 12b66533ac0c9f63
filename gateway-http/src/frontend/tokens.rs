//! Token estimates for backends that cannot count (OpenAI-compatible
//! servers have no counting endpoint).
//!
//! The estimate uses OpenAI's `o200k_base` tokenizer (via `tiktoken-rs`) on
//! every text part, tool definition and tool call, plus OpenAI's documented
//! per-message overhead. It is exact for recent OpenAI models on plain text
//! and an approximation for everything else; responses say which
//! (`x-modelgate-token-count: estimate`).

use std::sync::OnceLock;

use gateway_core::{ChatRequest, ContentPart};
use tiktoken_rs::CoreBPE;

/// Tokens every message adds around its content (role and separators).
const PER_MESSAGE: u64 = 3;
/// Tokens that prime the reply.
const PER_REQUEST: u64 = 3;

fn tokenizer() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

fn count(text: &str) -> u64 {
    match tokenizer() {
        Some(bpe) => bpe.encode_with_special_tokens(text).len() as u64,
        // Unreachable in practice (the vocabulary ships in the crate); the
        // common rule of thumb keeps the answer useful if it ever happens.
        None => (text.len() as u64).div_ceil(4),
    }
}

/// The estimated prompt tokens of `request`.
pub(crate) fn estimate(request: &ChatRequest) -> u64 {
    let mut total = PER_REQUEST;
    for message in &request.messages {
        total += PER_MESSAGE;
        for part in &message.content {
            if let ContentPart::Text { text } = part {
                total += count(text);
            }
        }
        for call in &message.tool_calls {
            total += count(&call.name) + count(&call.arguments);
        }
    }
    for tool in &request.tools {
        total += count(&tool.name) + count(&tool.parameters.to_string());
        if let Some(description) = &tool.description {
            total += count(description);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{Message, Role};

    #[test]
    fn counts_with_a_real_tokenizer() {
        let request = ChatRequest {
            messages: vec![Message::text(Role::User, "Hello, world!")],
            ..ChatRequest::default()
        };
        // "Hello, world!" is 4 tokens in o200k_base.
        assert_eq!(estimate(&request), PER_REQUEST + PER_MESSAGE + 4);
    }
}
