//! [`Heap`]: the owner of objects.

pub(crate) mod current;
mod gc_api;
pub(crate) mod inner;

pub use gc_api::{CallbackId, DisabledGuard};

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::alloc::{AllocError, AllocStats};
use crate::handle::gc::{self, Gc};
use crate::trace::Trace;

use inner::HeapInner;
pub use inner::MAX_RELEASE_DEPTH;

/// A private heap of objects: CPython's memory model for one interpreter.
///
/// Objects are allocated in the heap's own pools ([`crate::alloc`]) and
/// handed out as [`Gc`] handles; each is destroyed the moment its last handle
/// drops. Many heaps may live on one thread (one per script VM, one per
/// test); a heap is neither `Send` nor `Sync`.
///
/// ```
/// use rcgc::{Gc, Heap};
///
/// let heap = Heap::new();
/// let greeting = heap.alloc(String::from("hello"));
/// assert_eq!(heap.object_count(), 1);
/// drop(greeting); // last handle: freed now, like `del greeting`
/// assert_eq!(heap.object_count(), 0);
///
/// // `Gc::new` allocates on the current heap: make this one current for a scope.
/// let n = heap.enter(|| Gc::new(42));
/// assert_eq!(heap.object_count(), 1);
/// # drop(n);
/// ```
///
/// Dropping the heap while handles are alive is safe: those objects stay
/// valid, and the heap's memory is released when the last one dies.
pub struct Heap {
    inner: NonNull<HeapInner>,
    _not_send: PhantomData<*const ()>,
}

impl Heap {
    /// Creates an empty heap. No memory is taken from the OS until the first
    /// allocation.
    pub fn new() -> Heap {
        Heap {
            inner: HeapInner::create(),
            _not_send: PhantomData,
        }
    }

    pub(crate) fn inner(&self) -> &HeapInner {
        // SAFETY: the inner state lives at least as long as the Heap.
        unsafe { self.inner.as_ref() }
    }

