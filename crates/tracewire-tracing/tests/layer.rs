//! Span trees of `tracing` spans recorded by the layer: under tracewire roots and
//! `#[fastrace::trace]`, nested, async and spawned; fields, `otel.*`, errors, events, links,
//! `record()`; unsampled and outside any trace.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use fastrace::collector::{SpanContext, SpanRecord};
use tracewire_core::{Pairs, Sampler, SpanKind, TraceContext, Tracer};
use tracewire_export::SpanLimits;
use tracewire_export::map::map_spans;
use tracewire_export::proto::common::v1::any_value::Value;
use tracewire_export::proto::trace::v1::span::SpanKind as ProtoKind;
use tracewire_export::proto::trace::v1::status::StatusCode;
use tracewire_tracing::{Level, TracewireLayer};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TP_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

fn tracer(sampler: Sampler) -> Tracer {
    Tracer::new().with_sampler(sampler)
}

fn layer(t: &Tracer) -> TracewireLayer {
    tracewire_tracing::layer().with_tracer(t.clone())
}

fn dispatch(layer: TracewireLayer) -> tracing::Dispatch {
    tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
}

/// Runs `f` with a registry and `layer` as this thread's subscriber.
fn with_layer<R>(layer: TracewireLayer, f: impl FnOnce() -> R) -> R {
    tracing::dispatcher::with_default(&dispatch(layer), f)
}

/// A multi-thread runtime whose workers all use `layer` (spawned tasks run on them).
fn runtime(layer: TracewireLayer) -> tokio::runtime::Runtime {
    let d = dispatch(layer);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&d)))
        .build()
        .unwrap()
}

fn prop<'a>(r: &'a SpanRecord, key: &str) -> Option<&'a str> {
    tracewire_test::property(r, key)
}

fn event_props(e: &fastrace::collector::EventRecord) -> Vec<(String, String)> {
    let mut v: Vec<_> = e
        .properties
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

// --- sync ---------------------------------------------------------------------------------

#[tracing::instrument]
fn outer(n: i64) {
    inner();
    traced();
}

#[tracing::instrument]
fn inner() {}

#[fastrace::trace(short_name = true)]
fn traced() {
    deep();
}

#[tracing::instrument]
fn deep() {}

#[test]
fn sync_spans_nest_under_a_tracewire_root_and_fastrace_spans_and_vice_versa() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
        let _in = root.enter();
        outer(7);
    });
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["n:int"]),
        "GET /x [server]\n  outer [internal] n:int=7\n    inner [internal]\n    traced [internal]\n      deep [internal]\n"
    );
}

#[test]
fn under_fastrace_alone_the_local_parent_is_the_parent() {
    let cap = tracewire_test::capture();
    with_layer(tracewire_tracing::layer(), || {
        let root = fastrace::Span::root("job", SpanContext::random());
        let _g = root.set_local_parent();
        deep();
    });
    assert_eq!(
        cap.finish().tree(&[]),
        "job [internal]\n  deep [internal]\n"
    );
}

/// While a tracing span is entered, tracewire's client spans nest under it and the context to
/// propagate names it.
#[test]
fn client_spans_and_propagation_inside_a_tracing_span() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    let (injected, tracing_span_id) = with_layer(layer(&t), || {
        let root = t.start_root(
            "GET /x",
            SpanKind::Server,
            &Pairs::from_pairs([("traceparent", TP), ("tracestate", "k=v")]),
        );
        let _in = root.enter();
        let span = tracing::info_span!("call_backend");
        let _e = span.enter();
        let here = TraceContext::current().unwrap();
        assert_eq!(
            here.trace_state.header_value(),
            "k=v",
            "the trace's tracestate"
        );
        let child = t.start_child("GET", SpanKind::Client);
        let mut out = Pairs::new();
        t.inject(child.context.as_ref().unwrap(), &mut out);
        (out.get("traceparent").unwrap().to_owned(), here.span_id)
    });
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&[]),
        "GET /x [server] (parent: 00f067aa0ba902b7)\n  call_backend [internal]\n    GET [client]\n"
    );
    assert_eq!(spans.expect("call_backend").span_id, tracing_span_id);
    let client = spans.expect("GET");
    assert_eq!(
        injected,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01",
            client.span_id.0
        )
    );
}

// --- async and spawned --------------------------------------------------------------------

#[tracing::instrument]
async fn handler(user: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let a = load(user).await;
    let spawned = tokio::spawn(load(user + 1).in_current_span())
        .await
        .unwrap();
    let detached = tokio::spawn(background().instrument(tracing::info_span!("background")))
        .await
        .unwrap();
    a + spawned + detached
}

