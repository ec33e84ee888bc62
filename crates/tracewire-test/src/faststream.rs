//! The FastStream interop harness of the broker crates (feature `faststream`): one chain, both
//! ways, in one trace,
//!
//! ```text
//! py publishes FIRST → rs handles FIRST, sends SECOND
//!                    → py handles SECOND, publishes THIRD → rs handles THIRD
//! ```
//!
//! with both sides exporting over real OTLP/HTTP to one receiver (the embedded viewer on a free
//! port) and the trace read back from its store.
//!
//! What is broker-independent lives here: the
//! [`Receiver`](crate::faststream::Receiver) (the viewer and our OTLP pipeline, installed as
//! fastrace's reporter), the Python peer ([`FastStream`](crate::faststream::FastStream): the
//! crate's `tests/faststream_peer.py` on the shared line protocol of
//! `crates/tracewire-test/python/faststream_common.py`), and the
//! [`Chain`](crate::faststream::Chain) of spans with the assertions every broker makes: one
//! trace id, the three `traceparent`s on the wire (FIRST and THIRD carry FastStream's create
//! spans with the Python SDK's flags `03`, SECOND exactly one lowercase `traceparent` with our
//! send span's context), the exact parent chain by span id, our process spans' links to the
//! creation contexts, and our spans' kind and `messaging.system` / `.operation.type` /
//! `.operation.name` / `.destination.name`.
//!
//! What is the broker's stays in its test: the client and its consumers, how it reads
//! `traceparent` and the correlation id off a message, the names FastStream and we give a
//! destination ([`Naming`](crate::faststream::Naming)), and the broker's own attributes
//! ([`Chain::assert_attrs`](crate::faststream::Chain::assert_attrs)).
//!
//! FastStream 0.7.8 deviates from the messaging conventions (semconv 1.27+), so only the wire
//! relations (parent ids, trace id) and its span names as observed are asserted on its spans;
//! what is right is asserted on ours. Its deviations common to every broker:
//!
//! - span names `{destination} {operation}` (pre-1.27) — ours: `{operation} {destination}`;
//! - `messaging.operation` = `publish` / `process` (pre-1.26 key, pre-1.28 value) — ours:
//!   `messaging.operation.type` = `send` / `process` (+ `messaging.operation.name`);
//! - no `messaging.destination.name` on process spans (`messaging.destination_publish.name`,
//!   deprecated in 1.27) — ours has it;
//! - a `create` + `publish` PRODUCER pair per single message, `publish` the *child* of `create`
//!   (the conventions: one send span, which links the creation context) — ours: one send span
//!   whose context the message carries;
//! - the process span is the child of the creation context *without a link* (the conventions
//!   recommend the link) — ours is the child and links it (`Relation::ChildAndLink`).
//!
//! Blocking calls on the peer's pipes run in `tokio::task::block_in_place`: call them from a
//! multi-threaded tokio test.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::common::v1::{AnyValue, any_value};
use tracewire_export::proto::trace::v1::span::SpanKind;
use tracewire_export::{Pipeline, Resource};
use tracewire_messaging::{Conventions, Messaging, Relation};
use tracewire_otlp::{OtlpConfig, OtlpExporter, Protocol};
use tracewire_viewer::store::StoredSpan;
use tracewire_viewer::{Query, RunningViewer, ViewerBuilder};

pub use crate::peer::PATIENCE;
use crate::peer::Peer;
use crate::skip::Broker;

/// The `service.name` of our side.
pub const RS: &str = "rs-tracewire";
/// The `service.name` of the FastStream peer.
pub const PY: &str = "py-faststream";
/// The body FastStream publishes on FIRST and every hop passes on.
pub const BODY: &[u8] = b"order-1";

/// The project's `.venv` python with FastStream's telemetry middleware for `broker`, the OTel
/// SDK and its OTLP/HTTP exporter; otherwise `None` after a [`skip`](crate::skip::skip) of
/// `test` (a failure under `CI=true`).
fn python(test: &str, broker: Broker) -> Option<PathBuf> {
    let module = match broker {
        Broker::Nats => "nats",
        Broker::Redis => "redis",
        Broker::RabbitMq => "rabbit",
        Broker::Mosquitto => "mqtt",
        Broker::Kafka => "kafka",
    };
    crate::peer::python(
        test,
        &[
            &format!("faststream.{module}.opentelemetry"),
            "opentelemetry.sdk.trace",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ],
    )
}

