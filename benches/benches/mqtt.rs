//! MQTT 5 messaging: the CPU one traced publish and one traced process add on the calling
//! thread, tracewire-mqtt next to the bare rumqttc client and to what users hand-write today
//! with OpenTelemetry, in one run.
//!
//! ```text
//! bash scripts/services.sh start mosquitto      # Mosquitto on 127.0.0.1:1883 (MQTT_HOST/MQTT_PORT override)
//! cargo bench -p tracewire-benches --bench mqtt
//! ```
//!
//! Stacks (every group has the same rows where they apply):
//!
//! - `bare`: rumqttc 0.25 (`rumqttc::v5`) alone, no tracing.
//! - `tracewire sampled` / `tracewire unsampled`: `tracewire_mqtt::Client` (the `Client::new`
//!   configuration: `messaging.system`, server address and port, client id; default
//!   propagators `tracecontext,baggage`), sampler `parentbased(always_on)` /
//!   `parentbased(always_off)`. Recorded spans go to fastrace's collector and on to
//!   tracewire's export pipeline (`tracewire_export::Pipeline`) with an exporter that encodes
//!   each request to OTLP protobuf bytes and drops them.
//! - `otel sampled` / `otel unsampled`: the hand-written peer, `common/mqtt_otel.rs` — the
//!   OpenTelemetry SDK 0.33 (`ParentBased(AlwaysOn / AlwaysOff)`, `BatchSpanProcessor` into an
//!   exporter that converts, prost-encodes and drops), a W3C `TraceContextPropagator` into /
//!   out of the PUBLISH's user properties, an SDK span per publish and per process with the
//!   attributes tracewire records, the handler run with the span's context attached on every
//!   poll.
//!
//! Groups (time = **CPU time of the benchmarking thread**, `common::ThreadCpu`: fastrace's
//! collector, tracewire's export worker and the SDK's batch thread are not counted on either
//! side — `examples/mqtt_load.rs` counts everything). Each row runs 256 times back to back
//! (timed), then everything is drained untimed (see `paced`):
//!
//! - `mqtt/publish`: one QoS 0 publish of a 128-byte payload to the real broker: the client
//!   call (span, properties, injection, the request queued for the event loop) **and** the
//!   event loop polled until it has written it (rumqttc writes and flushes each request as it
//!   takes it: a `write` per message), on a current-thread runtime. `bare + traceparent`
//!   publishes with a prepared, constant `traceparent` user property: what carrying it costs
//!   without any tracing.
//! - `mqtt/publish-tracing`: the tracing work alone — tracewire's `Messaging::send_lazy` into
//!   `UserPropertiesMut` with the facts `Client::publish` gives it, and the end; the peer's
//!   span, injection and end; the properties dropped. `fastrace root span`: the engine's
//!   floor (a root span with two properties, submitted).
//! - `mqtt/process`: a prepared incoming `Publish` (topic `tw/bench/orders`, QoS 1, 128-byte
//!   payload, subscription identifier 1, user properties `traceparent` — flags `01` for the
//!   sampled rows, `00` for the unsampled — `x-request-id`, `x-tenant`), cloned outside the
//!   timed region; timed: context extracted, the process span started, an empty async handler
//!   polled inside it (a no-op waker), the span ended, the message dropped. tracewire:
//!   `EventLoop::process` (which names the span by the client's subscription `tw/bench/+`) +
//!   `Message::instrument`; it also links the creation context, the peer does not.
//!
//! `MQTT_BENCH_PROFILE=<group>/<row>[:n]` runs one row `n` times without criterion, for
//! `valgrind --tool=callgrind` (see `profile`).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

mod common;
#[path = "common/mqtt_otel.rs"]
mod mqtt_otel;

use common::{ThreadCpu, median_ns};

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, MqttOptions};
use tracewire_core::{Sampler, Tracer, semconv};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, Pipeline, SpanExporter};
use tracewire_messaging::{Destination, MessageInfo, Messaging};
use tracewire_mqtt::UserPropertiesMut;

