//! Property tests: buffer reuse never changes the mapping, and the fast encoder is
//! byte-identical to prost's.
#![allow(clippy::unwrap_used, missing_docs)]

use std::borrow::Cow;

use fastrace::collector::{EventRecord, SpanContext, SpanId, SpanRecord, TraceId};
use proptest::prelude::*;
use prost::Message as _;
use tracewire_export::encode::encode_request;
use tracewire_export::map::{Mapper, map_spans};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
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
}
