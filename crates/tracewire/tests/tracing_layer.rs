//! `tracewire::builder().install_tracing_subscriber(true)`: `#[tracing::instrument]` spans
//! exported over OTLP/HTTP to a fake collector, decoded with the official OpenTelemetry proto
//! types: nesting under a tracewire root, typed attributes, `otel.*`, `record()`, errors, events.
//! One test: the subscriber, the tracer and fastrace's reporter are process globals.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../tracewire-otlp/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as ProtoKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use support::Collector;
use tracewire::{Pairs, SpanKind, Tracer};

fn lookup(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + 'static {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    move |name| map.get(name).cloned()
}

#[derive(Debug)]
struct OutOfStock;

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("out of stock")
    }
}

impl std::error::Error for OutOfStock {}

#[tracing::instrument(fields(
    otel.kind = "client",
    items = 3u64,
    total = 12.5f64,
    express = true,
    region = "eu",
    note = tracing::field::Empty,
))]
fn reserve(order: i64) -> Result<(), OutOfStock> {
    tracing::Span::current().record("note", "first");
    tracing::Span::current().record("note", "second");
    tracing::info!(attempt = 1i64, "reserving");
    tracing::debug!("below the RUST_LOG level: neither logged nor recorded");
    check_stock()
}

#[tracing::instrument(err)]
fn check_stock() -> Result<(), OutOfStock> {
    Err(OutOfStock)
}

fn attr(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

#[test]
fn installed_subscriber_exports_typed_tracing_spans_over_otlp() {
    let collector = Collector::http();
    let guard = tracewire::builder()
        .env_lookup(lookup(&[
            ("OTEL_SERVICE_NAME", "shop".into()),
            ("OTEL_TRACES_SAMPLER", "always_on".into()),
            ("OTEL_TRACES_EXPORTER", "otlp".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.http_url()),
            ("RUST_LOG", "info".into()),
        ]))
        .install_tracing_subscriber(true)
        .init();

    let root = Tracer::global().start_root("POST /orders", SpanKind::Server, &Pairs::new());
    {
        let _in = root.enter();
        assert!(reserve(42).is_err());
    }
    let trace_id = root.context.trace_id;
    drop(root);
    drop(guard);

    let spans = collector.spans();
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("{n}: {spans:?}"))
    };
    let (server, reserve, check) = (
        by_name("POST /orders"),
        by_name("reserve"),
        by_name("check_stock"),
    );
    assert_eq!(spans.len(), 3, "{spans:?}");
    for s in [server, reserve, check] {
        assert_eq!(s.trace_id, trace_id.0.to_be_bytes());
    }
    assert_eq!(reserve.parent_span_id, server.span_id);
    assert_eq!(check.parent_span_id, reserve.span_id);

    assert_eq!(reserve.kind, ProtoKind::Client as i32);
    assert_eq!(attr(reserve, "order"), Some(Value::IntValue(42)));
    assert_eq!(attr(reserve, "items"), Some(Value::IntValue(3)));
    assert_eq!(attr(reserve, "total"), Some(Value::DoubleValue(12.5)));
    assert_eq!(attr(reserve, "express"), Some(Value::BoolValue(true)));
    assert_eq!(
        attr(reserve, "region"),
        Some(Value::StringValue("eu".into()))
    );
    assert_eq!(
        attr(reserve, "note"),
        Some(Value::StringValue("second".into()))
    );
    assert!(
        reserve.attributes.iter().all(|kv| !kv.key.contains(':')),
        "no type suffix reaches the wire: {:?}",
        reserve.attributes
    );
    assert_eq!(reserve.events.len(), 1, "INFO only: {:?}", reserve.events);
    let event = &reserve.events[0];
    assert_eq!(event.name, "reserving");
    let event_attr = |k: &str| {
        event
            .attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.clone()?.value)
    };
    assert_eq!(event_attr("attempt"), Some(Value::IntValue(1)));
    assert_eq!(event_attr("level"), Some(Value::StringValue("INFO".into())));

    let status = check.status.clone().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "out of stock");
    assert_eq!(check.events[0].name, "exception");
    assert!(
        check.events[0]
            .attributes
            .iter()
            .any(|kv| kv.key == "exception.message"
                && kv.value.clone().and_then(|v| v.value)
                    == Some(Value::StringValue("out of stock".into())))
    );
    assert_eq!(
        reserve.status.clone().unwrap_or_default().code,
        StatusCode::Unset as i32,
        "the error is check_stock's"
    );

    // A second install finds a global subscriber: a warning, no panic, nothing changes.
    let again = tracewire::builder()
        .env_lookup(lookup(&[("OTEL_TRACES_EXPORTER", "none".into())]))
        .install_tracing_subscriber(true)
        .init();
    drop(again);
}
