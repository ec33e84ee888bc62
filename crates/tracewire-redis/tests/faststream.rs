//! Interop with FastStream (Python, `RedisTelemetryMiddleware`) over a real Redis server, both
//! ways, for pub/sub, lists and streams — one trace per mode:
//!
//! ```text
//! py publishes FIRST → rs handles FIRST, publishes SECOND
//!                    → py handles SECOND, publishes THIRD → rs handles THIRD
//! ```
//!
//! Both sides export over real OTLP/HTTP to one receiver — the embedded viewer, started here on
//! a free port — and the traces are read back from its store: one trace id per mode, the exact
//! parent chain by span id, our links, names, kinds and attributes. The Python peer is
//! `faststream_peer.py` (FastStream 0.7.8 from `.venv`, `scripts/setup-python.sh`), driven
//! through `tracewire_test::peer`.
//!
//! The context travels in FastStream's binary envelope (pub/sub, lists) and in the `__data__`
//! field of stream entries, which is all FastStream reads from a stream: towards FastStream we
//! therefore add entries with `Client::xadd_envelope`, not `xadd` (whose trace fields FastStream
//! ignores).
//!
//! Where FastStream deviates from the messaging conventions (semconv 1.27+), only the wire
//! relations (parent ids, trace id) and its span names as observed are asserted on its spans;
//! what is right is asserted on ours. The deviations, as observed with 0.7.8 (those of its NATS
//! middleware, `crates/tracewire-nats/tests/faststream.rs`, hold here too):
//!
//! - span names `{destination} {operation}` (pre-1.27) — ours: `{operation} {destination}`;
//! - `messaging.operation` = `publish` / `process` — ours: `messaging.operation.type`;
//! - no `messaging.destination.name` on process spans — ours has it;
//! - a `create` + `publish` PRODUCER pair per message, `publish` the child of `create` — ours:
//!   one `publish {destination}` span whose context the message carries;
//! - the process span is the child of the creation context without a link — ours also links;
//! - `messaging.message.id` on its process spans is a fresh UUID per delivery (FastStream never
//!   writes `message_id`), and a stream entry's id is not recorded — ours: the entry id;
//! - no settle span for XACK, no delivery count — ours: `ack {stream}` and
//!   `messaging.message.delivery_count`.
//!
//! Without Redis or the venv: a loud, recorded skip (a failure under `CI=true`).
//!
//! One test in this binary: it installs the OTLP pipeline as fastrace's global reporter.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::{Instant, timeout};
use tokio_stream::StreamExt as _;
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::common::v1::{AnyValue, any_value};
use tracewire_export::proto::trace::v1::span::SpanKind;
use tracewire_export::{Pipeline, Resource};
use tracewire_messaging::{Conventions, Messaging, Relation};
use tracewire_otlp::{OtlpConfig, OtlpExporter, Protocol};
use tracewire_redis::{Client, Outgoing};
use tracewire_test::peer::{PATIENCE, Peer, python};
use tracewire_test::skip;
use tracewire_viewer::store::StoredSpan;
use tracewire_viewer::{Query, ViewerBuilder};

const RS: &str = "rs-tracewire";
const PY: &str = "py-faststream";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    PubSub,
    List,
    Stream,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::PubSub => "pubsub",
            Mode::List => "list",
            Mode::Stream => "stream",
        }
    }
}

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

/// What one mode's run saw on the wire.
struct Run {
    mode: Mode,
    names: [String; 3],
    tp_first: String,
    correlation_first: String,
    /// What FastStream's parser read on SECOND (`{"headers": ..., "body_hex": ...}`).
    second: serde_json::Value,
    tp_third: String,
}

/// Our side of one mode's consumer of a destination.
enum Consumer {
    PubSub(tracewire_redis::Subscriber),
    List(tracewire_redis::ListConsumer),
    Stream(tracewire_redis::StreamConsumer),
}

/// A received message: its trace context header, correlation id and body.
struct Got {
    traceparent: String,
    correlation: String,
    body: Vec<u8>,
}

impl Consumer {
    async fn new(client: &Client, mode: Mode, name: &str) -> Consumer {
        match mode {
            Mode::PubSub => Consumer::PubSub(client.subscribe(name).await.unwrap()),
            Mode::List => Consumer::List(client.list(name).await.unwrap()),
            Mode::Stream => {
                let mut c = client.stream_group(name, "rs", "rs-1").await.unwrap();
                c.create_group("0").await.unwrap();
                Consumer::Stream(c)
            }
        }
    }

