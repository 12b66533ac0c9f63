//! Upstream NDJSON (one JSON document per line) → canonical events.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use futures::{StreamExt, stream};
use gateway_core::stream::WireDecoder;
use gateway_core::{ChatEvent, ChatStream, GatewayError};

use crate::sse::{MAX_EVENT_BYTES, too_long};
use crate::upstream::{UpstreamResponse, body_stream};

/// Decodes an upstream NDJSON response with a dialect's `decoder`, one line
/// at a time as bytes arrive. The stream ends after the first error.
pub fn decode_ndjson<D: WireDecoder + 'static>(
    response: UpstreamResponse,
    decoder: D,
) -> ChatStream {
    struct State<S, D> {
        body: S,
        lines: Lines,
        decoder: D,
        pending: VecDeque<ChatEvent>,
        ended: bool,
    }
    let state = State {
        body: Box::pin(body_stream(response.into_body())),
        lines: Lines::default(),
        decoder,
        pending: VecDeque::new(),
        ended: false,
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.ended {
                return None;
            }
            let mut out = Vec::new();
            let step = match state.lines.next_line() {
                Ok(Some(line)) => decode_line(&mut state.decoder, &line, &mut out),
                Err(err) => Err(err),
                Ok(None) => match state.body.next().await {
                    Some(Ok(bytes)) => {
                        state.lines.feed(bytes.chunk());
                        Ok(())
                    }
                    Some(Err(err)) => Err(err),
                    None => {
                        state.ended = true;
                        let rest = state.lines.rest();
                        decode_line(&mut state.decoder, &rest, &mut out)
                            .and_then(|()| state.decoder.end(&mut out))
                    }
                },
            };
            state.pending.extend(out);
            if let Err(err) = step {
                state.ended = true;
                state.pending.clear();
                return Some((Err(err), state));
            }
        }
    }))
}

/// Bytes cut into lines as they arrive; each byte is scanned once, and a
/// line longer than [`MAX_EVENT_BYTES`] is an error rather than a buffer
/// growing without end.
#[derive(Default)]
struct Lines {
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
}

impl Lines {
    fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole line without its `\n`, if one has arrived.
    fn next_line(&mut self) -> Result<Option<BytesMut>, GatewayError> {
        match memchr::memchr(b'\n', &self.buffer[self.scanned..]) {
            Some(at) => {
                let mut line = self.buffer.split_to(self.scanned + at + 1);
                line.truncate(self.scanned + at);
                self.scanned = 0;
                Ok(Some(line))
            }
            None if self.buffer.len() > MAX_EVENT_BYTES => Err(too_long()),
            None => {
                self.scanned = self.buffer.len();
                Ok(None)
            }
        }
    }

    /// What is left after the last newline, at the end of the stream.
    fn rest(&mut self) -> BytesMut {
        self.scanned = 0;
        std::mem::take(&mut self.buffer)
    }
}

fn decode_line<D: WireDecoder>(
    decoder: &mut D,
    line: &[u8],
    out: &mut Vec<ChatEvent>,
) -> Result<(), GatewayError> {
    let line = std::str::from_utf8(line)
        .map_err(|_| GatewayError::upstream("the upstream sent a stream line that is not UTF-8"))?
        .trim();
    if line.is_empty() {
        return Ok(());
    }
    decoder.decode(line, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for chunk in chunks {
            lines.feed(chunk);
            while let Some(line) = lines.next_line().expect("no error") {
                out.push(String::from_utf8(line.to_vec()).expect("utf-8"));
            }
        }
        let rest = lines.rest();
        if !rest.is_empty() {
            out.push(String::from_utf8(rest.to_vec()).expect("utf-8"));
        }
        out
    }

    #[test]
    fn lines_are_cut_whatever_the_chunking() {
        let whole = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}";
        let expected = ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"];
        assert_eq!(lines(&[whole]), expected);
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(lines(&bytes), expected);
        let (first, second) = whole.split_at(11);
        assert_eq!(lines(&[first, second]), expected);
    }

    #[test]
    fn an_endless_line_is_an_error_not_a_growing_buffer() {
        let mut lines = Lines::default();
        let mut failed = None;
        for _ in 0..17 {
            lines.feed(&vec![b'x'; 1024 * 1024]);
            if let Err(err) = lines.next_line() {
                failed = Some(err);
                break;
            }
        }
        let err = failed.expect("too long");
        assert_eq!(
            err.message,
            "the upstream sent a stream event longer than 16 MiB"
        );
    }
}