/// What an interop test starts with: the broker, the venv, and the [`Receiver`].
pub struct Interop {
    /// The broker's URL ([`Broker::url`]).
    pub url: String,
    /// The venv's python, with FastStream for the broker.
    pub python: PathBuf,
    /// The one OTLP receiver, our pipeline installed.
    pub receiver: Receiver,
}

impl Interop {
    /// The broker's URL, the venv's python and a started [`Receiver`]; or `None` after a
    /// recorded skip of `test` when the broker or the venv is missing (a failure under
    /// `CI=true`).
    pub async fn start(test: &str, broker: Broker) -> Option<Interop> {
        let url = crate::skip::broker(test, broker)?;
        let python = python(test, broker)?;
        Some(Interop {
            url,
            python,
            receiver: Receiver::start().await,
        })
    }

    /// Starts the crate's FastStream peer, `{crate_dir}/tests/faststream_peer.py --otlp
    /// ENDPOINT --first .. --second .. --third ..` and the broker's `args` (`--k v`), and waits
    /// until it is READY.
    ///
    /// # Panics
    ///
    /// When it does not start or ends first, or is not ready within [`PATIENCE`].
    pub fn peer(&self, crate_dir: &str, names: &[String; 3], args: &[(&str, &str)]) -> FastStream {
        let script = Path::new(crate_dir).join("tests/faststream_peer.py");
        let [first, second, third] = names;
        let mut all = vec![
            ("otlp", self.receiver.endpoint()),
            ("first", first.as_str()),
            ("second", second.as_str()),
            ("third", third.as_str()),
        ];
        all.extend_from_slice(args);
        let mut peer = Peer::spawn(&self.python, &script, &all);
        // (The peer's pipes are read on threads; waiting on them blocks this worker only.)
        tokio::task::block_in_place(|| peer.expect("READY"));
        FastStream { peer }
    }
}

/// Our side's settings for the interop, on the broker's `messaging`: parent-based sampling
/// (were FastStream's `-03` flags misread as unsampled, or its `traceparent` rejected for them,
/// our spans would be missing or in new traces), process spans that are the children of the
/// creation context and also link it, and the current conventions.
pub fn messaging(messaging: Messaging) -> Messaging {
    messaging
        .tracer(Tracer::new().with_sampler(Sampler::parent_based(Sampler::AlwaysOn)))
        .relation(Relation::ChildAndLink)
        .conventions(Conventions::Current)
}

/// FIRST, SECOND and THIRD under a prefix no other test or run uses
/// ([`unique`](crate::unique)`(sep, tag)`), joined by `sep` (`'.'`; `'/'` for MQTT topics).
pub fn names(sep: char, tag: &str) -> [String; 3] {
    let base = crate::unique(sep, tag);
    ["first", "second", "third"].map(|n| format!("{base}{sep}{n}"))
}

/// The one OTLP receiver — the viewer's OTLP/HTTP listener on a free port of 127.0.0.1 — and
/// our side's pipeline exporting to it over real OTLP/HTTP (service.name [`RS`]), installed as
/// fastrace's global reporter: one receiver per test binary.
pub struct Receiver {
    viewer: RunningViewer,
    pipeline: Pipeline,
    endpoint: String,
    started: Instant,
}

impl Receiver {
    /// Starts the viewer and installs our pipeline.
    ///
    /// # Panics
    ///
    /// When the viewer or the exporter cannot start.
    pub async fn start() -> Receiver {
        let started = Instant::now();
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
        Receiver {
            viewer,
            pipeline,
            endpoint,
            started,
        }
    }

