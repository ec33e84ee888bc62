//! Interop with FastStream (Python, `RedisTelemetryMiddleware`) over a real Redis server, both
//! ways, for pub/sub, lists and streams — one trace per mode:
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
//! through `tracewire_test::faststream`.
//!
//! The context travels in FastStream's binary envelope (pub/sub, lists) and in the `__data__`
//! field of stream entries, which is all FastStream reads from a stream: towards FastStream we
//! therefore add entries with `Client::xadd_envelope`, not `xadd` (whose trace fields FastStream
//! ignores).
//!
//! The harness, the assertions every broker shares and FastStream's deviations from the
//! messaging conventions are `tracewire_test::faststream`'s. Here, as observed with 0.7.8, also:
//!
//! - `messaging.message.id` on its process spans is a fresh UUID per delivery (FastStream never
//!   writes `message_id`), and a stream entry's id is not recorded — ours: the entry id;
//! - no settle span for XACK, no delivery count — ours: `ack {stream}` and
//!   `messaging.message.delivery_count`.
//!
//! Without Redis or the venv: a loud, recorded skip (a failure under `CI=true`).
//!
//! One test in this binary: it installs the OTLP pipeline as fastrace's global reporter.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use tokio::time::timeout;
use tokio_stream::StreamExt as _;
use tracewire_messaging::Messaging;
use tracewire_redis::{Client, Message, Outgoing};
use tracewire_test::faststream::{self, BODY, Chain, Interop, Naming, Wire, attr};
use tracewire_test::skip::Broker;
use tracewire_viewer::store::StoredSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    PubSub,
    List,
    Stream,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::PubSub => "pubsub",
            Mode::List => "list",
            Mode::Stream => "stream",
        }
    }
}

/// What one mode's run saw on the wire.
struct Run {
    mode: Mode,
    names: [String; 3],
    /// What FIRST and THIRD carried, what FastStream's parser read on SECOND.
    wire: Wire,
}

/// Our side of one mode's consumer of a destination.
enum Consumer {
    PubSub(tracewire_redis::Subscriber),
    List(tracewire_redis::ListConsumer),
    Stream(tracewire_redis::StreamConsumer),
}

/// A received message: its trace context header, correlation id and body.
struct Got {
    traceparent: String,
    correlation: String,
    body: Vec<u8>,
}

impl Consumer {
    async fn new(client: &Client, mode: Mode, name: &str) -> Consumer {
        match mode {
            Mode::PubSub => Consumer::PubSub(client.subscribe(name).await.unwrap()),
            Mode::List => Consumer::List(client.list(name).await.unwrap()),
            Mode::Stream => {
                let mut c = client.stream_group(name, "rs", "rs-1").await.unwrap();
                c.create_group("0").await.unwrap();
                Consumer::Stream(c)
            }
        }
    }

    /// Receives one message and runs `handler` in its process span (then acks a stream entry).
    async fn handle<F: std::future::Future<Output = ()>>(
        &mut self,
        handler: impl FnOnce(Vec<u8>, String) -> F,
    ) -> Got {
        let patience = Duration::from_secs(30);
        match self {
            Consumer::PubSub(s) => {
                let m = timeout(patience, s.next()).await.unwrap().unwrap();
                handled(m, handler).await
            }
            Consumer::List(l) => handled(l.pop(patience).await.unwrap().unwrap(), handler).await,
            Consumer::Stream(c) => {
                let mut m = c.read(1, patience).await.unwrap().pop().unwrap();
                let envelope = m.envelope().expect("FastStream writes __data__");
                let got = Got {
                    traceparent: envelope.header("traceparent").unwrap().to_owned(),
                    correlation: envelope.correlation_id().unwrap().to_owned(),
                    body: envelope.body().to_vec(),
                };
                m.instrument(handler(got.body.clone(), got.correlation.clone()))
                    .await;
                m.ack().await.unwrap();
                got
            }
        }
    }
}

