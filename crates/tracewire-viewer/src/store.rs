//! The bounded in-memory trace store.
//!
//! Spans are kept as the official OTLP [`Span`] type, grouped by trace id, with a shared
//! [`Origin`] (resource + scope) per received batch. The store is bounded by trace count and by
//! (estimated) bytes — spans, search texts, indexes and the service and span names all count;
//! when either bound is exceeded the traces that arrived first are evicted, and a service or
//! span name goes with the last stored span that uses it. Spans of one trace coming from several
//! processes merge; a span received again (same span id, same service) replaces the earlier
//! copy; traces without a root are kept and flagged.
//!
//! Ingest costs O(spans of the request): [`SpanLimits`] are applied and spans are prepared
//! without the lock, then merged in steps of bounded work, each under its own short hold of the
//! lock, so readers and other senders get in between the steps of a large request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::bloom::{self, Bloom};
use crate::limits::Applied;
pub use crate::limits::SpanLimits;
use crate::names::Names;
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

/// Work (spans plus their attributes, events and links) merged per hold of the write lock.
const MERGE_WORK: usize = 8192;
/// Up to this many spans a trace finds a span by scanning; past it, through an index.
const LINEAR_MAX: usize = 32;
/// A trace's search text is deduplicated against what it already holds only up to this size
/// (reading the existing fields costs O(text)); past it, within the new spans only.
const FIELDS_SCAN_MAX: usize = 4096;
/// Spare capacity of a search text is given back only up to this size (it costs a copy).
const SHRINK_MAX: usize = 64 * 1024;
/// A search text is rebuilt under the lock up to this many spans; past it, from a snapshot
/// taken under the read lock, without blocking anyone.
const REBUILD_IN_LOCK_MAX: usize = 4096;
/// How long a long ingest waits between two steps for the threads waiting for the lock.
const STEP_ASIDE: Duration = Duration::from_millis(2);
/// Summaries of the live stream computed per hold of the read lock (in spans).
const LIVE_WORK: usize = 65_536;

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

/// One stored span with its origin. Cloning it is cheap: the span is shared with the store.
#[derive(Clone, Debug)]
pub struct StoredSpan {
    /// The span, as received (after the [`SpanLimits`]).
    pub span: Arc<Span>,
    /// Its resource and scope.
    pub origin: Arc<Origin>,
    bytes: u32,
    /// Its name is counted in the operations index.
    op_indexed: bool,
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

/// The 8-byte span id as a number (ids are checked to be 8 bytes at ingest).
fn id64(id: &[u8]) -> u64 {
    id.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

struct Trace {
    id: TraceId,
    spans: Vec<StoredSpan>,
    seq: u64,
    bytes: usize,
    start_ns: u64,
    end_ns: u64,
    /// Service ids, sorted.
    services: Vec<u32>,
    bloom: Bloom,
    /// Lowercase search text of every span (see [`crate::text`]).
    text: Vec<u8>,
    /// A span was replaced and the text still holds the old copy's fields: free text walks
    /// the spans instead until the text is rebuilt.
    text_stale: bool,
    /// (span id, service id) -> position in `spans`, once the trace has over [`LINEAR_MAX`]
    /// spans.
    index: Option<HashMap<(u64, u32), u32>>,
    /// Changes with every span stored (lets a rebuilt text be swapped in only if still current).
    version: u64,
}

/// Accounted bytes of a trace's search text: its heap capacity plus allocator overhead.
fn text_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        capacity + PER_ALLOCATION
    }
}

/// Accounted bytes of a span index.
fn index_bytes(index: &Option<HashMap<(u64, u32), u32>>) -> usize {
    index.as_ref().map_or(0, |i| {
        // hashbrown: one control byte per bucket, buckets ≈ capacity * 8 / 7
        i.capacity() * (std::mem::size_of::<((u64, u32), u32)>() + 1) * 8 / 7 + PER_ALLOCATION
    })
}

/// Accounted bytes of a trace besides its spans: the struct, its entries in the table and in
/// the arrival order.
const TRACE_BYTES: usize = std::mem::size_of::<Trace>() + 64;
/// Accounted bytes of one entry of the reverse link index.
const BACKLINK_BYTES: usize = 48;

