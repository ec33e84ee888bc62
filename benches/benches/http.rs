//! HTTP server middleware overhead: one in-process request through each server stack, with a
//! trivial handler, side by side in the same run.
//!
//! ```text
//! cargo bench -p tracewire-benches --bench http
//! ```
//!
//! Stacks (axum 0.8 and poem 3): no tracing (baseline), tracewire sampled (every span recorded
//! and handed to a discarding fastrace reporter), tracewire unsampled, fastrace-axum /
//! fastrace-poem (sampled, same reporter), tower-http `TraceLayer` + tracing-opentelemetry
//! (OpenTelemetry SDK, batch processor, discarding exporter), and
//! opentelemetry-instrumentation-tower (same SDK). The request carries a W3C `traceparent`
//! so every stack continues a trace (the common case behind a gateway) and a few ordinary
//! headers. The response body is read to the end, so spans that end with the body are
//! measured whole.
//!
//! `HTTP_BENCH_PROFILE=<stack>:<n>` runs one stack `n` times without criterion, for
//! `valgrind --tool=callgrind` instruction counts (see `profile` and BENCHMARKS.md).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;
use common::{ThreadCpu, median_ns};

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body as AxumBody;
use axum::routing::get;
use criterion::Criterion;
use fastrace::collector::{Config, Reporter, SpanRecord};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tracewire_core::{Propagators, Sampler, Tracer};

const AXUM: [&str; 8] = [
    "baseline (no tracing)",
    "empty layer (the floor of any Router::layer)",
    "fastrace root span alone (the engine's floor)",
    "tracewire sampled",
    "tracewire unsampled",
    "fastrace-axum",
    "tower-http TraceLayer + tracing-opentelemetry",
    "opentelemetry-instrumentation-tower",
];
const POEM: [&str; 5] = [
    "baseline (no tracing)",
    "empty middleware (the floor of any with/around)",
    "tracewire sampled",
    "tracewire unsampled",
    "fastrace-poem",
];

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Discard;

impl Reporter for Discard {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        black_box(spans);
    }
}

fn request() -> http::Request<AxumBody> {
    http::Request::get("/users/7?page=2")
        .header("host", "api.example:8080")
        .header("user-agent", "bench/1.0")
        .header("accept", "*/*")
        .header("traceparent", TRACEPARENT)
        .body(AxumBody::empty())
        .unwrap()
}

fn tracer(sampled: bool) -> Tracer {
    Tracer::new()
        .with_propagators(Propagators::default())
        .with_sampler(if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        })
}

fn routes() -> Router {
    Router::new().route("/users/{id}", get(|| async { "hello" }))
}

/// The router as `axum::serve` runs it: `into_make_service` calls `with_state`, which turns
/// every handler into a route once; a `Router` called directly (`oneshot`) would do that, and
/// apply its layers, on every request.
fn served(router: Router) -> Router {
    router.with_state(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn call_axum(app: &Router) {
    let res = app.clone().oneshot(request()).await.unwrap();
    black_box(res.into_body().collect().await.unwrap());
}

/// An OpenTelemetry SDK tracer provider whose batch processor drops every span.
mod otel {
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};

    #[derive(Debug)]
    struct Drop;

    impl SpanExporter for Drop {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            std::hint::black_box(batch);
            Ok(())
        }
    }

    pub(crate) fn provider() -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(Drop).build())
            .build()
    }
}

/// A fastrace root span around the inner service and nothing else (see `axum_stacks`).
#[derive(Clone)]
struct EngineFloor<S>(S);

impl<S, B> tower::Service<http::Request<B>> for EngineFloor<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = fastrace::future::InSpan<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use fastrace::future::FutureExt as _;
        let span = fastrace::Span::root(
            "GET /users/{id}",
            fastrace::collector::SpanContext::random(),
        );
        self.0.call(req).in_span(span)
    }
}

