//! modelgate's HTTP layer: the axum server with its dialect frontends, and
//! the pieces of the `modelgate` binary.
//!
//! Architecture invariant: this is the only crate that knows HTTP server
//! types. Frontends decode into `gateway_core` types, call the
//! [`gateway_core::Gateway`], and encode its answers; they never call an
//! adapter directly.

pub mod adapters;
pub mod app;
mod auth;
pub mod cli;
mod frontend;
mod headers;
mod http1;
mod listen;
#[allow(unsafe_code)]
pub mod plugins;
mod request_id;
mod server;

pub use server::{ServeOptions, serve};
