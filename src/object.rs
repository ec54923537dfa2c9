//! The `object` layer: what an object looks like in memory.
//!
//! A `Gc<T>` points at the value; the header sits immediately before it, so
//! dereferencing costs nothing and the strong count is always at
//! `value - 4`. There are two header kinds, chosen at compile time from
//! [`Trace::MAY_CONTAIN_GC`]:
//!
//! ```text
//!  leaf object (T cannot own a Gc: strings, numbers, plain data; or T is
//!  acyclic, `Trace::ACYCLIC`) — 8-byte header
//!  +-------------+-------------+---------------------------+
//!  | flags  u32  | strong u32  | value: T                  |
//!  +-------------+-------------+---------------------------+
//!                              ^ Gc<T> points here
//!
//!  tracked object (T may own a Gc) — 16-byte header
//!  +---------------------------+-------------+-------------+-------------------+
//!  | vtable pointer | flags    | slot   u32  | strong u32  | value: T          |
//!  | (256-aligned)  | (8 bits) |             |             |                   |
//!  +---------------------------+-------------+-------------+-------------------+
//!  ^ block start                                            ^ Gc<T> points here
//! ```
//!
//! * `strong`: the number of `Gc` handles. [`IMMORTAL`] (`u32::MAX`) marks an
//!   immortal object whose count never changes; a count that would overflow
//!   saturates there instead of wrapping (the object then lives forever).
//! * Tracked objects keep their [`VTable`] (trace, drop, size, type name) in
//!   the first word, and since vtables are 256-aligned the eight low bits of
//!   that word hold the flags ([`flags`]). `slot` is the object's index in
//!   its generation's vector for generations 0 and 1 (O(1) untracking when
//!   it dies); objects of generation 2 and frozen ones have no vector entry
//!   (one of [`OLD_SLOTS`]: they are found by walking the heap, see
//!   [`tracked_in_block`]); [`NO_SLOT`] means untracked; while a collection
//!   runs, its candidates' slot indexes its work list.
//! * A block's first word tells what it holds (the heap walk's rule, see
//!   [`tracked_in_block`]): bit 0 is set only for tracked objects.
//! * Leaves have no vtable and no slot: they are never seen by the collector,
//!   and a typed `Gc<T>` knows how to drop them. The handles an acyclic
//!   leaf owns are, to the collector, references from outside.
//! * The weak count is not in the object: an object with weak references has
//!   the `HAS_WEAK` flag and a side record (`handle::weak`), so objects without
//!   weak references pay nothing for them.
//! * A value aligned to more than the header is preceded by padding; the
//!   header always ends where the value starts. The padding's first word is
//!   written at allocation (0 for a leaf, a [`padding_marker`] for a tracked
//!   object), so the heap walk never reads uninitialised memory.
//!
//! Unsized values (`Gc<str>`, `Gc<[T]>`) always use the leaf header: the
//! collector would need their length to trace them. A slice of handles still
//! owns its elements; use `Gc<Vec<T>>` for a container that can be part of a
//! cycle.

use core::alloc::Layout;
use core::any::TypeId;
use core::cell::Cell;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use crate::alloc::SizeClass;
use crate::trace::{Trace, Tracer};

/// The strong count of an immortal object (like CPython's `4294967295`).
pub const IMMORTAL: u32 = u32::MAX;

/// Flag bits. For tracked objects they live in the low bits of the vtable
/// word, for leaves in the `flags` word.
pub(crate) mod flags {
    /// Set in every live tracked object's first word (a freed block's first
    /// word is a pointer, so this bit is clear there).
    pub(crate) const TRACKED: usize = 1 << 0;
    /// The collector tore the value down while handles remained: it must not
    /// be read or dropped again.
    pub(crate) const DEAD: usize = 1 << 1;
    /// A weak side record exists for this object.
    pub(crate) const HAS_WEAK: usize = 1 << 2;
    /// The object's finalizer has run (PEP 442: at most once).
    pub(crate) const FINALIZED: usize = 1 << 3;
    /// Two bits: the generation (0, 1, 2, or 3 = permanent/untracked).
    pub(crate) const GEN_SHIFT: u32 = 4;
    pub(crate) const GEN_MASK: usize = 0b11 << GEN_SHIFT;
    /// The object is in the set a running collection examines; its `slot`
    /// then indexes the collector's work list instead of a generation.
    pub(crate) const COLLECTING: usize = 1 << 6;
    /// The strong count was decremented to a value above zero since a full
    /// collection last examined the object (Bacon and Rajan's "possible
    /// root"): only such objects can have become cyclic garbage since. Full
    /// collections examine the old generation's flagged objects and what
    /// they reach, not the untouched rest (`collect::algorithm`).
    pub(crate) const DECREMENTED: usize = 1 << 7;
    /// Every flag bit. A leaf's `flags` word uses only these low bits for
    /// flags: bits 8 and up hold its weak slot's number (`handle::weak`),
    /// and bit 0 ([`TRACKED`]) is never set in a leaf, which is how the heap
    /// walk tells leaves from tracked objects.
    pub(crate) const ALL: usize = 0b1111_1111;
}

