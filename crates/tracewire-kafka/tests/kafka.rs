//! tracewire-kafka over a real Apache Kafka broker (`scripts/services.sh start kafka`, which
//! `scripts/test.sh` runs: Kafka 4.4, one KRaft node on 127.0.0.1:9092): span trees for single
//! and batch sends, the stream, batch and poll consumers, commits, delivery errors, relations,
//! a chain of handlers, unsampled and garbage input.
//!
//! Without a broker: a loud, recorded skip (a failure under `CI=true`).
// rdkafka's delivery results are large (the message comes back in the error).
#![allow(clippy::unwrap_used, missing_docs, clippy::result_large_err)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio_stream::StreamExt as _;
use tracewire_core::{Sampler, SpanId, TraceContext, TraceId, Tracer};
use tracewire_kafka::{BaseConsumer, FutureProducer, StreamConsumer};
use tracewire_messaging::Relation;
use tracewire_test::skip::{self, Broker};
use tracewire_test::{assert_unsampled_trace, capture, property};

const PATIENCE: Duration = Duration::from_secs(30);

/// A topic name no other test or run uses (the broker keeps its topics).
fn unique(name: &str) -> String {
    tracewire_test::unique('.', name)
}

fn tracer(sampler: Sampler) -> Tracer {
    Tracer::new().with_sampler(sampler)
}

/// The broker's bootstrap servers, or `None` after a recorded skip.
fn broker(test: &str) -> Option<String> {
    skip::broker(test, Broker::Kafka)
}

/// Creates `topics` with `partitions` partitions each.
async fn create_topics(url: &str, topics: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", url)
        .create()
        .unwrap();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new().operation_timeout(Some(PATIENCE)))
        .await
        .unwrap()
    {
        result.unwrap();
    }
}

fn producer(url: &str, sampler: Sampler) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", url)
        .set("client.id", "tw-producer")
        .set("message.timeout.ms", "20000")
        .set("linger.ms", "0");
    let messaging = tracewire_kafka::messaging(&config).tracer(tracer(sampler));
    FutureProducer::with_messaging(config.create().unwrap(), messaging)
}

fn consumer_config(url: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", url)
        .set("client.id", "tw-consumer")
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000");
    config
}

fn stream_consumer(url: &str, group: &str, topics: &[&str], sampler: Sampler) -> StreamConsumer {
    stream_consumer_with(url, group, topics, sampler, Relation::ChildAndLink)
}

fn stream_consumer_with(
    url: &str,
    group: &str,
    topics: &[&str],
    sampler: Sampler,
    relation: Relation,
) -> StreamConsumer {
    let config = consumer_config(url, group);
    let messaging = tracewire_kafka::messaging(&config)
        .tracer(tracer(sampler))
        .relation(relation);
    let consumer =
        StreamConsumer::with_messaging(config.create().unwrap(), messaging, Some(group.to_owned()));
    consumer.subscribe(topics).unwrap();
    consumer
}

async fn recv(consumer: &StreamConsumer) -> tracewire_kafka::Message<'_> {
    tokio::time::timeout(PATIENCE, consumer.recv())
        .await
        .expect("a record within 30 s")
        .unwrap()
}

