//! End-to-end MQTT 5 load for BENCHMARKS.md ("Messaging (MQTT)"): one process publishes `n`
//! messages that a handler in the same process consumes through the broker, publish → handler
//! completion, in one tracing mode, and prints the throughput and the CPU the whole process
//! spent per message (every thread: the runtime with both clients' event loops, fastrace's
//! collector, tracewire's export worker, the OpenTelemetry batch thread).
//!
//! | mode | what traces the messages |
//! |---|---|
//! | `untraced` | nothing: the bare rumqttc 0.25 v5 client |
//! | `tracewire` | `tracewire_mqtt::Client` (`Client::new`, the global tracer: `parentbased(always_on)`), 100 % sampled; every span through `tracewire-export`'s `Pipeline` (bounded queue of 2048, OTLP mapping, batching) into an exporter that encodes each request to OTLP protobuf bytes, counts the spans and drops the bytes |
//! | `tracewire-unsampled` | the same, the tracer's root sampler `always_off` (contexts still propagated, flags `00`); same pipeline |
//! | `otel` | the hand-written OpenTelemetry peer of `benches/benches/mqtt.rs` (`benches/common/mqtt_otel.rs`): SDK tracer, `ParentBased(AlwaysOn)`, `BatchSpanProcessor` (queue of 2048) into an exporter that converts, prost-encodes, counts and drops, W3C `TraceContextPropagator` into / out of the user properties, a PRODUCER span per publish and a CONSUMER span per message (the handler run with its context) |
//! | `otel-unsampled` | the same with `ParentBased(AlwaysOff)` |
//! | `fastrace-floor` | bare fastrace root spans, one per publish and one per process (two properties, the handler in the latter), no propagation (a constant `traceparent` user property), into the same pipeline as `tracewire`: the floor of any fastrace-based instrumentation |
//!
//! Transports: `qos0` and `qos1` — the publishes' QoS and the subscription's. Two connections
//! (publisher, subscriber), both event loops on one current-thread runtime; at most 512
//! messages in flight (published, not yet handled: credits returned by the handler 64 at a
//! time) so nothing is dropped; QoS 1 deliveries are acknowledged by rumqttc as it reads them,
//! QoS 1 publishes wait for the broker's PUBACK in rumqttc's in-flight window (the broker's
//! receive maximum). The handler runs an empty async function in the message's span.
//!
//! ```text
//! cargo build --release -p tracewire-benches --example mqtt_load
//! target/release/examples/mqtt_load <mode> <qos0|qos1> [n]     # MQTT_PORT, default 1883
//! bash benches/mqtt_load.sh                                    # every mode, rounds interleaved, pinned
//! ```
//!
//! Prints `THREADS µs/msg <thread name>=<CPU µs per message> ...` and one line `RESULT <mode>
//! <transport> <n> <seconds> <msgs/s> <cpu µs/msg> <cpu utilisation> <spans exported> <spans
//! dropped> <main thread cpu µs/msg> <other threads cpu µs/msg>`.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

#[path = "../benches/common/mqtt_otel.rs"]
mod mqtt_otel;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, MqttOptions};
use tokio::sync::Semaphore;
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, Pipeline, SpanExporter};

type Error = Box<dyn std::error::Error + Send + Sync>;

const PAYLOAD: [u8; 128] = [b'x'; 128];
/// Messages in flight, returned by the handler `CHUNK` at a time: below Mosquitto's
/// `max_queued_messages` (1 000 per client, plus 20 in flight), past which it drops QoS 1
/// messages for a subscriber that falls behind.
const WINDOW: u32 = 512;
const CHUNK: u32 = 64;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Untraced,
    Tracewire,
    TracewireUnsampled,
    Otel,
    OtelUnsampled,
    FastraceFloor,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Untraced => "untraced",
            Mode::Tracewire => "tracewire",
            Mode::TracewireUnsampled => "tracewire-unsampled",
            Mode::Otel => "otel",
            Mode::OtelUnsampled => "otel-unsampled",
            Mode::FastraceFloor => "fastrace-floor",
        }
    }

    fn tracewire(self) -> bool {
        matches!(self, Mode::Tracewire | Mode::TracewireUnsampled)
    }
}

