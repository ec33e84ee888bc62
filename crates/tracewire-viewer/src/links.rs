//! Span links across traces, for the UI: what a link points at (the target span's name and
//! service), and the traces connected to a trace by links in either direction — a pipeline of
//! one trace per message is one chain of connected traces.
//!
//! Reads go through the store's public reads and its reverse link index
//! ([`Store::linking_traces`]); every walk is bounded by a number of traces and of spans read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::store::{IncomingLink, Store, StoredSpan, TraceId, TraceSummary};

/// Most traces [`connected`] lists.
pub(crate) const MAX_CONNECTED: usize = 64;
/// Most spans [`connected`] and [`targets`] read from other traces.
pub(crate) const MAX_SPANS_READ: usize = 200_000;

/// The span id as a number (0 when not 8 bytes).
pub(crate) fn id64(id: &[u8]) -> u64 {
    id.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Most traces [`incoming`] reads for the spans that link into a trace.
pub(crate) const MAX_LINKING_TRACES: usize = 1000;

/// Spans of other stored traces that link to spans of trace `tid` (found through the reverse
/// link index), reading at most [`MAX_LINKING_TRACES`] traces and [`MAX_SPANS_READ`] spans;
/// `true` when a bound left some out.
pub(crate) fn incoming(store: &Store, tid: &TraceId) -> (Vec<IncomingLink>, bool) {
    let sources = store.linking_traces(tid, MAX_LINKING_TRACES + 1);
    let mut truncated = sources.len() > MAX_LINKING_TRACES;
    let mut out = Vec::new();
    let mut read = 0;
    for src in sources.into_iter().take(MAX_LINKING_TRACES) {
        if read >= MAX_SPANS_READ {
            truncated = true;
            break;
        }
        let Some(spans) = store.trace(&src) else {
            continue;
        };
        read += spans.len();
        for s in &spans {
            for l in &s.span.links {
                if l.trace_id.as_slice() == tid.as_slice() {
                    out.push(IncomingLink {
                        from_trace: src,
                        from_span: s.span.span_id.clone(),
                        from_name: s.span.name.clone(),
                        from_service: s.origin.service.to_string(),
                        to_span: l.span_id.clone(),
                    });
                }
            }
        }
    }
    (out, truncated)
}

/// A span a link points at.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) service: Arc<str>,
    pub(crate) kind: i32,
    pub(crate) start_ns: u64,
}

/// The spans that the links of `spans` (trace `tid`) point at, by (trace, span id), for those
/// stored — in this trace or another, reading at most [`MAX_CONNECTED`] other traces.
pub(crate) fn targets(
    store: &Store,
    tid: &TraceId,
    spans: &[StoredSpan],
) -> HashMap<(TraceId, u64), Target> {
    let mut wanted: HashMap<TraceId, HashSet<u64>> = HashMap::new();
    for s in spans {
        for l in &s.span.links {
            if let Ok(t) = TraceId::try_from(l.trace_id.as_slice()) {
                wanted.entry(t).or_default().insert(id64(&l.span_id));
            }
        }
    }
    let mut out = HashMap::new();
    let mut read = 0;
    let mut find = |t: TraceId, in_spans: &[StoredSpan], ids: &HashSet<u64>| {
        for s in in_spans {
            let id = id64(&s.span.span_id);
            if ids.contains(&id) {
                out.entry((t, id)).or_insert_with(|| Target {
                    name: s.span.name.clone(),
                    service: s.origin.service.clone(),
                    kind: s.span.kind,
                    start_ns: s.span.start_time_unix_nano,
                });
            }
        }
    };
    if let Some(ids) = wanted.remove(tid) {
        find(*tid, spans, &ids);
    }
    for (t, ids) in wanted.into_iter().take(MAX_CONNECTED) {
        if read >= MAX_SPANS_READ {
            break;
        }
        if let Some(other) = store.trace(&t) {
            read += other.len();
            find(t, &other, &ids);
        }
    }
    out
}

/// How a connected trace relates to the trace asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Reached by following links: it holds what this trace's spans link to (the messages
    /// they consumed), or what those link to, ...
    Upstream,
    /// Reached against links: its spans link to this trace's (they consumed what it sent), ...
    Downstream,
    /// Reached both ways along the path (a sibling: linked to the same trace).
    Related,
}

impl Direction {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::Related => "related",
        }
    }
}

/// A trace connected by links to the trace asked about.
#[derive(Clone, Debug)]
pub(crate) struct Connected {
    pub(crate) trace: TraceId,
    pub(crate) direction: Direction,
    /// Links between it and the trace asked about (1: linked directly).
    pub(crate) hops: u32,
    /// Its summary; `None` when it is not stored (a link may point at a trace that never
    /// arrived, or was evicted).
    pub(crate) summary: Option<TraceSummary>,
}

