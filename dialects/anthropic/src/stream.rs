//! Streamed messages: Anthropic SSE events ↔ [`ChatEvent`]s.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::{BufMut, BytesMut};
use gateway_core::json::Reader;
use gateway_core::stream::WireDecoder;
use gateway_core::{ChatEvent, FinishReason, GatewayError, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::error_body;
use crate::response::{
    WireBlock, WireUsage, borrowed, message_id, parse_stop_reason, read_block, read_usage,
    stop_reason_name, usage_json,
};

/// Turns an upstream's SSE `data:` payloads into canonical events.
///
/// Tool-use blocks are numbered in order of appearance, so the canonical
/// tool call index is stable whatever text or thinking blocks sit between
/// them. Usage is summed from `message_start` (input) and `message_delta`
/// (output) and reported just before `Finished`.
#[derive(Debug, Default)]
pub struct EventDecoder {
    /// Content block index → canonical tool call index.
    tool_blocks: HashMap<u64, u32>,
    usage: WireUsage,
    stop_reason: Option<FinishReason>,
    done: bool,
}

// One upstream event, read into borrowed typed fields (no `Value` tree per
// event). Every field is optional: events of types this decoder does not
// know are skipped, as are fields it does not use.

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "borrowed")]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    content_block: Option<WireBlock<'a>>,
    #[serde(default, borrow)]
    delta: Option<WireDelta<'a>>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default, borrow)]
    error: Option<WireError<'a>>,
}

#[derive(Deserialize)]
struct WireDelta<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "borrowed")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireError<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "borrowed")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    message: Option<Cow<'a, str>>,
}

/// An event read with [`Reader`] into the struct serde fills, for every
/// event but text deltas (which [`quick_text_delta`] reads): serde's field
/// matching cost more than the rest of the work on such an event. `None`
/// for a tool call's first block (its `input` is a JSON value), an error
/// event, and any event serde would read differently or refuse (a repeated
/// field, a field of another type); serde then reads it.
fn read_event(data: &str) -> Option<WireEvent<'_>> {
    let mut reader = Reader::of_text(data);
    let mut kind = None;
    let mut index = None;
    let mut content_block = None;
    let mut delta = None;
    let mut message = None;
    let mut usage = None;
    let mut error = false;
    reader.object(|reader, key| {
        match key {
            b"type" if kind.is_none() => kind = Some(reader.nullable(Reader::string)?),
            b"index" if index.is_none() => index = Some(reader.nullable(Reader::u64)?),
            b"content_block" if content_block.is_none() => {
                content_block = Some(reader.nullable(read_block)?);
            }
            b"delta" if delta.is_none() => delta = Some(reader.nullable(read_delta)?),
            b"message" if message.is_none() => message = Some(reader.nullable(read_message)?),
            b"usage" if usage.is_none() => usage = Some(reader.nullable(read_usage)?),
            b"error" if !error => {
                error = true;
                if !reader.null() {
                    return None;
                }
            }
            b"type" | b"index" | b"content_block" | b"delta" | b"message" | b"usage" | b"error" => {
                return None;
            }
            _ => reader.skip()?,
        }
        Some(())
    })?;
    reader.end()?;
    Some(WireEvent {
        kind: kind.flatten(),
        index: index.flatten(),
        content_block: content_block.flatten(),
        delta: delta.flatten(),
        message: message.flatten(),
        usage: usage.flatten(),
        error: None,
    })
}

/// A `delta` of [`read_event`]: its strings, each a string or null.
fn read_delta<'a>(reader: &mut Reader<'a>) -> Option<WireDelta<'a>> {
    let [kind, text, partial_json, stop_reason] = reader.fields(
        [b"type", b"text", b"partial_json", b"stop_reason"],
        Reader::string,
    )?;
    Some(WireDelta {
        kind,
        text,
        partial_json,
        stop_reason,
    })
}

