//! OTLP exporters against in-process fake collectors (HTTP protobuf/JSON, gRPC; gzip), which
//! decode with the official `opentelemetry-proto` types: exact span content, then faults.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use fastrace::collector::{EventRecord, Reporter as _, SpanContext, SpanId, SpanRecord, TraceId};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use support::{Collector, Reply, free_addr};
use tracewire_export::{BatchConfig, Pipeline, Resource, RetryPolicy};
use tracewire_otlp::{Compression, OtlpConfig, OtlpExporter, Protocol};

const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
const REMOTE_PARENT: u64 = 0x00f067aa0ba902b7;

fn props(p: &[(&'static str, &'static str)]) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
    p.iter()
        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
        .collect()
}

/// A server span continuing a remote parent, and a client child with an error, an exception
/// event and a link — as tracewire's integrations record them.
fn sample_trace() -> Vec<SpanRecord> {
    vec![
        SpanRecord {
            trace_id: TraceId(TRACE),
            span_id: SpanId(0x1111),
            parent_id: SpanId(REMOTE_PARENT),
            begin_time_unix_ns: 1_700_000_000_000_000_000,
            duration_ns: 2_000_000,
            name: Cow::Borrowed("GET /users/{id}"),
            properties: props(&[
                ("span.kind", "server"),
                ("http.request.method", "GET"),
                ("http.route", "/users/{id}"),
                ("http.response.status_code", "200"),
                ("server.port", "8080"),
                ("tracewire.trace_flags", "01"),
                ("tracewire.parent.remote", "true"),
                ("tracewire.tracestate", "rojo=00f067aa0ba902b7"),
            ]),
            events: vec![],
            links: vec![],
        },
        SpanRecord {
            trace_id: TraceId(TRACE),
            span_id: SpanId(0x2222),
            parent_id: SpanId(0x1111),
            begin_time_unix_ns: 1_700_000_000_000_500_000,
            duration_ns: 1_000_000,
            name: Cow::Borrowed("SELECT users"),
            properties: props(&[
                ("span.kind", "client"),
                ("rpc.grpc.status_code", "14"),
                ("cache.hit:bool", "false"),
                ("otel.status_code", "ERROR"),
                ("otel.status_description", "connection reset"),
            ]),
            events: vec![EventRecord {
                name: Cow::Borrowed("exception"),
                timestamp_unix_ns: 1_700_000_000_000_900_000,
                properties: props(&[
                    ("exception.type", "io::Error"),
                    ("exception.message", "connection reset"),
                ]),
            }],
            links: vec![SpanContext::new(TraceId(0xabc), SpanId(0xdef))],
        },
    ]
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn assert_sample_trace(spans: &[Span]) {
    assert_eq!(spans.len(), 2);
    let server = spans.iter().find(|s| s.name == "GET /users/{id}").unwrap();
    let client = spans.iter().find(|s| s.name == "SELECT users").unwrap();
    assert_eq!(server.trace_id, TRACE.to_be_bytes());
    assert_eq!(server.span_id, 0x1111u64.to_be_bytes());
    assert_eq!(server.parent_span_id, REMOTE_PARENT.to_be_bytes());
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.flags, 0x301, "sampled, parent is remote");
    assert_eq!(server.trace_state, "rojo=00f067aa0ba902b7");
    assert_eq!(server.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(server.end_time_unix_nano, 1_700_000_000_002_000_000);
    assert_eq!(
        attr(server, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    assert_eq!(attr(server, "server.port"), Some(&Value::IntValue(8080)));
    assert_eq!(
        attr(server, "http.route"),
        Some(&Value::StringValue("/users/{id}".into()))
    );
    assert!(
        server
            .attributes
            .iter()
            .all(|kv| !kv.key.starts_with("tracewire.") && kv.key != "span.kind")
    );
    assert_eq!(
        server.status.as_ref().unwrap().code,
        StatusCode::Unset as i32
    );

    assert_eq!(client.parent_span_id, 0x1111u64.to_be_bytes());
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(
        client.flags, 0x101,
        "inherits the root's flags, local parent"
    );
    assert_eq!(client.trace_state, "rojo=00f067aa0ba902b7");
    assert_eq!(
        attr(client, "rpc.grpc.status_code"),
        Some(&Value::IntValue(14))
    );
    assert_eq!(attr(client, "cache.hit"), Some(&Value::BoolValue(false)));
    let status = client.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "connection reset");
    assert_eq!(client.events.len(), 1);
    assert_eq!(client.events[0].name, "exception");
    assert_eq!(client.events[0].time_unix_nano, 1_700_000_000_000_900_000);
    assert_eq!(client.events[0].attributes.len(), 2);
    assert_eq!(client.links.len(), 1);
    assert_eq!(client.links[0].trace_id, 0xabcu128.to_be_bytes());
    assert_eq!(client.links[0].span_id, 0xdefu64.to_be_bytes());
    // Sampled, and known not to be remote (tracewire marks remote links).
    assert_eq!(client.links[0].flags, 0x101);
}

fn pipeline(cfg: OtlpConfig, retry: RetryPolicy) -> Pipeline {
    let resource = Resource::empty()
        .with("service.name", "checkout")
        .with("service.version", "1.2.3");
    Pipeline::builder()
        .exporter(OtlpExporter::new(&cfg).unwrap())
        .resource(resource)
        .retry(retry)
        .batch(BatchConfig {
            scheduled_delay: Duration::from_millis(50),
            ..BatchConfig::default()
        })
        .build()
        .unwrap()
}

fn quick_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        multiplier: 2.0,
        ..RetryPolicy::default()
    }
}