/// Generation value of frozen (permanent) objects, and of immortal or dead
/// ones, which the collector does not track (their slot is [`NO_SLOT`]).
pub(crate) const UNTRACKED_GEN: usize = 3;
/// Slot of a tracked object that the collector does not see (immortal,
/// dead, never tracked, or taken out of its generation for a collection).
pub(crate) const NO_SLOT: u32 = u32::MAX;
/// The two slot values of objects of the oldest and the permanent
/// generations, which have no vector (`collect::generations`): an old
/// object is found by walking the heap. Which of the two values means "not
/// scanned yet in this pass" is up to the incremental collector
/// (`Generations::pending_slot`); every other part of the crate treats them
/// alike.
pub(crate) const OLD_SLOTS: [u32; 2] = [u32::MAX - 2, u32::MAX - 1];

/// Whether `slot` is one of [`OLD_SLOTS`].
#[inline(always)]
pub(crate) fn is_old_slot(slot: u32) -> bool {
    slot == OLD_SLOTS[0] || slot == OLD_SLOTS[1]
}

/// The first word of the padding in front of the header of a tracked object
/// whose value starts `value_offset` (a power of two above 16) bytes into
/// its block: `TRACKED | log2(value_offset) << 1`. It is below 128, while a
/// header's first word is a 256-aligned vtable address (at least 256) plus
/// flags, so [`tracked_in_block`] tells the two apart. Leaves write 0 there.
#[inline(always)]
pub(crate) const fn padding_marker(value_offset: usize) -> usize {
    flags::TRACKED | (value_offset.trailing_zeros() as usize) << 1
}

// The heap walk reads a block's first word and decides by its bit 0, which
// for a leaf must be bit 0 of its `flags` field: the low half of the word.
#[cfg(not(target_endian = "little"))]
compile_error!(
    "rcgc finds old tracked objects by walking the heap and telling blocks apart by bit 0 of their \
     first word, which for a leaf header is its flags only on little-endian targets"
);

/// The tracked object held by `block`, if any: the heap walk's rule
/// (`alloc::walk` hands out every carved block of the heap's pools in use and
/// every large block, free ones too).
///
/// A block's first word is always initialised and is one of:
///
/// * a free block's free-list link, or a weak slot's target: an 8-aligned
///   address or null — bit 0 clear;
/// * a leaf's header (`flags` in the low half, bit 0 never set) or the zero
///   word a leaf writes in the padding before its header — bit 0 clear;
/// * a tracked header's vtable word: `TRACKED` set, value at least 256;
/// * the [`padding_marker`] of an over-aligned tracked object (only large
///   blocks: pools serve alignments up to 16) — `TRACKED` set, below 128; the
///   header then ends at the value offset the marker encodes.
///
/// # Safety
/// `block` is a block handed out by the walk of a heap's allocator, with no
/// allocation or release running.
#[inline(always)]
pub(crate) unsafe fn tracked_in_block(block: NonNull<u8>) -> Option<NonNull<TrackedHeader>> {
    // SAFETY: the caller guarantees a carved block of the heap, whose first
    // word is initialised (see above); it is read as a pointer so that a
    // pointer stored there keeps its provenance, and only its address is used.
    let word = unsafe { block.cast::<*const ()>().read() }.addr();
    if word & flags::TRACKED == 0 {
        None
    } else if word > flags::ALL {
        Some(block.cast())
    } else {
        let value_offset = 1usize << (word >> 1);
        // SAFETY: the marker was written by an object whose value starts
        // `value_offset` bytes into this block, its header right before.
        Some(unsafe { block.add(value_offset - size_of::<TrackedHeader>()) }.cast())
    }
}

/// The header of a leaf object.
#[repr(C)]
pub(crate) struct LeafHeader {
    pub(crate) flags: Cell<u32>,
    pub(crate) strong: Cell<u32>,
}

/// The header of a tracked object.
#[repr(C)]
pub(crate) struct TrackedHeader {
    pub(crate) vtable_and_flags: Cell<*const VTable>,
    pub(crate) slot: Cell<u32>,
    pub(crate) strong: Cell<u32>,
}