    /// The OTLP/HTTP traces endpoint, `http://127.0.0.1:PORT/v1/traces`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span of both sides: flushes our pipeline, waits (up to [`PATIENCE`]) until the
    /// store holds `expected` spans, and returns them all.
    ///
    /// # Panics
    ///
    /// When ours are not exported, or the store holds other than `expected` spans.
    pub async fn spans(&self, expected: usize) -> Vec<StoredSpan> {
        // (`flush` blocks on the export thread; the viewer answering it runs on this runtime.)
        assert!(
            tokio::task::block_in_place(|| self.pipeline.flush(PATIENCE)),
            "our spans exported: {:?}",
            self.pipeline.counters()
        );
        let deadline = Instant::now() + PATIENCE;
        while self.viewer.store().stats().spans < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let traces = self.viewer.store().search_traces(&Query {
            limit: 0,
            ..Query::default()
        });
        let spans: Vec<StoredSpan> = traces.into_iter().flat_map(|(_, s)| s).collect();
        assert_eq!(
            spans.len(),
            expected,
            "{}",
            render(&spans.iter().collect::<Vec<_>>())
        );
        spans
    }

    /// Shuts our pipeline and the viewer down, and says how long the test took.
    ///
    /// # Panics
    ///
    /// When our pipeline does not shut down in time.
    pub async fn shutdown(self) {
        assert!(tokio::task::block_in_place(|| self
            .pipeline
            .shutdown(Duration::from_secs(5))));
        self.viewer.shutdown().await;
        eprintln!("faststream interop: {:?}", self.started.elapsed());
    }
}

/// The running FastStream peer ([`Interop::peer`]), `tests/faststream_peer.py` of the broker's
/// crate, on the line protocol of `faststream_common.py`; killed when dropped.
pub struct FastStream {
    peer: Peer,
}

impl FastStream {
    /// Tells it to publish FIRST (our consumers of FIRST and THIRD are in place).
    pub fn publish(&mut self) {
        self.peer.send("publish");
    }

