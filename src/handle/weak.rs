//! [`Weak<T>`], the weak side records, and weak-reference callbacks.
//!
//! ```text
//!  leaf:    [flags: slot number | HAS_WEAK][strong][value]
//!                   │ (pool index, offset)
//!                   ▼
//!           WeakTable.pools[index] + offset ─────┐
//!                                                ▼
//!  tracked: HAS_WEAK ──► WeakTable.by_address ──► WeakSlot { target, weak, callbacks, raw, heap }
//!                        [object address]          ▲              │
//!  Weak (plain) ───────────────────────────────────┘              ▼
//!  Weak (with callback) ──► CallbackRecord { slot, handles, callback, raw } ◄── callbacks list
//!  RawWeak (weak collections) ──► the slot (its `raw` callback) or a record
//! ```
//!
//! * The first weak reference to an object allocates a 48-byte [`WeakSlot`]
//!   from the object's heap (one of a few freed slots the heap keeps for
//!   reuse, see [`WeakTable`], else from the allocator), files it in the
//!   heap's [`WeakTable`] and sets the object's `HAS_WEAK` flag. Plain weak
//!   references all point to that slot; `weak` counts every weak handle to
//!   the object.
//! * Filing: a leaf object keeps its slot's *number* in the spare high bits
//!   of its `flags` word: which pool of the slot size class (a small index,
//!   the pool's start kept in `WeakTable::pools`) and the slot's offset in
//!   it. Finding, filing and unfiling a leaf's slot is a shift, a mask and
//!   one read of a short vector: no hashing, no table probe. A tracked
//!   object's header has no spare bits, so its slot is filed by address in a
//!   hashbrown table (a multiplicative hash of the address), as is a leaf if
//!   every pool number is taken.
//! * A weak reference created with a callback (`Gc::downgrade_with_callback`)
//!   has its own [`CallbackRecord`] (its `Weak` pointer carries a tag bit),
//!   listed on the slot (the list is the record itself while there is one,
//!   a boxed vector beyond). Dropping the last handle to a record cancels its
//!   callback: *a callback is not called if its weak reference died first*.
//! * [`RawWeak`] is the weak collections' reference: an internal callback
//!   (two words of plain data, [`RawCallback`]: the collection's hook and
//!   the entry's hash), kept in the slot's `raw` field for the object's first
//!   one (no allocation) or in a record. Internal callbacks run no user code
//!   and run before the user callbacks of a batch (of every object in it,
//!   when a collection frees several), so weak collections are up to date
//!   when those run. An object whose count reaches zero with only that
//!   inline callback (the usual entry of a weak cache) runs it at once,
//!   without a callback batch. A collection replacing an entry's object
//!   moves the slot to the new object when the entry was the old one's only
//!   weak reference ([`RawWeak::retarget`]).
//! * When the object dies its slot's `target` is cleared first, so every
//!   weak reference to it fails to upgrade, and only then do the callbacks
//!   run, newest first. The object's block is freed at once: weak references
//!   never keep an object's memory and never read reused memory.
//! * During a collection, records owned by garbage objects (found because
//!   `Weak`'s `Trace` reports them) are marked and their callbacks skipped:
//!   a weak reference that is itself garbage never calls back.
//!
//! Objects that never had a weak reference pay nothing: no field, no table
//! entry, one flag bit that is never set (and, for leaves, number bits that
//! stay zero).

use core::alloc::Layout;
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::alloc::{AllocError, POOL_SIZE};
use crate::heap::inner::HeapInner;
use crate::object::{self, flags, ObjectKind};
use crate::trace::{Edge, Trace, Tracer};

use super::gc::Gc;

/// The side record shared by all weak references to one object.
#[repr(C)]
pub(crate) struct WeakSlot {
    /// The object's value address while it lives.
    pub(crate) target: Cell<Option<NonNull<u8>>>,
    /// Weak handles to the object (plain and with callbacks).
    pub(crate) weak: Cell<usize>,
    /// Callback records, oldest first: null if none, one record tagged with
    /// [`ONE_RECORD`] (the usual case: no allocation), or a boxed vector.
    callbacks: Cell<*mut Vec<NonNull<CallbackRecord>>>,
    /// The callback of the first [`RawWeak`] to the object, kept here instead
    /// of in a record: the weak collections' entries cost no allocation.
    raw: Cell<Option<RawCallback>>,
    /// The heap the slot (and its object) belongs to.
    heap: NonNull<HeapInner>,
}

const SLOT_LAYOUT: Layout = Layout::new::<WeakSlot>();
const _: () = assert!(SLOT_LAYOUT.size() == 48);

/// Bits of a leaf object's `flags` word below its slot number (the flags).
const LEAF_NUMBER_SHIFT: u32 = 8;
const _: () = assert!(flags::ALL < 1 << LEAF_NUMBER_SHIFT);
/// Bits of a slot number giving the slot's offset in its pool, in words.
const OFFSET_BITS: u32 = (POOL_SIZE / SLOT_ALIGN).trailing_zeros();
/// Pools that can hold numbered slots at once.
const MAX_SLOT_POOLS: usize = (1 << (32 - LEAF_NUMBER_SHIFT - OFFSET_BITS)) - 1;
const SLOT_ALIGN: usize = core::mem::align_of::<WeakSlot>();
const _: () = assert!(
    crate::alloc::SizeClass::for_layout(SLOT_LAYOUT).is_some() && POOL_SIZE.is_power_of_two(),
    "slots are small blocks, each inside its POOL_SIZE-aligned pool"
);

/// How an object with `HAS_WEAK` finds its [`WeakSlot`] (one table per
/// heap, in `HeapInner`).
///
/// A leaf object keeps its slot's *number* in the spare high bits of its
/// `flags` word: the slot's pool (a small index into `pools`) and its offset
/// in that pool. So a leaf reaches its slot with no lookup beyond `pools`,
/// a short vector that stays in cache. A tracked object, whose header has no
/// spare bits, is looked up by address in `by_address`, as is a leaf if
/// every pool number is taken.
pub(crate) struct WeakTable {
    /// Object value address → slot, for objects without a slot number.
    by_address: hashbrown::HashMap<usize, NonNull<WeakSlot>, AddressHash>,
    /// The pools holding numbered slots (`None`: a free pool number).
    pools: Vec<Option<SlotPool>>,
    /// Free pool numbers.
    free_pools: Vec<u32>,
    /// Pool start address → its number in `pools`.
    pool_numbers: hashbrown::HashMap<usize, u32, AddressHash>,
    /// A direct-mapped cache of `pool_numbers` (start address, number),
    /// indexed by low bits of the pool's address: new slots come from few
    /// pools, which are then found without a lookup.
    recent: [(usize, u32); RECENT_POOLS],
    /// Freed slots kept for reuse, at most [`SPARE_SLOTS`], all from one pool
    /// (so they pin at most one otherwise empty pool), while other slots
    /// live and the heap has no memory limit: a weak cache churning its
    /// entries reuses a few warm slots instead of going through the
    /// allocator (and its pool headers) twice per entry. Given back to the
    /// allocator when the last slot is freed, and before the heap reports
    /// its statistics table or gets a limit ([`release_spare_slots`]);
    /// `Heap::bytes_in_use` leaves them out ([`spare_slot_bytes`]). So what
    /// is reported and limited stays exact: objects plus one record per
    /// object with weak references.
    spare: Vec<NonNull<WeakSlot>>,
    /// Slots handed out and not freed.
    live_slots: usize,
}

