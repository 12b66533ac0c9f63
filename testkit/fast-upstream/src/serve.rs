//! The server: hyper, HTTP/1.1 keep-alive, no routing framework.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::answers::{Answers, Dialect};

type Body = BoxBody<Bytes, Infallible>;

/// Serves until killed.
pub(crate) async fn run(
    listen: SocketAddr,
    answers: Answers,
    delay: Duration,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!(
        "fast-upstream listening on http://{}",
        listener.local_addr()?
    );
    let answers = Arc::new(answers);
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let answers = answers.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answers = answers.clone();
                async move { Ok::<_, Infallible>(answer(request, &answers, delay).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>, answers: &Answers, delay: Duration) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let dialect = if path.ends_with("/chat/completions") {
        Dialect::OpenAi
    } else if path.ends_with("/messages") {
        Dialect::Anthropic
    } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
        Dialect::Gemini
    } else {
        return status(StatusCode::NOT_FOUND);
    };
    let Ok(body) = request.into_body().collect().await else {
        return status(StatusCode::BAD_REQUEST);
    };
    let body = body.to_bytes();
    let stream = match dialect {
        Dialect::Gemini => path.contains(":streamGenerateContent"),
        _ => asks_for_stream(&body),
    };
    let set = answers.get(dialect);
    if !stream {
        let mut response = Response::new(Full::new(set.json.clone()).boxed());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return response;
    }
    let events = set.events.clone();
    let body: Body = if delay.is_zero() {
        // Everything at once: hyper writes it as the socket allows.
        let frames = futures::stream::iter(events.into_iter().map(|event| Ok(Frame::data(event))));
        BodyExt::boxed(StreamBody::new(frames))
    } else {
        let frames = futures::stream::iter(events).then(move |event| async move {
            tokio::time::sleep(delay).await;
            Ok(Frame::data(event))
        });
        BodyExt::boxed(StreamBody::new(frames))
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

/// Whether a JSON body says `"stream": true` (either spacing).
fn asks_for_stream(body: &[u8]) -> bool {
    body.windows(13).any(|w| w == b"\"stream\":true")
        || body.windows(14).any(|w| w == b"\"stream\": true")
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = code;
    response
}
