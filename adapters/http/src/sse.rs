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
                        this.parser.feed(chunk);
                        Ok(())
                    }
                    Some(Err(err)) => Err(err),
                    None => {
                        this.ended = true;
                        this.decoder.end(out)
                    }
                },
            };
            if let Err(err) = step {
                this.ended = true;
                this.pending.clear();
                this.decoded.clear();
                return Poll::Ready(Some(Err(err)));
            }
            // The usual payload makes one event: it goes out as it is,
            // without a stop in the queue.
            if this.decoded.len() == 1
                && this.pending.is_empty()
                && let Some(event) = this.decoded.pop()
            {
                return Poll::Ready(Some(Ok(event)));
            }
            this.pending.extend(this.decoded.drain(..));
        }
    }
}

/// The SSE line format, fed bytes as they arrive; yields each event's
/// `data` (its `data:` lines joined by newlines). Other fields (`event`,
/// `id`, `retry`) and comments are skipped: every dialect puts what it means
/// in the data. An event the stream ends before finishing (no blank line) is
/// dropped, as the standard says.
///
/// An event with one `data` line (every dialect's usual event) is handed
/// out where it lies; only an event of several lines is copied, to join
/// them. A chunk that comes while nothing is buffered (the usual chunk: an
/// upstream sends each event whole) is read where it lies too, and only
/// what it leaves unfinished is copied into the buffer.
#[derive(Debug, Default)]
struct SseParser {
    /// Bytes not yet dropped: the lines of the event being read (or the
    /// event returned last) up to `consumed`, then what is unread. Empty
    /// while `held` is being read.
    buffer: BytesMut,
    /// A chunk fed while `buffer` was empty, read in place; `consumed`,
    /// `single` and `scanned` are offsets into it while it is not empty.
    held: Bytes,
    /// How far into `buffer` lines have been read.
    consumed: usize,
    /// The current event's one `data` line, as a range of `buffer`, until a
    /// second one comes.
    single: Option<(usize, usize)>,
    /// The current event's data when it has several lines, joined.
    data: Vec<u8>,
    /// How many `data` lines the current event has (possibly empty ones).
    data_lines: usize,
    /// The data of the event returned last, cleared on the next call.
    returned: bool,
    /// The byte-order mark has been looked for.
    started: bool,
    /// Whether the stream has had a CR: until it does, a line ends at the
    /// next LF, found with a one-byte search.
    cr_seen: bool,
    /// How far into `buffer` no line break was found, so a long line
    /// arriving in many chunks is scanned once, not once per chunk.
    scanned: usize,
}

