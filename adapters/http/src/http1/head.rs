//! HTTP/1.1 answer heads, parsed with `httparse` straight out of the read
//! buffer (the few header values kept are copied, or static when common),
//! with the body's framing and whether the connection may be reused
//! decided by RFC 9112's rules. (A request's head is written by
//! [`crate::outgoing`].)

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};

use smallvec::SmallVec;

use super::Error;
use super::body::Framing;

/// At most this many header lines in an answer (hyper's default).
pub const MAX_HEADERS: usize = 100;

/// An answer's head may take at most this many bytes.
pub const MAX_HEAD: usize = 64 * 1024;

/// Appends the header line `name: value` to a head being written.
pub fn push_header(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// An answer's head, parsed.
#[derive(Debug)]
pub(crate) struct Head {
    /// Status, version and headers.
    pub(crate) response: Response<()>,
    /// How the body that follows is delimited.
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request after this answer.
    pub(crate) keep_alive: bool,
}

/// Takes an answer's head (after any 1xx interim answers) from the front
/// of `buffer`: `None` while it is incomplete. `method` is the request's
/// (an answer to HEAD has no body whatever its headers say).
pub(crate) fn parse_answer(buffer: &mut BytesMut, method: &Method) -> Result<Option<Head>, Error> {
    loop {
        // Uninitialised: `httparse` writes only the slots it fills.
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buffer,
            &mut slots,
        ) {
            Ok(httparse::Status::Complete(length)) if length <= MAX_HEAD => length,
            Ok(httparse::Status::Complete(_)) => return Err(Error::HeadTooLarge),
            Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD => {
                return Err(Error::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(err) => return Err(Error::Parse(err)),
        };
        let code = parsed.code.unwrap_or(0);
        let version = match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        // What the framing headers say, and the headers kept, in one pass
        // over what `httparse` found. The kept values are copied out, so
        // the head is dropped from the buffer rather than split off it,
        // which would make the buffer shared (see `read::take_front`).
        let mut said = FramingHeaders::default();
        let kept = answer_headers(parsed.headers, &mut said);
        buffer.advance(length);
        match code {
            101 => return Err(Error::Invalid("the upstream switched protocols")),
            100..=199 => continue,
            _ => {}
        }
        let status = StatusCode::from_u16(code)
            .map_err(|_| Error::Invalid("an answer has an invalid status code"))?;
        let (framing, delimited) = said.framing(method, status)?;
        let keep_alive = delimited && said.reusable(version);
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = kept.map_err(Error::Invalid)?;
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// Where a parsed header's name and value lie in the buffer it was parsed
/// from, as byte offsets: a head is at most [`MAX_HEAD`] bytes and ends
/// with an empty line, so every offset fits in `u16`. Eight bytes a
/// header rather than sixteen halves what a head's spans weigh each time
/// the head is moved (a request's is moved several times on its way to
/// the handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSpan {
    name: (u16, u16),
    value: (u16, u16),
}

impl HeaderSpan {
    /// The header's name, as it was sent (any case), in `head`.
    pub fn name<'a>(&self, head: &'a [u8]) -> &'a [u8] {
        head.get(self.name.0 as usize..self.name.1 as usize)
            .unwrap_or_default()
    }

    /// The header's value in `head`.
    pub fn value<'a>(&self, head: &'a [u8]) -> &'a [u8] {
        head.get(self.value.0 as usize..self.value.1 as usize)
            .unwrap_or_default()
    }

    /// The header's value as a slice of `head`, sharing its bytes.
    fn shared_value(&self, head: &Bytes) -> Bytes {
        head.slice(self.value.0 as usize..self.value.1 as usize)
    }
}

/// The spans of a head's headers; a typical head's fit on the stack.
pub type HeaderSpans = SmallVec<[HeaderSpan; 24]>;

