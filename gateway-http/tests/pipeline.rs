//! The pipeline stages through the real binary: app keys and allowlists,
//! rate, token and concurrency limits, output caps, body and stream
//! guards, breakers, backend concurrency and queues, fallback and weighted
//! aliases, and slots released when clients go away.

mod support;

use std::time::Duration;

use futures::StreamExt;
use mock_upstream::MockUpstream;
use serde_json::{Value, json};
use support::Modelgate;

/// SHA-256 of `tok-alpha`, `tok-limited`, `tok-slow`, `tok-capped`, `tok-tpm`.
const ALPHA: &str = "e11361fb9f6d4b928dbae73fe5f088492963bf15f51bd2ccb03419e0f029c061";
const LIMITED: &str = "a928aea21160b836c679afa38fd4d0d44539ea87e92652390ba70ab75ae98fc0";
const SLOW: &str = "2c71d4e59198d487b70b7bb9bf5ab8f00c16b5149b444dc95ca050cf14f9936e";
const CAPPED: &str = "70e2a99b45f771f6729ed173d830a0d24ddef11fb1de1ada94d649def73732b1";
const TPM: &str = "7df3db58133946b556cf87c00543e2c7e7513ebb6c36a5345c658736499c8341";

fn config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[reliability]
backoff_base_ms = 1
backoff_max_ms = 5
max_retry_after_ms = 1000

[[backends]]
id = "mock"
dialect = "mock"
models = [{{ id = "echo" }}]

[[backends]]
id = "up"
dialect = "openai"
endpoint = "{upstream}/v1"
models = [{{ id = "gpt-test" }}, {{ id = "endless" }}, {{ id = "error-500" }}, {{ id = "error-503" }}, {{ id = "midstream-error" }}]

[[backends]]
id = "up2"
dialect = "openai"
endpoint = "{upstream}/v1"
models = [{{ id = "gpt-test", upstream = "gpt-test-two" }}, {{ id = "error-500" }}]
reliability = {{ breaker_failures = 2, max_attempts = 1, breaker_cooldown_ms = 600000 }}

[[backends]]
id = "an"
dialect = "anthropic"
endpoint = "{upstream}"
models = [{{ id = "sonnet" }}, {{ id = "small", max_output_tokens = 20 }}, {{ id = "endless" }}]

[[backends]]
id = "ge"
dialect = "gemini"
endpoint = "{upstream}"
models = [{{ id = "flash" }}]

[[backends]]
id = "narrow"
dialect = "openai"
endpoint = "{upstream}/v1"
models = [{{ id = "gpt-test" }}, {{ id = "endless" }}]
reliability = {{ max_concurrent = 1, max_queue = 1, queue_timeout_ms = 30000 }}

[[backends]]
id = "brk"
dialect = "openai"
endpoint = "{upstream}/v1"
models = [{{ id = "error-500" }}, {{ id = "gpt-test" }}]
reliability = {{ breaker_failures = 2, breaker_cooldown_ms = 300, max_attempts = 1 }}

[[backends]]
id = "short"
dialect = "openai"
endpoint = "{upstream}/v1"
models = [{{ id = "endless" }}]
reliability = {{ total_timeout_ms = 400 }}

[aliases]
default = "mock/echo"
chain = {{ fallback = ["up/error-503", "an/sonnet"] }}
chain-after-output = {{ fallback = ["up/midstream-error", "an/sonnet"] }}
spread = {{ weighted = [{{ target = "up/gpt-test", weight = 1 }}, {{ target = "up2/gpt-test", weight = 1 }}] }}
{extra}
"#
    )
}

struct Rig {
    upstream: MockUpstream,
    gateway: Modelgate,
    client: reqwest::Client,
}

fn user() -> Value {
    json!([{"role": "user", "content": "hello there"}])
}

impl Rig {
    async fn start(extra: &str) -> Self {
        Self::start_logging(extra, "warn").await
    }

    async fn start_logging(extra: &str, level: &str) -> Self {
        let upstream = MockUpstream::start().await.expect("mock upstream");
        let gateway = Modelgate::start_logging(&config(&upstream.base_url(), extra), level).await;
        Self {
            upstream,
            gateway,
            client: reqwest::Client::new(),
        }
    }

