//! Holds many streaming requests open, for measuring what an idle stream
//! costs the gateway.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::CONTENT_TYPE;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Opens `count` streams, waits for each one's first chunk, says so, then
/// holds them until the process is killed.
pub(crate) async fn run(url: &str, body: String, count: usize) -> std::io::Result<()> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    let uri: hyper::Uri = url.parse().map_err(std::io::Error::other)?;
    let body = Bytes::from(body);
    let mut held = Vec::with_capacity(count);
    let mut opening = Vec::with_capacity(count);
    for _ in 0..count {
        let request = Request::post(uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(std::io::Error::other)?;
        let client = client.clone();
        opening.push(tokio::spawn(async move {
            let response = client
                .request(request)
                .await
                .map_err(std::io::Error::other)?;
            if !response.status().is_success() {
                return Err(std::io::Error::other(format!(
                    "status {}",
                    response.status()
                )));
            }
            let mut body = response.into_body();
            match body.frame().await {
                Some(Ok(_)) => Ok(body),
                Some(Err(err)) => Err(std::io::Error::other(err)),
                None => Err(std::io::Error::other("the stream ended at once")),
            }
        }));
    }
    let mut failed = 0usize;
    for task in opening {
        match task.await {
            Ok(Ok(body)) => held.push(body),
            _ => failed += 1,
        }
    }
    println!("holding {} failed {failed}", held.len());
    std::future::pending::<()>().await;
    drop(held);
    Ok(())
}