/// A `message` of [`read_event`] (`message_start`): its usage.
fn read_message(reader: &mut Reader<'_>) -> Option<WireMessage> {
    let [usage] = reader.fields([b"usage"], read_usage)?;
    Some(WireMessage { usage })
}

/// How a `content_block_delta` event carrying text starts, up to its
/// index, in the order Anthropic writes the fields.
const TEXT_DELTA_START: &str = r#"{"type":"content_block_delta","index":"#;

/// What follows the index, up to the text's opening quote.
const TEXT_DELTA_DELTA: &str = r#","delta":{"type":"text_delta","text":"#;

/// The text of a `content_block_delta` event carrying a `text_delta`, read
/// without the general parse when the event is written exactly as
/// Anthropic writes it; `None` for anything else, which then takes the
/// general path. Nearly every event of a stream is one of these, and the
/// general parse of its ninety bytes cost more than everything else done
/// with the event.
fn quick_text_delta(data: &str) -> Option<Cow<'_, str>> {
    let rest = data.strip_prefix(TEXT_DELTA_START)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let quoted = rest[digits..]
        .strip_prefix(TEXT_DELTA_DELTA)?
        .strip_suffix("}}")?;
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if inner
        .bytes()
        .all(|byte| byte != b'"' && byte != b'\\' && byte >= 0x20)
    {
        return Some(Cow::Borrowed(inner));
    }
    // Escapes: the string alone is parsed (and anything that is not one
    // whole JSON string goes the general way).
    serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
}

