//! Log ↔ trace correlation: `trace_id`/`span_id` on every log line emitted inside a traced
//! request, for users of the `log` crate ([`LogWithTraceIds`]) and, with the `tracing`
//! feature, of the `tracing` crate ([`WithTraceIds`], [`JsonWithTraceIds`]); optionally
//! `tracing` events recorded on the current span as span events ([`SpanEvents`]).
//!
//! The ids come from fastrace's current local parent (the innermost span on this thread), else
//! from tracewire's current [`TraceContext`] (so unsampled requests still log their trace id).
//!
//! See `examples/log_correlation.rs` for a runnable setup.

use std::fmt::Write as _;

use fastrace::collector::{SpanContext, SpanId, TraceId};
use tracewire_core::TraceContext;

/// Log field name of the trace id (32 lowercase hex digits).
pub const TRACE_ID: &str = "trace_id";
/// Log field name of the span id (16 lowercase hex digits).
pub const SPAN_ID: &str = "span_id";

/// The trace and span id to put on a log line emitted now, if inside a trace.
pub fn current_ids() -> Option<(TraceId, SpanId)> {
    if let Some(sc) = SpanContext::current_local_parent() {
        return Some((sc.trace_id, sc.span_id));
    }
    TraceContext::current().map(|cx| (cx.trace_id, cx.span_id))
}

/// [`current_ids`] as hex strings.
pub fn current_ids_hex() -> Option<(String, String)> {
    current_ids().map(|(t, s)| {
        let mut tid = String::with_capacity(32);
        let mut sid = String::with_capacity(16);
        let _ = write!(tid, "{:032x}", t.0);
        let _ = write!(sid, "{:016x}", s.0);
        (tid, sid)
    })
}

/// Wraps a [`log::Log`] implementation: records logged inside a trace get the key-values
/// `trace_id` and `span_id` (visible to any logger that prints `log` key-values, such as
/// logforth or env_logger with `kv`).
///
/// ```
/// use tracewire::logs::LogWithTraceIds;
/// struct Stderr;
/// impl log::Log for Stderr {
///     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
///     fn log(&self, _: &log::Record<'_>) {}
///     fn flush(&self) {}
/// }
/// let _ = log::set_logger(Box::leak(Box::new(LogWithTraceIds(Stderr))));
/// ```
#[derive(Debug)]
pub struct LogWithTraceIds<L>(pub L);

struct Chain<'a>(&'a dyn log::kv::Source, &'a dyn log::kv::Source);

impl log::kv::Source for Chain<'_> {
    fn visit<'kvs>(
        &'kvs self,
        visitor: &mut dyn log::kv::VisitSource<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.visit(visitor)?;
        self.1.visit(visitor)
    }
}

impl<L: log::Log> log::Log for LogWithTraceIds<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some((trace_id, span_id)) = current_ids_hex() else {
            return self.0.log(record);
        };
        let ids = [(TRACE_ID, trace_id.as_str()), (SPAN_ID, span_id.as_str())];
        let kvs = Chain(record.key_values(), &ids);
        self.0.log(&record.to_builder().key_values(&kvs).build());
    }

    fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(feature = "tracing")]
pub use self::tracing_support::{JsonWithTraceIds, SpanEvents, WithTraceIds};

#[cfg(feature = "tracing")]
mod tracing_support {
    use std::borrow::Cow;
    use std::fmt;

    use tracing_core::field::{Field, Visit};
    use tracing_core::{Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    use super::{SPAN_ID, TRACE_ID, current_ids_hex};

    /// A `tracing-subscriber` event formatter wrapper: prefixes every line emitted inside a
    /// trace with `trace_id=<32 hex> span_id=<16 hex> `, then formats as `F` does.
    ///
    /// ```
    /// use tracewire::logs::WithTraceIds;
    /// let subscriber = tracing_subscriber::fmt()
    ///     .event_format(WithTraceIds::new(tracing_subscriber::fmt::format()))
    ///     .finish();
    /// # drop(subscriber);
    /// ```
    #[derive(Clone, Debug, Default)]
    pub struct WithTraceIds<F> {
        inner: F,
    }

    impl<F> WithTraceIds<F> {
        /// Wraps `inner`.
        pub fn new(inner: F) -> Self {
            WithTraceIds { inner }
        }
    }

    impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        F: FormatEvent<S, N>,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            if let Some((t, s)) = current_ids_hex() {
                write!(writer, "{TRACE_ID}={t} {SPAN_ID}={s} ")?;
            }
            self.inner.format_event(ctx, writer, event)
        }
    }

    #[derive(Default)]
    struct JsonFields(serde_json::Map<String, serde_json::Value>);

    impl Visit for JsonFields {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0
                .insert(field.name().to_owned(), format!("{value:?}").into());
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_f64(&mut self, field: &Field, value: f64) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.0.insert(field.name().to_owned(), value.into());
        }
    }

    /// A JSON-lines event formatter: `{"timestamp_unix_ms":..,"level":"INFO","target":..,
    /// "fields":{"message":..,..},"trace_id":..,"span_id":..}` (the ids only inside a trace).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct JsonWithTraceIds;

    impl<S, N> FormatEvent<S, N> for JsonWithTraceIds
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            _ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let mut fields = JsonFields::default();
            event.record(&mut fields);
            let meta = event.metadata();
            let mut obj = serde_json::Map::new();
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            obj.insert("timestamp_unix_ms".into(), ms.into());
            obj.insert("level".into(), meta.level().as_str().into());
            obj.insert("target".into(), meta.target().into());
            obj.insert("fields".into(), serde_json::Value::Object(fields.0));
            if let Some((t, s)) = current_ids_hex() {
                obj.insert(TRACE_ID.into(), t.into());
                obj.insert(SPAN_ID.into(), s.into());
            }
            writeln!(writer, "{}", serde_json::Value::Object(obj))
        }
    }

    /// A `tracing-subscriber` layer that records each `tracing` event emitted inside a
    /// fastrace span as a span event: named after its `message` field (else the event's
    /// name), with `level`, `target` and the other fields as properties.
    ///
    /// [`crate::tracing_layer()`] records events too (typed, level-filtered, errors as
    /// `exception` events and span status) along with the `tracing` spans themselves: use one
    /// or the other, not both.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct SpanEvents;

    impl<S: Subscriber> Layer<S> for SpanEvents {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            if fastrace::collector::SpanContext::current_local_parent().is_none() {
                return;
            }
            let mut fields = JsonFields::default();
            event.record(&mut fields);
            let meta = event.metadata();
            let name: Cow<'static, str> = match fields.0.remove("message") {
                Some(serde_json::Value::String(m)) => Cow::Owned(m),
                Some(other) => Cow::Owned(other.to_string()),
                None => Cow::Borrowed(meta.name()),
            };
            let level = meta.level().as_str();
            let target = meta.target().to_owned();
            fastrace::local::LocalSpan::add_event(fastrace::Event::new(name).with_properties(
                move || {
                    let mut props: Vec<(Cow<'static, str>, Cow<'static, str>)> = vec![
                        (Cow::Borrowed("level"), Cow::Borrowed(level)),
                        (Cow::Borrowed("target"), Cow::Owned(target)),
                    ];
                    for (k, v) in fields.0 {
                        let v = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        props.push((Cow::Owned(k), Cow::Owned(v)));
                    }
                    props
                },
            ));
        }
    }
}
