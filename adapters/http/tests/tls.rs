//! `https` upstreams: a loopback TLS server with a generated certificate,
//! offering HTTP/1.1 or HTTP/2 by ALPN. The answers (whole and streamed)
//! arrive intact over each protocol, connections are reused, and a
//! certificate the gateway does not trust is refused with a clear error.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter_http::{Upstream, body_bytes};
use bytes::Bytes;
use futures::TryStreamExt;
use gateway_core::{PassthroughRequest, SplicedBody};
use http_body_util::{Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A TLS server on loopback speaking the protocol `alpn` names.
struct Server {
    url: url::Url,
    certificate: CertificateDer<'static>,
    connections: Arc<AtomicUsize>,
}

/// The answer to every request: its protocol version and path, whole, or
/// in two data frames for `/v1/stream`; `/v1/echo` answers with the
/// request's body.
async fn answer(
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>, Infallible> {
    use http_body_util::BodyExt;
    if request.uri().path() == "/v1/echo" {
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => Bytes::from_static(b"unreadable"),
        };
        return Ok(hyper::Response::new(Full::new(body).boxed()));
    }
    let text = format!("{:?} {}", request.version(), request.uri().path());
    let body = if request.uri().path() == "/v1/stream" {
        let frames = futures::stream::iter([
            Ok::<_, Infallible>(Frame::data(Bytes::from(text))),
            Ok(Frame::data(Bytes::from_static(b" second"))),
        ]);
        StreamBody::new(frames).boxed()
    } else {
        Full::new(Bytes::from(text)).boxed()
    };
    Ok(hyper::Response::new(body))
}

async fn server(alpn: &'static [u8]) -> Server {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let certificate = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![certificate.clone()], key)
    .expect("server config");
    config.alpn_protocols = vec![alpn.to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (url, connections) = support::accept("https", move |socket, _| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(socket).await else {
                return;
            };
            let io = TokioIo::new(tls);
            let service = service_fn(answer);
            if alpn == b"h2" {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        }
    })
    .await;
    Server {
        url,
        certificate,
        connections,
    }
}

fn trusting(server: &Server) -> Upstream {
    Upstream::trusting(
        &server.url,
        Vec::new(),
        None,
        vec![server.certificate.clone()],
    )
    .expect("upstream")
}

/// The body of a GET of `path`.
async fn get(upstream: &Upstream, path: &str) -> String {
    let response = upstream.get(path).await.expect("an answer");
    assert_eq!(response.status(), 200);
    let body = body_bytes(response).await.expect("a body");
    String::from_utf8(body.to_vec()).expect("utf-8")
}

/// Three whole answers and a streamed one through `server`, on one
/// connection, each saying which protocol carried it.
async fn exchanges_over(server: Server, version: &str) {
    let upstream = trusting(&server);
    for _ in 0..3 {
        assert_eq!(
            get(&upstream, "models").await,
            format!("{version} /v1/models")
        );
    }
    assert_eq!(
        get(&upstream, "stream").await,
        format!("{version} /v1/stream second")
    );
    assert_eq!(echo_spliced(&upstream).await, spliced_bytes());
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

/// A 64 KiB body with a new name spliced into its middle, and the bytes
/// it stands for.
fn spliced() -> SplicedBody {
    let whole =
        Bytes::from([&b"a".repeat(32 * 1024)[..], b"OLD", &b"z".repeat(32 * 1024)].concat());
    SplicedBody::new(
        whole,
        32 * 1024..32 * 1024 + 3,
        Bytes::from_static(b"new name"),
    )
}

fn spliced_bytes() -> Bytes {
    Bytes::from(
        [
            &b"a".repeat(32 * 1024)[..],
            b"new name",
            &b"z".repeat(32 * 1024),
        ]
        .concat(),
    )
}

/// What the server received of [`spliced`], sent as a pass-through (its
/// pieces written as they are over HTTP/1.1, chained over HTTP/2).
async fn echo_spliced(upstream: &Upstream) -> Bytes {
    let answer = upstream
        .passthrough(PassthroughRequest {
            operation: "echo".into(),
            body: spliced(),
            stream: false,
            headers: http::HeaderMap::new(),
        })
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200);
    let chunks: Vec<Bytes> = answer.body.try_collect().await.expect("a body");
    Bytes::from(chunks.concat())
}

#[tokio::test]
async fn http_1_1_over_tls_answers_and_keeps_its_connection() {
    exchanges_over(server(b"http/1.1").await, "HTTP/1.1").await;
}

#[tokio::test]
async fn http_2_over_tls_answers_and_shares_its_connection() {
    exchanges_over(server(b"h2").await, "HTTP/2.0").await;
}

#[tokio::test]
async fn a_certificate_nobody_vouches_for_is_refused() {
    let server = server(b"http/1.1").await;
    let upstream = Upstream::new(&server.url, Vec::new(), None).expect("upstream");
    let err = upstream.get("models").await.expect_err("untrusted");
    assert_eq!(err.status(), 502);
    assert!(
        err.message.starts_with("cannot connect to the upstream:")
            && err
                .message
                .contains("invalid peer certificate: UnknownIssuer"),
        "{}",
        err.message
    );
}
