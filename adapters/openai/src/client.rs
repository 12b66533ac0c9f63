//! The HTTP side of the adapter: one pooled client per backend, credential
//! headers, and transport errors mapped to [`GatewayError`].

use std::time::Duration;

use bytes::Bytes;
use gateway_core::GatewayError;
use gateway_core::registry::BuildError;
use gateway_core::secret::Secret;
use http::HeaderValue;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

/// How long to wait for a TCP (and TLS) connection to the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend's base URL, credential and connection pool.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// The endpoint with exactly one trailing slash.
    base: String,
    authorization: Option<HeaderValue>,
    client: reqwest::Client,
}

impl Upstream {
    pub(crate) fn new(
        endpoint: &url::Url,
        credential: Option<&Secret>,
    ) -> Result<Self, BuildError> {
        let authorization = credential
            .map(|secret| {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
                    .map_err(|_| {
                        BuildError::field(
                            "credential",
                            "the credential contains characters not allowed in an HTTP header",
                        )
                    })?;
                value.set_sensitive(true);
                Ok::<_, BuildError>(value)
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|err| BuildError {
                field: None,
                message: format!("cannot build the HTTP client: {err}"),
            })?;
        let mut base = endpoint.as_str().trim_end_matches('/').to_owned();
        base.push('/');
        Ok(Self {
            base,
            authorization,
            client,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    /// POSTs a JSON body to `path` (relative to the endpoint). Returns the
    /// response whatever its status; fails only when none arrived.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::Response, GatewayError> {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let request = self
            .client
            .post(self.url(path))
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(body);
        self.authorize(request)
            .send()
            .await
            .map_err(transport_error)
    }

    /// GETs `path` (relative to the endpoint).
    pub(crate) async fn get(&self, path: &str) -> Result<reqwest::Response, GatewayError> {
        let request = self.client.get(self.url(path));
        self.authorize(request)
            .send()
            .await
            .map_err(transport_error)
    }
}

/// Maps a transport failure; the URL is left out of the message because an
/// endpoint may carry a key in its query string.
pub(crate) fn transport_error(err: reqwest::Error) -> GatewayError {
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