/// Most freed slots a [`WeakTable`] keeps for reuse.
const SPARE_SLOTS: usize = 32;

/// Entries of [`WeakTable::recent`].
const RECENT_POOLS: usize = 64;

/// The entry of [`WeakTable::recent`] for the pool starting at `key`.
#[inline(always)]
fn recent_index(key: usize) -> usize {
    (key / POOL_SIZE) % RECENT_POOLS
}

/// A pool of the slot size class with numbered slots in it.
struct SlotPool {
    /// The pool's start (the provenance to reach every slot in it).
    start: NonNull<u8>,
    /// Numbered slots in it; the pool is forgotten when this reaches zero
    /// (it is live until then: it holds a live block).
    slots: u32,
}

impl WeakTable {
    /// Weak records handed out and not freed (spares excluded).
    #[inline]
    pub(crate) fn live_slots(&self) -> usize {
        self.live_slots
    }

    pub(crate) fn new() -> WeakTable {
        WeakTable {
            by_address: hashbrown::HashMap::default(),
            pools: Vec::new(),
            free_pools: Vec::new(),
            pool_numbers: hashbrown::HashMap::default(),
            recent: [(0, 0); RECENT_POOLS],
            spare: Vec::new(),
            live_slots: 0,
        }
    }

    /// Gives the live slot `slot` a number (never 0), if a pool number is left.
    #[inline]
    fn number(&mut self, slot: NonNull<WeakSlot>) -> Option<u32> {
        let key = slot.addr().get() & !(POOL_SIZE - 1);
        let recent = &self.recent[recent_index(key)];
        let index = if recent.0 == key {
            recent.1
        } else {
            self.pool_number(slot)?
        };
        let pool = self.pools[index as usize].as_mut().expect("a numbered pool");
        pool.slots += 1;
        let offset = (slot.addr().get() - key) / SLOT_ALIGN;
        Some((index + 1) << OFFSET_BITS | offset as u32)
    }

    /// The number of `slot`'s pool, given one if it has none, and cached in
    /// `recent`; `None` if every number is taken.
    #[cold]
    #[inline(never)]
    fn pool_number(&mut self, slot: NonNull<WeakSlot>) -> Option<u32> {
        let start = slot.cast::<u8>().map_addr(|a| nonzero_addr(a.get() & !(POOL_SIZE - 1)));
        let key = start.addr().get();
        let index = match self.pool_numbers.get(&key) {
            Some(&index) => index,
            None => {
                let index = match self.free_pools.pop() {
                    Some(index) => index,
                    None if self.pools.len() < MAX_SLOT_POOLS => {
                        self.pools.push(None);
                        (self.pools.len() - 1) as u32
                    }
                    None => return None,
                };
                self.pools[index as usize] = Some(SlotPool { start, slots: 0 });
                self.pool_numbers.insert(key, index);
                index
            }
        };
        self.recent[recent_index(key)] = (key, index);
        Some(index)
    }

    /// The slot numbered `number`.
    fn numbered(&self, number: u32) -> NonNull<WeakSlot> {
        let pool = self.pools[(number >> OFFSET_BITS) as usize - 1]
            .as_ref()
            .expect("a numbered pool");
        let offset = (number & ((1 << OFFSET_BITS) - 1)) as usize * SLOT_ALIGN;
        // SAFETY: the offset of a numbered slot in its pool, which is live
        // while the slot is; `start` has the provenance of the whole pool.
        unsafe { pool.start.add(offset).cast() }
    }

    /// Frees `number`, returning its slot.
    #[inline]
    fn unnumber(&mut self, number: u32) -> NonNull<WeakSlot> {
        let index = (number >> OFFSET_BITS) as usize - 1;
        let pool = self.pools[index].as_mut().expect("a numbered pool");
        let offset = (number & ((1 << OFFSET_BITS) - 1)) as usize * SLOT_ALIGN;
        // SAFETY: as in `numbered`.
        let slot = unsafe { pool.start.add(offset).cast() };
        pool.slots -= 1;
        if pool.slots == 0 {
            self.forget_pool(index);
        }
        slot
    }

    /// Forgets pool `index`, which has no numbered slot left (it may be
    /// freed with its last slot).
    #[cold]
    #[inline(never)]
    fn forget_pool(&mut self, index: usize) {
        let Some(pool) = self.pools[index].take() else { return };
        let key = pool.start.addr().get();
        self.pool_numbers.remove(&key);
        self.free_pools.push(index as u32);
        if self.recent[recent_index(key)].0 == key {
            self.recent[recent_index(key)] = (0, 0);
        }
    }
}

/// A new, uninitialised slot block of `inner`: a spare one, or from the allocator.
#[inline]
fn alloc_slot(inner: &HeapInner) -> Result<NonNull<WeakSlot>, AllocError> {
    let slot = match inner.with_weak_table(|table| table.spare.pop()) {
        Some(slot) => slot,
        None => inner.allocator.alloc(SLOT_LAYOUT)?.cast(),
    };
    inner.with_weak_table(|table| table.live_slots += 1);
    Ok(slot)
}

