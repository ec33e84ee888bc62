//! [`PendingSpan`]: **the lifecycle of every span an integration records** — the HTTP server
//! and client spans, the gRPC spans, the messaging spans. Attributes are collected while the
//! work runs and handed to fastrace once, errors are recorded one way, the span ends exactly
//! once, and a span dropped before its end records why.
//!
//! Why collect instead of adding attributes as they come: in fastrace 0.7,
//! `Span::add_properties(&self)` submits a separate record through the collector on every
//! call, while `Span::with_properties(self)` (by value, just before the span ends) puts them in
//! the span's own list. One hand-over per span is the cheapest way.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use fastrace::collector::SpanContext;
use fastrace::{Event, Span};

use crate::semconv;

/// One attribute as fastrace stores it: a key and a string value (typed on export by
/// [`semconv::typed_key`]).
pub type Attribute = (Cow<'static, str>, Cow<'static, str>);

/// How many attributes fastrace's property list of a started span has room for: the
/// properties the root rule and child starts write first are handed over through
/// [`with_room`], so the attributes a [`PendingSpan`] adds when it ends (a message's: 10 to
/// 18) fit without growing and copying the list. (19 entries of 48 bytes stay within the
/// allocator's per-thread cache, below 1 KiB; more would cost more than the copy saves.)
pub(crate) const ROOM: usize = 18;

/// `properties` with [`ROOM`] more in its size hint: `Vec::extend` reserves by the hint on the
/// first push, so fastrace allocates the span's list once. (The hint is an optimisation
/// hint only; a lower bound that is not reached is allowed and costs nothing but the room.)
pub(crate) fn with_room<I: Iterator>(properties: I) -> WithRoom<I> {
    WithRoom { inner: properties }
}

/// Made by [`with_room`].
pub(crate) struct WithRoom<I> {
    inner: I,
}

impl<I: Iterator> Iterator for WithRoom<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.inner.size_hint().0.saturating_add(ROOM), None)
    }
}

/// What a span records when it is dropped before it was [ended](PendingSpan::end): the work was
/// abandoned (a request future dropped because the client went away, a message handler
/// cancelled). Recorded as an error: status `ERROR` with `description`, `error.type` =
/// `error_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// The `error.type` (low cardinality, e.g. `"aborted"`).
    pub error_type: &'static str,
    /// The status description.
    pub description: &'static str,
}

/// A started span whose attributes are still being collected. Made from the [`Span`] of a
/// [`Root`](crate::Root) or [`Child`](crate::Child).
///
/// - Not recording (unsampled, or fastrace disabled): every method returns at once; nothing is
///   allocated, closures given to [`extend`](PendingSpan::extend) are never called.
/// - [`end`](PendingSpan::end) hands the attributes to fastrace in one piece and ends the span;
///   later calls do nothing.
/// - Dropped without `end`: records the [`Abort`] given by [`abort_on_drop`](PendingSpan::abort_on_drop)
///   (if any), then ends.
///
/// ```
/// use fastrace::Span;
/// use tracewire_core::PendingSpan;
///
/// let mut span = PendingSpan::new(Span::noop());
/// assert!(!span.is_recording());
/// span.extend(|| -> Vec<tracewire_core::span::Attribute> { unreachable!("not recording: never built") });
/// span.record_error("timeout", "no answer in 5 s");
/// span.end();
/// ```
pub struct PendingSpan {
    /// What a recording span holds, behind one box: a span that records nothing (unsampled)
    /// is two words, cheap to move through the futures and messages that carry it.
    recording: Option<Box<Recording>>,
    ended: bool,
}

struct Recording {
    span: Span,
    attributes: Vec<Attribute>,
    abort: Option<Abort>,
}

/// What [`PendingSpan::span`] lends when nothing is recorded.
static NOOP: LazyLock<Span> = LazyLock::new(Span::noop);

impl fmt::Debug for PendingSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.recording.as_deref();
        f.debug_struct("PendingSpan")
            .field("recording", &r.is_some())
            .field("ended", &self.ended)
            .field("attributes", &r.map(|r| &r.attributes))
            .field("abort", &r.and_then(|r| r.abort))
            .finish()
    }
}

impl Default for PendingSpan {
    /// A span that records nothing.
    fn default() -> Self {
        PendingSpan {
            recording: None,
            ended: false,
        }
    }
}

