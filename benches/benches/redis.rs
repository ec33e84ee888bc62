//! Redis messaging, per message: the envelope (FastStream's binary format, tracewire-redis)
//! next to the hand-written OpenTelemetry JSON envelope users write today, sampled and
//! unsampled, in one run. No server needed; `examples/redis_load.rs` measures end to end.
//!
//! ```text
//! cargo bench -p tracewire-benches --bench redis
//! ```
//!
//! Stacks:
//!
//! - `tracewire`: `tracewire_redis::envelope` + `tracewire_core::Tracer` (default propagators
//!   `tracecontext,baggage`); spans (where there are any) go to fastrace's collector and are
//!   dropped.
//! - `otel json`: `common/redis_otel.rs` — the OpenTelemetry SDK 0.33 with a W3C
//!   `TraceContextPropagator` into a `HashMap<String, String>`, and
//!   `serde_json` of `{"data": <body as text>, "headers": {...}}`.
//!
//! Groups (time = CPU time of the benchmarking thread, `common::ThreadCpu`; a 128-byte ASCII
//! body; headers `correlation_id`, `content-type`, `traceparent`):
//!
//! - `redis/envelope-encode`: the context of a current span (flags `01` sampled / `00`
//!   unsampled) injected into the headers, the payload written.
//! - `redis/envelope-decode`: a payload read, the context extracted, the body in hand.
//! - `redis/send`: what a traced publish adds before the network: the send span started
//!   (PRODUCER, the messaging attributes), its context injected, the payload written, the span
//!   ended (tracewire: `Messaging::send`; peer: an SDK span).
//! - `redis/process`: what a traced delivery adds: the payload read, the context extracted,
//!   the process span started as its child, ended (tracewire: `Messaging::process`, which also
//!   links the creation context).
//!
//! `REDIS_BENCH_PROFILE=<group>/<row>[:n]` runs one row `n` times without criterion (see
//! `main`).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

mod common;
#[path = "common/redis_otel.rs"]
mod redis_otel;

use common::broker::{Profile, group, paced};
use common::{ThreadCpu, median_ns};

use std::hint::black_box;

use criterion::Criterion;
use opentelemetry::trace::{
    SpanContext as OtelSpanContext, SpanId as OtelSpanId, TraceContextExt as _, TraceFlags,
    TraceId as OtelTraceId, TraceState,
};
use tracewire_benches::{Collect, Sinks, otel, tracer};
use tracewire_core::{SpanId, TraceContext, TraceId, Tracer};
use tracewire_messaging::{Destination, MessageInfo, Messaging};
use tracewire_redis::envelope;
use tracewire_redis::{CONTENT_TYPE, CORRELATION_ID, Headers};

const BODY: [u8; 128] = [b'x'; 128];
const CID: &str = "5c1d9e4e-3a7b-4c1d-8e2f-00000000002a";
const LIST: &str = "tw.bench.jobs";
const TRACE: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
const SPAN: u64 = 0x00f0_67aa_0ba9_02b7;

const GROUPS: [&str; 4] = [
    "redis/envelope-encode",
    "redis/envelope-decode",
    "redis/send",
    "redis/process",
];
const ROWS: [&str; 4] = [
    "tracewire sampled",
    "otel json sampled",
    "tracewire unsampled",
    "otel json unsampled",
];

fn tw_cx(sampled: bool) -> TraceContext {
    TraceContext::new(TraceId(TRACE), SpanId(SPAN), sampled)
}

fn otel_cx(sampled: bool) -> opentelemetry::Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    opentelemetry::Context::new().with_remote_span_context(OtelSpanContext::new(
        OtelTraceId::from(TRACE),
        OtelSpanId::from(SPAN),
        flags,
        true,
        TraceState::default(),
    ))
}

fn tw_encode(tracer: &Tracer, cx: &TraceContext) -> Vec<u8> {
    let mut headers = Headers::new();
    headers.insert(CORRELATION_ID, CID);
    headers.insert(CONTENT_TYPE, "text/plain");
    tracer.inject(cx, &mut headers);
    let mut out = Vec::with_capacity(envelope::encoded_len(headers.iter(), BODY.len()));
    envelope::encode(headers.iter(), &BODY, &mut out).unwrap();
    out
}

struct Fixture {
    tw: [Tracer; 2],
    messaging: [Messaging; 2],
    otel: [redis_otel::JsonPeer; 2],
    sinks: Sinks,
    /// Payloads as they arrive: [tracewire sampled, unsampled], [otel sampled, unsampled].
    tw_frames: [Vec<u8>; 2],
    otel_frames: [Vec<u8>; 2],
}

impl Fixture {
    /// fastrace's collector drops the spans (no export pipeline).
    fn new() -> Self {
        let sinks = Sinks::new(Collect::Discard);
        let tw = [tracer(true), tracer(false)];
        let otel = [true, false].map(|sampled| redis_otel::JsonPeer::new(sinks.otel(sampled)));
        let tw_frames = [
            tw_encode(&tw[0], &tw_cx(true)),
            tw_encode(&tw[1], &tw_cx(false)),
        ];
        let otel_frames = [
            otel[0].encode(&otel_cx(true), CID, &BODY),
            otel[1].encode(&otel_cx(false), CID, &BODY),
        ];
        Fixture {
            messaging: [
                Messaging::new("redis")
                    .tracer(tw[0].clone())
                    .server("127.0.0.1", Some(6379)),
                Messaging::new("redis")
                    .tracer(tw[1].clone())
                    .server("127.0.0.1", Some(6379)),
            ],
            tw,
            otel,
            tw_frames,
            otel_frames,
            sinks,
        }
    }

