//! End-to-end: the `gateway` example's own code, in one process — a real axum gateway
//! (behind tracewire-tower's `TraceLayer`) calling a real tonic backend (behind
//! `GrpcServerLayer`) through `GrpcClientLayer` — makes one trace with the exact parent
//! chain HTTP SERVER → gRPC CLIENT → gRPC SERVER → backend span.
#![allow(clippy::unwrap_used)]

#[path = "../examples/gateway.rs"]
#[allow(dead_code)]
mod gateway;
mod support;

use std::net::SocketAddr;

use tracewire_core::{SpanId, TraceId};
use tracewire_tonic::{GrpcClientLayer, GrpcServerLayer};
use tracewire_tower::{ServerConfig, TraceLayer};

#[tokio::test]
async fn gateway_to_backend_is_one_trace() {
    let cap = tracewire_test::capture();
    let tracer = support::tracer();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::serve_backend(
        listener,
        GrpcServerLayer::new().with_tracer(tracer.clone()),
    ));
    let backend = gateway::connect_backend(
        backend_addr,
        GrpcClientLayer::new().with_tracer(tracer.clone()),
    )
    .await
    .unwrap();
    let app = gateway::gateway(
        backend,
        TraceLayer::with_config(ServerConfig::new().tracer(tracer)).for_axum(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    // The caller of the gateway is itself traced: the whole chain hangs off its span.
    let (status, body) = gateway::http_get(
        addr,
        "/greet/alice",
        &[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
    )
    .await
    .unwrap();
    assert_eq!((status, body.as_str()), (200, "hello, alice\n"));

    let spans = support::collect(&cap, 4).await;
    assert_eq!(
        spans.tree(&["http.route", "rpc.method", "rpc.grpc.status_code"]),
        "GET /greet/{name} [server] (parent: 00f067aa0ba902b7) http.route=/greet/{name}\n\
         \x20 tracewire.test.v1.Echo/Unary [client] rpc.method=Unary rpc.grpc.status_code=0\n\
         \x20   tracewire.test.v1.Echo/Unary [server] rpc.method=Unary rpc.grpc.status_code=0\n\
         \x20     echo.handle [internal]\n"
    );
    assert_eq!(
        spans.trace_ids(),
        [TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)]
    );
    // The exact chain, by id.
    let http = spans.expect("GET /greet/{name}");
    let by_kind = |k: &str| {
        spans
            .records
            .iter()
            .find(|r| r.name == "tracewire.test.v1.Echo/Unary" && tracewire_test::kind(r) == k)
            .unwrap()
    };
    let (client, server) = (by_kind("client"), by_kind("server"));
    let handle = spans.expect("echo.handle");
    assert_eq!(http.parent_id, SpanId(0x00f0_67aa_0ba9_02b7));
    assert_eq!(client.parent_id, http.span_id);
    assert_eq!(server.parent_id, client.span_id);
    assert_eq!(handle.parent_id, server.span_id);
}
