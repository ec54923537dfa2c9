//! `HeapInner`: the state shared by a `Heap` and every object in it.
//!
//! It owns the allocator, the young-generation vector of tracked objects, the
//! weak side table and the deferred-release queue. Its address is stored as
//! the allocator's owner data, so any object finds it by masking its own
//! address (small objects) or from its large-block header.
//!
//! # Lifetime
//!
//! `HeapInner` is freed when the `Heap` has been dropped *and* its last block
//! (object or weak record) is released, whichever comes last. `live_blocks`
//! counts the blocks; `heap_alive` says whether the `Heap` value exists.
//!
//! # Re-entrancy
//!
//! Dropping a value runs user code, which may drop other handles of the same
//! heap, allocate, or upgrade weak references. So every field is a `Cell` or
//! an `UnsafeCell` that is borrowed only inside a short method that calls no
//! user code (`with_young`, `with_weak_table`, `with_deferred`).

use core::cell::{Cell, UnsafeCell};
use core::ptr::NonNull;

use crate::alloc::Allocator;
use crate::object::TrackedHeader;

use super::super::handle::weak::WeakSlot;

/// Nesting depth of releases past which value drops are queued instead of
/// run recursively (CPython's trashcan uses 50).
pub const MAX_RELEASE_DEPTH: u32 = 48;

/// A release waiting in the queue: the value address and the function that
/// drops the value and frees the block.
pub(crate) type Deferred = (NonNull<u8>, unsafe fn(NonNull<u8>));

