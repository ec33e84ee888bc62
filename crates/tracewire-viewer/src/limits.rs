//! Span limits: what one span (and its resource and scope) may hold once stored.
//!
//! Like the OpenTelemetry SDK's span limits, applied by the viewer at ingest, before anything is
//! stored or indexed: what is over a count is dropped (and added to the span's, event's or
//! link's `dropped_*_count`, as the SDK does), what is over a length is cut at a UTF-8 character
//! boundary. Every drop and cut is counted in [`StoreStats`](crate::store::StoreStats), so a
//! sender that exceeds the limits shows up in `GET /tw/api/stats`.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

/// The limits applied to every received span, resource and scope.
///
/// The counts default to the OpenTelemetry SDK's span limits (128). The lengths are the viewer's
/// own: the SDK leaves attribute values unlimited by default, which lets one span carry
/// megabytes that every read would then render.
///
/// | limit | default | applies to |
/// |---|---|---|
/// | `max_attributes` | 128 | attributes of a span, of a resource, of a scope |
/// | `max_events` | 128 | events of a span |
/// | `max_links` | 128 | links of a span |
/// | `max_attributes_per_event` | 128 | attributes of one event |
/// | `max_attributes_per_link` | 128 | attributes of one link |
/// | `max_value_len` | 16 KiB | bytes of a string or bytes value (also inside arrays and maps), a status message, a tracestate, a schema URL |
/// | `max_value_elements` | 128 | elements of one array or map value, nested ones included |
/// | `max_name_len` | 256 | bytes of a span name, event name, attribute key, service name, scope name and version |
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanLimits {
    /// Attributes kept per span, per resource and per scope.
    pub max_attributes: usize,
    /// Events kept per span.
    pub max_events: usize,
    /// Links kept per span.
    pub max_links: usize,
    /// Attributes kept per event.
    pub max_attributes_per_event: usize,
    /// Attributes kept per link.
    pub max_attributes_per_link: usize,
    /// Bytes kept of a string or bytes value (each string of an array or map too), of a status
    /// message, a tracestate and a schema URL.
    pub max_value_len: usize,
    /// Elements kept of one array or map attribute value, counting nested arrays and maps.
    pub max_value_elements: usize,
    /// Bytes kept of a span or event name, an attribute key, a service name (the resource's
    /// `service.name`), a scope name and version.
    pub max_name_len: usize,
}

/// Default per-span count limits (the OpenTelemetry SDK's).
pub(crate) const DEFAULT_MAX_COUNT: usize = 128;
/// Default byte limit of a value: 16 KiB (a typical stack trace fits).
pub(crate) const DEFAULT_MAX_VALUE_LEN: usize = 16 * 1024;
/// Default byte limit of a name or key.
pub(crate) const DEFAULT_MAX_NAME_LEN: usize = 256;

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            max_attributes: DEFAULT_MAX_COUNT,
            max_events: DEFAULT_MAX_COUNT,
            max_links: DEFAULT_MAX_COUNT,
            max_attributes_per_event: DEFAULT_MAX_COUNT,
            max_attributes_per_link: DEFAULT_MAX_COUNT,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            max_value_elements: DEFAULT_MAX_COUNT,
            max_name_len: DEFAULT_MAX_NAME_LEN,
        }
    }
}

/// What applying the limits did (summed into the store's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Attributes dropped (of spans, events, links, resources, scopes).
    pub(crate) attributes: u64,
    /// Events dropped.
    pub(crate) events: u64,
    /// Links dropped.
    pub(crate) links: u64,
    /// Strings, byte strings, names and value elements cut.
    pub(crate) truncated: u64,
}

impl Applied {
    pub(crate) fn any(&self) -> bool {
        *self != Applied::default()
    }

    pub(crate) fn add(&mut self, o: Applied) {
        self.attributes += o.attributes;
        self.events += o.events;
        self.links += o.links;
        self.truncated += o.truncated;
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary; counts a cut.
pub(crate) fn truncate_str(s: &mut String, max: usize, out: &mut Applied) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.shrink_to_fit();
        out.truncated += 1;
    }
}

fn truncate_bytes(b: &mut Vec<u8>, max: usize, out: &mut Applied) {
    if b.len() > max {
        b.truncate(max);
        b.shrink_to_fit();
        out.truncated += 1;
    }
}