/// Encodes each OTLP request, counts its spans, drops the bytes.
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
        std::hint::black_box(tracewire_export::encode::encode_request(batch));
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// A bare fastrace root span (`fastrace-floor`).
fn floor_span(name: &'static str, kind: &'static str) -> fastrace::Span {
    fastrace::Span::root(name, fastrace::collector::SpanContext::random())
        .with_properties(|| [("span.kind", kind), ("messaging.system", "mqtt")])
}

/// The handler: nothing but a look at the message.
async fn handler(payload: &Bytes) -> usize {
    std::hint::black_box(payload.len())
}

/// What a mode set up: the exporters to flush and count at the end.
struct Tracing {
    mode: Mode,
    pipeline: Option<Pipeline>,
    tw_exported: Arc<AtomicU64>,
    otel: Option<Arc<mqtt_otel::Peer>>,
    otel_exported: Arc<AtomicU64>,
}

impl Tracing {
    /// (spans exported, spans dropped at the tracewire queue), after flushing.
    fn finish(&self) -> (u64, u64) {
        fastrace::flush();
        let mut dropped = 0;
        if let Some(p) = &self.pipeline {
            p.shutdown(Duration::from_secs(10));
            dropped = p.counters().dropped;
        }
        if let Some(peer) = &self.otel {
            let _ = peer.provider.shutdown();
        }
        (
            self.tw_exported.load(Ordering::Relaxed) + self.otel_exported.load(Ordering::Relaxed),
            dropped,
        )
    }
}

fn setup(mode: Mode) -> Tracing {
    let tw_exported = Arc::new(AtomicU64::new(0));
    let otel_exported = Arc::new(AtomicU64::new(0));
    let mut pipeline = None;
    let mut otel = None;
    match mode {
        Mode::Untraced => {}
        Mode::Tracewire | Mode::TracewireUnsampled | Mode::FastraceFloor => {
            let root = if mode == Mode::TracewireUnsampled {
                Sampler::AlwaysOff
            } else {
                Sampler::AlwaysOn
            };
            Tracer::set_global(Tracer::new().with_sampler(Sampler::parent_based(root)));
            let p = Pipeline::builder()
                .exporter(CountingSink(tw_exported.clone()))
                .build()
                .unwrap();
            fastrace::set_reporter(p.reporter(), fastrace::collector::Config::default());
            pipeline = Some(p);
        }
        Mode::Otel | Mode::OtelUnsampled => {
            otel = Some(Arc::new(mqtt_otel::Peer::new(
                mode == Mode::Otel,
                otel_exported.clone(),
                "twload-pub",
            )));
        }
    }
    Tracing {
        mode,
        pipeline,
        tw_exported,
        otel,
        otel_exported,
    }
}

/// CPU time (ns) of each thread of this process by thread id, with its name, from
/// `/proc/self/task/*/schedstat` (empty where that is not available).
fn thread_cpu() -> HashMap<String, (String, u64)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
        let ns = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let tid = task.file_name().to_string_lossy().into_owned();
        threads.insert(tid, (read("comm").trim().to_owned(), ns));
    }
    threads
}

/// What a run took: wall clock, whole-process CPU, the main thread's CPU (the runtime: both
/// event loops, the publisher and the handler) — the rest is background threads.
struct Timing {
    wall: Duration,
    cpu: Duration,
    main_cpu: Duration,
    threads: Vec<(String, u64)>,
}

struct Timer(
    Instant,
    cpu_time::ProcessTime,
    HashMap<String, (String, u64)>,
);

impl Timer {
    fn start() -> Self {
        Timer(Instant::now(), cpu_time::ProcessTime::now(), thread_cpu())
    }

