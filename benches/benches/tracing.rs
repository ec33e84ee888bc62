//! `#[tracing::instrument]` spans, per stack, **every thread counted** (see "`tracing` layer"
//! in BENCHMARKS.md).
//!
//! One request is what a traced service does for one inbound call carrying a W3C
//! `traceparent` (sampled `-01`, or unsampled `-00`): it opens its request span the way the
//! stack's HTTP middleware does, and inside it calls [`DEPTH`] nested `#[instrument]`ed async
//! functions with typed fields (`u64`, `i64`, `bool`, `f64`, `&str`); the innermost one awaits
//! something that is not ready at first (as a database call would), so every span is polled
//! twice — and entered three times, as `tracing` enters a span again to drop its future. The
//! same request with no nested call (awaiting the same) gives the request span alone; the
//! difference, divided by [`DEPTH`], is what one `#[instrument]` span costs.
//!
//! | stack | request span | `#[instrument]` spans become | where the spans go |
//! |---|---|---|---|
//! | `no-subscriber` | `info_span!` | nothing (no dispatcher) | |
//! | `registry` | `info_span!` | registry entries (`tracing_subscriber::registry()` alone) | |
//! | `tracewire` | `Tracer::start_root` (the root rule, as tracewire-tower does) | fastrace spans, through `tracewire_tracing::layer()` | tracewire's export pipeline into a sink that encodes each OTLP request and drops it |
//! | `tracewire-discard` | the same | the same | dropped by fastrace's reporter (no export) |
//! | `tracing-opentelemetry` | `info_span!` + `set_parent(extracted)` (as axum-tracing-opentelemetry does) | SDK spans, through `tracing_opentelemetry::layer()` | the SDK's `BatchSpanProcessor` into an exporter that encodes as `opentelemetry-otlp` does and drops the bytes |
//! | `tracing-opentelemetry-discard` | the same | the same layer (defaults) | the same `BatchSpanProcessor` into an exporter that counts the spans and drops them as they come (no conversion, no encoding): the peer's floor |
//! | `tracing-opentelemetry-lean` | the same | the same layer without its default extras (`with_location(false)`, `with_threads(false)`, `with_tracked_inactivity(false)`): its best case | the same |
//! | `fastrace-tracing` | a fastrace root span from the `traceparent` (as fastrace-axum does) | fastrace spans, through `FastraceCompatLayer` | dropped by fastrace's reporter (no export) |
//!
//! Each layer runs with its defaults, as a user installs it (and `tracing-opentelemetry` also
//! without its extras). Each row runs in a **process of
//! its own** (this binary, started again with `TRACING_BENCH_ROW=<row>:<n>`): one global
//! subscriber and one set of background threads per row, as in a service. The child measures
//! its **process CPU time** (`CLOCK_PROCESS_CPUTIME_ID`: the request thread, fastrace's
//! collector, the export worker, the SDK's batch thread) over `n` requests, and flushes and
//! shuts the pipeline down at the end, inside the measurement. The background threads work on
//! their own schedule (fastrace's collector every 10 ms, as `tracewire::init` sets it; full
//! batches exported as they fill); every [`DRAIN_EVERY`] requests the request thread sleeps
//! until they have caught up, so that no queue overflows (nothing is flushed by hand and no
//! thread is started: `fastrace::flush` starts one per call). It checks that every span was
//! exported or reported (sampled) and none dropped, or none recorded (unsampled). The parent
//! runs every row [`ROUNDS`] times, interleaved, and prints the medians and the ratios.
//!
//! Run: `cargo bench -p tracewire-benches --bench tracing` (`TRACING_BENCH_REQUESTS`, default
//! 100 000, and `TRACING_BENCH_ROUNDS`, default 5, shorten it). Instructions (callgrind, all
//! threads, load-independent): `bash benches/tracing_callgrind.sh`, which runs one row of this
//! binary under valgrind: `TRACING_BENCH_ROW=tracewire/sampled/3:20000 valgrind
//! --tool=callgrind target/release/deps/tracing-<hash>`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use tracewire_benches::export::counting_pipeline;
use tracewire_benches::otel;
use tracewire_core::SpanKind;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Nested `#[instrument]` functions per request.
const DEPTH: u64 = 3;
/// Requests between two waits for the background threads: 384 requests of 4 spans, plus a
/// partial batch (< 512) waiting for its delay, stay below the 2048 spans of tracewire's and
/// the SDK's queues.
const DRAIN_EVERY: u64 = 384;
/// Spans per export batch (tracewire's and the SDK's default): a partial batch waits for the
/// schedule (5 s), so a wait ends when less than this is left.
const BATCH: u64 = 512;
/// fastrace's collector interval, as `tracewire::init` configures it.
const REPORT_INTERVAL: Duration = Duration::from_millis(10);
/// Requests per row and round (`cargo bench`).
const REQUESTS: u64 = 100_000;
/// Rounds of every row (`cargo bench`), interleaved; the table gives the medians.
const ROUNDS: usize = 5;
/// The route every request span is named after.
const ROUTE: &str = "GET /orders/{id}";

