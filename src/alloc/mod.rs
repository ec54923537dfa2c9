//! The `alloc` layer: a small-object allocator in the manner of CPython's
//! obmalloc, usable on its own.
//!
//! ```text
//!  Allocator ──► State
//!                 ├─ used_pools[class] ──► pool ⇄ pool ⇄ pool   (pools with blocks to spare)
//!                 ├─ arenas: ArenaTable ─► arena (1 MiB from the OS)
//!                 │                         └─ 64 pools of 16 KiB, one size class each
//!                 │                              └─ header + blocks of 8..=512 bytes
//!                 └─ large: LargeList ───► system allocations (> 512 bytes or align > 16)
//! ```
//!
//! * Requests of at most 512 bytes (and alignment at most 16) are rounded up to
//!   one of 64 [size classes](SizeClass) in 8-byte steps and served from
//!   pools of that class; larger or more aligned requests go to the
//!   system allocator (large blocks) behind the same interface.
//! * Allocation pops the free list of the first pool on the class's used list,
//!   or bumps into its never-used tail; freeing pushes the block on its pool's
//!   free list, the pool being found by masking the block's address. Both fit
//!   on a screen ([`Allocator::alloc`], [`Allocator::dealloc`]); everything
//!   rare (new pool, full pool, empty pool, new arena, errors) is out of line.
//! * Arenas are taken from the OS as whole pages (see the `os` module); new pools come from
//!   the busiest arena so others can drain, and an arena whose pools are all
//!   empty goes back to the OS, except that wholly empty arenas are kept as
//!   spares while they are no more than the arenas in use (at least one is
//!   kept; [`Allocator::trim`] releases them all).
//! * A byte limit ([`Allocator::set_limit`]) makes allocations that would
//!   exceed it fail with an [`AllocError`]; nothing allocated is affected.
//!
//! # Threads
//!
//! An [`Allocator`] is single-threaded: it is neither `Send` nor `Sync`, like
//! `Rc`. Use one allocator per thread (or per heap).
//!
//! # Invariants
//!
//! * Every block handed out lies inside a pool of a live arena of this
//!   allocator (small) or behind a large-block header naming this allocator.
//! * A pool on a used list is live and initialised; a pool with no block in
//!   use is on its arena's empty list, never on a used list.
//! * `State` is reached only through the raw pointer in [`Allocator`] or in a
//!   pool/large header, never through two `&mut` at once: the allocator calls
//!   no user code, so no method is re-entered.

mod arena;
mod error;
mod large;
mod os;
mod pool;
mod size_class;
mod stats;
pub(crate) mod walk;

use core::alloc::Layout;
use core::ptr::{self, NonNull};

pub use error::{AllocError, AllocErrorKind};
pub use pool::{ARENA_SIZE, POOLS_PER_ARENA, POOL_HEADER_SIZE, POOL_SIZE};
pub use size_class::{SizeClass, GRANULE, MAX_SMALL_ALIGN, NUM_SIZE_CLASSES, SMALL_REQUEST_THRESHOLD};
pub use stats::{AllocStats, ClassStats};

use arena::ArenaTable;
use large::LargeList;
use pool::PoolHeader;

/// Everything an allocator owns; pools and large headers point back here.
pub(crate) struct State {
    used_pools: [*mut PoolHeader; NUM_SIZE_CLASSES],
    bytes_in_use: usize,
    limit: usize,
    arenas: ArenaTable,
    large: LargeList,
    owner_data: *mut (),
}

/// A single-threaded small-object allocator: size-classed pools in arenas of
/// OS pages, with the system allocator behind it for large requests.
///
/// ```
/// use core::alloc::Layout;
/// use rcgc::alloc::Allocator;
///
/// let allocator = Allocator::new();
/// let layout = Layout::new::<[u64; 5]>();
/// let block = allocator.alloc(layout)?;
/// // SAFETY: the block is 40 writable bytes aligned for u64.
/// unsafe { block.cast::<[u64; 5]>().write([1, 2, 3, 4, 5]) };
/// assert_eq!(allocator.usable_size(layout), 40); // 8-byte size classes: no rounding to 48
/// // SAFETY: `block` came from this allocator with this layout.
/// unsafe { allocator.dealloc(block, layout) };
/// assert_eq!(allocator.bytes_in_use(), 0);
/// # Ok::<(), rcgc::alloc::AllocError>(())
/// ```
pub struct Allocator {
    state: NonNull<State>,
}