fn axum_stacks(c: &mut Criterion<ThreadCpu>) {
    let rt = runtime();
    let mut g = c.benchmark_group("http/axum");

    let plain = served(routes());
    g.bench_function("baseline (no tracing)", |b| {
        b.iter(|| rt.block_on(call_axum(&plain)))
    });

    // A layer that adds nothing (`layer_fn(|s| s)`): what axum's own per-layer plumbing costs,
    // the floor under any middleware added with `Router::layer`.
    let empty = served(routes().layer(tower::layer::layer_fn(|s| s)));
    g.bench_function("empty layer (the floor of any Router::layer)", |b| {
        b.iter(|| rt.block_on(call_axum(&empty)))
    });

    // The least any fastrace-based layer does for a sampled request: one root span, the
    // local parent set on every poll, the span submitted when the future completes. No
    // extraction, no attributes.
    let floor = served(routes().layer(tower::layer::layer_fn(EngineFloor)));
    g.bench_function("fastrace root span alone (the engine's floor)", |b| {
        b.iter(|| rt.block_on(call_axum(&floor)))
    });

    let sampled = served(
        routes().layer(
            tracewire_tower::TraceLayer::with_config(
                tracewire_tower::ServerConfig::new().tracer(tracer(true)),
            )
            .for_axum(),
        ),
    );
    g.bench_function("tracewire sampled", |b| {
        b.iter(|| rt.block_on(call_axum(&sampled)))
    });

    let unsampled = served(
        routes().layer(
            tracewire_tower::TraceLayer::with_config(
                tracewire_tower::ServerConfig::new().tracer(tracer(false)),
            )
            .for_axum(),
        ),
    );
    g.bench_function("tracewire unsampled", |b| {
        b.iter(|| rt.block_on(call_axum(&unsampled)))
    });

    let fastrace = served(routes().layer(fastrace_axum::FastraceLayer::default()));
    g.bench_function("fastrace-axum", |b| {
        b.iter(|| rt.block_on(call_axum(&fastrace)))
    });

    // tower-http TraceLayer -> tracing -> tracing-opentelemetry -> OpenTelemetry SDK.
    {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider = otel::provider();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let app = served(routes().layer(tower_http::trace::TraceLayer::new_for_http()));
        tracing::subscriber::with_default(subscriber, || {
            g.bench_function("tower-http TraceLayer + tracing-opentelemetry", |b| {
                b.iter(|| rt.block_on(call_axum(&app)))
            });
        });
        let _ = provider.shutdown();
    }

    // opentelemetry-instrumentation-tower (its own OpenTelemetry-native layer).
    {
        let provider = otel::provider();
        opentelemetry::global::set_tracer_provider(provider.clone());
        let app = served(
            routes().layer(
                opentelemetry_instrumentation_tower::http::server::LayerBuilder::builder()
                    .with_metrics(false)
                    .build()
                    .unwrap(),
            ),
        );
        g.bench_function("opentelemetry-instrumentation-tower", |b| {
            b.iter(|| rt.block_on(call_axum(&app)))
        });
        let _ = provider.shutdown();
    }
    g.finish();
}

fn poem_stacks(c: &mut Criterion<ThreadCpu>) {
    use poem::{Endpoint, EndpointExt, IntoEndpoint, Route, get, handler};

    #[handler]
    fn hello() -> &'static str {
        "hello"
    }

    fn poem_request() -> poem::Request {
        poem::Request::builder()
            .uri(http::Uri::from_static("/users/7?page=2"))
            .header("host", "api.example:8080")
            .header("user-agent", "bench/1.0")
            .header("accept", "*/*")
            .header("traceparent", TRACEPARENT)
            .finish()
    }

    async fn call<E: Endpoint>(ep: &E) {
        let mut res = ep.get_response(poem_request()).await;
        black_box(res.take_body().into_bytes().await.unwrap());
    }

    let rt = runtime();
    let mut g = c.benchmark_group("http/poem");

    let plain = Route::new().at("/users/:id", get(hello)).into_endpoint();
    g.bench_function("baseline (no tracing)", |b| {
        b.iter(|| rt.block_on(call(&plain)))
    });
    // A middleware that adds nothing but the wrapping itself.
    let empty = Route::new().at(
        "/users/:id",
        get(hello).around(|ep, req| async move { ep.call(req).await }),
    );
    g.bench_function("empty middleware (the floor of any with/around)", |b| {
        b.iter(|| rt.block_on(call(&empty)))
    });
    let sampled = Route::new().at(
        "/users/:id",
        get(hello).with(tracewire_poem::Tracing::with_config(
            tracewire_poem::Config::new().tracer(tracer(true)),
        )),
    );
    g.bench_function("tracewire sampled", |b| {
        b.iter(|| rt.block_on(call(&sampled)))
    });
    let unsampled = Route::new().at(
        "/users/:id",
        get(hello).with(tracewire_poem::Tracing::with_config(
            tracewire_poem::Config::new().tracer(tracer(false)),
        )),
    );
    g.bench_function("tracewire unsampled", |b| {
        b.iter(|| rt.block_on(call(&unsampled)))
    });
    let fastrace = Route::new().at(
        "/users/:id",
        get(hello).with(fastrace_poem::FastraceMiddleware::default()),
    );
    g.bench_function("fastrace-poem", |b| b.iter(|| rt.block_on(call(&fastrace))));
    g.finish();
}

