//! A backend's requests: its endpoint, its fixed headers, its connection
//! pool, and transport errors.
//!
//! Requests go over hyper's connections with a pool of our own (see
//! [`crate::pool`]) behind a rustls connector, not reqwest: the gateway
//! always knows the exact request it sends, and reqwest's conveniences cost
//! on every call (it parsed the URL three times per request, for its
//! redirect policy and `Response::url`, about 15% of the gateway's
//! instructions on pass-through).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use gateway_core::registry::BuildError;
use gateway_core::{GatewayError, PassthroughRequest, PassthroughResponse, SplicedBody};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyDataStream, BodyExt};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;

use crate::outgoing::{FixedHeaders, Outgoing};
use crate::pool::{BoxError, Pools, SendError, UpstreamBody};

/// How long to wait for a TCP (and TLS) connection to the upstream when the
/// backend's config does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An upstream's answer: status, the headers the gateway reads
/// (`Content-Type`, `Content-Length`, `Retry-After`; the rest are dropped
/// as the head is parsed) and the body as it arrives.
pub type UpstreamResponse = http::Response<UpstreamBody>;

/// A backend's base URL, fixed headers (credentials, API version) and
/// connection pool, built once per backend.
#[derive(Debug)]
pub struct Upstream {
    /// The endpoint's path with exactly one trailing slash (`/v1/`): the
    /// origin is the pool's.
    base_path: String,
    /// Sent on every request (credentials marked sensitive), with the
    /// origin's `Host`.
    headers: FixedHeaders,
    /// Kept-alive HTTP/1.1 and HTTP/2 (negotiated by ALPN over TLS)
    /// connections, one pool per thread.
    pools: Pools,
}

/// A header value marked sensitive, so it is never printed.
pub fn secret_header(value: &str) -> Result<HeaderValue, BuildError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        BuildError::field(
            "credential",
            "the credential contains characters not allowed in an HTTP header",
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

impl Upstream {
    /// A client for `endpoint` that sends `headers` on every request and
    /// gives up connecting after `connect_timeout` (10 s when `None`).
    /// `https` endpoints are verified against the Mozilla roots bundled in
    /// the binary.
    pub fn new(
        endpoint: &url::Url,
        headers: Vec<(HeaderName, HeaderValue)>,
        connect_timeout: Option<Duration>,
    ) -> Result<Self, BuildError> {
        Self::trusting(endpoint, headers, connect_timeout, Vec::new())
    }

    /// Like [`Upstream::new`], also trusting the certificates `roots`: for
    /// an endpoint whose certificate a private CA signed (self-hosted
    /// servers, and tests with a generated certificate). The config file
    /// does not offer this yet.
    pub fn trusting(
        endpoint: &url::Url,
        headers: Vec<(HeaderName, HeaderValue)>,
        connect_timeout: Option<Duration>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, BuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout.unwrap_or(CONNECT_TIMEOUT)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(roots)?)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let mut base = endpoint.as_str().trim_end_matches('/').to_owned();
        base.push('/');
        let unusable = || BuildError {
            field: None,
            message: format!("the endpoint {base} has no usable host"),
        };
        let uri = Uri::try_from(base.as_str()).map_err(|_| unusable())?;
        let (Some(scheme), Some(authority), Some(base_path)) =
            (uri.scheme(), uri.authority(), uri.path_and_query())
        else {
            return Err(unusable());
        };
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| unusable())?;
        let pools = Pools::new(connector, scheme.clone(), authority.clone());
        Ok(Self {
            base_path: base_path.as_str().to_owned(),
            headers: FixedHeaders::new(headers.into_iter().collect(), host),
            pools,
        })
    }

    /// Sends one request with the backend's headers, then `extra`
    /// (forwarded caller headers, which override the backend's of the same
    /// name), then the defaults `defaults` where still absent.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: &SplicedBody,
        extra: &HeaderMap,
        defaults: &[(HeaderName, &'static str)],
    ) -> Result<UpstreamResponse, GatewayError> {
        let request = Outgoing {
            method,
            base_path: &self.base_path,
            path,
            fixed: &self.headers,
            extra,
            defaults,
            body,
        };
        request
            .check()
            .map_err(|err| GatewayError::invalid_request(err.to_string()))?;
        self.pools.send(&request).await.map_err(send_error)
    }

    /// POSTs a JSON body to `path` (relative to the endpoint) with the
    /// backend's headers plus `extra` (forwarded caller headers). Returns the
    /// response whatever its status; fails only when none arrived.
    pub async fn post(
        &self,
        path: &str,
        body: Bytes,
        stream: bool,
        extra: &HeaderMap,
    ) -> Result<UpstreamResponse, GatewayError> {
        let body = SplicedBody::from(body);
        self.send(Method::POST, path, &body, extra, post_headers(stream))
            .await
    }

    /// Serialises `body`, POSTs it to `path` and returns the response when it
    /// is a success; an upstream error answer becomes the matching
    /// [`GatewayError`] (translated path, DESIGN §4).
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        stream: bool,
    ) -> Result<UpstreamResponse, GatewayError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|err| GatewayError::internal(format!("cannot encode the request: {err}")))?;
        self.post_encoded(path, Bytes::from(bytes), stream).await
    }

    /// [`Upstream::post_json`] for a body already serialised.
    pub async fn post_encoded(
        &self,
        path: &str,
        body: Bytes,
        stream: bool,
    ) -> Result<UpstreamResponse, GatewayError> {
        let response = self.post(path, body, stream, &HeaderMap::new()).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_answer(response).await)
    }

    /// Forwards a same-dialect request untouched and returns the upstream's
    /// answer untouched, whatever its status; boxed, as
    /// [`ProviderAdapter::passthrough`](gateway_core::ProviderAdapter::passthrough)
    /// returns it, so that an adapter hands it on without an async level
    /// of its own.
    ///
    /// The request is taken apart before the future is made: an `async fn`
    /// would keep the whole request beside the parts it moved out, and the
    /// future (boxed on every request) would grow past 1 KiB, where the
    /// allocator leaves its fast path. For the same reason the body is
    /// lent to `send` rather than moved (984 bytes, against 1,112 with the
    /// body held twice).
    pub fn passthrough(&self, request: PassthroughRequest) -> PassthroughFuture<'_> {
        let PassthroughRequest {
            operation,
            body,
            stream,
            headers,
        } = request;
        Box::pin(async move {
            // `send` straight away rather than through `post`: one async
            // level fewer.
            let response = self
                .send(
                    Method::POST,
                    &operation,
                    &body,
                    &headers,
                    post_headers(stream),
                )
                .await?;
            Ok(passthrough_response(response))
        })
    }

    /// GETs `path` (relative to the endpoint).
    pub async fn get(&self, path: &str) -> Result<UpstreamResponse, GatewayError> {
        self.send(
            Method::GET,
            path,
            &SplicedBody::default(),
            &HeaderMap::new(),
            &[],
        )
        .await
    }
}

