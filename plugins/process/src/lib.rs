//! The `process` dialect, shipped as a run-time plugin: each request runs a
//! configured local command, writes the conversation to its stdin, and
//! streams its stdout back line by line.
//!
//! ```toml
//! [[plugins]]
//! path = "target/release/libmodelgate_plugin_process.so"
//!
//! [[backends]]
//! id = "script"
//! dialect = "process"
//! models = [{ id = "upper" }]
//! options = { command = "tr", args = ["a-z", "A-Z"], input = "text", timeout_secs = 30 }
//! ```
//!
//! Options: `command` (required), `args`, `env` (a table), `input` —
//! `"text"` (the last user message, the default) or `"json"` (the whole
//! canonical request) — and `timeout_secs` (default 60). A non-zero exit is
//! an upstream error carrying the start of stderr; a timeout is a 504; a
//! client that goes away kills the command.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, stream};
use gateway_core::registry::{BackendContext, BuildError};
use gateway_core::{
    ChatEvent, ChatRequest, ChatResponse, ChatStream, FinishReason, Gateway, GatewayError, Message,
    ProviderAdapter, Role, Usage,
};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The dialect this plugin provides.
pub const DIALECT: &str = "process";

modelgate_plugin::export_plugin! {
    name: "process",
    version: env!("CARGO_PKG_VERSION"),
    dialects: ["process"],
    build: build,
}

/// What the command receives on stdin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Input {
    /// The last user message's text.
    #[default]
    Text,
    /// The canonical request as JSON.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    input: Input,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

fn default_timeout() -> u64 {
    60
}

/// Builds the adapter for one backend from its `options`.
pub fn build(
    _dialect: &str,
    backend: &BackendContext,
) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
    let options: Options =
        serde_json::from_value(serde_json::Value::Object(backend.options.clone()))
            .map_err(|err| BuildError::field("options", format!("process options: {err}")))?;
    if options.command.is_empty() {
        return Err(BuildError::field(
            "options",
            "process options: 'command' is empty",
        ));
    }
    Ok(Arc::new(ProcessAdapter { options }))
}

/// Runs the configured command per request.
#[derive(Debug)]
pub struct ProcessAdapter {
    options: Options,
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

impl ProcessAdapter {
    fn input(&self, request: &ChatRequest) -> Result<Vec<u8>, GatewayError> {
        match self.options.input {
            Input::Json => serde_json::to_vec(request)
                .map_err(|err| GatewayError::internal(format!("cannot encode the request: {err}"))),
            Input::Text => Ok(request
                .messages
                .iter()
                .rev()
                .find(|message| message.role == Role::User)
                .map(Message::joined_text)
                .unwrap_or_default()
                .into_bytes()),
        }
    }

    fn spawn(&self) -> Result<Child, GatewayError> {
        Command::new(&self.options.command)
            .args(&self.options.args)
            .envs(&self.options.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                GatewayError::connect(format!("cannot run '{}': {err}", self.options.command))
            })
    }
}

/// A running command: its stdout lines, and the child itself so that
/// dropping the stream kills it.
struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    prompt_words: u64,
    output_words: u64,
    deadline: tokio::time::Instant,
    command: String,
    finished: bool,
}

impl Running {
    async fn next_event(&mut self) -> Option<Result<ChatEvent, GatewayError>> {
        if self.finished {
            return None;
        }
        let line = tokio::time::timeout_at(self.deadline, self.lines.next_line()).await;
        match line {
            Err(_) => {
                self.finished = true;
                let _ = self.child.start_kill();
                Some(Err(GatewayError::timeout(format!(
                    "'{}' did not finish in time",
                    self.command
                ))))
            }
            Ok(Err(err)) => {
                self.finished = true;
                Some(Err(GatewayError::upstream(format!(
                    "cannot read from '{}': {err}",
                    self.command
                ))))
            }
            Ok(Ok(Some(line))) => {
                self.output_words += words(&line);
                Some(Ok(ChatEvent::TextDelta {
                    text: format!("{line}\n"),
                }))
            }
            Ok(Ok(None)) => {
                self.finished = true;
                Some(self.exit().await)
            }
        }
    }

    async fn exit(&mut self) -> Result<ChatEvent, GatewayError> {
        let status = tokio::time::timeout_at(self.deadline, self.child.wait())
            .await
            .map_err(|_| {
                GatewayError::timeout(format!("'{}' did not finish in time", self.command))
            })?
            .map_err(|err| {
                GatewayError::upstream(format!("cannot wait for '{}': {err}", self.command))
            })?;
        if status.success() {
            return Ok(ChatEvent::Usage(Usage {
                input: self.prompt_words,
                output: self.output_words,
                cached: None,
            }));
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        let excerpt: String = stderr.trim().chars().take(300).collect();
        Err(GatewayError::upstream(format!(
            "'{}' exited with {status}: {excerpt}",
            self.command
        )))
    }
}

#[async_trait]
impl ProviderAdapter for ProcessAdapter {
    fn dialect(&self) -> &str {
        DIALECT
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        Gateway::collect(self.chat_stream(request).await?).await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let input = self.input(&request)?;
        let prompt_words = request
            .messages
            .iter()
            .map(|m| words(&m.joined_text()))
            .sum();
        let mut child = self.spawn()?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| GatewayError::internal("no stdin pipe"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| GatewayError::internal("no stdout pipe"))?;
        // A command that does not read its input must not block us.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
        let running = Running {
            child,
            lines: BufReader::new(stdout).lines(),
            prompt_words,
            output_words: 0,
            deadline: tokio::time::Instant::now() + Duration::from_secs(self.options.timeout_secs),
            command: self.options.command.clone(),
            finished: false,
        };
        let events = stream::unfold(Some(running), |state| async move {
            let mut running = state?;
            match running.next_event().await {
                None => None,
                // Usage, then the finish, then the end.
                Some(Ok(usage @ ChatEvent::Usage(_))) => Some((
                    vec![
                        Ok(usage),
                        Ok(ChatEvent::Finished {
                            reason: FinishReason::Stop,
                        }),
                    ],
                    None,
                )),
                Some(Err(err)) => Some((vec![Err(err)], None)),
                Some(Ok(event)) => Some((vec![Ok(event)], Some(running))),
            }
        })
        .flat_map(stream::iter);
        Ok(Box::pin(events))
    }
}