/// The HTTP layer alone, without a framework: core's root rule (`Tracer::start_root`, which
/// extracts the headers) against `tracewire-http`'s `ServerConfig::start` + response + end
/// (root rule + method, name, attributes, status), sampled and unsampled.
fn layer_parts(c: &mut Criterion<ThreadCpu>) {
    use tracewire_core::SpanKind;
    use tracewire_http::{HeaderExtractor, RequestHead, ServerConfig};

    let req = request();
    let (parts, _) = req.into_parts();
    let head = || RequestHead {
        method: &parts.method,
        uri: &parts.uri,
        version: parts.version,
        headers: &parts.headers,
        peer: Some(([127, 0, 0, 1], 50000).into()),
    };
    let mut g = c.benchmark_group("http/layer");
    for sampled in [true, false] {
        let label = if sampled { "sampled" } else { "unsampled" };
        let t = tracer(sampled);
        g.bench_function(format!("core start_root ({label})"), |b| {
            b.iter(|| {
                black_box(t.start_root(
                    "GET /users/{id}",
                    SpanKind::Server,
                    &HeaderExtractor(&parts.headers),
                ))
            })
        });
        let config = ServerConfig::new().tracer(t.clone());
        g.bench_function(format!("ServerConfig start+response+end ({label})"), |b| {
            b.iter(|| {
                let mut span = config.start(&head(), Some("/users/{id}")).unwrap();
                let mut headers = http::HeaderMap::new();
                span.record_response(http::StatusCode::OK, &mut headers);
                span.end();
            })
        });
    }
    g.finish();
}

fn setup() {
    fastrace::set_reporter(
        Discard,
        Config::default().report_interval(Duration::from_millis(10)),
    );
}

/// A markdown table per framework: median, added ns over the baseline, and that overhead as
/// a multiple of tracewire sampled's.
fn print_summary() {
    let g = "http/layer";
    eprintln!("\n{g}\n| part | sampled ns (cpu) | unsampled ns (cpu) |\n|---|---|---|");
    for part in ["core start_root", "ServerConfig start+response+end"] {
        let v = |l: &str| {
            median_ns(g, &format!("{part} ({l})")).map_or("n/a".to_owned(), |v| format!("{v:.0}"))
        };
        eprintln!("| {part} | {} | {} |", v("sampled"), v("unsampled"));
    }
    for (group, names) in [
        ("http/axum", AXUM.as_slice()),
        ("http/poem", POEM.as_slice()),
    ] {
        let Some(base) = median_ns(group, names[0]) else {
            continue;
        };
        let ours = median_ns(group, "tracewire sampled").map(|v| v - base);
        eprintln!(
            "\n{group}\n| stack | median ns (cpu) | added ns | overhead vs tracewire sampled |"
        );
        eprintln!("|---|---|---|---|");
        for name in names {
            let Some(v) = median_ns(group, name) else {
                continue;
            };
            let added = v - base;
            let ratio = match ours {
                Some(o) if o > 0.0 && *name != names[0] => format!("{:.2}x", added / o),
                _ => "-".to_owned(),
            };
            eprintln!("| {name} | {v:.0} | {added:+.0} | {ratio} |");
        }
    }
}