/// The boxed future of [`Upstream::passthrough`]: what
/// [`ProviderAdapter::passthrough`](gateway_core::ProviderAdapter::passthrough)
/// returns once `async_trait` has desugared it.
pub type PassthroughFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PassthroughResponse, GatewayError>> + Send + 'a>>;

/// The default headers of a POST with a JSON body, answered with JSON or,
/// for a stream, with server-sent events.
fn post_headers(stream: bool) -> &'static [(HeaderName, &'static str)] {
    const JSON: &[(HeaderName, &str)] = &[
        (CONTENT_TYPE, "application/json"),
        (ACCEPT, "application/json"),
    ];
    const EVENTS: &[(HeaderName, &str)] = &[
        (CONTENT_TYPE, "application/json"),
        (ACCEPT, "text/event-stream"),
    ];
    if stream { EVENTS } else { JSON }
}

/// TLS for upstreams: rustls with ring, the bundled Mozilla roots plus
/// `extra`, no client certificate. (The connector adds ALPN for HTTP/2 and
/// HTTP/1.1.)
fn tls_config(extra: Vec<CertificateDer<'static>>) -> Result<rustls::ClientConfig, BuildError> {
    let tls_error = |err: rustls::Error| BuildError {
        field: None,
        message: format!("cannot set up TLS: {err}"),
    };
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for root in extra {
        roots.add(root).map_err(tls_error)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_error)?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// An upstream error answer as a [`GatewayError`]: its status, the message
/// its body carries, and its `Retry-After` (whole seconds) when it sent one.
pub async fn error_answer(response: UpstreamResponse) -> GatewayError {
    let status = response.status().as_u16();
    let retry_after = gateway_core::error::retry_after(response.headers());
    let body = body_bytes(response).await.unwrap_or_default();
    let mut err = GatewayError::from_upstream_answer(status, &body);
    err.retry_after = retry_after;
    err
}

/// An upstream answer returned untouched: status, content type, retry-after
/// and the body stream; and the content length of a body that is not an
/// event stream (those are the only bodies the gateway never alters, and
/// with the length the client's answer needs no chunked framing).
pub fn passthrough_response(response: UpstreamResponse) -> PassthroughResponse {
    let (parts, body) = response.into_parts();
    // The answer carries only the headers the gateway reads (see
    // `http1::head::ANSWER_HEADERS`), all of them passed on.
    let mut headers = parts.headers;
    if gateway_core::adapter::is_event_stream(&headers) {
        headers.remove(CONTENT_LENGTH);
    }
    PassthroughResponse {
        status: parts.status,
        headers,
        body: Box::pin(body_stream(body)),
    }
}

/// The body of an answer as a stream of chunks, as they arrive.
pub fn body_stream(
    body: UpstreamBody,
) -> impl Stream<Item = Result<Bytes, GatewayError>> + Send + 'static {
    BodyDataStream::new(body).map_err(transport_error)
}

/// The whole body of a successful upstream answer.
pub async fn body_bytes(response: UpstreamResponse) -> Result<Bytes, GatewayError> {
    response
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(transport_error)
}

/// Maps a failure while reading an answer's body.
pub fn transport_error(err: BoxError) -> GatewayError {
    let detail = chain(err.as_ref());
    if timed_out(err.as_ref()) {
        GatewayError::timeout(format!("the upstream timed out: {detail}"))
    } else {
        GatewayError::connect(format!("the upstream connection failed: {detail}"))
    }
}

/// Whether a socket operation timed out somewhere in `err`'s chain.
fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    sources(err).any(|source| {
        source
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// Maps a failure to get an answer at all. The URL is never part of the
/// message because an endpoint may carry a key in its query string (hyper's
/// errors do not include it).
fn send_error(err: SendError) -> GatewayError {
    let (err, connecting): (&(dyn std::error::Error + 'static), bool) = match &err {
        SendError::Connect(err) => (err.as_ref(), true),
        SendError::Transport(err) => (err.as_ref(), false),
    };
    let detail = chain(err);
    if timed_out(err) {
        GatewayError::timeout(format!("the upstream timed out: {detail}"))
    } else if connecting {
        GatewayError::connect(format!("cannot connect to the upstream: {detail}"))
    } else {
        GatewayError::connect(format!("the upstream connection failed: {detail}"))
    }
}

/// `err` and its sources, outermost first.
fn sources<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |err| err.source())
}

/// `err` and its sources joined with ": ", skipping a source whose text its
/// parent already shows.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    for source in sources(err) {
        let part = source.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}