/// Frees a slot block of `inner` (to the spares, or to the allocator).
///
/// # Safety
/// `slot` came from [`alloc_slot`] on `inner` and is not used again.
#[inline]
unsafe fn free_slot(inner: &HeapInner, slot: NonNull<WeakSlot>) {
    let limited = inner.allocator.limit().is_some();
    // Spares all come from one pool, and the first one is not the last block
    // of its pool: spares alone then keep at most one otherwise empty pool
    // (and its arena) from going back, whatever the program frees later.
    let same_pool = |spare: NonNull<WeakSlot>| (spare.addr().get() ^ slot.addr().get()) < POOL_SIZE;
    let kept = inner.with_weak_table(|table| {
        table.live_slots -= 1;
        let fits = match table.spare.first() {
            Some(&first) => same_pool(first),
            // SAFETY: `slot` is a live small block of `inner`'s allocator.
            None => unsafe { inner.allocator.pool_has_other_blocks(slot.cast()) },
        };
        if table.live_slots > 0 && table.spare.len() < SPARE_SLOTS && !limited && fits {
            table.spare.push(slot);
            true
        } else {
            false
        }
    });
    if !kept {
        // SAFETY: forwarded.
        unsafe { inner.allocator.dealloc(slot.cast(), SLOT_LAYOUT) };
        if inner.with_weak_table(|table| table.live_slots == 0) {
            release_spare_slots(inner);
        }
    }
}

/// Bytes of the allocator's count held by spare slots (freed slots kept for
/// reuse), which the heap does not report as in use.
pub(crate) fn spare_slot_bytes(inner: &HeapInner) -> usize {
    inner.with_weak_table(|table| table.spare.len()) * crate::alloc::usable_size(SLOT_LAYOUT)
}

/// Gives every spare slot of `inner` back to the allocator.
#[cold]
#[inline(never)]
pub(crate) fn release_spare_slots(inner: &HeapInner) {
    let spare = inner.with_weak_table(|table| core::mem::take(&mut table.spare));
    for slot in spare {
        // SAFETY: spare slots are unused blocks of the slot layout from
        // `inner`'s allocator.
        unsafe { inner.allocator.dealloc(slot.cast(), SLOT_LAYOUT) };
    }
}

/// A nonzero address (a masked pool start is never zero: pools are not at
/// address zero).
fn nonzero_addr(addr: usize) -> core::num::NonZeroUsize {
    core::num::NonZeroUsize::new(addr).expect("a pool is not at address zero")
}

/// Hashes object addresses for [`WeakTable::by_address`]. Addresses are
/// distinct and not chosen by an adversary, so one multiplication mixes
/// enough; the rotation brings its well-mixed high bits down to where
/// hashbrown takes the bucket index (it takes its tag from the top bits).
#[derive(Clone, Copy, Default)]
struct AddressHash;

impl core::hash::BuildHasher for AddressHash {
    type Hasher = AddressHasher;

    fn build_hasher(&self) -> AddressHasher {
        AddressHasher(0)
    }
}

struct AddressHasher(u64);

impl core::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = n as u64;
    }
}

/// The `flags` word of the leaf object at `value`.
///
/// # Safety
/// `value` is the value address of a live leaf object.
#[inline(always)]
unsafe fn leaf_flags<'a>(value: NonNull<u8>) -> &'a Cell<u32> {
    // SAFETY: forwarded.
    unsafe { &object::leaf_header(value).as_ref().flags }
}

/// The slot of the live object at `value`, which has `HAS_WEAK`; `tracked`
/// says its header kind.
///
/// # Safety
/// `value` is a live object of `inner` with that header kind.
#[inline]
unsafe fn find_slot(inner: &HeapInner, value: NonNull<u8>, tracked: bool) -> NonNull<WeakSlot> {
    if !tracked {
        // SAFETY: forwarded.
        let number = unsafe { leaf_flags(value) }.get() >> LEAF_NUMBER_SHIFT;
        if number != 0 {
            return inner.with_weak_table(|table| table.numbered(number));
        }
    }
    inner.with_weak_table(|table| table.by_address[&(value.as_ptr() as usize)])
}

/// Files the new `slot` of the live object at `value` and sets its `HAS_WEAK` flag.
///
/// # Safety
/// As [`find_slot`]; the object has no slot yet.
#[inline]
unsafe fn file_slot(inner: &HeapInner, value: NonNull<u8>, tracked: bool, slot: NonNull<WeakSlot>) {
    if !tracked {
        if let Some(number) = inner.with_weak_table(|table| table.number(slot)) {
            // SAFETY: forwarded; the number bits were clear (no slot).
            let word = unsafe { leaf_flags(value) };
            word.set(word.get() | (number << LEAF_NUMBER_SHIFT) | flags::HAS_WEAK as u32);
            return;
        }
    }
    // SAFETY: forwarded.
    unsafe { file_by_address(inner, value, tracked, slot) }
}

/// [`file_slot`] for an object without a slot number.
///
/// # Safety
/// As [`file_slot`].
#[cold]
#[inline(never)]
unsafe fn file_by_address(inner: &HeapInner, value: NonNull<u8>, tracked: bool, slot: NonNull<WeakSlot>) {
    inner.with_weak_table(|table| table.by_address.insert(value.as_ptr() as usize, slot));
    // SAFETY: forwarded.
    unsafe {
        if tracked {
            object::tracked_header(value).as_ref().set(flags::HAS_WEAK, true);
        } else {
            leaf_flags(value).set(leaf_flags(value).get() | flags::HAS_WEAK as u32);
        }
    }
}

/// Unfiles the slot of the object at `value`, returning it. A leaf's
/// `HAS_WEAK` flag is cleared with its slot number; a tracked object's
/// header is not touched (the caller clears its flag).
///
/// # Safety
/// If `tracked` is false, `value` is a live leaf object of `inner` with
/// `HAS_WEAK`. (A tracked object's address is only looked up.)
#[inline]
unsafe fn unfile_slot(inner: &HeapInner, value: NonNull<u8>, tracked: bool) -> Option<NonNull<WeakSlot>> {
    if !tracked {
        // SAFETY: forwarded.
        let word = unsafe { leaf_flags(value) };
        let number = word.get() >> LEAF_NUMBER_SHIFT;
        word.set(word.get() & ((1 << LEAF_NUMBER_SHIFT) - 1) & !(flags::HAS_WEAK as u32));
        if number != 0 {
            return Some(inner.with_weak_table(|table| table.unnumber(number)));
        }
    }
    unfile_by_address(inner, value)
}

/// [`unfile_slot`] for an object without a slot number.
#[cold]
#[inline(never)]
fn unfile_by_address(inner: &HeapInner, value: NonNull<u8>) -> Option<NonNull<WeakSlot>> {
    inner.with_weak_table(|table| table.by_address.remove(&(value.as_ptr() as usize)))
}