    fn run(&self, group: &str, row: &str) {
        let sampled = !row.ends_with("unsampled");
        let i = usize::from(!sampled);
        let tw = row.starts_with("tracewire");
        match (group, tw) {
            ("redis/envelope-encode", true) => {
                black_box(tw_encode(&self.tw[i], &tw_cx(sampled)));
            }
            ("redis/envelope-encode", false) => {
                black_box(self.otel[i].encode(&otel_cx(sampled), CID, &BODY));
            }
            ("redis/envelope-decode", true) => {
                let d = envelope::decode(black_box(&self.tw_frames[i])).unwrap();
                black_box(self.tw[i].extract(d.headers()).context);
                black_box(d.body());
            }
            ("redis/envelope-decode", false) => {
                black_box(self.otel[i].decode(black_box(&self.otel_frames[i])));
            }
            ("redis/send", true) => {
                let mut headers = Headers::new();
                headers.insert(CORRELATION_ID, CID);
                headers.insert(CONTENT_TYPE, "text/plain");
                let info = MessageInfo {
                    conversation_id: Some(CID),
                    body_size: Some(BODY.len()),
                    ..MessageInfo::new(Destination::new(LIST))
                };
                let span = self.messaging[i].send(&info, &mut headers);
                let mut out = Vec::with_capacity(envelope::encoded_len(headers.iter(), BODY.len()));
                envelope::encode(headers.iter(), &BODY, &mut out).unwrap();
                span.end();
                black_box(out);
            }
            ("redis/send", false) => {
                let peer = &self.otel[i];
                let cx = peer.publish_span(LIST, BODY.len());
                let out = peer.encode(&cx, CID, &BODY);
                otel::end(&cx);
                black_box(out);
            }
            ("redis/process", true) => {
                let d = envelope::decode(black_box(&self.tw_frames[i])).unwrap();
                let info = MessageInfo {
                    conversation_id: d.header(CORRELATION_ID),
                    body_size: Some(d.body().len()),
                    ..MessageInfo::new(Destination::new(LIST))
                };
                let span = self.messaging[i].process(&info, Some(d.headers()));
                span.end();
            }
            ("redis/process", false) => {
                let peer = &self.otel[i];
                let (parent, body) = peer.decode(black_box(&self.otel_frames[i]));
                let cx = peer.process_span(&parent, LIST, body.len());
                otel::end(&cx);
            }
            _ => unreachable!("{group} {row}"),
        }
    }
}

fn benches(c: &mut Criterion<ThreadCpu>, fx: &Fixture) {
    // Paced like the NATS bench: 256 iterations timed, then fastrace's queue and the SDK's
    // batch processors drained, untimed.
    let (drain, nothing) = (|| fx.sinks.flush(), || {});
    for name in GROUPS {
        group(c, name, &ROWS, &nothing, |row, iters| {
            paced(
                iters,
                &drain,
                |k| k,
                |k| (0..k).for_each(|_| fx.run(name, row)),
            )
        });
    }
}

/// A markdown table of the medians, with the peer's time over ours.
fn print_summary() {
    eprintln!(
        "\n| group | tracewire sampled | otel json sampled | ratio | tracewire unsampled | otel json unsampled | ratio |"
    );
    eprintln!("|---|---|---|---|---|---|---|");
    for group in GROUPS {
        let m: Vec<Option<f64>> = ROWS.iter().map(|r| median_ns(group, r)).collect();
        let cell = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.0} ns"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.1}x", b / a),
            _ => "?".to_owned(),
        };
        eprintln!(
            "| {group} | {} | {} | {} | {} | {} | {} |",
            cell(m[0]),
            cell(m[1]),
            ratio(m[0], m[1]),
            cell(m[2]),
            cell(m[3]),
            ratio(m[2], m[3]),
        );
    }
}

fn main() {
    let fx = Fixture::new();
    // `REDIS_BENCH_PROFILE=<group>/<row>[:n]` (`redis/process/tracewire sampled:200000`): that
    // row `n` times (default 100000) without criterion, a fixed workload for `perf record` or
    // `valgrind --tool=callgrind`.
    if let Some(p) = Profile::from_env("REDIS_BENCH_PROFILE", 100_000) {
        (0..p.n).for_each(|_| fx.run(&p.group, &p.row));
        return;
    }
    // Both envelopes carry what the other's does.
    let d = envelope::decode(&fx.tw_frames[0]).unwrap();
    assert!(fx.tw[0].extract(d.headers()).context.is_some());
    let (cx, body) = fx.otel[0].decode(&fx.otel_frames[0]);
    assert!(cx.span().span_context().is_valid() && body == BODY);

    let mut c = common::broker::criterion();
    benches(&mut c, &fx);
    c.final_summary();
    if common::broker::measuring() {
        print_summary();
    }
    fx.sinks.shutdown();
}
