//! Connections to one upstream: made with the backend's TCP/TLS connector,
//! kept alive between requests, one pool per server thread.
//!
//! hyper's low-level connections (`hyper::client::conn`) with a pool of our
//! own rather than `hyper-util`'s general client, for two reasons. A
//! backend has exactly one origin, so no pool key is hashed per request.
//! And an HTTP/1.1 connection is driven by the task of the request using
//! it, not by a task of its own: the answer's body polls the connection
//! when it needs bytes, so the upstream socket and the client's socket are
//! served by one task (the server connection's, in `gateway-http`), as
//! nginx serves both from one event loop. With a connection task, every
//! chunk of a stream cost two wake-ups (hyper's body channel holds one
//! frame), and the connection's task and buffers lived on between requests.
//!
//! An HTTP/1.1 connection goes back to its pool when its answer's body has
//! ended; an idle one is not polled at all until the next checkout polls
//! it, which is when a close by the upstream is noticed. A body dropped
//! before its end closes its connection, unless the end was already
//! buffered. An HTTP/2 connection (negotiated by ALPN over TLS) is
//! multiplexed, so it keeps a task of its own and is shared by every
//! request of its thread while it stays open.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use thread_local::ThreadLocal;
use tower_service::Service;

/// How long an idle connection is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// At most this many idle HTTP/1.1 connections are kept per thread; more
/// than that are closed when their answer ends.
const MAX_IDLE_PER_THREAD: usize = 1024;

/// The connector every pool of a backend uses.
pub(crate) type Connector = HttpsConnector<HttpConnector>;

/// An HTTP/1.1 connection's driving half.
type Http1Connection =
    http1::Connection<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>, Full<Bytes>>;

/// An HTTP/1.1 connection: the handle requests are sent through, and the
/// state machine that reads and writes the socket when polled.
struct Http1 {
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once it has ended: dropping it is what resolves a request
    /// still queued on it with an error. Boxed because it is large (its
    /// buffers' bookkeeping), and an `Http1` moves with every checkout,
    /// answer and return to the pool.
    connection: Option<Box<Http1Connection>>,
}

impl std::fmt::Debug for Http1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http1")
    }
}

/// Why no answer arrived.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made (TCP, TLS or the HTTP/2 preface).
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed while the request was sent or the answer's
    /// head awaited.
    Transport(hyper::Error),
}

/// A backend's connection pools, one per thread.
#[derive(Debug)]
pub(crate) struct Pools {
    connector: Connector,
    /// The origin's scheme and authority, for connecting and for the
    /// absolute URIs of HTTP/2.
    scheme: Scheme,
    authority: Authority,
    /// The `Host` of HTTP/1.1 requests.
    host: HeaderValue,
    threads: ThreadLocal<Arc<Pool>>,
}

/// One thread's connections to the backend. Behind a mutex only because a
/// body may be dropped on another thread (tests, plugins' runtimes); on the
/// server's own threads it is never contended.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<Idle>,
}

/// Connections free for the next request.
#[derive(Debug, Default)]
struct Idle {
    /// HTTP/1.1 connections, the most recently used last.
    http1: Vec<(Http1, Instant)>,
    /// The HTTP/2 connection, shared by every request.
    http2: Option<http2::SendRequest<Full<Bytes>>>,
}

/// A connection taken from the pool or freshly made.
enum Checkout {
    Http1 {
        connection: Http1,
        reused: bool,
    },
    Http2 {
        sender: http2::SendRequest<Full<Bytes>>,
        reused: bool,
    },
}

impl Pools {
    /// Pools for the origin `scheme://authority`, connecting with
    /// `connector`.
    pub(crate) fn new(connector: Connector, scheme: Scheme, authority: Authority) -> Option<Self> {
        Some(Self {
            connector,
            host: HeaderValue::from_str(authority.as_str()).ok()?,
            scheme,
            authority,
            threads: ThreadLocal::new(),
        })
    }

