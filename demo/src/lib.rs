#![doc = include_str!("../README.md")]
//!
//! ## This library
//!
//! Support code of the tracewire demo binary (`cargo run --release -p tracewire-demo`): how
//! a trace from the viewer's store is printed, shared by the binary's summary and its
//! end-to-end test. See `demo/README.md` for what the demo shows.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use tracewire_core::semconv;
use tracewire_export::proto::common::v1::{AnyValue, any_value};
use tracewire_export::proto::trace::v1::Span;
use tracewire_export::proto::trace::v1::span::{Link, SpanKind};
use tracewire_export::proto::trace::v1::status::StatusCode;
use tracewire_viewer::store::StoredSpan;

/// The repository README's examples, compiled as doctests here (this crate has every
/// dependency they use) so they cannot drift from the real API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RepositoryReadme;

/// The services of the demo, in call order.
pub const SERVICES: [&str; 4] = ["gateway", "backend", "inventory", "pricing"];

/// The paths the demo asks its gateway for: two that succeed, one unknown item (404 from
/// the inventory, NOT_FOUND over gRPC) and one whose pricing fails (500 → 502, an error
/// all the way up).
pub const REQUESTS: [(&str, u16); 4] = [
    ("/checkout/book", 200),
    ("/checkout/lamp", 200),
    ("/checkout/unicorn", 404),
    ("/checkout/broken", 502),
];

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        Ok(SpanKind::Internal) => "internal",
        _ => "unspecified",
    }
}

fn value_text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// One line per span, indented by parent, children in start order:
/// `service: name [kind] key=value ... ERROR`, with the HTTP / gRPC status code when the span
/// has one, the messaging settlement and batch size, the names (not the values) of captured
/// request headers (`http.request.header.b3=…`), and its links (see [`render_traces`]). A span
/// whose parent is not in the trace is shown at the top level with `(orphan)`: in the demo
/// every trace must have exactly one root and no orphan.
pub fn render_trace(spans: &[StoredSpan]) -> String {
    render_traces(&[spans]).remove(0)
}

/// [`render_trace`] for each trace of `traces`, with the links resolved across all of them:
/// `links=[...]` lists each link as `parent` (the span's own parent: a message's creation
/// context), `service: name` (another span of this trace), `#k service: name` (a span of the
/// k-th trace of `traces`, from 1) or `?` (a span not among them).
pub fn render_traces<S: AsRef<[StoredSpan]>>(traces: &[S]) -> Vec<String> {
    // (trace id, span id) -> (the trace's index, the span)
    let mut where_is: HashMap<SpanKey<'_>, (usize, &StoredSpan)> = HashMap::new();
    for (k, spans) in traces.iter().enumerate() {
        for s in spans.as_ref() {
            where_is.insert(
                (s.span.trace_id.as_slice(), s.span.span_id.as_slice()),
                (k, s),
            );
        }
    }
    traces
        .iter()
        .enumerate()
        .map(|(k, spans)| {
            render_one(spans.as_ref(), |span, link| {
                match where_is.get(&(link.trace_id.as_slice(), link.span_id.as_slice())) {
                    Some((t, _)) if *t == k && link.span_id == span.parent_span_id => {
                        "parent".to_owned()
                    }
                    Some((t, target)) if *t == k => {
                        format!("{}: {}", target.origin.service, target.span.name)
                    }
                    Some((t, target)) => {
                        format!("#{} {}: {}", t + 1, target.origin.service, target.span.name)
                    }
                    None => "?".to_owned(),
                }
            })
        })
        .collect()
}

/// A span's trace id and span id.
type SpanKey<'a> = (&'a [u8], &'a [u8]);

/// The attributes [`render_trace`] shows with their values.
const SHOWN: [&str; 4] = [
    semconv::HTTP_RESPONSE_STATUS_CODE,
    semconv::RPC_GRPC_STATUS_CODE,
    semconv::MESSAGING_SETTLEMENT,
    semconv::MESSAGING_BATCH_MESSAGE_COUNT,
];