    /// Receives one message and runs `handler` in its process span (then acks a stream entry).
    async fn handle<F: std::future::Future<Output = ()>>(
        &mut self,
        handler: impl FnOnce(Vec<u8>, String) -> F,
    ) -> Got {
        let patience = Duration::from_secs(30);
        match self {
            Consumer::PubSub(s) => {
                let m = timeout(patience, s.next()).await.unwrap().unwrap();
                let got = Got {
                    traceparent: m.header("traceparent").unwrap().to_owned(),
                    correlation: m.correlation_id().unwrap().to_owned(),
                    body: m.body().to_vec(),
                };
                m.instrument(handler(got.body.clone(), got.correlation.clone()))
                    .await;
                got
            }
            Consumer::List(l) => {
                let m = l.pop(patience).await.unwrap().unwrap();
                let got = Got {
                    traceparent: m.header("traceparent").unwrap().to_owned(),
                    correlation: m.correlation_id().unwrap().to_owned(),
                    body: m.body().to_vec(),
                };
                m.instrument(handler(got.body.clone(), got.correlation.clone()))
                    .await;
                got
            }
            Consumer::Stream(c) => {
                let mut m = c.read(1, patience).await.unwrap().pop().unwrap();
                let envelope = m.envelope().expect("FastStream writes __data__");
                let got = Got {
                    traceparent: envelope.header("traceparent").unwrap().to_owned(),
                    correlation: envelope.correlation_id().unwrap().to_owned(),
                    body: envelope.body().to_vec(),
                };
                m.instrument(handler(got.body.clone(), got.correlation.clone()))
                    .await;
                m.ack().await.unwrap();
                got
            }
        }
    }
}

/// Sends `body` to `to` the way FastStream reads it in `mode`.
async fn send(client: &Client, mode: Mode, to: &str, body: Vec<u8>, correlation: String) {
    let m = Outgoing::new(body).correlation_id(correlation);
    match mode {
        Mode::PubSub => assert_eq!(client.publish(to, m).await.unwrap(), 1),
        Mode::List => drop(client.rpush(to, m).await.unwrap()),
        Mode::Stream => drop(client.xadd_envelope(to, m).await.unwrap()),
    }
}

async fn run(python: &Path, url: &str, endpoint: &str, client: &Client, mode: Mode) -> Run {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let base = format!(
        "twfs{}p{}.{}",
        now % 1_000_000_000,
        std::process::id(),
        mode.arg()
    );
    let names = ["first", "second", "third"].map(|n| format!("{base}.{n}"));
    let [first, second, third] = &names;
    // Our consumers are in place on the server before the peer publishes.
    let mut on_first = Consumer::new(client, mode, first).await;
    let mut on_third = Consumer::new(client, mode, third).await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/faststream_peer.py");
    let mut peer = Peer::spawn(
        python,
        &script,
        &[
            ("redis", url),
            ("otlp", endpoint),
            ("mode", mode.arg()),
            ("first", first),
            ("second", second),
            ("third", third),
        ],
    );
    // (The peer's pipes are read on threads; waiting on them blocks this worker only.)
    tokio::task::block_in_place(|| peer.expect("READY"));
    peer.send("publish");

    // The tracewire handler of FIRST: sends SECOND from inside the process span.
    let got_first = on_first
        .handle(|body, correlation| async move {
            send(client, mode, second, body, correlation).await;
        })
        .await;
    assert_eq!(got_first.body, b"order-1");
    let second_seen: serde_json::Value =
        serde_json::from_str(&tokio::task::block_in_place(|| peer.expect("SECOND"))).unwrap();

    // The tracewire handler of THIRD.
    let got_third = on_third.handle(|_, _| async {}).await;
    assert_eq!(got_third.body, b"order-1");

    peer.send("stop");
    let ended = tokio::task::block_in_place(|| peer.expect("FLUSHED"));
    tokio::task::block_in_place(|| peer.finish());
    eprintln!("{mode:?}: the peer's ended spans: {ended}");
    Run {
        mode,
        names: names.clone(),
        tp_first: got_first.traceparent,
        correlation_first: got_first.correlation,
        second: second_seen,
        tp_third: got_third.traceparent,
    }
}

