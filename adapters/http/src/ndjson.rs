//! Upstream NDJSON (one JSON document per line) → canonical events.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use futures::{StreamExt, stream};
use gateway_core::stream::WireDecoder;
use gateway_core::{ChatEvent, ChatStream, GatewayError};

use crate::upstream::{UpstreamResponse, body_stream};

/// Decodes an upstream NDJSON response with a dialect's `decoder`, one line
/// at a time as bytes arrive. The stream ends after the first error.
pub fn decode_ndjson<D: WireDecoder + 'static>(
    response: UpstreamResponse,
    decoder: D,
) -> ChatStream {
    struct State<S, D> {
        body: S,
        buffer: BytesMut,
        decoder: D,
        pending: VecDeque<ChatEvent>,
        ended: bool,
    }
    let state = State {
        body: Box::pin(body_stream(response.into_body())),
        buffer: BytesMut::new(),
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
            let step = if let Some(newline) = state.buffer.iter().position(|&b| b == b'\n') {
                let line = state.buffer.split_to(newline + 1);
                decode_line(&mut state.decoder, &line[..newline], &mut out)
            } else {
                match state.body.next().await {
                    Some(Ok(bytes)) => {
                        state.buffer.extend_from_slice(bytes.chunk());
                        Ok(())
                    }
                    Some(Err(err)) => Err(err),
                    None => {
                        state.ended = true;
                        let rest = std::mem::take(&mut state.buffer);
                        decode_line(&mut state.decoder, &rest, &mut out)
                            .and_then(|()| state.decoder.end(&mut out))
                    }
                }
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