impl WireDecoder for EventDecoder {
    fn decode(&mut self, data: &str, out: &mut Vec<ChatEvent>) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        if let Some(text) = quick_text_delta(data) {
            if !text.is_empty() {
                out.push(ChatEvent::TextDelta {
                    text: text.into_owned(),
                });
            }
            return Ok(());
        }
        let event = match read_event(data) {
            Some(event) => event,
            None => serde_json::from_str(data).map_err(|err| {
                GatewayError::upstream(format!("the upstream sent a malformed stream event: {err}"))
            })?,
        };
        let index = event.index.unwrap_or(0);
        match event.kind.as_deref().unwrap_or_default() {
            "message_start" => {
                if let Some(usage) = event.message.and_then(|message| message.usage) {
                    self.merge_usage(usage);
                }
            }
            "content_block_start" => {
                let Some(block) = event.content_block else {
                    return Ok(());
                };
                match block.kind.as_deref() {
                    Some("tool_use") => {
                        let call = self.tool_blocks.len() as u32;
                        self.tool_blocks.insert(index, call);
                        out.push(ChatEvent::ToolCallDelta {
                            index: call,
                            id: block.id,
                            name: block.name,
                            arguments: String::new(),
                        });
                    }
                    Some("text") => {
                        if let Some(text) = block.text.filter(|text| !text.is_empty()) {
                            out.push(ChatEvent::TextDelta {
                                text: text.into_owned(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(delta) = event.delta else {
                    return Ok(());
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.filter(|text| !text.is_empty()) {
                            out.push(ChatEvent::TextDelta {
                                text: text.into_owned(),
                            });
                        }
                    }
                    Some("input_json_delta") => {
                        let call = self.tool_blocks.get(&index).copied().ok_or_else(|| {
                            GatewayError::upstream(format!(
                                "the upstream sent tool input for block {index}, which is not a tool_use block"
                            ))
                        })?;
                        if let Some(partial) = delta.partial_json.filter(|json| !json.is_empty()) {
                            out.push(ChatEvent::ToolCallDelta {
                                index: call,
                                id: None,
                                name: None,
                                arguments: partial.into_owned(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|delta| delta.stop_reason) {
                    self.stop_reason = Some(parse_stop_reason(&reason));
                }
                if let Some(usage) = event.usage {
                    self.merge_usage(usage);
                }
            }
            "message_stop" => {
                self.done = true;
                out.push(ChatEvent::Usage(self.usage.to_canonical()));
                out.push(ChatEvent::Finished {
                    reason: self.stop_reason.take().unwrap_or(FinishReason::Stop),
                });
            }
            "error" => {
                self.done = true;
                let error = event.error;
                let message = error
                    .as_ref()
                    .and_then(|error| error.message.as_deref())
                    .unwrap_or("unknown error");
                let mut err =
                    GatewayError::upstream(format!("the upstream failed mid-stream: {message}"));
                err.retryable =
                    error.and_then(|error| error.kind).as_deref() == Some("overloaded_error");
                return Err(err);
            }
            _ => {}
        }
        Ok(())
    }

    /// An error unless `message_stop` (or an error event) came first.
    fn end(&mut self, _out: &mut Vec<ChatEvent>) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        Err(GatewayError::upstream(
            "the upstream closed the stream before the answer was complete",
        ))
    }
}

impl EventDecoder {
    fn merge_usage(&mut self, usage: WireUsage) {
        let current = &mut self.usage;
        current.input_tokens = usage.input_tokens.or(current.input_tokens);
        current.output_tokens = usage.output_tokens.or(current.output_tokens);
        current.cache_read_input_tokens = usage
            .cache_read_input_tokens
            .or(current.cache_read_input_tokens);
        current.cache_creation_input_tokens = usage
            .cache_creation_input_tokens
            .or(current.cache_creation_input_tokens);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text(u32),
    Tool(u32),
}

/// Renders canonical events as Anthropic SSE (`event: x\ndata: {...}\n\n`).
///
/// Text and tool calls become separate content blocks, opened and closed in
/// order; a tool call's later argument fragments go to its own block even
/// when other blocks came in between, so arguments are never lost. Usage
/// (input tokens included) is sent in `message_delta`, because upstreams in
/// other dialects report it only at the end.
#[derive(Debug, Default)]
pub struct EventEncoder {
    next_block: u32,
    open: Option<OpenBlock>,
    /// Canonical tool call index → content block index.
    tool_blocks: HashMap<u32, u32>,
    usage: Option<Usage>,
    ended: bool,
}

impl EventEncoder {
    /// A new encoder for one response.
    pub fn new() -> Self {
        Self::default()
    }

    fn close_open(&mut self, out: &mut BytesMut) {
        if let Some(OpenBlock::Text(index) | OpenBlock::Tool(index)) = self.open.take() {
            write_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    fn open_block(&mut self, block: Value, out: &mut BytesMut) -> u32 {
        self.close_open(out);
        let index = self.next_block;
        self.next_block += 1;
        write_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
            out,
        );
        index
    }

    /// Appends the events for `event` to `out`.
    pub fn encode(&mut self, event: &ChatEvent, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        match event {
            ChatEvent::Started {
                request_id, model, ..
            } => write_event(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": message_id(request_id), "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
                out,
            ),
            ChatEvent::TextDelta { text } => {
                let index = match self.open {
                    Some(OpenBlock::Text(index)) => index,
                    _ => {
                        let index = self.open_block(json!({"type": "text", "text": ""}), out);
                        self.open = Some(OpenBlock::Text(index));
                        index
                    }
                };
                write_event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
                    out,
                );
            }
            ChatEvent::ToolCallDelta {
                index: call,
                id,
                name,
                arguments,
            } => {
                let block = match self.tool_blocks.get(call) {
                    Some(block) => *block,
                    None => {
                        let block = self.open_block(
                            json!({"type": "tool_use", "id": id.clone().unwrap_or_default(), "name": name.clone().unwrap_or_default(), "input": {}}),
                            out,
                        );
                        self.open = Some(OpenBlock::Tool(block));
                        self.tool_blocks.insert(*call, block);
                        block
                    }
                };
                if !arguments.is_empty() {
                    write_event(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": block, "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                        out,
                    );
                }
            }
            ChatEvent::Usage(usage) => self.usage = Some(*usage),
            ChatEvent::Finished { reason } => {
                self.close_open(out);
                write_event(
                    "message_delta",
                    &json!({"type": "message_delta",
                        "delta": {"stop_reason": stop_reason_name(reason), "stop_sequence": null},
                        "usage": usage_json(&self.usage.unwrap_or_default())}),
                    out,
                );
                write_event("message_stop", &json!({"type": "message_stop"}), out);
                self.ended = true;
            }
        }
    }

    /// Appends Anthropic's stream error event; nothing is sent after it.
    pub fn encode_error(&mut self, err: &GatewayError, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        write_event("error", &error_body(err), out);
        self.ended = true;
    }
}

/// Writes one SSE event with its `event:` line.
pub fn write_event(name: &str, data: &Value, out: &mut BytesMut) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    // `to_vec`, not `to_string`: the same bytes, without writing each small
    // piece through a formatter.
    let json = serde_json::to_vec(data).unwrap_or_else(|_| b"{}".to_vec());
    out.put_slice(&json);
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an event holds, to compare the two ways of reading it.
    fn summary(event: &WireEvent<'_>) -> String {
        let block = event.content_block.as_ref().map(|block| {
            (
                block.kind.clone(),
                block.text.clone(),
                block.id.clone(),
                block.name.clone(),
                block.input.clone(),
            )
        });
        let delta = event.delta.as_ref().map(|delta| {
            (
                delta.kind.clone(),
                delta.text.clone(),
                delta.partial_json.clone(),
                delta.stop_reason.clone(),
            )
        });
        format!(
            "{:?} {:?} {block:?} {delta:?} {:?} {:?} {}",
            event.kind,
            event.index,
            event.message.as_ref().map(|message| message.usage),
            event.usage,
            event.error.is_some()
        )
    }

    /// The reader is a fast path only: wherever it reads an event, serde
    /// reads the same event. A stream's events, then random edits of them.
    #[test]
    fn events_read_as_serde_reads_them() {
        let seeds: [&str; 7] = [
            r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":8,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":20,"cache_read_input_tokens":null}}"#,
            r#"{"type":"message_stop"}"#,
            r#"{"type":"ping"}"#,
        ];
        let same = |data: &str| -> bool {
            let Some(read) = read_event(data) else {
                return false;
            };
            let parsed: WireEvent<'_> = serde_json::from_str(data)
                .unwrap_or_else(|err| panic!("serde refuses what the reader read ({err}): {data}"));
            assert_eq!(summary(&read), summary(&parsed), "{data}");
            true
        };
        for seed in seeds {
            assert!(same(seed), "not read: {seed}");
        }
        for left in [
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
            r#"{"type":"message_stop","type":"message_stop"}"#,
            r#"{"type":"content_block_stop","index":-1}"#,
        ] {
            assert!(read_event(left).is_none(), "{left}");
        }
        let alphabet = b"{}[]\":,\\ -.0123456789etrufalsn_";
        let mut rng = fastrand::Rng::with_seed(8);
        let mut read = 0;
        for round in 0..20_000 {
            let data = gateway_core::json::random_edits(
                seeds[round % seeds.len()].as_bytes(),
                alphabet,
                &mut rng,
            );
            if let Ok(data) = std::str::from_utf8(&data) {
                read += usize::from(same(data));
            }
        }
        assert!(read > 1_000, "only {read} edited events were read");
    }

    fn decode_all(payloads: &[Value]) -> Result<Vec<ChatEvent>, String> {
        let mut decoder = EventDecoder::default();
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
    fn text_deltas_in_anthropics_own_form_take_the_quick_path() {
        let quick = |data: &str| quick_text_delta(data).map(Cow::into_owned);
        let delta = |text: &str| {
            format!(
                r#"{{"type":"content_block_delta","index":12,"delta":{{"type":"text_delta","text":{text}}}}}"#
            )
        };
        assert_eq!(quick(&delta(r#""word ""#)).as_deref(), Some("word "));
        assert_eq!(quick(&delta(r#""""#)).as_deref(), Some(""));
        assert_eq!(
            quick(&delta(r#""a\"b\\c\nd\u00e9 é""#)).as_deref(),
            Some("a\"b\\c\nd\u{e9} \u{e9}")
        );
        // Anything else is left to the general parse, which reads these
        // (or refuses them) as it always did.
        for other in [
            delta(r#""a","x":"b""#),
            delta(r#""a"},"x":{"y":"b""#),
            delta("\"raw\tcontrol\""),
            delta(r#""unterminated"#),
            delta("5"),
            r#"{"type":"content_block_delta","index":0,"delta":{"text":"a","type":"text_delta"}}"#
                .to_owned(),
            r#"{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"a"}}"#
                .to_owned(),
            r#"{"type":"content_block_delta", "index":0,"delta":{"type":"text_delta","text":"a"}}"#
                .to_owned(),
        ] {
            assert_eq!(quick(&other), None, "{other}");
        }
        let mut decoder = EventDecoder::default();
        let mut out = Vec::new();
        decoder
            .decode(&delta(r#""a"},"x":{"y":"b""#), &mut out)
            .expect("general parse");
        assert!(
            matches!(&out[..], [ChatEvent::TextDelta { text }] if text == "a"),
            "{out:?}"
        );
    }

    #[test]
    fn decodes_text_tools_and_usage() {
        let events = decode_all(&[
            json!({"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":12,"output_tokens":1,"cache_read_input_tokens":30}}}),
            json!({"type":"ping"}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking"}}),
            json!({"type":"content_block_stop","index":1}),
            json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_a","name":"f","input":{}}}),
            json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}),
            json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"1}"}}),
            json!({"type":"content_block_stop","index":2}),
            json!({"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_b","name":"g","input":{}}}),
            json!({"type":"content_block_stop","index":3}),
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":20}}),
            json!({"type":"message_stop"}),
        ])
        .expect("valid");
        insta::assert_json_snapshot!(events);
    }

    #[test]
    fn errors_and_truncation_end_the_stream() {
        let err = decode_all(&[
            json!({"type":"message_start","message":{"usage":{"input_tokens":1}}}),
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ])
        .expect_err("error event");
        assert_eq!(err, "the upstream failed mid-stream: Overloaded");
        let err =
            decode_all(&[json!({"type":"message_start","message":{}})]).expect_err("truncated");
        assert_eq!(
            err,
            "the upstream closed the stream before the answer was complete"
        );
    }

    #[test]
    fn encodes_anthropic_events_with_usage_at_the_end() {
        let mut encoder = EventEncoder::new();
        let mut out = BytesMut::new();
        for event in [
            ChatEvent::Started {
                request_id: "req1".into(),
                backend: "up".into(),
                model: "gpt-4o".into(),
            },
            ChatEvent::TextDelta {
                text: "Let me ".into(),
            },
            // One upstream chunk with text and a tool call: both survive.
            ChatEvent::TextDelta {
                text: "check.".into(),
            },
            ChatEvent::ToolCallDelta {
                index: 0,
                id: Some("call_a".into()),
                name: Some("f".into()),
                arguments: String::new(),
            },
            ChatEvent::ToolCallDelta {
                index: 1,
                id: Some("call_b".into()),
                name: Some("g".into()),
                arguments: "{\"y\"".into(),
            },
            ChatEvent::ToolCallDelta {
                index: 0,
                id: None,
                name: None,
                arguments: "{\"x\":1}".into(),
            },
            ChatEvent::ToolCallDelta {
                index: 1,
                id: None,
                name: None,
                arguments: ":2}".into(),
            },
            ChatEvent::Usage(Usage {
                input: 40,
                output: 9,
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

    #[test]
    fn encodes_a_mid_stream_error() {
        let mut encoder = EventEncoder::new();
        let mut out = BytesMut::new();
        encoder.encode(
            &ChatEvent::Started {
                request_id: "r".into(),
                backend: "b".into(),
                model: "m".into(),
            },
            &mut out,
        );
        encoder.encode(&ChatEvent::TextDelta { text: "par".into() }, &mut out);
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
