//! The current heap of this thread, used by `Gc::new`.
//!
//! `Heap::enter` makes a heap current for a scope; otherwise a default heap,
//! created on first use and dropped when the thread exits, is current.

use core::cell::{Cell, OnceCell};
use core::ptr::NonNull;

use super::inner::HeapInner;
use super::Heap;

thread_local! {
    static CURRENT: Cell<Option<NonNull<HeapInner>>> = const { Cell::new(None) };
    static DEFAULT: OnceCell<Heap> = const { OnceCell::new() };
}

/// Runs `f` with the current heap.
pub(crate) fn with<R>(f: impl FnOnce(&HeapInner) -> R) -> R {
    match CURRENT.with(Cell::get) {
        // SAFETY: a heap is current only inside `Heap::enter`, which borrows it.
        Some(inner) => f(unsafe { inner.as_ref() }),
        None => DEFAULT.with(|heap| f(heap.get_or_init(Heap::new).inner())),
    }
}

/// Makes `inner` current until the returned guard drops.
pub(crate) fn enter(inner: NonNull<HeapInner>) -> EnterGuard {
    EnterGuard {
        previous: CURRENT.with(|current| current.replace(Some(inner))),
    }
}

/// Restores the previously current heap.
pub(crate) struct EnterGuard {
    previous: Option<NonNull<HeapInner>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}
