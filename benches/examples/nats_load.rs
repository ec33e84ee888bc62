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
//! Prints one line `RESULT <mode> <transport> <n> <seconds> <msgs/s> <cpu µs/msg> <cpu
//! utilisation> <spans exported> <spans dropped> <main thread cpu µs/msg> <other threads cpu
//! µs/msg>` (the main thread runs the runtime: both clients, publisher and handler; the
//! others are the tracing background threads), after a line `THREADS µs/msg <thread
//! name>=<CPU µs per message> ...` for every thread.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_stream::StreamExt as _;
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, Pipeline, SpanExporter};

type Error = Box<dyn std::error::Error + Send + Sync>;

const CORE_SUBJECT: &str = "twload.core";
const JS_SUBJECT: &str = "twload.js";
const STREAM: &str = "TWLOAD";
const PAYLOAD: [u8; 128] = [b'x'; 128];
/// Core NATS: messages in flight, returned by the handler `CHUNK` at a time.
const WINDOW: u32 = 8192;
const CHUNK: u32 = 64;
/// JetStream: publish acks in flight.
const ACK_WINDOW: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Untraced,
    Tracewire,
    TracewireUnsampled,
    Otel,
    OtelUnsampled,
    /// `tracewire`, JetStream messages acked through the untraced message (no settle span).
    TracewireNoSettle,
    /// Bare fastrace root spans (a publish span and a process span per message, the handler
    /// run in the latter), no propagation (a constant `traceparent` header instead), into
    /// the same export pipeline as `tracewire`: the engine's and the pipeline's floor.
    FastraceFloor,
}

/// Encodes each OTLP request (what the OTLP exporters send), counts its spans, drops the
/// bytes.
struct CountingSink(Arc<AtomicU64>);

impl SpanExporter for CountingSink {
    fn name(&self) -> &str {
        "counting-sink"
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        let n: usize = batch
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        // What the OTLP exporters send, encoded and dropped.
        std::hint::black_box(tracewire_export::encode::encode_request(batch));
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// The hand-written OpenTelemetry peer (the same as in `benches/benches/messaging.rs`).
mod otel {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_nats::HeaderMap;
    use async_nats::header::HeaderValue;
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
    use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{
        BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    };

    /// `opentelemetry-nats`'s `NatsHeaderInjector`.
    pub(crate) struct NatsHeaderInjector<'a>(pub(crate) &'a mut HeaderMap);

    impl Injector for NatsHeaderInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key, value.as_str());
        }
    }

    /// `opentelemetry-nats`'s `NatsHeaderExtractor`.
    pub(crate) struct NatsHeaderExtractor<'a>(pub(crate) &'a HeaderMap);

    impl Extractor for NatsHeaderExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(HeaderValue::as_str)
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| k.as_ref()).collect()
        }
    }

    /// What `opentelemetry-otlp` does with a batch before it sends it (group by resource and
    /// scope, convert, encode with prost); counts the spans and drops the bytes.
    #[derive(Debug)]
    struct Counting {
        exported: Arc<AtomicU64>,
        resource: ResourceAttributesWithSchema,
    }

    impl SpanExporter for Counting {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            use prost::Message as _;
            let n = batch.len() as u64;
            let request = ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
            };
            std::hint::black_box(request.encode_to_vec());
            self.exported.fetch_add(n, Ordering::Relaxed);
            Ok(())
        }

        fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
            self.resource = resource.into();
        }
    }

    pub(crate) struct Peer {
        pub(crate) provider: SdkTracerProvider,
        tracer: SdkTracer,
        propagator: TraceContextPropagator,
        server_address: String,
        server_port: i64,
        client_id: i64,
    }

    impl Peer {
        pub(crate) fn new(
            sampled: bool,
            exported: Arc<AtomicU64>,
            info: &async_nats::ServerInfo,
        ) -> Self {
            let root = if sampled {
                Sampler::AlwaysOn
            } else {
                Sampler::AlwaysOff
            };
            let provider = SdkTracerProvider::builder()
                .with_sampler(Sampler::ParentBased(Box::new(root)))
                .with_span_processor(
                    BatchSpanProcessor::builder(Counting {
                        exported,
                        resource: (&opentelemetry_sdk::Resource::builder_empty().build()).into(),
                    })
                    .build(),
                )
                .build();
            let tracer = provider.tracer("nats");
            Peer {
                provider,
                tracer,
                propagator: TraceContextPropagator::new(),
                server_address: info.host.clone(),
                server_port: i64::from(info.port),
                client_id: info.client_id as i64,
            }
        }

        fn attributes(
            &self,
            op: &'static str,
            verb: &'static str,
            subject: &str,
            size: usize,
        ) -> [KeyValue; 8] {
            [
                KeyValue::new("messaging.system", "nats"),
                KeyValue::new("messaging.operation.type", op),
                KeyValue::new("messaging.operation.name", verb),
                KeyValue::new("messaging.destination.name", subject.to_owned()),
                KeyValue::new("messaging.message.body.size", size as i64),
                KeyValue::new("messaging.client.id", self.client_id),
                KeyValue::new("server.address", self.server_address.clone()),
                KeyValue::new("server.port", self.server_port),
            ]
        }

        pub(crate) fn publish_span(
            &self,
            subject: &str,
            size: usize,
            headers: &mut HeaderMap,
        ) -> Context {
            let span = self
                .tracer
                .span_builder(format!("publish {subject}"))
                .with_kind(SpanKind::Producer)
                .with_attributes(self.attributes("send", "publish", subject, size))
                .start(&self.tracer);
            let cx = Context::current_with_span(span);
            self.propagator
                .inject_context(&cx, &mut NatsHeaderInjector(headers));
            cx
        }

        pub(crate) fn process_span(&self, message: &async_nats::Message) -> Context {
            let parent = match &message.headers {
                Some(h) => self.propagator.extract(&NatsHeaderExtractor(h)),
                None => Context::new(),
            };
            let span = self
                .tracer
                .span_builder(format!("process {}", message.subject))
                .with_kind(SpanKind::Consumer)
                .with_attributes(self.attributes(
                    "process",
                    "process",
                    &message.subject,
                    message.payload.len(),
                ))
                .start_with_context(&self.tracer, &parent);
            parent.with_span(span)
        }
    }

    /// Ends the span of `cx`, with an error status if the operation failed.
    pub(crate) fn end<T, E: std::fmt::Display>(cx: &Context, result: &Result<T, E>) {
        let span = cx.span();
        if let Err(e) = result {
            span.set_status(opentelemetry::trace::Status::error(e.to_string()));
        }
        span.end();
    }
}

