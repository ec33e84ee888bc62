//! End-to-end: a real tonic server (with `GrpcServerLayer`) and a real tonic client (through
//! `GrpcClientLayer`) on 127.0.0.1:0, the spans collected in memory and asserted as trees.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use fastrace::collector::SpanId;
use support::{KEYS, client, collect, ids, serve, tracer};
use tokio_stream::StreamExt as _;
use tonic::Code;
use tracewire_core::{Pairs, Sampler, SpanKind, TraceContext};
use tracewire_test::{kind, property};
use tracewire_tonic::{GrpcClientLayer, GrpcServerLayer, RpcConventions};
use tracewire_tonic_testproto::pb::EchoRequest;

const UNARY: &str = "tracewire.test.v1.Echo/Unary";
const SERVER_STREAM: &str = "tracewire.test.v1.Echo/ServerStream";
const CLIENT_STREAM: &str = "tracewire.test.v1.Echo/ClientStream";

fn request(fail_with: Code) -> EchoRequest {
    EchoRequest {
        message: "hi".into(),
        fail_with: fail_with as i32,
        ..Default::default()
    }
}

/// The server and client spans of a call, by kind.
fn by_kind<'a>(
    spans: &'a tracewire_test::Spans,
    name: &str,
    k: &str,
) -> &'a fastrace::collector::SpanRecord {
    spans
        .records
        .iter()
        .find(|r| r.name == name && kind(r) == k)
        .unwrap_or_else(|| panic!("no {k} span {name}; got:\n{}", spans.tree(KEYS)))
}

#[tokio::test]
async fn unary_ok_one_trace_with_attributes() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    let trace_id = root.context.trace_id;
    let reply = root
        .instrument(async { client.unary(request(Code::Ok)).await })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.message, "hi");

    let spans = collect(&cap, 4).await;
    assert_eq!(
        spans.tree(KEYS),
        format!(
            "test [internal]\n\
             \x20 {UNARY} [client] rpc.system=grpc rpc.service=tracewire.test.v1.Echo rpc.method=Unary rpc.grpc.status_code=0\n\
             \x20   {UNARY} [server] rpc.system=grpc rpc.service=tracewire.test.v1.Echo rpc.method=Unary rpc.grpc.status_code=0\n\
             \x20     echo.handle [internal]\n"
        )
    );
    assert_eq!(spans.trace_ids(), [trace_id], "one trace");

    let server = by_kind(&spans, UNARY, "server");
    // The handler ran with the server span's context attached.
    assert_eq!(reply.seen, ids(server));
    assert_eq!(property(server, "tracewire.parent.remote"), Some("true"));
    assert_eq!(property(server, "server.address"), Some("127.0.0.1"));
    assert_eq!(
        property(server, "server.port"),
        Some(addr.port().to_string().as_str())
    );
    assert_eq!(property(server, "network.peer.address"), Some("127.0.0.1"));
    let peer_port: u16 = property(server, "network.peer.port")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(peer_port, addr.port());
    // The server knows its client: `client.address` / `client.port` (no proxy in between).
    assert_eq!(property(server, "client.address"), Some("127.0.0.1"));
    assert_eq!(
        property(server, "client.port"),
        Some(peer_port.to_string().as_str())
    );

    let client_span = by_kind(&spans, UNARY, "client");
    assert_eq!(property(client_span, "server.address"), Some("127.0.0.1"));
    assert_eq!(
        property(client_span, "server.port"),
        Some(addr.port().to_string().as_str())
    );
    // An IP address as the server is the network peer too.
    assert_eq!(
        property(client_span, "network.peer.address"),
        Some("127.0.0.1")
    );
    assert_eq!(
        property(client_span, "network.peer.port"),
        Some(addr.port().to_string().as_str())
    );
    assert_eq!(property(client_span, "client.address"), None);
}