/// A weak reference with a callback.
pub(crate) struct CallbackRecord {
    slot: NonNull<WeakSlot>,
    /// `Weak` handles pointing at this record (plus one while a callback batch holds it).
    handles: Cell<usize>,
    /// The callback until it runs or is cancelled.
    callback: Cell<Option<ErasedCallback>>,
    /// The internal callback of a [`RawWeak`] (instead of `callback`).
    raw: Cell<Option<RawCallback>>,
    /// The record is owned by cyclic garbage: never call back.
    pub(crate) in_garbage: Cell<bool>,
}

/// A weak reference's callback, given its (dead) weak reference.
pub(crate) type Callback<T> = Box<dyn FnOnce(&Weak<T>)>;

/// A callback with its type erased: given the record to rebuild the `Weak`.
type ErasedCallback = Box<dyn FnOnce(NonNull<CallbackRecord>)>;

/// Tag bit of a `Weak` pointer to a callback record.
const RECORD_TAG: usize = 1;

/// Tag bit of a slot's `callbacks` word holding a single record.
const ONE_RECORD: usize = 1;

/// The internal callback of a [`RawWeak`]: plain data, so a record needs no
/// allocation for it and dropping it runs no user code. Two words, so that
/// it fits in a 48-byte slot beside the slot's heap pointer.
#[derive(Copy, Clone, Debug)]
pub(crate) struct RawCallback {
    /// What is called: the first field of the receiver (a weak collection's
    /// core), which the pointer also reaches (it points to the whole receiver).
    pub(crate) hook: NonNull<RawHook>,
    pub(crate) hash: u64,
}

/// The function a [`RawCallback`] calls, at the start of its receiver.
#[repr(C)]
pub(crate) struct RawHook {
    /// Called once when the object dies, with the hook pointer, the
    /// callback's `hash` and the reference's identity (see [`RawWeak::identity`]).
    pub(crate) func: unsafe fn(NonNull<RawHook>, u64, usize),
}

impl RawCallback {
    fn call(self, identity: usize) {
        // SAFETY: the creator of the `RawWeak` guarantees that the hook is
        // live and its function may be called while the `RawWeak` exists
        // (the batch only calls it then).
        unsafe { (self.hook.as_ref().func)(self.hook, self.hash, identity) }
    }
}

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
        // SAFETY: a live object with a nonzero count; the count then includes
        // the new handle.
        unsafe {
            object::retain(target, ObjectKind::<T>::VTABLE.block_layout, ObjectKind::<T>::TRACKED);
            Some(Gc::from_counted(target.cast()))
        }
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
    // SAFETY: forwarded caller contract.
    let slot = unsafe { slot_for::<T>(value, inner)? };
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
    // SAFETY: `slot_for` counted this handle on the live slot.
    let record = unsafe { push_record(slot, Some(erased), None) };
    Ok(Weak {
        ptr: Some(record.cast::<u8>().map_addr(|a| a | RECORD_TAG)),
        _marker: PhantomData,
    })
}

/// The weak slot of the live object at `value` (created on first use), with
/// its weak count already incremented for the caller's new handle.
///
/// # Safety
/// `value` is a live object holding a `T` in `inner`.
unsafe fn slot_for<T: Trace + ?Sized + 'static>(
    value: NonNull<u8>,
    heap: NonNull<HeapInner>,
) -> Result<NonNull<WeakSlot>, AllocError> {
    // SAFETY: the caller guarantees both are live.
    let inner = unsafe { heap.as_ref() };
    let tracked = ObjectKind::<T>::TRACKED;
    // SAFETY: as above.
    let slot = if unsafe { object::Flags::has::<T>(value, flags::HAS_WEAK) } {
        // SAFETY: as above.
        unsafe { find_slot(inner, value, tracked) }
    } else {
        let slot = alloc_slot(inner)?;
        // SAFETY: a fresh block of the slot's layout; the object is live.
        unsafe {
            slot.write(WeakSlot {
                target: Cell::new(Some(value)),
                weak: Cell::new(0),
                callbacks: Cell::new(core::ptr::null_mut()),
                raw: Cell::new(None),
                // The heap's own pointer (its owner data), with the
                // provenance that may free it, not one made from `inner`.
                heap,
            });
            file_slot(inner, value, tracked, slot);
        }
        slot
    };
    // SAFETY: slots in the table are live.
    let slot_ref = unsafe { slot.as_ref() };
    slot_ref.weak.set(slot_ref.weak.get() + 1);
    Ok(slot)
}

/// Creates a callback record on `slot` holding `callback` (or `raw`),
/// listed last (newest) on the slot; the record starts with one handle,
/// which takes over the slot count the caller got from [`slot_for`].
///
/// # Safety
/// `slot` is live and the caller owns one count on it for the new record.
unsafe fn push_record(
    slot: NonNull<WeakSlot>,
    callback: Option<ErasedCallback>,
    raw: Option<RawCallback>,
) -> NonNull<CallbackRecord> {
    let record = NonNull::from(Box::leak(Box::new(CallbackRecord {
        slot,
        handles: Cell::new(1),
        callback: Cell::new(callback),
        raw: Cell::new(raw),
        in_garbage: Cell::new(false),
    })));
    // SAFETY: the caller guarantees a live slot; its list is owned by it and
    // no user code runs while it is borrowed.
    unsafe {
        let slot_ref = slot.as_ref();
        let list = slot_ref.callbacks.get();
        if list.is_null() {
            slot_ref
                .callbacks
                .set(record.as_ptr().map_addr(|a| a | ONE_RECORD).cast());
        } else if list.addr() & ONE_RECORD != 0 {
            let first = NonNull::new_unchecked(list.map_addr(|a| a & !ONE_RECORD).cast::<CallbackRecord>());
            slot_ref.callbacks.set(Box::into_raw(Box::new(vec![first, record])));
        } else {
            (*list).push(record);
        }
    }
    record
}

/// Takes a slot's callback list, newest first (without taking handles).
fn take_list(slot: &WeakSlot) -> PendingCallbacks {
    let list = slot.callbacks.replace(core::ptr::null_mut());
    let mut pending = PendingCallbacks::none();
    if list.is_null() {
    } else if list.addr() & ONE_RECORD != 0 {
        // SAFETY: a tagged word is a record pointer.
        let one = unsafe { NonNull::new_unchecked(list.map_addr(|a| a & !ONE_RECORD).cast::<CallbackRecord>()) };
        pending.push(Due::Record(one));
    } else {
        // SAFETY: an untagged word is the slot's boxed vector, now ours.
        let records = *unsafe { Box::from_raw(list) };
        for &record in records.iter().rev() {
            pending.push(Due::Record(record));
        }
    }
    pending
}

