//! tracewire-redis over a real Redis server (`scripts/services.sh start redis`, which
//! `scripts/test.sh` runs): span trees for pub/sub, pattern subscriptions, lists (single,
//! batch, reliable move), streams with a consumer group (ack, batch reads, redelivery after a
//! consumer dies), a chain published from handlers, unsampled, garbage envelopes, raw payloads.
//!
//! Without a server: a loud, recorded skip (a failure under `CI=true`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use redis::AsyncCommands as _;
use tokio_stream::StreamExt as _;
use tracewire_core::{Sampler, SpanId, Tracer};
use tracewire_messaging::Messaging;
use tracewire_redis::envelope::{self, Format};
use tracewire_redis::{Client, Outgoing};
use tracewire_test::skip::{self, Broker};
use tracewire_test::{assert_unsampled_trace, capture, property};

/// A key no other test or run uses.
fn unique(name: &str) -> String {
    tracewire_test::unique('.', name)
}

fn redis_messaging(sampler: Sampler) -> Messaging {
    // Settle spans on: the trees below show every XACK/LREM as its own span.
    Messaging::new("redis")
        .settle_spans(true)
        .tracer(Tracer::new().with_sampler(sampler))
}

/// A traced client, or `None` after a recorded skip.
async fn connect(test: &str, messaging: Messaging) -> Option<Client> {
    let url = skip::broker(test, Broker::Redis)?;
    let client = redis::Client::open(url).unwrap();
    Some(
        Client::with_messaging(client, messaging.server("127.0.0.1", Some(6379)))
            .await
            .unwrap(),
    )
}

