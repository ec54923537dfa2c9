//! [`Weak<T>`], the weak side records, and weak-reference callbacks.
//!
//! ```text
//!  object ──HAS_WEAK flag──► heap side table[object address] ──► WeakSlot { target, weak, callbacks }
//!                                                                  ▲              │
//!  Weak (plain) ─────────────────────────────────────────────────┘              ▼
//!  Weak (with callback) ──► CallbackRecord { slot, handles, callback } ◄── callbacks list
//! ```
//!
//! * The first weak reference to an object allocates a 24-byte [`WeakSlot`]
//!   from the object's heap, files it in the heap's side table and sets the
//!   object's `HAS_WEAK` flag. Plain weak references all point to that slot;
//!   `weak` counts every weak handle to the object.
//! * A weak reference created with a callback (`Gc::downgrade_with_callback`)
//!   has its own [`CallbackRecord`] (its `Weak` pointer carries a tag bit),
//!   listed on the slot. Dropping the last handle to a record cancels its
//!   callback: *a callback is not called if its weak reference died first*.
//! * When the object dies its slot's `target` is cleared first, so every
//!   weak reference to it fails to upgrade, and only then do the callbacks
//!   run, newest first. The object's block is freed at once: weak references
//!   never keep an object's memory and never read reused memory.
//! * During a collection, records owned by garbage objects (found because
//!   `Weak`'s `Trace` reports them) are marked and their callbacks skipped:
//!   a weak reference that is itself garbage never calls back.
//!
//! Objects that never had a weak reference pay nothing: no field, no table
//! entry, one flag bit that is never set.

use core::alloc::Layout;
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::alloc::{AllocError, Allocator};
use crate::heap::inner::HeapInner;
use crate::object::{self, flags, IMMORTAL};
use crate::trace::{Edge, Trace, Tracer};

use super::gc::Gc;

/// The side record shared by all weak references to one object.
#[repr(C)]
pub(crate) struct WeakSlot {
    /// The object's value address while it lives.
    pub(crate) target: Cell<Option<NonNull<u8>>>,
    /// Weak handles to the object (plain and with callbacks).
    pub(crate) weak: Cell<usize>,
    /// Callback records, oldest first (null if none was ever registered).
    callbacks: Cell<*mut Vec<NonNull<CallbackRecord>>>,
}

const SLOT_LAYOUT: Layout = Layout::new::<WeakSlot>();

/// A weak reference with a callback.
pub(crate) struct CallbackRecord {
    slot: NonNull<WeakSlot>,
    /// `Weak` handles pointing at this record (plus one while a callback batch holds it).
    handles: Cell<usize>,
    /// The callback until it runs or is cancelled.
    callback: Cell<Option<ErasedCallback>>,
    /// The record is owned by cyclic garbage: never call back.
    pub(crate) in_garbage: Cell<bool>,
}

/// A weak reference's callback, given its (dead) weak reference.
pub(crate) type Callback<T> = Box<dyn FnOnce(&Weak<T>)>;

/// A callback with its type erased: given the record to rebuild the `Weak`.
type ErasedCallback = Box<dyn FnOnce(NonNull<CallbackRecord>)>;

/// Tag bit of a `Weak` pointer to a callback record.
const RECORD_TAG: usize = 1;

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
    /// A `WeakSlot`, or a `CallbackRecord` with `RECORD_TAG` set; `None` for `Weak::new`.
    ptr: Option<NonNull<u8>>,
    _marker: PhantomData<*const T>,
}