    async fn chat(&self, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.gateway.url("/v1/chat/completions"))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("chat")
    }

    async fn messages(&self, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.gateway.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .json(&body);
        if let Some(token) = token {
            request = request.header("x-api-key", token);
        }
        request.send().await.expect("messages")
    }

    async fn genai(&self, token: Option<&str>, model: &str, body: Value) -> reqwest::Response {
        let mut url = self
            .gateway
            .url(&format!("/v1beta/models/{model}:generateContent"));
        if let Some(token) = token {
            url.push_str(&format!("?key={token}"));
        }
        self.client
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("genai")
    }

    async fn providers(&self) -> Vec<Value> {
        let listing: Value = self
            .client
            .get(self.gateway.url("/v1/providers"))
            .bearer_auth("tok-alpha")
            .send()
            .await
            .expect("providers")
            .json()
            .await
            .expect("json");
        listing["data"].as_array().cloned().unwrap_or_default()
    }

    async fn provider(&self, id: &str) -> Value {
        self.providers()
            .await
            .into_iter()
            .find(|provider| provider["id"] == id)
            .unwrap_or(Value::Null)
    }

    /// Upstream requests whose model contains `model`.
    fn attempts(&self, model: &str) -> usize {
        self.upstream
            .state()
            .requests()
            .iter()
            .filter(|request| {
                request.body["model"]
                    .as_str()
                    .is_some_and(|name| name.contains(model))
            })
            .count()
    }

    /// Polls `/v1/providers` until `check` holds for backend `id`, for at
    /// most 10 s (the gateway notices a gone client asynchronously).
    async fn wait_for(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let provider = self.provider(id).await;
            if check(&provider) {
                return provider;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition never held: {provider}"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// `status body` with the body compacted, for snapshots.
async fn shown(response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| format!(" retry-after={}", value.to_str().unwrap_or("?")))
        .unwrap_or_default();
    let body = response.text().await.expect("body");
    let body = serde_json::from_str::<Value>(&body)
        .map(|value| value.to_string())
        .unwrap_or(body);
    format!("{status}{retry_after} {body}")
}

fn keys(extra: &str) -> String {
    format!(
        r#"
[[keys]]
id = "alpha"
token = {{ sha256 = "{ALPHA}" }}
models = ["default", "up/*", "chain"]
{extra}
"#
    )
}

#[tokio::test]
async fn tokens_and_allowlists_in_every_dialect() {
    let mut rig = Rig::start_logging(&keys(""), "debug").await;
    let chat = |model: &str| json!({"model": model, "messages": user()});
    let message = |model: &str| json!({"model": model, "max_tokens": 16, "messages": user()});
    let contents = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let mut seen = Vec::new();
    seen.push(format!(
        "openai no token: {}",
        shown(rig.chat(None, chat("default")).await).await
    ));
    seen.push(format!(
        "openai bad token: {}",
        shown(rig.chat(Some("bad-token-xyz"), chat("default")).await).await
    ));
    seen.push(format!(
        "anthropic bad token: {}",
        shown(
            rig.messages(Some("bad-token-xyz"), message("default"))
                .await
        )
        .await
    ));
    seen.push(format!(
        "genai bad token: {}",
        shown(
            rig.genai(Some("bad-token-xyz"), "default", contents.clone())
                .await
        )
        .await
    ));
    seen.push(format!(
        "openai disallowed: {}",
        shown(rig.chat(Some("tok-alpha"), chat("an/sonnet")).await).await
    ));
    seen.push(format!(
        "anthropic disallowed: {}",
        shown(rig.messages(Some("tok-alpha"), message("an/sonnet")).await).await
    ));
    seen.push(format!(
        "genai disallowed: {}",
        shown(
            rig.genai(Some("tok-alpha"), "ge/flash", contents.clone())
                .await
        )
        .await
    ));
    insta::assert_snapshot!(seen.join("\n"));

    // A refused request gets its id too: on the hot routes the connection
    // writes it into the head, not the router.
    for refused in [
        rig.chat(None, chat("default")).await,
        rig.messages(Some("bad-token-xyz"), message("default"))
            .await,
    ] {
        assert_eq!(refused.status(), 401);
        let id = refused.headers().get("x-request-id").expect("an id");
        assert_eq!(id.len(), 32, "{id:?}");
    }

    // The good token works in each dialect, for allowed names.
    let ok = rig.chat(Some("tok-alpha"), chat("up/gpt-test")).await;
    assert_eq!(ok.status(), 200);
    let ok = rig.messages(Some("tok-alpha"), message("default")).await;
    assert_eq!(ok.status(), 200);
    let ok = rig.genai(Some("tok-alpha"), "default", contents).await;
    assert_eq!(ok.status(), 200);
    // The client token never goes upstream.
    let sent = rig.upstream.state().requests();
    assert!(
        sent.iter()
            .all(|request| !format!("{:?}", request.headers).contains("tok-alpha"))
    );

    // Listings need a token and show only what the key may use.
    let health = rig
        .client
        .get(rig.gateway.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let providers = rig
        .client
        .get(rig.gateway.url("/v1/providers"))
        .send()
        .await
        .expect("providers");
    assert_eq!(providers.status(), 401);
    let models: Value = rig
        .client
        .get(rig.gateway.url("/v1/models"))
        .bearer_auth("tok-alpha")
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|model| model["id"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "chain",
            "default",
            "up/gpt-test",
            "up/endless",
            "up/error-500",
            "up/error-503",
            "up/midstream-error"
        ]
    );

    // Tokens, good or bad, are never logged (the gateway runs at debug).
    let stderr = rig.gateway.stderr();
    assert!(!stderr.contains("tok-alpha"), "{stderr}");
    assert!(!stderr.contains("bad-token-xyz"), "{stderr}");
    rig.gateway.assert_healthy();
}

#[tokio::test]
async fn requests_per_minute_answer_429_with_retry_after() {
    let rig = Rig::start(&keys(&format!(
        "[[keys]]\nid = \"limited\"\ntoken = {{ sha256 = \"{LIMITED}\" }}\nrpm = 2\n"
    )))
    .await;
    let body = json!({"model": "up/gpt-test", "messages": user()});
    for _ in 0..2 {
        assert_eq!(
            rig.chat(Some("tok-limited"), body.clone()).await.status(),
            200
        );
    }
    let third = shown(rig.chat(Some("tok-limited"), body.clone()).await).await;
    let fourth = shown(
        rig.messages(
            Some("tok-limited"),
            json!({"model": "an/sonnet", "max_tokens": 8, "messages": user()}),
        )
        .await,
    )
    .await;
    insta::assert_snapshot!(format!("{third}\n{fourth}"));
    assert_eq!(
        rig.attempts("gpt-test"),
        2,
        "the limited request never went upstream"
    );
    // Another key is not affected.
    assert_eq!(rig.chat(Some("tok-alpha"), body).await.status(), 200);
}

/// For each way usage reaches the gateway, a key with 4 tokens per minute
/// is refused after one answer that used 5 (2 prompt + 3 completion words).
#[tokio::test]
async fn tokens_per_minute_are_charged_from_real_usage() {
    let key = format!("[[keys]]\nid = \"tpm\"\ntoken = {{ sha256 = \"{TPM}\" }}\ntpm = 4\n");
    let cases = [
        (
            "pass-through JSON",
            json!({"model": "up/gpt-test", "messages": user()}),
        ),
        (
            "pass-through SSE",
            json!({"model": "up/gpt-test", "messages": user(), "stream": true, "stream_options": {"include_usage": true}}),
        ),
        (
            "translated SSE",
            json!({"model": "an/sonnet", "messages": user(), "stream": true}),
        ),
        (
            "translated JSON",
            json!({"model": "an/sonnet", "messages": user()}),
        ),
    ];
    for (name, body) in cases {
        let rig = Rig::start(&key).await;
        let first = rig.chat(Some("tok-tpm"), body.clone()).await;
        assert_eq!(first.status(), 200, "{name}");
        let text = first.text().await.expect("first body");
        if name.ends_with("usage not asked for") {
            // The gateway asked upstream for usage and hid it from the caller.
            let sent = rig.upstream.state().requests();
            assert_eq!(sent[0].body["stream_options"]["include_usage"], true);
            assert!(!text.contains("\"usage\""), "{text}");
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        }
        let second = rig.chat(Some("tok-tpm"), body).await;
        assert_eq!(second.status(), 429, "{name}");
        assert!(second.headers().contains_key("retry-after"), "{name}");
        let text = second.text().await.expect("body");
        assert!(
            text.contains("limit of 4 tokens per minute"),
            "{name}: {text}"
        );
    }
}

#[tokio::test]
async fn a_keys_concurrency_slot_returns_when_its_client_goes_away() {
    let rig = Rig::start(&keys(&format!(
        "[[keys]]\nid = \"slow\"\ntoken = {{ sha256 = \"{SLOW}\" }}\nmax_concurrent = 1\n"
    )))
    .await;
    let held = rig
        .chat(
            Some("tok-slow"),
            json!({"model": "up/endless", "messages": user(), "stream": true}),
        )
        .await;
    assert_eq!(held.status(), 200);
    let mut chunks = held.bytes_stream();
    chunks.next().await.expect("first chunk").expect("bytes");
    let refused = shown(
        rig.chat(
            Some("tok-slow"),
            json!({"model": "default", "messages": user()}),
        )
        .await,
    )
    .await;
    insta::assert_snapshot!(refused);
    drop(chunks);
    rig.upstream.state().wait_for_disconnects(1).await;
    rig.wait_for("up", |provider| provider["concurrency"]["in_flight"] == 0)
        .await;
    // The key's own slot is released with the backend's: poll until a new
    // request gets in (the gateway learns of the disconnect asynchronously).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = rig
            .chat(
                Some("tok-slow"),
                json!({"model": "default", "messages": user()}),
            )
            .await;
        if again.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot never released"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn backend_concurrency_queues_then_refuses_and_releases() {
    let rig = Rig::start("").await;
    let held = rig
        .chat(
            None,
            json!({"model": "narrow/endless", "messages": user(), "stream": true}),
        )
        .await;
    assert_eq!(held.status(), 200);
    let mut chunks = held.bytes_stream();
    chunks.next().await.expect("first chunk").expect("bytes");
    // One request may wait in the queue...
    let queued = tokio::spawn({
        let client = rig.client.clone();
        let url = rig.gateway.url("/v1/chat/completions");
        async move {
            client
                .post(url)
                .json(&json!({"model": "narrow/gpt-test", "messages": user()}))
                .send()
                .await
                .expect("queued request")
                .status()
                .as_u16()
        }
    });
    rig.wait_for("narrow", |provider| provider["concurrency"]["queued"] == 1)
        .await;
    // ...the next finds the queue full.
    let refused = shown(
        rig.chat(
            None,
            json!({"model": "narrow/gpt-test", "messages": user()}),
        )
        .await,
    )
    .await;
    let refused_anthropic = shown(
        rig.messages(
            None,
            json!({"model": "narrow/gpt-test", "max_tokens": 8, "messages": user()}),
        )
        .await,
    )
    .await;
    insta::assert_snapshot!(format!("{refused}\n{refused_anthropic}"));
    let provider = rig.provider("narrow").await;
    assert_eq!(
        provider["concurrency"],
        json!({"in_flight": 1, "queued": 1, "max_concurrent": 1, "max_queue": 1})
    );
    // The client goes away: its slot goes to the queued request.
    drop(chunks);
    assert_eq!(queued.await.expect("join"), 200);
    let provider = rig
        .wait_for("narrow", |provider| {
            provider["concurrency"]["in_flight"] == 0
        })
        .await;
    assert_eq!(provider["concurrency"]["queued"], 0);
    assert_eq!(rig.upstream.state().disconnects(), 1);
}

#[tokio::test]
async fn breaker_opens_answers_503_at_once_then_probes_and_closes() {
    let mut rig = Rig::start("").await;
    let failing = json!({"model": "brk/error-500", "messages": user()});
    for _ in 0..2 {
        assert_eq!(rig.chat(None, failing.clone()).await.status(), 500);
    }
    let provider = rig.provider("brk").await;
    assert_eq!(provider["health"], "unavailable");
    assert_eq!(provider["breaker"]["state"], "open");
    assert_eq!(provider["breaker"]["consecutive_failures"], 2);
    // An open breaker answers at once, without an upstream attempt, for any
    // model of the backend.
    let healthy = json!({"model": "brk/gpt-test", "messages": user()});
    let before = rig.upstream.state().requests().len();
    let refused = rig.chat(None, healthy.clone()).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "backend_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("circuit breaker is open after 2 consecutive failures"),
        "{body}"
    );
    assert_eq!(rig.upstream.state().requests().len(), before);
    // After the cooldown one probe goes through; its success closes it.
    rig.wait_for("brk", |provider| {
        provider["breaker"]["state"] == "half_open"
    })
    .await;
    assert_eq!(rig.chat(None, healthy).await.status(), 200);
    let provider = rig.provider("brk").await;
    assert_eq!(provider["breaker"]["state"], "closed");
    assert_eq!(provider["health"], "healthy");
    // A failed probe opens it again.
    for _ in 0..2 {
        rig.chat(None, failing.clone()).await;
    }
    rig.wait_for("brk", |provider| {
        provider["breaker"]["state"] == "half_open"
    })
    .await;
    assert_eq!(rig.chat(None, failing).await.status(), 500);
    assert_eq!(rig.provider("brk").await["breaker"]["state"], "open");
    rig.gateway.assert_healthy();
}

