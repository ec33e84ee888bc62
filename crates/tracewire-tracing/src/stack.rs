//! The `tracing` spans entered on this thread, with what entering them set: fastrace's local
//! parent (so fastrace spans opened inside nest under them) and tracewire's [`TraceContext`]
//! (so outgoing calls propagate them).
//!
//! fastrace's [`LocalParentGuard`] and tracewire's [`ContextGuard`] must be dropped in the
//! reverse order of their creation, on their thread. `tracing` promises neither: a span may be
//! exited out of order, or on another thread (a guard held across an `.await`). So an exit
//! only marks its entry; entries leave the stack from the top, once exited, and only when what
//! they set is still what is current (nothing someone else set sits above it). An exit on a
//! thread that did not enter the span finds nothing and does nothing — as the registry's own
//! per-thread span stack does.

use std::cell::RefCell;

use fastrace::collector::{SpanContext, SpanId};
use fastrace::local::LocalParentGuard;
use tracewire_core::TraceContext;
use tracewire_core::context::ContextGuard;

/// One entered span.
pub(crate) struct Entered {
    /// The `tracing` span id.
    pub(crate) id: u64,
    /// The fastrace span made the local parent (when `parent` is set).
    pub(crate) span_id: SpanId,
    /// The span id of the context attached (when `context` is set).
    pub(crate) context_span_id: SpanId,
    pub(crate) exited: bool,
    // Dropped in this order: the context, then the local parent (the reverse of entering).
    // The context is rarely attached (a span entered away from its trace's task): boxed, so
    // entries stay small to push and pop.
    pub(crate) context: Option<Box<ContextGuard>>,
    pub(crate) parent: Option<LocalParentGuard>,
}

impl Entered {
    /// True when what this entry set is still current on this thread, so dropping its guards
    /// restores exactly what it replaced.
    fn is_on_top(&self) -> bool {
        let parent_ok = self.parent.is_none()
            || SpanContext::current_local_parent().is_some_and(|sc| sc.span_id == self.span_id);
        parent_ok
            && (self.context.is_none()
                || TraceContext::with_attached(|cx| {
                    cx.is_some_and(|cx| cx.span_id == self.context_span_id)
                }))
    }
}

struct Stack(Vec<Entered>);

impl Drop for Stack {
    fn drop(&mut self) {
        // At thread exit: last in, first out.
        while let Some(top) = self.0.pop() {
            drop(top);
        }
    }
}

thread_local! {
    static ENTERED: RefCell<Stack> = const { RefCell::new(Stack(Vec::new())) };
}

/// Records an entered span.
pub(crate) fn push(entered: Entered) {
    let refused = ENTERED.try_with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            s.0.push(entered);
            None
        }
        Err(_) => Some(entered),
    });
    // Not recorded (thread teardown, re-entrance): undo at once, in order.
    if let Ok(Some(entered)) = refused {
        drop(entered);
    }
}

/// Marks the innermost entry of span `id` exited, then drops the exited entries that are on
/// top. Never panics; an unknown id does nothing.
pub(crate) fn exit(id: u64) {
    let _ = ENTERED.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut()
            && let Some(e) = s.0.iter_mut().rev().find(|e| e.id == id && !e.exited)
        {
            e.exited = true;
        }
    });
    unwind();
}

/// True when the innermost entry on this thread's stack is span `id`, not exited.
pub(crate) fn innermost_is(id: u64) -> bool {
    ENTERED
        .try_with(|s| {
            s.try_borrow()
                .is_ok_and(|s| s.0.last().is_some_and(|e| e.id == id && !e.exited))
        })
        .unwrap_or(false)
}

/// True when this thread has entered spans still on its stack.
pub(crate) fn is_empty() -> bool {
    ENTERED
        .try_with(|s| s.try_borrow().map_or(true, |s| s.0.is_empty()))
        .unwrap_or(true)
}

/// Drops exited entries from the top while they are on top (each drop changes what is current,
/// so the next one is checked after it).
pub(crate) fn unwind() {
    loop {
        let top = ENTERED.try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            let top = s.0.last()?;
            if top.exited && top.is_on_top() {
                s.0.pop()
            } else {
                None
            }
        });
        match top {
            // Dropped outside the borrow: the guards touch fastrace's and tracewire's state.
            Ok(Some(entered)) => drop(entered),
            _ => return,
        }
    }
}
