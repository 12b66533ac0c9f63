//! The configuration used when no file is given (DESIGN §3).

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8848";

/// The providers the embedded default adds when their key is in the
/// environment: (backend id, dialect, endpoint, key variable, models).
const KEYED_PROVIDERS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "openai",
        "openai",
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        &["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini"],
    ),
    (
        "anthropic",
        "anthropic",
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        &["claude-sonnet-4-5", "claude-haiku-4-5"],
    ),
    (
        "gemini",
        "gemini",
        "https://generativelanguage.googleapis.com",
        "GEMINI_API_KEY",
        &["gemini-2.5-flash", "gemini-2.5-pro"],
    ),
];

/// The embedded default config as TOML: a deterministic `mock` backend
/// behind `default`, plus a backend for each provider whose key variable is
/// set according to `env_is_set` and whose dialect `dialect_available`
/// accepts (a build without that adapter skips it rather than failing).
pub fn embedded_default(
    env_is_set: impl Fn(&str) -> bool,
    dialect_available: impl Fn(&str) -> bool,
) -> String {
    let mut text = String::from(
        "# modelgate's embedded default configuration.\n\
         [server]\n\
         listen = \"127.0.0.1:8848\"\n\n\
         [[backends]]\n\
         id = \"mock\"\n\
         dialect = \"mock\"\n\
         models = [{ id = \"echo\" }]\n",
    );
    for (id, dialect, endpoint, var, models) in KEYED_PROVIDERS {
        if !env_is_set(var) || !dialect_available(dialect) {
            continue;
        }
        let models: Vec<String> = models
            .iter()
            .map(|model| format!("{{ id = \"{model}\" }}"))
            .collect();
        text.push_str(&format!(
            "\n[[backends]]\nid = \"{id}\"\ndialect = \"{dialect}\"\nendpoint = \"{endpoint}\"\n\
             credential = {{ env = \"{var}\" }}\nmodels = [{}]\n",
            models.join(", ")
        ));
    }
    text.push_str("\n[aliases]\ndefault = \"mock/echo\"\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, parse_str};

    #[test]
    fn bare_default_is_mock_only_and_valid() {
        let text = embedded_default(|_| false, |_| true);
        let config = parse_str(&text, Format::Toml, "<embedded default>").expect("valid");
        assert_eq!(config.backends.len(), 1);
        assert_eq!(config.aliases["default"], "mock/echo".into());
    }

    #[test]
    fn keys_in_the_environment_add_backends_whose_dialect_is_built() {
        let text = embedded_default(|var| var == "OPENAI_API_KEY", |d| d != "gemini");
        let config = parse_str(&text, Format::Toml, "<embedded default>").expect("valid");
        let ids: Vec<&str> = config.backends.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["mock", "openai"]);
        let skipped = embedded_default(|_| true, |d| d == "mock" || d == "openai");
        let config = parse_str(&skipped, Format::Toml, "<embedded default>").expect("valid");
        assert_eq!(config.backends.len(), 2);
    }
}