/// tonic answers a unary error as a trailers-only response (`grpc-status` in the headers).
/// NOT_FOUND is the caller's problem: an error on the client, not on the server.
#[tokio::test]
async fn unary_not_found_is_a_client_error_only() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    let status = root
        .instrument(async { client.unary(request(Code::NotFound)).await })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let spans = collect(&cap, 4).await;
    assert_eq!(
        spans.tree(&[
            "rpc.grpc.status_code",
            "error.type",
            "otel.status_code",
            "otel.status_description"
        ]),
        format!(
            "test [internal]\n\
             \x20 {UNARY} [client] rpc.grpc.status_code=5 error.type=NOT_FOUND otel.status_code=ERROR otel.status_description=asked to fail with 5\n\
             \x20   {UNARY} [server] rpc.grpc.status_code=5\n\
             \x20     echo.handle [internal]\n"
        )
    );
}

#[tokio::test]
async fn unary_internal_is_an_error_on_both_sides() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    let status = root
        .instrument(async { client.unary(request(Code::Internal)).await })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);

    let spans = collect(&cap, 4).await;
    assert_eq!(
        spans.tree(&["rpc.grpc.status_code", "error.type", "otel.status_code"]),
        format!(
            "test [internal]\n\
             \x20 {UNARY} [client] rpc.grpc.status_code=13 error.type=INTERNAL otel.status_code=ERROR\n\
             \x20   {UNARY} [server] rpc.grpc.status_code=13 error.type=INTERNAL otel.status_code=ERROR\n\
             \x20     echo.handle [internal]\n"
        )
    );
}

/// Three messages 40 ms apart: both spans last until the stream ended, the status comes from
/// the trailers, and every message was made with the server span's context attached.
#[tokio::test]
async fn server_streaming_span_ends_with_the_stream() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    let replies = root
        .instrument(async {
            let req = EchoRequest {
                message: "tick".into(),
                count: 3,
                delay_ms: 40,
                ..Default::default()
            };
            let mut stream = client.server_stream(req).await.unwrap().into_inner();
            let mut replies = Vec::new();
            while let Some(reply) = stream.next().await {
                replies.push(reply.unwrap());
            }
            replies
        })
        .await;
    assert_eq!(replies.len(), 3);

    let spans = collect(&cap, 3).await;
    assert_eq!(
        spans.tree(&["rpc.grpc.status_code", "otel.status_code"]),
        format!(
            "test [internal]\n\
             \x20 {SERVER_STREAM} [client] rpc.grpc.status_code=0\n\
             \x20   {SERVER_STREAM} [server] rpc.grpc.status_code=0\n"
        )
    );
    let server = by_kind(&spans, SERVER_STREAM, "server");
    let client_span = by_kind(&spans, SERVER_STREAM, "client");
    for reply in &replies {
        assert_eq!(reply.seen, ids(server), "stream polled in the server span");
    }
    // The stream takes at least 3 × 40 ms: a span that ended with the response headers would
    // be far shorter. Each span also ends after the last message was made.
    let min = Duration::from_millis(120).as_nanos() as u64;
    assert!(
        server.duration_ns >= min,
        "server span: {} ns",
        server.duration_ns
    );
    assert!(
        client_span.duration_ns >= min,
        "client span: {} ns",
        client_span.duration_ns
    );
    let last = replies.last().unwrap().made_at_unix_ns;
    assert!(server.begin_time_unix_ns + server.duration_ns >= last);
    assert!(client_span.begin_time_unix_ns + client_span.duration_ns >= last);
}

