//! [`Tracer`]: the propagators, the sampler and **the one root-creation rule** every
//! integration calls.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, RwLock};

use fastrace::Span;
use fastrace::collector::{SpanContext, SpanId, TraceId};
use fastrace::future::{FutureExt as _, InSpan};

use crate::baggage::Baggage;
use crate::carrier::{Extractor, Injector};
use crate::context::{ContextGuard, FutureExt as _, Sampling, TraceContext, WithContext};
use crate::kind::SpanKind;
use crate::link::Link;
use crate::propagation::{Extracted, Propagators};
use crate::reserved;
use crate::sampling::Sampler;
use crate::semconv;
use crate::tracestate::TraceState;

/// How a root span relates to what arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The span continues the remote parent: same trace, the remote span is its parent.
    Continued,
    /// A new trace: nothing valid arrived (or only a sampling decision did).
    NewRoot,
    /// A new trace started on purpose (`force_new_trace`); the inbound context is kept as a
    /// span link, not a parent.
    NewRootLinked(TraceContext),
}

/// What the root rule does with a valid inbound context ([`Tracer::start_root_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Inbound {
    /// Continue it: same trace, its span is the parent. The default for requests.
    #[default]
    Parent,
    /// Continue it and also link it: the messaging default, where a process span is the child
    /// of the message's creation context *and* links it (so the relation survives in backends
    /// and views that follow links only).
    ParentAndLink,
    /// Never continue it: start a new trace that links it. What
    /// [`force_new_trace`](Tracer::force_new_trace) does for every span of a tracer, here for
    /// one span (messaging's links-only mode).
    Link,
}

/// The span to run one unit of inbound work in (a request, a message): made by
/// [`Tracer::start_root`].
#[derive(Debug)]
pub struct Root {
    /// The fastrace span (a no-op span when not sampled).
    pub span: Span,
    /// The local context: this span's id, the trace's sampling decision, `tracestate` and
    /// baggage. Attach it while the work runs so outgoing calls propagate it.
    pub context: TraceContext,
    /// How the span relates to what arrived.
    pub origin: Origin,
}

impl Root {
    /// Runs `fut` inside the span, with the context attached on every poll.
    pub fn instrument<F: Future>(self, fut: F) -> WithContext<InSpan<F>> {
        fut.in_span(self.span).with_trace_context(self.context)
    }

    /// For synchronous work: makes the span the local parent and the context current until
    /// the guard drops.
    pub fn enter(&self) -> RootGuard {
        RootGuard {
            _parent: self.span.set_local_parent(),
            _context: self.context.clone().attach(),
        }
    }
}

/// Returned by [`Root::enter`].
#[must_use = "the span stops being the local parent as soon as the guard drops"]
pub struct RootGuard {
    _parent: fastrace::local::LocalParentGuard,
    _context: ContextGuard,
}

/// A child span for an outgoing call (client, producer), made by [`Tracer::start_child`] and
/// its variants.
#[derive(Debug)]
pub struct Child {
    /// The fastrace span (no-op when the trace is not sampled or there is no current context).
    pub span: Span,
    /// The context to inject into the outgoing carrier (`None` when there is no current trace).
    pub context: Option<TraceContext>,
}

#[derive(Clone, Debug)]
struct Inner {
    propagators: Propagators,
    sampler: Sampler,
    /// `sampler.uses_name()`, asked once.
    sampler_uses_name: bool,
    force_new_trace: bool,
    drop_inbound_baggage: bool,
}

/// Propagators + sampler + root options: everything an integration needs to turn an inbound
/// carrier into a span and to propagate the current context outward.
///
/// Cheap to clone (one `Arc`). Integrations take a `Tracer` in their builder and default to
/// [`Tracer::global`].
///
/// ```
/// use tracewire_core::{Pairs, SpanKind, Tracer, Propagators, Sampler};
///
/// let tracer = Tracer::new()
///     .with_propagators(Propagators::all())
///     .with_sampler(Sampler::AlwaysOn);
/// let inbound = Pairs::from_pairs([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]);
/// let root = tracer.start_root("GET /users/{id}", SpanKind::Server, &inbound);
/// assert_eq!(format!("{:032x}", root.context.trace_id.0), "4bf92f3577b34da6a3ce929d0e0e4736");
///
/// let mut outbound = Pairs::new();
/// tracer.inject(&root.context, &mut outbound);
/// assert!(outbound.get("traceparent").unwrap().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
/// ```
#[derive(Clone, Debug)]
pub struct Tracer {
    inner: Arc<Inner>,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::new()
    }
}

static GLOBAL: RwLock<Option<Tracer>> = RwLock::new(None);

impl Tracer {
    /// Default propagators (`tracecontext,baggage`), default sampler (`parentbased_always_on`),
    /// continue inbound traces, keep inbound baggage.
    pub fn new() -> Self {
        Tracer {
            inner: Arc::new(Inner {
                propagators: Propagators::default(),
                sampler: Sampler::default(),
                sampler_uses_name: Sampler::default().uses_name(),
                force_new_trace: false,
                drop_inbound_baggage: false,
            }),
        }
    }

