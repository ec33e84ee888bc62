//! NATS messaging: the CPU one traced publish and one traced process add on the calling
//! thread, tracewire-nats next to the bare async-nats client and to what users hand-write
//! today with OpenTelemetry, in one run.
//!
//! ```text
//! bash scripts/services.sh start nats          # NATS on 127.0.0.1:4222 (NATS_URL overrides)
//! cargo bench -p tracewire-benches --bench messaging
//! ```
//!
//! Stacks (every group has the same rows where they apply):
//!
//! - `bare`: async-nats 0.51 alone, no tracing.
//! - `tracewire sampled` / `tracewire unsampled`: `tracewire_nats::Client` (the `Client::new`
//!   configuration: `messaging.system`, server address and port, client id; default
//!   propagators `tracecontext,baggage`), sampler `parentbased(always_on)` /
//!   `parentbased(always_off)`. Recorded spans go to fastrace's collector and on to
//!   tracewire's export pipeline (`tracewire_export::Pipeline`: bounded queue, OTLP mapping,
//!   batching) with an exporter that encodes each request to OTLP protobuf bytes
//!   (`encode_request`) and drops them.
//! - `otel sampled` / `otel unsampled`: the hand-written peer — the OpenTelemetry SDK 0.33
//!   tracer (`SdkTracerProvider`, sampler `ParentBased(AlwaysOn / AlwaysOff)`,
//!   `BatchSpanProcessor` with an exporter that does what `opentelemetry-otlp` does before
//!   sending — group by resource and scope, convert, prost-encode — and drops the bytes), a
//!   W3C `TraceContextPropagator` injecting into / extracting from an `async_nats::HeaderMap`
//!   with the injector and extractor of the `opentelemetry-nats` crate (ported to async-nats
//!   0.51), one SDK span per publish (PRODUCER) and per process (CONSUMER, child of the
//!   extracted context) with the same attributes tracewire records (`messaging.system`,
//!   `messaging.operation.type`/`.name`, `messaging.destination.name`,
//!   `messaging.message.body.size`, `messaging.client.id`, `server.address`, `server.port`),
//!   the span name `publish {subject}` / `process {subject}`, and the handler run with the
//!   span's context attached on every poll (`opentelemetry::context::FutureExt::with_context`).
//!
//! Groups (time = **CPU time of the benchmarking thread**, `common::ThreadCpu`: fastrace's
//! collector, tracewire's export worker and the SDK's batch thread are not counted on either
//! side — `benches/examples/nats_load.rs` counts everything). Each row runs 256 times back
//! to back (timed), then everything is drained untimed (see `paced`), so both tracers are
//! measured at a span rate their background threads keep up with and nothing is dropped:
//!
//! - `nats/publish`: one core-NATS publish of a 128-byte payload to a real server, on a
//!   current-thread tokio runtime that also runs the client's connection task — the timed
//!   region holds the span, the headers built and injected, the async-nats publish call, and
//!   the connection task serialising the 256 messages, headers included, and writing them to
//!   the socket (it runs at the end of each 256). `bare + traceparent` publishes with a
//!   prepared, constant `traceparent` header: what carrying the header costs without any
//!   tracing.
//! - `nats/publish-tracing`: the same tracing work without the publish — tracewire's
//!   `Messaging::send` into a `tracewire_nats::HeaderInjector` (what `Client::publish` does
//!   before calling async-nats) and the span's end; the peer's span, injection and end; the
//!   header map dropped on both sides. `fastrace root span` is the engine's floor (a root
//!   span with two properties, submitted). `..., lean injector` rows: tracewire with the
//!   injector of `LeanInjector` (a what-if for tracewire-nats's carrier).
//! - `nats/process`: a prepared `async_nats::Message` (subject, 128-byte payload, headers
//!   `traceparent` — flags `01` for the sampled rows, `00` for the unsampled ones — plus
//!   `content-type`, `x-request-id`, `x-tenant`), cloned outside the timed region; timed:
//!   context extracted, the process span started, an empty async handler polled inside it
//!   (a no-op waker: no runtime, no network), the span ended, the message dropped.
//!   tracewire: `Client::process` + `Message::instrument`; it also links the creation
//!   context (its default `ChildAndLink` relation), the peer does not. `fastrace root span`:
//!   a bare root span with the handler in it (`in_span`).
//! - `nats/process-jetstream`: the same message as a JetStream delivery (reply subject
//!   `$JS.ACK.ORDERS.workers.1.17.40.<nanos>.3`); tracewire: `jetstream::Context::process`
//!   (delivery count, queue time, stream and sequences recorded) + `instrument`; the peer as
//!   in `nats/process`. No ack (that is network).
//!
//! `NATS_BENCH_PROFILE=<group>/<row>[:n]` runs one row `n` times without criterion, for
//! `valgrind --tool=callgrind` (see `profile`); `NATS_BENCH_FLOOD=1` times without draining
//! (see `paced`); `NATS_BENCH_REPORTER=discard` gives fastrace a discarding reporter instead
//! of the pipeline.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

