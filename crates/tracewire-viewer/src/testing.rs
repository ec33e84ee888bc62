//! Spans for the unit tests of the modules that read the store (`links`, `map`).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Link};

use crate::store::TraceId;
use crate::util;

/// 2026-01-01T00:00:00Z in ns.
pub(crate) const T0: u64 = 1_767_225_600_000_000_000;
pub(crate) const MS: u64 = 1_000_000;

pub(crate) fn tid(n: u32) -> TraceId {
    let mut t = [0xab; 16];
    t[12..].copy_from_slice(&n.to_be_bytes());
    t
}

/// A span of trace `trace` (id `id`, parent `parent`, 0: none) of `kind`, from `start_ms` to
/// `end_ms` after [`T0`].
pub(crate) fn span(
    trace: u32,
    id: u64,
    parent: u64,
    kind: i32,
    start_ms: u64,
    end_ms: u64,
) -> Span {
    Span {
        trace_id: tid(trace).to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: format!("span {id}"),
        kind,
        start_time_unix_nano: T0 + start_ms * MS,
        end_time_unix_nano: T0 + end_ms * MS,
        ..Default::default()
    }
}

/// `s` with a link to span `id` of trace `trace`.
pub(crate) fn linked(mut s: Span, trace: u32, id: u64) -> Span {
    s.links.push(Link {
        trace_id: tid(trace).to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        ..Default::default()
    });
    s
}

/// `s` with status ERROR.
pub(crate) fn failed(mut s: Span) -> Span {
    s.status = Some(Status {
        code: 2,
        message: "failed".into(),
    });
    s
}

/// One request of `service`'s spans.
pub(crate) fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![util::kv_str("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
