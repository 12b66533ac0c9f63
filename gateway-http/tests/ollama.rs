//! Every frontend to an Ollama backend through the real binary.

mod support;

use serde_json::{Value, json};
use support::Stack;

#[tokio::test]
async fn openai_frontend_to_ollama() {
    let stack = Stack::start().await;
    let body: Value = stack
        .chat(json!({"model": "local/llama", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi there"}]}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hi there");
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(sent.path, "/api/chat");
    assert_eq!(sent.body["model"], "llama-test-upstream");
    assert_eq!(sent.body["stream"], false);

    let text = stack
        .chat(json!({"model": "local/parallel", "stream": true, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], "messages": [{"role": "user", "content": "go"}]}))
        .await
        .text()
        .await
        .expect("body");
    assert!(text.contains(r#""tool_calls":[{"index":1,"id":"call_test-req-1_1","type":"function","function":{"name":"f","arguments":"{\"input\":\"go\",\"n\":1}"}}]"#), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn tool_results_go_back_to_ollama_with_their_tool_name() {
    let stack = Stack::start().await;
    let body: Value = stack
        .chat(json!({"model": "local/llama", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_x", "content": "12 C"}
        ]}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "tool result was: 12 C"
    );
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(
        sent.body["messages"][2],
        json!({"role": "tool", "content": "12 C", "tool_name": "get_weather"})
    );
}

#[tokio::test]
async fn anthropic_and_genai_frontends_to_ollama() {
    let stack = Stack::start().await;
    let body: Value = stack
        .messages(json!({"model": "local/llama", "max_tokens": 20, "messages": [{"role": "user", "content": "from claude"}]}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["content"][0]["text"], "echo: from claude");
    assert_eq!(body["usage"]["input_tokens"], 2);
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(sent.body["options"], json!({"num_predict": 20}));

    let text = stack
        .genai(
            "local/llama:streamGenerateContent?alt=sse",
            json!({"contents": [{"role": "user", "parts": [{"text": "from gemini"}]}]}),
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(text.starts_with("data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"echo: \"}]}"), "{text}");
    assert!(text.contains("\"finishReason\":\"STOP\""), "{text}");
}

#[tokio::test]
async fn forcing_a_tool_on_ollama_is_a_clear_400() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({"model": "local/llama", "tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f"}}], "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["error"]["message"],
        "'tool_choice (forcing a tool call)' is not supported by backend 'local' (dialect ollama); remove it or route to a backend that supports it"
    );
}
