//! End-to-end NATS load for BENCHMARKS.md ("Messaging (NATS)"): one process publishes `n`
//! messages that a handler in the same process consumes, publish → handler completion, in
//! one tracing mode, and prints the throughput and the CPU the whole process spent per
//! message (every thread: the runtime, the clients' connection tasks, fastrace's collector,
//! tracewire's export worker, the OpenTelemetry batch thread).
//!
//! | mode | what traces the messages |
//! |---|---|
//! | `untraced` | nothing: the bare async-nats client |
//! | `tracewire` | `tracewire_nats::Client` (`Client::new`, the global tracer: `parentbased(always_on)`), 100 % sampled; every span through `tracewire-export`'s `Pipeline` (bounded queue of 2048, OTLP mapping, batching) into an exporter that encodes each request to OTLP protobuf bytes, counts the spans and drops the bytes |
//! | `tracewire-unsampled` | the same, the tracer's root sampler `always_off` (contexts still propagated, flags `00`); same pipeline |
//! | `otel` | the hand-written OpenTelemetry peer of `benches/benches/messaging.rs`: SDK tracer, `ParentBased(AlwaysOn)`, `BatchSpanProcessor` (queue of 2048) into an exporter that does what `opentelemetry-otlp` does before sending (group, convert, prost-encode), counts the spans and drops the bytes, W3C `TraceContextPropagator` into / out of the `async_nats::HeaderMap`, a PRODUCER span per publish and a CONSUMER span per message (the handler run with its context) |
//! | `otel-unsampled` | the same with `ParentBased(AlwaysOff)` |
//! | `tracewire-nosettle` | `tracewire`, JetStream messages acked through the untraced message (no settle span: the peer's span count) |
//! | `fastrace-floor` | bare fastrace root spans, one per publish and one per process (two properties, the handler in the latter), no propagation (a constant `traceparent` header), into the same pipeline as `tracewire`: the floor of any fastrace-based instrumentation |
//!
//! Transports:
//!
//! - `core`: two connections (publisher, subscriber); the publisher keeps at most 8 192
//!   messages in flight (published, not yet handled: credits returned by the handler 64 at a
//!   time) so core NATS never drops a message for a slow consumer; the handler runs an empty
//!   async function in the message's span.
//! - `js`: a stream (`TWLOAD`, memory storage unless `JS_STORAGE=file`, recreated each run)
//!   and a durable pull consumer (explicit acks); the publisher publishes with acks, keeping
//!   256 acks in flight (each awaited in order; tracewire's and the peer's send spans end with
//!   the ack); the handler runs the empty function and acks each message (tracewire:
//!   `Message::ack`, which records a settle span — one span per message more than the peer).
//!
//! ```text
//! cargo build --release -p tracewire-benches --example nats_load
//! target/release/examples/nats_load <mode> <core|js> [n]      # NATS_URL, default nats://127.0.0.1:4222
//! bash benches/nats_load.sh                                   # every mode, rounds interleaved, pinned
//! ```
//!
//! Prints the harness's `THREADS` and `RESULT` lines (`tracewire_benches::load`): the main
//! thread runs the runtime (both clients, publisher and handler); the others are the tracing
//! background threads.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../benches/common/nats_otel.rs"]
mod nats_otel;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use nats_otel::Peer;
use tokio_stream::StreamExt as _;
use tracewire_benches::load::{Broker, Credits, Error, Mode, Timer, Timing, Transport, env_or};
use tracewire_benches::{TRACEPARENT_SAMPLED, otel};

const NATS: Broker = Broker {
    system: "nats",
    modes: &Mode::ALL,
    transports: &[
        Transport {
            name: "core",
            messages: 200_000,
        },
        Transport {
            name: "js",
            messages: 50_000,
        },
    ],
};

const CORE_SUBJECT: &str = "twload.core";
const JS_SUBJECT: &str = "twload.js";
const STREAM: &str = "TWLOAD";
const PAYLOAD: [u8; 128] = [b'x'; 128];
/// Core NATS: messages in flight, returned by the handler `Credits::CHUNK` at a time.
const WINDOW: u32 = 8192;
/// JetStream: publish acks in flight.
const ACK_WINDOW: usize = 256;

/// The constant header `fastrace-floor` messages carry (the size of a real context).
fn floor_headers() -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", TRACEPARENT_SAMPLED);
    headers
}