impl Trace {
    fn new(id: TraceId, seq: u64) -> Self {
        Trace {
            id,
            spans: Vec::with_capacity(4),
            seq,
            bytes: TRACE_BYTES,
            start_ns: u64::MAX,
            end_ns: 0,
            services: Vec::new(),
            bloom: Bloom::default(),
            text: Vec::new(),
            text_stale: false,
            index: None,
            version: 0,
        }
    }

    /// Where the copy of span `id` from service `service` is, if stored.
    fn find(&self, id: u64, service: u32) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(&(id, service)).map(|p| *p as usize),
            None => self
                .spans
                .iter()
                .position(|s| id64(&s.span.span_id) == id && s.origin.service_id == service),
        }
    }

    /// Records the span just pushed at the end; builds the index when the trace outgrows a
    /// scan. Returns the change in accounted bytes.
    fn index_last(&mut self) -> isize {
        let before = index_bytes(&self.index) as isize;
        let pos = self.spans.len() - 1;
        if let Some(ix) = &mut self.index {
            if let Some(s) = self.spans.last() {
                ix.insert((id64(&s.span.span_id), s.origin.service_id), pos as u32);
            }
        } else if self.spans.len() > LINEAR_MAX {
            let ix = self
                .spans
                .iter()
                .enumerate()
                .map(|(i, s)| ((id64(&s.span.span_id), s.origin.service_id), i as u32))
                .collect();
            self.index = Some(ix);
        }
        index_bytes(&self.index) as isize - before
    }

    fn summary(&self, names: &Names) -> TraceSummary {
        let ids: HashSet<u64> = self.spans.iter().map(|s| id64(&s.span.span_id)).collect();
        let mut root: Option<&StoredSpan> = None;
        let mut missing_parents = 0;
        let mut errors = 0;
        let mut first: Option<&StoredSpan> = None;
        // (spans, errors) per entry of `self.services`
        let mut counts = vec![(0usize, 0usize); self.services.len()];
        for s in &self.spans {
            let error = util::is_error(&s.span);
            if error {
                errors += 1;
            }
            if let Ok(i) = self.services.binary_search(&s.origin.service_id) {
                counts[i].0 += 1;
                counts[i].1 += usize::from(error);
            }
            if first.is_none_or(|f| s.span.start_time_unix_nano < f.span.start_time_unix_nano) {
                first = Some(s);
            }
            if util::is_empty_id(&s.span.parent_span_id) {
                if root.is_none_or(|r| s.span.start_time_unix_nano < r.span.start_time_unix_nano) {
                    root = Some(s);
                }
            } else if s.span.parent_span_id.len() != 8
                || !ids.contains(&id64(&s.span.parent_span_id))
            {
                missing_parents += 1;
            }
        }
        let shown = root.or(first);
        let mut per_service: Vec<ServiceCount> = self
            .services
            .iter()
            .zip(counts)
            .map(|(id, (spans, errors))| ServiceCount {
                name: names.name(*id).map(|s| s.to_string()).unwrap_or_default(),
                spans,
                errors,
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
    /// Estimated bytes stored now (spans, search texts, indexes, names).
    pub bytes: usize,
    /// Services listed now (each used by a stored span).
    pub services: usize,
    /// Span names listed now, all services together.
    pub operations: usize,
    /// Estimated bytes of the service and span name index (part of `bytes`).
    pub name_bytes: usize,
    /// Spans received since start.
    pub received_spans: u64,
    /// Spans rejected since start (invalid ids).
    pub rejected_spans: u64,
    /// Traces evicted since start.
    pub evicted_traces: u64,
    /// Spans that exceeded a [`SpanLimits`] limit since start.
    pub limited_spans: u64,
    /// Attributes dropped by the [`SpanLimits`] since start (spans, events, links, resources).
    pub dropped_attributes: u64,
    /// Events dropped by the [`SpanLimits`] since start.
    pub dropped_events: u64,
    /// Links dropped by the [`SpanLimits`] since start.
    pub dropped_links: u64,
    /// Names, strings and array or map values cut by the [`SpanLimits`] since start.
    pub truncated_values: u64,
    /// The trace bound.
    pub max_traces: usize,
    /// The byte bound.
    pub max_bytes: usize,
    /// The limits applied to every span.
    pub span_limits: SpanLimits,
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

/// Traces per page of the trace table.
const PAGE: usize = 1024;

/// The trace table: traces live in fixed pages that never move (growing the table adds a page
/// instead of moving every trace, which for 10^5 traces would copy tens of MiB in one hold of
/// the lock), found through an id map of small entries. Scans walk the pages in memory order.
#[derive(Default)]
struct Traces {
    pages: Vec<Box<[Option<Trace>]>>,
    free: Vec<u32>,
    ids: HashMap<TraceId, u32>,
}

impl Traces {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn slot(&self, at: u32) -> Option<&Trace> {
        let at = at as usize;
        self.pages.get(at / PAGE)?.get(at % PAGE)?.as_ref()
    }

    fn get(&self, id: &TraceId) -> Option<&Trace> {
        self.ids.get(id).and_then(|at| self.slot(*at))
    }

    fn get_mut(&mut self, id: &TraceId) -> Option<&mut Trace> {
        let at = *self.ids.get(id)? as usize;
        self.pages.get_mut(at / PAGE)?.get_mut(at % PAGE)?.as_mut()
    }

    fn contains_key(&self, id: &TraceId) -> bool {
        self.ids.contains_key(id)
    }

    /// Adds a trace whose id is not in the table.
    fn insert(&mut self, t: Trace) {
        let at = match self.free.pop() {
            Some(at) => at,
            None => {
                let at = self.pages.len() * PAGE;
                self.pages
                    .push(std::iter::repeat_with(|| None).take(PAGE).collect());
                self.free.extend((at as u32 + 1..(at + PAGE) as u32).rev());
                at as u32
            }
        };
        let id = t.id;
        if let Some(slot) = self
            .pages
            .get_mut(at as usize / PAGE)
            .and_then(|p| p.get_mut(at as usize % PAGE))
        {
            *slot = Some(t);
            self.ids.insert(id, at);
        }
    }

    fn remove(&mut self, id: &TraceId) -> Option<Trace> {
        let at = self.ids.remove(id)?;
        let t = self
            .pages
            .get_mut(at as usize / PAGE)?
            .get_mut(at as usize % PAGE)?
            .take();
        self.free.push(at);
        t
    }

    /// Every trace, in memory order.
    fn values(&self) -> impl Iterator<Item = &Trace> {
        self.pages.iter().flat_map(|p| p.iter().flatten())
    }
}

#[derive(Default)]
struct Inner {
    traces: Traces,
    order: BTreeMap<u64, TraceId>,
    next_seq: u64,
    /// Bytes of the stored traces (the name index adds its own).
    bytes: usize,
    spans: usize,
    names: Names,
    /// link target trace -> traces that hold a span linking to it.
    backlinks: HashMap<TraceId, HashSet<TraceId>>,
    received: u64,
    rejected: u64,
    evicted: u64,
    limited: u64,
    applied: Applied,
}

impl Inner {
    fn total_bytes(&self) -> usize {
        self.bytes + self.names.bytes()
    }

    fn add_bytes(&mut self, delta: isize) {
        self.bytes = (self.bytes as isize + delta).max(0) as usize;
    }

    /// Removes the oldest trace and everything only it used; returns it (to be dropped once
    /// the lock is released).
    fn evict_oldest(&mut self) -> Option<Trace> {
        let (_, id) = self.order.pop_first()?;
        let t = self.traces.remove(&id)?;
        self.bytes = self.bytes.saturating_sub(t.bytes);
        self.spans = self.spans.saturating_sub(t.spans.len());
        self.evicted += 1;
        self.backlinks.remove(&id);
        for s in &t.spans {
            let sid = s.origin.service_id;
            if s.op_indexed {
                self.names.remove_op(sid, &s.span.name);
            }
            self.names.release(sid);
            for l in &s.span.links {
                if let Ok(target) = <TraceId>::try_from(l.trace_id.as_slice()) {
                    if let Some(v) = self.backlinks.get_mut(&target) {
                        v.remove(&id);
                        if v.is_empty() {
                            self.backlinks.remove(&target);
                        }
                    }
                }
            }
        }
        Some(t)
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
    /// Threads waiting for `inner`: a long ingest steps aside for them between its steps
    /// (the lock itself would let a writer that re-locks at once starve its readers).
    waiting: AtomicUsize,
    config: StoreConfig,
    limits: SpanLimits,
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

fn kv_allocs(kvs: &[KeyValue]) -> usize {
    usize::from(!kvs.is_empty()) + 2 * kvs.len()
}

/// Estimated heap + inline bytes of a span (used for the byte bound): the stored entry, the
/// shared span, the encoded payload (≈ the heap bytes of strings and ids), the inline size of
/// every attribute, event and link, and allocator overhead per heap allocation.
fn span_bytes(span: &Span) -> usize {
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    let kvs = span.attributes.len()
        + span
            .events
            .iter()
            .map(|e| e.attributes.len())
            .sum::<usize>()
        + span.links.iter().map(|l| l.attributes.len()).sum::<usize>();
    let allocs = 5
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
        + std::mem::size_of::<Span>()
        + 2 * std::mem::size_of::<usize>() // the Arc's counts
        + span.encoded_len()
        + kvs * std::mem::size_of::<KeyValue>()
        + span.events.len() * std::mem::size_of::<Event>()
        + span.links.len() * std::mem::size_of::<Link>()
        + allocs * PER_ALLOCATION
}

/// Estimated bytes of an origin (resource + scope), shared by the spans of its batch.
fn origin_bytes(resource: &Resource, scope: &InstrumentationScope) -> usize {
    std::mem::size_of::<Origin>()
        + resource.encoded_len()
        + scope.encoded_len()
        + (resource.attributes.len() + scope.attributes.len()) * std::mem::size_of::<KeyValue>()
        + (4 + kv_allocs(&resource.attributes) + kv_allocs(&scope.attributes)) * PER_ALLOCATION
}

/// One valid span, limited and sized, ready to be merged.
struct Prepared {
    tid: TraceId,
    id: u64,
    stored: StoredSpan,
    /// Merge work: the span plus its attributes, events and links.
    work: usize,
}

/// Per-trace state kept while one batch is merged.
struct Touched {
    /// The trace's `seq` when it was first touched (a re-created trace starts afresh).
    seq: u64,
    is_new: bool,
    /// Fields of the search text (dropped at the end of the batch), read when the batch first
    /// appends to the text.
    fields: Option<text::Fields>,
}

impl Touched {
    fn first(trace: &Trace) -> Self {
        Touched {
            seq: trace.seq,
            is_new: trace.spans.is_empty(),
            fields: None,
        }
    }

    /// The fields of the trace's text: read only from a small text (reading them costs
    /// O(text)); a larger one is deduplicated within the batch's spans only.
    fn fields(&mut self, text: &[u8]) -> &mut text::Fields {
        self.fields.get_or_insert_with(|| {
            if text.len() <= FIELDS_SCAN_MAX {
                text::Fields::of(text)
            } else {
                text::Fields::default()
            }
        })
    }
}

impl Store {
    /// An empty store with these bounds (a bound of 0 is treated as 1) and the default
    /// [`SpanLimits`].
    pub fn new(config: StoreConfig) -> Self {
        Self::with_limits(config, SpanLimits::default())
    }

    /// An empty store with these bounds and span limits.
    pub fn with_limits(config: StoreConfig, limits: SpanLimits) -> Self {
        let (live, _) = broadcast::channel(1024);
        Store {
            inner: RwLock::new(Inner::default()),
            waiting: AtomicUsize::new(0),
            config: StoreConfig {
                max_traces: config.max_traces.max(1),
                max_bytes: config.max_bytes.max(1),
            },
            limits,
            live,
            persist: Mutex::new(None),
        }
    }

    /// The bounds.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// The limits applied to every span.
    pub fn limits(&self) -> SpanLimits {
        self.limits
    }

    pub(crate) fn set_persist(&self, p: Persist) {
        if let Ok(mut g) = self.persist.lock() {
            *g = Some(p);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        g
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        g
    }

    /// Between two steps of a long ingest (the lock released): lets the threads waiting for
    /// the lock take it first, waiting at most [`STEP_ASIDE`] for them.
    fn step_aside(&self) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let until = Instant::now() + STEP_ASIDE;
        while self.waiting.load(Ordering::Relaxed) > 0 && Instant::now() < until {
            std::thread::yield_now();
        }
    }

    /// Subscribes to the live stream of new and updated traces.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Stores every span of an OTLP request (and appends it to the persistence file, if any).
    ///
    /// The work is proportional to the request's spans; the store's lock is held in short steps
    /// of bounded work, so a large request never blocks readers or other senders for long.
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
        let (prepared, out) = self.prepare(request);
        self.merge(prepared);
        out
    }

    /// Without the lock (except one short hold to resolve the service names): validates ids,
    /// applies the span limits, sizes every span and builds the shared origins.
    fn prepare(&self, request: ExportTraceServiceRequest) -> (Vec<Prepared>, IngestOutcome) {
        struct Group {
            resource: Arc<(Resource, String, Bloom)>,
            service: String,
            scope: InstrumentationScope,
            scope_schema_url: String,
            spans: Vec<(TraceId, Span, Applied)>,
        }
        let mut out = IngestOutcome::default();
        let mut applied = Applied::default();
        let mut limited = 0u64;
        let mut received = 0u64;
        let mut groups: Vec<Group> = Vec::new();
        for rs in request.resource_spans {
            let mut resource = rs.resource.unwrap_or_default();
            let mut schema_url = rs.schema_url;
            applied.add(self.limits.apply_resource(&mut resource, &mut schema_url));
            // (a `service.name` that is not a string is rendered: cut that too)
            let mut service = util::service_name(Some(&resource));
            crate::limits::truncate_str(&mut service, self.limits.max_name_len, &mut applied);
            let mut bloom = Bloom::default();
            for kv in &resource.attributes {
                bloom::add_kv(&mut bloom, kv);
            }
            let resource = Arc::new((resource, schema_url, bloom));
            for ss in rs.scope_spans {
                let mut scope = ss.scope.unwrap_or_default();
                let mut scope_schema_url = ss.schema_url;
                applied.add(self.limits.apply_scope(&mut scope, &mut scope_schema_url));
                let mut spans = Vec::with_capacity(ss.spans.len());
                for mut span in ss.spans {
                    received += 1;
                    let Some(tid) = util::trace_id_of(&span) else {
                        out.rejected += 1;
                        continue;
                    };
                    if span.span_id.len() != 8 || util::is_empty_id(&span.span_id) {
                        out.rejected += 1;
                        continue;
                    }
                    let a = self.limits.apply_span(&mut span);
                    if a.any() {
                        limited += 1;
                    }
                    applied.add(a);
                    spans.push((tid, span, a));
                }
                if !spans.is_empty() {
                    groups.push(Group {
                        resource: resource.clone(),
                        service: service.clone(),
                        scope,
                        scope_schema_url,
                        spans,
                    });
                }
            }
        }
        // Resolve and pin the services: one short hold for the whole request.
        let pinned: Vec<(Arc<str>, u32)> = {
            let mut inner = self.write();
            inner.received += received;
            inner.rejected += out.rejected as u64;
            inner.limited += limited;
            inner.applied.add(applied);
            groups
                .iter()
                .map(|g| inner.names.pin(&g.service, g.spans.len() as u64))
                .collect()
        };
        let mut prepared = Vec::with_capacity(groups.iter().map(|g| g.spans.len()).sum());
        for (g, (service, service_id)) in groups.into_iter().zip(pinned) {
            let (resource, resource_schema_url, mut bloom) =
                Arc::try_unwrap(g.resource).unwrap_or_else(|shared| (*shared).clone());
            // searches look at the scope's attributes too
            for kv in &g.scope.attributes {
                bloom::add_kv(&mut bloom, kv);
            }
            let share = origin_bytes(&resource, &g.scope).div_ceil(g.spans.len().max(1));
            let origin = Arc::new(Origin {
                resource,
                resource_schema_url,
                scope: g.scope,
                scope_schema_url: g.scope_schema_url,
                service,
                service_id,
                bloom,
            });
            for (tid, span, _) in g.spans {
                let work = 1
                    + span.attributes.len()
                    + span
                        .events
                        .iter()
                        .map(|e| 1 + e.attributes.len())
                        .sum::<usize>()
                    + span
                        .links
                        .iter()
                        .map(|l| 1 + l.attributes.len())
                        .sum::<usize>();
                let bytes = span_bytes(&span) + share;
                prepared.push(Prepared {
                    tid,
                    id: id64(&span.span_id),
                    stored: StoredSpan {
                        span: Arc::new(span),
                        origin: origin.clone(),
                        bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
                        op_indexed: false,
                    },
                    work,
                });
            }
        }
        out.accepted = prepared.len();
        (prepared, out)
    }

    /// Merges prepared spans in steps of at most [`MERGE_WORK`] work per hold of the lock,
    /// enforcing the bounds after every step; then finishes the touched search texts and sends
    /// the live events.
    fn merge(&self, prepared: Vec<Prepared>) {
        let live = self.live.receiver_count() > 0;
        let mut touched: HashMap<TraceId, Touched> = HashMap::new();
        let mut spans = prepared.into_iter().peekable();
        while spans.peek().is_some() {
            let mut evicted = Vec::new();
            {
                let mut inner = self.write();
                let mut work = 0;
                while work < MERGE_WORK {
                    let Some(p) = spans.next() else {
                        break;
                    };
                    work += p.work;
                    insert(&mut inner, p, &mut touched);
                }
                while inner.traces.len() > self.config.max_traces
                    || inner.total_bytes() > self.config.max_bytes
                {
                    match inner.evict_oldest() {
                        Some(t) => evicted.push(t),
                        None => break,
                    }
                }
            }
            // the evicted spans are freed without the lock
            drop(evicted);
            self.step_aside();
        }
        self.finish_texts(&touched);
        if live {
            self.send_live(&touched);
        }
    }

    /// Gives back the spare capacity of the search texts that grew, and rebuilds those that
    /// hold a replaced span's fields (large ones from a snapshot, outside the write lock).
    fn finish_texts(&self, touched: &HashMap<TraceId, Touched>) {
        let mut rebuild_outside = Vec::new();
        let mut pending = touched.iter().peekable();
        while pending.peek().is_some() {
            self.step_aside();
            let mut inner = self.write();
            let mut work = 0;
            while work < MERGE_WORK {
                let Some((tid, t)) = pending.next() else {
                    break;
                };
                let Some(trace) = inner.traces.get_mut(tid).filter(|tr| tr.seq == t.seq) else {
                    continue;
                };
                let before = text_bytes(trace.text.capacity());
                if trace.text_stale && trace.spans.len() <= REBUILD_IN_LOCK_MAX {
                    work += trace.spans.len();
                    trace.text = text::build(&trace.spans);
                    trace.text_stale = false;
                } else if trace.text_stale {
                    rebuild_outside.push(*tid);
                } else if trace.text.len() <= SHRINK_MAX {
                    work += trace.text.len() / 64;
                    trace.text.shrink_to_fit();
                }
                let delta = text_bytes(trace.text.capacity()) as isize - before as isize;
                trace.bytes = (trace.bytes as isize + delta).max(0) as usize;
                inner.add_bytes(delta);
                work += 1;
            }
        }
        for tid in rebuild_outside {
            self.rebuild_text(&tid);
        }
    }

    /// Rebuilds a large trace's search text from a snapshot of its spans, then swaps it in if
    /// the trace did not change meanwhile (otherwise the text stays stale: searches of that
    /// trace walk its spans, which gives the same answers).
    fn rebuild_text(&self, tid: &TraceId) {
        let (seq, version, spans) = {
            let inner = self.read();
            match inner.traces.get(tid) {
                Some(t) if t.text_stale => (t.seq, t.version, t.spans.clone()),
                _ => return,
            }
        };
        let text = text::build(&spans);
        drop(spans);
        let old = {
            let mut inner = self.write();
            let Some(t) = inner
                .traces
                .get_mut(tid)
                .filter(|t| t.seq == seq && t.version == version)
            else {
                return;
            };
            let before = text_bytes(t.text.capacity()) as isize;
            let old = std::mem::replace(&mut t.text, text);
            t.text_stale = false;
            let delta = text_bytes(t.text.capacity()) as isize - before;
            t.bytes = (t.bytes as isize + delta).max(0) as usize;
            inner.add_bytes(delta);
            old
        };
        drop(old);
    }

    /// Computes the summaries of the touched traces (under the read lock, in bounded steps)
    /// and sends them on the live stream.
    fn send_live(&self, touched: &HashMap<TraceId, Touched>) {
        let mut pending = touched.iter().peekable();
        while pending.peek().is_some() {
            let mut events = Vec::new();
            {
                let inner = self.read();
                let mut work = 0;
                while work < LIVE_WORK {
                    let Some((tid, t)) = pending.next() else {
                        break;
                    };
                    if let Some(trace) = inner.traces.get(tid) {
                        work += trace.spans.len();
                        events.push(LiveEvent {
                            kind: if t.is_new { "new" } else { "update" },
                            trace: trace.summary(&inner.names),
                        });
                    }
                    work += 1;
                }
            }
            for e in events {
                let _ = self.live.send(Arc::new(e));
            }
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> StoreStats {
        let inner = self.read();
        StoreStats {
            traces: inner.traces.len(),
            spans: inner.spans,
            bytes: inner.total_bytes(),
            services: inner.names.services_len(),
            operations: inner.names.operations_len(),
            name_bytes: inner.names.bytes(),
            received_spans: inner.received,
            rejected_spans: inner.rejected,
            evicted_traces: inner.evicted,
            limited_spans: inner.limited,
            dropped_attributes: inner.applied.attributes,
            dropped_events: inner.applied.events,
            dropped_links: inner.applied.links,
            truncated_values: inner.applied.truncated,
            max_traces: self.config.max_traces,
            max_bytes: self.config.max_bytes,
            span_limits: self.limits,
        }
    }

    /// Counts spans rejected before they reached the store (e.g. by a receiver's decoder), so
    /// [`StoreStats::rejected_spans`] covers every receiver.
    pub(crate) fn count_rejected(&self, n: usize) {
        if n > 0 {
            let mut inner = self.write();
            inner.received += n as u64;
            inner.rejected += n as u64;
        }
    }

    /// Names of the services of the stored spans (sorted). A service goes with its last span.
    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .read()
            .names
            .services()
            .map(|s| s.to_string())
            .collect();
        v.sort();
        v
    }

    /// Span names stored for `service`, with the span kinds (`SpanKind` ints) seen for each name.
    pub fn operations(&self, service: &str) -> Vec<(String, Vec<i32>)> {
        self.read().names.operations(service)
    }

    /// The spans of a trace, or `None` if it is not stored. The spans are shared with the
    /// store (no deep copy).
    pub fn trace(&self, id: &TraceId) -> Option<Vec<StoredSpan>> {
        self.read().traces.get(id).map(|t| t.spans.clone())
    }

    /// The summary of a stored trace.
    pub fn summary(&self, id: &TraceId) -> Option<TraceSummary> {
        let inner = self.read();
        inner.traces.get(id).map(|t| t.summary(&inner.names))
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

    /// Stored traces holding a span that links to a span of trace `id` (the reverse link
    /// index; at most `max`).
    pub fn linking_traces(&self, id: &TraceId, max: usize) -> Vec<TraceId> {
        let inner = self.read();
        inner
            .backlinks
            .get(id)
            .map(|s| s.iter().take(max).copied().collect())
            .unwrap_or_default()
    }

    /// Searches traces, newest first (by arrival), and returns at most `query.limit` ids,
    /// ordered by start time, newest first.
    pub fn search_ids(&self, query: &Query) -> Vec<TraceId> {
        let inner = self.read();
        let service_id = match &query.span.service {
            Some(s) => match inner.names.id(s.as_str()) {
                Some(id) => Some(id),
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
                if t.services.binary_search(&sid).is_err() {
                    return false;
                }
            }
            if !bloom_terms
                .iter()
                .all(|(k, v)| bloom::may_match(&t.bloom, k, v.as_deref()))
            {
                return false;
            }
            let d = t.end_ns.saturating_sub(t.start_ns);
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
                if !text.matches(&t.text, &t.spans, t.text_stale) {
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
            .filter_map(|id| inner.traces.get(id).map(|t| t.summary(&inner.names)))
            .collect()
    }

    /// Searches and returns the matching traces' spans (shared with the store).
    pub fn search_traces(&self, query: &Query) -> Vec<(TraceId, Vec<StoredSpan>)> {
        let ids = self.search_ids(query);
        let inner = self.read();
        ids.iter()
            .filter_map(|id| inner.traces.get(id).map(|t| (*id, t.spans.clone())))
            .collect()
    }

    /// Every stored trace as one OTLP request each, oldest first.
    pub fn export_all(&self) -> Vec<ExportTraceServiceRequest> {
        let mut out = Vec::new();
        self.export_each(|r| {
            out.push(r);
            Ok(())
        })
        .ok();
        out
    }

    /// Calls `f` with every stored trace as one OTLP request, oldest first, one at a time
    /// (persistence compaction: never the whole store at once).
    pub(crate) fn export_each(
        &self,
        mut f: impl FnMut(ExportTraceServiceRequest) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let ids: Vec<TraceId> = self.read().order.values().copied().collect();
        for id in ids {
            if let Some(spans) = self.trace(&id) {
                f(to_request(&spans))?;
            }
        }
        Ok(())
    }
}

/// Inserts one prepared span (under the write lock).
fn insert(inner: &mut Inner, p: Prepared, touched: &mut HashMap<TraceId, Touched>) {
    let Prepared {
        tid,
        id,
        mut stored,
        ..
    } = p;
    let sid = stored.origin.service_id;
    if !inner.traces.contains_key(&tid) {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.insert(seq, tid);
        inner.traces.insert(Trace::new(tid, seq));
        inner.bytes += TRACE_BYTES;
    }
    let Inner {
        traces,
        names,
        backlinks,
        ..
    } = &mut *inner;
    let Some(trace) = traces.get_mut(&tid) else {
        return;
    };
    let state = match touched.entry(tid) {
        std::collections::hash_map::Entry::Occupied(e) => {
            let state = e.into_mut();
            if state.seq != trace.seq {
                // evicted and created again during this batch: start afresh
                *state = Touched::first(trace);
            }
            state
        }
        std::collections::hash_map::Entry::Vacant(e) => e.insert(Touched::first(trace)),
    };
    let mut delta_bytes = 0isize;
    for l in &stored.span.links {
        if let Ok(target) = <TraceId>::try_from(l.trace_id.as_slice()) {
            if target != tid && backlinks.entry(target).or_default().insert(tid) {
                delta_bytes += BACKLINK_BYTES as isize;
            }
        }
    }
    let (start, end) = (
        stored.span.start_time_unix_nano,
        stored
            .span
            .end_time_unix_nano
            .max(stored.span.start_time_unix_nano),
    );
    trace.start_ns = trace.start_ns.min(start);
    trace.end_ns = trace.end_ns.max(end);
    if let Err(i) = trace.services.binary_search(&sid) {
        trace.services.insert(i, sid);
    }
    for (t, o) in trace.bloom.iter_mut().zip(stored.origin.bloom.iter()) {
        *t |= o;
    }
    for kv in &stored.span.attributes {
        bloom::add_kv(&mut trace.bloom, kv);
    }
    for e in &stored.span.events {
        bloom::add_key(&mut trace.bloom, &e.name);
        // an event's attributes are searched as tags (Jaeger's log fields)
        for kv in &e.attributes {
            bloom::add_kv(&mut trace.bloom, kv);
        }
    }
    trace.version += 1;
    delta_bytes += stored.bytes as isize;
    let mut delta_spans = 1isize;
    let text_before = text_bytes(trace.text.capacity()) as isize;
    if let Some(pos) = trace.find(id, sid) {
        // The same span again (a retry, or a late update): the newest copy wins. The text
        // keeps the old copy's fields until it is rebuilt at the end of the batch; until then
        // free text walks the spans.
        let old = &trace.spans[pos];
        if old.op_indexed && old.span.name == stored.span.name {
            stored.op_indexed = true;
            if old.span.kind != stored.span.kind {
                names.add_kind(sid, &stored.span.name, stored.span.kind);
            }
        } else {
            if old.op_indexed {
                names.remove_op(sid, &old.span.name);
            }
            stored.op_indexed = names.add_op(sid, &stored.span.name, stored.span.kind);
        }
        let old = std::mem::replace(&mut trace.spans[pos], stored);
        names.release(sid);
        delta_bytes -= old.bytes as isize;
        delta_spans = 0;
        trace.text_stale = true;
    } else {
        stored.op_indexed = names.add_op(sid, &stored.span.name, stored.span.kind);
        let fields = state.fields(&trace.text);
        text::push_span(&mut trace.text, fields, &stored);
        trace.spans.push(stored);
        delta_bytes += trace.index_last();
    }
    delta_bytes += text_bytes(trace.text.capacity()) as isize - text_before;
    trace.bytes = (trace.bytes as isize + delta_bytes).max(0) as usize;
    inner.add_bytes(delta_bytes);
    inner.spans = (inner.spans as isize + delta_spans).max(0) as usize;
}

/// Groups spans back into an OTLP request (one `ResourceSpans` per origin).
pub fn to_request(spans: &[StoredSpan]) -> ExportTraceServiceRequest {
    let mut groups: Vec<(Arc<Origin>, Vec<Span>)> = Vec::new();
    let mut by_origin: HashMap<*const Origin, usize> = HashMap::new();
    for s in spans {
        let i = *by_origin.entry(Arc::as_ptr(&s.origin)).or_insert_with(|| {
            groups.push((s.origin.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((*s.span).clone());
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