impl PendingSpan {
    /// Collects attributes for `span` (nothing when it is a no-op span).
    pub fn new(span: Span) -> Self {
        PendingSpan::with_attributes(span, Vec::new())
    }

    /// [`new`](PendingSpan::new) with room for `capacity` attributes (allocated only when
    /// recording).
    pub fn with_capacity(span: Span, capacity: usize) -> Self {
        if SpanContext::from_span(&span).is_none() {
            return PendingSpan::default();
        }
        PendingSpan::with_attributes(span, Vec::with_capacity(capacity))
    }

    /// [`new`](PendingSpan::new) with the attributes already collected (dropped unread when
    /// not recording).
    pub fn with_attributes(span: Span, attributes: Vec<Attribute>) -> Self {
        let recording = SpanContext::from_span(&span).is_some().then(|| {
            Box::new(Recording {
                span,
                attributes,
                abort: None,
            })
        });
        PendingSpan {
            recording,
            ended: false,
        }
    }

    /// What to record when the span is dropped before [`end`](PendingSpan::end).
    pub fn abort_on_drop(mut self, abort: Abort) -> Self {
        if let Some(r) = self.recording.as_deref_mut() {
            r.abort = Some(abort);
        }
        self
    }

    /// True until the span ends, when it is recorded (sampled and fastrace enabled).
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// The fastrace span (a no-op span once ended or when not recording): make it the local
    /// parent while the work runs so nested spans land under it.
    pub fn span(&self) -> &Span {
        match self.recording.as_deref() {
            Some(r) => &r.span,
            None => &NOOP,
        }
    }

    fn attributes(&mut self) -> Option<&mut Vec<Attribute>> {
        self.recording.as_deref_mut().map(|r| &mut r.attributes)
    }

    /// Adds one attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<Cow<'static, str>>) {
        if let Some(a) = self.attributes() {
            a.push((Cow::Borrowed(key), value.into()));
        }
    }

    /// Adds the attributes `attributes` builds; it is called only when recording.
    pub fn extend<I>(&mut self, attributes: impl FnOnce() -> I)
    where
        I: IntoIterator<Item = Attribute>,
    {
        if let Some(a) = self.attributes() {
            a.extend(attributes());
        }
    }

    /// Adds the list `attributes` builds (called only when recording), moved in as it is when
    /// the span has none yet: a caller that builds the whole list at once pays no copy.
    pub fn append(&mut self, attributes: impl FnOnce() -> Vec<Attribute>) {
        if let Some(a) = self.attributes() {
            let more = attributes();
            if a.is_empty() {
                *a = more;
            } else {
                a.extend(more);
            }
        }
    }

    /// **The one way a failure is recorded**: status `ERROR` with `description`, and
    /// `error.type` (low cardinality: an error type name, a status code, `timeout`).
    pub fn record_error(
        &mut self,
        error_type: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) {
        if let Some(a) = self.attributes() {
            a.extend(error_attributes(error_type.into(), description.into()));
        }
    }

    /// A failure with an error value: [`record_error`](PendingSpan::record_error) (the
    /// error's `Display` as description) plus an `exception` event carrying `exception.type`
    /// and `exception.message`, as the OpenTelemetry conventions record exceptions.
    pub fn record_exception(&mut self, error_type: &str, error: &dyn fmt::Display) {
        let Some(r) = self.recording.as_deref_mut() else {
            return;
        };
        let message = error.to_string();
        r.span
            .add_event(exception_event(error_type.to_owned(), message.clone()));
        self.record_error(Cow::Owned(error_type.to_owned()), Cow::Owned(message));
    }

    /// Hands the attributes to fastrace and ends the span. Later calls, and the drop, do
    /// nothing.
    #[inline]
    pub fn end(&mut self) {
        self.ended = true;
        // Inlined up to here: a span that records nothing (unsampled) ends without a call.
        if let Some(r) = self.recording.take() {
            Self::hand_over(r);
        }
    }

    /// Ends a recorded span: its attributes handed to fastrace in one piece.
    fn hand_over(r: Box<Recording>) {
        let Recording {
            span, attributes, ..
        } = *r;
        if attributes.is_empty() {
            drop(span);
        } else {
            // One copy into the span's own list (which has room for it, see `with_room`);
            // the span ends here.
            drop(span.with_properties(|| attributes));
        }
    }

    /// True once [`end`](PendingSpan::end) ran.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