// ---- the instrumented code: the same functions for every stack ----

#[tracing::instrument(skip_all, fields(order.id = id, order.items = items))]
async fn load_order(id: u64, items: i64) -> u64 {
    check_stock(id, items > 2).await
}

#[tracing::instrument(skip_all, fields(order.id = id, express = express))]
async fn check_stock(id: u64, express: bool) -> u64 {
    price(id, if express { 24.5 } else { 19.5 }).await
}

#[tracing::instrument(skip_all, fields(order.id = id, amount = amount, currency = "EUR"))]
async fn price(id: u64, amount: f64) -> u64 {
    Io::default().await;
    black_box(id) ^ amount.to_bits()
}

/// An I/O call: not ready when first polled (it wakes its task at once), ready the next time.
#[derive(Default)]
struct Io {
    polled: bool,
}

impl Future for Io {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polled {
            Poll::Ready(())
        } else {
            self.polled = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The handler: [`DEPTH`] nested `#[instrument]` spans, or none.
async fn handler(nested: bool, id: u64) -> u64 {
    if nested {
        load_order(id, 3).await
    } else {
        Io::default().await;
        black_box(id)
    }
}

/// Polls `fut` to completion on this thread (the handlers' I/O is ready on the second poll).
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

// ---- rows ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    NoSubscriber,
    Registry,
    Tracewire,
    TracewireDiscard,
    TracingOpentelemetry,
    TracingOpentelemetryDiscard,
    TracingOpentelemetryLean,
    FastraceTracing,
}

impl Stack {
    const ALL: [Stack; 8] = [
        Stack::NoSubscriber,
        Stack::Registry,
        Stack::Tracewire,
        Stack::TracewireDiscard,
        Stack::TracingOpentelemetry,
        Stack::TracingOpentelemetryDiscard,
        Stack::TracingOpentelemetryLean,
        Stack::FastraceTracing,
    ];

    fn name(self) -> &'static str {
        match self {
            Stack::NoSubscriber => "no-subscriber",
            Stack::Registry => "registry",
            Stack::Tracewire => "tracewire",
            Stack::TracewireDiscard => "tracewire-discard",
            Stack::TracingOpentelemetry => "tracing-opentelemetry",
            Stack::TracingOpentelemetryDiscard => "tracing-opentelemetry-discard",
            Stack::TracingOpentelemetryLean => "tracing-opentelemetry-lean",
            Stack::FastraceTracing => "fastrace-tracing",
        }
    }

    /// Whether the stack records anything, so that sampled and unsampled rows differ.
    fn samples(self) -> bool {
        !matches!(self, Stack::NoSubscriber | Stack::Registry)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Row {
    stack: Stack,
    sampled: bool,
    nested: bool,
}

impl Row {
    fn all() -> Vec<Row> {
        let mut rows = Vec::new();
        for stack in Stack::ALL {
            let samplings: &[bool] = match stack {
                Stack::NoSubscriber | Stack::Registry => &[true],
                Stack::TracewireDiscard
                | Stack::TracingOpentelemetryDiscard
                | Stack::TracingOpentelemetryLean => &[true],
                _ => &[true, false],
            };
            for &sampled in samplings {
                for nested in [false, true] {
                    rows.push(Row {
                        stack,
                        sampled,
                        nested,
                    });
                }
            }
        }
        rows
    }

    fn sampling(self) -> &'static str {
        match (self.stack.samples(), self.sampled) {
            (false, _) => "-",
            (true, true) => "sampled",
            (true, false) => "unsampled",
        }
    }

    /// `stack/sampling/depth`, e.g. `tracewire/unsampled/3`.
    fn id(self) -> String {
        format!(
            "{}/{}/{}",
            self.stack.name(),
            self.sampling(),
            if self.nested { DEPTH } else { 0 }
        )
    }

    fn parse(id: &str) -> Option<Row> {
        let mut parts = id.split('/');
        let stack = parts.next()?;
        let stack = Stack::ALL.into_iter().find(|s| s.name() == stack)?;
        let sampled = match parts.next()? {
            "sampled" | "-" => true,
            "unsampled" => false,
            _ => return None,
        };
        let nested = match parts.next()?.parse::<u64>().ok()? {
            0 => false,
            DEPTH => true,
            _ => return None,
        };
        Some(Row {
            stack,
            sampled,
            nested,
        })
    }

    /// Spans one request records: the request span and the nested ones.
    fn spans_per_request(self) -> u64 {
        1 + if self.nested { DEPTH } else { 0 }
    }
}

/// A fastrace reporter that counts the spans it is handed and drops them.
struct Counted(Arc<AtomicU64>);

impl fastrace::collector::Reporter for Counted {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        self.0.fetch_add(spans.len() as u64, Ordering::Relaxed);
        drop(black_box(spans));
    }
}