mod common;
use common::{ThreadCpu, median_ns};

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use criterion::Criterion;
use tracewire_core::{Sampler, Tracer};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, Pipeline, SpanExporter};
use tracewire_messaging::{Destination, MessageInfo, Messaging};
use tracewire_nats::HeaderInjector;

const SUBJECT: &str = "tw.bench.orders";
const PAYLOAD: [u8; 128] = [b'x'; 128];
const TRACEPARENT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACEPARENT_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

const BARE: &str = "bare";
const BARE_HEADER: &str = "bare + traceparent";
const FLOOR: &str = "fastrace root span";
const TW_SAMPLED: &str = "tracewire sampled";
const TW_UNSAMPLED: &str = "tracewire unsampled";
const OTEL_SAMPLED: &str = "otel sampled";
const OTEL_UNSAMPLED: &str = "otel unsampled";

const TW_SAMPLED_LEAN: &str = "tracewire sampled, lean injector";
const TW_UNSAMPLED_LEAN: &str = "tracewire unsampled, lean injector";

const PUBLISH: &str = "nats/publish";
const PUBLISH_TRACING: &str = "nats/publish-tracing";
const PROCESS: &str = "nats/process";
const PROCESS_JS: &str = "nats/process-jetstream";
/// The reply subject of a JetStream message (stream `ORDERS`, consumer `workers`, first
/// delivery, stream sequence 17, consumer sequence 40, published at the nanos shown).
const JS_REPLY: &str = "$JS.ACK.ORDERS.workers.1.17.40.1796197401115296289.3";

/// Encodes each OTLP request tracewire's pipeline sends (what its OTLP exporters put on the
/// wire), counts its spans and drops the bytes.
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

/// Drops every span fastrace collects.
struct Discard;

impl fastrace::collector::Reporter for Discard {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        drop(black_box(spans));
    }
}

/// The hand-written OpenTelemetry peer: `opentelemetry-nats`'s carriers (ported to
/// async-nats 0.51, `/tmp/scratch-nats/src/otel.rs`), an SDK tracer, a W3C propagator.
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

    /// `opentelemetry-nats`'s `NatsHeaderInjector` (it panics on an invalid key, as there).
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

    /// Counts the spans of each batch and drops it.
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

    /// One instrumented NATS client, as a user writes it: the tracer, the propagator, the
    /// connection's facts for the attributes.
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

        /// Starts the PRODUCER span of a publish and injects its context into `headers`.
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

        /// Starts the CONSUMER span of a received message, the child of its context.
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

    /// Ends the span of `cx`.
    pub(crate) fn end(cx: &Context) {
        cx.span().end();
    }
}

/// What-if for tracewire-nats's `HeaderInjector` (rows `..., lean injector`): the same
/// writes without the two copies its `set` makes — the static header name as
/// `HeaderName::from_static` (no parse, no allocation) and the value `String` moved into the
/// `HeaderValue` (no copy; async-nats's `From<String>` still checks it for CR/LF, after a
/// cheap byte scan here so that a bad value is skipped, never a panic). Reads as
/// tracewire-nats's carrier does.
struct LeanInjector<'a>(&'a mut HeaderMap);