/// A bare fastrace root span (`fastrace-floor`).
fn floor_span(name: &'static str, kind: &'static str) -> fastrace::Span {
    fastrace::Span::root(name, fastrace::collector::SpanContext::random())
        .with_properties(|| [("span.kind", kind), ("messaging.system", "nats")])
}

/// The constant header `fastrace-floor` messages carry (the size of a real context).
fn floor_headers() -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    headers
}

/// The handler: nothing but a look at the message.
async fn handler(message: &async_nats::Message) -> usize {
    std::hint::black_box(message.payload.len())
}

/// What a mode set up: the exporters to flush and count at the end.
struct Tracing {
    mode: Mode,
    pipeline: Option<Pipeline>,
    tw_exported: Arc<AtomicU64>,
    otel: Option<Arc<otel::Peer>>,
    otel_exported: Arc<AtomicU64>,
}

impl Tracing {
    fn tracewire(&self) -> bool {
        matches!(
            self.mode,
            Mode::Tracewire | Mode::TracewireUnsampled | Mode::TracewireNoSettle
        )
    }

    /// (spans exported, spans dropped at the tracewire queue), after flushing.
    fn finish(&self) -> (u64, u64) {
        fastrace::flush();
        let mut dropped = 0;
        if let Some(p) = &self.pipeline {
            p.shutdown(Duration::from_secs(10));
            dropped = p.counters().dropped;
        }
        if let Some(peer) = &self.otel {
            let _ = peer.provider.shutdown();
        }
        (
            self.tw_exported.load(Ordering::Relaxed) + self.otel_exported.load(Ordering::Relaxed),
            dropped,
        )
    }
}

fn setup(mode: Mode, info: &async_nats::ServerInfo) -> Tracing {
    let tw_exported = Arc::new(AtomicU64::new(0));
    let otel_exported = Arc::new(AtomicU64::new(0));
    let mut pipeline = None;
    let mut otel = None;
    match mode {
        Mode::Untraced => {}
        Mode::Tracewire
        | Mode::TracewireUnsampled
        | Mode::TracewireNoSettle
        | Mode::FastraceFloor => {
            let root = if mode != Mode::TracewireUnsampled {
                Sampler::AlwaysOn
            } else {
                Sampler::AlwaysOff
            };
            Tracer::set_global(Tracer::new().with_sampler(Sampler::parent_based(root)));
            let p = Pipeline::builder()
                .exporter(CountingSink(tw_exported.clone()))
                .build()
                .unwrap();
            fastrace::set_reporter(p.reporter(), fastrace::collector::Config::default());
            pipeline = Some(p);
        }
        Mode::Otel | Mode::OtelUnsampled => {
            otel = Some(Arc::new(otel::Peer::new(
                mode == Mode::Otel,
                otel_exported.clone(),
                info,
            )));
        }
    }
    Tracing {
        mode,
        pipeline,
        tw_exported,
        otel,
        otel_exported,
    }
}