/// An SDK exporter that counts the spans of each batch and drops them as they come: no
/// conversion to OTLP, no encoding (`tracing-opentelemetry-discard`, the peer's floor).
#[derive(Debug)]
struct Discarding(Arc<AtomicU64>);

impl opentelemetry_sdk::trace::SpanExporter for Discarding {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(black_box(batch));
        Ok(())
    }
}

/// [`otel::provider`] with the [`Discarding`] exporter.
fn discarding_provider(
    sampled: bool,
    exported: Arc<AtomicU64>,
) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
    let root = if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    };
    SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(root)))
        .with_span_processor(BatchSpanProcessor::builder(Discarding(exported)).build())
        .build()
}

/// One row's stack, installed in this process: opens request spans, and tells how far its
/// background threads are.
enum Installed {
    /// `no-subscriber` and `registry`: no background work.
    Plain,
    Tracewire {
        tracer: tracewire_core::Tracer,
        /// The export pipeline (`tracewire`), or none (`tracewire-discard`: `Counted`).
        pipeline: Option<tracewire_export::Pipeline>,
    },
    Otel {
        provider: opentelemetry_sdk::trace::SdkTracerProvider,
        propagator: opentelemetry_sdk::propagation::TraceContextPropagator,
    },
    FastraceTracing,
}

impl Installed {
    /// Sets the row's global subscriber (and fastrace reporter); spans exported (or reported,
    /// where they are dropped) are counted into `done`.
    fn install(row: Row, done: &Arc<AtomicU64>) -> Installed {
        let fastrace_config =
            fastrace::collector::Config::default().report_interval(REPORT_INTERVAL);
        match row.stack {
            Stack::NoSubscriber => Installed::Plain,
            Stack::Registry => {
                tracing::subscriber::set_global_default(tracing_subscriber::registry()).unwrap();
                Installed::Plain
            }
            Stack::Tracewire | Stack::TracewireDiscard => {
                let tracer = tracewire_benches::tracer(row.sampled);
                let pipeline = if row.stack == Stack::Tracewire {
                    let pipeline = counting_pipeline(done.clone()).unwrap();
                    fastrace::set_reporter(pipeline.reporter(), fastrace_config);
                    Some(pipeline)
                } else {
                    fastrace::set_reporter(Counted(done.clone()), fastrace_config);
                    None
                };
                tracing::subscriber::set_global_default(
                    tracing_subscriber::registry()
                        .with(tracewire_tracing::layer().with_tracer(tracer.clone())),
                )
                .unwrap();
                Installed::Tracewire { tracer, pipeline }
            }
            Stack::TracingOpentelemetry
            | Stack::TracingOpentelemetryDiscard
            | Stack::TracingOpentelemetryLean => {
                let provider = if row.stack == Stack::TracingOpentelemetryDiscard {
                    discarding_provider(row.sampled, done.clone())
                } else {
                    otel::provider(row.sampled, done.clone())
                };
                let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
                let lean = row.stack == Stack::TracingOpentelemetryLean;
                tracing::subscriber::set_global_default(
                    tracing_subscriber::registry().with(
                        layer
                            .with_location(!lean)
                            .with_threads(!lean)
                            .with_tracked_inactivity(!lean),
                    ),
                )
                .unwrap();
                Installed::Otel {
                    provider,
                    propagator: opentelemetry_sdk::propagation::TraceContextPropagator::new(),
                }
            }
            Stack::FastraceTracing => {
                fastrace::set_reporter(Counted(done.clone()), fastrace_config);
                tracing::subscriber::set_global_default(
                    tracing_subscriber::registry()
                        .with(fastrace_tracing::FastraceCompatLayer::new()),
                )
                .unwrap();
                Installed::FastraceTracing
            }
        }
    }

