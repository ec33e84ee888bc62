//! Viewer benchmarks (see `## Viewer` in BENCHMARKS.md).
//!
//! 1. `viewer_ingest`: spans/s of a batch of 1 000 spans (100 traces × 10 spans, 3–5 attributes
//!    each) into the store — end to end over OTLP/HTTP protobuf on loopback (hyper client →
//!    `tracewire view`'s receiver → store), in process (`Store::ingest` of a decoded request),
//!    and `prost` decoding alone (the floor every OTLP receiver pays).
//! 2. `viewer_search`: latency of searches over a store of 1M spans (100 000 traces): the
//!    Jaeger-style service + operation query (limit 20), a rare tag, a free-text miss (a full
//!    scan of every trace's search text, the worst case), an error-status + duration query, and
//!    the same Jaeger query over HTTP (`/api/traces`).
//! 3. Memory per stored span: a counting allocator measures live heap bytes before and after
//!    filling the 1M-span store (printed).
//!
//! There is no embeddable peer: the viewers named in the issue (Jaeger, Zipkin, Tempo,
//! otel-desktop-viewer) are not Rust crates, and `otlp-embedded` is not in the registry cache of
//! this machine. The `decode only` line is the floor to compare against.
//!
//! Run: `cargo bench -p tracewire-benches --bench viewer` (`VIEWER_BENCH_SPANS=200000` for a
//! smaller search store).
#![allow(missing_docs, unsafe_code, clippy::unwrap_used, clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tracewire_viewer::{Query, SpanFilter, StatusFilter, Store, StoreConfig, ViewerBuilder};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERVICES: [&str; 5] = ["frontend", "gateway", "orders", "payments", "inventory"];
const NAMES: [&str; 10] = [
    "GET /checkout",
    "POST /api/orders",
    "orders.Create",
    "SELECT orders",
    "INSERT orders",
    "charge card",
    "GET /inventory/{id}",
    "cache get",
    "publish orders",
    "render page",
];
const T0: u64 = 1_767_225_600_000_000_000;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

static NEXT_TRACE: AtomicU64 = AtomicU64::new(1);

