//! Binding, announcing and graceful shutdown.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

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
    tracing::info!(config = %options.config_source, backends = gateway.providers().len(), "modelgate started");
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "modelgate listening on http://{local}")?;
        stdout.flush()?;
    }
    axum::serve(listener, crate::app::router(gateway))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("modelgate stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
