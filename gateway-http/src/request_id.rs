//! Gives every request an id, echoed in `x-request-id` on every response.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

use crate::headers::HeaderLookup;

/// The header carrying the id both ways.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served; handlers read it from extensions.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(Id);

/// Where an id came from, and how it is kept.
#[derive(Debug, Clone)]
enum Id {
    /// Made here: its hex digits, kept inline, so that a request whose
    /// connection writes the id into the answer's head itself (see
    /// [`crate::app::App::call_whole`]) allocates nothing for it.
    New([u8; uuid::fmt::Simple::LENGTH]),
    /// The caller's, kept as the header value it arrived in.
    Theirs(HeaderValue),
}

impl RequestId {
    /// The id's text.
    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            Id::New(digits) => std::str::from_utf8(digits).unwrap_or_default(),
            // Only visible ASCII is ever kept (see `acceptable`).
            Id::Theirs(value) => value.to_str().unwrap_or_default(),
        }
    }

    /// The id's bytes, unchecked: what the connection writes into the
    /// answer's head.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Id::New(digits) => digits,
            Id::Theirs(value) => value.as_bytes(),
        }
    }

    /// The value to stamp on the response.
    pub(crate) fn into_header(self) -> HeaderValue {
        match self.0 {
            // Hex digits are always a valid header value.
            Id::New(digits) => HeaderValue::from_bytes(&digits)
                .unwrap_or_else(|_| HeaderValue::from_static("unnamed")),
            Id::Theirs(value) => value,
        }
    }
}

/// A caller-supplied id is kept when it is short and plain (so logs and
/// upstream correlation line up); anything else is replaced by a new one.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Gives `request` its id (the caller's when acceptable, else a new one)
/// and returns the header value to stamp on the response.
pub(crate) fn assign(request: &mut Request) -> HeaderValue {
    let id = choose(request.headers());
    request.extensions_mut().insert(id.clone());
    id.into_header()
}

/// The id of a request with `headers`: the caller's when acceptable, else
/// a new one.
pub(crate) fn choose(headers: &impl HeaderLookup) -> RequestId {
    let theirs = headers
        .header_str(&HEADER)
        .filter(|id| acceptable(id))
        .and_then(|id| HeaderValue::from_str(id).ok());
    RequestId(theirs.map_or_else(new_id, Id::Theirs))
}

/// A new random id: 32 lowercase hex digits (a v4 UUID without dashes),
/// encoded straight into place rather than through `Display`.
fn new_id() -> Id {
    let mut digits = [0; uuid::fmt::Simple::LENGTH];
    uuid::Uuid::new_v4().simple().encode_lower(&mut digits);
    Id::New(digits)
}

#[cfg(test)]
mod tests {
    use super::{RequestId, acceptable, choose};
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn new_ids_are_32_hex_digits() {
        let id = RequestId(super::new_id());
        assert_eq!(id.as_str().len(), 32);
        assert!(
            id.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(id.as_str(), RequestId(super::new_id()).as_str());
        assert_eq!(id.clone().into_header(), id.as_str());
        assert_eq!(id.as_bytes(), id.as_str().as_bytes());
    }

    #[test]
    fn a_plain_caller_id_is_kept_and_any_other_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(super::HEADER, HeaderValue::from_static("req-42"));
        assert_eq!(choose(&headers).as_str(), "req-42");
        assert_eq!(choose(&headers).into_header(), "req-42");
        headers.insert(super::HEADER, HeaderValue::from_static("has space"));
        assert_eq!(choose(&headers).as_str().len(), 32);
    }

    #[test]
    fn only_plain_ids_are_kept() {
        assert!(acceptable("req-123_abc.def:1"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable(&"x".repeat(129)));
        assert!(!acceptable("new\nline"));
    }
}
