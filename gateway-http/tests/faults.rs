//! Fault injection: the real binary in front of a loopback upstream that
//! fails in every way providers do. Each case runs through four cells (the
//! OpenAI, Anthropic and GenAI frontends passing through to their own
//! dialect, and the OpenAI frontend translated to Anthropic), each on a
//! fresh gateway and upstream, and pins per cell: upstream attempts, what
//! the client received, the breaker, and that every slot was released and
//! nothing panicked.

mod support;

use std::fmt::Write as _;

use mock_upstream::MockUpstream;
use serde_json::{Value, json};
use support::Modelgate;

/// The models every backend serves: each names a mock behaviour.
const MODELS: [&str; 13] = [
    "ok",
    "error-500",
    "error-502",
    "error-503",
    "error-429",
    "error-429-retry-after-1",
    "error-503-first-2",
    "bad-json",
    "truncated",
    "hang",
    "hang-mid",
    "reset",
    "midstream-error",
];

fn config(upstream: &str) -> String {
    let models: Vec<String> = MODELS
        .iter()
        .map(|model| format!("{{ id = \"{model}\" }}"))
        .collect();
    let models = models.join(", ");
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[reliability]
max_attempts = 3
backoff_base_ms = 1
backoff_max_ms = 5
max_retry_after_ms = 2000
first_byte_timeout_ms = 500
idle_timeout_ms = 500

[[backends]]
id = "oa"
dialect = "openai"
endpoint = "{upstream}/v1"
credential = {{ inline = "sk-up" }}
models = [{models}]

[[backends]]
id = "an"
dialect = "anthropic"
endpoint = "{upstream}"
credential = {{ inline = "sk-up" }}
models = [{models}]

[[backends]]
id = "ge"
dialect = "gemini"
endpoint = "{upstream}"
credential = {{ inline = "sk-up" }}
models = [{models}]

[aliases]
default = "oa/ok"
"#
    )
}

/// A client dialect talking to a backend.
#[derive(Debug, Clone, Copy)]
enum Cell {
    OpenAiPassThrough,
    OpenAiToAnthropic,
    AnthropicPassThrough,
    GenAiPassThrough,
}

const CELLS: [Cell; 4] = [
    Cell::OpenAiPassThrough,
    Cell::OpenAiToAnthropic,
    Cell::AnthropicPassThrough,
    Cell::GenAiPassThrough,
];

impl Cell {
    fn backend(self) -> &'static str {
        match self {
            Cell::OpenAiPassThrough => "oa",
            Cell::OpenAiToAnthropic | Cell::AnthropicPassThrough => "an",
            Cell::GenAiPassThrough => "ge",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cell::OpenAiPassThrough => "openai -> openai",
            Cell::OpenAiToAnthropic => "openai -> anthropic",
            Cell::AnthropicPassThrough => "anthropic -> anthropic",
            Cell::GenAiPassThrough => "genai -> gemini",
        }
    }

    fn request(
        self,
        client: &reqwest::Client,
        base: &str,
        model: &str,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let target = format!("{}/{model}", self.backend());
        let messages = json!([{"role": "user", "content": "hello there"}]);
        match self {
            Cell::OpenAiPassThrough | Cell::OpenAiToAnthropic => client
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"model": target, "messages": messages, "stream": stream})),
            Cell::AnthropicPassThrough => client
                .post(format!("{base}/v1/messages"))
                .header("anthropic-version", "2023-06-01")
                .json(&json!({"model": target, "max_tokens": 64, "messages": messages, "stream": stream})),
            Cell::GenAiPassThrough => {
                let method = if stream {
                    "streamGenerateContent?alt=sse"
                } else {
                    "generateContent"
                };
                client
                    .post(format!("{base}/v1beta/models/{target}:{method}"))
                    .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}))
            }
        }
    }
}

