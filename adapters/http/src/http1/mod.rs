//! HTTP/1.1 connections to an upstream, written here rather than taken
//! from hyper's client.
//!
//! The gateway always knows the exact request it sends and needs only
//! one answer at a time per connection, so the client side of HTTP/1.1 is
//! small: write one head and one body (the body's pieces in the same
//! vectored write), parse one answer head with
//! `httparse`, then take the body out of the read buffer by its framing.
//! What this saves over `hyper::client::conn::http1`, per connection: its
//! dispatch channel (a tokio channel block of ~9 KiB), its 8 KiB write
//! buffer and a fixed 8 KiB read buffer (this one starts at 4 KiB and
//! grows only when reads fill it), which together were about half of the
//! memory an open stream holds; and per request, its dispatcher and
//! connection state machine (~13k instructions of a pass-through
//! request's ~59k). A connection is driven by whoever reads its answer's
//! body, so no task of its own exists.
//!
//! Not supported, because no model provider's API needs them: sending a
//! request body as a stream (bodies are whole), `Expect:
//! 100-continue`, protocol upgrades, pipelining. An answer's head is at
//! most 64 KiB with 100 headers.

pub(crate) mod body;
pub(crate) mod head;
pub(crate) mod read;

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gateway_core::SplicedBody;
use http::{Method, Response};
use http_body::SizeHint;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use body::{Decoded, Framing};
use head::Head;
pub(crate) use head::only_answer_headers;
use read::ReadBuffer;

/// What went wrong on an HTTP/1.1 connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upstream closed the connection before the answer was complete.
    #[error("connection closed before message completed")]
    Closed,
    /// Reading or writing the socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The answer's head is not HTTP.
    #[error("invalid answer head: {0}")]
    Parse(httparse::Error),
    /// The answer breaks HTTP/1.1's rules.
    #[error("invalid answer: {0}")]
    Invalid(&'static str),
    /// The answer's head did not end within [`head::MAX_HEAD`] bytes.
    #[error("the answer's head is longer than {} KiB", head::MAX_HEAD / 1024)]
    HeadTooLarge,
}

/// A failed exchange, and whether the request may be sent again
/// elsewhere: only when not one byte of it was accepted by the socket (a
/// kept-alive connection the upstream had just closed), since a model
/// call that reached the upstream must not be made twice.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) unsent: bool,
}

/// The socket under a connection: plain TCP, or TLS over TCP.
pub(crate) enum Io {
    /// `http://` endpoints.
    Plain(TcpStream),
    /// `https://` endpoints whose server did not pick HTTP/2. (The doubly
    /// wrapped TCP stream is how `hyper-rustls` hands it over.)
    Tls(Box<TlsStream<TokioIo<TokioIo<TcpStream>>>>),
}

/// An HTTP/1.1 connection: its socket and the bytes read from it that no
/// answer has taken yet.
pub(crate) struct Connection {
    io: Io,
    read: ReadBuffer,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("buffered", &self.read.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection over `io`, nothing read yet.
    pub(crate) fn new(io: Io) -> Self {
        Self {
            io,
            read: ReadBuffer::default(),
        }
    }

    /// Whether an idle connection can take a request: it is still open and
    /// the upstream sent nothing unasked. Never waits.
    pub(crate) fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        self.read.is_empty() && self.poll_fill(cx).is_pending()
    }

    /// Writes a request (`head`, then `body`) and
    /// reads the head of its answer. The answer's body owns the connection
    /// from then on; a failed connection is dropped, which closes it.
    pub(crate) async fn send(
        mut self,
        head: &[u8],
        body: &SplicedBody,
        method: &Method,
    ) -> Result<Response<Body>, Failure> {
        self.write_request(head, body).await?;
        let head = self.read_head(method).await.map_err(|error| Failure {
            error,
            unsent: false,
        })?;
        let body = Body {
            connection: Some(self),
            framing: head.framing,
            keep_alive: head.keep_alive,
        };
        Ok(head.response.map(|()| body))
    }

