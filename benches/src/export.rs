//! Where tracewire's spans go in a benchmark: through the real export pipeline into an
//! exporter that does all but the network, or dropped at fastrace's collector.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, EncodedRequest, ExportError, Input, Pipeline, SpanExporter};

/// Takes each OTLP request the pipeline sends encoded as protobuf (what the OTLP/HTTP
/// exporter puts on the wire; the pipeline encodes it straight from the spans), counts its
/// spans into the counter, and drops the bytes. Given the request's structs instead (called
/// directly), it encodes them first.
#[derive(Debug)]
pub struct CountingSink(pub Arc<AtomicU64>);

impl SpanExporter for CountingSink {
    fn name(&self) -> &str {
        "counting-sink"
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
        black_box(tracewire_export::encode::encode_request(batch));
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }

    fn input(&self) -> Input {
        Input::Protobuf
    }

    fn export_protobuf<'a>(
        &'a self,
        batch: &'a EncodedRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        black_box(batch.bytes.as_ref());
        self.0.fetch_add(batch.spans as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// A fastrace reporter that drops every span it is handed (the export pipeline left out).
#[derive(Debug)]
pub struct Discard;

impl fastrace::collector::Reporter for Discard {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        drop(black_box(spans));
    }
}

/// tracewire's export pipeline with the default configuration (bounded queue of 2048, OTLP
/// mapping, batching) into a [`CountingSink`] counting into `exported`.
pub fn counting_pipeline(exported: Arc<AtomicU64>) -> std::io::Result<Pipeline> {
    Pipeline::builder().exporter(CountingSink(exported)).build()
}

/// Makes `pipeline` fastrace's reporter (default collector configuration).
pub fn report_to(pipeline: &Pipeline) {
    fastrace::set_reporter(pipeline.reporter(), fastrace::collector::Config::default());
}
