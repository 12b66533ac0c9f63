//! Binding, announcing and graceful shutdown.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::ServiceExt;
use axum::serve::ListenerExt;
use gateway_core::Gateway;
use tokio::net::TcpListener;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where the config came from, for the start-up line.
    pub config_source: String,
}

/// Serves `gateway` until SIGINT or SIGTERM, then stops accepting, lets
/// in-flight requests finish and returns.
///
/// Once the socket is bound it prints `modelgate listening on http://ADDR`
/// on stdout (the real port when 0 was asked for), which scripts and tests
/// wait for.
pub async fn serve(gateway: Arc<Gateway>, options: ServeOptions) -> anyhow::Result<()> {
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", options.listen))?;
    let local = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    tracing::info!(config = %options.config_source, backends = gateway.providers().len(), "modelgate started");
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "modelgate listening on http://{local}")?;
        stdout.flush()?;
    }
    // Streams are written event by event; without TCP_NODELAY, Nagle's
    // algorithm and the client's delayed ACK hold small writes for ~40 ms.
    let listener = listener.tap_io(|socket| {
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {err}");
        }
    });
    axum::serve(listener, crate::app::router(gateway).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("modelgate stopped");
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now (before the start-up line is
/// printed, so a signal sent right after it is never missed) and returns the
/// future that completes on the first of them.
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
