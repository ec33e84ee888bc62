//! Kafka messaging: the CPU one traced send and one traced process add on the calling thread,
//! tracewire-kafka next to the bare rdkafka client and to what users hand-write today with
//! OpenTelemetry, in one run, against a real broker.
//!
//! ```text
//! bash scripts/services.sh start kafka          # Kafka on 127.0.0.1:9092 (KAFKA_URL overrides)
//! cargo bench -p tracewire-benches --bench kafka
//! ```
//!
//! Stacks (every group has the same rows where they apply):
//!
//! - `bare`: rdkafka 0.39 (librdkafka 2.12) alone, no tracing.
//! - `tracewire sampled` / `tracewire unsampled`: `tracewire_kafka::FutureProducer` /
//!   `BaseConsumer` (the `tracewire_kafka::messaging(config)` configuration; default
//!   propagators `tracecontext,baggage`), sampler `parentbased(always_on)` /
//!   `parentbased(always_off)`. Recorded spans go to fastrace's collector and on to
//!   tracewire's export pipeline with an exporter that encodes each request to OTLP protobuf
//!   and drops it.
//! - `otel sampled` / `otel unsampled`: the hand-written peer, `common/kafka_otel.rs` — the
//!   OpenTelemetry SDK 0.33 tracer (`ParentBased(AlwaysOn / AlwaysOff)`, a
//!   `BatchSpanProcessor` into an exporter that groups, converts and prost-encodes), a W3C
//!   `TraceContextPropagator` into the record's `OwnedHeaders` and out of the consumed
//!   record's `BorrowedHeaders`, an SDK span per send (ended with the delivery report,
//!   partition and offset recorded) and per record processed (the child of the extracted
//!   context, attached while the handler runs), with the attributes tracewire records.
//! - `fastrace root span`: the engine's floor — a root span with two properties per record,
//!   no propagation.
//!
//! Groups (time = **CPU time of the benchmarking thread**, `common::ThreadCpu`: librdkafka's
//! threads, fastrace's collector, tracewire's export worker and the SDK's batch thread are not
//! counted on either side — `examples/kafka_load.rs` counts everything). Each row runs 256
//! times back to back (timed), then everything is drained untimed (`paced`):
//!
//! - `kafka/send`: a record (key, 128-byte value, `content-type` and `correlation_id`
//!   headers) enqueued with `send_result`, then — after the 256 — every delivery report
//!   awaited (the send spans end there) on a current-thread tokio runtime. Waiting for the
//!   broker is not CPU; the enqueue, the delivery future and the span are. `bare +
//!   traceparent` sends a prepared, constant `traceparent` header: what carrying the header
//!   costs without any tracing.
//! - `kafka/send-tracing`: the tracing work of a send without the send: tracewire's
//!   `Messaging::send` of the record's facts into a `tracewire_kafka::HeaderInjector` and the
//!   span's end (what `FutureProducer::send` adds around rdkafka's), the peer's span,
//!   injection and end; the headers dropped on both sides.
//! - `kafka/process`: a record polled from a real partition (`BaseConsumer::poll`, records
//!   prefetched by librdkafka: 128-byte value, a key, headers `traceparent` — flags `01` for
//!   the sampled rows, `00` for the unsampled ones — `content-type`, `correlation_id`); timed:
//!   the poll, the context extracted, the process span started, a handler run inside it, the
//!   span ended, the record dropped. The partition is read again from the start when it runs
//!   out (untimed).
//!
//! `KAFKA_BENCH_PROFILE=<group>/<row>[:n]` runs one row `n` times without criterion.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::result_large_err
)]

mod common;
#[path = "common/kafka_otel.rs"]
mod kafka_otel;

