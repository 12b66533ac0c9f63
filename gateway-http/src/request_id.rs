//! Gives every request an id, echoed in `x-request-id` on every response.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

use crate::headers::HeaderLookup;

/// The header carrying the id both ways.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served; handlers read it from extensions.
/// Kept as the header value it is echoed in, so that one allocation
/// serves both.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(HeaderValue);

impl RequestId {
    /// The id's text.
    pub(crate) fn as_str(&self) -> &str {
        // Only visible ASCII is ever kept (see `acceptable`).
        self.0.to_str().unwrap_or_default()
    }

    /// The value to stamp on the response.
    pub(crate) fn into_header(self) -> HeaderValue {
        self.0
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
    RequestId(theirs.unwrap_or_else(new_id))
}

/// A new random id: 32 lowercase hex digits (a v4 UUID without dashes),
/// encoded straight into its value rather than through `Display`.
fn new_id() -> HeaderValue {
    let mut digits = [0; uuid::fmt::Simple::LENGTH];
    let id = uuid::Uuid::new_v4().simple();
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(id.encode_lower(&mut digits).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("unnamed"))
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn new_ids_are_32_hex_digits() {
        let id = super::new_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.as_bytes()
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(id, super::new_id());
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
