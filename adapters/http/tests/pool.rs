//! The upstream connection pool against small raw HTTP/1.1 servers whose
//! connections the tests control: reuse, a dropped half-read stream, an
//! upstream that closes a kept-alive connection.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter_http::{Upstream, body_bytes};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the test server does with each request on a connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers `ok` and keeps the connection open.
    KeepAlive,
    /// Answers `ok` and closes the connection.
    CloseAfterAnswer,
    /// Answers `first` as a chunked body, its end in the same write, and
    /// keeps the connection open.
    ChunkedKeepAlive,
    /// On the first connection: sends a chunked head and one chunk, then
    /// stays silent; later connections answer `ok`.
    StallFirst,
}

/// A server on loopback that counts the connections it accepted.
struct Server {
    url: url::Url,
    connections: Arc<AtomicUsize>,
}

async fn server(behaviour: Behaviour) -> Server {
    let (url, connections) = support::accept("http", move |socket, index| {
        serve_connection(socket, behaviour, index)
    })
    .await;
    Server { url, connections }
}

/// Reads requests and answers them.
async fn serve_connection(mut socket: TcpStream, behaviour: Behaviour, index: usize) {
    let mut buffer = Vec::new();
    while support::read_request(&mut socket, &mut buffer)
        .await
        .is_some()
    {
        match behaviour {
            Behaviour::StallFirst if index == 0 => {
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                    )
                    .await;
                // Silent until the client goes away.
                let _ = socket.read(&mut [0u8; 1]).await;
                return;
            }
            Behaviour::ChunkedKeepAlive => {
                if socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n",
                    )
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Behaviour::CloseAfterAnswer => {
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                return;
            }
            _ => {
                if socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn upstream(server: &Server) -> Upstream {
    Upstream::new(&server.url, Vec::new(), None).expect("upstream")
}

async fn get_ok(upstream: &Upstream) -> String {
    let response = upstream.get("models").await.expect("an answer");
    assert_eq!(response.status(), 200);
    let body = body_bytes(response).await.expect("a body");
    String::from_utf8(body.to_vec()).expect("utf-8")
}

/// Reads the `first` chunk of a streamed answer and drops the rest.
async fn read_first_chunk_then_drop(upstream: &Upstream) {
    let response = upstream.get("stream").await.expect("an answer");
    let mut chunks = adapter_http::body_stream(response.into_body());
    let first = chunks.next().await.expect("a chunk").expect("no error");
    assert_eq!(&first[..], b"first");
}

/// How many connections three requests in a row took, each answered `ok`.
async fn connections_for_three_requests(behaviour: Behaviour) -> usize {
    let server = server(behaviour).await;
    let upstream = upstream(&server);
    for _ in 0..3 {
        assert_eq!(get_ok(&upstream).await, "ok");
    }
    server.connections.load(Ordering::SeqCst)
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    assert_eq!(
        connections_for_three_requests(Behaviour::KeepAlive).await,
        1
    );
}

#[tokio::test]
async fn a_dropped_half_read_stream_does_not_hold_up_the_next_request() {
    let server = server(Behaviour::StallFirst).await;
    let upstream = upstream(&server);
    read_first_chunk_then_drop(&upstream).await;
    // The stalled connection is not reused: this needs a second one.
    assert_eq!(get_ok(&upstream).await, "ok");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_dropped_after_its_last_chunk_keeps_its_connection() {
    let server = server(Behaviour::ChunkedKeepAlive).await;
    let upstream = upstream(&server);
    for _ in 0..3 {
        // Dropped before reading the end, which is already buffered.
        read_first_chunk_then_drop(&upstream).await;
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced() {
    assert_eq!(
        connections_for_three_requests(Behaviour::CloseAfterAnswer).await,
        3
    );
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let url = url::Url::parse(&format!("http://{address}/v1")).expect("url");
    let upstream = Upstream::new(&url, Vec::new(), None).expect("upstream");
    let err = upstream.get("models").await.expect_err("refused");
    assert_eq!(err.status(), 502);
    assert!(
        err.message.starts_with("cannot connect to the upstream:"),
        "{}",
        err.message
    );
}