/// The topic of the process rows' messages; the traced clients subscribe to `FILTER`.
const TOPIC: &str = "tw/bench/orders";
const FILTER: &str = "tw/bench/+";
/// Where the publish rows publish: no subscription of the bench's matches it.
const OUT: &str = "tw/bench/out/orders";
const PAYLOAD: [u8; 128] = [b'x'; 128];
const TRACEPARENT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACEPARENT_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

const BARE: &str = "bare";
const BARE_HEADER: &str = "bare + traceparent";
const FLOOR: &str = "fastrace root span";
const TW_SAMPLED: &str = "tracewire sampled";
const TW_UNSAMPLED: &str = "tracewire unsampled";
const OTEL_SAMPLED: &str = "otel sampled";
const OTEL_UNSAMPLED: &str = "otel unsampled";

const PUBLISH: &str = "mqtt/publish";
const PUBLISH_TRACING: &str = "mqtt/publish-tracing";
const PROCESS: &str = "mqtt/process";

/// Encodes each OTLP request tracewire's pipeline sends, counts its spans, drops the bytes.
struct CountingSink(Arc<AtomicU64>);

impl SpanExporter for CountingSink {
    fn name(&self) -> &str {
        "counting-sink"
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        let n: usize = batch
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        black_box(tracewire_export::encode::encode_request(batch));
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// Polls `fut` once with a no-op waker (the handlers here never wait).
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the handler waited"),
    }
}

/// The handler: nothing but a look at the message.
async fn handler(payload: &Bytes) -> usize {
    black_box(payload.len())
}

fn tracer(sampled: bool) -> Tracer {
    Tracer::new().with_sampler(Sampler::parent_based(if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    }))
}

/// A received message: what the event loop yields for a message published with a trace
/// context and a few properties of the application's own, through subscription 1.
fn received(traceparent: &str) -> Publish {
    let properties = PublishProperties {
        user_properties: vec![
            ("traceparent".into(), traceparent.into()),
            (
                "x-request-id".into(),
                "7f3c2a9e-5b1d-4e8f-9a6c-2d4b8e1f0a3c".into(),
            ),
            ("x-tenant".into(), "acme".into()),
        ],
        subscription_identifiers: vec![1],
        ..PublishProperties::default()
    };
    let mut p = Publish::new(
        TOPIC,
        QoS::AtLeastOnce,
        Bytes::from_static(&PAYLOAD),
        Some(properties),
    );
    p.pkid = 7;
    p
}

fn options(id: &str) -> MqttOptions {
    let host = std::env::var("MQTT_HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("MQTT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1883);
    let mut o = MqttOptions::new(format!("{id}-{}", std::process::id()), host, port);
    o.set_keep_alive(Duration::from_secs(60));
    o
}

/// Polls rumqttc's event loop until it has written `n` publishes.
async fn written(eventloop: &mut rumqttc::v5::EventLoop, n: u64) {
    let mut left = n;
    while left > 0 {
        if let rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Publish(_)) =
            eventloop.poll().await.unwrap()
        {
            left -= 1;
        }
    }
}

/// The same through tracewire's event loop.
async fn written_tw(eventloop: &mut tracewire_mqtt::EventLoop, n: u64) {
    let mut left = n;
    while left > 0 {
        if let tracewire_mqtt::Event::Other(rumqttc::v5::Event::Outgoing(
            rumqttc::Outgoing::Publish(_),
        )) = eventloop.poll().await.unwrap()
        {
            left -= 1;
        }
    }
}

