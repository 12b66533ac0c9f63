//! The checked-in schema is current, every example config is valid, and the
//! registry holds exactly the dialects whose features are enabled.

use std::path::{Path, PathBuf};

use gateway_core::config::{load_file, schema_json};
use gateway_core::gateway::MissingCredential;
use gateway_core::{Gateway, Registry};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn checked_in_schema_is_current() {
    let path = repo_root().join("schema/modelgate.schema.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == schema_json(),
        "schema/modelgate.schema.json is stale: run `cargo xtask schema` and commit it"
    );
}

#[test]
fn every_example_config_is_valid() {
    let dir = repo_root().join("schema/examples");
    let mut checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("schema/examples exists")
        .map(|entry| entry.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let config = load_file(&path).unwrap_or_else(|err| panic!("{err}"));
        Gateway::build(
            &config,
            &Registry::builtin(),
            &|_| None,
            MissingCredential::Warn,
            &path.display().to_string(),
        )
        .unwrap_or_else(|err| panic!("{err}"));
        checked += 1;
    }
    assert!(
        checked >= 4,
        "expected the example configs, found {checked}"
    );
}

#[test]
fn registry_holds_exactly_the_enabled_adapters() {
    let registered: Vec<&str> = Registry::builtin()
        .dialects()
        .map(|d| d.to_owned().leak() as &str)
        .collect();
    let mut enabled = gateway_http::adapters::ENABLED.to_vec();
    enabled.sort_unstable();
    assert_eq!(registered, enabled);
}