    /// Propagators and sampler from `OTEL_PROPAGATORS`, `OTEL_TRACES_SAMPLER` and
    /// `OTEL_TRACES_SAMPLER_ARG` (bad values: one warning each, then the default).
    pub fn from_env() -> Self {
        Tracer::new()
            .with_propagators(Propagators::from_env())
            .with_sampler(Sampler::from_env())
    }

    /// The process-wide tracer: the one given to [`Tracer::set_global`], else one built
    /// [`from_env`](Tracer::from_env) on first use. Integrations read it when they are built.
    pub fn global() -> Tracer {
        if let Some(t) = GLOBAL.read().ok().and_then(|g| g.clone()) {
            return t;
        }
        let mut g = match GLOBAL.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        g.get_or_insert_with(Tracer::from_env).clone()
    }

    /// Replaces the process-wide tracer (integrations built afterwards use it).
    pub fn set_global(tracer: Tracer) {
        let mut g = match GLOBAL.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Some(tracer);
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Uses these propagators.
    pub fn with_propagators(mut self, propagators: Propagators) -> Self {
        self.inner_mut().propagators = propagators;
        self
    }

    /// Uses this sampler.
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        let inner = self.inner_mut();
        inner.sampler_uses_name = sampler.uses_name();
        inner.sampler = sampler;
        self
    }

    /// At an untrusted edge: never continue an inbound trace. A new trace is started (sampled
    /// by the sampler as a root, inbound sampling flags ignored) and the inbound context, if
    /// valid, becomes a span link.
    pub fn force_new_trace(mut self, yes: bool) -> Self {
        self.inner_mut().force_new_trace = yes;
        self
    }

    /// Do not keep inbound baggage (it is neither visible to the handler nor propagated).
    pub fn drop_inbound_baggage(mut self, yes: bool) -> Self {
        self.inner_mut().drop_inbound_baggage = yes;
        self
    }

    /// The propagators.
    pub fn propagators(&self) -> &Propagators {
        &self.inner.propagators
    }

    /// The sampler.
    pub fn sampler(&self) -> &Sampler {
        &self.inner.sampler
    }

    /// True when inbound traces are never continued.
    pub fn is_force_new_trace(&self) -> bool {
        self.inner.force_new_trace
    }

    /// Reads the carrier with the configured propagators.
    pub fn extract<E: Extractor + ?Sized>(&self, carrier: &E) -> Extracted {
        self.inner.propagators.extract(carrier)
    }

    /// Writes `cx` with the configured propagators.
    pub fn inject<I: Injector + ?Sized>(&self, cx: &TraceContext, carrier: &mut I) {
        self.inner.propagators.inject(cx, carrier);
    }

    /// Writes the [current](TraceContext::current) context, if any.
    pub fn inject_current<I: Injector + ?Sized>(&self, carrier: &mut I) {
        if let Some(cx) = TraceContext::current() {
            self.inject(&cx, carrier);
        }
    }

    /// **The root rule.** Extracts the carrier and starts the span for inbound work.
    /// See [`Tracer::start_root_from`].
    pub fn start_root<E: Extractor + ?Sized>(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        carrier: &E,
    ) -> Root {
        let name = name.into();
        self.root_rule(
            || name,
            kind,
            self.extract(carrier),
            Inbound::Parent,
            Vec::new,
        )
    }

    /// [`start_root`](Tracer::start_root) with the span name computed only when it is needed:
    /// when the span is recorded, or when a [`Sampler::Custom`] rule asks for it. An unsampled
    /// request then never builds its name (route lookups, formatting, an allocation).
    ///
    /// ```
    /// use tracewire_core::{Pairs, Sampler, SpanKind, Tracer};
    ///
    /// let tracer = Tracer::new().with_sampler(Sampler::AlwaysOff);
    /// let root = tracer.start_root_lazy(|| unreachable!("not sampled, never named"), SpanKind::Server, &Pairs::new());
    /// assert!(!root.context.is_sampled());
    /// ```
    pub fn start_root_lazy<E: Extractor + ?Sized>(
        &self,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        carrier: &E,
    ) -> Root {
        self.root_rule(name, kind, self.extract(carrier), Inbound::Parent, Vec::new)
    }

