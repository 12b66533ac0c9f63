//! A request's head, parsed with `httparse` straight out of the
//! connection's read buffer (the target and headers stay in its bytes),
//! with its body's framing and whether the connection may carry another
//! request decided by RFC 9112's rules.

use std::mem::MaybeUninit;
use std::ops::Range;

use adapter_http::wire::{self, Framing, FramingHeaders, HeaderSpans};
use bytes::{Bytes, BytesMut};
use http::header::EXPECT;
use http::{HeaderName, Method, Request, Uri, Version};

use crate::headers::HeaderLookup;

/// A parsed request head.
#[derive(Debug)]
pub(super) struct Head {
    /// Method, target, version and headers; the body comes later.
    pub(super) request: RequestHead,
    /// How the body that follows is delimited.
    pub(super) framing: Framing,
    /// Whether the client lets the connection carry another request.
    pub(super) keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub(super) expects_continue: bool,
}

/// Why a request head is refused; the connection answers and closes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not HTTP/1.x, or breaking its rules: 400.
    Malformed(&'static str),
    /// More than [`wire::MAX_HEAD`] bytes or [`wire::MAX_HEADERS`] headers: 431.
    TooLarge,
}

/// A request's method, target, version and headers, the last two still in
/// the bytes they arrived in. The hot routes read the few headers they
/// need from here; everything else gets an `http::Request` from
/// [`RequestHead::into_request`]. Building the `Uri` and `HeaderMap` of
/// every request cost more than a seventh of a pass-through request's
/// instructions.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// The whole head, request line to the empty line.
    bytes: Bytes,
    method: Method,
    version: Version,
    /// Where the request target is in `bytes`.
    target: Range<usize>,
    /// Where each header is in `bytes`.
    headers: HeaderSpans,
}

impl RequestHead {
    /// The request method.
    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    /// The HTTP version the client spoke.
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    /// The request target as sent: the path, and the query if any.
    pub(crate) fn target(&self) -> &[u8] {
        self.bytes.get(self.target.clone()).unwrap_or_default()
    }

    /// The request as `http` types, its header values and target sharing
    /// the head's bytes; `Err` when the target is not a valid URI.
    pub(crate) fn into_request(self) -> Result<Request<()>, &'static str> {
        let uri = Uri::from_maybe_shared(self.bytes.slice(self.target.clone()))
            .map_err(|_| "the request target is not a valid URI")?;
        let headers = wire::header_map(&self.bytes, &self.headers)?;
        let mut request = Request::new(());
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

impl HeaderLookup for RequestHead {
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        let wanted = name.as_str().as_bytes();
        self.headers
            .iter()
            .find(|span| span.name(&self.bytes).eq_ignore_ascii_case(wanted))
            .map(|span| span.value(&self.bytes))
    }
}

