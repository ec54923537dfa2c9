//! [`Weak<T>`] and the weak side records.
//!
//! The first weak reference to an object allocates a 16-byte [`WeakSlot`]
//! from the object's heap and files it in the heap's side table (keyed by the
//! object's address), and sets the object's `HAS_WEAK` flag. Every weak
//! reference to the object points to that slot; `weak` counts them. When the
//! object dies its slot's `target` is cleared, so upgrades fail, and the
//! object's block is freed at once: weak references never keep memory of the
//! object alive and never read reused memory. The slot is freed when the last
//! weak reference to it goes.
//!
//! Objects that never had a weak reference pay nothing: no field, no table
//! entry, one flag bit that is never set.

use core::alloc::Layout;
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::alloc::{AllocError, Allocator};
use crate::heap::inner::HeapInner;
use crate::object::{self, flags, IMMORTAL};
use crate::trace::{Trace, Tracer};

use super::gc::Gc;

/// The side record shared by all weak references to one object.
#[repr(C)]
pub(crate) struct WeakSlot {
    /// The object's value address while it lives.
    pub(crate) target: Cell<Option<NonNull<u8>>>,
    /// Weak references pointing here.
    pub(crate) weak: Cell<usize>,
}

const SLOT_LAYOUT: Layout = Layout::new::<WeakSlot>();

/// A weak reference: it does not keep its object alive, and
/// [`upgrade`](Weak::upgrade) gives a [`Gc`] only while the object lives.
/// The Rust spelling of Python's `weakref.ref(obj)`; calling the ref is
/// `upgrade`.
///
/// ```
/// use rcgc::{Gc, Weak};
///
/// let parent = Gc::new(String::from("root"));
/// let weak: Weak<String> = Gc::downgrade(&parent);
/// assert_eq!(Gc::weak_count(&parent), 1);
/// assert_eq!(weak.upgrade().unwrap().as_str(), "root");
/// drop(parent); // the last strong handle: the object dies now
/// assert!(weak.upgrade().is_none());
/// ```
pub struct Weak<T: Trace + 'static> {
    slot: Option<NonNull<WeakSlot>>,
    _marker: PhantomData<*const T>,
}

impl<T: Trace + 'static> Weak<T> {
    /// A weak reference to nothing: it never upgrades.
    pub const fn new() -> Weak<T> {
        Weak {
            slot: None,
            _marker: PhantomData,
        }
    }

    fn slot(&self) -> Option<&WeakSlot> {
        // SAFETY: a weak reference keeps its slot alive.
        self.slot.map(|slot| unsafe { &*slot.as_ptr() })
    }

    /// A strong handle to the object if it is still alive, else `None`.
    pub fn upgrade(&self) -> Option<Gc<T>> {
        let target = self.slot()?.target.get()?;
        // SAFETY: a set target is a live object (cleared when it dies).
        let strong = unsafe { object::strong(target) };
        let count = strong.get();
        if count == 0 {
            return None;
        }
        if count != IMMORTAL {
            strong.set(count + 1);
        }
        // SAFETY: the count now includes the new handle.
        Some(unsafe { Gc::from_counted(target.cast()) })
    }

    /// Strong handles to the object (0 once it is dead).
    pub fn strong_count(&self) -> usize {
        match self.slot().and_then(|slot| slot.target.get()) {
            // SAFETY: a set target is a live object.
            Some(target) => unsafe { object::strong(target) }.get() as usize,
            None => 0,
        }
    }

    /// Weak references to the object (0 once it is dead, like `Rc`).
    pub fn weak_count(&self) -> usize {
        match self.slot() {
            Some(slot) if slot.target.get().is_some() => slot.weak.get(),
            _ => 0,
        }
    }

    /// Whether two weak references point to the same object (or both to nothing).
    pub fn ptr_eq(&self, other: &Weak<T>) -> bool {
        self.slot == other.slot
    }
}

