//! tracewire-nats over a real NATS server with JetStream (`scripts/services.sh start nats`,
//! which `scripts/test.sh` runs): span trees for core NATS and JetStream, relations, outcomes,
//! redelivery, batches, HTTP from a handler, unsampled and garbage input.
//!
//! Without a server: a loud, recorded skip (a failure under `CI=true`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{AckKind, consumer, stream};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tracewire_core::{Sampler, SpanId, TraceContext, Tracer};
use tracewire_messaging::{Messaging, Relation};
use tracewire_nats::Client;
use tracewire_test::skip::{self, Broker};
use tracewire_test::{assert_unsampled_trace, capture, property};

/// A subject prefix no other test or run uses (the server keeps JetStream state).
fn unique(name: &str) -> String {
    tracewire_test::unique('.', name)
}

fn tracer(sampler: Sampler) -> Tracer {
    Tracer::new().with_sampler(sampler)
}

/// A traced client, or `None` after a recorded skip.
async fn connect(test: &str, messaging: Messaging) -> Option<Client> {
    let url = skip::broker(test, Broker::Nats)?;
    let inner = async_nats::connect(url).await.unwrap();
    Some(Client::with_messaging(
        inner,
        messaging.server("127.0.0.1", Some(4222)),
    ))
}

fn nats(sampler: Sampler) -> Messaging {
    Messaging::new("nats").tracer(tracer(sampler))
}

async fn next<S: tokio_stream::Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("a message within 10 s")
        .expect("the stream goes on")
}

