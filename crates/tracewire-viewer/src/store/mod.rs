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
//!
//! Here: the store, its bounds and eviction, and its reads. Ingest is `ingest.rs`, search
//! `search.rs`, the answer types `answers.rs`; the stored span itself is `crate::span`, the
//! persistence file's format `crate::persist`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::sync::broadcast;

use crate::bloom::{self, Bloom};
use crate::limits::Applied;
pub use crate::limits::SpanLimits;
use crate::names::Names;
use crate::persist::{self, Persist};
use crate::query::Query;
pub use crate::span::{Origin, StoredSpan, TraceId};
use crate::text::{self, TextQuery};
use crate::util;

mod answers;
mod ingest;
mod search;

pub use answers::{IncomingLink, IngestOutcome, LiveEvent, ServiceCount, StoreStats, TraceSummary};

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

    /// Loads the persistence file at `path` into the store, rewrites it with only the traces
    /// the store kept (compaction), then appends every later ingest to it. Returns the number
    /// of records loaded.
    pub(crate) fn persist_to(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let records = persist::read_records(path)?;
        let n = records.len();
        for r in records {
            self.ingest_inner(r);
        }
        persist::rewrite(path, |write| self.export_each(write))?;
        let p = Persist::append_to(path)?;
        if let Ok(mut g) = self.persist.lock() {
            *g = Some(p);
        }
        Ok(n)
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