async fn next<S: tokio_stream::Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("a message within 10 s")
        .expect("the stream goes on")
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_publish_and_process_with_the_body_intact() {
    let Some(client) = connect("pubsub", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let channel = unique("orders");
    let cap = capture();
    let mut sub = client.subscribe(&channel).await.unwrap();
    let receivers = client
        .publish(
            &channel,
            Outgoing::text("hello")
                .correlation_id("corr-1")
                .header("x-app", "kept"),
        )
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let m = next(&mut sub).await;
    assert_eq!(m.body(), b"hello");
    assert_eq!(m.format(), Format::Binary);
    assert_eq!(m.header("x-app"), Some("kept"));
    assert_eq!(m.content_type(), Some("text/plain"));
    assert_eq!(m.correlation_id(), Some("corr-1"));
    assert!(m.header("traceparent").is_some());
    drop(m);
    let spans = cap.finish();
    let keys = [
        "messaging.system",
        "messaging.operation.type",
        "messaging.destination.name",
        "messaging.message.id",
        "messaging.message.conversation_id",
        "messaging.message.body.size",
        "messaging.redis.envelope",
        "server.address",
        "server.port",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {channel} [producer] messaging.system=redis messaging.operation.type=send \
messaging.destination.name={channel} messaging.message.conversation_id=corr-1 \
messaging.message.body.size=5 server.address=127.0.0.1 server.port=6379
  process {channel} [consumer] messaging.system=redis messaging.operation.type=process \
messaging.destination.name={channel} messaging.message.id=corr-1 \
messaging.message.conversation_id=corr-1 messaging.message.body.size=5 \
messaging.redis.envelope=binary server.address=127.0.0.1 server.port=6379
"
        )
    );
    let process = spans.expect(&format!("process {channel}"));
    assert_eq!(process.links.len(), 1, "links its creation context");
    assert_eq!(process.links[0].span_id, process.parent_id);
    assert_eq!(client.decode_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscriptions_name_spans_by_the_pattern() {
    let Some(client) = connect("psubscribe", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let base = unique("orders");
    let pattern = format!("{base}.*");
    let cap = capture();
    let mut sub = client.psubscribe(&pattern).await.unwrap();
    client
        .publish(&format!("{base}.eu"), Outgoing::new(&b"1"[..]))
        .await
        .unwrap();
    let m = next(&mut sub).await;
    assert_eq!(
        (m.destination(), m.pattern()),
        (format!("{base}.eu").as_str(), Some(pattern.as_str()))
    );
    drop(m);
    let spans = cap.finish();
    let keys = [
        "messaging.destination.name",
        "messaging.destination.template",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {base}.eu [producer] messaging.destination.name={base}.eu
  process {pattern} [consumer] messaging.destination.name={base}.eu \
messaging.destination.template={pattern}
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pops_single_batch_and_reliable_move() {
    let Some(client) = connect("lists", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let list = unique("jobs");
    let processing = format!("{list}.processing");
    let mut jobs = client.list(&list).await.unwrap();
    let cap = capture();

    // One at a time (FIFO: RPUSH, BLPOP).
    client.rpush(&list, Outgoing::text("one")).await.unwrap();
    let m = jobs.pop(WAIT).await.unwrap().unwrap();
    assert_eq!(m.body(), b"one");
    drop(m);
    // Nothing there: `None` once the timeout runs out, and no span.
    assert!(
        jobs.pop(Duration::from_millis(100))
            .await
            .unwrap()
            .is_none()
    );

    // The reliable queue: BLMOVE into a processing list, LREM as the ack.
    client.rpush(&list, Outgoing::text("two")).await.unwrap();
    let mut moved = jobs.pop_into(&processing, WAIT).await.unwrap().unwrap();
    assert_eq!(moved.body(), b"two");
    let mut conn = client.connection();
    assert_eq!(conn.llen::<_, usize>(&processing).await.unwrap(), 1);
    moved.ack().await.unwrap();
    assert_eq!(conn.llen::<_, usize>(&processing).await.unwrap(), 0);
    drop(moved);
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.settlement"]),
        format!(
            "publish {list} [producer]
  process {list} [consumer]
publish {list} [producer]
  process {list} [consumer] messaging.settlement=ack
    ack {list} [client]
"
        )
    );

    // A batch: three pushes, one pop of three → one process span with a link to each.
    let cap = capture();
    for i in 0..3 {
        client
            .rpush(&list, Outgoing::text("x").correlation_id(format!("c-{i}")))
            .await
            .unwrap();
    }
    let batch = jobs.pop_batch(10, WAIT).await.unwrap().unwrap();
    assert_eq!(
        batch
            .deliveries()
            .iter()
            .map(|d| d.correlation_id().unwrap())
            .collect::<Vec<_>>(),
        ["c-0", "c-1", "c-2"]
    );
    drop(batch);
    let spans = cap.finish();
    let process = spans.expect(&format!("process {list}"));
    assert_eq!(
        property(process, "messaging.batch.message_count"),
        Some("3")
    );
    assert_eq!(
        process.parent_id,
        SpanId(0),
        "no parent: a batch only links"
    );
    let sent: Vec<SpanId> = spans
        .all(&format!("publish {list}"))
        .iter()
        .map(|r| r.span_id)
        .collect();
    assert_eq!(
        process.links.iter().map(|l| l.span_id).collect::<Vec<_>>(),
        sent
    );
    for (i, link) in process.links.iter().enumerate() {
        let key = tracewire_core::reserved::link_attribute_key(
            link.span_id,
            "messaging.message.conversation_id",
        );
        assert_eq!(property(process, &key), Some(format!("c-{i}").as_str()));
    }

    // A batch publish: a create span per message, one send span linking them.
    let cap = capture();
    client
        .rpush_batch(&list, [Outgoing::text("a"), Outgoing::text("b")])
        .await
        .unwrap();
    let batch = jobs.pop_batch(2, WAIT).await.unwrap().unwrap();
    assert_eq!(batch.deliveries().len(), 2);
    drop(batch);
    let spans = cap.finish();
    let creates: Vec<SpanId> = spans
        .all(&format!("create {list}"))
        .iter()
        .map(|r| r.span_id)
        .collect();
    assert_eq!(creates.len(), 2);
    let send = spans.expect(&format!("publish {list}"));
    assert_eq!(
        send.links.iter().map(|l| l.span_id).collect::<Vec<_>>(),
        creates
    );
    let process = spans.expect(&format!("process {list}"));
    assert_eq!(
        process.links.iter().map(|l| l.span_id).collect::<Vec<_>>(),
        creates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_consumer_group_ack_and_batch_reads() {
    let Some(client) = connect("streams", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let stream = unique("events");
    let mut workers = client
        .stream_group(&stream, "billing", "billing-1")
        .await
        .unwrap();
    workers.create_group("0").await.unwrap();
    // Twice is fine.
    workers.create_group("0").await.unwrap();
    let cap = capture();
    let id = client
        .xadd(&stream, [("kind", "created"), ("order", "42")])
        .await
        .unwrap();
    let mut read = workers.read(10, WAIT).await.unwrap();
    assert_eq!(read.len(), 1);
    let mut m = read.pop().unwrap();
    assert_eq!(m.id(), id);
    assert_eq!(m.field("order"), Some(&b"42"[..]));
    assert!(
        m.field("traceparent").is_some(),
        "the context is a field of its own"
    );
    assert_eq!(m.delivery_count(), 1);
    m.ack().await.unwrap();
    drop(m);
    let spans = cap.finish();
    let keys = [
        "messaging.message.id",
        "messaging.message.delivery_count",
        "messaging.consumer.group.name",
        "messaging.client.id",
        "messaging.message.body.size",
        "messaging.redis.envelope",
        "messaging.settlement",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {stream} [producer] messaging.message.id={id} messaging.message.body.size=18
  process {stream} [consumer] messaging.message.id={id} messaging.message.delivery_count=1 \
messaging.consumer.group.name=billing messaging.client.id=billing-1 \
messaging.message.body.size=18 messaging.redis.envelope=fields messaging.settlement=ack
    ack {stream} [client] messaging.client.id=billing-1
"
        )
    );
    let process = spans.expect(&format!("process {stream}"));
    let queued: u64 = property(process, "messaging.message.queue_time_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(queued < 60_000, "{queued}");
    let mut pending = client.connection();
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("billing")
        .query_async(&mut pending)
        .await
        .unwrap();
    let count = match summary {
        redis::Value::Array(v) => v.into_iter().next(),
        _ => None,
    };
    assert_eq!(count, Some(redis::Value::Int(0)), "acknowledged");

    // COUNT n: one process span, a link per entry with its id and delivery count.
    let cap = capture();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(client.xadd(&stream, [("n", i.to_string())]).await.unwrap());
    }
    let mut batch = workers.read_batch(10, WAIT).await.unwrap().unwrap();
    assert_eq!(
        batch
            .entries()
            .iter()
            .map(|e| e.id().to_owned())
            .collect::<Vec<_>>(),
        ids
    );
    batch.ack_all().await.unwrap();
    drop(batch);
    let spans = cap.finish();
    let process = spans.expect(&format!("process {stream}"));
    assert_eq!(
        property(process, "messaging.batch.message_count"),
        Some("3")
    );
    let sent: Vec<SpanId> = spans
        .all(&format!("publish {stream}"))
        .iter()
        .map(|r| r.span_id)
        .collect();
    assert_eq!(
        process.links.iter().map(|l| l.span_id).collect::<Vec<_>>(),
        sent
    );
    for (link, id) in process.links.iter().zip(&ids) {
        let key = |k| tracewire_core::reserved::link_attribute_key(link.span_id, k);
        assert_eq!(
            property(process, &key("messaging.message.id")),
            Some(id.as_str())
        );
        assert_eq!(
            property(process, &key("messaging.message.delivery_count")),
            Some("1")
        );
    }
    assert_eq!(
        spans.all(&format!("ack {stream}")).len(),
        1,
        "one XACK, one settle span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_entry_is_redelivered_with_its_count_and_the_same_origin() {
    let Some(client) = connect("stream_redelivery", redis_messaging(Sampler::AlwaysOn)).await
    else {
        return;
    };
    let stream = unique("jobs");
    let cap = capture();
    let id = {
        let mut doomed = client
            .stream_group(&stream, "workers", "w-1")
            .await
            .unwrap();
        doomed.create_group("0").await.unwrap();
        let id = client.xadd(&stream, [("job", "resize")]).await.unwrap();
        let mut read = doomed.read(1, WAIT).await.unwrap();
        let mut m = read.pop().unwrap();
        let result: Result<(), std::io::Error> = m
            .instrument(async { Err(std::io::Error::other("worker crashed")) })
            .await;
        m.record_result(&result);
        // w-1 dies: no ack; its connection and message go away.
        id
    };
    tokio::time::sleep(Duration::from_millis(120)).await;
    let mut survivor = client
        .stream_group(&stream, "workers", "w-2")
        .await
        .unwrap();
    let mut claimed = survivor
        .claim(Duration::from_millis(100), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let mut m = claimed.pop().unwrap();
    assert_eq!((m.id(), m.delivery_count()), (id.as_str(), 2));
    m.ack().await.unwrap();
    drop(m);
    // Nothing left to claim.
    assert!(
        survivor
            .claim(Duration::from_millis(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let spans = cap.finish();
    let keys = [
        "messaging.message.delivery_count",
        "messaging.client.id",
        "messaging.settlement",
        "error.type",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {stream} [producer]
  process {stream} [consumer] messaging.message.delivery_count=1 messaging.client.id=w-1 \
error.type=std::io::error::Error
  process {stream} [consumer] messaging.message.delivery_count=2 messaging.client.id=w-2 \
messaging.settlement=ack
    ack {stream} [client] messaging.client.id=w-2
"
        )
    );
    let created = spans.expect(&format!("publish {stream}")).span_id;
    for attempt in spans.all(&format!("process {stream}")) {
        assert_eq!(attempt.links.len(), 1);
        assert_eq!(attempt.links[0].span_id, created, "one creation context");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_reads_its_own_pending_entries() {
    let Some(client) = connect("stream_pending", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let stream = unique("jobs");
    let cap = capture();
    let mut c = client
        .stream_group(&stream, "g", "same-name")
        .await
        .unwrap();
    c.create_group("0").await.unwrap();
    client.xadd(&stream, [("a", "1")]).await.unwrap();
    drop(c.read(1, WAIT).await.unwrap());
    drop(c);
    let mut again = client
        .stream_group(&stream, "g", "same-name")
        .await
        .unwrap();
    let mut pending = again.read_pending(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    // Reading the history delivers the entry again: the second delivery.
    assert_eq!(pending[0].delivery_count(), 2);
    pending[0].ack().await.unwrap();
    drop(pending);
    assert!(again.read_pending(10).await.unwrap().is_empty());
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.message.delivery_count"]),
        format!(
            "publish {stream} [producer]
  process {stream} [consumer] messaging.message.delivery_count=1
  process {stream} [consumer] messaging.message.delivery_count=2
    ack {stream} [client]
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faststream_style_stream_entries_carry_the_envelope() {
    let Some(client) = connect("stream_envelope", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let stream = unique("events");
    let mut c = client.stream_group(&stream, "g", "c").await.unwrap();
    c.create_group("0").await.unwrap();
    let cap = capture();
    client
        .xadd_envelope(
            &stream,
            Outgoing::json(&br#"{"id": 1}"#[..]).correlation_id("c-9"),
        )
        .await
        .unwrap();
    let m = c.read(1, WAIT).await.unwrap().pop().unwrap();
    assert_eq!(m.fields().len(), 1);
    assert_eq!(m.fields()[0].0, "__data__");
    assert_eq!(m.body(), Some(&br#"{"id": 1}"#[..]));
    assert_eq!(
        m.headers().unwrap().get_exact("content-type"),
        Some("application/json")
    );
    drop(m);
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&[
            "messaging.message.conversation_id",
            "messaging.redis.envelope"
        ]),
        format!(
            "publish {stream} [producer] messaging.message.conversation_id=c-9
  process {stream} [consumer] messaging.message.conversation_id=c-9 messaging.redis.envelope=binary
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_published_from_handlers_is_one_trace_hop_by_hop() {
    let Some(client) = connect("chain", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let [first, second, third] = ["first", "second", "third"].map(unique);
    let cap = capture();
    let mut on_first = client.subscribe(&first).await.unwrap();
    let mut on_second = client.list(&second).await.unwrap();
    let mut on_third = client.stream_group(&third, "g", "c").await.unwrap();
    on_third.create_group("0").await.unwrap();

    #[fastrace::trace(name = "enrich")]
    async fn enrich(client: &Client, to: &str, body: Vec<u8>) {
        client.rpush(to, Outgoing::new(body)).await.unwrap();
    }
    client
        .publish(&first, Outgoing::text("order-1"))
        .await
        .unwrap();
    let m = next(&mut on_first).await;
    m.instrument(enrich(&client, &second, m.body().to_vec()))
        .await;
    drop(m);
    let m = on_second.pop(WAIT).await.unwrap().unwrap();
    m.instrument(async {
        client
            .xadd(&third, [("body", m.body().to_vec())])
            .await
            .unwrap();
    })
    .await;
    drop(m);
    let m = on_third.read(1, WAIT).await.unwrap().pop().unwrap();
    assert_eq!(m.field("body"), Some(&b"order-1"[..]));
    drop(m);
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 1, "{}", spans.tree(&[]));
    assert_eq!(
        spans.tree(&[]),
        format!(
            "publish {first} [producer]
  process {first} [consumer]
    enrich [internal]
      publish {second} [producer]
        process {second} [consumer]
          publish {third} [producer]
            process {third} [consumer]
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_records_nothing_and_propagates_the_decision() {
    let Some(client) = connect("unsampled", redis_messaging(Sampler::AlwaysOff)).await else {
        return;
    };
    let [first, second] = ["first", "second"].map(unique);
    let mut l1 = client.list(&first).await.unwrap();
    let mut l2 = client.list(&second).await.unwrap();
    let cap = capture();
    client.rpush(&first, Outgoing::text("1")).await.unwrap();
    let m = l1.pop(WAIT).await.unwrap().unwrap();
    let tp1 = m.header("traceparent").unwrap().to_owned();
    assert!(!m.span().is_recording());
    m.instrument(client.rpush(&second, Outgoing::text("2")))
        .await
        .unwrap();
    drop(m);
    let m2 = l2.pop(WAIT).await.unwrap().unwrap();
    let tp2 = m2.header("traceparent").unwrap().to_owned();
    drop(m2);
    assert_unsampled_trace(&[&tp1, &tp2]);
    assert!(cap.finish().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_envelopes_cost_no_message_and_are_counted() {
    let Some(client) = connect("garbage", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let list = unique("jobs");
    let mut good = Vec::new();
    envelope::encode(
        [
            ("correlation_id", "c"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
        b"body",
        &mut good,
    )
    .unwrap();
    let mut garbage: Vec<Vec<u8>> = Vec::new();
    let mut mangled = b"\x89BIN\n\x1a\n".to_vec(); // CRLF → LF
    mangled.extend_from_slice(&good[8..]);
    garbage.push(mangled);
    garbage.push(good[..30].to_vec()); // truncated
    let mut past = good.clone(); // a length past the end
    past[20..22].copy_from_slice(&u16::MAX.to_be_bytes());
    garbage.push(past);
    let mut many = good.clone(); // 65 535 headers in 100 bytes
    many[18..20].copy_from_slice(&u16::MAX.to_be_bytes());
    garbage.push(many);
    let mut utf8 = good.clone(); // invalid UTF-8 in a header
    utf8[22] = 0xff;
    garbage.push(utf8);
    let mut conn = client.connection();
    for g in &garbage {
        // Pushed untraced, as a broken or foreign producer would.
        let _: usize = conn.rpush(&list, g).await.unwrap();
    }
    let before = client.decode_failures();
    let mut jobs = client.list(&list).await.unwrap();
    let cap = capture();
    for g in &garbage {
        let m = jobs.pop(WAIT).await.unwrap().unwrap();
        assert_eq!(m.body(), g.as_slice(), "the payload as it arrived");
        assert!(m.decode_error().is_some());
        assert!(m.headers().is_empty());
    }
    assert_eq!(client.decode_failures() - before, garbage.len() as u64);
    let spans = cap.finish();
    assert_eq!(spans.len(), garbage.len());
    assert_eq!(spans.trace_ids().len(), garbage.len(), "a new trace each");
    for r in &spans.records {
        assert_eq!(r.parent_id, SpanId(0));
        assert!(r.links.is_empty());
        assert_eq!(property(r, "messaging.redis.envelope"), Some("invalid"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_payloads_pass_through_byte_for_byte() {
    let Some(client) = connect("raw", redis_messaging(Sampler::AlwaysOn)).await else {
        return;
    };
    let list = unique("jobs");
    let mut jobs = client.list(&list).await.unwrap();
    // A foreign producer's bare payloads, JSON that is not an envelope among them.
    let foreign: [&[u8]; 3] = [b"hello", br#"{"data": "x", "id": 7}"#, b"\x00\xff\x89"];
    let mut conn = client.connection();
    for p in foreign {
        let _: usize = conn.rpush(&list, p).await.unwrap();
    }
    let cap = capture();
    for p in foreign {
        let m = jobs.pop(WAIT).await.unwrap().unwrap();
        assert_eq!((m.body(), m.format()), (p, Format::Raw));
    }
    assert_eq!(client.decode_failures(), 0, "a raw payload is no failure");
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 3);

    // Our producer without the envelope: the payload is the body, nothing propagated.
    let bare = client.clone().raw_payloads(true);
    let cap = capture();
    bare.rpush(&list, Outgoing::text("bare body"))
        .await
        .unwrap();
    let wire: Vec<u8> = conn.lindex(&list, 0).await.unwrap();
    assert_eq!(wire, b"bare body");
    let m = jobs.pop(WAIT).await.unwrap().unwrap();
    assert_eq!((m.body(), m.format()), (&b"bare body"[..], Format::Raw));
    drop(m);
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.redis.envelope"]),
        format!(
            "publish {list} [producer]
process {list} [consumer] messaging.redis.envelope=raw
"
        ),
        "two traces: nothing propagated"
    );

    // A payload fetched another way (LPOP), opened and traced as the consumers do.
    let cap = capture();
    client
        .rpush(&list, Outgoing::text("fetched"))
        .await
        .unwrap();
    let payload: Vec<u8> = conn.lpop(&list, None).await.unwrap();
    let m = client.process(&list, payload);
    assert_eq!((m.body(), m.format()), (&b"fetched"[..], Format::Binary));
    drop(m);
    assert_eq!(
        cap.finish().tree(&[]),
        format!("publish {list} [producer]\n  process {list} [consumer]\n")
    );
}