/// Messages first, then a failing status in the trailers (not trailers-only): the status is
/// read from the trailers, with the server rule on the server and the client rule on the
/// client.
#[tokio::test]
async fn server_streaming_status_in_trailers() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    for (code, server_error) in [(Code::NotFound, false), (Code::DataLoss, true)] {
        let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
        let (received, status) = root
            .instrument(async {
                let req = EchoRequest {
                    count: 2,
                    fail_with: code as i32,
                    ..Default::default()
                };
                let mut stream = client.server_stream(req).await.unwrap().into_inner();
                let mut received = 0;
                loop {
                    match stream.next().await {
                        Some(Ok(_)) => received += 1,
                        Some(Err(status)) => break (received, Some(status)),
                        None => break (received, None),
                    }
                }
            })
            .await;
        assert_eq!(received, 2);
        assert_eq!(status.unwrap().code(), code);

        let spans = collect(&cap, 3).await;
        let n = code as i32;
        let name = format!("{code:?}");
        let server_line = if server_error {
            format!(" rpc.grpc.status_code={n} otel.status_code=ERROR")
        } else {
            format!(" rpc.grpc.status_code={n}")
        };
        assert_eq!(
            spans.tree(&["rpc.grpc.status_code", "otel.status_code"]),
            format!(
                "test [internal]\n\
                 \x20 {SERVER_STREAM} [client] rpc.grpc.status_code={n} otel.status_code=ERROR\n\
                 \x20   {SERVER_STREAM} [server]{server_line}\n"
            ),
            "{name}"
        );
    }
}

/// Three messages sent 40 ms apart: both spans cover the whole request stream.
#[tokio::test]
async fn client_streaming_span_ends_with_the_stream() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    let reply = root
        .instrument(async {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(async move {
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    tx.send(EchoRequest::default()).await.unwrap();
                }
            });
            client
                .client_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.message, "3");

    let spans = collect(&cap, 3).await;
    assert_eq!(
        spans.tree(&["rpc.grpc.status_code", "otel.status_code"]),
        format!(
            "test [internal]\n\
             \x20 {CLIENT_STREAM} [client] rpc.grpc.status_code=0\n\
             \x20   {CLIENT_STREAM} [server] rpc.grpc.status_code=0\n"
        )
    );
    let server = by_kind(&spans, CLIENT_STREAM, "server");
    assert_eq!(reply.seen, ids(server));
    let min = Duration::from_millis(120).as_nanos() as u64;
    for r in &spans.records[..] {
        if r.name == CLIENT_STREAM {
            assert!(
                r.duration_ns >= min,
                "{} span: {} ns",
                kind(r),
                r.duration_ns
            );
        }
    }
}

/// The caller drops a server stream after one message: CANCELLED on both sides — an error
/// for the client, not for the server.
#[tokio::test]
async fn dropped_stream_is_cancelled() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    root.instrument(async {
        let req = EchoRequest {
            count: 50,
            delay_ms: 20,
            ..Default::default()
        };
        let mut stream = client.server_stream(req).await.unwrap().into_inner();
        stream.next().await.unwrap().unwrap();
        drop(stream);
    })
    .await;

    let spans = collect(&cap, 3).await;
    assert_eq!(
        spans.tree(&["rpc.grpc.status_code", "otel.status_code"]),
        format!(
            "test [internal]\n\
             \x20 {SERVER_STREAM} [client] rpc.grpc.status_code=1 otel.status_code=ERROR\n\
             \x20   {SERVER_STREAM} [server] rpc.grpc.status_code=1\n"
        )
    );
}

