//! HTTP plumbing every network adapter needs, written once: a connection pool
//! per backend with its credential headers ([`Upstream`]), transport
//! errors mapped to [`GatewayError`](gateway_core::GatewayError), upstream
//! SSE and NDJSON bodies decoded into canonical events ([`decode_sse`],
//! [`decode_ndjson`]), and
//! pass-through responses ([`passthrough_response`]).

pub mod clock;
mod http1;
mod ndjson;
mod outgoing;
mod pool;
mod sse;
mod upstream;
pub mod wire;

pub use ndjson::decode_ndjson;
pub use pool::UpstreamBody;
pub use sse::decode_sse;
pub use upstream::{
    PassthroughFuture, Upstream, UpstreamResponse, body_bytes, body_stream, error_answer,
    passthrough_response, secret_header, transport_error,
};
