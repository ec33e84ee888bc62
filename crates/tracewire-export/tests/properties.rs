//! Property tests: buffer reuse never changes the mapping, and the fast encoder and the direct
//! encoder (records → bytes, no OTLP structs) are byte-identical to prost's.
#![allow(clippy::unwrap_used, missing_docs)]

use std::borrow::Cow;

use fastrace::collector::{EventRecord, SpanContext, SpanId, SpanRecord, TraceId};
use proptest::prelude::*;
use prost::Message as _;
use tracewire_export::encode::{DirectEncoder, encode_request};
use tracewire_export::map::{Mapper, inherit_trace_context, map_spans};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::proto::common::v1::InstrumentationScope;
use tracewire_export::proto::trace::v1::{ResourceSpans, ScopeSpans};
use tracewire_export::{Resource, SpanLimits};

const KEYS: &[&str] = &[
    "span.kind",
    "http.response.status_code",
    "server.port",
    "otel.status_code",
    "otel.status_description",
    "tracewire.trace_flags",
    "tracewire.tracestate",
    "tracewire.parent.remote",
    "n:int",
    "d:double",
    "b:bool",
    "tags:string[]",
    "a",
    "b",
];

const VALUES: &[&str] = &[
    "server",
    "client",
    "200",
    "x",
    "ERROR",
    "OK",
    "01",
    "00",
    "k=v",
    "true",
    "1.5",
    r#"["a","b"]"#,
    "",
    "ünïcode",
];

fn property() -> impl Strategy<Value = (Cow<'static, str>, Cow<'static, str>)> {
    (0..KEYS.len(), 0..VALUES.len(), any::<bool>()).prop_map(|(k, v, owned)| {
        let (k, v) = (KEYS[k], VALUES[v]);
        if owned {
            (Cow::Owned(k.to_owned()), Cow::Owned(v.repeat(3)))
        } else {
            (Cow::Borrowed(k), Cow::Borrowed(v))
        }
    })
}

fn record() -> impl Strategy<Value = SpanRecord> {
    (
        1u128..4,
        any::<u64>(),
        0u64..3,
        prop::collection::vec(property(), 0..12),
        prop::collection::vec(prop::collection::vec(property(), 0..3), 0..3),
        0usize..3,
    )
        .prop_map(
            |(trace, span, parent, properties, events, links)| SpanRecord {
                trace_id: TraceId(trace),
                span_id: SpanId(span | 1),
                parent_id: SpanId(parent),
                begin_time_unix_ns: span >> 8,
                duration_ns: span & 0xffff,
                name: Cow::Borrowed("span"),
                properties,
                events: events
                    .into_iter()
                    .map(|p| EventRecord {
                        name: Cow::Borrowed("e"),
                        timestamp_unix_ns: 7,
                        properties: p,
                    })
                    .collect(),
                links: (0..links)
                    .map(|i| SpanContext::new(TraceId(9), SpanId(i as u64 + 1)))
                    .collect(),
            },
        )
}

fn limits() -> impl Strategy<Value = SpanLimits> {
    (1usize..6, prop::option::of(0usize..4), 0usize..3).prop_map(|(count, len, events)| {
        SpanLimits {
            attribute_count: count,
            attribute_value_length: len,
            event_count: events,
            link_count: 1,
            attributes_per_event: 2,
            attributes_per_link: 2,
        }
    })
}

proptest! {
    #[test]
    fn reuse_never_changes_the_mapping(
        batches in prop::collection::vec(prop::collection::vec(record(), 0..8), 1..5),
        limits in limits(),
    ) {
        let mut mapper = Mapper::new(limits.clone());
        for batch in batches {
            let reused = mapper.map(batch.clone());
            prop_assert_eq!(&reused, &map_spans(batch, &limits));
            mapper.recycle(reused);
        }
    }

    #[test]
    fn fast_encoding_is_byte_identical(batch in prop::collection::vec(record(), 0..10), scopes in 1usize..3) {
        let spans = map_spans(batch, &SpanLimits::default());
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource::empty().with("service.name", "p").to_proto()),
                scope_spans: (0..scopes)
                    .map(|i| ScopeSpans {
                        scope: None,
                        spans: if i == 0 { spans.clone() } else { Vec::new() },
                        schema_url: "s".repeat(i),
                    })
                    .collect(),
                schema_url: String::new(),
            }],
        };
        prop_assert_eq!(encode_request(&req), req.encode_to_vec());
    }

    #[test]
    fn direct_encoding_is_prosts_encoding_of_the_mapped_spans(
        mut batch in prop::collection::vec(record(), 0..10),
        limits in limits(),
        max_bytes in prop::option::of(150usize..600),
    ) {
        let resource = Resource::empty().with("service.name", "p").to_proto();
        let scope = InstrumentationScope { name: "s".into(), version: "1".into(), ..Default::default() };
        let schema = "https://opentelemetry.io/schemas/1.30.0";
        let max = max_bytes.unwrap_or(usize::MAX);
        inherit_trace_context(&mut batch);
        let mut direct = Vec::new();
        let mut skipped = Vec::new();
        DirectEncoder::new(&resource, &scope, schema, limits.clone()).encode(
            &batch,
            max,
            |r| direct.push(r),
            |r, _| skipped.push(r.span_id),
        );
        // The reference: the mapped structs, split as the pipeline splits them, then prost.
        let budget = max.saturating_sub(resource.encoded_len() + scope.encoded_len() + 64);
        let mut expected: Vec<Vec<_>> = Vec::new();
        let mut current = Vec::new();
        let mut size = 0;
        let mut expected_skipped = Vec::new();
        for span in map_spans(batch, &limits) {
            let len = span.encoded_len();
            let len = len + prost::length_delimiter_len(len) + 1;
            if len > budget {
                expected_skipped.push(span.span_id.clone());
                continue;
            }
            if size + len > budget && !current.is_empty() {
                expected.push(std::mem::take(&mut current));
                size = 0;
            }
            size += len;
            current.push(span);
        }
        if !current.is_empty() {
            expected.push(current);
        }
        prop_assert_eq!(direct.len(), expected.len());
        for (d, spans) in direct.iter().zip(expected) {
            prop_assert_eq!(d.spans, spans.len());
            let req = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(resource.clone()),
                    scope_spans: vec![ScopeSpans { scope: Some(scope.clone()), spans, schema_url: schema.into() }],
                    schema_url: schema.into(),
                }],
            };
            prop_assert_eq!(&d.bytes[..], &req.encode_to_vec()[..]);
            prop_assert_eq!(&d.bytes[..], &encode_request(&req)[..]);
        }
        let skipped: Vec<Vec<u8>> = skipped.iter().map(|id| id.0.to_be_bytes().to_vec()).collect();
        prop_assert_eq!(skipped, expected_skipped);
    }
}