const _: () = assert!(size_of::<LeafHeader>() == 8 && size_of::<TrackedHeader>() == 16);

/// What the collector needs to handle a tracked object of unknown type.
#[repr(C, align(256))]
pub(crate) struct VTable {
    /// Calls `Trace::trace` on the value.
    pub(crate) trace: unsafe fn(NonNull<u8>, &mut Tracer<'_>),
    /// Drops the value in place (not the block).
    pub(crate) drop_value: unsafe fn(NonNull<u8>),
    /// Runs the whole release of an object whose last handle is gone (the
    /// typed `Gc` drop slow path), for untyped handles.
    pub(crate) release: unsafe fn(NonNull<u8>),
    /// Calls the value type's finalizer with a temporary handle, if it has one.
    pub(crate) finalize: Option<unsafe fn(NonNull<u8>)>,
    /// Layout of the whole block (header, padding, value).
    pub(crate) block_layout: Layout,
    /// `SizeClass::for_layout(block_layout)`, so that erased frees (the
    /// collector's teardown) need not compute it.
    pub(crate) size_class: Option<SizeClass>,
    /// `core::any::type_name` of the value type.
    pub(crate) type_name: fn() -> &'static str,
    /// `TypeId` of the value type.
    pub(crate) type_id: fn() -> TypeId,
}

const _: () = assert!(align_of::<VTable>() > flags::ALL);

/// The vtable passed for types that are never tracked (it is never read).
pub(crate) static NO_VTABLE: VTable = VTable {
    trace: |_, _| {},
    drop_value: |_| {},
    release: |_| {},
    finalize: None,
    block_layout: Layout::new::<()>(),
    size_class: SizeClass::for_layout(Layout::new::<()>()),
    type_name: || "<untracked>",
    type_id: TypeId::of::<()>,
};

/// Compile-time facts about objects holding a `T`.
pub(crate) struct ObjectKind<T: ?Sized>(PhantomData<T>);

impl<T: Trace + ?Sized + 'static> ObjectKind<T> {
    /// Whether objects of `T` are tracked (sized, may own a `Gc`, and not
    /// [`ACYCLIC`](Trace::ACYCLIC)).
    pub(crate) const TRACKED: bool = T::MAY_CONTAIN_GC && !T::ACYCLIC && size_of::<*const T>() == size_of::<usize>();
    /// Bytes of header.
    pub(crate) const HEADER: usize = if Self::TRACKED { 16 } else { 8 };

    /// Offset of the value from the block start for a value aligned to `align`.
    #[inline(always)]
    pub(crate) const fn value_offset(align: usize) -> usize {
        if align > Self::HEADER {
            align
        } else {
            Self::HEADER
        }
    }

    /// Block layout for a value of `size` bytes aligned to `align`.
    #[inline(always)]
    pub(crate) const fn block_layout(size: usize, align: usize) -> Option<Layout> {
        let Some(total) = Self::value_offset(align).checked_add(size) else {
            return None;
        };
        match Layout::from_size_align(total, if align > 8 { align } else { 8 }) {
            Ok(layout) => Some(layout),
            Err(_) => None,
        }
    }

    /// Block layout of the object holding `value`.
    #[inline(always)]
    pub(crate) fn layout_of_val(value: &T) -> Layout {
        Self::block_layout(size_of_val(value), align_of_val(value)).expect("layout of a live object is valid")
    }
}

impl<T: Trace + 'static> ObjectKind<T> {
    /// The vtable of tracked objects holding a `T`.
    pub(crate) const VTABLE: VTable = VTable {
        trace: trace_value::<T>,
        drop_value: drop_value::<T>,
        release: crate::handle::gc::release_erased::<T>,
        finalize: if T::HAS_FINALIZER {
            Some(crate::handle::gc::finalize_erased::<T>)
        } else {
            None
        },
        block_layout: match Self::block_layout(size_of::<T>(), align_of::<T>()) {
            Some(layout) => layout,
            None => panic!("object too large"),
        },
        size_class: match Self::block_layout(size_of::<T>(), align_of::<T>()) {
            Some(layout) => SizeClass::for_layout(layout),
            None => None,
        },
        type_name: core::any::type_name::<T>,
        type_id: TypeId::of::<T>,
    };
}

use core::mem::{align_of_val, size_of_val};

/// # Safety
/// `value` points to a live `T`.
unsafe fn trace_value<T: Trace>(value: NonNull<u8>, tracer: &mut Tracer<'_>) {
    // SAFETY: the caller guarantees a live T at `value`.
    unsafe { value.cast::<T>().as_ref() }.trace(tracer)
}

