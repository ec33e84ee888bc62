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

use common::ThreadCpu;
use common::broker::{
    BARE, BARE_HEADER, FLOOR, OTEL_SAMPLED, OTEL_UNSAMPLED, PACE, Profile, TW_SAMPLED,
    TW_UNSAMPLED, floor_span, group, paced, peer_row, run,
};

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, MqttOptions};
use tracewire_benches::otel;
use tracewire_benches::{Collect, Sinks, TRACEPARENT_SAMPLED, traceparent, tracer};
use tracewire_core::semconv;
use tracewire_messaging::{Destination, MessageInfo, Messaging};
use tracewire_mqtt::UserPropertiesMut;

/// The topic of the process rows' messages; the traced clients subscribe to `FILTER`.
const TOPIC: &str = "tw/bench/orders";
const FILTER: &str = "tw/bench/+";
/// Where the publish rows publish: no subscription of the bench's matches it.
const OUT: &str = "tw/bench/out/orders";
const PAYLOAD: [u8; 128] = [b'x'; 128];

const PUBLISH: &str = "mqtt/publish";
const PUBLISH_TRACING: &str = "mqtt/publish-tracing";
const PROCESS: &str = "mqtt/process";

/// The handler: nothing but a look at the message.
async fn handler(payload: &Bytes) -> usize {
    black_box(payload.len())
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
    sinks: Sinks,
}

impl Fixture {
    fn new() -> Self {
        let sinks = Sinks::new(Collect::Pipeline);
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
        Fixture {
            otel: [true, false]
                .map(|sampled| mqtt_otel::Peer::new(sinks.otel(sampled), "tw-bench-bare")),
            rt,
            bare,
            bare_loop: std::cell::RefCell::new(bare_loop),
            tw: [tw_s, tw_u],
            tw_loops: [
                std::cell::RefCell::new(loop_s),
                std::cell::RefCell::new(loop_u),
            ],
            payload: Bytes::from_static(&PAYLOAD),
            sinks,
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
                        otel::end(&cx);
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
                drop(floor_span("publish tw/bench/out/orders", "producer"));
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
                otel::end(&cx);
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
                let span = floor_span("process tw/bench/orders", "consumer");
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
                otel::end(&cx);
                drop(publish);
            }
            other => panic!("no process row {other}"),
        }
    }

    /// The prepared message for `stack`'s rows.
    fn message(stack: &str) -> Publish {
        received(traceparent(common::broker::sampled(stack)))
    }

    /// `common::broker::paced`, drained with the sinks' flush.
    fn paced<T>(&self, iters: u64, prepare: impl FnMut(u64) -> T, run: impl FnMut(T)) -> Duration {
        paced(iters, &|| self.sinks.flush(), prepare, run)
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

fn benches(c: &mut Criterion<ThreadCpu>, fx: &Fixture) {
    let flush = || fx.sinks.flush();
    group(c, PUBLISH, &PUBLISH_ROWS, &flush, |row, iters| {
        fx.paced(
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
    });
    group(
        c,
        PUBLISH_TRACING,
        &PUBLISH_TRACING_ROWS,
        &flush,
        |row, iters| {
            fx.paced(
                iters,
                |k| k,
                |k| (0..k).for_each(|_| fx.publish_tracing(row)),
            )
        },
    );
    group(c, PROCESS, &PROCESS_ROWS, &flush, |row, iters| {
        let message = Fixture::message(row);
        fx.paced(
            iters,
            |k| (0..k).map(|_| message.clone()).collect::<Vec<_>>(),
            |messages| messages.into_iter().for_each(|m| fx.process(row, m)),
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
fn profile(fx: &Fixture, p: &Profile) {
    let rows: Vec<&'static str> = PROCESS_ROWS
        .iter()
        .chain(&PUBLISH_ROWS)
        .chain(&PUBLISH_TRACING_ROWS)
        .copied()
        .collect();
    let row = p.row_in(&rows);
    let (group, n) = (p.group.as_str(), p.n);
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
            fx.sinks.flush();
        }
    }
    if group == "publish" && n % PACE != 0 {
        fx.write(row, n % PACE);
    }
    fx.sinks.flush();
}

fn main() {
    let fx = Fixture::new();
    if let Some(p) = Profile::from_env("MQTT_BENCH_PROFILE", 10_000) {
        profile(&fx, &p);
        fx.sinks.report();
        return;
    }
    let mut c = common::broker::criterion();
    benches(&mut c, &fx);
    fx.sinks.flush();
    c.final_summary();
    if common::broker::measuring() {
        print_summary();
        fx.sinks.report();
    }
}
