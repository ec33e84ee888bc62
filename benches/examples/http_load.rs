//! A hello-world axum server for the end-to-end load runs in BENCHMARKS.md ("HTTP servers"),
//! one mode per tracing stack, so a load generator on loopback can compare their throughput:
//!
//! | mode | what traces the request |
//! |---|---|
//! | `plain` | nothing |
//! | `tracewire` | `tracewire_tower::TraceLayer::axum()`, 100 % sampled, every span exported through `tracewire-export`'s pipeline (OTLP mapping, batching) into an in-process sink that counts them |
//! | `tracewire-discard` | the same layer, spans handed to fastrace's collector and dropped by its reporter |
//! | `tracewire-unsampled` | the same layer, `Sampler::AlwaysOff` (context still propagated) |
//! | `fastrace-axum` | `fastrace_axum::FastraceLayer` (the engine's own axum layer), spans dropped by the same reporter |
//! | `otel-instrumentation-tower` | `opentelemetry-instrumentation-tower`'s layer, OpenTelemetry SDK batch processor, spans dropped |
//!
//! ```text
//! cargo build --release -p tracewire-benches --example http_load
//! bash benches/load.sh            # every mode, interleaved rounds, with wrk
//! ```
//!
//! The server runs on a tokio runtime with `TOKIO_WORKERS` worker threads (default 1) and stops
//! on SIGTERM or Ctrl-C, printing how many spans it exported (mode `tracewire`).
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, Pipeline, SpanExporter};
use tracewire_tower::TraceLayer;

/// Counts exported spans and drops them.
struct Sink(Arc<AtomicU64>);

impl SpanExporter for Sink {
    fn name(&self) -> &str {
        "sink"
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        let n: usize = batch
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// Drops every span fastrace collects.
struct Discard;

impl fastrace::collector::Reporter for Discard {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        drop(spans);
    }
}

/// An OpenTelemetry SDK exporter that drops every batch.
#[derive(Debug)]
struct OtelDrop;

impl opentelemetry_sdk::trace::SpanExporter for OtelDrop {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        drop(batch);
        Ok(())
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

    let app = Router::new().route("/hello/{name}", get(|| async { "Hello, world!" }));
    let layer = |sampler| TraceLayer::axum().tracer(Tracer::new().with_sampler(sampler));
    let mut pipeline = None;
    let mut otel = None;
    let app = match mode.as_str() {
        "plain" => app,
        "tracewire" => {
            let p = Pipeline::builder()
                .exporter(Sink(exported.clone()))
                .build()?;
            fastrace::set_reporter(p.reporter(), fastrace::collector::Config::default());
            pipeline = Some(p);
            app.layer(layer(Sampler::AlwaysOn))
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
            fastrace::set_reporter(Discard, fastrace::collector::Config::default());
            app.layer(fastrace_axum::FastraceLayer::default())
        }
        "otel-instrumentation-tower" => {
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_span_processor(
                    opentelemetry_sdk::trace::BatchSpanProcessor::builder(OtelDrop).build(),
                )
                .build();
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

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let served = rt.block_on(async {
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
    if let Some(p) = pipeline {
        p.shutdown(Duration::from_secs(5));
        println!("spans exported: {}", exported.load(Ordering::Relaxed));
    }
    if let Some(p) = otel {
        let _ = p.shutdown();
    }
    fastrace::flush();
    served
}
