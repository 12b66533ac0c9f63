//! `mock-upstream [--listen ADDR]`: runs the mock provider until killed and
//! prints `mock-upstream listening on http://ADDR` once it accepts
//! connections, so scripts can read the port.

use std::io::Write;
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen: SocketAddr = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().unwrap_or_default();
                listen = value
                    .parse()
                    .map_err(|err| std::io::Error::other(format!("--listen {value}: {err}")))?;
            }
            other => return Err(std::io::Error::other(format!("unknown argument {other}"))),
        }
    }
    let server = mock_upstream::MockUpstream::start_on(listen).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "mock-upstream listening on {}", server.base_url())?;
    stdout.flush()?;
    server.run_forever().await;
    Ok(())
}
