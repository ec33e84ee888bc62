//! The service map: services as nodes; calls (a span whose parent is in another service) and
//! messages (a consumer span under a producer span, or a span linking to a span of another
//! service, in its trace or another) as edges, with counts, error rates and latency
//! percentiles, over the traces of a search.
//!
//! The work is bounded: at most [`MAX_SPANS`] spans are read (the traces of the search, newest
//! first, then the traces that links point into) and at most [`MAX_LINKED_TRACES`] other
//! traces are read to resolve links; a map cut short says so (`truncated`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde::Serialize;

use crate::links::id64;
use crate::query::Query;
use crate::store::{Store, StoredSpan, TraceId};
use crate::util;

/// Most spans one map reads.
pub(crate) const MAX_SPANS: usize = 500_000;
/// Most other traces one map reads to find the spans that links point at.
pub(crate) const MAX_LINKED_TRACES: usize = 1000;

/// What an edge stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EdgeKind {
    /// A span whose parent is a span of another service (and not a message).
    Call,
    /// A consumer span whose parent is a producer span, or a span linking to another's.
    Message,
}

impl EdgeKind {
    pub(crate) fn parse(s: &str) -> Option<EdgeKind> {
        match s {
            "call" => Some(EdgeKind::Call),
            "message" => Some(EdgeKind::Message),
            _ => None,
        }
    }
}

/// A service of the map.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Node {
    pub(crate) service: String,
    pub(crate) spans: usize,
    pub(crate) errors: usize,
    /// Traces with a span of the service.
    pub(crate) traces: usize,
}

/// Calls or messages from one service to another.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Edge {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) kind: EdgeKind,
    /// Calls (callee spans) or messages (consumer spans, once per link).
    pub(crate) count: usize,
    /// Of them, with status ERROR (the callee's or consumer's span).
    pub(crate) errors: usize,
    /// Duration of the callee's or consumer's span: median and 99th percentile, ns.
    pub(crate) p50_ns: u64,
    pub(crate) p99_ns: u64,
    /// Messages: from the producer span's start to the consumer span's start, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) queue_p50_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) queue_p99_ns: Option<u64>,
    /// Traces holding the edge's callee or consumer spans (newest first, at most the number
    /// asked for).
    pub(crate) trace_ids: Vec<String>,
    /// Traces holding the edge, all told.
    pub(crate) trace_count: usize,
}

/// The map of the traces of a search.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceMap {
    pub(crate) nodes: Vec<Node>,
    pub(crate) edges: Vec<Edge>,
    /// Traces and spans read.
    pub(crate) traces: usize,
    pub(crate) spans: usize,
    /// A bound stopped the map before every trace of the search was read.
    pub(crate) truncated: bool,
}

/// What the map needs of a span.
struct SpanFacts {
    id: u64,
    service: Arc<str>,
    kind: i32,
    start: u64,
    end: u64,
    error: bool,
}

fn facts(s: &StoredSpan) -> SpanFacts {
    SpanFacts {
        id: id64(&s.span.span_id),
        service: s.origin.service.clone(),
        kind: s.span.kind,
        start: s.span.start_time_unix_nano,
        end: s.span.end_time_unix_nano.max(s.span.start_time_unix_nano),
        error: util::is_error(&s.span),
    }
}

#[derive(Default)]
struct EdgeAcc {
    count: usize,
    errors: usize,
    durations: Vec<u64>,
    queue: Vec<u64>,
    trace_ids: Vec<TraceId>,
    trace_count: usize,
    /// The last trace counted (the traces are read one after another).
    last: Option<TraceId>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How much one map may read and keep.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Most spans read (see [`MAX_SPANS`]).
    pub(crate) spans: usize,
    /// Most other traces read for links (see [`MAX_LINKED_TRACES`]).
    pub(crate) linked_traces: usize,
    /// Most trace ids kept per edge.
    pub(crate) keep_ids: usize,
}

impl Bounds {
    /// The bounds of the API, keeping `keep_ids` trace ids per edge.
    pub(crate) fn keeping(keep_ids: usize) -> Bounds {
        Bounds {
            spans: MAX_SPANS,
            linked_traces: MAX_LINKED_TRACES,
            keep_ids,
        }
    }
}