/// Creates a weak reference to the live object at `value` of heap `inner`.
///
/// # Safety
/// `value` is a live object holding a `T` in `inner`.
pub(crate) unsafe fn downgrade<T: Trace + 'static>(
    value: NonNull<u8>,
    inner: NonNull<HeapInner>,
) -> Result<Weak<T>, AllocError> {
    // SAFETY: the caller guarantees both are live.
    let inner = unsafe { inner.as_ref() };
    // SAFETY: as above.
    if unsafe { object::Flags::has::<T>(value, flags::HAS_WEAK) } {
        let slot = inner.with_weak_table(|table| table[&(value.as_ptr() as usize)]);
        // SAFETY: slots in the table are live.
        let slot_ref = unsafe { slot.as_ref() };
        slot_ref.weak.set(slot_ref.weak.get() + 1);
        return Ok(Weak {
            slot: Some(slot),
            _marker: PhantomData,
        });
    }
    let slot = inner.allocator.alloc(SLOT_LAYOUT)?.cast::<WeakSlot>();
    // SAFETY: a fresh block of the slot's layout; the object is live.
    unsafe {
        slot.write(WeakSlot {
            target: Cell::new(Some(value)),
            weak: Cell::new(1),
        });
        object::Flags::set::<T>(value, flags::HAS_WEAK, true);
    }
    inner.block_allocated();
    inner.with_weak_table(|table| table.insert(value.as_ptr() as usize, slot));
    Ok(Weak {
        slot: Some(slot),
        _marker: PhantomData,
    })
}

/// Weak references to the object at `value`, which has `HAS_WEAK`.
pub(crate) fn weak_count_of(inner: &HeapInner, value: NonNull<u8>) -> usize {
    let slot = inner.with_weak_table(|table| table[&(value.as_ptr() as usize)]);
    // SAFETY: slots in the table are live.
    unsafe { slot.as_ref() }.weak.get()
}

/// Detaches the weak slot of a dying object: its weak references stop
/// upgrading. The caller clears the object's `HAS_WEAK` flag.
pub(crate) fn clear(inner: &HeapInner, value: NonNull<u8>) {
    if let Some(slot) = inner.with_weak_table(|table| table.remove(&(value.as_ptr() as usize))) {
        // SAFETY: slots in the table are live; weak references keep them.
        unsafe { slot.as_ref() }.target.set(None);
    }
}

impl<T: Trace + 'static> Clone for Weak<T> {
    fn clone(&self) -> Weak<T> {
        if let Some(slot) = self.slot() {
            slot.weak.set(slot.weak.get() + 1);
        }
        Weak {
            slot: self.slot,
            _marker: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Drop for Weak<T> {
    fn drop(&mut self) {
        let Some(slot_ptr) = self.slot else { return };
        // SAFETY: this weak reference keeps the slot alive until here.
        let slot = unsafe { slot_ptr.as_ref() };
        let left = slot.weak.get() - 1;
        slot.weak.set(left);
        if left > 0 {
            return;
        }
        // SAFETY: the slot is a live block of its heap; the heap outlives it.
        unsafe {
            let inner_ptr =
                NonNull::new_unchecked(Allocator::owner_data_of(slot_ptr.cast(), SLOT_LAYOUT).cast::<HeapInner>());
            let inner = inner_ptr.as_ref();
            if let Some(target) = slot.target.get() {
                // The object lives on without weak references.
                inner.with_weak_table(|table| table.remove(&(target.as_ptr() as usize)));
                object::Flags::set::<T>(target, flags::HAS_WEAK, false);
            }
            inner.allocator.dealloc(slot_ptr.cast(), SLOT_LAYOUT);
            inner.block_freed();
            if inner.release_depth.get() == 0 {
                HeapInner::maybe_destroy(inner_ptr);
            }
        }
    }
}

impl<T: Trace + 'static> Default for Weak<T> {
    fn default() -> Weak<T> {
        Weak::new()
    }
}

impl<T: Trace + 'static> fmt::Debug for Weak<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(Weak)")
    }
}

// SAFETY: a weak reference owns no strong handle, so there is no edge to report.
unsafe impl<T: Trace + 'static> Trace for Weak<T> {
    const MAY_CONTAIN_GC: bool = false;

    fn trace(&self, _tracer: &mut Tracer<'_>) {}
}
