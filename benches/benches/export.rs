//! Export benchmarks (see `## Export` in BENCHMARKS.md).
//!
//! 1. `encode`: a batch of 512 fastrace `SpanRecord`s → OTLP protobuf bytes. tracewire's one
//!    mapping + `prost` encoding, against fastrace's own OpenTelemetry bridge
//!    (`fastrace-opentelemetry` 0.19: `SpanRecord` → SDK `SpanData`) followed by exactly what
//!    `opentelemetry-otlp` does to encode (`group_spans_by_resource_and_scope` + `prost`).
//!    Also prints allocations per batch for both (a counting global allocator).
//! 2. `instrumented_thread`: the cost on the traced thread of a root span with 3 children,
//!    with no reporter, with tracewire's pipeline, and with fastrace-opentelemetry.
//!
//! Run: `cargo bench -p tracewire-benches --bench export`
#![allow(missing_docs, unsafe_code, clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::ThreadCpu;

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use fastrace::collector::{
    Config, EventRecord, Reporter as _, SpanContext, SpanId, SpanRecord, TraceId,
};
use fastrace::prelude::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use prost::Message as _;
use tracewire_export::map::{Mapper, SpanLimits};
use tracewire_export::{BoxFuture, ExportError, Pipeline, Resource, SpanExporter};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BATCH: usize = 512;

fn props(p: &[(&'static str, &'static str)]) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
    p.iter()
        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
        .collect()
}

