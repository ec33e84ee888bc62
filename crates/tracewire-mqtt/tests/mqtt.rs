//! tracewire-mqtt over a real MQTT 5 broker (Mosquitto, `scripts/services.sh start mosquitto`,
//! which `scripts/test.sh` runs): span trees for QoS 0/1/2, wildcard and shared subscriptions,
//! retained messages, manual acks and redelivery, a chain of handlers, unsampled, garbage
//! input, and MQTT 3.1.1 peers (nothing propagates).
//!
//! Without a broker: a loud, recorded skip (a failure under `CI=true`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use fastrace::collector::SpanRecord;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::{MqttOptions, mqttbytes::v5::SubAck};
use tokio::sync::mpsc;
use tracewire_core::{Sampler, SpanId, TraceContext, TraceId, Tracer};
use tracewire_messaging::{Messaging, Relation};
use tracewire_mqtt::{Client, Event, Message};
use tracewire_test::skip::{self, Broker};
use tracewire_test::{assert_unsampled_trace, capture, property};

/// A topic prefix no other test or run uses (the broker keeps retained messages and
/// sessions).
fn unique(name: &str) -> String {
    tracewire_test::unique('/', name)
}

/// A client id no other connection uses.
fn client_id(name: &str) -> String {
    unique(name).replace('/', "-")
}

fn mqtt(sampler: Sampler) -> Messaging {
    Messaging::new("mqtt")
        .tracer(Tracer::new().with_sampler(sampler))
        .server("127.0.0.1", Some(1883))
}

/// The broker's host and port, or `None` after a recorded skip.
fn broker(test: &str) -> Option<(String, u16)> {
    let url = skip::broker(test, Broker::Mosquitto)?;
    Some(skip::host_port(&url))
}

/// A connected traced client whose event loop runs in a task: messages, SUBACKs and CONNACKs
/// come out of channels. The task ends (the connection drops, without DISCONNECT) with it.
struct Conn {
    client: Client,
    messages: mpsc::UnboundedReceiver<Message>,
    subacks: mpsc::UnboundedReceiver<SubAck>,
    pubacks: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect_with(
    (host, port): &(String, u16),
    id: &str,
    messaging: Messaging,
    tweak: impl FnOnce(&mut MqttOptions),
) -> Conn {
    let mut options = MqttOptions::new(id, host.as_str(), *port);
    options.set_keep_alive(Duration::from_secs(30));
    tweak(&mut options);
    let (client, mut eventloop) = Client::with_messaging(options, 64, messaging);
    let (tx, messages) = mpsc::unbounded_channel();
    let (sub_tx, subacks) = mpsc::unbounded_channel();
    let (conn_tx, mut connacks) = mpsc::unbounded_channel();
    let (ack_tx, pubacks) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Message(m)) => drop(tx.send(m)),
                Ok(Event::Other(rumqttc::v5::Event::Incoming(Packet::SubAck(s)))) => {
                    drop(sub_tx.send(s));
                }
                Ok(Event::Other(rumqttc::v5::Event::Incoming(Packet::ConnAck(c)))) => {
                    drop(conn_tx.send(c));
                }
                Ok(Event::Other(rumqttc::v5::Event::Incoming(Packet::PubAck(_)))) => {
                    let _ = ack_tx.send(());
                }
                Ok(Event::Other(_)) => {}
                Err(e) => {
                    eprintln!("event loop: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), connacks.recv())
        .await
        .expect("connected within 10 s")
        .unwrap();
    Conn {
        client,
        messages,
        subacks,
        pubacks,
        task,
    }
}

async fn connect(test: &str, messaging: Messaging) -> Option<Conn> {
    let broker = broker(test)?;
    Some(connect_with(&broker, &client_id(test), messaging, |_| {}).await)
}

impl Conn {
    /// Ends the event loop and waits until it has (the connection closed, nothing more
    /// processed).
    async fn close(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Subscribes and waits for the SUBACK.
    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client.subscribe(filter, qos).await.unwrap();
        self.suback().await;
    }

    async fn suback(&mut self) {
        let ack = tokio::time::timeout(Duration::from_secs(10), self.subacks.recv())
            .await
            .expect("a SUBACK within 10 s")
            .unwrap();
        assert!(
            ack.return_codes.iter().all(|c| matches!(
                c,
                rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
            )),
            "{ack:?}"
        );
    }

    async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(10), self.messages.recv())
            .await
            .expect("a message within 10 s")
            .unwrap()
    }

