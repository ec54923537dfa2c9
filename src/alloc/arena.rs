//! Arenas: 1 MiB regions from the OS, carved into 64 pools.
//!
//! ```text
//!  arena (1 MiB, 16 KiB aligned)
//!  +--------+--------+--------+-----+---------+----------------------+
//!  | pool 0 | pool 1 | pool 2 | ... | pool k  |  never carved pools  |
//!  | class 3| empty  | class 9|     |         |                      |
//!  +--------+--------+--------+-----+---------+----------------------+
//!            ^ on the arena's empty-pool list   ^ carved = k + 1
//! ```
//!
//! The allocator keeps a table of arena descriptors ([`ArenaTable`]). Each live
//! arena sits in exactly one *bucket*: the list of arenas with the same number
//! of free pools (empty carved pools plus never-carved ones). A new pool is
//! taken from the arena with the fewest free pools, found in O(1) from a
//! bitmap of non-empty buckets, so allocation concentrates in busy arenas and
//! lightly used ones can drain. Moving an arena between buckets when its
//! count changes is O(1) (CPython keeps one sorted list and a finger per
//! count for the same purpose).
//!
//! When an arena's last pool becomes empty the arena is returned to the OS,
//! unless it is needed as a spare: wholly empty arenas are kept as long as
//! there are no more of them than arenas in use (and always one), so a
//! program that builds and frees a large structure in a loop while another
//! stays live (binary-trees' short-lived trees next to its long-lived one)
//! does not map, fault in and unmap the same megabytes every time. The
//! memory kept is thus at most the memory in use plus one arena; once
//! everything is freed only one spare is left (`Allocator::trim` releases
//! that one too). While the cycle collector tears garbage down, arenas it
//! empties are not unmapped there and then (an unmap of a used megabyte
//! costs a tenth of a millisecond or more, and a large teardown empties
//! many): an automatic collection releases at most one surplus arena at
//! its end, so the surplus goes back over the following collections, or at
//! once when a release outside a collection empties another arena, when the
//! program calls `Heap::collect`, or with `Allocator::trim`.

use core::ptr::{self, NonNull};

use super::os::{self, Mapping};
use super::pool::{self, PoolHeader, POOLS_PER_ARENA, POOL_SIZE};
use super::size_class::SizeClass;
use super::State;

const NONE: u32 = u32::MAX;

/// One arena's bookkeeping; `mapping == None` marks an unused table slot.
pub(crate) struct ArenaDesc {
    pub(crate) mapping: Option<Mapping>,
    /// Empty carved pools plus never-carved pools.
    pub(crate) free_pools: u32,
    /// Pools carved so far (pool `i < carved` has a header).
    pub(crate) carved: u32,
    /// Empty carved pools, linked through `PoolHeader::next`.
    empty_pools: *mut PoolHeader,
    bucket_prev: u32,
    bucket_next: u32,
}

/// Lifetime counters in the spirit of `sys._debugmallocstats()`.
#[derive(Default, Copy, Clone)]
pub(crate) struct ArenaCounters {
    pub(crate) allocated_total: usize,
    pub(crate) freed_total: usize,
    pub(crate) current: usize,
    pub(crate) high_water: usize,
}

/// All arenas of one allocator.
pub(crate) struct ArenaTable {
    pub(crate) arenas: Vec<ArenaDesc>,
    unused_slots: Vec<u32>,
    /// `buckets[k]`: first arena with exactly `k` free pools.
    buckets: [u32; POOLS_PER_ARENA + 1],
    /// Bit `k` set iff `buckets[k]` is non-empty.
    nonempty: u128,
    /// Arenas in the all-free bucket (wholly empty, kept as spares).
    empty_arenas: usize,
    /// Arenas emptied now are kept until [`release_excess`](Self::release_excess)
    /// (see [`Allocator::defer_arena_releases`](super::Allocator::defer_arena_releases)).
    deferring: bool,
    pub(crate) counters: ArenaCounters,
}

impl ArenaTable {
    pub(crate) fn new() -> Self {
        ArenaTable {
            arenas: Vec::new(),
            unused_slots: Vec::new(),
            buckets: [NONE; POOLS_PER_ARENA + 1],
            nonempty: 0,
            empty_arenas: 0,
            deferring: false,
            counters: ArenaCounters::default(),
        }
    }

    fn bucket_insert(&mut self, idx: u32) {
        let k = self.arenas[idx as usize].free_pools as usize;
        let head = self.buckets[k];
        {
            let a = &mut self.arenas[idx as usize];
            a.bucket_prev = NONE;
            a.bucket_next = head;
        }
        if head != NONE {
            self.arenas[head as usize].bucket_prev = idx;
        }
        self.buckets[k] = idx;
        self.nonempty |= 1 << k;
        self.empty_arenas += usize::from(k == POOLS_PER_ARENA);
    }

    fn bucket_remove(&mut self, idx: u32) {
        let (k, prev, next) = {
            let a = &self.arenas[idx as usize];
            (a.free_pools as usize, a.bucket_prev, a.bucket_next)
        };
        if prev == NONE {
            debug_assert_eq!(self.buckets[k], idx);
            self.buckets[k] = next;
            if next == NONE {
                self.nonempty &= !(1 << k);
            }
        } else {
            self.arenas[prev as usize].bucket_next = next;
        }
        if next != NONE {
            self.arenas[next as usize].bucket_prev = prev;
        }
        self.empty_arenas -= usize::from(k == POOLS_PER_ARENA);
    }