use common::broker::{PACE, Profile, group, paced};
use common::{ThreadCpu, median_ns};

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer as _;
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{self, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tracewire_benches::{Collect, Sinks, otel, traceparent, tracer};
use tracewire_messaging::{Destination, MessageInfo, Messaging};

const BODY: [u8; 128] = [b'x'; 128];
const KEY: &str = "order-42";
const CID: &str = "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a";
/// Records per pre-filled topic; a topic is read again from the start, between two paced runs,
/// when the next run would go past its end.
const RECORDS: u64 = PACE * 40;

const SEND: &str = "kafka/send";
const SEND_TRACING: &str = "kafka/send-tracing";
const PROCESS: &str = "kafka/process";
const SEND_ROWS: [&str; 7] = [
    "bare",
    "bare + traceparent",
    "tracewire sampled",
    "otel sampled",
    "tracewire unsampled",
    "otel unsampled",
    "fastrace root span",
];
const TRACING_ROWS: [&str; 4] = [
    "tracewire sampled",
    "otel sampled",
    "tracewire unsampled",
    "otel unsampled",
];
const PROCESS_ROWS: [&str; 6] = [
    "bare",
    "tracewire sampled",
    "otel sampled",
    "tracewire unsampled",
    "otel unsampled",
    "fastrace root span",
];

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

/// A `fastrace root span` row's span.
fn floor_span(name: &'static str, kind: &'static str) -> fastrace::Span {
    tracewire_benches::floor_span(name, [("span.kind", kind), ("messaging.system", "kafka")])
}

/// The handler: nothing but a look at the record.
fn handler(payload: Option<&[u8]>) -> usize {
    black_box(payload.map_or(0, <[u8]>::len))
}

/// A consumer reading one pre-filled partition over and over.
struct Reader {
    traced: tracewire_kafka::BaseConsumer,
    topic: String,
    read: Cell<u64>,
}

impl Reader {
    fn new(url: &str, topic: &str, sampled: bool) -> Self {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", url)
            .set("group.id", "tw-bench")
            .set("enable.auto.commit", "false");
        if let Ok(d) = std::env::var("KAFKA_BENCH_DEBUG") {
            config.set("debug", d);
        }
        let messaging = tracewire_kafka::messaging(&config).tracer(tracer(sampled));
        let traced = tracewire_kafka::BaseConsumer::with_messaging(
            config.create().unwrap(),
            messaging,
            Some("tw-bench".into()),
        );
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        traced.assign(&tpl).unwrap();
        Reader {
            traced,
            topic: topic.to_owned(),
            read: Cell::new(0),
        }
    }

    /// Back to the start of the partition when `k` more records would go past its end
    /// (untimed, between runs).
    fn rewind_for(&self, k: u64) {
        if self.read.get() + k > RECORDS {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.topic, 0, Offset::Beginning)
                .unwrap();
            self.traced.assign(&tpl).unwrap();
            self.read.set(0);
        }
    }

    fn counted(&self) {
        self.read.set(self.read.get() + 1);
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    url: String,
    topic: String,
    bare: producer::FutureProducer,
    traced: [tracewire_kafka::FutureProducer; 2],
    messaging: [Messaging; 2],
    otel: [kafka_otel::Peer; 2],
    sinks: Sinks,
    /// Readers: bare, tracewire sampled, otel sampled, tracewire unsampled, otel unsampled,
    /// fastrace (sampled topic but for the unsampled rows).
    readers: Vec<Reader>,
}

impl Fixture {
    fn new(url: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sinks = Sinks::new(Collect::Pipeline);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000;
        let topic = format!("twbench{now}.send");
        let [sampled_topic, unsampled_topic] =
            ["sampled", "unsampled"].map(|s| format!("twbench{now}.{s}"));
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", url)
            .set("linger.ms", "0")
            .set("queue.buffering.max.messages", "1000000");
        let bare: producer::FutureProducer = config.create().unwrap();
        let messaging =
            [true, false].map(|s| tracewire_kafka::messaging(&config).tracer(tracer(s)));
        let traced = messaging
            .clone()
            .map(|m| tracewire_kafka::FutureProducer::with_messaging(bare.clone(), m));
        rt.block_on(async {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", url)
                .create()
                .unwrap();
            let new: Vec<NewTopic<'_>> = [&topic, &sampled_topic, &unsampled_topic]
                .iter()
                .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
                .collect();
            for r in admin
                .create_topics(&new, &AdminOptions::new())
                .await
                .unwrap()
            {
                r.unwrap();
            }
            // The records the process rows read.
            for (t, sampled) in [(&sampled_topic, true), (&unsampled_topic, false)] {
                let tp = traceparent(sampled);
                let mut pending = Vec::new();
                for _ in 0..RECORDS {
                    let h = headers().insert(Header {
                        key: "traceparent",
                        value: Some(tp),
                    });
                    let record = FutureRecord::to(t.as_str())
                        .key(KEY)
                        .payload(&BODY[..])
                        .headers(h);
                    pending.push(bare.send_result(record).map_err(|(e, _)| e).unwrap());
                }
                for p in pending {
                    p.await.unwrap().unwrap();
                }
            }
        });
        let readers = [
            (&sampled_topic, true),
            (&sampled_topic, true),
            (&sampled_topic, true),
            (&unsampled_topic, false),
            (&unsampled_topic, false),
            (&sampled_topic, true),
        ]
        .into_iter()
        .map(|(t, s)| Reader::new(url, t, s))
        .collect();
        Fixture {
            rt,
            url: url.to_owned(),
            topic,
            bare,
            traced,
            messaging,
            otel: [true, false].map(|sampled| kafka_otel::Peer::new(sinks.otel(sampled))),
            sinks,
            readers,
        }
    }

    /// `k` sends of `row`, then their delivery reports.
    fn send(&self, row: &str, k: u64) {
        let topic = self.topic.as_str();
        let record = || FutureRecord::to(topic).key(KEY).payload(&BODY[..]);
        match row {
            "bare" | "bare + traceparent" => {
                let tp = traceparent(true);
                let futures: Vec<_> = (0..k)
                    .map(|_| {
                        let mut h = headers();
                        if row != "bare" {
                            h = h.insert(Header {
                                key: "traceparent",
                                value: Some(tp),
                            });
                        }
                        self.bare
                            .send_result(record().headers(h))
                            .map_err(|(e, _)| e)
                            .unwrap()
                    })
                    .collect();
                self.rt.block_on(async {
                    for f in futures {
                        black_box(f.await.unwrap().unwrap());
                    }
                });
            }
            "tracewire sampled" | "tracewire unsampled" => {
                let p = &self.traced[usize::from(row.ends_with("unsampled"))];
                let futures: Vec<_> = (0..k)
                    .map(|_| {
                        p.send_result(record().headers(headers()))
                            .map_err(|(e, _)| e)
                            .unwrap()
                    })
                    .collect();
                self.rt.block_on(async {
                    for f in futures {
                        black_box(f.await.unwrap().unwrap());
                    }
                });
            }
            "otel sampled" | "otel unsampled" => {
                let peer = &self.otel[usize::from(row.ends_with("unsampled"))];
                let futures: Vec<_> = (0..k)
                    .map(|_| {
                        let mut h = kafka_otel::HeaderInjector(Some(headers()));
                        let cx = peer.send_span(topic, BODY.len(), &mut h);
                        let record = FutureRecord {
                            headers: h.0,
                            ..record()
                        };
                        (
                            self.bare.send_result(record).map_err(|(e, _)| e).unwrap(),
                            cx,
                        )
                    })
                    .collect();
                self.rt.block_on(async {
                    for (f, cx) in futures {
                        let d = f.await.unwrap().unwrap();
                        kafka_otel::Peer::delivered(&cx, d.partition, d.offset);
                    }
                });
            }
            "fastrace root span" => {
                let tp = traceparent(true);
                let futures: Vec<_> = (0..k)
                    .map(|_| {
                        let span = floor_span("send twbench", "producer");
                        let h = headers().insert(Header {
                            key: "traceparent",
                            value: Some(tp),
                        });
                        let f = self
                            .bare
                            .send_result(record().headers(h))
                            .map_err(|(e, _)| e)
                            .unwrap();
                        (f, span)
                    })
                    .collect();
                self.rt.block_on(async {
                    for (f, span) in futures {
                        black_box(f.await.unwrap().unwrap());
                        drop(span);
                    }
                });
            }
            _ => unreachable!("{row}"),
        }
    }

    /// The tracing work of one send, without the send.
    fn send_tracing(&self, row: &str) {
        let i = usize::from(row.ends_with("unsampled"));
        if row.starts_with("tracewire") {
            let mut carrier = tracewire_kafka::HeaderInjector(Some(headers()));
            let info = MessageInfo {
                conversation_id: Some(CID),
                body_size: Some(BODY.len()),
                system_attributes: &[(tracewire_core::semconv::MESSAGING_KAFKA_MESSAGE_KEY, KEY)],
                ..MessageInfo::new(Destination::new(&self.topic))
            };
            let mut span = self.messaging[i].send(&info, &mut carrier);
            if span.is_recording() {
                span.set(
                    tracewire_core::semconv::MESSAGING_DESTINATION_PARTITION_ID,
                    "0",
                );
                span.set(
                    tracewire_core::semconv::MESSAGING_KAFKA_OFFSET,
                    42.to_string(),
                );
            }
            span.end();
            black_box(carrier.into_inner());
        } else {
            let mut h = kafka_otel::HeaderInjector(Some(headers()));
            let cx = self.otel[i].send_span(&self.topic, BODY.len(), &mut h);
            kafka_otel::Peer::delivered(&cx, 0, 42);
            black_box(h.0);
        }
    }

    /// One record polled and processed by `row` (reader `r`).
    fn process(&self, row: &str, r: usize) {
        let reader = &self.readers[r];
        let poll = Duration::from_secs(10);
        match row {
            "bare" => {
                let m = reader.traced.inner().poll(poll).unwrap().unwrap();
                handler(m.payload());
            }
            "tracewire sampled" | "tracewire unsampled" => {
                let m = reader.traced.poll(poll).unwrap().unwrap();
                let _in = m.enter();
                handler(m.payload());
            }
            "otel sampled" | "otel unsampled" => {
                let peer = &self.otel[usize::from(row.ends_with("unsampled"))];
                let m = reader.traced.inner().poll(poll).unwrap().unwrap();
                let cx = peer.process_span("tw-bench", &m);
                {
                    let _in = cx.clone().attach();
                    handler(m.payload());
                }
                otel::end(&cx);
            }
            "fastrace root span" => {
                let m = reader.traced.inner().poll(poll).unwrap().unwrap();
                let span = floor_span("process twbench", "consumer");
                let _in = span.set_local_parent();
                handler(m.payload());
            }
            _ => unreachable!("{row}"),
        }
        reader.counted();
    }
}

fn benches(c: &mut Criterion<ThreadCpu>, fx: &Fixture) {
    let (drain, nothing) = (|| fx.sinks.flush(), || {});
    group(c, SEND, &SEND_ROWS, &nothing, |row, iters| {
        paced(iters, &drain, |k| k, |k| fx.send(row, k))
    });
    group(c, SEND_TRACING, &TRACING_ROWS, &nothing, |row, iters| {
        paced(
            iters,
            &drain,
            |k| k,
            |k| (0..k).for_each(|_| fx.send_tracing(row)),
        )
    });
    group(c, PROCESS, &PROCESS_ROWS, &nothing, |row, iters| {
        let r = reader(row);
        let rewound = |k| {
            fx.readers[r].rewind_for(k);
            k
        };
        paced(iters, &drain, rewound, |k| {
            (0..k).for_each(|_| fx.process(row, r))
        })
    });
}

/// The reader of a process row.
fn reader(row: &str) -> usize {
    PROCESS_ROWS.iter().position(|x| *x == row).unwrap_or(0)
}

/// A markdown table of the medians: each row, and what it adds over `bare`.
fn print_summary() {
    eprintln!("\n| group | row | median CPU ns | over bare |");
    eprintln!("|---|---|---:|---:|");
    for (group, rows) in [
        (SEND, &SEND_ROWS[..]),
        (SEND_TRACING, &TRACING_ROWS[..]),
        (PROCESS, &PROCESS_ROWS[..]),
    ] {
        let bare = median_ns(group, "bare");
        for row in rows {
            let m = median_ns(group, row);
            let over = match (m, bare) {
                (Some(m), Some(b)) if *row != "bare" => format!("{:+.0} ns", m - b),
                _ => String::new(),
            };
            eprintln!(
                "| {group} | {row} | {} | {over} |",
                m.map_or("?".to_owned(), |v| format!("{v:.0}"))
            );
        }
    }
}

fn main() {
    let url = std::env::var("KAFKA_URL").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let fx = Fixture::new(&url);
    if let Some(p) = Profile::from_env("KAFKA_BENCH_PROFILE", 100_000) {
        let row = p.row.as_str();
        let r = reader(row);
        let mut left = p.n;
        while left > 0 {
            let k = left.min(PACE);
            match p.group.as_str() {
                SEND => fx.send(row, k),
                SEND_TRACING => (0..k).for_each(|_| fx.send_tracing(row)),
                _ => {
                    fx.readers[r].rewind_for(k);
                    (0..k).for_each(|_| fx.process(row, r));
                }
            }
            left -= k;
        }
        return;
    }
    eprintln!("kafka bench against {}", fx.url);
    let mut c = common::broker::criterion();
    benches(&mut c, &fx);
    c.final_summary();
    if common::broker::measuring() {
        print_summary();
    }
    fx.sinks.shutdown();
}
