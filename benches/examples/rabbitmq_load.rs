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
//! Prints the harness's `THREADS` and `RESULT` lines (`tracewire_benches::load`; the
//! transport is `rabbitmq`): the main thread runs the runtime (publisher, consumer and
//! handler); the others are lapin's I/O threads and the tracing background threads.
#![allow(missing_docs)]

#[path = "../benches/common/rabbitmq_otel.rs"]
mod rabbitmq_otel;

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ConnectionProperties};
use tokio_stream::StreamExt as _;
use tracewire_benches::load::{
    Broker, Credits, Error, Mode, Timer, Timing, Tracing, Transport, env_or,
};
use tracewire_benches::{TRACEPARENT_SAMPLED, otel};

const RABBITMQ: Broker = Broker {
    system: "rabbitmq",
    modes: &Mode::STANDARD,
    transports: &[Transport {
        name: "rabbitmq",
        messages: 100_000,
    }],
};

const BODY: [u8; 128] = [b'x'; 128];
const CID: &str = "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a";
/// Messages in flight, returned by the handler `Credits::CHUNK` at a time.
const WINDOW: u32 = 8192;
const PREFETCH: u16 = 512;

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
        AMQPValue::LongString(TRACEPARENT_SAMPLED.into()),
    );
    properties().with_headers(headers)
}

/// The handler: nothing but a look at the message.
async fn handler(data: &[u8]) -> usize {
    std::hint::black_box(data.len())
}

async fn load(url: &str, n: u64, tracing: &Tracing) -> Result<Timing, Error> {
    let mode = tracing.mode();
    let peer = tracing
        .otel()
        .map(|p| Arc::new(rabbitmq_otel::Peer::new(p)));
    let messaging = tracewire_lapin::messaging(url).tracer(tracing.tracer());
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
    let credits = Credits::new(WINDOW);

    let handled = {
        let (peer, returns) = (peer.clone(), credits.clone());
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
                    returns.handled(k);
                }
            } else {
                let mut consumer = consumer;
                for k in 1..=n {
                    let d = consumer.next().await.ok_or("consumer ended")??;
                    match &peer {
                        None if mode == Mode::FastraceFloor => {
                            use fastrace::future::FutureExt as _;
                            let span = RABBITMQ.floor_span("process twload.rabbitmq", "consumer");
                            handler(&d.data).in_span(span).await;
                        }
                        None => {
                            handler(&d.data).await;
                        }
                        Some(peer) => {
                            use opentelemetry::context::FutureExt as _;
                            let cx = peer.process_span(&queue, &d);
                            handler(&d.data).with_context(cx.clone()).await;
                            otel::end(&cx);
                        }
                    }
                    d.acker.ack(BasicAckOptions::default()).await?;
                    drop(d);
                    returns.handled(k);
                }
            }
            Ok::<_, Error>(())
        })
    };

    let traced = tracewire_lapin::Channel::with_messaging(pub_ch.clone(), messaging);
    let timer = Timer::start();
    for i in 0..n {
        credits.send(i).await?;
        let key = queue.as_str().into();
        let options = BasicPublishOptions::default();
        match (&peer, mode) {
            (_, Mode::Tracewire | Mode::TracewireUnsampled) => {
                drop(
                    traced
                        .basic_publish("".into(), key, options, &BODY, properties())
                        .await?,
                );
            }
            (None, Mode::FastraceFloor) => {
                let span = RABBITMQ.floor_span("publish twload.rabbitmq", "producer");
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
                otel::end(&cx);
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
    let url = env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    RABBITMQ.main(async |args, tracing| load(&url, args.n, tracing).await)
}
