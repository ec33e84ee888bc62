//! **The one mapping** from fastrace [`SpanRecord`]s (plus tracewire's property conventions)
//! to OTLP spans. Every exporter (OTLP, Zipkin, console) starts from its output.
//!
//! | fastrace / tracewire                          | OTLP                                   |
//! |-----------------------------------------------|----------------------------------------|
//! | `trace_id`, `span_id`, `parent_id` (0 = none) | `trace_id`, `span_id`, `parent_span_id` |
//! | property `span.kind`                          | `kind` (absent: `INTERNAL`)            |
//! | `otel.status_code` + `otel.status_description`| `status`                               |
//! | `tracewire.trace_flags`                       | `flags` bits 0–7 (absent: sampled)     |
//! | `tracewire.parent.remote`                     | `flags` bits 8–9 (has-is-remote, is-remote) |
//! | `tracewire.tracestate`                        | `trace_state`                          |
//! | other properties                              | attributes, typed by [`semconv::typed_key`] |
//! | events (`EventRecord`)                        | events, attributes typed the same way  |
//! | links (`SpanContext`)                         | links with the sampled flag            |
//! | `tracewire.link.{id}.{key}`, `tracewire.link_remote.{id}` | that link's attributes and remote flag |
//!
//! The `tracewire.*` properties are decoded by [`tracewire_core::reserved::decode`], next to
//! where they are written.
//!
//! A span without `tracewire.trace_flags`/`tracewire.tracestate` (an internal span of
//! `#[fastrace::trace]`) takes them from its nearest recorded ancestor
//! ([`inherit_trace_context`], which the pipeline applies per fastrace report).

use std::collections::HashMap;

use std::borrow::Cow;

use fastrace::collector::{EventRecord, SpanContext, SpanId, SpanRecord, TraceId};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind as ProtoKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use tracewire_core::SpanKind;
use tracewire_core::reserved::{self, Reserved};
use tracewire_core::semconv::{self, ValueType};

/// `flags` bit: the `is_remote` bit (bit 9) is meaningful.
pub const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `flags` bit: the parent (or link) is remote.
pub const FLAG_IS_REMOTE: u32 = 0x200;

/// Limits applied while mapping (the OpenTelemetry span limits; `OTEL_SPAN_*`,
/// `OTEL_ATTRIBUTE_*`, `OTEL_EVENT_*`, `OTEL_LINK_*`). What is cut is counted in the span's
/// `dropped_*_count` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    /// Attributes per span (default 128).
    pub attribute_count: usize,
    /// Longest string value in characters; longer values are truncated (default: no limit).
    pub attribute_value_length: Option<usize>,
    /// Events per span (default 128).
    pub event_count: usize,
    /// Links per span (default 128).
    pub link_count: usize,
    /// Attributes per event (default 128).
    pub attributes_per_event: usize,
    /// Attributes per link (default 128).
    pub attributes_per_link: usize,
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            attribute_count: 128,
            attribute_value_length: None,
            event_count: 128,
            link_count: 128,
            attributes_per_event: 128,
            attributes_per_link: 128,
        }
    }
}

/// Maps a batch of records (see the [module docs](self) for the table).
pub fn map_spans(records: Vec<SpanRecord>, limits: &SpanLimits) -> Vec<Span> {
    Mapper::new(limits.clone()).map(records)
}

/// Maps one record as it is. Prefer [`map_spans`] or a [`Mapper`], which also give spans
/// without trace flags and `tracestate` of their own those of their nearest recorded ancestor
/// (see [`inherit_trace_context`]).
pub fn map_span(record: SpanRecord, limits: &SpanLimits) -> Span {
    let mut span = Span::default();
    let p = plan(&record, limits, &mut KeyCache::default(), Vec::new());
    fill(&record, &p, limits, &mut span, &mut Spare::default());
    span
}

/// The mapping with buffer reuse: spans given back with [`Mapper::recycle`] after export are
/// refilled in place (their strings and vectors keep their capacity), so a steady export
/// stream maps with almost no allocation. The pipeline's worker keeps one.
#[derive(Debug, Default)]
pub struct Mapper {
    limits: SpanLimits,
    pool: Vec<Span>,
    spare: Spare,
    /// The attribute list of [`plan`], kept between spans for its allocation.
    scratch: Vec<(&'static str, Typed<'static>)>,
    keys: KeyCache,
}

/// Recycled pieces (bounded).
#[derive(Debug, Default)]
struct Spare {
    kvs: Vec<KeyValue>,
    strings: Vec<String>,
}

const MAX_POOLED_SPANS: usize = 4096;
const MAX_SPARE: usize = 8192;
/// Strings longer than this are not kept for reuse.
const MAX_POOLED_CAPACITY: usize = 16 * 1024;

impl Spare {
    fn string(&mut self) -> String {
        self.strings.pop().unwrap_or_default()
    }

    fn keep_string(&mut self, s: String) {
        if self.strings.len() < MAX_SPARE && s.capacity() <= MAX_POOLED_CAPACITY {
            self.strings.push(s);
        }
    }