/// The traces connected to `start` by links in either direction, nearest first (breadth
/// first), at most [`MAX_CONNECTED`]; `true` when the walk stopped at a bound.
pub(crate) fn connected(store: &Store, start: &TraceId) -> (Vec<Connected>, bool) {
    let mut seen: HashSet<TraceId> = HashSet::from([*start]);
    let mut queue: VecDeque<(TraceId, Option<Direction>, u32)> =
        VecDeque::from([(*start, None, 0)]);
    let mut out = Vec::new();
    let mut read = 0;
    let mut truncated = false;
    while let Some((t, dir, hops)) = queue.pop_front() {
        if read >= MAX_SPANS_READ {
            truncated = true;
            break;
        }
        let Some(spans) = store.trace(&t) else {
            continue;
        };
        read += spans.len();
        let mut next: Vec<(TraceId, Direction)> = Vec::new();
        for s in &spans {
            for l in &s.span.links {
                if let Ok(to) = TraceId::try_from(l.trace_id.as_slice()) {
                    next.push((to, Direction::Upstream));
                }
            }
        }
        for from in store.linking_traces(&t, MAX_CONNECTED + 1) {
            next.push((from, Direction::Downstream));
        }
        for (n, edge) in next {
            if !seen.insert(n) {
                continue;
            }
            if out.len() >= MAX_CONNECTED || read >= MAX_SPANS_READ {
                truncated = true;
                break;
            }
            let direction = match dir {
                None => edge,
                Some(d) if d == edge => d,
                Some(_) => Direction::Related,
            };
            // (a summary reads the trace's spans too)
            let summary = store.summary(&n);
            if let Some(sm) = &summary {
                read += sm.span_count;
                queue.push_back((n, Some(direction), hops + 1));
            }
            out.push(Connected {
                trace: n,
                direction,
                hops: hops + 1,
                summary,
            });
        }
    }
    (out, truncated)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::StoreConfig;
    use crate::testing::*;

    /// A chain of `n` traces of one span each, trace `i + 1` linking to trace `i`.
    fn chain(store: &Store, n: u32) {
        for i in 1..=n {
            let s = span(i, u64::from(i), 0, 5, u64::from(i), u64::from(i) + 1);
            let s = if i > 1 {
                linked(s, i - 1, u64::from(i - 1))
            } else {
                s
            };
            store.ingest(request(&format!("svc{i}"), vec![s]));
        }
    }

    #[test]
    fn connected_traces_both_ways_nearest_first() {
        let store = Store::new(StoreConfig::default());
        chain(&store, 4);
        // a sibling of trace 2: linked to trace 1 as well; and a link to a trace never stored
        store.ingest(request("sib", vec![linked(span(9, 9, 0, 5, 0, 1), 1, 1)]));
        store.ingest(request("lost", vec![linked(span(8, 8, 0, 5, 0, 1), 77, 1)]));
        let (c, truncated) = connected(&store, &tid(2));
        assert!(!truncated);
        let got: Vec<(TraceId, Direction, u32)> =
            c.iter().map(|c| (c.trace, c.direction, c.hops)).collect();
        assert_eq!(
            got,
            vec![
                (tid(1), Direction::Upstream, 1),
                (tid(3), Direction::Downstream, 1),
                (tid(9), Direction::Related, 2),
                (tid(4), Direction::Downstream, 2),
            ]
        );
        assert_eq!(c[0].summary.as_ref().unwrap().root_service, "svc1");
        let (c, _) = connected(&store, &tid(8));
        assert_eq!(c.len(), 1);
        assert!(c[0].summary.is_none(), "listed, not stored");
        assert_eq!(c[0].direction, Direction::Upstream);
    }

    #[test]
    fn a_long_chain_is_cut_at_the_bound() {
        let store = Store::new(StoreConfig::default());
        chain(&store, MAX_CONNECTED as u32 + 10);
        let (c, truncated) = connected(&store, &tid(1));
        assert!(truncated);
        assert_eq!(c.len(), MAX_CONNECTED);
        assert_eq!(c.last().unwrap().hops, MAX_CONNECTED as u32);
    }

    #[test]
    fn link_targets_are_named_in_this_trace_and_others() {
        let store = Store::new(StoreConfig::default());
        store.ingest(request("producer", vec![span(1, 1, 0, 4, 0, 1)]));
        let spans = vec![
            span(2, 2, 0, 4, 0, 1),
            linked(linked(linked(span(2, 3, 0, 5, 1, 2), 1, 1), 2, 2), 3, 3),
        ];
        store.ingest(request("consumer", spans));
        let stored = store.trace(&tid(2)).unwrap();
        let t = targets(&store, &tid(2), &stored);
        assert_eq!(t.len(), 2, "the third target is not stored");
        assert_eq!(&*t[&(tid(1), 1)].service, "producer");
        assert_eq!(t[&(tid(2), 2)].name, "span 2");
        // and back: the producer's span is linked from the consumer's trace
        let (back, truncated) = incoming(&store, &tid(1));
        assert!(!truncated);
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].from_trace, back[0].from_service.as_str()),
            (tid(2), "consumer")
        );
        assert_eq!(back[0].to_span, 1u64.to_be_bytes().to_vec());
    }

    #[test]
    fn back_links_go_with_the_linking_trace() {
        let store = Store::new(StoreConfig {
            max_traces: 3,
            ..Default::default()
        });
        let consumer = |t: u32| {
            request(
                "consumer",
                vec![linked(span(t, u64::from(t), 0, 5, 1, 2), 1, 1)],
            )
        };
        // the oldest trace is a consumer: evicted, its link no longer counts
        store.ingest(consumer(2));
        store.ingest(request("producer", vec![span(1, 1, 0, 4, 0, 1)]));
        store.ingest(consumer(3));
        assert_eq!(incoming(&store, &tid(1)).0.len(), 2);
        store.ingest(request("other", vec![span(4, 4, 0, 1, 0, 1)]));
        let (back, _) = incoming(&store, &tid(1));
        assert_eq!(
            back.iter().map(|l| l.from_trace).collect::<Vec<_>>(),
            vec![tid(3)]
        );
        assert_eq!(store.linking_traces(&tid(1), 10), vec![tid(3)]);
        // the producer evicted: nothing is listed as linking into it
        store.ingest(request("other", vec![span(5, 5, 0, 1, 0, 1)]));
        assert!(store.trace(&tid(1)).is_none());
        assert!(store.linking_traces(&tid(1), 10).is_empty());
    }
}