impl<T: Trace + 'static> Weak<T> {
    /// A weak reference to nothing: it never upgrades.
    pub const fn new() -> Weak<T> {
        Weak {
            ptr: None,
            _marker: PhantomData,
        }
    }

    fn record(&self) -> Option<&CallbackRecord> {
        let ptr = self.ptr?;
        if ptr.addr().get() & RECORD_TAG == 0 {
            return None;
        }
        // SAFETY: a tagged pointer is a record this handle keeps alive.
        Some(unsafe { &*ptr.as_ptr().map_addr(|a| a & !RECORD_TAG).cast::<CallbackRecord>() })
    }

    fn slot_ptr(&self) -> Option<NonNull<WeakSlot>> {
        match self.record() {
            Some(record) => Some(record.slot),
            None => self.ptr.map(NonNull::cast),
        }
    }

    fn slot(&self) -> Option<&WeakSlot> {
        // SAFETY: a weak reference keeps its slot alive.
        self.slot_ptr().map(|slot| unsafe { &*slot.as_ptr() })
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
        self.slot_ptr() == other.slot_ptr()
    }

    /// Whether this weak reference still has a callback to call (Python's
    /// `ref.__callback__ is not None`): false once it has run, and for weak
    /// references made without one.
    pub fn has_callback(&self) -> bool {
        self.record().is_some_and(|record| {
            let callback = record.callback.take();
            let has = callback.is_some();
            record.callback.set(callback);
            has
        })
    }
}

/// Creates a weak reference to the live object at `value` of heap `inner`,
/// with a callback if one is given.
///
/// # Safety
/// `value` is a live object holding a `T` in `inner`.
pub(crate) unsafe fn downgrade<T: Trace + 'static>(
    value: NonNull<u8>,
    inner: NonNull<HeapInner>,
    callback: Option<Callback<T>>,
) -> Result<Weak<T>, AllocError> {
    // SAFETY: the caller guarantees both are live.
    let inner = unsafe { inner.as_ref() };
    let key = value.as_ptr() as usize;
    // SAFETY: as above.
    let slot = if unsafe { object::Flags::has::<T>(value, flags::HAS_WEAK) } {
        inner.with_weak_table(|table| table[&key])
    } else {
        let slot = inner.allocator.alloc(SLOT_LAYOUT)?.cast::<WeakSlot>();
        // SAFETY: a fresh block of the slot's layout; the object is live.
        unsafe {
            slot.write(WeakSlot {
                target: Cell::new(Some(value)),
                weak: Cell::new(0),
                callbacks: Cell::new(core::ptr::null_mut()),
            });
            object::Flags::set::<T>(value, flags::HAS_WEAK, true);
        }
        inner.block_allocated();
        inner.with_weak_table(|table| table.insert(key, slot));
        slot
    };
    // SAFETY: slots in the table are live.
    let slot_ref = unsafe { slot.as_ref() };
    slot_ref.weak.set(slot_ref.weak.get() + 1);
    let Some(callback) = callback else {
        return Ok(Weak {
            ptr: Some(slot.cast()),
            _marker: PhantomData,
        });
    };
    let erased: ErasedCallback = Box::new(move |record: NonNull<CallbackRecord>| {
        // The batch that runs the callback holds a handle to the record; this
        // temporary `Weak` adds its own and gives it back when dropped.
        // SAFETY: the record is alive while the batch holds it.
        unsafe { add_record_handle(record) };
        let weak = Weak::<T> {
            ptr: Some(record.cast::<u8>().map_addr(|a| a | RECORD_TAG)),
            _marker: PhantomData,
        };
        callback(&weak);
    });
    let record = NonNull::from(Box::leak(Box::new(CallbackRecord {
        slot,
        handles: Cell::new(1),
        callback: Cell::new(Some(erased)),
        in_garbage: Cell::new(false),
    })));
    let mut list = slot_ref.callbacks.get();
    if list.is_null() {
        list = Box::into_raw(Box::new(Vec::new()));
        slot_ref.callbacks.set(list);
    }
    // SAFETY: the list is owned by the slot; no user code runs while it is borrowed.
    unsafe { (*list).push(record) };
    Ok(Weak {
        ptr: Some(record.cast::<u8>().map_addr(|a| a | RECORD_TAG)),
        _marker: PhantomData,
    })
}

/// # Safety
/// `record` is a live callback record.
unsafe fn add_record_handle(record: NonNull<CallbackRecord>) {
    // SAFETY: forwarded.
    let record = unsafe { record.as_ref() };
    record.handles.set(record.handles.get() + 1);
    // SAFETY: a record keeps its slot alive.
    let slot = unsafe { record.slot.as_ref() };
    slot.weak.set(slot.weak.get() + 1);
}