    /// Maps a new arena and files it in the all-free bucket.
    fn add_arena(&mut self) -> Option<u32> {
        let mapping = os::map_arena()?;
        let desc = ArenaDesc {
            mapping: Some(mapping),
            free_pools: POOLS_PER_ARENA as u32,
            carved: 0,
            empty_pools: ptr::null_mut(),
            bucket_prev: NONE,
            bucket_next: NONE,
        };
        let idx = match self.unused_slots.pop() {
            Some(idx) => {
                self.arenas[idx as usize] = desc;
                idx
            }
            None => {
                self.arenas.push(desc);
                (self.arenas.len() - 1) as u32
            }
        };
        self.bucket_insert(idx);
        let c = &mut self.counters;
        c.allocated_total += 1;
        c.current += 1;
        c.high_water = c.high_water.max(c.current);
        Some(idx)
    }

    /// Returns arena `idx`, which must have no pool in use, to the OS.
    fn release_arena(&mut self, idx: u32) {
        debug_assert_eq!(self.arenas[idx as usize].free_pools as usize, POOLS_PER_ARENA);
        self.bucket_remove(idx);
        let mapping = self.arenas[idx as usize]
            .mapping
            .take()
            .expect("releasing a live arena");
        self.arenas[idx as usize].empty_pools = ptr::null_mut();
        // SAFETY: every pool of the arena is empty, so no block is handed out
        // and no used list links into it; its empty-pool list was just dropped.
        unsafe { os::unmap_arena(mapping) };
        self.unused_slots.push(idx);
        self.counters.freed_total += 1;
        self.counters.current -= 1;
    }

    /// Takes a pool for `class` from the busiest arena with a free pool
    /// (mapping a new arena if none has one) and initialises its header.
    /// `None` if the OS refuses a new arena.
    pub(crate) fn take_pool(&mut self, core: NonNull<State>, class: SizeClass) -> Option<*mut PoolHeader> {
        let candidates = self.nonempty & !1;
        let idx = if candidates == 0 {
            self.add_arena()?
        } else {
            self.buckets[candidates.trailing_zeros() as usize]
        };
        self.bucket_remove(idx);
        let a = &mut self.arenas[idx as usize];
        let pool = if !a.empty_pools.is_null() {
            let pool = a.empty_pools;
            // SAFETY: pools on an arena's empty list are live headers inside it.
            a.empty_pools = unsafe { (*pool).next };
            pool
        } else {
            debug_assert!((a.carved as usize) < POOLS_PER_ARENA);
            let base = a.mapping.expect("live arena").base;
            // SAFETY: carved < POOLS_PER_ARENA, so the pool lies inside the arena.
            let pool = unsafe { base.as_ptr().add(a.carved as usize * POOL_SIZE) };
            a.carved += 1;
            pool.cast::<PoolHeader>()
        };
        a.free_pools -= 1;
        self.bucket_insert(idx);
        // SAFETY: `pool` is an aligned pool of a live arena that no list
        // references any more and whose blocks are all unused.
        unsafe { pool::init(pool, core, idx, class) };
        Some(pool)
    }

    /// Gives an empty, unlinked pool back to its arena; if that left the
    /// arena wholly empty, releases wholly empty arenas to the OS while they
    /// outnumber both one and the arenas still in use.
    ///
    /// # Safety
    /// `pool` is a live pool of this table with no block in use, on no used list.
    pub(crate) unsafe fn return_pool(&mut self, pool: *mut PoolHeader) {
        // SAFETY: the caller guarantees `pool` is a live header of this table.
        let idx = unsafe { (*pool).arena };
        self.bucket_remove(idx);
        let a = &mut self.arenas[idx as usize];
        // SAFETY: as above; the pool joins the arena's empty list.
        unsafe { (*pool).next = a.empty_pools };
        a.empty_pools = pool;
        a.free_pools += 1;
        let now_empty = a.free_pools as usize == POOLS_PER_ARENA;
        self.bucket_insert(idx);
        if now_empty && !self.deferring {
            self.release_excess(usize::MAX);
        }
    }

    /// Releases wholly empty arenas while they outnumber both one and the
    /// arenas still in use, at most `max` of them; returns how many.
    pub(crate) fn release_excess(&mut self, max: usize) -> usize {
        let mut released = 0;
        while released < max && self.empty_arenas > 1.max(self.counters.current - self.empty_arenas) {
            // The head of the all-free bucket: the arena emptied last.
            self.release_arena(self.buckets[POOLS_PER_ARENA]);
            released += 1;
        }
        released
    }

    /// Keeps (`true`) or releases as usual (`false`) the arenas emptied from
    /// now on; returns the previous setting. See
    /// [`Allocator::defer_arena_releases`](super::Allocator::defer_arena_releases).
    pub(crate) fn set_deferring(&mut self, deferring: bool) -> bool {
        core::mem::replace(&mut self.deferring, deferring)
    }

    /// Releases every wholly empty arena; returns how many.
    pub(crate) fn release_empty(&mut self) -> usize {
        let mut released = 0;
        while self.buckets[POOLS_PER_ARENA] != NONE {
            self.release_arena(self.buckets[POOLS_PER_ARENA]);
            released += 1;
        }
        released
    }

    /// Live arenas, with their descriptors.
    pub(crate) fn live(&self) -> impl Iterator<Item = &ArenaDesc> {
        self.arenas.iter().filter(|a| a.mapping.is_some())
    }
}

impl Drop for ArenaTable {
    fn drop(&mut self) {
        for a in &mut self.arenas {
            if let Some(mapping) = a.mapping.take() {
                // SAFETY: the allocator is being dropped; its contract says no
                // block handed out by it is used afterwards.
                unsafe { os::unmap_arena(mapping) };
            }
        }
    }
}
