//! Interop with FastStream (Python, `NatsTelemetryMiddleware`) over a real NATS server, both
//! ways, in one trace:
//!
//! ```text
//! py publishes FIRST → rs handles FIRST, publishes SECOND
//!                    → py handles SECOND, publishes THIRD → rs handles THIRD
//! ```
//!
//! Both sides export over real OTLP/HTTP to one receiver — the embedded viewer, started here on
//! a free port — and the trace is read back from its store: one trace id, the exact parent
//! chain by span id, our links, names, kinds and attributes. The Python peer is
//! `faststream_peer.py` (FastStream 0.7.8 from `.venv`, `scripts/setup-python.sh`).
//!
//! Where FastStream deviates from the messaging conventions (semconv 1.27+), only the wire
//! relations (parent ids, trace id) and its span names as observed are asserted on its spans;
//! what is right is asserted on ours. The deviations, as observed with 0.7.8:
//!
//! - span names `{destination} {operation}` (pre-1.27) — ours: `{operation} {destination}`;
//! - `messaging.operation` = `publish` / `process` (pre-1.26 key, pre-1.28 value) — ours:
//!   `messaging.operation.type` = `send` / `process` (+ `messaging.operation.name`);
//! - no `messaging.destination.name` on process spans (`messaging.destination_publish.name`,
//!   deprecated in 1.27) — ours has it;
//! - `messaging.message.payload_size_bytes` (renamed in 1.22) — ours:
//!   `messaging.message.body.size`;
//! - a `create` + `publish` PRODUCER pair per single message, `publish` the *child* of `create`
//!   (the conventions: one send span, which links the creation context) — ours: one
//!   `publish {subject}` span whose context the message carries;
//! - the process span is the child of the creation context *without a link* (the conventions
//!   recommend the link) — ours is the child and links it (`Relation::ChildAndLink`).
//!
//! Without NATS or the venv: a loud, recorded skip (a failure under `CI=true`).
//!
//! One test in this binary: it installs the OTLP pipeline as fastrace's global reporter.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_stream::StreamExt as _;
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::common::v1::{AnyValue, any_value};
use tracewire_export::proto::trace::v1::span::SpanKind;
use tracewire_export::{Pipeline, Resource};
use tracewire_messaging::{Conventions, Messaging, Relation};
use tracewire_nats::Client;
use tracewire_otlp::{OtlpConfig, OtlpExporter, Protocol};
use tracewire_test::skip;
use tracewire_viewer::store::StoredSpan;
use tracewire_viewer::{Query, ViewerBuilder};

/// Every wait of the test; normally it finishes in a few seconds.
const PATIENCE: Duration = Duration::from_secs(30);

const RS: &str = "rs-tracewire";
const PY: &str = "py-faststream";

/// A subject prefix no other test or run uses.
fn unique() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("twfs{}p{}", now % 1_000_000_000, std::process::id())
}

/// `.venv/bin/python` with FastStream and the OTLP/HTTP exporter, or `None` after a skip.
async fn python(test: &str) -> Option<PathBuf> {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args([
                "-c",
                "import faststream.nats.opentelemetry, opentelemetry.sdk.trace, \
                 opentelemetry.exporter.otlp.proto.http.trace_exporter",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    skip::skip(
        test,
        ".venv/bin/python with faststream[nats,otel] and opentelemetry-exporter-otlp-proto-http \
         not found; run `bash scripts/setup-python.sh`",
    );
    None
}

/// The running FastStream peer: a line protocol on stdin/stdout (see `faststream_peer.py`);
/// killed when dropped, so every exit path of the test (a failed assertion too) ends it.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Its stderr and the stdout lines that were not protocol (FastStream logs to stdout).
    log: Arc<Mutex<String>>,
}

impl Peer {
    fn spawn(python: &PathBuf, args: &[(&str, &str)]) -> Peer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/faststream_peer.py");
        let mut cmd = Command::new(python);
        cmd.arg(script);
        for (k, v) in args {
            cmd.arg(format!("--{k}")).arg(v);
        }
        // The SDK's own OTEL_* variables (a sampler, a service name) must not change the peer.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Peer {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The rest of the next stdout line that starts with `tag`.
    async fn expect(&mut self, tag: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match timeout_at(deadline, self.stdout.next_line()).await {
                Ok(Ok(Some(line))) => match line.strip_prefix(tag) {
                    Some(rest) => return rest.trim().to_owned(),
                    None => {
                        let mut log = self.log.lock().unwrap();
                        log.push_str(&line);
                        log.push('\n');
                    }
                },
                Ok(Ok(None)) | Ok(Err(_)) => {
                    let status = timeout(Duration::from_secs(5), self.child.wait()).await;
                    // Let the stderr task read to the end.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    panic!(
                        "the FastStream peer ended before {tag} ({status:?}); its output:\n{}",
                        self.log()
                    );
                }
                Err(_) => panic!(
                    "no {tag} from the FastStream peer within {PATIENCE:?}; its output:\n{}",
                    self.log()
                ),
            }
        }
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits for a clean exit.
    async fn finish(mut self) {
        let status = timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the peer did not exit; its output:\n{}", self.log()))
            .unwrap();
        assert!(status.success(), "{status}; its output:\n{}", self.log());
    }
}

