//! End-to-end loopback throughput over a real Redis: publish → handler, for pub/sub, lists and
//! streams, untraced (the bare `redis` client) next to tracewire-redis at 100 % sampling and
//! next to the hand-written OpenTelemetry JSON-envelope peer (`benches/common/redis_otel.rs`)
//! at 100 %. Everything runs in this process on a 2-worker tokio runtime, so every cost counts:
//! spans, envelopes, the export pipelines (tracewire's `Pipeline` and the SDK's
//! `BatchSpanProcessor`, both converting, encoding and dropping each batch), the handlers.
//!
//! ```text
//! bash scripts/services.sh start redis
//! cargo run --release -p tracewire-benches --example redis_load -- [messages per run, 20000] [rounds, 3]
//! ```
//!
//! Per run: a consumer subscribed (pub/sub: SUBSCRIBE; lists: BLPOP; streams: XREADGROUP
//! COUNT 100 in a group, XACK per entry), then `messages` publishes of a 128-byte body with up
//! to 64 in flight (PUBLISH, RPUSH, XADD), timed from the first publish to the handler of the
//! last message. Rounds interleave the stacks; the table has the median messages per second
//! and its ratio to the untraced run (the target: ≥ 0.9). `REDIS_LOAD_DISCARD=1`: tracewire's
//! spans are collected and dropped instead of exported (the export pipeline's share).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::print_stdout
)]

#[path = "../benches/common/redis_otel.rs"]
mod redis_otel;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapPropagator as _;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio::task::JoinSet;
use tokio_stream::StreamExt as _;
use tracewire_benches::export::{Discard, counting_pipeline, report_to};
use tracewire_benches::otel;
use tracewire_core::{Sampler, Tracer};
use tracewire_messaging::Messaging;
use tracewire_redis::Outgoing;

const URL: &str = "redis://127.0.0.1:6379";
const BODY: [u8; 128] = [b'x'; 128];
const WINDOW: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    PubSub,
    List,
    Stream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    Bare,
    Tracewire,
    OtelJson,
}

async fn handler(body: &[u8]) -> usize {
    black_box(body).len()
}

fn key(mode: Mode, stack: Stack, round: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("twload{}.{mode:?}.{stack:?}.{round}", now % 1_000_000_000)
}

async fn consumer_connection(client: &redis::Client) -> MultiplexedConnection {
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// A stream entry as read: its id and fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// `[[key, [[id, [f, v, ...]], ...]]]` → the entries.
fn stream_entries(v: Value) -> Vec<Entry> {
    let text = |v: Value| match v {
        Value::BulkString(b) => Some(b),
        _ => None,
    };
    let Value::Array(streams) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(kv) = s else { continue };
        let Some(Value::Array(entries)) = kv.into_iter().nth(1) else {
            continue;
        };
        for e in entries {
            let Value::Array(e) = e else { continue };
            let mut e = e.into_iter();
            let (Some(id), Some(Value::Array(f))) = (e.next().and_then(text), e.next()) else {
                continue;
            };
            let mut fields = Vec::new();
            let mut f = f.into_iter();
            while let (Some(k), Some(v)) = (f.next().and_then(text), f.next().and_then(text)) {
                fields.push((String::from_utf8(k).unwrap(), v));
            }
            out.push((String::from_utf8(id).unwrap(), fields));
        }
    }
    out
}

struct Stacks {
    redis: redis::Client,
    bare: MultiplexedConnection,
    tracewire: tracewire_redis::Client,
    otel: Arc<redis_otel::JsonPeer>,
}

