//! A hello-world axum server for the end-to-end load runs in BENCHMARKS.md ("HTTP servers"),
//! one mode per tracing stack, so a load generator on loopback can compare their throughput:
//!
//! | mode | what traces the request | where its spans go |
//! |---|---|---|
//! | `plain` | nothing | |
//! | `tracewire` | `tracewire_tower::TraceLayer::axum()`, 100 % sampled | `tracewire-export`'s pipeline (OTLP mapping, batching) into a sink that encodes each request as OTLP protobuf and counts the spans |
//! | `tracewire-ratio10` | the same layer, `parentbased(traceidratio 0.1)`: 10 % sampled, the rest propagated | the same pipeline and sink |
//! | `tracewire-discard` | the same layer, 100 % sampled | dropped by fastrace's reporter |
//! | `tracewire-unsampled` | the same layer, `Sampler::AlwaysOff` (context still propagated) | none |
//! | `fastrace-axum` | `fastrace_axum::FastraceLayer` (the engine's own axum layer) | `fastrace-opentelemetry`'s reporter into an SDK exporter that does what `opentelemetry-otlp` does (group, convert, prost-encode), counting the spans |
//! | `otel-instrumentation-tower` | `opentelemetry-instrumentation-tower`'s layer (metrics off) | the OpenTelemetry SDK's batch processor into that same encoding exporter |
//! | `empty-layer` | a layer that adds nothing (`layer_fn(\|s\| s)`): the floor of any `Router::layer` | |
//! | `fastrace-floor` | a bare fastrace root span with two static properties around the route (`in_span`): the least a fastrace-based layer does for a sampled request | tracewire's pipeline and sink, as `tracewire` |
//!
//! ```text
//! cargo build --release -p tracewire-benches --example http_load
//! bash benches/load.sh            # every mode, interleaved rounds, with wrk
//! bash benches/callgrind_load.sh  # instructions per request, per thread, per mode
//! ```
//!
//! Two untraced control routes serve the measurement scripts: `GET /_count` answers how many
//! `/hello/{name}` requests were served, `GET /_flush` hands every span produced so far to its
//! sink (fastrace's collector, the export pipeline, the SDK's batch processor) and answers when
//! it is done.
//!
//! The server runs on a tokio runtime with `TOKIO_WORKERS` worker threads (default 1) and stops
//! on SIGTERM or Ctrl-C, printing how many spans its sink counted (`spans exported: n`).
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tracewire_benches::export::{Discard, counting_pipeline, report_to};
use tracewire_benches::otel;
use tracewire_core::{Sampler, Tracer};
use tracewire_tower::TraceLayer;

/// The `fastrace-floor` mode's service: a bare fastrace root span around the inner future.
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
            "GET /hello/{name}",
            [("span.kind", "server"), ("http.route", "/hello/{name}")],
        );
        self.0.call(req).in_span(span)
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "tracewire".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let workers = std::env::var("TOKIO_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let exported = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));

    let count = served.clone();
    let app = Router::new().route(
        "/hello/{name}",
        get(move || {
            count.fetch_add(1, Ordering::Relaxed);
            async { "Hello, world!" }
        }),
    );
    let layer = |sampler| {
        TraceLayer::with_config(
            tracewire_tower::ServerConfig::new().tracer(Tracer::new().with_sampler(sampler)),
        )
        .for_axum()
    };
    let mut pipeline = None;
    let mut otel = None;
    let app = match mode.as_str() {
        "plain" => app,
        "tracewire" | "tracewire-ratio10" => {
            let p = counting_pipeline(exported.clone())?;
            report_to(&p);
            pipeline = Some(p);
            app.layer(layer(if mode == "tracewire" {
                Sampler::AlwaysOn
            } else {
                Sampler::parent_based(Sampler::trace_id_ratio(0.1))
            }))
        }
        "tracewire-discard" => {
            fastrace::set_reporter(Discard, fastrace::collector::Config::default());
            app.layer(layer(Sampler::AlwaysOn))
        }
        "tracewire-unsampled" => {
            fastrace::set_reporter(Discard, fastrace::collector::Config::default());
            app.layer(layer(Sampler::AlwaysOff))
        }
        "fastrace-axum" => {
            let resource = opentelemetry_sdk::Resource::builder_empty().build();
            let reporter = fastrace_opentelemetry::OpenTelemetryReporter::new(
                otel::Counting::new(exported.clone()),
                std::borrow::Cow::Owned(resource),
                opentelemetry::InstrumentationScope::builder("fastrace-axum").build(),
            );
            fastrace::set_reporter(reporter, fastrace::collector::Config::default());
            app.layer(fastrace_axum::FastraceLayer::default())
        }
        "empty-layer" => app.layer(tower_layer::layer_fn(|s| s)),
        "fastrace-floor" => {
            let p = counting_pipeline(exported.clone())?;
            report_to(&p);
            pipeline = Some(p);
            app.layer(tower_layer::layer_fn(Floor))
        }
        "otel-instrumentation-tower" => {
            let provider = otel::provider(true, exported.clone());
            opentelemetry::global::set_tracer_provider(provider.clone());
            otel = Some(provider);
            app.layer(
                opentelemetry_instrumentation_tower::http::server::LayerBuilder::builder()
                    .with_metrics(false)
                    .build()
                    .map_err(std::io::Error::other)?,
            )
        }
        other => {
            return Err(std::io::Error::other(format!("unknown mode {other}")));
        }
    };
    // The control routes, merged after `layer` so they are not traced.
    let flush = {
        let (pipeline, otel) = (pipeline.clone(), otel.clone());
        move || {
            let (pipeline, otel) = (pipeline.clone(), otel.clone());
            async move {
                let flushed = tokio::task::spawn_blocking(move || {
                    fastrace::flush();
                    if let Some(p) = &pipeline {
                        p.flush(Duration::from_secs(10));
                    }
                    if let Some(p) = &otel {
                        let _ = p.force_flush();
                    }
                })
                .await;
                if flushed.is_ok() {
                    "flushed"
                } else {
                    "flush failed"
                }
            }
        }
    };
    let count = served.clone();
    let app = app
        .route(
            "/_count",
            get(move || {
                let n = count.load(Ordering::Relaxed);
                async move { n.to_string() }
            }),
        )
        .route("/_flush", get(flush));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let served_result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("{mode} server on http://{addr}/hello/world ({workers} worker thread(s))");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            })
            .await
    });
    fastrace::flush();
    if let Some(p) = pipeline {
        p.shutdown(Duration::from_secs(5));
    }
    if let Some(p) = otel {
        let _ = p.shutdown();
    }
    println!("spans exported: {}", exported.load(Ordering::Relaxed));
    served_result
}