    /// **The root rule**, from an already extracted carrier:
    ///
    /// 1. A valid remote context and no `force_new_trace`: **continue** it — same trace id,
    ///    the remote span as parent, its `tracestate` and random flag kept; sampled as the
    ///    sampler says for that parent (a deferred B3 decision goes to the root sampler; a
    ///    debug flag always samples).
    /// 2. A valid remote context with `force_new_trace`: a **new trace linked** to it; the
    ///    sampler decides as for a root.
    /// 3. Nothing valid: a **new trace**; a bare sampling decision (`b3: 0`/`1`/`d`,
    ///    `jaeger-debug-id`) is honoured unless `force_new_trace`, else the sampler decides.
    ///
    /// Baggage is kept unless [`drop_inbound_baggage`](Tracer::drop_inbound_baggage). Unsampled
    /// work gets a no-op span (nothing recorded) but a full context with a fresh span id, so it
    /// still propagates `-00` downstream.
    pub fn start_root_from(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        extracted: Extracted,
    ) -> Root {
        let name = name.into();
        self.root_rule(|| name, kind, extracted, Inbound::Parent, Vec::new)
    }

    /// The root rule in full: [`start_root_from`](Tracer::start_root_from) with a choice of
    /// what a valid inbound context becomes ([`Inbound`]: parent, parent and link, or link of
    /// a new trace — `force_new_trace` makes every choice a link) and further `links`
    /// (built only when the span is recorded). The name is built as by
    /// [`start_root_lazy`](Tracer::start_root_lazy).
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use tracewire_core::{Inbound, Link, Origin, Pairs, Sampler, SpanKind, Tracer};
    ///
    /// let tracer = Tracer::new().with_sampler(Sampler::AlwaysOn);
    /// let message = Pairs::from_pairs([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]);
    /// // A message's process span: the child of its creation context, and linked to it.
    /// let root = tracer.start_root_with(
    ///     || Cow::Borrowed("process orders"),
    ///     SpanKind::Consumer,
    ///     tracer.extract(&message),
    ///     Inbound::ParentAndLink,
    ///     Vec::new,
    /// );
    /// assert_eq!(root.origin, Origin::Continued);
    /// // Links-only: a new trace per message.
    /// let root = tracer.start_root_with(
    ///     || Cow::Borrowed("process orders"),
    ///     SpanKind::Consumer,
    ///     tracer.extract(&message),
    ///     Inbound::Link,
    ///     Vec::new,
    /// );
    /// assert!(matches!(root.origin, Origin::NewRootLinked(_)));
    /// ```
    pub fn start_root_with(
        &self,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        extracted: Extracted,
        inbound: Inbound,
        links: impl FnOnce() -> Vec<Link>,
    ) -> Root {
        self.root_rule(name, kind, extracted, inbound, links)
    }

    /// The one implementation of the root rule behind every `start_root*` method. The name is
    /// built at most once, and only for a custom sampler or a recorded span; the links only for
    /// a recorded span.
    fn root_rule(
        &self,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        extracted: Extracted,
        inbound: Inbound,
        links: impl FnOnce() -> Vec<Link>,
    ) -> Root {
        let mut name = LazyName::new(name);
        let inner = &*self.inner;
        let new_trace = inner.force_new_trace || inbound == Inbound::Link;
        let baggage = if inner.drop_inbound_baggage {
            Baggage::empty()
        } else {
            extracted.baggage
        };
        // The inbound context as a link: the new trace's only tie to it, or (messaging) the
        // parent kept as a link too.
        let mut inbound_link = None;
        let (origin, parent_id, mut context) = match extracted.context {
            Some(remote) if !new_trace => {
                if inbound == Inbound::ParentAndLink {
                    inbound_link = Some(SpanContext::from(&remote));
                }
                let sampling = match remote.sampling {
                    Sampling::Debug => Sampling::Debug,
                    _ => Sampling::from_bool(inner.sampler.should_sample(
                        Some(&remote),
                        remote.trace_id,
                        name.for_sampler(inner.sampler_uses_name),
                    )),
                };
                let parent = remote.span_id;
                let cx = TraceContext {
                    sampling,
                    remote: false,
                    baggage,
                    ..remote
                };
                (Origin::Continued, parent, cx)
            }
            unused => {
                let trace_id = new_trace_id();
                let sampling = match extracted.sampling_only {
                    Some(decided) if !new_trace => match decided {
                        Sampling::Deferred => Sampling::from_bool(inner.sampler.should_sample(
                            None,
                            trace_id,
                            name.for_sampler(inner.sampler_uses_name),
                        )),
                        other => other,
                    },
                    _ => Sampling::from_bool(inner.sampler.should_sample(
                        None,
                        trace_id,
                        name.for_sampler(inner.sampler_uses_name),
                    )),
                };
                let cx = TraceContext {
                    trace_id,
                    span_id: SpanId(0),
                    sampling,
                    random: true,
                    remote: false,
                    trace_state: TraceState::empty(),
                    baggage,
                };
                let origin = match unused {
                    Some(remote) => {
                        inbound_link = Some(SpanContext::from(&remote));
                        Origin::NewRootLinked(remote)
                    }
                    None => Origin::NewRoot,
                };
                (origin, SpanId(0), cx)
            }
        };

        if !context.is_sampled() {
            context.span_id = new_span_id();
            return Root {
                span: Span::noop(),
                context,
                origin,
            };
        }

        let debug_id = extracted.debug_id.filter(|_| origin == Origin::NewRoot);
        let mut span = Span::root(
            name.into_name(),
            SpanContext {
                trace_id: context.trace_id,
                span_id: parent_id,
                sampled: true,
            },
        )
        .with_properties(|| {
            let remote = (origin == Origin::Continued)
                .then_some((reserved::PARENT_REMOTE, Cow::Borrowed("true")));
            let state = (!context.trace_state.is_empty()).then(|| {
                (
                    reserved::TRACE_STATE,
                    Cow::Owned(context.trace_state.header_value().to_owned()),
                )
            });
            let debug = debug_id.map(|id| (semconv::JAEGER_DEBUG_ID, Cow::Owned(id)));
            crate::span::with_room(
                [
                    Some((semconv::SPAN_KIND, Cow::Borrowed(kind.as_str()))),
                    Some((
                        reserved::TRACE_FLAGS,
                        Cow::Borrowed(reserved::flags_str(context.flags())),
                    )),
                    remote,
                    state,
                    debug,
                ]
                .into_iter()
                .flatten(),
            )
        });
        if let Some(link) = inbound_link {
            span = span.with_link(link);
            // A link to the remote parent is remote by that fact (the exporters see the
            // parent's flag); a new trace's link says so itself.
            if origin != Origin::Continued {
                span = span.with_properties(|| [reserved::link_remote(link.span_id)]);
            }
        }
        for link in links() {
            span = link.add_to(span);
        }
        context.span_id = SpanContext::from_span(&span).map_or_else(new_span_id, |sc| sc.span_id);
        Root {
            span,
            context,
            origin,
        }
    }

