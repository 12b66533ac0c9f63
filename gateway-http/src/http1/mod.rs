//! The gateway's HTTP/1.1 server connection, written here rather than
//! taken from hyper's server.
//!
//! Every request the gateway serves is small JSON that its handlers read
//! whole, so a connection can be simple: read a head, read the body (at
//! most `limits.max_body_bytes` and one byte more, which is how the
//! handler learns that it is too large), call the application, write the
//! answer frame by frame as its body yields them, repeat. What this saves
//! over `hyper::server::conn::http1`, per connection: its read buffer (8
//! to 16 KiB, held for as long as the connection is open) and write buffer
//! (8 KiB); this one reads into a buffer that is given back while the
//! connection waits with nothing buffered, and writes the head and each
//! piece of the body straight from where they are, with one vectored
//! write. An open stream waiting for its next event therefore holds no
//! buffer at all. Per request, it also skips hyper's dispatcher, its body
//! channel and its connection state machine.
//!
//! What it does, as hyper did: keep-alive (HTTP/1.1 by default, HTTP/1.0
//! when asked; for at most `server.keepalive_requests` requests, as
//! nginx's `keepalive_requests`), pipelined requests (answered in
//! order), `Expect: 100-continue`, chunked request bodies,
//! `Content-Length` or chunked answers (close-delimited for HTTP/1.0
//! clients), `Date`; a request
//! whose head does not arrive within `server.header_timeout_ms` (or a
//! kept-alive connection silent that long) is closed; a client that goes
//! away while its request is handled or its answer streamed cancels both,
//! which is how an upstream stream learns that nobody reads it any more.
//! Refused, with a 400 and the connection closed: heads that are not
//! HTTP/1.x, a body framed by both `Transfer-Encoding` and
//! `Content-Length` (request smuggling) or by an unknown coding, invalid
//! chunked framing; heads over 64 KiB or 100 headers get a 431. Not
//! supported: protocol upgrades (`Upgrade`, `CONNECT`), which no model
//! API uses. HTTP/2 with prior knowledge is handed to hyper (see
//! [`h2`]).

mod busy;
mod h2;
pub(crate) mod request;
pub(crate) mod response;

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use adapter_http::wire::{self, Decoded, Framing, ReadBuffer};
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use gateway_core::pipeline::Alarm;
use http::Version;
use http_body::Body as _;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::App;
use request::{Head, Refusal};
use response::{Outgoing, chunk_size_line};

/// At most this much room is made ahead for a body of announced length.
const MAX_RESERVE: usize = 1024 * 1024;

/// What a connection needs to know of the server's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// How long a client may take to send a request's head, and how long
    /// a kept-alive connection may stay silent.
    pub(crate) header_timeout: Duration,
    /// How many requests one connection may carry: the answer to the
    /// last says `Connection: close` (at least 1).
    pub(crate) keepalive_requests: u64,
    /// The largest request body handlers accept (`limits.max_body_bytes`).
    pub(crate) body_limit: u64,
}

/// Serves the requests that arrive on `socket` with `app` until the
/// client closes it, breaks the protocol, or `stopping` turns true (then
/// the request in flight is finished first).
pub(crate) async fn serve(
    socket: TcpStream,
    app: App,
    settings: Settings,
    stopping: watch::Receiver<bool>,
) {
    let mut connection = Connection {
        socket,
        read: ReadBuffer::default(),
    };
    match connection
        .run(app.clone(), settings, stopping.clone())
        .await
    {
        Ok(Ending::Closed) => {}
        Ok(Ending::Http2) => {
            let Connection { socket, read, .. } = connection;
            h2::serve(socket, read.into_bytes(), app, stopping).await;
        }
        Err(err) => tracing::debug!("client connection ended: {err}"),
    }
}

/// How a connection's HTTP/1.1 part ended without an error.
enum Ending {
    /// The connection is done with.
    Closed,
    /// The client spoke HTTP/2 with prior knowledge.
    Http2,
}

