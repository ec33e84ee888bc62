//! Console exporters: a readable tree per trace ([`ConsoleTree`]) and OTLP-JSON lines
//! ([`OtlpJsonLines`]) for tests and tools.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use crate::exporter::{BoxFuture, ExportError, SpanExporter};

type Sink = Mutex<Box<dyn Write + Send>>;

fn write_to(sink: &Sink, bytes: &[u8]) -> Result<(), ExportError> {
    let mut w = match sink.lock() {
        Ok(w) => w,
        Err(p) => p.into_inner(),
    };
    w.write_all(bytes)
        .and_then(|()| w.flush())
        .map_err(|e| ExportError::permanent(format!("write failed: {e}")))
}

/// Prints each batch as a human-readable tree per trace:
///
/// ```text
/// trace 4bf92f3577b34da6a3ce929d0e0e4736
///   GET /users/{id} [server] 12.3ms http.response.status_code=200 (parent: 00f067aa0ba902b7 remote)
///     SELECT users [client] 1.1ms ERROR: timeout
/// ```
pub struct ConsoleTree {
    sink: Sink,
}

impl ConsoleTree {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        ConsoleTree::to_writer(std::io::stdout())
    }

    /// Writes to `w`.
    pub fn to_writer(w: impl Write + Send + 'static) -> Self {
        ConsoleTree {
            sink: Mutex::new(Box::new(w)),
        }
    }
}

impl SpanExporter for ConsoleTree {
    fn name(&self) -> &str {
        "console"
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        let text = render_tree(batch);
        Box::pin(async move { write_to(&self.sink, text.as_bytes()) })
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A value as text (`200`, `true`, `["a", "b"]`, `"text"` for strings).
pub fn value_text(v: &AnyValue) -> String {
    match &v.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(value_text).collect();
            format!("[{}]", items.join(", "))
        }
        Some(Value::BytesValue(b)) => hex(b),
        Some(Value::KvlistValue(l)) => {
            let items: Vec<String> = l
                .values
                .iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.key,
                        kv.value.as_ref().map(value_text).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Some(Value::StringValueStrindex(i)) => format!("#{i}"),
        None => String::new(),
    }
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal | SpanKind::Unspecified => "internal",
    }
}

/// Renders a request as trees, one per trace (spans in start order under their parent;
/// a span whose parent is not in the batch is shown at the top with `(parent: <id>)`).
pub fn render_tree(batch: &ExportTraceServiceRequest) -> String {
    let spans: Vec<&Span> = batch
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let mut traces: Vec<&[u8]> = Vec::new();
    for s in &spans {
        if !traces.contains(&s.trace_id.as_slice()) {
            traces.push(&s.trace_id);
        }
    }
    let mut out = String::new();
    for trace in traces {
        let in_trace: Vec<&Span> = spans
            .iter()
            .copied()
            .filter(|s| s.trace_id == trace)
            .collect();
        let ids: HashSet<&[u8]> = in_trace.iter().map(|s| s.span_id.as_slice()).collect();
        let mut children: HashMap<&[u8], Vec<&Span>> = HashMap::new();
        let mut roots = Vec::new();
        for s in &in_trace {
            if !s.parent_span_id.is_empty() && ids.contains(s.parent_span_id.as_slice()) {
                children.entry(&s.parent_span_id).or_default().push(s);
            } else {
                roots.push(*s);
            }
        }
        roots.sort_by_key(|s| s.start_time_unix_nano);
        for list in children.values_mut() {
            list.sort_by_key(|s| s.start_time_unix_nano);
        }
        let _ = writeln!(out, "trace {}", hex(trace));
        for root in roots {
            render_span(&mut out, root, &children, 1);
        }
    }
    out
}

fn render_span(out: &mut String, span: &Span, children: &HashMap<&[u8], Vec<&Span>>, depth: usize) {
    let indent = "  ".repeat(depth);
    let ms = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e6;
    let _ = write!(
        out,
        "{indent}{} [{}] {ms:.3}ms",
        span.name,
        kind_name(span.kind)
    );
    for kv in &span.attributes {
        let _ = write!(
            out,
            " {}={}",
            kv.key,
            kv.value.as_ref().map(value_text).unwrap_or_default()
        );
    }
    if let Some(st) = &span.status {
        if st.code == StatusCode::Error as i32 {
            let _ = write!(out, " ERROR");
            if !st.message.is_empty() {
                let _ = write!(out, ": {}", st.message);
            }
        } else if st.code == StatusCode::Ok as i32 {
            let _ = write!(out, " OK");
        }
    }
    if depth == 1 && !span.parent_span_id.is_empty() {
        let remote = if span.flags & crate::map::FLAG_IS_REMOTE != 0 {
            " remote"
        } else {
            ""
        };
        let _ = write!(out, " (parent: {}{remote})", hex(&span.parent_span_id));
    }
    out.push('\n');
    for e in &span.events {
        let _ = write!(out, "{indent}  * {}", e.name);
        for kv in &e.attributes {
            let _ = write!(
                out,
                " {}={}",
                kv.key,
                kv.value.as_ref().map(value_text).unwrap_or_default()
            );
        }
        out.push('\n');
    }
    if let Some(list) = children.get(span.span_id.as_slice()) {
        for c in list {
            render_span(out, c, children, depth + 1);
        }
    }
}

/// Writes each batch as one line of OTLP/JSON (an `ExportTraceServiceRequest`, the
/// encoding of the OTLP spec: hex ids, enum numbers, 64-bit integers as strings).
pub struct OtlpJsonLines {
    sink: Sink,
}

impl OtlpJsonLines {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        OtlpJsonLines::to_writer(std::io::stdout())
    }

    /// Appends to the file at `path` (created if missing).
    pub fn file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(OtlpJsonLines::to_writer(f))
    }

    /// Writes to `w`.
    pub fn to_writer(w: impl Write + Send + 'static) -> Self {
        OtlpJsonLines {
            sink: Mutex::new(Box::new(w)),
        }
    }
}

impl SpanExporter for OtlpJsonLines {
    fn name(&self) -> &str {
        "otlp-json-lines"
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let mut line = serde_json::to_vec(batch)
                .map_err(|e| ExportError::permanent(format!("JSON encoding failed: {e}")))?;
            line.push(b'\n');
            write_to(&self.sink, &line)
        })
    }
}