/// Where the names and values of `headers` (parsed by `httparse` out of
/// `buffer`) lie in `buffer`, so that once the head is split off they can
/// be read from, or share, its bytes; what the framing headers say is
/// noted in `said` in the same pass. No `HeaderName` is made here: most
/// headers are never looked at, and naming each cost more than parsing it.
pub fn header_spans(
    headers: &[httparse::Header<'_>],
    buffer: &[u8],
    said: &mut FramingHeaders,
) -> HeaderSpans {
    let start = buffer.as_ptr() as usize;
    // `httparse` hands out slices of `buffer`; an empty value may not
    // point into it at all.
    // An offset past `u16` (only in a head over `MAX_HEAD`, which is
    // refused before its spans are taken) would give an empty span.
    let span = |part: &[u8]| -> (u16, u16) {
        if part.is_empty() {
            return (0, 0);
        }
        let from = part.as_ptr() as usize - start;
        let to = from + part.len();
        match (u16::try_from(from), u16::try_from(to)) {
            (Ok(from), Ok(to)) => (from, to),
            _ => (0, 0),
        }
    };
    let mut spans = HeaderSpans::new();
    for header in headers {
        said.note(header.name.as_bytes(), header.value);
        spans.push(HeaderSpan {
            name: span(header.name.as_bytes()),
            value: span(header.value),
        });
    }
    spans
}

/// The headers of [`header_spans`] as a map, their values slices of
/// `head` (the buffer they were parsed from, split off and frozen).
pub fn header_map(head: &Bytes, spans: &[HeaderSpan]) -> Result<HeaderMap, &'static str> {
    let mut headers = HeaderMap::with_capacity(spans.len());
    for span in spans {
        let name = HeaderName::from_bytes(span.name(head)).map_err(|_| "invalid header name")?;
        let value = HeaderValue::from_maybe_shared(span.shared_value(head))
            .map_err(|_| "invalid header value")?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The answer headers the gateway reads: the body's type and length
/// (passed on to the caller) and `Retry-After` (which an error answer
/// turns into the error's retry hint). An answer's other headers are not
/// kept, so none is named, hashed or stored for nothing; an HTTP/2
/// answer's are dropped too ([`only_answer_headers`]), so every upstream
/// answer carries the same ones.
const ANSWER_HEADERS: [HeaderName; 3] = [CONTENT_TYPE, CONTENT_LENGTH, RETRY_AFTER];

/// `headers` (an answer's that came as a map: HTTP/2's) with only
/// [`ANSWER_HEADERS`].
pub(crate) fn only_answer_headers(headers: HeaderMap) -> HeaderMap {
    if headers.keys().all(|name| ANSWER_HEADERS.contains(name)) {
        return headers;
    }
    let mut kept = HeaderMap::new();
    for (name, value) in &headers {
        if ANSWER_HEADERS.contains(name) {
            kept.append(name, value.clone());
        }
    }
    kept
}

/// The headers of an answer the gateway reads (see [`ANSWER_HEADERS`]),
/// out of `parsed` (`httparse`'s): a common content type as a static
/// value, any other value copied. What the framing headers say is noted
/// in `said` on the way.
fn answer_headers(
    parsed: &[httparse::Header<'_>],
    said: &mut FramingHeaders,
) -> Result<HeaderMap, &'static str> {
    let mut headers = HeaderMap::with_capacity(ANSWER_HEADERS.len());
    let mut invalid = None;
    for header in parsed {
        let (sent, value) = (header.name.as_bytes(), header.value);
        said.note(sent, value);
        let Some(name) = ANSWER_HEADERS
            .iter()
            .find(|name| sent.eq_ignore_ascii_case(name.as_str().as_bytes()))
        else {
            continue;
        };
        let value = match COMMON_TYPES
            .iter()
            .find(|common| common.as_bytes() == value)
        {
            Some(common) => HeaderValue::from_static(common),
            None => match HeaderValue::from_bytes(value) {
                Ok(value) => value,
                // Noted, and the framing read on to the end: a framing
                // error is reported first.
                Err(_) => {
                    invalid = Some("invalid header value");
                    continue;
                }
            },
        };
        headers.append(name, value);
    }
    match invalid {
        Some(problem) => Err(problem),
        None => Ok(headers),
    }
}

/// The content types providers answer with, which [`answer_headers`]
/// keeps without allocating.
const COMMON_TYPES: [&str; 4] = [
    "application/json",
    "text/event-stream",
    "application/json; charset=utf-8",
    "text/event-stream; charset=utf-8",
];

/// What a message's `Transfer-Encoding`, `Content-Length` and `Connection`
/// headers said, noted as the headers are read.
#[derive(Debug, Default)]
pub struct FramingHeaders {
    transfer_encoding: bool,
    /// Whether the last transfer coding named is `chunked`.
    chunked: bool,
    /// Every `Content-Length` value, when they all agreed.
    length: Option<u64>,
    /// A `Content-Length` that was not a number, or values that differ.
    bad_length: Option<&'static str>,
    close: bool,
    keep_alive: bool,
}

impl FramingHeaders {
    /// Notes what header `name: value` says of the framing.
    pub fn note(&mut self, name: &[u8], value: &[u8]) {
        let items = || {
            value
                .split(|byte| *byte == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|item| !item.is_empty())
        };
        if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str().as_bytes()) {
            self.transfer_encoding = true;
            if let Some(last) = items().next_back() {
                self.chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes()) {
            // An empty list item is as invalid as a non-number.
            for item in value.split(|byte| *byte == b',').map(<[u8]>::trim_ascii) {
                match decimal(item) {
                    None => self.bad_length = Some("an answer has an invalid content-length"),
                    Some(length) if self.length.is_some_and(|seen| seen != length) => {
                        self.bad_length = Some("an answer has differing content-lengths");
                    }
                    Some(length) => self.length = Some(length),
                }
            }
        } else if name.eq_ignore_ascii_case(CONNECTION.as_str().as_bytes()) {
            for token in items() {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    /// How the body is delimited, and whether that leaves the connection
    /// usable afterwards (a body that ends with the connection does not,
    /// nor does an answer with both `Transfer-Encoding` and
    /// `Content-Length`, RFC 9112 §6.3).
    fn framing(&self, method: &Method, status: StatusCode) -> Result<(Framing, bool), Error> {
        if *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok((Framing::Done, true));
        }
        if self.transfer_encoding {
            let clean = self.length.is_none() && self.bad_length.is_none();
            return Ok(if self.chunked {
                (Framing::chunked(), clean)
            } else {
                (Framing::UntilClose, false)
            });
        }
        if let Some(problem) = self.bad_length {
            return Err(Error::Invalid(problem));
        }
        Ok(match self.length {
            Some(length) => (Framing::length(length), true),
            None => (Framing::UntilClose, false),
        })
    }

    /// How a request's body is delimited (RFC 9112 §6.3): chunked when
    /// the last transfer coding is `chunked`, else by `Content-Length`, else
    /// empty. A request with any other transfer coding, or with both
    /// headers (the shape of request smuggling), or with a bad length is
    /// refused, since its end cannot be known for sure.
    pub fn request_framing(&self) -> Result<Framing, &'static str> {
        if self.transfer_encoding {
            if !self.chunked {
                return Err("a request's transfer-encoding must end with chunked");
            }
            if self.length.is_some() || self.bad_length.is_some() {
                return Err("a request may not have both transfer-encoding and content-length");
            }
            return Ok(Framing::chunked());
        }
        if self.bad_length.is_some() {
            return Err("the request's content-length is invalid");
        }
        Ok(Framing::length(self.length.unwrap_or(0)))
    }

    /// Whether the message lets the connection stay open: HTTP/1.1 unless
    /// it says `Connection: close`, HTTP/1.0 only when it says
    /// `keep-alive`.
    pub fn reusable(&self, version: Version) -> bool {
        if version == Version::HTTP_10 {
            self.keep_alive
        } else {
            !self.close
        }
    }
}

/// `digits` as a number: only ASCII digits, at least one, and no more than
/// a `u64` holds. (`str::parse` took a UTF-8 check and a generic radix
/// loop for the same, a tenth of a request head's parsing.)
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |number, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        number.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(wire: &str, method: Method) -> Result<Option<Head>, Error> {
        parse_answer(&mut BytesMut::from(wire.as_bytes()), &method)
    }

    fn head(wire: &str) -> Head {
        parse(wire, Method::POST).expect("valid").expect("complete")
    }

    #[test]
    fn a_mapped_answer_keeps_only_the_headers_the_gateway_reads() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert("x-request-id", HeaderValue::from_static("r"));
        headers.append(RETRY_AFTER, HeaderValue::from_static("1"));
        headers.append(RETRY_AFTER, HeaderValue::from_static("2"));
        let kept = only_answer_headers(headers);
        let names: Vec<_> = kept.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["content-type", "retry-after", "retry-after"]);
    }

    #[test]
    fn an_answer_head_is_parsed_and_split_off() {
        let mut buffer = BytesMut::from(
            &b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-length: 2\r\nX-Two: a\r\nRetry-After: 3\r\nretry-after: 4\r\n\r\n{}"[..],
        );
        let head = parse_answer(&mut buffer, &Method::POST)
            .expect("valid")
            .expect("complete");
        assert_eq!(head.response.status(), 201);
        let kept: Vec<_> = head
            .response
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
            .collect();
        // Only the headers the gateway reads are kept, every value of each.
        assert_eq!(
            kept,
            [
                "content-type: application/json",
                "content-length: 2",
                "retry-after: 3",
                "retry-after: 4"
            ]
        );
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert_eq!(&buffer[..], b"{}");
    }

    #[test]
    fn common_and_uncommon_content_types_are_kept_as_sent() {
        for sent in [
            "text/event-stream",
            "application/json; charset=utf-8",
            "application/x-ndjson",
            "Application/JSON",
        ] {
            let head = head(&format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {sent}\r\ncontent-length: 0\r\n\r\n"
            ));
            assert_eq!(head.response.headers()[CONTENT_TYPE], sent);
        }
    }

    #[test]
    fn an_incomplete_head_waits_and_an_endless_one_fails() {
        assert!(
            parse("HTTP/1.1 200 OK\r\ncontent-le", Method::POST)
                .expect("valid")
                .is_none()
        );
        let endless = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(
            parse(&endless, Method::POST),
            Err(Error::HeadTooLarge)
        ));
        assert!(matches!(
            parse("HTTX/1.1 200 OK\r\n\r\n", Method::POST),
            Err(Error::Parse(_))
        ));
    }

    #[test]
    fn interim_answers_are_skipped() {
        let head =
            head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(head.response.status(), 200);
        assert_eq!(head.framing, Framing::Done);
        assert!(matches!(
            parse("HTTP/1.1 101 Switching Protocols\r\n\r\n", Method::GET),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn framing_follows_the_rules() {
        let chunked = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n");
        assert_eq!(chunked.framing, Framing::chunked());
        assert!(chunked.keep_alive);
        let smuggled =
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(smuggled.framing, Framing::chunked());
        assert!(!smuggled.keep_alive);
        let not_chunked = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
        assert_eq!(not_chunked.framing, Framing::UntilClose);
        assert!(!not_chunked.keep_alive);
        let no_length = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(no_length.framing, Framing::UntilClose);
        assert!(!no_length.keep_alive);
        let same_twice = head("HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n");
        assert_eq!(same_twice.framing, Framing::Length(3));
        let no_content = head("HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n");
        assert_eq!(no_content.framing, Framing::Done);
        let answer_to_head = parse("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n", Method::HEAD)
            .expect("valid")
            .expect("complete");
        assert_eq!(answer_to_head.framing, Framing::Done);
        for bad in ["3, 4", "-1", "", "0x10", "99999999999999999999999"] {
            let wire = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
            assert!(
                matches!(parse(&wire, Method::POST), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn lengths_are_plain_decimal_numbers_that_fit() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"007"), Some(7));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"+1",
            b"1 2",
            b"\xd9\xa3",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn connection_reuse_follows_version_and_connection_header() {
        assert!(
            !head("HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 0\r\n\r\n").keep_alive
        );
        assert!(!head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").keep_alive);
        assert!(
            head("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
                .keep_alive
        );
    }
}
