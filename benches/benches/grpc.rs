//! gRPC: the per-call overhead of tracewire-tonic's server and client layers, next to an
//! uninstrumented call and to fastrace-tonic (the peer), side by side in one run.
//!
//! Run: `cargo bench -p tracewire-benches --bench grpc` (results: `BENCHMARKS.md`, `## gRPC`).
//!
//! | group | what one iteration is |
//! |---|---|
//! | `grpc/server` | a unary request through the server layer to a handler answering like tonic (headers, one message, trailers with `grpc-status: 0`), the response body read to its end — in-process, no network |
//! | `grpc/client` | the same through the client layer, made inside a caller's span (a root span + attached context, created in every iteration of every function) |
//! | `grpc/call` | a real unary call: tonic client → HTTP/2 over loopback → tonic server, both layers (or neither) installed, on one current-thread runtime |
//!
//! Functions: `bare` (no layer; `grpc/call` measures it again last, as `bare-repeat`, to
//! show how much the machine drifted during the group), `fastrace-tonic` (`FastraceServerLayer` /
//! `FastraceClientLayer`), `tracewire-sampled`, `tracewire-unsampled` (the inbound/caller context
//! is unsampled: a no-op span, the context still propagated). fastrace-tonic always samples
//! (it starts a random root when nothing arrives) and ends its server span with the response
//! headers, so it records less than tracewire does (no attributes, no status, no stream end).
//!
//! Time is the CPU time of the benchmarking thread (see `ThreadCpu`): on the shared 2-core
//! machine wall-clock medians swing with other jobs; in `grpc/call` both ends run on that
//! thread, so the CPU time covers client and server. Spans go to a reporter that drops them.
//!
//! `GRPC_BENCH_PROFILE=<group>-<function>[:n]` (`server-` or `client-` + `bare`, `fastrace`,
//! `sampled`, `unsampled`) runs that function of `grpc/server` or `grpc/client` `n` times
//! (default 10000) and exits, without criterion: a fixed workload for
//! `valgrind --tool=callgrind` (instruction counts do not depend on the machine's load;
//! `--toggle-collect='*profiled*'` counts the request thread alone, see `profile_loop`).

mod common;
use common::{ThreadCpu, in_caller, median_ns};

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use fastrace::collector::{Config, Reporter, SpanRecord};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use tower_layer::Layer;
use tower_service::Service;
use tracewire_core::{Pairs, Sampler, SpanKind, Tracer};
use tracewire_tonic::{GrpcClientLayer, GrpcServerLayer};

const PATH_URI: &str = "http://127.0.0.1:50051/tracewire.test.v1.Echo/Unary";
const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const FUNCTIONS: [&str; 5] = [
    "bare",
    "fastrace-tonic",
    "tracewire-sampled",
    "tracewire-unsampled",
    "bare-repeat",
];

struct DropAll;

impl Reporter for DropAll {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        black_box(spans);
    }
}

/// A unary gRPC response body: one message, then trailers with `grpc-status: 0`.
struct UnaryBody {
    step: u8,
}

impl Body for UnaryBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.step += 1;
        Poll::Ready(match self.step {
            1 => Some(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x04\n\x02hi")))),
            2 => {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                Some(Ok(Frame::trailers(trailers)))
            }
            _ => None,
        })
    }
}

/// The handler (server group) or the transport (client group): answers at once.
#[derive(Clone, Copy)]
struct Answer;

impl<B> Service<Request<B>> for Answer {
    type Response = Response<UnaryBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<UnaryBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        black_box(req);
        let mut res = Response::new(UnaryBody { step: 0 });
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        std::future::ready(Ok(res))
    }
}

/// A request as tonic's client sends it (plus a `traceparent` on the server side).
fn request(traceparent: Option<&'static str>) -> Request<()> {
    let mut req = Request::post(PATH_URI);
    req = req
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "tonic/0.14.9");
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.body(()).unwrap_or_default()
}

/// Calls `svc` and reads the response body to its end; everything is ready at once, so a
/// no-op waker drives it.
fn drive<S, B>(svc: &mut S, req: Request<()>)
where
    S: Service<Request<()>, Response = Response<B>>,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = pin!(svc.call(req));
    let Poll::Ready(Ok(res)) = fut.as_mut().poll(&mut cx) else {
        unreachable!("the handler answers at once")
    };
    let mut body = pin!(res.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        black_box(frame.is_ok());
    }
}