/// The handler outlives the server's timeout: tonic's server drops the call. The server span
/// records DEADLINE_EXCEEDED (an error); tonic answers the client CANCELLED (its mapping of
/// its own timeouts), which the client span records as it arrived, an error too.
#[tokio::test]
async fn server_timeout_is_deadline_exceeded() {
    let cap = tracewire_test::capture();
    let timeout = Duration::from_millis(100);
    let layer = GrpcServerLayer::new()
        .with_tracer(tracer())
        .with_server_timeout(timeout);
    let addr = support::serve_with_timeout(layer, Some(timeout)).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    let status = root
        .instrument(async {
            let req = EchoRequest {
                delay_ms: 5_000,
                ..Default::default()
            };
            client.unary(req).await
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled);

    let spans = collect(&cap, 4).await;
    assert_eq!(
        spans.tree(&["rpc.grpc.status_code", "error.type", "otel.status_code"]),
        format!(
            "test [internal]\n\
             \x20 {UNARY} [client] rpc.grpc.status_code=1 error.type=CANCELLED otel.status_code=ERROR\n\
             \x20   {UNARY} [server] rpc.grpc.status_code=4 error.type=DEADLINE_EXCEEDED otel.status_code=ERROR\n\
             \x20     echo.handle [internal]\n"
        )
    );
}

/// The client's own deadline (`grpc-timeout`) expires: the client span records
/// DEADLINE_EXCEEDED whichever end noticed first (tonic's channel enforces the deadline
/// itself and reports it as CANCELLED; the server drops the handler at the same deadline).
#[tokio::test]
async fn client_deadline_exceeded() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    let status = root
        .instrument(async {
            let mut req = tonic::Request::new(EchoRequest {
                delay_ms: 5_000,
                ..Default::default()
            });
            req.set_timeout(Duration::from_millis(100));
            client.unary(req).await
        })
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );

    let spans = collect(&cap, 4).await;
    let client_span = by_kind(&spans, UNARY, "client");
    assert_eq!(property(client_span, "rpc.grpc.status_code"), Some("4"));
    assert_eq!(property(client_span, "otel.status_code"), Some("ERROR"));
    // The server either hit the deadline itself (DEADLINE_EXCEEDED, an error) or saw the
    // client reset the stream first (CANCELLED, not a server error).
    let server = by_kind(&spans, UNARY, "server");
    match property(server, "rpc.grpc.status_code") {
        Some("4") => assert_eq!(property(server, "otel.status_code"), Some("ERROR")),
        Some("1") => assert_eq!(property(server, "otel.status_code"), None),
        other => panic!("server status {other:?}:\n{}", spans.tree(KEYS)),
    }
    assert_eq!(server.parent_id, client_span.span_id);
}

/// A context arriving in each propagation format, written by hand into the metadata of a
/// plain (uninstrumented) client, continues the trace on the server.
#[tokio::test]
async fn each_propagation_format_continues_the_trace() {
    use tracewire_core::{Format, Propagators, SpanId, TraceId};
    use tracewire_tonic::MetadataInjector;
    use tracewire_tonic_testproto::pb::echo_client::EchoClient;

    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut plain = EchoClient::new(support::channel(addr).await);

    for format in [
        Format::TraceContext,
        Format::B3,
        Format::B3Multi,
        Format::Jaeger,
    ] {
        let remote = TraceContext::new(
            TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId(0x00f0_67aa_0ba9_02b7),
            true,
        );
        let mut req = tonic::Request::new(request(Code::Ok));
        Propagators::new([format]).inject(&remote, &mut MetadataInjector(req.metadata_mut()));
        let reply = plain.unary(req).await.unwrap().into_inner();

        let spans = collect(&cap, 2).await;
        assert_eq!(
            spans.tree(&[]),
            format!("{UNARY} [server] (parent: 00f067aa0ba902b7)\n  echo.handle [internal]\n"),
            "{format:?}"
        );
        let server = spans.expect(UNARY);
        assert_eq!(server.trace_id, remote.trace_id, "{format:?}");
        assert_eq!(reply.seen, ids(server), "{format:?}");
    }
}

/// The client layer injects with its tracer's propagators; a server reading all formats
/// continues the trace whichever one the client speaks.
#[tokio::test]
async fn client_layer_propagates_in_each_format() {
    use tracewire_core::{Format, Propagators};

    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    for format in [
        Format::TraceContext,
        Format::B3,
        Format::B3Multi,
        Format::Jaeger,
    ] {
        let client_tracer = tracer().with_propagators(Propagators::new([format]));
        let mut client = client(addr, GrpcClientLayer::new().with_tracer(client_tracer)).await;
        let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
        root.instrument(async { client.unary(request(Code::Ok)).await })
            .await
            .unwrap();
        let spans = collect(&cap, 4).await;
        assert_eq!(
            spans.tree(&[]),
            format!(
                "test [internal]\n  {UNARY} [client]\n    {UNARY} [server]\n      echo.handle [internal]\n"
            ),
            "{format:?}"
        );
        assert_eq!(spans.trace_ids().len(), 1, "{format:?}");
    }
}

