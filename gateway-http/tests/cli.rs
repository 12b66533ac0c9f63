//! The `modelgate` command line: validate, schema, routes.

use std::process::Command;

fn modelgate(args: &[&str], config: Option<&str>) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_modelgate"));
    command
        .args(args)
        .current_dir(dir.path())
        .env_remove("MODELGATE_CONFIG")
        .env_remove("OPENAI_API_KEY");
    if let Some(text) = config {
        let path = dir.path().join("modelgate.toml");
        std::fs::write(&path, text).expect("write config");
        command.arg("--config").arg(&path);
    }
    let output = command.output().expect("run modelgate");
    let clean = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes).replace(
            &dir.path().join("modelgate.toml").display().to_string(),
            "CONFIG",
        )
    };
    (
        output.status.code().unwrap_or(-1),
        clean(&output.stdout),
        clean(&output.stderr),
    )
}

#[test]
fn validate_accepts_a_good_config() {
    let (code, stdout, _) = modelgate(
        &["validate"],
        Some(
            "[[backends]]\nid = \"mock\"\ndialect = \"mock\"\nmodels = [{ id = \"echo\" }]\n[aliases]\ndefault = \"mock/echo\"\n",
        ),
    );
    assert_eq!(code, 0);
    assert_eq!(stdout, "CONFIG is valid: 1 backend(s), 2 route name(s)\n");
}

#[test]
fn validate_rejects_a_broken_config_naming_the_field() {
    let broken = "[[backends]]\nid = \"a\"\ndialect = \"nonesuch\"\nmodels = [{ id = \"m\" }]\n\n[[backends]]\nid = \"b\"\ndialect = \"mock\"\nmodels = [{ idd = \"m\" }]\n\n[aliases]\ndefault = \"a/m\"\n";
    let (code, stdout, stderr) = modelgate(&["validate"], Some(broken));
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    insta::assert_snapshot!(stderr, @r"
    CONFIG has 2 errors:
      CONFIG:9: backends[1].models[0].idd: is not a known setting here
      CONFIG:9: backends[1].models[0].id: is required
    ");
    // Once the structure is right, the dialect is checked against this build.
    let (code, _, stderr) = modelgate(&["validate"], Some(&broken.replace("idd", "id")));
    assert_eq!(code, 1);
    insta::assert_snapshot!(stderr, @r"
    CONFIG has 1 error:
      CONFIG: backends[0].dialect: unknown dialect 'nonesuch'; this build knows: anthropic, gemini, mock, ollama, openai (a run-time plugin may provide others)
    ");
}

#[test]
fn validate_warns_about_unset_credentials_and_serve_refuses_them() {
    let config = "[[backends]]\nid = \"o\"\ndialect = \"openai\"\nendpoint = \"http://127.0.0.1:9/v1\"\ncredential = { env = \"MODELGATE_TEST_NEVER_SET\" }\nmodels = [{ id = \"m\" }]\n[aliases]\ndefault = \"o/m\"\n";
    let (code, _, stderr) = modelgate(&["validate"], Some(config));
    assert_eq!(code, 0);
    assert!(stderr.contains("warning: CONFIG: backends[0].credential.env: environment variable MODELGATE_TEST_NEVER_SET is not set"), "{stderr}");
    let (code, stdout, stderr) = modelgate(&["serve", "--listen", "127.0.0.1:0"], Some(config));
    assert_eq!(code, 1);
    assert!(!stdout.contains("listening"));
    assert!(
        stderr.contains("environment variable MODELGATE_TEST_NEVER_SET is not set"),
        "{stderr}"
    );
}

#[test]
fn validate_of_a_missing_file_says_so() {
    let (code, _, stderr) = modelgate(
        &["validate", "--config", "/nonexistent/modelgate.toml"],
        None,
    );
    assert_eq!(code, 1);
    assert!(stderr.starts_with("/nonexistent/modelgate.toml has 1 error:\n  /nonexistent/modelgate.toml: (top level): cannot read the file:"), "{stderr}");
}

#[test]
fn schema_prints_the_checked_in_schema() {
    let (code, stdout, _) = modelgate(&["schema"], None);
    assert_eq!(code, 0);
    assert_eq!(stdout, gateway_core::config::schema_json());
}

#[test]
fn routes_lists_every_name() {
    let config = "[[backends]]\nid = \"a\"\ndialect = \"mock\"\nmodels = [{ id = \"echo\" }, { id = \"x.y\", upstream = \"org/x\" }]\n\n[[backends]]\nid = \"b\"\ndialect = \"mock\"\nmodels = [{ id = \"echo\" }]\n\n[aliases]\ndefault = \"a/echo\"\n";
    let (code, stdout, _) = modelgate(&["routes"], Some(config));
    assert_eq!(code, 0);
    insta::assert_snapshot!(stdout, @"
    NAME     TARGET                          UPSTREAM MODEL  RULE
    default  a/echo                          echo            alias
    a/echo   a/echo                          echo            backend/model
    a/x.y    a/x.y                           org/x           backend/model
    b/echo   b/echo                          echo            backend/model
    echo     (ambiguous: use backend/model)  -               -
    x.y      a/x.y                           org/x           model id
    ");
}

#[test]
fn embedded_default_routes_default_to_the_mock() {
    let (code, stdout, _) = modelgate(&["routes"], None);
    assert_eq!(code, 0);
    insta::assert_snapshot!(stdout, @"
    NAME       TARGET     UPSTREAM MODEL  RULE
    default    mock/echo  echo            alias
    mock/echo  mock/echo  echo            backend/model
    echo       mock/echo  echo            model id
    ");
}