/// Everything the rows share: a bare connection and a traced one per sampling decision
/// (their event loops polled on `rt`), the peers.
struct Fixture {
    rt: tokio::runtime::Runtime,
    bare: AsyncClient,
    bare_loop: std::cell::RefCell<rumqttc::v5::EventLoop>,
    tw: [tracewire_mqtt::Client; 2],
    tw_loops: [std::cell::RefCell<tracewire_mqtt::EventLoop>; 2],
    otel: [mqtt_otel::Peer; 2],
    payload: Bytes,
    pipeline: Pipeline,
    tw_exported: Arc<AtomicU64>,
    otel_exported: Arc<AtomicU64>,
}

impl Fixture {
    fn new() -> Self {
        let tw_exported = Arc::new(AtomicU64::new(0));
        let pipeline = Pipeline::builder()
            .exporter(CountingSink(tw_exported.clone()))
            .build()
            .unwrap();
        fastrace::set_reporter(pipeline.reporter(), fastrace::collector::Config::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (bare, mut bare_loop) = AsyncClient::new(options("tw-bench-bare"), 1024);
        let traced = |sampled: bool| {
            let o = options(if sampled {
                "tw-bench-sampled"
            } else {
                "tw-bench-unsampled"
            });
            // What `Client::new` configures, with an explicit tracer.
            let messaging = Messaging::new("mqtt")
                .tracer(tracer(sampled))
                .server("127.0.0.1", Some(1883))
                .client_id(o.client_id());
            tracewire_mqtt::Client::with_messaging(o, 1024, messaging)
        };
        let (tw_s, mut loop_s) = traced(true);
        let (tw_u, mut loop_u) = traced(false);
        rt.block_on(async {
            // Connected, and the traced clients subscribed (identifier 1: the process rows'
            // messages name their subscription).
            while !matches!(
                bare_loop.poll().await,
                Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(_)))
            ) {}
            for (c, l) in [(&tw_s, &mut loop_s), (&tw_u, &mut loop_u)] {
                c.subscribe(FILTER, QoS::AtLeastOnce).await.unwrap();
                loop {
                    match l.poll().await {
                        Ok(tracewire_mqtt::Event::Other(rumqttc::v5::Event::Incoming(
                            Packet::SubAck(_),
                        ))) => break,
                        Ok(_) => {}
                        Err(e) => panic!(
                            "no MQTT broker ({e}): `bash scripts/services.sh start mosquitto`"
                        ),
                    }
                }
            }
        });
        let otel_exported = Arc::new(AtomicU64::new(0));
        Fixture {
            otel: [
                mqtt_otel::Peer::new(true, otel_exported.clone(), "tw-bench-bare"),
                mqtt_otel::Peer::new(false, otel_exported.clone(), "tw-bench-bare"),
            ],
            rt,
            bare,
            bare_loop: std::cell::RefCell::new(bare_loop),
            tw: [tw_s, tw_u],
            tw_loops: [
                std::cell::RefCell::new(loop_s),
                std::cell::RefCell::new(loop_u),
            ],
            payload: Bytes::from_static(&PAYLOAD),
            pipeline,
            tw_exported,
            otel_exported,
        }
    }

    fn i(sampled: bool) -> usize {
        usize::from(!sampled)
    }

    /// One QoS 0 publish by `stack`, handed to its client (not yet written).
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn publish(&self, stack: &str) {
        let payload = self.payload.clone();
        self.rt
            .block_on(async {
                match stack {
                    BARE => {
                        self.bare
                            .publish(OUT, QoS::AtMostOnce, false, payload)
                            .await
                    }
                    BARE_HEADER => {
                        let properties = PublishProperties {
                            user_properties: vec![(
                                "traceparent".into(),
                                TRACEPARENT_SAMPLED.into(),
                            )],
                            ..PublishProperties::default()
                        };
                        self.bare
                            .publish_with_properties(
                                OUT,
                                QoS::AtMostOnce,
                                false,
                                payload,
                                properties,
                            )
                            .await
                    }
                    TW_SAMPLED | TW_UNSAMPLED => {
                        self.tw[Fixture::i(stack == TW_SAMPLED)]
                            .publish(OUT, QoS::AtMostOnce, false, payload)
                            .await
                    }
                    OTEL_SAMPLED | OTEL_UNSAMPLED => {
                        let peer = &self.otel[Fixture::i(stack == OTEL_SAMPLED)];
                        let mut properties = PublishProperties::default();
                        let cx = peer.publish_span(
                            OUT,
                            0,
                            payload.len(),
                            &mut properties.user_properties,
                        );
                        let result = self
                            .bare
                            .publish_with_properties(
                                OUT,
                                QoS::AtMostOnce,
                                false,
                                payload,
                                properties,
                            )
                            .await;
                        mqtt_otel::end(&cx);
                        result
                    }
                    other => panic!("no publish row {other}"),
                }
            })
            .unwrap();
    }

    /// The event loop of `stack`'s rows writes the `n` publishes it was handed.
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn write(&self, stack: &str, n: u64) {
        match stack {
            TW_SAMPLED | TW_UNSAMPLED => {
                let mut l = self.tw_loops[Fixture::i(stack == TW_SAMPLED)].borrow_mut();
                self.rt.block_on(written_tw(&mut l, n));
            }
            _ => {
                let mut l = self.bare_loop.borrow_mut();
                self.rt.block_on(written(&mut l, n));
            }
        }
    }

    /// The tracing work of one publish, without the publish.
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn publish_tracing(&self, stack: &str) {
        let mut properties = PublishProperties::default();
        match stack {
            FLOOR => {
                let span = fastrace::Span::root(
                    "publish tw/bench/out/orders",
                    fastrace::collector::SpanContext::random(),
                )
                .with_properties(|| [("span.kind", "producer"), ("trace.flags", "01")]);
                drop(span);
            }
            TW_SAMPLED | TW_UNSAMPLED => {
                // What `Client::publish` does before it hands the publish to rumqttc.
                let messaging = self.tw[Fixture::i(stack == TW_SAMPLED)].messaging();
                let system = [(semconv::MESSAGING_MQTT_QOS, "0")];
                let info = || MessageInfo {
                    body_size: Some(self.payload.len()),
                    system_attributes: &system,
                    ..MessageInfo::new(Destination::new(OUT))
                };
                let span = messaging.send_lazy(
                    info,
                    &mut UserPropertiesMut(&mut properties.user_properties),
                );
                span.end();
            }
            OTEL_SAMPLED | OTEL_UNSAMPLED => {
                let peer = &self.otel[Fixture::i(stack == OTEL_SAMPLED)];
                let cx =
                    peer.publish_span(OUT, 0, self.payload.len(), &mut properties.user_properties);
                mqtt_otel::end(&cx);
            }
            other => panic!("no publish-tracing row {other}"),
        }
        drop(black_box(properties));
    }

    /// Processes one received message by `stack`: its span, the empty handler in it, the
    /// message dropped.
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn process(&self, stack: &str, publish: Publish) {
        match stack {
            BARE => {
                run(handler(&publish.payload));
                drop(publish);
            }
            FLOOR => {
                let span = fastrace::Span::root(
                    "process tw/bench/orders",
                    fastrace::collector::SpanContext::random(),
                )
                .with_properties(|| [("span.kind", "consumer"), ("trace.flags", "01")]);
                {
                    use fastrace::future::FutureExt as _;
                    run(handler(&publish.payload).in_span(span));
                }
                drop(publish);
            }
            TW_SAMPLED | TW_UNSAMPLED => {
                let message = self.tw_loops[Fixture::i(stack == TW_SAMPLED)]
                    .borrow()
                    .process(publish);
                run(message.instrument(handler(&message.payload)));
                drop(message);
            }
            OTEL_SAMPLED | OTEL_UNSAMPLED => {
                use opentelemetry::context::FutureExt as _;
                let peer = &self.otel[Fixture::i(stack == OTEL_SAMPLED)];
                let props = publish
                    .properties
                    .as_ref()
                    .map_or(&[][..], |p| &p.user_properties[..]);
                let topic = std::str::from_utf8(&publish.topic).unwrap_or_default();
                let cx = peer.process_span(topic, 1, publish.payload.len(), props);
                run(handler(&publish.payload).with_context(cx.clone()));
                mqtt_otel::end(&cx);
                drop(publish);
            }
            other => panic!("no process row {other}"),
        }
    }

    /// The prepared message for `stack`'s rows.
    fn message(stack: &str) -> Publish {
        received(if stack.ends_with("unsampled") {
            TRACEPARENT_UNSAMPLED
        } else {
            TRACEPARENT_SAMPLED
        })
    }

    fn flush(&self) {
        fastrace::flush();
        self.pipeline.flush(Duration::from_secs(10));
        for peer in &self.otel {
            let _ = peer.provider.force_flush();
        }
    }

    fn report(&self) {
        let c = self.pipeline.counters();
        eprintln!(
            "spans: tracewire pipeline exported {} (dropped at its queue: {}), OpenTelemetry batch processor exported {}",
            self.tw_exported.load(Ordering::Relaxed),
            c.dropped,
            self.otel_exported.load(Ordering::Relaxed),
        );
    }
}

