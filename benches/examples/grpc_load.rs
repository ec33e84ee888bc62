//! A tonic unary echo server for the end-to-end load runs in BENCHMARKS.md ("gRPC server: all
//! threads"), one mode per tracing stack, and the gRPC load generator that drives it (wrk speaks
//! no gRPC):
//!
//! ```text
//! grpc_load server <mode> [addr] [control]   # the server under load (127.0.0.1:50061, :50062)
//! grpc_load client [addr] [connections] [in flight per connection]   # the load (4 x 32)
//! bash benches/grpc_load.sh                  # every mode, interleaved rounds
//! bash benches/grpc_load.sh callgrind        # instructions per call, per thread, per mode
//! ```
//!
//! | mode | what traces the call | where its spans go |
//! |---|---|---|
//! | `plain` | nothing | |
//! | `tracewire` | `tracewire_tonic::GrpcServerLayer`, 100 % sampled | `tracewire-export`'s pipeline (OTLP mapping, batching) into a sink that takes the OTLP protobuf and counts the spans |
//! | `tracewire-ratio10` | the same layer, `parentbased(traceidratio 0.1)`: 10 % sampled, the rest propagated | the same pipeline and sink |
//! | `tracewire-unsampled` | the same layer, `Sampler::AlwaysOff` (context still propagated) | the same pipeline (idle) |
//! | `fastrace-tonic` | `fastrace_tonic::FastraceServerLayer` (the engine's own tonic layer) | `fastrace-opentelemetry`'s reporter into an SDK exporter that does what `opentelemetry-otlp` does (group, convert, prost-encode), counting the spans |
//! | `fastrace-floor` | a bare fastrace root span with two static properties around the call (`tracewire_benches::floor_span`): the least a fastrace-based layer does for a sampled call | the `tracewire` pipeline and sink |
//! | `tonic-tracing-opentelemetry` | its `OtelGrpcLayer` (a `tracing` span per call, W3C extraction through the global propagator) | `tracing-opentelemetry` into the OpenTelemetry SDK, whose batch processor exports into that same encoding exporter |
//!
//! There is no "empty layer" floor as in `http_load`: tonic's `Server::layer` stacks layers
//! statically (no boxing), so a layer that adds nothing is `plain`.
//!
//! The calls carry no trace context: each one starts a trace. The handler (the
//! `tracewire.test.v1.Echo` service of `tracewire-tonic-testproto`, answered here) echoes the
//! message and counts the call; it makes no span of its own.
//!
//! The server runs on a tokio runtime with `TOKIO_WORKERS` worker threads (default 1); its
//! control listener (`tracewire_benches::control`: `GET /_count` = calls answered, `GET
//! /_flush`) is untraced. It stops on SIGTERM or Ctrl-C, printing `spans exported: n`.
//!
//! The client opens `connections` HTTP/2 connections and keeps `in flight` unary calls on each
//! (each a task calling in a loop), on a current-thread runtime, until SIGTERM; it prints how
//! many calls it made and how many failed. It speaks gRPC at the wire level — hyper's HTTP/2
//! client posting one pre-encoded `EchoRequest`, reading the reply and checking `grpc-status: 0`
//! in its trailers — because a tonic client spends about twice the server's CPU per call and
//! could not keep one server CPU busy from the other CPU. With 4 x 32 calls in flight it spends
//! about 8–9 µs of CPU per call, the untraced server 11–13 µs (loaded machine, 2026-12-02).
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tracewire_benches::control::{self, Exporting};
use tracewire_core::{Sampler, Tracer};
use tracewire_tonic::GrpcServerLayer;
use tracewire_tonic_testproto::pb::echo_server::{Echo, EchoServer};
use tracewire_tonic_testproto::pb::{EchoRequest, EchoResponse};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The Echo handler of the load run: echoes the message of a unary call and counts it.
#[derive(Clone)]
struct Answer(Arc<AtomicU64>);

#[tonic::async_trait]
impl Echo for Answer {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(EchoResponse {
            message: request.into_inner().message,
            ..EchoResponse::default()
        }))
    }

    type ServerStreamStream = tokio_stream::Empty<Result<EchoResponse, Status>>;

    async fn server_stream(
        &self,
        _request: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        Err(Status::unimplemented("unary calls only in the load run"))
    }

    async fn client_stream(
        &self,
        _request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        Err(Status::unimplemented("unary calls only in the load run"))
    }
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("server") => server(args),
        Some("client") => client(args),
        _ => Err("usage: grpc_load server <mode> [addr] [control] | client [addr] [connections] [in flight]".into()),
    }
}

/// The `fastrace-floor` mode's service: the call in a bare fastrace root span.
#[derive(Clone)]
struct Floor<S>(S);

impl<S: tower_service::Service<R>, R> tower_service::Service<R> for Floor<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = fastrace::future::InSpan<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        use fastrace::future::FutureExt as _;
        let span = tracewire_benches::floor_span(
            "tracewire.test.v1.Echo/Unary",
            [("span.kind", "server"), ("rpc.system", "grpc")],
        );
        self.0.call(req).in_span(span)
    }
}

