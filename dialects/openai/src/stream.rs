//! Streamed chat completions: SSE `chat.completion.chunk` payloads ↔
//! [`ChatEvent`]s.

use bytes::{BufMut, BytesMut};
use gateway_core::stream::WireDecoder;
use gateway_core::{ChatEvent, FinishReason, GatewayError, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use gateway_core::error::upstream_message;

use crate::error::error_body;
use crate::response::{WireUsage, completion_id, finish_reason_name, parse_finish_reason};

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: WireDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCallDelta>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Turns an upstream's SSE `data:` payloads into canonical events.
///
/// `Finished` is held back until `[DONE]` (or the end of the stream) so
/// that the usage chunk OpenAI sends after the finish reason comes first.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    finish: Option<FinishReason>,
    done: bool,
}

impl WireDecoder for ChunkDecoder {
    fn decode(&mut self, data: &str, out: &mut Vec<ChatEvent>) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            out.push(ChatEvent::Finished {
                reason: self.finish.take().unwrap_or(FinishReason::Stop),
            });
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(|err| {
            GatewayError::upstream(format!("the upstream sent a malformed stream chunk: {err}"))
        })?;
        if let Some(error) = chunk.error {
            let body = json!({ "error": error }).to_string();
            return Err(GatewayError::upstream(format!(
                "the upstream failed mid-stream: {}",
                upstream_message(body.as_bytes())
            )));
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(text) = choice.delta.content.or(choice.delta.refusal)
                && !text.is_empty()
            {
                out.push(ChatEvent::TextDelta { text });
            }
            for call in choice.delta.tool_calls {
                let (name, arguments) = match call.function {
                    Some(function) => (function.name, function.arguments.unwrap_or_default()),
                    None => (None, String::new()),
                };
                out.push(ChatEvent::ToolCallDelta {
                    index: call.index,
                    id: call.id,
                    name,
                    arguments,
                });
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(parse_finish_reason(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(ChatEvent::Usage(Usage::from(&usage)));
        }
        Ok(())
    }

    /// Finishes a stream that sent its finish reason but no `[DONE]`, and
    /// fails one that stopped short.
    fn end(&mut self, out: &mut Vec<ChatEvent>) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        match self.finish.take() {
            Some(reason) => {
                out.push(ChatEvent::Finished { reason });
                Ok(())
            }
            None => Err(GatewayError::upstream(
                "the upstream closed the stream before the answer was complete",
            )),
        }
    }
}

// What the encoder writes, as typed structs serialised straight into the
// output buffer (no `Value` tree per chunk: building one cost more than
// everything else a translated stream does per event). Field order is the
// wire order.

#[derive(Serialize)]
struct OutChunk<'a, D: Serialize> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [OutChoice<'a, D>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

#[derive(Serialize)]
struct OutChoice<'a, D: Serialize> {
    index: u32,
    delta: D,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

/// The first delta: the role, and empty content.
#[derive(Serialize)]
struct RoleDelta {
    role: &'static str,
    content: &'static str,
}

#[derive(Serialize)]
struct ToolCallsDelta<'a> {
    tool_calls: [OutToolCall<'a>; 1],
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// The last delta, which only carries the finish reason.
#[derive(Serialize)]
struct EmptyDelta {}

/// Renders canonical events as OpenAI SSE frames (`data: {...}\n\n`).
#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Option<Usage>,
    ended: bool,
    /// `{"id":…,"object":…,"created":…,"model":…,"choices":`, the part of
    /// every chunk that stays the same, rendered once (empty until needed,
    /// and again after `Started` changes the id or model): escaping the
    /// id and model for each chunk was a third of the encoder's work.
    prefix: Vec<u8>,
}

/// The fields every chunk repeats, in wire order.
#[derive(Serialize)]
struct ChunkPrefix<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
}

impl ChunkEncoder {
    /// An encoder for one response; `include_usage` mirrors the caller's
    /// `stream_options.include_usage`.
    pub fn new(created: u64, include_usage: bool) -> Self {
        Self {
            id: String::new(),
            model: String::new(),
            created,
            include_usage,
            usage: None,
            ended: false,
            prefix: Vec::new(),
        }
    }

