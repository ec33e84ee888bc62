//! Shared by every bench: criterion measures the benchmarking thread's CPU time.

use std::time::Duration;

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

/// Criterion measurement: CPU time of the benchmarking thread (`CLOCK_THREAD_CPUTIME_ID`)
/// instead of wall-clock time. On the shared 2-core machine other jobs preempt the bench thread
/// and wall-clock medians swing 2-3x between two benches of one run, which makes ratios
/// meaningless. Time the thread spends descheduled or waiting is not counted, and neither are
/// background threads (fastrace's collector, export workers): this is the cost on the measured
/// thread.
pub(crate) struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;

    fn start(&self) -> cpu_time::ThreadTime {
        cpu_time::ThreadTime::now()
    }
    fn end(&self, start: cpu_time::ThreadTime) -> Duration {
        start.elapsed()
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, d: &Duration) -> f64 {
        d.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

/// Formats values as CPU nanoseconds (and element throughput per CPU second).
pub(crate) struct Nanos;

impl ValueFormatter for Nanos {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        if let Throughput::Elements(n) = t {
            for v in values.iter_mut() {
                *v = *n as f64 * 1e9 / *v;
            }
        }
        "elem/s (cpu)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Runs `f` inside a caller's span and context (sampled or not), as a handler would: what the
/// client-side benches (`grpc`, `http_client`) measure their layers in.
#[allow(dead_code)] // not every bench measures a client
pub(crate) fn in_caller<R>(sampled: bool, f: impl FnOnce() -> R) -> R {
    use fastrace::collector::SpanContext;
    use fastrace::prelude::Span;
    use tracewire_core::{SpanId, TraceContext, TraceId};

    let cx = TraceContext::new(
        TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId(0x00f0_67aa_0ba9_02b7),
        sampled,
    );
    let root = if sampled {
        Span::root("caller", SpanContext::from(&cx))
    } else {
        Span::noop()
    };
    let _parent = root.set_local_parent();
    let _cx = cx.attach();
    f()
}

/// Where criterion writes its results: the workspace target directory, as criterion finds it.
#[allow(dead_code)] // not every bench prints a summary
pub(crate) fn criterion_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
        .join("criterion")
}

/// The `estimates.json` criterion wrote for `group/function` in its last run of it.
#[allow(dead_code)] // not every bench prints a summary
pub(crate) fn estimates_file(group: &str, function: &str) -> std::path::PathBuf {
    let dir = |s: &str| s.replace(['/', '\\', ':', '*', '?', '"', '<', '>', '|'], "_");
    criterion_dir()
        .join(dir(group))
        .join(dir(function))
        .join("new")
        .join("estimates.json")
}

/// The median (ns) criterion recorded for `group/function`, if it has measured it.
#[allow(dead_code)] // not every bench prints a summary
pub(crate) fn median_ns(group: &str, function: &str) -> Option<f64> {
    let json = std::fs::read_to_string(estimates_file(group, function)).ok()?;
    let median = &json[json.find("\"median\"")?..];
    let point = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = point.find([',', '}'])?;
    point[..end].trim().parse().ok()
}

/// What the broker benches share.
#[allow(dead_code)] // only the broker benches use it
pub(crate) mod broker;