/// Serves Echo on `$listener` behind `$layer` until SIGTERM.
macro_rules! serve {
    ($listener:expr, $answer:expr, $layer:expr) => {
        Server::builder()
            .layer($layer)
            .add_service(EchoServer::new($answer))
            .serve_with_incoming_shutdown(TcpIncoming::from($listener), control::terminated())
            .await
    };
}

fn server(mut args: impl Iterator<Item = String>) -> Result<(), Error> {
    let mode = args.next().unwrap_or_else(|| "tracewire".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:50061".to_owned());
    let control_addr = args.next().unwrap_or_else(|| "127.0.0.1:50062".to_owned());
    let workers = std::env::var("TOKIO_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let answered = Arc::new(AtomicU64::new(0));
    let answer = Answer(answered.clone());
    let tracewire =
        |sampler| GrpcServerLayer::new().with_tracer(Tracer::new().with_sampler(sampler));
    let exporting = match mode.as_str() {
        "plain" => Exporting::none(),
        "tracewire" | "tracewire-ratio10" | "tracewire-unsampled" | "fastrace-floor" => {
            Exporting::tracewire()?
        }
        "fastrace-tonic" => Exporting::fastrace_otel("fastrace-tonic"),
        "tonic-tracing-opentelemetry" => Exporting::tracing_otel("grpc_load")?,
        other => return Err(format!("unknown mode {other}").into()),
    };

    if mode != "tonic-tracing-opentelemetry" {
        control::no_tracing_subscriber()?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let control_listener = tokio::net::TcpListener::bind(&control_addr).await?;
        tokio::spawn(control::serve(control_listener, answered.clone(), exporting.clone()));
        println!("{mode} gRPC server on {addr}, control on http://{control_addr} ({workers} worker thread(s))");
        match mode.as_str() {
            "plain" => serve!(listener, answer, tower::layer::util::Identity::new()),
            "tracewire" => serve!(listener, answer, tracewire(Sampler::AlwaysOn)),
            "tracewire-ratio10" => serve!(
                listener,
                answer,
                tracewire(Sampler::parent_based(Sampler::trace_id_ratio(0.1)))
            ),
            "tracewire-unsampled" => serve!(listener, answer, tracewire(Sampler::AlwaysOff)),
            "fastrace-floor" => serve!(listener, answer, tower::layer::layer_fn(Floor)),
            "fastrace-tonic" => serve!(
                listener,
                answer,
                fastrace_tonic::FastraceServerLayer::default()
            ),
            _ => serve!(
                listener,
                answer,
                tonic_tracing_opentelemetry::middleware::server::OtelGrpcLayer::default()
            ),
        }?;
        Ok::<_, Error>(())
    })?;
    println!("calls answered: {}", answered.load(Ordering::Relaxed));
    println!("spans exported: {}", exporting.shutdown());
    Ok(())
}

fn client(mut args: impl Iterator<Item = String>) -> Result<(), Error> {
    use http_body_util::BodyExt as _;
    use prost::Message as _;

    let addr = args.next().unwrap_or_else(|| "127.0.0.1:50061".to_owned());
    let connections: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let in_flight: usize = args.next().map_or(Ok(32), |n| n.parse())?;
    let uri: http::Uri = format!("http://{addr}/tracewire.test.v1.Echo/Unary").parse()?;
    // One gRPC message: uncompressed, its length, the encoded request.
    let message = EchoRequest {
        message: "hello".to_owned(),
        ..EchoRequest::default()
    }
    .encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    framed.extend_from_slice(&message);
    let framed = bytes::Bytes::from(framed);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    rt.block_on(async {
        for _ in 0..connections {
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(stream),
            )
            .await?;
            tokio::spawn(connection);
            for _ in 0..in_flight {
                let mut sender = sender.clone();
                let (calls, failed) = (calls.clone(), failed.clone());
                let (uri, framed) = (uri.clone(), framed.clone());
                tokio::spawn(async move {
                    loop {
                        let request = http::Request::post(uri.clone())
                            .header(http::header::CONTENT_TYPE, "application/grpc")
                            .header(http::header::TE, "trailers")
                            .body(http_body_util::Full::new(framed.clone()))
                            .unwrap();
                        let ok = match sender.send_request(request).await {
                            Ok(response) => match response.into_body().collect().await {
                                Ok(body) => body
                                    .trailers()
                                    .and_then(|t| t.get("grpc-status"))
                                    .is_some_and(|s| s == "0"),
                                Err(_) => false,
                            },
                            Err(_) => false,
                        };
                        if ok {
                            calls.fetch_add(1, Ordering::Relaxed);
                        } else if failed.fetch_add(1, Ordering::Relaxed) > 1000 {
                            return; // the server is gone
                        }
                    }
                });
            }
        }
        control::terminated().await;
        Ok::<_, Error>(())
    })?;
    println!(
        "calls made: {}, failed: {}",
        calls.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}
