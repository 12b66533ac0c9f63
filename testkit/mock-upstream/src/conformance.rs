//! The case list every network adapter must pass, against this mock
//! upstream, through the gateway's library API.
//!
//! An adapter crate runs the whole list with one line in
//! `tests/conformance.rs`:
//!
//! ```ignore
//! mock_upstream::adapter_conformance!("openai", "/v1");
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case, so no adapter can skip
//! a case silently and a new case reaches every adapter at once. See
//! `docs/specs/adapter.md`.

use std::time::Duration;

use futures::StreamExt;
use gateway_core::config::{Format, parse_str};
use gateway_core::gateway::MissingCredential;
use gateway_core::{
    ChatEvent, ChatRequest, FinishReason, Gateway, GatewayError, Message, Registry, Role, Tool,
    ToolChoice, Usage,
};
use serde_json::json;

use crate::MockUpstream;

/// The credential the harness configures; the mock records what arrived.
pub const CREDENTIAL: &str = "sk-conformance";

/// A mock upstream and a gateway whose backend `up` uses the adapter under
/// test.
pub struct Harness {
    /// The upstream, for assertions on what it received.
    pub upstream: MockUpstream,
    /// The gateway under test.
    pub gateway: Gateway,
}

impl Harness {
    /// Starts the mock and builds a gateway with backend `up` of `dialect`
    /// at the mock's address plus `path` (the part of the endpoint the
    /// provider's SDK includes, such as `/v1` for OpenAI).
    pub async fn start(dialect: &str, path: &str) -> Self {
        let upstream = MockUpstream::start().await.expect("mock upstream starts");
        let text = format!(
            r#"
            [[backends]]
            id = "up"
            dialect = "{dialect}"
            endpoint = "{}{path}"
            credential = {{ inline = "{CREDENTIAL}" }}
            models = [{{ id = "m", upstream = "mock-model" }}, {{ id = "parallel" }}, {{ id = "endless" }},
                      {{ id = "midstream-error" }}, {{ id = "truncated" }}, {{ id = "bad-json" }},
                      {{ id = "error-400" }}, {{ id = "error-429" }}, {{ id = "error-500" }}]
            [aliases]
            default = "up/m"
            "#,
            upstream.base_url()
        );
        let config = parse_str(&text, Format::Toml, "conformance").expect("valid config");
        let (gateway, _) = Gateway::build(
            &config,
            &Registry::builtin(),
            &|_| None,
            MissingCredential::Fail,
            "conformance",
        )
        .expect("gateway builds");
        Self { upstream, gateway }
    }

    async fn events(&self, request: ChatRequest) -> Vec<Result<ChatEvent, GatewayError>> {
        self.gateway
            .chat_stream(request)
            .await
            .expect("the stream starts")
            .collect()
            .await
    }

    /// The last request body the upstream received.
    pub fn last_body(&self) -> serde_json::Value {
        self.upstream
            .state()
            .requests()
            .last()
            .map(|request| request.body.clone())
            .expect("the upstream received a request")
    }
}

fn request(model: &str, text: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![
            Message::text(Role::System, "be brief"),
            Message::text(Role::User, text),
        ],
        ..ChatRequest::default()
    }
}

fn tools(names: &[&str]) -> Vec<Tool> {
    names
        .iter()
        .map(|name| Tool {
            name: (*name).into(),
            description: Some("a tool".into()),
            parameters: json!({"type": "object", "properties": {"input": {"type": "string"}}}),
            strict: None,
        })
        .collect()
}

fn text_of(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            ChatEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// A plain answer: text, finish reason, usage, the upstream model id and the
/// backend credential (never anything of the client's) upstream.
pub async fn text(dialect: &str, path: &str) {
    let harness = Harness::start(dialect, path).await;
    let answer = harness
        .gateway
        .chat_once(request("default", "hi there"))
        .await
        .expect("answer");
    assert_eq!(answer.text, "echo: hi there");
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(answer.usage.map(|u| (u.input, u.output)), Some((4, 3)));
    let sent = &harness.upstream.state().requests()[0];
    // The upstream model id travels in the body, or in the path (Gemini).
    assert!(
        sent.body["model"] == "mock-model" || sent.path.contains("/mock-model:"),
        "upstream model: {} {}",
        sent.path,
        sent.body
    );
    let headers = format!("{:?}", sent.headers);
    assert!(
        headers.contains(CREDENTIAL),
        "credential sent upstream: {headers}"
    );
}

/// A streamed answer: `Started`, text deltas, then usage, then `Finished`.
pub async fn stream(dialect: &str, path: &str) {
    let harness = Harness::start(dialect, path).await;
    let events: Vec<ChatEvent> = harness
        .events(request("up/m", "a b"))
        .await
        .into_iter()
        .map(|event| event.expect("no error"))
        .collect();
    assert!(
        matches!(&events[0], ChatEvent::Started { backend, model, .. } if backend == "up" && model == "mock-model")
    );
    assert_eq!(text_of(&events), "echo: a b");
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, ChatEvent::TextDelta { .. }))
            .count()
            > 1,
        "streamed in pieces"
    );
    assert_eq!(
        events.last(),
        Some(&ChatEvent::Finished {
            reason: FinishReason::Stop
        })
    );
}

/// Usage in a stream is the upstream's, input tokens included.
pub async fn usage(dialect: &str, path: &str) {
    let harness = Harness::start(dialect, path).await;
    let events: Vec<ChatEvent> = harness
        .events(request("up/m", "one two three"))
        .await
        .into_iter()
        .map(|event| event.expect("no error"))
        .collect();
    let usage = events.iter().find_map(|event| match event {
        ChatEvent::Usage(usage) => Some(*usage),
        _ => None,
    });
    let usage = usage.expect("a usage event");
    assert_eq!((usage.input, usage.output), (5, 4), "{usage:?}");
    assert_ne!(usage, Usage::default());
}

