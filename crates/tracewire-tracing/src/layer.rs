//! [`TracewireLayer`]: the `tracing-subscriber` layer.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use fastrace::collector::{SpanContext, SpanId, TraceId};
use fastrace::local::LocalSpan;
use fastrace::{Event as SpanEvent, Span};
use tracewire_core::span::Attribute;
use tracewire_core::{
    Extracted, Inbound, PendingSpan, SpanKind, TraceContext, Tracer, reserved, semconv,
};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::fields::{EventFields, SpanFields};
use crate::stack::{self, Entered};

/// Records `tracing` spans as spans of the current tracewire trace. Made by [`layer`](crate::layer)
/// or [`TracewireLayer::new`]; add it to a [`Registry`](tracing_subscriber::Registry):
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let subscriber = tracing_subscriber::registry().with(tracewire_tracing::layer());
/// # drop(subscriber);
/// ```
///
/// **Where a `tracing` span goes.** A new span is the child of
/// 1. its explicit parent (`parent: &span`), when that one is recorded;
/// 2. else the innermost fastrace span on this thread — a `tracing` span entered here (while
///    entered, a recorded span is fastrace's local parent), a `#[fastrace::trace]` span, the
///    request or message span of a tracewire integration;
/// 3. else the span of the [`TraceContext`] attached to this task (work spawned with
///    [`with_current_trace_context`](tracewire_core::context::FutureExt::with_current_trace_context));
/// 4. else, only with [`root_spans`](TracewireLayer::root_spans), the root of a new trace,
///    decided by the one root rule ([`Tracer::start_root_with`]); otherwise nothing is recorded.
///
/// In an unsampled trace nothing is recorded and the span costs a few thread-local reads; the
/// trace's context still propagates on outgoing calls.
///
/// **While a recorded span is entered** it is fastrace's local parent and its context is the
/// current [`TraceContext`], so `#[fastrace::trace]` functions and tracewire's client and
/// producer spans nest under it, and outgoing requests carry it as their parent. This follows
/// `.await`s and spawned tasks through `tracing`'s own `Instrument`.
///
/// **Fields** become attributes with their types (`i64`, `u64`, `f64`, `bool`, string; `Debug`
/// and `Display` values as strings); `record()` replaces a field's value. The conventions of
/// `tracing-opentelemetry` hold: `otel.name` (span name), `otel.kind`, `otel.status_code`,
/// `otel.status_description`.
///
/// **Events** inside a recorded span become span events (named by their message, typed fields,
/// `level` and `target`) at or above [`event_level`](TracewireLayer::event_level) (default
/// `INFO`). An event with an `error` field or a `&dyn Error` value — what `#[instrument(err)]`
/// emits — sets the span's status to `ERROR` with the error as description and records an
/// `exception` event with `exception.message`; any `ERROR` event sets the `ERROR` status. Both
/// happen whatever the event level. `follows_from` becomes a span link.
#[derive(Clone, Debug)]
pub struct TracewireLayer {
    tracer: Option<Tracer>,
    events: bool,
    event_level: Level,
    root_spans: bool,
}

impl Default for TracewireLayer {
    fn default() -> Self {
        TracewireLayer::new()
    }
}

impl TracewireLayer {
    /// Events at `INFO` and above as span events, no root spans, [`Tracer::global`].
    pub fn new() -> Self {
        TracewireLayer {
            tracer: None,
            events: true,
            event_level: Level::INFO,
            root_spans: false,
        }
    }

    /// Uses `tracer` for the spans this layer starts itself — roots
    /// ([`root_spans`](TracewireLayer::root_spans)) and children of a context with no
    /// fastrace span on this thread. Default: [`Tracer::global`], read when needed (so a
    /// layer built before `tracewire::init()` uses the tracer `init` installs).
    pub fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Records `tracing` events at `level` and above (more severe) as span events (default
    /// `INFO`). Turns events on.
    pub fn event_level(mut self, level: Level) -> Self {
        self.event_level = level;
        self.events = true;
        self
    }

    /// Records `tracing` events as span events (default: on). Off, only errors are recorded
    /// (status and `exception` event).
    pub fn events(mut self, yes: bool) -> Self {
        self.events = yes;
        self
    }

    /// A `tracing` span with no trace to join (no recorded parent, no fastrace span, no
    /// attached context) starts a new trace: the root rule decides its sampling and ids, its
    /// kind comes from `otel.kind` (default `internal`). Default: off — such spans, and their
    /// children, are not recorded.
    pub fn root_spans(mut self, yes: bool) -> Self {
        self.root_spans = yes;
        self
    }

    fn tracer(&self) -> Cow<'_, Tracer> {
        match &self.tracer {
            Some(t) => Cow::Borrowed(t),
            None => Cow::Owned(Tracer::global()),
        }
    }