    /// Starts a span for an outgoing call (`Client` or `Producer`) under the current context
    /// and returns it with the context to inject. With no current context there is nothing to
    /// propagate and the span is a no-op. When sampled, the span is a child of fastrace's
    /// local parent, or — if the work runs outside it (another task without a local parent) —
    /// a span whose parent is the current context's span, so the tree stays right.
    pub fn start_child(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Child {
        let name = name.into();
        self.start_child_with(|| name, kind, Vec::new)
    }

    /// [`start_child`](Tracer::start_child) with the name built only when the span is
    /// recorded.
    ///
    /// ```
    /// use tracewire_core::{SpanKind, Tracer};
    ///
    /// // No current trace: nothing to record, the name is never built.
    /// let child = Tracer::new().start_child_lazy(|| unreachable!(), SpanKind::Producer);
    /// assert!(child.context.is_none());
    /// ```
    pub fn start_child_lazy(
        &self,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
    ) -> Child {
        self.start_child_with(name, kind, Vec::new)
    }

    /// [`start_child_lazy`](Tracer::start_child_lazy) with `links` (built only when the span is
    /// recorded): a batch's `send` span linking the `create` span of each message.
    pub fn start_child_with(
        &self,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        links: impl FnOnce() -> Vec<Link>,
    ) -> Child {
        let Some(cx) = TraceContext::current() else {
            return Child {
                span: Span::noop(),
                context: None,
            };
        };
        if !cx.is_sampled() {
            let context = cx.with_span_id(new_span_id());
            return Child {
                span: Span::noop(),
                context: Some(context),
            };
        }
        let flags = reserved::flags_str(cx.flags());
        // Every recorded span carries its own flags and tracestate (exporters never have to
        // guess them from another span).
        let state = (!cx.trace_state.is_empty()).then(|| {
            (
                reserved::TRACE_STATE,
                Cow::Owned(cx.trace_state.header_value().to_owned()),
            )
        });
        let props = move || {
            crate::span::with_room(
                [
                    Some((semconv::SPAN_KIND, Cow::Borrowed(kind.as_str()))),
                    Some((reserved::TRACE_FLAGS, Cow::Borrowed(flags))),
                    state,
                ]
                .into_iter()
                .flatten(),
            )
        };
        let mut span = if SpanContext::current_local_parent().is_some() {
            Span::enter_with_local_parent(name())
        } else {
            Span::root(name(), SpanContext::from(&cx))
        }
        .with_properties(props);
        for link in links() {
            span = link.add_to(span);
        }
        let span_id = SpanContext::from_span(&span).map_or_else(new_span_id, |sc| sc.span_id);
        Child {
            span,
            context: Some(cx.with_span_id(span_id)),
        }
    }

    /// A span for work that starts here — a message sent, a batch received — as the child of
    /// the current context, or, when there is none, as a new trace decided by the root rule
    /// (the sampler, as for any root). The context is always `Some`.
    pub fn start_child_or_root(
        &self,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        links: impl FnOnce() -> Vec<Link>,
    ) -> Child {
        if TraceContext::current().is_some() {
            return self.start_child_with(name, kind, links);
        }
        let root = self.root_rule(name, kind, Extracted::default(), Inbound::Parent, links);
        Child {
            span: root.span,
            context: Some(root.context),
        }
    }
}

/// A span name that is built on first use ([`Tracer::start_root_lazy`],
/// [`Tracer::start_child_lazy`]).
struct LazyName<F> {
    build: Option<F>,
    built: Option<Cow<'static, str>>,
}

impl<F: FnOnce() -> Cow<'static, str>> LazyName<F> {
    fn new(build: F) -> Self {
        LazyName {
            build: Some(build),
            built: None,
        }
    }