impl Allocator {
    /// Creates an allocator with no limit. No memory is taken from the OS until
    /// the first allocation.
    pub fn new() -> Self {
        let state = Box::new(State {
            used_pools: [ptr::null_mut(); NUM_SIZE_CLASSES],
            bytes_in_use: 0,
            limit: usize::MAX,
            arenas: ArenaTable::new(),
            large: LargeList::new(),
            owner_data: ptr::null_mut(),
        });
        Allocator {
            state: NonNull::from(Box::leak(state)),
        }
    }

    /// The allocator's state.
    ///
    /// # Safety
    /// The caller must not hold another reference obtained from this method
    /// (or from a pool header) while using the returned one. Every public
    /// method takes it once and passes it down.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> &mut State {
        // SAFETY: `state` came from Box::leak and lives until Drop; the caller
        // guarantees exclusivity (single thread, no re-entrancy).
        unsafe { &mut *self.state.as_ptr() }
    }

    /// Allocates a block for `layout`.
    ///
    /// The block is at least `layout.size()` bytes (see [`usable_size`](Self::usable_size)),
    /// aligned to `layout.align()`, and uninitialised. A zero-size request
    /// returns a unique block of the smallest class, which must be freed like
    /// any other.
    ///
    /// # Errors
    /// [`AllocError`] if the byte limit would be exceeded or the system refuses
    /// memory. Earlier allocations are unaffected.
    #[inline(always)]
    pub fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        match self.alloc_fast(layout) {
            Some(block) => Ok(block),
            None => self.alloc_slow(layout),
        }
    }

    /// The fast path of [`alloc`](Self::alloc): a small block from the first
    /// pool on its class's used list, if the limit allows it and that pool has
    /// one. `None` only means "take the slow path" (`alloc` then serves the
    /// request or reports the error); nothing has changed.
    ///
    /// Callers that must clean up on an error (drop the value they were
    /// about to store) can keep that code out of their fast path this way.
    #[inline(always)]
    pub(crate) fn alloc_fast(&self, layout: Layout) -> Option<NonNull<u8>> {
        let class = SizeClass::for_layout(layout)?;
        let block_size = class.block_size();
        // SAFETY: the only state reference in this call.
        let st = unsafe { self.state() };
        if st.bytes_in_use + block_size > st.limit {
            return None;
        }
        let pool = st.used_pools[class.index()];
        if pool.is_null() {
            return None;
        }
        // SAFETY: pools on a used list are live and of this class.
        let block = unsafe { pool::take_block(pool, block_size) }?;
        st.bytes_in_use += block_size;
        Some(block)
    }

    /// Everything `alloc_fast` leaves: large requests, the limit error, a
    /// full or missing head pool.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let Some(class) = SizeClass::for_layout(layout) else {
            return self.alloc_large(layout);
        };
        let block_size = class.block_size();
        // SAFETY: the only state reference in this call.
        let st = unsafe { self.state() };
        if st.bytes_in_use + block_size > st.limit {
            return Err(limit_error(st, layout, block_size));
        }
        self.alloc_small_slow(st, class, layout)
    }

    /// Whether the pool of the small block `block` has other blocks in use,
    /// so that keeping `block` allocated keeps no otherwise empty pool (and
    /// its arena) mapped.
    ///
    /// # Safety
    /// `block` is a live block of this allocator of a small layout (one with
    /// a [`SizeClass`]).
    #[inline]
    pub(crate) unsafe fn pool_has_other_blocks(&self, block: NonNull<u8>) -> bool {
        // SAFETY: the caller guarantees a live small block, so its pool's
        // header is live and initialised; `used` is plain data read once.
        unsafe { (*pool::pool_of(block)).used > 1 }
    }

    /// Frees a block.
    ///
    /// # Safety
    /// `block` was returned by [`alloc`](Self::alloc) on this allocator with
    /// this `layout`, and is not used afterwards.
    #[inline(always)]
    pub unsafe fn dealloc(&self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded caller contract; the class is the layout's.
        unsafe { self.dealloc_in_class(block, layout, SizeClass::for_layout(layout)) }
    }

    /// [`dealloc`](Self::dealloc) with the size class of `layout` already
    /// known (for callers that keep it, such as the collector's vtables, so
    /// freeing a block of a type known only at run time does not compute it
    /// again).
    ///
    /// # Safety
    /// As `dealloc`, and `class` is `SizeClass::for_layout(layout)`.
    #[inline(always)]
    pub(crate) unsafe fn dealloc_in_class(&self, block: NonNull<u8>, layout: Layout, class: Option<SizeClass>) {
        debug_assert_eq!(class, SizeClass::for_layout(layout));
        let Some(class) = class else {
            // SAFETY: forwarded caller contract.
            return unsafe { self.dealloc_large(block, layout) };
        };
        // SAFETY: the only state reference in this call.
        let st = unsafe { self.state() };
        // SAFETY: the caller guarantees `block` is a live small block of ours.
        let pool = unsafe { pool::give_back(block) };
        st.bytes_in_use -= class.block_size();
        // SAFETY: `pool` is the live header of the block's pool.
        let (used, linked) = unsafe {
            debug_assert_eq!((*pool).core, self.state, "block freed to the wrong allocator");
            debug_assert_eq!(
                (*pool).class as usize,
                class.index(),
                "block freed with a different layout"
            );
            ((*pool).used, (*pool).in_used_list)
        };
        if used == 0 || !linked {
            // SAFETY: as above.
            unsafe { pool_changed_state(st, pool) };
        }
    }

    #[inline(always)]
    fn alloc_small_slow(&self, st: &mut State, class: SizeClass, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let head = &mut st.used_pools[class.index()];
        // Unlink the full pools at the head of the list (they were left there
        // lazily), then take a block from the first one with room.
        while !head.is_null() {
            let pool = *head;
            // SAFETY: pools on a used list are live and of this class.
            if let Some(block) = unsafe { pool::take_block(pool, class.block_size()) } {
                st.bytes_in_use += class.block_size();
                return Ok(block);
            }
            // SAFETY: `pool` is on this list.
            unsafe { pool::unlink(head, pool) };
        }
        let pool = st
            .arenas
            .take_pool(self.state, class)
            .ok_or_else(|| AllocError::new(layout, AllocErrorKind::OutOfMemory))?;
        // SAFETY: a fresh pool is live, unlinked, and has room for two blocks.
        unsafe {
            pool::link_front(head, pool);
            let block = pool::take_block(pool, class.block_size()).expect("a fresh pool has room");
            st.bytes_in_use += class.block_size();
            Ok(block)
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_large(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: the only state reference in this call.
        let st = unsafe { self.state() };
        let (sys, offset) =
            large::system_layout(layout).ok_or_else(|| AllocError::new(layout, AllocErrorKind::CapacityOverflow))?;
        if st
            .bytes_in_use
            .checked_add(sys.size())
            .is_none_or(|total| total > st.limit)
        {
            return Err(limit_error(st, layout, sys.size()));
        }
        let block = st
            .large
            .alloc(self.state, sys, offset)
            .ok_or_else(|| AllocError::new(layout, AllocErrorKind::OutOfMemory))?;
        st.bytes_in_use += sys.size();
        Ok(block)
    }

    #[cold]
    #[inline(never)]
    unsafe fn dealloc_large(&self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: the only state reference in this call.
        let st = unsafe { self.state() };
        // SAFETY: the caller guarantees `block` is a live large block of ours.
        let freed = unsafe {
            debug_assert_eq!(
                (*large::header_of(block)).core,
                self.state,
                "block freed to the wrong allocator"
            );
            st.large.dealloc(block, layout)
        };
        st.bytes_in_use -= freed;
    }

    /// Bytes a block for `layout` really occupies: its size class, or for a
    /// large request the system allocation including its header (see [`usable_size`]).
    pub fn usable_size(&self, layout: Layout) -> usize {
        usable_size(layout)
    }

    /// Bytes handed out and not yet freed (at size-class granularity, large
    /// blocks with their headers). This is what the limit is compared with.
    pub fn bytes_in_use(&self) -> usize {
        // SAFETY: the only state reference in this call.
        unsafe { self.state() }.bytes_in_use
    }

    /// Sets (or with `None` removes) the byte limit. Allocations that would
    /// take [`bytes_in_use`](Self::bytes_in_use) above it fail with
    /// [`AllocErrorKind::LimitExceeded`]. A limit below the current use is
    /// allowed: allocation fails until enough is freed.
    pub fn set_limit(&self, limit: Option<usize>) {
        // SAFETY: the only state reference in this call.
        unsafe { self.state() }.limit = limit.unwrap_or(usize::MAX);
    }

    /// The byte limit, if one is set.
    pub fn limit(&self) -> Option<usize> {
        // SAFETY: the only state reference in this call.
        let limit = unsafe { self.state() }.limit;
        (limit != usize::MAX).then_some(limit)
    }

    /// Keeps the arenas that become wholly empty mapped until the returned
    /// guard drops, instead of returning them to the OS (the cycle collector
    /// holds one for the time of a collection, so that its pauses do not
    /// include unmaps); [`release_surplus_arenas`](Self::release_surplus_arenas)
    /// returns them afterwards. Guards nest: dropping one restores what was
    /// in force before it.
    pub(crate) fn defer_arena_releases(&self) -> DeferredArenaReleases<'_> {
        // SAFETY: the only state reference in this call.
        let was = unsafe { self.state() }.arenas.set_deferring(true);
        DeferredArenaReleases { allocator: self, was }
    }

    /// Returns at most `max` of the wholly empty arenas beyond the spares the
    /// allocator keeps (as many as the arenas in use, and at least one);
    /// returns how many were released.
    pub(crate) fn release_surplus_arenas(&self, max: usize) -> usize {
        // SAFETY: the only state reference in this call.
        unsafe { self.state() }.arenas.release_excess(max)
    }

    /// Returns every wholly empty arena to the OS, including the spares the
    /// allocator otherwise keeps; returns how many were released.
    pub fn trim(&self) -> usize {
        // SAFETY: the only state reference in this call.
        unsafe { self.state() }.arenas.release_empty()
    }

    /// A snapshot of the allocator's memory use; walks every arena, so it
    /// costs O(arenas × pools). `Display` prints it as a table.
    pub fn stats(&self) -> AllocStats {
        // SAFETY: the only state reference in this call.
        let st = unsafe { self.state() };
        AllocStats::collect(&st.arenas, &st.large, st.bytes_in_use, self.limit_of(st))
    }

    fn limit_of(&self, st: &State) -> Option<usize> {
        (st.limit != usize::MAX).then_some(st.limit)
    }

    /// Attaches an opaque pointer to this allocator, retrievable from any of
    /// its blocks with [`owner_data_of`](Self::owner_data_of). Layers built on
    /// the allocator use it to find their own state from an object's address.
    pub fn set_owner_data(&self, data: *mut ()) {
        // SAFETY: the only state reference in this call.
        unsafe { self.state() }.owner_data = data;
    }

    /// The pointer set with [`set_owner_data`](Self::set_owner_data) (null by default).
    pub fn owner_data(&self) -> *mut () {
        // SAFETY: the only state reference in this call.
        unsafe { self.state() }.owner_data
    }

    /// The owner data of the allocator that handed out `block`, found from the
    /// address alone: by masking it to its pool header, or from the header in
    /// front of a large block.
    ///
    /// # Safety
    /// `block` was returned by `alloc(layout)` on a live allocator and not
    /// freed, and that allocator is not in the middle of another call.
    #[inline]
    pub unsafe fn owner_data_of(block: NonNull<u8>, layout: Layout) -> *mut () {
        // SAFETY: the caller guarantees the block is live, so its pool or
        // large header is live and names a live State; we read one field.
        unsafe {
            let state = match SizeClass::for_layout(layout) {
                Some(_) => (*pool::pool_of(block)).core,
                None => (*large::header_of(block)).core,
            };
            (*state.as_ptr()).owner_data
        }
    }
}

