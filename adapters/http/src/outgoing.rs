//! One request to an upstream as the gateway means to send it: method,
//! target, the headers in the order they go out, and the body.
//!
//! It is kept as its parts rather than as an `http::Request` because the
//! HTTP/1.1 head is written straight from them: the backend's own headers
//! are encoded once, when the backend is built, and a request adds only
//! its target and length. Merging them into a `HeaderMap` per request
//! (hashing every name twice and validating the target as a URI) cost
//! about a tenth of the gateway's instructions on pass-through; HTTP/2,
//! which needs `http` types, builds them from the same parts.

use gateway_core::body::{SplicedBody, SplicedBuf};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

use crate::wire::push_header;

/// A backend's own headers (credentials, API version), sent on every
/// request: as a map, and as the HTTP/1.1 header lines they become,
/// `Host` first.
#[derive(Debug)]
pub(crate) struct FixedHeaders {
    map: HeaderMap,
    /// `host: {host}` (unless `map` has a `Host`) and each header of
    /// `map` but the framing ones, as header lines.
    wire: Vec<u8>,
    /// The `Host` of HTTP/1.1 requests.
    host: HeaderValue,
}

impl FixedHeaders {
    /// `map` for an origin whose HTTP/1.1 `Host` is `host`.
    pub(crate) fn new(map: HeaderMap, host: HeaderValue) -> Self {
        let mut wire = Vec::new();
        if !map.contains_key(HOST) {
            push_header(&mut wire, HOST.as_str(), host.as_bytes());
        }
        for (name, value) in &map {
            if !is_framing(name) {
                push_header(&mut wire, name.as_str(), value.as_bytes());
            }
        }
        Self { map, wire, host }
    }

    /// How many headers there are.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// One request to an upstream.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    /// `POST` or `GET`.
    pub(crate) method: Method,
    /// The endpoint's path, with one trailing slash (`/v1/`).
    pub(crate) base_path: &'a str,
    /// The operation's path under `base_path` (`chat/completions`).
    pub(crate) path: &'a str,
    /// The backend's headers.
    pub(crate) fixed: &'a FixedHeaders,
    /// Forwarded caller headers, which replace the backend's of the same
    /// name.
    pub(crate) extra: &'a HeaderMap,
    /// Sent where neither the backend nor `extra` has the name.
    pub(crate) defaults: &'a [(HeaderName, &'static str)],
    /// The body, its pieces sent back to back. Borrowed: the request's
    /// future (boxed on every request) then holds one body, not two.
    pub(crate) body: &'a SplicedBody,
}

/// Why a request cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the upstream URL: {0:?} has a character a request target cannot carry")]
pub(crate) struct BadTarget(String);

