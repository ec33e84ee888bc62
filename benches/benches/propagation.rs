//! Propagation: tracewire-core vs the OpenTelemetry propagators, side by side in one run.
//!
//! Run: `cargo bench -p tracewire-benches --bench propagation` (results: `BENCHMARKS.md`).
//!
//! For every format, both sides read and write the same carrier type (`http::HeaderMap`, through
//! each project's own `HeaderExtractor`/`HeaderInjector`) and get the same inbound headers —
//! the format's headers plus six ordinary request headers, as a server sees them:
//!
//! | group | tracewire | peer |
//! |---|---|---|
//! | `tracecontext` | `Format::TraceContext` | `opentelemetry_sdk` `TraceContextPropagator` |
//! | `baggage` | `Format::Baggage` | `opentelemetry_sdk` `BaggagePropagator` |
//! | `b3-single` | `Format::B3` | `opentelemetry-zipkin` `Propagator` (`SingleHeader`) |
//! | `b3-multi` | `Format::B3Multi` | `opentelemetry-zipkin` `Propagator` (`MultipleHeader`) |
//! | `jaeger` | `Format::Jaeger` | `opentelemetry-jaeger-propagator` `Propagator` |
//!
//! Each format has three groups: `extract` (headers → context), `inject` (a context → the
//! headers of an outgoing request, a map made and dropped outside the timed region on both
//! sides, as a client's request exists whether or not it is traced) and `roundtrip` (both). A last
//! group times the root rule, `Tracer::start_root`, sampled and unsampled, next to the
//! OpenTelemetry SDK doing the same job (extract + start a server span under the parent).
//!
//! After criterion finishes, `main` reads the medians criterion wrote and prints one table of
//! medians and peer/tracewire ratios, then the carrier floor (see `carrier_floor`).
//!
//! Instruction counts (repeatable on a shared machine): `PROPAGATION_COUNT=group/function:calls`
//! runs only that function (or `floor/{format}/{extract|inject|inject-made}`), `calls` times,
//! and exits; under callgrind, count only the calls:
//!
//! ```sh
//! PROPAGATION_COUNT=jaeger/inject/tracewire:1000 valgrind --tool=callgrind \
//!     --toggle-collect='propagation::counted' target/release/deps/propagation-<hash> --bench
//! ```
//!
//! (Two runs with different `calls` and the difference divided by the difference of calls
//! gives the instructions of one call; BENCHMARKS.md, "Propagation".)

// OpenTelemetry marks its Zipkin (B3) and Jaeger propagators deprecated (the formats, not the
// code); they are still the peers for those formats.
#![allow(deprecated)]