    /// Moves `value` into a new object and returns the first handle to it.
    ///
    /// # Panics
    /// If the heap's memory limit is reached; use [`try_alloc`](Self::try_alloc)
    /// to get the error instead.
    #[inline(always)]
    pub fn alloc<T: Trace + 'static>(&self, value: T) -> Gc<T> {
        self.try_alloc(value).unwrap_or_else(|err| gc::alloc_failed(err))
    }

    /// Like [`alloc`](Self::alloc), but returns an error when the memory limit
    /// would be exceeded. The value is dropped and nothing else changes.
    ///
    /// ```
    /// use rcgc::Heap;
    ///
    /// let heap = Heap::new();
    /// heap.set_limit(Some(64));
    /// let a = heap.try_alloc([0u64; 4]).unwrap(); // 40 bytes with its header
    /// let err = heap.try_alloc([0u64; 4]).unwrap_err();
    /// assert!(err.to_string().contains("memory limit exceeded"));
    /// assert_eq!(a[0], 0); // earlier objects are intact
    /// ```
    #[inline(always)]
    pub fn try_alloc<T: Trace + 'static>(&self, value: T) -> Result<Gc<T>, AllocError> {
        gc::alloc(self.inner(), value, false)
    }

    /// Allocates an immortal object (CPython's PEP 683), for singletons such
    /// as `None`, `True` or small integers: its count never changes, it is
    /// never freed (not even when the heap is dropped) and never examined by
    /// the cycle collector. [`Gc::strong_count`] reports
    /// [`IMMORTAL_REFCOUNT`](crate::IMMORTAL_REFCOUNT).
    pub fn alloc_immortal<T: Trace + 'static>(&self, value: T) -> Gc<T> {
        gc::alloc(self.inner(), value, true).unwrap_or_else(|err| gc::alloc_failed(err))
    }

    /// Copies a string into a new object.
    ///
    /// ```
    /// let heap = rcgc::Heap::new();
    /// let s = heap.alloc_str("spam");
    /// assert_eq!(&*s, "spam");
    /// ```
    pub fn alloc_str(&self, s: &str) -> Gc<str> {
        self.try_alloc_str(s).unwrap_or_else(|err| gc::alloc_failed(err))
    }

    /// Like [`alloc_str`](Self::alloc_str), returning the error at the memory limit.
    pub fn try_alloc_str(&self, s: &str) -> Result<Gc<str>, AllocError> {
        // SAFETY: `init` copies exactly `s.len()` bytes of valid UTF-8.
        unsafe {
            gc::alloc_unsized(self.inner(), s.len(), 1, |dst| {
                core::ptr::copy_nonoverlapping(s.as_ptr(), dst.as_ptr(), s.len());
                NonNull::new_unchecked(core::ptr::slice_from_raw_parts_mut(dst.as_ptr(), s.len()) as *mut str)
            })
        }
    }

    /// Moves the elements of a vector into a new slice object. Slice objects
    /// are never tracked by the cycle collector (use `Gc<Vec<T>>` for a
    /// container that can be part of a cycle); they still own their elements.
    pub fn alloc_slice<T: Trace + 'static>(&self, mut items: Vec<T>) -> Gc<[T]> {
        let len = items.len();
        // SAFETY: `init` moves exactly `len` initialised elements; the vector
        // forgets them (length 0) only after the copy.
        let result = unsafe {
            gc::alloc_unsized(
                self.inner(),
                core::mem::size_of::<T>() * len,
                core::mem::align_of::<T>(),
                |dst| {
                    core::ptr::copy_nonoverlapping(items.as_ptr(), dst.as_ptr().cast::<T>(), len);
                    items.set_len(0);
                    NonNull::new_unchecked(core::ptr::slice_from_raw_parts_mut(dst.as_ptr().cast::<T>(), len))
                },
            )
        };
        result.unwrap_or_else(|err| gc::alloc_failed(err))
    }

    /// Makes this heap the current one (the one `Gc::new` allocates on) while
    /// `f` runs. Scopes nest.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = current::enter(self.inner);
        f()
    }

    /// Sets (or with `None` removes) a limit on the bytes the heap's objects
    /// may occupy. Allocations past it fail (`try_alloc` returns the error);
    /// objects already allocated are unaffected.
    pub fn set_limit(&self, bytes: Option<usize>) {
        self.inner().release_spare_weak_records();
        self.inner().allocator.set_limit(bytes)
    }

    /// The byte limit, if one is set.
    pub fn limit(&self) -> Option<usize> {
        self.inner().allocator.limit()
    }

    /// Bytes occupied by live objects and weak records (at size-class granularity).
    pub fn bytes_in_use(&self) -> usize {
        self.inner().bytes_in_use()
    }

    /// The allocator's statistics table (like `sys._debugmallocstats()`).
    pub fn alloc_stats(&self) -> AllocStats {
        self.inner().release_spare_weak_records();
        self.inner().allocator.stats()
    }

    /// Live objects, immortal ones included.
    pub fn object_count(&self) -> usize {
        self.inner().live_objects.get()
    }
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

impl core::fmt::Debug for Heap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap")
            .field("objects", &self.object_count())
            .field("bytes_in_use", &self.bytes_in_use())
            .field("limit", &self.limit())
            .finish()
    }
}

impl Drop for Heap {
    /// Releases the saved garbage, callbacks and policy, runs a final full
    /// collection and finishes any queued releases.
    /// Objects still held by handles stay valid; the heap's memory is
    /// released when the last of them dies.
    fn drop(&mut self) {
        let inner = self.inner();
        // Drop what only collections use (it may hold handles), then collect
        // what that left unreachable. Callbacks are not called for this final
        // collection, as in CPython's shutdown.
        inner.shut_down();
        crate::collect::algorithm::collect_on_request(inner, crate::collect::GENERATIONS - 1);
        if inner.release_depth.get() == 0 {
            // Queued releases left by a cascade that a leaf's `Drop` started
            // (see `handle::gc::release`); their panics are reported, like
            // those of the final collection.
            if let Some(panic) = inner.drain_deferred() {
                inner.report_panic(format_args!("a Drop run by a release cascade"), &*panic);
            }
        }
        // SAFETY: the Heap does not use `inner` after this.
        unsafe { HeapInner::heap_dropped(self.inner) };
    }
}
