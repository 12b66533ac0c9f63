//! Reads token usage out of pass-through answers without changing or
//! holding them up: only when the caller has a token budget, only the
//! lines that mention usage are parsed, and the bytes go on untouched.

use bytes::Bytes;
use futures::StreamExt;
use gateway_core::pipeline::UsageMeter;
use gateway_core::{UpstreamBody, Usage};
use serde_json::Value;

/// Watches an answer's bytes for usage and charges the most complete usage
/// seen when dropped (at the end of the answer, or when the client goes
/// away).
pub(crate) struct UsageTap {
    meter: UsageMeter,
    usage_in: fn(&Value) -> Option<Usage>,
    sse: bool,
    /// An SSE line not yet complete.
    pending: Vec<u8>,
    /// A JSON body's chunks so far (shared, not copied).
    body: Vec<Bytes>,
    seen: Option<Usage>,
}

impl UsageTap {
    /// A tap for an SSE answer (`sse`) or a JSON one.
    pub(crate) fn new(meter: UsageMeter, usage_in: fn(&Value) -> Option<Usage>, sse: bool) -> Self {
        Self {
            meter,
            usage_in,
            sse,
            pending: Vec::new(),
            body: Vec::new(),
            seen: None,
        }
    }

    /// Looks at one chunk of the answer.
    pub(crate) fn observe(&mut self, chunk: &Bytes) {
        if !self.sse {
            // JSON answers carry usage at the end; keep the chunks (a
            // reference count each) to parse the body once complete.
            self.body.push(chunk.clone());
            return;
        }
        let mut rest: &[u8] = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(newline);
            rest = &tail[1..];
            if self.pending.is_empty() {
                self.line(line);
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.line(&whole);
            }
        }
        self.pending.extend_from_slice(rest);
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if !contains(data, b"sage") {
            return;
        }
        if let Ok(value) = serde_json::from_slice::<Value>(data.trim_ascii()) {
            self.merge(&value);
        }
    }

    fn merge(&mut self, value: &Value) {
        if let Some(found) = (self.usage_in)(value) {
            let seen = self.seen.get_or_insert_with(Usage::default);
            seen.input = seen.input.max(found.input);
            seen.output = seen.output.max(found.output);
        }
    }
}

impl Drop for UsageTap {
    fn drop(&mut self) {
        if !self.body.is_empty() {
            let body = std::mem::take(&mut self.body).concat();
            if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                self.merge(&value);
            }
        }
        if let Some(usage) = &self.seen {
            self.meter.record(usage);
        }
    }
}

/// Drops the usage-only chunk (`"choices":[]` with `usage`) from an OpenAI
/// stream whose caller did not ask for usage, when the gateway asked the
/// upstream for it to charge a token budget. Complete events pass on at
/// once; only an event cut across two chunks waits for its end.
pub(crate) struct HiddenUsageFilter {
    pending: bytes::BytesMut,
}

impl HiddenUsageFilter {
    /// A filter with nothing pending.
    pub(crate) fn new() -> Self {
        Self {
            pending: bytes::BytesMut::new(),
        }
    }

    /// The part of `chunk` (with what was pending) to send on.
    pub(crate) fn filter(&mut self, chunk: Bytes) -> Bytes {
        if self.pending.is_empty()
            && !contains(&chunk, b"\"choices\":[]")
            && chunk.ends_with(b"\n\n")
        {
            return chunk;
        }
        self.pending.extend_from_slice(&chunk);
        let mut out = bytes::BytesMut::with_capacity(self.pending.len());
        while let Some(end) = event_end(&self.pending) {
            let event = self.pending.split_to(end);
            let usage_only = contains(&event, b"\"choices\":[]") && contains(&event, b"\"usage\"");
            if !usage_only {
                out.extend_from_slice(&event);
            }
        }
        out.freeze()
    }

    /// What is left when the upstream ends (an unterminated last event).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.pending).freeze()
    }
}

/// `body` without its usage-only chunk (see [`HiddenUsageFilter`]); an
/// unterminated last event is sent when the upstream ends.
pub(crate) fn hide_usage_chunk(body: UpstreamBody) -> UpstreamBody {
    let state = (body, HiddenUsageFilter::new(), false);
    Box::pin(futures::stream::unfold(
        state,
        |(mut body, mut filter, done)| async move {
            if done {
                return None;
            }
            loop {
                match body.next().await {
                    Some(Ok(bytes)) => {
                        let out = filter.filter(bytes);
                        if !out.is_empty() {
                            return Some((Ok(out), (body, filter, false)));
                        }
                    }
                    Some(Err(err)) => return Some((Err(err), (body, filter, true))),
                    None => {
                        let rest = filter.rest();
                        return (!rest.is_empty()).then_some((Ok(rest), (body, filter, true)));
                    }
                }
            }
        },
    ))
}

/// The length of the first complete SSE event in `buffer`, separator
/// included.
fn event_end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| at + 2);
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn count(value: &Value, field: &str) -> u64 {
    value.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// OpenAI: `usage.prompt_tokens` / `completion_tokens` (whole answers and
/// the last chunk of a stream with `include_usage`).
pub(crate) fn openai_usage(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|usage| usage.is_object())?;
    Some(Usage {
        input: count(usage, "prompt_tokens"),
        output: count(usage, "completion_tokens"),
        cached: None,
    })
}

/// Anthropic: `usage` in a whole answer or `message_delta`, `message.usage`
/// in `message_start`; cache reads and writes count as input.
pub(crate) fn anthropic_usage(value: &Value) -> Option<Usage> {
    let usage = value
        .get("usage")
        .or_else(|| {
            value
                .get("message")
                .and_then(|message| message.get("usage"))
        })
        .filter(|usage| usage.is_object())?;
    Some(Usage {
        input: count(usage, "input_tokens")
            + count(usage, "cache_read_input_tokens")
            + count(usage, "cache_creation_input_tokens"),
        output: count(usage, "output_tokens"),
        cached: None,
    })
}

/// Gemini: `usageMetadata`; thoughts count as output.
pub(crate) fn gemini_usage(value: &Value) -> Option<Usage> {
    let usage = value
        .get("usageMetadata")
        .filter(|usage| usage.is_object())?;
    Some(Usage {
        input: count(usage, "promptTokenCount"),
        output: count(usage, "candidatesTokenCount") + count(usage, "thoughtsTokenCount"),
        cached: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_usage_only_chunk_is_hidden_across_chunk_boundaries() {
        let mut filter = HiddenUsageFilter::new();
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            out.extend_from_slice(&filter.filter(Bytes::copy_from_slice(piece)));
        }
        out.extend_from_slice(&filter.rest());
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn each_dialects_usage_is_read() {
        let openai = json!({"usage": {"prompt_tokens": 3, "completion_tokens": 4}});
        assert_eq!(
            openai_usage(&openai).map(|u| (u.input, u.output)),
            Some((3, 4))
        );
        assert_eq!(openai_usage(&json!({"usage": null})), None);
        let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 5, "cache_read_input_tokens": 2, "output_tokens": 1}}});
        assert_eq!(
            anthropic_usage(&start).map(|u| (u.input, u.output)),
            Some((7, 1))
        );
        let gemini = json!({"usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 3, "thoughtsTokenCount": 4}});
        assert_eq!(
            gemini_usage(&gemini).map(|u| (u.input, u.output)),
            Some((2, 7))
        );
    }
}