    /// One request: the request span from `headers`, the handler inside it.
    fn request(&self, headers: &HeaderMap, nested: bool, id: u64) -> u64 {
        match self {
            Installed::Plain => block_on(
                handler(nested, id).instrument(tracing::info_span!("request", route = ROUTE)),
            ),
            Installed::Tracewire { tracer, .. } => {
                let root = tracer.start_root(
                    ROUTE,
                    SpanKind::Server,
                    &tracewire_http::HeaderExtractor(headers),
                );
                block_on(root.instrument(handler(nested, id)))
            }
            Installed::Otel { propagator, .. } => {
                let span = tracing::info_span!("request", otel.name = ROUTE, otel.kind = "server");
                let parent = propagator.extract(&opentelemetry_http::HeaderExtractor(headers));
                let _ = span.set_parent(parent);
                block_on(handler(nested, id).instrument(span))
            }
            Installed::FastraceTracing => {
                use fastrace::future::FutureExt as _;
                let parent = headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(fastrace::collector::SpanContext::decode_w3c_traceparent)
                    .unwrap_or_else(fastrace::collector::SpanContext::random);
                let root = fastrace::Span::root(ROUTE, parent);
                block_on(handler(nested, id).in_span(root))
            }
        }
    }

    /// True when the background threads have taken what `produced` spans made: the
    /// collector reported them all, and only a partial batch (waiting for its delay) is left
    /// to export; `done` counts the spans exported (or reported, where they are dropped).
    fn caught_up(&self, produced: u64, done: u64) -> bool {
        match self {
            Installed::Plain => true,
            Installed::Tracewire {
                pipeline: Some(p), ..
            } => {
                let c = p.counters();
                c.queued + c.dropped >= produced && c.queue_len < BATCH
            }
            Installed::Tracewire { pipeline: None, .. } | Installed::FastraceTracing => {
                done >= produced
            }
            Installed::Otel { .. } => done + BATCH > produced,
        }
    }

    /// Flushes and shuts the pipeline down (its threads end); returns what it dropped.
    fn shutdown(self) -> u64 {
        match self {
            Installed::Plain => 0,
            Installed::Tracewire { pipeline, .. } => match pipeline {
                Some(p) => {
                    p.shutdown(Duration::from_secs(10));
                    p.counters().dropped
                }
                None => {
                    fastrace::flush();
                    0
                }
            },
            Installed::Otel { provider, .. } => {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
                0
            }
            Installed::FastraceTracing => {
                fastrace::flush();
                0
            }
        }
    }
}