/// Drops entries past `max` from `v`; returns how many were dropped.
fn cap<T>(v: &mut Vec<T>, max: usize) -> u32 {
    if v.len() <= max {
        return 0;
    }
    let dropped = v.len() - max;
    v.truncate(max);
    v.shrink_to_fit();
    u32::try_from(dropped).unwrap_or(u32::MAX)
}

/// Drops entries past `max` from `v` and adds how many to its `dropped_*_count`; returns how
/// many.
fn drop_past<T>(v: &mut Vec<T>, max: usize, dropped_count: &mut u32) -> u64 {
    let dropped = cap(v, max);
    *dropped_count = dropped_count.saturating_add(dropped);
    u64::from(dropped)
}

/// Keeps as many elements of an array or map value as `budget` allows, taking them from it;
/// counts a cut.
fn take_elements<T>(v: &mut Vec<T>, budget: &mut usize, out: &mut Applied) {
    if cap(v, *budget) > 0 {
        out.truncated += 1;
    }
    *budget -= v.len();
}

impl SpanLimits {
    /// Limits a value; `budget` is what is left of `max_value_elements` for this attribute.
    fn value(&self, v: &mut AnyValue, budget: &mut usize, out: &mut Applied) {
        match &mut v.value {
            Some(Value::StringValue(s)) => truncate_str(s, self.max_value_len, out),
            Some(Value::BytesValue(b)) => truncate_bytes(b, self.max_value_len, out),
            Some(Value::ArrayValue(a)) => {
                take_elements(&mut a.values, budget, out);
                for e in &mut a.values {
                    self.value(e, budget, out);
                }
            }
            Some(Value::KvlistValue(l)) => {
                take_elements(&mut l.values, budget, out);
                for kv in &mut l.values {
                    truncate_str(&mut kv.key, self.max_name_len, out);
                    if let Some(v) = &mut kv.value {
                        self.value(v, budget, out);
                    }
                }
            }
            _ => {}
        }
    }

    /// Limits a list of attributes to `max` entries, the dropped ones added to its
    /// `dropped_attributes_count`.
    fn attributes(
        &self,
        kvs: &mut Vec<KeyValue>,
        max: usize,
        dropped_count: &mut u32,
        out: &mut Applied,
    ) {
        out.attributes += drop_past(kvs, max, dropped_count);
        for kv in kvs.iter_mut() {
            truncate_str(&mut kv.key, self.max_name_len, out);
            if let Some(v) = &mut kv.value {
                let mut budget = self.max_value_elements;
                self.value(v, &mut budget, out);
            }
        }
    }

    /// Applies the limits to a span, adding what was dropped to its `dropped_*_count` fields.
    pub(crate) fn apply_span(&self, span: &mut Span) -> Applied {
        let mut out = Applied::default();
        truncate_str(&mut span.name, self.max_name_len, &mut out);
        truncate_str(&mut span.trace_state, self.max_value_len, &mut out);
        if let Some(st) = &mut span.status {
            truncate_str(&mut st.message, self.max_value_len, &mut out);
        }
        self.attributes(
            &mut span.attributes,
            self.max_attributes,
            &mut span.dropped_attributes_count,
            &mut out,
        );
        out.events += drop_past(
            &mut span.events,
            self.max_events,
            &mut span.dropped_events_count,
        );
        for e in &mut span.events {
            truncate_str(&mut e.name, self.max_name_len, &mut out);
            self.attributes(
                &mut e.attributes,
                self.max_attributes_per_event,
                &mut e.dropped_attributes_count,
                &mut out,
            );
        }
        out.links += drop_past(
            &mut span.links,
            self.max_links,
            &mut span.dropped_links_count,
        );
        for l in &mut span.links {
            truncate_str(&mut l.trace_state, self.max_value_len, &mut out);
            self.attributes(
                &mut l.attributes,
                self.max_attributes_per_link,
                &mut l.dropped_attributes_count,
                &mut out,
            );
        }
        out
    }

