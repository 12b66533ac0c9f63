//! Links the compiled-in adapter crates so their `inventory` registrations
//! survive linking: a crate the binary never names is never linked
//! (rust-lang/rust#68417). One line per adapter, each behind its feature.

#[cfg(feature = "anthropic")]
use adapter_anthropic as _;
#[cfg(feature = "gemini")]
use adapter_gemini as _;
#[cfg(feature = "mock")]
use adapter_mock as _;
#[cfg(feature = "ollama")]
use adapter_ollama as _;
#[cfg(feature = "openai")]
use adapter_openai as _;

/// The dialects this build was compiled with, by feature; a test checks that
/// the registry holds exactly these.
pub const ENABLED: &[&str] = &[
    #[cfg(feature = "anthropic")]
    "anthropic",
    #[cfg(feature = "gemini")]
    "gemini",
    #[cfg(feature = "mock")]
    "mock",
    #[cfg(feature = "ollama")]
    "ollama",
    #[cfg(feature = "openai")]
    "openai",
];