    /// Sends `request` (whose URI is the path on the origin) on a pooled
    /// connection, or a new one, and returns the answer's head. A request
    /// that a reused connection could not even start sending (the upstream
    /// had just closed it) is sent once more on a new connection.
    pub(crate) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let pool = self.threads.get_or_default().clone();
        loop {
            let checkout = pool.checkout(self).await?;
            let outcome = match checkout {
                Checkout::Http1 {
                    mut connection,
                    reused,
                } => {
                    request
                        .headers_mut()
                        .entry(HOST)
                        .or_insert_with(|| self.host.clone());
                    match connection.send(request).await {
                        Ok(response) => {
                            return Ok(response.map(|body| UpstreamBody {
                                body,
                                giveback: Some(Giveback {
                                    connection,
                                    pool: pool.clone(),
                                }),
                            }));
                        }
                        Err(err) => (err, reused),
                    }
                }
                Checkout::Http2 { mut sender, reused } => {
                    self.make_absolute(&mut request);
                    match sender.try_send_request(request).await {
                        Ok(response) => {
                            return Ok(response.map(|body| UpstreamBody {
                                body,
                                giveback: None,
                            }));
                        }
                        Err(err) => (err, reused),
                    }
                }
            };
            request = retry_or_fail(outcome)?;
        }
    }

    /// HTTP/2 requests carry the scheme and authority in the URI.
    fn make_absolute(&self, request: &mut Request<Full<Bytes>>) {
        let mut parts = request.uri().clone().into_parts();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
}

/// The request back when a reused connection refused it unsent; otherwise
/// the failure.
fn retry_or_fail(
    (mut err, reused): (TrySendError<Request<Full<Bytes>>>, bool),
) -> Result<Request<Full<Bytes>>, SendError> {
    match err.take_message() {
        Some(request) if reused => Ok(request),
        _ => Err(SendError::Transport(err.into_error())),
    }
}

impl Pool {
    /// A ready connection: the most recently used idle one, else a new one.
    async fn checkout(self: &Arc<Self>, origin: &Pools) -> Result<Checkout, SendError> {
        loop {
            let Some(found) = self.take_idle() else {
                // Boxed: connecting (TCP, TLS, HTTP/2) is a large future,
                // and inline it would make every request's future as large,
                // copied on each move (a third of all instructions).
                let made = Box::pin(connect(origin)).await?;
                if let Checkout::Http2 { sender, .. } = &made {
                    self.keep_http2(sender);
                }
                return Ok(made);
            };
            match found {
                Checkout::Http1 {
                    mut connection,
                    reused,
                } => {
                    if poll_fn(|cx| connection.poll_idle(cx)).await {
                        return Ok(Checkout::Http1 { connection, reused });
                    }
                }
                Checkout::Http2 { mut sender, reused } => {
                    if sender.ready().await.is_ok() {
                        return Ok(Checkout::Http2 { sender, reused });
                    }
                }
            }
        }
    }

    /// An open idle connection, dropping closed and expired ones on the way.
    fn take_idle(&self) -> Option<Checkout> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = &idle.http2 {
            if !sender.is_closed() {
                return Some(Checkout::Http2 {
                    sender: sender.clone(),
                    reused: true,
                });
            }
            idle.http2 = None;
        }
        let now = Instant::now();
        while let Some((connection, since)) = idle.http1.pop() {
            if !connection.sender.is_closed() && now.duration_since(since) < IDLE_TIMEOUT {
                return Some(Checkout::Http1 {
                    connection,
                    reused: true,
                });
            }
        }
        None
    }

    /// Takes back an HTTP/1.1 connection whose answer has ended.
    fn give_back(&self, connection: Http1) {
        if connection.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        // The oldest are first: drop those that waited too long.
        let expired = idle
            .http1
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) >= IDLE_TIMEOUT)
            .count();
        idle.http1.drain(..expired);
        if idle.http1.len() < MAX_IDLE_PER_THREAD {
            idle.http1.push((connection, now));
        }
    }

    /// Keeps a new HTTP/2 connection for the thread's next requests.
    fn keep_http2(&self, sender: &http2::SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.http2 = Some(sender.clone());
    }
}

