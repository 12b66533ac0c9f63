//! `streamGenerateContent?alt=sse`: each SSE event is a partial
//! `generateContent` answer.

use bytes::{BufMut, BytesMut};
use gateway_core::stream::{ToolCalls, WireDecoder};
use gateway_core::{ChatEvent, GatewayError, Usage};
use serde_json::{Value, json};

use crate::error::error_body;
use crate::field;
use crate::response::{
    answer_parts, candidate_parts, finish_reason_name, parse_finish_reason, parse_usage, usage_json,
};

/// Turns an upstream's stream chunks into canonical events. Gemini sends
/// each function call whole, so each becomes one `ToolCallDelta`; the stream
/// has no terminal event, so `Usage` and `Finished` are sent when it closes
/// after a chunk with a `finishReason`.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    next_call: usize,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl WireDecoder for ChunkDecoder {
    fn decode(&mut self, data: &str, out: &mut Vec<ChatEvent>) -> Result<(), GatewayError> {
        let value: Value = serde_json::from_str(data).map_err(|err| {
            GatewayError::upstream(format!("the upstream sent a malformed stream chunk: {err}"))
        })?;
        if let Some(message) = value["error"]["message"].as_str() {
            return Err(GatewayError::upstream(format!(
                "the upstream failed mid-stream: {message}"
            )));
        }
        let first_call = self.next_call;
        let (text, calls) = candidate_parts(&value, &mut self.next_call);
        if !text.is_empty() {
            out.push(ChatEvent::TextDelta { text });
        }
        for (offset, call) in calls.into_iter().enumerate() {
            out.push(ChatEvent::ToolCallDelta {
                index: (first_call + offset) as u32,
                id: Some(call.id),
                name: Some(call.name),
                arguments: call.arguments,
            });
        }
        if let Some(reason) =
            field(&value["candidates"][0], "finishReason", "finish_reason").and_then(Value::as_str)
        {
            self.finish = Some(reason.to_owned());
        }
        if let Some(metadata) = field(&value, "usageMetadata", "usage_metadata") {
            self.usage = Some(parse_usage(metadata));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<ChatEvent>) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let reason = self.finish.take().ok_or_else(|| {
            GatewayError::upstream("the upstream closed the stream before the answer was complete")
        })?;
        if let Some(usage) = self.usage {
            out.push(ChatEvent::Usage(usage));
        }
        out.push(ChatEvent::Finished {
            reason: parse_finish_reason(&reason, self.next_call > 0),
        });
        Ok(())
    }
}

/// Renders canonical events as Gemini SSE chunks. Text goes out as it
/// arrives; tool calls are assembled and sent whole with the final chunk,
/// which also carries `finishReason` and `usageMetadata`.
#[derive(Debug, Default)]
pub struct ChunkEncoder {
    id: String,
    model: String,
    calls: ToolCalls,
    usage: Option<Usage>,
    ended: bool,
}

impl ChunkEncoder {
    /// A new encoder for one response.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the chunk(s) for `event` to `out`.
    pub fn encode(&mut self, event: &ChatEvent, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        match event {
            ChatEvent::Started {
                request_id, model, ..
            } => {
                self.id.clone_from(request_id);
                self.model.clone_from(model);
            }
            ChatEvent::TextDelta { text } => {
                let chunk = json!({
                    "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
                    "modelVersion": self.model, "responseId": self.id,
                });
                write_chunk(&chunk, out);
            }
            ChatEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => self
                .calls
                .push(*index, id.as_deref(), name.as_deref(), arguments),
            ChatEvent::Usage(usage) => self.usage = Some(*usage),
            ChatEvent::Finished { reason } => {
                let mut chunk = json!({
                    "candidates": [{
                        "content": {"role": "model", "parts": answer_parts("", &std::mem::take(&mut self.calls).into_ordered())},
                        "finishReason": finish_reason_name(reason),
                        "index": 0,
                    }],
                    "modelVersion": self.model, "responseId": self.id,
                });
                if let Some(usage) = &self.usage {
                    chunk["usageMetadata"] = usage_json(usage);
                }
                write_chunk(&chunk, out);
                self.ended = true;
            }
        }
    }

    /// Appends an error chunk (`{"error": {...}}`); nothing is sent after it.
    pub fn encode_error(&mut self, err: &GatewayError, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        write_chunk(&error_body(err), out);
        self.ended = true;
    }
}

/// Writes one SSE chunk the way Gemini does; the `google-genai` SDK reads
/// only lines that start with exactly `data: `.
pub fn write_chunk(value: &Value, out: &mut BytesMut) {
    // `to_vec`, not `to_string`: the same bytes, without writing each small
    // piece through a formatter.
    let json = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    out.reserve(json.len() + 10);
    out.put_slice(b"data: ");
    out.put_slice(&json);
    out.put_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::FinishReason;

    fn decode_all(payloads: &[Value]) -> Result<Vec<ChatEvent>, String> {
        let mut decoder = ChunkDecoder::default();
        let mut out = Vec::new();
        for payload in payloads {
            decoder
                .decode(&payload.to_string(), &mut out)
                .map_err(|err| err.message)?;
        }
        decoder.end(&mut out).map_err(|err| err.message)?;
        Ok(out)
    }

    #[test]
    fn decodes_text_calls_and_usage() {
        let events = decode_all(&[
            json!({"candidates":[{"content":{"role":"model","parts":[{"text":"Let me "}]}}]}),
            json!({"candidates":[{"content":{"role":"model","parts":[{"text":"check."},{"functionCall":{"name":"f","args":{"x":1}}}]}}]}),
            json!({"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"g","args":{}}}]},"finishReason":"STOP"}],
                   "usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":4,"totalTokenCount":12}}),
        ])
        .expect("valid");
        insta::assert_json_snapshot!(events);
    }

    #[test]
    fn a_stream_without_finish_reason_is_truncated() {
        let err = decode_all(&[json!({"candidates":[{"content":{"parts":[{"text":"x"}]}}]})])
            .expect_err("truncated");
        assert_eq!(
            err,
            "the upstream closed the stream before the answer was complete"
        );
        let err = decode_all(&[json!({"error":{"code":500,"message":"boom"}})]).expect_err("error");
        assert_eq!(err, "the upstream failed mid-stream: boom");
    }

    #[test]
    fn encodes_gemini_chunks() {
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for event in [
            ChatEvent::Started {
                request_id: "req1".into(),
                backend: "b".into(),
                model: "gpt-4o".into(),
            },
            ChatEvent::TextDelta {
                text: "Let me check.".into(),
            },
            ChatEvent::ToolCallDelta {
                index: 0,
                id: Some("call_a".into()),
                name: Some("f".into()),
                arguments: "{\"x\"".into(),
            },
            ChatEvent::ToolCallDelta {
                index: 0,
                id: None,
                name: None,
                arguments: ":1}".into(),
            },
            ChatEvent::Usage(Usage {
                input: 8,
                output: 4,
                cached: None,
            }),
            ChatEvent::Finished {
                reason: FinishReason::ToolCalls,
            },
        ] {
            encoder.encode(&event, &mut out);
        }
        insta::assert_snapshot!(String::from_utf8_lossy(&out));
    }
}
