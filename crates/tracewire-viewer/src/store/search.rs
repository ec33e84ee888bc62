//! Search: the traces matching a [`Query`], newest first, narrowed by the indexes and the
//! per-trace Bloom filters before any span is read.

use super::*;

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

impl Store {
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
}
