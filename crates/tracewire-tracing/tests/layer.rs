//! Span trees of `tracing` spans recorded by the layer: under tracewire roots and
//! `#[fastrace::trace]`, nested, async and spawned; fields, `otel.*`, errors, events, links,
//! `record()`; unsampled and outside any trace.
#![allow(clippy::unwrap_used, missing_docs)]

use fastrace::collector::SpanRecord;
use tracewire_core::{Pairs, Sampler, SpanKind, TraceContext, Tracer};
use tracewire_tracing::TracewireLayer;
use tracing_subscriber::layer::SubscriberExt as _;

fn tracer(sampler: Sampler) -> Tracer {
    Tracer::new().with_sampler(sampler)
}

/// Runs `f` with a registry and `layer` as this thread's subscriber.
fn with_layer<R>(layer: TracewireLayer, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f)
}

fn props(r: &SpanRecord) -> Vec<(String, String)> {
    let mut v: Vec<_> = r
        .properties
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

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
    with_layer(tracewire_tracing::layer().with_tracer(t.clone()), || {
        let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
        let _in = root.enter();
        outer(7);
    });
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["n:int"]),
        "GET /x [server]\n  outer [internal] n:int=7\n    inner [internal]\n    traced [internal]\n      deep [internal]\n"
    );
    let _ = props;
}
