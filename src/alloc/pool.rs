//! Pools: 16 KiB blocks of memory serving one size class.
//!
//! ```text
//!  pool (16 KiB, 16 KiB aligned)
//!  +-------------+---------+---------+---------+-----+-------------------+------+
//!  | PoolHeader  | block 0 | block 1 | block 2 | ... | never used blocks | tail |
//!  | (64 bytes)  |  used   |  free ──┼──► ...  |     |  (bump_offset ──► |      |
//!  +-------------+---------+---------+---------+-----+-------------------+------+
//!  ^ address of any block with the low 14 bits cleared
//! ```
//!
//! * The header sits at the pool's aligned start, so the pool of any block is
//!   found by masking its address ([`pool_of`]), and the header names the
//!   allocator that owns the pool (`core`).
//! * Freed blocks form an intrusive LIFO list through their first word
//!   (`free`); blocks never handed out yet are carved lazily by bumping
//!   `bump_offset`, so a fresh pool touches only the memory it hands out.
//! * `used` counts blocks handed out. A pool with `used == 0` is returned to
//!   its arena at once.
//! * Pools with blocks to spare sit on their class's doubly linked *used list*
//!   (`next`/`prev`, `in_used_list`). Full pools are unlinked lazily, when
//!   allocation finds them at the head of the list, and relinked at the front
//!   when a block of theirs is freed. So a pool that oscillates between full
//!   and one-free (the steady state of a sliding-window workload) costs no
//!   list operations. An empty pool on its arena's free list reuses `next`.

use core::ptr::{self, NonNull};

use super::size_class::SizeClass;
use super::State;

/// Bytes in one pool.
pub const POOL_SIZE: usize = 16 * 1024;
/// Bytes in one arena.
pub const ARENA_SIZE: usize = 1024 * 1024;
/// Pools in one arena.
pub const POOLS_PER_ARENA: usize = ARENA_SIZE / POOL_SIZE;
/// Bytes at the start of each pool taken by its header.
pub const POOL_HEADER_SIZE: usize = core::mem::size_of::<PoolHeader>();

const _: () = assert!(
    POOL_HEADER_SIZE % 16 == 0,
    "blocks of 16-byte classes must stay 16-aligned"
);
const _: () = assert!(POOLS_PER_ARENA < 128, "the arena buckets bitmap is a u128");

/// A free block's first word: the next free block of the same pool.
#[repr(C)]
pub(crate) struct FreeBlock {
    pub(crate) next: *mut FreeBlock,
}

/// The header at the start of every carved pool. It is padded to a cache
/// line so that blocks of 16, 32, 64, ... bytes never straddle two lines
/// (an object's header and value are then read with one miss, not two).
#[repr(C, align(64))]
pub(crate) struct PoolHeader {
    /// Head of the free list (null when no freed block is available).
    pub(crate) free: *mut FreeBlock,
    /// Next pool on the class's used list, or on the arena's empty-pool list.
    pub(crate) next: *mut PoolHeader,
    /// Previous pool on the class's used list.
    pub(crate) prev: *mut PoolHeader,
    /// The allocator state that owns this pool.
    pub(crate) core: NonNull<State>,
    /// Blocks handed out and not yet freed.
    pub(crate) used: u32,
    /// Offset of the first never-used block.
    pub(crate) bump_offset: u32,
    /// Index of the owning arena in the allocator's arena table.
    pub(crate) arena: u32,
    /// Size class index.
    pub(crate) class: u8,
    /// Whether the pool is linked on its class's used list.
    pub(crate) in_used_list: bool,
}

/// The pool containing `block`.
#[inline(always)]
pub(crate) fn pool_of(block: NonNull<u8>) -> *mut PoolHeader {
    block.as_ptr().map_addr(|addr| addr & !(POOL_SIZE - 1)).cast()
}