/// Messages per second of one run.
async fn run(st: &Stacks, mode: Mode, stack: Stack, n: usize, round: usize) -> f64 {
    let key = key(mode, stack, round);
    // The consumer, in place before the first publish.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let consumer = {
        let key = key.clone();
        let redis = st.redis.clone();
        let tw = st.tracewire.clone();
        let otel = st.otel.clone();
        tokio::spawn(async move {
            let mut got = 0;
            match (mode, stack) {
                (Mode::PubSub, Stack::Bare | Stack::OtelJson) => {
                    let mut ps = redis.get_async_pubsub().await.unwrap();
                    ps.subscribe(&key).await.unwrap();
                    let mut s = ps.into_on_message();
                    ready_tx.send(()).unwrap();
                    while got < n {
                        let m = s.next().await.unwrap();
                        if stack == Stack::Bare {
                            handler(m.get_payload_bytes()).await;
                        } else {
                            let (parent, body) = otel.decode(m.get_payload_bytes());
                            let cx = otel.process_span(&parent, &key, body.len());
                            handler(&body).with_context(cx.clone()).await;
                            otel::end(&cx);
                        }
                        got += 1;
                    }
                }
                (Mode::PubSub, Stack::Tracewire) => {
                    let mut s = tw.subscribe(&key).await.unwrap();
                    ready_tx.send(()).unwrap();
                    while got < n {
                        let m = s.next().await.unwrap();
                        m.instrument(handler(m.body())).await;
                        got += 1;
                    }
                }
                (Mode::List, Stack::Bare | Stack::OtelJson) => {
                    let mut conn = consumer_connection(&redis).await;
                    ready_tx.send(()).unwrap();
                    while got < n {
                        let (_, payload): (String, Vec<u8>) = redis::cmd("BLPOP")
                            .arg(&key)
                            .arg(0)
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        if stack == Stack::Bare {
                            handler(&payload).await;
                        } else {
                            let (parent, body) = otel.decode(&payload);
                            let cx = otel.process_span(&parent, &key, body.len());
                            handler(&body).with_context(cx.clone()).await;
                            otel::end(&cx);
                        }
                        got += 1;
                    }
                }
                (Mode::List, Stack::Tracewire) => {
                    let mut l = tw.list(&key).await.unwrap();
                    ready_tx.send(()).unwrap();
                    while got < n {
                        let m = l.pop(Duration::ZERO).await.unwrap().unwrap();
                        m.instrument(handler(m.body())).await;
                        got += 1;
                    }
                }
                (Mode::Stream, Stack::Bare | Stack::OtelJson) => {
                    let mut conn = consumer_connection(&redis).await;
                    let _: Value = redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(&key)
                        .arg("g")
                        .arg("0")
                        .arg("MKSTREAM")
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    ready_tx.send(()).unwrap();
                    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
                    while got < n {
                        let reply: Value = redis::cmd("XREADGROUP")
                            .arg("GROUP")
                            .arg("g")
                            .arg("c")
                            .arg("COUNT")
                            .arg(100)
                            .arg("BLOCK")
                            .arg(0)
                            .arg("STREAMS")
                            .arg(&key)
                            .arg(">")
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        for (id, fields) in stream_entries(reply) {
                            let body = fields
                                .iter()
                                .find(|(k, _)| k == "body")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            if stack == Stack::Bare {
                                handler(&body).await;
                            } else {
                                let map: std::collections::HashMap<String, String> = fields
                                    .iter()
                                    .filter(|(k, _)| k != "body")
                                    .filter_map(|(k, v)| {
                                        Some((k.clone(), String::from_utf8(v.clone()).ok()?))
                                    })
                                    .collect();
                                let parent = propagator.extract(&map);
                                let cx = otel.process_span(&parent, &key, body.len());
                                handler(&body).with_context(cx.clone()).await;
                                otel::end(&cx);
                            }
                            let _: i64 = redis::cmd("XACK")
                                .arg(&key)
                                .arg("g")
                                .arg(&id)
                                .query_async(&mut conn)
                                .await
                                .unwrap();
                            got += 1;
                        }
                    }
                }
                (Mode::Stream, Stack::Tracewire) => {
                    let mut c = tw.stream_group(&key, "g", "c").await.unwrap();
                    c.create_group("0").await.unwrap();
                    ready_tx.send(()).unwrap();
                    while got < n {
                        for mut m in c.read(100, Duration::from_secs(30)).await.unwrap() {
                            m.instrument(handler(m.field("body").unwrap_or_default()))
                                .await;
                            m.ack().await.unwrap();
                            got += 1;
                        }
                    }
                }
            }
        })
    };
    ready_rx.await.unwrap();

    let started = Instant::now();
    let mut inflight = JoinSet::new();
    for _ in 0..n {
        while inflight.len() >= WINDOW {
            inflight.join_next().await.unwrap().unwrap();
        }
        let key = key.clone();
        let mut bare = st.bare.clone();
        let tw = st.tracewire.clone();
        let otel = st.otel.clone();
        inflight.spawn(async move {
            match stack {
                Stack::Bare => {
                    let mut cmd = match mode {
                        Mode::PubSub => redis::cmd("PUBLISH"),
                        Mode::List => redis::cmd("RPUSH"),
                        Mode::Stream => redis::cmd("XADD"),
                    };
                    cmd.arg(&key);
                    if mode == Mode::Stream {
                        cmd.arg("*").arg("body");
                    }
                    let _: Value = cmd.arg(&BODY[..]).query_async(&mut bare).await.unwrap();
                }
                Stack::Tracewire => match mode {
                    Mode::PubSub => drop(tw.publish(&key, Outgoing::new(&BODY[..])).await.unwrap()),
                    Mode::List => drop(tw.rpush(&key, Outgoing::new(&BODY[..])).await.unwrap()),
                    Mode::Stream => drop(tw.xadd(&key, [("body", &BODY[..])]).await.unwrap()),
                },
                Stack::OtelJson => {
                    let cx = otel.publish_span(&key, BODY.len());
                    let mut cmd = match mode {
                        Mode::PubSub => redis::cmd("PUBLISH"),
                        Mode::List => redis::cmd("RPUSH"),
                        Mode::Stream => redis::cmd("XADD"),
                    };
                    cmd.arg(&key);
                    if mode == Mode::Stream {
                        let mut map = std::collections::HashMap::new();
                        opentelemetry_sdk::propagation::TraceContextPropagator::new()
                            .inject_context(&cx, &mut map);
                        cmd.arg("*").arg("body").arg(&BODY[..]);
                        for (k, v) in map {
                            cmd.arg(k).arg(v);
                        }
                    } else {
                        cmd.arg(otel.encode(&cx, "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a", &BODY));
                    }
                    let _: Value = cmd.query_async(&mut bare).await.unwrap();
                    otel::end(&cx);
                }
            }
        });
    }
    while let Some(r) = inflight.join_next().await {
        r.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(120), consumer)
        .await
        .expect("every message handled within 120 s")
        .unwrap();
    let elapsed = started.elapsed();
    let mut conn = st.bare.clone();
    let _: Value = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    n as f64 / elapsed.as_secs_f64()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let exported = Arc::new(AtomicU64::new(0));
    let pipeline = counting_pipeline(exported.clone()).unwrap();
    // `REDIS_LOAD_DISCARD=1`: fastrace's collector drops the spans instead of the export
    // pipeline (what tracing costs without exporting).
    if std::env::var_os("REDIS_LOAD_DISCARD").is_some() {
        fastrace::set_reporter(Discard, fastrace::collector::Config::default());
    } else {
        report_to(&pipeline);
    }
    let otel_exported = Arc::new(AtomicU64::new(0));
    let otel_provider = otel::provider(true, otel_exported.clone());

    rt.block_on(async {
        let redis = redis::Client::open(URL).unwrap();
        let messaging = Messaging::new("redis")
            .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn))
            .server("127.0.0.1", Some(6379));
        let st = Stacks {
            bare: redis.get_multiplexed_async_connection().await.unwrap(),
            tracewire: tracewire_redis::Client::with_messaging(redis.clone(), messaging)
                .await
                .unwrap(),
            otel: Arc::new(redis_otel::JsonPeer::new(&otel_provider)),
            redis,
        };
        eprintln!("load average before: {}", loadavg());
        let stacks = [Stack::Bare, Stack::Tracewire, Stack::OtelJson];
        println!("| mode | untraced msg/s | tracewire msg/s | ratio | otel json msg/s | ratio |");
        println!("|---|---|---|---|---|---|");
        for mode in [Mode::PubSub, Mode::List, Mode::Stream] {
            let mut results: Vec<Vec<f64>> = vec![Vec::new(); stacks.len()];
            // A warm-up run of each stack, not counted.
            for &stack in &stacks {
                run(&st, mode, stack, n / 10, 0).await;
            }
            for round in 1..=rounds {
                for (i, &stack) in stacks.iter().enumerate() {
                    results[i].push(run(&st, mode, stack, n, round).await);
                }
            }
            let m: Vec<f64> = results.into_iter().map(median).collect();
            println!(
                "| {mode:?} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
                m[0],
                m[1],
                m[1] / m[0],
                m[2],
                m[2] / m[0]
            );
        }
        eprintln!("load average after: {}", loadavg());
        let _ = otel_provider.force_flush();
    });
    pipeline.flush(Duration::from_secs(10));
    eprintln!(
        "spans exported: tracewire {}, otel {}",
        exported.load(Ordering::Relaxed),
        otel_exported.load(Ordering::Relaxed)
    );
}