#[tokio::test]
async fn fallback_chains_move_on_only_before_output() {
    let rig = Rig::start("").await;
    // OpenAI frontend: the OpenAI target fails (503, retried), the Anthropic
    // one answers, translated.
    let answer: Value = rig
        .chat(None, json!({"model": "chain", "messages": user()}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    assert_eq!(rig.attempts("error-503"), 2);
    assert_eq!(rig.attempts("sonnet"), 1);
    // Anthropic frontend, streaming: the same chain, the second target passed
    // through.
    let streamed = rig
        .messages(
            None,
            json!({"model": "chain", "max_tokens": 16, "messages": user(), "stream": true}),
        )
        .await;
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.expect("body");
    assert!(text.contains("event: message_stop"), "{text}");
    assert_eq!(rig.attempts("error-503"), 4);
    assert_eq!(rig.attempts("sonnet"), 2);
    // Once output has reached the client, a failure is the client's.
    let cut = rig
        .chat(
            None,
            json!({"model": "chain-after-output", "messages": user(), "stream": true}),
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(cut.contains("mock upstream broke mid-stream"), "{cut}");
    assert_eq!(rig.attempts("midstream-error"), 1);
    assert_eq!(rig.attempts("sonnet"), 2, "no fallback after output");
}

#[tokio::test]
async fn weighted_aliases_spread_and_avoid_open_breakers() {
    let rig = Rig::start("").await;
    let body = json!({"model": "spread", "messages": user()});
    for _ in 0..40 {
        assert_eq!(rig.chat(None, body.clone()).await.status(), 200);
    }
    let first = rig.attempts("gpt-test") - rig.attempts("gpt-test-two");
    let second = rig.attempts("gpt-test-two");
    // 1:1 weights over 40 requests: both targets serve (the chance that one
    // serves none is 2^-39).
    assert!(first > 0 && second > 0, "{first} / {second}");
    // Open up2's breaker; every request then goes to up.
    for _ in 0..2 {
        rig.chat(None, json!({"model": "up2/error-500", "messages": user()}))
            .await;
    }
    assert_eq!(rig.provider("up2").await["breaker"]["state"], "open");
    for _ in 0..20 {
        assert_eq!(rig.chat(None, body.clone()).await.status(), 200);
    }
    assert_eq!(rig.attempts("gpt-test-two"), second);
}

#[tokio::test]
async fn output_caps_clamp_requests_in_every_dialect() {
    let rig = Rig::start(&format!(
        "[[keys]]\nid = \"capped\"\ntoken = {{ sha256 = \"{CAPPED}\" }}\nmax_output_tokens = 50\n\n[limits]\nmax_output_tokens = 1000\n"
    ))
    .await;
    let token = Some("tok-capped");
    rig.chat(
        token,
        json!({"model": "up/gpt-test", "max_tokens": 500, "messages": user()}),
    )
    .await;
    rig.chat(token, json!({"model": "up/gpt-test", "messages": user()}))
        .await;
    rig.chat(
        token,
        json!({"model": "up/gpt-test", "max_completion_tokens": 7, "messages": user()}),
    )
    .await;
    rig.messages(
        token,
        json!({"model": "an/small", "max_tokens": 500, "messages": user()}),
    )
    .await;
    rig.chat(token, json!({"model": "an/sonnet", "messages": user()}))
        .await;
    rig.genai(
        token,
        "ge/flash",
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 999, "temperature": 0.5}}),
    )
    .await;
    let sent: Vec<String> = rig
        .upstream
        .state()
        .requests()
        .iter()
        .map(|request| {
            let body = &request.body;
            format!(
                "{} max_tokens={} max_completion_tokens={} generationConfig={}",
                request.path,
                body["max_tokens"],
                body["max_completion_tokens"],
                body["generationConfig"]
            )
        })
        .collect();
    insta::assert_snapshot!(sent.join("\n"));
}

