//! [`Gc<T>`]: the strong handle, its allocation and its release.

use core::alloc::Layout;
use core::borrow::Borrow;
use core::cell::Cell;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::mem::align_of;
use core::ops::Deref;
use core::ptr::NonNull;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::alloc::{usable_size, AllocError, AllocErrorKind, Allocator};
use crate::heap::current;
use crate::heap::inner::{DepthGuard, HeapInner, MAX_RELEASE_DEPTH};
use crate::object::{self, flags, LeafHeader, ObjectKind, TrackedHeader, IMMORTAL, UNTRACKED_GEN};
use crate::trace::{Edge, Trace, Tracer};

use super::weak::{self, Weak};

/// A reference-counted handle to an object in a [`Heap`](crate::Heap).
///
/// `Gc<T>` is to rcgc what a variable is to Python: cloning it is another
/// reference to the same object (`y = x`), dropping it is `del x`, and when
/// the last handle goes the object is destroyed at once. Unlike `Rc`, objects
/// that reference each other in a cycle are found and freed by the heap's
/// cycle collector.
///
/// ```
/// use rcgc::Gc;
///
/// let a = Gc::new(String::from("hello"));
/// let b = Gc::clone(&a);
/// assert!(Gc::ptr_eq(&a, &b));
/// assert_eq!(Gc::strong_count(&a), 2);
/// drop(b);
/// assert_eq!(Gc::strong_count(&a), 1);
/// assert_eq!(a.len(), 5); // Deref to the value
/// ```
///
/// A `Gc<T>` is one pointer wide, and so is `Option<Gc<T>>`. It is neither
/// `Send` nor `Sync`: a heap belongs to one thread.
///
/// # Unsized values and trait objects
///
/// `Gc<str>` and `Gc<[T]>` are made with [`Heap::alloc_str`](crate::Heap::alloc_str)
/// and [`Heap::alloc_slice`](crate::Heap::alloc_slice) (they are leaves: a slice
/// of handles keeps its elements alive but is not traced; use `Gc<Vec<T>>` for
/// a container that can be part of a cycle). Stable Rust cannot coerce
/// `Gc<T>` to `Gc<dyn Trait>` (that needs the unstable `CoerceUnsized`), so
/// hold the trait object behind one more box in a small wrapper. `Trace`
/// itself cannot be a supertrait of an object-safe trait (it has associated
/// constants), so give your trait a method that forwards tracing:
///
/// ```
/// use rcgc::{Gc, Heap, Trace, Tracer};
///
/// trait Shape {
///     fn area(&self) -> f64;
///     /// Lets the collector see the handles inside; leaves do nothing.
///     fn trace_shape(&self, _tracer: &mut Tracer<'_>) {}
/// }
///
/// struct Square(f64);
/// impl Shape for Square {
///     fn area(&self) -> f64 { self.0 * self.0 }
/// }
///
/// struct AnyShape(Box<dyn Shape>);
/// // SAFETY: forwards to the shape, which visits every Gc it owns.
/// unsafe impl Trace for AnyShape {
///     fn trace(&self, tracer: &mut Tracer<'_>) { self.0.trace_shape(tracer) }
/// }
///
/// let heap = Heap::new();
/// let shape: Gc<AnyShape> = heap.alloc(AnyShape(Box::new(Square(2.0))));
/// assert_eq!(shape.0.area(), 4.0);
/// ```
pub struct Gc<T: Trace + ?Sized + 'static> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