/// Unlists `record` from its slot's callback list (cancelling it).
///
/// # Safety
/// The slot is live; no user code runs meanwhile.
unsafe fn unlist(slot: &WeakSlot, record: NonNull<CallbackRecord>) {
    let list = slot.callbacks.get();
    if list.is_null() {
    } else if list.addr() & ONE_RECORD != 0 {
        if list.map_addr(|a| a & !ONE_RECORD).cast::<CallbackRecord>() == record.as_ptr() {
            slot.callbacks.set(core::ptr::null_mut());
        }
    } else {
        // SAFETY: the slot's boxed vector.
        unsafe { (*list).retain(|&other| other != record) };
    }
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
///
/// # Safety
/// `value` is a live object holding a `T` in `inner`.
pub(crate) unsafe fn weak_count_of<T: Trace + ?Sized + 'static>(inner: &HeapInner, value: NonNull<u8>) -> usize {
    // SAFETY: forwarded; filed slots are live.
    unsafe { find_slot(inner, value, ObjectKind::<T>::TRACKED).as_ref() }
        .weak
        .get()
}

/// One callback due: a record's, or the inline raw callback of a slot.
#[derive(Copy, Clone)]
enum Due {
    Record(NonNull<CallbackRecord>),
    Inline(NonNull<WeakSlot>),
}

impl Due {
    /// Gives back the batch's handle.
    ///
    /// # Safety
    /// The batch owns a handle to the record, or a count on the slot.
    unsafe fn release(self) {
        // SAFETY: forwarded; the object is dead, so its header kind is not read.
        unsafe {
            match self {
                Due::Record(record) => drop_record_handle(record, false),
                Due::Inline(slot) => drop_slot_handle(slot, false),
            }
        }
    }
}

/// Callbacks due because their object died: for each object, the inline raw
/// callback (internal, no user code) first, then the records newest first.
/// The batch holds a handle to each record (a count on each inline slot)
/// until [`run`](Self::run) or drop. The first entry is kept apart so that
/// the usual batch, one callback, allocates nothing.
pub(crate) struct PendingCallbacks {
    /// The first entry; `None` only if the batch is empty.
    one: Option<Due>,
    more: Vec<Due>,
}

impl PendingCallbacks {
    pub(crate) fn none() -> Self {
        PendingCallbacks {
            one: None,
            more: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.one.is_none()
    }

    fn push(&mut self, due: Due) {
        if self.one.is_none() {
            self.one = Some(due);
        } else {
            self.more.push(due);
        }
    }

    pub(crate) fn append(&mut self, mut other: PendingCallbacks) {
        let Some(first) = other.one.take() else { return };
        self.push(first);
        self.more.append(&mut other.more);
    }

    /// Runs the callbacks, skipping those whose weak references are gone or
    /// are garbage; panics are reported.
    #[inline]
    pub(crate) fn run(mut self, inner: &HeapInner) {
        if !self.more.is_empty() {
            self.run_more(inner);
        } else if let Some(first) = self.one.take() {
            // SAFETY: the batch's handle.
            unsafe { first.run(inner) };
        }
    }

    /// Runs a batch of several callbacks: the internal ones of every object
    /// first (they run no user code), so that weak collections are up to
    /// date — `len()` exact — when the first user callback runs, even for
    /// objects that die later in the same batch; then the user callbacks in
    /// the batch's order.
    #[cold]
    #[inline(never)]
    fn run_more(&mut self, inner: &HeapInner) {
        let mut user = core::mem::take(&mut self.more);
        if let Some(first) = self.one.take() {
            user.insert(0, first);
        }
        user.retain(|&due| {
            // SAFETY: the batch's handle keeps the record or slot alive.
            if unsafe { due.is_internal() } {
                // SAFETY: the batch's handle, given up here.
                unsafe { due.run(inner) };
                false
            } else {
                true
            }
        });
        for due in user {
            // SAFETY: the batch's handle.
            unsafe { due.run(inner) };
        }
    }
}

impl Due {
    /// Whether this is a weak collection's callback (no user code).
    ///
    /// # Safety
    /// The batch owns a handle to the record, or a count on the slot.
    unsafe fn is_internal(self) -> bool {
        match self {
            Due::Inline(_) => true,
            // SAFETY: the batch's handle keeps the record alive.
            Due::Record(record) => unsafe { record.as_ref() }.raw.get().is_some(),
        }
    }

    /// Runs the callback (unless cancelled or owned by garbage), then gives
    /// back the batch's handle.
    ///
    /// # Safety
    /// The batch owns a handle to the record, or a count on the slot, and
    /// gives it up here.
    #[inline]
    unsafe fn run(self, inner: &HeapInner) {
        match self {
            Due::Record(record) => {
                // SAFETY: the batch holds a handle, so the record is alive.
                let r = unsafe { record.as_ref() };
                let live_handles = r.handles.get() > 1;
                if live_handles && !r.in_garbage.get() {
                    if let Some(callback) = r.callback.take() {
                        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(record))) {
                            inner.report_panic(format_args!("a weak reference callback"), &*panic);
                        }
                    } else if let Some(raw) = r.raw.take() {
                        raw.call(record.as_ptr() as usize);
                    }
                }
            }
            Due::Inline(slot) => {
                // SAFETY: the batch holds a count on the slot. Dropping
                // the `RawWeak` cleared the callback (cancelled it).
                if let Some(raw) = unsafe { slot.as_ref() }.raw.take() {
                    raw.call(slot.as_ptr() as usize);
                }
            }
        }
        // Giving back the batch's handle may free a cancelled callback, whose
        // captures' `Drop` is user code: a panic there is reported like the
        // callbacks' own, and the rest of the batch still runs.
        let give_back = || {
            // SAFETY: the batch's handle, given up once.
            unsafe { self.release() }
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(give_back)) {
            inner.report_panic(format_args!("the drop of a weak reference callback"), &*panic);
        }
    }
}

impl Drop for PendingCallbacks {
    #[inline]
    fn drop(&mut self) {
        if self.one.is_some() || !self.more.is_empty() {
            self.release_all();
        }
    }
}

impl PendingCallbacks {
    /// Gives back the handles of callbacks not run (a panic unwound `run`).
    #[cold]
    #[inline(never)]
    fn release_all(&mut self) {
        let first = self.one.take();
        let more = core::mem::take(&mut self.more);
        for due in first.into_iter().chain(more) {
            // SAFETY: as in `run`.
            unsafe { due.release() };
        }
    }
}

