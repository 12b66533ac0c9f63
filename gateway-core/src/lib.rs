//! The heart of modelgate: everything that is independent of HTTP servers and
//! of any one provider's wire format.
//!
//! * [`types`]: the canonical request, response and stream events every
//!   frontend decodes into and every adapter encodes from.
//! * [`error`]: the one error model ([`GatewayError`]) every layer returns.
//! * [`adapter`]: the [`ProviderAdapter`] trait an upstream dialect implements.
//! * [`registry`]: the dialect name → [`AdapterFactory`] map, fed by `inventory`.
//! * [`config`]: the config file model, its loader and validation.
//! * [`router`]: DESIGN §4's deterministic name resolution.
//! * [`stream`]: stream discipline, aggregation, and the [`WireDecoder`]
//!   trait dialects implement for their stream formats.
//! * [`body`]: reading `model` and `stream` from a JSON body and rewriting
//!   `model` in place, for routing and pass-through.
//! * [`json`]: a strict JSON reader for the common bodies of the hot path,
//!   with serde behind it for everything else.
//! * [`param`]: paths to request parameters, spelled out only in errors.
//! * [`secret`]: credentials that never print.
//! * [`pipeline`]: the stages between router and adapter: keys, limits,
//!   retries, breakers, timeouts, backend concurrency.
//! * [`gateway`]: the library API that ties them together.
//!
//! Architecture invariant: this crate knows nothing of axum, reqwest or any
//! provider's JSON; it does not start a runtime.

pub mod adapter;
pub mod body;
pub mod config;
pub mod error;
pub mod gateway;
pub mod json;
pub mod param;
pub mod pipeline;
pub mod registry;
pub mod router;
pub mod secret;
pub mod stream;
pub mod types;

/// The map type of the gateway's lookup tables, built once from the config
/// and read on every request: foldhash instead of SipHash, whose HashDoS
/// resistance buys nothing for keys an operator wrote.
pub(crate) type LookupMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use adapter::{
    ChatStream, PassthroughRequest, PassthroughResponse, ProviderAdapter, UpstreamBody,
};
pub use body::SplicedBody;
pub use error::{ErrorKind, ErrorOrigin, GatewayError};
pub use gateway::Gateway;
pub use param::Param;
pub use registry::{AdapterFactory, BackendContext, Registry};
pub use router::{Route, Targets};
pub use stream::WireDecoder;
pub use types::*;

/// Re-exported so adapter crates register themselves without naming
/// `inventory` as a dependency of their own.
pub use inventory;