    /// Starts the fastrace span of a new `tracing` span under `parent`.
    fn start(
        &self,
        parent: Parent<'_>,
        meta: &'static Metadata<'static>,
        mut fields: SpanFields,
    ) -> Option<SpanData> {
        let name = match fields.name.take() {
            Some(n) => Cow::Owned(n),
            None => Cow::Borrowed(meta.name()),
        };
        let kind = fields.kind.unwrap_or_default();
        let status = fields.status_attributes();
        let mut attributes = fields.attributes;
        attributes.extend(status);
        // The attributes known now go into the span's own list in one piece, with what the
        // tracer writes on the spans it starts itself: the kind, and the trace's flags and
        // `tracestate` (so the export need not look for them on an ancestor); `record()` adds
        // more at the end.
        let local_attributes = |mut attributes: Vec<Attribute>, cx: Option<&TraceContext>| {
            if kind != SpanKind::Internal {
                let (k, v) = kind.property();
                attributes.push((Cow::Borrowed(k), Cow::Borrowed(v)));
            }
            if let Some(cx) = cx {
                attributes.push((
                    Cow::Borrowed(reserved::TRACE_FLAGS),
                    Cow::Borrowed(reserved::flags_value(cx.flags())),
                ));
                if !cx.trace_state.is_empty() {
                    attributes.push((
                        Cow::Borrowed(reserved::TRACE_STATE),
                        Cow::Owned(cx.trace_state.header_value().to_owned()),
                    ));
                }
            }
            attributes
        };
        let (span, context) = match parent {
            Parent::Local(trace_id) => {
                // This trace's context, when it is the one attached (else the fastrace span
                // belongs to a trace tracewire did not start: no flags of its own, the export
                // gives it its nearest ancestor's).
                let context = TraceContext::with_attached(|cx| {
                    cx.filter(|cx| cx.trace_id == trace_id).cloned()
                });
                let attributes = local_attributes(attributes, context.as_ref());
                let span = with_attributes(Span::enter_with_local_parent(name), attributes);
                (span, context)
            }
            Parent::Span(p) => {
                let attributes = local_attributes(attributes, p.context.as_ref());
                let span = Span::enter_with_parent(name, p.span.span());
                (with_attributes(span, attributes), p.context.clone())
            }
            Parent::Attached => {
                let child = self.tracer().start_child_lazy(|| name, kind);
                (with_attributes(child.span, attributes), child.context)
            }
            Parent::Root => {
                let root = self.tracer().start_root_with(
                    || name,
                    kind,
                    Extracted::default(),
                    Inbound::Parent,
                    Vec::new,
                );
                if SpanContext::from_span(&root.span).is_none() {
                    // Unsampled: nothing recorded, but children must know there is a trace
                    // (its context propagates from inside the span).
                    return Some(SpanData::new(
                        PendingSpan::default(),
                        SpanId(0),
                        Some(root.context),
                    ));
                }
                (with_attributes(root.span, attributes), Some(root.context))
            }
        };
        let sc = SpanContext::from_span(&span)?;
        // The context of this trace (tracestate, baggage, flags), named after this span.
        let context = context
            .filter(|cx| cx.trace_id == sc.trace_id)
            .map(|mut cx| {
                cx.span_id = sc.span_id;
                cx.remote = false;
                cx
            });
        Some(SpanData::new(PendingSpan::new(span), sc.span_id, context))
    }

    fn record_error<S>(span: &SpanRef<'_, S>, description: Option<&str>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut ext = span.extensions_mut();
        if let Some(data) = ext.get_mut::<SpanData>() {
            data.span
                .set(semconv::OTEL_STATUS_CODE, semconv::STATUS_ERROR);
            if let Some(d) = description {
                data.span
                    .set(semconv::OTEL_STATUS_DESCRIPTION, Cow::Owned(d.to_owned()));
            }
        }
    }
}

