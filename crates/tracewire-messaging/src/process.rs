//! The consumer side: the process span a handler runs in, its relation to the message's
//! creation context, the outcome (ack, nak, ...) and redelivery.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use fastrace::Span;
use tracewire_core::context::ContextGuard;
use tracewire_core::{
    Extracted, Extractor, Inbound, Link, PendingSpan, SpanKind, TraceContext, semconv,
};

use crate::config::{Messaging, Relation};
use crate::facts::{self, Destination, Lazy, MessageInfo, Operation};

/// The CONSUMER span one message (or one batch) is processed in. Made by
/// [`Messaging::process`] or [`Messaging::process_batch`]; run the handler in it
/// ([`instrument`](ProcessSpan::instrument) or [`enter`](ProcessSpan::enter)), record its
/// outcome ([`settle`](ProcessSpan::settle), [`record_exception`](ProcessSpan::record_exception)),
/// then let it end (or [`end`](ProcessSpan::end) it).
///
/// Inside, `#[fastrace::trace]` functions nest under the span, and
/// [`TraceContext::current`] is this span's context: a message published, an HTTP call made
/// with `tracewire-reqwest` or a gRPC call through `tracewire-tonic` continues the trace, and
/// the message's baggage flows on unchanged.
pub struct ProcessSpan {
    span: PendingSpan,
    context: TraceContext,
    /// For settle spans: only kept when they are on and the span records (an unsampled
    /// message costs no refcount, a recorded one no label copy).
    recorded: Option<Recorded>,
}

/// What a recorded process span keeps for its settle spans (only when they are on).
struct Recorded {
    config: Messaging,
    /// The destination label of settle span names.
    label: Option<String>,
}

impl fmt::Debug for ProcessSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessSpan")
            .field("context", &self.context)
            .field("recording", &self.span.is_recording())
            .finish()
    }
}

impl Messaging {
    /// Starts the process span of one message from its headers (`None`: the message has
    /// none), by the one root rule:
    ///
    /// - [`Relation::ChildAndLink`] (default): the child of the message's creation context,
    ///   which it also links; a chain of handlers is one trace. When the handler runs inside
    ///   another span already (an ambient context), that context is linked too.
    /// - [`Relation::LinksOnly`]: a new trace (or the child of the ambient context) that links
    ///   the creation context.
    /// - No valid creation context (none, garbage, oversized): a new trace, or the child of the
    ///   ambient context. The message itself is never touched.
    ///
    /// Named `process {destination}` (the template for wildcard subscriptions), with the
    /// message's facts as attributes, `messaging.message.delivery_count` and
    /// `messaging.message.queue_time_ms` when the broker gives them.
    pub fn process<E>(&self, info: &MessageInfo<'_>, headers: Option<&E>) -> ProcessSpan
    where
        E: Extractor + ?Sized,
    {
        self.process_lazy(|| *info, headers)
    }

    /// [`process`](Messaging::process) with the message's facts gathered only when they are
    /// needed — when the span is recorded (or a custom sampler reads its name): an unsampled
    /// message costs the extraction of its context and nothing else (no header lookups for
    /// ids, no parsing of broker metadata). `info` is called at most once.
    pub fn process_lazy<'i, E>(
        &self,
        info: impl FnOnce() -> MessageInfo<'i>,
        headers: Option<&E>,
    ) -> ProcessSpan
    where
        E: Extractor + ?Sized,
    {
        let inner = &*self.inner;
        let op = Operation::PROCESS;
        let info = Lazy::new(info);
        let extracted = headers.map_or_else(Extracted::default, |h| inner.tracer.extract(h));
        let ambient = TraceContext::current();
        let name = || facts::span_name(op, &info.get().destination);
        let (span, context) = match (extracted.context, ambient) {
            // The handler already runs in a span: it stays the parent unless the message's
            // context takes that place (then the ambient span is linked).
            (Some(created), Some(ambient)) if inner.relation == Relation::LinksOnly => {
                let _ = ambient;
                child(self, name, vec![Link::new(&created)])
            }
            (None, Some(_)) => child(self, name, Vec::new()),
            (created, ambient) => {
                let inbound = match inner.relation {
                    Relation::ChildAndLink => Inbound::ParentAndLink,
                    Relation::LinksOnly => Inbound::Link,
                };
                let root = inner.tracer.start_root_with(
                    name,
                    SpanKind::Consumer,
                    Extracted {
                        context: created,
                        ..extracted
                    },
                    inbound,
                    || ambient.iter().map(Link::new).collect(),
                );
                (root.span, root.context)
            }
        };
        let mut span = PendingSpan::new(span);
        span.append(|| facts::span_attributes(inner, op, &info.get(), None));
        let recorded = if span.is_recording() {
            self.recorded(&span, &info.get().destination)
        } else {
            None
        };
        ProcessSpan {
            span,
            context,
            recorded,
        }
    }