/// `traces` traces of 10 spans over 5 services, as one request with one resource per service.
fn batch(traces: usize) -> ExportTraceServiceRequest {
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    for _ in 0..traces {
        let n = NEXT_TRACE.fetch_add(1, Ordering::Relaxed);
        let mut tid = [0u8; 16];
        tid[..8].copy_from_slice(&n.to_be_bytes());
        tid[8..].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
        let start = T0 + n * 1_000_000;
        for i in 0..10u64 {
            let sid = (n << 8 | (i + 1)).to_be_bytes().to_vec();
            let parent = if i == 0 {
                Vec::new()
            } else {
                (n << 8 | ((i - 1) / 2 + 1)).to_be_bytes().to_vec()
            };
            let name = NAMES[i as usize];
            let mut attributes = vec![
                kv(
                    "http.route",
                    any_value::Value::StringValue(format!("/{name}")),
                ),
                kv("http.response.status_code", any_value::Value::IntValue(200)),
                kv(
                    "user.id",
                    any_value::Value::StringValue(format!("user-{}", n % 5000)),
                ),
            ];
            if i % 3 == 0 {
                attributes.push(kv(
                    "db.statement",
                    any_value::Value::StringValue("SELECT * FROM orders WHERE id = $1".into()),
                ));
            }
            let error = n % 50 == 0 && i == 5;
            per_service[(i as usize) % SERVICES.len()].push(Span {
                trace_id: tid.to_vec(),
                span_id: sid,
                parent_span_id: parent,
                name: name.into(),
                kind: if i % 2 == 0 { 2 } else { 3 },
                start_time_unix_nano: start + i * 1_000_000,
                end_time_unix_nano: start + i * 1_000_000 + (20 - i) * 500_000 + n % 7 * 100_000,
                attributes,
                status: error.then(|| Status {
                    code: 2,
                    message: "card declined".into(),
                }),
                flags: 0x301,
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: per_service
            .into_iter()
            .enumerate()
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv(
                            "service.name",
                            any_value::Value::StringValue(SERVICES[i].into()),
                        ),
                        kv("host.name", any_value::Value::StringValue("box-1".into())),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let viewer = rt
        .block_on(
            ViewerBuilder::new()
                .otlp_grpc(None)
                .zipkin(None)
                .ui(None)
                .otlp_http(Some(0))
                .max_traces(200_000)
                .start(),
        )
        .unwrap();
    let url: http::Uri = format!("http://{}/v1/traces", viewer.addrs().otlp_http.unwrap())
        .parse()
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // distinct trace ids for every iteration: pre-encode a ring of batches
    let ring: Vec<Bytes> = (0..256)
        .map(|_| Bytes::from(batch(100).encode_to_vec()))
        .collect();
    println!(
        "viewer_ingest: batch = 1000 spans, {} bytes protobuf",
        ring[0].len()
    );
    let mut g = c.benchmark_group("viewer_ingest");
    g.throughput(Throughput::Elements(1000));
    g.measurement_time(Duration::from_secs(8));
    let mut i = 0usize;
    g.bench_function("otlp_http_protobuf_end_to_end", |b| {
        b.iter(|| {
            i += 1;
            let body = ring[i % ring.len()].clone();
            rt.block_on(async {
                let req = http::Request::post(url.clone())
                    .header("content-type", "application/x-protobuf")
                    .body(Full::new(body))
                    .unwrap();
                let resp = client.request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.into_body().collect().await.unwrap();
            })
        })
    });
    let store = Store::new(StoreConfig {
        max_traces: 200_000,
        max_bytes: usize::MAX,
    });
    g.bench_function("in_process_decode_and_store", |b| {
        b.iter(|| {
            i += 1;
            let req = ExportTraceServiceRequest::decode(ring[i % ring.len()].as_ref()).unwrap();
            black_box(store.ingest(req))
        })
    });
    g.bench_function("in_process_store_only", |b| {
        b.iter_batched(
            || batch(100),
            |req| black_box(store.ingest(req)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("decode_only_floor", |b| {
        b.iter(|| {
            i += 1;
            black_box(ExportTraceServiceRequest::decode(ring[i % ring.len()].as_ref()).unwrap())
        })
    });
    g.finish();
    rt.block_on(viewer.shutdown());
}

fn search(c: &mut Criterion) {
    let spans: usize = std::env::var("VIEWER_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let traces = spans / 10;
    let before = LIVE.load(Ordering::Relaxed);
    let store = std::sync::Arc::new(Store::new(StoreConfig {
        max_traces: traces,
        max_bytes: usize::MAX,
    }));
    let fill = std::time::Instant::now();
    for _ in 0..traces / 1000 {
        store.ingest(batch(1000));
    }
    let took = fill.elapsed();
    let after = LIVE.load(Ordering::Relaxed);
    let stats = store.stats();
    println!(
        "viewer_search: store of {} spans / {} traces filled in {:.2?} ({:.0} spans/s in process); \
         live heap {:.1} MiB = {:.0} bytes per span (store's own estimate: {:.0} bytes per span)",
        stats.spans,
        stats.traces,
        took,
        stats.spans as f64 / took.as_secs_f64(),
        (after - before) as f64 / 1048576.0,
        (after - before) as f64 / stats.spans as f64,
        stats.bytes as f64 / stats.spans as f64,
    );

    let mut g = c.benchmark_group("viewer_search");
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(30);
    let q = |span: SpanFilter, text: Option<&str>, limit: usize| Query {
        span,
        text: text.map(str::to_owned),
        limit,
        ..Default::default()
    };
    let cases = [
        (
            "service_operation_limit20",
            q(
                SpanFilter {
                    service: Some("payments".into()),
                    name: Some("SELECT orders".into()),
                    ..Default::default()
                },
                None,
                20,
            ),
        ),
        (
            "rare_tag_limit20",
            q(
                SpanFilter {
                    attributes: vec![("user.id".into(), Some("user-4242".into()))],
                    ..Default::default()
                },
                None,
                20,
            ),
        ),
        (
            "error_status_min_duration_limit20",
            q(
                SpanFilter {
                    status: Some(StatusFilter::Error),
                    min_duration_ns: Some(7_000_000),
                    ..Default::default()
                },
                None,
                20,
            ),
        ),
        (
            "free_text_miss_full_scan",
            q(SpanFilter::default(), Some("no-such-text"), 20),
        ),
    ];
    for (name, query) in &cases {
        let hits = store.search(query).len();
        println!("viewer_search/{name}: {hits} traces");
        g.bench_function(*name, |b| {
            b.iter(|| black_box(store.search(black_box(query))))
        });
    }
    // the Jaeger API over HTTP: what Grafana's data source does
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let viewer = rt
        .block_on(ViewerBuilder::embedded().max_traces(traces).start())
        .unwrap();
    // fill the served store by moving the batches in: re-ingest the same shape
    for _ in 0..traces / 1000 {
        viewer.store().ingest(batch(1000));
    }
    drop(store);
    let url: http::Uri = format!(
        "http://{}/api/traces?service=payments&operation=SELECT%20orders&limit=20",
        viewer.addrs().ui.unwrap()
    )
    .parse()
    .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    g.bench_function("jaeger_api_http_service_operation_limit20", |b| {
        b.iter(|| {
            rt.block_on(async {
                let resp = client.get(url.clone()).await.unwrap();
                assert_eq!(resp.status(), 200);
                black_box(resp.into_body().collect().await.unwrap().to_bytes())
            })
        })
    });
    g.finish();
    rt.block_on(viewer.shutdown());
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    ingest(&mut c);
    search(&mut c);
    c.final_summary();
}