type LeanEntry<'a> = (
    &'a async_nats::header::HeaderName,
    &'a Vec<async_nats::header::HeaderValue>,
);

impl tracewire_core::Extractor for LeanInjector<'_> {
    type Values<'b>
        = Box<dyn Iterator<Item = &'b str> + 'b>
    where
        Self: 'b;
    type Keys<'b>
        = std::iter::Map<
        std::collections::hash_map::Iter<
            'b,
            async_nats::header::HeaderName,
            Vec<async_nats::header::HeaderValue>,
        >,
        fn(LeanEntry<'b>) -> &'b str,
    >
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> Self::Values<'_> {
        let key = key.to_owned();
        Box::new(
            self.0
                .iter()
                .filter(move |(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(&key))
                .flat_map(|(_, values)| values.iter().map(|v| v.as_str())),
        )
    }

    fn keys(&self) -> Self::Keys<'_> {
        fn name<'a>((name, _): LeanEntry<'a>) -> &'a str {
            name.as_ref()
        }
        self.0.iter().map(name)
    }
}

impl tracewire_core::Injector for LeanInjector<'_> {
    fn set(&mut self, key: &'static str, value: String) {
        if key.is_empty() || value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return;
        }
        self.0.insert(
            async_nats::header::HeaderName::from_static(key),
            async_nats::header::HeaderValue::from(value),
        );
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        HeaderInjector(self.0).set_dynamic(key, value);
    }
}

/// Polls `fut` once with a no-op waker (the handlers here never wait).
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the handler waited"),
    }
}

/// The handler: nothing but a look at the message.
async fn handler(message: &async_nats::Message) -> usize {
    black_box(message.payload.len())
}

/// A received message: what a subscriber yields for a message published with a trace
/// context and a few headers of the application's own.
fn received(traceparent: &str) -> async_nats::Message {
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", traceparent);
    headers.insert("content-type", "application/json");
    headers.insert("x-request-id", "7f3c2a9e-5b1d-4e8f-9a6c-2d4b8e1f0a3c");
    headers.insert("x-tenant", "acme");
    async_nats::Message {
        subject: Subject::from_static(SUBJECT),
        reply: None,
        payload: Bytes::from_static(&PAYLOAD),
        headers: Some(headers),
        status: None,
        description: None,
        length: 0,
    }
}

fn tracer(sampled: bool) -> Tracer {
    Tracer::new().with_sampler(Sampler::parent_based(if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    }))
}

/// Everything the rows share: one connection to the server (its task runs on `rt`), the
/// traced clients over it, the peers.
struct Fixture {
    rt: tokio::runtime::Runtime,
    nats: async_nats::Client,
    tw: [tracewire_nats::Client; 2],
    tw_js: [tracewire_nats::jetstream::Context; 2],
    js: async_nats::jetstream::Context,
    otel: [otel::Peer; 2],
    subject: Subject,
    payload: Bytes,
    pipeline: Pipeline,
    tw_exported: Arc<AtomicU64>,
    otel_exported: Arc<AtomicU64>,
}

