//! Upstream SSE → canonical events, one upstream event at a time.
//!
//! The event stream format (WHATWG HTML, "Server-sent events") is parsed
//! here rather than with `eventsource-stream`: that crate cost about 7,000
//! instructions per event (a parser-combinator pass and several `String`s
//! per line, ~20% of a translated stream's CPU) and failed a stream whose
//! network chunk split a multi-byte character. This parser keeps the bytes,
//! decodes a line only once it is complete, and reuses one buffer for the
//! `data` of every event.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use gateway_core::stream::WireDecoder;
use gateway_core::{ChatEvent, ChatStream, GatewayError};

use crate::upstream::{UpstreamResponse, body_stream};

/// The longest event (or line) accepted from an upstream; a stream that
/// goes past it is failed rather than buffered without end. NDJSON lines
/// have the same bound.
pub(crate) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Decodes an upstream SSE response with a dialect's `decoder`. The stream
/// ends after the first error; dropping it drops the response and so closes
/// the upstream connection.
pub fn decode_sse<D: WireDecoder + Unpin + 'static>(
    response: UpstreamResponse,
    decoder: D,
) -> ChatStream {
    Box::pin(SseEvents {
        body: Box::pin(body_stream(response.into_body())),
        parser: SseParser::default(),
        decoder,
        pending: VecDeque::new(),
        decoded: Vec::new(),
        ended: false,
    })
}

/// [`decode_sse`]'s stream. A `Stream` of its own rather than
/// `stream::unfold`, which moves its whole state into a new future and
/// back out for every event.
struct SseEvents<D> {
    body: Pin<Box<dyn Stream<Item = Result<Bytes, GatewayError>> + Send>>,
    parser: SseParser,
    decoder: D,
    pending: VecDeque<ChatEvent>,
    /// What the decoder makes of one payload; kept, so that its room is
    /// allocated once per stream rather than once per event.
    decoded: Vec<ChatEvent>,
    ended: bool,
}

impl<D: WireDecoder + Unpin> Stream for SseEvents<D> {
    type Item = Result<ChatEvent, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let out = &mut this.decoded;
            let step = match this.parser.next_data() {
                Ok(Some(data)) if data.trim().is_empty() => Ok(()),
                Ok(Some(data)) => this.decoder.decode(data, out),
                Err(err) => Err(err),
                Ok(None) => match ready!(this.body.as_mut().poll_next(cx)) {
                    Some(Ok(chunk)) => {
                        this.parser.feed(&chunk);
                        Ok(())
                    }
                    Some(Err(err)) => Err(err),
                    None => {
                        this.ended = true;
                        this.decoder.end(out)
                    }
                },
            };
            this.pending.extend(this.decoded.drain(..));
            if let Err(err) = step {
                this.ended = true;
                this.pending.clear();
                return Poll::Ready(Some(Err(err)));
            }
        }
    }
}

/// The SSE line format, fed bytes as they arrive; yields each event's
/// `data` (its `data:` lines joined by newlines). Other fields (`event`,
/// `id`, `retry`) and comments are skipped: every dialect puts what it means
/// in the data. An event the stream ends before finishing (no blank line) is
/// dropped, as the standard says.
#[derive(Debug, Default)]
struct SseParser {
    /// Bytes not yet consumed; starts at a line start.
    buffer: BytesMut,
    /// The current event's data so far, checked to be UTF-8 line by line
    /// (a line of ASCII needs no more than that look).
    data: Vec<u8>,
    /// Whether the current event has a `data` field (possibly empty).
    has_data: bool,
    /// The data of the event returned last, cleared on the next call.
    returned: bool,
    /// The byte-order mark has been looked for.
    started: bool,
    /// How far into `buffer` no line break was found, so a long line
    /// arriving in many chunks is scanned once, not once per chunk.
    scanned: usize,
}

