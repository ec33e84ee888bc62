//! Interop with FastStream (Python, aio-pika, `RabbitTelemetryMiddleware`) over a real
//! RabbitMQ, both ways, through the default exchange and through a direct exchange — one trace
//! per mode:
//!
//! ```text
//! py publishes FIRST → rs handles FIRST, publishes SECOND
//!                    → py handles SECOND, publishes THIRD → rs handles THIRD
//! ```
//!
//! Both sides export over real OTLP/HTTP to one receiver — the embedded viewer, started here on
//! a free port — and the traces are read back from its store: one trace id per mode, the exact
//! parent chain by span id, our links, names, kinds and attributes. The Python peer is
//! `faststream_peer.py` (FastStream 0.7.8 from `.venv`, `scripts/setup-python.sh`), driven
//! through `tracewire_test::faststream`. The context travels in the AMQP headers table
//! (`traceparent` as a long string, both ways).
//!
//! The harness, the assertions every broker shares and FastStream's deviations from the
//! messaging conventions are `tracewire_test::faststream`'s. Here (and the RabbitMQ page), as
//! observed with 0.7.8, also:
//!
//! - span names `{exchange or "default"}.{routing key} {operation}` (`default` where the
//!   conventions say `amq.default` or the routing key alone) — ours:
//!   `publish {exchange}:{routing key}` and `process {queue}`;
//! - `messaging.destination.name` on publish spans is the exchange alone (empty for the default
//!   exchange), and on process spans absent (`messaging.destination_publish.name` holds the
//!   exchange) — ours: `{exchange}:{routing key}` on publish, the queue on process;
//! - `messaging.message.id` on its process spans is a fresh UUID per delivery when the message
//!   has no `message_id` (FastStream never writes one);
//! - no settle span, no delivery count — ours: `ack {queue}`, `messaging.message.delivery_count`.
//!
//! Without RabbitMQ or the venv: a loud, recorded skip (a failure under `CI=true`).
//!
//! One test in this binary: it installs the OTLP pipeline as fastrace's global reporter.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ConnectionProperties, ExchangeKind};
use tokio::time::timeout;
use tokio_stream::StreamExt as _;
use tracewire_lapin::{Channel, Connection, Consumer};
use tracewire_test::faststream::{self, BODY, Chain, Interop, Naming, PATIENCE, Wire, attr};
use tracewire_test::skip::Broker;
use tracewire_viewer::store::StoredSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Through the default exchange: the routing key is the queue.
    Default,
    /// Through a direct exchange, each queue bound under its own name.
    Exchange,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::Exchange => "exchange",
        }
    }
}

/// What one mode's run saw on the wire.
struct Run {
    mode: Mode,
    exchange: String,
    names: [String; 3],
    /// What FIRST and THIRD carried, what FastStream's parser read on SECOND.
    wire: Wire,
}

/// A received message: its `traceparent` header, correlation id and body.
struct Got {
    traceparent: String,
    correlation: String,
    body: Vec<u8>,
}

/// Receives one message and runs `handler` in its process span, then acks it.
async fn handle<F: std::future::Future<Output = ()>>(
    consumer: &mut Consumer,
    handler: impl FnOnce(Vec<u8>, String) -> F,
) -> Got {
    let mut d = timeout(PATIENCE, consumer.next())
        .await
        .expect("a delivery in time")
        .expect("the consumer goes on")
        .unwrap();
    let headers = d.properties.headers().clone().unwrap_or_default();
    let got = Got {
        traceparent: headers
            .inner()
            .get("traceparent")
            .and_then(tracewire_lapin::carrier::text)
            .expect("a traceparent header")
            .to_owned(),
        correlation: d
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        body: d.data.clone(),
    };
    d.instrument(handler(got.body.clone(), got.correlation.clone()))
        .await;
    assert!(d.ack(BasicAckOptions::default()).await.unwrap());
    got
}

