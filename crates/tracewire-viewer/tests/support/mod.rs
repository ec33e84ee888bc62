//! Test support: an HTTP client, span builders.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::Link,
};

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client
        .request(b.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn get(url: &str) -> Resp {
    request("GET", url, &[], Vec::new()).await
}

pub async fn post(url: &str, content_type: &str, body: Vec<u8>) -> Resp {
    request("POST", url, &[("content-type", content_type)], body).await
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn str_kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

pub fn int_kv(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

pub fn tid(n: u8) -> Vec<u8> {
    let mut v = vec![0xab; 16];
    v[15] = n;
    v
}

pub fn sid(n: u8) -> Vec<u8> {
    let mut v = vec![0xcd; 8];
    v[7] = n;
    v
}

/// Base time: 2026-01-01T00:00:00Z in ns — recent enough for the default lookbacks? No: tests
/// that use time windows pass explicit bounds.
pub const T0: u64 = 1_767_225_600_000_000_000;
pub const MS: u64 = 1_000_000;

pub struct SpanSpec {
    pub trace: u8,
    pub id: u8,
    pub parent: Option<u8>,
    pub name: &'static str,
    pub kind: i32,
    pub start_ms: u64,
    pub dur_ms: u64,
}

pub fn span(s: SpanSpec) -> Span {
    Span {
        trace_id: tid(s.trace),
        span_id: sid(s.id),
        parent_span_id: s.parent.map(sid).unwrap_or_default(),
        name: s.name.into(),
        kind: s.kind,
        start_time_unix_nano: T0 + s.start_ms * MS,
        end_time_unix_nano: T0 + (s.start_ms + s.dur_ms) * MS,
        flags: 0x301,
        ..Default::default()
    }
}

/// `tid(0)` with `n` in its first four bytes: one id for each of many traces.
pub fn nth_tid(n: u32) -> Vec<u8> {
    let mut v = tid(0);
    v[..4].copy_from_slice(&n.to_be_bytes());
    v
}

/// A 1 ms server span of trace `trace_id` with span id `id` and parent `parent` (none if 0),
/// numbered beyond what [`span`] takes.
pub fn span_of(trace_id: Vec<u8>, id: u64, parent: u64, name: &str, start_ms: u64) -> Span {
    Span {
        trace_id,
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: name.into(),
        kind: 2,
        start_time_unix_nano: T0 + start_ms * MS,
        end_time_unix_nano: T0 + (start_ms + 1) * MS,
        flags: 0x301,
        ..Default::default()
    }
}

pub fn request_of(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    str_kv("service.name", service),
                    str_kv("host.name", "box-1"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tracewire-test".into(),
                    version: "0.1.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A realistic two-service checkout trace (trace `n`):
/// frontend `GET /checkout` [server] -> frontend `POST /pay` [client] -> payments `POST /pay`
/// [server, ERROR "card declined", event "retry", link to trace 99/span 1] -> payments `db.query`.
pub fn checkout(n: u8) -> Vec<ExportTraceServiceRequest> {
    let mut root = span(SpanSpec {
        trace: n,
        id: 1,
        parent: None,
        name: "GET /checkout",
        kind: 2,
        start_ms: 0,
        dur_ms: 120,
    });
    root.attributes = vec![
        str_kv("http.route", "/checkout"),
        int_kv("http.response.status_code", 500),
    ];
    let mut client = span(SpanSpec {
        trace: n,
        id: 2,
        parent: Some(1),
        name: "POST /pay",
        kind: 3,
        start_ms: 10,
        dur_ms: 100,
    });
    client.attributes = vec![
        str_kv("peer.service", "payments"),
        str_kv("server.address", "10.0.0.7"),
        int_kv("network.peer.port", 8080),
    ];
    let mut server = span(SpanSpec {
        trace: n,
        id: 3,
        parent: Some(2),
        name: "POST /pay",
        kind: 2,
        start_ms: 15,
        dur_ms: 90,
    });
    server.status = Some(Status {
        code: 2,
        message: "card declined".into(),
    });
    server.attributes = vec![
        str_kv("payment.method", "card"),
        int_kv("http.response.status_code", 402),
    ];
    server.events = vec![Event {
        time_unix_nano: T0 + 50 * MS,
        name: "retry".into(),
        attributes: vec![int_kv("attempt", 2)],
        ..Default::default()
    }];
    server.links = vec![Link {
        trace_id: tid(99),
        span_id: sid(1),
        ..Default::default()
    }];
    let mut db = span(SpanSpec {
        trace: n,
        id: 4,
        parent: Some(3),
        name: "db.query",
        kind: 3,
        start_ms: 20,
        dur_ms: 60,
    });
    db.attributes = vec![str_kv("db.statement", "SELECT * FROM cards WHERE id = ?")];
    vec![
        request_of("frontend", vec![root, client]),
        request_of("payments", vec![server, db]),
    ]
}

/// `"abab..ab0n"`, the hex of `tid(n)`.
pub fn tid_hex(n: u8) -> String {
    tid(n).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sid_hex(n: u8) -> String {
    sid(n).iter().map(|b| format!("{b:02x}")).collect()
}
