//! Shared by the integration tests: a real tonic server and client on 127.0.0.1:0.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tower_layer::Layer as _;
use tracewire_core::{Propagators, Tracer};
use tracewire_test::{Capture, Spans};
use tracewire_tonic::client::GrpcClientService;
use tracewire_tonic::{GrpcClientLayer, GrpcServerLayer};
use tracewire_tonic_testproto::EchoService;
use tracewire_tonic_testproto::pb::echo_client::EchoClient;
use tracewire_tonic_testproto::pb::echo_server::EchoServer;

/// The keys the span trees show.
pub const KEYS: &[&str] = &[
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "rpc.grpc.status_code",
    "error.type",
    "otel.status_code",
    "otel.status_description",
];

/// Every propagator in, every propagator out; always sample new roots.
pub fn tracer() -> Tracer {
    Tracer::new().with_propagators(Propagators::all())
}

/// Starts a tonic server with the Echo and health services behind `layer`.
pub async fn serve(layer: GrpcServerLayer) -> SocketAddr {
    serve_with_timeout(layer, None).await
}

/// [`serve`], with `Server::builder().timeout(..)`.
pub async fn serve_with_timeout(layer: GrpcServerLayer, timeout: Option<Duration>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let mut builder = Server::builder();
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    tokio::spawn(
        builder
            .layer(layer)
            .add_service(health)
            .add_service(EchoServer::new(EchoService))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    addr
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// An Echo client through the client layer (told the server's address).
pub async fn client(
    addr: SocketAddr,
    layer: GrpcClientLayer,
) -> EchoClient<GrpcClientService<Channel>> {
    let uri = format!("http://{addr}").parse().unwrap();
    EchoClient::new(layer.with_server_uri(&uri).layer(channel(addr).await))
}

/// Collects spans until at least `want` arrived (the server may end its span a moment after
/// the client saw the end of the call, e.g. after a cancellation), or ten seconds passed;
/// then a little longer, so that anything extra still on its way shows up too (and fails the
/// comparison).
pub async fn collect(cap: &Capture, want: usize) -> Spans {
    let mut all = Spans::default();
    for _ in 0..1000 {
        all.records.extend(cap.take().records);
        if all.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    all.records.extend(cap.take().records);
    all
}

/// `{trace id}-{span id}` of a span, as the handler reports what it saw.
pub fn ids(r: &fastrace::collector::SpanRecord) -> String {
    format!("{:032x}-{:016x}", r.trace_id.0, r.span_id.0)
}
