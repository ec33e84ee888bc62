//! End-to-end Kafka load for BENCHMARKS.md ("Messaging (Kafka)"): one process sends `n`
//! records that a consumer in the same process handles, send → handler completion, in one
//! tracing mode, and prints the throughput and the CPU the whole process spent per record
//! (every thread: the runtime, librdkafka's threads, rdkafka's producer polling thread,
//! fastrace's collector, tracewire's export worker, the OpenTelemetry batch thread).
//!
//! | mode | what traces the records |
//! |---|---|
//! | `untraced` | nothing: the bare rdkafka client |
//! | `tracewire` | `tracewire_kafka::FutureProducer` and `StreamConsumer` (`parentbased(always_on)`), 100 % sampled; every span through `tracewire-export`'s `Pipeline` (bounded queue of 2048, OTLP mapping, batching) into an exporter that encodes each request to OTLP protobuf bytes, counts the spans and drops the bytes |
//! | `tracewire-unsampled` | the same, root sampler `always_off` (contexts still propagated, flags `00`) |
//! | `otel` | the hand-written OpenTelemetry peer of `benches/kafka.rs` (`common/kafka_otel.rs`): SDK tracer, `ParentBased(AlwaysOn)`, `BatchSpanProcessor` into an exporter that groups, converts and prost-encodes, W3C propagator into / out of the record headers, a PRODUCER span per send (ended with the delivery report) and a CONSUMER span per record (the handler run with its context) |
//! | `otel-unsampled` | the same with `ParentBased(AlwaysOff)` |
//! | `fastrace-floor` | bare fastrace root spans, one per send (ended with the delivery report) and one per record (two properties, the handler in it), no propagation (a constant `traceparent` header), into the same pipeline as `tracewire`: the floor of any fastrace-based instrumentation |
//!
//! One topic of one partition per run (created first); the consumer is assigned the
//! partition from its start (no group join in the timed region; `group.id` set, offsets
//! auto-committed); the producer keeps at most 8 192 records in flight (sent, not yet handled:
//! credits returned by the handler 64 at a time), librdkafka's default batching (`linger.ms`
//! 5); delivery reports are awaited by a task of their own, in order. 128-byte values with a
//! key and `content-type` and `correlation_id` headers; the handler looks at the value in the
//! record's span.
//!
//! ```text
//! cargo build --release -p tracewire-benches --example kafka_load
//! target/release/examples/kafka_load <mode> [n]     # KAFKA_URL, default 127.0.0.1:9092
//! bash benches/kafka_load.sh                        # every mode, rounds interleaved, pinned
//! ```
//!
//! Prints `THREADS µs/msg <thread name>=<CPU µs per record> ...`, then `RESULT <mode> kafka
//! <n> <seconds> <msgs/s> <cpu µs/msg> <cpu utilisation> <spans exported> <spans dropped>
//! <main thread cpu µs/msg> <other threads cpu µs/msg>` (the main thread runs the runtime:
//! producer, consumer, handler and the delivery reports; the others are librdkafka's and the
//! tracing background threads).
#![allow(
    missing_docs,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::result_large_err
)]

#[path = "../benches/common/kafka_otel.rs"]
mod kafka_otel;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{self, Consumer as _};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{self, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{Semaphore, mpsc};
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, Pipeline, SpanExporter};

type Error = Box<dyn std::error::Error + Send + Sync>;

const BODY: [u8; 128] = [b'x'; 128];
const KEY: &str = "order-42";
const CID: &str = "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a";
const GROUP: &str = "twload";
/// Records in flight (`KAFKA_LOAD_WINDOW` overrides), returned by the handler `CHUNK` at a
/// time.
const WINDOW: u32 = 8192;
const CHUNK: u32 = 64;

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
        .with_properties(|| [("span.kind", kind), ("messaging.system", "kafka")])
}

fn headers() -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: "content-type",
            value: Some("application/octet-stream"),
        })
        .insert(Header {
            key: "correlation_id",
            value: Some(CID),
        })
}

/// The headers `fastrace-floor` records carry (a constant context of a real one's size).
fn floor_headers() -> OwnedHeaders {
    headers().insert(Header {
        key: "traceparent",
        value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    })
}