mod common;
use common::{ThreadCpu, estimates_file, median_ns};

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context as OtelContext;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{
    SpanBuilder, SpanKind as OtelSpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry_http::{HeaderExtractor as OtelExtractor, HeaderInjector as OtelInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{Sampler as OtelSampler, SdkTracerProvider};
use opentelemetry_zipkin::{B3Encoding, Propagator as B3Propagator};
use tracewire_core::{Format, Propagators, Sampler, SpanKind, TraceContext, Tracer};
use tracewire_http::{HeaderExtractor, HeaderInjector};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@vendor=opaque-value";
const BAGGAGE: &str = "userId=alice,serverNode=DF%2028,isProduction=false,\
                       city=M%C3%BCnchen,session=3b7c2a6e";
const B3_SINGLE: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";
const B3_TRACE_ID: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const B3_SPAN_ID: &str = "e457b5a2e4d86bd1";
const B3_PARENT_ID: &str = "05e3ac9a4f6e3b90";
const UBER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1";
const SPAN_NAME: &str = "GET /users/{id}";

/// What every inbound request carries besides propagation headers.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br"),
        ("content-type", "application/json"),
        ("x-request-id", "f3b9c2de-8d7a-4f21-9c1e-0b6e2a1d9f44"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn carrier(extra: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = request_headers();
    for &(k, v) in extra {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

/// What a check needs from an extracted context: trace id, span id (hex), sampled.
type Ids = (String, String, bool);

/// One format: the inbound headers, tracewire's propagators, and the peer as closures (the
/// peers come from two `opentelemetry` versions, so they share no trait object type).
struct Case<C> {
    name: &'static str,
    inbound: HeaderMap,
    tracewire: Propagators,
    peer_extract: fn(&HeaderMap) -> C,
    peer_inject: fn(&C, &mut HeaderMap),
    peer_ids: fn(&C) -> Option<Ids>,
}

/// The context tracewire injects after extracting `inbound`: the remote context (or, for
/// baggage alone, any context) carrying the extracted baggage — what `Tracer::start_root`
/// hands an integration.
fn tracewire_extract(p: &Propagators, inbound: &HeaderMap) -> TraceContext {
    let e = p.extract(&HeaderExtractor(inbound));
    let mut cx = e.context.unwrap_or_else(|| {
        TraceContext::new(
            tracewire_core::TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736),
            tracewire_core::SpanId(0x00f067aa0ba902b7),
            true,
        )
    });
    cx.baggage = e.baggage;
    cx
}

/// Injects into `out`, the headers of an outgoing request (see [`outgoing`]).
fn tracewire_inject<'a>(
    p: &Propagators,
    cx: &TraceContext,
    out: &'a mut HeaderMap,
) -> &'a HeaderMap {
    p.inject(cx, &mut HeaderInjector(out));
    out
}

/// The headers an outgoing request holds before the propagator writes its own: what a client
/// middleware injects into. Built outside the timed region for both sides (a request's map
/// exists whether or not it is traced), and dropped outside it too.
fn outgoing() -> HeaderMap {
    let mut h = HeaderMap::with_capacity(16);
    for (k, v) in [
        ("host", "orders.internal:8080"),
        ("user-agent", "reqwest/0.12"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn otel_ids(cx: &OtelContext) -> Option<Ids> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        (
            sc.trace_id().to_string(),
            sc.span_id().to_string(),
            sc.is_sampled(),
        )
    })
}

/// Both sides must understand the inputs the same way, or the comparison means nothing.
fn check_inputs_agree<C>(case: &Case<C>) {
    let tw = tracewire_extract(&case.tracewire, &case.inbound);
    let peer = (case.peer_extract)(&case.inbound);
    let tw_out = tracewire_inject(&case.tracewire, &tw, &mut outgoing()).clone();
    let mut peer_out = outgoing();
    (case.peer_inject)(&peer, &mut peer_out);
    if case.name == "baggage" {
        assert_eq!(tw.baggage.len(), 5, "tracewire kept every baggage member");
        assert_eq!(tw.baggage.get("city"), Some("München"));
    } else {
        let (t, s, sampled) = (case.peer_ids)(&peer).expect("the peer extracted a context");
        assert_eq!(
            format!("{:032x}", tw.trace_id.0),
            t,
            "{}: trace id",
            case.name
        );
        assert_eq!(
            format!("{:016x}", tw.span_id.0),
            s,
            "{}: span id",
            case.name
        );
        assert!(tw.is_sampled() && sampled, "{}: sampled", case.name);
    }
    let names = |h: &HeaderMap| {
        let mut v: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
        v.sort();
        v
    };
    // OpenTelemetry's Jaeger propagator never writes `uberctx-*` (it keeps them in the
    // tracestate), so tracewire's Jaeger inject writes two headers more than its peer.
    let extra_tw: &[&str] = if case.name == "jaeger" {
        &["uberctx-tenant", "uberctx-user-id"]
    } else {
        &[]
    };
    let mut expected = names(&peer_out);
    expected.extend(extra_tw.iter().map(|s| (*s).to_owned()));
    expected.sort();
    assert_eq!(
        names(&tw_out),
        expected,
        "{}: same headers written",
        case.name
    );
    if case.name == "baggage" {
        // OpenTelemetry keeps baggage in a hash map, so its member order varies.
        let members = |h: &HeaderMap| {
            let v = h.get("baggage").and_then(|v| v.to_str().ok()).unwrap_or("");
            let mut m: Vec<String> = v.split(',').map(str::to_owned).collect();
            m.sort();
            m
        };
        assert_eq!(
            members(&tw_out),
            members(&peer_out),
            "baggage: same members"
        );
    } else if case.name != "jaeger" {
        // Jaeger differs in form only: `…:0:01` (tracewire) vs `…:0:1` (opentelemetry).
        assert_eq!(tw_out, peer_out, "{}: identical headers written", case.name);
    }
}

/// One comparison: criterion times each side in the group `group` (functions `tw_name` and
/// `peer_name`), then [`interleaved`] measures both again, alternating, for the ratio. Each
/// call gets a fresh [`outgoing`] header map to write into (extract ignores it), made and
/// dropped outside the timed region.
fn pair<A, B>(
    c: &mut Criterion<ThreadCpu>,
    group: &str,
    (tw_name, mut tw): (&str, impl FnMut(&mut HeaderMap) -> A),
    (peer_name, mut peer): (&str, impl FnMut(&mut HeaderMap) -> B),
) {
    if let Some(only) = COUNT_ONLY.get_or_init(count_only) {
        // The first pair that has the function (the peer's plain function recurs in pairs
        // with tracewire variants), then the process ends.
        if only.0 == format!("{group}/{tw_name}") {
            count_calls(only.1, &mut |h| drop(tw(h)));
            std::process::exit(0);
        }
        if only.0 == format!("{group}/{peer_name}") {
            count_calls(only.1, &mut |h| drop(peer(h)));
            std::process::exit(0);
        }
        return;
    }
    let mut g = c.benchmark_group(group);
    g.bench_function(tw_name, |b| {
        b.iter_batched_ref(outgoing, &mut tw, BatchSize::NumIterations(CHUNK))
    });
    g.bench_function(peer_name, |b| {
        b.iter_batched_ref(outgoing, &mut peer, BatchSize::NumIterations(CHUNK))
    });
    g.finish();
    if measured_now(group, tw_name) && measured_now(group, peer_name) {
        let (t, p, ratio) = interleaved(&mut tw, &mut peer);
        let label = if tw_name == "tracewire" {
            group.to_owned()
        } else {
            format!("{group} ({tw_name})")
        };
        let mut rows = PAIRED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.push(Row {
            label,
            group: group.to_owned(),
            tw: tw_name.to_owned(),
            peer: peer_name.to_owned(),
            paired: (t, p, ratio),
        });
    }
}

/// Instruction counting (`PROPAGATION_COUNT=group/function:calls`): instead of timing, each
/// `pair` runs only that function, `calls` times on fresh [`outgoing`] maps, through
/// [`counted`], and nothing else. Under
/// `valgrind --tool=callgrind --toggle-collect='*counted*'` the total is the instructions of
/// `calls` calls, map creation and drop excluded (see BENCHMARKS.md, "Propagation").
static COUNT_ONLY: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();

fn count_only() -> Option<(String, u64)> {
    let v = std::env::var("PROPAGATION_COUNT").ok()?;
    let (name, calls) = v.rsplit_once(':')?;
    Some((name.to_owned(), calls.parse().ok()?))
}

fn count_calls(calls: u64, f: &mut dyn FnMut(&mut HeaderMap)) {
    let mut maps: Vec<HeaderMap> = Vec::with_capacity(CHUNK as usize);
    let mut done = 0;
    while done < calls {
        let n = CHUNK.min(calls - done);
        maps.extend((0..n).map(|_| outgoing()));
        for map in &mut maps {
            counted(f, map);
        }
        maps.clear();
        done += n;
    }
}

/// One call of a measured function: what callgrind's `--toggle-collect` counts.
#[inline(never)]
fn counted(f: &mut dyn FnMut(&mut HeaderMap), map: &mut HeaderMap) {
    f(black_box(map));
}

/// A summary row: the criterion functions to read medians from and the interleaved result.
struct Row {
    label: String,
    group: String,
    tw: String,
    peer: String,
    paired: (f64, f64, f64),
}

static PAIRED: std::sync::Mutex<Vec<Row>> = std::sync::Mutex::new(Vec::new());

static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// True when criterion measured `group/function` in this run (not filtered out, not `--test`
/// or `--profile-time`): its estimates file is newer than the start of the process.
fn measured_now(group: &str, function: &str) -> bool {
    let file = estimates_file(group, function);
    let modified = std::fs::metadata(file).and_then(|m| m.modified());
    matches!((modified, STARTED.get()), (Ok(m), Some(s)) if m >= *s)
}

/// Per-iteration thread CPU time of `iters` calls of `f`, each with its own [`outgoing`] map.
/// The maps are made before the clock starts and dropped after it stops, [`CHUNK`] at a time
/// so they stay in cache (as criterion's `BatchSize::NumIterations(CHUNK)` does).
fn batch<O>(iters: u64, f: &mut impl FnMut(&mut HeaderMap) -> O) -> f64 {
    let mut maps: Vec<HeaderMap> = Vec::with_capacity(CHUNK as usize);
    let mut spent = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        maps.extend((0..n).map(|_| outgoing()));
        let start = cpu_time::ThreadTime::now();
        for map in &mut maps {
            black_box(f(map));
        }
        spent += start.elapsed();
        maps.clear();
        done += n;
    }
    spent.as_nanos() as f64 / iters as f64
}

/// Calls per batch of fresh [`outgoing`] maps.
const CHUNK: u64 = 256;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Interleaved measurement: 101 rounds, each a ~2 ms batch of tracewire then a ~2 ms batch of
/// the peer. Load from other processes (this machine is shared; its 2 CPUs may be SMT siblings,
/// so even CPU time stretches when a neighbour runs) hits both halves of a round alike, so the
/// median of the per-round ratios is steadier than a ratio of two medians taken seconds apart.
/// Returns (median tracewire ns, median peer ns, median per-round peer/tracewire ratio).
fn interleaved<A, B>(
    tw: &mut impl FnMut(&mut HeaderMap) -> A,
    peer: &mut impl FnMut(&mut HeaderMap) -> B,
) -> (f64, f64, f64) {
    let per_batch = |ns: f64| ((2_000_000.0 / ns.max(1.0)) as u64).clamp(10, 1_000_000);
    let (n_tw, n_peer) = (per_batch(batch(200, tw)), per_batch(batch(200, peer)));
    let (mut t, mut p, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..101 {
        let a = batch(n_tw, tw);
        let b = batch(n_peer, peer);
        t.push(a);
        p.push(b);
        r.push(b / a);
    }
    (median(&mut t), median(&mut p), median(&mut r))
}

fn bench_case<C>(c: &mut Criterion<ThreadCpu>, case: Case<C>) {
    check_inputs_agree(&case);
    let tw_cx = tracewire_extract(&case.tracewire, &case.inbound);
    let peer_cx = (case.peer_extract)(&case.inbound);
    let (tw, inbound) = (&case.tracewire, &case.inbound);
    let (peer_extract, peer_inject) = (case.peer_extract, case.peer_inject);

    pair(
        c,
        &format!("{}/extract", case.name),
        ("tracewire", |_| {
            tw.extract(&HeaderExtractor(black_box(inbound)))
        }),
        ("opentelemetry", |_| peer_extract(black_box(inbound))),
    );
    pair(
        c,
        &format!("{}/inject", case.name),
        ("tracewire", |out| {
            tracewire_inject(tw, black_box(&tw_cx), out);
        }),
        ("opentelemetry", |out| peer_inject(black_box(&peer_cx), out)),
    );
    match case.name {
        "b3-single" => {
            let single = Propagators::new([Format::B3]);
            pair(
                c,
                "b3-single/inject",
                ("tracewire-b3-only", |out| {
                    tracewire_inject(&single, black_box(&tw_cx), out);
                }),
                ("opentelemetry", |out| peer_inject(black_box(&peer_cx), out)),
            );
        }
        "jaeger" => {
            // Like for like: no `uberctx-*` inbound, so both read `uber-trace-id` alone (with
            // them, tracewire decodes and validates each into `Baggage`; OpenTelemetry copies
            // them undecoded).
            let bare_inbound = carrier(&[("uber-trace-id", UBER_TRACE_ID)]);
            let bare_inbound = &bare_inbound;
            pair(
                c,
                "jaeger/extract",
                ("tracewire-no-uberctx", |_| {
                    tw.extract(&HeaderExtractor(black_box(bare_inbound)))
                }),
                ("opentelemetry-no-uberctx", |_| {
                    peer_extract(black_box(bare_inbound))
                }),
            );
            // Like for like: a context without baggage, so both write `uber-trace-id` alone.
            let bare = TraceContext {
                baggage: tracewire_core::Baggage::empty(),
                ..tw_cx.clone()
            };
            pair(
                c,
                "jaeger/inject",
                ("tracewire-no-uberctx", |out| {
                    tracewire_inject(tw, black_box(&bare), out);
                }),
                ("opentelemetry", |out| peer_inject(black_box(&peer_cx), out)),
            );
            // Like for like with baggage: OpenTelemetry's Jaeger propagator never writes
            // `uberctx-*`, so this peer writes them after it, through the same injector, one
            // per member: the name with `format!`, the value percent-encoded as tracewire
            // encodes it (what any `Injector` user would do). Both then write the same headers.
            let members: Vec<(String, String)> = tw_cx
                .baggage
                .iter()
                .map(|m| (m.key().to_owned(), m.value().to_owned()))
                .collect();
            let members = &members;
            let peer_with_uberctx = |out: &mut HeaderMap| {
                peer_inject(black_box(&peer_cx), out);
                jaeger::inject_uberctx(black_box(members), out);
            };
            let mut same = outgoing();
            peer_with_uberctx(&mut same);
            let tw_out = tracewire_inject(tw, &tw_cx, &mut outgoing()).clone();
            assert_eq!(
                same.iter()
                    .filter(|(k, _)| k.as_str() != "uber-trace-id")
                    .collect::<Vec<_>>(),
                tw_out
                    .iter()
                    .filter(|(k, _)| k.as_str() != "uber-trace-id")
                    .collect::<Vec<_>>(),
                "jaeger: the same uberctx-* headers written"
            );
            pair(
                c,
                "jaeger/inject",
                ("tracewire-same-headers", |out| {
                    tracewire_inject(tw, black_box(&tw_cx), out);
                }),
                ("opentelemetry-plus-uberctx", peer_with_uberctx),
            );
            // Extract, then read one `uberctx-*` value: tracewire decodes its baggage on this
            // first read (the extract rows above never read it); OpenTelemetry reads the value
            // it copied into its tracestate, undecoded.
            pair(
                c,
                "jaeger/extract-read",
                ("tracewire", |_| {
                    let cx = tracewire_extract(tw, black_box(inbound));
                    cx.baggage.get("tenant").map(str::len)
                }),
                ("opentelemetry", |_| {
                    jaeger::uberctx_value(&jaeger::extract(black_box(inbound)), "uberctx-tenant")
                }),
            );
            // Like for like: both read everything (tracewire decodes `uberctx-*` into baggage,
            // OTel copies them into its tracestate), both write `uber-trace-id` alone.
            pair(
                c,
                "jaeger/roundtrip",
                ("tracewire-no-uberctx", |out| {
                    let mut cx = tracewire_extract(tw, black_box(inbound));
                    cx.baggage = tracewire_core::Baggage::empty();
                    tracewire_inject(tw, &cx, out);
                }),
                ("opentelemetry", |out| {
                    peer_inject(&peer_extract(black_box(inbound)), out)
                }),
            );
        }
        _ => {}
    }
    pair(
        c,
        &format!("{}/roundtrip", case.name),
        ("tracewire", |out| {
            let cx = tracewire_extract(tw, black_box(inbound));
            tracewire_inject(tw, &cx, out);
        }),
        ("opentelemetry", |out| {
            peer_inject(&peer_extract(black_box(inbound)), out)
        }),
    );
}

fn propagation(c: &mut Criterion<ThreadCpu>) {
    // opentelemetry 0.33 side: extract with the propagator's own `extract` (what middleware
    // calls), inject into a fresh map with `inject_context`.
    fn otel_inject(p: &dyn TextMapPropagator, cx: &OtelContext, out: &mut HeaderMap) {
        p.inject_context(cx, &mut OtelInjector(out));
    }
    // The peers' constructors are free (unit structs, a one-byte enum), so building them in the
    // closures costs nothing.
    fn b3_single() -> B3Propagator {
        B3Propagator::with_encoding(B3Encoding::SingleHeader)
    }
    fn b3_multi() -> B3Propagator {
        B3Propagator::with_encoding(B3Encoding::MultipleHeader)
    }

    bench_case(
        c,
        Case {
            name: "tracecontext",
            inbound: carrier(&[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]),
            tracewire: Propagators::new([Format::TraceContext]),
            peer_extract: |h| TraceContextPropagator::new().extract(&OtelExtractor(h)),
            peer_inject: |cx, out| otel_inject(&TraceContextPropagator::new(), cx, out),
            peer_ids: otel_ids,
        },
    );
    bench_case(
        c,
        Case {
            name: "baggage",
            inbound: carrier(&[("baggage", BAGGAGE)]),
            tracewire: Propagators::new([Format::Baggage]),
            peer_extract: |h| BaggagePropagator::new().extract(&OtelExtractor(h)),
            peer_inject: |cx, out| otel_inject(&BaggagePropagator::new(), cx, out),
            peer_ids: |_| None,
        },
    );
    bench_case(
        c,
        Case {
            name: "b3-single",
            inbound: carrier(&[("b3", B3_SINGLE)]),
            // opentelemetry-zipkin's `SingleHeader` encoding injects `X-B3-*` as well as `b3`
            // (`B3Encoding::support(&UnSpecified)` is always true), so for equal work tracewire
            // writes both forms here too. `b3-single/inject` also times `b3` alone.
            tracewire: Propagators::new([Format::B3, Format::B3Multi]),
            peer_extract: |h| b3_single().extract(&OtelExtractor(h)),
            peer_inject: |cx, out| otel_inject(&b3_single(), cx, out),
            peer_ids: otel_ids,
        },
    );
    bench_case(
        c,
        Case {
            name: "b3-multi",
            inbound: carrier(&[
                ("x-b3-traceid", B3_TRACE_ID),
                ("x-b3-spanid", B3_SPAN_ID),
                ("x-b3-parentspanid", B3_PARENT_ID),
                ("x-b3-sampled", "1"),
            ]),
            tracewire: Propagators::new([Format::B3Multi]),
            peer_extract: |h| b3_multi().extract(&OtelExtractor(h)),
            peer_inject: |cx, out| otel_inject(&b3_multi(), cx, out),
            peer_ids: otel_ids,
        },
    );
    bench_case(
        c,
        Case {
            name: "jaeger",
            inbound: carrier(&[
                ("uber-trace-id", UBER_TRACE_ID),
                ("uberctx-user-id", "alice"),
                ("uberctx-tenant", "acme%20corp"),
            ]),
            tracewire: Propagators::new([Format::Jaeger]),
            peer_extract: jaeger::extract,
            peer_inject: jaeger::inject,
            peer_ids: jaeger::ids,
        },
    );
}

/// The Jaeger peer lives on opentelemetry 0.32 (its newest release), whose carrier traits
/// differ from 0.33's: this is opentelemetry-http's `HeaderMap` adapter, line for line, for 0.32.
mod jaeger {
    use http::HeaderMap;
    use http::header::{HeaderName, HeaderValue};
    use opentelemetry_0_32::Context;
    use opentelemetry_0_32::propagation::{self, TextMapPropagator as _};
    use opentelemetry_0_32::trace::TraceContextExt as _;

    thread_local! {
        // `Propagator::new` allocates its field list: build it once, as an application would.
        static PROPAGATOR: opentelemetry_jaeger_propagator::Propagator =
            opentelemetry_jaeger_propagator::Propagator::new();
    }

    pub(super) fn extract(h: &HeaderMap) -> Context {
        PROPAGATOR.with(|p| p.extract(&Extractor(h)))
    }

    /// The length of the `uberctx-*` value OpenTelemetry kept in the tracestate, if any.
    pub(super) fn uberctx_value(cx: &Context, key: &str) -> Option<usize> {
        cx.span()
            .span_context()
            .trace_state()
            .get(key)
            .map(str::len)
    }

    pub(super) fn inject(cx: &Context, out: &mut HeaderMap) {
        PROPAGATOR.with(|p| p.inject_context(cx, &mut Injector(out)));
    }

    struct Extractor<'a>(&'a HeaderMap);

    impl propagation::Extractor for Extractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(HeaderName::as_str).collect()
        }
    }

    struct Injector<'a>(&'a mut HeaderMap);

    impl propagation::Injector for Injector<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let Ok(name) = HeaderName::from_bytes(key.as_bytes()) {
                if let Ok(val) = HeaderValue::from_str(&value) {
                    self.0.insert(name, val);
                }
            }
        }
    }

    /// What a Jaeger `uberctx-*` writer on OpenTelemetry's carrier API would do: one header
    /// per member through the injector, the name made with `format!`, the value
    /// percent-encoded (the set tracewire encodes: controls, space, `"`, `,`, `;`, `\`, `%`,
    /// `+`).
    pub(super) fn inject_uberctx(members: &[(String, String)], out: &mut HeaderMap) {
        use opentelemetry_0_32::propagation::Injector as _;
        const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
            .add(b' ')
            .add(b'"')
            .add(b',')
            .add(b';')
            .add(b'\\')
            .add(b'%')
            .add(b'+');
        let mut injector = Injector(out);
        for (key, value) in members {
            injector.set(
                &format!("uberctx-{key}"),
                percent_encoding::utf8_percent_encode(value, SET).to_string(),
            );
        }
    }

    pub(super) fn ids(cx: &Context) -> Option<super::Ids> {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| {
            (
                sc.trace_id().to_string(),
                sc.span_id().to_string(),
                sc.is_sampled(),
            )
        })
    }
}