impl<T: Trace + 'static> Gc<T> {
    /// Allocates `value` on the current heap: the one made current by
    /// [`Heap::enter`](crate::Heap::enter), or else this thread's default heap
    /// (created on first use). This keeps porting from `Rc::new` a one-word
    /// change.
    ///
    /// # Panics
    /// If the heap's memory limit is reached; use [`Gc::try_new`] to get the
    /// error instead.
    pub fn new(value: T) -> Gc<T> {
        current::with(|inner| alloc(inner, value, false)).unwrap_or_else(|err| alloc_failed(err))
    }

    /// Like [`Gc::new`], but returns the error if the heap's memory limit is
    /// reached (the value is dropped, the heap is unchanged).
    pub fn try_new(value: T) -> Result<Gc<T>, AllocError> {
        current::with(|inner| alloc(inner, value, false))
    }

    /// Creates a weak reference to this object.
    ///
    /// ```
    /// use rcgc::Gc;
    ///
    /// let strong = Gc::new(5);
    /// let weak = Gc::downgrade(&strong);
    /// assert_eq!(weak.upgrade().as_deref(), Some(&5));
    /// drop(strong);
    /// assert!(weak.upgrade().is_none());
    /// ```
    ///
    /// # Panics
    /// If the heap's memory limit leaves no room for the 48-byte weak record
    /// the first weak reference to an object needs; use
    /// [`Gc::try_downgrade`] to get the error instead.
    pub fn downgrade(this: &Gc<T>) -> Weak<T> {
        Self::try_downgrade(this).unwrap_or_else(|err| alloc_failed(err))
    }

    /// Like [`Gc::downgrade`], but returns the error if the weak record cannot
    /// be allocated.
    pub fn try_downgrade(this: &Gc<T>) -> Result<Weak<T>, AllocError> {
        // SAFETY: the handle keeps the object and its heap alive.
        unsafe {
            weak::downgrade::<T>(
                this.value(),
                heap_of::<T>(this.value(), block_layout::<T>(this.ptr)),
                None,
            )
        }
    }

    /// A weak reference with a callback, Python's `weakref.ref(obj, callback)`:
    /// when the object dies (its count reaching zero, or the cycle collector
    /// freeing it), all its weak references are cleared and then the
    /// callbacks of its live weak references run, newest first, each given
    /// its (now dead) weak reference. Dropping every clone of the returned
    /// `Weak` before the object dies cancels the callback.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use rcgc::Gc;
    ///
    /// let obj = Gc::new(String::from("value"));
    /// let fired = Rc::new(Cell::new(false));
    /// let flag = fired.clone();
    /// let weak = Gc::downgrade_with_callback(&obj, move |w| {
    ///     assert!(w.upgrade().is_none()); // the referent is already gone
    ///     flag.set(true);
    /// });
    /// drop(obj);
    /// assert!(fired.get());
    /// assert!(!weak.has_callback()); // it ran
    /// ```
    ///
    /// # Panics
    /// As [`Gc::downgrade`]; [`Gc::try_downgrade_with_callback`] returns the error.
    pub fn downgrade_with_callback(this: &Gc<T>, callback: impl FnOnce(&Weak<T>) + 'static) -> Weak<T> {
        Self::try_downgrade_with_callback(this, callback).unwrap_or_else(|err| alloc_failed(err))
    }

    /// Like [`Gc::downgrade_with_callback`], returning the error if the weak
    /// record cannot be allocated.
    pub fn try_downgrade_with_callback(
        this: &Gc<T>,
        callback: impl FnOnce(&Weak<T>) + 'static,
    ) -> Result<Weak<T>, AllocError> {
        // SAFETY: the handle keeps the object and its heap alive.
        unsafe {
            let inner = heap_of::<T>(this.value(), block_layout::<T>(this.ptr));
            inner.as_ref().weak_callbacks_used.set(true);
            weak::downgrade::<T>(this.value(), inner, Some(Box::new(callback)))
        }
    }

    /// A mutable reference to the value if this is the only handle and no
    /// weak reference exists, like `Rc::get_mut`.
    ///
    /// An object left untracked because its type has
    /// [`FIXED_EDGES`](Trace::FIXED_EDGES) is tracked again first: its
    /// handles may change through the reference.
    pub fn get_mut(this: &mut Gc<T>) -> Option<&mut T> {
        let unique = Gc::strong_count(this) == 1 && Gc::weak_count(this) == 0 && Gc::is_alive(this);
        if unique {
            if ObjectKind::<T>::TRACKED {
                // SAFETY: the handle keeps the object and its heap alive.
                unsafe {
                    let header = object::tracked_header(this.value());
                    let h = header.as_ref();
                    if h.is_untracked() {
                        heap_of::<T>(this.value(), block_layout::<T>(this.ptr))
                            .as_ref()
                            .track(header);
                    }
                }
            }
            // SAFETY: no other handle or weak reference can reach the value.
            Some(unsafe { this.ptr.as_mut() })
        } else {
            None
        }
    }
}

impl<T: Trace + ?Sized + 'static> Gc<T> {
    /// Wraps a value address whose object already counts this handle.
    ///
    /// # Safety
    /// `ptr` is the value of a live object, and one strong count belongs to
    /// the new handle.
    #[inline(always)]
    pub(crate) unsafe fn from_counted(ptr: NonNull<T>) -> Gc<T> {
        Gc {
            ptr,
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    pub(crate) fn value(&self) -> NonNull<u8> {
        self.ptr.cast()
    }

    /// The number of strong handles, like `sys.getrefcount` (without the
    /// temporary reference Python adds). Immortal objects report
    /// [`IMMORTAL_REFCOUNT`](crate::IMMORTAL_REFCOUNT).
    pub fn strong_count(this: &Gc<T>) -> usize {
        // SAFETY: the handle keeps the header alive.
        unsafe { object::strong(this.value()) }.get() as usize
    }

    /// The number of live weak references to this object.
    pub fn weak_count(this: &Gc<T>) -> usize {
        // SAFETY: the handle keeps the object and its heap alive.
        unsafe {
            if !object::Flags::has::<T>(this.value(), flags::HAS_WEAK) {
                return 0;
            }
            let inner = heap_of::<T>(this.value(), block_layout::<T>(this.ptr));
            weak::weak_count_of::<T>(inner.as_ref(), this.value())
        }
    }

    /// Whether two handles point to the same object (Python's `is`).
    pub fn ptr_eq(this: &Gc<T>, other: &Gc<T>) -> bool {
        this.value() == other.value()
    }

    /// A number identifying the object among the live objects of the
    /// process, like Python's `id()`: its address. Once the object dies the
    /// number may be reused.
    pub fn id(this: &Gc<T>) -> usize {
        this.value().as_ptr() as usize
    }

    /// Bytes the object occupies, like `sys.getsizeof`: header, value,
    /// padding and size-class rounding.
    ///
    /// ```
    /// use rcgc::Gc;
    /// // 8-byte leaf header + 24-byte value, served from the 32-byte class.
    /// assert_eq!(Gc::size_of(&Gc::new([0u64; 3])), 32);
    /// ```
    pub fn size_of(this: &Gc<T>) -> usize {
        usable_size(block_layout::<T>(this.ptr))
    }

    /// The address of the value.
    pub fn as_ptr(this: &Gc<T>) -> *const T {
        this.ptr.as_ptr()
    }

    /// Whether the value is still there. It is always, unless a wrong
    /// `Trace` impl over-reported references and the cycle collector tore
    /// the value down while this handle still existed; such a handle is
    /// *dead* and dereferencing it panics.
    pub fn is_alive(this: &Gc<T>) -> bool {
        // SAFETY: the handle keeps the header alive.
        !ObjectKind::<T>::TRACKED || !unsafe { object::tracked_header(this.value()).as_ref() }.has(flags::DEAD)
    }

    /// The value, or `None` if the handle is dead (see [`Gc::is_alive`]).
    pub fn try_deref(this: &Gc<T>) -> Option<&T> {
        if Gc::is_alive(this) {
            // SAFETY: alive values are valid while the handle exists.
            Some(unsafe { this.ptr.as_ref() })
        } else {
            None
        }
    }

    /// Whether the object is immortal (its count never changes and it is
    /// never freed).
    pub fn is_immortal(this: &Gc<T>) -> bool {
        // SAFETY: the handle keeps the header alive.
        unsafe { object::strong(this.value()) }.get() == IMMORTAL
    }
}

/// Allocates a sized value on `inner`.
#[inline(always)]
pub(crate) fn alloc<T: Trace + 'static>(inner: &HeapInner, value: T, immortal: bool) -> Result<Gc<T>, AllocError> {
    let track = ObjectKind::<T>::TRACKED && !immortal && !(T::FIXED_EDGES && refers_only_to_untracked(&value));
    if track {
        // Like CPython, an automatic collection happens before the allocation.
        inner.before_tracked_alloc();
    }
    let Some(block) = inner.allocator.alloc_fast(ObjectKind::<T>::VTABLE.block_layout) else {
        return alloc_slow(inner, value, immortal, track);
    };
    // SAFETY: a fresh block for T's block layout.
    Ok(unsafe { init_object(inner, block, value, immortal, track) })
}

