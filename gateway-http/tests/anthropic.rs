//! The Anthropic frontend and the anthropic adapter through the real binary:
//! Anthropic → mock, Anthropic → OpenAI upstream (translated), Anthropic →
//! Anthropic upstream (pass-through), OpenAI → Anthropic upstream
//! (translated).

mod support;

use serde_json::{Value, json};
use support::{Stack, UPSTREAM_SECRET, stable};

const WEATHER: &str = r#"{"name": "get_weather", "description": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}"#;

fn weather() -> Value {
    serde_json::from_str(WEATHER).expect("tool JSON")
}

#[tokio::test]
async fn anthropic_frontend_to_the_mock() {
    let stack = Stack::start().await;
    let response = stack
        .messages(json!({"model": "default", "max_tokens": 64, "system": "be brief", "messages": [{"role": "user", "content": "Hello there"}]}))
        .await;
    assert_eq!(response.status(), 200);
    insta::assert_snapshot!(response.text().await.expect("body"), @r#"{"id":"msg_mock-test-req-1","type":"message","role":"assistant","model":"echo","content":[{"type":"text","text":"Hello there"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":4,"output_tokens":2}}"#);
    let response = stack
        .messages(json!({"model": "default", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "Hello there"}]}))
        .await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    insta::assert_snapshot!(response.text().await.expect("body"));
}

#[tokio::test]
async fn anthropic_frontend_translated_to_an_openai_upstream() {
    let stack = Stack::start().await;
    let response = stack
        .messages(json!({
            "model": "up/gpt-test", "max_tokens": 99, "system": "be brief",
            "tools": [weather()],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Oslo?", "cache_control": {"type": "ephemeral"}}]}],
        }))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["content"][0]["type"], "tool_use");
    assert_eq!(
        body["content"][0]["input"],
        json!({"input": "Oslo?", "n": 0})
    );
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 3, "output_tokens": 0})
    );
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.headers["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );
    insta::assert_json_snapshot!(sent.body);
}

#[tokio::test]
async fn anthropic_stream_of_parallel_tool_calls_keeps_names_and_arguments() {
    let stack = Stack::start().await;
    let response = stack
        .messages(json!({
            "model": "up/parallel", "max_tokens": 50, "stream": true,
            "tools": [weather(), {"name": "get_time", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "Lima"}],
        }))
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    insta::assert_snapshot!(stable(&text));
    // The upstream was asked for usage, so the translated stream reports it.
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn anthropic_tool_results_reach_an_openai_upstream_paired_to_their_calls() {
    let stack = Stack::start().await;
    let response = stack
        .messages(json!({
            "model": "up/gpt-test", "max_tokens": 50, "tools": [weather()],
            "messages": [
                {"role": "user", "content": "Oslo?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 C"}]},
            ],
        }))
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["content"][0]["text"], "tool result was: 12 C");
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(sent.body["messages"][1]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(
        sent.body["messages"][2],
        json!({"role": "tool", "content": "12 C", "tool_call_id": "toolu_1"})
    );
}

#[tokio::test]
async fn anthropic_frontend_passes_through_to_an_anthropic_upstream() {
    let stack = Stack::start().await;
    let raw = r#"{"model":"claude/sonnet","max_tokens":10,"thinking":{"type":"enabled","budget_tokens":5},"system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}"#;
    let response = stack
        .client
        .post(stack.gateway.url("/v1/messages"))
        .header("x-api-key", "client-token-xyz")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "test-beta-1")
        .body(raw)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["id"], "msg_mock_0");
    assert_eq!(body["content"][0]["text"], "echo: hi");
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(
        sent.raw_body,
        raw.replace("claude/sonnet", "claude-test-upstream")
    );
    assert_eq!(sent.headers["x-api-key"], UPSTREAM_SECRET);
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(sent.headers["anthropic-beta"], "test-beta-1");
    assert!(!format!("{:?}", sent.headers).contains("client-token-xyz"));

    let response = stack
        .messages(json!({"model": "claude/sonnet", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "two words"}]}))
        .await;
    insta::assert_snapshot!(response.text().await.expect("body"));
    let response = stack
        .messages(json!({"model": "claude/error-429", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
}

#[tokio::test]
async fn openai_frontend_translated_to_an_anthropic_upstream() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({
            "model": "claude/sonnet",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
        }))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hi there");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], UPSTREAM_SECRET);
    assert_eq!(
        sent.body,
        json!({"model": "claude-test-upstream", "max_tokens": 4096, "system": "be brief", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}]})
    );

    let response = stack
        .chat(json!({
            "model": "claude/parallel", "stream": true, "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "messages": [{"role": "user", "content": "Lima"}],
        }))
        .await;
    assert_eq!(response.status(), 200);
    insta::assert_snapshot!(stable(&response.text().await.expect("body")));
}