fn check_content(protocol: Protocol, compression: Compression) {
    let collector = match protocol {
        Protocol::Grpc => Collector::grpc(),
        _ => Collector::http(),
    };
    let url = match protocol {
        Protocol::Grpc => collector.grpc_url(),
        _ => collector.http_url(),
    };
    let cfg = OtlpConfig::new(protocol)
        .endpoint(url)
        .header("x-api-key", "s3cret")
        .compression(compression);
    let p = pipeline(cfg, RetryPolicy::none());
    p.reporter().report(sample_trace());
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(p.counters().exported, 2, "{:?}", p.counters());
    let received = collector.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.gzip, compression == Compression::Gzip);
    let expected_type = match protocol {
        Protocol::Grpc => "application/grpc",
        Protocol::HttpProtobuf => "application/x-protobuf",
        Protocol::HttpJson => "application/json",
    };
    assert_eq!(r.content_type, expected_type);
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "x-api-key" && v == "s3cret")
    );
    // The exporter names itself, its language and version (tonic appends its own name).
    let agent = r
        .headers
        .iter()
        .find(|(k, _)| k == "user-agent")
        .map(|(_, v)| v.as_str());
    assert!(
        agent.is_some_and(|a| a.starts_with(tracewire_otlp::USER_AGENT)),
        "{agent:?}"
    );
    assert!(tracewire_otlp::USER_AGENT.starts_with("OTel-OTLP-Exporter-Rust-tracewire/0."));
    let rs = &r.request.resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .unwrap();
    assert_eq!(
        service.value.as_ref().unwrap().value,
        Some(Value::StringValue("checkout".into()))
    );
    assert_eq!(rs.scope_spans[0].scope.as_ref().unwrap().name, "tracewire");
    assert_eq!(rs.schema_url, tracewire_core::semconv::SCHEMA_URL);
    assert_eq!(
        rs.scope_spans[0].schema_url,
        tracewire_core::semconv::SCHEMA_URL
    );
    assert_sample_trace(&collector.spans());
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn http_protobuf_exact_content() {
    check_content(Protocol::HttpProtobuf, Compression::None);
}

#[test]
fn http_protobuf_gzip_exact_content() {
    check_content(Protocol::HttpProtobuf, Compression::Gzip);
}

#[test]
fn http_json_exact_content() {
    check_content(Protocol::HttpJson, Compression::None);
}

#[test]
fn http_json_gzip_exact_content() {
    check_content(Protocol::HttpJson, Compression::Gzip);
}

#[test]
fn grpc_exact_content() {
    check_content(Protocol::Grpc, Compression::None);
}

#[test]
fn grpc_gzip_exact_content() {
    check_content(Protocol::Grpc, Compression::Gzip);
}

fn many(n: u64, trace: u128) -> Vec<SpanRecord> {
    (0..n)
        .map(|i| SpanRecord {
            trace_id: TraceId(trace),
            span_id: SpanId(trace as u64 * 1_000_000 + i + 1),
            parent_id: SpanId(0),
            begin_time_unix_ns: 1,
            duration_ns: 1,
            name: Cow::Borrowed("work"),
            properties: props(&[("span.kind", "internal"), ("k", "v")]),
            events: vec![],
            links: vec![],
        })
        .collect()
}

fn unique_ids(spans: &[Span]) -> HashSet<Vec<u8>> {
    spans.iter().map(|s| s.span_id.clone()).collect()
}

