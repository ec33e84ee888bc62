#![doc = include_str!("../README.md")]
#![allow(clippy::unwrap_used)]

/// The FastStream interop harness of the broker crates: the OTLP receiver, the Python peer, the
/// chain's span tree and the assertions every broker makes.
#[cfg(feature = "faststream")]
pub mod faststream;
/// A real Jaeger on free loopback ports, and readers of its query APIs (v1 JSON, v3).
#[cfg(feature = "jaeger")]
pub mod jaeger;
/// Interop peers: a Python script from `.venv` over a line protocol (std only).
pub mod peer;
/// A program of the workspace (an example, the demo) run to its end, bounded in time.
pub mod process;
/// Loud, recorded skips for tests whose interop peer or broker is missing (fail under `CI=true`).
pub mod skip;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use fastrace::collector::{Config, Reporter, SpanId, SpanRecord, TraceId};

static INIT: Once = Once::new();
static SINK: Mutex<Vec<SpanRecord>> = Mutex::new(Vec::new());
static SERIAL: Mutex<()> = Mutex::new(());

struct MemoryReporter;

impl Reporter for MemoryReporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        lock(&SINK).extend(spans);
    }
}

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running capture: every span reported until [`Capture::finish`] is collected.
/// Holds a process-wide lock so captures never overlap.
#[must_use = "call finish() to get the spans"]
pub struct Capture {
    _serial: MutexGuard<'static, ()>,
}

/// Starts capturing spans (installs the in-memory reporter on first use).
pub fn capture() -> Capture {
    INIT.call_once(|| fastrace::set_reporter(MemoryReporter, Config::default()));
    let serial = lock(&SERIAL);
    fastrace::flush();
    lock(&SINK).clear();
    Capture { _serial: serial }
}

impl Capture {
    /// Flushes fastrace and returns every span reported since [`capture`]. Root spans must have
    /// been dropped (finished) by now.
    pub fn finish(self) -> Spans {
        fastrace::flush();
        Spans {
            records: std::mem::take(&mut *lock(&SINK)),
        }
    }

    /// Returns the spans reported so far, leaving the capture running.
    pub fn take(&self) -> Spans {
        fastrace::flush();
        Spans {
            records: std::mem::take(&mut *lock(&SINK)),
        }
    }
}

/// Spans collected by a [`Capture`].
#[derive(Clone, Debug, Default)]
pub struct Spans {
    /// The raw records, in report order.
    pub records: Vec<SpanRecord>,
}

/// A name no other test or run uses (brokers keep their state between runs):
/// `tw{time}p{pid}x{n}{sep}{name}`, `sep` joining the prefix to `name` (`'.'` for subjects,
/// keys, queues and topics; `'/'` for MQTT topic levels).
pub fn unique(sep: char, name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "tw{}p{}x{}{sep}{name}",
        now % 1_000_000_000,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Asserts the `traceparent`s that a chain of hops carried when nothing was sampled: one trace
/// (each has the first one's version and trace id) and the sampled flag off on every one.
///
/// # Panics
///
/// When they are not, or one is shorter than a `traceparent`.
#[track_caller]
pub fn assert_unsampled_trace(traceparents: &[&str]) {
    let first = traceparents.first().copied().unwrap_or_default();
    for tp in traceparents {
        assert_eq!(first[..35], tp[..35], "one trace: {first} {tp}");
        let flags = u8::from_str_radix(&tp[53..], 16).unwrap();
        assert_eq!(flags & 1, 0, "not sampled: {tp}");
    }
}

/// The value of property `key` on `record`.
pub fn property<'a>(record: &'a SpanRecord, key: &str) -> Option<&'a str> {
    record
        .properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_ref())
}

/// The kind recorded on a span (`"internal"` when none).
pub fn kind(record: &SpanRecord) -> &str {
    property(record, "span.kind").unwrap_or("internal")
}

impl Spans {
    /// Number of spans.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The first span named `name`.
    pub fn named(&self, name: &str) -> Option<&SpanRecord> {
        self.records.iter().find(|r| r.name == name)
    }

    /// The first span named `name`; panics with the whole tree when there is none.
    pub fn expect(&self, name: &str) -> &SpanRecord {
        match self.named(name) {
            Some(r) => r,
            None => panic!("no span named {name:?}; collected:\n{}", self.tree(&[])),
        }
    }

    /// Every span named `name`, in start order.
    pub fn all(&self, name: &str) -> Vec<&SpanRecord> {
        let mut v: Vec<_> = self.records.iter().filter(|r| r.name == name).collect();
        v.sort_by_key(|r| r.begin_time_unix_ns);
        v
    }

    /// Asserts a delivery processed with `Relation::LinksOnly`: two traces, and the span named
    /// `processed` a root whose first link is the span named `sent`.
    ///
    /// # Panics
    ///
    /// When it is not so, or either span is missing.
    #[track_caller]
    pub fn assert_linked_root(&self, sent: &str, processed: &str) {
        assert_eq!(self.trace_ids().len(), 2, "{}", self.tree(&[]));
        let sent = self.expect(sent);
        let processed = self.expect(processed);
        assert_eq!(processed.parent_id, SpanId(0));
        assert_eq!(
            (processed.links[0].trace_id, processed.links[0].span_id),
            (sent.trace_id, sent.span_id)
        );
    }

    /// Distinct trace ids, in first-seen order.
    pub fn trace_ids(&self) -> Vec<TraceId> {
        let mut out = Vec::new();
        for r in &self.records {
            if !out.contains(&r.trace_id) {
                out.push(r.trace_id);
            }
        }
        out
    }

    /// Renders the spans as an indented tree, one line per span:
    /// `name [kind] key=value ...` for each of `keys` the span has. Children are ordered by
    /// start time. A root whose parent is not among the collected spans (a remote parent) is
    /// marked `(parent: <16 hex>)`. Traces are separated by nothing; roots of different traces
    /// are simply listed in start order.
    pub fn tree(&self, keys: &[&str]) -> String {
        let present: HashMap<(TraceId, SpanId), usize> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.trace_id, r.span_id), i))
            .collect();
        let mut children: HashMap<(TraceId, SpanId), Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            if r.parent_id != SpanId(0) && present.contains_key(&(r.trace_id, r.parent_id)) {
                children
                    .entry((r.trace_id, r.parent_id))
                    .or_default()
                    .push(i);
            } else {
                roots.push(i);
            }
        }
        let by_start = |v: &mut Vec<usize>| {
            v.sort_by(|a, b| {
                let (a, b) = (&self.records[*a], &self.records[*b]);
                a.begin_time_unix_ns
                    .cmp(&b.begin_time_unix_ns)
                    .then_with(|| a.name.cmp(&b.name))
            })
        };
        by_start(&mut roots);
        for v in children.values_mut() {
            by_start(v);
        }
        let mut out = String::new();
        let mut stack: Vec<(usize, usize)> = roots.into_iter().rev().map(|i| (i, 0)).collect();
        while let Some((i, depth)) = stack.pop() {
            let r = &self.records[i];
            let _ = write!(out, "{}{} [{}]", "  ".repeat(depth), r.name, kind(r));
            if depth == 0 && r.parent_id != SpanId(0) {
                let _ = write!(out, " (parent: {:016x})", r.parent_id.0);
            }
            for key in keys {
                if let Some(v) = property(r, key) {
                    let _ = write!(out, " {key}={v}");
                }
            }
            out.push('\n');
            if let Some(kids) = children.get(&(r.trace_id, r.span_id)) {
                stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
            }
        }
        out
    }
}