/// `HTTP_BENCH_PROFILE=<stack>[:n]` (`axum-` or `poem-` + `baseline`, `sampled`, `unsampled`,
/// `fastrace`; `axum-otel-instrumentation-tower`; `axum-engine-floor`, a bare fastrace root
/// span around the route; `axum-noop-layer`, the floor any
/// `Router::layer` costs, with a layer that does nothing; `axum-sampled-generic` and
/// `axum-unsampled-generic`, `TraceLayer::new()` whose `TracedBody` axum boxes again): run
/// that stack `n` times (default 10000) and exit, without criterion — a fixed workload for
/// `valgrind --tool=callgrind` (instruction counts do not depend on the machine's load):
///
/// ```text
/// HTTP_BENCH_PROFILE=axum-unsampled:2000 valgrind --tool=callgrind target/release/deps/http-<hash>
/// ```
fn profile(spec: &str) {
    let (stack, n) = spec.split_once(':').unwrap_or((spec, "10000"));
    let n: usize = n.parse().unwrap();
    let rt = runtime();
    let axum = |sampled: Option<bool>| match sampled {
        None => routes(),
        Some(s) => routes().layer(
            tracewire_tower::TraceLayer::with_config(
                tracewire_tower::ServerConfig::new().tracer(tracer(s)),
            )
            .for_axum(),
        ),
    };
    let generic = |s: bool| {
        routes().layer(tracewire_tower::TraceLayer::with_config(
            tracewire_tower::ServerConfig::new().tracer(tracer(s)),
        ))
    };
    let run_axum = |app: Router| {
        let app = served(app);
        for _ in 0..n {
            rt.block_on(call_axum(&app));
        }
    };
    let run_poem = |sampled: Option<Option<bool>>| {
        use poem::{Endpoint, EndpointExt, Route, get, handler};
        #[handler]
        fn hello() -> &'static str {
            "hello"
        }
        let ep: poem::endpoint::BoxEndpoint<'static> = match sampled {
            None => Route::new().at("/users/:id", get(hello)).boxed(),
            Some(None) => Route::new()
                .at(
                    "/users/:id",
                    get(hello).with(fastrace_poem::FastraceMiddleware::default()),
                )
                .boxed(),
            Some(Some(s)) => Route::new()
                .at(
                    "/users/:id",
                    get(hello).with(tracewire_poem::Tracing::with_config(
                        tracewire_poem::Config::new().tracer(tracer(s)),
                    )),
                )
                .boxed(),
        };
        for _ in 0..n {
            rt.block_on(async {
                let req = poem::Request::builder()
                    .uri(http::Uri::from_static("/users/7?page=2"))
                    .header("host", "api.example:8080")
                    .header("user-agent", "bench/1.0")
                    .header("accept", "*/*")
                    .header("traceparent", TRACEPARENT)
                    .finish();
                let mut res = ep.get_response(req).await;
                black_box(res.take_body().into_bytes().await.unwrap());
            });
        }
    };
    match stack {
        "axum-baseline" => run_axum(axum(None)),
        "axum-sampled" => run_axum(axum(Some(true))),
        "axum-unsampled" => run_axum(axum(Some(false))),
        "axum-fastrace" => run_axum(routes().layer(fastrace_axum::FastraceLayer::default())),
        "axum-noop-layer" => run_axum(routes().layer(tower::layer::layer_fn(|s| s))),
        "axum-engine-floor" => run_axum(routes().layer(tower::layer::layer_fn(EngineFloor))),
        "axum-sampled-generic" => run_axum(generic(true)),
        "axum-unsampled-generic" => run_axum(generic(false)),
        "axum-otel-instrumentation-tower" => {
            let provider = otel::provider();
            opentelemetry::global::set_tracer_provider(provider.clone());
            run_axum(
                routes().layer(
                    opentelemetry_instrumentation_tower::http::server::LayerBuilder::builder()
                        .with_metrics(false)
                        .build()
                        .unwrap(),
                ),
            );
            let _ = provider.shutdown();
        }
        "poem-baseline" => run_poem(None),
        "poem-sampled" => run_poem(Some(Some(true))),
        "poem-unsampled" => run_poem(Some(Some(false))),
        "poem-fastrace" => run_poem(Some(None)),
        other => panic!("unknown stack {other}"),
    }
    fastrace::flush();
}

fn main() {
    setup();
    if let Ok(spec) = std::env::var("HTTP_BENCH_PROFILE") {
        profile(&spec);
        return;
    }
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    layer_parts(&mut c);
    axum_stacks(&mut c);
    poem_stacks(&mut c);
    fastrace::flush();
    c.final_summary();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
        print_summary();
    }
}
