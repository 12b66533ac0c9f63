//! Every config error path, with the field path (and line) it names.

use gateway_core::config::{Format, parse_str};

/// Parses `text` and returns the rendered error, or "ok".
fn check(text: &str, format: Format) -> String {
    match parse_str(text, format, "test.toml") {
        Ok(_) => "ok".to_owned(),
        Err(err) => err.to_string(),
    }
}

fn toml(text: &str) -> String {
    check(text, Format::Toml)
}

const GOOD_BACKEND: &str = r#"
[[backends]]
id = "mock"
dialect = "mock"
models = [{ id = "echo" }]
"#;

#[test]
fn a_minimal_config_is_valid() {
    let text = format!("{GOOD_BACKEND}\n[aliases]\ndefault = \"mock/echo\"\n");
    assert_eq!(toml(&text), "ok");
}

#[test]
fn syntax_errors_name_the_line() {
    insta::assert_snapshot!(toml("[server]\nlisten = \n"), @r"
    test.toml has 1 error:
      test.toml:2: (top level): syntax error: string values must be quoted, expected literal string
    ");
    insta::assert_snapshot!(check("{\"backends\": [}", Format::Json), @r"
    test.toml has 1 error:
      test.toml:1: (top level): syntax error: expected value at line 1 column 15
    ");
    insta::assert_snapshot!(check("backends:\n  - id: [\n", Format::Yaml), @"
    test.toml has 1 error:
      test.toml:3: (top level): syntax error: did not find expected node content at line 3 column 1, while parsing a flow node
    ");
}

#[test]
fn schema_errors_name_field_paths_and_lines() {
    let text = r#"
[server]
listen = 8848

[[backends]]
id = "mock"
dialect = "mock"
models = [{ id = "echo" }]

[[backends]]
id = "bad/id"
dialect = "openai"
endpoint = "http://127.0.0.1:1/v1"
credential = "secret"
colour = "blue"
models = [
  { id = "a" },
  { name = "b" },
]

[aliases]
default = "mock/echo"
"#;
    insta::assert_snapshot!(toml(text));
}

#[test]
fn empty_and_missing_sections_are_reported() {
    insta::assert_snapshot!(toml(
        "[[backends]]\nid = \"x\"\ndialect = \"mock\"\nmodels = []\n"
    ));
    insta::assert_snapshot!(toml(""));
}

#[test]
fn semantic_errors_name_field_paths() {
    let text = r#"
[server]
listen = "localhost"

[[backends]]
id = "a"
dialect = "openai"
endpoint = "ftp://example.test"
models = [{ id = "m" }, { id = "m" }]

[[backends]]
id = "a"
dialect = "mock"
endpoint = "not a url"
credential = { env = "BAD=NAME" }
models = [{ id = "n" }]

[aliases]
fast = "a/missing"
"#;
    insta::assert_snapshot!(toml(text));
}

#[test]
fn json_and_yaml_configs_are_read_too() {
    let json = r#"{"backends":[{"id":"mock","dialect":"mock","models":[{"id":"echo"}]}],"aliases":{"default":"mock/echo"}}"#;
    assert_eq!(check(json, Format::Json), "ok");
    let yaml = "backends:\n  - id: mock\n    dialect: mock\n    models:\n      - id: echo\naliases:\n  default: mock/echo\n";
    assert_eq!(check(yaml, Format::Yaml), "ok");
    let bad_yaml = "backends:\n  - id: mock\n    dialect: mock\n    models: []\naliases:\n  default: mock/echo\n";
    insta::assert_snapshot!(check(bad_yaml, Format::Yaml), @"
    test.toml has 1 error:
      test.toml: backends[0].models: [] has less than 1 item
    ");
}