#[tokio::test]
async fn output_caps_can_reject_instead() {
    let rig = Rig::start("[limits]\nmax_output_tokens = 100\noutput_cap = \"reject\"\n").await;
    let over = shown(
        rig.chat(
            None,
            json!({"model": "up/gpt-test", "max_tokens": 500, "messages": user()}),
        )
        .await,
    )
    .await;
    let over_anthropic = shown(
        rig.messages(
            None,
            json!({"model": "an/sonnet", "max_tokens": 500, "messages": user()}),
        )
        .await,
    )
    .await;
    insta::assert_snapshot!(format!("{over}\n{over_anthropic}"));
    let under = rig
        .chat(
            None,
            json!({"model": "up/gpt-test", "max_tokens": 50, "messages": user()}),
        )
        .await;
    assert_eq!(under.status(), 200);
    assert_eq!(rig.attempts("gpt-test"), 1);
}

#[tokio::test]
async fn body_size_and_stream_duration_are_guarded() {
    let rig = Rig::start("[limits]\nmax_body_bytes = 2048\nmax_stream_duration_ms = 300\n").await;
    let big = "x".repeat(4096);
    let too_large = shown(
        rig.chat(
            None,
            json!({"model": "default", "messages": [{"role": "user", "content": big}]}),
        )
        .await,
    )
    .await;
    let too_large_anthropic = shown(
        rig.messages(
            None,
            json!({"model": "default", "max_tokens": 8, "messages": [{"role": "user", "content": big}]}),
        )
        .await,
    )
    .await;
    let endless = rig
        .chat(
            None,
            json!({"model": "up/endless", "messages": user(), "stream": true}),
        )
        .await
        .text()
        .await
        .expect("stream ends");
    let last = endless
        .split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .last()
        .unwrap_or_default()
        .to_owned();
    insta::assert_snapshot!(format!("{too_large}\n{too_large_anthropic}\n{last}"));
    rig.upstream.state().wait_for_disconnects(1).await;
    rig.wait_for("up", |provider| provider["concurrency"]["in_flight"] == 0)
        .await;
}