impl Fixture {
    fn new() -> Self {
        let tw_exported = Arc::new(AtomicU64::new(0));
        let pipeline = Pipeline::builder()
            .exporter(CountingSink(tw_exported.clone()))
            .build()
            .unwrap();
        // `NATS_BENCH_REPORTER=discard`: fastrace's collector hands the spans to a reporter
        // that drops them, the export pipeline left out (to tell the two apart).
        if std::env::var("NATS_BENCH_REPORTER").as_deref() == Ok("discard") {
            fastrace::set_reporter(Discard, fastrace::collector::Config::default());
        } else {
            fastrace::set_reporter(pipeline.reporter(), fastrace::collector::Config::default());
        }

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let nats = rt.block_on(async_nats::connect(&url)).unwrap_or_else(|e| {
            panic!("no NATS server at {url} ({e}): `bash scripts/services.sh start nats`")
        });
        let info = nats.server_info();
        // What `tracewire_nats::Client::new` configures, with an explicit tracer.
        let traced = |sampled: bool| {
            let messaging = Messaging::new("nats")
                .tracer(tracer(sampled))
                .server(info.host.clone(), Some(info.port))
                .client_id(info.client_id.to_string());
            tracewire_nats::Client::with_messaging(nats.clone(), messaging)
        };
        let otel_exported = Arc::new(AtomicU64::new(0));
        let tw = [traced(true), traced(false)];
        // JetStream contexts spawn a task: made inside the runtime.
        let entered = rt.enter();
        let tw_js = [
            tracewire_nats::jetstream::new(&tw[0]),
            tracewire_nats::jetstream::new(&tw[1]),
        ];
        let js = async_nats::jetstream::new(nats.clone());
        drop(entered);
        Fixture {
            tw_js,
            js,
            tw,
            otel: [
                otel::Peer::new(true, otel_exported.clone(), &info),
                otel::Peer::new(false, otel_exported.clone(), &info),
            ],
            rt,
            nats,
            subject: Subject::from_static(SUBJECT),
            payload: Bytes::from_static(&PAYLOAD),
            pipeline,
            tw_exported,
            otel_exported,
        }
    }

    fn tw(&self, sampled: bool) -> &tracewire_nats::Client {
        &self.tw[usize::from(!sampled)]
    }

    fn otel(&self, sampled: bool) -> &otel::Peer {
        &self.otel[usize::from(!sampled)]
    }

    /// One core-NATS publish by `stack` (on the runtime that runs the connection task).
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn publish(&self, stack: &str) {
        let subject = self.subject.clone();
        let payload = self.payload.clone();
        let result = self.rt.block_on(async {
            match stack {
                BARE => self.nats.publish(subject, payload).await,
                BARE_HEADER => {
                    let mut headers = HeaderMap::new();
                    headers.insert("traceparent", TRACEPARENT_SAMPLED);
                    self.nats
                        .publish_with_headers(subject, headers, payload)
                        .await
                }
                TW_SAMPLED | TW_UNSAMPLED => {
                    self.tw(stack == TW_SAMPLED).publish(subject, payload).await
                }
                OTEL_SAMPLED | OTEL_UNSAMPLED => {
                    let peer = self.otel(stack == OTEL_SAMPLED);
                    let mut headers = HeaderMap::new();
                    let cx = peer.publish_span(&subject, payload.len(), &mut headers);
                    let result = self
                        .nats
                        .publish_with_headers(subject, headers, payload)
                        .await;
                    if let Err(e) = &result {
                        use opentelemetry::trace::TraceContextExt as _;
                        cx.span()
                            .set_status(opentelemetry::trace::Status::error(e.to_string()));
                    }
                    otel::end(&cx);
                    result
                }
                other => panic!("no publish row {other}"),
            }
        });
        result.unwrap();
    }

    /// The tracing work of one publish, without the publish.
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn publish_tracing(&self, stack: &str) {
        let mut headers = HeaderMap::new();
        match stack {
            FLOOR => {
                let span = fastrace::Span::root(
                    "publish tw.bench.orders",
                    fastrace::collector::SpanContext::random(),
                )
                .with_properties(|| [("span.kind", "producer"), ("trace.flags", "01")]);
                drop(span);
            }
            TW_SAMPLED | TW_UNSAMPLED | TW_SAMPLED_LEAN | TW_UNSAMPLED_LEAN => {
                // What `Client::publish` does before it calls async-nats.
                let messaging = self
                    .tw(stack == TW_SAMPLED || stack == TW_SAMPLED_LEAN)
                    .messaging();
                let info = MessageInfo {
                    body_size: Some(self.payload.len()),
                    ..MessageInfo::new(Destination::new(SUBJECT))
                };
                let span = if stack == TW_SAMPLED || stack == TW_UNSAMPLED {
                    messaging.send(&info, &mut HeaderInjector(&mut headers))
                } else {
                    messaging.send(&info, &mut LeanInjector(&mut headers))
                };
                span.end();
            }
            OTEL_SAMPLED | OTEL_UNSAMPLED => {
                let peer = self.otel(stack == OTEL_SAMPLED);
                let cx = peer.publish_span(SUBJECT, self.payload.len(), &mut headers);
                otel::end(&cx);
            }
            other => panic!("no publish-tracing row {other}"),
        }
        drop(black_box(headers));
    }