/// fastrace drops spans unless a reporter is set; this one discards what it gets.
struct NoopReporter;

impl fastrace::collector::Reporter for NoopReporter {
    fn report(&mut self, _spans: Vec<fastrace::collector::SpanRecord>) {}
}

/// The root rule: a server receives `traceparent` + `tracestate` and starts its root span.
/// tracewire: `Tracer::start_root` with the default propagators (tracecontext, baggage).
/// OpenTelemetry: the same two propagators composed, then `build_with_context` of a server
/// span under the extracted parent and the span put in a `Context` (what an OTel middleware
/// does). The OTel provider has no span processor, tracewire's fastrace a no-op reporter.
fn start_root(c: &mut Criterion<ThreadCpu>) {
    fastrace::set_reporter(NoopReporter, fastrace::collector::Config::default());
    let inbound = carrier(&[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]);
    let bare = carrier(&[("traceparent", TRACEPARENT)]);
    let empty = request_headers();
    let otel_props = TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]);

    for (label, sampled, headers) in [
        ("sampled", true, &inbound),
        ("unsampled", false, &inbound),
        ("unsampled-traceparent-only", false, &bare),
        ("unsampled-new-trace", false, &empty),
    ] {
        let tracer = Tracer::new().with_sampler(if sampled {
            Sampler::default()
        } else {
            Sampler::AlwaysOff
        });
        let root = tracer.start_root(SPAN_NAME, SpanKind::Server, &HeaderExtractor(headers));
        assert_eq!(root.context.is_sampled(), sampled, "{label}");
        drop(root);
        let provider = SdkTracerProvider::builder()
            .with_sampler(if sampled {
                OtelSampler::ParentBased(Box::new(OtelSampler::AlwaysOn))
            } else {
                OtelSampler::AlwaysOff
            })
            .build();
        let otel_tracer = provider.tracer("bench");
        pair(
            c,
            &format!("start_root/{label}"),
            ("tracewire", |_| {
                tracer.start_root(
                    SPAN_NAME,
                    SpanKind::Server,
                    &HeaderExtractor(black_box(headers)),
                )
            }),
            ("opentelemetry", |_| {
                let parent = otel_props.extract(&OtelExtractor(black_box(headers)));
                let span = otel_tracer.build_with_context(
                    SpanBuilder::from_name(SPAN_NAME).with_kind(OtelSpanKind::Server),
                    &parent,
                );
                parent.with_span(span)
            }),
        );
    }
    fastrace::flush();
}