/// CPU time (ns) of each thread of this process by thread id, with its name, from
/// `/proc/self/task/*/schedstat` (empty where that is not available).
fn thread_cpu() -> HashMap<String, (String, u64)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
        let ns = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let tid = task.file_name().to_string_lossy().into_owned();
        threads.insert(tid, (read("comm").trim().to_owned(), ns));
    }
    threads
}

/// What a run took: wall clock, whole-process CPU, and the CPU of the main thread (the
/// runtime: both clients, the publisher and the handler) — the rest is background threads.
struct Timing {
    wall: Duration,
    cpu: Duration,
    main_cpu: Duration,
    /// CPU ns per thread name (threads of one name summed).
    threads: Vec<(String, u64)>,
}

/// Wall-clock, whole-process and per-thread CPU time since it started.
struct Timer(
    Instant,
    cpu_time::ProcessTime,
    HashMap<String, (String, u64)>,
);

impl Timer {
    fn start() -> Self {
        Timer(Instant::now(), cpu_time::ProcessTime::now(), thread_cpu())
    }

    fn stop(self) -> Timing {
        let (wall, cpu) = (self.0.elapsed(), self.1.elapsed());
        let main_tid = std::process::id().to_string();
        let after = thread_cpu();
        let main_cpu = after
            .get(&main_tid)
            .map(|(_, ns)| ns - self.2.get(&main_tid).map_or(0, |(_, before)| *before))
            .map_or(cpu, Duration::from_nanos);
        let mut threads: Vec<(String, u64)> = Vec::new();
        for (tid, (name, ns)) in &after {
            let spent = ns - self.2.get(tid).map_or(0, |(_, before)| *before);
            match threads.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => *total += spent,
                None => threads.push((name.clone(), spent)),
            }
        }
        threads.sort();
        Timing {
            wall,
            cpu,
            main_cpu,
            threads,
        }
    }
}

