//! The control side of a long-running load process — a server under load
//! (`examples/grpc_load.rs`) or a client making calls (`examples/http_client_load.rs`) — through
//! which the drivers (`benches/grpc_load.sh`, `benches/http_client_load.sh`, throughput and
//! callgrind alike) measure a window of its run, whatever it speaks:
//!
//! - [`Exporting`]: where the mode's spans go (tracewire's export pipeline, fastrace's own
//!   OpenTelemetry bridge or the OpenTelemetry SDK, each into an exporter that encodes OTLP
//!   protobuf and counts the spans), flushed on demand and counted at exit;
//! - [`router`]: two untraced routes, `GET /_count` (how many calls the process has done so far)
//!   and `GET /_flush` (every span made so far handed to its sink, answered when done) — served
//!   on a listener of their own ([`serve`]) or merged into the program's own router;
//! - [`terminated`]: SIGTERM or Ctrl-C, how the drivers stop the process.
//!
//! A window is then: `/_flush`, `/_count`, (zero the counters: callgrind), the load, `/_flush`,
//! `/_count` — every span of the window is mapped, encoded and exported inside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracewire_export::Pipeline;

use crate::export::{Discard, counting_pipeline, report_to};
use crate::otel;

/// Where a load process's spans go, and how to flush and count them. Cheap to clone (the
/// pipeline and the provider are handles).
#[derive(Clone, Debug, Default)]
pub struct Exporting {
    pipeline: Option<Pipeline>,
    otel: Option<SdkTracerProvider>,
    exported: Arc<AtomicU64>,
}

impl Exporting {
    /// Nothing exported (fastrace's reporter left unset: no span is collected).
    pub fn none() -> Self {
        Exporting::default()
    }

    /// tracewire's export pipeline as fastrace's reporter (default configuration: bounded
    /// queue of 2048, OTLP mapping, batching) into a [`CountingSink`](crate::export::CountingSink).
    pub fn tracewire() -> std::io::Result<Self> {
        let exported = Arc::new(AtomicU64::new(0));
        let pipeline = counting_pipeline(exported.clone())?;
        report_to(&pipeline);
        Ok(Exporting {
            pipeline: Some(pipeline),
            otel: None,
            exported,
        })
    }

    /// A fastrace reporter that drops every span ([`Discard`]).
    pub fn discard() -> Self {
        fastrace::set_reporter(Discard, fastrace::collector::Config::default());
        Exporting::default()
    }

    /// fastrace's own OpenTelemetry bridge (`fastrace-opentelemetry`'s reporter, instrumentation
    /// scope `scope`) into [`otel::Counting`]: what a fastrace-based peer (fastrace-axum,
    /// fastrace-tonic, fastrace-reqwest) exports through, encoding as `opentelemetry-otlp` does.
    pub fn fastrace_otel(scope: &'static str) -> Self {
        let exported = Arc::new(AtomicU64::new(0));
        let reporter = fastrace_opentelemetry::OpenTelemetryReporter::new(
            otel::Counting::new(exported.clone()),
            std::borrow::Cow::Owned(opentelemetry_sdk::Resource::builder_empty().build()),
            opentelemetry::InstrumentationScope::builder(scope).build(),
        );
        fastrace::set_reporter(reporter, fastrace::collector::Config::default());
        Exporting {
            pipeline: None,
            otel: None,
            exported,
        }
    }

    /// The OpenTelemetry SDK's tracer provider of the peers ([`otel::provider`]:
    /// `ParentBased(AlwaysOn)` when `sampled`, batch processor into [`otel::Counting`]); the
    /// peer takes its tracer from [`Exporting::provider`].
    pub fn otel(sampled: bool) -> Self {
        let exported = Arc::new(AtomicU64::new(0));
        Exporting {
            pipeline: None,
            otel: Some(otel::provider(sampled, exported.clone())),
            exported,
        }
    }

    /// [`Exporting::otel`] behind `tracing`, as the `tracing`-based OpenTelemetry peers
    /// (tonic-tracing-opentelemetry, reqwest-tracing) are set up: the global subscriber is a
    /// registry with a level filter (`info`, and `trace` for the `otel::tracing` target those
    /// instrumentations' spans use, as their docs say) and `tracing-opentelemetry`'s layer over
    /// the provider's tracer (scope `scope`); the global propagator is W3C trace context.
    pub fn tracing_otel(
        scope: &'static str,
    ) -> Result<Self, tracing::subscriber::SetGlobalDefaultError> {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let exporting = Exporting::otel(true);
        if let Some(provider) = &exporting.otel {
            let filter = tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::INFO)
                .with_target("otel::tracing", tracing::Level::TRACE);
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(filter)
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer(scope))),
            )?;
        }
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        Ok(exporting)
    }

    /// The SDK's tracer provider, in [`Exporting::otel`].
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.otel.as_ref()
    }

    /// Hands every span made so far to its sink (fastrace's collector, the pipeline, the SDK's
    /// batch processor) and returns when done. Blocks: call it off the runtime's threads.
    pub fn flush(&self) {
        fastrace::flush();
        if let Some(p) = &self.pipeline {
            p.flush(Duration::from_secs(10));
        }
        if let Some(p) = &self.otel {
            let _ = p.force_flush();
        }
    }

    /// Flushes, shuts the pipeline and the provider down and returns how many spans reached
    /// the sink.
    pub fn shutdown(&self) -> u64 {
        fastrace::flush();
        if let Some(p) = &self.pipeline {
            p.shutdown(Duration::from_secs(10));
        }
        if let Some(p) = &self.otel {
            let _ = p.shutdown();
        }
        self.exported.load(Ordering::Relaxed)
    }
}

/// Sets a global `tracing` subscriber that wants nothing, for the modes that use no `tracing`
/// subscriber of their own: the `tracing` spans and events of the libraries themselves (h2,
/// hyper, tonic, tower) are then disabled once per callsite, as a service's own log subscriber
/// disables their trace-level ones. With no subscriber at all, `tracing`'s `log` feature — on
/// in this build (fastrace-axum → axum's default `tower-log`), as in any application that
/// enables it — turns every such span into `log` checks: about 9 400 instructions per unary
/// call on a tonic server, 13 % of an untraced call, in every mode alike.
pub fn no_tracing_subscriber() -> Result<(), tracing::subscriber::SetGlobalDefaultError> {
    tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default())
}

/// The control routes: `GET /_count` answers `done`'s value, `GET /_flush` runs
/// [`Exporting::flush`] on a blocking thread and answers `flushed` when it is done. Merge them
/// into a traced router *after* its tracing layer, so they are not traced.
pub fn router(done: Arc<AtomicU64>, exporting: Exporting) -> Router {
    Router::new()
        .route(
            "/_count",
            get(move || {
                let n = done.load(Ordering::Relaxed);
                async move { n.to_string() }
            }),
        )
        .route(
            "/_flush",
            get(move || {
                let exporting = exporting.clone();
                async move {
                    match tokio::task::spawn_blocking(move || exporting.flush()).await {
                        Ok(()) => "flushed",
                        Err(_) => "flush failed",
                    }
                }
            }),
        )
}

/// Serves [`router`] on `listener` (HTTP/1) until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    done: Arc<AtomicU64>,
    exporting: Exporting,
) -> std::io::Result<()> {
    axum::serve(listener, router(done, exporting)).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn terminated() {
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
}