    /// What FastStream read on SECOND: `{"headers": {...}, "body_hex": "..", ...}`.
    ///
    /// # Panics
    ///
    /// When none comes within [`PATIENCE`], or it is not JSON.
    pub fn second(&mut self) -> serde_json::Value {
        let line = tokio::task::block_in_place(|| self.peer.expect("SECOND"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("SECOND {line}: {e}"))
    }

    /// Tells it we handled THIRD, waits until it has exported every span and exited cleanly,
    /// and returns the names of the spans it ended (a JSON list).
    ///
    /// # Panics
    ///
    /// When it does not flush or exit within [`PATIENCE`], or exits with a failure.
    pub fn stop(mut self) -> String {
        self.peer.send("stop");
        let ended = tokio::task::block_in_place(|| self.peer.expect("FLUSHED"));
        let peer = self.peer;
        tokio::task::block_in_place(|| peer.finish());
        eprintln!("the peer's ended spans: {ended}");
        ended
    }
}

/// `bytes` in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `00-{trace}-{span}-{flags}` → (trace, span, flags), lowercase hex.
///
/// # Panics
///
/// When `tp` is not a version-00 `traceparent`.
pub fn traceparent(tp: &str) -> (String, String, u8) {
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

fn value<'a>(s: &'a StoredSpan, key: &str) -> Option<&'a AnyValue> {
    s.span
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// The value of attribute `key` as text.
pub fn attr(s: &StoredSpan, key: &str) -> Option<String> {
    value(s, key).map(text)
}

/// The value of attribute `key` with its wire type: `int:3`, `bool:true`, `double:0.5`,
/// `string:x`.
pub fn typed(s: &StoredSpan, key: &str) -> Option<String> {
    Some(match &value(s, key)?.value {
        Some(any_value::Value::IntValue(i)) => format!("int:{i}"),
        Some(any_value::Value::BoolValue(b)) => format!("bool:{b}"),
        Some(any_value::Value::DoubleValue(d)) => format!("double:{d}"),
        Some(any_value::Value::StringValue(s)) => format!("string:{s}"),
        other => format!("{other:?}"),
    })
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

/// `spans` as an indented tree (children under their parent, in start order; a span whose
/// parent is not among them is a root), one line per span: service, name, kind, span id,
/// parent id, the span ids it links, trace id, attributes.
pub fn render(spans: &[&StoredSpan]) -> String {
    let mut v = spans.to_vec();
    v.sort_by_key(|s| s.span.start_time_unix_nano);
    let present: BTreeSet<&[u8]> = v.iter().map(|s| &s.span.span_id[..]).collect();
    let mut children: HashMap<&[u8], Vec<&StoredSpan>> = HashMap::new();
    let mut roots = Vec::new();
    for s in &v {
        let parent = &s.span.parent_span_id[..];
        if !parent.is_empty() && present.contains(parent) {
            children.entry(parent).or_default().push(s);
        } else {
            roots.push(*s);
        }
    }
    let mut out = String::new();
    let mut stack: Vec<(&StoredSpan, usize)> = roots.into_iter().rev().map(|s| (s, 0)).collect();
    while let Some((s, depth)) = stack.pop() {
        let links: Vec<String> = s.span.links.iter().map(|l| hex(&l.span_id)).collect();
        let attrs: Vec<String> = s
            .span
            .attributes
            .iter()
            .map(|kv| {
                let v = kv.value.as_ref().map(text).unwrap_or_default();
                format!("{}={v}", kv.key)
            })
            .collect();
        let _ = writeln!(
            out,
            "{}{}: {} [{}] span={} parent={} links={links:?} trace={} {}",
            "  ".repeat(depth),
            s.origin.service,
            s.span.name,
            kind(s.span.kind),
            hex(&s.span.span_id),
            hex(&s.span.parent_span_id),
            hex(&s.span.trace_id),
            attrs.join(" ")
        );
        if let Some(kids) = children.get(&s.span.span_id[..]) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    out
}

/// How the spans of one chain are named.
#[derive(Clone, Debug)]
pub struct Naming {
    system: String,
    names: [String; 3],
    theirs: [String; 3],
    ours: [String; 3],
    send: String,
    settle: Option<String>,
}

impl Naming {
    /// `messaging.system` = `system`; FIRST, SECOND, THIRD = `names`, which both sides name
    /// their spans by; our send operation `publish`; no settle spans.
    pub fn new(system: &str, names: &[String; 3]) -> Naming {
        Naming {
            system: system.to_owned(),
            names: names.clone(),
            theirs: names.clone(),
            ours: names.clone(),
            send: "publish".to_owned(),
            settle: None,
        }
    }

    /// Our send span's operation (`messaging.operation.name`, the first word of its name):
    /// `send` for Kafka.
    pub fn send(mut self, operation: &str) -> Naming {
        self.send = operation.to_owned();
        self
    }

    /// The destination in FastStream's span names (`{destination} {operation}`), from a name.
    pub fn theirs(mut self, destination: impl Fn(&str) -> String) -> Naming {
        self.theirs = self.names.clone().map(|n| destination(&n));
        self
    }

    /// The destination of our send span (its name and `messaging.destination.name`), when it
    /// is not SECOND's name.
    pub fn sent_to(mut self, destination: String) -> Naming {
        self.ours[1] = destination;
        self
    }

    /// Our process spans have a settle span `{operation} {destination}` as a child (`ack`,
    /// `commit`).
    pub fn settle(mut self, operation: &str) -> Naming {
        self.settle = Some(operation.to_owned());
        self
    }
}

/// What our handlers read off the wire.
#[derive(Clone, Debug)]
pub struct Wire {
    /// FIRST's `traceparent`.
    pub first: String,
    /// FIRST's correlation id, as FastStream sent it.
    pub correlation: String,
    /// What FastStream read on SECOND ([`FastStream::second`]).
    pub second: serde_json::Value,
    /// THIRD's `traceparent`.
    pub third: String,
}

/// The spans of one chain, found by name (and service) among every span the receiver got.
pub struct Chain<'a> {
    naming: Naming,
    /// The chain's spans: those whose name holds FIRST's, SECOND's or THIRD's name.
    pub spans: Vec<&'a StoredSpan>,
    /// [`render`] of [`Chain::spans`].
    pub tree: String,
    /// The one trace id, hex.
    pub trace: String,
    /// FastStream's `{FIRST} create` (the root).
    pub py_first_create: &'a StoredSpan,
    /// FastStream's `{FIRST} publish`.
    pub py_first_publish: &'a StoredSpan,
    /// Our `process {FIRST}`.
    pub rs_process_first: &'a StoredSpan,
    /// Our `{send} {SECOND}`.
    pub rs_send_second: &'a StoredSpan,
    /// FastStream's `{SECOND} process`.
    pub py_second_process: &'a StoredSpan,
    /// FastStream's `{THIRD} create`.
    pub py_third_create: &'a StoredSpan,
    /// FastStream's `{THIRD} publish`.
    pub py_third_publish: &'a StoredSpan,
    /// Our `process {THIRD}`.
    pub rs_process_third: &'a StoredSpan,
    /// Our settle spans of FIRST and THIRD, with [`Naming::settle`].
    pub rs_settle: Option<[&'a StoredSpan; 2]>,
}

/// The one span of `service` named `name` among `spans`.
///
/// # Panics
///
/// When there is none, or more than one, with the tree.
pub fn one<'a>(spans: &[&'a StoredSpan], service: &str, name: &str) -> &'a StoredSpan {
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

impl<'a> Chain<'a> {
    /// The chain named by `naming` among `all`: exactly `expected` spans (FastStream's five,
    /// our three, and our settle spans), in one trace, each under its service.name.
    ///
    /// # Panics
    ///
    /// When the count, the trace or a span is not as expected, with the tree.
    pub fn find(all: &'a [StoredSpan], naming: Naming, expected: usize) -> Chain<'a> {
        let spans: Vec<&StoredSpan> = all
            .iter()
            .filter(|s| {
                naming
                    .names
                    .iter()
                    .any(|n| s.span.name.contains(n.as_str()))
            })
            .collect();
        let tree = render(&spans);
        eprintln!("{tree}");
        assert_eq!(spans.len(), expected, "{tree}");
        let trace_ids: BTreeSet<String> = spans.iter().map(|s| hex(&s.span.trace_id)).collect();
        assert_eq!(trace_ids.len(), 1, "one trace id\n{tree}");
        let trace = trace_ids.into_iter().next().unwrap_or_default();
        let [first, second, third] = &naming.theirs;
        let [to_first, to_second, to_third] = &naming.ours;
        let theirs = |dest: &str, op: &str| one(&spans, PY, &format!("{dest} {op}"));
        let ours = |op: &str, dest: &str| one(&spans, RS, &format!("{op} {dest}"));
        Chain {
            py_first_create: theirs(first, "create"),
            py_first_publish: theirs(first, "publish"),
            rs_process_first: ours("process", to_first),
            rs_send_second: ours(&naming.send, to_second),
            py_second_process: theirs(second, "process"),
            py_third_create: theirs(third, "create"),
            py_third_publish: theirs(third, "publish"),
            rs_process_third: ours("process", to_third),
            rs_settle: naming
                .settle
                .as_deref()
                .map(|op| [ours(op, to_first), ours(op, to_third)]),
            naming,
            spans,
            tree,
            trace,
        }
    }

    /// Our spans: process FIRST, send SECOND, process THIRD.
    pub fn ours(&self) -> [&'a StoredSpan; 3] {
        [
            self.rs_process_first,
            self.rs_send_second,
            self.rs_process_third,
        ]
    }

    /// The one span of `service` named `name` in the chain.
    pub fn one(&self, service: &str, name: &str) -> &'a StoredSpan {
        one(&self.spans, service, name)
    }