impl Outgoing<'_> {
    /// Refuses a path that a request line or URI cannot carry (a space, a
    /// control character, anything beyond ASCII): adapters build paths
    /// from names a config or a caller gave.
    pub(crate) fn check(&self) -> Result<(), BadTarget> {
        if self.path.bytes().all(|byte| byte.is_ascii_graphic()) {
            Ok(())
        } else {
            Err(BadTarget(self.path.to_owned()))
        }
    }

    /// The HTTP/1.1 head: request line, `Host`, the headers, and the body's
    /// `Content-Length` (omitted for an empty GET or HEAD). Framing headers
    /// among the given ones are not written: the framing is the
    /// connection's.
    pub(crate) fn http1_head(&self) -> Vec<u8> {
        let mut head = Vec::with_capacity(
            self.method.as_str().len()
                + self.base_path.len()
                + self.path.len()
                + self.fixed.wire.len()
                + 128,
        );
        head.extend_from_slice(self.method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(self.base_path.as_bytes());
        head.extend_from_slice(self.path.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        if self.extra.is_empty() {
            head.extend_from_slice(&self.fixed.wire);
        } else {
            if !self.fixed.map.contains_key(HOST) && !self.extra.contains_key(HOST) {
                push_header(&mut head, HOST.as_str(), self.fixed.host.as_bytes());
            }
            self.each_header(|name, value| push_header(&mut head, name.as_str(), value.as_bytes()));
        }
        for (name, value) in self.missing_defaults() {
            push_header(&mut head, name.as_str(), value.as_bytes());
        }
        let length = self.body.len();
        if length > 0 || !matches!(self.method, Method::GET | Method::HEAD) {
            push_header(
                &mut head,
                CONTENT_LENGTH.as_str(),
                itoa::Buffer::new().format(length).as_bytes(),
            );
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    /// The request for HTTP/2, whose URI carries the origin's `scheme` and
    /// `authority` (and so no `Host`); framing headers are left to hyper.
    pub(crate) fn http2_request(
        &self,
        scheme: &Scheme,
        authority: &Authority,
    ) -> Result<Request<Full<SplicedBuf>>, BadTarget> {
        let target = [self.base_path, self.path].concat();
        let path = PathAndQuery::try_from(target).map_err(|_| BadTarget(self.path.to_owned()))?;
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| BadTarget(self.path.to_owned()))?;
        let mut request = Request::new(Full::new(self.body.clone().into_buf()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.reserve(self.fixed.len() + self.extra.len() + self.defaults.len());
        self.each_header(|name, value| {
            headers.append(name, value.clone());
        });
        for (name, value) in self.missing_defaults() {
            headers.insert(name, HeaderValue::from_static(value));
        }
        Ok(request)
    }

    /// Each given header in order but the framing ones: the backend's
    /// that `extra` does not replace, then `extra`'s.
    fn each_header(&self, mut visit: impl FnMut(&HeaderName, &HeaderValue)) {
        let fixed = self
            .fixed
            .map
            .iter()
            .filter(|(name, _)| !self.extra.contains_key(*name));
        for (name, value) in fixed.chain(self.extra) {
            if !is_framing(name) {
                visit(name, value);
            }
        }
    }

    /// The defaults neither the backend nor `extra` sets. The backend's
    /// headers are few, so they are scanned rather than hashed.
    fn missing_defaults(&self) -> impl Iterator<Item = &(HeaderName, &'static str)> {
        self.defaults.iter().filter(|(name, _)| {
            !self.fixed.map.keys().any(|fixed| fixed == name) && !self.extra.contains_key(name)
        })
    }
}

/// Headers that frame the message, which the connection writes itself.
fn is_framing(name: &HeaderName) -> bool {
    name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT, CONTENT_TYPE};

    fn fixed() -> FixedHeaders {
        let mut map = HeaderMap::new();
        map.insert("x-api-key", HeaderValue::from_static("k"));
        map.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        map.insert(CONNECTION, HeaderValue::from_static("close"));
        map.insert(ACCEPT, HeaderValue::from_static("text/plain"));
        FixedHeaders::new(map, HeaderValue::from_static("127.0.0.1:9"))
    }

    fn outgoing<'a>(
        fixed: &'a FixedHeaders,
        extra: &'a HeaderMap,
        method: Method,
        body: &'static [u8],
    ) -> Outgoing<'a> {
        Outgoing {
            method,
            base_path: "/v1/",
            path: "messages",
            fixed,
            extra,
            defaults: &[
                (CONTENT_TYPE, "application/json"),
                (ACCEPT, "application/json"),
            ],
            // Leaked: a few bytes per test, for a body as long-lived as
            // the headers.
            body: Box::leak(Box::new(SplicedBody::from(bytes::Bytes::from_static(body)))),
        }
    }

    fn head(outgoing: &Outgoing<'_>) -> String {
        String::from_utf8(outgoing.http1_head()).expect("ascii")
    }

    #[test]
    fn a_head_has_host_the_headers_the_missing_defaults_and_the_length() {
        let fixed = fixed();
        let none = HeaderMap::new();
        assert_eq!(
            head(&outgoing(&fixed, &none, Method::POST, b"{\"a\":true}\n")),
            "POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-api-key: k\r\naccept: text/plain\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
        );
        let plain = FixedHeaders::new(HeaderMap::new(), HeaderValue::from_static("h"));
        let mut get = outgoing(&plain, &none, Method::GET, b"");
        get.defaults = &[];
        assert_eq!(head(&get), "GET /v1/messages HTTP/1.1\r\nhost: h\r\n\r\n");
    }

    #[test]
    fn forwarded_headers_replace_the_backends_and_the_defaults() {
        let fixed = fixed();
        let mut extra = HeaderMap::new();
        extra.insert("x-api-key", HeaderValue::from_static("caller"));
        extra.insert(CONTENT_TYPE, HeaderValue::from_static("application/x"));
        let outgoing = outgoing(&fixed, &extra, Method::POST, b"{}");
        assert_eq!(
            head(&outgoing),
            "POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1:9\r\naccept: text/plain\r\nx-api-key: caller\r\ncontent-type: application/x\r\ncontent-length: 2\r\n\r\n"
        );
        let scheme = Scheme::HTTPS;
        let authority = Authority::from_static("api.example:443");
        let request = outgoing
            .http2_request(&scheme, &authority)
            .expect("a valid target");
        assert_eq!(request.uri(), "https://api.example:443/v1/messages");
        let headers: Vec<_> = request
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
            .collect();
        assert_eq!(
            headers,
            [
                "accept: text/plain",
                "x-api-key: caller",
                "content-type: application/x",
            ]
        );
    }

    #[test]
    fn a_path_a_request_line_cannot_carry_is_refused() {
        let fixed = fixed();
        let none = HeaderMap::new();
        for path in ["models/a b", "x\r\nhost: evil", "modèle", "a\u{7f}"] {
            let mut bad = outgoing(&fixed, &none, Method::POST, b"");
            bad.path = path;
            let err = bad.check().expect_err(path);
            assert!(err.to_string().contains("cannot build the upstream URL"));
        }
        let mut good = outgoing(&fixed, &none, Method::POST, b"");
        good.path = "models/gemini-2.0:generateContent?alt=sse";
        assert!(good.check().is_ok());
    }
}
