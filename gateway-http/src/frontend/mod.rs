//! Frontends: one module per client dialect, plus routes and helpers shared
//! by all.
//!
//! Each dialect owns its error rendering, so every SDK sees errors in the
//! shape it parses.

pub(crate) mod anthropic;
mod coalesce;
pub(crate) mod common;
mod exchange;
pub(crate) mod genai;
pub(crate) mod openai;
mod shared;
mod tokens;
mod usage;