/// A queue of ours (FIRST, THIRD), bound to `exchange` under its own name when there is one.
async fn queue(ch: &Channel, name: &str, exchange: &str) -> Consumer {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    if !exchange.is_empty() {
        ch.queue_bind(
            name.into(),
            exchange.into(),
            name.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    ch.basic_consume(
        name.into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap()
}

async fn run(interop: &Interop, ch: &Channel, mode: Mode) -> Run {
    let base = common::unique(&format!("fs.{}", mode.arg()));
    let names = ["first", "second", "third"].map(|n| format!("{base}.{n}"));
    let [first, second, third] = &names;
    let exchange = match mode {
        Mode::Default => String::new(),
        Mode::Exchange => {
            let ex = format!("{base}.ex");
            ch.exchange_declare(
                ex.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
            ex
        }
    };
    // Our queues are bound and consumed before the peer publishes (FastStream publishes
    // `mandatory`).
    let mut on_first = queue(ch, first, &exchange).await;
    let mut on_third = queue(ch, third, &exchange).await;

    let mut peer = interop.peer(
        env!("CARGO_MANIFEST_DIR"),
        &names,
        &[
            ("amqp", &interop.url),
            ("mode", mode.arg()),
            ("exchange", &exchange),
        ],
    );
    peer.publish();

    // The tracewire handler of FIRST: publishes SECOND from inside the process span.
    let ex = exchange.as_str();
    let got_first = handle(&mut on_first, |body, correlation| async move {
        let props = BasicProperties::default().with_correlation_id(correlation.as_str().into());
        ch.basic_publish(
            ex.into(),
            second.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    })
    .await;
    assert_eq!(got_first.body, BODY);
    let second_seen = peer.second();

    // The tracewire handler of THIRD.
    let got_third = handle(&mut on_third, |_, _| async {}).await;
    assert_eq!(got_third.body, BODY);

    eprintln!("{mode:?}:");
    peer.stop();
    drop((on_first, on_third));
    for q in [first, third] {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    if !exchange.is_empty() {
        ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .unwrap();
    }
    Run {
        mode,
        exchange,
        names: names.clone(),
        wire: Wire {
            first: got_first.traceparent,
            correlation: got_first.correlation,
            second: second_seen,
            third: got_third.traceparent,
        },
    }
}

fn check(run: &Run, all: &[StoredSpan]) {
    eprintln!("{:?}:", run.mode);
    // FastStream names by `{exchange or "default"}.{routing key}`.
    let fs = |q: &str| match run.mode {
        Mode::Default => format!("default.{q}"),
        Mode::Exchange => format!("{}.{q}", run.exchange),
    };
    // We name publishes `{exchange}:{routing key}` (the routing key alone for the default
    // exchange) and process spans by the queue.
    let ours = |q: &str| match run.mode {
        Mode::Default => q.to_owned(),
        Mode::Exchange => format!("{}:{q}", run.exchange),
    };
    let [first, second, third] = &run.names;
    // Ten spans, each under its service.name: FastStream's create+publish pairs and process,
    // ours process, publish, process and two acks.
    let naming = Naming::new("rabbitmq", &run.names)
        .theirs(fs)
        .sent_to(ours(second))
        .settle("ack");
    let chain = Chain::find(all, naming, 10);
    // FastStream → us: FIRST's headers carry FastStream's create span and the correlation id;
    // us → FastStream: its own parser read our headers (`traceparent`, body) and our
    // correlation id.
    chain.check(&run.wire);
    assert_eq!(run.wire.second["correlation_id"], "order-1");

    // Our spans, per the RabbitMQ page too.
    for (s, key) in chain.ours().into_iter().zip([first, second, third]) {
        chain.assert_attrs(
            s,
            &[
                ("messaging.rabbitmq.destination.routing_key", key.as_str()),
                ("messaging.message.conversation_id", "order-1"),
                ("server.address", "127.0.0.1"),
                ("server.port", "5672"),
            ],
        );
    }
    for process in [chain.rs_process_first, chain.rs_process_third] {
        assert_eq!(
            attr(process, "messaging.message.delivery_count").as_deref(),
            Some("1")
        );
        assert!(attr(process, "messaging.rabbitmq.message.delivery_tag").is_some());
        // FastStream stamps `timestamp`: the queue time is recorded.
        assert!(attr(process, "messaging.message.queue_time_ms").is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_through_faststream_and_back_are_one_trace_per_mode() {
    const TEST: &str = "faststream_rabbitmq_interop";
    let Some(interop) = Interop::start(TEST, Broker::RabbitMq).await else {
        return;
    };
    let _lock = tokio::task::block_in_place(common::shared);
    let url = &interop.url;
    let messaging = faststream::messaging(tracewire_lapin::messaging(url).settle_spans(true));
    let inner = lapin::Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let conn = Connection::with_messaging(inner, messaging);
    let ch = conn.create_channel().await.unwrap();

    let mut runs = Vec::new();
    for mode in [Mode::Default, Mode::Exchange] {
        runs.push(run(&interop, &ch, mode).await);
    }

    let spans = interop.receiver.spans(10 + 10).await;
    for run in &runs {
        check(run, &spans);
    }

    interop.receiver.shutdown().await;
}