    fn keep_kv(&mut self, kv: KeyValue) {
        if self.kvs.len() < MAX_SPARE && kv.key.capacity() <= MAX_POOLED_CAPACITY {
            self.kvs.push(kv);
        }
    }
}

impl Mapper {
    /// A mapper applying `limits`.
    pub fn new(limits: SpanLimits) -> Self {
        Mapper {
            limits,
            ..Mapper::default()
        }
    }

    /// Maps a batch; spans without trace flags and `tracestate` of their own take their
    /// nearest recorded ancestor's in the batch ([`inherit_trace_context`]; the pipeline has
    /// done it already, per fastrace report, so batch boundaries do not matter there).
    pub fn map(&mut self, mut records: Vec<SpanRecord>) -> Vec<Span> {
        inherit_trace_context(&mut records);
        let mut spans = Vec::with_capacity(records.len());
        for r in &records {
            let mut span = self.pool.pop().unwrap_or_default();
            let p = plan(
                r,
                &self.limits,
                &mut self.keys,
                reuse(std::mem::take(&mut self.scratch)),
            );
            fill(r, &p, &self.limits, &mut span, &mut self.spare);
            self.scratch = reuse(p.attributes.items);
            spans.push(span);
        }
        spans
    }

    /// Gives exported spans back for reuse (a bounded number is kept).
    pub fn recycle(&mut self, spans: impl IntoIterator<Item = Span>) {
        for span in spans {
            if self.pool.len() >= MAX_POOLED_SPANS {
                break;
            }
            let big = span.name.capacity() > MAX_POOLED_CAPACITY
                || span.trace_state.capacity() > MAX_POOLED_CAPACITY
                || span.attributes.iter().any(|kv| {
                    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::StringValue(s)) => s.capacity() > MAX_POOLED_CAPACITY,
                        _ => false,
                    }
                });
            if !big {
                self.pool.push(span);
            }
        }
    }
}

/// Gives every span its own trace flags and `tracestate` (the reserved properties of
/// [`tracewire_core::reserved`]): a span that records none — an internal span made by
/// `#[fastrace::trace]`, which carries no properties of its own — takes those of its nearest
/// ancestor in `records` that has them. A span with no such ancestor keeps none (it is then
/// exported as sampled, with no `tracestate`).
///
/// fastrace reports the spans of one root (a request, a message) together, so the pipeline's
/// reporter calls this on each report: every exported span carries its own values, whatever
/// the export batches later split.
pub fn inherit_trace_context(records: &mut [SpanRecord]) {
    // The common case, and the second call on a report (the pipeline's reporter, then its
    // mapping): every span has its own flags already.
    if records
        .iter()
        .all(|r| r.properties.iter().any(|(k, _)| k == reserved::TRACE_FLAGS))
    {
        return;
    }
    // (flags, tracestate) each span records itself.
    let own: Vec<(Option<u8>, Option<Cow<'static, str>>)> = records
        .iter()
        .map(|r| {
            let mut flags = None;
            let mut state = None;
            for (k, v) in &r.properties {
                match reserved::decode(k, v) {
                    Some(Reserved::TraceFlags(f)) => flags = Some(f),
                    Some(Reserved::TraceState(_)) => state = Some(v.clone()),
                    _ => {}
                }
            }
            (flags, state)
        })
        .collect();
    if own.iter().all(|(f, _)| f.is_some()) {
        return;
    }
    let index: HashMap<(TraceId, SpanId), usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.trace_id, r.span_id), i))
        .collect();
    // The nearest recorded ancestor of each span, found by walking parents (bounded, so a
    // cycle of parent ids cannot loop).
    let found: Vec<Option<usize>> = (0..records.len())
        .map(|i| {
            let mut at = i;
            for _ in 0..MAX_DEPTH {
                if own[at].0.is_some() {
                    return Some(at);
                }
                let r = &records[at];
                at = *index.get(&(r.trace_id, r.parent_id))?;
            }
            None
        })
        .collect();
    for (i, r) in records.iter_mut().enumerate() {
        if own[i].0.is_some() {
            continue;
        }
        let Some((Some(flags), state)) = found[i].map(|a| &own[a]) else {
            continue;
        };
        r.properties.push((
            Cow::Borrowed(reserved::TRACE_FLAGS),
            Cow::Borrowed(reserved::flags_value(*flags)),
        ));
        if let Some(state) = state {
            r.properties
                .push((Cow::Borrowed(reserved::TRACE_STATE), state.clone()));
        }
    }
}

/// How far [`inherit_trace_context`] walks up a span's parents.
const MAX_DEPTH: usize = 256;

fn set_bytes(v: &mut Vec<u8>, b: &[u8]) {
    v.clear();
    v.extend_from_slice(b);
}

fn set_str(s: &mut String, v: &str) {
    s.clear();
    s.push_str(v);
}

/// **The mapping**'s decisions for one record, everything the OTLP span is made of that is not
/// copied from the record as it is: kind, status, flags, `tracestate` and the typed, limited
/// attributes, all borrowed from the record. Both renderings read it: the OTLP structs
/// ([`Mapper`], [`fill`]) and the protobuf bytes written straight from the record
/// ([`crate::encode::SpanEncoder`]), so the two cannot disagree.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub(crate) kind: ProtoKind,
    pub(crate) status_code: StatusCode,
    /// Only for an error status (the OpenTelemetry API keeps it for errors alone).
    pub(crate) status_message: &'a str,
    pub(crate) flags: u32,
    pub(crate) trace_state: &'a str,
    pub(crate) remote: bool,
    pub(crate) attributes: AttrList<'a>,
}

