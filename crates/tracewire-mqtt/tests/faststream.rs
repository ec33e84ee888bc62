//! Interop with FastStream (Python, `MQTTTelemetryMiddleware`, MQTT 5) over a real Mosquitto,
//! both ways, in one trace:
//!
//! ```text
//! py publishes FIRST → rs handles FIRST, publishes SECOND
//!                    → py handles SECOND, publishes THIRD → rs handles THIRD
//! ```
//!
//! Both sides export over real OTLP/HTTP to one receiver — the embedded viewer, started here on
//! a free port — and the trace is read back from its store: one trace id, the exact parent
//! chain by span id, our links, names, kinds and attributes. The Python peer is
//! `faststream_peer.py` (FastStream 0.7.8 with zmqtt from `.venv`,
//! `scripts/setup-python.sh`), driven through `tracewire_test::faststream`.
//!
//! The context travels in MQTT 5 user properties both ways (FastStream's headers), the
//! correlation id in the `correlation_data` property. Over MQTT 3.1.1 FastStream sends no
//! headers at all (it raises if asked to), so nothing could propagate.
//!
//! The harness, the assertions every broker shares and FastStream's deviations from the
//! messaging conventions are `tracewire_test::faststream`'s. Here, as observed with 0.7.8, also:
//!
//! - FastStream names a process span by the concrete topic, a high-cardinality name when the
//!   subscription has a wildcard — ours: `process {filter}` for a wildcard subscription;
//! - `messaging.message.id` on its process spans is made up per delivery (MQTT has no message
//!   id) — ours records none; no QoS, retain or duplicate flag is recorded — ours:
//!   `messaging.mqtt.qos`, `messaging.mqtt.retain`, `messaging.mqtt.duplicate`.
//!
//! Without Mosquitto or the venv: a loud, recorded skip (a failure under `CI=true`).
//!
//! One test in this binary: it installs the OTLP pipeline as fastrace's global reporter.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracewire_messaging::Messaging;
use tracewire_mqtt::{Client, Event, Message};
use tracewire_test::faststream::{self, BODY, Chain, Interop, Naming, PATIENCE, Wire, attr};
use tracewire_test::skip::{self, Broker};

/// The value of user property `name` (the last, as FastStream's dict keeps it).
fn property<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.user_properties()
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_through_faststream_and_back_is_one_trace() {
    const TEST: &str = "faststream_mqtt_interop";
    let Some(interop) = Interop::start(TEST, Broker::Mosquitto).await else {
        return;
    };
    let (host, port) = skip::host_port(&interop.url);
    let messaging = faststream::messaging(Messaging::new("mqtt").server(host.clone(), Some(port)));
    let names = faststream::names('/', "fs");
    let [first, second, third] = &names;
    let mut options = MqttOptions::new(first.replace('/', "-"), host.as_str(), port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = Client::with_messaging(options, 64, messaging);
    let (tx, mut messages) = mpsc::unbounded_channel();
    let (sub_tx, mut subacks) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Message(m)) => drop(tx.send(m)),
                Ok(Event::Other(rumqttc::v5::Event::Incoming(Packet::SubAck(_)))) => {
                    let _ = sub_tx.send(());
                }
                Ok(Event::Other(_)) => {}
                Err(e) => {
                    eprintln!("event loop: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    // Our subscriptions are in place on the broker before the peer publishes.
    for topic in [first, third] {
        client
            .subscribe(topic.as_str(), QoS::AtLeastOnce)
            .await
            .unwrap();
        timeout(PATIENCE, subacks.recv()).await.unwrap().unwrap();
    }

    let mut peer = interop.peer(
        env!("CARGO_MANIFEST_DIR"),
        &names,
        &[("mqtt", &interop.url)],
    );
    peer.publish();

    // The tracewire handler of FIRST: publishes SECOND from inside the process span, with the
    // correlation id it got.
    let m = timeout(PATIENCE, messages.recv()).await.unwrap().unwrap();
    assert_eq!(m.topic(), first.as_str());
    assert_eq!(&m.payload[..], BODY);
    let tp_first = property(&m, "traceparent").unwrap().to_owned();
    let correlation = m
        .properties
        .as_ref()
        .and_then(|p| p.correlation_data.clone())
        .unwrap();
    let correlation_first = correlation.to_vec();
    let properties = PublishProperties {
        correlation_data: Some(correlation),
        ..PublishProperties::default()
    };
    m.instrument(client.publish_with_properties(
        second.as_str(),
        QoS::AtLeastOnce,
        false,
        m.payload.clone(),
        properties,
    ))
    .await
    .unwrap();
    drop(m);
    let second_seen = peer.second();

    // The tracewire handler of THIRD.
    let m = timeout(PATIENCE, messages.recv()).await.unwrap().unwrap();
    assert_eq!(m.topic(), third.as_str());
    assert_eq!(&m.payload[..], BODY);
    let tp_third = property(&m, "traceparent").unwrap().to_owned();
    drop(m);

    peer.stop();
    task.abort();

    let spans = interop.receiver.spans(8).await;
    let chain = Chain::find(&spans, Naming::new("mqtt", &names), 8);
    // FastStream → us: FIRST's user properties carry FastStream's create span; us → FastStream:
    // its own parser read our user properties (`traceparent`), our correlation id and the body.
    let wire = Wire {
        first: tp_first,
        correlation: String::from_utf8(correlation_first).unwrap(),
        second: second_seen,
        third: tp_third,
    };
    chain.check(&wire);
    assert_eq!(wire.second["correlation_id"], "order-1");

    for s in chain.ours() {
        chain.assert_attrs(
            s,
            &[
                ("messaging.message.conversation_id", "order-1"),
                ("messaging.mqtt.qos", "1"),
            ],
        );
    }
    // FastStream names MQTT its system too.
    assert_eq!(
        attr(chain.py_second_process, "messaging.system").as_deref(),
        Some("mqtt")
    );

    interop.receiver.shutdown().await;
}