/// Writes a fresh header for a pool of `class` at `pool`.
///
/// # Safety
/// `pool` is the 16 KiB aligned start of a pool inside a live arena that no
/// list references and whose blocks are all unused.
pub(crate) unsafe fn init(pool: *mut PoolHeader, core: NonNull<State>, arena: u32, class: SizeClass) {
    // SAFETY: the caller guarantees `pool` points at POOL_SIZE writable bytes
    // we exclusively own; the header fits in the first POOL_HEADER_SIZE.
    unsafe {
        pool.write(PoolHeader {
            free: ptr::null_mut(),
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            core,
            used: 0,
            bump_offset: POOL_HEADER_SIZE as u32,
            arena,
            class: class.index() as u8,
            in_used_list: false,
        });
    }
}

/// Takes one block from `pool` (free list first, then the never-used tail), or
/// `None` if the pool is full. `block_size` is the pool's class block size.
///
/// # Safety
/// `pool` is a live, initialised pool header of a class with `block_size`.
#[inline(always)]
pub(crate) unsafe fn take_block(pool: *mut PoolHeader, block_size: usize) -> Option<NonNull<u8>> {
    // Free-list entries are blocks of this pool whose first word holds the
    // next link (written by `give_back`); bump_offset + block_size <=
    // POOL_SIZE keeps a carved block inside the pool.
    // SAFETY: as above, and the caller guarantees the header is live.
    unsafe {
        let block = (*pool).free;
        if !block.is_null() {
            (*pool).free = (*block).next;
            (*pool).used += 1;
            return Some(NonNull::new_unchecked(block.cast()));
        }
        let offset = (*pool).bump_offset as usize;
        if offset + block_size <= POOL_SIZE {
            (*pool).bump_offset = (offset + block_size) as u32;
            (*pool).used += 1;
            return Some(NonNull::new_unchecked(pool.cast::<u8>().add(offset)));
        }
        None
    }
}

/// Pushes `block` onto its pool's free list and returns the pool.
///
/// # Safety
/// `block` was handed out by `take_block` on its pool and is not used afterwards.
#[inline(always)]
pub(crate) unsafe fn give_back(block: NonNull<u8>) -> *mut PoolHeader {
    let pool = pool_of(block);
    let block = block.as_ptr().cast::<FreeBlock>();
    // SAFETY: the caller guarantees `block` is a handed-out block of a live
    // pool; every block is at least 8 bytes and 8-aligned, so its first word
    // can hold the link.
    unsafe {
        debug_assert!((*pool).used > 0, "double free or foreign pointer");
        debug_assert_eq!(
            (block as usize - pool as usize - POOL_HEADER_SIZE)
                % SizeClass::from_index((*pool).class as usize).map_or(1, |c| c.block_size()),
            0,
            "pointer is not the start of a block"
        );
        block.write(FreeBlock { next: (*pool).free });
        (*pool).free = block;
        (*pool).used -= 1;
    }
    pool
}

/// Links `pool` at the front of its class's used list.
///
/// # Safety
/// `pool` is live and not on any list; `head` is the class's list head slot.
pub(crate) unsafe fn link_front(head: &mut *mut PoolHeader, pool: *mut PoolHeader) {
    // SAFETY: the caller guarantees `pool` is live and unlinked, and every
    // pool reachable from `head` is live.
    unsafe {
        debug_assert!(!(*pool).in_used_list);
        (*pool).prev = ptr::null_mut();
        (*pool).next = *head;
        if !head.is_null() {
            (**head).prev = pool;
        }
        *head = pool;
        (*pool).in_used_list = true;
    }
}

/// Unlinks `pool` from its class's used list.
///
/// # Safety
/// `pool` is live and on the list whose head slot is `head`.
pub(crate) unsafe fn unlink(head: &mut *mut PoolHeader, pool: *mut PoolHeader) {
    // SAFETY: the caller guarantees `pool` is on this list, so its neighbours
    // are live pools of the same list.
    unsafe {
        debug_assert!((*pool).in_used_list);
        let (prev, next) = ((*pool).prev, (*pool).next);
        if prev.is_null() {
            debug_assert_eq!(*head, pool);
            *head = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*pool).next = ptr::null_mut();
        (*pool).prev = ptr::null_mut();
        (*pool).in_used_list = false;
    }
}