async fn recv<T>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("within 10 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_process_with_the_message_intact() {
    let Some(client) = connect("publish_and_process", nats(Sampler::AlwaysOn)).await else {
        return;
    };
    let subject = unique("orders");
    let cap = capture();
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-app", "kept");
    headers.insert("correlation_id", "corr-1");
    client
        .publish_with_headers(subject.clone(), headers, "hello".into())
        .await
        .unwrap();
    // Without headers of its own, the message still carries the context.
    client
        .publish(subject.clone(), "bare".into())
        .await
        .unwrap();
    let first = next(&mut sub).await;
    assert_eq!(&first.payload[..], b"hello");
    let h = first.headers.as_ref().unwrap();
    assert_eq!(h.get("x-app").unwrap().as_str(), "kept");
    assert!(h.get("traceparent").is_some());
    let second = next(&mut sub).await;
    assert_eq!(&second.payload[..], b"bare");
    assert!(
        second
            .headers
            .as_ref()
            .unwrap()
            .get("traceparent")
            .is_some()
    );
    drop((first, second));
    let spans = cap.finish();
    let keys = [
        "messaging.system",
        "messaging.operation.type",
        "messaging.destination.name",
        "messaging.message.conversation_id",
        "messaging.message.body.size",
        "server.address",
        "server.port",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {subject} [producer] messaging.system=nats messaging.operation.type=send \
messaging.destination.name={subject} messaging.message.conversation_id=corr-1 \
messaging.message.body.size=5 server.address=127.0.0.1 server.port=4222
  process {subject} [consumer] messaging.system=nats messaging.operation.type=process \
messaging.destination.name={subject} messaging.message.conversation_id=corr-1 \
messaging.message.body.size=5 server.address=127.0.0.1 server.port=4222
publish {subject} [producer] messaging.system=nats messaging.operation.type=send \
messaging.destination.name={subject} messaging.message.body.size=4 server.address=127.0.0.1 \
server.port=4222
  process {subject} [consumer] messaging.system=nats messaging.operation.type=process \
messaging.destination.name={subject} messaging.message.body.size=4 server.address=127.0.0.1 \
server.port=4222
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_new_reads_the_server_from_the_connection() {
    let Some(url) = skip::broker("client_new", Broker::Nats) else {
        return;
    };
    let inner = async_nats::connect(url).await.unwrap();
    let client_id = inner.server_info().client_id.to_string();
    let client = Client::new(inner);
    let cap = capture();
    let _root = TraceContext::new(tracewire_core::TraceId(3), SpanId(4), true).attach();
    client.publish(unique("x"), "1".into()).await.unwrap();
    let spans = cap.finish();
    let r = &spans.records[0];
    assert_eq!(property(r, "server.address"), Some("127.0.0.1"));
    assert_eq!(property(r, "server.port"), Some("4222"));
    assert_eq!(property(r, "messaging.client.id"), Some(client_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_is_a_client_span_and_the_inbox_is_temporary() {
    let Some(client) = connect("request_reply", nats(Sampler::AlwaysOn)).await else {
        return;
    };
    let subject = unique("echo");
    let cap = capture();
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    let responder = client.clone();
    let (done, mut finished) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        let m = next(&mut sub).await;
        let reply = m.reply.clone().unwrap();
        m.instrument(responder.publish(reply, m.payload.clone()))
            .await
            .unwrap();
        drop(m);
        done.send(()).await.unwrap();
    });
    let reply = client
        .request(subject.clone(), "ping".into())
        .await
        .unwrap();
    assert_eq!(&reply.payload[..], b"ping");
    recv(&mut finished).await;
    task.await.unwrap();
    // No responders: the request span records the error.
    let err = client.request(unique("nobody"), "x".into()).await;
    assert!(err.is_err());
    let spans = cap.finish();
    let keys = [
        "messaging.operation.name",
        "messaging.destination.temporary",
        "error.type",
    ];
    let tree = spans.tree(&keys);
    assert!(
        tree.starts_with(&format!(
            "request {subject} [client] messaging.operation.name=request
  process {subject} [consumer] messaging.operation.name=process
    publish [producer] messaging.operation.name=publish messaging.destination.temporary=true
"
        )),
        "{tree}"
    );
    assert!(
        tree.ends_with("[client] messaging.operation.name=request error.type=NoResponders\n"),
        "{tree}"
    );
    let inbox = property(spans.expect("publish"), "messaging.destination.name").unwrap();
    assert!(inbox.starts_with("_INBOX."), "{inbox}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_groups_and_wildcards_name_spans_by_the_subscription() {
    let Some(client) = connect("queue_groups", nats(Sampler::AlwaysOn)).await else {
        return;
    };
    let base = unique("orders");
    let filter = format!("{base}.*");
    let cap = capture();
    let mut sub = client
        .queue_subscribe(filter.clone(), "workers".into())
        .await
        .unwrap();
    client
        .publish(format!("{base}.eu"), "1".into())
        .await
        .unwrap();
    drop(next(&mut sub).await);
    let spans = cap.finish();
    let keys = [
        "messaging.destination.name",
        "messaging.destination.template",
        "messaging.consumer.group.name",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {base}.eu [producer] messaging.destination.name={base}.eu
  process {filter} [consumer] messaging.destination.name={base}.eu \
messaging.destination.template={filter} messaging.consumer.group.name=workers
"
        )
    );
}

/// A handler task: process each message of `sub` and publish it on to `to`.
fn forward(
    client: Client,
    mut sub: tracewire_nats::Subscriber,
    to: Option<String>,
    done: mpsc::Sender<Vec<u8>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let m = next(&mut sub).await;
        if let Some(to) = to {
            #[fastrace::trace(name = "enrich")]
            async fn enrich(client: &Client, to: String, payload: bytes::Bytes) {
                client.publish(to, payload).await.unwrap();
            }
            m.instrument(enrich(&client, to, m.payload.clone())).await;
        }
        let payload = m.payload.to_vec();
        drop(m);
        done.send(payload).await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_first_second_third_is_one_trace_hop_by_hop() {
    let Some(client) = connect("chain", nats(Sampler::AlwaysOn)).await else {
        return;
    };
    let [first, second, third] = ["first", "second", "third"].map(unique);
    let cap = capture();
    let (done, mut finished) = mpsc::channel(3);
    let tasks = [
        forward(
            client.clone(),
            client.subscribe(first.clone()).await.unwrap(),
            Some(second.clone()),
            done.clone(),
        ),
        forward(
            client.clone(),
            client.subscribe(second.clone()).await.unwrap(),
            Some(third.clone()),
            done.clone(),
        ),
        forward(
            client.clone(),
            client.subscribe(third.clone()).await.unwrap(),
            None,
            done,
        ),
    ];
    client
        .publish(first.clone(), "order-1".into())
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(recv(&mut finished).await, b"order-1");
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
    for name in [&first, &second, &third] {
        let r = spans.expect(&format!("process {name}"));
        assert_eq!(r.links.len(), 1);
        assert_eq!(
            r.links[0].span_id, r.parent_id,
            "links its creation context"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_call_from_a_handler_continues_the_trace() {
    use axum::{Router, routing::get};
    let Some(client) = connect("http_from_handler", nats(Sampler::AlwaysOn)).await else {
        return;
    };
    let t = tracer(Sampler::AlwaysOn);
    let app = Router::new()
        .route("/stock/{sku}", get(|| async { "7" }))
        .layer(
            tracewire_tower::TraceLayer::with_config(
                tracewire_tower::ServerConfig::new().tracer(t.clone()),
            )
            .for_axum(),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let subject = unique("orders");
    let cap = capture();
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    client
        .publish(subject.clone(), "sku-1".into())
        .await
        .unwrap();
    let m = next(&mut sub).await;
    let http = reqwest::Client::new();
    let tracing =
        tracewire_reqwest::Tracing::with_config(tracewire_reqwest::Config::new().tracer(t));
    let body = m
        .instrument(async {
            let req = http
                .get(format!("http://{addr}/stock/sku-1"))
                .build()
                .unwrap();
            tracing
                .execute(&http, req)
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
        .await;
    assert_eq!(body, "7");
    drop(m);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 1, "{}", spans.tree(&[]));
    assert_eq!(
        spans.tree(&[]),
        format!(
            "publish {subject} [producer]
  process {subject} [consumer]
    GET [client]
      GET /stock/{{sku}} [server]
"
        )
    );
}

async fn stream_for(client: &Client, name: &str, subjects: &str) -> stream::Stream {
    let js = tracewire_nats::jetstream::new(client);
    let _ = js.delete_stream(name).await;
    js.get_or_create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap()
}

fn stream_name(subject: &str) -> String {
    subject.replace('.', "_").to_uppercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_nak_redelivers_and_every_attempt_links_one_creation_context() {
    let Some(client) = connect(
        "jetstream_redelivery",
        nats(Sampler::AlwaysOn).settle_spans(true),
    )
    .await
    else {
        return;
    };
    let base = unique("jobs");
    let subject = format!("{base}.created");
    let name = stream_name(&base);
    let stream = stream_for(&client, &name, &format!("{base}.>")).await;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("workers".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let js = tracewire_nats::jetstream::new(&client);
    let cap = capture();
    let ack = js
        .publish_with_id(subject.clone(), "m-1", HeaderMap::new(), "job".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((ack.stream.as_str(), ack.sequence), (name.as_str(), 1));
    // The same id again: JetStream drops it as a duplicate, and the span says so.
    let dup = js
        .publish_with_id(subject.clone(), "m-1", HeaderMap::new(), "job".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(dup.duplicate);
    for attempt in 1..=2u64 {
        // `batch` waits for the redelivery (`fetch` would return at once, maybe before the
        // server has processed the fire-and-forget nak).
        let pull = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(10))
            .messages()
            .await
            .unwrap();
        let mut batch = js.messages(pull);
        let mut m = next(&mut batch).await.unwrap();
        assert_eq!(&m.payload[..], b"job");
        if attempt == 1 {
            let result: Result<(), std::io::Error> = m
                .instrument(async { Err(std::io::Error::other("db down")) })
                .await;
            m.record_result(&result);
            m.ack_with(AckKind::Nak(None)).await.unwrap();
        } else {
            m.double_ack().await.unwrap();
        }
    }
    js.delete_stream(&name).await.unwrap();
    let spans = cap.finish();
    let keys = [
        "messaging.message.id",
        "messaging.message.delivery_count",
        "messaging.settlement",
        "messaging.consumer.group.name",
        "messaging.nats.stream",
        "messaging.nats.stream.sequence",
        "messaging.nats.duplicate",
        "error.type",
    ];
    assert_eq!(
        spans.tree(&keys),
        format!(
            "publish {subject} [producer] messaging.message.id=m-1 messaging.nats.stream={name} \
messaging.nats.stream.sequence=1
  process {subject} [consumer] messaging.message.id=m-1 messaging.message.delivery_count=1 \
messaging.settlement=nak messaging.consumer.group.name=workers messaging.nats.stream={name} \
messaging.nats.stream.sequence=1 error.type=std::io::error::Error
    nak {subject} [client]
  process {subject} [consumer] messaging.message.id=m-1 messaging.message.delivery_count=2 \
messaging.settlement=ack messaging.consumer.group.name=workers messaging.nats.stream={name} \
messaging.nats.stream.sequence=1
    ack {subject} [client]
publish {subject} [producer] messaging.message.id=m-1 messaging.nats.stream={name} \
messaging.nats.stream.sequence=1 messaging.nats.duplicate=true
"
        )
    );
    let created = spans
        .records
        .iter()
        .find(|r| {
            r.name == format!("publish {subject}")
                && property(r, "messaging.nats.duplicate").is_none()
        })
        .unwrap()
        .span_id;
    for attempt in spans.all(&format!("process {subject}")) {
        assert_eq!(attempt.links.len(), 1);
        assert_eq!(attempt.links[0].span_id, created);
        let queued: u64 = property(attempt, "messaging.message.queue_time_ms")
            .unwrap()
            .parse()
            .unwrap();
        assert!(queued < 60_000, "{queued}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_batch_is_one_span_with_a_link_per_message() {
    let Some(client) = connect(
        "jetstream_batch",
        nats(Sampler::AlwaysOn).settle_spans(true),
    )
    .await
    else {
        return;
    };
    let base = unique("batch");
    let subject = format!("{base}.item");
    let name = stream_name(&base);
    let stream = stream_for(&client, &name, &format!("{base}.>")).await;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("batcher".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let js = tracewire_nats::jetstream::new(&client);
    let cap = capture();
    for i in 0..3 {
        js.publish_with_id(
            subject.clone(),
            &format!("m-{i}"),
            HeaderMap::new(),
            "x".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut messages = Vec::new();
    let mut fetched = consumer.fetch().max_messages(3).messages().await.unwrap();
    while let Some(m) = fetched.next().await {
        messages.push(m.unwrap());
    }
    assert_eq!(messages.len(), 3);
    let mut batch = js.process_batch(messages);
    assert_eq!(batch.messages().len(), 3);
    batch.ack_all_with(AckKind::Ack).await.unwrap();
    drop(batch);
    js.delete_stream(&name).await.unwrap();
    let spans = cap.finish();
    let process = spans.expect(&format!("process {subject}"));
    assert_eq!(
        property(process, "messaging.batch.message_count"),
        Some("3")
    );
    assert_eq!(process.parent_id, SpanId(0), "no synthetic parent");
    let sent: Vec<SpanId> = spans
        .all(&format!("publish {subject}"))
        .iter()
        .map(|r| r.span_id)
        .collect();
    assert_eq!(
        process.links.iter().map(|l| l.span_id).collect::<Vec<_>>(),
        sent
    );
    for (i, link) in process.links.iter().enumerate() {
        let key =
            tracewire_core::reserved::link_attribute_key(link.span_id, "messaging.message.id");
        assert_eq!(property(process, &key), Some(format!("m-{i}").as_str()));
        let key = tracewire_core::reserved::link_attribute_key(
            link.span_id,
            "messaging.message.delivery_count",
        );
        assert_eq!(property(process, &key), Some("1"));
    }
    assert_eq!(
        spans
            .tree(&[])
            .lines()
            .filter(|l| l.contains("ack"))
            .count(),
        1,
        "one settle span for the batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_consumer_traces_each_delivery() {
    let Some(client) = connect("jetstream_push", nats(Sampler::AlwaysOn)).await else {
        return;
    };
    let base = unique("push");
    let subject = format!("{base}.event");
    let name = stream_name(&base);
    let stream = stream_for(&client, &name, &format!("{base}.>")).await;
    let consumer: consumer::PushConsumer = stream
        .create_consumer(consumer::push::Config {
            durable_name: Some("pusher".into()),
            deliver_subject: client.new_inbox(),
            ..Default::default()
        })
        .await
        .unwrap();
    let js = tracewire_nats::jetstream::new(&client);
    let cap = capture();
    js.publish(subject.clone(), "e".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut messages = js.messages(consumer.messages().await.unwrap());
    let mut m = next(&mut messages).await.unwrap();
    m.ack().await.unwrap();
    drop(m);
    drop(messages);
    js.delete_stream(&name).await.unwrap();
    let spans = cap.finish();
    // Settle spans are off by default: the outcome is on the process span.
    assert_eq!(
        spans.tree(&["messaging.consumer.group.name", "messaging.settlement"]),
        format!(
            "publish {subject} [producer]
  process {subject} [consumer] messaging.consumer.group.name=pusher messaging.settlement=ack
"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_only_starts_a_trace_per_delivery() {
    let messaging = nats(Sampler::AlwaysOn).relation(Relation::LinksOnly);
    let Some(client) = connect("links_only", messaging).await else {
        return;
    };
    let subject = unique("orders");
    let cap = capture();
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    client.publish(subject.clone(), "1".into()).await.unwrap();
    drop(next(&mut sub).await);
    let spans = cap.finish();
    spans.assert_linked_root(&format!("publish {subject}"), &format!("process {subject}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_records_nothing_and_propagates_the_decision() {
    let Some(client) = connect("unsampled", nats(Sampler::AlwaysOff)).await else {
        return;
    };
    let [first, second] = ["first", "second"].map(unique);
    let cap = capture();
    let mut sub1 = client.subscribe(first.clone()).await.unwrap();
    let mut sub2 = client.subscribe(second.clone()).await.unwrap();
    client.publish(first.clone(), "1".into()).await.unwrap();
    let m = next(&mut sub1).await;
    let tp1 = m
        .headers
        .as_ref()
        .unwrap()
        .get("traceparent")
        .unwrap()
        .to_string();
    m.instrument(client.publish(second.clone(), "2".into()))
        .await
        .unwrap();
    drop(m);
    let m2 = next(&mut sub2).await;
    let tp2 = m2
        .headers
        .as_ref()
        .unwrap()
        .get("traceparent")
        .unwrap()
        .to_string();
    drop(m2);
    assert_unsampled_trace(&[&tp1, &tp2]);
    assert!(cap.finish().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_trace_headers_cost_no_message() {
    let Some(client) = connect("garbage_headers", nats(Sampler::AlwaysOn)).await else {
        return;
    };
    let subject = unique("orders");
    let cap = capture();
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    let huge = "x".repeat(64 * 1024);
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", "00-zzzzzzzz-yyyy-01");
    headers.append("traceparent", huge.as_str());
    headers.insert("tracestate", huge.as_str());
    headers.insert("baggage", "=;,,%%,k=v=w");
    headers.insert("Uber-Trace-Id", "::::");
    // Sent untraced, as a foreign producer would.
    client
        .inner()
        .publish_with_headers(subject.clone(), headers.clone(), "payload".into())
        .await
        .unwrap();
    let m = next(&mut sub).await;
    assert_eq!(&m.payload[..], b"payload");
    assert_eq!(
        m.headers
            .as_ref()
            .unwrap()
            .get("tracestate")
            .unwrap()
            .as_str(),
        huge
    );
    assert!(m.context().is_valid());
    drop(m);
    let spans = cap.finish();
    assert_eq!(spans.tree(&[]), format!("process {subject} [consumer]\n"));
    assert_eq!(spans.records[0].parent_id, SpanId(0));
    assert!(spans.records[0].links.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_crosses_every_hop_unchanged_and_nothing_else_is_added() {
    let Some(client) = connect("baggage", nats(Sampler::AlwaysOn)).await else {
        return;
    };
    let [first, second] = ["first", "second"].map(unique);
    let cap = capture();
    let mut sub1 = client.subscribe(first.clone()).await.unwrap();
    let mut sub2 = client.subscribe(second.clone()).await.unwrap();
    let mut origin = TraceContext::new(tracewire_core::TraceId(0x77), SpanId(0x88), true);
    origin.baggage = tracewire_core::Baggage::parse_lines(["tenant=acme,user=al%20ice"]);
    {
        let _in = origin.attach();
        client.publish(first.clone(), "1".into()).await.unwrap();
    }
    let m = next(&mut sub1).await;
    assert_eq!(
        m.context().baggage.get("user"),
        Some("al ice"),
        "the handler sees the baggage"
    );
    m.instrument(client.publish(second.clone(), "2".into()))
        .await
        .unwrap();
    drop(m);
    let m2 = next(&mut sub2).await;
    let headers = m2.headers.clone().unwrap();
    drop(m2);
    let mut names: Vec<String> = headers.iter().map(|(k, _)| k.to_string()).collect();
    names.sort();
    assert_eq!(names, ["baggage", "traceparent"], "{headers:?}");
    assert_eq!(
        headers.get("baggage").unwrap().as_str(),
        "tenant=acme,user=al%20ice"
    );
    drop(cap.finish());
}
