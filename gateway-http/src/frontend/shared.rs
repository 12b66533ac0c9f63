//! Pieces every dialect frontend uses: body limits, pass-through responses,
//! SSE responses.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures::{Stream, StreamExt};
use gateway_core::pipeline::KeyPolicy;
use gateway_core::{
    ChatEvent, ChatStream, ErrorKind, GatewayError, PassthroughResponse, UpstreamBody,
};

use crate::app::AppState;
use crate::frontend::coalesce::Coalesce;

/// Every resolvable name `key` may use (all of them without keys), in the
/// router's listing order.
pub(crate) fn listable_names(state: &AppState, key: Option<&KeyPolicy>) -> Vec<String> {
    let router = state.gateway.router();
    let names = router.names();
    match key {
        None => names,
        Some(key) => names
            .into_iter()
            .filter(|name| {
                router
                    .plan(name)
                    .is_ok_and(|targets| key.may_list(name, targets))
            })
            .collect(),
    }
}

/// A JSON answer (`200`, `application/json`) of a translated request.
///
/// Not `axum::Json`: it serialises through `BytesMut`'s writer, which costs
/// a call and a capacity check for each of the hundred small pieces
/// serde_json writes for a completion (about a tenth of a translated
/// request's instructions); a `Vec` takes them inline and becomes the body
/// without a copy.
pub(crate) fn json_response(value: &impl serde::Serialize) -> Response {
    let mut json = Vec::with_capacity(JSON_CAPACITY);
    match serde_json::to_writer(&mut json, value) {
        Ok(()) => encoded_json_response(json),
        Err(err) => error_response(
            &GatewayError::internal(format!("cannot encode the answer: {err}")),
            serde_json::json!({"error": {"message": err.to_string()}}),
        ),
    }
}

/// A 200 whose body is `json`, already encoded.
pub(crate) fn encoded_json_response(json: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(json));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The initial size of a JSON answer's buffer: a short completion fits.
const JSON_CAPACITY: usize = 1024;

/// An error response with `err`'s status, `body` (the dialect's rendering of
/// it) and `Retry-After` when the error says when to retry.
pub(crate) fn error_response(err: &GatewayError, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(retry_after) = err.retry_after
        && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// What a handler answers: its response, or its error rendered by the
/// dialect's `render`.
pub(crate) fn respond(
    result: Result<Response, GatewayError>,
    render: fn(&GatewayError) -> Response,
) -> Response {
    result.unwrap_or_else(|err| {
        tracing::debug!(status = err.status(), backend = ?err.backend, "request failed: {err}");
        render(&err)
    })
}

/// Maps axum's body extraction failure (too large, unreadable) to ours.
pub(crate) fn body_rejection(rejection: &BytesRejection, state: &AppState) -> GatewayError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body is larger than {} bytes (limits.max_body_bytes)",
                state.gateway.limits().max_body_bytes
            ),
        )
    } else {
        GatewayError::invalid_request(format!("cannot read the request body: {rejection}"))
    }
}

/// Seconds since the epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// The whole of `body` when it is already read (a JSON answer usually is,
/// by the time its head has been parsed: it came in the same read), else
/// `body` as it was. Polled without a waker: a body that is not ready
/// registers the real one when it is next polled.
pub(crate) fn whole_body_now(mut body: UpstreamBody) -> Result<Bytes, UpstreamBody> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let first = match body.as_mut().poll_next(&mut cx) {
        Poll::Pending => return Err(body),
        Poll::Ready(None) => return Ok(Bytes::new()),
        Poll::Ready(Some(Ok(first))) => first,
        Poll::Ready(Some(Err(err))) => return Err(given_back([Err(err)], body)),
    };
    match body.as_mut().poll_next(&mut cx) {
        Poll::Ready(None) => Ok(first),
        Poll::Pending => Err(given_back([Ok(first)], body)),
        Poll::Ready(Some(second)) => Err(given_back([Ok(first), second], body)),
    }
}

/// `body` with the items already taken from it put back in front.
fn given_back<const N: usize>(
    taken: [Result<Bytes, GatewayError>; N],
    body: UpstreamBody,
) -> UpstreamBody {
    Box::pin(futures::stream::iter(taken).chain(body))
}

/// An upstream's answer whose body was already read whole
/// ([`whole_body_now`]), sent back untouched: one body of known length,
/// without the layers that stream it.
pub(crate) fn passthrough_whole(
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Streams the upstream's answer back untouched. A transport failure in the
/// middle of an SSE stream becomes the dialect's error event (`error_frame`),
/// so the SDK raises instead of seeing a silently cut stream.
pub(crate) fn passthrough_response(
    upstream: PassthroughResponse,
    error_frame: fn(&GatewayError) -> Bytes,
) -> Response {
    let is_sse = upstream.is_event_stream();
    let PassthroughResponse {
        status,
        headers,
        body,
    } = upstream;
    let body = PassthroughBody {
        inner: body,
        sse_error: is_sse.then_some(error_frame),
        ended: false,
    };
    let mut response = Response::new(Body::from_stream(Coalesce::new(body)));
    *response.status_mut() = status;
    // The new response has no headers yet: the map is moved in rather
    // than copied header by header.
    *response.headers_mut() = headers;
    if is_sse {
        add_sse_headers(&mut response);
    }
    response
}

/// An upstream answer's body on its way back: its chunks as they come. A
/// transport failure ends it; in an event stream it first becomes the
/// dialect's error event (`sse_error`), elsewhere it is passed on as an
/// error (and the connection cut, which is all HTTP/1.1 can say).
struct PassthroughBody {
    inner: UpstreamBody,
    sse_error: Option<fn(&GatewayError) -> Bytes>,
    ended: bool,
}

impl Stream for PassthroughBody {
    type Item = Result<Bytes, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let item = match ready!(self.inner.as_mut().poll_next(cx)) {
            Some(Ok(bytes)) => return Poll::Ready(Some(Ok(bytes))),
            Some(Err(err)) => Some(match self.sse_error {
                Some(frame) => Ok(frame(&err)),
                None => Err(err),
            }),
            None => None,
        };
        self.ended = true;
        Poll::Ready(item)
    }
}