fn render_one(spans: &[StoredSpan], link_text: impl Fn(&Span, &Link) -> String) -> String {
    let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span.span_id.as_slice()).collect();
    let mut children: HashMap<&[u8], Vec<&StoredSpan>> = HashMap::new();
    let mut roots = Vec::new();
    for s in spans {
        let parent = s.span.parent_span_id.as_slice();
        if !parent.is_empty() && ids.contains(parent) {
            children.entry(parent).or_default().push(s);
        } else {
            roots.push(s);
        }
    }
    let by_start = |v: &mut Vec<&StoredSpan>| {
        v.sort_by_key(|s| (s.span.start_time_unix_nano, s.span.end_time_unix_nano))
    };
    by_start(&mut roots);
    children.values_mut().for_each(by_start);

    let mut out = String::new();
    let mut stack: Vec<(&StoredSpan, usize)> = roots.into_iter().rev().map(|s| (s, 0)).collect();
    while let Some((s, depth)) = stack.pop() {
        let span = &s.span;
        let _ = write!(
            out,
            "{:indent$}{}: {} [{}]",
            "",
            s.origin.service,
            span.name,
            kind_name(span.kind),
            indent = depth * 2
        );
        if depth == 0 && !span.parent_span_id.is_empty() {
            out.push_str(" (orphan)");
        }
        for a in &span.attributes {
            if SHOWN.contains(&a.key.as_str()) {
                if let Some(v) = &a.value {
                    let _ = write!(out, " {}={}", a.key, value_text(v));
                }
            } else if a.key.starts_with("http.request.header.") {
                // which propagation header was present (its value changes every run)
                let _ = write!(out, " {}=…", a.key);
            }
        }
        if !span.links.is_empty() {
            let links: Vec<String> = span.links.iter().map(|l| link_text(span, l)).collect();
            let _ = write!(out, " links=[{}]", links.join(", "));
        }
        if span.status.as_ref().map(|st| st.code) == Some(StatusCode::Error as i32) {
            out.push_str(" ERROR");
        }
        out.push('\n');
        if let Some(kids) = children.get(span.span_id.as_slice()) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
        }
    }
    out
}

/// The trace ids in lowercase hex.
pub fn hex_id(id: &[u8]) -> String {
    id.iter()
        .fold(String::with_capacity(id.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
    use tracewire_export::proto::common::v1::KeyValue;
    use tracewire_export::proto::resource::v1::Resource;
    use tracewire_export::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use tracewire_viewer::Store;

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn span(id: u8, parent: u8, name: &str, kind: SpanKind, start: u64) -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 10,
            ..Default::default()
        }
    }

    fn batch(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue(service.into()),
                    )],
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

    #[test]
    fn renders_a_tree_across_services_in_start_order() {
        let store = Store::default();
        let mut root = span(1, 0, "GET /a", SpanKind::Server, 100);
        root.attributes = vec![kv(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            any_value::Value::IntValue(502),
        )];
        root.status = Some(Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        });
        let late = span(3, 1, "late", SpanKind::Internal, 300);
        let early = span(2, 1, "early", SpanKind::Client, 200);
        store.ingest(batch("front", vec![late, root, early]));
        let mut remote = span(4, 2, "GET /b", SpanKind::Server, 250);
        remote.attributes = vec![kv(
            "http.request.header.b3",
            any_value::Value::StringValue("x".into()),
        )];
        // its parent (9) never arrives
        let orphan = span(5, 9, "lost", SpanKind::Server, 50);
        store.ingest(batch("back", vec![remote, orphan]));

        let spans = store.trace(&[7; 16]).unwrap();
        assert_eq!(
            render_trace(&spans),
            "back: lost [server] (orphan)\n\
             front: GET /a [server] http.response.status_code=502 ERROR\n\
             \x20 front: early [client]\n\
             \x20   back: GET /b [server] http.request.header.b3=…\n\
             \x20 front: late [internal]\n"
        );
        assert_eq!(hex_id(&[0xab, 0x01]), "ab01");
    }

    #[test]
    fn renders_links_to_the_parent_this_trace_other_traces_and_unknown_spans() {
        use tracewire_export::proto::trace::v1::span::Link;

        let link = |trace: u8, span: u8| Link {
            trace_id: vec![trace; 16],
            span_id: vec![span; 8],
            ..Default::default()
        };
        let store = Store::default();
        let send = span(1, 0, "send q", SpanKind::Producer, 100);
        let mut process = span(2, 1, "process q", SpanKind::Consumer, 200);
        process.links = vec![link(7, 1)];
        store.ingest(batch("a", vec![send, process]));
        let mut other = span(3, 0, "process q", SpanKind::Consumer, 300);
        other.trace_id = vec![8; 16];
        other.links = vec![link(7, 1), link(8, 3), link(9, 9)];
        store.ingest(batch("b", vec![other]));

        let traces = [
            store.trace(&[7; 16]).unwrap(),
            store.trace(&[8; 16]).unwrap(),
        ];
        assert_eq!(
            render_traces(&traces),
            [
                "a: send q [producer]\n  a: process q [consumer] links=[parent]\n",
                "b: process q [consumer] links=[#1 a: send q, b: process q, ?]\n",
            ]
        );
    }
}
