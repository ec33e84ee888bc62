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
//! Prints the harness's `THREADS` and `RESULT` lines (`tracewire_benches::load`; the
//! transport is `kafka`): the main thread runs the runtime (producer, consumer, handler and
//! the delivery reports); the others are librdkafka's and the tracing background threads.
#![allow(missing_docs, clippy::result_large_err)]

#[path = "../benches/common/kafka_otel.rs"]
mod kafka_otel;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{self, Consumer as _};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{self, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracewire_benches::load::{Broker, Credits, Error, Mode, Timer, Timing, Tracing, Transport};
use tracewire_benches::{TRACEPARENT_SAMPLED, otel};

const KAFKA: Broker = Broker {
    system: "kafka",
    modes: &Mode::STANDARD,
    transports: &[Transport {
        name: "kafka",
        messages: 100_000,
    }],
};

const BODY: [u8; 128] = [b'x'; 128];
const KEY: &str = "order-42";
const CID: &str = "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a";
const GROUP: &str = "twload";
/// Records in flight (`KAFKA_LOAD_WINDOW` overrides), returned by the handler
/// `Credits::CHUNK` at a time.
const WINDOW: u32 = 8192;

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
        value: Some(TRACEPARENT_SAMPLED),
    })
}

/// The handler: nothing but a look at the record.
async fn handler(data: Option<&[u8]>) -> usize {
    std::hint::black_box(data.map_or(0, <[u8]>::len))
}

/// A delivery report to wait for, and what ends with it.
enum Pending {
    Bare(producer::DeliveryFuture),
    Traced(tracewire_kafka::DeliveryFuture),
    Otel(producer::DeliveryFuture, opentelemetry::Context),
    Floor(producer::DeliveryFuture, fastrace::Span),
}

async fn load(url: &str, n: u64, tracing: &Tracing) -> Result<Timing, Error> {
    let mode = tracing.mode();
    let peer = tracing.otel().map(kafka_otel::Peer::new);
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
    let tracer = tracing.tracer();
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
    let credits = Credits::new(window);

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
        let (peer, credits) = (peer.as_ref(), &credits);
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
                            let span = KAFKA.floor_span("process twload.kafka", "consumer");
                            handler(m.payload()).in_span(span).await;
                        }
                        None => {
                            handler(m.payload()).await;
                        }
                        Some(peer) => {
                            use opentelemetry::context::FutureExt as _;
                            let cx = peer.process_span(GROUP, &m);
                            handler(m.payload()).with_context(cx.clone()).await;
                            otel::end(&cx);
                        }
                    }
                }
                credits.handled(k);
            }
            Ok::<_, Error>(())
        }
    };
    let sent = async {
        for i in 0..n {
            credits.send(i).await?;
            let record = FutureRecord::to(&topic).key(KEY).payload(&BODY[..]);
            let p = match (&peer, mode) {
                (_, Mode::Tracewire | Mode::TracewireUnsampled) => Pending::Traced(
                    traced
                        .send_result(record.headers(headers()))
                        .map_err(|(e, _)| e)?,
                ),
                (None, Mode::FastraceFloor) => {
                    let span = KAFKA.floor_span("send twload.kafka", "producer");
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
    let url = tracewire_benches::load::env_or("KAFKA_URL", "127.0.0.1:9092");
    KAFKA.main(async |args, tracing| load(&url, args.n, tracing).await)
}