    /// Writes `head` and `body`'s pieces back to back, in as few writes as
    /// the socket allows (one, on loopback and for any usual body). The
    /// pieces are taken again on each write rather than kept: this future
    /// is part of the one boxed on every request.
    async fn write_request(&mut self, head: &[u8], body: &SplicedBody) -> Result<(), Failure> {
        let total = head.len() + body.len();
        let mut written = 0;
        while written < total {
            let outcome = poll_fn(|cx| {
                let [front, middle, back] = body.pieces();
                let mut slices = [head, front, middle, back].map(IoSlice::new);
                let mut rest = &mut slices[..];
                // Never past the end: `written` is below the pieces' total.
                IoSlice::advance_slices(&mut rest, written);
                Pin::new(&mut self.io).poll_write_vectored(cx, rest)
            })
            .await;
            let unsent = written == 0;
            match outcome {
                Ok(0) => {
                    return Err(Failure {
                        error: Error::Io(io::ErrorKind::WriteZero.into()),
                        unsent,
                    });
                }
                Ok(count) => written += count,
                Err(err) => {
                    return Err(Failure {
                        error: err.into(),
                        unsent,
                    });
                }
            }
        }
        poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx))
            .await
            .map_err(|err| Failure {
                error: err.into(),
                unsent: false,
            })
    }

    async fn read_head(&mut self, method: &Method) -> Result<Head, Error> {
        poll_fn(|cx| {
            loop {
                if !self.read.is_empty()
                    && let Some(head) = head::parse_answer(&mut self.read, method)?
                {
                    return Poll::Ready(Ok(head));
                }
                if ready!(self.poll_fill(cx))? == 0 {
                    return Poll::Ready(Err(Error::Closed));
                }
            }
        })
        .await
    }

    /// Reads what the socket has into the buffer; `Ok(0)` when the
    /// upstream closed the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read.poll_fill(&mut self.io, cx)
    }
}

/// An answer's body, read from its connection as it is polled. Once it
/// has ended, [`Body::take_reusable`] hands the connection back.
#[derive(Debug)]
pub(crate) struct Body {
    /// `None` once the connection failed or was handed back.
    connection: Option<Connection>,
    framing: Framing,
    keep_alive: bool,
}

impl Body {
    /// The next piece of the body; `None` at its end, and after an error.
    pub(crate) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return Poll::Ready(None);
            };
            let failed = match self.framing.decode(&mut connection.read) {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => match ready!(connection.poll_fill(cx)) {
                    Ok(0) => match self.framing.at_close() {
                        Ok(_) => {
                            self.keep_alive = false;
                            return Poll::Ready(None);
                        }
                        Err(err) => err,
                    },
                    Ok(_) => continue,
                    Err(err) => err.into(),
                },
                Err(err) => err,
            };
            self.connection = None;
            return Poll::Ready(Some(Err(failed)));
        }
    }

    /// Whether the whole body has been read.
    pub(crate) fn is_end_stream(&self) -> bool {
        self.framing.is_done()
    }

    /// What is known of the body's length.
    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    /// The connection, once the body has ended cleanly on a connection
    /// that may carry another request (and nothing beyond the answer
    /// arrived on it).
    pub(crate) fn take_reusable(&mut self) -> Option<Connection> {
        if !(self.keep_alive && self.framing.is_done()) {
            return None;
        }
        self.connection
            .take()
            .filter(|connection| connection.read.is_empty())
    }

    /// Consumes, without reading the socket, whatever of the body is
    /// already buffered: for a body dropped before its end, whose end may
    /// have arrived already (then the connection can still be reused).
    pub(crate) fn skip_buffered(&mut self) {
        if let Some(connection) = self.connection.as_mut() {
            while let Ok(Decoded::Data(_)) = self.framing.decode(&mut connection.read) {}
        }
    }
}

impl From<hyper_rustls::MaybeHttpsStream<TokioIo<TcpStream>>> for Io {
    fn from(stream: hyper_rustls::MaybeHttpsStream<TokioIo<TcpStream>>) -> Self {
        match stream {
            hyper_rustls::MaybeHttpsStream::Http(tcp) => Self::Plain(tcp.into_inner()),
            hyper_rustls::MaybeHttpsStream::Https(tls) => Self::Tls(Box::new(tls.into_inner())),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}
