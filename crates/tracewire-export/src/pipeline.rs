//! The export pipeline: a fastrace [`Reporter`] that only enqueues, and one worker thread that
//! maps, batches (by count and encoded size), exports with a timeout, retries transient
//! failures with exponential backoff and jitter, and counts everything.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fastrace::collector::{Reporter, SpanRecord};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

use crate::encode::{DirectEncoder, EncodedRequest};
use crate::exporter::{ExportError, Input, SpanExporter};
use crate::map::{Mapper, SpanLimits};
use crate::resource::Resource;

/// The largest OTLP request the pipeline builds (4 MiB, the default gRPC message limit).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Batching settings (the `OTEL_BSP_*` variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Spans the queue holds; more are dropped and counted (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048).
    pub max_queue_size: usize,
    /// Longest a span waits before export (`OTEL_BSP_SCHEDULE_DELAY`, 5 s).
    pub scheduled_delay: Duration,
    /// Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512).
    pub max_export_batch_size: usize,
    /// Time allowed for one export attempt (`OTEL_BSP_EXPORT_TIMEOUT`, 30 s).
    pub export_timeout: Duration,
    /// Encoded bytes per request (default and maximum [`MAX_REQUEST_BYTES`]).
    pub max_request_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue_size: 2048,
            scheduled_delay: Duration::from_secs(5),
            max_export_batch_size: 512,
            export_timeout: Duration::from_secs(30),
            max_request_bytes: MAX_REQUEST_BYTES,
        }
    }
}

/// Retries of transient failures: exponential backoff with jitter, as the OTLP spec asks; a
/// server-provided delay (`Retry-After`, gRPC `RetryInfo`) replaces the computed one.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry). Default 5.
    pub max_attempts: u32,
    /// Delay before the first retry (default 1 s).
    pub initial_backoff: Duration,
    /// Cap on any one delay (default 5 s).
    pub max_backoff: Duration,
    /// Growth factor between retries (default 1.5).
    pub multiplier: f64,
    /// Cap on a server-provided delay (`Retry-After`, `RetryInfo`; default 30 s): a collector
    /// asking for an hour does not stall the export for an hour.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            multiplier: 1.5,
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The jittered delay before retry number `retry` (1-based): uniform in
    /// `[d/2, d]` where `d = min(initial · multiplier^(retry-1), max)`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(retry.saturating_sub(1) as i32);
        let d = self
            .initial_backoff
            .mul_f64(exp.min(1e6))
            .min(self.max_backoff);
        d.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// What the pipeline has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Spans accepted into the queue.
    pub queued: u64,
    /// Span deliveries that succeeded (a span sent to two exporters counts twice).
    pub exported: u64,
    /// Spans dropped because the queue was full (or the pipeline shut down).
    pub dropped: u64,
    /// Span deliveries that failed for good (permanent error, or retries exhausted).
    pub failed: u64,
    /// Export attempts that were retried.
    pub retries: u64,
    /// Spans waiting in the queue now.
    pub queue_len: u64,
}

#[derive(Default)]
struct AtomicCounters {
    queued: AtomicU64,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

struct State {
    queue: VecDeque<SpanRecord>,
    flush_requested: u64,
    flush_done: u64,
    shutdown: bool,
    stopped: bool,
    give_up_at: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    counters: AtomicCounters,
    config: BatchConfig,
    simple: bool,
    /// Set when a shutdown passed its deadline: in-flight exports and retry waits end at once
    /// and what they held is counted as failed, the queue as dropped.
    cancelled: AtomicBool,
    cancel: tokio::sync::Notify,
    /// Woken by a flush: a retry waiting out its delay goes now.
    hurry: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Resolves once a shutdown has given up (at once if it already has).
    async fn cancelled(&self) {
        let notified = self.cancel.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.is_cancelled() {
            return;
        }
        notified.await;
    }

    /// Gives up: in-flight exports end, the queue is dropped (counted).
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.cancel.notify_waiters();
        self.wake.notify_all();
    }
}

/// How long a shutdown that gave up at its deadline waits for the worker to count what it
/// abandons.
const CANCEL_GRACE: Duration = Duration::from_millis(500);

/// Builds a [`Pipeline`].
pub struct PipelineBuilder {
    exporters: Vec<Arc<dyn SpanExporter>>,
    resource: Resource,
    scope: InstrumentationScope,
    limits: SpanLimits,
    config: BatchConfig,
    retry: RetryPolicy,
    simple: bool,
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        PipelineBuilder::new()
    }
}