/// `alloc` when the allocator's fast path cannot serve the block (a new
/// pool is needed, or the limit is reached): out of line, so that dropping
/// the value on an error costs the fast path nothing.
#[cold]
#[inline(never)]
fn alloc_slow<T: Trace + 'static>(
    inner: &HeapInner,
    value: T,
    immortal: bool,
    track: bool,
) -> Result<Gc<T>, AllocError> {
    let block = inner.allocator.alloc(ObjectKind::<T>::VTABLE.block_layout)?;
    // SAFETY: a fresh block for T's block layout.
    Ok(unsafe { init_object(inner, block, value, immortal, track) })
}

/// Writes the header and `value` into a fresh block and counts the object.
///
/// # Safety
/// `block` is a fresh block of `inner` for `T`'s block layout; `track` only
/// for a tracked, mortal `T`.
#[inline(always)]
unsafe fn init_object<T: Trace + 'static>(
    inner: &HeapInner,
    block: NonNull<u8>,
    value: T,
    immortal: bool,
    track: bool,
) -> Gc<T> {
    let offset = ObjectKind::<T>::value_offset(align_of::<T>());
    // SAFETY: `block` is `layout.size()` fresh bytes: the header ends at
    // `offset`, where the value starts, aligned for T.
    unsafe {
        let value_ptr = block.add(offset);
        let vtable: &'static object::VTable = &ObjectKind::<T>::VTABLE;
        write_header::<T>(inner, block, value_ptr, immortal, track, vtable);
        value_ptr.cast::<T>().write(value);
        inner.live_objects.set(inner.live_objects.get() + 1);
        if immortal {
            inner.immortal_objects.set(inner.immortal_objects.get() + 1);
        }
        Gc::from_counted(value_ptr.cast())
    }
}

/// Allocates an unsized (always leaf) value of `layout` on `inner` and lets
/// `init` write it; `init` must not panic.
///
/// # Safety
/// `init` writes a valid value at the address it is given, described by the
/// returned fat pointer.
pub(crate) unsafe fn alloc_unsized<T: Trace + ?Sized + 'static>(
    inner: &HeapInner,
    size: usize,
    align: usize,
    init: impl FnOnce(NonNull<u8>) -> NonNull<T>,
) -> Result<Gc<T>, AllocError> {
    debug_assert!(!ObjectKind::<T>::TRACKED);
    let layout = ObjectKind::<T>::block_layout(size, align)
        .ok_or_else(|| AllocError::new(Layout::new::<()>(), AllocErrorKind::CapacityOverflow))?;
    let block = inner.allocator.alloc(layout)?;
    let offset = ObjectKind::<T>::value_offset(align);
    // SAFETY: as in `alloc`; `init` writes the value.
    unsafe {
        let value_ptr = block.add(offset);
        write_header::<T>(inner, block, value_ptr, false, false, &object::NO_VTABLE);
        let ptr = init(value_ptr);
        debug_assert_eq!(ptr.cast::<u8>(), value_ptr);
        inner.live_objects.set(inner.live_objects.get() + 1);
        Ok(Gc::from_counted(ptr))
    }
}

/// Whether every handle `value` owns points to an object the collector does
/// not track (a leaf, an immortal object, or an untracked object with fixed
/// edges). An object with [`Trace::FIXED_EDGES`] made of such a value can
/// never be part of a cycle: it needs no tracking (CPython's untracking of
/// tuples of atoms, done at allocation).
///
/// Invariant kept: an untracked object reaches only untracked objects, since
/// its handles cannot change (`Gc::get_mut` tracks it again first).
#[inline(always)]
fn refers_only_to_untracked<T: Trace>(value: &T) -> bool {
    let mut only_untracked = true;
    let mut visit = |edge: Edge| {
        if let Some(referent) = edge.tracked_value() {
            // SAFETY: edges come from `Gc` handles owned by `value`, which
            // keep their referents allocated.
            let h = unsafe { object::tracked_header(referent).as_ref() };
            only_untracked &= h.is_untracked();
        }
    };
    let mut tracer = Tracer::new(&mut visit);
    value.trace(&mut tracer);
    let complete = !tracer.is_incomplete();
    complete && only_untracked
}

