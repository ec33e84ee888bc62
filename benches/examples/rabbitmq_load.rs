//! End-to-end RabbitMQ load for BENCHMARKS.md ("Messaging (RabbitMQ)"): one process publishes
//! `n` messages that a consumer in the same process handles and acks, publish → handler
//! completion, in one tracing mode, and prints the throughput and the CPU the whole process
//! spent per message (every thread: the runtime, lapin's two I/O threads, fastrace's
//! collector, tracewire's export worker, the OpenTelemetry batch thread).
//!
//! | mode | what traces the messages |
//! |---|---|
//! | `untraced` | nothing: the bare lapin client |
//! | `tracewire` | `tracewire_lapin::Channel` (`parentbased(always_on)`), 100 % sampled; every span through `tracewire-export`'s `Pipeline` (bounded queue of 2048, OTLP mapping, batching) into an exporter that encodes each request to OTLP protobuf bytes, counts the spans and drops the bytes; acks through `Delivery::ack` (the settlement recorded on the process span) |
//! | `tracewire-unsampled` | the same, root sampler `always_off` (contexts still propagated, flags `00`) |
//! | `otel` | the hand-written OpenTelemetry peer of `benches/rabbitmq.rs` (`common/rabbitmq_otel.rs`): SDK tracer, `ParentBased(AlwaysOn)`, `BatchSpanProcessor` into an exporter that groups, converts and prost-encodes, W3C propagator into / out of the `FieldTable`, a PRODUCER span per publish and a CONSUMER span per delivery (the handler run with its context) |
//! | `otel-unsampled` | the same with `ParentBased(AlwaysOff)` |
//! | `fastrace-floor` | bare fastrace root spans, one per publish and one per delivery (two properties, the handler in the latter), no propagation (a constant `traceparent` header), into the same pipeline as `tracewire`: the floor of any fastrace-based instrumentation |
//!
//! Two connections (publisher, consumer) to one transient queue (declared per run); the
//! publisher keeps at most 8 192 messages in flight (published, not yet handled: credits
//! returned by the handler 64 at a time), publisher confirms off; the consumer has a prefetch
//! of 512 and acks each delivery; the handler runs an empty async function in the message's
//! span. 128-byte bodies with `content_type` and `correlation_id`.
//!
//! ```text
//! cargo build --release -p tracewire-benches --example rabbitmq_load
//! target/release/examples/rabbitmq_load <mode> [n]     # AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/%2f
//! bash benches/rabbitmq_load.sh                        # every mode, rounds interleaved, pinned
//! ```
//!
//! Prints `THREADS µs/msg <thread name>=<CPU µs per message> ...`, then `RESULT <mode>
//! rabbitmq <n> <seconds> <msgs/s> <cpu µs/msg> <cpu utilisation> <spans exported> <spans
//! dropped> <main thread cpu µs/msg> <other threads cpu µs/msg>` (the main thread runs the
//! runtime: publisher, consumer and handler; the others are lapin's I/O threads and the
//! tracing background threads).
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

#[path = "../benches/common/rabbitmq_otel.rs"]
mod rabbitmq_otel;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ConnectionProperties};
use tokio::sync::Semaphore;
use tokio_stream::StreamExt as _;
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, Pipeline, SpanExporter};

type Error = Box<dyn std::error::Error + Send + Sync>;

const BODY: [u8; 128] = [b'x'; 128];
const CID: &str = "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a";
/// Messages in flight, returned by the handler `CHUNK` at a time.
const WINDOW: u32 = 8192;
const CHUNK: u32 = 64;
const PREFETCH: u16 = 512;

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

fn floor_span(name: &'static str, kind: &'static str) -> fastrace::Span {
    fastrace::Span::root(name, fastrace::collector::SpanContext::random())
        .with_properties(|| [("span.kind", kind), ("messaging.system", "rabbitmq")])
}

fn properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/octet-stream".into())
        .with_correlation_id(CID.into())
}

/// The properties `fastrace-floor` messages carry (a constant context of a real one's size).
fn floor_properties() -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    );
    properties().with_headers(headers)
}

/// The handler: nothing but a look at the message.
async fn handler(data: &[u8]) -> usize {
    std::hint::black_box(data.len())
}

/// CPU time (ns) of each thread of this process by thread id, with its name, from
/// `/proc/self/task/*/schedstat`.
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

/// What a run took: wall clock, whole-process CPU, the main thread's CPU, CPU per thread name.
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

/// What a mode set up: the exporters to flush and count at the end.
struct Tracing {
    mode: Mode,
    pipeline: Option<Pipeline>,
    tw_exported: Arc<AtomicU64>,
    otel: Option<Arc<rabbitmq_otel::Peer>>,
    otel_exported: Arc<AtomicU64>,
}

