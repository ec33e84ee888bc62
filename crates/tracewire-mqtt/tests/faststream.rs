//! Interop with FastStream (Python, `MQTTTelemetryMiddleware`, MQTT 5) over a real Mosquitto,
//! both ways, in one trace:
//!
//! ```text
//! py publishes FIRST → rs handles FIRST, publishes SECOND
//!                    → py handles SECOND, publishes THIRD → rs handles THIRD
//! ```
//!
//! Both sides export over real OTLP/HTTP to one receiver — the embedded viewer, started here on
//! a free port — and the trace is read back from its store: one trace id, the exact parent
//! chain by span id, our links, names, kinds and attributes. The Python peer is
//! `faststream_peer.py` (FastStream 0.7.8 with zmqtt from `.venv`,
//! `scripts/setup-python.sh`), driven through `tracewire_test::peer`.
//!
//! The context travels in MQTT 5 user properties both ways (FastStream's headers), the
//! correlation id in the `correlation_data` property. Over MQTT 3.1.1 FastStream sends no
//! headers at all (it raises if asked to), so nothing could propagate.
//!
//! Where FastStream deviates from the messaging conventions (semconv 1.27+), only the wire
//! relations (parent ids, trace id) and its span names as observed are asserted on its spans;
//! what is right is asserted on ours. The deviations, as observed with 0.7.8 (those of its NATS
//! middleware, `crates/tracewire-nats/tests/faststream.rs`, hold here too):
//!
//! - span names `{topic} {operation}` (pre-1.27) — ours: `{operation} {topic}`, or
//!   `process {filter}` for a wildcard subscription (FastStream names a process span by the
//!   concrete topic, a high-cardinality name when the subscription has a wildcard);
//! - `messaging.operation` = `publish` / `process` — ours: `messaging.operation.type`;
//! - no `messaging.destination.name` on process spans — ours has it;
//! - a `create` + `publish` PRODUCER pair per message, `publish` the child of `create` — ours:
//!   one `publish {topic}` span whose context the message carries;
//! - the process span is the child of the creation context without a link — ours also links;
//! - `messaging.message.id` on its process spans is made up per delivery (MQTT has no message
//!   id) — ours records none; no QoS, retain or duplicate flag is recorded — ours:
//!   `messaging.mqtt.qos`, `messaging.mqtt.retain`, `messaging.mqtt.duplicate`.
//!
//! Without Mosquitto or the venv: a loud, recorded skip (a failure under `CI=true`).
//!
//! One test in this binary: it installs the OTLP pipeline as fastrace's global reporter.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::common::v1::{AnyValue, any_value};
use tracewire_export::proto::trace::v1::span::SpanKind;
use tracewire_export::{Pipeline, Resource};
use tracewire_messaging::{Conventions, Messaging, Relation};
use tracewire_mqtt::{Client, Event, Message};
use tracewire_otlp::{OtlpConfig, OtlpExporter, Protocol};
use tracewire_test::peer::{PATIENCE, Peer, python};
use tracewire_test::skip;
use tracewire_viewer::store::StoredSpan;
use tracewire_viewer::{Query, ViewerBuilder};

const RS: &str = "rs-tracewire";
const PY: &str = "py-faststream";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `00-{trace}-{span}-{flags}` → (trace, span, flags), lowercase hex.
fn traceparent(tp: &str) -> (String, String, u8) {
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00", "{tp}");
    assert_eq!((parts[1].len(), parts[2].len()), (32, 16), "{tp}");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        u8::from_str_radix(parts[3], 16).unwrap(),
    )
}

fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(s: &StoredSpan, key: &str) -> Option<String> {
    s.span
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(text)
}

fn kind(k: i32) -> &'static str {
    match SpanKind::try_from(k) {
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Internal) => "internal",
        _ => "unspecified",
    }
}

