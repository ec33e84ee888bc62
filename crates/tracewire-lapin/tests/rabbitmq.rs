//! tracewire-lapin over a real RabbitMQ (`scripts/services.sh start rabbitmq`, which
//! `scripts/test.sh` runs): span trees for publishes through the default exchange and named
//! exchanges, consumers and `basic_get`, publisher confirms, ack / nack / reject, redelivery
//! (classic and quorum queues), hop-by-hop chains, trace headers of every AMQP type, garbage,
//! unsampled, server-named queues, and a broker restart mid-stream.
//!
//! Without a broker: a loud, recorded skip (a failure under `CI=true`).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, ByteArray, FieldTable, LongString};
use lapin::{BasicProperties, ConnectionProperties, ExchangeKind};
use tokio_stream::StreamExt as _;
use tracewire_core::{Sampler, SpanId, Tracer};
use tracewire_lapin::{Channel, Connection, Consumer, Delivery};
use tracewire_messaging::Messaging;
use tracewire_test::skip::{self, Broker};
use tracewire_test::{assert_unsampled_trace, capture, property};

use common::{BrokerLock, unique};

fn rabbit(url: &str, sampler: Sampler) -> Messaging {
    tracewire_lapin::messaging(url).tracer(Tracer::new().with_sampler(sampler))
}

/// A traced connection (and the broker lock), or `None` after a recorded skip.
async fn connect(
    test: &str,
    sampler: Sampler,
    edit: impl FnOnce(Messaging) -> Messaging,
) -> Option<(BrokerLock, Connection)> {
    let url = skip::broker(test, Broker::RabbitMq)?;
    let lock = tokio::task::block_in_place(common::shared);
    let inner = lapin::Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    Some((
        lock,
        Connection::with_messaging(inner, edit(rabbit(&url, sampler))),
    ))
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Classic,
    Quorum,
}

/// A durable queue that the broker removes two minutes after its last use (a failed test
/// leaves nothing behind for long).
async fn declare(channel: &Channel, name: &str, kind: Kind) {
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(120_000));
    if kind == Kind::Quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .unwrap();
}

async fn consume(channel: &Channel, queue: &str) -> Consumer {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap()
}

async fn publish(channel: &Channel, exchange: &str, key: &str, body: &[u8], p: BasicProperties) {
    channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            p,
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(15), consumer.next())
        .await
        .expect("a delivery within 15 s")
        .expect("the consumer goes on")
        .expect("a delivery, not an error")
}

fn header<'a>(d: &'a Delivery, key: &str) -> Option<&'a AMQPValue> {
    d.properties.headers().as_ref()?.inner().get(key)
}

