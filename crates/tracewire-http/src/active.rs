//! The stacking guard: whether a tracewire server span's request is being handled on this
//! thread, so that a second server integration inside the first makes no second span.

use std::cell::Cell;

thread_local! {
    /// True while a tracewire server span's request is handled on this thread: set around
    /// the inner service's `call` and every poll of its future (see
    /// [`ServerSpan::scope`](crate::ServerSpan::scope)).
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the flag is set on this thread.
#[inline]
pub(crate) fn active() -> bool {
    ACTIVE.try_with(Cell::get).unwrap_or(false)
}

/// Sets the flag and restores the previous value when dropped (also on unwind).
pub(crate) struct ActiveGuard {
    prev: bool,
}

impl ActiveGuard {
    #[inline]
    pub(crate) fn enter() -> Self {
        ActiveGuard {
            prev: ACTIVE.try_with(|a| a.replace(true)).unwrap_or(false),
        }
    }
}

impl Drop for ActiveGuard {
    #[inline]
    fn drop(&mut self) {
        let _ = ACTIVE.try_with(|a| a.set(self.prev));
    }
}
