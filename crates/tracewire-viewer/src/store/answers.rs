//! What the store answers with: trace summaries, the live stream's events, ingest outcomes,
//! counters and incoming links.

use serde::Serialize;

use super::{SpanLimits, TraceId};

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

/// What one [`Store::ingest`](super::Store::ingest) call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Spans stored.
    pub accepted: usize,
    /// Spans rejected (invalid trace or span id).
    pub rejected: usize,
}

/// Counters of a [`Store`](super::Store).
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