const PUBLISH_ROWS: [&str; 6] = [
    BARE,
    BARE_HEADER,
    TW_SAMPLED,
    TW_UNSAMPLED,
    OTEL_SAMPLED,
    OTEL_UNSAMPLED,
];
const PUBLISH_TRACING_ROWS: [&str; 5] = [
    FLOOR,
    TW_SAMPLED,
    TW_UNSAMPLED,
    OTEL_SAMPLED,
    OTEL_UNSAMPLED,
];
const PROCESS_ROWS: [&str; 6] = [
    BARE,
    FLOOR,
    TW_SAMPLED,
    TW_UNSAMPLED,
    OTEL_SAMPLED,
    OTEL_UNSAMPLED,
];

/// Iterations timed back to back; the exporters are drained (untimed) after each run of
/// them.
const PACE: u64 = 256;

/// Times `iters` runs of a row in runs of [`PACE`]: `prepare(k)` makes the input of `k` runs
/// (untimed), `run` does them (timed, on this thread's CPU clock), then fastrace's queues are
/// collected and tracewire's pipeline exported, the SDK's batch processor flushed (untimed),
/// so every row is measured at a rate its background threads keep up with and no span is
/// dropped (the NATS bench's pacing, for the same reason).
fn paced<T>(
    fx: &Fixture,
    iters: u64,
    mut prepare: impl FnMut(u64) -> T,
    mut run: impl FnMut(T),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(PACE);
        let input = prepare(k);
        let start = cpu_time::ThreadTime::now();
        run(input);
        total += start.elapsed();
        left -= k;
        fx.flush();
    }
    total
}

