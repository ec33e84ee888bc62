//! Protobuf encoding of an OTLP request, byte-for-byte what `prost`'s `encode_to_vec` gives,
//! but faster.
//!
//! prost computes a nested message's length every time an enclosing message is encoded, so a
//! span's attributes are measured once per level of nesting (request → resource spans →
//! scope spans → span → ...). [`encode_request`] measures each span once, writes the three
//! envelope levels itself (tags and lengths, in prost's field order) and lets `prost` encode
//! the spans, resources and scopes — the official `opentelemetry-proto` types throughout.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// Length of a length-delimited field with tag < 16: key byte + length varint + body.
fn field_len(body: usize) -> usize {
    1 + encoded_len_varint(body as u64) + body
}

fn string_field_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { field_len(s.len()) }
}

struct Sizes {
    spans: Vec<usize>,
    scopes: Vec<usize>,
    resources: Vec<usize>,
}

fn scope_spans_len(ss: &ScopeSpans, sizes: &mut Sizes) -> usize {
    let mut n = ss.scope.as_ref().map_or(0, |s| field_len(s.encoded_len()));
    for span in &ss.spans {
        let len = span.encoded_len();
        sizes.spans.push(len);
        n += field_len(len);
    }
    n + string_field_len(&ss.schema_url)
}

fn resource_spans_len(rs: &ResourceSpans, sizes: &mut Sizes) -> usize {
    let mut n = rs
        .resource
        .as_ref()
        .map_or(0, |r| field_len(r.encoded_len()));
    for ss in &rs.scope_spans {
        let len = scope_spans_len(ss, sizes);
        sizes.scopes.push(len);
        n += field_len(len);
    }
    n + string_field_len(&rs.schema_url)
}

fn put_len_field(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_message<M: Message>(tag: u32, m: &M, buf: &mut Vec<u8>) {
    put_len_field(tag, m.encoded_len(), buf);
    m.encode_raw(buf);
}

fn put_string(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        put_len_field(tag, s.len(), buf);
        buf.extend_from_slice(s.as_bytes());
    }
}

/// Encodes `request` as protobuf; identical to `request.encode_to_vec()`.
pub fn encode_request(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let mut sizes = Sizes {
        spans: Vec::new(),
        scopes: Vec::new(),
        resources: Vec::new(),
    };
    let mut total = 0;
    for rs in &request.resource_spans {
        let len = resource_spans_len(rs, &mut sizes);
        sizes.resources.push(len);
        total += field_len(len);
    }
    let mut buf = Vec::with_capacity(total);
    let (mut si, mut ci) = (0, 0);
    for (ri, rs) in request.resource_spans.iter().enumerate() {
        put_len_field(1, sizes.resources[ri], &mut buf);
        if let Some(r) = &rs.resource {
            put_message(1, r, &mut buf);
        }
        for ss in &rs.scope_spans {
            put_len_field(2, sizes.scopes[ci], &mut buf);
            ci += 1;
            if let Some(s) = &ss.scope {
                put_message(1, s, &mut buf);
            }
            for span in &ss.spans {
                put_len_field(2, sizes.spans[si], &mut buf);
                si += 1;
                span.encode_raw(&mut buf);
            }
            put_string(3, &ss.schema_url, &mut buf);
        }
        put_string(3, &rs.schema_url, &mut buf);
    }
    buf
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::borrow::Cow;

    use fastrace::collector::{EventRecord, SpanContext, SpanId, SpanRecord, TraceId};
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;

    use super::*;
    use crate::map::{SpanLimits, map_spans};
    use crate::resource::Resource;

    fn spans(n: u64, attr: &'static str) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        let records = (0..n)
            .map(|i| SpanRecord {
                trace_id: TraceId(u128::from(i) + 1),
                span_id: SpanId(i + 1),
                parent_id: SpanId(i),
                begin_time_unix_ns: i,
                duration_ns: 10,
                name: Cow::Borrowed("s"),
                properties: vec![
                    (Cow::Borrowed("span.kind"), Cow::Borrowed("client")),
                    (Cow::Borrowed("server.port"), Cow::Borrowed("443")),
                    (Cow::Borrowed("big"), Cow::Borrowed(attr)),
                ],
                events: vec![EventRecord {
                    name: Cow::Borrowed("e"),
                    timestamp_unix_ns: 1,
                    properties: vec![],
                }],
                links: vec![SpanContext::new(TraceId(1), SpanId(2))],
            })
            .collect();
        map_spans(records, &SpanLimits::default())
    }

    #[test]
    fn identical_to_prost() {
        let long: &'static str = Box::leak("x".repeat(300).into_boxed_str());
        let cases = [
            ExportTraceServiceRequest::default(),
            ExportTraceServiceRequest {
                resource_spans: vec![
                    ResourceSpans {
                        resource: Some(Resource::detect("svc").to_proto()),
                        scope_spans: vec![
                            ScopeSpans {
                                scope: Some(InstrumentationScope {
                                    name: "a".into(),
                                    version: "1".into(),
                                    ..Default::default()
                                }),
                                spans: spans(20, long),
                                schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
                            },
                            ScopeSpans {
                                scope: None,
                                spans: vec![],
                                schema_url: String::new(),
                            },
                        ],
                        schema_url: "u".into(),
                    },
                    ResourceSpans {
                        resource: None,
                        scope_spans: vec![ScopeSpans {
                            scope: Some(InstrumentationScope::default()),
                            spans: spans(3, "v"),
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    },
                ],
            },
        ];
        for req in cases {
            let ours = encode_request(&req);
            assert_eq!(ours, req.encode_to_vec());
            assert_eq!(
                ExportTraceServiceRequest::decode(ours.as_slice()).unwrap(),
                req
            );
        }
    }
}
