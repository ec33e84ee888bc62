//! What the broker benches (`messaging` for NATS, `rabbitmq`, `kafka`, `mqtt`, `redis`)
//! share: row names, pacing, the criterion configuration, the summary and the profile runs.
//! Where the spans go is `tracewire_benches::Sinks`; each broker's OpenTelemetry peer is
//! `common/<broker>_otel.rs`.

use std::time::Duration;

use super::{ThreadCpu, median_ns};

/// The client alone, no tracing.
pub(crate) const BARE: &str = "bare";
/// The client with a prepared, constant `traceparent`: what carrying it costs untraced.
pub(crate) const BARE_HEADER: &str = "bare + traceparent";
/// The engine's floor: a bare fastrace root span with two properties.
pub(crate) const FLOOR: &str = "fastrace root span";
/// tracewire, `parentbased(always_on)`.
pub(crate) const TW_SAMPLED: &str = "tracewire sampled";
/// tracewire, `parentbased(always_off)`.
pub(crate) const TW_UNSAMPLED: &str = "tracewire unsampled";
/// The hand-written OpenTelemetry peer, `ParentBased(AlwaysOn)`.
pub(crate) const OTEL_SAMPLED: &str = "otel sampled";
/// The same, `ParentBased(AlwaysOff)`.
pub(crate) const OTEL_UNSAMPLED: &str = "otel unsampled";

/// Whether `row` is a sampled one (its prepared messages carry flags `01`).
pub(crate) fn sampled(row: &str) -> bool {
    !row.ends_with("unsampled")
}

/// The peer row a tracewire row is compared with in the summary.
pub(crate) fn peer_row(row: &str) -> Option<&'static str> {
    match row {
        TW_SAMPLED => Some(OTEL_SAMPLED),
        TW_UNSAMPLED => Some(OTEL_UNSAMPLED),
        _ => None,
    }
}

/// A `fastrace root span` row's span: `span.kind` `kind`, `trace.flags` `01`.
pub(crate) fn floor_span(name: &'static str, kind: &'static str) -> fastrace::Span {
    tracewire_benches::floor_span(name, [("span.kind", kind), ("trace.flags", "01")])
}

/// Polls `fut` once with a no-op waker (the handlers here never wait).
pub(crate) fn run<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the handler waited"),
    }
}

/// Iterations timed back to back; everything is drained (untimed) after each run of them.
pub(crate) const PACE: u64 = 256;

/// Times `iters` runs of a row in runs of [`PACE`]: `prepare(k)` makes the input of `k` runs
/// (untimed), `run` does them (timed, on this thread's CPU clock), then `drain` collects and
/// exports everything they produced (untimed) — so every row is measured at a span rate its
/// background threads keep up with and no span is dropped: fastrace's per-thread queue grows
/// without bound when spans come faster than its collector takes them (the rows would then
/// measure that backlog — page faults, wake-ups — not the work), and the SDK's batch processor
/// drops what does not fit.
pub(crate) fn paced<T>(
    iters: u64,
    drain: &dyn Fn(),
    mut prepare: impl FnMut(u64) -> T,
    mut run: impl FnMut(T),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(PACE);
        let input = prepare(k);
        let start = cpu_time::ThreadTime::now();
        run(input);
        total += start.elapsed();
        left -= k;
        drain();
    }
    total
}

/// The criterion configuration of the messaging benches: thread CPU time, 0.7 s warm-up, 2 s
/// measurement, then the command line.
pub(crate) fn criterion() -> criterion::Criterion<ThreadCpu> {
    criterion::Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// Whether this is a measuring run (`cargo bench`), not `--test` or `--list`: then the bench
/// prints its summary of the medians.
pub(crate) fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// A criterion group `name`: each of `rows` timed by `time(row, iters)` (criterion's
/// `iter_custom`), then `after_row()`.
pub(crate) fn group(
    c: &mut criterion::Criterion<ThreadCpu>,
    name: &str,
    rows: &[&'static str],
    after_row: &dyn Fn(),
    mut time: impl FnMut(&'static str, u64) -> Duration,
) {
    let mut g = c.benchmark_group(name);
    for &row in rows {
        g.bench_function(row, |b| b.iter_custom(|iters| time(row, iters)));
        after_row();
    }
    g.finish();
}

/// Per group (name, rows, the row to subtract), on stderr: each row's median, the CPU it adds
/// over the base row, and for a tracewire row the CPU its peer row (`peer_of`) adds over
/// tracewire's.
pub(crate) fn print_added(
    groups: &[(&str, &[&'static str], Option<&str>)],
    peer_of: impl Fn(&str) -> Option<&'static str>,
) {
    for &(group, rows, base) in groups {
        let base = base.and_then(|b| median_ns(group, b)).unwrap_or(0.0);
        eprintln!(
            "\n{group}\n| row | median ns (cpu) | added over bare | otel / tracewire (added) |"
        );
        eprintln!("|---|---:|---:|---:|");
        for row in rows {
            let Some(v) = median_ns(group, row) else {
                continue;
            };
            let peer_ratio = peer_of(row)
                .and_then(|peer| median_ns(group, peer))
                .map(|p| format!("{:.2}x", (p - base) / (v - base)))
                .unwrap_or_default();
            eprintln!("| {row} | {v:.0} | {:+.0} | {peer_ratio} |", v - base);
        }
    }
}

/// A `<BENCH>_BENCH_PROFILE=<group>/<row>[:n]` request: one row run `n` times without
/// criterion, a fixed workload for `valgrind --tool=callgrind` or `perf record`. The row may
/// be written with `-` for spaces (`process/tracewire-sampled:10000`); the group is what
/// precedes the last `/`.
pub(crate) struct Profile {
    pub(crate) group: String,
    pub(crate) row: String,
    pub(crate) n: u64,
}

impl Profile {
    /// The request in the environment variable `var`, if it is set; `n` defaults to
    /// `default_n`.
    pub(crate) fn from_env(var: &str, default_n: u64) -> Option<Profile> {
        let spec = std::env::var(var).ok()?;
        let (row, n) = match spec.rsplit_once(':') {
            Some((row, n)) => (
                row,
                n.parse()
                    .unwrap_or_else(|_| panic!("{var}: not a count: {n}")),
            ),
            None => (spec.as_str(), default_n),
        };
        let (group, row) = row
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("{var}: no <group>/<row> in {spec}"));
        Some(Profile {
            group: group.to_owned(),
            row: row.replace('-', " "),
            n,
        })
    }

    /// The row among `rows`.
    pub(crate) fn row_in(&self, rows: &[&'static str]) -> &'static str {
        rows.iter()
            .find(|r| **r == self.row)
            .unwrap_or_else(|| panic!("unknown row {}", self.row))
    }
}