/// # Safety
/// `value` points to a live `T` that is not used afterwards.
unsafe fn drop_value<T>(value: NonNull<u8>) {
    // SAFETY: the caller guarantees a live T that is never used again.
    unsafe { value.cast::<T>().drop_in_place() }
}

/// The strong count of the object whose value starts at `value`.
///
/// # Safety
/// `value` is the value address of a live object (any header kind).
#[inline(always)]
pub(crate) unsafe fn strong(value: NonNull<u8>) -> &'static Cell<u32> {
    // SAFETY: both header kinds end with the strong count, right before the
    // value; the reference does not outlive the object in practice (callers
    // use it immediately).
    unsafe { &*value.as_ptr().sub(4).cast::<Cell<u32>>() }
}

/// Records that the tracked object at `value` had its count decremented to
/// a value above zero ([`flags::DECREMENTED`]): it may have become part of
/// unreachable garbage, so the next full collection examines it.
///
/// # Safety
/// `value` is the value address of a live tracked object.
#[inline(always)]
pub(crate) unsafe fn note_decrement(value: NonNull<u8>) {
    // SAFETY: the caller guarantees a live tracked header.
    unsafe { tracked_header(value).as_ref() }.set(flags::DECREMENTED, true);
}

/// Adds one handle's count to the object at `value` (block `layout`,
/// header kind `tracked`). A count reaching [`IMMORTAL`] saturates there: the
/// object becomes immortal and its heap is told, so the heap is kept (never
/// freed) when it is dropped. Every path that creates a strong handle goes
/// through here.
///
/// # Safety
/// `value` is the value address of a live object with a nonzero count whose
/// block has `layout`.
#[inline(always)]
pub(crate) unsafe fn retain(value: NonNull<u8>, layout: Layout, tracked: bool) {
    // SAFETY: forwarded.
    let strong = unsafe { strong(value) };
    let count = strong.get();
    if count != IMMORTAL {
        strong.set(count + 1);
        if count + 1 == IMMORTAL {
            // SAFETY: forwarded.
            unsafe { became_immortal(value, layout, tracked) };
        }
    }
}

/// # Safety
/// As [`retain`].
#[cold]
#[inline(never)]
unsafe fn became_immortal(value: NonNull<u8>, layout: Layout, tracked: bool) {
    let header = if tracked {
        size_of::<TrackedHeader>()
    } else {
        size_of::<LeafHeader>()
    };
    let offset = layout.align().max(header);
    // SAFETY: the block starts `offset` bytes before the value (see
    // `ObjectKind::value_offset`); its allocator's owner data is its heap.
    unsafe {
        let block = value.sub(offset);
        let inner = &*crate::alloc::Allocator::owner_data_of(block, layout).cast::<crate::heap::inner::HeapInner>();
        inner.immortal_objects.set(inner.immortal_objects.get() + 1);
    }
}

/// The header of a tracked object.
///
/// # Safety
/// `value` is the value address of a live tracked object.
#[inline(always)]
pub(crate) unsafe fn tracked_header(value: NonNull<u8>) -> NonNull<TrackedHeader> {
    // SAFETY: a tracked header is the 16 bytes right before the value.
    unsafe { value.sub(size_of::<TrackedHeader>()).cast() }
}

/// The header of a leaf object.
///
/// # Safety
/// `value` is the value address of a live leaf object.
#[inline(always)]
pub(crate) unsafe fn leaf_header(value: NonNull<u8>) -> NonNull<LeafHeader> {
    // SAFETY: a leaf header is the 8 bytes right before the value.
    unsafe { value.sub(size_of::<LeafHeader>()).cast() }
}

/// The start of the block of the tracked object at `header`, whose block
/// has `layout`: the header ends where the value starts, and a value aligned
/// to more than the header is preceded by padding
/// (`ObjectKind::value_offset` for a type known only at run time).
///
/// # Safety
/// `header` is a live tracked object whose block has `layout`.
pub(crate) unsafe fn tracked_block(header: NonNull<TrackedHeader>, layout: Layout) -> NonNull<u8> {
    let offset = layout.align().max(size_of::<TrackedHeader>());
    // SAFETY: the block starts `offset` bytes before the value.
    unsafe { value_of(header).sub(offset) }
}

/// The value address of a tracked object from its header.
pub(crate) fn value_of(header: NonNull<TrackedHeader>) -> NonNull<u8> {
    // SAFETY: the value follows the header in the same block.
    unsafe { header.cast::<u8>().add(size_of::<TrackedHeader>()) }
}