impl SseParser {
    /// Appends a chunk of the body.
    fn feed(&mut self, mut chunk: Bytes) {
        if !self.started && !chunk.is_empty() {
            self.started = true;
            if chunk.starts_with("\u{feff}".as_bytes()) {
                chunk.advance(3);
            }
        }
        if !self.cr_seen && memchr::memchr(b'\r', &chunk).is_some() {
            self.cr_seen = true;
        }
        self.unhold();
        if self.buffer.is_empty() {
            self.held = chunk;
        } else {
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Moves what is left of `held` into `buffer` (which is then empty),
    /// offsets unchanged, and lets go of the chunk: even read to its end
    /// it would keep the upstream's read buffer alive while the stream
    /// waits.
    fn unhold(&mut self) {
        if !self.held.is_empty() {
            self.buffer.extend_from_slice(&self.held);
        }
        self.held = Bytes::new();
    }

    /// Drops the lines read so far from the front of the bytes read.
    fn drop_consumed(&mut self) {
        if self.held.is_empty() {
            self.buffer.advance(self.consumed);
        } else {
            self.held.advance(self.consumed);
        }
        self.scanned = self.scanned.saturating_sub(self.consumed);
        self.consumed = 0;
    }

    /// The next complete event's data, or `None` until more bytes come.
    fn next_data(&mut self) -> Result<Option<&str>, GatewayError> {
        if self.returned {
            self.returned = false;
            self.single = None;
            self.data.clear();
            self.data_lines = 0;
            self.drop_consumed();
        }
        loop {
            let from = self.consumed.max(self.scanned);
            let bytes = unread(&self.held, &self.buffer);
            let Some((line_end, next)) = line_break(bytes, from, self.cr_seen) else {
                break;
            };
            let line_start = self.consumed;
            self.consumed = next;
            self.scanned = 0;
            let line = &bytes[line_start..line_end];
            if line.is_empty() {
                if self.data_lines == 0 {
                    continue;
                }
                self.returned = true;
                let data = match self.single {
                    // Borrowed afresh: a borrow returned from the loop
                    // would hold `self` past it.
                    Some((from, to)) => &unread(&self.held, &self.buffer)[from..to],
                    None => {
                        self.data.pop(); // The last line's newline.
                        &self.data[..]
                    }
                };
                return simdutf8::basic::from_utf8(data)
                    .map(Some)
                    .map_err(|_| not_utf8());
            }
            // Only the field name matters, and only whether it is `data`.
            let value_start = match line.strip_prefix(b"data") {
                Some([]) => line_end,
                Some([b':', b' ', ..]) => line_start + 6,
                Some([b':', ..]) => line_start + 5,
                _ => {
                    // A line that is not data is checked, not kept. The
                    // common all-ASCII line skips the full UTF-8 check,
                    // whose fixed cost per call was most of a short line's.
                    if !line.is_ascii() && simdutf8::basic::from_utf8(line).is_err() {
                        return Err(not_utf8());
                    }
                    continue;
                }
            };
            self.data_lines += 1;
            if self.data_lines == 1 {
                self.single = Some((value_start, line_end));
                continue;
            }
            if let Some((from, to)) = self.single.take() {
                self.data.extend_from_slice(&bytes[from..to]);
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(&bytes[value_start..line_end]);
            self.data.push(b'\n');
            if self.data.len() > MAX_EVENT_BYTES {
                return Err(too_long());
            }
        }
        // The event goes on past this chunk: its one data line is copied
        // after all, so that the lines read can be dropped and the buffer
        // holds no more than the line being read.
        if let Some((from, to)) = self.single.take() {
            let bytes = unread(&self.held, &self.buffer);
            self.data.extend_from_slice(&bytes[from..to]);
            self.data.push(b'\n');
        }
        self.drop_consumed();
        // The rest of a held chunk (an unfinished line) waits in the buffer
        // for the next chunk.
        self.unhold();
        // A final CR is looked at again: it may be the first half of CRLF.
        self.scanned = self.buffer.len().saturating_sub(1);
        if self.buffer.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(too_long());
        }
        Ok(None)
    }
}

/// The bytes the parser reads: the held chunk while there is one, else the
/// buffer. (A function of the two fields, not a method, so that the parser's
/// other fields stay free to change while it is borrowed.)
fn unread<'a>(held: &'a Bytes, buffer: &'a BytesMut) -> &'a [u8] {
    if held.is_empty() { buffer } else { held }
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

/// Where the first line of `bytes` from `from` on ends and the next begins
/// (`\n`, `\r\n` or a lone `\r`; only `\n` when `cr_seen` is false);
/// `None` when the line is not complete yet (a final `\r` may be the first
/// half of `\r\n`).
fn line_break(bytes: &[u8], from: usize, cr_seen: bool) -> Option<(usize, usize)> {
    let rest = bytes.get(from..)?;
    if !cr_seen {
        let at = from + memchr::memchr(b'\n', rest)?;
        return Some((at, at + 1));
    }
    let at = from + memchr::memchr2(b'\n', b'\r', rest)?;
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
            parser.feed(Bytes::copy_from_slice(chunk));
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
        parser.feed(Bytes::from_static(b"data: "));
        parser.feed(Bytes::from(vec![b'x'; MAX_EVENT_BYTES + 1]));
        let err = parser.next_data().expect_err("too long");
        assert_eq!(
            err.message,
            "the upstream sent a stream event longer than 16 MiB"
        );

        let mut parser = SseParser::default();
        let line = [b"data: ".as_slice(), &vec![b'y'; 1024 * 1024], b"\n"].concat();
        let mut failed = false;
        for _ in 0..17 {
            parser.feed(Bytes::copy_from_slice(&line));
            if parser.next_data().is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "17 MiB of data lines in one event must fail");
    }

    /// What the standard's algorithm makes of a whole stream, written as
    /// plainly as it reads, to hold the parser to.
    fn reference(whole: &str) -> Vec<String> {
        let normalised = whole.replace("\r\n", "\n").replace('\r', "\n");
        let mut seen = Vec::new();
        let mut data: Option<String> = None;
        let mut lines: Vec<&str> = normalised.split('\n').collect();
        lines.pop(); // What follows the last line break is not a line yet.
        for line in lines {
            if line.is_empty() {
                if let Some(mut joined) = data.take() {
                    joined.pop();
                    seen.push(joined);
                }
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            if field == "data" {
                let joined = data.get_or_insert_with(String::new);
                joined.push_str(value);
                joined.push('\n');
            }
        }
        seen
    }

    /// Random streams of the lines dialects send (and odd ones), with every
    /// line ending, cut into random chunks: the parser finds what the
    /// standard's algorithm finds.
    #[test]
    fn random_streams_in_random_chunks_match_the_standard() {
        let lines = [
            "data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hé\"}}",
            "event: message_start",
            "data:",
            "data",
            "data:x",
            "data:  two spaces",
            "datum: no",
            ": comment",
            "id: 7",
            "",
            "",
        ];
        let endings = ["\n", "\r\n", "\r"];
        let mut rng = fastrand::Rng::with_seed(6);
        for round in 0..3000 {
            let mut whole = String::new();
            for _ in 0..rng.usize(1..12) {
                whole.push_str(lines[rng.usize(..lines.len())]);
                // Mostly LF, as upstreams send; any ending in some streams.
                let ending = if round % 3 == 0 {
                    endings[rng.usize(..3)]
                } else {
                    "\n"
                };
                whole.push_str(ending);
            }
            let bytes = whole.as_bytes();
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let next = (at + rng.usize(1..40)).min(bytes.len());
                chunks.push(&bytes[at..next]);
                at = next;
            }
            // A final CR may yet become CRLF: the parser waits for what
            // follows it.
            let expected = reference(whole.strip_suffix('\r').unwrap_or(&whole));
            assert_eq!(events(&chunks), expected, "{whole:?}");
        }
    }

    /// An event that goes on and on after its data line (here with
    /// comments) does not pile up in the buffer.
    #[test]
    fn lines_read_are_dropped_while_an_event_goes_on() {
        let mut parser = SseParser::default();
        parser.feed(Bytes::from_static(b"data: kept\n"));
        assert_eq!(parser.next_data().expect("valid"), None);
        for _ in 0..1000 {
            parser.feed(Bytes::from_static(b": keep-alive comment\n"));
            assert_eq!(parser.next_data().expect("valid"), None);
            assert!(
                parser.buffer.len() < 64,
                "{} bytes held",
                parser.buffer.len()
            );
        }
        parser.feed(Bytes::from_static(b"\n"));
        assert_eq!(parser.next_data().expect("valid"), Some("kept"));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut parser = SseParser::default();
        parser.feed(Bytes::from_static(b"data: \xff\n\n"));
        assert!(parser.next_data().is_err());
    }
}
