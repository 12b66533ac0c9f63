//! End-to-end tests of the real `modelgate` binary in front of a loopback
//! OpenAI-compatible upstream.

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use support::{Stack, UPSTREAM_SECRET, stable};

fn user(text: &str) -> Value {
    json!([{ "role": "user", "content": text }])
}

#[tokio::test]
async fn mock_backend_echoes_without_a_stream() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({"model": "default", "messages": user("Hello there, gateway!")}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "test-req-1");
    let body = response.text().await.expect("body");
    insta::assert_snapshot!(stable(&body), @r#"{"id":"chatcmpl-mock-test-req-1","object":"chat.completion","created":0,"model":"echo","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, gateway!","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}"#);
}

#[tokio::test]
async fn mock_backend_streams_openai_chunks() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({
            "model": "default",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": user("Hello there, gateway!"),
        }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    insta::assert_snapshot!(stable(&response.text().await.expect("body")));
}

#[tokio::test]
async fn mock_backend_tool_call_streams_as_deltas() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({
            "model": "mock/echo",
            "stream": true,
            "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "messages": user("Paris"),
        }))
        .await;
    assert_eq!(response.status(), 200);
    insta::assert_snapshot!(stable(&response.text().await.expect("body")));
}

#[tokio::test]
async fn openai_backend_is_passed_through_with_only_the_model_rewritten() {
    let stack = Stack::start().await;
    let raw = r#"{"model":"fast","messages":[{"role":"user","content":"ping"}],"temperature":0.5,"x_vendor_knob":{"a":[1,2]}}"#;
    let response = stack.post("/v1/chat/completions", raw).await;
    assert_eq!(response.status(), 200);
    // The upstream's length comes along, so the answer is not re-framed as
    // chunks.
    let length = response.headers()["content-length"].clone();
    assert!(!response.headers().contains_key("transfer-encoding"));
    let bytes = response.bytes().await.expect("body");
    assert_eq!(length, bytes.len().to_string().as_str());
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    // The upstream's own id and unknown fields survive.
    assert_eq!(body["id"], "chatcmpl-mock-0");
    assert_eq!(body["x_mock_extra"], json!({"kept": true}));
    assert_eq!(body["choices"][0]["message"]["content"], "echo: ping");
    assert_eq!(body["usage"]["prompt_tokens"], 1);

    let received = stack.upstream.state().requests();
    assert_eq!(received.len(), 1);
    let upstream = &received[0];
    assert_eq!(upstream.path, "/v1/chat/completions");
    assert_eq!(
        upstream.raw_body,
        raw.replace(r#""model":"fast""#, r#""model":"gpt-test-upstream""#)
    );
    assert_eq!(
        upstream.headers["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );
    assert!(!format!("{:?}", upstream.headers).contains("client-token-xyz"));
}

/// A body past `SPLICE_FROM` goes out as pieces (the caller's bytes
/// around the new model name) in one vectored write: the upstream must
/// still see exactly the caller's bytes with only `model` changed, with
/// `model` in the middle of the body and the length to match.
#[tokio::test]
async fn a_long_body_is_passed_through_with_only_the_model_rewritten() {
    let stack = Stack::start().await;
    let prompt = r"long prompt \u00e9 ".repeat(4096);
    let raw = format!(
        r#"{{"messages":[{{"role":"user","content":"{prompt}"}}],"model" : "fast","temperature":0.5}}"#
    );
    assert!(raw.len() > gateway_core::body::SPLICE_FROM);
    let response = stack.post("/v1/chat/completions", raw.clone()).await;
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|echo| echo.starts_with("echo: long prompt é long prompt é")),
        "{body}"
    );
    let received = stack.upstream.state().requests();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].raw_body,
        raw.replace(r#""model" : "fast""#, r#""model" : "gpt-test-upstream""#)
    );
    assert_eq!(
        received[0].headers["content-length"],
        received[0].raw_body.len().to_string()
    );
}

#[tokio::test]
async fn openai_backend_stream_is_passed_through_byte_for_byte() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({
            "model": "up/gpt-test",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": user("two words"),
        }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    insta::assert_snapshot!(response.text().await.expect("body"));
}

