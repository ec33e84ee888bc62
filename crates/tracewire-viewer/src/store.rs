//! The bounded in-memory trace store.
//!
//! Spans are kept as the official OTLP [`Span`] type, grouped by trace id, with a shared
//! [`Origin`] (resource + scope) per received batch. The store is bounded by trace count and by
//! (estimated) bytes; when either bound is exceeded the traces that arrived first are evicted.
//! Spans of one trace coming from several processes merge; a span received again (same span id,
//! same service) replaces the earlier copy; traces without a root are kept and flagged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::bloom::{self, Bloom};
use crate::persist::Persist;
use crate::query::Query;
use crate::text::{self, TextQuery};
use crate::util;

/// A 16-byte trace id.
pub type TraceId = [u8; 16];

/// Default bound on the number of stored traces.
pub const DEFAULT_MAX_TRACES: usize = 100_000;
/// Default bound on the (estimated) bytes of stored spans: 512 MiB.
pub const DEFAULT_MAX_BYTES: usize = 512 * 1024 * 1024;

/// Distinct span names remembered per service for the operations lists.
const MAX_OPERATIONS_PER_SERVICE: usize = 10_000;
/// Distinct services remembered for the services list.
const MAX_SERVICES: usize = 10_000;

/// Bounds of a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// At most this many traces are kept.
    pub max_traces: usize,
    /// At most about this many bytes of spans are kept (an estimate of heap use).
    pub max_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_traces: DEFAULT_MAX_TRACES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Where a span came from: the resource and instrumentation scope of its batch.
#[derive(Debug)]
pub struct Origin {
    /// The resource (process) that produced the span.
    pub resource: Resource,
    /// The resource's schema URL.
    pub resource_schema_url: String,
    /// The instrumentation scope.
    pub scope: InstrumentationScope,
    /// The scope's schema URL.
    pub scope_schema_url: String,
    /// `service.name` of the resource (`unknown_service` if absent).
    pub service: Arc<str>,
    service_id: u32,
    /// Resource attributes, pre-hashed once per batch.
    bloom: Bloom,
}

/// One stored span with its origin.
#[derive(Clone, Debug)]
pub struct StoredSpan {
    /// The span, as received.
    pub span: Span,
    /// Its resource and scope.
    pub origin: Arc<Origin>,
    bytes: u32,
}

impl Origin {
    pub(crate) fn service_id(&self) -> u32 {
        self.service_id
    }
}

impl StoredSpan {
    /// Duration in nanoseconds (0 if the end precedes the start).
    pub fn duration_ns(&self) -> u64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano)
    }
}

struct Trace {
    id: TraceId,
    spans: Vec<StoredSpan>,
    seq: u64,
    bytes: usize,
    start_ns: u64,
    end_ns: u64,
    services: Vec<u32>,
    bloom: Bloom,
    /// Lowercase search text of every span (see [`crate::text`]).
    text: Vec<u8>,
}

/// Accounted bytes of a trace's search text: its heap capacity plus allocator overhead.
fn text_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        capacity + PER_ALLOCATION
    }
}

impl Trace {
    /// Frees the search text's spare capacity, or rebuilds it from the spans when `rebuild`;
    /// returns the change in accounted bytes.
    fn finish_text(&mut self, rebuild: bool) -> isize {
        let before = text_bytes(self.text.capacity());
        if rebuild {
            self.text = text::build(&self.spans);
        } else {
            self.text.shrink_to_fit();
        }
        let after = text_bytes(self.text.capacity());
        self.bytes = (self.bytes as isize + after as isize - before as isize).max(0) as usize;
        after as isize - before as isize
    }

