//! `tracewire::builder().init()` end to end: configuration from variables, the global tracer
//! used by the root rule, export to a fake OTLP collector, flush on guard drop, and the
//! disabled path. One test: fastrace's reporter and the tracer are process globals.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../tracewire-otlp/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use support::Collector;
use tracewire::{Pairs, SpanKind, Tracer};

fn lookup(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + 'static {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn init_from_env_exports_and_flushes_on_drop_and_disabled_records_nothing() {
    let collector = Collector::http();
    let guard = tracewire::builder()
        .env_lookup(lookup(&[
            ("OTEL_SERVICE_NAME", "checkout".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=test".into(),
            ),
            ("OTEL_PROPAGATORS", "b3multi".into()),
            ("OTEL_TRACES_EXPORTER", "otlp".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.http_url()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=top-secret".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000".into()),
        ]))
        .init();
    let describe = guard.describe().to_owned();
    assert!(describe.contains("api-key=<redacted>"), "{describe}");
    assert!(!describe.contains("top-secret"), "{describe}");
    assert!(describe.contains("otlp-http-protobuf"), "{describe}");

    let tracer = Tracer::global();
    let inbound = Pairs::from_pairs([
        ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-sampled", "1"),
    ]);
    let root = tracer.start_root("GET /cart", SpanKind::Server, &inbound);
    drop(root);
    // No explicit flush: dropping the guard must export what is pending.
    drop(guard);

    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(
        spans[0].trace_id,
        0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes()
    );
    assert_eq!(spans[0].parent_span_id, 0x00f067aa0ba902b7u64.to_be_bytes());
    let received = collector.received();
    assert!(
        received[0]
            .headers
            .iter()
            .any(|(k, v)| k == "api-key" && v == "top-secret")
    );
    let resource = received[0].request.resource_spans[0]
        .resource
        .clone()
        .unwrap();
    let get = |k: &str| {
        resource
            .attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.clone()?.value)
    };
    assert_eq!(
        get("service.name"),
        Some(Value::StringValue("checkout".into()))
    );
    assert_eq!(
        get("deployment.environment.name"),
        Some(Value::StringValue("test".into()))
    );
    assert!(matches!(get("process.pid"), Some(Value::IntValue(_))));

    // OTEL_SDK_DISABLED: nothing recorded or exported, context still propagates.
    let collector = Collector::http();
    let guard = tracewire::builder()
        .env_lookup(lookup(&[
            ("OTEL_SDK_DISABLED", "true".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.http_url()),
        ]))
        .init();
    assert!(guard.pipeline().is_none());
    let root = Tracer::global().start_root("GET /cart", SpanKind::Server, &Pairs::new());
    assert!(!root.context.is_sampled());
    let mut out = Pairs::new();
    Tracer::global().inject(&root.context, &mut out);
    let traceparent = out.get("traceparent").unwrap();
    let flags = u8::from_str_radix(&traceparent[traceparent.len() - 2..], 16).unwrap();
    assert_eq!(flags & 1, 0, "not sampled: {traceparent}");
    drop(root);
    assert!(guard.flush(Duration::from_secs(1)));
    drop(guard);
    assert!(collector.received().is_empty());
}