/// How much of a written header a propagator makes at run time (see [`carrier_floor`]).
#[derive(Clone, Copy)]
enum Made {
    /// Nothing: a static value (`X-B3-Sampled: 1`).
    Nothing,
    /// The value (ids, baggage): `http::HeaderValue` owns its bytes, so one allocation.
    Value,
    /// The name too (Jaeger's `uberctx-{key}`): validated and copied into a `HeaderName`.
    NameAndValue,
}

/// The carrier's share: the `HeaderMap` work tracewire cannot skip for each format — the same
/// lookups of the format's headers by pre-built names; for inject, the same headers inserted
/// into an [`outgoing`] map from static names and values (no formatting, no allocation), and
/// again with what any propagator must make at run time (see [`Made`]). Printed next to the
/// results, they bound the ratio any propagator could reach over this carrier. Not criterion
/// benches: `batch` medians over 101 rounds. Returns (format, lookups, inserts, inserts with
/// run-time names and values).
fn carrier_floor() -> Vec<(&'static str, f64, f64, f64)> {
    use Made::{NameAndValue, Nothing, Value};
    let jaeger_inbound = || {
        carrier(&[
            ("uber-trace-id", UBER_TRACE_ID),
            ("uberctx-user-id", "alice"),
            ("uberctx-tenant", "acme%20corp"),
        ])
    };
    /// A format: its name, the inbound headers, the names it looks up, what it writes.
    type Floor = (
        &'static str,
        HeaderMap,
        &'static [&'static str],
        &'static [(&'static str, Made)],
    );
    let formats: [Floor; 6] = [
        (
            "tracecontext",
            carrier(&[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]),
            &["traceparent", "tracestate"],
            &[("traceparent", Value), ("tracestate", Value)],
        ),
        (
            "baggage",
            carrier(&[("baggage", BAGGAGE)]),
            &["baggage"],
            &[("baggage", Value)],
        ),
        (
            "b3-single",
            carrier(&[("b3", B3_SINGLE)]),
            &["b3"],
            &[
                ("b3", Value),
                ("x-b3-traceid", Value),
                ("x-b3-spanid", Value),
                ("x-b3-sampled", Nothing),
            ],
        ),
        (
            "b3-multi",
            carrier(&[
                ("x-b3-traceid", B3_TRACE_ID),
                ("x-b3-spanid", B3_SPAN_ID),
                ("x-b3-parentspanid", B3_PARENT_ID),
                ("x-b3-sampled", "1"),
            ]),
            &[
                "b3",
                "x-b3-traceid",
                "x-b3-spanid",
                "x-b3-flags",
                "x-b3-sampled",
            ],
            &[
                ("x-b3-traceid", Value),
                ("x-b3-spanid", Value),
                ("x-b3-sampled", Nothing),
            ],
        ),
        (
            "jaeger",
            jaeger_inbound(),
            &["uber-trace-id", "uberctx-user-id", "uberctx-tenant"],
            &[
                ("uber-trace-id", Value),
                ("uberctx-user-id", NameAndValue),
                ("uberctx-tenant", NameAndValue),
            ],
        ),
        (
            "jaeger (`uber-trace-id` only)",
            jaeger_inbound(),
            &["uber-trace-id"],
            &[("uber-trace-id", Value)],
        ),
    ];
    let mut out = Vec::new();
    for (name, inbound, lookups, writes) in formats {
        let lookups: Vec<HeaderName> = lookups.iter().map(|w| HeaderName::from_static(w)).collect();
        let mut extract = |_: &mut HeaderMap| {
            let mut n = 0;
            for key in &lookups {
                n += inbound.get(key).map_or(0, |v| v.len());
            }
            n
        };
        let names: Vec<HeaderName> = writes
            .iter()
            .map(|(w, _)| HeaderName::from_static(w))
            .collect();
        // Names and the value built once: inside the loop only the inserts (clones of static
        // names and values copy two pointers).
        const VALUE: &str = "0123456789abcdef";
        let value = HeaderValue::from_static(VALUE);
        let mut inject = |h: &mut HeaderMap| {
            for n in &names {
                h.insert(n.clone(), value.clone());
            }
        };
        let mut inject_made = |h: &mut HeaderMap| {
            for ((w, made), n) in writes.iter().zip(&names) {
                let (name, value) = match made {
                    Nothing => (n.clone(), value.clone()),
                    Value => (n.clone(), HeaderValue::from_str(black_box(VALUE)).ok()?),
                    NameAndValue => (
                        HeaderName::from_bytes(black_box(w).as_bytes()).ok()?,
                        HeaderValue::from_str(black_box(VALUE)).ok()?,
                    ),
                };
                h.insert(name, value);
            }
            Some(())
        };
        if let Some(only) = COUNT_ONLY.get_or_init(count_only) {
            let calls = only.1;
            match only
                .0
                .strip_prefix("floor/")
                .and_then(|f| f.rsplit_once('/'))
            {
                Some((f, "extract")) if f == name => count_calls(calls, &mut |h| {
                    black_box(extract(h));
                }),
                Some((f, "inject")) if f == name => count_calls(calls, &mut inject),
                Some((f, "inject-made")) if f == name => count_calls(calls, &mut |h| {
                    black_box(inject_made(h));
                }),
                _ => continue,
            }
            std::process::exit(0);
        }
        let rounds = |f: &mut dyn FnMut() -> f64| {
            let mut v: Vec<f64> = (0..101).map(|_| f()).collect();
            median(&mut v)
        };
        let e = rounds(&mut || batch(5_000, &mut extract));
        let i = rounds(&mut || batch(5_000, &mut inject));
        let m = rounds(&mut || batch(5_000, &mut inject_made));
        out.push((name, e, i, m));
    }
    out
}

