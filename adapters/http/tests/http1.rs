//! The HTTP/1.1 client against raw answers from a loopback server: what
//! arrives is what the caller gets (status, headers, body), framing and
//! reuse follow the answer's headers, and broken answers are clear errors.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter_http::{Upstream, body_bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A server that answers every request with `answer`, written in the
/// given pieces, and closes the connection after it when `close` is set.
struct Raw {
    url: url::Url,
    connections: Arc<AtomicUsize>,
    /// Every request head it read, in order.
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn raw(answer: &[&[u8]], close: bool) -> Raw {
    let answer: Arc<Vec<Vec<u8>>> = Arc::new(answer.iter().map(|piece| piece.to_vec()).collect());
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = heads.clone();
    let (url, connections) = support::accept("http", move |socket, _| {
        serve(socket, answer.clone(), close, recorded.clone())
    })
    .await;
    Raw {
        url,
        connections,
        heads,
    }
}

async fn serve(
    mut socket: TcpStream,
    answer: Arc<Vec<Vec<u8>>>,
    close: bool,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut buffer = Vec::new();
    while let Some(request) = support::read_request(&mut socket, &mut buffer).await {
        heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request);
        for piece in answer.iter() {
            if socket.write_all(piece).await.is_err() || socket.flush().await.is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

fn upstream(server: &Raw) -> Upstream {
    Upstream::new(&server.url, Vec::new(), None).expect("upstream")
}

/// GETs `models` and returns the status, one header and the body.
async fn get(upstream: &Upstream, header: &str) -> (u16, Option<String>, String) {
    let response = upstream.get("models").await.expect("an answer");
    let status = response.status().as_u16();
    let value = response
        .headers()
        .get(header)
        .map(|value| value.to_str().expect("ascii").to_owned());
    let body = body_bytes(response).await.expect("a body");
    (
        status,
        value,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

#[tokio::test]
async fn the_request_goes_out_as_written() {
    let server = raw(&[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"], false).await;
    let upstream = Upstream::new(
        &server.url,
        vec![(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_static("secret"),
        )],
        None,
    )
    .expect("upstream");
    let response = upstream
        .post(
            "chat/completions",
            bytes::Bytes::from_static(b"{\"model\":\"m\"}"),
            false,
            &http::HeaderMap::new(),
        )
        .await
        .expect("an answer");
    assert_eq!(body_bytes(response).await.expect("body"), "ok");
    let heads = server.heads.lock().expect("heads").clone();
    let address = server.url.authority().to_owned();
    assert_eq!(
        heads,
        [format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\nx-api-key: secret\r\ncontent-type: application/json\r\naccept: application/json\r\ncontent-length: 13\r\n\r\n{{\"model\":\"m\"}}"
        )]
    );
}

#[tokio::test]
async fn interim_answers_are_skipped_and_the_headers_the_gateway_reads_kept() {
    let head = b"HTTP/1.1 201 Created\r\nX-Upstream: dropped\r\nRetry-After: 7\r\ncontent-length: 5\r\n\r\n";
    let server = raw(&[b"HTTP/1.1 100 Continue\r\n\r\n", head, b"hello"], false).await;
    let answer = get(&upstream(&server), "retry-after").await;
    assert_eq!(answer, (201, Some("7".into()), "hello".into()));
    // Headers the gateway never reads are not copied out of the head.
    let server = raw(&[head, b"hello"], false).await;
    let answer = get(&upstream(&server), "x-upstream").await;
    assert_eq!(answer, (201, None, "hello".into()));
}

#[tokio::test]
async fn a_chunked_answer_in_pieces_with_trailers_is_whole_and_keeps_its_connection() {
    let server = raw(
        &[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"3\r\nabc\r",
            b"\n4;ext=1\r\ndefg\r\n",
            b"0\r\nx-trailer: t\r\n\r\n",
        ],
        false,
    )
    .await;
    let upstream = upstream(&server);
    for _ in 0..2 {
        assert_eq!(get(&upstream, "none").await.2, "abcdefg");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_without_length_ends_with_the_connection_which_is_not_reused() {
    let server = raw(&[b"HTTP/1.1 200 OK\r\n\r\n", b"until ", b"close"], true).await;
    let upstream = upstream(&server);
    for _ in 0..2 {
        assert_eq!(get(&upstream, "none").await.2, "until close");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_close_and_http_1_0_answers_are_not_reused() {
    for answer in [
        &[&b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 2\r\n\r\nok"[..]][..],
        &[&b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"[..]][..],
    ] {
        let server = raw(answer, false).await;
        let upstream = upstream(&server);
        for _ in 0..2 {
            assert_eq!(get(&upstream, "none").await.2, "ok");
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    }
}

/// The message of the error a GET ends with, before or during the body.
async fn failure(answer: &[&[u8]]) -> String {
    let server = raw(answer, true).await;
    let upstream = upstream(&server);
    let err = match upstream.get("models").await {
        Err(err) => err,
        Ok(response) => body_bytes(response).await.expect_err("a broken body"),
    };
    assert_eq!(err.status(), 502, "{}", err.message);
    err.message
}

#[tokio::test]
async fn broken_answers_are_clear_errors() {
    let cases: [(&[u8], &str); 5] = [
        (
            b"SMTP ready\r\n\r\n",
            "invalid answer head: invalid HTTP version",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            "connection closed before message completed",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            "invalid answer: an answer has differing content-lengths",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nxyz\r\n",
            "invalid answer: a chunk size is not a hexadecimal number",
        ),
        (b"", "connection closed before message completed"),
    ];
    for (answer, expected) in cases {
        assert_eq!(
            failure(&[answer]).await,
            format!("the upstream connection failed: {expected}")
        );
    }
}

#[tokio::test]
async fn an_endless_head_is_refused() {
    let mut head = b"HTTP/1.1 200 OK\r\nx-filler: ".to_vec();
    head.resize(70 * 1024, b'a');
    assert_eq!(
        failure(&[&head]).await,
        "the upstream connection failed: the answer's head is longer than 64 KiB"
    );
}

/// A body far larger than the socket takes at once, with a new name
/// spliced into its middle: the writes that take only part of it resume
/// at the right byte of the right piece, and the server reads exactly
/// the caller's bytes with the name changed.
#[tokio::test]
async fn a_spliced_body_too_large_for_one_write_arrives_whole() {
    let server = raw(&[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"], false).await;
    let half = 4 * 1024 * 1024;
    let side = |byte: u8| {
        (0..half)
            .map(|at| byte + (at % 7) as u8)
            .collect::<Vec<u8>>()
    };
    let whole = [side(b'a'), b"OLD".to_vec(), side(b'k')].concat();
    let body = gateway_core::SplicedBody::new(
        bytes::Bytes::from(whole),
        half..half + 3,
        bytes::Bytes::from_static(b"new name"),
    );
    let expected = [side(b'a'), b"new name".to_vec(), side(b'k')].concat();
    let response = upstream(&server)
        .passthrough(gateway_core::PassthroughRequest {
            operation: "chat/completions".into(),
            body,
            stream: false,
            headers: http::HeaderMap::new(),
        })
        .await
        .expect("an answer");
    assert_eq!(response.status, 200);
    let heads = server.heads.lock().expect("heads").clone();
    assert_eq!(heads.len(), 1);
    let (head, received) = heads[0].split_once("\r\n\r\n").expect("a head");
    assert!(
        head.contains(&format!("content-length: {}", expected.len())),
        "{head}"
    );
    assert!(received.as_bytes() == expected, "the body arrived changed");
}