/// Decides the OTLP span of `record` (see the [module docs](self) for the table); `items` is
/// an empty list whose allocation the attributes may reuse.
pub(crate) fn plan<'a>(
    record: &'a SpanRecord,
    limits: &SpanLimits,
    keys: &mut KeyCache,
    items: Vec<(&'a str, Typed<'a>)>,
) -> Plan<'a> {
    let mut kind = ProtoKind::Internal;
    let mut status_code = StatusCode::Unset;
    let mut status_message = "";
    let mut trace_flags: Option<u32> = None;
    let mut remote = false;
    let mut trace_state = "";
    let mut attributes =
        AttrList::new(items, limits.attribute_count, limits.attribute_value_length);
    for (key, value) in &record.properties {
        match keys.class(key) {
            KeyClass::Reserved => match reserved::decode(key, value) {
                Some(Reserved::TraceFlags(f)) => trace_flags = Some(u32::from(f)),
                Some(Reserved::ParentRemote(r)) => remote = r,
                Some(Reserved::TraceState(state)) => trace_state = state,
                // Read per link by `link_facts`, when there are links.
                _ => {}
            },
            KeyClass::Kind => kind = proto_kind(SpanKind::parse(value).unwrap_or_default()),
            KeyClass::StatusCode => {
                status_code = if value.eq_ignore_ascii_case(semconv::STATUS_ERROR) {
                    StatusCode::Error
                } else if value.eq_ignore_ascii_case(semconv::STATUS_OK) {
                    StatusCode::Ok
                } else {
                    StatusCode::Unset
                }
            }
            KeyClass::StatusDescription => status_message = value,
            KeyClass::Attribute { len, ty } => attributes.push_typed(&key[..len], ty, value),
        }
    }
    if status_code != StatusCode::Error {
        // The description is only meaningful for errors (OpenTelemetry API).
        status_message = "";
    }
    let mut flags = trace_flags.unwrap_or(0x01) | FLAG_HAS_IS_REMOTE;
    if remote {
        flags |= FLAG_IS_REMOTE;
    }
    Plan {
        kind,
        status_code,
        status_message,
        flags,
        trace_state,
        remote,
        attributes,
    }
}

/// What a property key is to the mapping (see the [module docs](self) for the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyClass {
    /// A `tracewire.*` property ([`reserved::decode`] reads it with its value).
    Reserved,
    /// `span.kind`.
    Kind,
    /// The status code (also fastrace-opentelemetry's key).
    StatusCode,
    /// The status description (also fastrace-opentelemetry's key).
    StatusDescription,
    /// An attribute: exported under the key's first `len` bytes (a type suffix cut off),
    /// typed `ty` ([`semconv::typed_key`]).
    Attribute { len: usize, ty: ValueType },
}

impl KeyClass {
    fn of(key: &str) -> Self {
        if key.starts_with(reserved::PREFIX) {
            return KeyClass::Reserved;
        }
        match key {
            semconv::SPAN_KIND => KeyClass::Kind,
            // Also fastrace-opentelemetry's names, for spans instrumented for that bridge.
            semconv::OTEL_STATUS_CODE | semconv::FASTRACE_STATUS_CODE => KeyClass::StatusCode,
            semconv::OTEL_STATUS_DESCRIPTION | semconv::FASTRACE_STATUS_DESCRIPTION => {
                KeyClass::StatusDescription
            }
            _ => {
                let (exported, ty) = semconv::typed_key(key);
                KeyClass::Attribute {
                    len: exported.len(),
                    ty,
                }
            }
        }
    }
}

/// [`KeyClass::of`] remembered for `&'static str` keys (the semantic-convention constants
/// nearly every property uses), by address: a static string is never freed, so its address
/// and length name it for good. Owned keys are classified each time.
#[derive(Clone, Debug)]
pub(crate) struct KeyCache {
    slots: Box<[Option<(usize, usize, KeyClass)>]>,
}

const KEY_CACHE_SLOTS: usize = 256;

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            slots: vec![None; KEY_CACHE_SLOTS].into_boxed_slice(),
        }
    }
}

impl KeyCache {
    // The variant is the point: only a borrowed (`'static`) key is remembered.
    #[allow(clippy::ptr_arg)]
    fn class(&mut self, key: &Cow<'static, str>) -> KeyClass {
        let Cow::Borrowed(key) = key else {
            return KeyClass::of(key);
        };
        let at = key.as_ptr() as usize;
        // Fibonacci hashing of the address: the top 8 bits pick a pair of slots (two keys
        // meeting in one slot would otherwise evict each other on every span).
        let i = (at.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> (usize::BITS - 8)) & !1;
        for slot in &self.slots[i..i + 2] {
            if let Some((a, l, class)) = *slot
                && a == at
                && l == key.len()
            {
                return class;
            }
        }
        let class = KeyClass::of(key);
        // The empty slot of the pair, else the second (the first keeps the older key).
        let j = if self.slots[i].is_none() { i } else { i + 1 };
        self.slots[j] = Some((at, key.len(), class));
        class
    }
}