fn print_summary() {
    let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"));
    eprintln!();
    eprintln!(
        "| bench | tracewire median (ns) | opentelemetry median (ns) | ratio of medians \
         | interleaved: tracewire / opentelemetry (ns) | interleaved ratio |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|");
    let rows = PAIRED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for row in rows.iter() {
        let tw = median_ns(&row.group, &row.tw);
        let peer = median_ns(&row.group, &row.peer);
        let ratio = match (tw, peer) {
            (Some(t), Some(p)) if t > 0.0 => format!("{:.1}x", p / t),
            _ => "n/a".to_owned(),
        };
        let (t, p, r) = row.paired;
        eprintln!(
            "| {} | {} | {} | {ratio} | {t:.0} / {p:.0} | **{r:.1}x** |",
            row.label,
            show(tw),
            show(peer),
        );
    }
    eprintln!();
    eprintln!(
        "| carrier floor | HeaderMap lookups by pre-built name (ns) | inserts into an outgoing map \
         (ns) | inserts, with the names and values made at run time (ns) |"
    );
    eprintln!("|---|---:|---:|---:|");
    for (name, e, i, m) in carrier_floor() {
        eprintln!("| {name} | {e:.0} | {i:.0} | {m:.0} |");
    }
}

fn main() {
    let _ = STARTED.set(std::time::SystemTime::now());
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .configure_from_args();
    if COUNT_ONLY
        .get_or_init(count_only)
        .as_ref()
        .is_some_and(|(f, _)| f.starts_with("floor/"))
    {
        carrier_floor();
        return;
    }
    propagation(&mut c);
    start_root(&mut c);
    c.final_summary();
    if !PAIRED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_empty()
    {
        print_summary();
    }
}