    /// Renders the part every chunk repeats, unless it is rendered.
    fn render_prefix(&mut self) {
        if self.prefix.is_empty() {
            let prefix = ChunkPrefix {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
            };
            // Plain strings and a number: serialising cannot fail.
            let _ = serde_json::to_writer(&mut self.prefix, &prefix);
            self.prefix.pop(); // the closing brace
            self.prefix.extend_from_slice(b",\"choices\":");
        }
    }

    fn chunk(&mut self, delta: impl Serialize, finish_reason: Option<&str>, out: &mut BytesMut) {
        self.render_prefix();
        let choices = [OutChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }];
        let mut json = Vec::with_capacity(self.prefix.len() + 128);
        json.extend_from_slice(&self.prefix);
        if serde_json::to_writer(&mut json, &choices).is_err() {
            json.truncate(self.prefix.len());
            json.extend_from_slice(b"[]");
        }
        json.push(b'}');
        put_frame(&json, out);
    }

    /// The chunk of a text delta, what [`ChunkEncoder::chunk`] writes for
    /// `TextDelta { content: text }`, written straight into `out`: nearly
    /// every chunk of a stream is one, and everything in it but the text is
    /// the same every time.
    fn text_chunk(&mut self, text: &str, out: &mut BytesMut) {
        const BEFORE: &[u8] = br#"[{"index":0,"delta":{"content":"#;
        const AFTER: &[u8] = br#"},"logprobs":null,"finish_reason":null}]}"#;
        self.render_prefix();
        out.reserve(self.prefix.len() + BEFORE.len() + text.len() + AFTER.len() + 16);
        out.put_slice(b"data: ");
        out.put_slice(&self.prefix);
        out.put_slice(BEFORE);
        // serde_json's bytes, without its writer's call per piece.
        gateway_core::json::put_str(out, text);
        out.put_slice(AFTER);
        out.put_slice(b"\n\n");
    }

    /// Appends the frames for `event` to `out`.
    pub fn encode(&mut self, event: &ChatEvent, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        match event {
            ChatEvent::Started {
                request_id, model, ..
            } => {
                self.id = completion_id(request_id);
                self.model.clone_from(model);
                self.prefix.clear();
                let delta = RoleDelta {
                    role: "assistant",
                    content: "",
                };
                self.chunk(delta, None, out);
            }
            ChatEvent::TextDelta { text } => self.text_chunk(text, out),
            ChatEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                let call = OutToolCall {
                    index: *index,
                    id: id.as_deref(),
                    kind: id.as_ref().map(|_| "function"),
                    function: OutFunction {
                        name: name.as_deref(),
                        arguments,
                    },
                };
                self.chunk(ToolCallsDelta { tool_calls: [call] }, None, out);
            }
            ChatEvent::Usage(usage) => self.usage = Some(*usage),
            ChatEvent::Finished { reason } => {
                self.chunk(EmptyDelta {}, Some(finish_reason_name(reason)), out);
                if self.include_usage {
                    let chunk = OutChunk::<EmptyDelta> {
                        id: &self.id,
                        object: "chat.completion.chunk",
                        created: self.created,
                        model: &self.model,
                        choices: &[],
                        usage: Some(self.usage.as_ref().map(WireUsage::from).unwrap_or_default()),
                    };
                    write_frame(&chunk, out);
                }
                out.put_slice(b"data: [DONE]\n\n");
                self.ended = true;
            }
        }
    }

    /// Appends an error frame, OpenAI's way of failing a stream that has
    /// started: `data: {"error": {...}}`. Nothing is sent after it.
    pub fn encode_error(&mut self, err: &GatewayError, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        write_frame(&error_body(err), out);
        self.ended = true;
    }
}

fn write_frame(value: &impl Serialize, out: &mut BytesMut) {
    // Serialised into a `Vec` and copied once: serde_json writes a chunk in
    // some fifty small pieces, and each through `BytesMut`'s writer cost a
    // call and a capacity check (about half the encoder's time).
    let mut json = Vec::with_capacity(256);
    // Serialising our own plain structs cannot fail; an empty object keeps
    // the frame well-formed if it ever did.
    if serde_json::to_writer(&mut json, value).is_err() {
        json.clear();
        json.extend_from_slice(b"{}");
    }
    put_frame(&json, out);
}

