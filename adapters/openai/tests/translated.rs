//! What the OpenAI adapter sends upstream, exactly, and how it is built;
//! the behaviour every adapter shares is in `conformance.rs`.

use futures::StreamExt;
use gateway_core::config::{Format, parse_str};
use gateway_core::gateway::MissingCredential;
use gateway_core::{
    ChatEvent, ChatRequest, FinishReason, Gateway, GatewayError, Message, Registry, Role, Tool,
    ToolChoice, Usage,
};
use mock_upstream::MockUpstream;
use serde_json::json;

async fn setup() -> (MockUpstream, Gateway) {
    // Naming the crate keeps its inventory registration linked in.
    assert_eq!(adapter_openai::DIALECT, "openai");
    let upstream = MockUpstream::start().await.expect("mock upstream");
    let text = format!(
        r#"
        [[backends]]
        id = "up"
        dialect = "openai"
        endpoint = "{}/v1/"
        credential = {{ env = "TEST_UPSTREAM_KEY" }}
        models = [{{ id = "m", upstream = "gpt-test" }}, {{ id = "parallel" }}, {{ id = "endless" }},
                  {{ id = "midstream-error" }}, {{ id = "truncated" }}, {{ id = "bad-json" }},
                  {{ id = "error-400" }}, {{ id = "error-401" }}, {{ id = "error-429" }}, {{ id = "error-500" }}]

        [[backends]]
        id = "dead"
        dialect = "openai"
        endpoint = "http://127.0.0.1:9/v1"
        models = [{{ id = "gone" }}]

        [aliases]
        default = "up/m"
        "#,
        upstream.base_url()
    );
    let config = parse_str(&text, Format::Toml, "test").expect("valid config");
    let env = |name: &str| (name == "TEST_UPSTREAM_KEY").then(|| "sk-test".to_owned());
    let (gateway, warnings) = Gateway::build(
        &config,
        &Registry::builtin(),
        &env,
        MissingCredential::Fail,
        "test",
    )
    .expect("gateway builds");
    assert!(warnings.is_empty());
    (upstream, gateway)
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

fn tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        description: None,
        parameters: json!({"type": "object"}),
        strict: None,
    }
}

async fn events(gateway: &Gateway, req: ChatRequest) -> Vec<Result<ChatEvent, GatewayError>> {
    gateway
        .chat_stream(req)
        .await
        .expect("stream starts")
        .collect()
        .await
}

#[tokio::test]
async fn text_answer_and_upstream_request() {
    let (upstream, gateway) = setup().await;
    let response = gateway
        .chat_once(request("default", "hi there"))
        .await
        .expect("answer");
    assert_eq!(response.text, "echo: hi there");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Some(Usage {
            input: 4,
            output: 3,
            cached: None
        })
    );
    let sent = &upstream.state().requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test");
    assert_eq!(
        sent.body,
        json!({"model": "gpt-test", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]})
    );
}

#[tokio::test]
async fn stream_asks_for_usage_and_ends_with_finished() {
    let (upstream, gateway) = setup().await;
    let events: Vec<ChatEvent> = events(&gateway, request("up/m", "a b"))
        .await
        .into_iter()
        .map(|event| event.expect("event"))
        .collect();
    assert!(
        matches!(&events[0], ChatEvent::Started { backend, model, .. } if backend == "up" && model == "gpt-test")
    );
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "echo: a b");
    assert_eq!(
        events[events.len() - 2],
        ChatEvent::Usage(Usage {
            input: 4,
            output: 3,
            cached: None
        })
    );
    assert_eq!(
        events[events.len() - 1],
        ChatEvent::Finished {
            reason: FinishReason::Stop
        }
    );
    let sent = &upstream.state().requests()[0];
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn tool_calls_once_and_streamed_keep_order() {
    let (upstream, gateway) = setup().await;
    let mut req = request("up/parallel", "weather");
    req.tools = vec![tool("first"), tool("second")];
    req.tool_choice = Some(ToolChoice::Auto);
    let once = gateway.chat_once(req.clone()).await.expect("answer");
    let streamed = Gateway::collect(gateway.chat_stream(req).await.expect("stream"))
        .await
        .expect("collected");
    for response in [&once, &streamed] {
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        let names: Vec<&str> = response
            .tool_calls
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(
            response.tool_calls[1].arguments,
            r#"{"input":"weather","n":1}"#
        );
        assert_eq!(response.tool_calls[0].id, "call_mock_0");
    }
    let sent = &upstream.state().requests()[0];
    assert_eq!(
        sent.body["tools"][0],
        json!({"type": "function", "function": {"name": "first", "parameters": {"type": "object"}}})
    );
    assert_eq!(sent.body["tool_choice"], "auto");
}

#[tokio::test]
async fn broken_upstreams_are_502s() {
    let (_upstream, gateway) = setup().await;
    let err = gateway
        .chat_once(request("up/bad-json", "x"))
        .await
        .expect_err("bad json");
    assert_eq!(err.status(), 502);
    assert!(
        err.message
            .starts_with("the upstream's answer is not a chat completion"),
        "{}",
        err.message
    );
    let err = gateway
        .chat_once(request("dead/gone", "x"))
        .await
        .expect_err("refused");
    assert_eq!((err.status(), err.retryable), (502, true));
}

#[test]
fn missing_env_credential_fails_at_build_or_warns_for_validate() {
    let config = parse_str(
        r#"
        [[backends]]
        id = "up"
        dialect = "openai"
        endpoint = "http://127.0.0.1:9/v1"
        credential = { env = "MODELGATE_TEST_UNSET_VAR" }
        models = [{ id = "m" }]
        [aliases]
        default = "up/m"
        "#,
        Format::Toml,
        "test.toml",
    )
    .expect("valid");
    let env = |_: &str| None;
    let err = Gateway::build(
        &config,
        &Registry::builtin(),
        &env,
        MissingCredential::Fail,
        "test.toml",
    )
    .expect_err("fails");
    assert_eq!(
        err.to_string(),
        "test.toml has 1 error:\n  test.toml: backends[0].credential.env: environment variable MODELGATE_TEST_UNSET_VAR is not set (backend 'up' reads its credential from it)"
    );
    let (_, warnings) = Gateway::build(
        &config,
        &Registry::builtin(),
        &env,
        MissingCredential::Warn,
        "test.toml",
    )
    .expect("builds with a warning");
    assert_eq!(warnings.len(), 1);
}

#[test]
fn missing_endpoint_is_a_build_error_naming_the_field() {
    let config = parse_str(
        "[[backends]]\nid = \"up\"\ndialect = \"openai\"\nmodels = [{ id = \"m\" }]\n[aliases]\ndefault = \"up/m\"\n",
        Format::Toml,
        "t",
    )
    .expect("valid");
    let err = Gateway::build(
        &config,
        &Registry::builtin(),
        &|_| None,
        MissingCredential::Fail,
        "t",
    )
    .expect_err("fails");
    assert_eq!(err.issues[0].path.to_string(), "backends[0].endpoint");
}