/// The handler: nothing but a look at the message.
async fn handler(message: &async_nats::Message) -> usize {
    std::hint::black_box(message.payload.len())
}

/// Core NATS: publish `n` messages, return when the handler has run for each (timed from
/// the first publish, the connections and the subscription made).
async fn core(url: &str, n: u64, mode: Mode, peer: Option<Arc<Peer>>) -> Result<Timing, Error> {
    let pub_nats = async_nats::connect(url).await?;
    let sub_nats = async_nats::connect(url).await?;
    let payload = Bytes::from_static(&PAYLOAD);
    let credits = Credits::new(WINDOW);
    let returns = credits.clone();

    let handled = if mode.tracewire() {
        let client = tracewire_nats::Client::new(sub_nats.clone());
        let mut sub = client.subscribe(CORE_SUBJECT).await?;
        tokio::spawn(async move {
            for k in 1..=n {
                let message = sub.next().await.ok_or("subscription ended")?;
                message.instrument(handler(&message)).await;
                drop(message);
                returns.handled(k);
            }
            Ok::<_, Error>(())
        })
    } else {
        let peer = peer.clone();
        let floor = mode == Mode::FastraceFloor;
        let mut sub = sub_nats.subscribe(CORE_SUBJECT).await?;
        tokio::spawn(async move {
            for k in 1..=n {
                let message = sub.next().await.ok_or("subscription ended")?;
                match &peer {
                    None if floor => {
                        use fastrace::future::FutureExt as _;
                        let span = NATS.floor_span("process twload.core", "consumer");
                        handler(&message).in_span(span).await;
                    }
                    None => {
                        handler(&message).await;
                    }
                    Some(peer) => {
                        use opentelemetry::context::FutureExt as _;
                        let cx = peer.process_span(&message);
                        handler(&message).with_context(cx.clone()).await;
                        otel::end(&cx);
                    }
                }
                drop(message);
                returns.handled(k);
            }
            Ok::<_, Error>(())
        })
    };
    sub_nats.flush().await?;

    let traced = tracewire_nats::Client::new(pub_nats.clone());
    let timer = Timer::start();
    for i in 0..n {
        credits.send(i).await?;
        let payload = payload.clone();
        match (mode.tracewire(), &peer) {
            (true, _) => traced.publish(CORE_SUBJECT, payload).await?,
            (false, None) if mode == Mode::FastraceFloor => {
                let span = NATS.floor_span("publish twload.core", "producer");
                pub_nats
                    .publish_with_headers(CORE_SUBJECT, floor_headers(), payload)
                    .await?;
                drop(span);
            }
            (false, None) => pub_nats.publish(CORE_SUBJECT, payload).await?,
            (false, Some(peer)) => {
                let mut headers = async_nats::HeaderMap::new();
                let cx = peer.publish_span(CORE_SUBJECT, payload.len(), &mut headers);
                let result = pub_nats
                    .publish_with_headers(CORE_SUBJECT, headers, payload)
                    .await;
                otel::end_with(&cx, &result);
                result?;
            }
        }
    }
    pub_nats.flush().await?;
    tokio::time::timeout(Duration::from_secs(120), handled).await???;
    Ok(timer.stop())
}