#[tracing::instrument]
async fn load(user: u64) -> u64 {
    tokio::task::yield_now().await;
    traced_async().await;
    user
}

#[fastrace::trace(short_name = true)]
async fn traced_async() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn background() -> u64 {
    tokio::task::yield_now().await;
    // The context follows the span to the worker that polls it.
    TraceContext::current().map_or(0, |cx| u64::from(cx.is_sampled()))
}

#[test]
fn async_spans_across_awaits_and_spawned_tasks() {
    let t = tracer(Sampler::AlwaysOn);
    let rt = runtime(layer(&t));
    let cap = tracewire_test::capture();
    let root = t.start_root("GET /users/{id}", SpanKind::Server, &Pairs::new());
    let total = rt.block_on(async { tokio::spawn(root.instrument(handler(1))).await.unwrap() });
    assert_eq!(total, 1 + 2 + 1);
    drop(rt);
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["user:int"]),
        "GET /users/{id} [server]\n  handler [internal] user:int=1\n    load [internal] user:int=1\n      traced_async [internal]\n    load [internal] user:int=2\n      traced_async [internal]\n    background [internal]\n"
    );
}

// --- fields and the otel.* conventions ----------------------------------------------------

#[derive(Debug)]
struct Cart {
    #[allow(dead_code)]
    items: u32,
}

#[test]
fn typed_fields_otel_fields_and_record() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
        let _in = root.enter();
        let span = tracing::info_span!(
            "static_name",
            otel.name = %format!("checkout {}", 42),
            otel.kind = "Client",
            otel.status_code = "error",
            otel.status_description = "card declined",
            count = 3i64,
            negative = -5i64,
            big = u64::MAX,
            ratio = 0.25f64,
            cached = true,
            user = "alice",
            cart = ?Cart { items: 2 },
            http.response.status_code = 402u16,
            late = tracing::field::Empty,
        );
        span.record("late", 1i64);
        span.record("late", 2i64);
        span.record("count", "many");
        span.record("otel.kind", "server");
        drop(span);
    });
    let spans = cap.finish();
    let mapped = map_spans(spans.records.clone(), &SpanLimits::default());
    let span = mapped.iter().find(|s| s.name == "checkout 42").unwrap();
    assert_eq!(
        span.kind,
        ProtoKind::Server as i32,
        "the last kind recorded"
    );
    let status = span.status.as_ref().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (StatusCode::Error as i32, "card declined")
    );
    let attr = |k: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.clone())
    };
    assert_eq!(
        attr("count"),
        Some(Value::StringValue("many".into())),
        "recorded: last wins"
    );
    assert_eq!(attr("negative"), Some(Value::IntValue(-5)));
    assert_eq!(attr("big"), Some(Value::StringValue(u64::MAX.to_string())));
    assert_eq!(attr("ratio"), Some(Value::DoubleValue(0.25)));
    assert_eq!(attr("cached"), Some(Value::BoolValue(true)));
    assert_eq!(attr("user"), Some(Value::StringValue("alice".into())));
    assert_eq!(
        attr("cart"),
        Some(Value::StringValue("Cart { items: 2 }".into()))
    );
    assert_eq!(
        attr("http.response.status_code"),
        Some(Value::IntValue(402))
    );
    assert_eq!(attr("late"), Some(Value::IntValue(2)));
    for k in [
        "otel.name",
        "otel.kind",
        "otel.status_code",
        "otel.status_description",
    ] {
        assert_eq!(attr(k), None, "{k} is not an attribute");
    }
    assert_eq!(
        span.attributes
            .iter()
            .filter(|kv| kv.key == "count")
            .count(),
        1,
        "one attribute per key"
    );
}

// --- errors and events --------------------------------------------------------------------

#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for Declined {}

#[tracing::instrument(err)]
fn pay(ok: bool) -> Result<u32, Declined> {
    if ok { Ok(1) } else { Err(Declined) }
}

#[tracing::instrument(err)]
async fn pay_async() -> Result<(), Declined> {
    tokio::task::yield_now().await;
    Err(Declined)
}