fn benches(c: &mut Criterion<ThreadCpu>, fx: &Fixture) {
    let mut g = c.benchmark_group(PUBLISH);
    for row in PUBLISH_ROWS {
        g.bench_function(row, |b| {
            b.iter_custom(|iters| {
                paced(
                    fx,
                    iters,
                    |k| k,
                    |k| {
                        for _ in 0..k {
                            fx.publish(row);
                        }
                        // The event loop writes what it was handed (timed).
                        fx.write(row, k);
                    },
                )
            })
        });
        fx.flush();
    }
    g.finish();

    let mut g = c.benchmark_group(PUBLISH_TRACING);
    for row in PUBLISH_TRACING_ROWS {
        g.bench_function(row, |b| {
            b.iter_custom(|iters| {
                paced(
                    fx,
                    iters,
                    |k| k,
                    |k| {
                        for _ in 0..k {
                            fx.publish_tracing(row);
                        }
                    },
                )
            })
        });
        fx.flush();
    }
    g.finish();

    let mut g = c.benchmark_group(PROCESS);
    for row in PROCESS_ROWS {
        let message = Fixture::message(row);
        g.bench_function(row, |b| {
            b.iter_custom(|iters| {
                paced(
                    fx,
                    iters,
                    |k| (0..k).map(|_| message.clone()).collect::<Vec<_>>(),
                    |messages| {
                        for m in messages {
                            fx.process(row, m);
                        }
                    },
                )
            })
        });
        fx.flush();
    }
    g.finish();
}

