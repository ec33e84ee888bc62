//! Interop with FastStream (Python, `NatsTelemetryMiddleware`) over a real NATS server, both
//! ways, in one trace:
//!
//! ```text
//! py publishes FIRST → rs handles FIRST, publishes SECOND
//!                    → py handles SECOND, publishes THIRD → rs handles THIRD
//! ```
//!
//! Both sides export over real OTLP/HTTP to one receiver — the embedded viewer, started here on
//! a free port — and the trace is read back from its store: one trace id, the exact parent
//! chain by span id, our links, names, kinds and attributes. The Python peer is
//! `faststream_peer.py` (FastStream 0.7.8 from `.venv`, `scripts/setup-python.sh`); the harness,
//! the assertions every broker shares and FastStream's deviations from the messaging
//! conventions are `tracewire_test::faststream`'s. Here, as observed with 0.7.8, FastStream
//! also records `messaging.message.payload_size_bytes` (renamed in 1.22) — ours:
//! `messaging.message.body.size`.
//!
//! Without NATS or the venv: a loud, recorded skip (a failure under `CI=true`).
//!
//! One test in this binary: it installs the OTLP pipeline as fastrace's global reporter.
#![allow(clippy::unwrap_used, missing_docs)]

use tokio::time::timeout;
use tokio_stream::StreamExt as _;
use tracewire_messaging::Messaging;
use tracewire_nats::Client;
use tracewire_test::faststream::{self, BODY, Chain, Interop, Naming, PATIENCE, Wire, attr};
use tracewire_test::skip::Broker;

async fn next<S: tokio_stream::Stream + Unpin>(s: &mut S, what: &str) -> S::Item {
    timeout(PATIENCE, s.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
        .expect("the subscription goes on")
}

/// A round trip to the server on this connection: it has processed every earlier SUB of ours
/// (a server handles one connection's operations in order), so a publish from the peer after
/// this reaches our subscribers.
async fn round_trip(nats: &async_nats::Client) {
    let inbox = nats.new_inbox();
    let mut probe = nats.subscribe(inbox.clone()).await.unwrap();
    nats.publish(inbox, "".into()).await.unwrap();
    drop(next(&mut probe, "the round-trip probe").await);
}

/// The one value of header `name` (exact, case-sensitive: what FastStream's `dict.get` reads).
fn header(m: &async_nats::Message, name: &str) -> String {
    m.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .unwrap_or_else(|| panic!("no {name:?} header on {}: {:?}", m.subject, m.headers))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_through_faststream_and_back_is_one_trace() {
    const TEST: &str = "faststream_interop";
    let Some(interop) = Interop::start(TEST, Broker::Nats).await else {
        return;
    };
    let nats = async_nats::connect(&interop.url).await.unwrap();
    let client =
        Client::with_messaging(nats.clone(), faststream::messaging(Messaging::new("nats")));

    let names = faststream::names('.', "fs");
    let [first, second, third] = &names;
    // Our handlers' subscriptions are in place on the server before the peer publishes.
    let mut on_first = client.subscribe(first.clone()).await.unwrap();
    let mut on_third = client.subscribe(third.clone()).await.unwrap();
    round_trip(&nats).await;

    let mut peer = interop.peer(
        env!("CARGO_MANIFEST_DIR"),
        &names,
        &[("nats", &interop.url)],
    );
    peer.publish();

    // The tracewire handler of FIRST: publishes SECOND from inside the process span.
    let m = next(&mut on_first, first).await;
    let tp_first = header(&m, "traceparent");
    let correlation = header(&m, "correlation_id");
    assert_eq!(&m.payload[..], BODY);
    m.instrument(client.publish(second.clone(), m.payload.clone()))
        .await
        .unwrap();
    drop(m);
    // What FastStream received on SECOND: the headers exactly as nats-py parsed them off the
    // wire.
    let second_seen = peer.second();

    // The tracewire handler of THIRD.
    let m = next(&mut on_third, third).await;
    let tp_third = header(&m, "traceparent");
    let correlation_third = header(&m, "correlation_id");
    assert_eq!(&m.payload[..], BODY);
    drop(m);

    // Both sides flush: the peer ends its spans and shuts its provider down (a synchronous
    // export), ours flushes the pipeline; then the store holds everything, in one trace.
    peer.stop();
    let spans = interop.receiver.spans(8).await;
    let chain = Chain::find(&spans, Naming::new("nats", &names), 8);
    chain.check(&Wire {
        first: tp_first,
        correlation: correlation.clone(),
        second: second_seen,
        third: tp_third,
    });

    // FastStream's `correlation_id` header is our `messaging.message.conversation_id` (on
    // THIRD a fresh uuid: SECOND had none, so FastStream made one up for the message).
    for (s, want) in [
        (chain.rs_process_first, &correlation),
        (chain.rs_process_third, &correlation_third),
    ] {
        assert_eq!(
            attr(s, "messaging.message.conversation_id").as_ref(),
            Some(want),
            "{}\n{}",
            s.span.name,
            chain.tree
        );
    }

    interop.receiver.shutdown().await;
}
