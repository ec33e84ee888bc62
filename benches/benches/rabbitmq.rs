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

use common::{ThreadCpu, median_ns};

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use criterion::Criterion;
use lapin::message::Delivery as LapinDelivery;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ConnectionProperties};
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, Pipeline, SpanExporter};

const QUEUE: &str = "tw.bench.rabbitmq";
const BODY: [u8; 128] = [b'x'; 128];
const CID: &str = "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a";
const TRACEPARENT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACEPARENT_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

const BARE: &str = "bare";
const FLOOR: &str = "fastrace root span";
const TW_SAMPLED: &str = "tracewire sampled";
const TW_UNSAMPLED: &str = "tracewire unsampled";
const OTEL_SAMPLED: &str = "otel sampled";
const OTEL_UNSAMPLED: &str = "otel unsampled";

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

fn tracer(sampled: bool) -> Tracer {
    Tracer::new().with_sampler(Sampler::parent_based(if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    }))
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    bare: lapin::Channel,
    tw: [tracewire_lapin::Channel; 2],
    otel: [rabbitmq_otel::Peer; 2],
    pipeline: Pipeline,
    tw_exported: Arc<AtomicU64>,
    otel_exported: Arc<AtomicU64>,
    _connection: lapin::Connection,
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
        let otel_exported = Arc::new(AtomicU64::new(0));
        Fixture {
            tw: [traced(true), traced(false)],
            otel: [
                rabbitmq_otel::Peer::new(true, otel_exported.clone()),
                rabbitmq_otel::Peer::new(false, otel_exported.clone()),
            ],
            rt,
            bare,
            pipeline,
            tw_exported,
            otel_exported,
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
                    rabbitmq_otel::end(&cx);
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
                let span = fastrace::Span::root(
                    "publish tw.bench.rabbitmq",
                    fastrace::collector::SpanContext::random(),
                )
                .with_properties(|| [("span.kind", "producer"), ("trace.flags", "01")]);
                drop(span);
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
                rabbitmq_otel::end(&cx);
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
                let span = fastrace::Span::root(
                    "process tw.bench.rabbitmq",
                    fastrace::collector::SpanContext::random(),
                )
                .with_properties(|| [("span.kind", "consumer"), ("trace.flags", "01")]);
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
                rabbitmq_otel::end(&cx);
                drop(d);
            }
            other => panic!("no process row {other}"),
        }
    }

    fn flush(&self) {
        fastrace::flush();
        self.pipeline.flush(Duration::from_secs(10));
        for peer in &self.otel {
            let _ = peer.provider.force_flush();
        }
    }

    fn report(&self) {
        eprintln!(
            "spans: tracewire pipeline exported {} (dropped at its queue: {}), OpenTelemetry batch processor exported {}",
            self.tw_exported.load(Ordering::Relaxed),
            self.pipeline.counters().dropped,
            self.otel_exported.load(Ordering::Relaxed),
        );
    }
}

/// Iterations timed back to back; everything is drained (untimed) after each run of them.
const PACE: u64 = 256;

/// Times `iters` runs of a row in runs of [`PACE`]: `prepare(k)` makes the input of `k`
/// runs (untimed), `run` does them (timed, on this thread's CPU clock), then fastrace's
/// queues, tracewire's pipeline and the SDK's batch processor are drained, untimed.
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
            b.iter_custom(|iters| paced(fx, iters, |k| k, |k| (0..k).for_each(|_| fx.publish(row))))
        });
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
                    |k| (0..k).for_each(|_| fx.publish_tracing(row)),
                )
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(PROCESS);
    for row in PROCESS_ROWS {
        let tp = if row.ends_with("unsampled") {
            TRACEPARENT_UNSAMPLED
        } else {
            TRACEPARENT_SAMPLED
        };
        g.bench_function(row, |b| {
            b.iter_custom(|iters| {
                paced(
                    fx,
                    iters,
                    |k| (0..k).map(|i| delivery(tp, i + 1)).collect::<Vec<_>>(),
                    |deliveries| {
                        for d in deliveries {
                            fx.process(row, d);
                        }
                    },
                )
            })
        });
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

fn main() {
    let fx = Fixture::new();
    // Both stacks carry what the other reads.
    let d = fx.tw(true).process(delivery(TRACEPARENT_SAMPLED, 1), QUEUE);
    assert!(d.span().is_recording());
    drop(d);
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