/// The `tracewire.link*` facts of a span's properties, sorted by linked span id: each link
/// finds its own by a binary search, so a batch span with many links maps in O(n log n).
fn link_facts(record: &SpanRecord) -> Vec<(u64, Reserved<'_>)> {
    let mut facts: Vec<(u64, Reserved<'_>)> = record
        .properties
        .iter()
        .filter_map(|(k, v)| match reserved::decode(k, v)? {
            r @ (Reserved::LinkAttribute { link, .. } | Reserved::LinkRemote(link)) => {
                Some((link.0, r))
            }
            _ => None,
        })
        .collect();
    facts.sort_by_key(|(id, _)| *id);
    facts
}

/// The events of `record` as OTLP (at most the limit), and how many were dropped.
pub(crate) fn events(record: &SpanRecord, limits: &SpanLimits) -> (Vec<Event>, u32) {
    let dropped = record.events.len().saturating_sub(limits.event_count) as u32;
    let events = record
        .events
        .iter()
        .take(limits.event_count)
        .map(|e| map_event(e, limits))
        .collect();
    (events, dropped)
}

/// The links of `record` as OTLP (at most the limit), and how many were dropped.
pub(crate) fn links(record: &SpanRecord, plan: &Plan<'_>, limits: &SpanLimits) -> (Vec<Link>, u32) {
    let dropped = record.links.len().saturating_sub(limits.link_count) as u32;
    if record.links.is_empty() {
        return (Vec::new(), dropped);
    }
    let facts = link_facts(record);
    let remote_parent =
        (plan.remote && record.parent_id.0 != 0).then_some((record.trace_id, record.parent_id));
    let links = record
        .links
        .iter()
        .take(limits.link_count)
        .map(|l| map_link(l, &facts, remote_parent, limits))
        .collect();
    (links, dropped)
}

/// The OTLP structs of `record` as `plan` decided, into a (possibly recycled) span: every
/// field is overwritten.
fn fill(
    record: &SpanRecord,
    plan: &Plan<'_>,
    limits: &SpanLimits,
    span: &mut Span,
    spare: &mut Spare,
) {
    let status = span.status.get_or_insert_with(Status::default);
    set_str(&mut status.message, plan.status_message);
    status.code = plan.status_code as i32;
    set_str(&mut span.trace_state, plan.trace_state);
    span.dropped_attributes_count = plan.attributes.fill(&mut span.attributes, spare);
    (span.events, span.dropped_events_count) = events(record, limits);
    (span.links, span.dropped_links_count) = links(record, plan, limits);
    set_bytes(&mut span.trace_id, &record.trace_id.0.to_be_bytes());
    set_bytes(&mut span.span_id, &record.span_id.0.to_be_bytes());
    if record.parent_id.0 == 0 {
        span.parent_span_id.clear();
    } else {
        set_bytes(&mut span.parent_span_id, &record.parent_id.0.to_be_bytes());
    }
    span.flags = plan.flags;
    set_str(&mut span.name, &record.name);
    span.kind = plan.kind as i32;
    span.start_time_unix_nano = record.begin_time_unix_ns;
    span.end_time_unix_nano = record.begin_time_unix_ns.saturating_add(record.duration_ns);
}

fn map_event(event: &EventRecord, limits: &SpanLimits) -> Event {
    let mut attrs = AttrList::new(
        Vec::new(),
        limits.attributes_per_event,
        limits.attribute_value_length,
    );
    for (k, v) in &event.properties {
        attrs.push(k, v);
    }
    let mut attributes = Vec::with_capacity(attrs.items.len());
    let dropped_attributes_count = attrs.fill(&mut attributes, &mut Spare::default());
    Event {
        time_unix_nano: event.timestamp_unix_ns,
        name: event.name.to_string(),
        attributes,
        dropped_attributes_count,
    }
}

/// A link, with the attributes and remote flag recorded for it (`facts`: the decoded
/// `tracewire.link*` properties of the span).
/// A link to the span's own remote parent is remote too (see [`tracewire_core::reserved`]).
fn map_link(
    link: &SpanContext,
    facts: &[(u64, Reserved<'_>)],
    remote_parent: Option<(TraceId, SpanId)>,
    limits: &SpanLimits,
) -> Link {
    let mut attrs = AttrList::new(
        Vec::new(),
        limits.attributes_per_link,
        limits.attribute_value_length,
    );
    let mut flags = u32::from(link.sampled) | FLAG_HAS_IS_REMOTE;
    if remote_parent == Some((link.trace_id, link.span_id)) {
        flags |= FLAG_IS_REMOTE;
    }
    let id = link.span_id.0;
    let first = facts.partition_point(|(f, _)| *f < id);
    for (_, fact) in facts[first..].iter().take_while(|(f, _)| *f == id) {
        match *fact {
            Reserved::LinkAttribute { key, value, .. } => attrs.push(key, value),
            Reserved::LinkRemote(_) => flags |= FLAG_IS_REMOTE,
            _ => {}
        }
    }
    let mut attributes = Vec::new();
    let dropped_attributes_count = attrs.fill(&mut attributes, &mut Spare::default());
    Link {
        trace_id: link.trace_id.0.to_be_bytes().to_vec(),
        span_id: link.span_id.0.to_be_bytes().to_vec(),
        trace_state: String::new(),
        attributes,
        dropped_attributes_count,
        flags,
    }
}

/// The OTLP value of a span kind.
pub fn proto_kind(kind: SpanKind) -> ProtoKind {
    match kind {
        SpanKind::Internal => ProtoKind::Internal,
        SpanKind::Server => ProtoKind::Server,
        SpanKind::Client => ProtoKind::Client,
        SpanKind::Producer => ProtoKind::Producer,
        SpanKind::Consumer => ProtoKind::Consumer,
    }
}

/// One attribute from a fastrace property, typed by [`semconv::typed_key`]: a value that does
/// not parse as its declared type is sent as a string rather than lost.
pub fn attribute(key: &str, value: &str, max_len: Option<usize>) -> KeyValue {
    let mut attrs = AttrList::new(Vec::new(), 1, max_len);
    attrs.push(key, value);
    let mut list = Vec::with_capacity(1);
    attrs.fill(&mut list, &mut Spare::default());
    list.pop().unwrap_or_default()
}

/// An attribute value, typed: **the one typing rule** (by [`semconv::typed_key`]'s type; a
/// value that does not parse as its type stays a string, truncated to the length limit).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Typed<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    StrArray(Vec<String>),
}

impl<'a> Typed<'a> {
    fn new(ty: ValueType, value: &'a str, max_len: Option<usize>) -> Self {
        let parsed = match ty {
            ValueType::Int => trim(value).parse::<i64>().ok().map(Typed::Int),
            ValueType::Double => trim(value).parse::<f64>().ok().map(Typed::Double),
            ValueType::Bool => match trim(value) {
                "true" => Some(Typed::Bool(true)),
                "false" => Some(Typed::Bool(false)),
                _ => None,
            },
            ValueType::StringArray => {
                serde_json::from_str::<Vec<String>>(value)
                    .ok()
                    .map(|items| {
                        Typed::StrArray(
                            items
                                .into_iter()
                                .map(|mut s| {
                                    let len = truncated(&s, max_len).len();
                                    s.truncate(len);
                                    s
                                })
                                .collect(),
                        )
                    })
            }
            ValueType::String => None,
        };
        parsed.unwrap_or_else(|| Typed::Str(truncated(value, max_len)))
    }

    /// The OTLP value, reusing `buf` for a string; returns `buf` back when unused.
    fn to_proto(&self, mut buf: String) -> (Value, Option<String>) {
        let v = match self {
            Typed::Str(s) => {
                set_str(&mut buf, s);
                return (Value::StringValue(buf), None);
            }
            Typed::Bool(b) => Value::BoolValue(*b),
            Typed::Int(i) => Value::IntValue(*i),
            Typed::Double(d) => Value::DoubleValue(*d),
            Typed::StrArray(items) => Value::ArrayValue(ArrayValue {
                values: items
                    .iter()
                    .map(|s| AnyValue {
                        value: Some(Value::StringValue(s.clone())),
                    })
                    .collect(),
            }),
        };
        (v, Some(buf))
    }
}

/// `s.trim()`, without its scan of both ends when they are ASCII and not whitespace (the
/// usual number: a Unicode space would start and end with a non-ASCII byte).
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(b))
            if a.is_ascii()
                && b.is_ascii()
                && !char::from(*a).is_whitespace()
                && !char::from(*b).is_whitespace() =>
        {
            s
        }
        _ => s.trim(),
    }
}