impl PipelineBuilder {
    /// No exporters, the detected resource with the default service name, default batching,
    /// limits and retries.
    pub fn new() -> Self {
        PipelineBuilder {
            exporters: Vec::new(),
            resource: Resource::detect(Resource::default_service_name()),
            scope: InstrumentationScope {
                name: "tracewire".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..InstrumentationScope::default()
            },
            limits: SpanLimits::default(),
            config: BatchConfig::default(),
            retry: RetryPolicy::default(),
            simple: false,
        }
    }

    /// Adds an exporter. Several exporters receive every batch (fan-out); each has its own
    /// timeout and retries, so a slow one does not make another lose spans.
    pub fn exporter(mut self, exporter: impl SpanExporter) -> Self {
        self.exporters.push(Arc::new(exporter));
        self
    }

    /// Adds an already boxed exporter.
    pub fn boxed_exporter(mut self, exporter: Box<dyn SpanExporter>) -> Self {
        self.exporters.push(Arc::from(exporter));
        self
    }

    /// The resource sent with every batch.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = resource;
        self
    }

    /// The instrumentation scope of the spans (default `tracewire` + its version).
    pub fn scope(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.scope.name = name.into();
        self.scope.version = version.into();
        self
    }

    /// Span limits applied while mapping.
    pub fn limits(mut self, limits: SpanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Batching settings. `max_request_bytes` is capped at [`MAX_REQUEST_BYTES`]; sizes of 0
    /// are raised to 1.
    pub fn batch(mut self, config: BatchConfig) -> Self {
        self.config = config;
        self
    }

    /// Retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Simple mode, for debugging: export whatever fastrace reports (each finished trace)
    /// right away instead of waiting for a full batch or the scheduled delay.
    pub fn simple(mut self, yes: bool) -> Self {
        self.simple = yes;
        self
    }

    /// Starts the worker thread.
    pub fn build(self) -> std::io::Result<Pipeline> {
        let mut config = self.config;
        config.max_queue_size = config.max_queue_size.max(1);
        config.max_export_batch_size = config.max_export_batch_size.max(1);
        config.max_request_bytes = config.max_request_bytes.clamp(1024, MAX_REQUEST_BYTES);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                flush_requested: 0,
                flush_done: 0,
                shutdown: false,
                stopped: false,
                give_up_at: None,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            counters: AtomicCounters::default(),
            config,
            simple: self.simple,
            cancelled: AtomicBool::new(false),
            cancel: tokio::sync::Notify::new(),
            hurry: tokio::sync::Notify::new(),
        });
        let names: Vec<String> = self.exporters.iter().map(|e| e.name().to_owned()).collect();
        let mut describe = String::new();
        let _ = write!(
            describe,
            "exporters: [{}]\nmode: {}\nqueue: {} spans, batch: {} spans / {} bytes, delay: {:?}, timeout: {:?}\nretry: {:?}\nlimits: {:?}\nresource:",
            names.join(", "),
            if shared.simple { "simple" } else { "batch" },
            shared.config.max_queue_size,
            shared.config.max_export_batch_size,
            shared.config.max_request_bytes,
            shared.config.scheduled_delay,
            shared.config.export_timeout,
            self.retry,
            self.limits,
        );
        for (k, v) in self.resource.iter() {
            let _ = write!(describe, "\n  {k} = {v}");
        }
        let resource = self.resource.to_proto();
        let encoder = DirectEncoder::new(
            &resource,
            &self.scope,
            tracewire_core::semconv::SCHEMA_URL,
            self.limits.clone(),
        );
        let inputs = self.exporters.iter().map(|e| e.input()).collect();
        let worker = Worker {
            shared: shared.clone(),
            exporters: self.exporters,
            inputs,
            resource,
            scope: self.scope,
            mapper: Mapper::new(self.limits),
            encoder,
            retry: self.retry,
        };
        let handle = std::thread::Builder::new()
            .name("tracewire-export".to_owned())
            .spawn(move || worker.run())?;
        Ok(Pipeline {
            inner: Arc::new(PipelineInner {
                shared,
                worker: Mutex::new(Some(handle)),
                describe,
            }),
        })
    }
}

struct PipelineInner {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    describe: String,
}