fn tracer() -> Tracer {
    Tracer::new()
}

fn bench_server(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("grpc/server");
    let mut bare = Answer;
    g.bench_function("bare", |b| {
        b.iter(|| drive(&mut bare, request(Some(SAMPLED))))
    });
    let mut peer = fastrace_tonic::FastraceServerLayer::default().layer(Answer);
    g.bench_function("fastrace-tonic", |b| {
        b.iter(|| drive(&mut peer, request(Some(SAMPLED))))
    });
    let mut tw = GrpcServerLayer::new().with_tracer(tracer()).layer(Answer);
    g.bench_function("tracewire-sampled", |b| {
        b.iter(|| drive(&mut tw, request(Some(SAMPLED))))
    });
    g.bench_function("tracewire-unsampled", |b| {
        b.iter(|| drive(&mut tw, request(Some(UNSAMPLED))))
    });
    g.finish();
    fastrace::flush();
}

fn bench_client(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("grpc/client");
    let mut bare = Answer;
    g.bench_function("bare", |b| {
        b.iter(|| in_caller(true, || drive(&mut bare, request(None))))
    });
    let mut peer = fastrace_tonic::FastraceClientLayer.layer(Answer);
    g.bench_function("fastrace-tonic", |b| {
        b.iter(|| in_caller(true, || drive(&mut peer, request(None))))
    });
    let mut tw = GrpcClientLayer::new()
        .with_tracer(tracer())
        .with_server_address("127.0.0.1", Some(50051))
        .layer(Answer);
    g.bench_function("tracewire-sampled", |b| {
        b.iter(|| in_caller(true, || drive(&mut tw, request(None))))
    });
    g.bench_function("tracewire-unsampled", |b| {
        b.iter(|| in_caller(false, || drive(&mut tw, request(None))))
    });
    g.finish();
    fastrace::flush();
}

mod call {
    pub(super) use tracewire_tonic_testproto::EchoService;
    use tracewire_tonic_testproto::pb::EchoRequest;
    pub(super) use tracewire_tonic_testproto::pb::echo_server::EchoServer;

    /// Starts a server behind `$layer` and returns a connected channel to it.
    macro_rules! start {
        ($rt:expr, $layer:expr) => {
            $rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .unwrap_or_else(|e| panic!("bind: {e}"));
                let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
                tokio::spawn(
                    tonic::transport::Server::builder()
                        .layer($layer)
                        .add_service(EchoServer::new(EchoService))
                        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
                );
                tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .unwrap_or_else(|e| panic!("{e}"))
                    .connect()
                    .await
                    .unwrap_or_else(|e| panic!("connect: {e}"))
            })
        };
    }
    pub(super) use start;

    pub(super) fn request() -> EchoRequest {
        EchoRequest {
            message: "hi".into(),
            ..Default::default()
        }
    }
}