/// Health checks are not traced by default; `include_service` turns them back on.
#[tokio::test]
async fn health_check_excluded_by_default() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let cap = tracewire_test::capture();
    for (layer, traced) in [
        (GrpcServerLayer::new().with_tracer(tracer()), false),
        (
            GrpcServerLayer::new()
                .with_tracer(tracer())
                .include_service(tracewire_tonic::HEALTH_SERVICE),
            true,
        ),
    ] {
        let addr = serve(layer).await;
        let channel = support::channel(addr).await;
        let reply = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.status, 1, "SERVING");
        // A traced call after it, so the check has had every chance to show up.
        tracewire_tonic_testproto::pb::echo_client::EchoClient::new(channel)
            .unary(request(Code::Ok))
            .await
            .unwrap();
        let spans = collect(&cap, if traced { 3 } else { 2 }).await;
        let health = if traced {
            "grpc.health.v1.Health/Check [server]\n"
        } else {
            ""
        };
        assert_eq!(
            spans.tree(&[]),
            format!("{health}{UNARY} [server]\n  echo.handle [internal]\n")
        );
    }
}

/// `OTEL_SEMCONV_STABILITY_OPT_IN=rpc` and `rpc/dup` conventions on both sides.
#[tokio::test]
async fn newer_rpc_conventions() {
    let keys = [
        "rpc.system",
        "rpc.system.name",
        "rpc.service",
        "rpc.method",
        "rpc.grpc.status_code",
        "rpc.response.status_code",
        "error.type",
    ];
    let cap = tracewire_test::capture();
    for (conventions, attrs) in [
        (
            RpcConventions::Stable,
            "rpc.system.name=grpc rpc.method=tracewire.test.v1.Echo/Unary rpc.response.status_code=NOT_FOUND",
        ),
        (
            RpcConventions::Both,
            "rpc.system=grpc rpc.system.name=grpc rpc.service=tracewire.test.v1.Echo rpc.method=tracewire.test.v1.Echo/Unary rpc.grpc.status_code=5 rpc.response.status_code=NOT_FOUND",
        ),
    ] {
        let addr = serve(
            GrpcServerLayer::new()
                .with_tracer(tracer())
                .with_conventions(conventions),
        )
        .await;
        let mut client = client(
            addr,
            GrpcClientLayer::new()
                .with_tracer(tracer())
                .with_conventions(conventions),
        )
        .await;
        let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
        root.instrument(async { client.unary(request(Code::NotFound)).await })
            .await
            .unwrap_err();
        let spans = collect(&cap, 4).await;
        assert_eq!(
            spans.tree(&keys),
            format!(
                "test [internal]\n\
                 \x20 {UNARY} [client] {attrs} error.type=NOT_FOUND\n\
                 \x20   {UNARY} [server] {attrs}\n\
                 \x20     echo.handle [internal]\n"
            ),
            "{conventions:?}"
        );
    }
}

/// Unsampled: nothing is recorded on either side, but the context still flows (`-00`): the
/// handler sees the caller's trace id.
#[tokio::test]
async fn unsampled_records_nothing_but_propagates() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;

    let off = tracer().with_sampler(Sampler::AlwaysOff);
    let root = off.start_root("test", SpanKind::Internal, &Pairs::new());
    assert!(!root.context.is_sampled());
    let trace_id = root.context.trace_id;
    let reply = root
        .instrument(async { client.unary(request(Code::Ok)).await })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.seen.starts_with(&format!("{:032x}-", trace_id.0)));
    assert_ne!(reply.seen, format!("{:032x}-{:016x}", trace_id.0, 0));

    // A sampled call afterwards shows the capture works and nothing else arrived.
    let root = tracer().start_root("sampled", SpanKind::Internal, &Pairs::new());
    root.instrument(async { client.unary(request(Code::Ok)).await })
        .await
        .unwrap();
    let spans = collect(&cap, 4).await;
    assert_eq!(
        spans.tree(&[]),
        format!(
            "sampled [internal]\n  {UNARY} [client]\n    {UNARY} [server]\n      echo.handle [internal]\n"
        )
    );
}