/// A running pipeline. Cheap to clone; give [`Pipeline::reporter`] to fastrace.
///
/// ```
/// use std::time::Duration;
/// use tracewire_export::{Pipeline, console::OtlpJsonLines};
///
/// let pipeline = Pipeline::builder()
///     .exporter(OtlpJsonLines::stdout())
///     .build()
///     .unwrap();
/// // In an application (fastrace `enable` feature on):
/// fastrace::set_reporter(pipeline.reporter(), fastrace::collector::Config::default());
/// // ... on the way out:
/// assert!(pipeline.shutdown(Duration::from_secs(5)));
/// ```
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<PipelineInner>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A builder.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::new()
    }

    /// The fastrace reporter feeding this pipeline.
    pub fn reporter(&self) -> PipelineReporter {
        PipelineReporter {
            shared: self.inner.shared.clone(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        let c = &self.inner.shared.counters;
        Counters {
            queued: c.queued.load(Ordering::Relaxed),
            exported: c.exported.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            queue_len: self.inner.shared.lock().queue.len() as u64,
        }
    }

    /// The effective configuration, one setting per line.
    pub fn describe(&self) -> &str {
        &self.inner.describe
    }

    /// Asks fastrace to hand over finished spans, then waits until everything queued before
    /// this call is exported (or failed for good), at most `timeout`. Returns false on
    /// timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        fastrace::flush();
        let shared = &self.inner.shared;
        let mut st = shared.lock();
        if st.stopped {
            return st.queue.is_empty();
        }
        st.flush_requested += 1;
        let target = st.flush_requested;
        shared.wake.notify_all();
        shared.hurry.notify_waiters();
        while st.flush_done < target && !st.stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = match shared.done.wait_timeout(st, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// Flushes, stops the worker and shuts the exporters down, within `timeout` (retries are
    /// abandoned at the deadline and counted as failed). Spans reported afterwards are
    /// dropped. Returns false if the deadline passed first.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        fastrace::flush();
        let shared = &self.inner.shared;
        {
            let mut st = shared.lock();
            st.shutdown = true;
            st.give_up_at = Some(deadline);
            shared.wake.notify_all();
            shared.hurry.notify_waiters();
            while !st.stopped {
                let now = Instant::now();
                if now >= deadline {
                    // Give up: what is in flight or queued is abandoned — and counted.
                    shared.cancel();
                    let grace = now + CANCEL_GRACE;
                    while !st.stopped && Instant::now() < grace {
                        st = match shared.done.wait_timeout(st, grace - Instant::now()) {
                            Ok((g, _)) => g,
                            Err(p) => p.into_inner().0,
                        };
                    }
                    return false;
                }
                st = match shared.done.wait_timeout(st, deadline - now) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
        }
        let handle = match self.inner.worker.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(h) = handle {
            let _ = h.join();
        }
        true
    }
}

/// The fastrace [`Reporter`] of a [`Pipeline`]: moves spans into the bounded queue and
/// returns at once (drops and counts what does not fit).
#[derive(Clone)]
pub struct PipelineReporter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PipelineReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineReporter").finish_non_exhaustive()
    }
}