    /// What a recorded span keeps for settle spans, when they are on.
    fn recorded(&self, span: &PendingSpan, destination: &Destination<'_>) -> Option<Recorded> {
        (span.is_recording() && self.inner.settle_spans).then(|| Recorded {
            config: self.clone(),
            label: destination.label().map(str::to_owned),
        })
    }

    /// Starts one process span for a batch (`process {destination}`,
    /// `messaging.batch.message_count`), the child of the ambient context or a new trace, with
    /// one link per message that carries a creation context — the link holds that message's
    /// facts (id, size, delivery count, ...). No synthetic span is made for the messages. The
    /// headers are read only when the span is recorded.
    pub fn process_batch<'m, E>(
        &self,
        destination: Destination<'_>,
        messages: &[(MessageInfo<'m>, Option<&'m E>)],
    ) -> ProcessSpan
    where
        E: Extractor + ?Sized,
    {
        let inner = &*self.inner;
        let op = Operation::PROCESS;
        let child = inner.tracer.start_child_or_root(
            || facts::span_name(op, &destination),
            SpanKind::Consumer,
            || {
                messages
                    .iter()
                    .filter_map(|(info, headers)| {
                        let cx = inner.tracer.extract(*headers.as_ref()?).context?;
                        Some(Link::new(&cx).with_attributes(facts::link_attributes(
                            info,
                            &destination,
                            true,
                        )))
                    })
                    .collect()
            },
        );
        let mut span = PendingSpan::new(child.span);
        span.append(|| {
            let info = MessageInfo {
                consumer_group: messages.first().and_then(|(m, _)| m.consumer_group),
                ..MessageInfo::new(destination)
            };
            facts::span_attributes(inner, op, &info, Some(messages.len()))
        });
        let recorded = self.recorded(&span, &destination);
        ProcessSpan {
            span,
            // `start_child_or_root` always gives a context.
            context: child.context.unwrap_or_else(|| {
                TraceContext::new(tracewire_core::TraceId(0), tracewire_core::SpanId(0), false)
            }),
            recorded,
        }
    }
}

/// A process span as the child of the ambient context.
fn child(
    config: &Messaging,
    name: impl FnOnce() -> Cow<'static, str>,
    links: Vec<Link>,
) -> (Span, TraceContext) {
    let child = config
        .inner
        .tracer
        .start_child_with(name, SpanKind::Consumer, || links);
    match child.context {
        Some(cx) => (child.span, cx),
        // Unreachable: only called with an ambient context.
        None => (
            child.span,
            TraceContext::new(tracewire_core::TraceId(0), tracewire_core::SpanId(0), false),
        ),
    }
}

impl ProcessSpan {
    /// The span's context: current while the handler runs in it.
    pub fn context(&self) -> &TraceContext {
        &self.context
    }

    /// True when the span is recorded.
    pub fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// The fastrace span (a no-op span when not recorded), to parent spans of your own.
    pub fn span(&self) -> &Span {
        self.span.span()
    }