/// # Safety
/// `block..value_ptr` is fresh memory of a block of `inner` with room for the
/// header of `T`'s kind right before `value_ptr`; `vtable` is `T`'s if `T`
/// is tracked. `track` only for a tracked, mortal `T`.
#[inline(always)]
unsafe fn write_header<T: Trace + ?Sized + 'static>(
    inner: &HeapInner,
    block: NonNull<u8>,
    value_ptr: NonNull<u8>,
    immortal: bool,
    track: bool,
    vtable: &'static object::VTable,
) {
    let strong = if immortal { IMMORTAL } else { 1 };
    // SAFETY: forwarded caller contract.
    unsafe {
        let value_offset = value_ptr.as_ptr() as usize - block.as_ptr() as usize;
        if value_offset > ObjectKind::<T>::HEADER {
            // Padding before the header: keep the block's first word
            // initialised for the heap walk, and tell it where a tracked
            // header is (`object::tracked_in_block`).
            let marker = if ObjectKind::<T>::TRACKED {
                object::padding_marker(value_offset)
            } else {
                0
            };
            block.cast::<usize>().write(marker);
        }
        if ObjectKind::<T>::TRACKED {
            let header = object::tracked_header(value_ptr);
            // An untracked object is born in the untracked generation (one
            // store of the first word instead of a store and a rewrite).
            let generation = if track { 0 } else { UNTRACKED_GEN << flags::GEN_SHIFT };
            header.write(TrackedHeader {
                vtable_and_flags: Cell::new(TrackedHeader::tagged(vtable, flags::TRACKED | generation)),
                slot: Cell::new(u32::MAX),
                strong: Cell::new(strong),
            });
            if track {
                inner.track(header);
            }
        } else {
            object::leaf_header(value_ptr).write(LeafHeader {
                flags: Cell::new(0),
                strong: Cell::new(strong),
            });
        }
    }
}

/// Block layout of the object a handle points to.
#[inline(always)]
fn block_layout<T: Trace + ?Sized + 'static>(ptr: NonNull<T>) -> Layout {
    // SAFETY: only the pointer metadata is read (size_of_val of a live
    // handle's value); for sized T it is a constant.
    ObjectKind::<T>::layout_of_val(unsafe { ptr.as_ref() })
}

/// The heap an object belongs to.
///
/// # Safety
/// `value` is the value address of a live object whose block has `layout`.
#[inline(always)]
pub(crate) unsafe fn heap_of<T: Trace + ?Sized + 'static>(value: NonNull<u8>, layout: Layout) -> NonNull<HeapInner> {
    let offset = ObjectKind::<T>::value_offset(layout.align());
    // SAFETY: the block starts `offset` bytes before the value; the
    // allocator's owner data is the HeapInner (set in HeapInner::create).
    unsafe {
        let block = value.sub(offset);
        NonNull::new_unchecked(Allocator::owner_data_of(block, layout).cast())
    }
}

/// Panics with an allocation error (the non-`try_` allocation methods).
#[cold]
#[inline(never)]
pub(crate) fn alloc_failed(err: AllocError) -> ! {
    panic!("rcgc: {err}")
}

impl<T: Trace + ?Sized + 'static> Clone for Gc<T> {
    /// Another handle to the same object (the strong count goes up by one).
    #[inline(always)]
    fn clone(&self) -> Gc<T> {
        // SAFETY: the handle keeps the object alive with a nonzero count.
        unsafe { object::retain(self.value(), block_layout::<T>(self.ptr), ObjectKind::<T>::TRACKED) };
        Gc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + ?Sized + 'static> Drop for Gc<T> {
    /// Drops this handle; if it was the last, destroys the object now.
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the handle keeps the header alive.
        let strong = unsafe { object::strong(self.value()) };
        let count = strong.get();
        if count == 1 {
            // SAFETY: this was the last handle.
            unsafe { release(self.ptr) }
        } else if count != IMMORTAL {
            strong.set(count - 1);
            if ObjectKind::<T>::TRACKED {
                // SAFETY: the object is live (the count is still above zero).
                unsafe { object::note_decrement(self.value()) };
            }
        }
    }
}

/// Destroys an object whose last handle was just dropped (or resurrects it,
/// if its finalizer stores a new handle).
///
/// Order, as CPython's refcount path: finalizer (the object is intact and its
/// weak references still work), then weak references cleared, then the
/// value dropped and the block freed.
///
/// # Safety
/// `ptr` is the value of a live object whose last handle is being dropped
/// (count 1), or a queued release (count 0).
#[cold]
#[inline(never)]
pub(crate) unsafe fn release<T: Trace + ?Sized + 'static>(ptr: NonNull<T>) {
    // SAFETY: forwarded caller contract.
    if T::MAY_CONTAIN_GC && !T::HAS_FINALIZER && unsafe { release_nested_plain(ptr) } {
        return;
    }
    // SAFETY: forwarded caller contract.
    unsafe { release_general(ptr) }
}

