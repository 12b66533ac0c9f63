//! Reading a config file: parse → JSON Schema check → typed model → semantic
//! checks.

use std::path::Path;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::error::{ConfigError, ConfigIssue};
use super::path::FieldPath;
use super::{Config, semantic};

/// The syntaxes a config file may be written in, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.toml` (and anything without a known extension).
    Toml,
    /// `.json`.
    Json,
    /// `.yaml` / `.yml`.
    Yaml,
}

impl Format {
    /// The format a path's extension names; TOML by default.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|ext| ext.to_str()) {
            Some("json") => Format::Json,
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Toml,
        }
    }
}

/// The config's JSON Schema, generated from the Rust types. The checked-in
/// `schema/modelgate.schema.json` is this, pretty-printed.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(Config).to_value())
}

/// [`schema`] as the pretty JSON text that is checked in, newline-terminated.
pub fn schema_json() -> String {
    let mut text = serde_json::to_string_pretty(schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn validator() -> Result<&'static jsonschema::Validator, String> {
    static VALIDATOR: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::validator_for(schema()).map_err(|err| err.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Reads and validates the file at `path`.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError::whole_file(&name, format!("cannot read the file: {err}")))?;
    parse_str(&text, Format::from_path(path), &name)
}

/// Finds the config the way DESIGN §3 orders it: `explicit` (`--config`),
/// then `$MODELGATE_CONFIG` (passed in as `env_path`), then
/// `./modelgate.toml`, then the embedded default text. Returns the config and
/// the name of the source it came from.
pub fn load(
    explicit: Option<&Path>,
    env_path: Option<&Path>,
    embedded_default: impl FnOnce() -> String,
) -> Result<(Config, String), ConfigError> {
    let local = Path::new("modelgate.toml");
    let chosen = explicit
        .or(env_path)
        .or_else(|| local.is_file().then_some(local));
    match chosen {
        Some(path) => Ok((load_file(path)?, path.display().to_string())),
        None => {
            let name = "<embedded default>";
            let config = parse_str(&embedded_default(), Format::Toml, name)?;
            Ok((config, name.to_owned()))
        }
    }
}

/// Parses and validates config `text` written in `format`; `source_name`
/// labels the errors.
pub fn parse_str(text: &str, format: Format, source_name: &str) -> Result<Config, ConfigError> {
    let fail = |issues: Vec<ConfigIssue>| ConfigError {
        source_name: source_name.to_owned(),
        issues,
    };
    let value = parse_syntax(text, format).map_err(|issue| fail(vec![issue]))?;

    let validator = validator().map_err(|err| {
        fail(vec![ConfigIssue::new(
            FieldPath::root(),
            format!("internal error: the config schema does not compile: {err}"),
        )])
    })?;
    let mut issues: Vec<ConfigIssue> = validator.iter_errors(&value).map(schema_issue).collect();
    if !issues.is_empty() {
        locate(&mut issues, text, format);
        return Err(fail(issues));
    }

    let config: Config = serde_path_to_error::deserialize(&value).map_err(|err| {
        let path = FieldPath::from_json_pointer(&pointer_of(err.path()));
        let mut issues = vec![ConfigIssue::new(path, err.inner().to_string())];
        locate(&mut issues, text, format);
        fail(issues)
    })?;

    let mut issues = semantic::check(&config);
    if !issues.is_empty() {
        locate(&mut issues, text, format);
        return Err(fail(issues));
    }
    Ok(config)
}

/// Adds line numbers where the format allows finding them.
fn locate(issues: &mut [ConfigIssue], text: &str, format: Format) {
    if format != Format::Toml {
        return;
    }
    for issue in issues.iter_mut() {
        if issue.line.is_none() {
            issue.line = issue.path.line_in_toml(text);
        }
    }
    issues.sort_by_key(|issue| issue.line.unwrap_or(usize::MAX));
}

fn parse_syntax(text: &str, format: Format) -> Result<Value, ConfigIssue> {
    let syntax_issue = |message: String, line: Option<usize>| ConfigIssue {
        path: FieldPath::root(),
        message: format!("syntax error: {message}"),
        line,
    };
    match format {
        Format::Toml => toml::from_str::<Value>(text).map_err(|err| {
            let line = err
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            syntax_issue(err.message().trim().to_owned(), line)
        }),
        Format::Json => serde_json::from_str::<Value>(text)
            .map_err(|err| syntax_issue(err.to_string(), Some(err.line()))),
        Format::Yaml => serde_yaml_ng::from_str::<Value>(text).map_err(|err| {
            let line = err.location().map(|location| location.line());
            syntax_issue(err.to_string(), line)
        }),
    }
}

fn schema_issue(error: jsonschema::ValidationError<'_>) -> ConfigIssue {
    let mut path = FieldPath::from_json_pointer(error.instance_path().as_str());
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default().to_owned();
            path = path.key(name);
            "is required".to_owned()
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            if let [single] = unexpected.as_slice() {
                path = path.key(single.clone());
                "is not a known setting here".to_owned()
            } else {
                format!("unknown settings: {}", unexpected.join(", "))
            }
        }
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. }
            if path.to_string().ends_with("credential") =>
        {
            "expected \"none\", { env = \"VAR\" } or { inline = \"...\" }".to_owned()
        }
        _ => error.to_string(),
    };
    ConfigIssue::new(path, message)
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => pointer.push_str(variant),
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}