impl Reporter for PipelineReporter {
    fn report(&mut self, mut spans: Vec<SpanRecord>) {
        if spans.is_empty() {
            return;
        }
        // A root and everything under it arrive in one report: each span gets its own trace
        // flags and tracestate here, before batches can split them.
        crate::map::inherit_trace_context(&mut spans);
        let shared = &self.shared;
        let mut st = shared.lock();
        if st.shutdown || st.stopped {
            shared
                .counters
                .dropped
                .fetch_add(spans.len() as u64, Ordering::Relaxed);
            return;
        }
        let room = shared.config.max_queue_size.saturating_sub(st.queue.len());
        let total = spans.len();
        let accepted = total.min(room);
        st.queue.extend(spans.into_iter().take(accepted));
        shared
            .counters
            .queued
            .fetch_add(accepted as u64, Ordering::Relaxed);
        if accepted < total {
            shared
                .counters
                .dropped
                .fetch_add((total - accepted) as u64, Ordering::Relaxed);
        }
        if shared.simple || st.queue.len() >= shared.config.max_export_batch_size {
            shared.wake.notify_all();
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    exporters: Vec<Arc<dyn SpanExporter>>,
    /// What each exporter takes.
    inputs: Vec<Input>,
    resource: opentelemetry_proto::tonic::resource::v1::Resource,
    scope: InstrumentationScope,
    /// The OTLP structs, for exporters that take them.
    mapper: Mapper,
    /// The protobuf bytes straight from the spans, for exporters that take them.
    encoder: DirectEncoder,
    retry: RetryPolicy,
}

/// One request as an exporter takes it.
#[derive(Clone)]
enum Payload {
    Request(Arc<ExportTraceServiceRequest>),
    Protobuf(Arc<EncodedRequest>),
}

impl Payload {
    fn span_count(&self) -> usize {
        match self {
            Payload::Request(r) => crate::exporter::span_count(r),
            Payload::Protobuf(e) => e.spans,
        }
    }
}

impl Worker {
    fn run(mut self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                log::error!(target: "tracewire", "cannot start the export runtime: {e}; spans will be dropped");
                let mut st = self.shared.lock();
                st.stopped = true;
                self.shared.done.notify_all();
                return;
            }
        };
        let shared = self.shared.clone();
        let shared = &*shared;
        let cfg = &shared.config;
        let mut last_export = Instant::now();
        loop {
            let (batch, flush_gen, shutting_down, drained_all) = {
                let mut st = shared.lock();
                loop {
                    let due = !st.queue.is_empty()
                        && (shared.simple
                            || st.queue.len() >= cfg.max_export_batch_size
                            || last_export.elapsed() >= cfg.scheduled_delay);
                    if due
                        || st.shutdown
                        || st.flush_requested > st.flush_done
                        || shared.is_cancelled()
                    {
                        break;
                    }
                    let wait = cfg
                        .scheduled_delay
                        .saturating_sub(last_export.elapsed())
                        .max(Duration::from_millis(1));
                    let wait = if st.queue.is_empty() {
                        cfg.scheduled_delay.max(Duration::from_millis(1))
                    } else {
                        wait
                    };
                    st = match shared.wake.wait_timeout(st, wait) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                    if st.queue.is_empty() {
                        last_export = Instant::now();
                    }
                }
                if shared.is_cancelled() {
                    let abandoned = st.queue.len() as u64;
                    st.queue.clear();
                    shared
                        .counters
                        .dropped
                        .fetch_add(abandoned, Ordering::Relaxed);
                }
                let n = st.queue.len().min(cfg.max_export_batch_size);
                let batch: Vec<SpanRecord> = st.queue.drain(..n).collect();
                (batch, st.flush_requested, st.shutdown, st.queue.is_empty())
            };
            if !batch.is_empty() {
                let encoded = self.encode(&batch);
                let requests = if self.inputs.contains(&Input::Request) {
                    let spans = self.mapper.map(batch);
                    self.split(spans).into_iter().map(Arc::new).collect()
                } else {
                    Vec::new()
                };
                rt.block_on(self.export(&requests, &encoded));
                // The exporters are done with the requests: reuse the spans' buffers.
                for request in requests {
                    if let Ok(request) = Arc::try_unwrap(request) {
                        self.mapper.recycle(
                            request
                                .resource_spans
                                .into_iter()
                                .flat_map(|r| r.scope_spans)
                                .flat_map(|s| s.spans),
                        );
                    }
                }
                last_export = Instant::now();
            }
            if drained_all {
                if shutting_down {
                    rt.block_on(async {
                        for e in &self.exporters {
                            e.shutdown().await;
                        }
                    });
                    let mut st = shared.lock();
                    st.flush_done = st.flush_requested;
                    st.stopped = true;
                    // Anything that raced in is dropped and counted.
                    let late = st.queue.len() as u64;
                    st.queue.clear();
                    shared.counters.dropped.fetch_add(late, Ordering::Relaxed);
                    shared.done.notify_all();
                    return;
                }
                let mut st = shared.lock();
                if flush_gen > st.flush_done {
                    st.flush_done = flush_gen;
                    shared.done.notify_all();
                }
            }
        }
    }

    /// The batch encoded straight from the spans, split by size, when an exporter takes
    /// protobuf.
    fn encode(&mut self, batch: &[SpanRecord]) -> Vec<Arc<EncodedRequest>> {
        let takers = self
            .inputs
            .iter()
            .filter(|i| **i == Input::Protobuf)
            .count();
        let mut out = Vec::new();
        if takers == 0 {
            return out;
        }
        let max = self.shared.config.max_request_bytes;
        // The struct path logs a span it drops; count it here for the exporters of bytes.
        let logs = !self.inputs.contains(&Input::Request);
        let counters = &self.shared.counters;
        self.encoder.encode(
            batch,
            max,
            |r| out.push(Arc::new(r)),
            |span, len| {
                counters.failed.fetch_add(takers as u64, Ordering::Relaxed);
                if logs {
                    log::warn!(target: "tracewire", "span {:?} is {len} bytes encoded, over the {max}-byte request limit; dropped", span.name);
                }
            },
        );
        out
    }

