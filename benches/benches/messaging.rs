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
#[path = "common/nats_otel.rs"]
mod nats_otel;

use common::ThreadCpu;
use common::broker::{
    BARE, BARE_HEADER, FLOOR, OTEL_SAMPLED, OTEL_UNSAMPLED, PACE, Profile, TW_SAMPLED,
    TW_UNSAMPLED, floor_span, group, paced, peer_row, run,
};

use std::hint::black_box;
use std::time::Duration;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use criterion::Criterion;
use tracewire_benches::otel;
use tracewire_benches::{Collect, Sinks, TRACEPARENT_SAMPLED, traceparent, tracer};
use tracewire_messaging::{Destination, MessageInfo, Messaging};
use tracewire_nats::HeaderInjector;

const SUBJECT: &str = "tw.bench.orders";
const PAYLOAD: [u8; 128] = [b'x'; 128];

const TW_SAMPLED_LEAN: &str = "tracewire sampled, lean injector";
const TW_UNSAMPLED_LEAN: &str = "tracewire unsampled, lean injector";

const PUBLISH: &str = "nats/publish";
const PUBLISH_TRACING: &str = "nats/publish-tracing";
const PROCESS: &str = "nats/process";
const PROCESS_JS: &str = "nats/process-jetstream";
/// The reply subject of a JetStream message (stream `ORDERS`, consumer `workers`, first
/// delivery, stream sequence 17, consumer sequence 40, published at the nanos shown).
const JS_REPLY: &str = "$JS.ACK.ORDERS.workers.1.17.40.1796197401115296289.3";

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

/// Everything the rows share: one connection to the server (its task runs on `rt`), the
/// traced clients over it, the peers.
struct Fixture {
    rt: tokio::runtime::Runtime,
    nats: async_nats::Client,
    tw: [tracewire_nats::Client; 2],
    tw_js: [tracewire_nats::jetstream::Context; 2],
    js: async_nats::jetstream::Context,
    otel: [nats_otel::Peer; 2],
    subject: Subject,
    payload: Bytes,
    sinks: Sinks,
    /// `NATS_BENCH_FLOOD=1`: timed without draining (see `Fixture::paced`).
    flood: bool,
}

impl Fixture {
    fn new() -> Self {
        // `NATS_BENCH_REPORTER=discard`: fastrace's collector hands the spans to a reporter
        // that drops them, the export pipeline left out (to tell the two apart).
        let sinks = Sinks::new(
            if std::env::var("NATS_BENCH_REPORTER").as_deref() == Ok("discard") {
                Collect::Discard
            } else {
                Collect::Pipeline
            },
        );

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
            otel: [true, false].map(|sampled| nats_otel::Peer::new(sinks.otel(sampled), &info)),
            rt,
            nats,
            subject: Subject::from_static(SUBJECT),
            payload: Bytes::from_static(&PAYLOAD),
            sinks,
            flood: std::env::var_os("NATS_BENCH_FLOOD").is_some(),
        }
    }

    fn tw(&self, sampled: bool) -> &tracewire_nats::Client {
        &self.tw[usize::from(!sampled)]
    }

    fn otel(&self, sampled: bool) -> &nats_otel::Peer {
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
                    otel::end_with(&cx, &result);
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
                drop(floor_span("publish tw.bench.orders", "producer"));
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
                let span = floor_span("process tw.bench.orders", "consumer");
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
        received(traceparent(common::broker::sampled(stack)))
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

    /// Everything the rows produced drained, untimed: the NATS connection flushed, fastrace's
    /// queues collected and tracewire's pipeline exported, the SDK's batch processors flushed.
    fn flush(&self) {
        self.rt.block_on(self.nats.flush()).unwrap();
        self.sinks.flush();
    }

    /// `common::broker::paced`, drained with [`Fixture::flush`]. `NATS_BENCH_FLOOD=1` skips
    /// the drain: spans are then made as fast as the bench thread can, far beyond what the
    /// collectors take (fastrace's per-thread queue then grows without bound, the pipeline
    /// and the SDK drop at their 2048-span queues).
    fn paced<T>(&self, iters: u64, prepare: impl FnMut(u64) -> T, run: impl FnMut(T)) -> Duration {
        let drain = || {
            if !self.flood {
                self.flush();
            }
        };
        paced(iters, &drain, prepare, run)
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

fn benches(c: &mut Criterion<ThreadCpu>, fx: &Fixture) {
    let flush = || fx.flush();
    group(c, PUBLISH, &PUBLISH_ROWS, &flush, |row, iters| {
        fx.paced(
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
    });
    group(
        c,
        PUBLISH_TRACING,
        &PUBLISH_TRACING_ROWS,
        &flush,
        |row, iters| {
            fx.paced(
                iters,
                |k| k,
                |k| (0..k).for_each(|_| fx.publish_tracing(row)),
            )
        },
    );
    group(c, PROCESS, &PROCESS_ROWS, &flush, |row, iters| {
        let message = Fixture::message(row);
        fx.paced(
            iters,
            |k| (0..k).map(|_| message.clone()).collect::<Vec<_>>(),
            |messages| messages.into_iter().for_each(|m| fx.process(row, m)),
        )
    });
    group(c, PROCESS_JS, &PROCESS_JS_ROWS, &flush, |row, iters| {
        let message = fx.js_message(row);
        fx.paced(
            iters,
            |k| (0..k).map(|_| message.clone()).collect::<Vec<_>>(),
            |messages| messages.into_iter().for_each(|m| fx.process_js(row, m)),
        )
    });
}

/// Per group: median, CPU added over `bare`, and the peer's added CPU over tracewire's.
fn print_summary() {
    common::broker::print_added(
        &[
            (PUBLISH, &PUBLISH_ROWS, Some(BARE)),
            (PUBLISH_TRACING, &PUBLISH_TRACING_ROWS, None),
            (PROCESS, &PROCESS_ROWS, Some(BARE)),
            (PROCESS_JS, &PROCESS_JS_ROWS, Some(BARE)),
        ],
        |row| match row {
            TW_SAMPLED_LEAN => Some(OTEL_SAMPLED),
            TW_UNSAMPLED_LEAN => Some(OTEL_UNSAMPLED),
            row => peer_row(row),
        },
    );
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
fn profile(fx: &Fixture, p: &Profile) {
    let rows: Vec<&'static str> = PROCESS_ROWS
        .iter()
        .chain(&PUBLISH_ROWS)
        .chain(&PUBLISH_TRACING_ROWS)
        .chain(&PROCESS_JS_ROWS)
        .copied()
        .collect();
    let row = p.row_in(&rows);
    let group = p.group.as_str();
    let message = Fixture::message(row);
    let js_message = fx.js_message(row);
    for i in 0..p.n {
        match group {
            "publish" => fx.publish(row),
            "publish-tracing" => fx.publish_tracing(row),
            "process" => fx.process(row, message.clone()),
            "process-jetstream" => fx.process_js(row, js_message.clone()),
            other => panic!("unknown group {other}"),
        }
        // Paced as in the criterion runs.
        if (i + 1) % PACE == 0 {
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
    if let Some(p) = Profile::from_env("NATS_BENCH_PROFILE", 10_000) {
        profile(&fx, &p);
        fx.sinks.report();
        return;
    }
    let mut c = common::broker::criterion();
    benches(&mut c, &fx);
    fx.flush();
    c.final_summary();
    if common::broker::measuring() {
        print_summary();
        fx.sinks.report();
    }
}
