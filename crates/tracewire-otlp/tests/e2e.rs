//! The real path: tracewire's root rule and fastrace's global collector feed the pipeline,
//! which exports OTLP/HTTP to a fake collector. One test: the fastrace reporter is global.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use fastrace::collector::Config;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use support::Collector;
use tracewire_core::{Pairs, Sampler, SpanKind as Kind, Tracer, semconv};
use tracewire_export::Pipeline;
use tracewire_otlp::{OtlpConfig, OtlpExporter, Protocol};

#[test]
fn tracer_spans_reach_the_collector_with_their_context() {
    let collector = Collector::http();
    let p = Pipeline::builder()
        .exporter(
            OtlpExporter::new(
                &OtlpConfig::new(Protocol::HttpProtobuf).endpoint(collector.http_url()),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    fastrace::set_reporter(
        p.reporter(),
        Config::default().report_interval(Duration::from_millis(10)),
    );

    let tracer = Tracer::new().with_sampler(Sampler::AlwaysOn);
    let inbound = Pairs::from_pairs([
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "rojo=00f067aa0ba902b7"),
    ]);
    let root = tracer.start_root("GET /items", Kind::Server, &inbound);
    let root_id = root.context.span_id;
    {
        let _g = root.enter();
        root.span
            .add_property(|| (semconv::HTTP_RESPONSE_STATUS_CODE, "404"));
        let child = tracer.start_child("GET upstream", Kind::Client);
        child
            .span
            .add_event(tracewire_export::event::exception("io::Error", &"refused"));
        drop(child);
    }
    drop(root);
    assert!(p.flush(Duration::from_secs(10)));

    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let server = spans.iter().find(|s| s.name == "GET /items").unwrap();
    let client = spans.iter().find(|s| s.name == "GET upstream").unwrap();
    assert_eq!(
        server.trace_id,
        0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes()
    );
    assert_eq!(server.parent_span_id, 0x00f067aa0ba902b7u64.to_be_bytes());
    assert_eq!(server.span_id, root_id.0.to_be_bytes());
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.flags, 0x301);
    assert_eq!(server.trace_state, "rojo=00f067aa0ba902b7");
    let status = server
        .attributes
        .iter()
        .find(|kv| kv.key == semconv::HTTP_RESPONSE_STATUS_CODE)
        .unwrap();
    assert_eq!(
        status.value.as_ref().unwrap().value,
        Some(Value::IntValue(404))
    );
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(client.flags, 0x101);
    assert_eq!(client.events[0].name, "exception");
    assert!(p.shutdown(Duration::from_secs(5)));
}
