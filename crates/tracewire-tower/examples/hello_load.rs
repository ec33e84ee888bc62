//! A hello-world axum server for the end-to-end load run in BENCHMARKS.md ("HTTP servers"):
//! untraced, or traced with 100% sampling and every span exported through tracewire-export's
//! pipeline (OTLP mapping, batching) into an in-process sink that counts them.
//!
//! ```text
//! cargo run --release -p tracewire-tower --example hello_load -- plain  127.0.0.1:8081
//! cargo run --release -p tracewire-tower --example hello_load -- traced 127.0.0.1:8081
//! cargo run --release -p tracewire-tower --example hello_load -- traced-discard 127.0.0.1:8081
//! wrk -t1 -c16 -d10s http://127.0.0.1:8081/hello/world
//! ```
//!
//! On Ctrl-C (or SIGTERM via the load script) it prints how many spans were exported.
#![allow(clippy::print_stdout)]

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

/// Drops every span (mode `traced-discard`).
struct Discard;

impl fastrace::collector::Reporter for Discard {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        drop(spans);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "traced".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let exported = Arc::new(AtomicU64::new(0));

    let app = Router::new().route("/hello/{name}", get(|| async { "Hello, world!" }));
    let layer = TraceLayer::new().tracer(Tracer::new().with_sampler(Sampler::AlwaysOn));
    let (app, pipeline) = if mode == "traced-discard" {
        // Spans recorded and handed to fastrace's collector, then dropped: the cost of tracing
        // without the export pipeline.
        fastrace::set_reporter(Discard, fastrace::collector::Config::default());
        (app.layer(layer), None)
    } else if mode == "traced" {
        let pipeline = Pipeline::builder()
            .exporter(Sink(exported.clone()))
            .build()?;
        fastrace::set_reporter(pipeline.reporter(), fastrace::collector::Config::default());
        (app.layer(layer), Some(pipeline))
    } else {
        (app, None)
    };

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("{mode} server on http://{addr}/hello/world");
    let served = axum::serve(listener, app)
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
        .await;
    if let Some(p) = pipeline {
        p.shutdown(Duration::from_secs(5));
        println!("spans exported: {}", exported.load(Ordering::Relaxed));
    }
    served
}