impl Tracing {
    fn new(mode: Mode) -> Self {
        let tw_exported = Arc::new(AtomicU64::new(0));
        let otel_exported = Arc::new(AtomicU64::new(0));
        let mut pipeline = None;
        let mut otel = None;
        match mode {
            Mode::Untraced => {}
            Mode::Tracewire | Mode::TracewireUnsampled | Mode::FastraceFloor => {
                let p = Pipeline::builder()
                    .exporter(CountingSink(tw_exported.clone()))
                    .build()
                    .unwrap();
                fastrace::set_reporter(p.reporter(), fastrace::collector::Config::default());
                pipeline = Some(p);
            }
            Mode::Otel | Mode::OtelUnsampled => {
                otel = Some(Arc::new(rabbitmq_otel::Peer::new(
                    mode == Mode::Otel,
                    otel_exported.clone(),
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

async fn load(url: &str, n: u64, tracing: &Tracing) -> Result<Timing, Error> {
    let mode = tracing.mode;
    let messaging = tracewire_lapin::messaging(url).tracer(Tracer::new().with_sampler(
        Sampler::parent_based(if mode == Mode::TracewireUnsampled {
            Sampler::AlwaysOff
        } else {
            Sampler::AlwaysOn
        }),
    ));
    let pub_conn = lapin::Connection::connect(url, ConnectionProperties::default()).await?;
    let sub_conn = lapin::Connection::connect(url, ConnectionProperties::default()).await?;
    let pub_ch = pub_conn.create_channel().await?;
    let sub_ch = sub_conn.create_channel().await?;
    let queue = format!("twload.rabbitmq.{}", std::process::id());
    pub_ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    sub_ch
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let consumer = sub_ch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let credits = Arc::new(Semaphore::new(WINDOW as usize));
    let returns = credits.clone();
    let give_back = move |k: u64| {
        if k % u64::from(CHUNK) == 0 {
            returns.add_permits(CHUNK as usize);
        }
    };

    let handled = {
        let peer = tracing.otel.clone();
        let queue = queue.clone();
        let messaging = messaging.clone();
        tokio::spawn(async move {
            if mode.tracewire() {
                let mut consumer = tracewire_lapin::Consumer::new(consumer, messaging);
                for k in 1..=n {
                    let mut d = consumer.next().await.ok_or("consumer ended")??;
                    d.instrument(handler(&d.data)).await;
                    d.ack(BasicAckOptions::default()).await?;
                    drop(d);
                    give_back(k);
                }
            } else {
                let mut consumer = consumer;
                for k in 1..=n {
                    let d = consumer.next().await.ok_or("consumer ended")??;
                    match &peer {
                        None if mode == Mode::FastraceFloor => {
                            use fastrace::future::FutureExt as _;
                            let span = floor_span("process twload.rabbitmq", "consumer");
                            handler(&d.data).in_span(span).await;
                        }
                        None => {
                            handler(&d.data).await;
                        }
                        Some(peer) => {
                            use opentelemetry::context::FutureExt as _;
                            let cx = peer.process_span(&queue, &d);
                            handler(&d.data).with_context(cx.clone()).await;
                            rabbitmq_otel::end(&cx);
                        }
                    }
                    d.acker.ack(BasicAckOptions::default()).await?;
                    drop(d);
                    give_back(k);
                }
            }
            Ok::<_, Error>(())
        })
    };

    let traced = tracewire_lapin::Channel::with_messaging(pub_ch.clone(), messaging);
    let timer = Timer::start();
    for i in 0..n {
        if i % u64::from(CHUNK) == 0 {
            credits.acquire_many(CHUNK).await?.forget();
        }
        let key = queue.as_str().into();
        let options = BasicPublishOptions::default();
        match (&tracing.otel, mode) {
            (_, Mode::Tracewire | Mode::TracewireUnsampled) => {
                drop(
                    traced
                        .basic_publish("".into(), key, options, &BODY, properties())
                        .await?,
                );
            }
            (None, Mode::FastraceFloor) => {
                let span = floor_span("publish twload.rabbitmq", "producer");
                drop(
                    pub_ch
                        .basic_publish("".into(), key, options, &BODY, floor_properties())
                        .await?,
                );
                drop(span);
            }
            (None, _) => {
                drop(
                    pub_ch
                        .basic_publish("".into(), key, options, &BODY, properties())
                        .await?,
                );
            }
            (Some(peer), _) => {
                let mut headers = FieldTable::default();
                let cx = peer.publish_span(&queue, BODY.len(), &mut headers);
                let result = pub_ch
                    .basic_publish(
                        "".into(),
                        key,
                        options,
                        &BODY,
                        properties().with_headers(headers),
                    )
                    .await;
                rabbitmq_otel::end(&cx);
                drop(result?);
            }
        }
    }
    tokio::time::timeout(Duration::from_secs(300), handled).await???;
    let timing = timer.stop();
    pub_ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
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
    let n: u64 = match args.next() {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tracing = Tracing::new(mode);
    let timing = rt.block_on(load(&url, n, &tracing))?;
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
        "RESULT {} rabbitmq {n} {secs:.3} {:.0} {:.2} {:.2} {spans} {dropped} {:.2} {:.2}",
        mode.name(),
        n as f64 / secs,
        per_message(timing.cpu),
        timing.cpu.as_secs_f64() / secs,
        per_message(timing.main_cpu),
        per_message(timing.cpu.saturating_sub(timing.main_cpu)),
    );
    Ok(())
}