#[tokio::test]
async fn errors_are_in_anthropic_shape() {
    let stack = Stack::start().await;
    let cases = [
        (
            "unknown model",
            json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "missing max_tokens (translated)",
            json!({"model": "default", "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "system role in messages",
            json!({"model": "default", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
        ),
        (
            "thinking blocks (translated)",
            json!({"model": "default", "max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}]}),
        ),
        (
            "upstream 500 (translated)",
            json!({"model": "up/error-500", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "upstream 429 (translated)",
            json!({"model": "up/error-429", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        ),
    ];
    let mut seen = Vec::new();
    for (label, body) in cases {
        let response = stack.messages(body).await;
        let status = response.status().as_u16();
        seen.push(format!(
            "{label} -> {status} {}",
            response.text().await.expect("body")
        ));
    }
    let response = stack.post("/v1/messages", "{not json").await;
    seen.push(format!(
        "malformed JSON -> {} {}",
        response.status().as_u16(),
        response.text().await.expect("body")
    ));
    let response = stack
        .chat(json!({"model": "claude/sonnet", "seed": 3, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    seen.push(format!(
        "OpenAI seed to an Anthropic backend -> {} {}",
        response.status().as_u16(),
        response.text().await.expect("body")
    ));
    insta::assert_snapshot!(seen.join("\n"));
}

#[tokio::test]
async fn mid_stream_errors_become_anthropic_error_events() {
    let stack = Stack::start().await;
    let response = stack
        .messages(json!({"model": "up/midstream-error", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "a b c"}]}))
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(text.ends_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"the upstream failed mid-stream: mock upstream broke mid-stream\"}}\n\n"), "{text}");
    assert!(!text.contains("message_stop"));
}

#[tokio::test]
async fn a_models_default_max_tokens_applies_when_the_caller_sets_none() {
    let stack = Stack::start().await;
    for (asked, sent) in [(None, 321), (Some(5), 5)] {
        let mut body =
            json!({"model": "claude/capped", "messages": [{"role": "user", "content": "x"}]});
        if let Some(asked) = asked {
            body["max_tokens"] = json!(asked);
        }
        assert_eq!(stack.chat(body).await.status(), 200);
        let request = stack
            .upstream
            .state()
            .requests()
            .pop()
            .expect("upstream request");
        assert_eq!(request.body["max_tokens"], sent, "asked {asked:?}");
    }
}

#[tokio::test]
async fn one_upstream_chunk_with_text_and_a_tool_call_keeps_both() {
    let stack = Stack::start().await;
    let text = stack
        .messages(json!({"model": "up/mixed", "max_tokens": 50, "stream": true, "tools": [weather()], "messages": [{"role": "user", "content": "Oslo"}]}))
        .await
        .text()
        .await
        .expect("body");
    let text_block = text
        .find(r#""delta":{"type":"text_delta","text":"Let me check. "}"#)
        .expect("the text survives");
    let tool_block = text
        .find(r#""content_block":{"type":"tool_use","id":"call_mock_0","name":"get_weather","input":{}}"#)
        .expect("the tool call keeps its name");
    assert!(text_block < tool_block);
    // The arguments arrive whole, in two fragments, on the tool's block.
    for fragment in [r#"{\"input\":\"O"#, r#"slo\",\"n\":0}"#] {
        let delta = format!(
            r#""index":1,"delta":{{"type":"input_json_delta","partial_json":"{fragment}"}}"#
        );
        assert!(text.contains(&delta), "{delta} in {text}");
    }
}