async fn next<S: tokio_stream::Stream + Unpin>(s: &mut S, what: &str) -> S::Item {
    timeout(PATIENCE, s.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
        .expect("the subscription goes on")
}

/// A round trip to the server on this connection: it has processed every earlier SUB of ours
/// (a server handles one connection's operations in order), so a publish from the peer after
/// this reaches our subscribers.
async fn round_trip(nats: &async_nats::Client) {
    let inbox = nats.new_inbox();
    let mut probe = nats.subscribe(inbox.clone()).await.unwrap();
    nats.publish(inbox, "".into()).await.unwrap();
    drop(next(&mut probe, "the round-trip probe").await);
}

/// The one value of header `name` (exact, case-sensitive: what FastStream's `dict.get` reads).
fn header(m: &async_nats::Message, name: &str) -> String {
    m.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .unwrap_or_else(|| panic!("no {name:?} header on {}: {:?}", m.subject, m.headers))
        .to_string()
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// One line per span, in start order: service, name, kind, span id, parent id, links, attributes.
fn render(spans: &[StoredSpan]) -> String {
    let mut v: Vec<&StoredSpan> = spans.iter().collect();
    v.sort_by_key(|s| s.span.start_time_unix_nano);
    v.iter()
        .map(|s| {
            let attrs: Vec<String> = s
                .span
                .attributes
                .iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.key,
                        kv.value.as_ref().map(text).unwrap_or_default()
                    )
                })
                .collect();
            let links: Vec<String> = s.span.links.iter().map(|l| hex(&l.span_id)).collect();
            format!(
                "{}: {} [{}] span={} parent={} links={links:?} trace={} {}\n",
                s.origin.service,
                s.span.name,
                kind(s.span.kind),
                hex(&s.span.span_id),
                hex(&s.span.parent_span_id),
                hex(&s.span.trace_id),
                attrs.join(" ")
            )
        })
        .collect()
}