    fn summary(&self, services: &[Arc<str>]) -> TraceSummary {
        let ids: HashSet<&[u8]> = self
            .spans
            .iter()
            .map(|s| s.span.span_id.as_slice())
            .collect();
        let mut root: Option<&StoredSpan> = None;
        let mut missing_parents = 0;
        let mut errors = 0;
        let mut first: Option<&StoredSpan> = None;
        for s in &self.spans {
            if util::is_error(&s.span) {
                errors += 1;
            }
            if first.is_none_or(|f| s.span.start_time_unix_nano < f.span.start_time_unix_nano) {
                first = Some(s);
            }
            if util::is_empty_id(&s.span.parent_span_id) {
                if root.is_none_or(|r| s.span.start_time_unix_nano < r.span.start_time_unix_nano) {
                    root = Some(s);
                }
            } else if !ids.contains(s.span.parent_span_id.as_slice()) {
                missing_parents += 1;
            }
        }
        let shown = root.or(first);
        let mut per_service: Vec<ServiceCount> = self
            .services
            .iter()
            .map(|id| ServiceCount {
                name: services
                    .get(*id as usize)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                spans: self
                    .spans
                    .iter()
                    .filter(|s| s.origin.service_id == *id)
                    .count(),
                errors: self
                    .spans
                    .iter()
                    .filter(|s| s.origin.service_id == *id && util::is_error(&s.span))
                    .count(),
            })
            .collect();
        per_service.sort_by(|a, b| a.name.cmp(&b.name));
        TraceSummary {
            trace_id: util::hex(&self.id),
            root_service: shown
                .map(|s| s.origin.service.to_string())
                .unwrap_or_default(),
            root_name: shown.map(|s| s.span.name.clone()).unwrap_or_default(),
            start_us: self.start_ns / 1000,
            duration_us: self.end_ns.saturating_sub(self.start_ns) as f64 / 1000.0,
            span_count: self.spans.len(),
            error_count: errors,
            services: per_service,
            missing_root: root.is_none(),
            missing_parents,
            orphan: root.is_none() || missing_parents > 0,
        }
    }
}

/// Spans per service in a [`TraceSummary`].
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ServiceCount {
    /// Service name.
    pub name: String,
    /// Number of spans of that service in the trace.
    pub spans: usize,
    /// Number of error spans of that service.
    pub errors: usize,
}

/// One line of a search result (the viewer's own JSON API).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    /// 32 hex digits.
    pub trace_id: String,
    /// Service of the root span (or of the earliest span when the root is missing).
    pub root_service: String,
    /// Name of the root span (or of the earliest span when the root is missing).
    pub root_name: String,
    /// Start of the earliest span, µs since the epoch.
    pub start_us: u64,
    /// From the earliest start to the latest end, µs.
    pub duration_us: f64,
    /// Number of spans.
    pub span_count: usize,
    /// Number of spans with status ERROR.
    pub error_count: usize,
    /// Spans per service.
    pub services: Vec<ServiceCount>,
    /// No span without a parent arrived (yet).
    pub missing_root: bool,
    /// Spans whose parent is not in the trace.
    pub missing_parents: usize,
    /// `missing_root || missing_parents > 0`: the trace is incomplete. Such traces are listed.
    pub orphan: bool,
}

/// A new or updated trace, as sent on the live stream.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveEvent {
    /// `new` for a trace seen for the first time, `update` when late spans arrived.
    pub kind: &'static str,
    /// The trace after the change.
    pub trace: TraceSummary,
}

/// What one [`Store::ingest`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Spans stored.
    pub accepted: usize,
    /// Spans rejected (invalid trace or span id).
    pub rejected: usize,
}

/// Counters of a [`Store`].
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    /// Traces stored now.
    pub traces: usize,
    /// Spans stored now.
    pub spans: usize,
    /// Estimated bytes stored now.
    pub bytes: usize,
    /// Spans received since start.
    pub received_spans: u64,
    /// Spans rejected since start (invalid ids).
    pub rejected_spans: u64,
    /// Traces evicted since start.
    pub evicted_traces: u64,
    /// The trace bound.
    pub max_traces: usize,
    /// The byte bound.
    pub max_bytes: usize,
}

