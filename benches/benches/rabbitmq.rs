//! RabbitMQ messaging: the CPU one traced publish and one traced delivery add on the calling
//! thread, tracewire-lapin next to the bare lapin client and to what users hand-write today
//! with OpenTelemetry, in one run.
//!
//! ```text
//! bash scripts/services.sh start rabbitmq      # RabbitMQ on 127.0.0.1:5672 (AMQP_URL overrides)
//! cargo bench -p tracewire-benches --bench rabbitmq
//! ```
//!
//! Stacks:
//!
//! - `bare`: lapin 4 alone, no tracing.
//! - `tracewire sampled` / `tracewire unsampled`: `tracewire_lapin::Channel` (the
//!   `tracewire_lapin::messaging(uri)` configuration: `messaging.system`, server address and
//!   port; default propagators `tracecontext,baggage`), sampler `parentbased(always_on)` /
//!   `parentbased(always_off)`. Recorded spans go to fastrace's collector and on to
//!   tracewire's export pipeline (`tracewire_export::Pipeline`) with an exporter that encodes
//!   each request to OTLP protobuf bytes and drops them.
//! - `otel sampled` / `otel unsampled`: the hand-written peer, `common/rabbitmq_otel.rs` — the
//!   OpenTelemetry SDK 0.33 tracer (`ParentBased(AlwaysOn / AlwaysOff)`, `BatchSpanProcessor`
//!   into an exporter that converts, prost-encodes and drops), a W3C
//!   `TraceContextPropagator` into / out of the lapin `FieldTable`, one SDK span per publish
//!   (PRODUCER) and per delivery (CONSUMER, child of the extracted context) with the same
//!   attributes, the handler run with the span's context attached on every poll.
//!
//! Groups (time = **CPU time of the benchmarking thread**, `common::ThreadCpu`: fastrace's
//! collector, tracewire's export worker, the SDK's batch thread and lapin's I/O thread are not
//! counted — `examples/rabbitmq_load.rs` counts everything). Each row runs 256 times back to
//! back (timed), then everything is drained untimed (`paced`), as in the NATS bench:
//!
//! - `rabbitmq/publish`: one `basic_publish` of a 128-byte body through the default exchange
//!   to a real broker (publisher confirms off; the queue keeps the last 1 000), on a
//!   current-thread runtime: the span, the headers built and injected, lapin's frames made and
//!   handed to its I/O thread, the wait for it to write them.
//! - `rabbitmq/publish-tracing`: the same tracing work without the publish — tracewire's
//!   `Channel::publish_span` (what `basic_publish` does before it calls lapin) and the span's
//!   end; the peer's span, injection into a `FieldTable`, properties with the headers, end.
//!   `fastrace root span` is the engine's floor (a root span with two properties).
//! - `rabbitmq/process`: a prepared `lapin::message::Delivery` (128-byte body, properties
//!   `content_type`, `correlation_id`, `timestamp`, headers `traceparent` — flags `01` for the
//!   sampled rows, `00` for the unsampled ones — and `x-request-id`), made outside the timed
//!   region; timed: context extracted, the process span started, an empty async handler polled
//!   inside it (a no-op waker), the span ended, the delivery dropped. No ack (that is
//!   network). tracewire: `Channel::process` + `Delivery::instrument`; it also links the
//!   creation context, the peer does not.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

mod common;
#[path = "common/rabbitmq_otel.rs"]
mod rabbitmq_otel;

use common::ThreadCpu;
use common::broker::{
    BARE, FLOOR, OTEL_SAMPLED, OTEL_UNSAMPLED, TW_SAMPLED, TW_UNSAMPLED, floor_span, group, paced,
    peer_row, run,
};

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use lapin::message::Delivery as LapinDelivery;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ConnectionProperties};
use tracewire_benches::otel;
use tracewire_benches::{Collect, Sinks, TRACEPARENT_SAMPLED, traceparent, tracer};

const QUEUE: &str = "tw.bench.rabbitmq";
const BODY: [u8; 128] = [b'x'; 128];
const CID: &str = "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a";
const PUBLISH: &str = "rabbitmq/publish";
const PUBLISH_TRACING: &str = "rabbitmq/publish-tracing";
const PROCESS: &str = "rabbitmq/process";

