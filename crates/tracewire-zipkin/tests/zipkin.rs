//! The Zipkin exporter against an in-process Zipkin receiver; what it receives is validated
//! against the `Span` schema of the official `zipkin2-api.yaml`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fastrace::collector::{EventRecord, Reporter as _, SpanId, SpanRecord, TraceId};
use http_body_util::{BodyExt as _, Full};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use tracewire_export::{Pipeline, Resource, RetryPolicy};
use tracewire_zipkin::ZipkinExporter;

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/specs/zipkin/zipkin2-api.yaml"
);

/// A small Swagger 2 schema checker: `$ref`, `type`, `required`, `properties`, `items`,
/// `enum`, `minLength`/`maxLength`, `minimum`, `additionalProperties`, and the hex
/// `pattern`s the Zipkin spec uses (`[a-f0-9]{n,m}`).
fn validate(spec: &Yaml, schema: &Yaml, value: &Json, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Yaml::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        let def = &spec["definitions"][name];
        assert!(!def.is_null(), "missing definition {name}");
        return validate(spec, def, value, path, errors);
    }
    if let Some(ty) = schema.get("type").and_then(Yaml::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            "number" => value.is_number(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{path}: expected {ty}, got {value}"));
            return;
        }
    }
    if let Some(Yaml::Sequence(allowed)) = schema.get("enum") {
        if !allowed.iter().any(|a| a.as_str() == value.as_str()) {
            errors.push(format!("{path}: {value} not in enum"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Yaml::as_u64)
            && len < min
        {
            errors.push(format!("{path}: shorter than {min}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Yaml::as_u64)
            && len > max
        {
            errors.push(format!("{path}: longer than {max}"));
        }
        if let Some(p) = schema.get("pattern").and_then(Yaml::as_str) {
            assert!(p.starts_with("[a-f0-9]"), "unsupported pattern {p}");
            if !s
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            {
                errors.push(format!("{path}: {s:?} does not match {p}"));
            }
        }
    }
    if let (Some(n), Some(min)) = (value.as_i64(), schema.get("minimum").and_then(Yaml::as_i64))
        && n < min
    {
        errors.push(format!("{path}: {n} < {min}"));
    }
    if let Some(obj) = value.as_object() {
        if let Some(Yaml::Sequence(req)) = schema.get("required") {
            for r in req {
                let r = r.as_str().unwrap();
                if !obj.contains_key(r) {
                    errors.push(format!("{path}: missing required {r}"));
                }
            }
        }
        let props = schema.get("properties");
        for (k, v) in obj {
            match props.and_then(|p| p.get(k.as_str())) {
                Some(s) => validate(spec, s, v, &format!("{path}.{k}"), errors),
                None => match schema.get("additionalProperties") {
                    Some(s) => validate(spec, s, v, &format!("{path}.{k}"), errors),
                    None => errors.push(format!("{path}: unknown property {k}")),
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(spec, items, v, &format!("{path}[{i}]"), errors);
        }
    }
}

fn props(p: &[(&'static str, &'static str)]) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
    p.iter()
        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
        .collect()
}

fn spans() -> Vec<SpanRecord> {
    let trace = TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736);
    vec![
        SpanRecord {
            trace_id: trace,
            span_id: SpanId(0x1111),
            parent_id: SpanId(0x00f067aa0ba902b7),
            begin_time_unix_ns: 1_700_000_000_000_000_000,
            duration_ns: 2_500_000,
            name: Cow::Borrowed("GET /users/{id}"),
            properties: props(&[
                ("span.kind", "server"),
                ("http.response.status_code", "200"),
                ("client.address", "10.1.2.3"),
                ("tracewire.parent.remote", "true"),
                ("tracewire.trace_flags", "01"),
            ]),
            events: vec![],
            links: vec![],
        },
        SpanRecord {
            trace_id: trace,
            span_id: SpanId(0x2222),
            parent_id: SpanId(0x1111),
            begin_time_unix_ns: 1_700_000_000_000_100_000,
            duration_ns: 500,
            name: Cow::Borrowed("GET"),
            properties: props(&[
                ("span.kind", "client"),
                ("server.address", "users.internal"),
                ("server.port", "8080"),
                ("http.request.header.accept", r#"["a","b"]"#),
                ("otel.status_code", "ERROR"),
                ("otel.status_description", "timeout"),
            ]),
            events: vec![EventRecord {
                name: Cow::Borrowed("exception"),
                timestamp_unix_ns: 1_700_000_000_000_200_000,
                properties: props(&[("exception.type", "Timeout")]),
            }],
            links: vec![],
        },
        SpanRecord {
            trace_id: trace,
            span_id: SpanId(0x3333),
            parent_id: SpanId(0x1111),
            begin_time_unix_ns: 1_700_000_000_000_300_000,
            duration_ns: 1_000,
            name: Cow::Borrowed("render"),
            properties: vec![],
            events: vec![],
            links: vec![],
        },
    ]
}

#[test]
fn posts_spec_valid_zipkin_v2_json() {
    let received: Arc<Mutex<Vec<(String, String, Json)>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = received.clone();
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let rec = rec.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let rec = rec.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let ct = req
                                .headers()
                                .get("content-type")
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            rec.lock().unwrap().push((
                                path,
                                ct,
                                serde_json::from_slice(&body).unwrap(),
                            ));
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(202)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    let exporter = ZipkinExporter::new(
        &format!("http://{addr}/api/v2/spans"),
        Duration::from_secs(5),
    )
    .unwrap();
    let p = Pipeline::builder()
        .exporter(exporter)
        .resource(Resource::empty().with("service.name", "checkout"))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    p.reporter().report(spans());
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(p.counters().exported, 3, "{:?}", p.counters());

    let got = received.lock().unwrap();
    assert_eq!(got.len(), 1);
    let (path, ct, body) = &got[0];
    assert_eq!(path, "/api/v2/spans");
    assert_eq!(ct, "application/json");

    let spec: Yaml = serde_yaml::from_str(&std::fs::read_to_string(SPEC).unwrap()).unwrap();
    let list_schema = spec["definitions"]["ListOfSpans"].clone();
    let mut errors = Vec::new();
    validate(&spec, &list_schema, body, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}\n{body:#}");

    let arr = body.as_array().unwrap();
    let by_name = |n: &str| arr.iter().find(|s| s["name"] == n).unwrap();
    let server = by_name("GET /users/{id}");
    assert_eq!(server["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(server["id"], "0000000000001111");
    assert_eq!(server["parentId"], "00f067aa0ba902b7");
    assert_eq!(server["kind"], "SERVER");
    assert_eq!(server["timestamp"], 1_700_000_000_000_000u64);
    assert_eq!(server["duration"], 2_500);
    assert_eq!(server["localEndpoint"]["serviceName"], "checkout");
    assert_eq!(server["remoteEndpoint"]["ipv4"], "10.1.2.3");
    assert_eq!(server["tags"]["http.response.status_code"], "200");
    assert!(server.get("shared").is_none());
    assert!(
        server["tags"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("tracewire.") && k != "span.kind")
    );

    let client = by_name("GET");
    assert_eq!(client["kind"], "CLIENT");
    assert_eq!(client["parentId"], "0000000000001111");
    assert_eq!(client["duration"], 1, "sub-microsecond spans last 1 µs");
    assert_eq!(client["remoteEndpoint"]["serviceName"], "users.internal");
    assert_eq!(client["remoteEndpoint"]["port"], 8080);
    assert_eq!(client["tags"]["error"], "timeout");
    assert_eq!(client["tags"]["otel.status_code"], "ERROR");
    assert_eq!(client["tags"]["http.request.header.accept"], r#"["a","b"]"#);
    assert_eq!(
        client["annotations"][0]["timestamp"],
        1_700_000_000_000_200u64
    );
    assert_eq!(
        client["annotations"][0]["value"],
        r#""exception": {"exception.type":"Timeout"}"#
    );

    let internal = by_name("render");
    assert!(internal.get("kind").is_none());
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn validator_rejects_bad_spans() {
    // The checker must be able to fail: a span missing `id`, with a bad kind and a short
    // trace id.
    let spec: Yaml = serde_yaml::from_str(&std::fs::read_to_string(SPEC).unwrap()).unwrap();
    let bad: Json = serde_json::json!([{ "traceId": "abc", "kind": "INTERNAL", "duration": 0 }]);
    let mut errors = Vec::new();
    validate(
        &spec,
        &spec["definitions"]["ListOfSpans"],
        &bad,
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
}
