//! Binding, the worker threads, accepting connections, announcing and
//! graceful shutdown.
//!
//! The server runs one single-threaded tokio runtime per CPU, each
//! accepting from its own listening socket (as nginx's worker processes
//! do with `reuseport`; see [`crate::listen`]), rather than one
//! work-stealing runtime: a request and the upstream connection that
//! serves it stay on one thread, so wake-ups between them are local and
//! the connection pools need no cross-thread traffic. This measured about
//! 15% more requests per second on pass-through.
//!
//! Each worker runs its own accept loop, each connection served by the
//! gateway's own HTTP/1.1 connection ([`crate::http1`]; HTTP/2 with prior
//! knowledge goes on to hyper's): a client that never finishes a request's
//! head (or a kept-alive connection that sends nothing) is dropped after
//! `server.header_timeout_ms` instead of holding its connection forever,
//! and one connection carries at most `server.keepalive_requests`.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use gateway_core::Gateway;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;

use crate::app::App;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where the config came from, for the start-up line.
    pub config_source: String,
    /// How many worker threads serve requests; one per CPU when `None`.
    pub workers: Option<NonZeroUsize>,
    /// How long a client may take to send a request's head, and how long
    /// a kept-alive connection may stay silent.
    pub header_timeout: Duration,
    /// How many requests a client connection may carry before it is
    /// closed (at least 1).
    pub keepalive_requests: u64,
    /// How long requests in flight may go on after a stop signal.
    pub shutdown_grace: Duration,
}

/// Serves `gateway` until SIGINT or SIGTERM, then stops accepting, lets
/// in-flight requests finish (for at most `options.shutdown_grace`, then
/// cuts them) and returns. Blocks the calling thread.
///
/// Once the socket is bound it prints `modelgate listening on http://ADDR`
/// on stdout (the real port when 0 was asked for), which scripts and tests
/// wait for.
pub fn serve(gateway: Arc<Gateway>, options: ServeOptions) -> anyhow::Result<()> {
    let workers = options
        .workers
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let (local, listeners) = crate::listen::listeners(options.listen, workers)
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", options.listen))?;
    // The signal handlers are installed before the start-up line is
    // printed, so a signal sent right after it is never missed.
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shutdown = control.block_on(async { shutdown_signal() })?;
    let (stop, mut stopping) = watch::channel(false);
    let app = crate::app::router(gateway.clone());
    let settings = crate::http1::Settings {
        header_timeout: options.header_timeout,
        keepalive_requests: options.keepalive_requests.max(1),
        body_limit: gateway.limits().max_body_bytes,
    };
    let threads = listeners
        .into_iter()
        .enumerate()
        .map(|(index, listener)| {
            let worker = Worker {
                listener,
                app: app.clone(),
                stop: stop.clone(),
                settings,
                shutdown_grace: options.shutdown_grace,
            };
            Ok(std::thread::Builder::new()
                .name(format!("modelgate-worker-{index}"))
                .spawn(move || worker.run())?)
        })
        .collect::<anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>>>()?;
    tracing::info!(config = %options.config_source, backends = gateway.providers().len(), workers, "modelgate started");
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "modelgate listening on http://{local}")?;
        stdout.flush()?;
    }
    control.block_on(async {
        tokio::select! {
            () = shutdown => {}
            // A worker that ends on its own (it failed) stops the rest.
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    });
    let _ = stop.send(true);
    let mut outcome = Ok(());
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => outcome = Err(err),
            Err(_) => outcome = Err(anyhow::anyhow!("a worker thread panicked")),
        }
    }
    tracing::info!("modelgate stopped");
    outcome
}

/// One worker thread: its own runtime, serving the shared listening socket
/// until told to stop.
struct Worker {
    listener: std::net::TcpListener,
    app: App,
    /// Set by the main thread on a signal; set by the worker when it ends,
    /// so that one failing worker stops the whole server.
    stop: watch::Sender<bool>,
    settings: crate::http1::Settings,
    shutdown_grace: Duration,
}

impl Worker {
    fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut stopping = self.stop.subscribe();
        let outcome = runtime.block_on(async move {
            let listener = TcpListener::from_std(self.listener)?;
            // Every connection holds a receiver: `true` tells it to finish
            // its request in flight and close, and the sender learns when
            // the last one has gone.
            let (drain, draining) = watch::channel(false);
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stopping.wait_for(|stop| *stop) => break,
                };
                let socket = match accepted {
                    Ok((socket, _)) => socket,
                    Err(err) => {
                        accept_failed(err).await;
                        continue;
                    }
                };
                // Streams are written event by event; without TCP_NODELAY,
                // Nagle's algorithm and the client's delayed ACK hold small
                // writes for ~40 ms.
                if let Err(err) = socket.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY: {err}");
                }
                tokio::spawn(crate::http1::serve(
                    socket,
                    self.app.clone(),
                    self.settings,
                    draining.clone(),
                ));
            }
            drop(listener);
            drop(draining);
            // In-flight requests finish, idle connections close now. What
            // is still open after the grace period is cut when the runtime
            // is dropped below.
            let _ = drain.send(true);
            if tokio::time::timeout(self.shutdown_grace, drain.closed())
                .await
                .is_err()
            {
                tracing::warn!(
                    "requests still in flight after the {} ms shutdown grace period are cut",
                    self.shutdown_grace.as_millis()
                );
            }
            anyhow::Ok(())
        });
        self.stop.send_replace(true);
        outcome
    }
}

/// Waits after a failed `accept`: not at all when only that connection
/// failed, a moment when the process is out of descriptors or memory (so
/// the loop does not spin while it lasts).
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("cannot accept a connection: {err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// [`App`] as a hyper service (for HTTP/2): hyper's request body becomes
/// axum's.
#[derive(Clone)]
pub(crate) struct Hyper(pub(crate) App);

impl hyper::service::Service<hyper::Request<Incoming>> for Hyper {
    type Response = Response;
    type Error = Infallible;
    type Future = <App as Service<Request>>::Future;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.0.clone().call(request.map(axum::body::Body::new))
    }
}

/// Installs the SIGINT and SIGTERM handlers now and returns the future that
/// completes on the first of them. Needs a runtime's context.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}

/// Ctrl-C only, where there are no Unix signals.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received, shutting down");
    })
}