/// Detaches the weak slot of the dying tracked object at `value` (the
/// collector's garbage): its weak references stop upgrading. Returns its
/// callbacks, to be run once the caller is ready. The caller clears the
/// object's `HAS_WEAK` flag.
pub(crate) fn clear(inner: &HeapInner, value: NonNull<u8>) -> PendingCallbacks {
    // SAFETY: for a tracked object only the table is read (by address), and
    // filed slots are live.
    unsafe { detach(inner, value, true, false) }
}

/// [`clear`] for the object at `value`, which holds a `T` and is dying
/// because its count reached zero. Clears a leaf's `HAS_WEAK` flag; the
/// caller clears a tracked object's. If the only callback is the internal
/// one kept in the slot (an object in weak collections), it runs here
/// (it runs no user code) and the batch returned is empty.
///
/// # Safety
/// `value` is a live object holding a `T` in `inner`, with `HAS_WEAK`,
/// whose block stays allocated until this returns.
#[inline]
pub(crate) unsafe fn clear_of<T: Trace + ?Sized + 'static>(inner: &HeapInner, value: NonNull<u8>) -> PendingCallbacks {
    // SAFETY: forwarded.
    unsafe { detach(inner, value, ObjectKind::<T>::TRACKED, true) }
}

/// # Safety
/// As [`unfile_slot`]; with `run_lone_raw`, as [`clear_of`].
unsafe fn detach(inner: &HeapInner, value: NonNull<u8>, tracked: bool, run_lone_raw: bool) -> PendingCallbacks {
    // SAFETY: forwarded.
    let Some(slot_ptr) = (unsafe { unfile_slot(inner, value, tracked) }) else {
        return PendingCallbacks::none();
    };
    // SAFETY: slots in the table are live; weak references keep them.
    let slot = unsafe { slot_ptr.as_ref() };
    slot.target.set(None);
    if run_lone_raw && slot.callbacks.get().is_null() {
        // The usual death of an object in a weak collection. The callback
        // may drop the last weak reference and free the slot (not the heap:
        // the dying object's block is still counted), so the slot is not
        // read after it.
        if let Some(raw) = slot.raw.take() {
            raw.call(slot_ptr.as_ptr() as usize);
        }
        return PendingCallbacks::none();
    }
    let mut pending = PendingCallbacks::none();
    if slot.raw.get().is_some() {
        // The batch takes a count on the slot.
        slot.weak.set(slot.weak.get() + 1);
        pending.push(Due::Inline(slot_ptr));
    }
    if !slot.callbacks.get().is_null() {
        detach_records(slot, &mut pending);
    }
    pending
}

/// Moves the callback records of a dying object's slot to `pending`, which
/// takes a handle to each.
#[cold]
#[inline(never)]
fn detach_records(slot: &WeakSlot, pending: &mut PendingCallbacks) {
    let mut records = take_list(slot);
    if let Some(first) = records.one.take() {
        pending.push(first);
    }
    pending.more.append(&mut records.more);
    for due in pending.one.iter().chain(&pending.more) {
        if let Due::Record(record) = *due {
            // SAFETY: listed records are alive; the batch takes a handle.
            unsafe { add_record_handle(record) };
        }
    }
}

/// Drops one handle to a callback record (and, with the last, the record and
/// its callback). Also drops the handle's count on the slot, as
/// [`drop_slot_handle`].
///
/// # Safety
/// The caller owns one handle to the live record; `tracked` is the header
/// kind of its object.
unsafe fn drop_record_handle(record: NonNull<CallbackRecord>, tracked: bool) {
    // SAFETY: the caller's handle keeps the record alive.
    let r = unsafe { record.as_ref() };
    let slot = r.slot;
    let left = r.handles.get() - 1;
    r.handles.set(left);
    if left == 0 {
        // SAFETY: the slot is alive (the record holds a count on it).
        let slot_ref = unsafe { slot.as_ref() };
        // Cancel: the callback will never be called.
        // SAFETY: the list is owned by the slot; no user code runs here.
        unsafe { unlist(slot_ref, record) };
        // SAFETY: the last handle: nothing refers to the record any more.
        let record = unsafe { Box::from_raw(record.as_ptr()) };
        // The callback's captures are user code, whose `Drop` may panic:
        // they are dropped last, once the record and the slot count are
        // given back, so a panic there leaves nothing half done.
        let callback = record.callback.take();
        drop(record);
        // SAFETY: the handle's count on the slot.
        unsafe { drop_slot_handle(slot, tracked) };
        drop(callback);
        return;
    }
    // SAFETY: the handle's count on the slot.
    unsafe { drop_slot_handle(slot, tracked) }
}