    /// Waits a little and says whether anything else came.
    async fn nothing_more(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(300), self.messages.recv())
            .await
            .is_err()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_0_1_2_publish_and_process_with_the_message_intact() {
    let Some(mut conn) = connect("qos", mqtt(Sampler::AlwaysOn)).await else {
        return;
    };
    let topic = unique("orders");
    conn.subscribe(&topic, QoS::ExactlyOnce).await;
    let cap = capture();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let properties = PublishProperties {
            correlation_data: Some(format!("corr-{}", qos as u8).into_bytes().into()),
            content_type: Some("text/plain".into()),
            user_properties: vec![("x-app".into(), "kept".into())],
            ..PublishProperties::default()
        };
        conn.client
            .publish_with_properties(topic.as_str(), qos, false, "hello", properties)
            .await
            .unwrap();
        let m = conn.next().await;
        assert_eq!((&m.payload[..], m.qos), (&b"hello"[..], qos));
        let p = m.properties.as_ref().unwrap();
        assert_eq!(p.content_type.as_deref(), Some("text/plain"));
        assert_eq!(p.user_properties[0], ("x-app".into(), "kept".into()));
        assert_eq!(p.user_properties[1].0, "traceparent");
        assert_eq!(p.user_properties.len(), 2);
    }
    // Without properties of its own, the message still carries the context.
    conn.client
        .publish(topic.as_str(), QoS::AtLeastOnce, false, "bare")
        .await
        .unwrap();
    let m = conn.next().await;
    assert_eq!(m.user_properties()[0].0, "traceparent");
    drop(m);
    let spans = cap.finish();
    let keys = [
        "messaging.system",
        "messaging.operation.type",
        "messaging.destination.name",
        "messaging.mqtt.qos",
        "messaging.message.conversation_id",
        "messaging.message.body.size",
        "server.address",
        "server.port",
    ];
    let pair = |qos: u8, size: usize, corr: &str| {
        format!(
            "publish {topic} [producer] messaging.system=mqtt messaging.operation.type=send \
messaging.destination.name={topic} messaging.mqtt.qos={qos}{corr} \
messaging.message.body.size={size} server.address=127.0.0.1 server.port=1883
  process {topic} [consumer] messaging.system=mqtt messaging.operation.type=process \
messaging.destination.name={topic} messaging.mqtt.qos={qos}{corr} \
messaging.message.body.size={size} server.address=127.0.0.1 server.port=1883
"
        )
    };
    let corr = |q: u8| format!(" messaging.message.conversation_id=corr-{q}");
    assert_eq!(
        spans.tree(&keys),
        [
            pair(0, 5, &corr(0)),
            pair(1, 5, &corr(1)),
            pair(2, 5, &corr(2)),
            pair(1, 4, ""),
        ]
        .concat()
    );
    for process in spans.all(&format!("process {topic}")) {
        assert_eq!(process.links.len(), 1);
        assert_eq!(process.links[0].span_id, process.parent_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_new_reads_server_and_client_id_from_the_options() {
    let Some((host, port)) = broker("client_new") else {
        return;
    };
    let id = client_id("client-new");
    let (client, _eventloop) = Client::new(MqttOptions::new(id.as_str(), host.as_str(), port), 8);
    let cap = capture();
    // The event loop is not polled: the publish is only queued, and its span ends there.
    client
        .publish(unique("x"), QoS::AtMostOnce, false, "1")
        .await
        .unwrap();
    // A topic with a wildcard is refused, and the span says so.
    assert!(
        client
            .publish("a/+", QoS::AtMostOnce, false, "1")
            .await
            .is_err()
    );
    let spans = cap.finish();
    let r = &spans.records[0];
    assert_eq!(property(r, "server.address"), Some(host.as_str()));
    assert_eq!(property(r, "server.port"), Some(port.to_string().as_str()));
    assert_eq!(property(r, "messaging.client.id"), Some(id.as_str()));
    assert_eq!(
        property(&spans.records[1], "error.type"),
        Some("InvalidTopic")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_wildcards_name_each_copy_by_its_own_subscription() {
    let Some(mut conn) = connect("wildcards", mqtt(Sampler::AlwaysOn)).await else {
        return;
    };
    let base = unique("sensors");
    let (plus, hash, exact) = (
        format!("{base}/+/temp"),
        format!("{base}/#"),
        format!("{base}/k2/temp"),
    );
    for f in [&plus, &hash, &exact] {
        conn.subscribe(f, QoS::AtLeastOnce).await;
    }
    let cap = capture();
    // Mosquitto sends one copy per matching subscription, each with its subscription
    // identifier: `k1` matches `+/temp` and `#`, `k2` all three.
    for k in ["k1", "k2"] {
        conn.client
            .publish(format!("{base}/{k}/temp"), QoS::AtLeastOnce, false, k)
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(conn.next().await);
    }
    assert!(conn.nothing_more().await);
    drop(got);
    let spans = cap.finish();
    let keys = [
        "messaging.destination.name",
        "messaging.destination.template",
    ];
    let mut lines: Vec<String> = spans
        .tree(&keys)
        .lines()
        .filter(|l| l.contains("[consumer]"))
        .map(|l| l.trim().to_owned())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!(
                "process {base}/# [consumer] messaging.destination.name={base}/k1/temp \
messaging.destination.template={base}/#"
            ),
            format!(
                "process {base}/# [consumer] messaging.destination.name={base}/k2/temp \
messaging.destination.template={base}/#"
            ),
            format!(
                "process {base}/+/temp [consumer] messaging.destination.name={base}/k1/temp \
messaging.destination.template={base}/+/temp"
            ),
            format!(
                "process {base}/+/temp [consumer] messaging.destination.name={base}/k2/temp \
messaging.destination.template={base}/+/temp"
            ),
            // An exact filter: named by the topic, no template.
            format!("process {exact} [consumer] messaging.destination.name={exact}"),
        ]
    );
    // Every copy is the child of its publish.
    for r in spans
        .records
        .iter()
        .filter(|r| r.name.starts_with("process"))
    {
        let parent = spans
            .records
            .iter()
            .find(|p| p.span_id == r.parent_id)
            .unwrap();
        assert_eq!(
            property(parent, "messaging.destination.name"),
            property(r, "messaging.destination.name")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_identifiers_the_most_specific_filter_names_every_copy() {
    let Some(broker) = broker("no_identifiers") else {
        return;
    };
    let mut conn = connect_with(
        &broker,
        &client_id("no-ids"),
        mqtt(Sampler::AlwaysOn),
        |_| {},
    )
    .await;
    conn.client = conn.client.clone().subscription_identifiers(false);
    let base = unique("sensors");
    conn.subscribe(&format!("{base}/#"), QoS::AtMostOnce).await;
    conn.subscribe(&format!("{base}/+/temp"), QoS::AtMostOnce)
        .await;
    let cap = capture();
    conn.client
        .publish(format!("{base}/k1/temp"), QoS::AtMostOnce, false, "1")
        .await
        .unwrap();
    let (a, b) = (conn.next().await, conn.next().await);
    assert!(
        a.properties
            .as_ref()
            .unwrap()
            .subscription_identifiers
            .is_empty()
    );
    drop((a, b));
    let spans = cap.finish();
    assert_eq!(spans.all(&format!("process {base}/+/temp")).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_subscription_names_its_group() {
    let Some(mut conn) = connect("shared", mqtt(Sampler::AlwaysOn)).await else {
        return;
    };
    let base = unique("jobs");
    conn.subscribe(&format!("$share/workers/{base}/+"), QoS::AtLeastOnce)
        .await;
    let cap = capture();
    conn.client
        .publish(format!("{base}/eu"), QoS::AtLeastOnce, false, "1")
        .await
        .unwrap();
    drop(conn.next().await);
    let spans = cap.finish();
    let keys = [
        "messaging.destination.name",
        "messaging.destination.template",
        "messaging.consumer.group.name",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {base}/eu [producer] messaging.destination.name={base}/eu
  process {base}/+ [consumer] messaging.destination.name={base}/eu \
messaging.destination.template={base}/+ messaging.consumer.group.name=workers
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_message_keeps_the_context_it_was_published_with() {
    let Some(broker) = broker("retained") else {
        return;
    };
    let mut publisher = connect_with(
        &broker,
        &client_id("retain-pub"),
        mqtt(Sampler::AlwaysOn),
        |_| {},
    )
    .await;
    let topic = unique("config/site");
    let cap = capture();
    publisher
        .client
        .publish(topic.as_str(), QoS::AtLeastOnce, true, "v1")
        .await
        .unwrap();
    // Published (the broker's PUBACK) and gone before anyone subscribes.
    tokio::time::timeout(Duration::from_secs(10), publisher.pubacks.recv())
        .await
        .expect("a PUBACK within 10 s")
        .unwrap();
    let sent = cap.take();
    let mut subscriber = connect_with(
        &broker,
        &client_id("retain-sub"),
        mqtt(Sampler::AlwaysOn),
        |_| {},
    )
    .await;
    subscriber.subscribe(&topic, QoS::AtLeastOnce).await;
    let m = subscriber.next().await;
    assert!(m.retain, "delivered from the broker's store");
    assert_eq!(&m.payload[..], b"v1");
    drop(m);
    // Gone before the retained message is cleared (its delete would be a delivery too, and a
    // span after this test's capture).
    subscriber.close().await;
    // Clear the retained message (untraced).
    publisher
        .client
        .inner()
        .publish(topic.as_str(), QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    let processed = cap.finish();
    let send = sent.expect(&format!("publish {topic}"));
    let process = processed.expect(&format!("process {topic}"));
    assert_eq!(property(send, "messaging.mqtt.retain"), Some("true"));
    assert_eq!(property(process, "messaging.mqtt.retain"), Some("true"));
    assert_eq!(
        (process.trace_id, process.parent_id),
        (send.trace_id, send.span_id),
        "the process span continues the publisher's trace"
    );
    assert_eq!(process.links[0].span_id, send.span_id);
    assert!(process.begin_time_unix_ns > send.begin_time_unix_ns + send.duration_ns);
}

/// Handles three messages of a chain on one client: FIRST → SECOND → THIRD, each handler
/// publishing the next from inside its process span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_first_second_third_is_one_trace_hop_by_hop() {
    let Some(mut conn) = connect("chain", mqtt(Sampler::AlwaysOn)).await else {
        return;
    };
    let [first, second, third] = ["first", "second", "third"].map(unique);
    for t in [&first, &second, &third] {
        conn.subscribe(t, QoS::AtLeastOnce).await;
    }
    #[fastrace::trace(name = "enrich")]
    async fn enrich(client: &Client, to: String, payload: bytes::Bytes) {
        client
            .publish(to, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    let cap = capture();
    conn.client
        .publish(first.as_str(), QoS::AtLeastOnce, false, "order-1")
        .await
        .unwrap();
    for _ in 0..3 {
        let m = conn.next().await;
        assert_eq!(&m.payload[..], b"order-1");
        let to = if m.topic() == first {
            Some(second.clone())
        } else if m.topic() == second {
            Some(third.clone())
        } else {
            None
        };
        if let Some(to) = to {
            m.instrument(enrich(&conn.client, to, m.payload.clone()))
                .await;
        }
    }
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 1);
    assert_eq!(
        spans.tree(&[]),
        format!(
            "publish {first} [producer]
  process {first} [consumer]
    enrich [internal]
      publish {second} [producer]
        process {second} [consumer]
          enrich [internal]
            publish {third} [producer]
              process {third} [consumer]
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_acks_are_the_settlement() {
    let Some(broker) = broker("manual_acks") else {
        return;
    };
    let mut conn = connect_with(
        &broker,
        &client_id("acks"),
        mqtt(Sampler::AlwaysOn).settle_spans(true),
        |o| {
            o.set_manual_acks(true);
        },
    )
    .await;
    let topic = unique("jobs");
    conn.subscribe(&topic, QoS::ExactlyOnce).await;
    let cap = capture();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        conn.client
            .publish(topic.as_str(), qos, false, "job")
            .await
            .unwrap();
        let mut m = conn.next().await;
        let result: Result<(), std::io::Error> = m.instrument(async { Ok(()) }).await;
        m.record_result(&result);
        m.ack().await.unwrap();
        // A second ack does nothing.
        m.ack().await.unwrap();
    }
    // Acked: nothing is delivered again.
    assert!(conn.nothing_more().await);
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.mqtt.qos", "messaging.settlement"]),
        format!(
            "publish {topic} [producer] messaging.mqtt.qos=0
  process {topic} [consumer] messaging.mqtt.qos=0
publish {topic} [producer] messaging.mqtt.qos=1
  process {topic} [consumer] messaging.mqtt.qos=1 messaging.settlement=ack
    ack {topic} [client]
publish {topic} [producer] messaging.mqtt.qos=2
  process {topic} [consumer] messaging.mqtt.qos=2 messaging.settlement=ack
    ack {topic} [client]
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacked_message_comes_again_after_a_reconnect_linking_one_creation_context() {
    let Some(broker) = broker("redelivery") else {
        return;
    };
    let id = client_id("redelivery");
    let persistent = |o: &mut MqttOptions| {
        o.set_manual_acks(true)
            .set_clean_start(false)
            .set_session_expiry_interval(Some(60));
    };
    let topic = unique("jobs");
    let mut consumer = connect_with(&broker, &id, mqtt(Sampler::AlwaysOn), persistent).await;
    consumer.subscribe(&topic, QoS::AtLeastOnce).await;
    let cap = capture();
    consumer
        .client
        .publish(topic.as_str(), QoS::AtLeastOnce, false, "job")
        .await
        .unwrap();
    let mut first = consumer.next().await;
    let result: Result<(), std::io::Error> = first
        .instrument(async { Err(std::io::Error::other("db down")) })
        .await;
    first.record_result(&result);
    assert!(!first.dup);
    // Not acked: the connection drops (no DISCONNECT), the session stays on the broker.
    drop(first);
    drop(consumer);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut consumer = connect_with(&broker, &id, mqtt(Sampler::AlwaysOn), persistent).await;
    let mut again = consumer.next().await;
    assert!(again.dup, "sent again with the DUP flag");
    assert_eq!(&again.payload[..], b"job");
    again.ack().await.unwrap();
    drop(again);
    // Clean up the session.
    drop(consumer);
    let mut cleaner = connect_with(&broker, &id, mqtt(Sampler::AlwaysOff), |o| {
        o.set_clean_start(true);
    })
    .await;
    assert!(cleaner.nothing_more().await, "acked: not sent a third time");
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&[
            "messaging.mqtt.duplicate",
            "messaging.settlement",
            "error.type"
        ]),
        format!(
            "publish {topic} [producer]
  process {topic} [consumer] error.type=std::io::error::Error
  process {topic} [consumer] messaging.mqtt.duplicate=true messaging.settlement=ack
"
        )
    );
    let sent = spans.expect(&format!("publish {topic}")).span_id;
    for attempt in spans.all(&format!("process {topic}")) {
        assert_eq!(attempt.links.len(), 1);
        assert_eq!(attempt.links[0].span_id, sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_only_starts_a_trace_per_delivery() {
    let messaging = mqtt(Sampler::AlwaysOn).relation(Relation::LinksOnly);
    let Some(mut conn) = connect("links_only", messaging).await else {
        return;
    };
    let topic = unique("orders");
    conn.subscribe(&topic, QoS::AtMostOnce).await;
    let cap = capture();
    conn.client
        .publish(topic.as_str(), QoS::AtMostOnce, false, "1")
        .await
        .unwrap();
    drop(conn.next().await);
    let spans = cap.finish();
    spans.assert_linked_root(&format!("publish {topic}"), &format!("process {topic}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_records_nothing_and_propagates_the_decision() {
    let Some(mut conn) = connect("unsampled", mqtt(Sampler::AlwaysOff)).await else {
        return;
    };
    let [first, second] = ["first", "second"].map(unique);
    conn.subscribe(&first, QoS::AtLeastOnce).await;
    conn.subscribe(&second, QoS::AtLeastOnce).await;
    let cap = capture();
    conn.client
        .publish(first.as_str(), QoS::AtLeastOnce, false, "1")
        .await
        .unwrap();
    let m = conn.next().await;
    let tp1 = m.user_properties()[0].1.clone();
    m.instrument(
        conn.client
            .publish(second.as_str(), QoS::AtLeastOnce, false, "2"),
    )
    .await
    .unwrap();
    drop(m);
    let m2 = conn.next().await;
    let tp2 = m2.user_properties()[0].1.clone();
    drop(m2);
    assert_unsampled_trace(&[&tp1, &tp2]);
    assert_ne!(tp1, tp2, "hop by hop");
    assert!(cap.finish().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_trace_properties_cost_no_message() {
    let Some(broker) = broker("garbage") else {
        return;
    };
    let mut conn = connect_with(
        &broker,
        &client_id("garbage"),
        mqtt(Sampler::AlwaysOn),
        |o| {
            o.set_max_packet_size(Some(1 << 20));
        },
    )
    .await;
    let topic = unique("orders");
    conn.subscribe(&topic, QoS::AtLeastOnce).await;
    let cap = capture();
    // Near the longest MQTT string (65 535 bytes).
    let huge = "x".repeat(60 * 1024);
    let user_properties: Vec<(String, String)> = [
        ("traceparent", "00-zzzzzzzz-yyyy-01"),
        ("TraceParent", huge.as_str()),
        ("tracestate", huge.as_str()),
        ("baggage", "=;,,%%,k=v=w"),
        ("Uber-Trace-Id", "::::"),
        ("b3", "\u{1F600}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // Sent untraced, as a foreign producer would.
    conn.client
        .inner()
        .publish_with_properties(
            topic.as_str(),
            QoS::AtLeastOnce,
            false,
            "payload",
            PublishProperties {
                user_properties: user_properties.clone(),
                ..PublishProperties::default()
            },
        )
        .await
        .unwrap();
    let m = conn.next().await;
    assert_eq!(&m.payload[..], b"payload");
    assert_eq!(m.user_properties(), &user_properties[..]);
    assert!(m.context().is_valid());
    drop(m);
    let spans = cap.finish();
    assert_eq!(spans.tree(&[]), format!("process {topic} [consumer]\n"));
    assert_eq!(spans.records[0].parent_id, SpanId(0));
    assert!(spans.records[0].links.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_crosses_a_hop_unchanged() {
    let Some(mut conn) = connect("baggage", mqtt(Sampler::AlwaysOn)).await else {
        return;
    };
    let [first, second] = ["first", "second"].map(unique);
    conn.subscribe(&first, QoS::AtMostOnce).await;
    conn.subscribe(&second, QoS::AtMostOnce).await;
    let cap = capture();
    let mut origin = TraceContext::new(TraceId(0x77), SpanId(0x88), true);
    origin.baggage = tracewire_core::Baggage::parse_lines(["tenant=acme,user=al%20ice"]);
    {
        let _in = origin.attach();
        conn.client
            .publish(first.as_str(), QoS::AtMostOnce, false, "1")
            .await
            .unwrap();
    }
    let m = conn.next().await;
    assert_eq!(m.context().baggage.get("user"), Some("al ice"));
    m.instrument(
        conn.client
            .publish(second.as_str(), QoS::AtMostOnce, false, "2"),
    )
    .await
    .unwrap();
    drop(m);
    let m2 = conn.next().await;
    let mut names: Vec<&str> = m2
        .user_properties()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["baggage", "traceparent"]);
    assert_eq!(
        m2.user_properties()
            .iter()
            .find(|(k, _)| k == "baggage")
            .unwrap()
            .1,
        "tenant=acme,user=al%20ice"
    );
    drop(m2);
    drop(cap.finish());
}

/// MQTT 3.1.1 has no properties: nothing propagates either way, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_1_peers_carry_no_context_and_lose_nothing() {
    let Some(broker) = broker("mqtt_3_1_1") else {
        return;
    };
    let mut v5 = connect_with(&broker, &client_id("v5"), mqtt(Sampler::AlwaysOn), |_| {}).await;
    let topic = unique("legacy");
    v5.subscribe(&topic, QoS::AtLeastOnce).await;
    // A 3.1.1 client (rumqttc's own, untraced: nothing to trace it with).
    let mut options = rumqttc::MqttOptions::new(client_id("v311"), broker.0.as_str(), broker.1);
    options.set_keep_alive(Duration::from_secs(30));
    let (v311, mut v311_loop) = rumqttc::AsyncClient::new(options, 16);
    let (tx, mut from_v5) = mpsc::unbounded_channel();
    let (sub_tx, mut v311_subacks) = mpsc::unbounded_channel();
    let v311_task = tokio::spawn(async move {
        loop {
            match v311_loop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => drop(tx.send(p)),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = sub_tx.send(());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let back = format!("{topic}/back");
    v311.subscribe(back.as_str(), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), v311_subacks.recv())
        .await
        .unwrap()
        .unwrap();
    let cap = capture();
    // 3.1.1 → 5: the traced consumer starts a new trace.
    v311.publish(
        topic.as_str(),
        rumqttc::QoS::AtLeastOnce,
        false,
        "from 3.1.1",
    )
    .await
    .unwrap();
    let m = v5.next().await;
    assert_eq!(&m.payload[..], b"from 3.1.1");
    assert!(m.user_properties().is_empty());
    drop(m);
    // 5 → 3.1.1: the broker drops the properties; the payload arrives as it was.
    v5.client
        .publish(back.as_str(), QoS::AtLeastOnce, false, "from 5")
        .await
        .unwrap();
    let p = tokio::time::timeout(Duration::from_secs(10), from_v5.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&p.payload[..], b"from 5");
    v311_task.abort();
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 2, "{}", spans.tree(&[]));
    let process = spans.expect(&format!("process {topic}"));
    assert_eq!(process.parent_id, SpanId(0));
    assert!(process.links.is_empty());
    spans.expect(&format!("publish {back}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_many_and_unsubscribe_keep_the_names_right() {
    let Some(mut conn) = connect("subscribe_many", mqtt(Sampler::AlwaysOn)).await else {
        return;
    };
    let base = unique("m");
    conn.client
        .subscribe_many([
            Filter::new(format!("{base}/+/a"), QoS::AtMostOnce),
            Filter::new(format!("{base}/x/+"), QoS::AtMostOnce),
        ])
        .await
        .unwrap();
    conn.suback().await;
    let cap = capture();
    conn.client
        .publish(format!("{base}/x/a"), QoS::AtMostOnce, false, "1")
        .await
        .unwrap();
    // Two filters of one SUBSCRIBE match: Mosquitto sends two copies with one identifier;
    // both are named by the more specific filter (`x/+` over `+/a`).
    drop((conn.next().await, conn.next().await));
    conn.client
        .unsubscribe(format!("{base}/x/+"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.client
        .publish(format!("{base}/x/a"), QoS::AtMostOnce, false, "2")
        .await
        .unwrap();
    drop(conn.next().await);
    assert!(conn.nothing_more().await);
    let spans = cap.finish();
    let names: Vec<&str> = {
        let mut v: Vec<&SpanRecord> = spans
            .records
            .iter()
            .filter(|r| r.name.starts_with("process"))
            .collect();
        v.sort_by_key(|r| r.begin_time_unix_ns);
        v.into_iter().map(|r| r.name.as_ref()).collect()
    };
    let (xp, pa) = (format!("process {base}/x/+"), format!("process {base}/+/a"));
    assert_eq!(names, [xp.as_str(), xp.as_str(), pa.as_str()]);
}