/// One line per span, in start order: service, name, kind, span id, parent id, links, trace.
fn render(spans: &[&StoredSpan]) -> String {
    let mut v = spans.to_vec();
    v.sort_by_key(|s| s.span.start_time_unix_nano);
    v.iter()
        .map(|s| {
            let links: Vec<String> = s.span.links.iter().map(|l| hex(&l.span_id)).collect();
            format!(
                "{}: {} [{}] span={} parent={} links={links:?} trace={}\n",
                s.origin.service,
                s.span.name,
                kind(s.span.kind),
                hex(&s.span.span_id),
                hex(&s.span.parent_span_id),
                hex(&s.span.trace_id),
            )
        })
        .collect()
}

/// The one span of `service` named `name`.
fn one<'a>(spans: &[&'a StoredSpan], service: &str, name: &str) -> &'a StoredSpan {
    let found: Vec<&StoredSpan> = spans
        .iter()
        .copied()
        .filter(|s| &*s.origin.service == service && s.span.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one {service}: {name}\n{}",
        render(spans)
    );
    found[0]
}

/// The value of user property `name` (the last, as FastStream's dict keeps it).
fn property<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.user_properties()
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_through_faststream_and_back_is_one_trace() {
    const TEST: &str = "faststream_mqtt_interop";
    let Some(url) = skip::mqtt_url() else {
        skip::skip(
            TEST,
            "no MQTT broker on 127.0.0.1:1883; run `bash scripts/services.sh start mosquitto`",
        );
        return;
    };
    let Some(python) = python(
        TEST,
        &[
            "faststream.mqtt.opentelemetry",
            "opentelemetry.sdk.trace",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ],
    ) else {
        return;
    };
    let started = std::time::Instant::now();
    let (host, port) = {
        let rest = url.strip_prefix("mqtt://").unwrap_or(&url);
        let (h, p) = rest.trim_end_matches('/').rsplit_once(':').unwrap();
        (h.to_owned(), p.parse::<u16>().unwrap())
    };

    // The one OTLP receiver: the viewer's OTLP/HTTP listener on a free port of 127.0.0.1.
    let viewer = ViewerBuilder::new()
        .otlp_grpc(None)
        .zipkin(None)
        .ui(None)
        .otlp_http(Some(0))
        .start()
        .await
        .unwrap();
    let endpoint = format!("http://{}/v1/traces", viewer.addrs().otlp_http.unwrap());
    let pipeline = Pipeline::builder()
        .exporter(
            OtlpExporter::new(&OtlpConfig::new(Protocol::HttpProtobuf).endpoint(&endpoint))
                .unwrap(),
        )
        .resource(Resource::detect(RS))
        .build()
        .unwrap();
    fastrace::set_reporter(
        pipeline.reporter(),
        fastrace::collector::Config::default().report_interval(Duration::from_millis(10)),
    );

    // Parent-based sampling: were FastStream's `-03` flags misread, our spans would be missing.
    let messaging = Messaging::new("mqtt")
        .tracer(Tracer::new().with_sampler(Sampler::parent_based(Sampler::AlwaysOn)))
        .server(host.clone(), Some(port))
        .relation(Relation::ChildAndLink)
        .conventions(Conventions::Current);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let base = format!("twfs{}p{}", now % 1_000_000_000, std::process::id());
    let [first, second, third] = ["first", "second", "third"].map(|n| format!("{base}/{n}"));
    let mut options = MqttOptions::new(format!("{base}-rs"), host.as_str(), port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = Client::with_messaging(options, 64, messaging);
    let (tx, mut messages) = mpsc::unbounded_channel();
    let (sub_tx, mut subacks) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Message(m)) => drop(tx.send(m)),
                Ok(Event::Other(rumqttc::v5::Event::Incoming(Packet::SubAck(_)))) => {
                    let _ = sub_tx.send(());
                }
                Ok(Event::Other(_)) => {}
                Err(e) => {
                    eprintln!("event loop: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    // Our subscriptions are in place on the broker before the peer publishes.
    for topic in [&first, &third] {
        client
            .subscribe(topic.as_str(), QoS::AtLeastOnce)
            .await
            .unwrap();
        timeout(PATIENCE, subacks.recv()).await.unwrap().unwrap();
    }

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/faststream_peer.py");
    let mut peer = Peer::spawn(
        &python,
        &script,
        &[
            ("mqtt", &url),
            ("otlp", &endpoint),
            ("first", &first),
            ("second", &second),
            ("third", &third),
        ],
    );
    // (The peer's pipes are read on threads; waiting on them blocks this worker only.)
    tokio::task::block_in_place(|| peer.expect("READY"));
    peer.send("publish");

    // The tracewire handler of FIRST: publishes SECOND from inside the process span, with the
    // correlation id it got.
    let m = timeout(PATIENCE, messages.recv()).await.unwrap().unwrap();
    assert_eq!(m.topic(), first);
    assert_eq!(&m.payload[..], b"order-1");
    let tp_first = property(&m, "traceparent").unwrap().to_owned();
    let correlation = m
        .properties
        .as_ref()
        .and_then(|p| p.correlation_data.clone())
        .unwrap();
    assert_eq!(&correlation[..], b"order-1");
    let properties = PublishProperties {
        correlation_data: Some(correlation),
        ..PublishProperties::default()
    };
    m.instrument(client.publish_with_properties(
        second.as_str(),
        QoS::AtLeastOnce,
        false,
        m.payload.clone(),
        properties,
    ))
    .await
    .unwrap();
    drop(m);
    let second_seen: serde_json::Value =
        serde_json::from_str(&tokio::task::block_in_place(|| peer.expect("SECOND"))).unwrap();

    // The tracewire handler of THIRD.
    let m = timeout(PATIENCE, messages.recv()).await.unwrap().unwrap();
    assert_eq!(m.topic(), third);
    assert_eq!(&m.payload[..], b"order-1");
    let tp_third = property(&m, "traceparent").unwrap().to_owned();
    drop(m);

    peer.send("stop");
    let ended = tokio::task::block_in_place(|| peer.expect("FLUSHED"));
    tokio::task::block_in_place(|| peer.finish());
    eprintln!("the peer's ended spans: {ended}");
    task.abort();

    assert!(
        tokio::task::block_in_place(|| pipeline.flush(PATIENCE)),
        "our spans exported: {:?}",
        pipeline.counters()
    );
    const EXPECTED: usize = 8;
    let deadline = Instant::now() + PATIENCE;
    while viewer.store().stats().spans < EXPECTED && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let traces = viewer.store().search_traces(&Query {
        limit: 0,
        ..Query::default()
    });
    let all: Vec<StoredSpan> = traces.iter().flat_map(|(_, s)| s.clone()).collect();
    let spans: Vec<&StoredSpan> = all
        .iter()
        .filter(|s| s.span.name.contains(base.as_str()))
        .collect();
    let tree = render(&spans);
    eprintln!("{tree}");
    assert_eq!(spans.len(), EXPECTED, "{tree}");
    let trace_ids: BTreeSet<String> = spans.iter().map(|s| hex(&s.span.trace_id)).collect();
    assert_eq!(trace_ids.len(), 1, "one trace id\n{tree}");
    let trace = trace_ids.into_iter().next().unwrap();

    let py_first_create = one(&spans, PY, &format!("{first} create"));
    let py_first_publish = one(&spans, PY, &format!("{first} publish"));
    let rs_process_first = one(&spans, RS, &format!("process {first}"));
    let rs_publish_second = one(&spans, RS, &format!("publish {second}"));
    let py_second_process = one(&spans, PY, &format!("{second} process"));
    let py_third_create = one(&spans, PY, &format!("{third} create"));
    let py_third_publish = one(&spans, PY, &format!("{third} publish"));
    let rs_process_third = one(&spans, RS, &format!("process {third}"));
    let id = |s: &StoredSpan| hex(&s.span.span_id);
    let parent = |s: &StoredSpan| hex(&s.span.parent_span_id);

    // FastStream → us: FIRST's user properties carry FastStream's create span with the Python
    // SDK's flags `03` (sampled + W3C Level 2 random).
    let (tp_trace, tp_span, tp_flags) = traceparent(&tp_first);
    assert_eq!(
        (tp_trace.as_str(), tp_span.as_str()),
        (trace.as_str(), id(py_first_create).as_str()),
        "FIRST carries the context of FastStream's create span\n{tree}"
    );
    assert_eq!(tp_flags, 0x03, "the Python SDK's flags: {tp_first}");

    // Us → FastStream: its own parser read our user properties — exactly one `traceparent`
    // (lowercase: its `dict` lookup is case-sensitive) with our send span's context — our
    // correlation id and the body.
    let headers = second_seen["headers"].as_object().unwrap();
    let keys: Vec<&String> = headers
        .keys()
        .filter(|k| k.eq_ignore_ascii_case("traceparent"))
        .collect();
    assert_eq!(keys, ["traceparent"], "{headers:?}");
    let (tp_trace, tp_span, tp_flags) = traceparent(headers["traceparent"].as_str().unwrap());
    assert_eq!(
        (tp_trace.as_str(), tp_span.as_str()),
        (trace.as_str(), id(rs_publish_second).as_str()),
        "SECOND carries our send span's context\n{tree}"
    );
    assert_eq!(tp_flags & 0x01, 0x01, "sampled: {headers:?}");
    assert_eq!(second_seen["correlation_id"], "order-1");
    assert_eq!(second_seen["body_hex"], hex(b"order-1"));

    // FastStream → us again: THIRD carries the create span of FastStream's fresh publish.
    let (tp_trace, tp_span, _) = traceparent(&tp_third);
    assert_eq!(
        (tp_trace.as_str(), tp_span.as_str()),
        (trace.as_str(), id(py_third_create).as_str()),
        "THIRD carries the context of FastStream's create span\n{tree}"
    );

    // The exact parent chain, by span id.
    assert!(
        py_first_create.span.parent_span_id.is_empty(),
        "FastStream's first create span is the root\n{tree}"
    );
    for (child, of) in [
        (py_first_publish, py_first_create),
        (rs_process_first, py_first_create),
        (rs_publish_second, rs_process_first),
        (py_second_process, rs_publish_second),
        (py_third_create, py_second_process),
        (py_third_publish, py_third_create),
        (rs_process_third, py_third_create),
    ] {
        assert_eq!(
            parent(child),
            id(of),
            "{}: {} is the child of {}: {}\n{tree}",
            child.origin.service,
            child.span.name,
            of.origin.service,
            of.span.name
        );
    }

    // Our process spans also link the creation context (FastStream's link nothing).
    for (process, created) in [
        (rs_process_first, py_first_create),
        (rs_process_third, py_third_create),
    ] {
        let links: Vec<(String, String)> = process
            .span
            .links
            .iter()
            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
            .collect();
        assert_eq!(
            links,
            [(trace.clone(), id(created))],
            "{}\n{tree}",
            process.span.name
        );
    }

    // Our spans, per the current conventions.
    for (s, kind, op, name, dest) in [
        (
            rs_process_first,
            SpanKind::Consumer,
            "process",
            "process",
            &first,
        ),
        (
            rs_publish_second,
            SpanKind::Producer,
            "send",
            "publish",
            &second,
        ),
        (
            rs_process_third,
            SpanKind::Consumer,
            "process",
            "process",
            &third,
        ),
    ] {
        assert_eq!(s.span.kind, kind as i32, "{}\n{tree}", s.span.name);
        for (key, want) in [
            ("messaging.system", "mqtt"),
            ("messaging.operation.type", op),
            ("messaging.operation.name", name),
            ("messaging.destination.name", dest.as_str()),
            ("messaging.message.conversation_id", "order-1"),
            ("messaging.mqtt.qos", "1"),
        ] {
            assert_eq!(
                attr(s, key).as_deref(),
                Some(want),
                "{}: {key}\n{tree}",
                s.span.name
            );
        }
    }
    // FastStream names MQTT its system too.
    assert_eq!(
        attr(py_second_process, "messaging.system").as_deref(),
        Some("mqtt")
    );

    assert!(tokio::task::block_in_place(
        || pipeline.shutdown(Duration::from_secs(5))
    ));
    viewer.shutdown().await;
    eprintln!("faststream mqtt interop: {:?}", started.elapsed());
}