/// Drops one weak handle's count on a slot; frees the slot with the last.
/// If the object is still alive it then has no weak reference left: its
/// slot is unfiled and its `HAS_WEAK` flag cleared.
///
/// # Safety
/// The caller owns one count on the live slot; `tracked` is the header kind
/// of its object (only read while the object lives).
unsafe fn drop_slot_handle(slot_ptr: NonNull<WeakSlot>, tracked: bool) {
    // SAFETY: the caller's count keeps the slot alive.
    let slot = unsafe { slot_ptr.as_ref() };
    let left = slot.weak.get() - 1;
    slot.weak.set(left);
    if left > 0 {
        return;
    }
    // SAFETY: the slot is a live block of its heap; the heap outlives it,
    // and a set target is a live object of that heap.
    unsafe {
        let inner_ptr = slot.heap;
        let inner = inner_ptr.as_ref();
        let target = slot.target.get();
        if let Some(target) = target {
            // The object lives on without weak references.
            unfile_slot(inner, target, tracked);
            if tracked {
                object::tracked_header(target).as_ref().set(flags::HAS_WEAK, false);
            }
        }
        if !slot.callbacks.get().is_null() {
            // An emptied vector of records (each held a count on the slot).
            let list = take_list(slot);
            debug_assert!(list.is_empty(), "records hold counts on their slot");
            core::mem::forget(list);
        }
        free_slot(inner, slot_ptr);
        // A live target keeps the heap (its block is counted), as does any
        // live object: an object is counted in `live_objects` only while its
        // block is counted in the heap's blocks, so the cheap test skips
        // the call whenever the heap cannot be freed anyway.
        if target.is_none() && inner.release_depth.get() == 0 && inner.live_objects.get() == 0 {
            HeapInner::maybe_destroy(inner_ptr);
        }
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
        let tracked = ObjectKind::<T>::TRACKED;
        if ptr.addr().get() & RECORD_TAG != 0 {
            let record = ptr.as_ptr().map_addr(|a| a & !RECORD_TAG).cast::<CallbackRecord>();
            // SAFETY: this handle owns one count on the record of an object holding a `T`.
            unsafe { drop_record_handle(NonNull::new_unchecked(record), tracked) }
        } else {
            // SAFETY: this handle owns one count on the slot of an object holding a `T`.
            unsafe { drop_slot_handle(ptr.cast(), tracked) }
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
    const FIXED_EDGES: bool = true;
    // A weak reference keeps nothing alive, and the handles its callback
    // may hold are opaque to the collector (a cycle through a callback is
    // never collected, tracked or not).
    const ACYCLIC: bool = true;

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

/// A weak reference for the crate's weak collections (`crate::weak`): to an
/// object of any type, sized or not, with an internal callback run when the
/// object dies (after all its weak references are cleared). It cannot be
/// cloned, so dropping it cancels the callback; it is never reported to the
/// collector, so its callback also runs when the object dies in a cycle.
///
/// One word: the object's slot, if this reference's [`RawCallback`] is the
/// one kept inline in the slot (the first raw reference to the object: no
/// allocation at all), or else its own callback record; tagged with
/// [`RAW_INLINE`] and [`RAW_TRACKED`].
pub(crate) struct RawWeak {
    ptr: NonNull<u8>,
}

/// Tag bit of a [`RawWeak`] to an object with a tracked header (where its
/// `HAS_WEAK` flag lives).
const RAW_TRACKED: usize = 1;
/// Tag bit of a [`RawWeak`] whose callback is inline in the slot.
const RAW_INLINE: usize = 2;
const RAW_TAGS: usize = RAW_TRACKED | RAW_INLINE;

const _: () =
    assert!(core::mem::align_of::<WeakSlot>() > RAW_TAGS && core::mem::align_of::<CallbackRecord>() > RAW_TAGS);

impl RawWeak {
    /// A weak reference to `this`'s object whose `callback` runs once when
    /// the object dies, unless this `RawWeak` was dropped first. A panic in
    /// it is reported like any weak callback's.
    pub(crate) fn new<T: Trace + ?Sized + 'static>(
        this: &Gc<T>,
        callback: impl FnOnce() + 'static,
    ) -> Result<RawWeak, AllocError> {
        let erased: ErasedCallback = Box::new(move |_record| callback());
        Self::create(this, Err(erased))
    }

    /// A weak reference to `this`'s object whose `callback` runs once when
    /// the object dies, unless this `RawWeak` was dropped first; it is given
    /// this reference's [`identity`](Self::identity).
    ///
    /// # Safety
    /// `callback.hook` is live and its function may be called while this `RawWeak`
    /// exists, and does not panic.
    pub(crate) unsafe fn with_raw<T: Trace + ?Sized + 'static>(
        this: &Gc<T>,
        callback: RawCallback,
    ) -> Result<RawWeak, AllocError> {
        Self::create(this, Ok(callback))
    }

    fn create<T: Trace + ?Sized + 'static>(
        this: &Gc<T>,
        callback: Result<RawCallback, ErasedCallback>,
    ) -> Result<RawWeak, AllocError> {
        let value = this.value();
        // SAFETY: only the pointer's metadata is read (as `Gc::size_of`);
        // the handle keeps the object and its heap alive.
        let slot = unsafe {
            let layout = crate::object::ObjectKind::<T>::layout_of_val(&*Gc::as_ptr(this));
            slot_for::<T>(value, super::gc::heap_of::<T>(value, layout))?
        };
        let tracked = if crate::object::ObjectKind::<T>::TRACKED {
            RAW_TRACKED
        } else {
            0
        };
        // SAFETY: `slot_for` counted this handle on the live slot.
        let slot_ref = unsafe { slot.as_ref() };
        let ptr = match callback {
            Ok(raw) if slot_ref.raw.get().is_none() => {
                slot_ref.raw.set(Some(raw));
                slot.cast::<u8>().map_addr(|a| a | tracked | RAW_INLINE)
            }
            // SAFETY: as above.
            Ok(raw) => unsafe { push_record(slot, None, Some(raw)) }
                .cast::<u8>()
                .map_addr(|a| a | tracked),
            // SAFETY: as above.
            Err(erased) => unsafe { push_record(slot, Some(erased), None) }
                .cast::<u8>()
                .map_addr(|a| a | tracked),
        };
        Ok(RawWeak { ptr })
    }

    /// Points this reference at `this`'s object instead, keeping its
    /// callback, if it can be done by moving its slot: the reference is the
    /// slot's only handle (inline callback, no other weak reference), its
    /// object is alive, and the new object, of the same heap, has no weak
    /// reference yet. Returns whether it did; if not, nothing changed. A
    /// weak cache replacing the value under a key so skips freeing one slot
    /// and making another.
    pub(crate) fn retarget<T: Trace + ?Sized + 'static>(&self, this: &Gc<T>) -> bool {
        let tracked = crate::object::ObjectKind::<T>::TRACKED;
        if self.ptr.addr().get() & RAW_INLINE == 0 || (self.ptr.addr().get() & RAW_TRACKED != 0) != tracked {
            return false;
        }
        let slot_ptr = self.slot_ptr();
        let slot = self.slot();
        let Some(old) = slot.target.get() else { return false };
        if slot.weak.get() != 1 || !slot.callbacks.get().is_null() {
            return false;
        }
        let value = this.value();
        // SAFETY: only the pointer's metadata is read (as `Gc::size_of`); the
        // handle keeps the object and its heap alive.
        let inner = unsafe {
            let layout = crate::object::ObjectKind::<T>::layout_of_val(&*Gc::as_ptr(this));
            super::gc::heap_of::<T>(value, layout)
        };
        // SAFETY: the handle keeps the object alive.
        if inner != slot.heap || unsafe { object::Flags::has::<T>(value, flags::HAS_WEAK) } {
            return false;
        }
        // SAFETY: a set target is a live object of the slot's heap, of the
        // header kind recorded in this reference's tag (checked equal to
        // `T`'s); the new object is live, of the same heap, without a slot.
        unsafe {
            let inner = inner.as_ref();
            unfile_slot(inner, old, tracked);
            if tracked {
                object::tracked_header(old).as_ref().set(flags::HAS_WEAK, false);
            }
            slot.target.set(Some(value));
            file_slot(inner, value, tracked, slot_ptr);
        }
        true
    }

    /// The `hash` of this reference's [`RawCallback`], until it is called.
    pub(crate) fn hash(&self) -> Option<u64> {
        let raw = if self.ptr.addr().get() & RAW_INLINE != 0 {
            self.slot().raw.get()
        } else {
            // SAFETY: this handle keeps its record alive.
            unsafe { self.untagged().cast::<CallbackRecord>().as_ref() }.raw.get()
        };
        raw.map(|raw| raw.hash)
    }

    /// What this reference's [`RawCallback`] is given to tell which
    /// reference died: the address of its slot or record.
    pub(crate) fn identity(&self) -> usize {
        self.ptr.addr().get() & !RAW_TAGS
    }

    fn untagged(&self) -> NonNull<u8> {
        // SAFETY: the tags are low bits of a non-null aligned pointer.
        unsafe { NonNull::new_unchecked(self.ptr.as_ptr().map_addr(|a| a & !RAW_TAGS)) }
    }

    fn slot_ptr(&self) -> NonNull<WeakSlot> {
        if self.ptr.addr().get() & RAW_INLINE != 0 {
            self.untagged().cast()
        } else {
            // SAFETY: this handle keeps its record alive.
            unsafe { self.untagged().cast::<CallbackRecord>().as_ref() }.slot
        }
    }

    fn slot(&self) -> &WeakSlot {
        // SAFETY: this handle keeps its slot alive (directly, or through its record).
        unsafe { self.slot_ptr().as_ref() }
    }

    /// The shared state of the object's heap, alive while the object (or
    /// this reference) is; its address identifies the heap.
    pub(crate) fn heap(&self) -> NonNull<HeapInner> {
        // SAFETY: the slot is a live block of the object's heap, whose owner
        // data is the heap's state (set in `HeapInner::create`).
        self.slot().heap
    }

    /// The object's value address while it is alive (strong count above zero).
    pub(crate) fn target(&self) -> Option<NonNull<u8>> {
        let target = self.slot().target.get()?;
        // SAFETY: a set target is a live object.
        (unsafe { object::strong(target) }.get() != 0).then_some(target)
    }

    /// A strong handle to the object if it is alive and is the one `ptr`
    /// (the pointer of a handle to it, with its metadata) points to.
    pub(crate) fn upgrade<T: Trace + ?Sized + 'static>(&self, ptr: NonNull<T>) -> Option<Gc<T>> {
        if self.target()? != ptr.cast::<u8>() {
            return None;
        }
        // SAFETY: the target is a live object.
        unsafe { upgrade_if_alive(ptr) }
    }
}