    /// Processes one received message by `stack`: its span, the empty handler in it, the
    /// message dropped.
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn process(&self, stack: &str, message: async_nats::Message) {
        match stack {
            BARE => {
                run(handler(&message));
                drop(message);
            }
            FLOOR => {
                let span = fastrace::Span::root(
                    "process tw.bench.orders",
                    fastrace::collector::SpanContext::random(),
                )
                .with_properties(|| [("span.kind", "consumer"), ("trace.flags", "01")]);
                {
                    use fastrace::future::FutureExt as _;
                    run(handler(&message).in_span(span));
                }
                drop(message);
            }
            TW_SAMPLED | TW_UNSAMPLED => {
                let message = self.tw(stack == TW_SAMPLED).process(message);
                run(message.instrument(handler(&message)));
                drop(message);
            }
            OTEL_SAMPLED | OTEL_UNSAMPLED => {
                use opentelemetry::context::FutureExt as _;
                let peer = self.otel(stack == OTEL_SAMPLED);
                let cx = peer.process_span(&message);
                run(handler(&message).with_context(cx.clone()));
                otel::end(&cx);
                drop(message);
            }
            other => panic!("no process row {other}"),
        }
    }

    /// Processes one JetStream message by `stack` (as `process`; no ack: that is network).
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn process_js(&self, stack: &str, message: async_nats::jetstream::Message) {
        match stack {
            BARE => {
                run(handler(&message));
                drop(message);
            }
            TW_SAMPLED | TW_UNSAMPLED => {
                let message = self.tw_js[usize::from(stack != TW_SAMPLED)].process(message);
                run(message.instrument(handler(&message)));
                drop(message);
            }
            OTEL_SAMPLED | OTEL_UNSAMPLED => {
                use opentelemetry::context::FutureExt as _;
                let peer = self.otel(stack == OTEL_SAMPLED);
                let cx = peer.process_span(&message);
                run(handler(&message).with_context(cx.clone()));
                otel::end(&cx);
                drop(message);
            }
            other => panic!("no process-jetstream row {other}"),
        }
    }

    /// The prepared JetStream message for `stack`'s rows.
    fn js_message(&self, stack: &str) -> async_nats::jetstream::Message {
        let mut message = Fixture::message(stack);
        message.reply = Some(Subject::from_static(JS_REPLY));
        async_nats::jetstream::Message {
            message,
            context: self.js.clone(),
        }
    }

    /// The prepared message for `stack`'s rows.
    fn message(stack: &str) -> async_nats::Message {
        received(if stack.ends_with("unsampled") {
            TRACEPARENT_UNSAMPLED
        } else {
            TRACEPARENT_SAMPLED
        })
    }

    /// Lets the connection task run: it serialises and writes the publishes queued so far.
    #[inline(never)] // a symbol for callgrind's --toggle-collect
    fn let_connection_run(&self) {
        self.rt.block_on(async {
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        });
    }

    fn flush(&self) {
        self.rt.block_on(self.nats.flush()).unwrap();
        fastrace::flush();
        self.pipeline.flush(Duration::from_secs(10));
        for peer in &self.otel {
            let _ = peer.provider.force_flush();
        }
    }

    fn report(&self) {
        let c = self.pipeline.counters();
        eprintln!(
            "spans: tracewire pipeline exported {} (dropped at its queue: {}), OpenTelemetry batch processor exported {}",
            self.tw_exported.load(Ordering::Relaxed),
            c.dropped,
            self.otel_exported.load(Ordering::Relaxed),
        );
    }
}

