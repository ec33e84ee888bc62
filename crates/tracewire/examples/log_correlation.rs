//! Log ↔ trace correlation with the `tracing` crate: every log line inside a traced request
//! carries `trace_id`/`span_id`, and the events are also recorded on the span.
//!
//! Run: `cargo run -p tracewire --example log_correlation`
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use tracewire::logs::{SpanEvents, WithTraceIds};
use tracewire::{Pairs, SpanKind, Tracer};
use tracing_subscriber::layer::SubscriberExt as _;

fn main() {
    // Spans go to the console as a tree (OTEL_TRACES_EXPORTER=console), simple mode so each
    // trace prints as soon as it ends.
    let guard = tracewire::builder()
        .service_name("log-correlation-example")
        .env_lookup(|name| (name == "OTEL_TRACES_EXPORTER").then(|| "console".to_owned()))
        .simple(true)
        .init();

    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer().event_format(WithTraceIds::new(
                tracing_subscriber::fmt::format().compact(),
            )),
        )
        .with(SpanEvents);
    tracing::subscriber::set_global_default(subscriber).unwrap();

    tracing::info!("outside any trace: no ids");
    let inbound = Pairs::from_pairs([(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )]);
    let root = Tracer::global().start_root("GET /orders/{id}", SpanKind::Server, &inbound);
    {
        let _g = root.enter();
        tracing::info!(order_id = 42, "loading order");
        tracing::warn!("cache miss");
    }
    drop(root);
    drop(guard); // flushes: the span tree with both events is printed
}
