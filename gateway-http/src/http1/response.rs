//! An answer's head and its body's framing on the wire.

use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};

use adapter_http::wire::push_header;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderName, Method, StatusCode, Version};

/// How an answer's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outgoing {
    /// No body may follow (an answer to HEAD, 1xx, 204, 304); for HEAD
    /// the length the body would have had is still announced.
    Bodiless(Option<u64>),
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, length unknown).
    UntilClose,
}

impl Outgoing {
    /// The framing for an answer with `status` and a body of `length` (if
    /// known) to a `method` request of `version`.
    pub(super) fn choose(
        method: &Method,
        version: Version,
        status: StatusCode,
        length: Option<u64>,
    ) -> Self {
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Self::Bodiless(None)
        } else if method == Method::HEAD {
            Self::Bodiless(length)
        } else if let Some(length) = length {
            Self::Length(length)
        } else if version == Version::HTTP_11 {
            Self::Chunked
        } else {
            Self::UntilClose
        }
    }
}

/// The body of an answer the server gives a request it cannot read,
/// before any dialect is known: the fields every SDK reads (OpenAI's and
/// Anthropic's `error.type` and `error.message`, Google's `error.code`,
/// `error.status`).
pub(crate) fn refusal_json(status: StatusCode, message: &str) -> String {
    serde_json::json!({
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": message,
            "code": status.as_u16(),
            "status": "INVALID_ARGUMENT",
        }
    })
    .to_string()
}

/// A header the application left to the connection to write, rather
/// than put into the response's header map.
pub(super) type ExtraHeader<'a> = (&'a HeaderName, &'a [u8]);

/// The status line and headers of `parts`, framed by `outgoing`, with
/// `extra` in place of any header of its name in `parts`.
/// `Content-Length`, `Transfer-Encoding` and `Connection` set by the
/// application are replaced by the framing's own; `Date` is added unless
/// present.
pub(super) fn encode_head(
    parts: &Parts,
    extra: Option<ExtraHeader<'_>>,
    outgoing: Outgoing,
    keep_alive: bool,
    version: Version,
) -> Vec<u8> {
    let extra_size = extra.map_or(0, |(name, value)| name.as_str().len() + value.len() + 4);
    let size = parts
        .headers
        .iter()
        .fold(128 + extra_size, |size, (name, value)| {
            size + name.as_str().len() + value.len() + 4
        });
    let mut head = Vec::with_capacity(size);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    let extra_name = extra.map(|(name, _)| name);
    for (name, value) in &parts.headers {
        if name != CONTENT_LENGTH
            && name != TRANSFER_ENCODING
            && name != CONNECTION
            && Some(name) != extra_name
        {
            push_header(&mut head, name.as_str(), value.as_bytes());
        }
    }
    if let Some((name, value)) = extra {
        push_header(&mut head, name.as_str(), value);
    }
    if !parts.headers.contains_key(DATE) {
        with_date(|date| push_header(&mut head, DATE.as_str(), date));
    }
    match outgoing {
        Outgoing::Length(length) | Outgoing::Bodiless(Some(length)) => {
            let mut digits = itoa::Buffer::new();
            push_header(
                &mut head,
                CONTENT_LENGTH.as_str(),
                digits.format(length).as_bytes(),
            );
        }
        Outgoing::Chunked => push_header(&mut head, TRANSFER_ENCODING.as_str(), b"chunked"),
        Outgoing::Bodiless(None) | Outgoing::UntilClose => {}
    }
    if !keep_alive {
        push_header(&mut head, CONNECTION.as_str(), b"close");
    } else if version == Version::HTTP_10 {
        push_header(&mut head, CONNECTION.as_str(), b"keep-alive");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A chunk-size line (`1a2b\r\n`) for `length` bytes of data.
pub(super) fn chunk_size_line(length: usize) -> ChunkSizeLine {
    let mut line = ChunkSizeLine {
        bytes: [0; 18],
        length: 0,
    };
    let digits = if length == 0 {
        1
    } else {
        (usize::BITS - length.leading_zeros()).div_ceil(4) as usize
    };
    for (index, slot) in line.bytes[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - index);
        *slot = b"0123456789abcdef"[(length >> shift) & 0xf];
    }
    line.bytes[digits] = b'\r';
    line.bytes[digits + 1] = b'\n';
    line.length = digits + 2;
    line
}

/// The bytes of [`chunk_size_line`], kept on the stack.
pub(super) struct ChunkSizeLine {
    bytes: [u8; 18],
    length: usize,
}

impl AsRef<[u8]> for ChunkSizeLine {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.length]
    }
}