/// A realistic batch: HTTP server roots and client children with semconv attributes, some
/// with an event and a link.
fn batch() -> Vec<SpanRecord> {
    (0..BATCH as u64)
        .map(|i| {
            let root = i % 4 == 0;
            SpanRecord {
                trace_id: TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736 + u128::from(i / 4)),
                span_id: SpanId(i + 1),
                parent_id: SpanId(if root { 0 } else { i - i % 4 + 1 }),
                begin_time_unix_ns: 1_700_000_000_000_000_000 + i * 1000,
                duration_ns: 250_000,
                name: Cow::Borrowed(if root {
                    "GET /users/{id}"
                } else {
                    "SELECT users"
                }),
                properties: if root {
                    props(&[
                        ("span.kind", "server"),
                        ("http.request.method", "GET"),
                        ("http.route", "/users/{id}"),
                        ("url.path", "/users/42"),
                        ("http.response.status_code", "200"),
                        ("server.address", "api.example.com"),
                        ("server.port", "443"),
                        ("user_agent.original", "curl/8.5.0"),
                    ])
                } else {
                    props(&[
                        ("span.kind", "client"),
                        ("db.system", "postgresql"),
                        ("db.query.text", "SELECT * FROM users WHERE id = $1"),
                        ("server.address", "db.internal"),
                        ("server.port", "5432"),
                    ])
                },
                events: if i % 8 == 1 {
                    vec![EventRecord {
                        name: Cow::Borrowed("exception"),
                        timestamp_unix_ns: 1_700_000_000_000_000_000 + i * 1000 + 10,
                        properties: props(&[
                            ("exception.type", "io::Error"),
                            ("exception.message", "connection reset"),
                        ]),
                    }]
                } else {
                    Vec::new()
                },
                links: if i % 16 == 0 {
                    vec![SpanContext::new(TraceId(7), SpanId(9))]
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// What tracewire's export worker does with a batch: map (reusing the buffers of the
/// previous batch's spans, as the worker does), build the request, encode; then give the
/// spans back for reuse.
fn tracewire_encode(records: Vec<SpanRecord>, resource: &Resource, mapper: &mut Mapper) -> usize {
    let spans = mapper.map(records);
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.to_proto()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "bench".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let len = tracewire_export::encode::encode_request(&req).len();
    mapper.recycle(
        req.resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans),
    );
    len
}

/// What opentelemetry-otlp does with a batch before sending it: group + convert + encode.
#[derive(Debug)]
struct OtlpEncodeOnly {
    resource: ResourceAttributesWithSchema,
    bytes: Arc<AtomicUsize>,
}

impl opentelemetry_sdk::trace::SpanExporter for OtlpEncodeOnly {
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        let req = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        self.bytes
            .fetch_add(req.encode_to_vec().len(), Ordering::Relaxed);
        std::future::ready(Ok(()))
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.resource = resource.into();
    }
}

fn peer_reporter(bytes: Arc<AtomicUsize>) -> fastrace_opentelemetry::OpenTelemetryReporter {
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name("bench")
        .build();
    fastrace_opentelemetry::OpenTelemetryReporter::new(
        OtlpEncodeOnly {
            resource: (&resource).into(),
            bytes,
        },
        Cow::Owned(resource),
        opentelemetry::InstrumentationScope::builder("bench").build(),
    )
}

fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    ALLOCS.load(Ordering::Relaxed) - before
}

fn encode(c: &mut Criterion<ThreadCpu>) {
    let records = batch();
    let resource = Resource::empty().with("service.name", "bench");
    let mut mapper = Mapper::new(SpanLimits::default());
    let bytes = Arc::new(AtomicUsize::new(0));
    let mut peer = peer_reporter(bytes.clone());

    // Same input, comparable output sizes.
    let tw_len = tracewire_encode(records.clone(), &resource, &mut mapper);
    peer.report(records.clone());
    let peer_len = bytes.swap(0, Ordering::Relaxed);
    let tw_allocs = allocations(|| {
        black_box(tracewire_encode(records.clone(), &resource, &mut mapper));
    });
    let peer_allocs = allocations(|| peer.report(records.clone()));
    let clone_allocs = allocations(|| drop(black_box(records.clone())));
    println!(
        "encode 512 spans: tracewire {tw_len} bytes, {} allocations; fastrace-opentelemetry+otlp {peer_len} bytes, {} allocations (input clone excluded: {clone_allocs})",
        tw_allocs - clone_allocs,
        peer_allocs - clone_allocs
    );

    let mut g = c.benchmark_group("export/encode_512_spans");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("tracewire", |b| {
        b.iter_batched(
            || records.clone(),
            |r| tracewire_encode(r, &resource, &mut mapper),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("fastrace-opentelemetry+otlp", |b| {
        b.iter_batched(
            || records.clone(),
            |r| peer.report(r),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

struct Null;

impl SpanExporter for Null {
    fn name(&self) -> &str {
        "null"
    }
    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        black_box(batch.encode_to_vec());
        Box::pin(async { Ok(()) })
    }
}

fn traced_request() {
    let root = Span::root("GET /users/{id}", SpanContext::random())
        .with_properties(|| [("span.kind", "server"), ("http.route", "/users/{id}")]);
    let _g = root.set_local_parent();
    for _ in 0..3 {
        let _child = LocalSpan::enter_with_local_parent("SELECT users")
            .with_property(|| ("span.kind", "client"));
    }
}

fn instrumented_thread(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("export/instrumented_thread_root_plus_3_children");
    // fastrace's reporter is global: the three cases run in this order.
    g.bench_function("no_reporter", |b| b.iter(traced_request));
    let pipeline = Pipeline::builder().exporter(Null).build().unwrap();
    fastrace::set_reporter(
        pipeline.reporter(),
        Config::default().report_interval(Duration::from_millis(10)),
    );
    g.bench_function("tracewire_pipeline", |b| b.iter(traced_request));
    fastrace::flush();
    let c_ = pipeline.counters();
    println!("tracewire pipeline during the bench: {c_:?}");
    fastrace::set_reporter(
        peer_reporter(Arc::new(AtomicUsize::new(0))),
        Config::default().report_interval(Duration::from_millis(10)),
    );
    g.bench_function("fastrace-opentelemetry", |b| b.iter(traced_request));
    g.finish();
    fastrace::flush();
}

/// Median thread-CPU time of `f` over `runs` runs, each on a fresh clone of the input.
fn median_cpu<T: Clone>(input: &T, runs: usize, mut f: impl FnMut(T)) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let x = input.clone();
            let start = cpu_time::ThreadTime::now();
            f(x);
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn summary() {
    let records = batch();
    let resource = Resource::empty().with("service.name", "bench");
    let mut mapper = Mapper::new(SpanLimits::default());
    let mut peer = peer_reporter(Arc::new(AtomicUsize::new(0)));
    for round in 1..=3 {
        let tw = median_cpu(&records, 301, |r| {
            black_box(tracewire_encode(r, &resource, &mut mapper));
        });
        let ot = median_cpu(&records, 301, |r| peer.report(r));
        println!(
            "summary round {round}: 512 spans -> OTLP protobuf, median thread CPU: tracewire {:?} ({:.0} spans/s), fastrace-opentelemetry+otlp {:?} ({:.0} spans/s), ratio {:.2}x",
            tw,
            512.0 / tw.as_secs_f64(),
            ot,
            512.0 / ot.as_secs_f64(),
            ot.as_secs_f64() / tw.as_secs_f64()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
        summary();
    }
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    encode(&mut c);
    instrumented_thread(&mut c);
    c.final_summary();
}
