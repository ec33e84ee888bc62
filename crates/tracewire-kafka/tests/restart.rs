//! A broker restart mid-stream: records keep flowing while the Kafka broker is stopped and
//! started again; the producer's queued records are delivered after the restart, the consumer
//! reconnects by itself (librdkafka), every record arrives with all of its headers, and every
//! process span continues its record's trace.
//!
//! The broker restarted is this test's own — a second Kafka from the same fetched jars
//! (`scripts/services.sh` with its own state directory and free ports), so the tests using the
//! shared broker on 127.0.0.1:9092 never see it go away. It needs the jars
//! (`bash scripts/services.sh install kafka`); without them: a loud, recorded skip (a failure
//! under `CI=true`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tracewire_core::{Sampler, SpanId, Tracer};
use tracewire_kafka::{FutureProducer, StreamConsumer};
use tracewire_test::{capture, skip};

const RECORDS: usize = 30;
const PATIENCE: Duration = Duration::from_secs(120);

/// This test's broker: started on creation, stopped (and its state removed) when dropped.
struct Broker {
    state: PathBuf,
    port: u16,
    controller: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh")
}

impl Broker {
    fn services(&self, command: &str) -> std::process::Output {
        Command::new("bash")
            .arg(script())
            .args([command, "kafka"])
            .env("TRACEWIRE_SERVICES_DIR", &self.state)
            .env("TRACEWIRE_KAFKA_PORT", self.port.to_string())
            .env(
                "TRACEWIRE_KAFKA_CONTROLLER_PORT",
                self.controller.to_string(),
            )
            .output()
            .unwrap()
    }

    /// Runs `command` and panics with its output when it fails; returns its stdout.
    fn run(&self, command: &str) -> String {
        let out = self.services(command);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "services.sh {command} kafka: {text}");
        eprint!("{text}");
        text
    }

    fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.services("stop");
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// Starts this test's broker, or `None` after a recorded skip when the jars are not fetched.
fn broker(test: &str) -> Option<Broker> {
    let installed = Command::new("bash")
        .arg(script())
        .args(["installed", "kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        skip::skip(
            test,
            "Kafka is not fetched; run `bash scripts/services.sh install kafka`",
        );
        return None;
    }
    let state =
        std::env::temp_dir().join(format!("tracewire-kafka-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let broker = Broker {
        state,
        port: free_port(),
        controller: free_port(),
    };
    broker.run("start");
    Some(broker)
}

/// What the consumer saw of one record (each delivery of it).
#[derive(Debug)]
struct Seen {
    traceparent: String,
    seq_header: String,
    app_header: String,
    /// The process span of this delivery.
    process: SpanId,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_no_record_header_or_trace() {
    const TEST: &str = "kafka_broker_restart";
    let Some(broker) = broker(TEST) else {
        return;
    };
    let url = broker.url();
    let topic = "restart.orders";
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &url)
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    drop(admin);

    let tracer = Tracer::new().with_sampler(Sampler::AlwaysOn);
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &url)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "110000")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "500")
        .set("linger.ms", "0");
    let producer = FutureProducer::with_messaging(
        config.create().unwrap(),
        tracewire_kafka::messaging(&config).tracer(tracer.clone()),
    );
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &url)
        .set("group.id", "survivors")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "45000")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "500");
    let consumer = StreamConsumer::with_messaging(
        config.create().unwrap(),
        tracewire_kafka::messaging(&config).tracer(tracer),
        Some("survivors".into()),
    );
    consumer.subscribe(&[topic]).unwrap();

    let cap = capture();
    let started = Instant::now();
    // The producer: a record every 100 ms, each sent on its own task, so sending goes on while
    // the broker is down (librdkafka queues, then delivers after the restart).
    let sender = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut deliveries = Vec::new();
            for seq in 0..RECORDS {
                let producer = producer.clone();
                deliveries.push(tokio::spawn(async move {
                    let seq = seq.to_string();
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: "x-seq",
                            value: Some(seq.as_str()),
                        })
                        .insert(Header {
                            key: "x-app",
                            value: Some("kept"),
                        });
                    producer
                        .send(
                            FutureRecord::to(topic)
                                .key(&seq)
                                .payload(&seq)
                                .headers(headers),
                            PATIENCE,
                        )
                        .await
                        .map(|d| d.offset)
                        .map_err(|(e, _)| e)
                }));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut offsets = Vec::new();
            for d in deliveries {
                offsets.push(d.await.unwrap().unwrap());
            }
            offsets
        })
    };

    // The consumer, with the restart in the middle of the stream.
    let mut seen: BTreeMap<usize, Vec<Seen>> = BTreeMap::new();
    let mut restarted = None;
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    while seen.len() < RECORDS {
        assert!(
            started.elapsed() < PATIENCE,
            "only {} of {RECORDS} records after {PATIENCE:?}",
            seen.len()
        );
        let m = match tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            Err(_) => continue,
            // Transport errors while the broker is away: librdkafka reconnects by itself.
            Ok(Err(e)) => {
                *errors.entry(e.to_string()).or_default() += 1;
                continue;
            }
            Ok(Ok(m)) => m,
        };
        let header = |key: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == key))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let seq: usize = std::str::from_utf8(m.payload().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let entry = Seen {
            traceparent: header("traceparent"),
            seq_header: header("x-seq"),
            app_header: header("x-app"),
            process: m.context().span_id,
        };
        let mut m = m;
        let _ = m.commit(CommitMode::Async);
        drop(m);
        seen.entry(seq).or_default().push(entry);
        if seen.len() == RECORDS / 3 && restarted.is_none() {
            // Mid-stream: stop the broker (a clean shutdown), and start it again.
            let at = started.elapsed();
            tokio::task::block_in_place(|| broker.run("stop"));
            tokio::time::sleep(Duration::from_millis(500)).await;
            tokio::task::block_in_place(|| broker.run("start"));
            restarted = Some((at, started.elapsed()));
        }
    }
    let offsets = sender.await.unwrap();
    let (stopped_at, back_at) = restarted.unwrap();
    eprintln!(
        "broker stopped at {stopped_at:?}, answering again at {back_at:?}; consumer errors \
         meanwhile (librdkafka reconnects by itself): {errors:?}; all {RECORDS} records in {:?}",
        started.elapsed()
    );
    assert_eq!(offsets.len(), RECORDS);

    let spans = cap.finish();
    let sends: BTreeMap<SpanId, &fastrace::collector::SpanRecord> = spans
        .records
        .iter()
        .filter(|r| r.name == format!("send {topic}"))
        .map(|r| (r.span_id, r))
        .collect();
    assert_eq!(sends.len(), RECORDS, "a send span per record");
    for (seq, deliveries) in &seen {
        for d in deliveries {
            assert_eq!(d.seq_header, seq.to_string(), "x-seq kept: {d:?}");
            assert_eq!(d.app_header, "kept", "x-app kept: {d:?}");
            let span = u64::from_str_radix(d.traceparent.get(36..52).unwrap_or("0"), 16).unwrap();
            let send = sends
                .get(&SpanId(span))
                .unwrap_or_else(|| panic!("record {seq} carries a send span's context: {d:?}"));
            let process = spans
                .records
                .iter()
                .find(|r| r.span_id == d.process)
                .unwrap_or_else(|| panic!("record {seq} has its process span"));
            assert_eq!(process.name, format!("process {topic}"));
            assert_eq!(
                (process.trace_id, process.parent_id),
                (send.trace_id, send.span_id),
                "record {seq}: the process span is the child of its send span"
            );
        }
    }
}