#[test]
fn http_retryable_statuses_are_retried_honouring_retry_after() {
    let collector = Collector::http();
    collector.script([Reply::Http(503, None), Reply::Http(429, Some(0)), Reply::Ok]);
    let p = pipeline(
        OtlpConfig::new(Protocol::HttpProtobuf).endpoint(collector.http_url()),
        quick_retry(5),
    );
    p.reporter().report(many(3, 1));
    assert!(p.flush(Duration::from_secs(10)));
    let c = p.counters();
    assert_eq!((c.exported, c.failed, c.retries), (3, 0, 2));
    assert_eq!(collector.received().len(), 3);
    assert_eq!(unique_ids(&collector.spans()).len(), 3);
}

#[test]
fn http_non_retryable_status_fails_once_and_is_counted() {
    let collector = Collector::http();
    collector.script([Reply::Http(400, None)]);
    let p = pipeline(
        OtlpConfig::new(Protocol::HttpProtobuf).endpoint(collector.http_url()),
        quick_retry(5),
    );
    p.reporter().report(many(3, 1));
    assert!(p.flush(Duration::from_secs(10)));
    let c = p.counters();
    assert_eq!((c.exported, c.failed, c.retries), (0, 3, 0));
    assert_eq!(collector.received().len(), 1);
}

#[test]
fn grpc_status_codes_and_retry_info() {
    let collector = Collector::grpc();
    collector.script([
        Reply::Grpc(tonic::Code::Unavailable, None),
        Reply::Grpc(
            tonic::Code::ResourceExhausted,
            Some(Duration::from_millis(10)),
        ),
        Reply::Ok,
        // Second batch: RESOURCE_EXHAUSTED without RetryInfo is permanent.
        Reply::Grpc(tonic::Code::ResourceExhausted, None),
        // Third batch: INVALID_ARGUMENT is permanent.
        Reply::Grpc(tonic::Code::InvalidArgument, None),
    ]);
    let p = pipeline(
        OtlpConfig::new(Protocol::Grpc).endpoint(collector.grpc_url()),
        quick_retry(5),
    );
    p.reporter().report(many(2, 1));
    assert!(p.flush(Duration::from_secs(10)));
    let c = p.counters();
    assert_eq!((c.exported, c.failed, c.retries), (2, 0, 2));
    p.reporter().report(many(2, 2));
    assert!(p.flush(Duration::from_secs(10)));
    p.reporter().report(many(2, 3));
    assert!(p.flush(Duration::from_secs(10)));
    let c = p.counters();
    assert_eq!((c.exported, c.failed, c.retries), (2, 4, 2));
    assert_eq!(collector.received().len(), 5);
}

#[test]
fn slow_collector_times_out_then_export_succeeds() {
    for grpc in [false, true] {
        let collector = if grpc {
            Collector::grpc()
        } else {
            Collector::http()
        };
        collector.script([Reply::Slow(Duration::from_secs(3)), Reply::Ok]);
        let (proto, url) = if grpc {
            (Protocol::Grpc, collector.grpc_url())
        } else {
            (Protocol::HttpProtobuf, collector.http_url())
        };
        let p = pipeline(
            OtlpConfig::new(proto)
                .endpoint(url)
                .timeout(Duration::from_millis(200)),
            quick_retry(5),
        );
        p.reporter().report(many(4, 9));
        assert!(p.flush(Duration::from_secs(10)));
        let c = p.counters();
        assert_eq!((c.exported, c.failed), (4, 0), "grpc={grpc}");
        assert!(c.retries >= 1, "grpc={grpc}: {c:?}");
        assert!(unique_ids(&collector.spans()).len() == 4);
    }
}

#[test]
fn collector_down_at_start_then_up() {
    for grpc in [false, true] {
        let addr = free_addr();
        let (proto, url) = if grpc {
            (Protocol::Grpc, format!("http://{addr}"))
        } else {
            (Protocol::HttpProtobuf, format!("http://{addr}/v1/traces"))
        };
        let p = pipeline(
            OtlpConfig::new(proto)
                .endpoint(url)
                .timeout(Duration::from_millis(500)),
            RetryPolicy {
                max_attempts: 100,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(100),
                multiplier: 1.5,
                ..RetryPolicy::default()
            },
        );
        p.reporter().report(many(10, 1));
        // Let a few attempts fail against the closed port.
        while p.counters().retries < 2 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let collector = if grpc {
            Collector::grpc_at(addr, Default::default())
        } else {
            Collector::http_at(addr, Default::default())
        };
        assert!(p.flush(Duration::from_secs(20)));
        let c = p.counters();
        assert_eq!((c.exported, c.failed), (10, 0), "grpc={grpc}");
        assert_eq!(unique_ids(&collector.spans()).len(), 10);
    }
}