    /// What the sampler sees: the name if it may read it, else `""` (nothing is built).
    fn for_sampler(&mut self, uses_name: bool) -> &str {
        if !uses_name {
            return "";
        }
        let build = &mut self.build;
        self.built
            .get_or_insert_with(|| build.take().map_or(Cow::Borrowed(""), |f| f()))
    }

    fn into_name(self) -> Cow<'static, str> {
        match (self.built, self.build) {
            (Some(name), _) => name,
            (None, Some(f)) => f(),
            (None, None) => Cow::Borrowed(""),
        }
    }
}

/// A new random, non-zero trace id (all 128 bits random, so the W3C random flag holds).
#[inline]
pub fn new_trace_id() -> TraceId {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return TraceId(id);
        }
    }
}

/// A new random, non-zero span id.
#[inline]
pub fn new_span_id() -> SpanId {
    SpanId(fastrand::u64(1..))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::carrier::Pairs;
    use crate::propagation::Format;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;

    fn tracer(sampler: Sampler) -> Tracer {
        Tracer::new()
            .with_propagators(Propagators::all())
            .with_sampler(sampler)
    }

    fn run(t: &Tracer, headers: &[(&str, &str)]) -> (TraceContext, Origin, tracewire_test::Spans) {
        let cap = tracewire_test::capture();
        let root = t.start_root(
            "GET /x",
            SpanKind::Server,
            &Pairs::from_pairs(headers.iter().copied()),
        );
        let (cx, origin) = (root.context.clone(), root.origin.clone());
        drop(root);
        (cx, origin, cap.finish())
    }

    /// A rule that samples spans whose name starts with `GET`.
    struct GetsOnly;

    impl crate::sampling::ShouldSample for GetsOnly {
        fn should_sample(&self, _: Option<&TraceContext>, _: TraceId, name: &str) -> bool {
            name.starts_with("GET")
        }
        fn description(&self) -> String {
            "GetsOnly".into()
        }
    }

    #[test]
    fn lazy_name_is_built_once_and_only_when_needed() {
        let built = std::cell::Cell::new(0);
        let name = || {
            built.set(built.get() + 1);
            Cow::Borrowed("GET /lazy")
        };
        let carrier = Pairs::from_pairs([("traceparent", TP)]);
        // Built-in samplers never read the name: unsampled, it is never built.
        let root = tracer(Sampler::AlwaysOff).start_root_lazy(name, SpanKind::Server, &carrier);
        assert!(!root.context.is_sampled());
        assert_eq!(built.get(), 0);
        // Sampled: built once, for the span.
        let cap = tracewire_test::capture();
        drop(tracer(Sampler::AlwaysOn).start_root_lazy(name, SpanKind::Server, &carrier));
        assert_eq!(built.get(), 1);
        assert_eq!(
            cap.finish().tree(&[]),
            "GET /lazy [server] (parent: 00f067aa0ba902b7)\n"
        );
        // A custom rule reads it (also under parent-based), and the span reuses it.
        for sampler in [
            Sampler::custom(GetsOnly),
            Sampler::parent_based(Sampler::custom(GetsOnly)),
        ] {
            assert!(sampler.uses_name());
            built.set(0);
            let root =
                tracer(sampler.clone()).start_root_lazy(name, SpanKind::Server, &Pairs::new());
            assert!(root.context.is_sampled());
            drop(root);
            assert_eq!(built.get(), 1);
            let root = tracer(sampler).start_root_lazy(
                || Cow::Borrowed("POST /x"),
                SpanKind::Server,
                &Pairs::new(),
            );
            assert!(!root.context.is_sampled(), "the rule saw the real name");
        }
        assert!(!Sampler::parent_based(Sampler::AlwaysOn).uses_name());
    }

    fn outbound(t: &Tracer, cx: &TraceContext) -> Pairs {
        let mut out = Pairs::new();
        t.inject(cx, &mut out);
        out
    }

    #[test]
    fn continues_a_sampled_remote_parent() {
        let t = tracer(Sampler::default());
        let (cx, origin, spans) = run(
            &t,
            &[
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                ),
                ("tracestate", "a=1"),
                ("baggage", "k=v"),
            ],
        );
        assert_eq!(origin, Origin::Continued);
        assert_eq!(
            spans.tree(&[
                "tracewire.parent.remote",
                "tracewire.tracestate",
                "tracewire.trace_flags"
            ]),
            "GET /x [server] (parent: 00f067aa0ba902b7) tracewire.parent.remote=true tracewire.tracestate=a=1 tracewire.trace_flags=03\n"
        );
        let rec = &spans.records[0];
        assert_eq!(rec.trace_id, TraceId(TRACE));
        assert_eq!(
            cx.span_id, rec.span_id,
            "the context names the recorded span"
        );
        assert!(cx.is_sampled() && cx.random && !cx.remote);
        assert_eq!(cx.baggage.get("k"), Some("v"));
        let out = outbound(&t, &cx);
        assert_eq!(
            out.get("traceparent").unwrap(),
            format!("00-{TRACE:032x}-{:016x}-03", rec.span_id.0)
        );
        assert_eq!(out.get("tracestate"), Some("a=1"));
    }

    #[test]
    fn nothing_inbound_starts_a_random_sampled_root() {
        let (cx, origin, spans) = run(&tracer(Sampler::AlwaysOn), &[("traceparent", "garbage")]);
        assert_eq!(origin, Origin::NewRoot);
        assert_eq!(spans.tree(&[]), "GET /x [server]\n");
        assert_eq!(spans.records[0].parent_id, SpanId(0));
        assert!(cx.random, "new trace ids are fully random");
        assert_eq!(cx.flags(), 0x03);
    }

    #[test]
    fn unsampled_records_nothing_but_propagates_00() {
        let t = tracer(Sampler::AlwaysOff);
        let (cx, origin, spans) = run(&t, &[]);
        assert_eq!(origin, Origin::NewRoot);
        assert!(spans.is_empty());
        assert!(cx.is_valid() && !cx.is_sampled());
        assert!(
            outbound(&t, &cx)
                .get("traceparent")
                .unwrap()
                .ends_with("-02"),
            "random set, sampled clear"
        );
        // Continuing an unsampled parent keeps its trace id and sends -00 on.
        let (cx, _, spans) = run(
            &tracer(Sampler::default()),
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            )],
        );
        assert!(spans.is_empty());
        let tp = outbound(&t, &cx).get("traceparent").unwrap().to_owned();
        assert!(
            tp.starts_with(&format!("00-{TRACE:032x}-")) && tp.ends_with("-00"),
            "{tp}"
        );
        assert_ne!(
            cx.span_id,
            SpanId(0x00f067aa0ba902b7),
            "a fresh span id for the non-recording span"
        );
    }

    #[test]
    fn parent_based_follows_remote_decision() {
        let (cx, ..) = run(
            &tracer(Sampler::parent_based(Sampler::AlwaysOff)),
            &[("traceparent", TP)],
        );
        assert!(
            cx.is_sampled(),
            "sampled parent wins over an always-off root sampler"
        );
        let (cx, ..) = run(&tracer(Sampler::AlwaysOff), &[("traceparent", TP)]);
        assert!(!cx.is_sampled(), "a non-parent-based sampler decides alone");
    }

    #[test]
    fn b3_deferred_goes_to_the_root_sampler() {
        let b3 = [("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")];
        let (cx, _, spans) = run(&tracer(Sampler::parent_based(Sampler::AlwaysOn)), &b3);
        assert!(cx.is_sampled());
        assert_eq!(
            spans.tree(&[]),
            "GET /x [server] (parent: e457b5a2e4d86bd1)\n"
        );
        let (cx, _, spans) = run(&tracer(Sampler::parent_based(Sampler::AlwaysOff)), &b3);
        assert!(!cx.is_sampled() && spans.is_empty());
        assert_eq!(
            cx.trace_id,
            TraceId(0x80f198ee56343ba864fe8b2a57d3eff7),
            "still the same trace"
        );
    }

    #[test]
    fn debug_always_samples() {
        let (cx, ..) = run(
            &tracer(Sampler::AlwaysOff),
            &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")],
        );
        assert_eq!(cx.sampling, Sampling::Debug);
        let t = tracer(Sampler::AlwaysOff);
        assert!(outbound(&t, &cx).get("b3").unwrap().ends_with("-d"));
        let (cx, origin, spans) = run(&t, &[("jaeger-debug-id", "dbg-1")]);
        assert_eq!((origin, cx.sampling), (Origin::NewRoot, Sampling::Debug));
        assert_eq!(
            spans.tree(&["jaeger.debug_id"]),
            "GET /x [server] jaeger.debug_id=dbg-1\n"
        );
    }

    #[test]
    fn bare_sampling_decision_is_honoured_except_at_an_untrusted_edge() {
        let (cx, origin, spans) = run(&tracer(Sampler::AlwaysOn), &[("b3", "0")]);
        assert_eq!(origin, Origin::NewRoot);
        assert!(!cx.is_sampled() && spans.is_empty());
        let edge = tracer(Sampler::AlwaysOn).force_new_trace(true);
        let (cx, ..) = run(&edge, &[("b3", "0")]);
        assert!(cx.is_sampled(), "force_new_trace ignores inbound sampling");
    }

    #[test]
    fn force_new_trace_links_the_inbound_context() {
        let edge = tracer(Sampler::AlwaysOn).force_new_trace(true);
        let (cx, origin, spans) = run(
            &edge,
            &[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("baggage", "k=v"),
            ],
        );
        let Origin::NewRootLinked(inbound) = origin else {
            panic!("expected a linked root")
        };
        assert_eq!(inbound.trace_id, TraceId(TRACE));
        assert_ne!(cx.trace_id, TraceId(TRACE));
        assert!(
            cx.trace_state.is_empty(),
            "a new trace does not inherit tracestate"
        );
        assert_eq!(
            cx.baggage.get("k"),
            Some("v"),
            "baggage kept unless dropped"
        );
        let rec = &spans.records[0];
        assert_eq!(rec.parent_id, SpanId(0));
        assert_eq!(
            rec.links,
            vec![SpanContext {
                trace_id: TraceId(TRACE),
                span_id: SpanId(0x00f067aa0ba902b7),
                sampled: true
            }]
        );
        let (cx, ..) = run(
            &edge.drop_inbound_baggage(true),
            &[("traceparent", TP), ("baggage", "k=v")],
        );
        assert!(cx.baggage.is_empty());
    }

    #[test]
    fn only_configured_formats_are_read() {
        let t = Tracer::new()
            .with_propagators(Propagators::new([Format::B3]))
            .with_sampler(Sampler::AlwaysOn);
        let (_, origin, _) = run(&t, &[("traceparent", TP)]);
        assert_eq!(origin, Origin::NewRoot);
    }

    #[test]
    fn children_nest_under_the_local_parent_or_the_attached_context() {
        let t = tracer(Sampler::AlwaysOn);
        let cap = tracewire_test::capture();
        let root = t.start_root(
            "GET /x",
            SpanKind::Server,
            &Pairs::from_pairs([("traceparent", TP)]),
        );
        let root_cx = root.context.clone();
        let injected = {
            let _in = root.enter();
            let child = t.start_child("GET", SpanKind::Client);
            let cx = child.context.clone().unwrap();
            assert_eq!(cx.trace_id, root_cx.trace_id);
            drop(child);
            cx
        };
        // Work running elsewhere (another task, no fastrace local parent) with only the context
        // attached still gets a correctly parented span.
        let detached = std::thread::spawn({
            let t = t.clone();
            let cx = root_cx.clone();
            move || {
                let _c = cx.attach();
                let child = t.start_child("PUBLISH", SpanKind::Producer);
                child.context.unwrap()
            }
        })
        .join()
        .unwrap();
        drop(root);
        let spans = cap.finish();
        assert_eq!(
            spans.tree(&[]),
            "GET /x [server] (parent: 00f067aa0ba902b7)\n  GET [client]\n  PUBLISH [producer]\n"
        );
        assert_eq!(
            spans.expect("GET").span_id,
            injected.span_id,
            "the injected id is the client span's"
        );
        assert_eq!(spans.expect("PUBLISH").span_id, detached.span_id);
    }

    #[test]
    fn a_child_span_carries_its_own_flags_and_tracestate() {
        let t = tracer(Sampler::AlwaysOn);
        let cap = tracewire_test::capture();
        let root = t.start_root(
            "GET /x",
            SpanKind::Server,
            &Pairs::from_pairs([("traceparent", TP), ("tracestate", "rojo=1")]),
        );
        {
            let _in = root.enter();
            drop(t.start_child("GET", SpanKind::Client));
        }
        drop(root);
        let spans = cap.finish();
        let client = spans.expect("GET");
        assert_eq!(prop(client, "tracewire.tracestate"), Some("rojo=1"));
        assert_eq!(prop(client, "tracewire.trace_flags"), Some("01"));
    }

    #[test]
    fn children_of_unsampled_or_absent_contexts() {
        let t = tracer(Sampler::AlwaysOff);
        let none = t.start_child("GET", SpanKind::Client);
        assert!(
            none.context.is_none(),
            "no current trace, nothing to inject"
        );
        let root = t.start_root("GET /x", SpanKind::Server, &Pairs::new());
        let _in = root.enter();
        let child = t.start_child("GET", SpanKind::Client);
        let cx = child.context.unwrap();
        assert!(!cx.is_sampled());
        assert_eq!(cx.trace_id, root.context.trace_id);
        assert_ne!(cx.span_id, root.context.span_id);
    }

    fn prop<'a>(rec: &'a fastrace::collector::SpanRecord, key: &str) -> Option<&'a str> {
        tracewire_test::property(rec, key)
    }

    #[test]
    fn parent_and_link_continues_the_message_context_and_links_it() {
        let t = tracer(Sampler::AlwaysOn);
        let cap = tracewire_test::capture();
        let extracted = t.extract(&Pairs::from_pairs([("traceparent", TP)]));
        let extra = TraceContext::new(TraceId(0xbeef), SpanId(0x77), true);
        let root = t.start_root_with(
            || Cow::Borrowed("process q"),
            SpanKind::Consumer,
            extracted,
            Inbound::ParentAndLink,
            || vec![Link::new(&extra).with_attribute("messaging.message.id", "m-2")],
        );
        assert_eq!(root.origin, Origin::Continued);
        assert_eq!(root.context.trace_id, TraceId(TRACE));
        drop(root);
        let spans = cap.finish();
        assert_eq!(
            spans.tree(&[]),
            "process q [consumer] (parent: 00f067aa0ba902b7)\n"
        );
        let rec = &spans.records[0];
        assert_eq!(
            rec.links,
            [
                SpanContext::new(TraceId(TRACE), SpanId(0x00f067aa0ba902b7)),
                SpanContext::new(TraceId(0xbeef), SpanId(0x77)),
            ]
        );
        let remote = crate::reserved::link_remote(SpanId(0x00f067aa0ba902b7));
        assert_eq!(
            prop(rec, &remote.0),
            None,
            "a link to the remote parent is remote by the parent's flag"
        );
        assert_eq!(prop(rec, "tracewire.parent.remote"), Some("true"));
        let key = crate::reserved::link_attribute_key(SpanId(0x77), "messaging.message.id");
        assert_eq!(prop(rec, &key), Some("m-2"));
    }

    #[test]
    fn inbound_link_starts_a_linked_trace_for_one_span() {
        let t = tracer(Sampler::AlwaysOn);
        let cap = tracewire_test::capture();
        let root = t.start_root_with(
            || Cow::Borrowed("process q"),
            SpanKind::Consumer,
            t.extract(&Pairs::from_pairs([("traceparent", TP), ("b3", "0")])),
            Inbound::Link,
            Vec::new,
        );
        assert!(
            matches!(root.origin, Origin::NewRootLinked(ref cx) if cx.trace_id == TraceId(TRACE))
        );
        assert_ne!(root.context.trace_id, TraceId(TRACE));
        drop(root);
        let spans = cap.finish();
        assert_eq!(spans.records[0].parent_id, SpanId(0));
        assert_eq!(spans.records[0].links.len(), 1);
        // Nothing valid inbound: a plain new root, no link.
        let root = t.start_root_with(
            || Cow::Borrowed("process q"),
            SpanKind::Consumer,
            Extracted::default(),
            Inbound::ParentAndLink,
            Vec::new,
        );
        assert_eq!(root.origin, Origin::NewRoot);
    }

    #[test]
    fn links_are_built_only_for_recorded_spans() {
        let t = tracer(Sampler::AlwaysOff);
        let root = t.start_root_with(
            || unreachable!("unsampled: no name"),
            SpanKind::Consumer,
            Extracted::default(),
            Inbound::ParentAndLink,
            || unreachable!("unsampled: no links"),
        );
        let _in = root.enter();
        let child = t.start_child_with(
            || unreachable!("unsampled: no name"),
            SpanKind::Client,
            || unreachable!("unsampled: no links"),
        );
        assert!(!child.context.unwrap().is_sampled());
    }

    #[test]
    fn child_or_root_continues_the_current_trace_or_starts_one() {
        let t = tracer(Sampler::AlwaysOn);
        let cap = tracewire_test::capture();
        let created = TraceContext::new(TraceId(0xabc), SpanId(0xdef), true);
        let send = t.start_child_or_root(
            || Cow::Borrowed("send q"),
            SpanKind::Client,
            || vec![Link::new(&created)],
        );
        let cx = send.context.clone().unwrap();
        assert!(cx.is_sampled() && cx.trace_id != TraceId(0xabc));
        {
            let _in = fastrace::Span::set_local_parent(&send.span);
            let _cx = cx.clone().attach();
            let inner =
                t.start_child_or_root(|| Cow::Borrowed("create q"), SpanKind::Producer, Vec::new);
            assert_eq!(inner.context.unwrap().trace_id, cx.trace_id);
        }
        drop(send);
        let spans = cap.finish();
        assert_eq!(spans.tree(&[]), "send q [client]\n  create q [producer]\n");
        assert_eq!(
            spans.expect("send q").links,
            [SpanContext::new(TraceId(0xabc), SpanId(0xdef))]
        );
    }

    #[tokio::test]
    async fn instrument_attaches_context_across_awaits() {
        let t = tracer(Sampler::AlwaysOff);
        let root = t.start_root(
            "GET /x",
            SpanKind::Server,
            &Pairs::from_pairs([("traceparent", TP)]),
        );
        let expected = root.context.clone();
        let seen = root
            .instrument(async {
                tokio::task::yield_now().await;
                TraceContext::current()
            })
            .await;
        assert_eq!(seen, Some(expected));
        assert_eq!(TraceContext::current(), None);
    }
}