    /// Applies the limits to a resource (its `service.name` is a name: `max_name_len`).
    pub(crate) fn apply_resource(&self, r: &mut Resource, schema_url: &mut String) -> Applied {
        let mut out = Applied::default();
        truncate_str(schema_url, self.max_value_len, &mut out);
        self.attributes(
            &mut r.attributes,
            self.max_attributes,
            &mut r.dropped_attributes_count,
            &mut out,
        );
        for kv in &mut r.attributes {
            if kv.key == crate::util::SERVICE_NAME {
                if let Some(AnyValue {
                    value: Some(Value::StringValue(s)),
                }) = &mut kv.value
                {
                    truncate_str(s, self.max_name_len, &mut out);
                }
            }
        }
        // Entity references are not shown; keep them small all the same.
        let refs = cap(&mut r.entity_refs, self.max_attributes);
        out.truncated += u64::from(refs.min(1));
        for e in &mut r.entity_refs {
            truncate_str(&mut e.schema_url, self.max_value_len, &mut out);
            truncate_str(&mut e.r#type, self.max_name_len, &mut out);
            for keys in [&mut e.id_keys, &mut e.description_keys] {
                if cap(keys, self.max_attributes) > 0 {
                    out.truncated += 1;
                }
                for k in keys.iter_mut() {
                    truncate_str(k, self.max_name_len, &mut out);
                }
            }
        }
        out
    }

    /// Applies the limits to an instrumentation scope.
    pub(crate) fn apply_scope(
        &self,
        s: &mut InstrumentationScope,
        schema_url: &mut String,
    ) -> Applied {
        let mut out = Applied::default();
        truncate_str(schema_url, self.max_value_len, &mut out);
        truncate_str(&mut s.name, self.max_name_len, &mut out);
        truncate_str(&mut s.version, self.max_name_len, &mut out);
        self.attributes(
            &mut s.attributes,
            self.max_attributes,
            &mut s.dropped_attributes_count,
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::trace::v1::span::Event;

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(Value::StringValue(v.into())),
        }
    }

    #[test]
    fn strings_are_cut_at_a_character_boundary() {
        let mut out = Applied::default();
        let mut v = "ééé".to_owned(); // 6 bytes
        truncate_str(&mut v, 3, &mut out);
        assert_eq!(v, "é");
        assert_eq!(out.truncated, 1);
        let mut short = "ok".to_owned();
        truncate_str(&mut short, 3, &mut out);
        assert_eq!((short.as_str(), out.truncated), ("ok", 1));
    }

    #[test]
    fn counts_go_to_the_dropped_fields_and_the_tally() {
        let limits = SpanLimits {
            max_attributes: 2,
            max_events: 1,
            max_attributes_per_event: 1,
            max_value_len: 4,
            max_value_elements: 3,
            max_name_len: 5,
            ..SpanLimits::default()
        };
        let mut span = Span {
            name: "a-long-name".into(),
            attributes: (0..5)
                .map(|i| KeyValue {
                    key: format!("key-{i}"),
                    value: Some(s("value")),
                    ..Default::default()
                })
                .collect(),
            dropped_attributes_count: 7,
            events: vec![
                Event {
                    name: "e".into(),
                    attributes: vec![KeyValue::default(), KeyValue::default()],
                    ..Default::default()
                },
                Event::default(),
            ],
            ..Default::default()
        };
        span.attributes[0].value = Some(AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![
                    s("x"),
                    AnyValue {
                        value: Some(Value::ArrayValue(ArrayValue {
                            values: vec![s("y"), s("z"), s("w")],
                        })),
                    },
                    s("v"),
                ],
            })),
        });
        let out = limits.apply_span(&mut span);
        assert_eq!(span.name, "a-lon");
        assert_eq!(span.attributes.len(), 2);
        assert_eq!(span.dropped_attributes_count, 7 + 3);
        assert_eq!(span.attributes[1].key, "key-1");
        assert_eq!(span.attributes[1].value, Some(s("valu")));
        // 3 elements in all: the outer three use the budget, the nested array is emptied
        let Some(Value::ArrayValue(a)) = &span.attributes[0].value.as_ref().unwrap().value else {
            panic!("array");
        };
        assert_eq!(a.values.len(), 3);
        assert!(matches!(&a.values[1].value, Some(Value::ArrayValue(n)) if n.values.is_empty()));
        assert_eq!((span.events.len(), span.dropped_events_count), (1, 1));
        assert_eq!(span.events[0].attributes.len(), 1);
        assert_eq!(span.events[0].dropped_attributes_count, 1);
        assert_eq!(out.attributes, 3 + 1);
        assert_eq!(out.events, 1);
        // the span name, one string value, the nested array
        assert_eq!(out.truncated, 3, "{out:?}");
    }
}
