//! The harness the tracewire benchmarks share: results and commands are in `BENCHMARKS.md` at
//! the repository root.
//!
//! - [`export`]: where tracewire's spans go in a benchmark — an export pipeline whose exporter
//!   encodes every OTLP request and drops it ([`export::CountingSink`]), or a fastrace
//!   reporter that drops them ([`export::Discard`]).
//! - [`otel`]: the OpenTelemetry SDK side of every hand-written peer — the tracer provider
//!   (`ParentBased` sampler, `BatchSpanProcessor` into an exporter that does what
//!   `opentelemetry-otlp` does before sending, then drops the bytes) and ending a span.
//! - [`Sinks`]: both of them for a criterion bench, sampled and unsampled side by side.
//! - [`control`]: the long-running load programs (`examples/{grpc,http_client}_load.rs`):
//!   where a mode's spans go ([`control::Exporting`]) and the untraced `/_count` and `/_flush`
//!   routes through which the drivers measure a window of the run.
//! - [`load`]: the end-to-end load programs (`examples/*_load.rs`): their modes, command line,
//!   tracing setup, timing and `RESULT` line, which the `*_load.sh` drivers read.
//!
//! Each broker's bench and load program keeps only its client setup and what it does per
//! message; its OpenTelemetry peer (the carriers and attributes users write for that client)
//! lives in `benches/common/<broker>_otel.rs`.
//!
//! ```text
//! cargo bench -p tracewire-benches --bench <name>
//! cargo build --release -p tracewire-benches --example <broker>_load
//! ```

pub mod control;
pub mod export;
pub mod load;
pub mod otel;
mod sinks;

pub use sinks::{Collect, Sinks};

use tracewire_core::{Sampler, Tracer};

/// A W3C `traceparent` of a sampled remote parent: what the prepared messages carry, and the
/// constant header of the `fastrace-floor` / `bare + traceparent` rows (a real context's size).
pub const TRACEPARENT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// The same context, not sampled (flags `00`).
pub const TRACEPARENT_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

/// The `traceparent` of a prepared message for a sampled or an unsampled row.
pub fn traceparent(sampled: bool) -> &'static str {
    if sampled {
        TRACEPARENT_SAMPLED
    } else {
        TRACEPARENT_UNSAMPLED
    }
}

/// tracewire's tracer of a row or mode: `parentbased(always_on)` when `sampled`, else
/// `parentbased(always_off)` (contexts still propagated, flags `00`).
pub fn tracer(sampled: bool) -> Tracer {
    let root = if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    };
    Tracer::new().with_sampler(Sampler::parent_based(root))
}

/// A bare fastrace root span with two properties, submitted when dropped: the engine's floor,
/// what any fastrace-based instrumentation does at the least for a recorded message.
pub fn floor_span(
    name: &'static str,
    properties: [(&'static str, &'static str); 2],
) -> fastrace::Span {
    fastrace::Span::root(name, fastrace::collector::SpanContext::random())
        .with_properties(move || properties)
}