/// A span linking into a trace, found through the reverse link index.
#[derive(Clone, Debug)]
pub struct IncomingLink {
    /// The linking span's trace.
    pub from_trace: TraceId,
    /// The linking span.
    pub from_span: Vec<u8>,
    /// The linking span's name.
    pub from_name: String,
    /// The linking span's service.
    pub from_service: String,
    /// The span (of the requested trace) it links to.
    pub to_span: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    traces: HashMap<TraceId, Trace>,
    order: BTreeMap<u64, TraceId>,
    next_seq: u64,
    bytes: usize,
    spans: usize,
    services: Vec<Arc<str>>,
    service_ids: HashMap<Arc<str>, u32>,
    /// per service id: operation name -> bit set of span kinds seen.
    operations: Vec<BTreeMap<String, u8>>,
    /// link target trace -> traces that hold a span linking to it.
    backlinks: HashMap<TraceId, Vec<TraceId>>,
    received: u64,
    rejected: u64,
    evicted: u64,
}

impl Inner {
    fn service_id(&mut self, name: &str) -> (Arc<str>, u32) {
        if let Some((k, v)) = self.service_ids.get_key_value(name) {
            return (k.clone(), *v);
        }
        if self.services.len() >= MAX_SERVICES {
            // a runaway number of service names: share one bucket rather than grow forever
            return self.service_id_overflow();
        }
        let id = self.services.len() as u32;
        let name: Arc<str> = Arc::from(name);
        self.services.push(name.clone());
        self.service_ids.insert(name.clone(), id);
        self.operations.push(BTreeMap::new());
        (name, id)
    }

    fn service_id_overflow(&mut self) -> (Arc<str>, u32) {
        const OVERFLOW: &str = "(too many services)";
        if let Some((k, v)) = self.service_ids.get_key_value(OVERFLOW) {
            return (k.clone(), *v);
        }
        let id = self.services.len() as u32;
        let name: Arc<str> = Arc::from(OVERFLOW);
        self.services.push(name.clone());
        self.service_ids.insert(name.clone(), id);
        self.operations.push(BTreeMap::new());
        (name, id)
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((_, id)) = self.order.pop_first() else {
            return false;
        };
        if let Some(t) = self.traces.remove(&id) {
            self.bytes = self.bytes.saturating_sub(t.bytes);
            self.spans = self.spans.saturating_sub(t.spans.len());
            self.evicted += 1;
            self.backlinks.remove(&id);
            for s in &t.spans {
                for l in &s.span.links {
                    if let Ok(target) = <TraceId>::try_from(l.trace_id.as_slice()) {
                        if let Some(v) = self.backlinks.get_mut(&target) {
                            v.retain(|src| *src != id);
                            if v.is_empty() {
                                self.backlinks.remove(&target);
                            }
                        }
                    }
                }
            }
        }
        true
    }
}

/// Traces whose search texts are brought towards the cache together before they are scanned.
const WARM_AHEAD: usize = 16;

/// Reads one byte per cache line of each text, so the CPU has many independent memory loads in
/// flight instead of paying one memory latency after another when the texts are then scanned
/// (they live at unrelated heap addresses).
fn warm<'a>(texts: impl Iterator<Item = &'a [u8]>) {
    let mut x = 0u8;
    for t in texts {
        for b in t.iter().step_by(64) {
            x ^= *b;
        }
    }
    std::hint::black_box(x);
}

/// The bounded, indexed, thread-safe trace store. Cheap to share behind an [`Arc`].
pub struct Store {
    inner: RwLock<Inner>,
    config: StoreConfig,
    live: broadcast::Sender<Arc<LiveEvent>>,
    persist: Mutex<Option<Persist>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new(StoreConfig::default())
    }
}

/// Heap bytes the allocator adds to each allocation on average (rounding + bookkeeping);
/// calibrated with the counting allocator of the `viewer` benchmark.
const PER_ALLOCATION: usize = 16;