#[test]
fn instrument_err_sets_the_error_status_and_records_an_exception() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t).events(false), || {
        let root = t.start_root("POST /pay", SpanKind::Server, &Pairs::new());
        let _in = root.enter();
        let _ = pay(true);
        let _ = pay(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(pay_async());
    });
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["otel.status_code", "otel.status_description"]),
        "POST /pay [server]\n  pay [internal]\n  pay [internal] otel.status_code=ERROR otel.status_description=card declined\n  pay_async [internal] otel.status_code=ERROR otel.status_description=card declined\n"
    );
    let failed: Vec<_> = spans
        .records
        .iter()
        .filter(|r| prop(r, "otel.status_code").is_some())
        .collect();
    for r in failed {
        assert_eq!(r.events.len(), 1, "{r:?}");
        assert_eq!(r.events[0].name, "exception");
        let p = event_props(&r.events[0]);
        assert!(
            p.contains(&("exception.message".into(), "card declined".into())),
            "{p:?}"
        );
        assert!(p.contains(&("level".into(), "ERROR".into())), "{p:?}");
    }
    assert!(
        spans.all("pay")[0].events.is_empty(),
        "the Ok call has no event"
    );
}

#[test]
fn events_become_span_events_filtered_by_level() {
    let t = tracer(Sampler::AlwaysOn);
    let run = |layer: TracewireLayer| {
        let cap = tracewire_test::capture();
        with_layer(layer, || {
            let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
            let _in = root.enter();
            let span = tracing::info_span!("work");
            let _e = span.enter();
            tracing::info!(attempt = 2u64, fast = false, "cache miss");
            tracing::debug!("details");
            tracing::warn!(error = %Declined, "retrying");
        });
        cap.finish()
    };
    let spans = run(layer(&t));
    let work = spans.expect("work");
    let names: Vec<_> = work.events.iter().map(|e| e.name.to_string()).collect();
    assert_eq!(names, ["cache miss", "exception"], "debug is below INFO");
    assert_eq!(
        event_props(&work.events[0]),
        [
            ("attempt:int".to_owned(), "2".to_owned()),
            ("fast:bool".into(), "false".into()),
            ("level".into(), "INFO".into()),
            ("target".into(), "layer".into()),
        ]
    );
    let exception = event_props(&work.events[1]);
    assert!(
        exception.contains(&("message".into(), "retrying".into())),
        "{exception:?}"
    );
    assert_eq!(
        prop(work, "otel.status_code"),
        Some("ERROR"),
        "an error field fails the span"
    );

    let spans = run(layer(&t).event_level(Level::DEBUG));
    assert_eq!(spans.expect("work").events.len(), 3);
    let spans = run(layer(&t).events(false));
    let names: Vec<_> = spans
        .expect("work")
        .events
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    assert_eq!(names, ["exception"], "errors are recorded with events off");
    // An event outside any span of the trace goes on the innermost fastrace span.
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root("GET /y", SpanKind::Server, &Pairs::new());
        let _in = root.enter();
        tracing::error!("failed hard");
    });
    let spans = cap.finish();
    let root = spans.expect("GET /y");
    assert_eq!(root.events[0].name, "failed hard");
    assert_eq!(
        prop(root, "otel.status_code"),
        None,
        "not a tracing span: status untouched"
    );
}

#[test]
fn an_error_event_fails_its_tracing_span_even_inside_a_fastrace_span() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
        let _in = root.enter();
        let span = tracing::info_span!("work");
        let _e = span.enter();
        let _local = fastrace::local::LocalSpan::enter_with_local_parent("step");
        tracing::error!("db down");
    });
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["otel.status_code", "otel.status_description"]),
        "GET /x [server]\n  work [internal] otel.status_code=ERROR otel.status_description=db down\n    step [internal]\n"
    );
    assert_eq!(
        spans.expect("step").events[0].name,
        "db down",
        "the log line's span"
    );
}

// --- links, explicit parents --------------------------------------------------------------

#[test]
fn follows_from_becomes_a_link_and_explicit_parents_are_kept() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root("batch", SpanKind::Consumer, &Pairs::new());
        let _in = root.enter();
        let first = tracing::info_span!("first");
        let second = tracing::info_span!("second");
        second.follows_from(&first);
        // An explicit parent wins over the current span.
        let _e = second.enter();
        let child = tracing::info_span!(parent: &first, "of_first");
        drop(child);
        tracing::info!(parent: &first, "noted");
        drop(_e);
        drop((first, second));
    });
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&[]),
        "batch [consumer]\n  first [internal]\n    of_first [internal]\n  second [internal]\n"
    );
    let first = spans.expect("first");
    assert_eq!(
        spans.expect("second").links,
        [SpanContext::new(first.trace_id, first.span_id)]
    );
    assert_eq!(first.events[0].name, "noted");
}