const PUBLISH_ROWS: [&str; 6] = [
    BARE,
    BARE_HEADER,
    TW_SAMPLED,
    TW_UNSAMPLED,
    OTEL_SAMPLED,
    OTEL_UNSAMPLED,
];
const PUBLISH_TRACING_ROWS: [&str; 7] = [
    FLOOR,
    TW_SAMPLED,
    TW_UNSAMPLED,
    OTEL_SAMPLED,
    OTEL_UNSAMPLED,
    TW_SAMPLED_LEAN,
    TW_UNSAMPLED_LEAN,
];
const PROCESS_ROWS: [&str; 6] = [
    BARE,
    FLOOR,
    TW_SAMPLED,
    TW_UNSAMPLED,
    OTEL_SAMPLED,
    OTEL_UNSAMPLED,
];
const PROCESS_JS_ROWS: [&str; 5] = [BARE, TW_SAMPLED, TW_UNSAMPLED, OTEL_SAMPLED, OTEL_UNSAMPLED];

/// Iterations timed back to back; the exporters are drained (untimed) after each run of
/// them.
const PACE: u64 = 256;

/// Times `iters` runs of a row in runs of [`PACE`]: `prepare(k)` makes the input of `k` runs
/// (untimed), `run` does them (timed, on this thread's CPU clock), then everything the rows
/// produced is drained, untimed — the NATS connection flushed, fastrace's queues collected
/// and tracewire's pipeline exported, the SDK's batch processor flushed — so every row is
/// measured at a rate its background threads keep up with, and no span is dropped.
/// `NATS_BENCH_FLOOD=1` skips the drain: spans are then made as fast as the bench thread
/// can, far beyond what the collectors take (fastrace's per-thread queue then grows without
/// bound, the pipeline and the SDK drop at their 2048-span queues).
fn paced<T>(
    fx: &Fixture,
    iters: u64,
    mut prepare: impl FnMut(u64) -> T,
    mut run: impl FnMut(T),
) -> Duration {
    let flood = std::env::var_os("NATS_BENCH_FLOOD").is_some();
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(PACE);
        let input = prepare(k);
        let start = cpu_time::ThreadTime::now();
        run(input);
        total += start.elapsed();
        left -= k;
        if !flood {
            fx.flush();
        }
    }
    total
}

fn benches(c: &mut Criterion<ThreadCpu>, fx: &Fixture) {
    let mut g = c.benchmark_group(PUBLISH);
    for row in PUBLISH_ROWS {
        g.bench_function(row, |b| {
            b.iter_custom(|iters| {
                paced(
                    fx,
                    iters,
                    |k| k,
                    |k| {
                        for _ in 0..k {
                            fx.publish(row);
                        }
                        // The connection task writes what it was handed (timed).
                        fx.let_connection_run();
                    },
                )
            })
        });
        fx.flush();
    }
    g.finish();

    let mut g = c.benchmark_group(PUBLISH_TRACING);
    for row in PUBLISH_TRACING_ROWS {
        g.bench_function(row, |b| {
            b.iter_custom(|iters| {
                paced(
                    fx,
                    iters,
                    |k| k,
                    |k| {
                        for _ in 0..k {
                            fx.publish_tracing(row);
                        }
                    },
                )
            })
        });
        fx.flush();
    }
    g.finish();

    let mut g = c.benchmark_group(PROCESS);
    for row in PROCESS_ROWS {
        let message = Fixture::message(row);
        g.bench_function(row, |b| {
            b.iter_custom(|iters| {
                paced(
                    fx,
                    iters,
                    |k| (0..k).map(|_| message.clone()).collect::<Vec<_>>(),
                    |messages| {
                        for m in messages {
                            fx.process(row, m);
                        }
                    },
                )
            })
        });
        fx.flush();
    }
    g.finish();

    let mut g = c.benchmark_group(PROCESS_JS);
    for row in PROCESS_JS_ROWS {
        let message = fx.js_message(row);
        g.bench_function(row, |b| {
            b.iter_custom(|iters| {
                paced(
                    fx,
                    iters,
                    |k| (0..k).map(|_| message.clone()).collect::<Vec<_>>(),
                    |messages| {
                        for m in messages {
                            fx.process_js(row, m);
                        }
                    },
                )
            })
        });
        fx.flush();
    }
    g.finish();
}

