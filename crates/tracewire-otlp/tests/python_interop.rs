//! Interop with an independent receiver: the official Python `opentelemetry-proto` classes
//! (PyPI, installed into `.venv` by `scripts/setup-python.sh`) decode the OTLP/HTTP protobuf
//! and JSON bodies tracewire sends; their reading must equal what we meant to send.
//! Without the venv: fails under `CI=true`, skips loudly otherwise (`tracewire_test::skip`).
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fastrace::collector::{EventRecord, Reporter as _, SpanContext, SpanId, SpanRecord, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::{Value as Json, json};
use support::Collector;
use tracewire_export::{Pipeline, Resource, RetryPolicy};
use tracewire_otlp::{Compression, OtlpConfig, OtlpExporter, Protocol};

fn python(test: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = root.join(".venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args([
                "-c",
                "import opentelemetry.proto.collector.trace.v1.trace_service_pb2",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    tracewire_test::skip::skip(
        test,
        ".venv/bin/python with opentelemetry-proto not found; run `bash scripts/setup-python.sh`",
    );
    None
}

fn records() -> Vec<SpanRecord> {
    let p = |v: &[(&'static str, &'static str)]| -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
        v.iter()
            .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
            .collect()
    };
    vec![
        SpanRecord {
            trace_id: TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736),
            span_id: SpanId(0x1111),
            parent_id: SpanId(0x00f067aa0ba902b7),
            begin_time_unix_ns: 1_700_000_000_000_000_000,
            duration_ns: 2_000_000,
            name: Cow::Borrowed("GET /users/{id}"),
            properties: p(&[
                ("span.kind", "server"),
                ("http.response.status_code", "200"),
                ("server.port", "8080"),
                ("ratio:double", "0.25"),
                ("cached:bool", "true"),
                ("http.request.header.accept", r#"["text/html","*/*"]"#),
                ("user.id", "ü-42"),
                ("tracewire.trace_flags", "03"),
                ("tracewire.parent.remote", "true"),
                ("tracewire.tracestate", "rojo=00f067aa0ba902b7"),
                ("otel.status_code", "ERROR"),
                ("otel.status_description", "boom"),
            ]),
            events: vec![EventRecord {
                name: Cow::Borrowed("exception"),
                timestamp_unix_ns: 1_700_000_000_001_000_000,
                properties: p(&[("exception.type", "E"), ("exception.message", "boom")]),
            }],
            links: vec![SpanContext::new(TraceId(0xabc), SpanId(0xdef))],
        },
        SpanRecord {
            trace_id: TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736),
            span_id: SpanId(0x2222),
            parent_id: SpanId(0x1111),
            begin_time_unix_ns: 1_700_000_000_000_100_000,
            duration_ns: 100,
            name: Cow::Borrowed("child"),
            properties: vec![],
            events: vec![],
            links: vec![],
        },
    ]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn value(v: &AnyValue) -> Json {
    match v.value.as_ref().unwrap() {
        Value::StringValue(s) => json!(["string_value", s]),
        Value::IntValue(i) => json!(["int_value", i]),
        Value::DoubleValue(d) => json!(["double_value", d]),
        Value::BoolValue(b) => json!(["bool_value", b]),
        Value::ArrayValue(a) => json!(["array", a.values.iter().map(value).collect::<Vec<_>>()]),
        other => panic!("unexpected {other:?}"),
    }
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Json {
    Json::Object(
        kvs.iter()
            .map(|kv| (kv.key.clone(), value(kv.value.as_ref().unwrap())))
            .collect(),
    )
}

/// The same summary as `decode_otlp.py`, from the request as Rust meant it.
fn summary(req: &ExportTraceServiceRequest) -> Json {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().unwrap();
            for s in &ss.spans {
                let status = s.status.as_ref().unwrap();
                out.push(json!({
                    "resource": attrs(&rs.resource.as_ref().unwrap().attributes),
                    "scope": [scope.name, scope.version],
                    "trace_id": hex(&s.trace_id),
                    "span_id": hex(&s.span_id),
                    "parent_span_id": hex(&s.parent_span_id),
                    "trace_state": s.trace_state,
                    "flags": s.flags,
                    "name": s.name,
                    "kind": s.kind,
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                    "attributes": attrs(&s.attributes),
                    "events": s.events.iter().map(|e| json!([e.name, e.time_unix_nano, attrs(&e.attributes)])).collect::<Vec<_>>(),
                    "links": s.links.iter().map(|l| json!([hex(&l.trace_id), hex(&l.span_id), l.flags])).collect::<Vec<_>>(),
                    "status": [status.code, status.message],
                }));
            }
        }
    }
    Json::Array(out)
}

#[test]
fn python_opentelemetry_proto_decodes_what_we_send() {
    let Some(py) = python("python_opentelemetry_proto_decodes_what_we_send") else {
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/decode_otlp.py");
    for (protocol, mode) in [
        (Protocol::HttpProtobuf, "protobuf"),
        (Protocol::HttpJson, "json"),
    ] {
        let collector = Collector::http();
        let p = Pipeline::builder()
            .exporter(
                OtlpExporter::new(
                    &OtlpConfig::new(protocol)
                        .endpoint(collector.http_url())
                        .compression(Compression::Gzip),
                )
                .unwrap(),
            )
            .resource(
                Resource::empty()
                    .with("service.name", "interop")
                    .with("process.pid", 4242),
            )
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        p.reporter().report(records());
        assert!(p.flush(Duration::from_secs(10)));
        let received = collector.received();
        assert_eq!(received.len(), 1);
        let body = std::env::temp_dir().join(format!(
            "tracewire-interop-{}-{mode}.bin",
            std::process::id()
        ));
        std::fs::write(&body, &received[0].raw).unwrap();
        let out = Command::new(&py)
            .arg(&script)
            .arg(mode)
            .arg(&body)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&body);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let from_python: Json = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(from_python, summary(&received[0].request), "{mode}");
        // And a few facts, independently of the Rust decoding.
        let server = &from_python[0];
        assert_eq!(
            server["attributes"]["http.response.status_code"],
            json!(["int_value", 200]),
            "{mode}"
        );
        assert_eq!(
            server["attributes"]["ratio"],
            json!(["double_value", 0.25]),
            "{mode}"
        );
        assert_eq!(
            server["attributes"]["cached"],
            json!(["bool_value", true]),
            "{mode}"
        );
        assert_eq!(
            server["attributes"]["user.id"],
            json!(["string_value", "ü-42"]),
            "{mode}"
        );
        assert_eq!(
            server["resource"]["process.pid"],
            json!(["int_value", 4242]),
            "{mode}"
        );
        assert_eq!(server["kind"], 2);
        assert_eq!(server["flags"], 0x303);
        assert_eq!(server["parent_span_id"], "00f067aa0ba902b7");
        assert_eq!(server["status"], json!([2, "boom"]));
        assert_eq!(from_python[1]["flags"], 0x103);
    }
}