// --- unsampled, outside any trace, root spans ---------------------------------------------

#[test]
fn unsampled_records_nothing_and_propagates_the_unsampled_parent() {
    let t = tracer(Sampler::default());
    let cap = tracewire_test::capture();
    let (outbound, root_cx) = with_layer(layer(&t).root_spans(true), || {
        let root = t.start_root(
            "GET /x",
            SpanKind::Server,
            &Pairs::from_pairs([("traceparent", TP_UNSAMPLED)]),
        );
        let _in = root.enter();
        outer(1);
        let span = tracing::info_span!("call");
        let _e = span.enter();
        tracing::error!(error = %Declined, "ignored");
        let child = t.start_child("GET", SpanKind::Client);
        let mut out = Pairs::new();
        t.inject(child.context.as_ref().unwrap(), &mut out);
        (
            out.get("traceparent").unwrap().to_owned(),
            root.context.clone(),
        )
    });
    assert!(cap.finish().is_empty());
    assert!(
        outbound.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{outbound}"
    );
    assert!(outbound.ends_with("-00"), "{outbound}");
    assert!(!outbound.contains(&format!("{:016x}", root_cx.span_id.0)));
}

#[test]
fn outside_any_trace_nothing_unless_root_spans() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    let seen = with_layer(layer(&t), || {
        let span = tracing::info_span!("job", otel.kind = "consumer");
        let _e = span.enter();
        outer(1);
        TraceContext::current()
    });
    assert!(cap.finish().is_empty());
    assert_eq!(seen, None);

    let cap = tracewire_test::capture();
    let outbound = with_layer(layer(&t).root_spans(true), || {
        let span = tracing::info_span!("job", otel.kind = "consumer");
        let _e = span.enter();
        outer(1);
        let mut out = Pairs::new();
        t.inject_current(&mut out);
        out.get("traceparent").map(str::to_owned)
    });
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["tracewire.trace_flags"]),
        "job [consumer] tracewire.trace_flags=03\n  outer [internal] tracewire.trace_flags=03\n    inner [internal] tracewire.trace_flags=03\n    traced [internal]\n      deep [internal] tracewire.trace_flags=03\n",
        "every `tracing` span carries the trace's flags (the fastrace span in between inherits them at export)"
    );
    let job = spans.expect("job");
    assert_eq!(
        outbound.unwrap(),
        format!("00-{:032x}-{:016x}-03", job.trace_id.0, job.span_id.0),
        "the root's context (random flag included) is current inside it"
    );

    // An unsampled root: nothing recorded, the trace still propagates from inside.
    let cap = tracewire_test::capture();
    let outbound = with_layer(layer(&tracer(Sampler::AlwaysOff)).root_spans(true), || {
        let span = tracing::info_span!("job");
        let _e = span.enter();
        outer(1);
        let mut out = Pairs::new();
        Tracer::new().inject_current(&mut out);
        out.get("traceparent").map(str::to_owned)
    });
    assert!(cap.finish().is_empty());
    assert!(outbound.unwrap().ends_with("-02"), "unsampled, random");
}

// --- robustness ---------------------------------------------------------------------------

#[test]
fn out_of_order_and_foreign_exits_never_panic_and_restore_the_parent() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
        let root_id = root.context.span_id;
        {
            let _in = root.enter();
            let a = tracing::info_span!("a");
            let b = tracing::info_span!("b");
            let ga = a.enter();
            let gb = b.enter();
            drop(ga); // out of order: `b` stays the parent until it exits too
            let c = tracing::info_span!("c");
            drop(c);
            drop(gb);
            assert_eq!(
                SpanContext::current_local_parent().unwrap().span_id,
                root_id
            );
            // Entered here, exited on another thread: that exit does nothing there.
            let d = tracing::info_span!("d");
            let id = d.id().unwrap();
            tracing::dispatcher::get_default(|disp| disp.enter(&id));
            let disp = tracing::dispatcher::get_default(Clone::clone);
            std::thread::spawn(move || disp.exit(&id)).join().unwrap();
            tracing::dispatcher::get_default(|disp| disp.exit(&d.id().unwrap()));
            assert_eq!(
                SpanContext::current_local_parent().unwrap().span_id,
                root_id
            );
        }
        assert!(SpanContext::current_local_parent().is_none());
        assert!(TraceContext::current().is_none());
    });
    assert_eq!(
        cap.finish().tree(&[]),
        "GET /x [server]\n  a [internal]\n  b [internal]\n    c [internal]\n  d [internal]\n"
    );
}

