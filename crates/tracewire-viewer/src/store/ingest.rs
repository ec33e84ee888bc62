//! Ingest: a request's spans are limited, sized and prepared without the lock, then merged
//! into their traces in steps of bounded work, each under its own short hold of the lock;
//! search texts and the live stream are brought up to date afterwards.

use super::*;

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
