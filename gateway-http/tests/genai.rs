//! The GenAI frontend and the gemini adapter through the real binary.

mod support;

use serde_json::{Value, json};
use support::{Stack, UPSTREAM_SECRET, stable};

fn contents(text: &str) -> Value {
    json!([{ "role": "user", "parts": [{ "text": text }] }])
}

#[tokio::test]
async fn genai_frontend_to_the_mock() {
    let stack = Stack::start().await;
    let response = stack
        .genai("default:generateContent", json!({"contents": contents("Hello there"), "systemInstruction": {"parts": [{"text": "be brief"}]}}))
        .await;
    assert_eq!(response.status(), 200);
    insta::assert_snapshot!(response.text().await.expect("body"), @r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello there"}]},"finishReason":"STOP","index":0}],"modelVersion":"echo","responseId":"mock-test-req-1","usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"totalTokenCount":6}}"#);
    let response = stack
        .genai(
            "default:streamGenerateContent?alt=sse",
            json!({"contents": contents("Hello there")}),
        )
        .await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    insta::assert_snapshot!(response.text().await.expect("body"));
}

#[tokio::test]
async fn model_names_with_slashes_resolve_encoded_or_not() {
    let stack = Stack::start().await;
    for path in [
        "up/gpt-test:generateContent",
        "up%2Fgpt-test:generateContent",
        "models/up/gpt-test:generateContent",
    ] {
        let response = stack
            .genai(path, json!({"contents": contents("slash")}))
            .await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body["candidates"][0]["content"]["parts"][0]["text"], "echo: slash",
            "{path}"
        );
    }
}

#[tokio::test]
async fn genai_translated_to_an_openai_upstream_with_tools() {
    let stack = Stack::start().await;
    let response = stack
        .genai(
            "up/parallel:streamGenerateContent?alt=sse",
            json!({
                "contents": contents("Lima"),
                "tools": [{"functionDeclarations": [
                    {"name": "get_weather", "parameters_json_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "get_time", "parameters": {"type": "OBJECT"}}
                ]}],
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    insta::assert_snapshot!(stable(&response.text().await.expect("body")));
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(
        sent.body["tools"][1]["function"]["parameters"],
        json!({"type": "object"})
    );
}

#[tokio::test]
async fn genai_function_responses_pair_with_made_up_ids() {
    let stack = Stack::start().await;
    let response = stack
        .genai(
            "fast:generateContent",
            json!({"contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}, {"functionCall": {"name": "get_time", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_time", "response": {"t": "noon"}}}, {"functionResponse": {"name": "get_weather", "response": {"c": 12}}}]},
            ]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    insta::assert_json_snapshot!(sent.body["messages"]);
}

#[tokio::test]
async fn genai_passes_through_to_a_gemini_upstream() {
    let stack = Stack::start().await;
    let raw = r#"{"contents":[{"role":"user","parts":[{"text":"native"}]}],"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}]}"#;
    let response = stack
        .client
        .post(
            stack
                .gateway
                .url("/v1beta/models/gem/flash:generateContent?key=client-token-xyz"),
        )
        .body(raw)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        "echo: native"
    );
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-test-upstream:generateContent"
    );
    assert_eq!(sent.raw_body, raw);
    assert_eq!(sent.headers["x-goog-api-key"], UPSTREAM_SECRET);
    assert!(!format!("{:?}", sent.headers).contains("client-token-xyz"));

    let response = stack
        .genai(
            "gem/flash:streamGenerateContent?alt=sse",
            json!({"contents": contents("two words")}),
        )
        .await;
    insta::assert_snapshot!(response.text().await.expect("body"));
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-test-upstream:streamGenerateContent?alt=sse"
    );
}

