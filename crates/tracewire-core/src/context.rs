//! [`TraceContext`]: everything one hop hands the next, and where it lives while a request runs.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use fastrace::collector::{SpanContext, SpanId, TraceId};

use crate::baggage::Baggage;
use crate::tracestate::TraceState;

/// The sampling decision a context carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sampling {
    /// The upstream made no decision (B3 without `X-B3-Sampled`, `b3: {trace}-{span}`): the
    /// local sampler decides, as if for a new root. Never means "unsampled".
    Deferred,
    /// Not sampled: no spans are recorded, the context still propagates (`-00`).
    NotSampled,
    /// Sampled.
    Sampled,
    /// Sampled and flagged for debugging (B3 `d` / `X-B3-Flags: 1`, Jaeger flag `0x02`).
    /// Debug always implies sampled.
    Debug,
}

impl Sampling {
    /// True for [`Sampling::Sampled`] and [`Sampling::Debug`].
    pub const fn is_sampled(self) -> bool {
        matches!(self, Sampling::Sampled | Sampling::Debug)
    }

    /// `Sampled` or `NotSampled`.
    pub const fn from_bool(sampled: bool) -> Sampling {
        if sampled {
            Sampling::Sampled
        } else {
            Sampling::NotSampled
        }
    }
}

/// W3C trace-flags bit: sampled.
pub const FLAG_SAMPLED: u8 = 0x01;
/// W3C trace-flags bit (Level 2): the right-most 7 bytes of the trace id are random.
pub const FLAG_RANDOM: u8 = 0x02;

/// The propagated identity of one span: what fastrace's [`SpanContext`] holds (trace id, span
/// id, sampled) plus everything it cannot hold.
///
/// Cloning is cheap: `tracestate` and baggage are shared behind `Arc`s and empty ones do not
/// allocate. Conversions to and from [`SpanContext`] copy three words.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The 128-bit trace id (never zero in a valid context).
    pub trace_id: TraceId,
    /// The 64-bit span id (never zero in a valid context).
    pub span_id: SpanId,
    /// The sampling decision.
    pub sampling: Sampling,
    /// W3C Level 2 random flag: the trace id's right-most 7 bytes are random.
    pub random: bool,
    /// True when this context was extracted from a carrier (its span lives in another process).
    pub remote: bool,
    /// The validated W3C `tracestate`.
    pub trace_state: TraceState,
    /// W3C baggage (also fed by Jaeger `uberctx-*`).
    pub baggage: Baggage,
}

impl TraceContext {
    /// A local context with the given ids, sampled or not, no `tracestate` or baggage.
    pub fn new(trace_id: TraceId, span_id: SpanId, sampled: bool) -> Self {
        TraceContext {
            trace_id,
            span_id,
            sampling: Sampling::from_bool(sampled),
            random: false,
            remote: false,
            trace_state: TraceState::empty(),
            baggage: Baggage::empty(),
        }
    }

    /// True when both ids are non-zero.
    pub fn is_valid(&self) -> bool {
        self.trace_id.0 != 0 && self.span_id.0 != 0
    }

    /// True when the context is sampled (including debug).
    pub fn is_sampled(&self) -> bool {
        self.sampling.is_sampled()
    }

    /// The W3C trace-flags byte (`sampled` and `random` bits only).
    pub fn flags(&self) -> u8 {
        (if self.is_sampled() { FLAG_SAMPLED } else { 0 })
            | (if self.random { FLAG_RANDOM } else { 0 })
    }

    /// The same context for a different span of the same trace.
    pub fn with_span_id(&self, span_id: SpanId) -> Self {
        TraceContext {
            span_id,
            remote: false,
            ..self.clone()
        }
    }

    /// The current trace context: the one attached to this thread or task by
    /// [`TraceContext::attach`] / [`FutureExt::with_trace_context`], with its span id replaced
    /// by fastrace's current local parent when that belongs to the same trace (so an outgoing
    /// call made inside a `#[fastrace::trace]` function is the child of that function's span).
    /// Falls back to fastrace's local parent alone when nothing is attached.
    pub fn current() -> Option<TraceContext> {
        let local = SpanContext::current_local_parent();
        CURRENT.with(|c| {
            let attached = c.borrow();
            match (attached.as_ref(), local) {
                (Some(cx), Some(l)) if l.trace_id == cx.trace_id && l.span_id != cx.span_id => {
                    Some(cx.with_span_id(l.span_id))
                }
                (Some(cx), _) => Some(cx.clone()),
                (None, Some(l)) => Some(TraceContext::from(l)),
                (None, None) => None,
            }
        })
    }