/// Estimated heap + inline bytes of a span (used for the byte bound): the struct, the encoded
/// payload (≈ the heap bytes of strings and ids), the inline size of every attribute, event and
/// link, and allocator overhead per heap allocation.
fn span_bytes(span: &Span) -> usize {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    fn kv_allocs(kvs: &[KeyValue]) -> usize {
        usize::from(!kvs.is_empty()) + 2 * kvs.len()
    }
    let kvs = span.attributes.len()
        + span
            .events
            .iter()
            .map(|e| e.attributes.len())
            .sum::<usize>()
        + span.links.iter().map(|l| l.attributes.len()).sum::<usize>();
    let allocs = 4
        + usize::from(!span.trace_state.is_empty())
        + kv_allocs(&span.attributes)
        + usize::from(!span.events.is_empty())
        + span
            .events
            .iter()
            .map(|e| 1 + kv_allocs(&e.attributes))
            .sum::<usize>()
        + usize::from(!span.links.is_empty())
        + span
            .links
            .iter()
            .map(|l| 2 + kv_allocs(&l.attributes))
            .sum::<usize>();
    std::mem::size_of::<StoredSpan>()
        + span.encoded_len()
        + kvs * std::mem::size_of::<KeyValue>()
        + span.events.len() * std::mem::size_of::<Event>()
        + span.links.len() * std::mem::size_of::<Link>()
        + allocs * PER_ALLOCATION
}

impl Store {
    /// An empty store with these bounds (a bound of 0 is treated as 1).
    pub fn new(config: StoreConfig) -> Self {
        let (live, _) = broadcast::channel(1024);
        Store {
            inner: RwLock::new(Inner::default()),
            config: StoreConfig {
                max_traces: config.max_traces.max(1),
                max_bytes: config.max_bytes.max(1),
            },
            live,
            persist: Mutex::new(None),
        }
    }