fn truncated(s: &str, max_len: Option<usize>) -> &str {
    match max_len.and_then(|max| s.char_indices().nth(max)) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

/// An empty list of a possibly different lifetime, reusing `v`'s allocation (the element
/// types have one layout: the standard library collects in place).
// (`filter` would keep the item type, and its lifetime: the point is to change it.)
#[allow(clippy::unnecessary_filter_map)]
pub(crate) fn reuse<'x>(mut v: Vec<(&str, Typed<'_>)>) -> Vec<(&'x str, Typed<'x>)> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// An attribute list with a count limit, typed as it is written: a repeated key keeps its
/// first place and its last value; keys beyond the limit are counted as dropped.
#[derive(Debug)]
pub(crate) struct AttrList<'a> {
    pub(crate) items: Vec<(&'a str, Typed<'a>)>,
    limit: usize,
    max_len: Option<usize>,
    pub(crate) dropped: u32,
    /// Bit `n` (`n` < 63; 63: any longer) set when a key of `n` bytes is in the list: a key of
    /// a length not seen yet is new without a look at the others.
    lengths: u64,
}

impl<'a> AttrList<'a> {
    fn new(mut items: Vec<(&'a str, Typed<'a>)>, limit: usize, max_len: Option<usize>) -> Self {
        items.clear();
        AttrList {
            items,
            limit,
            max_len,
            dropped: 0,
            lengths: 0,
        }
    }