/// The child: runs `row` `n` times (after a warm-up), prints its `RESULT` line.
fn run_row(row: Row, n: u64) {
    let done = Arc::new(AtomicU64::new(0));
    let installed = Installed::install(row, &done);
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        HeaderValue::from_static(tracewire_benches::traceparent(row.sampled)),
    );
    // Spans each request makes that reach the collector.
    let per_request = if row.stack.samples() && row.sampled {
        row.spans_per_request()
    } else {
        0
    };
    let wait = |requests: u64| {
        while !installed.caught_up(requests * per_request, done.load(Ordering::Relaxed)) {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let warm_up = DRAIN_EVERY.min(n);
    for i in 0..warm_up {
        black_box(installed.request(&headers, row.nested, i));
    }
    wait(warm_up);

    let start = cpu_time::ProcessTime::now();
    for i in 0..n {
        black_box(installed.request(&headers, row.nested, i));
        if (i + 1) % DRAIN_EVERY == 0 {
            wait(warm_up + i + 1);
        }
    }
    let dropped = installed.shutdown();
    let cpu = start.elapsed();

    let done = done.load(Ordering::Relaxed);
    assert_eq!(
        (done, dropped),
        ((warm_up + n) * per_request, 0),
        "{}: spans exported (or reported) and dropped",
        row.id()
    );
    println!(
        "RESULT row={} n={n} cpu_ns={} spans={done}",
        row.id(),
        cpu.as_nanos()
    );
}

/// Runs `row` in a child process; returns its process CPU time per request (ns).
fn spawn_row(row: Row, n: u64) -> f64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("TRACING_BENCH_ROW", format!("{}:{n}", row.id()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {}\n{}",
        row.id(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("{}: no RESULT line in {stdout}", row.id()));
    let cpu: f64 = line
        .split(' ')
        .find_map(|kv| kv.strip_prefix("cpu_ns="))
        .unwrap()
        .parse()
        .unwrap();
    cpu / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The parent: every row `rounds` times, interleaved; the table and the ratios.
fn drive(n: u64, rounds: usize) {
    let rows = Row::all();
    let mut samples = vec![Vec::new(); rows.len()];
    for round in 1..=rounds {
        for (row, s) in rows.iter().zip(&mut samples) {
            let per_request = spawn_row(*row, n);
            println!(
                "round {round} {:<32} {per_request:>9.0} ns/request (process CPU)",
                row.id()
            );
            s.push(per_request);
        }
    }
    let per_request = |stack: Stack, sampled: bool, nested: bool| {
        let i = rows
            .iter()
            .position(|r| {
                *r == Row {
                    stack,
                    sampled,
                    nested,
                }
            })
            .unwrap();
        median(samples[i].clone())
    };
    println!(
        "\n{n} requests per row, median of {rounds} rounds, process CPU time (all threads, flush and shutdown included)\n"
    );
    println!(
        "| stack | request | request span alone | + {DEPTH} `#[instrument]` spans | per `#[instrument]` span |"
    );
    println!("|---|---|---|---|---|");
    let mut per_span = Vec::new();
    for stack in Stack::ALL {
        let samplings: &[bool] = if rows.contains(&Row {
            stack,
            sampled: false,
            nested: true,
        }) {
            &[true, false]
        } else {
            &[true]
        };
        for &sampled in samplings {
            let alone = per_request(stack, sampled, false);
            let nested = per_request(stack, sampled, true);
            let span = (nested - alone) / DEPTH as f64;
            per_span.push(((stack, sampled), span, nested));
            println!(
                "| {} | {} | {alone:.0} ns | {nested:.0} ns | {span:.0} ns |",
                stack.name(),
                Row {
                    stack,
                    sampled,
                    nested: true
                }
                .sampling()
            );
        }
    }
    let get = |stack: Stack, sampled: bool| {
        per_span
            .iter()
            .find(|(k, _, _)| *k == (stack, sampled))
            .map(|(_, span, request)| (*span, *request))
            .unwrap()
    };
    let (tw, tw_req) = get(Stack::Tracewire, true);
    let (ot, ot_req) = get(Stack::TracingOpentelemetry, true);
    let (otd, _) = get(Stack::TracingOpentelemetryDiscard, true);
    let (lean, _) = get(Stack::TracingOpentelemetryLean, true);
    let (ft, _) = get(Stack::FastraceTracing, true);
    let (twu, twu_req) = get(Stack::Tracewire, false);
    let (otu, _) = get(Stack::TracingOpentelemetry, false);
    let (reg, reg_req) = get(Stack::Registry, true);
    let (bare, _) = get(Stack::NoSubscriber, true);
    println!("\nratios (per `#[instrument]` span unless said):");
    println!(
        "  sampled: tracing-opentelemetry / tracewire = {:.2}x (target >= 3x); per request {:.2}x; tracing-opentelemetry-discard / tracewire = {:.2}x; tracing-opentelemetry-lean / tracewire = {:.2}x; fastrace-tracing / tracewire = {:.2}x",
        ot / tw,
        ot_req / tw_req,
        otd / tw,
        lean / tw,
        ft / tw
    );
    println!(
        "  unsampled: tracewire / registry alone = {:.2}x (target <= 1.5x); per request {:.2}x; tracing-opentelemetry / tracewire = {:.2}x; tracewire - no subscriber = {:.0} ns",
        twu / reg,
        twu_req / reg_req,
        otu / twu,
        twu - bare
    );
}

fn main() {
    if let Ok(spec) = std::env::var("TRACING_BENCH_ROW") {
        let (id, n) = spec.split_once(':').unwrap_or((&spec, "100000"));
        let row = Row::parse(id).unwrap_or_else(|| panic!("unknown row {id}"));
        run_row(row, n.parse().unwrap());
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        for row in Row::all() {
            println!("{}", row.id());
        }
    } else if args.iter().any(|a| a == "--bench") {
        let knob = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        drive(
            knob("TRACING_BENCH_REQUESTS", REQUESTS),
            knob("TRACING_BENCH_ROUNDS", ROUNDS as u64) as usize,
        );
    } else {
        // `cargo test --benches`: every row once, briefly (its checks still apply).
        drive(DRAIN_EVERY * 2, 1);
    }
}