/// The handler: nothing but a look at the record.
async fn handler(data: Option<&[u8]>) -> usize {
    std::hint::black_box(data.map_or(0, <[u8]>::len))
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
    otel: Option<Arc<kafka_otel::Peer>>,
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
                otel = Some(Arc::new(kafka_otel::Peer::new(
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

/// A delivery report to wait for, and what ends with it.
enum Pending {
    Bare(producer::DeliveryFuture),
    Traced(tracewire_kafka::DeliveryFuture),
    Otel(producer::DeliveryFuture, opentelemetry::Context),
    Floor(producer::DeliveryFuture, fastrace::Span),
}

async fn load(url: &str, n: u64, tracing: &Tracing) -> Result<Timing, Error> {
    let mode = tracing.mode;
    let topic = format!(
        "twload.kafka.{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
            % 1_000_000
    );
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", url).create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?
    {
        r.map_err(|(t, e)| format!("{t}: {e}"))?;
    }
    let tracer =
        Tracer::new().with_sampler(Sampler::parent_based(if mode == Mode::TracewireUnsampled {
            Sampler::AlwaysOff
        } else {
            Sampler::AlwaysOn
        }));
    let mut pconfig = ClientConfig::new();
    pconfig
        .set("bootstrap.servers", url)
        .set("queue.buffering.max.messages", "1000000");
    let bare: producer::FutureProducer = pconfig.create()?;
    let traced = tracewire_kafka::FutureProducer::with_messaging(
        bare.clone(),
        tracewire_kafka::messaging(&pconfig).tracer(tracer.clone()),
    );
    let mut cconfig = ClientConfig::new();
    cconfig.set("bootstrap.servers", url).set("group.id", GROUP);
    let consumer = tracewire_kafka::StreamConsumer::with_messaging(
        cconfig.create::<consumer::StreamConsumer>()?,
        tracewire_kafka::messaging(&cconfig).tracer(tracer),
        Some(GROUP.into()),
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;

    let window = std::env::var("KAFKA_LOAD_WINDOW")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(WINDOW);
    let credits = Arc::new(Semaphore::new(window as usize));
    let returns = credits.clone();
    let give_back = move |k: u64| {
        if k % u64::from(CHUNK) == 0 {
            returns.add_permits(CHUNK as usize);
        }
    };

    let (reports, mut pending) = mpsc::unbounded_channel::<Pending>();
    let delivered = tokio::spawn(async move {
        while let Some(p) = pending.recv().await {
            match p {
                Pending::Bare(f) => {
                    f.await?.map_err(|(e, _)| e)?;
                }
                Pending::Traced(f) => {
                    f.await?.map_err(|(e, _)| e)?;
                }
                Pending::Otel(f, cx) => {
                    let d = f.await?.map_err(|(e, _)| e)?;
                    kafka_otel::Peer::delivered(&cx, d.partition, d.offset);
                }
                Pending::Floor(f, span) => {
                    f.await?.map_err(|(e, _)| e)?;
                    drop(span);
                }
            }
        }
        Ok::<_, Error>(())
    });

    let timer = Timer::start();
    let handled = {
        let peer = tracing.otel.as_deref();
        let consumer = &consumer;
        async move {
            for k in 1..=n {
                if mode.tracewire() {
                    let m = consumer.recv().await?;
                    m.instrument(handler(m.payload())).await;
                } else {
                    let m = consumer.inner().recv().await?;
                    match peer {
                        None if mode == Mode::FastraceFloor => {
                            use fastrace::future::FutureExt as _;
                            let span = floor_span("process twload.kafka", "consumer");
                            handler(m.payload()).in_span(span).await;
                        }
                        None => {
                            handler(m.payload()).await;
                        }
                        Some(peer) => {
                            use opentelemetry::context::FutureExt as _;
                            let cx = peer.process_span(GROUP, &m);
                            handler(m.payload()).with_context(cx.clone()).await;
                            kafka_otel::end(&cx);
                        }
                    }
                }
                give_back(k);
            }
            Ok::<_, Error>(())
        }
    };
    let sent = async {
        for i in 0..n {
            if i % u64::from(CHUNK) == 0 {
                credits.acquire_many(CHUNK).await?.forget();
            }
            let record = FutureRecord::to(&topic).key(KEY).payload(&BODY[..]);
            let p = match (&tracing.otel, mode) {
                (_, Mode::Tracewire | Mode::TracewireUnsampled) => Pending::Traced(
                    traced
                        .send_result(record.headers(headers()))
                        .map_err(|(e, _)| e)?,
                ),
                (None, Mode::FastraceFloor) => {
                    let span = floor_span("send twload.kafka", "producer");
                    Pending::Floor(
                        bare.send_result(record.headers(floor_headers()))
                            .map_err(|(e, _)| e)?,
                        span,
                    )
                }
                (None, _) => Pending::Bare(
                    bare.send_result(record.headers(headers()))
                        .map_err(|(e, _)| e)?,
                ),
                (Some(peer), _) => {
                    let mut h = kafka_otel::HeaderInjector(Some(headers()));
                    let cx = peer.send_span(&topic, BODY.len(), &mut h);
                    let record = FutureRecord {
                        headers: h.0,
                        ..record
                    };
                    Pending::Otel(bare.send_result(record).map_err(|(e, _)| e)?, cx)
                }
            };
            reports.send(p).map_err(|_| "the delivery task ended")?;
        }
        Ok::<_, Error>(())
    };
    let (handled, sent) = tokio::time::timeout(Duration::from_secs(300), async {
        tokio::join!(handled, sent)
    })
    .await?;
    sent?;
    handled?;
    drop(reports);
    delivered.await??;
    let timing = timer.stop();
    drop(admin.delete_topics(&[&topic], &AdminOptions::new()).await);
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
    let url = std::env::var("KAFKA_URL").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
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
        "RESULT {} kafka {n} {secs:.3} {:.0} {:.2} {:.2} {spans} {dropped} {:.2} {:.2}",
        mode.name(),
        n as f64 / secs,
        per_message(timing.cpu),
        timing.cpu.as_secs_f64() / secs,
        per_message(timing.main_cpu),
        per_message(timing.cpu.saturating_sub(timing.main_cpu)),
    );
    Ok(())
}