fn bench_call(c: &mut Criterion<ThreadCpu>) {
    use call::{EchoServer, EchoService};
    use tracewire_tonic_testproto::pb::echo_client::EchoClient;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let root = |sampled: bool| {
        let t = if sampled {
            tracer()
        } else {
            tracer().with_sampler(Sampler::AlwaysOff)
        };
        t.start_root("caller", SpanKind::Internal, &Pairs::new())
    };
    let mut g = c.benchmark_group("grpc/call");
    g.measurement_time(Duration::from_secs(8));

    let mut bare = EchoClient::new(call::start!(rt, tower_layer::Identity::new()));
    let channel = call::start!(rt, fastrace_tonic::FastraceServerLayer::default());
    let mut peer = EchoClient::new(fastrace_tonic::FastraceClientLayer.layer(channel));
    let channel = call::start!(rt, GrpcServerLayer::new().with_tracer(tracer()));
    let mut tw = EchoClient::new(GrpcClientLayer::new().with_tracer(tracer()).layer(channel));

    g.bench_function("bare", |b| {
        b.iter(|| {
            rt.block_on(root(true).instrument(bare.unary(call::request())))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    g.bench_function("fastrace-tonic", |b| {
        b.iter(|| {
            rt.block_on(root(true).instrument(peer.unary(call::request())))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    for (name, sampled) in [("tracewire-sampled", true), ("tracewire-unsampled", false)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(root(sampled).instrument(tw.unary(call::request())))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        });
    }
    // The uninstrumented call once more, last: how far the machine drifted during the group.
    g.bench_function("bare-repeat", |b| {
        b.iter(|| {
            rt.block_on(root(true).instrument(bare.unary(call::request())))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    g.finish();
    fastrace::flush();
}

fn print_summary() {
    eprintln!();
    eprintln!(
        "| group | function | median (ns) | / bare | overhead over bare (ns) | / fastrace-tonic |"
    );
    eprintln!("|---|---|---:|---:|---:|---:|");
    for group in ["grpc/server", "grpc/client", "grpc/call"] {
        let bare = median_ns(group, "bare");
        let peer = median_ns(group, "fastrace-tonic");
        for f in FUNCTIONS {
            let Some(m) = median_ns(group, f) else {
                continue;
            };
            let ratio = |base: Option<f64>| {
                base.filter(|b| *b > 0.0)
                    .map_or_else(|| "n/a".to_owned(), |b| format!("{:.2}x", m / b))
            };
            let over = bare.map_or_else(|| "n/a".to_owned(), |b| format!("{:.0}", m - b));
            eprintln!(
                "| {group} | {f} | {m:.0} | {} | {over} | {} |",
                ratio(bare),
                ratio(peer)
            );
        }
    }
}

/// `GRPC_BENCH_PROFILE`: see the module docs. Each run does exactly what one iteration of the
/// criterion function does.
fn profile(spec: &str) {
    let (function, n) = spec.split_once(':').unwrap_or((spec, "10000"));
    let n: usize = n
        .parse()
        .unwrap_or_else(|e| panic!("GRPC_BENCH_PROFILE count {n:?}: {e}"));
    let run = |f: &mut dyn FnMut()| profile_loop(n, f);
    match function {
        "server-bare" => run(&mut || drive(&mut Answer, request(Some(SAMPLED)))),
        "server-fastrace" => {
            let mut peer = fastrace_tonic::FastraceServerLayer::default().layer(Answer);
            run(&mut || drive(&mut peer, request(Some(SAMPLED))))
        }
        "server-sampled" | "server-unsampled" => {
            let tp = if function == "server-sampled" {
                SAMPLED
            } else {
                UNSAMPLED
            };
            let mut tw = GrpcServerLayer::new().with_tracer(tracer()).layer(Answer);
            run(&mut || drive(&mut tw, request(Some(tp))))
        }
        "client-bare" => run(&mut || in_caller(true, || drive(&mut Answer, request(None)))),
        "client-fastrace" => {
            let mut peer = fastrace_tonic::FastraceClientLayer.layer(Answer);
            run(&mut || in_caller(true, || drive(&mut peer, request(None))))
        }
        "client-sampled" | "client-unsampled" => {
            let sampled = function == "client-sampled";
            let mut tw = GrpcClientLayer::new()
                .with_tracer(tracer())
                .with_server_address("127.0.0.1", Some(50051))
                .layer(Answer);
            run(&mut || in_caller(sampled, || drive(&mut tw, request(None))))
        }
        other => panic!("unknown GRPC_BENCH_PROFILE function {other}"),
    }
    fastrace::flush();
}

/// Runs `f` `n` times, each call in [`profiled`], flushing fastrace's collector every 200
/// calls: the command queue never fills (past half full every send wakes the collector, which
/// makes counts depend on how valgrind schedules the threads), and the collector's work runs
/// on the flush thread, apart from the request thread.
fn profile_loop(n: usize, f: &mut dyn FnMut()) {
    for start in (0..n).step_by(200) {
        for _ in start..n.min(start + 200) {
            profiled(f);
        }
        fastrace::flush();
    }
}

/// One iteration in a frame of its own, for `valgrind --tool=callgrind
/// --toggle-collect='*profiled*'` (the request thread's instructions only).
#[inline(never)]
fn profiled(f: &mut dyn FnMut()) {
    f();
}

fn main() {
    fastrace::set_reporter(DropAll, Config::default());
    if let Ok(spec) = std::env::var("GRPC_BENCH_PROFILE") {
        profile(&spec);
        return;
    }
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .configure_from_args();
    bench_server(&mut c);
    bench_client(&mut c);
    bench_call(&mut c);
    c.final_summary();
    print_summary();
}