impl SseParser {
    /// Appends a chunk of the body.
    fn feed(&mut self, mut chunk: &[u8]) {
        if !self.started && !chunk.is_empty() {
            self.started = true;
            chunk = chunk.strip_prefix("\u{feff}".as_bytes()).unwrap_or(chunk);
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete event's data, or `None` until more bytes come.
    fn next_data(&mut self) -> Result<Option<&str>, GatewayError> {
        if self.returned {
            self.returned = false;
            self.data.clear();
            self.has_data = false;
        }
        while let Some((line_end, next)) = line_break(&self.buffer, self.scanned) {
            self.scanned = 0;
            let line = &self.buffer[..line_end];
            // The common all-ASCII line skips the full UTF-8 check, whose
            // fixed cost per call was most of a short line's.
            if !line.is_ascii() && std::str::from_utf8(line).is_err() {
                return Err(not_utf8());
            }
            if line.is_empty() {
                self.buffer.advance(next);
                if self.has_data {
                    if self.data.last() == Some(&b'\n') {
                        self.data.pop();
                    }
                    self.returned = true;
                    // Every line was checked; whole lines joined stay UTF-8.
                    return std::str::from_utf8(&self.data)
                        .map(Some)
                        .map_err(|_| not_utf8());
                }
                continue;
            }
            let (field, value) = match memchr::memchr(b':', line) {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &b""[..]),
            };
            if field == b"data" {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            self.buffer.advance(next);
            if self.data.len() > MAX_EVENT_BYTES {
                return Err(too_long());
            }
        }
        // A final CR is looked at again: it may be the first half of CRLF.
        self.scanned = self.buffer.len().saturating_sub(1);
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(too_long());
        }
        Ok(None)
    }
}

fn not_utf8() -> GatewayError {
    GatewayError::upstream("the upstream sent an event stream that is not UTF-8")
}

pub(crate) fn too_long() -> GatewayError {
    GatewayError::upstream(format!(
        "the upstream sent a stream event longer than {} MiB",
        MAX_EVENT_BYTES / (1024 * 1024)
    ))
}

/// Where the first line of `bytes` ends and the next begins (`\n`, `\r\n`
/// or a lone `\r`), looking from `from` on; `None` when the line is not
/// complete yet (a final `\r` may be the first half of `\r\n`).
fn line_break(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let at = from + memchr::memchr2(b'\n', b'\r', bytes.get(from..)?)?;
    if bytes[at] == b'\n' {
        return Some((at, at + 1));
    }
    match bytes.get(at + 1) {
        Some(b'\n') => Some((at, at + 2)),
        Some(_) => Some((at, at + 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event's data, feeding `chunks` one at a time.
    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            parser.feed(chunk);
            while let Some(data) = parser.next_data().expect("valid") {
                seen.push(data.to_owned());
            }
        }
        seen
    }

    #[test]
    fn events_are_split_on_blank_lines_whatever_the_chunking() {
        let whole: &[u8] =
            b"event: a\ndata: {\"x\":1}\n\n: comment\ndata: two\ndata:  lines\n\nid: 3\ndata\n\n";
        let expected = vec!["{\"x\":1}", "two\n lines", ""];
        assert_eq!(events(&[whole]), expected);
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(events(&bytes), expected);
        let (a, b) = whole.split_at(13);
        assert_eq!(events(&[a, b]), expected);
    }

    #[test]
    fn every_line_ending_works() {
        assert_eq!(
            events(&[b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]),
            ["a", "b", "c"]
        );
        // A CR at the end of a chunk may be half of CRLF.
        assert_eq!(
            events(&[b"data: a\r", b"\n\r", b"\ndata: b\r", b"\r", b"data"]),
            ["a", "b"]
        );
    }

    #[test]
    fn a_character_split_between_chunks_survives() {
        let whole = "data: héllo ✓\n\n".as_bytes();
        let (a, b) = whole.split_at(8);
        assert_eq!(events(&[a, b]), ["héllo ✓"]);
    }

    #[test]
    fn a_byte_order_mark_is_dropped_and_unfinished_events_are_not_sent() {
        assert_eq!(events(&["\u{feff}data: a\n\ndata: b\n".as_bytes()]), ["a"]);
        assert!(events(&[b"event: x\n\n"]).is_empty());
    }

    #[test]
    fn an_endless_line_or_event_is_an_error_not_a_growing_buffer() {
        let mut parser = SseParser::default();
        parser.feed(b"data: ");
        parser.feed(&vec![b'x'; MAX_EVENT_BYTES + 1]);
        let err = parser.next_data().expect_err("too long");
        assert_eq!(
            err.message,
            "the upstream sent a stream event longer than 16 MiB"
        );

        let mut parser = SseParser::default();
        let line = [b"data: ".as_slice(), &vec![b'y'; 1024 * 1024], b"\n"].concat();
        let mut failed = false;
        for _ in 0..17 {
            parser.feed(&line);
            if parser.next_data().is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "17 MiB of data lines in one event must fail");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut parser = SseParser::default();
        parser.feed(b"data: \xff\n\n");
        assert!(parser.next_data().is_err());
    }
}
