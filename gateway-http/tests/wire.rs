//! The gateway's own HTTP/1.1 server, spoken to byte by byte through the
//! binary: keep-alive and pipelining, how many requests a connection may
//! carry, HTTP/1.0, HEAD, chunked request bodies, `Expect: 100-continue`,
//! refused heads (smuggling, garbage, too large), an over-limit body, and
//! HTTP/2 with prior knowledge.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = "[server]\nlisten = \"127.0.0.1:0\"\n\n\
    [limits]\nmax_body_bytes = 4096\n\n\
    [[backends]]\nid = \"mock\"\ndialect = \"mock\"\nmodels = [{ id = \"echo\" }]\n\n\
    [aliases]\ndefault = \"mock/echo\"\n";

/// Writes `request` on a new connection and reads until the gateway
/// closes it; `Date` values and request ids are masked.
async fn exchange(gateway: &support::Modelgate, request: &[u8]) -> String {
    let address = gateway.base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).await.expect("connect");
    socket.write_all(request).await.expect("write");
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut received))
        .await
        .expect("the gateway closed the connection within 10 s")
        .expect("read");
    mask(&String::from_utf8_lossy(&received))
}

fn mask(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with("date: ") {
                "date: <date>"
            } else if line.starts_with("x-request-id: ") {
                "x-request-id: <id>"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `answers` with each completion's id and creation time masked.
fn mask_completions(answers: &str) -> String {
    let mut masked = String::new();
    let mut rest = answers;
    while let Some(at) = rest.find("chatcmpl-mock-") {
        masked.push_str(&rest[..at]);
        masked.push_str("chatcmpl-mock-<id>");
        rest = rest[at..].trim_start_matches(|c: char| c != '"');
    }
    masked.push_str(rest);
    let mut out = String::new();
    let mut rest = masked.as_str();
    while let Some(at) = rest.find("\"created\":") {
        out.push_str(&rest[..at]);
        out.push_str("\"created\":0");
        rest = rest[at + 10..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

fn chat(content: &str) -> String {
    json!({"model": "mock/echo", "messages": [{"role": "user", "content": content}]}).to_string()
}

/// The reply text of each chat completion found in `answers`.
fn replies(answers: &str) -> Vec<String> {
    answers
        .match_indices("{\"id\":")
        .filter_map(|(at, _)| {
            let body = serde_json::Deserializer::from_str(&answers[at..])
                .into_iter::<Value>()
                .next()?
                .ok()?;
            Some(
                body["choices"][0]["message"]["content"]
                    .as_str()?
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn pipelined_and_kept_alive_requests_are_answered_in_order() {
    let gateway = support::Modelgate::start(CONFIG).await;
    let (first, second) = (chat("one"), chat("two"));
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{first}\
         POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{second}\
         HEAD /health HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        first.len(),
        second.len()
    );
    let answers = exchange(&gateway, request.as_bytes()).await;
    assert_eq!(replies(&answers), ["one", "two"], "{answers}");
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 4, "{answers}");
    insta::assert_snapshot!(mask_completions(&answers));
}

#[tokio::test]
async fn http_1_0_clients_get_closed_or_kept_alive_as_they_ask() {
    let gateway = support::Modelgate::start(CONFIG).await;
    let answers = exchange(
        &gateway,
        b"GET /health HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\nGET /health HTTP/1.0\r\n\r\n",
    )
    .await;
    // The second request closes the connection: the third is never read.
    insta::assert_snapshot!(answers);
}

#[tokio::test]
async fn a_connection_is_closed_after_keepalive_requests_answers() {
    let config = CONFIG.replace(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nkeepalive_requests = 2\n",
    );
    let gateway = support::Modelgate::start(&config).await;
    let body = chat("two");
    let request = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\n\r\n\
         POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}\
         GET /health HTTP/1.1\r\nhost: x\r\n\r\n",
        body.len()
    );
    let answers = exchange(&gateway, request.as_bytes()).await;
    // The second answer says it is the last; the third request is never
    // read.
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    assert_eq!(replies(&answers), ["two"], "{answers}");
    insta::assert_snapshot!(mask_completions(&answers));
    // A new connection gets its own allowance.
    let again = exchange(
        &gateway,
        b"GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    assert_eq!(again.matches("HTTP/1.1 200 OK").count(), 2, "{again}");
    assert_eq!(again.matches("connection: close").count(), 1, "{again}");
}

#[tokio::test]
async fn chunked_bodies_and_expect_continue_are_read() {
    let gateway = support::Modelgate::start(CONFIG).await;
    let body = chat("in pieces");
    let (front, back) = body.split_at(10);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x}\r\n{front}\r\n{:x};ext=1\r\n{back}\r\n0\r\nx-trailer: t\r\n\r\n",
        front.len(),
        back.len()
    );
    let answers = exchange(
        &gateway,
        format!("{request}GET /health HTTP/1.1\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(replies(&answers), ["in pieces"], "{answers}");
    assert!(answers.ends_with("{\"status\":\"ok\"}"), "{answers}");

    // A client that waits for 100 Continue gets it before sending its body.
    let address = gateway.base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).await.expect("connect");
    let body = chat("after continue");
    socket
        .write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("write head");
    let mut interim = [0; 25];
    socket.read_exact(&mut interim).await.expect("read 100");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    socket.write_all(body.as_bytes()).await.expect("write body");
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).await.expect("read answer");
    let rest = String::from_utf8_lossy(&rest);
    assert_eq!(replies(&rest), ["after continue"], "{rest}");
}

#[tokio::test]
async fn broken_and_smuggling_heads_are_refused_and_the_connection_closed() {
    let gateway = support::Modelgate::start(CONFIG).await;
    let long = format!(
        "GET /health HTTP/1.1\r\nx-long: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let mut refused = Vec::new();
    for request in [
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 1, 2\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        "NOT HTTP AT ALL\r\n\r\n",
        &long,
    ] {
        refused.push(exchange(&gateway, request.as_bytes()).await);
    }
    insta::assert_snapshot!(refused.join("\n----\n"));
}

/// A head `httparse` accepts but whose target is no URI (a backtick) is a
/// clear 400 in JSON, and the connection stays usable: the head itself
/// was well framed.
#[tokio::test]
async fn a_target_that_is_no_uri_gets_a_400_and_the_connection_is_kept() {
    let gateway = support::Modelgate::start(CONFIG).await;
    let answer = exchange(
        &gateway,
        b"GET /v1/a`b HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    insta::assert_snapshot!(answer);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_in_the_callers_dialect() {
    let gateway = support::Modelgate::start(CONFIG).await;
    let big = format!(
        "{{\"model\":\"mock/echo\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "a".repeat(100 * 1024)
    );
    let answer = exchange(
        &gateway,
        format!(
            "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{big}",
            big.len()
        )
        .as_bytes(),
    )
    .await;
    insta::assert_snapshot!(answer);
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let gateway = support::Modelgate::start(CONFIG).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(chat("over h2"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "over h2");
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_is_dropped() {
    let config = CONFIG.replace(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nheader_timeout_ms = 200\n",
    );
    let mut gateway = support::Modelgate::start(&config).await;
    let answer = exchange(
        &gateway,
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"model\":",
    )
    .await;
    assert_eq!(answer, "");
    gateway.assert_healthy();
}