    /// The bounds.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    pub(crate) fn set_persist(&self, p: Persist) {
        if let Ok(mut g) = self.persist.lock() {
            *g = Some(p);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to the live stream of new and updated traces.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Stores every span of an OTLP request (and appends it to the persistence file, if any).
    pub fn ingest(&self, request: ExportTraceServiceRequest) -> IngestOutcome {
        let persisting = self.persist.lock().map(|g| g.is_some()).unwrap_or(false);
        if persisting {
            let bytes = request.encode_to_vec();
            if let Ok(mut g) = self.persist.lock() {
                if let Some(p) = g.as_mut() {
                    p.append(&bytes);
                }
            }
        }
        self.ingest_inner(request)
    }

    pub(crate) fn ingest_inner(&self, request: ExportTraceServiceRequest) -> IngestOutcome {
        let mut out = IngestOutcome::default();
        let live = self.live.receiver_count() > 0;
        let mut touched: Vec<(TraceId, bool)> = Vec::new();
        // fields of the search texts touched by this batch (dropped at its end); `None`: a span
        // was replaced, so the text is rebuilt once at the end of the batch
        let mut fields: HashMap<TraceId, Option<text::Fields>> = HashMap::new();
        let mut inner = self.write();
        for rs in request.resource_spans {
            let service = util::service_name(rs.resource.as_ref());
            let (service, service_id) = inner.service_id(&service);
            let resource = rs.resource.unwrap_or_default();
            for ss in rs.scope_spans {
                let mut bloom = Bloom::default();
                for kv in &resource.attributes {
                    bloom::add_kv(&mut bloom, kv);
                }
                let origin = Arc::new(Origin {
                    bloom,
                    resource: resource.clone(),
                    resource_schema_url: rs.schema_url.clone(),
                    scope: ss.scope.unwrap_or_default(),
                    scope_schema_url: ss.schema_url,
                    service: service.clone(),
                    service_id,
                });
                for span in ss.spans {
                    inner.received += 1;
                    let Some(tid) = util::trace_id_of(&span) else {
                        out.rejected += 1;
                        inner.rejected += 1;
                        continue;
                    };
                    if span.span_id.len() != 8 || util::is_empty_id(&span.span_id) {
                        out.rejected += 1;
                        inner.rejected += 1;
                        continue;
                    }
                    out.accepted += 1;
                    let is_new = self.insert(&mut inner, tid, span, &origin, &mut fields);
                    if live && !touched.iter().any(|(t, _)| *t == tid) {
                        touched.push((tid, is_new));
                    }
                }
            }
        }
        // the search texts grew by appends: give their spare capacity back (or rebuild them)
        // once per batch
        for (tid, f) in fields {
            if let Some(t) = inner.traces.get_mut(&tid) {
                let delta = t.finish_text(f.is_none());
                inner.bytes = (inner.bytes as isize + delta).max(0) as usize;
            }
        }
        while inner.traces.len() > self.config.max_traces || inner.bytes > self.config.max_bytes {
            if !inner.evict_oldest() {
                break;
            }
        }
        if live {
            let events: Vec<_> = touched
                .into_iter()
                .filter_map(|(tid, is_new)| {
                    inner.traces.get(&tid).map(|t| LiveEvent {
                        kind: if is_new { "new" } else { "update" },
                        trace: t.summary(&inner.services),
                    })
                })
                .collect();
            drop(inner);
            for e in events {
                let _ = self.live.send(Arc::new(e));
            }
        }
        out
    }

    /// Inserts one valid span; returns whether its trace is new.
    fn insert(
        &self,
        inner: &mut Inner,
        tid: TraceId,
        span: Span,
        origin: &Arc<Origin>,
        fields: &mut HashMap<TraceId, Option<text::Fields>>,
    ) -> bool {
        let bytes = span_bytes(&span);
        let kind_bit = 1u8 << (span.kind.clamp(0, 7) as u8);
        if let Some(ops) = inner.operations.get_mut(origin.service_id as usize) {
            if let Some(k) = ops.get_mut(span.name.as_str()) {
                *k |= kind_bit;
            } else if ops.len() < MAX_OPERATIONS_PER_SERVICE {
                // span names are meant to be low-cardinality; a runaway one cannot grow the index
                ops.insert(span.name.clone(), kind_bit);
            }
        }
        for l in &span.links {
            if let Ok(target) = <TraceId>::try_from(l.trace_id.as_slice()) {
                if target != tid {
                    let v = inner.backlinks.entry(target).or_default();
                    if !v.contains(&tid) {
                        v.push(tid);
                    }
                }
            }
        }
        let stored = StoredSpan {
            bytes: bytes as u32,
            origin: origin.clone(),
            span,
        };
        let (start, end) = (
            stored.span.start_time_unix_nano,
            stored
                .span
                .end_time_unix_nano
                .max(stored.span.start_time_unix_nano),
        );
        let is_new = !inner.traces.contains_key(&tid);
        if is_new {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.order.insert(seq, tid);
            inner.traces.insert(
                tid,
                Trace {
                    id: tid,
                    spans: Vec::with_capacity(4),
                    seq,
                    bytes: 0,
                    start_ns: start,
                    end_ns: end,
                    services: Vec::new(),
                    bloom: Bloom::default(),
                    text: Vec::new(),
                },
            );
        }
        let Some(trace) = inner.traces.get_mut(&tid) else {
            return is_new;
        };
        trace.start_ns = trace.start_ns.min(start);
        trace.end_ns = trace.end_ns.max(end);
        if !trace.services.contains(&origin.service_id) {
            trace.services.push(origin.service_id);
        }
        for (t, o) in trace.bloom.iter_mut().zip(origin.bloom.iter()) {
            *t |= o;
        }
        for kv in &stored.span.attributes {
            bloom::add_kv(&mut trace.bloom, kv);
        }
        for e in &stored.span.events {
            bloom::add_key(&mut trace.bloom, &e.name);
        }
        let mut delta_bytes = bytes as isize;
        let mut delta_spans = 1isize;
        let text_before = text_bytes(trace.text.capacity()) as isize;
        if let Some(old) = trace.spans.iter_mut().find(|s| {
            s.span.span_id == stored.span.span_id && s.origin.service_id == origin.service_id
        }) {
            // The same span again (a retry, or a late update): the newest copy wins.
            delta_bytes -= old.bytes as isize;
            delta_spans = 0;
            *old = stored;
            fields.insert(tid, None);
        } else {
            let f = fields
                .entry(tid)
                .or_insert_with(|| Some(text::Fields::of(&trace.text)));
            if let Some(f) = f {
                text::push_span(&mut trace.text, f, &stored);
            }
            trace.spans.push(stored);
        }
        delta_bytes += text_bytes(trace.text.capacity()) as isize - text_before;
        trace.bytes = (trace.bytes as isize + delta_bytes).max(0) as usize;
        inner.bytes = (inner.bytes as isize + delta_bytes).max(0) as usize;
        inner.spans = (inner.spans as isize + delta_spans).max(0) as usize;
        is_new
    }

    /// Counters and sizes.
    pub fn stats(&self) -> StoreStats {
        let inner = self.read();
        StoreStats {
            traces: inner.traces.len(),
            spans: inner.spans,
            bytes: inner.bytes,
            received_spans: inner.received,
            rejected_spans: inner.rejected,
            evicted_traces: inner.evicted,
            max_traces: self.config.max_traces,
            max_bytes: self.config.max_bytes,
        }
    }

    /// Names of all services seen (sorted). Services are remembered after their traces are evicted.
    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = self.read().services.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    /// Span names seen for `service`, with the span kinds (`SpanKind` ints) seen for each name.
    pub fn operations(&self, service: &str) -> Vec<(String, Vec<i32>)> {
        let inner = self.read();
        let Some(id) = inner.service_ids.get(service) else {
            return Vec::new();
        };
        inner
            .operations
            .get(*id as usize)
            .map(|ops| {
                ops.iter()
                    .map(|(name, bits)| {
                        let kinds = (0..8).filter(|k| bits & (1 << k) != 0).collect();
                        (name.clone(), kinds)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The spans of a trace (cloned), or `None` if it is not stored.
    pub fn trace(&self, id: &TraceId) -> Option<Vec<StoredSpan>> {
        self.read().traces.get(id).map(|t| t.spans.clone())
    }

    /// The summary of a stored trace.
    pub fn summary(&self, id: &TraceId) -> Option<TraceSummary> {
        let inner = self.read();
        inner.traces.get(id).map(|t| t.summary(&inner.services))
    }

    /// Spans of other stored traces that link to spans of trace `id`.
    pub fn incoming_links(&self, id: &TraceId) -> Vec<IncomingLink> {
        let inner = self.read();
        let mut out = Vec::new();
        let Some(sources) = inner.backlinks.get(id) else {
            return out;
        };
        for src in sources {
            let Some(t) = inner.traces.get(src) else {
                continue;
            };
            for s in &t.spans {
                for l in &s.span.links {
                    if l.trace_id.as_slice() == id.as_slice() {
                        out.push(IncomingLink {
                            from_trace: *src,
                            from_span: s.span.span_id.clone(),
                            from_name: s.span.name.clone(),
                            from_service: s.origin.service.to_string(),
                            to_span: l.span_id.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Searches traces, newest first (by arrival), and returns at most `query.limit` ids,
    /// ordered by start time, newest first.
    pub fn search_ids(&self, query: &Query) -> Vec<TraceId> {
        let inner = self.read();
        let service_id = match &query.span.service {
            Some(s) => match inner.service_ids.get(s.as_str()) {
                Some(id) => Some(*id),
                None => return Vec::new(),
            },
            None => None,
        };
        let text = query.text.as_deref().map(TextQuery::new);
        // attribute terms the Bloom filters can rule out (not the span-field pseudo keys)
        let bloom_terms: Vec<&(String, Option<String>)> = query
            .span
            .attributes
            .iter()
            .filter(|(k, _)| !crate::query::is_special_key(k))
            .collect();
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        // conditions on the trace's own fields (no pointer chasing)
        let cheap = |t: &Trace| -> bool {
            if query.start_ns.is_some_and(|s| t.end_ns < s)
                || query.end_ns.is_some_and(|e| t.start_ns > e)
            {
                return false;
            }
            if let Some(sid) = service_id {
                if !t.services.contains(&sid) {
                    return false;
                }
            }
            if !bloom_terms
                .iter()
                .all(|(k, v)| bloom::may_match(&t.bloom, k, v.as_deref()))
            {
                return false;
            }
            let d = t.end_ns - t.start_ns;
            if query.min_trace_duration_ns.is_some_and(|m| d < m)
                || query.max_trace_duration_ns.is_some_and(|m| d > m)
            {
                return false;
            }
            true
        };
        let costly = |t: &Trace| -> bool {
            // one sequential scan of the trace's search text, before the walk over its spans
            if let Some(text) = &text {
                if !text.matches(&t.text, &t.spans) {
                    return false;
                }
            }
            query.span.is_empty() || t.spans.iter().any(|s| query.span.matches(s, service_id))
        };
        let matches = |t: &Trace| cheap(t) && costly(t);
        let mut hits: Vec<(u64, TraceId)> = Vec::new();
        if bloom_terms.is_empty() && text.is_none() {
            // Usually many hits: walk newest first and stop at the limit.
            for (_, tid) in inner.order.iter().rev() {
                if let Some(t) = inner.traces.get(tid) {
                    if matches(t) {
                        hits.push((t.start_ns, *tid));
                        if hits.len() >= limit {
                            break;
                        }
                    }
                }
            }
        } else {
            // Selective (attribute or text): likely a full scan, so walk the table in memory
            // order (no lookups), then keep the `limit` newest arrivals.
            let mut all: Vec<(u64, u64, TraceId)> = Vec::new();
            let mut candidates: Vec<&Trace> = Vec::with_capacity(WARM_AHEAD);
            let mut traces = inner.traces.values();
            loop {
                candidates.clear();
                candidates.extend(traces.by_ref().filter(|t| cheap(t)).take(WARM_AHEAD));
                if candidates.is_empty() {
                    break;
                }
                if text.is_some() {
                    warm(candidates.iter().map(|t| t.text.as_slice()));
                }
                all.extend(
                    candidates
                        .iter()
                        .filter(|t| costly(t))
                        .map(|t| (t.seq, t.start_ns, t.id)),
                );
            }
            all.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
            all.truncate(limit);
            hits = all.into_iter().map(|(_, start, id)| (start, id)).collect();
        }
        hits.sort_by_key(|h| std::cmp::Reverse(h.0));
        hits.into_iter().map(|(_, id)| id).collect()
    }

    /// Searches and returns summaries (see [`search_ids`](Self::search_ids)).
    pub fn search(&self, query: &Query) -> Vec<TraceSummary> {
        let ids = self.search_ids(query);
        let inner = self.read();
        ids.iter()
            .filter_map(|id| inner.traces.get(id).map(|t| t.summary(&inner.services)))
            .collect()
    }

    /// Searches and returns the matching traces' spans.
    pub fn search_traces(&self, query: &Query) -> Vec<(TraceId, Vec<StoredSpan>)> {
        let ids = self.search_ids(query);
        let inner = self.read();
        ids.iter()
            .filter_map(|id| inner.traces.get(id).map(|t| (*id, t.spans.clone())))
            .collect()
    }

    /// Every stored trace as one OTLP request each, oldest first (persistence compaction).
    pub fn export_all(&self) -> Vec<ExportTraceServiceRequest> {
        let inner = self.read();
        inner
            .order
            .values()
            .filter_map(|id| inner.traces.get(id))
            .map(|t| to_request(&t.spans))
            .collect()
    }
}

/// Groups spans back into an OTLP request (one `ResourceSpans` per origin).
pub fn to_request(spans: &[StoredSpan]) -> ExportTraceServiceRequest {
    let mut groups: Vec<(Arc<Origin>, Vec<Span>)> = Vec::new();
    for s in spans {
        match groups.iter_mut().find(|(o, _)| Arc::ptr_eq(o, &s.origin)) {
            Some((_, v)) => v.push(s.span.clone()),
            None => groups.push((s.origin.clone(), vec![s.span.clone()])),
        }
    }
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(o, spans)| ResourceSpans {
                resource: Some(o.resource.clone()),
                schema_url: o.resource_schema_url.clone(),
                scope_spans: vec![ScopeSpans {
                    scope: Some(o.scope.clone()),
                    spans,
                    schema_url: o.scope_schema_url.clone(),
                }],
            })
            .collect(),
    }
}
