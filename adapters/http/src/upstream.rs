//! One pooled client per backend, its fixed headers, and transport errors.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use gateway_core::registry::BuildError;
use gateway_core::{GatewayError, PassthroughRequest, PassthroughResponse};
use http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue};

/// How long to wait for a TCP (and TLS) connection to the upstream when the
/// backend's config does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend's base URL, fixed headers (credentials, API version) and
/// connection pool, built once per backend.
#[derive(Debug)]
pub struct Upstream {
    /// The endpoint with exactly one trailing slash.
    base: String,
    /// Sends the backend's fixed headers on every request, without a
    /// per-request copy.
    client: reqwest::Client,
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
    pub fn new(
        endpoint: &url::Url,
        headers: Vec<(HeaderName, HeaderValue)>,
        connect_timeout: Option<Duration>,
    ) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .default_headers(headers.into_iter().collect())
            .connect_timeout(connect_timeout.unwrap_or(CONNECT_TIMEOUT))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|err| BuildError {
                field: None,
                message: format!("cannot build the HTTP client: {err}"),
            })?;
        let mut base = endpoint.as_str().trim_end_matches('/').to_owned();
        base.push('/');
        Ok(Self { base, client })
    }

    /// The full URL of `path` (relative to the endpoint).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
    ) -> Result<reqwest::Response, GatewayError> {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        // Caller headers forwarded on pass-through override the defaults of
        // the same name (reqwest fills in defaults only where absent).
        self.client
            .post(self.url(path))
            .headers(extra.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(body)
            .send()
            .await
            .map_err(transport_error)
    }

    /// Serialises `body`, POSTs it to `path` and returns the response when it
    /// is a success; an upstream error answer becomes the matching
    /// [`GatewayError`] (translated path, DESIGN §4).
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        stream: bool,
    ) -> Result<reqwest::Response, GatewayError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|err| GatewayError::internal(format!("cannot encode the request: {err}")))?;
        let response = self
            .post(path, Bytes::from(bytes), stream, &HeaderMap::new())
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_answer(response).await)
    }

    /// Forwards a same-dialect request untouched and returns the upstream's
    /// answer untouched, whatever its status.
    pub async fn passthrough(
        &self,
        request: PassthroughRequest,
    ) -> Result<PassthroughResponse, GatewayError> {
        let response = self
            .post(
                &request.operation,
                request.body,
                request.stream,
                &request.headers,
            )
            .await?;
        Ok(passthrough_response(response))
    }

    /// GETs `path` (relative to the endpoint).
    pub async fn get(&self, path: &str) -> Result<reqwest::Response, GatewayError> {
        self.client
            .get(self.url(path))
            .send()
            .await
            .map_err(transport_error)
    }
}

/// An upstream error answer as a [`GatewayError`]: its status, the message
/// its body carries, and its `Retry-After` (whole seconds) when it sent one.
pub async fn error_answer(response: reqwest::Response) -> GatewayError {
    let status = response.status().as_u16();
    let retry_after = gateway_core::error::retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    let mut err = GatewayError::from_upstream_answer(status, &body);
    err.retry_after = retry_after;
    err
}

/// An upstream answer returned untouched: status, content type, retry-after
/// and the body stream.
pub fn passthrough_response(response: reqwest::Response) -> PassthroughResponse {
    let status = response.status();
    let mut headers = HeaderMap::new();
    for name in [CONTENT_TYPE, RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            headers.insert(name, value.clone());
        }
    }
    PassthroughResponse {
        status,
        headers,
        body: Box::pin(response.bytes_stream().map_err(transport_error)),
    }
}

/// Maps a transport failure; the URL is left out of the message because an
/// endpoint may carry a key in its query string.
pub fn transport_error(err: reqwest::Error) -> GatewayError {
    let err = err.without_url();
    let detail = std::error::Error::source(&err)
        .map(|source| format!("{err}: {source}"))
        .unwrap_or_else(|| err.to_string());
    if err.is_timeout() {
        GatewayError::timeout(format!("the upstream timed out: {detail}"))
    } else if err.is_connect() {
        GatewayError::connect(format!("cannot connect to the upstream: {detail}"))
    } else {
        GatewayError::connect(format!("the upstream connection failed: {detail}"))
    }
}

/// The whole body of a successful upstream answer.
pub async fn body_bytes(response: reqwest::Response) -> Result<Bytes, GatewayError> {
    response.bytes().await.map_err(transport_error)
}
