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
//! Prints the harness's `THREADS` and `RESULT` lines (`tracewire_benches::load`): the main
//! thread runs the runtime (both event loops, publisher and handler); the others are the
//! tracing background threads.
#![allow(missing_docs)]

#[path = "../benches/common/mqtt_otel.rs"]
mod mqtt_otel;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqtt_otel::Peer;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, MqttOptions};
use tracewire_benches::load::{
    Broker, Credits, Error, Mode, Timer, Timing, Tracing, Transport, env_or,
};
use tracewire_benches::{TRACEPARENT_SAMPLED, otel};

const MQTT: Broker = Broker {
    system: "mqtt",
    modes: &Mode::STANDARD,
    transports: &[
        Transport {
            name: "qos0",
            messages: 200_000,
        },
        Transport {
            name: "qos1",
            messages: 50_000,
        },
    ],
};

const PAYLOAD: [u8; 128] = [b'x'; 128];
/// Messages in flight, returned by the handler `Credits::CHUNK` at a time: below Mosquitto's
/// `max_queued_messages` (1 000 per client, plus 20 in flight), past which it drops QoS 1
/// messages for a subscriber that falls behind.
const WINDOW: u32 = 512;

/// The handler: nothing but a look at the message.
async fn handler(payload: &Bytes) -> usize {
    std::hint::black_box(payload.len())
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(format!("{id}-{}", std::process::id()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    o
}

/// The consumer side: returns when the handler has run for `n` messages.
async fn consume(
    mode: Mode,
    peer: Option<Arc<Peer>>,
    port: u16,
    topic: &str,
    qos: QoS,
    n: u64,
    credits: Credits,
) -> Result<tokio::task::JoinHandle<Result<(), Error>>, Error> {
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
                        credits.handled(k);
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
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            let mut k = 0;
            while k < n {
                match eventloop.poll().await? {
                    rumqttc::v5::Event::Incoming(Packet::Publish(p)) => {
                        handle_bare(mode, peer.as_deref(), p).await;
                        k += 1;
                        credits.handled(k);
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
async fn handle_bare(mode: Mode, peer: Option<&Peer>, p: Publish) {
    match (mode, peer) {
        (Mode::FastraceFloor, _) => {
            use fastrace::future::FutureExt as _;
            let span = MQTT.floor_span("process twload", "consumer");
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
            otel::end(&cx);
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
    let mode = tracing.mode();
    let peer = tracing.otel().map(|p| Arc::new(Peer::new(p, "twload-pub")));
    let topic = format!("twload/{}/{}", mode.name(), std::process::id());
    let credits = Credits::new(WINDOW);
    let handled = consume(mode, peer.clone(), port, &topic, qos, n, credits.clone()).await?;

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
        credits.send(i).await?;
        let payload = payload.clone();
        match (mode, &peer) {
            (Mode::Tracewire | Mode::TracewireUnsampled, _) => {
                traced.publish(topic.as_str(), qos, false, payload).await?;
            }
            (Mode::FastraceFloor, _) => {
                let span = MQTT.floor_span("publish twload", "producer");
                let properties = PublishProperties {
                    user_properties: vec![("traceparent".into(), TRACEPARENT_SAMPLED.into())],
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
                otel::end(&cx);
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
    let port: u16 = env_or("MQTT_PORT", "1883").parse().unwrap_or(1883);
    MQTT.main(async |args, tracing| {
        let qos = match args.transport {
            "qos1" => QoS::AtLeastOnce,
            _ => QoS::AtMostOnce,
        };
        run(port, qos, args.n, tracing).await
    })
}