/// Makes a connection to `origin`; an HTTP/2 one starts being driven on
/// this thread's runtime.
async fn connect(origin: &Pools) -> Result<Checkout, SendError> {
    let uri = Uri::builder()
        .scheme(origin.scheme.clone())
        .authority(origin.authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|err| SendError::Connect(Box::new(err)))?;
    let mut connector = origin.connector.clone();
    poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(SendError::Connect)?;
    let io = connector.call(uri).await.map_err(SendError::Connect)?;
    if io.connected().is_negotiated_h2() {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|err| SendError::Connect(Box::new(err)))?;
        tokio::spawn(connection);
        return Ok(Checkout::Http2 {
            sender,
            reused: false,
        });
    }
    let (sender, connection) = http1::handshake(io)
        .await
        .map_err(|err| SendError::Connect(Box::new(err)))?;
    Ok(Checkout::Http1 {
        connection: Http1 {
            sender,
            connection: Some(Box::new(connection)),
        },
        reused: false,
    })
}

impl Http1 {
    /// Polls an idle connection once: whether it can take a request (false
    /// when the upstream closed it meanwhile).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.poll_connection(cx).is_ready() {
            return Poll::Ready(false);
        }
        Poll::Ready(matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(()))))
    }

    /// Lets the connection read and write; `Ready` once it has ended (and
    /// been dropped).
    fn poll_connection(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(());
        };
        if Pin::new(&mut **connection).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.connection = None;
        Poll::Ready(())
    }

    /// Sends `request` and drives the connection until the answer's head
    /// has arrived.
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, TrySendError<Request<Full<Bytes>>>> {
        let mut answer = pin!(self.sender.try_send_request(request));
        poll_fn(|cx| {
            if let Poll::Ready(outcome) = answer.as_mut().poll(cx) {
                return Poll::Ready(outcome);
            }
            // Let the connection write the request and read the answer,
            // then look again. A connection that ended was dropped, which
            // resolves the answer with hyper's error.
            let _ = self.poll_connection(cx);
            answer.as_mut().poll(cx)
        })
        .await
    }
}

/// An answer's body as it arrives. Polling it drives its HTTP/1.1
/// connection, which returns to its pool once the body has ended.
#[derive(Debug)]
pub struct UpstreamBody {
    body: Incoming,
    giveback: Option<Giveback>,
}

/// An HTTP/1.1 connection in use, and where it goes back to.
#[derive(Debug)]
struct Giveback {
    connection: Http1,
    pool: Arc<Pool>,
}

impl UpstreamBody {
    /// Returns the connection to the pool when `frame` ends the body; lets
    /// it close when the body failed.
    fn note(
        &mut self,
        frame: Option<Result<Frame<Bytes>, hyper::Error>>,
    ) -> Option<Result<Frame<Bytes>, hyper::Error>> {
        match &frame {
            None => self.give_back(),
            Some(Ok(_)) if self.body.is_end_stream() => self.give_back(),
            Some(Ok(_)) => {}
            Some(Err(_)) => self.giveback = None,
        }
        frame
    }

    /// Returns the connection to its pool.
    fn give_back(&mut self) {
        if let Some(giveback) = self.giveback.take() {
            giveback.pool.give_back(giveback.connection);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(self.note(frame));
        }
        // The body waits for bytes only its connection can read: let it
        // read, then look again, so a frame it just decoded is taken now
        // rather than after a wake-up.
        let Some(giveback) = self.giveback.as_mut() else {
            return Poll::Pending;
        };
        if giveback.connection.poll_connection(cx).is_ready() {
            // The connection ended and was dropped, which ends the body
            // (with hyper's error if it was not complete).
            self.giveback = None;
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(self.note(frame)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// How many polls a dropped body gets to reach its end before its
/// connection is closed instead of reused.
const DRAIN_POLLS: usize = 4;

impl Drop for UpstreamBody {
    /// A body dropped before its end (a decoder that stopped at the last
    /// event it needed) may have its end already buffered: it is looked for
    /// without waiting, and the connection reused when found. Any data, or
    /// nothing yet, closes the connection.
    fn drop(&mut self) {
        if self.giveback.is_none() {
            return;
        }
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..DRAIN_POLLS {
            match Pin::new(&mut *self).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {}
                Poll::Ready(None) => return,
                _ => break,
            }
        }
        self.giveback = None;
    }
}