/// Weak references to the object at `value`, which has `HAS_WEAK`.
pub(crate) fn weak_count_of(inner: &HeapInner, value: NonNull<u8>) -> usize {
    let slot = inner.with_weak_table(|table| table[&(value.as_ptr() as usize)]);
    // SAFETY: slots in the table are live.
    unsafe { slot.as_ref() }.weak.get()
}

/// Callbacks due because their object died, newest first. The batch holds a
/// handle to each record until [`run`](Self::run) or drop.
pub(crate) struct PendingCallbacks(Vec<NonNull<CallbackRecord>>);

impl PendingCallbacks {
    pub(crate) fn none() -> Self {
        PendingCallbacks(Vec::new())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn append(&mut self, mut other: PendingCallbacks) {
        self.0.append(&mut other.0);
    }

    /// Runs the callbacks (newest first within each object), skipping those
    /// whose weak references are gone or are garbage; panics are reported.
    pub(crate) fn run(mut self, inner: &HeapInner) {
        for record in core::mem::take(&mut self.0) {
            // SAFETY: the batch holds a handle, so the record is alive.
            let r = unsafe { record.as_ref() };
            let live_handles = r.handles.get() > 1;
            if live_handles && !r.in_garbage.get() {
                if let Some(callback) = r.callback.take() {
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(record))) {
                        inner.report_panic(format_args!("a weak reference callback"), &*panic);
                    }
                }
            }
            // SAFETY: gives back the batch's handle; the object is dead, so
            // there is no flag to clear.
            let alive = unsafe { drop_record_handle(record) };
            debug_assert!(alive.is_none());
        }
    }
}

impl Drop for PendingCallbacks {
    fn drop(&mut self) {
        for record in core::mem::take(&mut self.0) {
            // SAFETY: as in `run`.
            let alive = unsafe { drop_record_handle(record) };
            debug_assert!(alive.is_none());
        }
    }
}

/// Detaches the weak slot of a dying object: its weak references stop
/// upgrading. Returns its callbacks, to be run once the caller is ready. The
/// caller clears the object's `HAS_WEAK` flag.
pub(crate) fn clear(inner: &HeapInner, value: NonNull<u8>) -> PendingCallbacks {
    let Some(slot) = inner.with_weak_table(|table| table.remove(&(value.as_ptr() as usize))) else {
        return PendingCallbacks::none();
    };
    // SAFETY: slots in the table are live; weak references keep them.
    let slot = unsafe { slot.as_ref() };
    slot.target.set(None);
    let list = slot.callbacks.replace(core::ptr::null_mut());
    if list.is_null() {
        return PendingCallbacks::none();
    }
    // SAFETY: the list was owned by the slot and is now ours.
    let mut records = *unsafe { Box::from_raw(list) };
    records.reverse(); // newest first
    for &record in &records {
        // SAFETY: listed records are alive; the batch takes a handle.
        unsafe { add_record_handle(record) };
    }
    PendingCallbacks(records)
}

/// Drops one handle to a callback record (and, with the last, the record and
/// its callback). Also drops the handle's count on the slot; see
/// [`drop_slot_handle`] for the result.
///
/// # Safety
/// The caller owns one handle to the live record.
#[must_use]
unsafe fn drop_record_handle(record: NonNull<CallbackRecord>) -> Option<NonNull<u8>> {
    // SAFETY: the caller's handle keeps the record alive.
    let r = unsafe { record.as_ref() };
    let slot = r.slot;
    let left = r.handles.get() - 1;
    r.handles.set(left);
    if left == 0 {
        // SAFETY: the slot is alive (the record holds a count on it).
        let slot_ref = unsafe { slot.as_ref() };
        let list = slot_ref.callbacks.get();
        if !list.is_null() {
            // Cancel: the callback will never be called.
            // SAFETY: the list is owned by the slot; no user code runs here.
            unsafe { (*list).retain(|&other| other != record) };
        }
        // SAFETY: the last handle: nothing refers to the record any more.
        // Dropping it may run user code (the callback's captures).
        drop(unsafe { Box::from_raw(record.as_ptr()) });
    }
    // SAFETY: the handle's count on the slot.
    unsafe { drop_slot_handle(slot) }
}