    fn stop(self) -> Timing {
        let (wall, cpu) = (self.0.elapsed(), self.1.elapsed());
        let main_tid = std::process::id().to_string();
        let after = thread_cpu();
        let main_cpu = after
            .get(&main_tid)
            .map(|(_, ns)| ns - self.2.get(&main_tid).map_or(0, |(_, before)| *before))
            .map_or(cpu, Duration::from_nanos);
        let mut threads: Vec<(String, u64)> = Vec::new();
        for (tid, (name, ns)) in &after {
            let spent = ns - self.2.get(tid).map_or(0, |(_, before)| *before);
            match threads.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => *total += spent,
                None => threads.push((name.clone(), spent)),
            }
        }
        threads.sort();
        Timing {
            wall,
            cpu,
            main_cpu,
            threads,
        }
    }
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(format!("{id}-{}", std::process::id()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    o
}

/// The consumer side: returns when the handler has run for `n` messages.
async fn consume(
    mode: Mode,
    tracing: &Tracing,
    port: u16,
    topic: &str,
    qos: QoS,
    n: u64,
    credits: Arc<Semaphore>,
) -> Result<tokio::task::JoinHandle<Result<(), Error>>, Error> {
    let give_back = move |k: u64| {
        if k % u64::from(CHUNK) == 0 {
            credits.add_permits(CHUNK as usize);
        }
    };
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let handle = if mode.tracewire() {
        let (client, mut eventloop) =
            tracewire_mqtt::Client::new(options("twload-sub", port), 1024);
        client.subscribe(topic, qos).await?;
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            let mut k = 0;
            while k < n {
                match eventloop.poll().await? {
                    tracewire_mqtt::Event::Message(m) => {
                        m.instrument(handler(&m.payload)).await;
                        drop(m);
                        k += 1;
                        give_back(k);
                    }
                    tracewire_mqtt::Event::Other(rumqttc::v5::Event::Incoming(Packet::SubAck(
                        _,
                    ))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    tracewire_mqtt::Event::Other(_) => {}
                }
            }
            drop(client);
            Ok::<_, Error>(())
        })
    } else {
        let (client, mut eventloop) = AsyncClient::new(options("twload-sub", port), 1024);
        client.subscribe(topic, qos).await?;
        let peer = tracing.otel.clone();
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            let mut k = 0;
            while k < n {
                match eventloop.poll().await? {
                    rumqttc::v5::Event::Incoming(Packet::Publish(p)) => {
                        handle_bare(mode, peer.as_deref(), p).await;
                        k += 1;
                        give_back(k);
                    }
                    rumqttc::v5::Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
            drop(client);
            Ok::<_, Error>(())
        })
    };
    subscribed.await?;
    Ok(handle)
}

/// One message of the untraced, peer and floor modes.
async fn handle_bare(mode: Mode, peer: Option<&mqtt_otel::Peer>, p: Publish) {
    match (mode, peer) {
        (Mode::FastraceFloor, _) => {
            use fastrace::future::FutureExt as _;
            let span = floor_span("process twload", "consumer");
            handler(&p.payload).in_span(span).await;
        }
        (_, Some(peer)) => {
            use opentelemetry::context::FutureExt as _;
            let props = p
                .properties
                .as_ref()
                .map_or(&[][..], |p| &p.user_properties[..]);
            let topic = std::str::from_utf8(&p.topic).unwrap_or_default();
            let cx = peer.process_span(topic, p.qos as i64, p.payload.len(), props);
            handler(&p.payload).with_context(cx.clone()).await;
            mqtt_otel::end(&cx);
        }
        _ => {
            handler(&p.payload).await;
        }
    }
    drop(p);
}

