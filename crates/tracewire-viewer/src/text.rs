//! The per-trace search text behind free-text queries.
//!
//! Every stored trace keeps one lowercase byte string holding each searchable field of its spans
//! (span names, service names, attribute keys and values, event names and event attribute
//! values, status messages, span ids in hex), each field preceded by a `\0` separator. A field
//! whose text is already in the trace's text is not added again (keys, services, statuses and
//! many values repeat across the spans of a trace), which halves its size. A free-text query lowercases its needle once, prebuilds one
//! [`memchr::memmem::Finder`] and runs it over each candidate trace's text: a sequential memory
//! scan instead of a walk over every span's proto structs.
//!
//! The result is exactly that of [`crate::query::contains_text`] over the trace's spans: a
//! needle without `\0` cannot match across a separator, so it matches the text iff it is a
//! substring of one lowercased field. Numbers are stored rendered; a needle that is not
//! "numeric" (digits, `.`, `-`, `e`, `+`) cannot occur inside a rendered number, just as the
//! span walk skips numbers for such needles (non-finite doubles keep only what a numeric
//! needle could match: `-` of `-inf`). Span ids are only hex digits, which is what the span walk
//! requires of a needle before comparing it to one. A needle holding `\0` falls back to the
//! span walk.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write as _;

use memchr::memmem::Finder;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};

use crate::span::StoredSpan;
use crate::util;

/// Separator between fields; a needle containing it takes the slow path.
const SEP: u8 = 0;

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The fields already in a trace's text (hash -> offset), kept while a batch is ingested so a
/// repeated field is stored once. A hash hit is only trusted after comparing the bytes.
#[derive(Default)]
pub(crate) struct Fields {
    seen: HashMap<u64, u32, BuildHasherDefault<PreHashed>>,
}

impl Fields {
    /// The fields of an existing text.
    pub(crate) fn of(text: &[u8]) -> Self {
        let mut f = Fields::default();
        let mut start = 0;
        for piece in text.split(|b| *b == SEP) {
            if !piece.is_empty() {
                f.seen.entry(fnv(piece)).or_insert(start as u32);
            }
            start += piece.len() + 1;
        }
        f
    }
}

/// Appends one field, lowercased, unless `fields` shows the same text is already there.
fn push_field(text: &mut Vec<u8>, fields: &mut Fields, field: &str) {
    let start = text.len();
    text.push(SEP);
    if field.is_ascii() {
        text.extend(field.bytes().map(|b| b.to_ascii_lowercase()));
    } else {
        text.extend_from_slice(field.to_lowercase().as_bytes());
    }
    dedup(text, fields, start);
}

/// Drops the field appended at `start` (its separator) if its text is already stored.
fn dedup(text: &mut Vec<u8>, fields: &mut Fields, start: usize) {
    let Some(new) = text.get(start + 1..) else {
        return;
    };
    let Ok(offset) = u32::try_from(start + 1) else {
        return; // a text over 4 GiB: no more deduplication
    };
    match fields.seen.entry(fnv(new)) {
        std::collections::hash_map::Entry::Occupied(e) => {
            let at = *e.get() as usize;
            if text.get(at..at + new.len()) == Some(new) && at + new.len() <= start {
                text.truncate(start);
            }
        }
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(offset);
        }
    }
}

