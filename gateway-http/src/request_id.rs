//! Gives every request an id, echoed in `x-request-id` on every response.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

use crate::headers::HeaderLookup;

/// The header carrying the id both ways.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served; handlers read it from extensions.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

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
pub(crate) fn assign(request: &mut Request) -> Option<HeaderValue> {
    let (id, header) = choose(request.headers());
    request.extensions_mut().insert(id);
    header
}

/// The id of a request with `headers` (the caller's when acceptable, else
/// a new one), and the header value to stamp on the response.
pub(crate) fn choose(headers: &impl HeaderLookup) -> (RequestId, Option<HeaderValue>) {
    let id = headers
        .header_str(&HEADER)
        .filter(|id| acceptable(id))
        .map(str::to_owned)
        .unwrap_or_else(new_id);
    let header = HeaderValue::from_str(&id).ok();
    (RequestId(id), header)
}

/// A new random id: 32 lowercase hex digits (a v4 UUID without dashes),
/// encoded straight into its `String` rather than through `Display`.
fn new_id() -> String {
    let mut digits = [0; uuid::fmt::Simple::LENGTH];
    uuid::Uuid::new_v4()
        .simple()
        .encode_lower(&mut digits)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn new_ids_are_32_hex_digits() {
        let id = super::new_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
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