/// A strong handle to the object at `ptr` if it is alive and its weak
/// references have not been cleared. Reads only the object's header, so it
/// is one cache miss cheaper than [`RawWeak::upgrade`].
///
/// # Safety
/// The object's memory is still allocated: a `RawWeak` to it exists whose
/// callback has not run yet (an object's memory is freed only after its
/// callbacks ran), or a handle to it does.
pub(crate) unsafe fn upgrade_if_alive<T: Trace + ?Sized + 'static>(ptr: NonNull<T>) -> Option<Gc<T>> {
    let value = ptr.cast::<u8>();
    // SAFETY: the caller guarantees the header is allocated. A dying object
    // has count zero; a garbage object's weak references are cleared (its
    // `HAS_WEAK` flag is reset) before any user code can see it.
    unsafe {
        let strong = object::strong(value);
        let count = strong.get();
        if count == 0 || !object::Flags::has::<T>(value, flags::HAS_WEAK) {
            return None;
        }
        object::retain(
            value,
            ObjectKind::<T>::layout_of_val(ptr.as_ref()),
            ObjectKind::<T>::TRACKED,
        );
        Some(Gc::from_counted(ptr))
    }
}

/// Whether the object at `ptr` is alive and its weak references have not
/// been cleared (see [`upgrade_if_alive`]).
///
/// # Safety
/// As [`upgrade_if_alive`].
pub(crate) unsafe fn is_alive<T: Trace + ?Sized + 'static>(ptr: NonNull<T>) -> bool {
    let value = ptr.cast::<u8>();
    // SAFETY: forwarded.
    unsafe { object::strong(value).get() != 0 && object::Flags::has::<T>(value, flags::HAS_WEAK) }
}

impl Drop for RawWeak {
    fn drop(&mut self) {
        let tracked = self.ptr.addr().get() & RAW_TRACKED != 0;
        if self.ptr.addr().get() & RAW_INLINE != 0 {
            let slot = self.untagged().cast::<WeakSlot>();
            // SAFETY: this handle owns one count on the slot, whose object
            // has the header kind recorded at creation. Clearing the inline
            // callback cancels it.
            unsafe {
                slot.as_ref().raw.set(None);
                drop_slot_handle(slot, tracked)
            }
        } else {
            // SAFETY: this handle owns one count on the record; as above.
            unsafe { drop_record_handle(self.untagged().cast(), tracked) }
        }
    }
}

impl fmt::Debug for RawWeak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(RawWeak)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Heap, WeakValueDictionary};

    /// Leaves whose slot cannot get a number (every pool number taken) are
    /// filed by address instead, and behave the same.
    #[test]
    fn leaves_without_a_slot_number_use_the_address_table() {
        let heap = Heap::new();
        heap.inner()
            .with_weak_table(|table| table.pools.resize_with(MAX_SLOT_POOLS, || None));
        let a = heap.alloc(1u64);
        let w = Gc::downgrade(&a);
        // SAFETY: `a` is a live leaf; `Gc::as_ptr` may reach its header.
        let number =
            unsafe { leaf_flags(NonNull::new_unchecked(Gc::as_ptr(&a) as *mut u8)) }.get() >> LEAF_NUMBER_SHIFT;
        assert_eq!(number, 0, "filed by address");
        assert_eq!(heap.inner().with_weak_table(|table| table.by_address.len()), 1);
        let w2 = Gc::downgrade(&a);
        assert_eq!(Gc::weak_count(&a), 2);
        let mut dict = WeakValueDictionary::new();
        dict.insert(1, &a);
        drop((w2, w));
        assert_eq!(Gc::weak_count(&a), 1);
        let b = heap.alloc(2u64);
        dict.insert(1, &b); // moves the dictionary's reference
        assert_eq!((Gc::weak_count(&a), Gc::weak_count(&b)), (0, 1));
        let w = Gc::downgrade(&b);
        drop(b);
        assert!(w.upgrade().is_none() && dict.is_empty());
        assert_eq!(heap.inner().with_weak_table(|table| table.by_address.len()), 0);
        drop((w, a, dict));
        assert_eq!(heap.bytes_in_use(), 0);
    }
}