/// Drops one weak handle's count on a slot; frees the slot with the last.
/// Returns the object if it is alive and just lost its last weak reference:
/// the caller, which knows its type, must clear its `HAS_WEAK` flag.
///
/// # Safety
/// The caller owns one count on the live slot.
#[must_use]
unsafe fn drop_slot_handle(slot_ptr: NonNull<WeakSlot>) -> Option<NonNull<u8>> {
    // SAFETY: the caller's count keeps the slot alive.
    let slot = unsafe { slot_ptr.as_ref() };
    let left = slot.weak.get() - 1;
    slot.weak.set(left);
    if left > 0 {
        return None;
    }
    // SAFETY: the slot is a live block of its heap; the heap outlives it.
    unsafe {
        let inner_ptr =
            NonNull::new_unchecked(Allocator::owner_data_of(slot_ptr.cast(), SLOT_LAYOUT).cast::<HeapInner>());
        let inner = inner_ptr.as_ref();
        let target = slot.target.get();
        if let Some(target) = target {
            // The object lives on without weak references.
            inner.with_weak_table(|table| table.remove(&(target.as_ptr() as usize)));
        }
        let list = slot.callbacks.replace(core::ptr::null_mut());
        if !list.is_null() {
            drop(Box::from_raw(list));
        }
        inner.allocator.dealloc(slot_ptr.cast(), SLOT_LAYOUT);
        inner.block_freed();
        if target.is_none() && inner.release_depth.get() == 0 {
            HeapInner::maybe_destroy(inner_ptr);
        }
        target
    }
}

impl<T: Trace + 'static> Clone for Weak<T> {
    fn clone(&self) -> Weak<T> {
        if let Some(record) = self.record() {
            record.handles.set(record.handles.get() + 1);
        }
        if let Some(slot) = self.slot() {
            slot.weak.set(slot.weak.get() + 1);
        }
        Weak {
            ptr: self.ptr,
            _marker: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Drop for Weak<T> {
    fn drop(&mut self) {
        let Some(ptr) = self.ptr else { return };
        let alive_without_weak = if ptr.addr().get() & RECORD_TAG != 0 {
            let record = ptr.as_ptr().map_addr(|a| a & !RECORD_TAG).cast::<CallbackRecord>();
            // SAFETY: this handle owns one count on the record.
            unsafe { drop_record_handle(NonNull::new_unchecked(record)) }
        } else {
            // SAFETY: this handle owns one count on the slot.
            unsafe { drop_slot_handle(ptr.cast()) }
        };
        if let Some(target) = alive_without_weak {
            // SAFETY: the object is alive and holds a T; its heap lives.
            unsafe {
                object::Flags::set::<T>(target, flags::HAS_WEAK, false);
                let inner = super::gc::heap_of::<T>(target, crate::object::ObjectKind::<T>::VTABLE.block_layout);
                if inner.as_ref().release_depth.get() == 0 {
                    HeapInner::maybe_destroy(inner);
                }
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

// SAFETY: a weak reference owns no strong handle. A weak reference with a
// callback reports its record so the collector can tell when the weak
// reference itself is garbage; that is why a value holding weak references
// is tracked (`MAY_CONTAIN_GC`), as CPython tracks weakref objects.
unsafe impl<T: Trace + 'static> Trace for Weak<T> {
    const MAY_CONTAIN_GC: bool = true;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if self.record().is_some() {
            if let Some(ptr) = self.ptr {
                // SAFETY: a tagged pointer is non-null once the tag is removed.
                let record = unsafe { NonNull::new_unchecked(ptr.as_ptr().map_addr(|a| a & !RECORD_TAG).cast()) };
                tracer.edge(Edge::WeakCallback(record));
            }
        }
    }
}