/// The spans of a trace on a path through a span of service `focus`: its spans, their
/// ancestors (parents and the spans they link to, in the trace) and their descendants (children
/// and the spans linking to them) — Jaeger's deep dependency graph, per trace. Empty when no
/// span of the trace is of `focus`.
fn on_paths(spans: &[StoredSpan], focus: &str) -> HashSet<u64> {
    let mut up: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut down: HashMap<u64, Vec<u64>> = HashMap::new();
    for s in spans {
        let id = id64(&s.span.span_id);
        let parents = (!util::is_empty_id(&s.span.parent_span_id))
            .then(|| id64(&s.span.parent_span_id))
            .into_iter()
            .chain(
                s.span
                    .links
                    .iter()
                    .filter(|l| l.trace_id == s.span.trace_id)
                    .map(|l| id64(&l.span_id)),
            );
        for p in parents {
            if p != id {
                up.entry(id).or_default().push(p);
                down.entry(p).or_default().push(id);
            }
        }
    }
    let focal: Vec<u64> = spans
        .iter()
        .filter(|s| &*s.origin.service == focus)
        .map(|s| id64(&s.span.span_id))
        .collect();
    let mut marked: HashSet<u64> = focal.iter().copied().collect();
    for dir in [&up, &down] {
        let mut seen: HashSet<u64> = HashSet::new();
        let mut stack = focal.clone();
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            marked.insert(x);
            if let Some(next) = dir.get(&x) {
                stack.extend(next.iter().copied());
            }
        }
    }
    marked
}