/// Core NATS: publish `n` messages, return when the handler has run for each (timed from
/// the first publish, the connections and the subscription made).
async fn core(url: &str, n: u64, tracing: &Tracing) -> Result<Timing, Error> {
    let pub_nats = async_nats::connect(url).await?;
    let sub_nats = async_nats::connect(url).await?;
    let payload = Bytes::from_static(&PAYLOAD);
    let credits = Arc::new(Semaphore::new(WINDOW as usize));
    let returns = credits.clone();
    let give_back = move |k: u64| {
        if k % u64::from(CHUNK) == 0 {
            returns.add_permits(CHUNK as usize);
        }
    };

    let handled = if tracing.tracewire() {
        let client = tracewire_nats::Client::new(sub_nats.clone());
        let mut sub = client.subscribe(CORE_SUBJECT).await?;
        tokio::spawn(async move {
            for k in 1..=n {
                let message = sub.next().await.ok_or("subscription ended")?;
                message.instrument(handler(&message)).await;
                drop(message);
                give_back(k);
            }
            Ok::<_, Error>(())
        })
    } else {
        let peer = tracing.otel.clone();
        let floor = tracing.mode == Mode::FastraceFloor;
        let mut sub = sub_nats.subscribe(CORE_SUBJECT).await?;
        tokio::spawn(async move {
            for k in 1..=n {
                let message = sub.next().await.ok_or("subscription ended")?;
                match &peer {
                    None if floor => {
                        use fastrace::future::FutureExt as _;
                        let span = floor_span("process twload.core", "consumer");
                        handler(&message).in_span(span).await;
                    }
                    None => {
                        handler(&message).await;
                    }
                    Some(peer) => {
                        use opentelemetry::context::FutureExt as _;
                        let cx = peer.process_span(&message);
                        handler(&message).with_context(cx.clone()).await;
                        otel::end(&cx, &Ok::<(), &str>(()));
                    }
                }
                drop(message);
                give_back(k);
            }
            Ok::<_, Error>(())
        })
    };
    sub_nats.flush().await?;

    let traced = tracewire_nats::Client::new(pub_nats.clone());
    let timer = Timer::start();
    for i in 0..n {
        if i % u64::from(CHUNK) == 0 {
            credits.acquire_many(CHUNK).await?.forget();
        }
        let payload = payload.clone();
        match (tracing.tracewire(), &tracing.otel) {
            (true, _) => traced.publish(CORE_SUBJECT, payload).await?,
            (false, None) if tracing.mode == Mode::FastraceFloor => {
                let span = floor_span("publish twload.core", "producer");
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
                otel::end(&cx, &result);
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
async fn js(url: &str, n: u64, tracing: &Tracing) -> Result<Timing, Error> {
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
    let handled = if tracing.tracewire() {
        let client = tracewire_nats::Client::new(sub_nats);
        let traced = tracewire_nats::jetstream::new(&client);
        let mut messages = traced.messages(messages);
        let settle = tracing.mode != Mode::TracewireNoSettle;
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
        let peer = tracing.otel.clone();
        let floor = tracing.mode == Mode::FastraceFloor;
        tokio::spawn(async move {
            for _ in 0..n {
                let message = messages.next().await.ok_or("consumer ended")??;
                match &peer {
                    None if floor => {
                        use fastrace::future::FutureExt as _;
                        let span = floor_span("process twload.js", "consumer");
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
                        otel::end(&cx, &acked);
                        acked?;
                    }
                }
            }
            Ok::<_, Error>(())
        })
    };

    let js = jetstream::new(pub_nats.clone());
    if tracing.tracewire() {
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
    } else if let Some(peer) = &tracing.otel {
        let mut acks = VecDeque::with_capacity(ACK_WINDOW + 1);
        let end = |(cx, ack): (opentelemetry::Context, _)| async move {
            let result: Result<_, _> = std::future::IntoFuture::into_future(ack).await;
            otel::end(&cx, &result);
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
                    otel::end(&cx, &Err::<(), _>(&e));
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
    } else if tracing.mode == Mode::FastraceFloor {
        let mut acks = VecDeque::with_capacity(ACK_WINDOW + 1);
        for _ in 0..n {
            let span = floor_span("publish twload.js", "producer");
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
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref().unwrap_or("tracewire") {
        "untraced" => Mode::Untraced,
        "tracewire" => Mode::Tracewire,
        "tracewire-unsampled" => Mode::TracewireUnsampled,
        "otel" => Mode::Otel,
        "otel-unsampled" => Mode::OtelUnsampled,
        "tracewire-nosettle" => Mode::TracewireNoSettle,
        "fastrace-floor" => Mode::FastraceFloor,
        other => return Err(format!("unknown mode {other}").into()),
    };
    let transport = args.next().unwrap_or_else(|| "core".to_owned());
    let n: u64 = match args.next() {
        Some(n) => n.parse()?,
        None if transport == "js" => 50_000,
        None => 200_000,
    };
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let info = rt.block_on(async {
        let probe = async_nats::connect(&url).await?;
        Ok::<_, Error>(probe.server_info())
    })?;
    let tracing = setup(mode, &info);

    let timing = rt.block_on(async {
        match transport.as_str() {
            "core" => core(&url, n, &tracing).await,
            "js" => js(&url, n, &tracing).await,
            other => Err(format!("unknown transport {other}").into()),
        }
    })?;
    let threads: Vec<String> = timing
        .threads
        .iter()
        .map(|(name, ns)| format!("{name}={:.2}", *ns as f64 / 1e3 / n as f64))
        .collect();
    println!("THREADS µs/msg {}", threads.join(" "));
    let (spans, dropped) = tracing.finish();
    let secs = timing.wall.as_secs_f64();
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "RESULT {} {transport} {n} {secs:.3} {:.0} {:.2} {:.2} {spans} {dropped} {:.2} {:.2}",
        match mode {
            Mode::Untraced => "untraced",
            Mode::Tracewire => "tracewire",
            Mode::TracewireUnsampled => "tracewire-unsampled",
            Mode::Otel => "otel",
            Mode::OtelUnsampled => "otel-unsampled",
            Mode::TracewireNoSettle => "tracewire-nosettle",
            Mode::FastraceFloor => "fastrace-floor",
        },
        n as f64 / secs,
        per_message(timing.cpu),
        timing.cpu.as_secs_f64() / secs,
        per_message(timing.main_cpu),
        per_message(timing.cpu.saturating_sub(timing.main_cpu)),
    );
    Ok(())
}