/// Tool definitions go upstream and tool calls come back (parallel ones in
/// order); the tool results of the next turn reach the upstream paired to
/// their calls.
pub async fn tools_round_trip(dialect: &str, path: &str) {
    let harness = Harness::start(dialect, path).await;
    let mut req = request("up/parallel", "weather");
    req.tools = tools(&["first", "second"]);
    req.tool_choice = Some(ToolChoice::Auto);
    let answer = harness
        .gateway
        .chat_once(req.clone())
        .await
        .expect("answer");
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    let names: Vec<&str> = answer.tool_calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    let arguments: serde_json::Value =
        serde_json::from_str(&answer.tool_calls[1].arguments).expect("JSON arguments");
    assert_eq!(arguments, json!({"input": "weather", "n": 1}));

    let mut assistant = Message::text(Role::Assistant, "");
    assistant.content.clear();
    assistant.tool_calls = answer.tool_calls.clone();
    req.messages.push(assistant);
    for call in &answer.tool_calls {
        req.messages.push(Message {
            tool_call_id: Some(call.id.clone()),
            ..Message::text(Role::Tool, format!("result of {}", call.name))
        });
    }
    let next = harness.gateway.chat_once(req).await.expect("answer");
    assert!(next.text.starts_with("tool result was: "), "{}", next.text);
    assert!(next.text.contains("result of second"), "{}", next.text);
}

/// Streamed tool calls: ids and names on the first delta, arguments whole
/// after collection, several calls in order.
pub async fn tool_stream(dialect: &str, path: &str) {
    let harness = Harness::start(dialect, path).await;
    let mut req = request("up/parallel", "weather");
    req.tools = tools(&["first", "second"]);
    let stream = harness.gateway.chat_stream(req).await.expect("stream");
    let answer = Gateway::collect(stream).await.expect("collected");
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    let calls: Vec<(&str, &str)> = answer
        .tool_calls
        .iter()
        .map(|c| (c.name.as_str(), c.arguments.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("first", r#"{"input":"weather","n":0}"#),
            ("second", r#"{"input":"weather","n":1}"#)
        ]
    );
    assert!(answer.tool_calls.iter().all(|c| !c.id.is_empty()));
}

/// Upstream error statuses map per DESIGN §4 before any output, streamed or
/// not: 400 stays 400, 429 stays 429 (retryable), 5xx becomes 502
/// (retryable); the backend is named.
pub async fn upstream_error(dialect: &str, path: &str) {
    let harness = Harness::start(dialect, path).await;
    let cases = [
        ("up/error-400", 400, 400, false),
        ("up/error-429", 429, 429, true),
        ("up/error-500", 500, 502, true),
    ];
    for (model, upstream_status, status, retryable) in cases {
        for stream in [false, true] {
            let err = if stream {
                harness.gateway.chat_stream(request(model, "x")).await.err()
            } else {
                harness.gateway.chat_once(request(model, "x")).await.err()
            }
            .expect("an error before any output");
            assert_eq!(
                (err.status(), err.retryable),
                (status, retryable),
                "{model} stream={stream}"
            );
            assert_eq!(err.upstream_status, Some(upstream_status));
            assert_eq!(err.backend.as_deref(), Some("up"));
            assert!(
                err.message.contains("mock upstream failure"),
                "{}",
                err.message
            );
        }
    }
    let err = harness
        .gateway
        .chat_once(request("up/bad-json", "x"))
        .await
        .expect_err("bad body");
    assert_eq!(err.status(), 502);
}

/// A failure after output has started ends the stream with exactly one
/// error, after the text that came before it; so does a stream that stops
/// short.
pub async fn mid_stream_error(dialect: &str, path: &str) {
    let harness = Harness::start(dialect, path).await;
    for (model, needle) in [
        ("up/midstream-error", "mock upstream broke mid-stream"),
        ("up/truncated", "before the answer was complete"),
    ] {
        let events = harness.events(request(model, "a b c")).await;
        let (last, before) = events.split_last().expect("events");
        let message = last
            .as_ref()
            .err()
            .map(|err| err.message.clone())
            .unwrap_or_default();
        assert!(message.contains(needle), "{model}: {message}");
        assert!(
            before.iter().all(Result::is_ok),
            "{model}: one error, at the end"
        );
    }
}

/// Dropping the stream closes the upstream connection.
pub async fn cancel(dialect: &str, path: &str) {
    let harness = Harness::start(dialect, path).await;
    let mut stream = harness
        .gateway
        .chat_stream(request("up/endless", "x"))
        .await
        .expect("stream");
    assert!(matches!(
        stream.next().await,
        Some(Ok(ChatEvent::Started { .. }))
    ));
    assert!(stream.next().await.is_some());
    drop(stream);
    tokio::time::timeout(
        Duration::from_secs(10),
        harness.upstream.state().wait_for_disconnects(1),
    )
    .await
    .expect("the upstream saw the disconnect within 10 s");
}

/// Expands to one test per conformance case for the adapter of `dialect`,
/// whose endpoint is the mock's address plus `path`.
#[macro_export]
macro_rules! adapter_conformance {
    ($dialect:expr, $path:expr) => {
        $crate::adapter_conformance!(@cases $dialect, $path;
            text, stream, usage, tools_round_trip, tool_stream, upstream_error, mid_stream_error, cancel);
    };
    (@cases $dialect:expr, $path:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::conformance::$case($dialect, $path).await;
            }
        )*
    };
}