/// The initial size of the buffer a batch of SSE frames is written to.
const FRAME_CAPACITY: usize = 512;

/// Room added at once when a batch turns out to be a burst (about 35 more
/// OpenAI text chunks).
const BURST_CAPACITY: usize = 8 * 1024;

/// A batch of SSE frames stops growing at about this size.
const MAX_BATCH: usize = 64 * 1024;

fn add_sse_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// Encodes canonical events as an SSE response with `encode`, which appends
/// the frames for one event (or the final error) to the buffer. Each event
/// is sent as soon as it arrives.
pub(crate) fn sse_response(
    events: ChatStream,
    encode: impl FnMut(Result<ChatEvent, GatewayError>, &mut BytesMut) + Send + Unpin + 'static,
) -> Response {
    let frames = SseFrames {
        events,
        encode,
        ended: false,
    };
    let mut response = Response::new(Body::from_stream(Coalesce::new(frames)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    add_sse_headers(&mut response);
    response
}

/// Canonical events as SSE frames: every event that is ready when the
/// stream is polled is encoded into one buffer, so the events of one
/// upstream read (twenty, in a fast stream) become one chunk instead of
/// twenty, each allocated and passed up through the body's layers on its
/// own. An event that is not ready yet is never waited for: what is
/// encoded goes out first.
struct SseFrames<E> {
    events: ChatStream,
    encode: E,
    ended: bool,
}

impl<E> Stream for SseFrames<E>
where
    E: FnMut(Result<ChatEvent, GatewayError>, &mut BytesMut) + Unpin,
{
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let mut out = BytesMut::new();
        while !this.ended && out.len() < MAX_BATCH {
            match this.events.as_mut().poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    // Room for a typical event's frames (an OpenAI text
                    // chunk is about 230 bytes): growing from empty cost
                    // seven reallocations per event.
                    if out.capacity() == 0 {
                        out.reserve(FRAME_CAPACITY);
                    } else if out.capacity() - out.len() < FRAME_CAPACITY {
                        // A second event ready at once: a burst (a fast
                        // upstream's whole answer in one read), which
                        // usually goes on; one jump instead of doubling
                        // four times, each a reallocation and a copy.
                        out.reserve(BURST_CAPACITY);
                    }
                    (this.encode)(event, &mut out);
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        if !out.is_empty() {
            Poll::Ready(Some(Ok(out.freeze())))
        } else if this.ended {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, stream};

    fn bytes(text: &'static str) -> Result<Bytes, GatewayError> {
        Ok(Bytes::from_static(text.as_bytes()))
    }

    /// What is left of a body, item by item, as far as it is ready.
    fn ready_items(mut body: UpstreamBody) -> Vec<Result<Bytes, String>> {
        let mut items = Vec::new();
        while let Some(Some(item)) = body.next().now_or_never() {
            items.push(item.map_err(|err| err.message));
        }
        items
    }

    #[test]
    fn a_body_read_whole_is_taken_whole() {
        let body: UpstreamBody = Box::pin(stream::iter([bytes("{\"a\":1}")]));
        assert_eq!(
            whole_body_now(body).ok(),
            Some(Bytes::from_static(b"{\"a\":1}"))
        );
        let empty: UpstreamBody = Box::pin(stream::empty());
        assert_eq!(whole_body_now(empty).ok(), Some(Bytes::new()));
    }

    #[test]
    fn a_body_not_read_whole_is_given_back_as_it_was() {
        let ok = |text: &str| Ok(Bytes::copy_from_slice(text.as_bytes()));
        // Two pieces ready.
        let body: UpstreamBody = Box::pin(stream::iter([bytes("a"), bytes("b")]));
        let body = whole_body_now(body).expect_err("not whole");
        assert_eq!(ready_items(body), [ok("a"), ok("b")]);
        // One piece, then a wait.
        let body: UpstreamBody = Box::pin(stream::iter([bytes("a")]).chain(stream::pending()));
        let body = whole_body_now(body).expect_err("not whole");
        assert_eq!(ready_items(body), [ok("a")]);
        // Nothing yet.
        let body: UpstreamBody = Box::pin(stream::pending());
        assert!(whole_body_now(body).is_err());
        // A failure first.
        let body: UpstreamBody = Box::pin(stream::iter([Err(GatewayError::upstream("cut"))]));
        let body = whole_body_now(body).expect_err("not whole");
        assert_eq!(ready_items(body), [Err("cut".to_owned())]);
    }
}