/// Publishes `n` messages and returns when the handler has run for each (timed from the
/// first publish, both connections up and the subscription acknowledged).
async fn run(port: u16, qos: QoS, n: u64, tracing: &Tracing) -> Result<Timing, Error> {
    let mode = tracing.mode;
    let topic = format!("twload/{}/{}", mode.name(), std::process::id());
    let credits = Arc::new(Semaphore::new(WINDOW as usize));
    let handled = consume(mode, tracing, port, &topic, qos, n, credits.clone()).await?;

    // The publisher's event loop: polled for the whole run (it writes and takes the PUBACKs).
    let (bare, mut bare_loop) = AsyncClient::new(options("twload-pub", port), 1024);
    let (traced, mut traced_loop) =
        tracewire_mqtt::Client::new(options("twload-pub-tw", port), 1024);
    // Connected before the clock starts.
    let publisher_loop = if mode.tracewire() {
        drop(bare_loop);
        while !matches!(
            traced_loop.poll().await?,
            tracewire_mqtt::Event::Other(rumqttc::v5::Event::Incoming(Packet::ConnAck(_)))
        ) {}
        tokio::spawn(async move {
            loop {
                if let Err(e) = traced_loop.poll().await {
                    return Err::<(), Error>(e.into());
                }
            }
        })
    } else {
        drop(traced_loop);
        while !matches!(
            bare_loop.poll().await?,
            rumqttc::v5::Event::Incoming(Packet::ConnAck(_))
        ) {}
        tokio::spawn(async move {
            loop {
                if let Err(e) = bare_loop.poll().await {
                    return Err::<(), Error>(e.into());
                }
            }
        })
    };
    let payload = Bytes::from_static(&PAYLOAD);
    let timer = Timer::start();
    for i in 0..n {
        if i % u64::from(CHUNK) == 0 {
            credits.acquire_many(CHUNK).await?.forget();
        }
        let payload = payload.clone();
        match (mode, &tracing.otel) {
            (Mode::Tracewire | Mode::TracewireUnsampled, _) => {
                traced.publish(topic.as_str(), qos, false, payload).await?;
            }
            (Mode::FastraceFloor, _) => {
                let span = floor_span("publish twload", "producer");
                let properties = PublishProperties {
                    user_properties: vec![("traceparent".into(), TRACEPARENT.into())],
                    ..PublishProperties::default()
                };
                bare.publish_with_properties(topic.as_str(), qos, false, payload, properties)
                    .await?;
                drop(span);
            }
            (_, Some(peer)) => {
                let mut properties = PublishProperties::default();
                let cx = peer.publish_span(
                    &topic,
                    qos as i64,
                    payload.len(),
                    &mut properties.user_properties,
                );
                let result = bare
                    .publish_with_properties(topic.as_str(), qos, false, payload, properties)
                    .await;
                mqtt_otel::end(&cx);
                result?;
            }
            _ => bare.publish(topic.as_str(), qos, false, payload).await?,
        }
    }
    tokio::time::timeout(Duration::from_secs(120), handled).await???;
    let timing = timer.stop();
    publisher_loop.abort();
    Ok(timing)
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref().unwrap_or("tracewire") {
        "untraced" => Mode::Untraced,
        "tracewire" => Mode::Tracewire,
        "tracewire-unsampled" => Mode::TracewireUnsampled,
        "otel" => Mode::Otel,
        "otel-unsampled" => Mode::OtelUnsampled,
        "fastrace-floor" => Mode::FastraceFloor,
        other => return Err(format!("unknown mode {other}").into()),
    };
    let transport = args.next().unwrap_or_else(|| "qos0".to_owned());
    let qos = match transport.as_str() {
        "qos0" => QoS::AtMostOnce,
        "qos1" => QoS::AtLeastOnce,
        other => return Err(format!("unknown transport {other}").into()),
    };
    let n: u64 = match args.next() {
        Some(n) => n.parse()?,
        None if qos == QoS::AtLeastOnce => 50_000,
        None => 200_000,
    };
    let port: u16 = std::env::var("MQTT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1883);
    let tracing = setup(mode);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timing = rt.block_on(run(port, qos, n, &tracing))?;
    let threads: Vec<String> = timing
        .threads
        .iter()
        .map(|(name, ns)| format!("{name}={:.2}", *ns as f64 / 1e3 / n as f64))
        .collect();
    println!("THREADS µs/msg {}", threads.join(" "));
    let (spans, dropped) = tracing.finish();
    let secs = timing.wall.as_secs_f64();
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "RESULT {} {transport} {n} {secs:.3} {:.0} {:.2} {:.2} {spans} {dropped} {:.2} {:.2}",
        mode.name(),
        n as f64 / secs,
        per_message(timing.cpu),
        timing.cpu.as_secs_f64() / secs,
        per_message(timing.main_cpu),
        per_message(timing.cpu.saturating_sub(timing.main_cpu)),
    );
    Ok(())
}