/// The common case of `release` inside a cascade: a live object that may
/// own handles, without a finalizer, with no weak record and (if tracked)
/// in no generation or collection (`is_plain_live_untracked`, one test of
/// the header), released
/// while no `Trace` impl runs, nested (depth at least 1: the outermost
/// release drains the queue) and within the stack window of its cascade
/// (`HeapInner::in_release_stack_window`). It does what `release_with` does
/// for a nested release that is not queued: the count set to 0, the object
/// uncounted, the value dropped and the block freed; but it leaves the
/// release depth alone, its recursion being bounded by the stack window
/// instead (see [`MAX_RELEASE_DEPTH`]): no counter update per object, which
/// would chain every release of a cascade through one memory word.
/// Returns `false`, having changed nothing, in every other case.
///
/// Under Miri, whose stack addresses are not a stack, the window is not
/// used: these releases are counted like the others (and queued past
/// [`MAX_RELEASE_DEPTH`]).
///
/// # Safety
/// As `release`, for a `T` that may own handles, without a finalizer.
#[inline(always)]
unsafe fn release_nested_plain<T: Trace + ?Sized + 'static>(ptr: NonNull<T>) -> bool {
    debug_assert!(T::MAY_CONTAIN_GC && !T::HAS_FINALIZER);
    let value = ptr.cast::<u8>();
    // SAFETY: the caller guarantees the header is live.
    let plain = unsafe {
        if ObjectKind::<T>::TRACKED {
            object::tracked_header(value).as_ref().is_plain_live_untracked()
        } else {
            !object::Flags::has::<T>(value, flags::HAS_WEAK)
        }
    };
    if !plain {
        return false;
    }
    // SAFETY: the object is alive (not DEAD), so its layout may be read from
    // the value (for a tracked, so sized, `T` it is a constant and nothing is
    // read); its heap outlives it.
    let layout = block_layout::<T>(ptr);
    // SAFETY: as above.
    let inner = unsafe { heap_of::<T>(value, layout).as_ref() };
    let depth = inner.release_depth.get();
    #[cfg(not(miri))]
    let nested_in_bounds = depth != 0 && inner.in_release_stack_window();
    // One unsigned comparison for 1 <= depth < MAX_RELEASE_DEPTH.
    #[cfg(miri)]
    let nested_in_bounds = depth.wrapping_sub(1) < MAX_RELEASE_DEPTH - 1;
    if inner.tracing.get() || !nested_in_bounds {
        return false;
    }
    // Nothing else refers to the object: no weak record, no generation or
    // work-list entry, no running `Trace`. A nested release leaves the heap
    // state alive: the outermost release holds the depth above 0 until the
    // cascade is over, then frees the state if needed.
    // SAFETY: the object is live, dying (last handle gone, or queued with
    // count 0) and referred to by nothing, so it may be dropped and freed.
    unsafe {
        object::strong(value).set(0);
        inner.live_objects.set(inner.live_objects.get() - 1);
        #[cfg(miri)]
        let _depth = DepthGuard::enter(inner);
        drop_and_free(inner, ptr, layout);
    }
    true
}

/// `release` in every case (see `release_with`).
///
/// # Safety
/// As `release`.
#[inline(never)]
unsafe fn release_general<T: Trace + ?Sized + 'static>(ptr: NonNull<T>) {
    // SAFETY: the caller guarantees the header is live.
    if ObjectKind::<T>::TRACKED && unsafe { object::tracked_header(ptr.cast()).as_ref() }.has(flags::DEAD) {
        // SAFETY: forwarded caller contract.
        return unsafe { release_dead(ptr) };
    }
    // SAFETY: forwarded; the value is alive, so its layout may be read from
    // it (for a sized `T` it is a constant and nothing is read).
    unsafe { release_with(ptr, block_layout::<T>(ptr), false) }
}

/// `release` of an object whose value the collector already dropped: a dead
/// value is never referenced again, so its layout comes from the vtable.
///
/// # Safety
/// As `release`, for a dead (so tracked) object.
#[cold]
#[inline(never)]
unsafe fn release_dead<T: Trace + ?Sized + 'static>(ptr: NonNull<T>) {
    // SAFETY: the caller guarantees the header is live.
    let layout = unsafe { object::tracked_header(ptr.cast()).as_ref() }
        .vtable()
        .block_layout;
    // SAFETY: forwarded caller contract; `layout` is the object's block layout.
    unsafe { release_with(ptr, layout, true) }
}