#[tokio::test]
async fn a_backends_total_timeout_ends_a_long_stream() {
    let rig = Rig::start("").await;
    let ended = rig
        .messages(
            None,
            json!({"model": "short/endless", "max_tokens": 8, "messages": user(), "stream": true}),
        )
        .await
        .text()
        .await
        .expect("stream ends");
    assert!(
        ended.contains("event: error")
            && ended.contains("backend 'short' has total_timeout_ms 400"),
        "{ended}"
    );
    rig.upstream.state().wait_for_disconnects(1).await;
    rig.wait_for("short", |provider| {
        provider["concurrency"]["in_flight"] == 0
    })
    .await;
}

/// Runs the binary with `args` and an open config, returning its exit code
/// and stderr, or `None` if it started serving (it is then killed).
async fn run_open(listen: &str, allow: bool) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("open.toml");
    let allow = if allow {
        "allow_unauthenticated = true\n"
    } else {
        ""
    };
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{allow}\n[[backends]]\nid = \"mock\"\ndialect = \"mock\"\nmodels = [{{ id = \"echo\" }}]\n[aliases]\ndefault = \"mock/echo\"\n"
        ),
    )
    .expect("write");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .args(["--config", path.to_str().expect("path"), "--listen", listen])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line),
    )
    .await
    .expect("no hang");
    let serving = read.is_ok_and(|n| n > 0) && line.contains("listening on");
    if serving {
        child.kill().await.expect("kill");
    }
    let output = child.wait_with_output().await.expect("output");
    (
        (!serving).then(|| output.status.code().unwrap_or(-1)),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_open_gateway_serves_only_on_loopback_unless_allowed() {
    let (code, stderr) = run_open("0.0.0.0:0", false).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to serve on 0.0.0.0:0 with no [[keys]]"),
        "{stderr}"
    );
    let (code, stderr) = run_open("0.0.0.0:0", true).await;
    assert_eq!(code, None, "{stderr}");
    assert!(
        stderr.contains("server.allow_unauthenticated = true"),
        "{stderr}"
    );
    let (code, stderr) = run_open("127.0.0.1:0", false).await;
    assert_eq!(code, None, "{stderr}");
    assert!(
        stderr.contains("any caller is accepted, on loopback only"),
        "{stderr}"
    );
}
