//! The dialect name → adapter factory map.
//!
//! Built-in adapters register an [`AdapterFactory`] with
//! `inventory::submit!`; run-time plugins add theirs through
//! [`Registry::insert`]. The gateway builds one adapter per configured
//! backend from it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::adapter::ProviderAdapter;
use crate::secret::Secret;

/// The dialects of this repository's own adapter crates; each is a Cargo
/// feature of the same name in `gateway-http`, so a config naming one that a
/// build left out can say which feature to enable.
pub const FIRST_PARTY_DIALECTS: &[&str] = &["anthropic", "gemini", "mock", "ollama", "openai"];

/// What a factory knows about the backend it builds an adapter for.
#[derive(Debug, Clone)]
pub struct BackendContext {
    /// The backend's id from config.
    pub id: String,
    /// The base URL the provider's own SDK uses, when configured.
    pub endpoint: Option<url::Url>,
    /// The resolved credential, or `None` for `credential = "none"`.
    pub credential: Option<Secret>,
    /// The backend's `options` table: dialect-specific settings, for
    /// plugins (built-in dialects take none).
    pub options: serde_json::Map<String, serde_json::Value>,
    /// How long to wait for a connection to the upstream
    /// (`reliability.connect_timeout_ms`); `None` leaves it to the adapter.
    pub connect_timeout: Option<std::time::Duration>,
}

/// Why a factory could not build an adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// The backend field at fault (`endpoint`, `credential`), if one is.
    pub field: Option<&'static str>,
    /// What is wrong, for the operator.
    pub message: String,
}

impl BuildError {
    /// An error about one backend field.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            message: message.into(),
        }
    }
}

/// The signature of a built-in factory's constructor.
pub type BuildFn = fn(&BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError>;

/// A compiled-in dialect, registered with
/// `gateway_core::inventory::submit!(AdapterFactory { .. })`.
#[derive(Debug)]
pub struct AdapterFactory {
    /// The dialect name used in `[[backends]] dialect = ".."`.
    pub dialect: &'static str,
    /// One line for `modelgate` listings.
    pub description: &'static str,
    /// Builds the adapter for one backend.
    pub build: BuildFn,
}

inventory::collect!(AdapterFactory);

/// Anything that can build adapters for a dialect: a compiled-in
/// [`AdapterFactory`] or a loaded plugin.
pub trait DialectProvider: Send + Sync {
    /// The dialect name.
    fn dialect(&self) -> &str;
    /// Where it comes from, for listings (`built-in`, a plugin path).
    fn origin(&self) -> String;
    /// Builds the adapter for one backend.
    fn build(&self, backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError>;
}

impl DialectProvider for AdapterFactory {
    fn dialect(&self) -> &str {
        self.dialect
    }

    fn origin(&self) -> String {
        "built-in".to_owned()
    }

    fn build(&self, backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
        (self.build)(backend)
    }
}

/// A dialect name that is registered twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dialect '{dialect}' from {new_origin} collides with the one from {existing_origin}")]
pub struct DuplicateDialect {
    /// The contested name.
    pub dialect: String,
    /// Where the registered one came from.
    pub existing_origin: String,
    /// Where the rejected one came from.
    pub new_origin: String,
}

/// Maps dialect names to the providers that build their adapters.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, Arc<dyn DialectProvider>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.providers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry, for tests that register by hand.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every dialect compiled into this binary.
    pub fn builtin() -> Self {
        let mut registry = Self::empty();
        for factory in inventory::iter::<AdapterFactory> {
            // Two crates claiming one name is a build mistake; keep the first
            // and say so rather than fail every start.
            if let Err(err) = registry.insert(Arc::new(StaticFactory(factory))) {
                tracing::warn!("{err}");
            }
        }
        registry
    }

    /// Adds a provider; refuses a name that is taken.
    pub fn insert(&mut self, provider: Arc<dyn DialectProvider>) -> Result<(), DuplicateDialect> {
        let name = provider.dialect().to_owned();
        if let Some(existing) = self.providers.get(&name) {
            return Err(DuplicateDialect {
                dialect: name,
                existing_origin: existing.origin(),
                new_origin: provider.origin(),
            });
        }
        self.providers.insert(name, provider);
        Ok(())
    }

    /// The provider for `dialect`.
    pub fn get(&self, dialect: &str) -> Option<&Arc<dyn DialectProvider>> {
        self.providers.get(dialect)
    }

    /// Registered dialect names, sorted.
    pub fn dialects(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }
}

/// Adapts the `&'static` inventory item to the shared trait object.
struct StaticFactory(&'static AdapterFactory);

impl DialectProvider for StaticFactory {
    fn dialect(&self) -> &str {
        self.0.dialect
    }

    fn origin(&self) -> String {
        self.0.origin()
    }

    fn build(&self, backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
        if !backend.options.is_empty() {
            return Err(BuildError::field(
                "options",
                format!("the built-in '{}' dialect takes no options", self.0.dialect),
            ));
        }
        (self.0.build)(backend)
    }
}