/// Builds the map of the traces `query` finds (its `limit`; newest first); with `focus`, only
/// of the paths through that service (see [`on_paths`]).
pub(crate) fn service_map(
    store: &Store,
    query: &Query,
    focus: Option<&str>,
    bounds: Bounds,
) -> ServiceMap {
    let ids = store.search_ids(query);
    let mut edges: BTreeMap<(Arc<str>, Arc<str>, EdgeKind), EdgeAcc> = BTreeMap::new();
    // service -> (spans, errors, traces, last trace counted)
    let mut nodes: BTreeMap<Arc<str>, (usize, usize, usize, Option<TraceId>)> = BTreeMap::new();
    // other traces read for links: their spans' facts by span id
    let mut linked: HashMap<TraceId, Option<HashMap<u64, SpanFacts>>> = HashMap::new();
    let (mut traces, mut spans_read, mut truncated) = (0, 0, false);
    for tid in &ids {
        if spans_read >= bounds.spans {
            truncated = true;
            break;
        }
        let Some(spans) = store.trace(tid) else {
            continue;
        };
        spans_read += spans.len();
        let marked = focus.map(|f| on_paths(&spans, f));
        if marked.as_ref().is_some_and(|m| m.is_empty()) {
            continue;
        }
        let on = |id: u64| marked.as_ref().is_none_or(|m| m.contains(&id));
        traces += 1;
        let mut by_id: HashMap<u64, SpanFacts> = HashMap::with_capacity(spans.len());
        for s in &spans {
            by_id
                .entry(id64(&s.span.span_id))
                .or_insert_with(|| facts(s));
            if !on(id64(&s.span.span_id)) {
                continue;
            }
            let n = nodes.entry(s.origin.service.clone()).or_default();
            n.0 += 1;
            n.1 += usize::from(util::is_error(&s.span));
            if n.3 != Some(*tid) {
                n.2 += 1;
                n.3 = Some(*tid);
            }
        }
        // (`from` in another trace: only the consumer's side is checked)
        let mut add = |from: &SpanFacts, to: &SpanFacts, kind: EdgeKind, other_trace: bool| {
            if from.service == to.service || !on(to.id) || (!other_trace && !on(from.id)) {
                return;
            }
            let e = edges
                .entry((from.service.clone(), to.service.clone(), kind))
                .or_default();
            e.count += 1;
            e.errors += usize::from(to.error);
            e.durations.push(to.end - to.start);
            if kind == EdgeKind::Message {
                e.queue.push(to.start.saturating_sub(from.start));
            }
            if e.last != Some(*tid) {
                e.last = Some(*tid);
                e.trace_count += 1;
                if e.trace_ids.len() < bounds.keep_ids {
                    e.trace_ids.push(*tid);
                }
            }
        };
        for s in &spans {
            let me = facts(s);
            let id = id64(&s.span.span_id);
            let parent = (!util::is_empty_id(&s.span.parent_span_id))
                .then(|| id64(&s.span.parent_span_id))
                .and_then(|p| by_id.get(&p).map(|f| (p, f)));
            if let Some((pid, p)) = parent {
                // a consumer that also links its producer parent is one message (counted below)
                let linked_parent = s
                    .span
                    .links
                    .iter()
                    .any(|l| l.trace_id == s.span.trace_id && id64(&l.span_id) == pid);
                if !linked_parent {
                    let message =
                        p.kind == SpanKind::Producer as i32 && me.kind == SpanKind::Consumer as i32;
                    let kind = if message {
                        EdgeKind::Message
                    } else {
                        EdgeKind::Call
                    };
                    add(p, &me, kind, false);
                }
            }
            for l in &s.span.links {
                let Ok(lt) = TraceId::try_from(l.trace_id.as_slice()) else {
                    continue;
                };
                let target_id = id64(&l.span_id);
                if target_id == id {
                    continue;
                }
                let target = if lt == *tid {
                    by_id.get(&target_id)
                } else {
                    if !linked.contains_key(&lt) {
                        let read =
                            if linked.len() < bounds.linked_traces && spans_read < bounds.spans {
                                store.trace(&lt).map(|other| {
                                    spans_read += other.len();
                                    other
                                        .iter()
                                        .map(|o| (id64(&o.span.span_id), facts(o)))
                                        .collect()
                                })
                            } else {
                                truncated = true;
                                None
                            };
                        linked.insert(lt, read);
                    }
                    linked
                        .get(&lt)
                        .and_then(|m| m.as_ref())
                        .and_then(|m| m.get(&target_id))
                };
                if let Some(t) = target {
                    add(t, &me, EdgeKind::Message, lt != *tid);
                }
            }
        }
    }
    ServiceMap {
        nodes: nodes
            .into_iter()
            .map(|(service, (spans, errors, traces, _))| Node {
                service: service.to_string(),
                spans,
                errors,
                traces,
            })
            .collect(),
        edges: edges
            .into_iter()
            .map(|((from, to, kind), mut e)| {
                e.durations.sort_unstable();
                e.queue.sort_unstable();
                let message = kind == EdgeKind::Message;
                Edge {
                    from: from.to_string(),
                    to: to.to_string(),
                    kind,
                    count: e.count,
                    errors: e.errors,
                    p50_ns: percentile(&e.durations, 50.0),
                    p99_ns: percentile(&e.durations, 99.0),
                    queue_p50_ns: message.then(|| percentile(&e.queue, 50.0)),
                    queue_p99_ns: message.then(|| percentile(&e.queue, 99.0)),
                    trace_ids: e.trace_ids.iter().map(|t| util::hex(t)).collect(),
                    trace_count: e.trace_count,
                }
            })
            .collect(),
        traces,
        spans: spans_read,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::StoreConfig;
    use crate::testing::*;

    const SERVER: i32 = SpanKind::Server as i32;
    const CLIENT: i32 = SpanKind::Client as i32;
    const PRODUCER: i32 = SpanKind::Producer as i32;
    const CONSUMER: i32 = SpanKind::Consumer as i32;

    /// Trace `t` (ids from `10 * t`): gateway calls backend (which fails when `fail`) and
    /// publishes to payments (child and link), which publishes to warehouse (child only).
    fn order(store: &Store, t: u32, fail: bool, backend_ms: u64) {
        let i = u64::from(t) * 10;
        let backend = span(t, i + 3, i + 2, SERVER, 2, 2 + backend_ms);
        store.ingest(request(
            "gateway",
            vec![
                span(t, i + 1, 0, SERVER, 0, 50),
                span(t, i + 2, i + 1, CLIENT, 1, 40),
                span(t, i + 4, i + 1, PRODUCER, 41, 42),
            ],
        ));
        store.ingest(request(
            "backend",
            vec![if fail { failed(backend) } else { backend }],
        ));
        store.ingest(request(
            "payments",
            vec![
                linked(span(t, i + 5, i + 4, CONSUMER, 44, 60), t, i + 4),
                span(t, i + 6, i + 5, PRODUCER, 50, 51),
            ],
        ));
        store.ingest(request(
            "warehouse",
            vec![span(t, i + 7, i + 6, CONSUMER, 58, 70)],
        ));
    }

    fn edge<'a>(m: &'a ServiceMap, from: &str, to: &str) -> &'a Edge {
        m.edges
            .iter()
            .find(|e| e.from == from && e.to == to)
            .unwrap_or_else(|| panic!("no edge {from} -> {to}: {:?}", m.edges))
    }

    #[test]
    fn calls_and_messages_with_counts_errors_and_latency() {
        let store = Store::new(StoreConfig::default());
        order(&store, 1, true, 10);
        order(&store, 2, false, 20);
        order(&store, 3, false, 30);
        // a batch in a trace of its own, linked to the first two orders' last sends, and a
        // link to a trace never stored
        let batch = linked(linked(span(9, 91, 0, CONSUMER, 100, 104), 1, 16), 2, 26);
        store.ingest(request("ledger", vec![linked(batch, 77, 1)]));
        let q = Query {
            limit: 100,
            ..Default::default()
        };
        let m = service_map(&store, &q, None, Bounds::keeping(20));
        assert!(!m.truncated);
        assert_eq!(m.traces, 4);
        let services: Vec<(&str, usize, usize, usize)> = m
            .nodes
            .iter()
            .map(|n| (n.service.as_str(), n.spans, n.errors, n.traces))
            .collect();
        assert_eq!(
            services,
            vec![
                ("backend", 3, 1, 3),
                ("gateway", 9, 0, 3),
                ("ledger", 1, 0, 1),
                ("payments", 6, 0, 3),
                ("warehouse", 3, 0, 3)
            ]
        );
        let call = edge(&m, "gateway", "backend");
        assert_eq!(call.kind, EdgeKind::Call);
        assert_eq!((call.count, call.errors), (3, 1));
        assert_eq!((call.p50_ns, call.p99_ns), (20 * MS, 30 * MS));
        assert_eq!(call.queue_p50_ns, None);
        assert_eq!(call.trace_count, 3);
        // child and link: one message, not two
        let nats = edge(&m, "gateway", "payments");
        assert_eq!(nats.kind, EdgeKind::Message);
        assert_eq!(
            (nats.count, nats.p50_ns, nats.queue_p50_ns),
            (3, 16 * MS, Some(3 * MS))
        );
        // producer -> consumer parentage without a link is a message too
        let redis = edge(&m, "payments", "warehouse");
        assert_eq!(
            (redis.kind, redis.count, redis.queue_p99_ns),
            (EdgeKind::Message, 3, Some(8 * MS))
        );
        // links to spans of other traces
        let batch = edge(&m, "payments", "ledger");
        assert_eq!(
            (batch.kind, batch.count, batch.trace_count),
            (EdgeKind::Message, 2, 1)
        );
        assert_eq!(batch.trace_ids, vec![util::hex(&tid(9))]);
        assert_eq!(m.edges.len(), 4, "{:?}", m.edges);
        // the search picks the traces: only those with a failed span
        let errors = Query {
            span: crate::query::SpanFilter {
                status: Some(crate::query::StatusFilter::Error),
                ..Default::default()
            },
            limit: 100,
            ..Default::default()
        };
        let m = service_map(&store, &errors, None, Bounds::keeping(20));
        assert_eq!(m.traces, 1);
        assert_eq!(edge(&m, "gateway", "backend").count, 1);
    }

    #[test]
    fn the_work_is_bounded() {
        let store = Store::new(StoreConfig::default());
        for t in 1..=10 {
            order(&store, t, false, 10);
        }
        let q = Query {
            limit: 100,
            ..Default::default()
        };
        let m = service_map(
            &store,
            &q,
            None,
            Bounds {
                spans: 20,
                linked_traces: 0,
                keep_ids: 2,
            },
        );
        assert!(m.truncated);
        assert_eq!(m.traces, 3, "7 spans a trace: stops once 20 are read");
        let e = edge(&m, "gateway", "backend");
        assert_eq!((e.count, e.trace_count, e.trace_ids.len()), (3, 3, 2));
    }

    /// The deep dependency graph of a service: only the paths through it.
    #[test]
    fn paths_through_a_service() {
        let store = Store::new(StoreConfig::default());
        order(&store, 1, true, 10);
        order(&store, 2, false, 20);
        // a trace without payments: not on its map
        store.ingest(request(
            "gateway",
            vec![span(3, 31, 0, SERVER, 0, 5), span(3, 32, 31, CLIENT, 1, 4)],
        ));
        store.ingest(request("backend", vec![span(3, 33, 32, SERVER, 2, 3)]));
        let q = Query {
            limit: 100,
            ..Default::default()
        };
        let m = service_map(&store, &q, Some("warehouse"), Bounds::keeping(20));
        assert_eq!(m.traces, 2);
        let edges: Vec<(&str, &str, usize)> = m
            .edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.count))
            .collect();
        // upstream: gateway -> payments -> warehouse; the gateway's call to backend is a
        // sibling branch, not a path through warehouse
        assert_eq!(
            edges,
            vec![("gateway", "payments", 2), ("payments", "warehouse", 2)]
        );
        let services: Vec<(&str, usize)> = m
            .nodes
            .iter()
            .map(|n| (n.service.as_str(), n.spans))
            .collect();
        assert_eq!(
            services,
            vec![("gateway", 4), ("payments", 4), ("warehouse", 2)]
        );
        // from the gateway: everything below it
        let m = service_map(&store, &q, Some("gateway"), Bounds::keeping(20));
        assert_eq!(m.traces, 3);
        assert_eq!(edge(&m, "gateway", "backend").count, 3);
        assert_eq!(m.edges.len(), 3);
        assert_eq!(
            service_map(&store, &q, Some("nobody"), Bounds::keeping(20)).traces,
            0
        );
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
