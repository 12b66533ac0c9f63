//! The fixed answers, built once: every response body is a cheap clone of
//! shared bytes.

use bytes::Bytes;

/// Which wire format a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

/// One dialect's answers.
pub(crate) struct Set {
    /// The whole non-streamed answer.
    pub(crate) json: Bytes,
    /// The streamed answer, one entry per SSE event.
    pub(crate) events: Vec<Bytes>,
}

/// Every dialect's answers.
pub(crate) struct Answers {
    openai: Set,
    anthropic: Set,
    gemini: Set,
}

const WORD: &str = "word ";

impl Answers {
    /// Answers whose streams carry `chunks` content chunks of one word each.
    pub(crate) fn new(chunks: usize) -> Self {
        let text = WORD.repeat(chunks);
        Self {
            openai: openai(chunks, &text),
            anthropic: anthropic(chunks, &text),
            gemini: gemini(chunks, &text),
        }
    }

    pub(crate) fn get(&self, dialect: Dialect) -> &Set {
        match dialect {
            Dialect::OpenAi => &self.openai,
            Dialect::Anthropic => &self.anthropic,
            Dialect::Gemini => &self.gemini,
        }
    }
}

fn data(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

fn openai(chunks: usize, text: &str) -> Set {
    let chunk = |delta: &str, finish: &str| {
        data(&format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
        ))
    };
    let mut events = vec![chunk(r#"{"role":"assistant","content":""}"#, "null")];
    for _ in 0..chunks {
        events.push(chunk(&format!(r#"{{"content":"{WORD}"}}"#), "null"));
    }
    events.push(chunk("{}", r#""stop""#));
    events.push(data(&format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench","choices":[],"usage":{{"prompt_tokens":8,"completion_tokens":{chunks},"total_tokens":{}}}}}"#,
        chunks + 8
    )));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let json = Bytes::from(format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":8,"completion_tokens":{chunks},"total_tokens":{}}}}}"#,
        chunks + 8
    ));
    Set { json, events }
}

fn event(name: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

fn anthropic(chunks: usize, text: &str) -> Set {
    let mut events = vec![
        event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":8,"output_tokens":1}}}"#,
        ),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
    ];
    for _ in 0..chunks {
        events.push(event(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{WORD}"}}}}"#
            ),
        ));
    }
    events.push(event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    events.push(event(
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{chunks}}}}}"#
        ),
    ));
    events.push(event("message_stop", r#"{"type":"message_stop"}"#));
    let json = Bytes::from(format!(
        r#"{{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":8,"output_tokens":{chunks}}}}}"#
    ));
    Set { json, events }
}

fn gemini(chunks: usize, text: &str) -> Set {
    let chunk = |text: &str, last: bool| {
        let finish = if last {
            r#","finishReason":"STOP""#
        } else {
            ""
        };
        let usage = if last {
            format!(
                r#","usageMetadata":{{"promptTokenCount":8,"candidatesTokenCount":{chunks},"totalTokenCount":{}}}"#,
                chunks + 8
            )
        } else {
            String::new()
        };
        format!(
            r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"text":"{text}"}}]}},"index":0{finish}}}]{usage},"modelVersion":"bench","responseId":"bench"}}"#
        )
    };
    let mut events: Vec<Bytes> = (0..chunks).map(|_| data(&chunk(WORD, false))).collect();
    events.push(data(&chunk("", true)));
    let json = Bytes::from(chunk(text, true));
    Set { json, events }
}