/// What a new span is the child of.
enum Parent<'a> {
    /// fastrace's local parent on this thread (a sampled span of this trace).
    Local(TraceId),
    /// A recorded `tracing` span.
    Span(&'a SpanData),
    /// The attached context (no fastrace span on this thread).
    Attached,
    /// Nothing: a new trace.
    Root,
}

fn with_attributes(span: Span, attributes: Vec<Attribute>) -> Span {
    if attributes.is_empty() {
        span
    } else {
        span.with_properties(|| attributes)
    }
}

/// Recorded `tracing` spans (and unsampled roots) alive in the process: while there are none,
/// entering and leaving spans has nothing to look up.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// What the layer keeps in a `tracing` span's extensions.
struct SpanData {
    /// The fastrace span; not recording for an unsampled root.
    span: PendingSpan,
    /// Its id (`SpanId(0)` when not recording).
    span_id: SpanId,
    /// The context to make current while the span is entered (this span's id), when the span
    /// belongs to a tracewire trace.
    context: Option<TraceContext>,
}

impl SpanData {
    fn new(span: PendingSpan, span_id: SpanId, context: Option<TraceContext>) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        SpanData {
            span,
            span_id,
            context,
        }
    }

    /// The span to link to.
    fn link(&self) -> Option<SpanContext> {
        SpanContext::from_span(self.span.span())
            .or_else(|| self.context.as_ref().map(SpanContext::from))
    }
}