/// Per group: median, CPU added over `bare`, and the peer's added CPU over tracewire's.
fn print_summary() {
    for (group, rows, base) in [
        (PUBLISH, &PUBLISH_ROWS[..], Some(BARE)),
        (PUBLISH_TRACING, &PUBLISH_TRACING_ROWS[..], None),
        (PROCESS, &PROCESS_ROWS[..], Some(BARE)),
        (PROCESS_JS, &PROCESS_JS_ROWS[..], Some(BARE)),
    ] {
        let base = base.and_then(|b| median_ns(group, b)).unwrap_or(0.0);
        eprintln!(
            "\n{group}\n| row | median ns (cpu) | added over bare | otel / tracewire (added) |"
        );
        eprintln!("|---|---:|---:|---:|");
        for row in rows {
            let Some(v) = median_ns(group, row) else {
                continue;
            };
            let peer_ratio = match *row {
                TW_SAMPLED | TW_UNSAMPLED | TW_SAMPLED_LEAN | TW_UNSAMPLED_LEAN => {
                    let peer = if *row == TW_SAMPLED || *row == TW_SAMPLED_LEAN {
                        OTEL_SAMPLED
                    } else {
                        OTEL_UNSAMPLED
                    };
                    median_ns(group, peer)
                        .map(|p| format!("{:.2}x", (p - base) / (v - base)))
                        .unwrap_or_default()
                }
                _ => String::new(),
            };
            eprintln!("| {row} | {v:.0} | {:+.0} | {peer_ratio} |", v - base);
        }
    }
}

/// `NATS_BENCH_PROFILE=<group>/<row>[:n]` (`publish`, `publish-tracing`, `process` or
/// `process-jetstream`, then a row name with `-` for spaces:
/// `process/tracewire-sampled:10000`): runs that row `n` times (default 10000), drained
/// every 256 as in the criterion runs, and exits — a fixed workload for
/// `valgrind --tool=callgrind`; `--toggle-collect` on the row's `Fixture` method counts the
/// row alone (`publish`: also `let_connection_run`, the connection task's writes):
///
/// ```text
/// NATS_BENCH_PROFILE=process/otel-sampled:10000 valgrind --tool=callgrind \
///     --toggle-collect='*Fixture*process*' target/release/deps/messaging-<hash>
/// ```
fn profile(fx: &Fixture, spec: &str) {
    let (row, n) = spec.split_once(':').unwrap_or((spec, "10000"));
    let n: usize = n.parse().unwrap();
    let (group, row) = row.split_once('/').unwrap();
    let row = row.replace('-', " ");
    let row = PROCESS_ROWS
        .iter()
        .chain(&PUBLISH_ROWS)
        .chain(&PUBLISH_TRACING_ROWS)
        .chain(&PROCESS_JS_ROWS)
        .find(|r| **r == row)
        .unwrap_or_else(|| panic!("unknown row {row}"));
    let message = Fixture::message(row);
    let js_message = fx.js_message(row);
    for i in 0..n {
        match group {
            "publish" => fx.publish(row),
            "publish-tracing" => fx.publish_tracing(row),
            "process" => fx.process(row, message.clone()),
            "process-jetstream" => fx.process_js(row, js_message.clone()),
            other => panic!("unknown group {other}"),
        }
        // Paced as in the criterion runs.
        if (i + 1) % PACE as usize == 0 {
            if group == "publish" {
                fx.let_connection_run();
            }
            fx.flush();
        }
    }
    fx.flush();
}

fn main() {
    let fx = Fixture::new();
    if let Ok(spec) = std::env::var("NATS_BENCH_PROFILE") {
        profile(&fx, &spec);
        fx.report();
        return;
    }
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut c, &fx);
    fx.flush();
    c.final_summary();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
        print_summary();
        fx.report();
    }
}