impl Drop for PendingSpan {
    #[inline]
    fn drop(&mut self) {
        // Inlined: a span that records nothing (unsampled), or has ended, drops without a call.
        if self.recording.is_some() {
            self.abandon();
        }
    }
}

impl PendingSpan {
    /// Dropped while recording: the [`Abort`] (if any) is recorded, then the span ends.
    fn abandon(&mut self) {
        if let Some(abort) = self.recording.as_deref_mut().and_then(|r| r.abort.take()) {
            self.record_error(abort.error_type, abort.description);
        }
        self.end();
    }
}

/// The attributes of a failure: status `ERROR`, its description, and `error.type`.
pub fn error_attributes(
    error_type: Cow<'static, str>,
    description: Cow<'static, str>,
) -> [Attribute; 3] {
    [
        (
            Cow::Borrowed(semconv::OTEL_STATUS_CODE),
            Cow::Borrowed(semconv::STATUS_ERROR),
        ),
        (Cow::Borrowed(semconv::OTEL_STATUS_DESCRIPTION), description),
        (Cow::Borrowed(semconv::ERROR_TYPE), error_type),
    ]
}

/// The `exception` event of the OpenTelemetry conventions: `exception.type` and
/// `exception.message`. Exporters send it as a span event (OTLP) or an annotation (Zipkin).
pub fn exception_event(
    exception_type: impl Into<Cow<'static, str>>,
    message: impl Into<Cow<'static, str>>,
) -> Event {
    let (ty, message) = (exception_type.into(), message.into());
    Event::new(semconv::EXCEPTION_EVENT).with_properties(move || {
        [
            (semconv::EXCEPTION_TYPE, ty),
            (semconv::EXCEPTION_MESSAGE, message),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastrace::collector::{SpanId, TraceId};

    fn root() -> Span {
        Span::root("work", SpanContext::new(TraceId(7), SpanId(0)))
    }

    fn props(spans: &tracewire_test::Spans) -> Vec<(String, String)> {
        let mut v: Vec<_> = spans.records[0]
            .properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn attributes_reach_the_span_once_at_the_end() {
        let cap = tracewire_test::capture();
        let mut span = PendingSpan::with_capacity(root(), 4);
        assert!(span.is_recording());
        span.set("a", "1");
        span.extend(|| [(Cow::Borrowed("b"), Cow::Borrowed("2"))]);
        span.end();
        span.set("late", "x");
        span.end();
        drop(span);
        let spans = cap.finish();
        assert_eq!(spans.len(), 1);
        assert_eq!(
            props(&spans),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn dropped_unfinished_records_the_abort_once() {
        let cap = tracewire_test::capture();
        let span = PendingSpan::new(root()).abort_on_drop(Abort {
            error_type: "aborted",
            description: "gone",
        });
        drop(span);
        // Ended normally: no abort.
        let mut ended = PendingSpan::new(root()).abort_on_drop(Abort {
            error_type: "aborted",
            description: "gone",
        });
        ended.end();
        drop(ended);
        let spans = cap.finish();
        assert_eq!(spans.len(), 2);
        assert_eq!(
            spans.tree(&["error.type", "otel.status_code", "otel.status_description"]),
            "work [internal] error.type=aborted otel.status_code=ERROR otel.status_description=gone\nwork [internal]\n"
        );
    }

    #[test]
    fn exceptions_add_an_event_and_the_error() {
        let cap = tracewire_test::capture();
        let mut span = PendingSpan::new(root());
        span.record_exception("std::io::Error", &std::io::Error::other("disk full"));
        drop(span);
        let spans = cap.finish();
        let rec = &spans.records[0];
        assert_eq!(rec.events.len(), 1);
        assert_eq!(rec.events[0].name, "exception");
        assert_eq!(
            props(&spans),
            [
                ("error.type".into(), "std::io::Error".into()),
                ("otel.status_code".into(), "ERROR".into()),
                ("otel.status_description".into(), "disk full".into()),
            ]
        );
    }

    #[test]
    fn not_recording_builds_nothing() {
        let cap = tracewire_test::capture();
        let mut span = PendingSpan::with_capacity(Span::noop(), 16);
        span.extend(|| -> Vec<Attribute> { panic!("built") });
        span.append(|| -> Vec<Attribute> { panic!("built") });
        span.record_exception("E", &"boom");
        assert!(span.recording.is_none(), "nothing held");
        drop(span);
        assert!(cap.finish().is_empty());
    }
}
