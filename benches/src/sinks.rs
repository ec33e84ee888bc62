//! Where a criterion bench's spans go, for both stacks side by side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracewire_export::Pipeline;

use crate::export::{Discard, counting_pipeline, report_to};
use crate::otel;

/// What fastrace's collector hands tracewire's spans to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collect {
    /// tracewire's export pipeline into a [`CountingSink`](crate::export::CountingSink).
    Pipeline,
    /// A reporter that drops them ([`Discard`]): no export pipeline.
    Discard,
}

/// The span sinks of a criterion bench: fastrace's reporter (set by [`Sinks::new`]) and the
/// OpenTelemetry peer's two tracer providers, sampled and unsampled, each counting what it
/// exports.
#[derive(Debug)]
pub struct Sinks {
    pipeline: Option<Pipeline>,
    tw_exported: Arc<AtomicU64>,
    otel: [SdkTracerProvider; 2],
    otel_exported: Arc<AtomicU64>,
}

impl Sinks {
    /// Sets fastrace's reporter as `collect` says and makes the peer's providers.
    ///
    /// # Panics
    ///
    /// If the export pipeline's worker thread does not start.
    pub fn new(collect: Collect) -> Self {
        let tw_exported = Arc::new(AtomicU64::new(0));
        let pipeline = match collect {
            Collect::Pipeline => {
                let pipeline = counting_pipeline(tw_exported.clone())
                    .expect("the export pipeline's worker thread starts");
                report_to(&pipeline);
                Some(pipeline)
            }
            Collect::Discard => {
                fastrace::set_reporter(Discard, fastrace::collector::Config::default());
                None
            }
        };
        let otel_exported = Arc::new(AtomicU64::new(0));
        Sinks {
            pipeline,
            tw_exported,
            otel: [true, false].map(|sampled| otel::provider(sampled, otel_exported.clone())),
            otel_exported,
        }
    }

    /// The peer's tracer provider for sampled (`ParentBased(AlwaysOn)`) or unsampled rows.
    pub fn otel(&self, sampled: bool) -> &SdkTracerProvider {
        &self.otel[usize::from(!sampled)]
    }

    /// Everything the rows produced, collected and exported (fastrace's queues, tracewire's
    /// pipeline, the SDK's batch processors): called untimed, between timed runs.
    pub fn flush(&self) {
        fastrace::flush();
        if let Some(p) = &self.pipeline {
            p.flush(Duration::from_secs(10));
        }
        for p in &self.otel {
            let _ = p.force_flush();
        }
    }

    /// Prints (stderr) how many spans each side exported, and what tracewire's queue dropped.
    pub fn report(&self) {
        let dropped = self.pipeline.as_ref().map_or(0, |p| p.counters().dropped);
        eprintln!(
            "spans: tracewire pipeline exported {} (dropped at its queue: {dropped}), OpenTelemetry batch processor exported {}",
            self.tw_exported.load(Ordering::Relaxed),
            self.otel_exported.load(Ordering::Relaxed),
        );
    }

    /// Shuts the peer's providers down (their batch threads end).
    pub fn shutdown(&self) {
        for p in &self.otel {
            let _ = p.shutdown();
        }
    }
}
