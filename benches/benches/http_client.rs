//! HTTP client: the per-request overhead of tracewire's CLIENT span (`tracewire_http::ClientSpan`,
//! through tracewire-tower's `ClientLayer`, the span reqwest's middleware makes too), in-process.
//!
//! ```text
//! cargo bench -p tracewire-benches --bench http_client
//! ```
//!
//! One iteration: inside a caller's span and context (a root span + attached context, created
//! in every iteration of every function, as in `grpc/client`), a `GET` with a URL and a few
//! headers goes through the layer to a transport that answers at once. Functions: `bare` (no
//! layer), `tracewire-sampled` (200), `tracewire-sampled-503` (an error status: three late
//! attributes), `tracewire-unsampled` (the caller's context is unsampled: a no-op span, the
//! context still propagated). Spans go to a reporter that drops them. Time is the CPU time of
//! the benchmarking thread (see `ThreadCpu`).
//!
//! `HTTP_CLIENT_BENCH_PROFILE=<function>[:n]` (`bare`, `sampled`, `sampled-503`, `unsampled`)
//! runs that function `n` times (default 10000) and exits, without criterion: a fixed workload
//! for `valgrind --tool=callgrind` (instruction counts do not depend on the machine's load;
//! `--toggle-collect='*profiled*'` counts the request thread alone).

mod common;
use common::{ThreadCpu, in_caller};

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::Criterion;
use fastrace::collector::{Config, Reporter, SpanRecord};
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;
use tracewire_core::Tracer;
use tracewire_tower::ClientLayer;

const URL: &str = "http://api.example:8080/users/7?page=2";

struct DropAll;

impl Reporter for DropAll {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        black_box(spans);
    }
}

/// The transport: answers every request at once with `status`.
#[derive(Clone, Copy)]
struct Answer(StatusCode);

impl<B> Service<Request<B>> for Answer {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        black_box(req);
        let mut res = Response::new(());
        *res.status_mut() = self.0;
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        std::future::ready(Ok(res))
    }
}

fn request() -> Request<()> {
    Request::get(URL)
        .header("accept", "application/json")
        .header("user-agent", "bench/1")
        .body(())
        .unwrap_or_default()
}

/// Sends one request through `svc`; everything is ready at once, so a no-op waker drives it.
fn send<S>(svc: &mut S)
where
    S: Service<Request<()>, Response = Response<()>>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = pin!(svc.call(request()));
    let Poll::Ready(Ok(res)) = fut.as_mut().poll(&mut cx) else {
        unreachable!("the transport answers at once")
    };
    black_box(res);
}

fn layer() -> ClientLayer {
    ClientLayer::with_config(tracewire_tower::ClientConfig::new().tracer(Tracer::new()))
}

/// The function `name` as a closure running one iteration.
fn function(name: &str) -> Box<dyn FnMut()> {
    match name {
        "bare" => {
            let mut svc = Answer(StatusCode::OK);
            Box::new(move || in_caller(true, || send(&mut svc)))
        }
        "sampled" | "unsampled" => {
            let sampled = name == "sampled";
            let mut svc = layer().layer(Answer(StatusCode::OK));
            Box::new(move || in_caller(sampled, || send(&mut svc)))
        }
        "sampled-503" => {
            let mut svc = layer().layer(Answer(StatusCode::SERVICE_UNAVAILABLE));
            Box::new(move || in_caller(true, || send(&mut svc)))
        }
        other => panic!("unknown http_client function {other}"),
    }
}

fn bench_client(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("http/client");
    for (label, name) in [
        ("bare", "bare"),
        ("tracewire-sampled", "sampled"),
        ("tracewire-sampled-503", "sampled-503"),
        ("tracewire-unsampled", "unsampled"),
    ] {
        let mut f = function(name);
        g.bench_function(label, |b| b.iter(&mut f));
    }
    g.finish();
    fastrace::flush();
}

/// One iteration in a frame of its own, for `valgrind --tool=callgrind
/// --toggle-collect='*profiled*'` (the request thread's instructions only).
#[inline(never)]
fn profiled(f: &mut dyn FnMut()) {
    f();
}

fn main() {
    fastrace::set_reporter(DropAll, Config::default());
    if let Ok(spec) = std::env::var("HTTP_CLIENT_BENCH_PROFILE") {
        let (name, n) = spec.split_once(':').unwrap_or((&spec, "10000"));
        let n: usize = n
            .parse()
            .unwrap_or_else(|e| panic!("HTTP_CLIENT_BENCH_PROFILE count {n:?}: {e}"));
        let mut f = function(name);
        for start in (0..n).step_by(200) {
            for _ in start..n.min(start + 200) {
                profiled(&mut f);
            }
            // The command queue never fills (past half full every send wakes the collector,
            // which makes counts depend on how valgrind schedules the threads), and the
            // collector's work runs on the flush thread, apart from the request thread.
            fastrace::flush();
        }
        return;
    }
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .configure_from_args();
    bench_client(&mut c);
    c.final_summary();
}
