//! Run-time plugins through the real binary: the `process` plugin built by
//! its own cargo invocation into its own target directory, loaded from
//! config, serving requests; bad plugins named with their reason.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use support::Modelgate;

/// Builds the process plugin once per test run with a separate cargo
/// invocation and target directory, as a third party would.
fn process_plugin() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = root.join("target").join("plugin-build");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "modelgate-plugin-process",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(&root)
            .status()
            .expect("run cargo build for the plugin");
        assert!(status.success(), "building the process plugin failed");
        target.join("debug").join("libmodelgate_plugin_process.so")
    })
}

fn config(options: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[plugins]]
path = "{}"

[[backends]]
id = "script"
dialect = "process"
models = [{{ id = "run" }}]
options = {options}

[aliases]
default = "script/run"
"#,
        process_plugin().display()
    )
}

fn validate(config: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("modelgate.toml");
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .expect("run modelgate");
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes).replace(&path.display().to_string(), "CONFIG")
    };
    (
        output.status.code().unwrap_or(-1),
        text(&output.stdout),
        text(&output.stderr),
    )
}

async fn chat(gateway: &Modelgate, stream: bool, text: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({"model": "default", "stream": stream, "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_process_plugin_answers_through_the_gateway() {
    let gateway = Modelgate::start(&config(r#"{ command = "tr", args = ["a-z", "A-Z"] }"#)).await;
    let body: Value = chat(&gateway, false, "hello plugin")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "HELLO PLUGIN\n");
    assert_eq!(body["model"], "run");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4})
    );
    let text = chat(&gateway, true, "line one\nline two")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        text.contains(r#""delta":{"content":"LINE ONE\n"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""delta":{"content":"LINE TWO\n"}"#),
        "{text}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn command_failures_are_errors_in_the_callers_dialect() {
    let gateway = Modelgate::start(&config(
        r#"{ command = "sh", args = ["-c", "echo broken >&2; exit 3"] }"#,
    ))
    .await;
    let response = chat(&gateway, false, "x").await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["error"]["message"],
        "plugin: 'sh' exited with exit status: 3: broken"
    );
    let gateway = Modelgate::start(&config(r#"{ command = "/nonexistent/command" }"#)).await;
    let response = chat(&gateway, true, "x").await;
    assert_eq!(
        response.status(),
        502,
        "a failure before the first byte is an HTTP error"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_kills_the_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let options = format!(
        r#"{{ command = "sh", args = ["-c", "echo $$ > \"$PID_FILE\"; while true; do echo tick; sleep 0.05; done"], env = {{ PID_FILE = "{}" }} }}"#,
        pid_file.display()
    );
    let gateway = Modelgate::start(&config(&options)).await;
    let response = chat(&gateway, true, "go").await;
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("tick") {
        let chunk = body.next().await.expect("more output").expect("bytes");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let pid = std::fs::read_to_string(&pid_file).expect("the command wrote its pid");
    let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    assert!(running(&stat));
    drop(body);
    // The child is not ours to wait for, so watch /proc, bounded.
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while running(&stat) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let state = std::fs::read_to_string(&stat).unwrap_or_default();
    assert!(
        gone.is_ok(),
        "the command was still running 10 s after the client left: {state}"
    );
}

/// Whether the process of a `/proc/PID/stat` file still runs: gone and
/// zombie (killed, not yet reaped) both count as stopped.
fn running(stat: &Path) -> bool {
    std::fs::read_to_string(stat).is_ok_and(|text| {
        let state = text
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X"))
    })
}

#[test]
fn bad_plugins_are_reported_with_file_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.so");
    std::fs::write(&garbage, b"not an ELF file").expect("write");
    let cases = [
        (
            garbage.display().to_string(),
            "not a loadable shared library",
        ),
        (
            "/lib/x86_64-linux-gnu/libm.so.6".to_owned(),
            "missing entry point `modelgate_plugin_v1`",
        ),
        (
            "/nonexistent/plugin.so".to_owned(),
            "not a loadable shared library",
        ),
    ];
    for (path, reason) in cases {
        let text = format!(
            "[[plugins]]\npath = \"{path}\"\n[[backends]]\nid = \"m\"\ndialect = \"mock\"\nmodels = [{{ id = \"e\" }}]\n[aliases]\ndefault = \"m/e\"\n"
        );
        let (code, _, stderr) = validate(&text);
        assert_eq!(code, 1, "{path}");
        assert!(
            stderr.contains(&format!("plugin {path}: {reason}")),
            "{path}: {stderr}"
        );
    }
}

#[test]
fn a_dialect_registered_twice_is_refused_and_optional_plugins_are_skipped() {
    let plugin = process_plugin().display().to_string();
    let twice = format!(
        "[[plugins]]\npath = \"{plugin}\"\n[[plugins]]\npath = \"{plugin}\"\n[[backends]]\nid = \"m\"\ndialect = \"mock\"\nmodels = [{{ id = \"e\" }}]\n[aliases]\ndefault = \"m/e\"\n"
    );
    let (code, _, stderr) = validate(&twice);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("plugin {plugin}: dialect 'process' from plugin process 0.1.0 ({plugin}) collides with the one from plugin process 0.1.0 ({plugin})")),
        "{stderr}"
    );
    let optional = "[[plugins]]\npath = \"/nonexistent/plugin.so\"\noptional = true\n[[backends]]\nid = \"m\"\ndialect = \"mock\"\nmodels = [{ id = \"e\" }]\n[aliases]\ndefault = \"m/e\"\n";
    let (code, stdout, stderr) = validate(optional);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("is valid"));
    assert!(
        stderr.contains(
            "warning: CONFIG: plugin /nonexistent/plugin.so: not a loadable shared library"
        ),
        "{stderr}"
    );
}

#[test]
fn bad_options_name_the_field() {
    let (code, _, stderr) = validate(&config(r#"{ args = ["x"] }"#));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("backends[0]: backend 'script': plugin "),
        "{stderr}"
    );
    assert!(
        stderr.contains("options: process options: missing field `command`"),
        "{stderr}"
    );
}

#[test]
fn the_plugins_command_lists_dialects_with_their_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("modelgate.toml");
    std::fs::write(&path, config(r#"{ command = "cat" }"#)).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .args(["plugins", "--config"])
        .arg(&path)
        .output()
        .expect("run modelgate");
    assert!(output.status.success());
    let plugin = process_plugin().display().to_string();
    let stdout = String::from_utf8_lossy(&output.stdout).replace(&plugin, "PLUGIN");
    insta::assert_snapshot!(stdout, @r"
    DIALECT  ORIGIN
    anthropic  built-in
    gemini  built-in
    mock  built-in
    ollama  built-in
    openai  built-in
    process  plugin process 0.1.0 (PLUGIN)

    plugin process 0.1.0 (modelgate-plugin 0.1.0) from PLUGIN: process
    ");
}

#[tokio::test]
async fn json_input_and_timeouts() {
    // `input = "json"` hands the command the whole canonical request.
    let gateway = Modelgate::start(&config(
        r#"{ command = "sh", args = ["-c", "tr -d '\\n' | head -c 40; echo"], input = "json" }"#,
    ))
    .await;
    let body: Value = chat(&gateway, false, "x").await.json().await.expect("json");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "{\"model\":\"run\",\"messages\":[{\"role\":\"user\n"
    );
    let gateway = Modelgate::start(&config(
        r#"{ command = "sleep", args = ["30"], timeout_secs = 1 }"#,
    ))
    .await;
    let response = chat(&gateway, false, "x").await;
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["error"]["message"],
        "plugin: 'sleep' did not finish in time"
    );
}