fn check(run: &Run, all: &[StoredSpan]) {
    let [first, second, third] = &run.names;
    let spans: Vec<&StoredSpan> = all
        .iter()
        .filter(|s| {
            [first, second, third]
                .iter()
                .any(|n| s.span.name.contains(n.as_str()))
        })
        .collect();
    let tree = render(&spans);
    eprintln!("{:?}:\n{tree}", run.mode);
    let stream = run.mode == Mode::Stream;
    // Eight spans (ten for streams: our two XACKs), each under its service.name.
    assert_eq!(spans.len(), if stream { 10 } else { 8 }, "{tree}");
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

    // FastStream → us: FIRST's envelope carries FastStream's create span with the Python SDK's
    // flags `03` (sampled + W3C Level 2 random).
    let (tp_trace, tp_span, tp_flags) = traceparent(&run.tp_first);
    assert_eq!(
        (tp_trace.as_str(), tp_span.as_str()),
        (trace.as_str(), id(py_first_create).as_str()),
        "FIRST carries the context of FastStream's create span\n{tree}"
    );
    assert_eq!(tp_flags, 0x03, "the Python SDK's flags: {}", run.tp_first);
    assert_eq!(run.correlation_first, "order-1");

    // Us → FastStream: its own parser read our envelope — exactly one `traceparent`
    // (lowercase: its `dict.get` is case-sensitive) with our send span's context, our
    // correlation id, and the body.
    let headers = run.second["headers"].as_object().unwrap();
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
    assert_eq!(headers["correlation_id"], "order-1");
    assert_eq!(run.second["body_hex"], hex(b"order-1"));

    // FastStream → us again: THIRD carries the create span of FastStream's fresh publish.
    let (tp_trace, tp_span, _) = traceparent(&run.tp_third);
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
    let mut chain = vec![
        (py_first_publish, py_first_create),
        (rs_process_first, py_first_create),
        (rs_publish_second, rs_process_first),
        (py_second_process, rs_publish_second),
        (py_third_create, py_second_process),
        (py_third_publish, py_third_create),
        (rs_process_third, py_third_create),
    ];
    if stream {
        chain.push((one(&spans, RS, &format!("ack {first}")), rs_process_first));
        chain.push((one(&spans, RS, &format!("ack {third}")), rs_process_third));
    }
    for (child, of) in chain {
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
            first,
        ),
        (
            rs_publish_second,
            SpanKind::Producer,
            "send",
            "publish",
            second,
        ),
        (
            rs_process_third,
            SpanKind::Consumer,
            "process",
            "process",
            third,
        ),
    ] {
        assert_eq!(s.span.kind, kind as i32, "{}\n{tree}", s.span.name);
        for (key, want) in [
            ("messaging.system", "redis"),
            ("messaging.operation.type", op),
            ("messaging.operation.name", name),
            ("messaging.destination.name", dest.as_str()),
            ("messaging.message.conversation_id", "order-1"),
        ] {
            assert_eq!(
                attr(s, key).as_deref(),
                Some(want),
                "{}: {key}\n{tree}",
                s.span.name
            );
        }
    }
    assert_eq!(
        attr(rs_process_first, "messaging.redis.envelope").as_deref(),
        Some("binary")
    );
    if stream {
        assert_eq!(
            attr(rs_process_first, "messaging.consumer.group.name").as_deref(),
            Some("rs")
        );
        assert_eq!(
            attr(rs_process_first, "messaging.message.delivery_count").as_deref(),
            Some("1")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_through_faststream_and_back_are_one_trace_per_mode() {
    const TEST: &str = "faststream_redis_interop";
    let Some(url) = skip::redis_url() else {
        skip::skip(
            TEST,
            "no Redis server on 127.0.0.1:6379; run `bash scripts/services.sh start redis`",
        );
        return;
    };
    let Some(python) = python(
        TEST,
        &[
            "faststream.redis.opentelemetry",
            "opentelemetry.sdk.trace",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ],
    ) else {
        return;
    };
    let started = std::time::Instant::now();

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
    let messaging = Messaging::new("redis")
        .settle_spans(true)
        .tracer(Tracer::new().with_sampler(Sampler::parent_based(Sampler::AlwaysOn)))
        .relation(Relation::ChildAndLink)
        .conventions(Conventions::Current);
    let client = Client::with_messaging(redis::Client::open(url.as_str()).unwrap(), messaging)
        .await
        .unwrap();

    let mut runs = Vec::new();
    for mode in [Mode::PubSub, Mode::List, Mode::Stream] {
        runs.push(run(&python, &url, &endpoint, &client, mode).await);
    }

    assert!(
        tokio::task::block_in_place(|| pipeline.flush(PATIENCE)),
        "our spans exported: {:?}",
        pipeline.counters()
    );
    const EXPECTED: usize = 8 + 8 + 10;
    let deadline = Instant::now() + PATIENCE;
    while viewer.store().stats().spans < EXPECTED && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let traces = viewer.store().search_traces(&Query {
        limit: 0,
        ..Query::default()
    });
    let spans: Vec<StoredSpan> = traces.iter().flat_map(|(_, s)| s.clone()).collect();
    assert_eq!(
        spans.len(),
        EXPECTED,
        "{}",
        render(&spans.iter().collect::<Vec<_>>())
    );
    for run in &runs {
        check(run, &spans);
    }
    assert_eq!(client.decode_failures(), 0);

    assert!(tokio::task::block_in_place(
        || pipeline.shutdown(Duration::from_secs(5))
    ));
    viewer.shutdown().await;
    eprintln!("faststream redis interop: {:?}", started.elapsed());
}