/// The body of `release`, for a value that is `dead` or not and whose block
/// has `layout` (a constant for a live sized `T`, so the size class and the
/// heap lookup fold at compile time).
///
/// # Safety
/// As `release`; `dead` says whether the object is dead, `layout` is its
/// block layout.
#[inline(always)]
unsafe fn release_with<T: Trace + ?Sized + 'static>(ptr: NonNull<T>, layout: Layout, dead: bool) {
    let value = ptr.cast::<u8>();
    // SAFETY: the object is live until we free it below; its heap outlives it.
    unsafe {
        let inner_ptr = heap_of::<T>(value, layout);
        let inner = inner_ptr.as_ref();
        let strong = object::strong(value);
        if ObjectKind::<T>::TRACKED && inner.tracing.get() {
            // The collector is reading candidates: free nothing now.
            strong.set(0);
            inner.queue_pending(value);
            return;
        }
        if T::HAS_FINALIZER && !dead && !object::Flags::has::<T>(value, flags::FINALIZED) {
            object::Flags::set::<T>(value, flags::FINALIZED, true);
            strong.set(1);
            let temp = Gc::<T>::from_counted(ptr);
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| T::finalize(&temp))) {
                inner.report_panic(
                    format_args!("the finalizer of {}", core::any::type_name::<T>()),
                    &*panic,
                );
            }
            let count = strong.get();
            core::mem::forget(temp);
            if count > 1 {
                // Resurrected: the finalizer stored a new handle.
                strong.set(count - 1);
                if ObjectKind::<T>::TRACKED {
                    object::note_decrement(value);
                }
                return;
            }
        }
        strong.set(0);
        let plain = if ObjectKind::<T>::TRACKED {
            // The common case (an untracked object without weak references)
            // is one branch; the rest is out of line.
            object::tracked_header(value).as_ref().is_plain_untracked()
        } else {
            !object::Flags::has::<T>(value, flags::HAS_WEAK)
        };
        if !plain {
            release_bookkeeping::<T>(inner, value);
        }
        inner.live_objects.set(inner.live_objects.get() - 1);
        if dead {
            // The collector already dropped the value; only the block is left.
            free_block(inner, value, layout, ObjectKind::<T>::value_offset(layout.align()));
        } else if T::MAY_CONTAIN_GC && inner.release_depth.get() >= MAX_RELEASE_DEPTH {
            // Only values that may own handles can nest releases. A thin
            // pointer is queued as the value's address; a wide one (a slice
            // of handles) does not fit a queue entry, so it waits in a box.
            let entry = if size_of::<NonNull<T>>() == size_of::<NonNull<u8>>() {
                (value, deferred_release_thin::<T> as unsafe fn(NonNull<u8>))
            } else {
                let boxed = NonNull::from(Box::leak(Box::new(ptr))).cast::<u8>();
                (boxed, deferred_release_boxed::<T> as unsafe fn(NonNull<u8>))
            };
            inner.with_deferred(|queue| queue.push(entry));
            return;
        } else if T::MAY_CONTAIN_GC && inner.release_depth.get() == 0 {
            // The outermost release of a value that may start a cascade.
            release_outermost(inner_ptr, ptr, layout);
            return;
        } else {
            let _depth = DepthGuard::enter(inner);
            drop_and_free(inner, ptr, layout);
            if T::MAY_CONTAIN_GC {
                // Nested (the depth was not 0): the outermost release drains.
                return;
            }
        }
        if inner.release_depth.get() == 0 {
            // A leaf, or a dead value: nothing of ours can have been queued
            // below this release, unless its `Drop` dropped handles it reached
            // some other way; those run now (normally they already have).
            let panic = inner.drain_deferred();
            HeapInner::maybe_destroy(inner_ptr);
            if let Some(panic) = panic {
                resume_unwind(panic);
            }
        }
    }
}

/// `release`'s steps between the count reaching zero and the value's drop,
/// for an object with weak references or in a generation or collection:
/// clears its weak references (running their callbacks), then takes it out
/// of its generation (or the running collection).
///
/// # Safety
/// `value` is a live object of `inner` holding a `T`, whose count was just
/// set to 0 by `release`.
#[cold]
#[inline(never)]
unsafe fn release_bookkeeping<T: Trace + ?Sized + 'static>(inner: &HeapInner, value: NonNull<u8>) {
    // SAFETY: the caller guarantees a live object of `inner` holding a `T`.
    unsafe {
        if object::Flags::has::<T>(value, flags::HAS_WEAK) {
            let callbacks = weak::clear_of::<T>(inner, value);
            object::Flags::set::<T>(value, flags::HAS_WEAK, false);
            if !callbacks.is_empty() {
                // Callbacks run with the value still intact (CPython: `del c, cb c`).
                let _depth = DepthGuard::enter(inner);
                callbacks.run(inner);
            }
        }
        if ObjectKind::<T>::TRACKED {
            inner.untrack(object::tracked_header(value));
        }
    }
}

/// The outermost (depth 0) release of a value that may own handles: drops
/// it (which may cascade), then runs every release the cascade queued, then
/// frees the heap state if the `Heap` is gone.
///
/// A `Drop` that panics anywhere in the cascade must not leave queued
/// releases undone, yet no `Drop` may run while a panic unwinds (a second
/// panic would abort). So the panic is caught here, the queue is drained as
/// usual (each further panic caught and reported), and the first panic then
/// resumes unwinding into the caller.
///
/// # Safety
/// As `release`, at depth 0, for a live value whose count was set to 0.
#[inline(never)]
unsafe fn release_outermost<T: Trace + ?Sized + 'static>(
    inner_ptr: NonNull<HeapInner>,
    ptr: NonNull<T>,
    layout: Layout,
) {
    // SAFETY: the caller guarantees the heap state is live (the object is).
    let inner = unsafe { inner_ptr.as_ref() };
    inner.open_release_stack_window();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _depth = DepthGuard::enter(inner);
        // SAFETY: forwarded caller contract: the value is dying and ours.
        unsafe { drop_and_free(inner, ptr, layout) }
    }));
    let panic = match result {
        Ok(()) => inner.drain_deferred(),
        Err(first) => inner.drain_deferred_after(Some(first)),
    };
    // SAFETY: depth 0 again and the release is done; `inner` is not used
    // after this call.
    unsafe { HeapInner::maybe_destroy(inner_ptr) };
    if let Some(panic) = panic {
        resume_unwind(panic);
    }
}

/// `release` for untyped handles.
///
/// # Safety
/// As `release`, for an object holding a `T`.
pub(crate) unsafe fn release_erased<T: Trace + 'static>(value: NonNull<u8>) {
    // SAFETY: forwarded.
    unsafe { release(value.cast::<T>()) }
}

/// Runs `T`'s finalizer for the collector with a temporary handle; a
/// finalizer that stores a clone of it resurrects the object.
///
/// # Safety
/// `value` is a live object holding a `T`.
pub(crate) unsafe fn finalize_erased<T: Trace + 'static>(value: NonNull<u8>) {
    // SAFETY: the object is live; the temporary handle adds one count and
    // removes it when dropped (which may release the object).
    let temp = unsafe {
        let strong = object::strong(value);
        strong.set(strong.get() + 1);
        Gc::<T>::from_counted(value.cast())
    };
    T::finalize(&temp);
}

