//! Shared test harness: runs the real `modelgate` binary against a
//! loopback mock upstream.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mock_upstream::MockUpstream;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The inline upstream credential the test config uses; it must never be
/// echoed to clients.
pub const UPSTREAM_SECRET: &str = "sk-upstream-secret-123";

/// A config with a mock backend, an OpenAI-compatible backend on the mock
/// upstream (`up`), a second one serving an overlapping id (`twin`), a
/// backend on a closed port (`dead`) and an Anthropic backend on the mock
/// upstream (`claude`).
pub fn config_for(upstream: &str, dead_port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[backends]]
id = "mock"
dialect = "mock"
models = [{{ id = "echo" }}]

[[backends]]
id = "up"
dialect = "openai"
endpoint = "{upstream}/v1"
credential = {{ inline = "{UPSTREAM_SECRET}" }}
models = [
  {{ id = "gpt-test", upstream = "gpt-test-upstream" }},
  {{ id = "gpt-3.5-turbo" }},
  {{ id = "shared" }},
  {{ id = "parallel" }},
  {{ id = "mixed" }},
  {{ id = "endless" }},
  {{ id = "midstream-error" }},
  {{ id = "truncated" }},
  {{ id = "bad-json" }},
  {{ id = "error-400" }},
  {{ id = "error-401" }},
  {{ id = "error-429" }},
  {{ id = "error-500" }},
  {{ id = "error-503" }},
]

[[backends]]
id = "twin"
dialect = "openai"
endpoint = "{upstream}/v1"
models = [{{ id = "shared" }}]

[[backends]]
id = "dead"
dialect = "openai"
endpoint = "http://127.0.0.1:{dead_port}/v1"
models = [{{ id = "gone" }}]

[[backends]]
id = "claude"
dialect = "anthropic"
endpoint = "{upstream}"
credential = {{ inline = "{UPSTREAM_SECRET}" }}
models = [
  {{ id = "sonnet", upstream = "claude-test-upstream" }},
  {{ id = "capped", upstream = "claude-capped", default_max_tokens = 321 }},
  {{ id = "parallel" }},
  {{ id = "midstream-error" }},
  {{ id = "error-429" }},
  {{ id = "error-500" }},
]

[[backends]]
id = "gem"
dialect = "gemini"
endpoint = "{upstream}"
credential = {{ inline = "{UPSTREAM_SECRET}" }}
models = [
  {{ id = "flash", upstream = "gemini-test-upstream" }},
  {{ id = "parallel" }},
  {{ id = "midstream-error" }},
  {{ id = "error-429" }},
]

[[backends]]
id = "local"
dialect = "ollama"
endpoint = "{upstream}"
models = [{{ id = "llama", upstream = "llama-test-upstream" }}, {{ id = "parallel" }}]

[aliases]
default = "mock/echo"
fast = "up/gpt-test"

# Quick retries; an upstream Retry-After (the mock's 7 s) is not waited out.
[reliability]
backoff_base_ms = 1
backoff_max_ms = 5
max_retry_after_ms = 1000
"#
    )
}

/// A port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// A running `modelgate` process; killed when dropped.
pub struct Modelgate {
    pub child: Child,
    pub base: String,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Modelgate {
    /// Starts the binary with `config` written to a temp file and waits for
    /// its "listening on" line (bounded, no sleeping).
    pub async fn start(config: &str) -> Self {
        Self::start_logging(config, "warn").await
    }

    /// Like [`Modelgate::start`] with `MODELGATE_LOG` set to `log_level`.
    pub async fn start_logging(config: &str, log_level: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: PathBuf = dir.path().join("modelgate.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .arg("--config")
            .arg(&path)
            .env_remove("MODELGATE_CONFIG")
            .env("MODELGATE_LOG", log_level)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn modelgate");
        // Everything the gateway says on stderr is kept (for assertions) and
        // echoed (for whoever reads the test output).
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let kept = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                eprintln!("[modelgate] {line}");
                let mut kept = kept
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(addr) = line.strip_prefix("modelgate listening on ") {
                    return addr.to_owned();
                }
            }
            panic!("modelgate exited before listening");
        })
        .await
        .expect("modelgate did not start within 30 s");
        Self {
            child,
            base,
            stderr,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Panics if the gateway exited or reported a panic.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "modelgate exited"
        );
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked"),
            "modelgate panicked:\n{stderr}"
        );
    }
}

/// A mock upstream and a gateway in front of it.
pub struct Stack {
    pub upstream: MockUpstream,
    pub gateway: Modelgate,
    pub client: reqwest::Client,
}

impl Stack {
    pub async fn start() -> Self {
        let upstream = MockUpstream::start().await.expect("mock upstream");
        let gateway = Modelgate::start(&config_for(&upstream.base_url(), closed_port())).await;
        Self {
            upstream,
            gateway,
            client: reqwest::Client::new(),
        }
    }

    /// POSTs a raw body to a gateway path with a fixed request id.
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.gateway.url(path))
            .header("authorization", "Bearer client-token-xyz")
            .header("x-request-id", "test-req-1")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn chat(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/v1/chat/completions", body.to_string()).await
    }

    /// POSTs to the GenAI frontend the way `google-genai` does.
    pub async fn genai(
        &self,
        model_and_method: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(
                self.gateway
                    .url(&format!("/v1beta/models/{model_and_method}")),
            )
            .header("x-goog-api-key", "client-token-xyz")
            .header("x-request-id", "test-req-1")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// POSTs to the Anthropic frontend the way the `anthropic` SDK does.
    pub async fn messages(&self, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.gateway.url("/v1/messages"))
            .header("x-api-key", "client-token-xyz")
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "test-beta-1")
            .header("x-request-id", "test-req-1")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }
}

/// Replaces the volatile `created` timestamps in SSE or JSON text so
/// snapshots are stable.
pub fn stable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\"created\":") {
        let (head, tail) = rest.split_at(at + "\"created\":".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        out.push('0');
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}