/// The one span of `service` named `name`.
fn one<'a>(spans: &'a [StoredSpan], service: &str, name: &str) -> &'a StoredSpan {
    let found: Vec<&StoredSpan> = spans
        .iter()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_through_faststream_and_back_is_one_trace() {
    const TEST: &str = "faststream_interop";
    let Some(url) = skip::nats_url() else {
        skip::skip(
            TEST,
            "no NATS server on 127.0.0.1:4222; run `bash scripts/services.sh start nats`",
        );
        return;
    };
    let Some(python) = python(TEST).await else {
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

    // Our side exports over real OTLP/HTTP, as an application would.
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

    // Parent-based sampling, the default: were FastStream's `-03` flags misread as unsampled
    // (or the traceparent rejected for them), our spans would be missing or in new traces.
    let messaging = Messaging::new("nats")
        .tracer(Tracer::new().with_sampler(Sampler::parent_based(Sampler::AlwaysOn)))
        .relation(Relation::ChildAndLink)
        .conventions(Conventions::Current);
    let nats = async_nats::connect(&url).await.unwrap();
    let client = Client::with_messaging(nats.clone(), messaging);

    let base = unique();
    let [first, second, third] = ["first", "second", "third"].map(|n| format!("{base}.{n}"));
    // Our handlers' subscriptions are in place on the server before the peer publishes.
    let mut on_first = client.subscribe(first.clone()).await.unwrap();
    let mut on_third = client.subscribe(third.clone()).await.unwrap();
    round_trip(&nats).await;

    let mut peer = Peer::spawn(
        &python,
        &[
            ("nats", &url),
            ("otlp", &endpoint),
            ("first", &first),
            ("second", &second),
            ("third", &third),
        ],
    );
    peer.expect("READY").await;
    peer.send("publish").await;

    // The tracewire handler of FIRST: publishes SECOND from inside the process span.
    let m = next(&mut on_first, &first).await;
    let tp_first = header(&m, "traceparent");
    let correlation = header(&m, "correlation_id");
    assert_eq!(&m.payload[..], b"order-1");
    m.instrument(client.publish(second.clone(), m.payload.clone()))
        .await
        .unwrap();
    drop(m);

    // What FastStream received on SECOND, off the wire.
    let second_headers: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&peer.expect("SECOND_HEADERS").await).unwrap();

    // The tracewire handler of THIRD.
    let m = next(&mut on_third, &third).await;
    let tp_third = header(&m, "traceparent");
    let correlation_third = header(&m, "correlation_id");
    assert_eq!(&m.payload[..], b"order-1");
    drop(m);

    // Both sides flush: the peer ends its spans and shuts its provider down (a synchronous
    // export), ours flushes the pipeline; then the store holds everything.
    peer.send("stop").await;
    let ended = peer.expect("FLUSHED").await;
    peer.finish().await;
    // (`flush` blocks on the export thread; the viewer answering it runs on this runtime.)
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
    let spans: Vec<StoredSpan> = traces.iter().flat_map(|(_, s)| s.clone()).collect();
    let tree = render(&spans);
    eprintln!("peer's ended spans: {ended}\n{tree}");

    // Exactly one trace across both services, and nothing else.
    let trace_ids: BTreeSet<String> = spans.iter().map(|s| hex(&s.span.trace_id)).collect();
    assert_eq!(trace_ids.len(), 1, "one trace id\n{tree}");
    assert_eq!(spans.len(), EXPECTED, "{tree}");
    let trace = trace_ids.into_iter().next().unwrap();

    let py_first_create = one(&spans, PY, &format!("{first} create"));
    let py_first_publish = one(&spans, PY, &format!("{first} publish"));
    let rs_process_first = one(&spans, RS, &format!("process {first}"));
    let rs_publish_second = one(&spans, RS, &format!("publish {second}"));
    let py_second_process = one(&spans, PY, &format!("{second} process"));
    let py_third_create = one(&spans, PY, &format!("{third} create"));
    let py_third_publish = one(&spans, PY, &format!("{third} publish"));
    let rs_process_third = one(&spans, RS, &format!("process {third}"));
    // (Eight spans, each found under its service.name: every span comes from the right side.)
    let id = |s: &StoredSpan| hex(&s.span.span_id);
    let parent = |s: &StoredSpan| hex(&s.span.parent_span_id);

    // The wire, FastStream → us: FIRST carries FastStream's create span in a lowercase
    // `traceparent` with the Python SDK's flags `03` (sampled + W3C Level 2 random), which we
    // read (an SDK that rejects flags > 01 would have broken the chain here).
    let (tp_trace, tp_span, tp_flags) = traceparent(&tp_first);
    assert_eq!(
        (tp_trace.as_str(), tp_span.as_str()),
        (trace.as_str(), id(py_first_create).as_str()),
        "FIRST carries the context of FastStream's create span\n{tree}"
    );
    assert_eq!(tp_flags, 0x03, "the Python SDK's flags: {tp_first}");

    // The wire, us → FastStream: exactly one `traceparent`, lowercase (FastStream's
    // `dict.get("traceparent")` is case-sensitive), with our send span's context.
    let keys: Vec<&String> = second_headers
        .keys()
        .filter(|k| k.eq_ignore_ascii_case("traceparent"))
        .collect();
    assert_eq!(keys, ["traceparent"], "{second_headers:?}");
    let (tp_trace, tp_span, tp_flags) =
        traceparent(second_headers["traceparent"].as_str().unwrap());
    assert_eq!(
        (tp_trace.as_str(), tp_span.as_str()),
        (trace.as_str(), id(rs_publish_second).as_str()),
        "SECOND carries our send span's context\n{tree}"
    );
    assert_eq!(tp_flags & 0x01, 0x01, "sampled: {second_headers:?}");

    // FastStream → us again: THIRD carries the create span of FastStream's fresh publish
    // (path A), not the context that came in on SECOND.
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
    let chain = [
        (py_first_publish, py_first_create),
        (rs_process_first, py_first_create),
        (rs_publish_second, rs_process_first),
        (py_second_process, rs_publish_second),
        (py_third_create, py_second_process),
        (py_third_publish, py_third_create),
        (rs_process_third, py_third_create),
    ];
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
            "{} links its creation context\n{tree}",
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
            ("messaging.system", "nats"),
            ("messaging.operation.type", op),
            ("messaging.operation.name", name),
            ("messaging.destination.name", dest.as_str()),
        ] {
            assert_eq!(
                attr(s, key).as_deref(),
                Some(want),
                "{}: {key}\n{tree}",
                s.span.name
            );
        }
    }
    // FastStream's `correlation_id` header is our `messaging.message.conversation_id` (on
    // THIRD a fresh uuid: SECOND had none, so FastStream made one up for the message).
    assert_eq!(correlation, "order-1");
    for (s, want) in [
        (rs_process_first, &correlation),
        (rs_process_third, &correlation_third),
    ] {
        assert_eq!(
            attr(s, "messaging.message.conversation_id").as_ref(),
            Some(want),
            "{}\n{tree}",
            s.span.name
        );
    }

    assert!(tokio::task::block_in_place(
        || pipeline.shutdown(Duration::from_secs(5))
    ));
    viewer.shutdown().await;
    eprintln!("faststream interop: {:?}", started.elapsed());
}