    fn push(&mut self, key: &'a str, value: &'a str) {
        let (key, ty) = semconv::typed_key(key);
        self.push_typed(key, ty, value);
    }

    /// [`push`](AttrList::push) of a key already typed.
    fn push_typed(&mut self, key: &'a str, ty: ValueType, value: &'a str) {
        let value = Typed::new(ty, value, self.max_len);
        let bit = 1u64 << key.len().min(63);
        let seen = if self.lengths & bit == 0 {
            None
        } else {
            self.items.iter().position(|(k, _)| *k == key)
        };
        match seen {
            Some(i) => self.items[i].1 = value,
            None if self.items.len() < self.limit => {
                self.lengths |= bit;
                self.items.push((key, value));
            }
            None => self.dropped += 1,
        }
    }

    /// Writes the list into `list` in place (recycled entries refilled, the rest to the spare
    /// pool); returns the dropped count.
    fn fill(&self, list: &mut Vec<KeyValue>, spare: &mut Spare) -> u32 {
        for (i, (key, value)) in self.items.iter().enumerate() {
            if i == list.len() {
                list.push(spare.kvs.pop().unwrap_or_default());
            }
            let kv = &mut list[i];
            set_str(&mut kv.key, key);
            let buf = match kv.value.take().and_then(|v| v.value) {
                Some(Value::StringValue(s)) => s,
                _ => spare.string(),
            };
            let (value, unused) = value.to_proto(buf);
            if let Some(s) = unused {
                spare.keep_string(s);
            }
            kv.key_strindex = 0;
            kv.value = Some(AnyValue { value: Some(value) });
        }
        for kv in list.drain(self.items.len()..) {
            spare.keep_kv(kv);
        }
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::borrow::Cow;

    use fastrace::collector::{SpanId, TraceId};

    use super::*;

    #[test]
    fn key_cache_answers_as_the_classification_whatever_it_evicts() {
        // More static keys than slots, some typed, some reserved, each asked for three times
        // in a row and again after all the others: every answer is the key's own class.
        let keys: Vec<&'static str> = (0..3 * KEY_CACHE_SLOTS)
            .map(|i| {
                let key = match i % 4 {
                    0 => format!("app.key.{i}"),
                    1 => format!("app.count.{i}__int"),
                    2 => format!("tracewire.unknown.{i}"),
                    _ => semconv_key(i),
                };
                &*Box::leak(key.into_boxed_str())
            })
            .collect();
        let mut cache = KeyCache::default();
        for _ in 0..2 {
            for &key in &keys {
                for _ in 0..3 {
                    assert_eq!(cache.class(&Cow::Borrowed(key)), KeyClass::of(key), "{key}");
                }
            }
        }
        let owned = Cow::Owned("http.response.status_code".to_owned());
        assert_eq!(
            cache.class(&owned),
            KeyClass::of("http.response.status_code")
        );
    }

    fn semconv_key(i: usize) -> String {
        [
            "http.response.status_code",
            "span.kind",
            "server.port",
            "otel.status_code",
        ][i % 16 / 4]
            .to_owned()
    }

    fn record(props: &[(&'static str, &'static str)]) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(0x0af7651916cd43dd8448eb211c80319c),
            span_id: SpanId(0xb7ad6b7169203331),
            parent_id: SpanId(0x00f067aa0ba902b7),
            begin_time_unix_ns: 1_000,
            duration_ns: 500,
            name: Cow::Borrowed("GET /users/{id}"),
            properties: props
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
                .collect(),
            events: vec![],
            links: vec![],
        }
    }

    fn int(span: &Span, key: &str) -> Option<i64> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::IntValue(i) => Some(*i),
                _ => None,
            })
    }

    #[test]
    fn links_carry_their_own_attributes_and_remote_flag() {
        let a = SpanId(0xaaaa);
        let b = SpanId(0xbbbb);
        let key_a = tracewire_core::reserved::link_attribute_key(a, "messaging.message.id");
        let key_b = tracewire_core::reserved::link_attribute_key(b, "messaging.message.id");
        let size_b = tracewire_core::reserved::link_attribute_key(b, "messaging.message.body.size");
        let mut r = record(&[("span.kind", "consumer")]);
        r.properties.extend([
            (Cow::Owned(key_b), Cow::Borrowed("m-b")),
            (Cow::Owned(key_a), Cow::Borrowed("m-a")),
            tracewire_core::reserved::link_remote(a),
            (Cow::Owned(size_b), Cow::Borrowed("12")),
        ]);
        r.links = vec![
            SpanContext::new(TraceId(1), a),
            SpanContext::new(TraceId(2), b),
            SpanContext::new(TraceId(3), SpanId(0xcccc)),
        ];
        let span = map_span(r, &SpanLimits::default());
        assert!(
            span.attributes
                .iter()
                .all(|kv| !kv.key.starts_with("tracewire")),
            "{:?}",
            span.attributes
        );
        let [la, lb, lc] = &span.links[..] else {
            panic!("{:?}", span.links)
        };
        assert_eq!(la.flags, 0x01 | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE);
        assert_eq!(lb.flags, 0x01 | FLAG_HAS_IS_REMOTE);
        assert_eq!(la.attributes.len(), 1);
        assert_eq!(la.attributes[0].key, "messaging.message.id");
        assert_eq!(lb.attributes.len(), 2);
        assert_eq!(
            int(
                &Span {
                    attributes: lb.attributes.clone(),
                    ..Span::default()
                },
                "messaging.message.body.size"
            ),
            Some(12)
        );
        assert!(lc.attributes.is_empty());

        // A link to the span's own remote parent is remote without a property of its own.
        let mut r = record(&[
            ("span.kind", "consumer"),
            ("tracewire.parent.remote", "true"),
        ]);
        r.links = vec![SpanContext::new(r.trace_id, r.parent_id)];
        let span = map_span(r, &SpanLimits::default());
        assert_eq!(
            span.links[0].flags,
            0x01 | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE
        );
    }

    #[test]
    fn trim_is_str_trim() {
        for s in [
            "",
            " ",
            "42",
            " 42",
            "42 ",
            "\x0b7\x0b",
            "\t1\n",
            "\u{a0}5",
            "5\u{3000}",
            "x",
            "é1é",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn remembered_key_classes_are_the_classes() {
        let keys: Vec<&'static str> = vec![
            "span.kind",
            "otel.status_code",
            "span.status_description",
            "tracewire.trace_flags",
            "n:int",
            "http.response.status_code",
            "url.path",
        ];
        let mut cache = KeyCache::default();
        // Twice: the second round reads what the first remembered.
        for _ in 0..2 {
            for k in &keys {
                assert_eq!(cache.class(&Cow::Borrowed(k)), KeyClass::of(k), "{k}");
                assert_eq!(cache.class(&Cow::Owned(k.to_string())), KeyClass::of(k));
            }
        }
        // A string at the same address but shorter is another key.
        let long: &'static str = "url.path.extra";
        assert_eq!(cache.class(&Cow::Borrowed(long)), KeyClass::of(long));
        assert_eq!(
            cache.class(&Cow::Borrowed(&long[..8])),
            KeyClass::of("url.path")
        );
        assert_eq!(
            KeyClass::of("n:int"),
            KeyClass::Attribute {
                len: 1,
                ty: ValueType::Int
            }
        );
    }

    #[test]
    fn fastrace_opentelemetry_status_keys_are_read_too() {
        let span = map_span(
            record(&[
                ("span.kind", "client"),
                ("span.status_code", "error"),
                ("span.status_description", "refused"),
            ]),
            &SpanLimits::default(),
        );
        let status = span.status.unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "refused");
        assert_eq!(span.kind, ProtoKind::Client as i32);
        assert!(span.attributes.is_empty(), "{:?}", span.attributes);
        let ok = map_span(
            record(&[("span.status_code", "OK")]),
            &SpanLimits::default(),
        );
        assert_eq!(ok.status.unwrap().code, StatusCode::Ok as i32);
    }

    #[test]
    fn maps_ids_kind_status_flags_and_typed_attributes() {
        let span = map_span(
            record(&[
                ("span.kind", "server"),
                ("http.response.status_code", "503"),
                ("retries:int", "3"),
                ("ratio:double", "0.5"),
                ("cached:bool", "true"),
                ("tags:string[]", r#"["a","b"]"#),
                ("server.port", "not-a-number"),
                ("otel.status_code", "ERROR"),
                ("otel.status_description", "upstream down"),
                ("tracewire.trace_flags", "03"),
                ("tracewire.parent.remote", "true"),
                ("tracewire.tracestate", "rojo=00f067aa0ba902b7"),
                ("tracewire.future_key", "x"),
            ]),
            &SpanLimits::default(),
        );
        assert_eq!(
            span.trace_id,
            0x0af7651916cd43dd8448eb211c80319c_u128.to_be_bytes()
        );
        assert_eq!(span.parent_span_id, 0x00f067aa0ba902b7_u64.to_be_bytes());
        assert_eq!(span.kind, ProtoKind::Server as i32);
        assert_eq!(span.end_time_unix_nano, 1_500);
        assert_eq!(span.flags & 0xff, 0x03);
        assert_eq!(span.flags & 0x300, 0x300);
        assert_eq!(span.trace_state, "rojo=00f067aa0ba902b7");
        let status = span.status.as_ref().unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "upstream down");
        assert_eq!(int(&span, "http.response.status_code"), Some(503));
        assert_eq!(int(&span, "retries"), Some(3));
        let keys: Vec<_> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.response.status_code",
                "retries",
                "ratio",
                "cached",
                "tags",
                "server.port"
            ]
        );
        let value = |k: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key == k)
                .unwrap()
                .value
                .clone()
                .unwrap()
                .value
                .unwrap()
        };
        assert_eq!(value("ratio"), Value::DoubleValue(0.5));
        assert_eq!(value("cached"), Value::BoolValue(true));
        assert_eq!(
            value("server.port"),
            Value::StringValue("not-a-number".into())
        );
        match value("tags") {
            Value::ArrayValue(a) => assert_eq!(a.values.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spans_take_their_nearest_recorded_ancestors_flags_and_tracestate() {
        let at = |span: u64, parent: u64, props: &[(&'static str, &'static str)]| SpanRecord {
            span_id: SpanId(span),
            parent_id: SpanId(parent),
            ..record(props)
        };
        // root (00, k=v) → internal → client (its own 00, k=v2) → internal
        let root = at(
            1,
            0,
            &[
                ("tracewire.trace_flags", "00"),
                ("tracewire.tracestate", "k=v"),
            ],
        );
        let inner = at(2, 1, &[]);
        let client = at(
            3,
            2,
            &[
                ("span.kind", "client"),
                ("tracewire.trace_flags", "00"),
                ("tracewire.tracestate", "k=v2"),
            ],
        );
        let deep = at(4, 3, &[]);
        let orphan = SpanRecord {
            trace_id: TraceId(7),
            ..at(5, 99, &[])
        };
        let mut report = vec![deep, inner, client, root, orphan];
        inherit_trace_context(&mut report);
        // Exported in separate batches: each span carries its own values now.
        let mapped: Vec<Span> = report
            .into_iter()
            .map(|r| map_spans(vec![r], &SpanLimits::default()).remove(0))
            .collect();
        let by_id = |id: u64| {
            mapped
                .iter()
                .find(|s| s.span_id == id.to_be_bytes())
                .unwrap()
        };
        assert_eq!(
            (by_id(2).flags & 0xff, by_id(2).trace_state.as_str()),
            (0x00, "k=v")
        );
        assert_eq!(
            (by_id(4).flags & 0xff, by_id(4).trace_state.as_str()),
            (0x00, "k=v2")
        );
        assert_eq!(
            (by_id(3).flags & 0xff, by_id(3).trace_state.as_str()),
            (0x00, "k=v2")
        );
        // No recorded ancestor: sampled, no tracestate.
        assert_eq!(
            (by_id(5).flags & 0xff, by_id(5).trace_state.as_str()),
            (0x01, "")
        );
        // A parent-id cycle ends the walk.
        let mut cycle = vec![at(10, 11, &[]), at(11, 10, &[])];
        inherit_trace_context(&mut cycle);
        assert!(cycle.iter().all(|r| r.properties.is_empty()));
    }

    #[test]
    fn limits_count_what_they_drop() {
        let limits = SpanLimits {
            attribute_count: 2,
            attribute_value_length: Some(3),
            event_count: 1,
            ..SpanLimits::default()
        };
        let mut r = record(&[("a", "abcdef"), ("b", "é€xyz"), ("c", "1"), ("a", "zz")]);
        r.events = vec![
            EventRecord {
                name: "e1".into(),
                timestamp_unix_ns: 1,
                properties: vec![],
            },
            EventRecord {
                name: "e2".into(),
                timestamp_unix_ns: 2,
                properties: vec![],
            },
        ];
        let span = map_span(r, &limits);
        assert_eq!(span.attributes.len(), 2);
        assert_eq!(span.dropped_attributes_count, 1);
        assert_eq!(
            span.attributes[1].value.clone().unwrap().value.unwrap(),
            Value::StringValue("é€x".into())
        );
        assert_eq!(
            span.attributes[0].value.clone().unwrap().value.unwrap(),
            Value::StringValue("zz".into())
        );
        assert_eq!(span.events.len(), 1);
        assert_eq!(span.dropped_events_count, 1);
    }

    #[test]
    fn recycled_spans_map_exactly_like_fresh_ones() {
        let mut with_everything = record(&[
            ("span.kind", "server"),
            ("http.response.status_code", "503"),
            ("a", "long string value that leaves capacity behind"),
            ("otel.status_code", "ERROR"),
            ("otel.status_description", "boom"),
            ("tracewire.trace_flags", "03"),
            ("tracewire.tracestate", "k=v"),
            ("tracewire.parent.remote", "true"),
            ("tags:string[]", r#"["x"]"#),
        ]);
        with_everything.events = vec![EventRecord {
            name: "e".into(),
            timestamp_unix_ns: 5,
            properties: vec![(Cow::Borrowed("k"), Cow::Borrowed("v"))],
        }];
        with_everything.links = vec![SpanContext::new(TraceId(1), SpanId(2))];
        let plain = |id| SpanRecord {
            trace_id: TraceId(99),
            span_id: SpanId(id),
            parent_id: SpanId(0),
            ..record(&[("a", "1"), ("server.port", "80")])
        };
        let limits = SpanLimits {
            attribute_count: 3,
            ..SpanLimits::default()
        };
        let mut mapper = Mapper::new(limits.clone());
        for _ in 0..3 {
            let first = mapper.map(vec![with_everything.clone(), plain(1)]);
            assert_eq!(
                first,
                map_spans(vec![with_everything.clone(), plain(1)], &limits)
            );
            mapper.recycle(first);
            // Recycled buffers of the rich span are refilled with plain spans and back.
            let second = mapper.map(vec![plain(2), plain(3), with_everything.clone()]);
            assert_eq!(
                second,
                map_spans(vec![plain(2), plain(3), with_everything.clone()], &limits)
            );
            mapper.recycle(second);
        }
    }
}
