//! Connections to one upstream: made with the backend's TCP/TLS connector,
//! kept alive between requests, one pool per server thread.
//!
//! A pool of our own rather than `hyper-util`'s general client: a backend
//! has exactly one origin, so no pool key is hashed per request. HTTP/1.1
//! connections are our own ([`crate::http1`]) and have no task: the
//! answer's body reads the socket when it is polled, so the upstream socket
//! and the client's socket are served by one task (the server
//! connection's, in `gateway-http`), as nginx serves both from one event
//! loop.
//!
//! An HTTP/1.1 connection goes back to its pool when its answer's body has
//! ended; an idle one is not polled at all until the next checkout polls
//! it, which is when a close by the upstream is noticed. A body dropped
//! before its end closes its connection, unless the end was already
//! buffered. An HTTP/2 connection (negotiated by ALPN over TLS) is
//! multiplexed, so it stays hyper's, keeps a task of its own and is shared
//! by every request of its thread while it stays open.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::body::SplicedBuf;
use http::uri::{Authority, Scheme};
use http::{Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use thread_local::ThreadLocal;
use tower_service::Service;

use crate::http1;
use crate::outgoing::Outgoing;

/// How long an idle connection is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// At most this many idle HTTP/1.1 connections are kept per thread; more
/// than that are closed when their answer ends.
const MAX_IDLE_PER_THREAD: usize = 1024;

/// The connector every pool of a backend uses.
pub(crate) type Connector = HttpsConnector<HttpConnector>;

/// Any failure below the gateway: ours (HTTP/1.1) or hyper's (HTTP/2).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why no answer arrived.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made (TCP, TLS or the HTTP/2 preface).
    Connect(BoxError),
    /// The connection failed while the request was sent or the answer's
    /// head awaited.
    Transport(BoxError),
}

/// A backend's connection pools, one per thread.
#[derive(Debug)]
pub(crate) struct Pools {
    connector: Connector,
    /// The origin's scheme and authority, for connecting and for the
    /// absolute URIs of HTTP/2.
    scheme: Scheme,
    authority: Authority,
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
    http1: Vec<(http1::Connection, Instant)>,
    /// The HTTP/2 connection, shared by every request.
    http2: Option<http2::SendRequest<Full<SplicedBuf>>>,
}

/// A connection taken from the pool or freshly made.
enum Checkout {
    Http1 {
        connection: http1::Connection,
        reused: bool,
    },
    Http2 {
        sender: http2::SendRequest<Full<SplicedBuf>>,
        reused: bool,
    },
}

impl Pools {
    /// Pools for the origin `scheme://authority`, connecting with
    /// `connector`.
    pub(crate) fn new(connector: Connector, scheme: Scheme, authority: Authority) -> Self {
        Self {
            connector,
            scheme,
            authority,
            threads: ThreadLocal::new(),
        }
    }

    /// Sends `request` on a pooled connection, or a new one, and returns
    /// the answer's head. A request that a reused connection did not take
    /// at all (the upstream had just closed it) is sent again on the next
    /// connection.
    pub(crate) async fn send(
        &self,
        request: &Outgoing<'_>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        // Cloned only into the answer's body: a clone is an atomic write.
        let pool = self.threads.get_or_default();
        // Written once, on the first HTTP/1.1 connection that needs it.
        let mut http1_head = None;
        loop {
            match pool.checkout(self).await? {
                Checkout::Http1 { connection, reused } => {
                    let head = http1_head.get_or_insert_with(|| request.http1_head());
                    match connection.send(head, request.body, &request.method).await {
                        Ok(response) => {
                            return Ok(response.map(|body| UpstreamBody {
                                inner: Inner::Http1 {
                                    body,
                                    pool: Arc::clone(pool),
                                },
                            }));
                        }
                        Err(failure) if failure.unsent && reused => {}
                        Err(failure) => return Err(SendError::Transport(failure.error.into())),
                    }
                }
                Checkout::Http2 { mut sender, reused } => {
                    let http2_request = request
                        .http2_request(&self.scheme, &self.authority)
                        .map_err(|err| SendError::Transport(err.into()))?;
                    match sender.try_send_request(http2_request).await {
                        Ok(mut response) => {
                            let headers = std::mem::take(response.headers_mut());
                            *response.headers_mut() = http1::only_answer_headers(headers);
                            return Ok(response.map(|body| UpstreamBody {
                                inner: Inner::Http2(body),
                            }));
                        }
                        Err(mut err) => {
                            // hyper hands back a request it could not start
                            // sending.
                            let unsent = err.take_message().is_some();
                            if !(unsent && reused) {
                                return Err(SendError::Transport(err.into_error().into()));
                            }
                        }
                    }
                }
            }
        }
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
                    if poll_fn(|cx| Poll::Ready(connection.poll_idle(cx))).await {
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

    /// An open idle connection, dropping expired ones on the way.
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
        let now = crate::clock::coarse_instant();
        while let Some((connection, since)) = idle.http1.pop() {
            if now.duration_since(since) < IDLE_TIMEOUT {
                return Some(Checkout::Http1 {
                    connection,
                    reused: true,
                });
            }
        }
        None
    }

    /// Takes back an HTTP/1.1 connection whose answer has ended.
    fn give_back(&self, connection: http1::Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = crate::clock::coarse_instant();
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
    fn keep_http2(&self, sender: &http2::SendRequest<Full<SplicedBuf>>) {
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
    Ok(Checkout::Http1 {
        connection: http1::Connection::new(io.into()),
        reused: false,
    })
}

/// An answer's body as it arrives. Polling an HTTP/1.1 body reads its
/// connection, which returns to its pool once the body has ended.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Http1 {
        body: http1::Body,
        /// Where the connection goes back to.
        pool: Arc<Pool>,
    },
    Http2(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.inner {
            Inner::Http1 { body, pool } => {
                let data = ready!(body.poll_data(cx));
                if let Some(connection) = body.take_reusable() {
                    pool.give_back(connection);
                }
                Poll::Ready(data.map(|data| data.map(Frame::data).map_err(BoxError::from)))
            }
            Inner::Http2(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Http1 { body, .. } => body.is_end_stream(),
            Inner::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Http1 { body, .. } => body.size_hint(),
            Inner::Http2(body) => body.size_hint(),
        }
    }
}

impl Drop for UpstreamBody {
    /// A body dropped before its end (a decoder that stopped at the last
    /// event it needed) may have its end already buffered: then its
    /// connection is reused. Anything still to come closes it.
    fn drop(&mut self) {
        if let Inner::Http1 { body, pool } = &mut self.inner {
            body.skip_buffered();
            if let Some(connection) = body.take_reusable() {
                pool.give_back(connection);
            }
        }
    }
}
