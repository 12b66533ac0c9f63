//! HTTP plumbing every network adapter needs, written once: one pooled
//! client per backend with its credential headers ([`Upstream`]), transport
//! errors mapped to [`GatewayError`](gateway_core::GatewayError), upstream
//! SSE bodies decoded into canonical events ([`decode_sse`]), and
//! pass-through responses ([`passthrough_response`]).

mod sse;
mod upstream;

pub use sse::decode_sse;
pub use upstream::{Upstream, error_answer, passthrough_response, secret_header, transport_error};