/// Appends an attribute value as the span walk compares it.
fn push_value(text: &mut Vec<u8>, fields: &mut Fields, v: &AnyValue) {
    match &v.value {
        None => {}
        Some(Value::StringValue(s)) => push_field(text, fields, s),
        Some(Value::BoolValue(b)) => push_field(text, fields, if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => {
            let start = text.len();
            text.push(SEP);
            let _ = write!(text, "{i}");
            dedup(text, fields, start);
        }
        Some(Value::DoubleValue(d)) => {
            if d.is_finite() {
                let start = text.len();
                text.push(SEP);
                let _ = write!(text, "{d}");
                dedup(text, fields, start);
            } else if *d == f64::NEG_INFINITY {
                // "-inf": only its "-" can match a numeric needle
                push_field(text, fields, "-");
            }
        }
        Some(_) => push_field(text, fields, &util::value_text(v)),
    }
}

/// Appends the searchable fields of one span (those not already in `text` per `fields`).
pub(crate) fn push_span(text: &mut Vec<u8>, fields: &mut Fields, s: &StoredSpan) {
    push_field(text, fields, &s.span.name);
    push_field(text, fields, &s.origin.service);
    for kv in &s.span.attributes {
        push_field(text, fields, &kv.key);
        if let Some(v) = &kv.value {
            push_value(text, fields, v);
        }
    }
    for e in &s.span.events {
        push_field(text, fields, &e.name);
        for kv in &e.attributes {
            if let Some(v) = &kv.value {
                push_value(text, fields, v);
            }
        }
    }
    if let Some(st) = &s.span.status {
        if !st.message.is_empty() {
            push_field(text, fields, &st.message);
        }
    }
    // unique per span: not worth a lookup
    text.push(SEP);
    text.extend_from_slice(util::hex(&s.span.span_id).as_bytes());
}

/// The search text of a whole trace.
pub(crate) fn build(spans: &[StoredSpan]) -> Vec<u8> {
    let mut text = Vec::new();
    let mut fields = Fields::default();
    for s in spans {
        push_span(&mut text, &mut fields, s);
    }
    text.shrink_to_fit();
    text
}

/// A free-text needle, prepared once per query.
pub(crate) struct TextQuery {
    lower: String,
    finder: Option<Finder<'static>>,
}

impl TextQuery {
    /// Lowercases `text` and builds its finder.
    pub(crate) fn new(text: &str) -> Self {
        let lower = text.to_lowercase();
        let finder =
            (!lower.as_bytes().contains(&SEP)).then(|| Finder::new(lower.as_bytes()).into_owned());
        TextQuery { lower, finder }
    }

    /// Whether the trace with this search text and these spans contains the needle. A `stale`
    /// text (it still holds a replaced span's fields) is not used: the spans are walked.
    pub(crate) fn matches(&self, text: &[u8], spans: &[StoredSpan], stale: bool) -> bool {
        match &self.finder {
            Some(f) if !stale => f.find(text).is_some(),
            _ => spans
                .iter()
                .any(|s| crate::query::contains_text(s, &self.lower)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    use super::*;
    use crate::query::Query;
    use crate::store::{Store, StoreConfig};

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn span(trace: u8, id: u8, name: &str) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![0, 0, 0, 0, 0, 0, 0xab, id],
            name: name.into(),
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            ..Default::default()
        }
    }

    fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue(service.into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        }
    }

    /// A store with trace 1 holding one of each field kind, and a plain trace 2.
    fn store() -> Store {
        let store = Store::new(StoreConfig::default());
        let mut rich = span(1, 1, "Charge Card");
        rich.attributes = vec![
            kv("Payment.Provider", Value::StringValue("ÉCOLE-Pay".into())),
            kv("retry.count", Value::IntValue(-42)),
            kv("amount", Value::DoubleValue(12.75)),
            kv("fraud.checked", Value::BoolValue(true)),
            kv("raw", Value::BytesValue(vec![0xde, 0xad])),
            kv(
                "tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue("VIP".into())),
                    }],
                }),
            ),
            kv("limit", Value::DoubleValue(f64::NEG_INFINITY)),
            kv("ratio", Value::DoubleValue(f64::NAN)),
        ];
        rich.events = vec![Event {
            name: "Retry Scheduled".into(),
            attributes: vec![kv("event.key.only", Value::StringValue("Backoff".into()))],
            ..Default::default()
        }];
        rich.status = Some(Status {
            code: 2,
            message: "Card Declined".into(),
        });
        store.ingest(request("Payments-Svc", vec![rich]));
        store.ingest(request("frontend", vec![span(2, 2, "GET /")]));
        store
    }

    fn hits(store: &Store, text: &str) -> Vec<u8> {
        let q = Query {
            text: Some(text.into()),
            limit: 0,
            ..Default::default()
        };
        let mut v: Vec<u8> = store.search_ids(&q).iter().map(|id| id[0]).collect();
        v.sort();
        v
    }

    #[test]
    fn free_text_finds_each_field_kind_and_misses() {
        let store = store();
        for (needle, kind) in [
            ("charge c", "span name"),
            ("payments-svc", "service name"),
            ("PAYMENT.provider", "attribute key"),
            ("école-pay", "non-ASCII string value, other case"),
            ("-42", "int value"),
            ("12.75", "double value"),
            ("true", "bool value"),
            ("dead", "bytes value (hex)"),
            ("\"vip\"", "array value (JSON)"),
            ("retry sched", "event name"),
            ("backoff", "event attribute value"),
            ("declined", "status message"),
            ("00000000000000ab01", "span id (too long: misses)"),
            ("0000ab01", "span id hex"),
        ] {
            let want: Vec<u8> = if kind.contains("misses") {
                vec![]
            } else {
                vec![1]
            };
            assert_eq!(hits(&store, needle), want, "{needle:?} ({kind})");
        }
        // both traces
        assert_eq!(hits(&store, "0000ab"), vec![1, 2]);
        assert_eq!(hits(&store, ""), vec![1, 2]);
        assert_eq!(hits(&store, "-"), vec![1], "-42 and -inf");
        // misses: absent text, event attribute keys (not searched), across two fields,
        // non-numeric text inside non-finite doubles, an embedded NUL (slow path)
        for needle in [
            "no-such-text",
            "event.key.only",
            "charge cardpayments",
            "card\u{0}payments",
            "inf",
            "nan",
            "fraud.checkedtrue",
        ] {
            assert_eq!(hits(&store, needle), Vec::<u8>::new(), "{needle:?}");
        }
    }

    #[test]
    fn same_result_as_the_span_walk() {
        let store = store();
        let traces = [
            store.trace(&[1; 16]).unwrap(),
            store.trace(&[2; 16]).unwrap(),
        ];
        for needle in [
            "charge", "CARD", "é", "ÉCOLE", "42", "4", "2.7", ".", "e", "+", "-", "ab", "abc", "g",
            "get /", "/", "svc", "dead", "vip", "[", "true", "fals", "x", "\u{0}", "", "declined",
            "backoff", "retry", "provider",
        ] {
            let q = TextQuery::new(needle);
            for spans in &traces {
                let fast = q.matches(&build(spans), spans, false);
                let slow = spans
                    .iter()
                    .any(|s| crate::query::contains_text(s, &needle.to_lowercase()));
                assert_eq!(fast, slow, "{needle:?}");
            }
        }
    }

    #[test]
    fn late_and_replaced_spans_update_the_text() {
        let store = store();
        store.ingest(request("late-svc", vec![span(2, 3, "Late Arrival")]));
        assert_eq!(hits(&store, "late arr"), vec![2]);
        assert_eq!(hits(&store, "late-svc"), vec![2]);
        // the same span again under a new name: the old name is gone
        // (in one batch with a new span, and the replaced span again)
        store.ingest(request(
            "late-svc",
            vec![
                span(2, 3, "Renamed Once"),
                span(2, 4, "Fourth"),
                span(2, 3, "Renamed"),
            ],
        ));
        assert_eq!(hits(&store, "fourth"), vec![2]);
        assert_eq!(hits(&store, "renamed once"), Vec::<u8>::new());
        assert_eq!(hits(&store, "late arr"), Vec::<u8>::new());
        assert_eq!(hits(&store, "renamed"), vec![2]);
        assert_eq!(hits(&store, "late-svc"), vec![2]);
    }
}