    /// Calls `f` with the context attached to this thread ([`attach`](TraceContext::attach),
    /// [`FutureExt::with_trace_context`]), without cloning it and without fastrace's local
    /// parent: for hot paths that only ask whether there is a trace and whether it is sampled
    /// (a `tracing` span deciding whether to record). `f` must not attach a context itself.
    ///
    /// ```
    /// use tracewire_core::{SpanId, TraceContext, TraceId};
    ///
    /// assert_eq!(TraceContext::with_attached(|cx| cx.is_some()), false);
    /// let _g = TraceContext::new(TraceId(1), SpanId(2), false).attach();
    /// assert_eq!(TraceContext::with_attached(|cx| cx.map(TraceContext::is_sampled)), Some(false));
    /// ```
    pub fn with_attached<R>(f: impl FnOnce(Option<&TraceContext>) -> R) -> R {
        // During thread teardown the slot is gone: nothing is attached.
        if CURRENT.try_with(|_| ()).is_err() {
            return f(None);
        }
        // `f` runs under a shared borrow: it reads, it must not attach.
        CURRENT.with(|c| match c.try_borrow() {
            Ok(cx) => f(cx.as_ref()),
            Err(_) => f(None),
        })
    }

    /// Makes this the current context on this thread until the guard drops.
    pub fn attach(self) -> ContextGuard {
        let prev = CURRENT.with(|c| c.replace(Some(self)));
        ContextGuard {
            prev,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl From<SpanContext> for TraceContext {
    fn from(sc: SpanContext) -> Self {
        TraceContext::new(sc.trace_id, sc.span_id, sc.sampled)
    }
}

impl From<&TraceContext> for SpanContext {
    fn from(cx: &TraceContext) -> Self {
        SpanContext {
            trace_id: cx.trace_id,
            span_id: cx.span_id,
            sampled: cx.is_sampled(),
        }
    }
}

impl From<TraceContext> for SpanContext {
    fn from(cx: TraceContext) -> Self {
        SpanContext::from(&cx)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

/// Restores the previously attached context when dropped. Not `Send`: drop it on the thread
/// that created it.
#[must_use = "the context is detached as soon as the guard drops"]
pub struct ContextGuard {
    prev: Option<TraceContext>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // `try_with`: during thread teardown the slot may be gone; there is nothing to restore.
        let _ = CURRENT.try_with(|c| c.replace(prev));
    }
}

pin_project_lite::pin_project! {
    /// A future that runs with a [`TraceContext`] attached on every poll.
    /// Made by [`FutureExt::with_trace_context`].
    pub struct WithContext<F> {
        #[pin]
        inner: F,
        cx: Option<TraceContext>,
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Swap the context in for the poll and back out after: no clone, no refcount traffic,
        // restored even if the poll panics (see `scope`).
        scope(this.cx, || this.inner.poll(task))
    }
}

/// Holds the slot of [`scope`] while its context is attached (the slot holding what was
/// attached before), and swaps the two back when dropped.
struct SwapBack<'a> {
    slot: &'a mut Option<TraceContext>,
}

impl Drop for SwapBack<'_> {
    #[inline]
    fn drop(&mut self) {
        // A swap, not a `replace` and an assignment: nothing is dropped, so no drop glue runs.
        if CURRENT
            .try_with(|c| std::mem::swap(&mut *c.borrow_mut(), self.slot))
            .is_err()
        {
            // Thread teardown: the thread's slot is gone with the context it held; `slot`
            // is left empty, as before the call it lent its context.
            *self.slot = None;
        }
    }
}

/// Attaching trace contexts to futures.
pub trait FutureExt: Future + Sized {
    /// Runs this future with `cx` as the current [`TraceContext`].
    fn with_trace_context(self, cx: TraceContext) -> WithContext<Self> {
        WithContext {
            inner: self,
            cx: Some(cx),
        }
    }

    /// Runs this future with the context current *now* — the helper for work handed to
    /// `tokio::spawn` or another task, which would otherwise start with no context:
    ///
    /// ```
    /// use fastrace::prelude::*;
    /// use tracewire_core::context::FutureExt as _;
    ///
    /// # async fn outgoing_call() {}
    /// # async fn handler() {
    /// // Both the fastrace parent and the trace context (tracestate, baggage, sampling)
    /// // follow the spawned work:
    /// tokio::spawn(
    ///     outgoing_call()
    ///         .in_span(Span::enter_with_local_parent("background"))
    ///         .with_current_trace_context(),
    /// );
    /// # }
    /// ```
    fn with_current_trace_context(self) -> WithContext<Self> {
        WithContext {
            inner: self,
            cx: CURRENT.with(|c| c.borrow().clone()),
        }
    }
}

impl<F: Future> FutureExt for F {}

/// Runs `f` with the context in `slot` attached, without cloning it: the context is moved in
/// for the call and back into `slot` after (what [`WithContext`] does on every poll). For code
/// that keeps a context across many polls outside a future — a response body, a stream.
/// `None` in `slot` runs `f` with no context attached.
#[inline]
pub fn scope<R>(slot: &mut Option<TraceContext>, f: impl FnOnce() -> R) -> R {
    // Swapped in (the slot keeps what was attached before) and swapped back in a guard, also
    // on unwind (as in `WithContext::poll`): two swaps of the context, no clone, no drop.
    CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), slot));
    let _restore = SwapBack { slot };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(t: u128) -> TraceContext {
        TraceContext::new(TraceId(t), SpanId(7), true)
    }

    #[test]
    fn attach_nests_and_restores() {
        assert_eq!(TraceContext::current(), None);
        {
            let _a = cx(1).attach();
            assert_eq!(TraceContext::current().unwrap().trace_id, TraceId(1));
            {
                let _b = cx(2).attach();
                assert_eq!(TraceContext::current().unwrap().trace_id, TraceId(2));
            }
            assert_eq!(TraceContext::current().unwrap().trace_id, TraceId(1));
        }
        assert_eq!(TraceContext::current(), None);
    }

    #[test]
    fn scope_moves_the_context_in_and_back() {
        let _outer = cx(1).attach();
        let mut slot = Some(cx(2));
        let seen = scope(&mut slot, || TraceContext::current().map(|c| c.trace_id));
        assert_eq!(seen, Some(TraceId(2)));
        assert_eq!(slot.map(|c| c.trace_id), Some(TraceId(2)), "given back");
        assert_eq!(
            TraceContext::current().unwrap().trace_id,
            TraceId(1),
            "restored"
        );
        let mut empty = None;
        assert_eq!(scope(&mut empty, TraceContext::current), None);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scope(&mut Some(cx(3)), || panic!("boom"))
        }));
        assert!(caught.is_err());
        assert_eq!(
            TraceContext::current().unwrap().trace_id,
            TraceId(1),
            "restored on unwind"
        );
    }

    #[test]
    fn flags_and_conversions() {
        let mut c = cx(1);
        c.random = true;
        assert_eq!(c.flags(), 0x03);
        c.sampling = Sampling::NotSampled;
        assert_eq!(c.flags(), 0x02);
        let sc = SpanContext::from(&c);
        assert_eq!(
            (sc.trace_id, sc.span_id, sc.sampled),
            (TraceId(1), SpanId(7), false)
        );
        assert_eq!(TraceContext::from(sc).trace_id, TraceId(1));
    }

    #[tokio::test]
    async fn context_follows_spawned_work() {
        let task = async {
            tokio::spawn(
                async { TraceContext::current().map(|c| c.trace_id) }.with_current_trace_context(),
            )
            .await
            .unwrap()
        }
        .with_trace_context(cx(42));
        assert_eq!(task.await, Some(TraceId(42)));
        // Without the helper the spawned task sees nothing.
        let task = async {
            tokio::spawn(async { TraceContext::current() })
                .await
                .unwrap()
        }
        .with_trace_context(cx(42));
        assert_eq!(task.await, None);
        assert_eq!(TraceContext::current(), None);
    }

    #[test]
    fn a_panicking_poll_does_not_leak_its_context() {
        let fut = async { panic!("handler bug") }.with_trace_context(cx(5));
        let mut fut = std::pin::pin!(fut);
        let waker = std::task::Waker::noop();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = fut.as_mut().poll(&mut Context::from_waker(waker));
        }));
        assert!(caught.is_err());
        assert_eq!(TraceContext::current(), None);
    }

    #[test]
    fn fastrace_local_parent_refines_span_id() {
        use fastrace::prelude::*;
        let root_cx = TraceContext::new(TraceId(9), SpanId(1), true);
        let root = Span::root("root", SpanContext::from(&root_cx));
        let root_id = SpanContext::from_span(&root).unwrap().span_id;
        let _g = root.set_local_parent();
        let _c = root_cx.with_span_id(root_id).attach();
        let child = LocalSpan::enter_with_local_parent("child");
        let now = TraceContext::current().unwrap();
        assert_eq!(now.trace_id, TraceId(9));
        assert_ne!(now.span_id, root_id);
        drop(child);
        assert_eq!(TraceContext::current().unwrap().span_id, root_id);
    }
}