/// Appends `data: JSON` and the blank line that ends the event.
fn put_frame(json: &[u8], out: &mut BytesMut) {
    out.reserve(json.len() + 8);
    out.put_slice(b"data: ");
    out.put_slice(json);
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(payloads: &[&str]) -> Result<Vec<ChatEvent>, String> {
        let mut decoder = ChunkDecoder::default();
        let mut out = Vec::new();
        for payload in payloads {
            decoder
                .decode(payload, &mut out)
                .map_err(|err| err.message)?;
        }
        decoder.end(&mut out).map_err(|err| err.message)?;
        Ok(out)
    }

    #[test]
    fn decodes_text_tool_calls_and_usage_in_order() {
        let events = decode_all(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Let me","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"g","arguments":"{\"a\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#,
            "[DONE]",
        ])
        .expect("valid stream");
        insta::assert_json_snapshot!(events);
    }

    #[test]
    fn truncated_and_failed_streams_are_errors() {
        let err = decode_all(&[r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#])
            .expect_err("truncated");
        assert_eq!(
            err,
            "the upstream closed the stream before the answer was complete"
        );
        let err = decode_all(&[r#"{"error":{"message":"overloaded","type":"server_error"}}"#])
            .expect_err("failed");
        assert_eq!(err, "the upstream failed mid-stream: overloaded");
        let err = decode_all(&["{not json"]).expect_err("malformed");
        assert!(
            err.starts_with("the upstream sent a malformed stream chunk"),
            "{err}"
        );
    }

    #[test]
    fn finish_without_done_still_finishes() {
        let events = decode_all(&[
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}]}"#,
        ])
        .expect("valid");
        assert_eq!(
            events.last(),
            Some(&ChatEvent::Finished {
                reason: FinishReason::Length
            })
        );
    }

    /// What `ChunkEncoder::text_chunk` writes by hand.
    #[derive(Serialize)]
    struct TextDelta<'a> {
        content: &'a str,
    }

    #[test]
    fn text_chunks_are_what_the_general_encoding_writes() {
        for text in [
            "",
            "plain",
            "quote \" back \\ slash",
            "line\nbreak\ttab\u{1}",
            "ünïcødé 😀",
        ] {
            let mut quick = ChunkEncoder::new(1, false);
            let mut general = ChunkEncoder::new(1, false);
            for encoder in [&mut quick, &mut general] {
                encoder.encode(
                    &ChatEvent::Started {
                        request_id: "r\"1".into(),
                        backend: "b".into(),
                        model: "m".into(),
                    },
                    &mut BytesMut::new(),
                );
            }
            let (mut by_hand, mut by_serde) = (BytesMut::new(), BytesMut::new());
            quick.text_chunk(text, &mut by_hand);
            general.chunk(TextDelta { content: text }, None, &mut by_serde);
            assert_eq!(by_hand, by_serde, "{text:?}");
        }
    }

    #[test]
    fn encodes_openai_frames() {
        let mut encoder = ChunkEncoder::new(1700000000, true);
        let mut out = BytesMut::new();
        for event in [
            ChatEvent::Started {
                request_id: "req1".into(),
                backend: "mock".into(),
                model: "echo".into(),
            },
            ChatEvent::TextDelta { text: "Hel".into() },
            ChatEvent::ToolCallDelta {
                index: 0,
                id: Some("call_0".into()),
                name: Some("f".into()),
                arguments: String::new(),
            },
            ChatEvent::ToolCallDelta {
                index: 0,
                id: None,
                name: None,
                arguments: "{}".into(),
            },
            ChatEvent::Usage(Usage {
                input: 2,
                output: 1,
                cached: None,
            }),
            ChatEvent::Finished {
                reason: FinishReason::ToolCalls,
            },
            ChatEvent::TextDelta {
                text: "ignored after the end".into(),
            },
        ] {
            encoder.encode(&event, &mut out);
        }
        insta::assert_snapshot!(String::from_utf8_lossy(&out));
    }

    #[test]
    fn encodes_a_mid_stream_error() {
        let mut encoder = ChunkEncoder::new(1700000000, false);
        let mut out = BytesMut::new();
        encoder.encode(
            &ChatEvent::Started {
                request_id: "r".into(),
                backend: "b".into(),
                model: "m".into(),
            },
            &mut out,
        );
        encoder.encode_error(
            &GatewayError::upstream("the upstream failed mid-stream: boom"),
            &mut out,
        );
        encoder.encode(
            &ChatEvent::Finished {
                reason: FinishReason::Stop,
            },
            &mut out,
        );
        insta::assert_snapshot!(String::from_utf8_lossy(&out));
    }
}