/// The queued second half of `release` for a `T` whose pointers are thin
/// (sized): the queue entry's address is the whole pointer.
///
/// # Safety
/// `value` is the address of a dying object of type `T` queued by
/// `release`, and `NonNull<T>` is as wide as `NonNull<u8>`.
pub(crate) unsafe fn deferred_release_thin<T: Trace + ?Sized + 'static>(value: NonNull<u8>) {
    debug_assert_eq!(size_of::<NonNull<T>>(), size_of::<NonNull<u8>>());
    // SAFETY: a thin `NonNull<T>` is exactly an address (the caller checked
    // the width), and this one was taken from a `NonNull<T>` by `release`.
    let ptr = unsafe { core::mem::transmute_copy::<NonNull<u8>, NonNull<T>>(&value) };
    // SAFETY: forwarded caller contract.
    unsafe { release_queued(ptr) }
}

/// The queued second half of `release` for a `T` whose pointers are wide
/// (a slice of handles).
///
/// # Safety
/// `boxed` came from leaking a `Box<NonNull<T>>` that points to a dying
/// object queued by `release`; it is used once.
pub(crate) unsafe fn deferred_release_boxed<T: Trace + ?Sized + 'static>(boxed: NonNull<u8>) {
    // SAFETY: the caller guarantees `boxed` is the leaked box, used once.
    let ptr = *unsafe { Box::from_raw(boxed.cast::<NonNull<T>>().as_ptr()) };
    // SAFETY: forwarded caller contract.
    unsafe { release_queued(ptr) }
}

/// Drops the value of a dying object whose release `release` queued, and
/// frees its block.
///
/// # Safety
/// `ptr` is the value of a dying object queued by `release`: alive (a
/// queued release is never of a dead value, see `release_with`), so its
/// layout may be read from it; its heap outlives it.
unsafe fn release_queued<T: Trace + ?Sized + 'static>(ptr: NonNull<T>) {
    // SAFETY: forwarded caller contract.
    unsafe {
        let layout = block_layout::<T>(ptr);
        let inner = heap_of::<T>(ptr.cast(), layout);
        drop_and_free(inner.as_ref(), ptr, layout);
    }
}

/// Drops the value and frees its block (the block also when `Drop` panics).
///
/// # Safety
/// `ptr` is the value of a dying object of `inner` with block `layout`.
unsafe fn drop_and_free<T: Trace + ?Sized + 'static>(inner: &HeapInner, ptr: NonNull<T>, layout: Layout) {
    /// For a tracked object: frees the block if the value's drop unwinds,
    /// finding the layout from the header, which the drop leaves intact.
    /// Only the address is kept for the unwinding path, so the common path
    /// stores one word.
    struct FreeTrackedOnUnwind<T: Trace + ?Sized + 'static>(NonNull<u8>, PhantomData<*const T>);
    impl<T: Trace + ?Sized + 'static> Drop for FreeTrackedOnUnwind<T> {
        fn drop(&mut self) {
            // SAFETY: a tracked object's header outlives its value's drop,
            // and its vtable's block layout is the object's.
            unsafe { free_unwound::<T>(self.0, object::tracked_header(self.0).as_ref().vtable().block_layout) }
        }
    }
    /// For a leaf (no vtable): the same with the layout kept beside the
    /// address.
    struct FreeLeafOnUnwind<T: Trace + ?Sized + 'static>(NonNull<u8>, Layout, PhantomData<*const T>);
    impl<T: Trace + ?Sized + 'static> Drop for FreeLeafOnUnwind<T> {
        fn drop(&mut self) {
            // SAFETY: the layout is the object's block layout (kept by
            // `drop_and_free`).
            unsafe { free_unwound::<T>(self.0, self.1) }
        }
    }
    /// Drops the value at `ptr`; `unwinding` frees the block if that
    /// unwinds, and is forgotten otherwise.
    ///
    /// # Safety
    /// As `drop_and_free`.
    #[inline(always)]
    unsafe fn drop_guarded<T: ?Sized, G>(ptr: NonNull<T>, unwinding: G) {
        // SAFETY: the value is live and nobody can reach it any more; on
        // unwinding, `unwinding` frees the block.
        unsafe { ptr.as_ptr().drop_in_place() };
        core::mem::forget(unwinding);
    }
    let value = ptr.cast::<u8>();
    // SAFETY: forwarded caller contract.
    unsafe {
        if ObjectKind::<T>::TRACKED {
            drop_guarded(ptr, FreeTrackedOnUnwind::<T>(value, PhantomData));
        } else {
            drop_guarded(ptr, FreeLeafOnUnwind::<T>(value, layout, PhantomData));
        }
    }
    // SAFETY: the value has been dropped; the block is no longer used.
    unsafe { free_block(inner, value, layout, ObjectKind::<T>::value_offset(layout.align())) };
}

/// Frees the block of the object at `value`, whose value's drop unwound,
/// finding its heap from its address.
///
/// # Safety
/// `value` is the value address of an object whose block has `layout` and
/// whose value's drop is over; the block is not used again.
unsafe fn free_unwound<T: Trace + ?Sized + 'static>(value: NonNull<u8>, layout: Layout) {
    // SAFETY: the caller guarantees the block and its layout; the heap
    // outlives its objects.
    unsafe {
        let inner = heap_of::<T>(value, layout);
        free_block(
            inner.as_ref(),
            value,
            layout,
            ObjectKind::<T>::value_offset(layout.align()),
        );
    }
}

