//! Protobuf encoding of an OTLP request, byte-for-byte what `prost`'s `encode_to_vec` gives,
//! but faster — from the OTLP structs ([`encode_request`]), or straight from fastrace's
//! records ([`DirectEncoder`], what the pipeline gives exporters that send OTLP protobuf).
//!
//! prost computes a nested message's length every time an enclosing message is encoded, so a
//! span's attributes are measured once per level of nesting (request → resource spans →
//! scope spans → span → ...). [`encode_request`] measures each span once, writes the three
//! envelope levels itself (tags and lengths, in prost's field order) and lets `prost` encode
//! the spans, resources and scopes — the official `opentelemetry-proto` types throughout.

use fastrace::collector::SpanRecord;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use prost::bytes::Bytes;
use prost::encoding::{WireType, encoded_len_varint};

use crate::map::{KeyCache, Plan, SpanLimits, Typed, plan, reuse};

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

/// A varint, as prost writes it (inlined: the writers below call it for every tag and length).
#[inline]
fn encode_varint(mut v: u64, buf: &mut Vec<u8>) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A field's key (tag and wire type), as prost writes it.
#[inline]
fn encode_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), buf);
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

/// OTLP protobuf written **straight from fastrace's records**, without building the OTLP
/// structs: the decisions are [the one mapping](crate::map)'s (the same plan the structs are
/// filled from), only the rendering differs, and the bytes are exactly what
/// [`encode_request`] (and prost) give for the mapped spans in the pipeline's envelope — one
/// resource, one scope (unit- and property-tested).
///
/// No string is copied but into the output: the structs cost a copy of every name, key and
/// value, and prost then measures every nested message once per enclosing level.
#[derive(Debug)]
pub struct DirectEncoder {
    limits: SpanLimits,
    /// The resource and scope fields, encoded once, and their message lengths.
    resource: Vec<u8>,
    resource_len: usize,
    scope: Vec<u8>,
    scope_len: usize,
    schema_url: String,
    items: Vec<(&'static str, Typed<'static>)>,
    keys: KeyCache,
    /// One span's body while it is written, and the current request: [`Self::head_room`]
    /// bytes kept free for the envelope, then the span fields.
    body: Vec<u8>,
    spans: Vec<u8>,
}

/// One OTLP/protobuf `ExportTraceServiceRequest` made by a [`DirectEncoder`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedRequest {
    /// The encoded request (cheap to clone: an exporter can hand it to its transport as it
    /// is, and again on a retry).
    pub bytes: Bytes,
    /// How many spans it holds.
    pub spans: usize,
}

