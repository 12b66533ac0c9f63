//! Upstream SSE → canonical events, one upstream event at a time.

use std::collections::VecDeque;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{StreamExt, stream};
use gateway_core::stream::WireDecoder;
use gateway_core::{ChatEvent, ChatStream, GatewayError};

use crate::upstream::transport_error;

/// Decodes an upstream SSE response with a dialect's `decoder`. The stream
/// ends after the first error; dropping it drops the response and so closes
/// the upstream connection.
pub fn decode_sse<D: WireDecoder + 'static>(response: reqwest::Response, decoder: D) -> ChatStream {
    struct State<S, D> {
        sse: S,
        decoder: D,
        pending: VecDeque<ChatEvent>,
        ended: bool,
    }
    let state = State {
        sse: Box::pin(response.bytes_stream().eventsource()),
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
            let step = match state.sse.next().await {
                Some(Ok(event)) if event.data.trim().is_empty() => Ok(()),
                Some(Ok(event)) => state.decoder.decode(&event.data, &mut out),
                Some(Err(EventStreamError::Transport(err))) => Err(transport_error(err)),
                Some(Err(other)) => Err(GatewayError::upstream(format!(
                    "the upstream sent a malformed event stream: {other}"
                ))),
                None => {
                    state.ended = true;
                    state.decoder.end(&mut out)
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