#[tokio::test]
async fn parallel_tool_calls_stream_through_in_order() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({
            "model": "up/parallel",
            "stream": true,
            "tools": [
                {"type": "function", "function": {"name": "first", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "second", "parameters": {"type": "object"}}}
            ],
            "messages": user("go"),
        }))
        .await;
    let text = response.text().await.expect("body");
    let first = text.find(r#""name":"first""#).expect("first call");
    let second = text.find(r#""name":"second""#).expect("second call");
    assert!(first < second);
    assert!(text.contains(r#""finish_reason":"tool_calls""#));
}

#[tokio::test]
async fn upstream_errors_keep_their_status_in_pass_through() {
    let stack = Stack::start().await;
    for (model, status) in [
        ("up/error-400", 400),
        ("up/error-401", 401),
        ("up/error-500", 500),
        ("up/error-503", 503),
    ] {
        let response = stack
            .chat(json!({"model": model, "messages": user("x")}))
            .await;
        assert_eq!(response.status(), status, "{model}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body["error"]["message"],
            format!("mock upstream failure {status}"),
            "{model}"
        );
    }
    let response = stack
        .chat(json!({"model": "up/error-429", "messages": user("x")}))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_in_openai_shape() {
    let stack = Stack::start().await;
    for stream in [false, true] {
        let response = stack
            .chat(json!({"model": "dead/gone", "stream": stream, "messages": user("x")}))
            .await;
        assert_eq!(response.status(), 502, "stream={stream}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["type"], "api_error");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("cannot connect to the upstream"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn mid_stream_upstream_error_reaches_the_client() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({"model": "up/midstream-error", "stream": true, "messages": user("a b c")}))
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(
        text.contains(r#"data: {"error":{"message":"mock upstream broke mid-stream""#),
        "{text}"
    );
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn every_routing_form_reaches_its_backend() {
    let stack = Stack::start().await;
    let cases = [
        ("fast", "gpt-test-upstream"),
        ("up/gpt-test", "gpt-test-upstream"),
        ("up.gpt-test", "gpt-test-upstream"),
        ("gpt-test", "gpt-test-upstream"),
        ("gpt-3.5-turbo", "gpt-3.5-turbo"),
        ("up.gpt-3.5-turbo", "gpt-3.5-turbo"),
        ("twin/shared", "shared"),
    ];
    for (name, upstream_model) in cases {
        let response = stack
            .chat(json!({"model": name, "messages": user("route me")}))
            .await;
        assert_eq!(response.status(), 200, "{name}");
        let received = stack.upstream.state().requests();
        let last = received.last().expect("a request reached the upstream");
        assert_eq!(last.body["model"], upstream_model, "{name}");
    }
    let response = stack
        .chat(json!({"model": "default", "messages": user("mock")}))
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "mock");
}

#[tokio::test]
async fn routing_errors_are_openai_errors() {
    let stack = Stack::start().await;
    let mut seen = Vec::new();
    for name in ["shared", "gpt-tset", "up/nope", ""] {
        let response = stack
            .chat(json!({"model": name, "messages": user("x")}))
            .await;
        let status = response.status().as_u16();
        seen.push(format!(
            "{name:?} -> {status} {}",
            response.text().await.expect("body")
        ));
    }
    insta::assert_snapshot!(seen.join("\n"));
}

#[tokio::test]
async fn bad_input_gets_clear_openai_errors() {
    let stack = Stack::start().await;
    let too_big = format!(
        r#"{{"model":"default","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(33 * 1024 * 1024)
    );
    let cases: Vec<(&str, String)> = vec![
        ("empty body", String::new()),
        ("malformed JSON", "{\"model\": \"default\",".into()),
        ("not an object", "[1,2]".into()),
        ("missing model", r#"{"messages":[]}"#.into()),
        ("model not a string", r#"{"model":42,"messages":[]}"#.into()),
        (
            "stream not a bool",
            r#"{"model":"default","stream":"yes","messages":[]}"#.into(),
        ),
        (
            "messages missing (translated)",
            r#"{"model":"default"}"#.into(),
        ),
        (
            "messages wrong type (translated)",
            r#"{"model":"default","messages":"hi"}"#.into(),
        ),
        (
            "bad role (translated)",
            r#"{"model":"default","messages":[{"role":"wizard","content":"x"}]}"#.into(),
        ),
        ("body too large", too_big),
    ];
    let mut seen = Vec::new();
    for (label, body) in cases {
        let response = stack.post("/v1/chat/completions", body).await;
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{label}: {status}");
        seen.push(format!(
            "{label} -> {status} {}",
            response.text().await.expect("body")
        ));
    }
    insta::assert_snapshot!(seen.join("\n"));
}

#[tokio::test]
async fn unknown_paths_and_methods_are_openai_errors() {
    let stack = Stack::start().await;
    let response = stack
        .client
        .get(stack.gateway.url("/v1/nothing"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["error"]["message"],
        "no route for GET /v1/nothing; see the README for the HTTP surface"
    );
    let response = stack
        .client
        .get(stack.gateway.url("/v1/chat/completions"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["error"]["message"],
        "GET is not allowed on /v1/chat/completions"
    );
}

#[tokio::test]
async fn project_prefix_serves_every_route() {
    let stack = Stack::start().await;
    let response = stack
        .post(
            "/api/team-a/v1/chat/completions",
            json!({"model": "default", "messages": user("hi")}).to_string(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "hi");
    for path in [
        "/api/team-a/health",
        "/api/team-a/v1/models",
        "/api/team-a/v1/providers",
    ] {
        let response = stack
            .client
            .get(stack.gateway.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn listings_show_names_and_no_secrets() {
    let stack = Stack::start().await;
    let models: Value = stack
        .client
        .get(stack.gateway.url("/v1/models"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(&ids[..4], ["default", "fast", "mock/echo", "up/gpt-test"]);
    assert!(ids.contains(&"twin/shared"));

    let providers = stack
        .client
        .get(stack.gateway.url("/v1/providers"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(!providers.contains(UPSTREAM_SECRET));
    let providers: Value = serde_json::from_str(&providers).expect("json");
    let up = &providers["data"][1];
    assert_eq!(up["id"], "up");
    assert_eq!(up["credential"], "inline");
    assert_eq!(
        up["models"][0],
        json!({"id": "gpt-test", "upstream": "gpt-test-upstream"})
    );

    let health: Value = stack
        .client
        .get(stack.gateway.url("/health"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(health, json!({"status": "ok"}));
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let stack = Stack::start().await;
    let response = stack
        .chat(json!({"model": "up/endless", "stream": true, "messages": user("forever")}))
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("bytes");
    assert!(first.starts_with(b"data: "));
    drop(body);
    tokio::time::timeout(
        Duration::from_secs(10),
        stack.upstream.state().wait_for_disconnects(1),
    )
    .await
    .expect("the upstream stream was not cancelled within 10 s");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut stack = Stack::start().await;
    let pid = stack.gateway.child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), stack.gateway.child.wait())
        .await
        .expect("exit within 10 s")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_or_goes_quiet_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = "[server]\nlisten = \"127.0.0.1:0\"\nheader_timeout_ms = 200\n\n\
        [[backends]]\nid = \"mock\"\ndialect = \"mock\"\nmodels = [{ id = \"echo\" }]\n\n\
        [aliases]\ndefault = \"mock/echo\"\n";
    let mut gateway = support::Modelgate::start(config).await;
    let address = gateway.base.trim_start_matches("http://").to_owned();
    let mut half = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let mut quiet = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    quiet
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut received = Vec::new();
    for socket in [&mut half, &mut quiet] {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest))
            .await
            .expect("the gateway closed the connection within 10 s")
            .expect("read");
        received.push(String::from_utf8_lossy(&rest).into_owned());
    }
    // No answer to half a head; the quiet connection got its answer, then
    // was closed.
    assert_eq!(received[0], "");
    assert!(
        received[1].starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        received[1]
    );
    assert!(
        received[1].ends_with("{\"status\":\"ok\"}"),
        "{}",
        received[1]
    );
    let health = reqwest::get(gateway.url("/health")).await.expect("health");
    assert_eq!(health.status(), 200);
    gateway.assert_healthy();
}

#[tokio::test]
async fn sigterm_cuts_streams_still_open_after_the_grace_period() {
    let upstream = mock_upstream::MockUpstream::start()
        .await
        .expect("mock upstream");
    let config = support::config_for(&upstream.base_url(), support::closed_port()).replacen(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\nshutdown_grace_ms = 200",
        1,
    );
    let mut gateway = support::Modelgate::start(&config).await;
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({"model": "up/endless", "stream": true, "messages": user("x")}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.expect("a chunk").expect("no error");
    assert!(first.starts_with(b"data: "), "{first:?}");
    let pid = gateway.child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // Without the grace period the endless stream would keep the gateway
    // up for ever.
    let exit = tokio::time::timeout(Duration::from_secs(10), gateway.child.wait())
        .await
        .expect("exit within 10 s")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the client's stream was not cut");
    assert!(
        gateway
            .stderr()
            .contains("requests still in flight after the 200 ms shutdown grace period are cut"),
        "{}",
        gateway.stderr()
    );
}