const PUBLISH_ROWS: [&str; 5] = [BARE, TW_SAMPLED, TW_UNSAMPLED, OTEL_SAMPLED, OTEL_UNSAMPLED];
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

/// The handler: nothing but a look at the message.
async fn handler(data: &[u8]) -> usize {
    black_box(data.len())
}

fn properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id(CID.into())
        .with_delivery_mode(1)
}

/// A delivery as a consumer yields it for a message published with a trace context and a
/// header of the application's own.
fn delivery(traceparent: &str, tag: u64) -> LapinDelivery {
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(traceparent.into()),
    );
    headers.insert(
        "x-request-id".into(),
        AMQPValue::LongString("7f3c2a9e-5b1d-4e8f-9a6c-2d4b8e1f0a3c".into()),
    );
    let mut d = LapinDelivery::mock(tag, "".into(), QUEUE.into(), false, BODY.to_vec());
    d.properties = properties()
        .with_timestamp(1_796_197_401)
        .with_headers(headers);
    d
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    bare: lapin::Channel,
    tw: [tracewire_lapin::Channel; 2],
    otel: [rabbitmq_otel::Peer; 2],
    sinks: Sinks,
    _connection: lapin::Connection,
}

impl Fixture {
    fn new() -> Self {
        let sinks = Sinks::new(Collect::Pipeline);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = std::env::var("AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
        let (connection, bare) = rt.block_on(async {
            let connection = lapin::Connection::connect(&url, ConnectionProperties::default())
                .await
                .unwrap_or_else(|e| {
                    panic!("no RabbitMQ at {url} ({e}): `bash scripts/services.sh start rabbitmq`")
                });
            let channel = connection.create_channel().await.unwrap();
            let mut args = FieldTable::default();
            args.insert("x-max-length".into(), AMQPValue::LongInt(1000));
            channel
                .queue_declare(QUEUE.into(), QueueDeclareOptions::default(), args)
                .await
                .unwrap();
            (connection, channel)
        });
        let traced = |sampled: bool| {
            tracewire_lapin::Channel::with_messaging(
                bare.clone(),
                tracewire_lapin::messaging(&url).tracer(tracer(sampled)),
            )
        };
        Fixture {
            tw: [traced(true), traced(false)],
            otel: [true, false].map(|sampled| rabbitmq_otel::Peer::new(sinks.otel(sampled))),
            rt,
            bare,
            sinks,
            _connection: connection,
        }
    }

    fn tw(&self, sampled: bool) -> &tracewire_lapin::Channel {
        &self.tw[usize::from(!sampled)]
    }

    fn otel(&self, sampled: bool) -> &rabbitmq_otel::Peer {
        &self.otel[usize::from(!sampled)]
    }

    /// One publish by `stack`.
    #[inline(never)]
    fn publish(&self, stack: &str) {
        self.rt.block_on(async {
            match stack {
                BARE => drop(
                    self.bare
                        .basic_publish(
                            "".into(),
                            QUEUE.into(),
                            BasicPublishOptions::default(),
                            &BODY,
                            properties(),
                        )
                        .await
                        .unwrap(),
                ),
                TW_SAMPLED | TW_UNSAMPLED => drop(
                    self.tw(stack == TW_SAMPLED)
                        .basic_publish(
                            "".into(),
                            QUEUE.into(),
                            BasicPublishOptions::default(),
                            &BODY,
                            properties(),
                        )
                        .await
                        .unwrap(),
                ),
                OTEL_SAMPLED | OTEL_UNSAMPLED => {
                    let peer = self.otel(stack == OTEL_SAMPLED);
                    let mut headers = FieldTable::default();
                    let cx = peer.publish_span(QUEUE, BODY.len(), &mut headers);
                    let result = self
                        .bare
                        .basic_publish(
                            "".into(),
                            QUEUE.into(),
                            BasicPublishOptions::default(),
                            &BODY,
                            properties().with_headers(headers),
                        )
                        .await;
                    otel::end(&cx);
                    drop(result.unwrap());
                }
                other => panic!("no publish row {other}"),
            }
        });
    }

    /// The tracing work of one publish, without the publish.
    #[inline(never)]
    fn publish_tracing(&self, stack: &str) {
        match stack {
            FLOOR => {
                drop(floor_span("publish tw.bench.rabbitmq", "producer"));
            }
            TW_SAMPLED | TW_UNSAMPLED => {
                let (span, props) =
                    self.tw(stack == TW_SAMPLED)
                        .publish_span("", QUEUE, &BODY, properties());
                span.end();
                drop(black_box(props));
            }
            OTEL_SAMPLED | OTEL_UNSAMPLED => {
                let peer = self.otel(stack == OTEL_SAMPLED);
                let mut headers = FieldTable::default();
                let cx = peer.publish_span(QUEUE, BODY.len(), &mut headers);
                let props = properties().with_headers(headers);
                otel::end(&cx);
                drop(black_box(props));
            }
            other => panic!("no publish-tracing row {other}"),
        }
    }

    /// Processes one delivery by `stack`: its span, the empty handler in it, the delivery
    /// dropped.
    #[inline(never)]
    fn process(&self, stack: &str, d: LapinDelivery) {
        match stack {
            BARE => {
                run(handler(&d.data));
                drop(d);
            }
            FLOOR => {
                use fastrace::future::FutureExt as _;
                let span = floor_span("process tw.bench.rabbitmq", "consumer");
                run(handler(&d.data).in_span(span));
                drop(d);
            }
            TW_SAMPLED | TW_UNSAMPLED => {
                let d = self.tw(stack == TW_SAMPLED).process(d, QUEUE);
                run(d.instrument(handler(&d.data)));
                drop(d);
            }
            OTEL_SAMPLED | OTEL_UNSAMPLED => {
                use opentelemetry::context::FutureExt as _;
                let peer = self.otel(stack == OTEL_SAMPLED);
                let cx = peer.process_span(QUEUE, &d);
                run(handler(&d.data).with_context(cx.clone()));
                otel::end(&cx);
                drop(d);
            }
            other => panic!("no process row {other}"),
        }
    }

    /// `common::broker::paced`, drained with the sinks' flush.
    fn paced<T>(&self, iters: u64, prepare: impl FnMut(u64) -> T, run: impl FnMut(T)) -> Duration {
        paced(iters, &|| self.sinks.flush(), prepare, run)
    }
}

fn benches(c: &mut Criterion<ThreadCpu>, fx: &Fixture) {
    let nothing = || {};
    group(c, PUBLISH, &PUBLISH_ROWS, &nothing, |row, iters| {
        fx.paced(iters, |k| k, |k| (0..k).for_each(|_| fx.publish(row)))
    });
    group(
        c,
        PUBLISH_TRACING,
        &PUBLISH_TRACING_ROWS,
        &nothing,
        |row, iters| {
            fx.paced(
                iters,
                |k| k,
                |k| (0..k).for_each(|_| fx.publish_tracing(row)),
            )
        },
    );
    group(c, PROCESS, &PROCESS_ROWS, &nothing, |row, iters| {
        let tp = traceparent(common::broker::sampled(row));
        fx.paced(
            iters,
            |k| (0..k).map(|i| delivery(tp, i + 1)).collect::<Vec<_>>(),
            |deliveries| deliveries.into_iter().for_each(|d| fx.process(row, d)),
        )
    });
}

/// Per group: median, CPU added over `bare`, and the peer's added CPU over tracewire's.
fn print_summary() {
    common::broker::print_added(
        &[
            (PUBLISH, &PUBLISH_ROWS, Some(BARE)),
            (PUBLISH_TRACING, &PUBLISH_TRACING_ROWS, None),
            (PROCESS, &PROCESS_ROWS, Some(BARE)),
        ],
        peer_row,
    );
}

fn main() {
    let fx = Fixture::new();
    // Both stacks carry what the other reads.
    let d = fx.tw(true).process(delivery(TRACEPARENT_SAMPLED, 1), QUEUE);
    assert!(d.span().is_recording());
    drop(d);
    let mut c = common::broker::criterion();
    benches(&mut c, &fx);
    fx.sinks.flush();
    c.final_summary();
    if common::broker::measuring() {
        print_summary();
        fx.sinks.report();
    }
}