impl Drop for SpanData {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

fn exception_event(message: String, fields: Vec<Attribute>) -> SpanEvent {
    SpanEvent::new(semconv::EXCEPTION_EVENT).with_properties(move || {
        std::iter::once((
            Cow::Borrowed(semconv::EXCEPTION_MESSAGE),
            Cow::Owned(message),
        ))
        .chain(fields)
    })
}

impl<S> Layer<S> for TracewireLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Field values are read (user `Debug` code may run, and log) with no lock held.
        let fields = || {
            // Room for every field of the callsite, the kind, the flags and `tracestate`.
            let mut fields = SpanFields::with_capacity(attrs.metadata().fields().len(), 3);
            attrs.record(&mut fields);
            fields
        };
        let meta = attrs.metadata();
        let data = if let Some(parent) = attrs.parent() {
            // An explicit parent: its trace, or none.
            if LIVE.load(Ordering::Relaxed) == 0 && !self.root_spans {
                return;
            }
            let Some(parent) = ctx.span(parent) else {
                return;
            };
            let recording = parent
                .extensions()
                .get::<SpanData>()
                .map(|p| p.span.is_recording());
            match recording {
                Some(true) => {
                    let fields = fields();
                    let ext = parent.extensions();
                    let Some(p) = ext.get::<SpanData>() else {
                        return;
                    };
                    self.start(Parent::Span(p), meta, fields)
                }
                Some(false) => return,
                None if self.root_spans => self.start(Parent::Root, meta, fields()),
                None => return,
            }
        } else if attrs.is_contextual() {
            let parent = match SpanContext::current_local_parent() {
                Some(sc) if sc.sampled => Parent::Local(sc.trace_id),
                Some(_) => return,
                None => match TraceContext::with_attached(|cx| cx.map(TraceContext::is_sampled)) {
                    Some(true) => Parent::Attached,
                    Some(false) => return,
                    None if self.root_spans => Parent::Root,
                    None => return,
                },
            };
            self.start(parent, meta, fields())
        } else if self.root_spans {
            // `parent: None`: an explicit root.
            self.start(Parent::Root, meta, fields())
        } else {
            return;
        };
        if let (Some(data), Some(span)) = (data, ctx.span(id)) {
            span.extensions_mut().insert(data);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if LIVE.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        if !is_recording(&span) {
            return;
        }
        // Read with no lock held (as in `on_new_span`).
        let mut fields = SpanFields::default();
        values.record(&mut fields);
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        if let Some(kind) = fields.kind {
            let (k, v) = kind.property();
            data.span.set(k, v);
        }
        let status = fields.status_attributes();
        let attributes = fields.attributes;
        // Appended: the export keeps the last value of a repeated key.
        data.span.extend(|| attributes.into_iter().chain(status));
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        if LIVE.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(link) = ctx
            .span(follows)
            .and_then(|f| f.extensions().get::<SpanData>().and_then(SpanData::link))
        else {
            return;
        };
        if let Some(span) = ctx.span(id)
            && let Some(data) = span.extensions().get::<SpanData>()
        {
            data.span.span().add_link(link);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = *meta.level();
        // The recorded span an explicit parent names, or (contextual) a sampled fastrace span
        // on this thread; else there is nothing to record on.
        let explicit = match event.parent() {
            Some(p) => {
                if LIVE.load(Ordering::Relaxed) == 0 {
                    return;
                }
                match ctx.span(p) {
                    Some(s) if is_recording(&s) => Some(s),
                    _ => return,
                }
            }
            None if event.is_contextual() => {
                if !SpanContext::current_local_parent().is_some_and(|sc| sc.sampled) {
                    return;
                }
                None
            }
            None => return,
        };
        let as_event = self.events && level <= self.event_level;
        if !as_event && level != Level::ERROR && meta.fields().field(crate::fields::ERROR).is_none()
        {
            return;
        }
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let failed = fields.error.is_some() || level == Level::ERROR;
        if !as_event && !failed {
            return;
        }
        if failed {
            // The status goes on the `tracing` span the event belongs to.
            let description = fields.error.as_deref().or(fields.message.as_deref());
            match &explicit {
                Some(s) => TracewireLayer::record_error(s, description),
                None => {
                    if let Some(s) = ctx.lookup_current() {
                        TracewireLayer::record_error(&s, description);
                    }
                }
            }
        }
        let base = [
            (Cow::Borrowed("level"), Cow::Borrowed(level.as_str())),
            (Cow::Borrowed("target"), Cow::Borrowed(meta.target())),
        ];
        let record = match fields.error {
            Some(error) => {
                let mut attributes: Vec<Attribute> = base.into_iter().collect();
                if let Some(m) = fields.message {
                    attributes.push((Cow::Borrowed(crate::fields::MESSAGE), Cow::Owned(m)));
                }
                attributes.extend(fields.attributes);
                exception_event(error, attributes)
            }
            None if as_event => {
                let name = match fields.message {
                    Some(m) => Cow::Owned(m),
                    None => Cow::Borrowed(meta.name()),
                };
                let attributes = fields.attributes;
                SpanEvent::new(name).with_properties(move || base.into_iter().chain(attributes))
            }
            None => return,
        };
        match &explicit {
            Some(s) => {
                if let Some(d) = s.extensions().get::<SpanData>() {
                    d.span.span().add_event(record);
                }
            }
            // On the innermost fastrace span of this thread: the one whose id the log line shows.
            None => LocalSpan::add_event(record),
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if LIVE.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        let Some(data) = ext.get::<SpanData>() else {
            return;
        };
        let recording = data.span.is_recording();
        // The span is made fastrace's local parent, unless it is that already (entered again
        // inside itself: `in_scope` or `enter` within its own `Instrument`): a guard costs a
        // command to fastrace's collector when dropped, even with nothing collected. The
        // entry is pushed either way, so that exits pair with enters. (Our own stack is
        // asked first: fastrace's local parent is read only when this span is innermost.)
        let entered_again = recording
            && stack::innermost_is(id.into_u64())
            && SpanContext::current_local_parent().is_some_and(|sc| sc.span_id == data.span_id);
        let parent = if recording && !entered_again {
            Some(data.span.span().set_local_parent())
        } else {
            None
        };
        let span_id = data.span_id;
        // The context is attached unless this trace's is already (the local parent then names
        // the span); a span entered in another task or thread brings its own.
        let context = data.context.as_ref().filter(|cx| {
            !TraceContext::with_attached(|a| a.is_some_and(|a| a.trace_id == cx.trace_id))
        });
        let context_span_id = context.map_or(SpanId(0), |cx| cx.span_id);
        let context = context.map(|cx| Box::new(cx.clone().attach()));
        drop(ext);
        if !recording && context.is_none() {
            return;
        }
        stack::push(Entered {
            id: id.into_u64(),
            span_id,
            context_span_id,
            exited: false,
            context,
            parent,
        });
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        if stack::is_empty() {
            return;
        }
        stack::exit(id.into_u64());
    }
}

fn is_recording<S>(span: &SpanRef<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.extensions()
        .get::<SpanData>()
        .is_some_and(|d| d.span.is_recording())
}