/// Bytes a block for `layout` occupies in any [`Allocator`]: its size class,
/// or for a large request the system allocation including its header
/// (`usize::MAX` if no allocation could serve it).
pub fn usable_size(layout: Layout) -> usize {
    match SizeClass::for_layout(layout) {
        Some(class) => class.block_size(),
        None => large::system_layout(layout).map_or(usize::MAX, |(sys, _)| sys.size()),
    }
}

/// Handles a pool whose block count just changed in a way that moves it
/// between lists: now empty (back to its arena) or formerly full (back on
/// the front of its class's used list).
///
/// # Safety
/// `pool` is a live pool of `st`.
#[cold]
#[inline(never)]
unsafe fn pool_changed_state(st: &mut State, pool: *mut PoolHeader) {
    // SAFETY: the caller guarantees `pool` is live and belongs to `st`.
    unsafe {
        let head = &mut st.used_pools[(*pool).class as usize];
        if (*pool).used == 0 {
            if (*pool).in_used_list {
                pool::unlink(head, pool);
            }
            st.arenas.return_pool(pool);
        } else {
            pool::link_front(head, pool);
        }
    }
}

#[cold]
fn limit_error(st: &State, layout: Layout, needed: usize) -> AllocError {
    AllocError::new(
        layout,
        AllocErrorKind::LimitExceeded {
            limit: st.limit,
            in_use: st.bytes_in_use,
            needed,
        },
    )
}