/// A heap kept forever because it holds immortal objects.
struct ImmortalHeap(#[allow(dead_code)] NonNull<HeapInner>);

// SAFETY: the pointer is only stored, never dereferenced, from the list.
unsafe impl Send for ImmortalHeap {}

/// Heaps dropped while holding immortal objects.
static IMMORTAL_HEAPS: std::sync::Mutex<Vec<ImmortalHeap>> = std::sync::Mutex::new(Vec::new());

pub(crate) struct HeapInner {
    pub(crate) allocator: Allocator,
    /// Tracked objects of generation 0, each knowing its index (`slot`).
    young: UnsafeCell<Vec<NonNull<TrackedHeader>>>,
    /// Object value address → its weak record, for objects with `HAS_WEAK`.
    weak_table: UnsafeCell<hashbrown::HashMap<usize, NonNull<WeakSlot>>>,
    deferred: UnsafeCell<Vec<Deferred>>,
    pub(crate) release_depth: Cell<u32>,
    /// Objects and weak records allocated and not yet freed.
    live_blocks: Cell<usize>,
    /// Live objects (tracked or not), immortal ones included.
    pub(crate) live_objects: Cell<usize>,
    /// Immortal objects: while any exists the state can never be freed.
    pub(crate) immortal_objects: Cell<usize>,
    heap_alive: Cell<bool>,
}

impl HeapInner {
    /// Creates the state on the system heap; the caller owns the pointer.
    pub(crate) fn create() -> NonNull<HeapInner> {
        let inner = NonNull::from(Box::leak(Box::new(HeapInner {
            allocator: Allocator::new(),
            young: UnsafeCell::new(Vec::new()),
            weak_table: UnsafeCell::new(hashbrown::HashMap::new()),
            deferred: UnsafeCell::new(Vec::new()),
            release_depth: Cell::new(0),
            live_blocks: Cell::new(0),
            live_objects: Cell::new(0),
            immortal_objects: Cell::new(0),
            heap_alive: Cell::new(true),
        })));
        // SAFETY: just created, nobody else uses it yet.
        unsafe { inner.as_ref() }
            .allocator
            .set_owner_data(inner.as_ptr().cast());
        inner
    }

    /// Runs `f` on the young-generation vector. `f` must not call user code.
    #[inline(always)]
    pub(crate) fn with_young<R>(&self, f: impl FnOnce(&mut Vec<NonNull<TrackedHeader>>) -> R) -> R {
        // SAFETY: single-threaded, and `f` calls no user code, so this is the
        // only reference to the vector while it runs.
        f(unsafe { &mut *self.young.get() })
    }

    /// Runs `f` on the weak side table. `f` must not call user code.
    #[inline]
    pub(crate) fn with_weak_table<R>(
        &self,
        f: impl FnOnce(&mut hashbrown::HashMap<usize, NonNull<WeakSlot>>) -> R,
    ) -> R {
        // SAFETY: as in `with_young`.
        f(unsafe { &mut *self.weak_table.get() })
    }

    /// Runs `f` on the deferred-release queue. `f` must not call user code.
    #[inline]
    pub(crate) fn with_deferred<R>(&self, f: impl FnOnce(&mut Vec<Deferred>) -> R) -> R {
        // SAFETY: as in `with_young`.
        f(unsafe { &mut *self.deferred.get() })
    }

    /// Adds a tracked object to generation 0.
    #[inline(always)]
    pub(crate) fn track(&self, header: NonNull<TrackedHeader>) {
        self.with_young(|young| {
            // SAFETY: `header` is a freshly initialised tracked header.
            unsafe { header.as_ref() }.slot.set(young.len() as u32);
            young.push(header);
        })
    }

    /// Removes a dying tracked object from its generation vector.
    ///
    /// # Safety
    /// `header` is a live tracked object of this heap.
    #[inline]
    pub(crate) unsafe fn untrack(&self, header: NonNull<TrackedHeader>) {
        // SAFETY: the caller guarantees a live tracked header.
        let h = unsafe { header.as_ref() };
        if h.generation() != 0 {
            return;
        }
        self.with_young(|young| {
            let slot = h.slot.get() as usize;
            debug_assert_eq!(young[slot], header, "generation slot out of sync");
            young.swap_remove(slot);
            if let Some(&moved) = young.get(slot) {
                // SAFETY: every entry of the vector is a live tracked object.
                unsafe { moved.as_ref() }.slot.set(slot as u32);
            }
        })
    }

    /// Number of tracked objects in generation 0.
    pub(crate) fn young_len(&self) -> usize {
        self.with_young(|young| young.len())
    }

    pub(crate) fn block_allocated(&self) {
        self.live_blocks.set(self.live_blocks.get() + 1);
    }

    /// Records that a block was freed. The state itself is freed later, by
    /// [`maybe_destroy`](Self::maybe_destroy) at the outermost level.
    pub(crate) fn block_freed(&self) {
        self.live_blocks.set(self.live_blocks.get() - 1);
    }

    /// Frees the state if the `Heap` is gone, no block is left and no release
    /// is running.
    ///
    /// # Safety
    /// `this` is live; if this call frees it, the caller must not use it again.
    pub(crate) unsafe fn maybe_destroy(this: NonNull<HeapInner>) {
        // SAFETY: the caller guarantees `this` is live.
        let inner = unsafe { this.as_ref() };
        if inner.live_blocks.get() == 0 && !inner.heap_alive.get() && inner.release_depth.get() == 0 {
            // SAFETY: the heap is gone and no block (so no handle) is left.
            unsafe { Self::destroy(this) };
        }
    }

    /// Called when the `Heap` value is dropped: frees the state now if no
    /// block remains, otherwise when the last one goes.
    ///
    /// # Safety
    /// `this` is live and the `Heap` owning it does not use it afterwards.
    pub(crate) unsafe fn heap_dropped(this: NonNull<HeapInner>) {
        // SAFETY: the caller guarantees `this` is live.
        let inner = unsafe { this.as_ref() };
        inner.heap_alive.set(false);
        if inner.immortal_objects.get() > 0 {
            // Immortal objects are never freed, so neither is their heap: keep
            // it reachable from a global list (a deliberate, visible leak).
            IMMORTAL_HEAPS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ImmortalHeap(this));
        }
        // SAFETY: forwarded.
        unsafe { Self::maybe_destroy(this) };
    }

    /// # Safety
    /// Nothing refers to `this` any more.
    unsafe fn destroy(this: NonNull<HeapInner>) {
        // SAFETY: created by Box::leak in `create`, freed once.
        drop(unsafe { Box::from_raw(this.as_ptr()) });
    }

    /// Drains the deferred-release queue iteratively. Call it only at depth 0.
    pub(crate) fn drain_deferred(&self) {
        debug_assert_eq!(self.release_depth.get(), 0);
        while let Some((value, release)) = self.with_deferred(|queue| queue.pop()) {
            let _depth = DepthGuard::enter(self);
            // SAFETY: queued entries are dying objects whose release function
            // has not run; each is popped once.
            unsafe { release(value) };
        }
    }
}

/// Increments the release depth for its lifetime (also on unwinding).
pub(crate) struct DepthGuard<'a>(&'a HeapInner);

impl<'a> DepthGuard<'a> {
    pub(crate) fn enter(inner: &'a HeapInner) -> Self {
        inner.release_depth.set(inner.release_depth.get() + 1);
        DepthGuard(inner)
    }
}

impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.release_depth.set(self.0.release_depth.get() - 1);
    }
}