    /// Runs `fut` (the handler) inside the span: on every poll the span is fastrace's local
    /// parent and its context is current. Borrows the span, so the outcome can be recorded
    /// after the handler returns.
    pub fn instrument<F: Future>(&self, fut: F) -> Instrumented<'_, F> {
        Instrumented {
            inner: fut,
            span: self,
        }
    }

    /// For synchronous handlers: the span is the local parent and its context current until
    /// the guard drops.
    pub fn enter(&self) -> Entered {
        Entered {
            _parent: self.span.span().set_local_parent(),
            _context: self.context.clone().attach(),
        }
    }

    /// Adds an attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<Cow<'static, str>>) {
        self.span.set(key, value);
    }

    /// Records a failed handler: status `ERROR`, `error.type`, and an `exception` event.
    pub fn record_exception(&mut self, error_type: &str, error: &dyn fmt::Display) {
        self.span.record_exception(error_type, error);
    }

    /// Records a failure without an error value (status `ERROR`, `error.type`).
    pub fn record_error(
        &mut self,
        error_type: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) {
        self.span.record_error(error_type, description);
    }

    /// Records the outcome of a handler that returns a `Result`: nothing for `Ok`, an
    /// exception (type name of `E`, its `Display`) for `Err`.
    pub fn record_result<T, E: fmt::Display>(&mut self, result: &Result<T, E>) {
        if let Err(e) = result {
            self.record_exception(std::any::type_name::<E>(), e);
        }
    }

    /// Records how the message was settled: `messaging.settlement` = `verb` on this span, and,
    /// when [settle spans](Messaging::settle_spans) are on, a CLIENT settle span
    /// (`{verb} {destination}`, `messaging.operation.type` = `settle`) as its child, to end
    /// when the broker has the settlement. `verb` is the broker's own word (`ack`, `nak`,
    /// `term`, `in_progress`, `reject`, `commit`).
    pub fn settle(&mut self, verb: &'static str) -> SettleSpan {
        self.span.set(semconv::MESSAGING_SETTLEMENT, verb);
        let Some(recorded) = &self.recorded else {
            return SettleSpan {
                span: PendingSpan::default(),
            };
        };
        let inner = &*recorded.config.inner;
        let op = Operation::settle(verb);
        let destination = Destination::new(recorded.label.as_deref().unwrap_or(""));
        let _in = self.enter();
        let child = inner
            .tracer
            .start_child_lazy(|| facts::span_name(op, &destination), SpanKind::Client);
        let mut span = PendingSpan::new(child.span);
        span.append(|| facts::span_attributes(inner, op, &MessageInfo::new(destination), None));
        SettleSpan { span }
    }

    /// Ends the span (dropping it does the same).
    pub fn end(mut self) {
        self.span.end();
    }
}

/// Returned by [`ProcessSpan::enter`].
#[must_use = "the span stops being current as soon as the guard drops"]
pub struct Entered {
    _parent: fastrace::local::LocalParentGuard,
    _context: ContextGuard,
}

pin_project_lite::pin_project! {
    /// Made by [`ProcessSpan::instrument`]: polls the handler inside the process span.
    pub struct Instrumented<'a, F> {
        #[pin]
        inner: F,
        span: &'a ProcessSpan,
    }
}

impl<F: Future> Future for Instrumented<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _in = this.span.enter();
        this.inner.poll(cx)
    }
}

/// The CLIENT span of one settlement (ack, nak, ...), made by [`ProcessSpan::settle`]. End it
/// when the broker has it; record a failure first.
#[derive(Debug)]
pub struct SettleSpan {
    span: PendingSpan,
}

impl SettleSpan {
    /// Records that the settlement failed.
    pub fn record_error(
        &mut self,
        error_type: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) {
        self.span.record_error(error_type, description);
    }

    /// Ends the span.
    pub fn end(mut self) {
        self.span.end();
    }
}

/// The handler-facing methods every broker crate's processed message has, written once:
/// `instrument`, `enter`, `context`, `span`, `span_mut` and `record_result`, each handing to
/// the [`ProcessSpan`] in the named field. Used inside an inherent `impl` block:
///
/// ```
/// use tracewire_messaging::ProcessSpan;
///
/// /// A broker's message, as a consumer hands it to a handler.
/// pub struct Message {
///     span: ProcessSpan,
/// }
///
/// impl Message {
///     tracewire_messaging::process_span_methods!(span);
/// }
/// ```
#[macro_export]
macro_rules! process_span_methods {
    ($span:ident) => {
        /// Runs `fut` (the handler) inside the process span: `#[fastrace::trace]` functions
        /// nest under it, and what it sends through a traced client — or calls through
        /// `tracewire-reqwest`, `tracewire-tonic` — continues the trace.
        pub fn instrument<F: ::core::future::Future>(&self, fut: F) -> $crate::Instrumented<'_, F> {
            self.$span.instrument(fut)
        }

        /// For synchronous handlers: the process span is current until the guard drops.
        pub fn enter(&self) -> $crate::Entered {
            self.$span.enter()
        }

        /// The process span's context (what the handler propagates).
        pub fn context(&self) -> &$crate::TraceContext {
            self.$span.context()
        }

        /// The process span.
        pub fn span(&self) -> &$crate::ProcessSpan {
            &self.$span
        }

        /// The process span, to record on.
        pub fn span_mut(&mut self) -> &mut $crate::ProcessSpan {
            &mut self.$span
        }

        /// Records a handler's `Result`: an `Err` is an exception on the span.
        pub fn record_result<T, E: ::core::fmt::Display>(
            &mut self,
            result: &::core::result::Result<T, E>,
        ) {
            self.$span.record_result(result);
        }
    };
}