#[tokio::test]
async fn openai_and_anthropic_clients_reach_a_gemini_backend() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({"model": "gem/flash", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "from openai"}]}))
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: from openai"
    );
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(
        sent.body["systemInstruction"],
        json!({"parts": [{"text": "sys"}]})
    );

    let response = stack
        .messages(json!({"model": "gem/parallel", "max_tokens": 20, "stream": true, "tools": [{"name": "f", "input_schema": {"type": "object"}}], "messages": [{"role": "user", "content": "go"}]}))
        .await;
    let text = response.text().await.expect("body");
    assert!(
        text.contains(r#""content_block":{"type":"tool_use","id":"call_resp-mock-"#),
        "{text}"
    );
    assert!(
        text.contains(r#""partial_json":"{\"input\":\"go\",\"n\":1}""#),
        "{text}"
    );
}

#[tokio::test]
async fn count_tokens_asks_upstreams_that_can_count_and_estimates_otherwise() {
    let stack = Stack::start().await;
    let body = json!({"contents": contents("one two three four")});
    let mut seen = Vec::new();
    for model in ["default", "gem/flash", "claude/sonnet", "up/gpt-test"] {
        let response = stack
            .genai(&format!("{model}:countTokens"), body.clone())
            .await;
        assert_eq!(response.status(), 200, "{model}");
        let how = response
            .headers()
            .get("x-modelgate-token-count")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        seen.push(format!(
            "{model}: {} {how:?}",
            response.text().await.expect("body")
        ));
    }
    insta::assert_snapshot!(seen.join("\n"), @r#"
    default: {"totalTokens":4} Some("upstream")
    gem/flash: {"totalTokens":4} None
    claude/sonnet: {"totalTokens":4} Some("upstream")
    up/gpt-test: {"totalTokens":10} Some("estimate")
    "#);
}

#[tokio::test]
async fn errors_are_in_google_shape() {
    let stack = Stack::start().await;
    let mut seen = Vec::new();
    for (path, body) in [
        ("nope:generateContent", json!({"contents": contents("x")})),
        ("default:embedContent", json!({"contents": contents("x")})),
        ("default:generateContent", json!({})),
        (
            "up/error-429:generateContent",
            json!({"contents": contents("x")}),
        ),
        (
            "up/error-500:generateContent",
            json!({"contents": contents("x")}),
        ),
        (
            "default:generateContent",
            json!({"contents": contents("x"), "tools": [{"codeExecution": {}}]}),
        ),
        (
            "bad%FFutf8:generateContent",
            json!({"contents": contents("x")}),
        ),
    ] {
        let response = stack.genai(path, body).await;
        seen.push(format!(
            "{path} -> {} {}",
            response.status().as_u16(),
            response.text().await.expect("body")
        ));
    }
    let response = stack
        .genai(
            "up/midstream-error:streamGenerateContent?alt=sse",
            json!({"contents": contents("a b c")}),
        )
        .await;
    let text = response.text().await.expect("body");
    seen.push(format!(
        "mid-stream -> {}",
        text.lines()
            .rev()
            .find(|line| !line.is_empty())
            .unwrap_or_default()
    ));
    insta::assert_snapshot!(seen.join("\n"));
}

#[tokio::test]
async fn google_style_model_listing() {
    let stack = Stack::start().await;
    for request in [
        stack.client.get(stack.gateway.url("/v1beta/models")),
        stack
            .client
            .get(stack.gateway.url("/v1/models"))
            .header("x-goog-api-key", "k"),
        stack.client.get(stack.gateway.url("/v1/models?key=k")),
    ] {
        let body: Value = request
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert_eq!(body["models"][0]["name"], "models/default");
    }
    let body: Value = stack
        .client
        .get(stack.gateway.url("/v1beta/models/up/gpt-test"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["name"], "models/up/gpt-test");
}

#[tokio::test]
async fn genai_translated_to_an_anthropic_upstream() {
    let stack = Stack::start().await;
    let response = stack
        .genai(
            "claude/parallel:streamGenerateContent?alt=sse",
            json!({
                "contents": contents("Lima"),
                "systemInstruction": {"parts": [{"text": "sys"}]},
                "generationConfig": {"maxOutputTokens": 77},
                "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters_json_schema": {"type": "object"}}]}],
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(text.contains(r#"{"functionCall":{"id":"toolu_mock_1","name":"get_weather","args":{"input":"Lima","n":1}}}"#), "{text}");
    let sent = stack
        .upstream
        .state()
        .requests()
        .pop()
        .expect("upstream request");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["system"], "sys");
    assert_eq!(sent.body["max_tokens"], 77);
    assert_eq!(
        sent.body["tools"][0]["input_schema"],
        json!({"type": "object"})
    );
}