fn text_header(d: &Delivery, key: &str) -> Option<String> {
    header(d, key).and_then(|v| tracewire_lapin::carrier::text(v).map(str::to_owned))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_through_the_default_exchange_and_consume_with_the_message_intact() {
    let Some((_lock, conn)) = connect("default_exchange", Sampler::AlwaysOn, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let q = unique("orders");
    declare(&ch, &q, Kind::Classic).await;
    let cap = capture();
    let mut headers = FieldTable::default();
    headers.insert("x-app".into(), AMQPValue::LongString("kept".into()));
    headers.insert("x-n".into(), AMQPValue::LongLongInt(7));
    let props = BasicProperties::default()
        .with_headers(headers)
        .with_message_id("m-1".into())
        .with_correlation_id("corr-1".into())
        .with_timestamp(now_secs())
        .with_delivery_mode(2);
    publish(&ch, "", &q, b"hello", props).await;
    // Without headers of its own, the message still carries the context.
    publish(&ch, "", &q, b"bare", BasicProperties::default()).await;
    let mut consumer = consume(&ch, &q).await;
    let mut first = next(&mut consumer).await;
    assert_eq!(first.data, b"hello");
    assert_eq!(text_header(&first, "x-app").as_deref(), Some("kept"));
    assert_eq!(header(&first, "x-n"), Some(&AMQPValue::LongLongInt(7)));
    assert!(text_header(&first, "traceparent").is_some());
    first.ack(BasicAckOptions::default()).await.unwrap();
    let mut second = next(&mut consumer).await;
    assert_eq!(second.data, b"bare");
    assert!(text_header(&second, "traceparent").is_some());
    second.ack(BasicAckOptions::default()).await.unwrap();
    drop((first, second));
    let spans = cap.finish();
    let keys = [
        "messaging.system",
        "messaging.operation.type",
        "messaging.destination.name",
        "messaging.rabbitmq.destination.routing_key",
        "messaging.rabbitmq.message.delivery_tag",
        "messaging.message.id",
        "messaging.message.conversation_id",
        "messaging.message.body.size",
        "messaging.message.delivery_count",
        "messaging.settlement",
        "server.address",
        "server.port",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {q} [producer] messaging.system=rabbitmq messaging.operation.type=send \
messaging.destination.name={q} messaging.rabbitmq.destination.routing_key={q} \
messaging.message.id=m-1 messaging.message.conversation_id=corr-1 messaging.message.body.size=5 \
server.address=127.0.0.1 server.port=5672
  process {q} [consumer] messaging.system=rabbitmq messaging.operation.type=process \
messaging.destination.name={q} messaging.rabbitmq.destination.routing_key={q} \
messaging.rabbitmq.message.delivery_tag=1 messaging.message.id=m-1 \
messaging.message.conversation_id=corr-1 messaging.message.body.size=5 \
messaging.message.delivery_count=1 messaging.settlement=ack server.address=127.0.0.1 \
server.port=5672
publish {q} [producer] messaging.system=rabbitmq messaging.operation.type=send \
messaging.destination.name={q} messaging.rabbitmq.destination.routing_key={q} \
messaging.message.body.size=4 server.address=127.0.0.1 server.port=5672
  process {q} [consumer] messaging.system=rabbitmq messaging.operation.type=process \
messaging.destination.name={q} messaging.rabbitmq.destination.routing_key={q} \
messaging.rabbitmq.message.delivery_tag=2 messaging.message.body.size=4 \
messaging.message.delivery_count=1 messaging.settlement=ack server.address=127.0.0.1 \
server.port=5672
"
        )
    );
    // Queue time from the `timestamp` property (whole seconds): only where it was set.
    let processed = spans.all(&format!("process {q}"));
    let queued: u64 = property(processed[0], "messaging.message.queue_time_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(queued < 60_000, "{queued}");
    assert_eq!(
        property(processed[1], "messaging.message.queue_time_ms"),
        None
    );
    for p in processed {
        assert_eq!(p.links.len(), 1, "links its creation context");
        assert_eq!(p.links[0].span_id, p.parent_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_through_exchanges_are_named_exchange_colon_routing_key() {
    let Some((_lock, conn)) = connect("exchanges", Sampler::AlwaysOn, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let ex = unique("logs");
    let q = unique("info-log");
    ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(&ch, &q, Kind::Classic).await;
    ch.queue_bind(
        q.as_str().into(),
        ex.as_str().into(),
        "info".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let cap = capture();
    publish(&ch, &ex, "info", b"line", BasicProperties::default()).await;
    // Unroutable, but named all the same: the exchange alone, the default exchange alone.
    publish(&ch, &ex, "", b"x", BasicProperties::default()).await;
    publish(&ch, "", "", b"x", BasicProperties::default()).await;
    let mut consumer = consume(&ch, &q).await;
    let mut d = next(&mut consumer).await;
    assert_eq!(d.exchange.as_str(), ex);
    d.ack(BasicAckOptions::default()).await.unwrap();
    drop(d);
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&[
            "messaging.destination.name",
            "messaging.rabbitmq.destination.routing_key"
        ]),
        format!(
            "publish {ex}:info [producer] messaging.destination.name={ex}:info \
messaging.rabbitmq.destination.routing_key=info
  process {q} [consumer] messaging.destination.name={q} \
messaging.rabbitmq.destination.routing_key=info
publish {ex} [producer] messaging.destination.name={ex}
publish amq.default [producer] messaging.destination.name=amq.default
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_publisher_confirms_the_send_span_ends_at_the_confirm() {
    let Some((_lock, conn)) = connect("confirms", Sampler::AlwaysOn, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("confirmed");
    declare(&ch, &q, Kind::Classic).await;
    let cap = capture();
    let confirm = ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap();
    assert!(confirm.context().is_some());
    assert!(cap.take().is_empty(), "the span lasts until the confirm");
    assert!(confirm.await.unwrap().is_ack());
    let spans = cap.take();
    assert_eq!(spans.tree(&[]), format!("publish {q} [producer]\n"));

    // A mandatory message no queue takes comes back before the ack: recorded as an error.
    let nowhere = unique("nowhere");
    let confirmation = ch
        .basic_publish(
            "".into(),
            nowhere.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirmation.take_message().is_some());
    // An exchange that does not exist: the broker closes the channel.
    let missing = unique("missing");
    let result = async {
        ch.basic_publish(
            missing.as_str().into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await?
        .await
    }
    .await;
    assert!(result.is_err(), "{result:?}");
    let spans = cap.finish();
    let tree = spans.tree(&["error.type"]);
    assert!(
        tree.starts_with(&format!(
            "publish {nowhere} [producer] error.type=NO_ROUTE\npublish {missing}:k [producer] error.type="
        )),
        "{tree}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_processes_each_message_and_records_its_settlement() {
    let Some((_lock, conn)) = connect("basic_get", Sampler::AlwaysOn, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let q = unique("jobs");
    declare(&ch, &q, Kind::Classic).await;
    let cap = capture();
    publish(&ch, "", &q, b"1", BasicProperties::default()).await;
    publish(&ch, "", &q, b"2", BasicProperties::default()).await;
    let get = || ch.basic_get(q.as_str().into(), BasicGetOptions::default());
    let mut one = get().await.unwrap().unwrap();
    assert_eq!(
        (one.data.as_slice(), one.message_count()),
        (&b"1"[..], Some(1))
    );
    one.ack(BasicAckOptions::default()).await.unwrap();
    let mut two = get().await.unwrap().unwrap();
    assert_eq!(two.message_count(), Some(0));
    two.reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    drop((one, two));
    assert!(get().await.unwrap().is_none(), "empty: nothing, no span");
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.settlement", "messaging.rabbitmq.requeue"]),
        format!(
            "publish {q} [producer]
  process {q} [consumer] messaging.settlement=ack
publish {q} [producer]
  process {q} [consumer] messaging.settlement=reject messaging.rabbitmq.requeue=false
"
        )
    );
}

/// One message published to `q`, nacked with requeue, redelivered and settled by `last`.
async fn redeliver(ch: &Channel, q: &str, last: &str) {
    publish(ch, "", q, b"job", BasicProperties::default()).await;
    let mut consumer = consume(ch, q).await;
    let mut first = next(&mut consumer).await;
    assert!(!first.redelivered);
    let result: Result<(), std::io::Error> = first
        .instrument(async { Err(std::io::Error::other("db down")) })
        .await;
    first.record_result(&result);
    first
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
        .unwrap();
    drop(first);
    let mut again = next(&mut consumer).await;
    assert!(again.redelivered);
    assert_eq!(again.data, b"job");
    match last {
        "ack" => again.ack(BasicAckOptions::default()).await.unwrap(),
        _ => again
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap(),
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_redelivers_and_quorum_queues_count_the_attempts() {
    let Some((_lock, conn)) =
        connect("redelivery", Sampler::AlwaysOn, |m| m.settle_spans(true)).await
    else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let qq = unique("quorum");
    let cq = unique("classic");
    declare(&ch, &qq, Kind::Quorum).await;
    declare(&ch, &cq, Kind::Classic).await;
    let cap = capture();
    redeliver(&ch, &qq, "ack").await;
    redeliver(&ch, &cq, "reject").await;
    let spans = cap.finish();
    let keys = [
        "messaging.message.delivery_count",
        "messaging.rabbitmq.message.redelivered",
        "messaging.settlement",
        "messaging.rabbitmq.requeue",
        "error.type",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {qq} [producer]
  process {qq} [consumer] messaging.message.delivery_count=1 messaging.settlement=nack \
messaging.rabbitmq.requeue=true error.type=std::io::error::Error
    nack {qq} [client]
  process {qq} [consumer] messaging.message.delivery_count=2 \
messaging.rabbitmq.message.redelivered=true messaging.settlement=ack
    ack {qq} [client]
publish {cq} [producer]
  process {cq} [consumer] messaging.message.delivery_count=1 messaging.settlement=nack \
messaging.rabbitmq.requeue=true error.type=std::io::error::Error
    nack {cq} [client]
  process {cq} [consumer] messaging.rabbitmq.message.redelivered=true \
messaging.settlement=reject messaging.rabbitmq.requeue=false
    reject {cq} [client]
"
        )
    );
    // Every attempt links the one creation context.
    for q in [&qq, &cq] {
        let sent = spans.expect(&format!("publish {q}")).span_id;
        for attempt in spans.all(&format!("process {q}")) {
            assert_eq!(attempt.links.len(), 1);
            assert_eq!((attempt.links[0].span_id, attempt.parent_id), (sent, sent));
        }
    }
}

/// A handler task: processes one message of `queue` and publishes it on to `to`.
fn forward(
    ch: Channel,
    mut consumer: Consumer,
    to: Option<String>,
    done: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut d = next(&mut consumer).await;
        if let Some(to) = to {
            #[fastrace::trace(name = "enrich")]
            async fn enrich(ch: &Channel, to: String, body: Vec<u8>) {
                publish(ch, "", &to, &body, BasicProperties::default()).await;
            }
            d.instrument(enrich(&ch, to, d.data.clone())).await;
        }
        d.ack(BasicAckOptions::default()).await.unwrap();
        let body = d.data.clone();
        drop(d);
        done.send(body).await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_first_second_third_is_one_trace_hop_by_hop() {
    let Some((_lock, conn)) = connect("chain", Sampler::AlwaysOn, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let [first, second, third] = ["first", "second", "third"].map(unique);
    for q in [&first, &second, &third] {
        declare(&ch, q, Kind::Classic).await;
    }
    let cap = capture();
    let (done, mut finished) = tokio::sync::mpsc::channel(3);
    let tasks = [
        forward(
            ch.clone(),
            consume(&ch, &first).await,
            Some(second.clone()),
            done.clone(),
        ),
        forward(
            ch.clone(),
            consume(&ch, &second).await,
            Some(third.clone()),
            done.clone(),
        ),
        forward(ch.clone(), consume(&ch, &third).await, None, done),
    ];
    publish(&ch, "", &first, b"order-1", BasicProperties::default()).await;
    for _ in 0..3 {
        let body = tokio::time::timeout(Duration::from_secs(15), finished.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body, b"order-1");
    }
    for t in tasks {
        t.await.unwrap();
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
async fn unsampled_records_nothing_and_propagates_the_decision() {
    let Some((_lock, conn)) = connect("unsampled", Sampler::AlwaysOff, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let [first, second] = ["first", "second"].map(unique);
    declare(&ch, &first, Kind::Classic).await;
    declare(&ch, &second, Kind::Classic).await;
    let cap = capture();
    publish(&ch, "", &first, b"1", BasicProperties::default()).await;
    let mut c1 = consume(&ch, &first).await;
    let mut c2 = consume(&ch, &second).await;
    let mut m = next(&mut c1).await;
    assert!(!m.span().is_recording());
    let tp1 = text_header(&m, "traceparent").unwrap();
    m.instrument(publish(&ch, "", &second, b"2", BasicProperties::default()))
        .await;
    m.ack(BasicAckOptions::default()).await.unwrap();
    drop(m);
    let m2 = next(&mut c2).await;
    let tp2 = text_header(&m2, "traceparent").unwrap();
    drop(m2);
    assert_unsampled_trace(&[&tp1, &tp2]);
    assert_ne!(tp1, tp2, "hop by hop");
    assert!(cap.finish().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_headers_are_read_whatever_their_amqp_type() {
    let Some((_lock, conn)) = connect("header_types", Sampler::AlwaysOn, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let q = unique("typed");
    declare(&ch, &q, Kind::Classic).await;
    let cap = capture();
    // What pika and aio-pika send for `bytes` (`x`), and a long string under another case.
    let values = [
        (
            "traceparent",
            AMQPValue::ByteArray(ByteArray::from(
                b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec(),
            )),
        ),
        (
            "Traceparent",
            AMQPValue::LongString(LongString::from(
                "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-01",
            )),
        ),
    ];
    for (key, value) in values.clone() {
        let mut h = FieldTable::default();
        h.insert(key.into(), value);
        ch.inner()
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default().with_headers(h),
            )
            .await
            .unwrap();
    }
    let mut consumer = consume(&ch, &q).await;
    for (key, value) in &values {
        let d = next(&mut consumer).await;
        assert_eq!(header(&d, key), Some(value), "as it was sent");
        drop(d);
    }
    let spans = cap.finish();
    let parents: Vec<(String, u64)> = spans
        .all(&format!("process {q}"))
        .iter()
        .map(|r| (format!("{:032x}", r.trace_id.0), r.parent_id.0))
        .collect();
    assert_eq!(
        parents,
        [
            (
                "0af7651916cd43dd8448eb211c80319c".to_owned(),
                0xb7ad6b7169203331
            ),
            (
                "0af7651916cd43dd8448eb211c80319d".to_owned(),
                0xb7ad6b7169203332
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_trace_headers_cost_no_message() {
    let Some((_lock, conn)) = connect("garbage_headers", Sampler::AlwaysOn, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let q = unique("garbage");
    declare(&ch, &q, Kind::Classic).await;
    let cap = capture();
    let huge = "x".repeat(64 * 1024);
    let mut nested = FieldTable::default();
    nested.insert(
        "traceparent".into(),
        AMQPValue::LongString("00-1-2-01".into()),
    );
    let mut h = FieldTable::default();
    h.insert(
        "traceparent".into(),
        AMQPValue::LongString("00-zzzzzzzz-yyyy-01".into()),
    );
    h.insert(
        "tracestate".into(),
        AMQPValue::LongString(huge.as_str().into()),
    );
    h.insert(
        "baggage".into(),
        AMQPValue::LongString("=;,,%%,k=v=w".into()),
    );
    h.insert("Uber-Trace-Id".into(), AMQPValue::LongString("::::".into()));
    h.insert(
        "b3".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0xff, 0x00, 0xc3])),
    );
    h.insert("x-b3-traceid".into(), AMQPValue::LongLongInt(42));
    h.insert("x-nested".into(), AMQPValue::FieldTable(nested));
    // Sent untraced, as a foreign producer would.
    ch.inner()
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"payload",
            BasicProperties::default().with_headers(h.clone()),
        )
        .await
        .unwrap();
    let mut consumer = consume(&ch, &q).await;
    let mut d = next(&mut consumer).await;
    assert_eq!(d.data, b"payload");
    assert_eq!(
        d.properties.headers().as_ref(),
        Some(&h),
        "every header as sent"
    );
    assert!(d.context().is_valid());
    d.ack(BasicAckOptions::default()).await.unwrap();
    drop(d);
    let spans = cap.finish();
    assert_eq!(spans.tree(&[]), format!("process {q} [consumer]\n"));
    assert_eq!(spans.records[0].parent_id, SpanId(0));
    assert!(spans.records[0].links.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_named_queues_are_temporary_and_anonymous_and_name_no_span() {
    let Some((_lock, conn)) = connect("server_named", Sampler::AlwaysOn, |m| m).await else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let reply = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let name = reply.name().to_string();
    assert!(name.starts_with("amq.gen-"), "{name}");
    let cap = capture();
    publish(&ch, "", &name, b"reply", BasicProperties::default()).await;
    let mut consumer = consume(&ch, &name).await;
    let d = next(&mut consumer).await;
    drop(d);
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&[
            "messaging.destination.temporary",
            "messaging.destination.anonymous"
        ]),
        "publish [producer] messaging.destination.temporary=true messaging.destination.anonymous=true
  process [consumer] messaging.destination.temporary=true messaging.destination.anonymous=true
"
    );
    for r in &spans.records {
        assert_eq!(
            property(r, "messaging.destination.name"),
            Some(name.as_str())
        );
    }
}

/// Starts the broker again if a failed restart test left it stopped.
struct Restart(PathBuf);

impl Restart {
    async fn run(&self, cmd: &str) -> String {
        let out = tokio::process::Command::new("bash")
            .arg(&self.0)
            .arg(cmd)
            .arg("rabbitmq")
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "services.sh {cmd} rabbitmq: {text}");
        text
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.0)
            .arg("start")
            .arg("rabbitmq")
            .status();
    }
}

/// A connection that lapin recovers: reconnects (quickly, for the test) and replays queues,
/// consumers, QoS and publisher confirms.
async fn recovering(url: &str, messaging: Messaging) -> Connection {
    let props = ConnectionProperties::default()
        .enable_auto_recover()
        .configure_backoff(|b| {
            b.with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(1))
                .with_max_times(120)
        });
    let inner = lapin::Connection::connect(url, props).await.unwrap();
    Connection::with_messaging(inner, messaging)
}

/// Publishes through a restart: when the connection is down, the failed attempt is recorded
/// on its span and the message published again once lapin has recovered.
async fn publish_retrying(ch: &Channel, q: &str, id: &str) -> usize {
    let mut failures = 0;
    loop {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(id.into());
        let attempt = async {
            ch.basic_publish(
                "".into(),
                q.into(),
                BasicPublishOptions::default(),
                id.as_bytes(),
                props,
            )
            .await?
            .await
        }
        .await;
        match attempt {
            Ok(c) if c.is_ack() => return failures,
            Ok(c) => panic!("{id}: {c:?}"),
            Err(e) => {
                failures += 1;
                assert!(failures < 20, "{id}: {e}");
                if ch.wait_for_recovery(e).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_no_header_and_traces_continue() {
    const TEST: &str = "broker_restart";
    let Some(url) = skip::broker(TEST, Broker::RabbitMq) else {
        return;
    };
    // No other test uses the broker meanwhile.
    let _lock = tokio::task::block_in_place(common::exclusive);
    let services =
        Restart(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh"));
    let messaging = rabbit(&url, Sampler::AlwaysOn).settle_spans(true);
    let publisher = recovering(&url, messaging.clone()).await;
    let consumer = recovering(&url, messaging).await;
    let pch = publisher.create_channel().await.unwrap();
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let cch = consumer.create_channel().await.unwrap();
    cch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let q = unique("restart");
    declare(&pch, &q, Kind::Quorum).await;
    let cap = capture();

    // Before: m-1 handled, m-2 in the handler when the broker goes, m-3 waiting in the queue.
    for id in ["m-1", "m-2", "m-3"] {
        assert_eq!(publish_retrying(&pch, &q, id).await, 0);
    }
    let mut stream = consume(&cch, &q).await;
    let mut seen: Vec<(String, bool, Option<String>)> = Vec::new();
    let mut d = next(&mut stream).await;
    seen.push((
        d.message_id(),
        d.redelivered,
        text_header(&d, "traceparent"),
    ));
    assert!(d.ack(BasicAckOptions::default()).await.unwrap());
    drop(d);
    let mut in_flight = next(&mut stream).await;
    seen.push((
        in_flight.message_id(),
        in_flight.redelivered,
        text_header(&in_flight, "traceparent"),
    ));

    let stopped = services.run("stop").await;
    if !stopped.contains("(pid") {
        skip::skip(
            TEST,
            &format!(
                "the broker was not started by scripts/services.sh, not restarting it: {stopped}"
            ),
        );
        return;
    }
    // Its channel is gone: the ack cannot reach the broker (recorded), and RabbitMQ delivers
    // the message again.
    let acked = in_flight.ack(BasicAckOptions::default()).await;
    assert!(!matches!(acked, Ok(true)), "{acked:?}");
    drop(in_flight);
    // A publish while the broker is down fails (recorded) and is retried after the recovery.
    let retry = {
        let pch = pch.clone();
        let q = q.clone();
        tokio::spawn(async move { publish_retrying(&pch, &q, "m-4").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    services.run("start").await;
    let failed_attempts = tokio::time::timeout(Duration::from_secs(60), retry)
        .await
        .expect("m-4 published within 60 s of the restart")
        .unwrap();
    assert!(
        failed_attempts >= 1,
        "m-4 was first tried while the broker was down"
    );

    // After: the stream goes on (a connection error may come through first).
    let mut errors = 0;
    while seen.len() < 5 {
        let item = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("deliveries within 60 s of the restart")
            .expect("the consumer goes on");
        match item {
            Ok(mut d) => {
                seen.push((
                    d.message_id(),
                    d.redelivered,
                    text_header(&d, "traceparent"),
                ));
                assert!(d.ack(BasicAckOptions::default()).await.unwrap());
            }
            Err(e) => {
                errors += 1;
                assert!(errors < 5, "{e}");
            }
        }
    }
    assert_eq!(publish_retrying(&pch, &q, "m-5").await, 0);
    let mut d = next(&mut stream).await;
    seen.push((
        d.message_id(),
        d.redelivered,
        text_header(&d, "traceparent"),
    ));
    d.ack(BasicAckOptions::default()).await.unwrap();
    drop(d);
    drop(stream);

    let ids: Vec<(&str, bool)> = seen.iter().map(|(id, r, _)| (id.as_str(), *r)).collect();
    assert_eq!(
        ids,
        [
            ("m-1", false),
            ("m-2", false),
            ("m-2", true),
            ("m-3", false),
            ("m-4", false),
            ("m-5", false),
        ]
    );
    let spans = cap.finish();
    let tree = spans.tree(&["messaging.message.id", "error.type"]);
    // No message lost its headers: each was processed in the trace of its (successful)
    // publish, as that publish's child.
    let mut sent: HashMap<String, (u128, u64)> = HashMap::new();
    for r in spans.all(&format!("publish {q}")) {
        if property(r, "error.type").is_none() {
            let id = property(r, "messaging.message.id").unwrap().to_owned();
            assert!(
                sent.insert(id, (r.trace_id.0, r.span_id.0)).is_none(),
                "{tree}"
            );
        }
    }
    for (id, _, traceparent) in &seen {
        let (trace, span) = sent[id];
        let traceparent = traceparent.as_deref().unwrap_or_default();
        assert!(
            traceparent.starts_with(&format!("00-{trace:032x}-{span:016x}-")),
            "{id}: {traceparent}\n{tree}"
        );
    }
    let processed = spans.all(&format!("process {q}"));
    assert_eq!(processed.len(), 6, "{tree}");
    for p in &processed {
        let id = property(p, "messaging.message.id").unwrap();
        assert_eq!((p.trace_id.0, p.parent_id.0), sent[id], "{id}\n{tree}");
    }
    // The interrupted attempt and the redelivery, as recorded.
    let m2: Vec<_> = processed
        .iter()
        .filter(|p| property(p, "messaging.message.id") == Some("m-2"))
        .collect();
    assert_eq!(
        property(m2[0], "messaging.message.delivery_count"),
        Some("1")
    );
    assert_eq!(
        property(m2[1], "messaging.rabbitmq.message.redelivered"),
        Some("true")
    );
    let failed_publishes = spans
        .all(&format!("publish {q}"))
        .iter()
        .filter(|r| property(r, "error.type").is_some())
        .count();
    assert_eq!(failed_publishes, failed_attempts, "{tree}");
    let failed_acks = spans
        .records
        .iter()
        .filter(|r| r.name == format!("ack {q}") && property(r, "error.type").is_some())
        .count();
    assert_eq!(failed_acks, 1, "{tree}");
    eprintln!("broker restart: {errors} consumer error(s) passed through\n{tree}");
}

trait MessageId {
    fn message_id(&self) -> String;
}

impl MessageId for Delivery {
    fn message_id(&self) -> String {
        self.properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}