/// Runs `handler` in the process span of a channel's or a list's message `m`.
async fn handled<F: std::future::Future<Output = ()>>(
    m: Message,
    handler: impl FnOnce(Vec<u8>, String) -> F,
) -> Got {
    let got = Got {
        traceparent: m.header("traceparent").unwrap().to_owned(),
        correlation: m.correlation_id().unwrap().to_owned(),
        body: m.body().to_vec(),
    };
    m.instrument(handler(got.body.clone(), got.correlation.clone()))
        .await;
    got
}

/// Sends `body` to `to` the way FastStream reads it in `mode`.
async fn send(client: &Client, mode: Mode, to: &str, body: Vec<u8>, correlation: String) {
    let m = Outgoing::new(body).correlation_id(correlation);
    match mode {
        Mode::PubSub => assert_eq!(client.publish(to, m).await.unwrap(), 1),
        Mode::List => drop(client.rpush(to, m).await.unwrap()),
        Mode::Stream => drop(client.xadd_envelope(to, m).await.unwrap()),
    }
}

async fn run(interop: &Interop, client: &Client, mode: Mode) -> Run {
    let names = faststream::names('.', mode.arg());
    let [first, second, third] = &names;
    // Our consumers are in place on the server before the peer publishes.
    let mut on_first = Consumer::new(client, mode, first).await;
    let mut on_third = Consumer::new(client, mode, third).await;

    let mut peer = interop.peer(
        env!("CARGO_MANIFEST_DIR"),
        &names,
        &[("redis", &interop.url), ("mode", mode.arg())],
    );
    peer.publish();

    // The tracewire handler of FIRST: sends SECOND from inside the process span.
    let got_first = on_first
        .handle(|body, correlation| async move {
            send(client, mode, second, body, correlation).await;
        })
        .await;
    assert_eq!(got_first.body, BODY);
    let second_seen = peer.second();

    // The tracewire handler of THIRD.
    let got_third = on_third.handle(|_, _| async {}).await;
    assert_eq!(got_third.body, BODY);

    eprintln!("{mode:?}:");
    peer.stop();
    Run {
        mode,
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
    let stream = run.mode == Mode::Stream;
    // Eight spans (ten for streams: our two XACKs), each under its service.name.
    let naming = Naming::new("redis", &run.names);
    let chain = if stream {
        Chain::find(all, naming.settle("ack"), 10)
    } else {
        Chain::find(all, naming, 8)
    };
    // FastStream → us: FIRST's envelope carries FastStream's create span and the correlation
    // id; us → FastStream: its own parser read our envelope (`traceparent`, body) and our
    // correlation id.
    chain.check(&run.wire);
    assert_eq!(run.wire.second["headers"]["correlation_id"], "order-1");

    for s in chain.ours() {
        chain.assert_attrs(s, &[("messaging.message.conversation_id", "order-1")]);
    }
    assert_eq!(
        attr(chain.rs_process_first, "messaging.redis.envelope").as_deref(),
        Some("binary")
    );
    if stream {
        assert_eq!(
            attr(chain.rs_process_first, "messaging.consumer.group.name").as_deref(),
            Some("rs")
        );
        assert_eq!(
            attr(chain.rs_process_first, "messaging.message.delivery_count").as_deref(),
            Some("1")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_through_faststream_and_back_are_one_trace_per_mode() {
    const TEST: &str = "faststream_redis_interop";
    let Some(interop) = Interop::start(TEST, Broker::Redis).await else {
        return;
    };
    let messaging = faststream::messaging(Messaging::new("redis").settle_spans(true));
    let redis = redis::Client::open(interop.url.as_str()).unwrap();
    let client = Client::with_messaging(redis, messaging).await.unwrap();

    let mut runs = Vec::new();
    for mode in [Mode::PubSub, Mode::List, Mode::Stream] {
        runs.push(run(&interop, &client, mode).await);
    }

    let spans = interop.receiver.spans(8 + 8 + 10).await;
    for run in &runs {
        check(run, &spans);
    }
    assert_eq!(client.decode_failures(), 0);

    interop.receiver.shutdown().await;
}