/// # Safety
/// The block holding `value` at `offset` belongs to `inner` and is not used again.
#[inline(always)]
unsafe fn free_block(inner: &HeapInner, value: NonNull<u8>, layout: Layout, offset: usize) {
    // SAFETY: forwarded.
    unsafe { inner.allocator.dealloc(value.sub(offset), layout) };
}

impl<T: Trace + ?Sized + 'static> Deref for Gc<T> {
    type Target = T;

    /// The value.
    ///
    /// # Panics
    /// If the handle is dead (see [`Gc::is_alive`]).
    #[inline(always)]
    fn deref(&self) -> &T {
        if ObjectKind::<T>::TRACKED {
            // SAFETY: the handle keeps the header alive.
            if unsafe { object::tracked_header(self.value()).as_ref() }.has(flags::DEAD) {
                dead_deref::<T>()
            }
        }
        // SAFETY: the value is alive while a handle exists (checked above).
        unsafe { self.ptr.as_ref() }
    }
}

#[cold]
#[inline(never)]
fn dead_deref<T: ?Sized>() -> ! {
    panic!(
        "rcgc: dereferenced a dead Gc<{}>: the cycle collector tore its value down while this handle \
         still existed, which means a Trace impl reported more references than it holds",
        core::any::type_name::<T>()
    )
}

// SAFETY: a handle is one edge to its object.
unsafe impl<T: Trace + ?Sized + 'static> Trace for Gc<T> {
    const MAY_CONTAIN_GC: bool = true;
    // A handle never changes its referent (whether the referent's own
    // handles can change is the referent's business).
    const FIXED_EDGES: bool = true;
    // A handle's edge is fixed, so whether it can be part of a cycle is up
    // to its referent.
    const ACYCLIC: bool = T::ACYCLIC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        tracer.edge(Edge::Strong {
            value: self.value(),
            tracked: ObjectKind::<T>::TRACKED,
        });
    }
}

impl<T: Trace + 'static> From<T> for Gc<T> {
    /// Same as [`Gc::new`].
    fn from(value: T) -> Gc<T> {
        Gc::new(value)
    }
}

impl<T: Trace + Default + 'static> Default for Gc<T> {
    fn default() -> Gc<T> {
        Gc::new(T::default())
    }
}

impl<T: Trace + ?Sized + 'static> AsRef<T> for Gc<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: Trace + ?Sized + 'static> Borrow<T> for Gc<T> {
    fn borrow(&self) -> &T {
        self
    }
}

impl<T: Trace + ?Sized + fmt::Debug + 'static> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Gc::try_deref(self) {
            Some(value) => fmt::Debug::fmt(value, f),
            None => write!(f, "<dead {}>", core::any::type_name::<T>()),
        }
    }
}

impl<T: Trace + ?Sized + fmt::Display + 'static> fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: Trace + ?Sized + 'static> fmt::Pointer for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&self.ptr, f)
    }
}

impl<T: Trace + ?Sized + PartialEq + 'static> PartialEq for Gc<T> {
    fn eq(&self, other: &Gc<T>) -> bool {
        **self == **other
    }
}

impl<T: Trace + ?Sized + Eq + 'static> Eq for Gc<T> {}

impl<T: Trace + ?Sized + PartialOrd + 'static> PartialOrd for Gc<T> {
    fn partial_cmp(&self, other: &Gc<T>) -> Option<Ordering> {
        (**self).partial_cmp(&**other)
    }
}

impl<T: Trace + ?Sized + Ord + 'static> Ord for Gc<T> {
    fn cmp(&self, other: &Gc<T>) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl<T: Trace + ?Sized + Hash + 'static> Hash for Gc<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Heap;

    /// A count that would overflow saturates into immortality instead of
    /// wrapping: the object is then never freed, and that is safe.
    #[test]
    fn overflowing_counts_saturate_into_immortality() {
        let heap = Heap::new();
        let obj = heap.alloc(7u64);
        // SAFETY: the handle keeps the header alive; pretend u32::MAX - 2
        // more handles exist (as if leaked with mem::forget).
        unsafe { object::strong(obj.value()) }.set(IMMORTAL - 1);
        let extra = obj.clone();
        assert!(Gc::is_immortal(&obj));
        assert_eq!(Gc::strong_count(&obj), crate::IMMORTAL_REFCOUNT);
        drop(extra);
        drop(obj);
        assert_eq!(heap.object_count(), 1, "an immortal object is never freed");
        drop(heap); // kept forever on the immortal heaps list (no leak report under Miri)
    }

    /// Every way to make a strong handle saturates the same way: through a
    /// weak reference and through an untyped handle.
    #[test]
    fn upgrades_and_untyped_handles_saturate_too() {
        use core::cell::RefCell;
        for via_weak in [true, false] {
            let heap = Heap::new();
            let obj = heap.alloc(RefCell::new(Vec::<Gc<u8>>::new()));
            // SAFETY: as in the test above.
            unsafe { object::strong(obj.value()) }.set(IMMORTAL - 1);
            let extra = if via_weak {
                Gc::downgrade(&obj).upgrade().unwrap()
            } else {
                Gc::to_any(&obj).unwrap().downcast().unwrap()
            };
            assert!(Gc::is_immortal(&obj));
            drop((extra, obj));
            assert_eq!(heap.object_count(), 1);
            drop(heap); // kept on the immortal heaps list: no leak report under Miri
        }
    }
}
