//! What the upstream stand-ins of these tests share: a loopback listener
//! with its endpoint URL, an accept loop that counts connections, and
//! reading one request off a raw connection.

// Each test crate uses the part it needs.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections on a free loopback port, handing each to `serve`
/// with its index (0 for the first), on a task of its own. Returns the
/// endpoint URL (`{scheme}://127.0.0.1:PORT/v1`) and the number of
/// connections accepted so far.
pub async fn accept<F, Fut>(scheme: &str, serve: F) -> (url::Url, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let url = url::Url::parse(&format!("{scheme}://{address}/v1")).expect("url");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let index = counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(socket, index));
        }
    });
    (url, connections)
}

/// Reads the next request (head, then a body of its `content-length`)
/// from `socket`, keeping what follows it in `buffer`. `None` once the
/// client has gone.
pub async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        fill(socket, buffer).await?;
    };
    let length = String::from_utf8_lossy(&buffer[..end])
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < end + length {
        fill(socket, buffer).await?;
    }
    let request = String::from_utf8_lossy(&buffer[..end + length]).into_owned();
    buffer.drain(..end + length);
    Some(request)
}

async fn fill(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            Some(())
        }
    }
}