impl Default for Allocator {
    fn default() -> Self {
        Allocator::new()
    }
}

impl core::fmt::Debug for Allocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: the only state reference in this call.
        let st = unsafe { self.state() };
        f.debug_struct("Allocator")
            .field("bytes_in_use", &st.bytes_in_use)
            .field("arenas", &st.arenas.counters.current)
            .field("large_objects", &st.large.count)
            .field("limit", &self.limit_of(st))
            .finish()
    }
}

/// Arena releases deferred until this drops (see
/// [`Allocator::defer_arena_releases`]).
pub(crate) struct DeferredArenaReleases<'a> {
    allocator: &'a Allocator,
    /// Whether releases were deferred before this guard.
    was: bool,
}

impl Drop for DeferredArenaReleases<'_> {
    fn drop(&mut self) {
        // SAFETY: the only state reference in this call.
        unsafe { self.allocator.state() }.arenas.set_deferring(self.was);
    }
}

impl Drop for Allocator {
    /// Returns every arena and large block to the system. Blocks still handed
    /// out become invalid (using them was already `unsafe`).
    fn drop(&mut self) {
        // SAFETY: `state` came from Box::leak in `new` and is dropped once.
        drop(unsafe { Box::from_raw(self.state.as_ptr()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deferral keeps emptied arenas mapped (nested guards restore it), and
    /// `release_surplus_arenas` returns them at the pace asked; once the
    /// guards are gone, an emptied arena goes back at once again.
    #[test]
    fn deferred_arena_releases_keep_emptied_arenas_until_released() {
        let a = Allocator::new();
        let layout = Layout::from_size_align(SMALL_REQUEST_THRESHOLD, 8).unwrap();
        let class = SizeClass::for_layout(layout).unwrap();
        let per_arena = POOLS_PER_ARENA * class.blocks_per_pool();
        let arenas = |a: &Allocator| a.stats().arenas_current;
        let free_all = |blocks: Vec<NonNull<u8>>| {
            for block in blocks {
                // SAFETY: allocated by `a` with this layout, freed once.
                unsafe { a.dealloc(block, layout) };
            }
        };

        let blocks: Vec<_> = (0..3 * per_arena).map(|_| a.alloc(layout).unwrap()).collect();
        assert_eq!(arenas(&a), 3);
        {
            let _outer = a.defer_arena_releases();
            drop(a.defer_arena_releases());
            free_all(blocks);
            assert_eq!(arenas(&a), 3, "kept while deferred, also after an inner guard");
            assert_eq!(a.release_surplus_arenas(1), 1);
            assert_eq!(arenas(&a), 2);
        }
        assert_eq!(a.release_surplus_arenas(usize::MAX), 1);
        assert_eq!(arenas(&a), 1, "one spare stays");

        let blocks: Vec<_> = (0..per_arena + 1).map(|_| a.alloc(layout).unwrap()).collect();
        assert_eq!(arenas(&a), 2);
        free_all(blocks);
        assert_eq!(arenas(&a), 1, "no longer deferred: the surplus arena went back at once");
        assert_eq!(a.stats().arenas_freed_total, 3);
    }
}