impl DirectEncoder {
    /// Encodes requests of `resource` and `scope` (and `schema_url` for both levels, as the
    /// pipeline sends them), mapping with `limits`.
    pub fn new(
        resource: &Resource,
        scope: &InstrumentationScope,
        schema_url: &str,
        limits: SpanLimits,
    ) -> Self {
        let mut r = Vec::new();
        put_message(1, resource, &mut r);
        let mut sc = Vec::new();
        put_message(1, scope, &mut sc);
        DirectEncoder {
            limits,
            resource: r,
            resource_len: resource.encoded_len(),
            scope: sc,
            scope_len: scope.encoded_len(),
            schema_url: schema_url.to_owned(),
            items: Vec::new(),
            keys: KeyCache::default(),
            body: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Encodes `records` (trace context already inherited, see
    /// [`inherit_trace_context`](crate::map::inherit_trace_context)) into requests of at most
    /// `max_request_bytes`, in order, as the pipeline splits them: `emit` gets each request,
    /// `too_big` each span that alone would not fit (with its encoded size); it is left out.
    pub fn encode(
        &mut self,
        records: &[SpanRecord],
        max_request_bytes: usize,
        mut emit: impl FnMut(EncodedRequest),
        mut too_big: impl FnMut(&SpanRecord, usize),
    ) {
        let budget = max_request_bytes.saturating_sub(self.resource_len + self.scope_len + 64);
        let mut size = 0;
        let mut count = 0;
        self.start_request();
        for record in records {
            let mut body = std::mem::take(&mut self.body);
            body.clear();
            let p = plan(
                record,
                &self.limits,
                &mut self.keys,
                reuse(std::mem::take(&mut self.items)),
            );
            write_span(record, &p, &self.limits, &mut body);
            self.items = reuse(p.attributes.items);
            let len = field_len(body.len());
            if len > budget {
                too_big(record, len);
            } else {
                if size + len > budget && count > 0 {
                    emit(self.finish(count));
                    size = 0;
                    count = 0;
                }
                put_len_field(2, body.len(), &mut self.spans);
                self.spans.extend_from_slice(&body);
                size += len;
                count += 1;
            }
            self.body = body;
        }
        if count > 0 {
            emit(self.finish(count));
        }
    }

    /// Room for the envelope in front of the spans: the resource and scope fields and two
    /// keys with their length varints.
    fn head_room(&self) -> usize {
        self.resource.len() + self.scope.len() + 2 * (1 + 10)
    }

    fn start_request(&mut self) {
        self.spans.clear();
        self.spans.resize(self.head_room(), 0);
    }

    /// The request around the span fields written so far: the envelope goes into the room
    /// left in front of them (right-aligned), so the spans are not copied again.
    fn finish(&mut self, spans: usize) -> EncodedRequest {
        let room = self.head_room();
        let span_fields = self.spans.len() - room;
        let scope_spans = self.scope.len() + span_fields + string_field_len(&self.schema_url);
        let resource_spans =
            self.resource.len() + field_len(scope_spans) + string_field_len(&self.schema_url);
        let mut head = Vec::with_capacity(room);
        put_len_field(1, resource_spans, &mut head);
        head.extend_from_slice(&self.resource);
        put_len_field(2, scope_spans, &mut head);
        head.extend_from_slice(&self.scope);
        let start = room - head.len();
        self.spans[start..room].copy_from_slice(&head);
        put_string(3, &self.schema_url, &mut self.spans);
        put_string(3, &self.schema_url, &mut self.spans);
        // The next request's buffer, as large as this one.
        let next = Vec::with_capacity(self.spans.capacity());
        let bytes = Bytes::from(std::mem::replace(&mut self.spans, next)).slice(start..);
        self.start_request();
        EncodedRequest { bytes, spans }
    }
}

fn put_bytes_field(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    put_len_field(tag, b.len(), buf);
    buf.extend_from_slice(b);
}

fn put_varint_field(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

fn put_fixed64_field(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// The body of an `AnyValue` holding `v` (a oneof: written even when it is the default).
fn any_value_len(v: &Typed<'_>) -> usize {
    match v {
        Typed::Str(s) => field_len(s.len()),
        Typed::Bool(_) => 2,
        Typed::Int(i) => 1 + encoded_len_varint(*i as u64),
        Typed::Double(_) => 9,
        Typed::StrArray(items) => {
            field_len(items.iter().map(|s| field_len(field_len(s.len()))).sum())
        }
    }
}

fn put_any_value(v: &Typed<'_>, buf: &mut Vec<u8>) {
    match v {
        Typed::Str(s) => put_bytes_field(1, s.as_bytes(), buf),
        Typed::Bool(b) => {
            encode_key(2, WireType::Varint, buf);
            encode_varint(u64::from(*b), buf);
        }
        Typed::Int(i) => {
            encode_key(3, WireType::Varint, buf);
            encode_varint(*i as u64, buf);
        }
        Typed::Double(d) => {
            encode_key(4, WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Typed::StrArray(items) => {
            let len = items.iter().map(|s| field_len(field_len(s.len()))).sum();
            put_len_field(5, len, buf);
            for s in items {
                put_len_field(1, field_len(s.len()), buf);
                put_bytes_field(1, s.as_bytes(), buf);
            }
        }
    }
}

/// One span's fields, in prost's order (by tag: `flags`, 16, last), from its record and the
/// mapping's plan.
fn write_span(record: &SpanRecord, plan: &Plan<'_>, limits: &SpanLimits, buf: &mut Vec<u8>) {
    put_bytes_field(1, &record.trace_id.0.to_be_bytes(), buf);
    put_bytes_field(2, &record.span_id.0.to_be_bytes(), buf);
    put_string(3, plan.trace_state, buf);
    if record.parent_id.0 != 0 {
        put_bytes_field(4, &record.parent_id.0.to_be_bytes(), buf);
    }
    put_string(5, &record.name, buf);
    put_varint_field(6, plan.kind as i32 as u64, buf);
    put_fixed64_field(7, record.begin_time_unix_ns, buf);
    put_fixed64_field(
        8,
        record.begin_time_unix_ns.saturating_add(record.duration_ns),
        buf,
    );
    for (key, value) in &plan.attributes.items {
        let any = any_value_len(value);
        put_len_field(9, string_field_len(key) + field_len(any), buf);
        put_string(1, key, buf);
        put_len_field(2, any, buf);
        put_any_value(value, buf);
    }
    put_varint_field(10, u64::from(plan.attributes.dropped), buf);
    // Events and links are rare: their structs, encoded by prost.
    if !record.events.is_empty() {
        let (events, dropped_events) = crate::map::events(record, limits);
        for e in &events {
            put_message(11, e, buf);
        }
        put_varint_field(12, u64::from(dropped_events), buf);
    }
    if !record.links.is_empty() {
        let (links, dropped_links) = crate::map::links(record, plan, limits);
        for l in &links {
            put_message(13, l, buf);
        }
        put_varint_field(14, u64::from(dropped_links), buf);
    }
    // The status is always present (possibly empty).
    let code = plan.status_code as i32 as u64;
    let status_len = string_field_len(plan.status_message)
        + if code != 0 {
            1 + encoded_len_varint(code)
        } else {
            0
        };
    put_len_field(15, status_len, buf);
    put_string(2, plan.status_message, buf);
    put_varint_field(3, code, buf);
    if plan.flags != 0 {
        encode_key(16, WireType::ThirtyTwoBit, buf);
        buf.extend_from_slice(&plan.flags.to_le_bytes());
    }
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