    /// Asserts each `(key, value)` attribute on `span`.
    #[track_caller]
    pub fn assert_attrs(&self, span: &StoredSpan, want: &[(&str, &str)]) {
        for (key, want) in want {
            assert_eq!(
                attr(span, key).as_deref(),
                Some(*want),
                "{}: {key}\n{}",
                span.span.name,
                self.tree
            );
        }
    }

    /// Asserts what every broker's chain must show: the three `traceparent`s (and FIRST's
    /// correlation id) on the `wire`,
    /// the exact parent chain by span id, our process spans' links, and our spans' kind and
    /// messaging operation and destination; and that FastStream read the body on SECOND.
    #[track_caller]
    pub fn check(&self, wire: &Wire) {
        let (trace, tree) = (&self.trace, &self.tree);
        let id = |s: &StoredSpan| hex(&s.span.span_id);
        let parent = |s: &StoredSpan| hex(&s.span.parent_span_id);

        // The wire, FastStream → us: FIRST carries FastStream's create span with the Python
        // SDK's flags `03` (sampled + W3C Level 2 random), which we read (an SDK that rejects
        // flags > 01 would have broken the chain here).
        let (tp_trace, tp_span, tp_flags) = traceparent(&wire.first);
        assert_eq!(
            (tp_trace.as_str(), tp_span.as_str()),
            (trace.as_str(), id(self.py_first_create).as_str()),
            "FIRST carries the context of FastStream's create span\n{tree}"
        );
        assert_eq!(tp_flags, 0x03, "the Python SDK's flags: {}", wire.first);
        assert_eq!(wire.correlation, "order-1", "FIRST's correlation id");

        // The wire, us → FastStream: its own parser read exactly one `traceparent`, lowercase
        // (FastStream's `dict.get("traceparent")` is case-sensitive), with our send span's
        // context, and the body.
        let headers = wire.second["headers"]
            .as_object()
            .unwrap_or_else(|| panic!("headers on SECOND: {}", wire.second));
        let keys: Vec<&String> = headers
            .keys()
            .filter(|k| k.eq_ignore_ascii_case("traceparent"))
            .collect();
        assert_eq!(keys, ["traceparent"], "{headers:?}");
        let (tp_trace, tp_span, tp_flags) = traceparent(
            headers["traceparent"]
                .as_str()
                .unwrap_or_else(|| panic!("{headers:?}")),
        );
        assert_eq!(
            (tp_trace.as_str(), tp_span.as_str()),
            (trace.as_str(), id(self.rs_send_second).as_str()),
            "SECOND carries our send span's context\n{tree}"
        );
        assert_eq!(tp_flags & 0x01, 0x01, "sampled: {headers:?}");
        assert_eq!(wire.second["body_hex"], hex(BODY), "{}", wire.second);

        // FastStream → us again: THIRD carries the create span of FastStream's fresh publish
        // (its path A), not the context that came in on SECOND.
        let (tp_trace, tp_span, _) = traceparent(&wire.third);
        assert_eq!(
            (tp_trace.as_str(), tp_span.as_str()),
            (trace.as_str(), id(self.py_third_create).as_str()),
            "THIRD carries the context of FastStream's create span\n{tree}"
        );

        // The exact parent chain, by span id.
        assert!(
            self.py_first_create.span.parent_span_id.is_empty(),
            "FastStream's first create span is the root\n{tree}"
        );
        let mut chain = vec![
            (self.py_first_publish, self.py_first_create),
            (self.rs_process_first, self.py_first_create),
            (self.rs_send_second, self.rs_process_first),
            (self.py_second_process, self.rs_send_second),
            (self.py_third_create, self.py_second_process),
            (self.py_third_publish, self.py_third_create),
            (self.rs_process_third, self.py_third_create),
        ];
        if let Some([first, third]) = self.rs_settle {
            chain.push((first, self.rs_process_first));
            chain.push((third, self.rs_process_third));
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
            (self.rs_process_first, self.py_first_create),
            (self.rs_process_third, self.py_third_create),
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
        let naming = &self.naming;
        let [to_first, to_second, to_third] = &naming.ours;
        for (s, kind, op, name, dest) in [
            (
                self.rs_process_first,
                SpanKind::Consumer,
                "process",
                "process",
                to_first,
            ),
            (
                self.rs_send_second,
                SpanKind::Producer,
                "send",
                naming.send.as_str(),
                to_second,
            ),
            (
                self.rs_process_third,
                SpanKind::Consumer,
                "process",
                "process",
                to_third,
            ),
        ] {
            assert_eq!(s.span.kind, kind as i32, "{}\n{tree}", s.span.name);
            self.assert_attrs(
                s,
                &[
                    ("messaging.system", naming.system.as_str()),
                    ("messaging.operation.type", op),
                    ("messaging.operation.name", name),
                    ("messaging.destination.name", dest.as_str()),
                ],
            );
        }
    }
}
