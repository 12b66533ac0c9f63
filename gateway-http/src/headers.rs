//! Reading a request's headers by name, wherever they are: in an
//! `http::HeaderMap` (requests that went through axum) or still in the
//! bytes of the head they arrived in (the hot routes, which read three
//! headers at most and never pay for a map).

use axum::http::{HeaderMap, HeaderName};

/// A request's headers, looked up by name.
pub(crate) trait HeaderLookup {
    /// The value of the first header called `name`, if there is one.
    fn header(&self, name: &HeaderName) -> Option<&[u8]>;

    /// [`HeaderLookup::header`] as text, without surrounding whitespace;
    /// `None` also when the value is not visible ASCII.
    fn header_str(&self, name: &HeaderName) -> Option<&str> {
        let value = self.header(name)?;
        value
            .iter()
            .all(|byte| *byte == b'\t' || (b' '..=b'~').contains(byte))
            .then(|| std::str::from_utf8(value).ok())
            .flatten()
            .map(str::trim)
    }
}

impl HeaderLookup for HeaderMap {
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.get(name).map(|value| value.as_bytes())
    }
}