impl TrackedHeader {
    /// The word holding a tracked object's vtable pointer tagged with `flags`.
    pub(crate) fn tagged(vtable: &'static VTable, flags: usize) -> *const VTable {
        (vtable as *const VTable).map_addr(|addr| addr | flags)
    }

    /// The object's vtable.
    pub(crate) fn vtable(&self) -> &'static VTable {
        let ptr = self.vtable_and_flags.get().map_addr(|addr| addr & !flags::ALL);
        // SAFETY: the word is a pointer to a `'static` vtable tagged with flag bits.
        unsafe { &*ptr }
    }

    fn bits(&self) -> usize {
        self.vtable_and_flags.get().addr()
    }

    pub(crate) fn has(&self, flag: usize) -> bool {
        self.bits() & flag != 0
    }

    pub(crate) fn set(&self, flag: usize, on: bool) {
        let word = self.vtable_and_flags.get();
        self.vtable_and_flags
            .set(word.map_addr(|addr| if on { addr | flag } else { addr & !flag }));
    }

    /// Whether a dying object needs none of `release`'s bookkeeping: no weak
    /// record, and in no generation list or collection (never tracked, or
    /// untracked). One test of the flag word and the slot, which share the
    /// header's cache line.
    #[inline(always)]
    pub(crate) fn is_plain_untracked(&self) -> bool {
        self.untracked_without(flags::HAS_WEAK | flags::COLLECTING)
    }

    /// [`is_plain_untracked`](Self::is_plain_untracked), and the value
    /// is alive (not `DEAD`): the whole test for `release`'s shortest path.
    #[inline(always)]
    pub(crate) fn is_plain_live_untracked(&self) -> bool {
        self.untracked_without(flags::HAS_WEAK | flags::COLLECTING | flags::DEAD)
    }

    /// Whether the slot is [`NO_SLOT`] and none of the flags in `mask` is
    /// set, in one test.
    #[inline(always)]
    fn untracked_without(&self, mask: usize) -> bool {
        let flag_bits = self.bits() & mask;
        let slot_bits = (self.slot.get() ^ NO_SLOT) as usize;
        flag_bits | slot_bits == 0
    }

    /// Whether the object is in no generation and in no running
    /// collection: the collector does not see it (immortal, dead, or never
    /// tracked because its handles are fixed and lead only to untracked
    /// objects). Objects of the oldest and the permanent generation have no
    /// vector entry but one of the [`OLD_SLOTS`], so they are tracked.
    #[inline(always)]
    pub(crate) fn is_untracked(&self) -> bool {
        self.slot.get() == NO_SLOT && !self.has(flags::COLLECTING)
    }

    pub(crate) fn generation(&self) -> usize {
        (self.bits() & flags::GEN_MASK) >> flags::GEN_SHIFT
    }

    pub(crate) fn set_generation(&self, generation: usize) {
        debug_assert!(generation <= UNTRACKED_GEN);
        let word = self.vtable_and_flags.get();
        self.vtable_and_flags
            .set(word.map_addr(|addr| (addr & !flags::GEN_MASK) | (generation << flags::GEN_SHIFT)));
    }
}

impl LeafHeader {
    pub(crate) fn has(&self, flag: usize) -> bool {
        self.flags.get() as usize & flag != 0
    }

    pub(crate) fn set(&self, flag: usize, on: bool) {
        let word = self.flags.get();
        let flag = flag as u32;
        self.flags.set(if on { word | flag } else { word & !flag });
    }
}

/// Reads and writes the flags of an object whose kind is known from `T`.
pub(crate) struct Flags;

impl Flags {
    /// # Safety
    /// `value` is the value address of a live object holding a `T`.
    #[inline(always)]
    pub(crate) unsafe fn has<T: Trace + ?Sized + 'static>(value: NonNull<u8>, flag: usize) -> bool {
        // SAFETY: forwarded; the header kind is decided by T.
        unsafe {
            if ObjectKind::<T>::TRACKED {
                tracked_header(value).as_ref().has(flag)
            } else {
                leaf_header(value).as_ref().has(flag)
            }
        }
    }

    /// # Safety
    /// `value` is the value address of a live object holding a `T`.
    #[inline(always)]
    pub(crate) unsafe fn set<T: Trace + ?Sized + 'static>(value: NonNull<u8>, flag: usize, on: bool) {
        // SAFETY: forwarded; the header kind is decided by T.
        unsafe {
            if ObjectKind::<T>::TRACKED {
                tracked_header(value).as_ref().set(flag, on)
            } else {
                leaf_header(value).as_ref().set(flag, on)
            }
        }
    }
}
