//! A plain hyper 1 server (no axum) behind `TraceLayer`, on 127.0.0.1:0.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tracewire_core::{Sampler, Tracer};
use tracewire_tower::{ServerConfig, TraceLayer};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

#[tokio::test]
async fn plain_hyper_service_is_traced_with_peer_address() {
    let cap = tracewire_test::capture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            // The accept loop knows the peer: hand it to the layer as a `SocketAddr` extension.
            let svc = ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert::<SocketAddr>(peer);
                    req
                })
                .layer(TraceLayer::with_config(
                    ServerConfig::new().tracer(Tracer::new().with_sampler(Sampler::AlwaysOn)),
                ))
                .service_fn(hello);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc)),
            );
        }
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let res = client
        .request(
            Request::get(format!("http://{addr}/a/b?x=1"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
    let mut spans = cap.take();
    for _ in 0..100 {
        if !spans.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        spans = cap.take();
    }
    // No router: no route, so the span is named by the method alone.
    assert_eq!(
        spans.tree(&[
            "url.path",
            "url.query",
            "client.address",
            "server.port",
            "http.response.status_code"
        ]),
        format!(
            "GET [server] url.path=/a/b url.query=x=1 client.address=127.0.0.1 server.port={} \
             http.response.status_code=200\n",
            addr.port()
        )
    );
    cap.finish();
}
