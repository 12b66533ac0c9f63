//! Connections to one upstream: made with the backend's TCP/TLS connector,
//! kept alive between requests, one pool per server thread.
//!
//! hyper's low-level connections (`hyper::client::conn`) with a pool of our
//! own rather than `hyper-util`'s general client: a backend has exactly one
//! origin, so no pool key is hashed per request, and a thread's connections
//! are spawned on that thread's runtime, where its requests run (see
//! `gateway-http`'s server), so reading an answer wakes no other thread.
//!
//! An HTTP/1.1 connection goes back to its pool when its answer's body has
//! been read to the end; one whose body was dropped half-read is closed by
//! hyper and never reused. An HTTP/2 connection (negotiated by ALPN over
//! TLS) is shared by every request of its thread while it stays open.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use thread_local::ThreadLocal;
use tower_service::Service;

/// How long an idle connection is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// At most this many idle HTTP/1.1 connections are kept per thread; more
/// than that are closed when their answer ends.
const MAX_IDLE_PER_THREAD: usize = 1024;

/// The connector every pool of a backend uses.
pub(crate) type Connector = HttpsConnector<HttpConnector>;

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
    http1: Vec<(http1::SendRequest<Full<Bytes>>, Instant)>,
    /// The HTTP/2 connection, shared by every request.
    http2: Option<http2::SendRequest<Full<Bytes>>>,
}

/// A connection taken from the pool or freshly made.
enum Checkout {
    Http1 {
        sender: http1::SendRequest<Full<Bytes>>,
        reused: bool,
    },
    Http2 {
        sender: http2::SendRequest<Full<Bytes>>,
        reused: bool,
    },
}

impl Pools {
    /// Pools for the origin `authority` (used for `Host`), connecting with
    /// `connector`.
    pub(crate) fn new(connector: Connector, authority: &Authority) -> Option<Self> {
        Some(Self {
            connector,
            host: HeaderValue::from_str(authority.as_str()).ok()?,
            threads: ThreadLocal::new(),
        })
    }

    /// Sends `request` (whose URI is absolute) on a pooled connection, or a
    /// new one, and returns the answer's head. A request that a reused
    /// connection could not even start sending (the upstream had just closed
    /// it) is sent once more on a new connection.
    pub(crate) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let pool = self.threads.get_or_default().clone();
        let uri = request.uri().clone();
        loop {
            let checkout = pool.checkout(&self.connector, &uri).await?;
            let outcome = match checkout {
                Checkout::Http1 { mut sender, reused } => {
                    as_origin_form(&mut request, &self.host);
                    match sender.try_send_request(request).await {
                        Ok(response) => {
                            return Ok(response.map(|body| UpstreamBody {
                                body,
                                giveback: Some(Giveback {
                                    sender,
                                    pool: pool.clone(),
                                }),
                            }));
                        }
                        Err(err) => (err, reused),
                    }
                }
                Checkout::Http2 { mut sender, reused } => {
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
            request = retry_or_fail(outcome, &uri)?;
        }
    }
}

/// The request back when a reused connection refused it unsent; otherwise
/// the failure.
fn retry_or_fail(
    (mut err, reused): (TrySendError<Request<Full<Bytes>>>, bool),
    uri: &Uri,
) -> Result<Request<Full<Bytes>>, SendError> {
    match err.take_message() {
        Some(mut request) if reused => {
            *request.uri_mut() = uri.clone();
            request.headers_mut().remove(HOST);
            Ok(request)
        }
        _ => Err(SendError::Transport(err.into_error())),
    }
}

/// HTTP/1.1 requests carry the path in the request line and the origin in
/// `Host`.
fn as_origin_form(request: &mut Request<Full<Bytes>>, host: &HeaderValue) {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    request
        .headers_mut()
        .entry(HOST)
        .or_insert_with(|| host.clone());
}

impl Pool {
    /// A ready connection: the most recently used idle one, else a new one.
    async fn checkout(
        self: &Arc<Self>,
        connector: &Connector,
        uri: &Uri,
    ) -> Result<Checkout, SendError> {
        loop {
            let Some(found) = self.take_idle() else {
                // Boxed: connecting (TCP, TLS, HTTP/2) is a large future,
                // and inline it would make every request's future as large,
                // copied on each move (a third of all instructions).
                let made = Box::pin(connect(connector, uri)).await?;
                if let Checkout::Http2 { sender, .. } = &made {
                    self.keep_http2(sender);
                }
                return Ok(made);
            };
            match found {
                Checkout::Http1 { mut sender, reused } => {
                    if sender.ready().await.is_ok() {
                        return Ok(Checkout::Http1 { sender, reused });
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
        while let Some((sender, since)) = idle.http1.pop() {
            if !sender.is_closed() && now.duration_since(since) < IDLE_TIMEOUT {
                return Some(Checkout::Http1 {
                    sender,
                    reused: true,
                });
            }
        }
        None
    }

    /// Takes back an HTTP/1.1 connection whose answer has ended.
    fn give_back(&self, sender: http1::SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
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
            idle.http1.push((sender, now));
        }
    }

    /// Keeps a new HTTP/2 connection for the thread's next requests.
    fn keep_http2(&self, sender: &http2::SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.http2 = Some(sender.clone());
    }
}

/// Makes a connection and starts driving it on this thread's runtime.
async fn connect(connector: &Connector, uri: &Uri) -> Result<Checkout, SendError> {
    let mut connector = connector.clone();
    poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(SendError::Connect)?;
    let io = connector
        .call(uri.clone())
        .await
        .map_err(SendError::Connect)?;
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
    tokio::spawn(connection);
    Ok(Checkout::Http1 {
        sender,
        reused: false,
    })
}

/// An answer's body as it arrives; an HTTP/1.1 connection returns to its
/// pool once the body has ended.
#[derive(Debug)]
pub struct UpstreamBody {
    body: Incoming,
    giveback: Option<Giveback>,
}

/// Where an HTTP/1.1 connection goes back to.
#[derive(Debug)]
struct Giveback {
    sender: http1::SendRequest<Full<Bytes>>,
    pool: Arc<Pool>,
}

impl UpstreamBody {
    /// Returns the connection to its pool if the body has ended.
    fn give_back_if_ended(&mut self) {
        if self.body.is_end_stream()
            && let Some(giveback) = self.giveback.take()
        {
            giveback.pool.give_back(giveback.sender);
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
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            None => {
                if let Some(giveback) = self.giveback.take() {
                    giveback.pool.give_back(giveback.sender);
                }
            }
            Some(Ok(_)) => self.give_back_if_ended(),
            Some(Err(_)) => self.giveback = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    /// A body dropped before its end (a decoder that stops at the last
    /// event it needs) may still leave a reusable connection: hyper closes
    /// it if unread data arrives, else it becomes ready again. The
    /// connection goes back to the pool only once ready, so that no request
    /// ever waits behind a dying stream.
    fn drop(&mut self) {
        self.give_back_if_ended();
        let Some(Giveback { mut sender, pool }) = self.giveback.take() else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.give_back(sender);
                }
            });
        }
    }
}