/// Every span the layer records carries the trace's flags and `tracestate` itself, whichever
/// way it found its parent (fastrace's local parent, an explicit parent, the attached context),
/// so the export never has to look for them on an ancestor.
#[test]
fn recorded_spans_carry_their_own_trace_flags_and_tracestate() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root(
            "GET /x",
            SpanKind::Server,
            &Pairs::from_pairs([("traceparent", TP), ("tracestate", "k=v")]),
        );
        let context = root.context.clone();
        {
            let _in = root.enter();
            let local = tracing::info_span!("local");
            let _explicit = tracing::info_span!(parent: &local, "explicit");
        }
        drop(root);
        let _attached = context.attach();
        let _from_context = tracing::info_span!("attached");
    });
    let spans = cap.finish();
    for name in ["local", "explicit", "attached"] {
        let r = spans
            .records
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} recorded"));
        assert_eq!(prop(r, "tracewire.trace_flags"), Some("01"), "{name}");
        assert_eq!(prop(r, "tracewire.tracestate"), Some("k=v"), "{name}");
    }
}

/// A span entered again inside itself (`in_scope` within its own `enter`) stays fastrace's
/// local parent throughout, and the outer exit still restores the parent before it.
#[test]
fn a_span_entered_again_inside_itself_keeps_its_children() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
        let root_id = root.context.span_id;
        {
            let _in = root.enter();
            let a = tracing::info_span!("a");
            let ga = a.enter();
            let a_id = SpanContext::current_local_parent().unwrap().span_id;
            a.in_scope(|| {
                assert_eq!(SpanContext::current_local_parent().unwrap().span_id, a_id);
                traced();
            });
            assert_eq!(SpanContext::current_local_parent().unwrap().span_id, a_id);
            inner();
            drop(ga);
            assert_eq!(
                SpanContext::current_local_parent().unwrap().span_id,
                root_id
            );
        }
        assert!(SpanContext::current_local_parent().is_none());
    });
    assert_eq!(
        cap.finish().tree(&[]),
        "GET /x [server]\n  a [internal]\n    traced [internal]\n      deep [internal]\n    inner [internal]\n"
    );
}

/// Counts how often the layer reads it: a field's `Debug` runs only when a span is recorded.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl std::fmt::Debug for Counted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f.write_str("counted")
    }
}

#[test]
fn unsampled_and_outside_spans_never_read_their_fields() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reads = AtomicUsize::new(0);
    let cap = tracewire_test::capture();
    let run = |t: Tracer| {
        with_layer(layer(&t), || {
            let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
            let _in = root.enter();
            let span = tracing::info_span!("work", v = ?Counted(&reads));
            let _e = span.enter();
            span.record("v", tracing::field::debug(Counted(&reads)));
            tracing::info!(v = ?Counted(&reads), "event");
        });
    };
    run(tracer(Sampler::AlwaysOff));
    with_layer(layer(&tracer(Sampler::AlwaysOn)), || {
        let span = tracing::info_span!("outside", v = ?Counted(&reads));
        span.record("v", tracing::field::debug(Counted(&reads)));
        span.in_scope(|| tracing::info!(v = ?Counted(&reads), "event"));
    });
    assert_eq!(reads.load(Ordering::Relaxed), 0, "nothing read");
    assert!(cap.take().is_empty());
    run(tracer(Sampler::AlwaysOn));
    assert_eq!(reads.load(Ordering::Relaxed), 3, "span, record, event");
    assert_eq!(cap.finish().len(), 2);
}

/// A field whose `Debug` logs an error about the span being recorded.
struct Noisy;

impl std::fmt::Debug for Noisy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::error!("while formatting");
        f.write_str("noisy")
    }
}

#[test]
fn fields_that_log_while_read_do_not_deadlock() {
    let t = tracer(Sampler::AlwaysOn);
    let cap = tracewire_test::capture();
    with_layer(layer(&t), || {
        let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
        let _in = root.enter();
        let parent = tracing::info_span!("parent", v = tracing::field::Empty);
        let _e = parent.enter();
        parent.record("v", tracing::field::debug(Noisy));
        let child = tracing::info_span!(parent: &parent, "child", v = ?Noisy);
        drop(child);
    });
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["v", "otel.status_code"]),
        "GET /x [server]\n  parent [internal] v=noisy otel.status_code=ERROR\n    child [internal] v=noisy\n"
    );
}