/// Takes a request head from the front of `buffer`: `None` while it is
/// incomplete.
pub(super) fn parse(buffer: &mut BytesMut) -> Result<Option<Head>, Refusal> {
    // Uninitialised: `httparse` writes only the slots it fills.
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); wire::MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buffer,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(length)) if length <= wire::MAX_HEAD => length,
        Ok(httparse::Status::Complete(_)) => return Err(Refusal::TooLarge),
        Ok(httparse::Status::Partial) if buffer.len() > wire::MAX_HEAD => {
            return Err(Refusal::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::Malformed("the request head is not valid HTTP/1.1")),
    };
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|_| Refusal::Malformed("the request method is invalid"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let start = buffer.as_ptr() as usize;
    let target = parsed.path.unwrap_or_default();
    let target_from = target.as_ptr() as usize - start;
    let target = target_from..target_from + target.len();
    let mut said = FramingHeaders::default();
    let headers = wire::header_spans(parsed.headers, buffer, &mut said);
    let expects_continue = version == Version::HTTP_11
        && parsed.headers.iter().any(|header| {
            header.name.eq_ignore_ascii_case(EXPECT.as_str())
                && header.value.eq_ignore_ascii_case(b"100-continue")
        });
    let framing = said.request_framing().map_err(Refusal::Malformed)?;
    let keep_alive = said.reusable(version);
    let request = RequestHead {
        // Copied off rather than split off: the body that usually follows
        // in the same read can then take the buffer unshared
        // (`wire::copy_front`).
        bytes: wire::copy_front(buffer, length),
        method,
        version,
        target,
        headers,
    };
    Ok(Some(Head {
        request,
        framing,
        keep_alive,
        expects_continue,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(wire: &str) -> Result<Option<Head>, Refusal> {
        parse(&mut BytesMut::from(wire.as_bytes()))
    }

    fn head(wire: &str) -> Head {
        parse_str(wire).expect("valid").expect("complete")
    }

    #[test]
    fn a_head_is_parsed_and_split_off() {
        let mut buffer = BytesMut::from(
            &b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Two: a\r\nx-two: b\r\n\r\n{}GET"[..],
        );
        let head = parse(&mut buffer).expect("valid").expect("complete");
        assert_eq!(head.request.method(), Method::POST);
        assert_eq!(head.request.target(), b"/v1/chat/completions?x=1");
        assert_eq!(head.request.version(), Version::HTTP_11);
        let x_two = HeaderName::from_static("x-two");
        assert_eq!(head.request.header(&x_two), Some(&b"a"[..]));
        assert_eq!(head.request.header_str(&http::header::HOST), Some("a"));
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert!(!head.expects_continue);
        assert_eq!(&buffer[..], b"{}GET");
        let request = head.request.into_request().expect("a valid target");
        assert_eq!(request.uri(), "/v1/chat/completions?x=1");
        let twos: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["a", "b"]);
    }

    #[test]
    fn incomplete_heads_wait_and_bad_ones_are_refused() {
        assert!(
            parse_str("POST /v1 HTTP/1.1\r\nhost: a")
                .expect("valid")
                .is_none()
        );
        let endless = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(wire::MAX_HEAD));
        assert_eq!(parse_str(&endless).err(), Some(Refusal::TooLarge));
        let complete = format!("{endless}\r\n\r\n");
        assert_eq!(parse_str(&complete).err(), Some(Refusal::TooLarge));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "x: y\r\n".repeat(101));
        assert_eq!(parse_str(&many).err(), Some(Refusal::TooLarge));
        for bad in [
            "GET / HTTP/2.0\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
        ] {
            assert!(
                matches!(parse_str(bad), Err(Refusal::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn headers_near_the_end_of_the_largest_head_are_read() {
        let start = "POST / HTTP/1.1\r\nx-big: ";
        let end = "\r\nx-last: yes\r\ncontent-length: 2\r\n\r\n";
        let filler = "a".repeat(wire::MAX_HEAD - start.len() - end.len());
        let wire = format!("{start}{filler}{end}");
        assert_eq!(wire.len(), wire::MAX_HEAD);
        let head = head(&wire);
        let last = HeaderName::from_static("x-last");
        assert_eq!(head.request.header(&last), Some(&b"yes"[..]));
        let big = HeaderName::from_static("x-big");
        assert_eq!(
            head.request.header(&big).map(<[u8]>::len),
            Some(filler.len())
        );
        assert_eq!(head.framing, Framing::Length(2));
    }

    #[test]
    fn framing_follows_the_rules_and_refuses_smuggling() {
        assert_eq!(head("GET / HTTP/1.1\r\n\r\n").framing, Framing::Done);
        assert_eq!(
            head("POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n").framing,
            Framing::chunked()
        );
        for bad in [
            "transfer-encoding: chunked\r\ncontent-length: 5",
            "transfer-encoding: chunked, gzip",
            "content-length: 3, 4",
            "content-length: -1",
            "content-length: 0x10",
        ] {
            let wire = format!("POST / HTTP/1.1\r\n{bad}\r\n\r\n");
            assert!(
                matches!(parse_str(&wire), Err(Refusal::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn keep_alive_and_continue_follow_version_and_headers() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").keep_alive);
        let expecting =
            head("POST / HTTP/1.1\r\nExpect: 100-Continue\r\ncontent-length: 3\r\n\r\n");
        assert!(expecting.expects_continue);
        assert!(!head("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue);
    }
}