/// Outside any trace the client has nothing to continue: no client span, nothing injected;
/// the server starts a new trace.
#[tokio::test]
async fn no_current_trace_on_the_client() {
    let cap = tracewire_test::capture();
    let addr = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let mut client = client(addr, GrpcClientLayer::new().with_tracer(tracer())).await;
    client.unary(request(Code::Ok)).await.unwrap();
    let spans = collect(&cap, 2).await;
    assert_eq!(
        spans.tree(&[]),
        format!("{UNARY} [server]\n  echo.handle [internal]\n")
    );
    assert_eq!(spans.expect(UNARY).parent_id, SpanId(0), "a new root");
}

/// A handler that calls another service through the client layer: the outgoing call
/// continues the trace from the server span (the layer attaches the context for the handler).
#[tokio::test]
async fn handler_calls_propagate_from_the_server_span() {
    use tonic::{Request, Response, Status, Streaming};
    use tracewire_tonic::client::GrpcClientService;
    use tracewire_tonic_testproto::pb::EchoResponse;
    use tracewire_tonic_testproto::pb::echo_client::EchoClient;
    use tracewire_tonic_testproto::pb::echo_server::{Echo, EchoServer};

    /// Forwards `Unary` to the next hop.
    struct Relay(EchoClient<GrpcClientService<tonic::transport::Channel>>);

    #[tonic::async_trait]
    impl Echo for Relay {
        async fn unary(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
            self.0.clone().unary(req.into_inner()).await
        }
        type ServerStreamStream = tracewire_tonic_testproto::Ticks;
        async fn server_stream(
            &self,
            _: Request<EchoRequest>,
        ) -> Result<Response<Self::ServerStreamStream>, Status> {
            Err(Status::unimplemented("relay"))
        }
        async fn client_stream(
            &self,
            _: Request<Streaming<EchoRequest>>,
        ) -> Result<Response<EchoResponse>, Status> {
            Err(Status::unimplemented("relay"))
        }
    }

    let cap = tracewire_test::capture();
    let last = serve(GrpcServerLayer::new().with_tracer(tracer())).await;
    let to_last = client(last, GrpcClientLayer::new().with_tracer(tracer())).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(GrpcServerLayer::new().with_tracer(tracer()))
            .add_service(EchoServer::new(Relay(to_last)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let mut first = client(relay, GrpcClientLayer::new().with_tracer(tracer())).await;

    let root = tracer().start_root("test", SpanKind::Internal, &Pairs::new());
    let reply = root
        .instrument(async { first.unary(request(Code::Ok)).await })
        .await
        .unwrap()
        .into_inner();
    let spans = collect(&cap, 6).await;
    assert_eq!(
        spans.tree(&[]),
        format!(
            "test [internal]\n\
             \x20 {UNARY} [client]\n\
             \x20   {UNARY} [server]\n\
             \x20     {UNARY} [client]\n\
             \x20       {UNARY} [server]\n\
             \x20         echo.handle [internal]\n"
        )
    );
    assert_eq!(spans.trace_ids().len(), 1);
    // The last handler saw the last server span.
    let last_server = spans
        .records
        .iter()
        .filter(|r| r.name == UNARY && kind(r) == "server")
        .max_by_key(|r| r.begin_time_unix_ns)
        .unwrap();
    assert_eq!(reply.seen, ids(last_server));
}