/// Per group: median, CPU added over `bare`, and the peer's added CPU over tracewire's.
fn print_summary() {
    for (group, rows, base) in [
        (PUBLISH, &PUBLISH_ROWS[..], Some(BARE)),
        (PUBLISH_TRACING, &PUBLISH_TRACING_ROWS[..], None),
        (PROCESS, &PROCESS_ROWS[..], Some(BARE)),
    ] {
        let base = base.and_then(|b| median_ns(group, b)).unwrap_or(0.0);
        eprintln!(
            "\n{group}\n| row | median ns (cpu) | added over bare | otel / tracewire (added) |"
        );
        eprintln!("|---|---:|---:|---:|");
        for row in rows {
            let Some(v) = median_ns(group, row) else {
                continue;
            };
            let peer_ratio = match *row {
                TW_SAMPLED | TW_UNSAMPLED => {
                    let peer = if *row == TW_SAMPLED {
                        OTEL_SAMPLED
                    } else {
                        OTEL_UNSAMPLED
                    };
                    median_ns(group, peer)
                        .map(|p| format!("{:.2}x", (p - base) / (v - base)))
                        .unwrap_or_default()
                }
                _ => String::new(),
            };
            eprintln!("| {row} | {v:.0} | {:+.0} | {peer_ratio} |", v - base);
        }
    }
}

/// `MQTT_BENCH_PROFILE=<group>/<row>[:n]` (`publish`, `publish-tracing` or `process`, then a
/// row name with `-` for spaces: `process/tracewire-sampled:10000`): runs that row `n` times
/// (default 10000), drained every 256 as in the criterion runs, and exits — a fixed workload
/// for `valgrind --tool=callgrind`; `--toggle-collect` on the row's `Fixture` method counts
/// the row alone (`publish`: also `write`, the event loop's writes):
///
/// ```text
/// MQTT_BENCH_PROFILE=process/otel-sampled:10000 valgrind --tool=callgrind \
///     --toggle-collect='*Fixture*process*' target/release/deps/mqtt-<hash>
/// ```
fn profile(fx: &Fixture, spec: &str) {
    let (row, n) = spec.split_once(':').unwrap_or((spec, "10000"));
    let n: u64 = n.parse().unwrap();
    let (group, row) = row.split_once('/').unwrap();
    let row = row.replace('-', " ");
    let row = PROCESS_ROWS
        .iter()
        .chain(&PUBLISH_ROWS)
        .chain(&PUBLISH_TRACING_ROWS)
        .find(|r| **r == row)
        .unwrap_or_else(|| panic!("unknown row {row}"));
    let message = Fixture::message(row);
    for i in 0..n {
        match group {
            "publish" => fx.publish(row),
            "publish-tracing" => fx.publish_tracing(row),
            "process" => fx.process(row, message.clone()),
            other => panic!("unknown group {other}"),
        }
        if (i + 1) % PACE == 0 {
            if group == "publish" {
                fx.write(row, PACE);
            }
            fx.flush();
        }
    }
    if group == "publish" && n % PACE != 0 {
        fx.write(row, n % PACE);
    }
    fx.flush();
}

fn main() {
    let fx = Fixture::new();
    if let Ok(spec) = std::env::var("MQTT_BENCH_PROFILE") {
        profile(&fx, &spec);
        fx.report();
        return;
    }
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut c, &fx);
    fx.flush();
    c.final_summary();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
        print_summary();
        fx.report();
    }
}
