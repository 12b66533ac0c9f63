//! `cargo xtask <task>`: the project's chores, in Rust so they run wherever
//! cargo does.
//!
//! * `schema [--check]`: write (or check) `schema/modelgate.schema.json`.
//! * `test`: every test: the Rust workspace, then the SDK suite (official
//!   client SDKs from PyPI in `tests/sdk/.venv`, driven against the real
//!   binaries).
//! * `bench [--smoke] [--seconds N] [--rounds N] [--streams N]`: modelgate
//!   next to nginx in front of a fast upstream, under `wrk` (see `bench.rs`).

mod bench;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("schema") => schema(args.iter().any(|arg| arg == "--check")),
        Some("test") => test(),
        Some("bench") => bench::bench(&args[1..]),
        _ => Err("usage: cargo xtask <schema [--check] | test | bench [--smoke]>".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The checked-in schema file, relative to the workspace root.
const SCHEMA_PATH: &str = "schema/modelgate.schema.json";

fn schema(check: bool) -> Result<(), String> {
    let path = root().join(SCHEMA_PATH);
    let fresh = gateway_core::config::schema_json();
    if check {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != fresh {
            return Err(format!(
                "{SCHEMA_PATH} is stale; run `cargo xtask schema` and commit it"
            ));
        }
        println!("{SCHEMA_PATH} is current");
        return Ok(());
    }
    std::fs::write(&path, fresh).map_err(|err| format!("cannot write {SCHEMA_PATH}: {err}"))?;
    println!("wrote {SCHEMA_PATH}");
    Ok(())
}

fn run(command: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .map_err(|err| format!("cannot run {command:?}: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(root());
    command
}

fn test() -> Result<(), String> {
    run(cargo().args(["test", "--workspace"]))?;
    run(cargo().args(["build", "-p", "gateway-http", "-p", "mock-upstream"]))?;
    // The example plugin, built the way a third party would: its own cargo
    // invocation and target directory (the Rust tests use the same one).
    let plugin_target = target_dir().join("plugin-build");
    run(cargo()
        .args(["build", "-p", "modelgate-plugin-process", "--target-dir"])
        .arg(&plugin_target))?;
    sdk_suite(&plugin_target.join("debug/libmodelgate_plugin_process.so"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn sdk_suite(process_plugin: &Path) -> Result<(), String> {
    let root = root();
    let sdk = root.join("tests/sdk");
    let venv = sdk.join(".venv");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if !venv.join("bin/python").is_file() {
        run(Command::new(&python).args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(sdk.join("requirements.txt")))?;
    let debug = target_dir().join("debug");
    run(Command::new(venv.join("bin/python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&sdk)
        .env("MODELGATE_BIN", debug.join("modelgate"))
        .env("MOCK_UPSTREAM_BIN", debug.join("mock-upstream"))
        .env("MODELGATE_PROCESS_PLUGIN", process_plugin)
        .current_dir(&sdk))
}