fn header<'a>(m: &'a rdkafka::message::BorrowedMessage<'_>, key: &str) -> Option<&'a str> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_process_with_the_record_intact() {
    let Some(url) = broker("send_and_process") else {
        return;
    };
    let topic = unique("orders");
    create_topics(&url, &[&topic], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let consumer = stream_consumer(&url, "billing", &[&topic], Sampler::AlwaysOn);
    let cap = capture();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "x-app",
            value: Some("kept"),
        })
        .insert(Header {
            key: "correlation_id",
            value: Some("corr-1"),
        });
    let delivery = producer
        .send(
            FutureRecord::to(&topic)
                .key("k-1")
                .payload("hello")
                .headers(headers),
            PATIENCE,
        )
        .await
        .unwrap();
    assert_eq!((delivery.partition, delivery.offset), (0, 0));
    // A tombstone, sent to an explicit partition, without headers of its own.
    producer
        .send(
            FutureRecord::<str, str>::to(&topic).key("k-1").partition(0),
            PATIENCE,
        )
        .await
        .unwrap();

    let mut first = recv(&consumer).await;
    assert_eq!(first.payload(), Some(&b"hello"[..]));
    assert_eq!(header(&first, "x-app"), Some("kept"));
    assert!(header(&first, "traceparent").is_some());
    first.commit(CommitMode::Sync).unwrap();
    drop(first);
    let mut second = recv(&consumer).await;
    assert_eq!(second.payload(), None);
    assert!(header(&second, "traceparent").is_some());
    second.commit(CommitMode::Sync).unwrap();
    drop(second);

    let spans = cap.finish();
    let keys = [
        "messaging.system",
        "messaging.operation.type",
        "messaging.operation.name",
        "messaging.destination.name",
        "messaging.destination.partition.id",
        "messaging.kafka.offset",
        "messaging.kafka.message.key",
        "messaging.kafka.message.tombstone",
        "messaging.message.conversation_id",
        "messaging.message.body.size",
        "messaging.consumer.group.name",
        "messaging.client.id",
        "messaging.settlement",
        "server.address",
        "server.port",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "send {topic} [producer] messaging.system=kafka messaging.operation.type=send \
messaging.operation.name=send messaging.destination.name={topic} \
messaging.destination.partition.id=0 messaging.kafka.offset=0 messaging.kafka.message.key=k-1 \
messaging.message.conversation_id=corr-1 messaging.message.body.size=5 \
messaging.client.id=tw-producer server.address=127.0.0.1 server.port=9092
  process {topic} [consumer] messaging.system=kafka messaging.operation.type=process \
messaging.operation.name=process messaging.destination.name={topic} \
messaging.destination.partition.id=0 messaging.kafka.offset=0 messaging.kafka.message.key=k-1 \
messaging.message.conversation_id=corr-1 messaging.message.body.size=5 \
messaging.consumer.group.name=billing messaging.client.id=tw-consumer \
messaging.settlement=commit server.address=127.0.0.1 server.port=9092
send {topic} [producer] messaging.system=kafka messaging.operation.type=send \
messaging.operation.name=send messaging.destination.name={topic} \
messaging.destination.partition.id=0 messaging.kafka.offset=1 messaging.kafka.message.key=k-1 \
messaging.kafka.message.tombstone=true messaging.client.id=tw-producer \
server.address=127.0.0.1 server.port=9092
  process {topic} [consumer] messaging.system=kafka messaging.operation.type=process \
messaging.operation.name=process messaging.destination.name={topic} \
messaging.destination.partition.id=0 messaging.kafka.offset=1 messaging.kafka.message.key=k-1 \
messaging.kafka.message.tombstone=true messaging.consumer.group.name=billing \
messaging.client.id=tw-consumer messaging.settlement=commit server.address=127.0.0.1 \
server.port=9092
"
        )
    );
    for process in spans.all(&format!("process {topic}")) {
        assert_eq!(process.links.len(), 1);
        assert_eq!(
            process.links[0].span_id, process.parent_id,
            "links its send span"
        );
        let queued: u64 = property(process, "messaging.message.queue_time_ms")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            queued < 30_000,
            "queue time from the record timestamp: {queued}"
        );
    }
    // The send spans last until the delivery report, not only the enqueue.
    for send in spans.all(&format!("send {topic}")) {
        assert!(send.duration_ns > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_a_create_span_per_record_and_one_span_per_side() {
    let Some(url) = broker("batch") else {
        return;
    };
    let topic = unique("batch");
    create_topics(&url, &[&topic], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let consumer = stream_consumer(&url, "batcher", &[&topic], Sampler::AlwaysOn);
    let cap = capture();
    let keys = ["a", "b", "c"];
    let results = producer
        .send_batch(
            keys.iter()
                .map(|k| FutureRecord::to(&topic).key(*k).payload("x")),
            PATIENCE,
        )
        .await;
    assert_eq!(
        results
            .iter()
            .map(|r| r.as_ref().unwrap().offset)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // The records are all in the partition: the first one and the two that follow at once.
    let mut batch = tokio::time::timeout(PATIENCE, consumer.recv_batch(3, Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.messages().len(), 3);
    batch.commit(CommitMode::Sync).unwrap();
    drop(batch);
    let spans = cap.finish();
    let tree = spans.tree(&["messaging.batch.message_count", "messaging.settlement"]);
    assert_eq!(
        tree,
        format!(
            "create {topic} [producer]
create {topic} [producer]
create {topic} [producer]
send {topic} [client] messaging.batch.message_count=3
process {topic} [consumer] messaging.batch.message_count=3 messaging.settlement=commit
"
        ),
    );
    let created: Vec<(TraceId, SpanId)> = spans
        .all(&format!("create {topic}"))
        .iter()
        .map(|r| (r.trace_id, r.span_id))
        .collect();
    for name in [format!("send {topic}"), format!("process {topic}")] {
        let span = spans.expect(&name);
        assert_eq!(
            span.links
                .iter()
                .map(|l| (l.trace_id, l.span_id))
                .collect::<Vec<_>>(),
            created,
            "{name} links every record's creation context"
        );
    }
    let process = spans.expect(&format!("process {topic}"));
    assert_eq!(process.parent_id, SpanId(0), "no synthetic parent");
    assert_eq!(
        property(process, "messaging.consumer.group.name"),
        Some("batcher")
    );
    for (i, link) in process.links.iter().enumerate() {
        let key = |k| tracewire_core::reserved::link_attribute_key(link.span_id, k);
        assert_eq!(
            property(process, &key("messaging.kafka.offset")),
            Some(i.to_string().as_str())
        );
        assert_eq!(
            property(process, &key("messaging.kafka.message.key")),
            Some(keys[i])
        );
        assert_eq!(
            property(process, &key("messaging.destination.partition.id")),
            Some("0")
        );
    }
    // The batch commit moved the group's position past the last record.
    let committed = consumer.committed(PATIENCE).unwrap();
    let offset = committed.find_partition(&topic, 0).unwrap().offset();
    assert_eq!(offset, rdkafka::Offset::Offset(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_consumer_runs_synchronous_handlers_in_the_span() {
    let Some(url) = broker("poll_consumer") else {
        return;
    };
    let [topic, out] = ["polled", "out"].map(unique);
    create_topics(&url, &[&topic, &out], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let config = consumer_config(&url, "pollers");
    let messaging = tracewire_kafka::messaging(&config).tracer(tracer(Sampler::AlwaysOn));
    let consumer: BaseConsumer =
        BaseConsumer::with_messaging(config.create().unwrap(), messaging, Some("pollers".into()));
    consumer.subscribe(&[&topic]).unwrap();
    let cap = capture();
    producer
        .send(FutureRecord::<(), _>::to(&topic).payload("p"), PATIENCE)
        .await
        .unwrap();
    let rt = tokio::runtime::Handle::current();
    let sent = tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            assert!(std::time::Instant::now() < deadline, "no record polled");
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let mut m = m.unwrap();
            #[fastrace::trace(name = "handle")]
            fn handle(
                rt: &tokio::runtime::Handle,
                producer: &FutureProducer,
                out: &str,
            ) -> rdkafka::producer::future_producer::OwnedDeliveryResult {
                rt.block_on(producer.send(FutureRecord::<(), _>::to(out).payload("q"), PATIENCE))
            }
            let result = {
                let _in = m.enter();
                handle(&rt, &producer, &out)
            };
            m.store_offset().unwrap();
            break result;
        }
    });
    sent.unwrap();
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.settlement"]),
        format!(
            "send {topic} [producer]
  process {topic} [consumer] messaging.settlement=store
    handle [internal]
      send {out} [producer]
"
        )
    );
}

/// A handler task: process one record of `from` and send it on to `to`.
fn forward(
    consumer: StreamConsumer,
    producer: FutureProducer,
    to: Option<String>,
    done: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let m = recv(&consumer).await;
        let payload = m.payload().unwrap_or_default().to_vec();
        if let Some(to) = to {
            #[fastrace::trace(name = "enrich")]
            async fn enrich(producer: &FutureProducer, to: &str, payload: &[u8]) {
                producer
                    .send(FutureRecord::<(), _>::to(to).payload(payload), PATIENCE)
                    .await
                    .unwrap();
            }
            m.instrument(enrich(&producer, &to, &payload)).await;
        }
        drop(m);
        done.send(payload).await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_first_second_third_is_one_trace_hop_by_hop() {
    let Some(url) = broker("chain") else {
        return;
    };
    let [first, second, third] = ["first", "second", "third"].map(unique);
    create_topics(&url, &[&first, &second, &third], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let cap = capture();
    let (done, mut finished) = tokio::sync::mpsc::channel(3);
    let hops = [
        (&first, Some(second.clone())),
        (&second, Some(third.clone())),
        (&third, None),
    ];
    let tasks: Vec<_> = hops
        .into_iter()
        .map(|(from, to)| {
            forward(
                stream_consumer(&url, &format!("{from}-g"), &[from], Sampler::AlwaysOn),
                producer.clone(),
                to,
                done.clone(),
            )
        })
        .collect();
    producer
        .send(
            FutureRecord::<(), _>::to(&first).payload("order-1"),
            PATIENCE,
        )
        .await
        .unwrap();
    for _ in 0..3 {
        let got = tokio::time::timeout(PATIENCE, finished.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"order-1");
    }
    for t in tasks {
        t.await.unwrap();
    }
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 1, "{}", spans.tree(&[]));
    assert_eq!(
        spans.tree(&[]),
        format!(
            "send {first} [producer]
  process {first} [consumer]
    enrich [internal]
      send {second} [producer]
        process {second} [consumer]
          enrich [internal]
            send {third} [producer]
              process {third} [consumer]
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_an_error_on_the_send_span() {
    let Some(url) = broker("failed_delivery") else {
        return;
    };
    let topic = unique("one-partition");
    create_topics(&url, &[&topic], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let cap = capture();
    let result = producer
        .send(
            FutureRecord::<(), _>::to(&topic).partition(7).payload("x"),
            PATIENCE,
        )
        .await;
    let (e, _) = result.unwrap_err();
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.destination.partition.id", "error.type"]),
        format!(
            "send {topic} [producer] messaging.destination.partition.id=7 error.type=UnknownPartition\n"
        ),
        "{e}"
    );
    assert_eq!(
        property(&spans.records[0], "otel.status_description"),
        Some(e.to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_only_starts_a_trace_per_delivery() {
    let Some(url) = broker("links_only") else {
        return;
    };
    let topic = unique("orders");
    create_topics(&url, &[&topic], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let consumer = stream_consumer_with(
        &url,
        "linkers",
        &[&topic],
        Sampler::AlwaysOn,
        Relation::LinksOnly,
    );
    let cap = capture();
    producer
        .send(FutureRecord::<(), _>::to(&topic).payload("1"), PATIENCE)
        .await
        .unwrap();
    drop(recv(&consumer).await);
    let spans = cap.finish();
    spans.assert_linked_root(&format!("send {topic}"), &format!("process {topic}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_records_nothing_and_propagates_the_decision() {
    let Some(url) = broker("unsampled") else {
        return;
    };
    let [first, second] = ["first", "second"].map(unique);
    create_topics(&url, &[&first, &second], 1).await;
    let producer = producer(&url, Sampler::AlwaysOff);
    let on_first = stream_consumer(&url, "u1", &[&first], Sampler::AlwaysOff);
    let on_second = stream_consumer(&url, "u2", &[&second], Sampler::AlwaysOff);
    let cap = capture();
    producer
        .send(FutureRecord::<(), _>::to(&first).payload("1"), PATIENCE)
        .await
        .unwrap();
    let m = recv(&on_first).await;
    let tp1 = header(&m, "traceparent").unwrap().to_owned();
    m.instrument(producer.send(FutureRecord::<(), _>::to(&second).payload("2"), PATIENCE))
        .await
        .unwrap();
    drop(m);
    let m2 = recv(&on_second).await;
    let tp2 = header(&m2, "traceparent").unwrap().to_owned();
    drop(m2);
    assert_unsampled_trace(&[&tp1, &tp2]);
    assert!(cap.finish().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_trace_headers_cost_no_record() {
    let Some(url) = broker("garbage_headers") else {
        return;
    };
    let topic = unique("orders");
    create_topics(&url, &[&topic], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let consumer = stream_consumer(&url, "garbage", &[&topic], Sampler::AlwaysOn);
    let cap = capture();
    let huge = "x".repeat(64 * 1024);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "traceparent",
            value: Some("00-zzzzzzzz-yyyy-01"),
        })
        .insert(Header {
            key: "traceparent",
            value: Some(huge.as_str()),
        })
        .insert(Header {
            key: "tracestate",
            value: Some(huge.as_str()),
        })
        .insert(Header {
            key: "baggage",
            value: Some(&[0xff, 0xfe, 0x00][..]),
        })
        .insert(Header::<&str> {
            key: "Uber-Trace-Id",
            value: None,
        })
        .insert(Header {
            key: "b3",
            value: Some("::::"),
        });
    // Sent untraced, as a foreign producer would.
    producer
        .inner()
        .send(
            FutureRecord::<(), _>::to(&topic)
                .payload("payload")
                .headers(headers),
            PATIENCE,
        )
        .await
        .unwrap();
    let m = recv(&consumer).await;
    assert_eq!(m.payload(), Some(&b"payload"[..]));
    assert_eq!(header(&m, "tracestate"), Some(huge.as_str()));
    assert_eq!(m.headers().unwrap().count(), 6);
    assert!(m.context().is_valid());
    drop(m);
    let spans = cap.finish();
    assert_eq!(spans.tree(&[]), format!("process {topic} [consumer]\n"));
    assert_eq!(spans.records[0].parent_id, SpanId(0));
    assert!(spans.records[0].links.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_context_of_the_caller_is_kept_and_linked() {
    let Some(url) = broker("caller_context") else {
        return;
    };
    let topic = unique("orders");
    create_topics(&url, &[&topic], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let consumer = stream_consumer(&url, "keepers", &[&topic], Sampler::AlwaysOn);
    let cap = capture();
    let theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let headers = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some(theirs),
    });
    producer
        .send(
            FutureRecord::<(), _>::to(&topic)
                .payload("1")
                .headers(headers),
            PATIENCE,
        )
        .await
        .unwrap();
    let m = recv(&consumer).await;
    assert_eq!(header(&m, "traceparent"), Some(theirs), "left alone");
    let cx = m.context().clone();
    drop(m);
    let spans = cap.finish();
    let send = spans.expect(&format!("send {topic}"));
    assert_eq!(send.links[0].span_id.0, 0xb7ad6b7169203331);
    let process = spans.expect(&format!("process {topic}"));
    assert_eq!(process.parent_id.0, 0xb7ad6b7169203331);
    assert_eq!(cx.trace_id, TraceId(0x0af7651916cd43dd8448eb211c80319c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_crosses_every_hop_unchanged_and_nothing_else_is_added() {
    let Some(url) = broker("baggage") else {
        return;
    };
    let [first, second] = ["first", "second"].map(unique);
    create_topics(&url, &[&first, &second], 1).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let on_first = stream_consumer(&url, "b1", &[&first], Sampler::AlwaysOn);
    let on_second = stream_consumer(&url, "b2", &[&second], Sampler::AlwaysOn);
    let cap = capture();
    let mut origin = TraceContext::new(TraceId(0x77), SpanId(0x88), true);
    origin.baggage = tracewire_core::Baggage::parse_lines(["tenant=acme,user=al%20ice"]);
    {
        let _in = origin.attach();
        producer
            .send(FutureRecord::<(), _>::to(&first).payload("1"), PATIENCE)
            .await
            .unwrap();
    }
    let m = recv(&on_first).await;
    assert_eq!(m.context().baggage.get("user"), Some("al ice"));
    m.instrument(producer.send(FutureRecord::<(), _>::to(&second).payload("2"), PATIENCE))
        .await
        .unwrap();
    drop(m);
    let m2 = recv(&on_second).await;
    let names: Vec<String> = m2
        .headers()
        .unwrap()
        .iter()
        .map(|h| h.key.to_owned())
        .collect();
    assert_eq!(names, ["traceparent", "baggage"]);
    assert_eq!(header(&m2, "baggage"), Some("tenant=acme,user=al%20ice"));
    drop(m2);
    drop(cap.finish());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_yields_each_record_with_its_span_across_partitions() {
    let Some(url) = broker("stream_partitions") else {
        return;
    };
    let topic = unique("wide");
    create_topics(&url, &[&topic], 3).await;
    let producer = producer(&url, Sampler::AlwaysOn);
    let consumer = stream_consumer(&url, "wide", &[&topic], Sampler::AlwaysOn);
    let cap = capture();
    for p in 0..3 {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).partition(p).payload("x"),
                PATIENCE,
            )
            .await
            .unwrap();
    }
    let mut stream = consumer.stream();
    let mut partitions = Vec::new();
    for _ in 0..3 {
        let mut m = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        partitions.push(m.partition());
        m.commit(CommitMode::Async).unwrap();
    }
    partitions.sort_unstable();
    assert_eq!(partitions, [0, 1, 2]);
    drop(stream);
    let spans = cap.finish();
    // Each process span is the child of the send span of its own record.
    for process in spans.all(&format!("process {topic}")) {
        let p = property(process, "messaging.destination.partition.id").unwrap();
        let send = spans
            .records
            .iter()
            .find(|r| r.span_id == process.parent_id)
            .unwrap();
        assert_eq!(
            property(send, "messaging.destination.partition.id"),
            Some(p)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_name_that_is_not_utf8_costs_no_record() {
    const TEST: &str = "kafka_non_utf8_header_name";
    let Some(url) = broker(TEST) else {
        return;
    };
    let Some(python) = tracewire_test::peer::python(TEST, &["aiokafka"]) else {
        return;
    };
    let topic = unique("foreign");
    create_topics(&url, &[&topic], 1).await;
    let consumer = stream_consumer(&url, "foreign", &[&topic], Sampler::AlwaysOn);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/foreign_producer.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--kafka", &url, "--topic", &topic])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cap = capture();
    let m = recv(&consumer).await;
    assert_eq!(m.payload(), Some(&b"payload"[..]));
    assert_eq!(m.headers().unwrap().count(), 4);
    // The other headers are read past the one rdkafka cannot read.
    let carrier = tracewire_kafka::HeaderExtractor(m.headers().unwrap());
    use tracewire_core::Extractor as _;
    assert_eq!(carrier.get("x-app"), Some("kept"));
    assert_eq!(carrier.keys().count(), 3);
    assert!(m.context().is_valid());
    drop(m);
    let spans = cap.finish();
    assert_eq!(spans.tree(&[]), format!("process {topic} [consumer]\n"));
    assert_eq!(spans.records[0].parent_id, SpanId(0));
}