/// A client connection: its socket and the bytes read from it that no
/// request has taken yet.
struct Connection {
    socket: TcpStream,
    read: ReadBuffer,
}

/// What came of waiting for something while watching the client.
enum Watched<T> {
    Ready(T),
    /// The client closed the connection or it failed.
    Gone,
}

impl Connection {
    async fn run(
        &mut self,
        mut app: App,
        settings: Settings,
        stopping: watch::Receiver<bool>,
    ) -> io::Result<Ending> {
        let mut first = true;
        // Requests this connection may still carry after the one read next.
        let mut left = settings.keepalive_requests.saturating_sub(1);
        // One timer for the connection's life, for its head and body
        // deadlines and lent to each request for its first-byte deadlines;
        // moved lazily (see `Alarm`). Registering a new timer on every
        // request cost a lock on tokio's timer wheel and, whenever it was
        // the runtime's next deadline, a wake-up of the runtime through its
        // eventfd (a `write` and an extra `epoll_wait` for about one request
        // in three).
        let timer = std::pin::pin!(tokio::time::sleep(settings.header_timeout));
        let mut alarm = Alarm::new(timer);
        // One wait for the stop signal for the connection's life too: a
        // wait made for each request joined and left the channel's list of
        // waiters (a lock each way) every time.
        let mut stop_signal = stopping.clone();
        let stopped = async move {
            // A closed channel means the worker is going away: stop too.
            let _ = stop_signal.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopped);
        loop {
            // By the coarse clock: a deadline of seconds needs no more
            // than a tick's precision (see `adapter_http::clock`).
            let deadline =
                Instant::from_std(adapter_http::clock::coarse_instant()) + settings.header_timeout;
            let head = tokio::select! {
                biased;
                head = self.read_head() => head?,
                () = alarm.until(deadline) => return Ok(Ending::Closed),
                () = &mut stopped => return Ok(Ending::Closed),
            };
            let head = match head {
                Some(Ok(head)) => head,
                Some(Err(_)) if first && self.read.starts_with(h2::PREFACE_START) => {
                    return Ok(Ending::Http2);
                }
                Some(Err(refusal)) => {
                    let (status, message) = match refusal {
                        Refusal::Malformed(message) => (http::StatusCode::BAD_REQUEST, message),
                        Refusal::TooLarge => (
                            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            "the request head is larger than 64 KiB or has more than 100 headers",
                        ),
                    };
                    self.refuse(status, message).await?;
                    return Ok(Ending::Closed);
                }
                None => return Ok(Ending::Closed),
            };
            first = false;
            let _in_flight = busy::InFlight::enter();
            let Head {
                request,
                framing,
                keep_alive,
                expects_continue,
            } = head;
            if expects_continue && !framing.is_done() && self.read.is_empty() {
                self.write_all(&mut [IoSlice::new(b"HTTP/1.1 100 Continue\r\n\r\n")])
                    .await?;
            }
            let (body, whole) = match self.read_body(framing, settings, &mut alarm).await? {
                Watched::Ready(Ok(body)) => body,
                Watched::Ready(Err(message)) => {
                    self.refuse(http::StatusCode::BAD_REQUEST, message).await?;
                    return Ok(Ending::Closed);
                }
                Watched::Gone => return Ok(Ending::Closed),
            };
            let method = request.method().clone();
            let version = request.version();
            let mut request_id = None;
            let answer = app.call_whole(request, &body, &mut request_id, &mut alarm);
            let Watched::Ready(response) = self.watching(answer).await else {
                return Ok(Ending::Closed);
            };
            // What went upstream holds its own share of the body; this one
            // is not kept while the answer (a stream, perhaps) is written.
            drop(body);
            let (parts, body) = response.into_parts();
            // A body of unknown length whose application set
            // `Content-Length` (an upstream's answer passed through) keeps
            // that length on the wire, as hyper did.
            let length = body.size_hint().exact().or_else(|| {
                parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|value| value.to_str().ok()?.parse().ok())
            });
            let outgoing = Outgoing::choose(&method, version, parts.status, length);
            let keep_alive = keep_alive
                && whole
                && left > 0
                && outgoing != Outgoing::UntilClose
                && !*stopping.borrow();
            left = left.saturating_sub(1);
            let id_header = crate::request_id::HEADER;
            let extra = request_id.as_ref().map(|id| (&id_header, id.as_bytes()));
            let head = response::encode_head(&parts, extra, outgoing, keep_alive, version);
            drop(parts);
            let finished = self.write_answer(head, body, outgoing).await?;
            if !(finished && keep_alive) {
                self.close(whole).await;
                return Ok(Ending::Closed);
            }
        }
    }

    /// The next request head; `None` when the client closed the
    /// connection first.
    async fn read_head(&mut self) -> io::Result<Option<Result<Head, Refusal>>> {
        poll_fn(|cx| {
            loop {
                if !self.read.is_empty() {
                    match request::parse(&mut self.read) {
                        Ok(Some(head)) => return Poll::Ready(Ok(Some(Ok(head)))),
                        Ok(None) => {}
                        Err(refusal) => return Poll::Ready(Ok(Some(Err(refusal)))),
                    }
                }
                if ready!(self.poll_fill(cx))? == 0 {
                    return Poll::Ready(Ok(None));
                }
            }
        })
        .await
    }

    /// The request's body, whole, and whether it was read to its end: a
    /// body longer than the limit is read only as far as one byte more
    /// (enough for the handler to refuse it), and the connection cannot
    /// be reused after it. `Err` for invalid chunked framing; `Gone` when
    /// the client closes, or sends nothing for the header timeout, first.
    async fn read_body(
        &mut self,
        mut framing: Framing,
        settings: Settings,
        alarm: &mut Alarm<'_>,
    ) -> io::Result<Watched<Result<(Bytes, bool), &'static str>>> {
        let enough = usize::try_from(settings.body_limit.saturating_add(1)).unwrap_or(usize::MAX);
        if let Framing::Length(length) = framing {
            let wanted = usize::try_from(length).unwrap_or(usize::MAX).min(enough);
            // Room for the whole body at once, within reason: a length
            // is only a promise.
            let ahead = wanted.saturating_sub(self.read.len()).min(MAX_RESERVE);
            self.read.reserve(ahead);
            while self.read.len() < wanted {
                if !self.fill_within(settings.header_timeout, alarm).await? {
                    return Ok(Watched::Gone);
                }
            }
            let body = wire::take_front(&mut self.read, wanted);
            let whole = u64::try_from(wanted).is_ok_and(|wanted| wanted == length);
            return Ok(Watched::Ready(Ok((body, whole))));
        }
        let mut body = BytesMut::new();
        loop {
            match framing.decode(&mut self.read) {
                Ok(Decoded::Data(data)) => {
                    body.extend_from_slice(&data);
                    if body.len() >= enough {
                        return Ok(Watched::Ready(Ok((body.freeze(), framing.is_done()))));
                    }
                }
                Ok(Decoded::End) => return Ok(Watched::Ready(Ok((body.freeze(), true)))),
                Ok(Decoded::NeedMore) => {
                    if !self.fill_within(settings.header_timeout, alarm).await? {
                        return Ok(Watched::Gone);
                    }
                }
                Err(wire::Error::Invalid(message)) => return Ok(Watched::Ready(Err(message))),
                Err(_) => return Ok(Watched::Ready(Err("the chunked request body is invalid"))),
            }
        }
    }

    /// Reads more of a request's body: `false` when the client closed the
    /// connection, or sent nothing for `idle` (as nginx's
    /// `client_body_timeout`: a slow upload goes on, a stalled one does
    /// not hold its connection for ever). The wait is on the connection's
    /// one timer (see [`Alarm`]), not a new one per read.
    async fn fill_within(&mut self, idle: Duration, alarm: &mut Alarm<'_>) -> io::Result<bool> {
        let deadline = Instant::from_std(adapter_http::clock::coarse_instant()) + idle;
        tokio::select! {
            biased;
            read = poll_fn(|cx| self.poll_fill(cx)) => Ok(read? > 0),
            () = alarm.until(deadline) => Ok(false),
        }
    }

    /// Awaits `future` while watching the client: when it closes the
    /// connection, `future` is dropped (cancelling what it does).
    async fn watching<F: Future>(&mut self, future: F) -> Watched<F::Output> {
        let mut future = std::pin::pin!(future);
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Watched::Ready(output));
            }
            if self.poll_gone(cx).is_ready() {
                return Poll::Ready(Watched::Gone);
            }
            Poll::Pending
        })
        .await
    }

    /// Ready once the client has closed the connection (or it failed).
    /// Whatever the client sends meanwhile (a pipelined request) is kept
    /// for later, up to the size of a head; beyond that it is left in the
    /// socket.
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.read.len() <= wire::MAX_HEAD {
            match ready!(self.poll_fill(cx)) {
                Ok(0) | Err(_) => return Poll::Ready(()),
                Ok(_) => {}
            }
        }
        Poll::Pending
    }

    /// Writes `head` and the body framed by `outgoing`, piece by piece as
    /// the body yields them; `false` when the body failed or the client
    /// went away before the end (the answer is then cut short, which the
    /// client sees as an incomplete message).
    async fn write_answer(
        &mut self,
        head: Vec<u8>,
        mut body: Body,
        outgoing: Outgoing,
    ) -> io::Result<bool> {
        let mut head = Some(head);
        if matches!(outgoing, Outgoing::Bodiless(_)) {
            self.write_all(&mut [IoSlice::new(&head.unwrap_or_default())])
                .await?;
            return Ok(true);
        }
        let chunked = outgoing == Outgoing::Chunked;
        // What a `Content-Length` answer still owes; a body that yields
        // more or less than it announced cuts the connection, since the
        // client could not tell where the answer ends.
        let mut owed = match outgoing {
            Outgoing::Length(length) => Some(length),
            _ => None,
        };
        // A frame polled ahead of its turn (see `last` below).
        let mut ahead = None;
        // A stream's head first, on its own, when the worker has nothing
        // else to do: the client starts waking while the body is made
        // ready (see `busy`).
        if chunked && busy::alone() {
            let head_bytes = head.take().unwrap_or_default();
            self.write_all(&mut [IoSlice::new(&head_bytes)]).await?;
        }
        loop {
            let frame = if let Some(frame) = ahead.take() {
                Some(Some(frame))
            } else {
                poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(frame) => Poll::Ready(Some(frame)),
                    // The head goes out as soon as the body makes the client
                    // wait, so that a stream's headers are not held back.
                    Poll::Pending if head.is_some() => Poll::Ready(None),
                    Poll::Pending => match self.poll_gone(cx) {
                        Poll::Ready(()) => {
                            Poll::Ready(Some(Some(Err(axum::Error::new("the client went away")))))
                        }
                        Poll::Pending => Poll::Pending,
                    },
                })
                .await
            };
            let head_bytes = head.take().unwrap_or_default();
            let data = match frame {
                None => {
                    self.write_all(&mut [IoSlice::new(&head_bytes)]).await?;
                    continue;
                }
                Some(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
                Some(Some(Err(err))) => {
                    tracing::debug!("an answer's body ended early: {err}");
                    self.write_all(&mut [IoSlice::new(&head_bytes)]).await?;
                    return Ok(false);
                }
                Some(None) => {
                    let end: &[u8] = if chunked { b"0\r\n\r\n" } else { b"" };
                    self.write_all(&mut [IoSlice::new(&head_bytes), IoSlice::new(end)])
                        .await?;
                    return Ok(owed.is_none_or(|owed| owed == 0));
                }
            };
            if let Some(owed) = owed.as_mut() {
                let length = u64::try_from(data.len()).unwrap_or(u64::MAX);
                if length > *owed {
                    tracing::debug!("an answer's body is longer than its content-length");
                    self.write_all(&mut [IoSlice::new(&head_bytes)]).await?;
                    return Ok(false);
                }
                *owed -= length;
            }
            // Whether this is the last frame: the body may already know,
            // and the rest of a stream that came in one read usually has
            // its end there too, which then goes out in this write
            // rather than in one more (a syscall, and a packet the client
            // must wait for).
            let last = body.is_end_stream()
                || match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(frame)) => {
                        ahead = Some(frame);
                        false
                    }
                    Poll::Pending => false,
                };
            if chunked && !data.is_empty() {
                let size = chunk_size_line(data.len());
                let end: &[u8] = if last { b"\r\n0\r\n\r\n" } else { b"\r\n" };
                self.write_all(&mut [
                    IoSlice::new(&head_bytes),
                    IoSlice::new(size.as_ref()),
                    IoSlice::new(&data),
                    IoSlice::new(end),
                ])
                .await?;
            } else {
                let end: &[u8] = if chunked && last { b"0\r\n\r\n" } else { b"" };
                self.write_all(&mut [
                    IoSlice::new(&head_bytes),
                    IoSlice::new(&data),
                    IoSlice::new(end),
                ])
                .await?;
            }
            if last {
                return Ok(owed.is_none_or(|owed| owed == 0));
            }
        }
    }

    /// Answers a request the server itself refuses, before any dialect is
    /// known (see [`response::refusal_json`]), and closes the connection.
    async fn refuse(&mut self, status: http::StatusCode, message: &str) -> io::Result<()> {
        let body = response::refusal_json(status, message);
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let (parts, ()) = response.into_parts();
        let length = u64::try_from(body.len()).unwrap_or(u64::MAX);
        let head = response::encode_head(
            &parts,
            None,
            Outgoing::Length(length),
            false,
            Version::HTTP_11,
        );
        self.write_all(&mut [IoSlice::new(&head), IoSlice::new(body.as_bytes())])
            .await?;
        self.close(false).await;
        Ok(())
    }

    /// Closes the connection after its last answer. When the client may
    /// still be sending (a body that was not read to its end), what it
    /// sends is read and dropped for a moment first: closing a socket with
    /// unread data resets it, and the reset can destroy the answer before
    /// the client has read it.
    async fn close(&mut self, whole: bool) {
        let _ = self.socket.shutdown().await;
        if whole {
            return;
        }
        let drain = async {
            let mut sink = vec![0; 16 * 1024];
            let mut left: usize = 1024 * 1024;
            while left > 0 {
                match tokio::io::AsyncReadExt::read(&mut self.socket, &mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(count) => left = left.saturating_sub(count),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    /// Writes all of `slices`, in as few writes as the socket allows. Empty
    /// slices (an absent head, a frame's end that is nothing) are left out
    /// rather than handed to the kernel, which would walk them too.
    async fn write_all(&mut self, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        let mut filled = 0;
        for at in 0..slices.len() {
            if !slices[at].is_empty() {
                slices.swap(filled, at);
                filled += 1;
            }
        }
        let mut slices = &mut slices[..filled];
        while !slices.is_empty() {
            let written =
                poll_fn(|cx| Pin::new(&mut self.socket).poll_write_vectored(cx, slices)).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut slices, written);
        }
        Ok(())
    }

    /// Reads what the socket has into the buffer (see
    /// [`ReadBuffer::poll_fill`]); `Ok(0)` when the client closed the
    /// connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read.poll_fill(&mut self.socket, cx)
    }
}