/// JetStream: a fresh stream and pull consumer (untimed), then publish `n` messages with
/// acks and return when the handler has run for (and acked) each.
async fn js(url: &str, n: u64, mode: Mode, peer: Option<Arc<Peer>>) -> Result<Timing, Error> {
    let pub_nats = async_nats::connect(url).await?;
    let sub_nats = async_nats::connect(url).await?;
    let admin = jetstream::new(sub_nats.clone());
    let _ = admin.delete_stream(STREAM).await;
    let storage = match std::env::var("JS_STORAGE").as_deref() {
        Ok("file") => stream::StorageType::File,
        _ => stream::StorageType::Memory,
    };
    let stream = admin
        .create_stream(stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![JS_SUBJECT.to_owned()],
            storage,
            ..Default::default()
        })
        .await?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("twload".to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let payload = Bytes::from_static(&PAYLOAD);
    let timer = Timer::start();
    let handled = if mode.tracewire() {
        let client = tracewire_nats::Client::new(sub_nats);
        let traced = tracewire_nats::jetstream::new(&client);
        let mut messages = traced.messages(messages);
        let settle = mode != Mode::TracewireNoSettle;
        tokio::spawn(async move {
            for _ in 0..n {
                let mut message = messages.next().await.ok_or("consumer ended")??;
                message.instrument(handler(&message)).await;
                if settle {
                    message.ack().await?;
                } else {
                    std::ops::Deref::deref(&message).ack().await?;
                }
            }
            Ok::<_, Error>(())
        })
    } else {
        let peer = peer.clone();
        let floor = mode == Mode::FastraceFloor;
        tokio::spawn(async move {
            for _ in 0..n {
                let message = messages.next().await.ok_or("consumer ended")??;
                match &peer {
                    None if floor => {
                        use fastrace::future::FutureExt as _;
                        let span = NATS.floor_span("process twload.js", "consumer");
                        handler(&message).in_span(span).await;
                        message.ack().await?;
                    }
                    None => {
                        handler(&message).await;
                        message.ack().await?;
                    }
                    Some(peer) => {
                        use opentelemetry::context::FutureExt as _;
                        let cx = peer.process_span(&message);
                        handler(&message).with_context(cx.clone()).await;
                        let acked = message.ack().await;
                        otel::end_with(&cx, &acked);
                        acked?;
                    }
                }
            }
            Ok::<_, Error>(())
        })
    };

    let js = jetstream::new(pub_nats.clone());
    if mode.tracewire() {
        let traced = tracewire_nats::jetstream::new(&tracewire_nats::Client::new(pub_nats));
        let mut acks = VecDeque::with_capacity(ACK_WINDOW + 1);
        for _ in 0..n {
            acks.push_back(traced.publish(JS_SUBJECT, payload.clone()).await?);
            if acks.len() > ACK_WINDOW {
                acks.pop_front().unwrap().await?;
            }
        }
        for ack in acks {
            ack.await?;
        }
    } else if let Some(peer) = &peer {
        let mut acks = VecDeque::with_capacity(ACK_WINDOW + 1);
        let end = |(cx, ack): (opentelemetry::Context, _)| async move {
            let result: Result<_, _> = std::future::IntoFuture::into_future(ack).await;
            otel::end_with(&cx, &result);
            result.map(drop)
        };
        for _ in 0..n {
            let mut headers = async_nats::HeaderMap::new();
            let cx = peer.publish_span(JS_SUBJECT, payload.len(), &mut headers);
            match js
                .publish_with_headers(JS_SUBJECT, headers, payload.clone())
                .await
            {
                Ok(ack) => acks.push_back((cx, ack)),
                Err(e) => {
                    otel::end_with(&cx, &Err::<(), _>(&e));
                    return Err(e.into());
                }
            }
            if acks.len() > ACK_WINDOW {
                end(acks.pop_front().unwrap()).await?;
            }
        }
        for ack in acks {
            end(ack).await?;
        }
    } else if mode == Mode::FastraceFloor {
        let mut acks = VecDeque::with_capacity(ACK_WINDOW + 1);
        for _ in 0..n {
            let span = NATS.floor_span("publish twload.js", "producer");
            let ack = js
                .publish_with_headers(JS_SUBJECT, floor_headers(), payload.clone())
                .await?;
            acks.push_back((span, ack));
            if acks.len() > ACK_WINDOW {
                let (span, ack) = acks.pop_front().unwrap();
                ack.await?;
                drop(span);
            }
        }
        for (span, ack) in acks {
            ack.await?;
            drop(span);
        }
    } else {
        let mut acks = VecDeque::with_capacity(ACK_WINDOW + 1);
        for _ in 0..n {
            acks.push_back(js.publish(JS_SUBJECT, payload.clone()).await?);
            if acks.len() > ACK_WINDOW {
                acks.pop_front().unwrap().await?;
            }
        }
        for ack in acks {
            ack.await?;
        }
    }
    tokio::time::timeout(Duration::from_secs(120), handled).await???;
    Ok(timer.stop())
}

fn main() -> Result<(), Error> {
    NATS.main(async |args, tracing| {
        let url = env_or("NATS_URL", "nats://127.0.0.1:4222");
        let info = async_nats::connect(&url).await?.server_info();
        let peer = tracing.otel().map(|p| Arc::new(Peer::new(p, &info)));
        match args.transport {
            "core" => core(&url, args.n, args.mode, peer).await,
            _ => js(&url, args.n, args.mode, peer).await,
        }
    })
}