    /// Sends each request to every exporter concurrently, as the exporter takes it (the
    /// struct and the byte requests are split alike, request by request), one request after
    /// the other.
    async fn export(
        &self,
        requests: &[Arc<ExportTraceServiceRequest>],
        encoded: &[Arc<EncodedRequest>],
    ) {
        for i in 0..requests.len().max(encoded.len()) {
            let mut tasks = tokio::task::JoinSet::new();
            for (exporter, input) in self.exporters.iter().zip(&self.inputs) {
                let payload = match input {
                    Input::Request => requests.get(i).cloned().map(Payload::Request),
                    Input::Protobuf => encoded.get(i).cloned().map(Payload::Protobuf),
                };
                let Some(payload) = payload else { continue };
                let n = payload.span_count() as u64;
                let exporter = exporter.clone();
                let shared = self.shared.clone();
                let retry = self.retry.clone();
                tasks.spawn(async move {
                    let result = export_with_retry(&*exporter, &payload, &shared, &retry).await;
                    let c = &shared.counters;
                    match result {
                        Ok(()) => {
                            c.exported.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            c.failed.fetch_add(n, Ordering::Relaxed);
                            log::warn!(target: "tracewire", "exporter {}: {n} spans lost: {e}", exporter.name());
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    }

    fn split(&self, spans: Vec<Span>) -> Vec<ExportTraceServiceRequest> {
        let max = self.shared.config.max_request_bytes;
        let overhead = self.resource.encoded_len() + self.scope.encoded_len() + 64;
        let budget = max.saturating_sub(overhead);
        let mut out = Vec::new();
        let mut current: Vec<Span> = Vec::new();
        let mut size = 0;
        for span in spans {
            let len = span.encoded_len();
            let len = len + prost::length_delimiter_len(len) + 1;
            if len > budget {
                let takers = self.inputs.iter().filter(|i| **i == Input::Request).count();
                self.shared
                    .counters
                    .failed
                    .fetch_add(takers as u64, Ordering::Relaxed);
                log::warn!(target: "tracewire", "span {:?} is {len} bytes encoded, over the {max}-byte request limit; dropped", span.name);
                continue;
            }
            if size + len > budget && !current.is_empty() {
                out.push(self.request(std::mem::take(&mut current)));
                size = 0;
            }
            size += len;
            current.push(span);
        }
        if !current.is_empty() {
            out.push(self.request(current));
        }
        out
    }

    fn request(&self, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(self.scope.clone()),
                    spans,
                    schema_url: tracewire_core::semconv::SCHEMA_URL.to_owned(),
                }],
                schema_url: tracewire_core::semconv::SCHEMA_URL.to_owned(),
            }],
        }
    }
}

async fn export_with_retry(
    exporter: &dyn SpanExporter,
    payload: &Payload,
    shared: &Shared,
    retry: &RetryPolicy,
) -> Result<(), ExportError> {
    let timeout = shared.config.export_timeout;
    let abandoned =
        || ExportError::permanent("abandoned: the pipeline shut down past its deadline");
    let mut attempt = 1;
    loop {
        if shared.is_cancelled() {
            return Err(abandoned());
        }
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, match payload {
                Payload::Request(r) => exporter.export(r),
                Payload::Protobuf(e) => exporter.export_protobuf(e),
            }) => match r {
                Ok(r) => r,
                Err(_) => Err(ExportError::timeout(timeout)),
            },
            () = shared.cancelled() => Err(abandoned()),
        };
        let err = match result {
            Ok(()) => return Ok(()),
            Err(e) if !e.is_retryable() || attempt >= retry.max_attempts => return Err(e),
            Err(e) => e,
        };
        let delay = match err.retry_after() {
            Some(asked) => asked.min(retry.max_retry_after),
            None => retry.backoff(attempt),
        };
        let give_up_at = shared.lock().give_up_at;
        if let Some(at) = give_up_at
            && Instant::now() + delay >= at
        {
            return Err(err);
        }
        log::debug!(target: "tracewire", "exporter {}: {err}; retry {attempt} in {delay:?}", exporter.name());
        shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        // A flush cuts the wait short (the retry goes now); a shutdown that gave up ends it.
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.hurry.notified() => {}
            () = shared.cancelled() => return Err(err),
        }
        attempt += 1;
    }
}
