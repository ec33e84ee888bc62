//! Console exporters: the readable tree and OTLP-JSON lines (checked against the OTLP spec's
//! JSON sample, decoded with the official types).
#![allow(clippy::unwrap_used, missing_docs)]

use std::borrow::Cow;
use std::time::Duration;

use fastrace::collector::{EventRecord, Reporter as _, SpanId, SpanRecord, TraceId};
use tracewire_export::console::{ConsoleTree, OtlpJsonLines, render_tree};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{Pipeline, Resource};

fn span(
    id: u64,
    parent: u64,
    name: &'static str,
    props: &[(&'static str, &'static str)],
) -> SpanRecord {
    SpanRecord {
        trace_id: TraceId(0xabc),
        span_id: SpanId(id),
        parent_id: SpanId(parent),
        begin_time_unix_ns: id * 1_000_000,
        duration_ns: 1_500_000,
        name: Cow::Borrowed(name),
        properties: props
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
            .collect(),
        events: vec![],
        links: vec![],
    }
}

fn trace() -> Vec<SpanRecord> {
    let mut db = span(
        3,
        1,
        "SELECT",
        &[
            ("span.kind", "client"),
            ("otel.status_code", "ERROR"),
            ("otel.status_description", "timeout"),
        ],
    );
    db.events.push(EventRecord {
        name: Cow::Borrowed("exception"),
        timestamp_unix_ns: 3,
        properties: vec![(Cow::Borrowed("exception.message"), Cow::Borrowed("timeout"))],
    });
    vec![
        db,
        span(2, 1, "auth", &[]),
        span(
            1,
            0xf00,
            "GET /users/{id}",
            &[
                ("span.kind", "server"),
                ("http.response.status_code", "200"),
                ("tracewire.parent.remote", "true"),
            ],
        ),
    ]
}

#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn tree_is_readable_and_ordered() {
    let out = Shared::default();
    let p = Pipeline::builder()
        .exporter(ConsoleTree::to_writer(out.clone()))
        .build()
        .unwrap();
    p.reporter().report(trace());
    assert!(p.flush(Duration::from_secs(5)));
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text,
        "trace 00000000000000000000000000000abc\n\
         \x20 GET /users/{id} [server] 1.500ms http.response.status_code=200 (parent: 0000000000000f00 remote)\n\
         \x20   auth [internal] 1.500ms\n\
         \x20   SELECT [client] 1.500ms ERROR: timeout\n\
         \x20     * exception exception.message=timeout\n"
    );
}

#[test]
fn json_lines_round_trip_with_the_official_types() {
    let path = std::env::temp_dir().join(format!("tracewire-jsonl-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = Pipeline::builder()
        .exporter(OtlpJsonLines::file(&path).unwrap())
        .resource(Resource::empty().with("service.name", "svc"))
        .build()
        .unwrap();
    p.reporter().report(trace());
    assert!(p.flush(Duration::from_secs(5)));
    p.reporter().report(vec![span(9, 0, "later", &[])]);
    assert!(p.shutdown(Duration::from_secs(5)));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let first: ExportTraceServiceRequest = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first.resource_spans[0].scope_spans[0].spans.len(), 3);
    let raw: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let s = &raw["resourceSpans"][0]["scopeSpans"][0]["spans"][2];
    // OTLP/JSON encoding: hex ids, enum as number, 64-bit ints as strings.
    assert_eq!(s["traceId"], "00000000000000000000000000000abc");
    assert_eq!(s["spanId"], "0000000000000001");
    assert_eq!(s["kind"], 2);
    assert_eq!(s["startTimeUnixNano"], "1000000");
    assert_eq!(s["attributes"][0]["value"]["intValue"], "200");
    assert!(render_tree(&first).contains("SELECT [client]"));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn official_otlp_json_sample_decodes_and_renders() {
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/specs/otlp/trace.json"
    ))
    .unwrap();
    let req: ExportTraceServiceRequest = serde_json::from_str(&sample).unwrap();
    let tree = render_tree(&req);
    assert!(
        tree.starts_with("trace 5b8efff798038103d269b633813fc60c\n"),
        "{tree}"
    );
    assert!(tree.contains("I'm a server span [server] 1000.000ms my.span.attr=some value (parent: eee19b7ec3c1b173)"), "{tree}");
}