#[test]
fn collector_down_under_load_bounded_queue_then_resumes() {
    let collector = Collector::http();
    let addr = collector.addr;
    let p = Pipeline::builder()
        .exporter(
            OtlpExporter::new(
                &OtlpConfig::new(Protocol::HttpProtobuf)
                    .endpoint(collector.http_url())
                    .timeout(Duration::from_millis(300)),
            )
            .unwrap(),
        )
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            multiplier: 2.0,
            ..RetryPolicy::default()
        })
        .batch(BatchConfig {
            max_queue_size: 500,
            max_export_batch_size: 100,
            scheduled_delay: Duration::from_millis(20),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    let mut r = p.reporter();
    r.report(many(100, 1));
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(p.counters().exported, 100);

    let state = collector.stop();
    let mut total = 100;
    for round in 0..40u128 {
        r.report(many(100, 10 + round));
        total += 100;
        assert!(p.counters().queue_len <= 500);
    }
    let restarted = Collector::http_at(addr, state);
    assert!(p.flush(Duration::from_secs(30)));
    let c = p.counters();
    assert_eq!(c.queued + c.dropped, total, "{c:?}");
    assert_eq!(c.exported + c.failed, c.queued, "{c:?}");
    assert!(c.dropped > 0, "the queue bound must have been hit: {c:?}");
    // Export resumed: spans reported after the restart all get through.
    r.report(many(50, 99));
    assert!(p.flush(Duration::from_secs(30)));
    let got = unique_ids(&restarted.spans());
    assert!(
        (0..50u64).all(|i| got.contains(&(99u64 * 1_000_000 + i + 1).to_be_bytes()[..])),
        "spans after restart missing"
    );
    let after = p.counters();
    assert_eq!(after.exported, c.exported + 50, "{after:?}");
}

#[test]
fn graceful_shutdown_with_live_collector_loses_zero_spans() {
    for grpc in [false, true] {
        let collector = if grpc {
            Collector::grpc()
        } else {
            Collector::http()
        };
        let (proto, url) = if grpc {
            (Protocol::Grpc, collector.grpc_url())
        } else {
            (Protocol::HttpJson, collector.http_url())
        };
        let p = Pipeline::builder()
            .exporter(OtlpExporter::new(&OtlpConfig::new(proto).endpoint(url)).unwrap())
            .batch(BatchConfig {
                scheduled_delay: Duration::from_secs(3600),
                max_queue_size: 5000,
                ..BatchConfig::default()
            })
            .build()
            .unwrap();
        let mut r = p.reporter();
        for t in 0..30u128 {
            r.report(many(100, t + 1));
        }
        assert!(p.shutdown(Duration::from_secs(30)));
        let c = p.counters();
        assert_eq!(
            (c.queued, c.exported, c.dropped, c.failed),
            (3000, 3000, 0, 0)
        );
        assert_eq!(unique_ids(&collector.spans()).len(), 3000, "grpc={grpc}");
    }
}

#[test]
fn bad_configuration_fails_at_build_naming_the_option() {
    let e = OtlpExporter::new(&OtlpConfig::new(Protocol::HttpProtobuf).endpoint("not a url"))
        .unwrap_err();
    assert_eq!(e.option(), "endpoint");
    let e = OtlpExporter::new(
        &OtlpConfig::new(Protocol::HttpProtobuf)
            .endpoint("http://localhost:4318/v1/traces")
            .header("bad header", "v"),
    )
    .unwrap_err();
    assert_eq!(e.option(), "headers");
    let e = OtlpExporter::new(
        &OtlpConfig::new(Protocol::Grpc)
            .endpoint("http://localhost:4317")
            .header("x", "line\nbreak"),
    )
    .unwrap_err();
    assert_eq!(e.option(), "headers");
}

/// A collector that answers 200 with a body that never ends: the exporter reads at most
/// `MAX_RESPONSE_BYTES` of it and moves on, instead of filling memory until its timeout.
#[test]
fn an_endless_response_body_is_not_read_past_the_bound() {
    let collector = Collector::http();
    collector.script([Reply::Endless]);
    let cfg = OtlpConfig::new(Protocol::HttpProtobuf)
        .endpoint(collector.http_url())
        .timeout(Duration::from_secs(20));
    let p = pipeline(cfg, RetryPolicy::none());
    p.reporter().report(sample_trace());
    assert!(p.flush(Duration::from_secs(20)));
    assert_eq!(p.counters().exported, 2, "{:?}", p.counters());
    let state = collector.stop();
    let sent = state.sent.load(std::sync::atomic::Ordering::Relaxed);
    // What the server could push into the sockets' buffers before the client stopped
    // reading: a few MiB at most (without the bound, it reads until its timeout: GiBs).
    assert!(sent < 32 << 20, "{sent} bytes sent");
    assert!(p.shutdown(Duration::from_secs(5)));
}