/// What one cell observed, as one line of the case's snapshot.
async fn run_cell(cell: Cell, model: &str, stream: bool) -> String {
    let upstream = MockUpstream::start().await.expect("mock upstream");
    let mut gateway = Modelgate::start(&config(&upstream.base_url())).await;
    let client = reqwest::Client::new();
    let response = cell
        .request(&client, &gateway.base, model, stream)
        .send()
        .await
        .expect("response");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(|value| format!(" retry-after={value}"))
        .unwrap_or_default();
    let body = response.text().await.expect("body");
    let attempts = upstream
        .state()
        .requests()
        .iter()
        .filter(|request| !request.path.starts_with("/_mock"))
        .count();
    let providers: Value = client
        .get(gateway.url("/v1/providers"))
        .send()
        .await
        .expect("providers")
        .json()
        .await
        .expect("providers json");
    let mut in_flight = Vec::new();
    let mut breaker = String::new();
    for provider in providers["data"].as_array().expect("providers list") {
        let concurrency = &provider["concurrency"];
        in_flight.push(concurrency["in_flight"].as_u64().unwrap_or(99));
        assert_eq!(concurrency["queued"], 0, "{provider}");
        if provider["id"] == cell.backend() {
            breaker = format!(
                "{} {}/{}",
                provider["health"].as_str().unwrap_or("?"),
                provider["breaker"]["state"].as_str().unwrap_or("?"),
                provider["breaker"]["consecutive_failures"]
            );
        }
    }
    assert!(
        in_flight.iter().all(|count| *count == 0),
        "{}: slots still held: {in_flight:?}",
        cell.name()
    );
    gateway.assert_healthy();
    format!(
        "{:<23} attempts={attempts} status={status}{retry_after} breaker=[{breaker}]\n    {}",
        cell.name(),
        summarise(&body, stream)
    )
}

/// The part of a body worth pinning: error bodies whole, answers by their
/// text, streams by their last event (ids and timestamps vary per run).
fn summarise(body: &str, stream: bool) -> String {
    if stream {
        let body = body.replace("\r\n", "\n");
        let events: Vec<&str> = body
            .split("\n\n")
            .map(str::trim)
            .filter(|event| !event.is_empty())
            .collect();
        let last = events.last().copied().unwrap_or("(no events)");
        return format!(
            "{} events, last: {}",
            events.len(),
            last.replace('\n', " | ")
        );
    }
    match serde_json::from_str::<Value>(body) {
        Ok(value) if value.get("error").is_some() || value["type"] == "error" => value.to_string(),
        Ok(value) => {
            let text = value["choices"][0]["message"]["content"]
                .as_str()
                .or_else(|| value["content"][0]["text"].as_str())
                .or_else(|| value["candidates"][0]["content"]["parts"][0]["text"].as_str())
                .unwrap_or("(no text)");
            format!("answer: {text}")
        }
        Err(_) => format!("not JSON: {body}"),
    }
}

async fn run_case(model: &str, stream: bool) -> String {
    let mut out = String::new();
    for cell in CELLS {
        let line = run_cell(cell, model, stream).await;
        let _ = writeln!(out, "{line}");
    }
    out
}

macro_rules! fault_case {
    ($name:ident, $model:expr, $stream:expr) => {
        #[tokio::test]
        async fn $name() {
            let seen = run_case($model, $stream).await;
            insta::assert_snapshot!(seen);
        }
    };
}

// Retryable statuses: retried up to max_attempts, then the client gets the
// upstream's status (pass-through) or 502 (translated); each failure counts
// towards the breaker.
fault_case!(status_500_is_retried_then_returned, "error-500", false);
fault_case!(status_502_is_retried_then_returned, "error-502", false);
fault_case!(status_503_is_retried_then_returned, "error-503", false);
// A 429 whose Retry-After is longer than max_retry_after_ms goes straight
// back with its Retry-After; a short one is waited out between attempts.
fault_case!(long_retry_after_is_passed_to_the_client, "error-429", false);
fault_case!(
    short_retry_after_is_waited_out,
    "error-429-retry-after-1",
    false
);
// Two failures, then success on the third attempt.
fault_case!(
    transient_failures_are_retried_to_success,
    "error-503-first-2",
    false
);
// Invalid JSON: pass-through returns it untouched; translation is a 502.
fault_case!(invalid_json_is_not_retried, "bad-json", false);
// No headers at all: the first-byte timeout, retried, then 504.
fault_case!(hang_before_headers_times_out_and_retries, "hang", false);
// A reset connection: retried, then 502.
fault_case!(connection_reset_is_retried, "reset", false);
// Streams: a failure before the first byte is an HTTP status, not a 200.
fault_case!(
    stream_failing_before_output_gets_a_status,
    "error-503",
    true
);
// Once output reached the client nothing is retried: the stream ends with
// the dialect's error event (translated) or as the upstream ended it.
fault_case!(truncated_stream_is_not_retried, "truncated", true);
fault_case!(stream_idle_gap_ends_with_a_timeout_event, "hang-mid", true);
fault_case!(midstream_error_is_not_retried, "midstream-error", true);
