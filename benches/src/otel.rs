//! The OpenTelemetry SDK side of every hand-written peer (`benches/common/<broker>_otel.rs`):
//! what users set up today before they write carriers for their client — an SDK 0.33 tracer
//! provider with a `ParentBased(AlwaysOn / AlwaysOff)` sampler and a `BatchSpanProcessor`
//! (queue of 2048) into an exporter that does what `opentelemetry-otlp` does with a batch
//! before sending it (group by resource and scope, convert, prost-encode), counts the spans
//! and drops the bytes. Only the HTTP request is missing, as on tracewire's side
//! ([`crate::export::CountingSink`]).

use std::fmt::Display;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::Context;
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};

/// What `opentelemetry-otlp` does with a batch before sending it (group by resource and scope,
/// convert, prost-encode); counts the spans, drops the bytes. The exporter of [`provider`], and
/// of any SDK-based peer (e.g. `fastrace-opentelemetry`'s reporter) that should encode as
/// tracewire's [`CountingSink`](crate::export::CountingSink) does.
#[derive(Debug)]
pub struct Counting {
    exported: Arc<AtomicU64>,
    resource: ResourceAttributesWithSchema,
}

impl Counting {
    /// Counts the spans it exports into `exported`.
    pub fn new(exported: Arc<AtomicU64>) -> Self {
        Counting {
            exported,
            resource: (&opentelemetry_sdk::Resource::builder_empty().build()).into(),
        }
    }
}

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        use prost::Message as _;
        let n = batch.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        black_box(request.encode_to_vec());
        self.exported.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.resource = resource.into();
    }
}

/// The peer's tracer provider: `ParentBased(AlwaysOn)` when `sampled`, else
/// `ParentBased(AlwaysOff)`, its batch processor exporting into a counter of `exported`
/// spans. A peer takes its tracer from it (`provider.tracer("<system>")`); whoever owns it
/// flushes and shuts it down.
pub fn provider(sampled: bool, exported: Arc<AtomicU64>) -> SdkTracerProvider {
    let root = if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    };
    SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(root)))
        .with_span_processor(BatchSpanProcessor::builder(Counting::new(exported)).build())
        .build()
}

/// Ends the span of `cx`.
pub fn end(cx: &Context) {
    cx.span().end();
}

/// Ends the span of `cx`, with an error status if the operation failed.
pub fn end_with<T, E: Display>(cx: &Context, result: &Result<T, E>) {
    let span = cx.span();
    if let Err(e) = result {
        span.set_status(Status::error(e.to_string()));
    }
    span.end();
}