thread_local! {
    /// The `Date` value, made once a second per worker thread.
    static CACHED_DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Calls `write` with the current `Date` header value (IMF-fixdate), by
/// the coarse clock (`adapter_http::clock`): it may show the second
/// before for the few milliseconds of a tick, which a one-second field
/// cannot tell from the network's own delay.
fn with_date(write: impl FnOnce(&[u8])) {
    let second = adapter_http::clock::coarse_unix_seconds();
    CACHED_DATE.with_borrow_mut(|(made, date)| {
        if *made != second {
            *made = second;
            *date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
        }
        write(date.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(status: u16, outgoing: Outgoing, keep_alive: bool, version: Version) -> String {
        let mut response = http::Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).expect("status");
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(
            DATE,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        let (parts, ()) = response.into_parts();
        String::from_utf8(encode_head(&parts, None, outgoing, keep_alive, version)).expect("ascii")
    }

    #[test]
    fn heads_carry_the_framing_and_connection_headers() {
        assert_eq!(
            head(200, Outgoing::Length(12), true, Version::HTTP_11),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncontent-length: 12\r\n\r\n"
        );
        assert_eq!(
            head(404, Outgoing::Chunked, false, Version::HTTP_11),
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            head(200, Outgoing::Length(0), true, Version::HTTP_10),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            head(204, Outgoing::Bodiless(None), true, Version::HTTP_11),
            "HTTP/1.1 204 No Content\r\ncontent-type: text/plain\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn a_head_without_a_date_gets_one() {
        let (parts, ()) = http::Response::new(()).into_parts();
        let head = String::from_utf8(encode_head(
            &parts,
            None,
            Outgoing::Length(0),
            true,
            Version::HTTP_11,
        ))
        .expect("ascii");
        let date = head
            .lines()
            .find_map(|line| line.strip_prefix("date: "))
            .expect("a date header");
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    }

    #[test]
    fn an_extra_header_is_written_in_place_of_the_maps_own() {
        let mut response = http::Response::new(());
        let headers = response.headers_mut();
        headers.insert("x-id", HeaderValue::from_static("from-the-map"));
        headers.insert(
            DATE,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        let (parts, ()) = response.into_parts();
        let name = HeaderName::from_static("x-id");
        let head = encode_head(
            &parts,
            Some((&name, b"abc123")),
            Outgoing::Length(2),
            true,
            Version::HTTP_11,
        );
        assert_eq!(
            String::from_utf8(head).expect("ascii"),
            "HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\nx-id: abc123\r\ncontent-length: 2\r\n\r\n"
        );
    }

    #[test]
    fn framing_is_chosen_by_method_status_version_and_length() {
        let choose = Outgoing::choose;
        let (post, head_method) = (Method::POST, Method::HEAD);
        let ok = StatusCode::OK;
        assert_eq!(
            choose(&post, Version::HTTP_11, ok, Some(3)),
            Outgoing::Length(3)
        );
        assert_eq!(choose(&post, Version::HTTP_11, ok, None), Outgoing::Chunked);
        assert_eq!(
            choose(&post, Version::HTTP_10, ok, None),
            Outgoing::UntilClose
        );
        assert_eq!(
            choose(&head_method, Version::HTTP_11, ok, Some(3)),
            Outgoing::Bodiless(Some(3))
        );
        assert_eq!(
            choose(&post, Version::HTTP_11, StatusCode::NO_CONTENT, Some(0)),
            Outgoing::Bodiless(None)
        );
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        let line = |length| String::from_utf8(chunk_size_line(length).as_ref().to_vec());
        assert_eq!(line(0).expect("ascii"), "0\r\n");
        assert_eq!(line(10).expect("ascii"), "a\r\n");
        assert_eq!(line(0x1a2b).expect("ascii"), "1a2b\r\n");
        assert_eq!(line(usize::MAX).expect("ascii"), "ffffffffffffffff\r\n");
    }
}
