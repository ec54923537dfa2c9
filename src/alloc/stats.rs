//! [`AllocStats`]: a snapshot of the allocator in the spirit of
//! `sys._debugmallocstats()`.
//!
//! The byte budget adds up exactly: for the small-object side,
//! `arenas × ARENA_SIZE = bytes in allocated blocks + bytes in available
//! blocks + unused pools × POOL_SIZE + pool headers + quantization`
//! ([`AllocStats::arena_bytes_accounted`]).

use core::fmt;

use super::arena::ArenaTable;
use super::large::LargeList;
use super::pool::{PoolHeader, ARENA_SIZE, POOL_HEADER_SIZE, POOL_SIZE};
use super::size_class::{SizeClass, NUM_SIZE_CLASSES};

/// Usage of one size class.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Bytes per block.
    pub block_size: usize,
    /// Pools of this class with at least one block in use.
    pub pools: usize,
    /// Blocks handed out and not freed.
    pub blocks_in_use: usize,
    /// Blocks available in those pools (freed or never used).
    pub free_blocks: usize,
}

/// A snapshot of an allocator's memory, returned by `Allocator::stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// One entry per size class, smallest first.
    pub classes: Vec<ClassStats>,
    /// Arenas mapped since the allocator was created.
    pub arenas_allocated_total: usize,
    /// Arenas returned to the OS since the allocator was created.
    pub arenas_freed_total: usize,
    /// Arenas mapped now.
    pub arenas_current: usize,
    /// Most arenas mapped at once.
    pub arenas_high_water: usize,
    /// Pools in mapped arenas that serve no class now (empty or never carved).
    pub unused_pools: usize,
    /// Bytes taken by the headers of pools in use.
    pub pool_header_bytes: usize,
    /// Bytes at the tail of pools in use too small for another block.
    pub quantization_bytes: usize,
    /// Large (system-allocated) blocks live now.
    pub large_objects: usize,
    /// Bytes of those large blocks, headers included.
    pub large_bytes: usize,
    /// Bytes handed out: small blocks at their class size plus large blocks.
    pub bytes_in_use: usize,
    /// Bytes obtained from the system: mapped arenas plus large blocks.
    pub bytes_reserved: usize,
    /// The byte limit, if one is set.
    pub limit: Option<usize>,
}

impl AllocStats {
    pub(crate) fn collect(arenas: &ArenaTable, large: &LargeList, bytes_in_use: usize, limit: Option<usize>) -> Self {
        let mut classes: Vec<ClassStats> = SizeClass::all()
            .map(|c| ClassStats {
                block_size: c.block_size(),
                ..ClassStats::default()
            })
            .collect();
        let mut s = AllocStats::default();
        for arena in arenas.live() {
            let base = arena.mapping.expect("live arena").base;
            let mut in_use_pools = 0;
            for i in 0..arena.carved as usize {
                // SAFETY: pools below `carved` have initialised headers inside
                // the live arena; we only read them.
                let pool = unsafe { &*base.as_ptr().add(i * POOL_SIZE).cast::<PoolHeader>() };
                if pool.used == 0 {
                    continue;
                }
                in_use_pools += 1;
                let class = SizeClass::from_index(pool.class as usize).expect("valid class");
                let c = &mut classes[class.index()];
                c.pools += 1;
                c.blocks_in_use += pool.used as usize;
                c.free_blocks += class.blocks_per_pool() - pool.used as usize;
                s.pool_header_bytes += POOL_HEADER_SIZE;
                s.quantization_bytes += POOL_SIZE - POOL_HEADER_SIZE - class.blocks_per_pool() * class.block_size();
            }
            debug_assert_eq!(
                arena.free_pools as usize,
                super::pool::POOLS_PER_ARENA - in_use_pools,
                "arena free-pool count out of sync"
            );
            s.unused_pools += arena.free_pools as usize;
        }
        debug_assert_eq!(classes.len(), NUM_SIZE_CLASSES);
        s.classes = classes;
        let c = arenas.counters;
        s.arenas_allocated_total = c.allocated_total;
        s.arenas_freed_total = c.freed_total;
        s.arenas_current = c.current;
        s.arenas_high_water = c.high_water;
        s.large_objects = large.count;
        s.large_bytes = large.bytes;
        s.bytes_in_use = bytes_in_use;
        s.bytes_reserved = c.current * ARENA_SIZE + large.bytes;
        s.limit = limit;
        s
    }

    /// Bytes in small blocks handed out.
    pub fn small_bytes_in_use(&self) -> usize {
        self.classes.iter().map(|c| c.blocks_in_use * c.block_size).sum()
    }

    /// Bytes in small blocks available for reuse in pools that are in use.
    pub fn small_bytes_free(&self) -> usize {
        self.classes.iter().map(|c| c.free_blocks * c.block_size).sum()
    }

    /// The sum of every category the arena bytes are split into; always equals
    /// `arenas_current × ARENA_SIZE`.
    pub fn arena_bytes_accounted(&self) -> usize {
        self.small_bytes_in_use()
            + self.small_bytes_free()
            + self.unused_pools * POOL_SIZE
            + self.pool_header_bytes
            + self.quantization_bytes
    }
}

impl fmt::Display for AllocStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Small block threshold = 512, in {NUM_SIZE_CLASSES} size classes.")?;
        writeln!(f)?;
        writeln!(f, "class   size   num pools   blocks in use   avail blocks")?;
        writeln!(f, "-----   ----   ---------   -------------   ------------")?;
        for (i, c) in self.classes.iter().enumerate().filter(|(_, c)| c.pools > 0) {
            writeln!(
                f,
                "{i:>5}   {:>4}   {:>9}   {:>13}   {:>12}",
                c.block_size, c.pools, c.blocks_in_use, c.free_blocks
            )?;
        }
        writeln!(f)?;
        let row = |f: &mut fmt::Formatter<'_>, label: &str, value: usize| writeln!(f, "{label:<40} = {value:>12}");
        row(f, "# arenas allocated total", self.arenas_allocated_total)?;
        row(f, "# arenas reclaimed", self.arenas_freed_total)?;
        row(f, "# arenas highwater mark", self.arenas_high_water)?;
        row(f, "# arenas allocated current", self.arenas_current)?;
        row(
            f,
            &format!("{} arenas * {ARENA_SIZE} bytes/arena", self.arenas_current),
            self.arenas_current * ARENA_SIZE,
        )?;
        writeln!(f)?;
        row(f, "# bytes in allocated blocks", self.small_bytes_in_use())?;
        row(f, "# bytes in available blocks", self.small_bytes_free())?;
        row(
            f,
            &format!("{} unused pools * {POOL_SIZE} bytes", self.unused_pools),
            self.unused_pools * POOL_SIZE,
        )?;
        row(f, "# bytes lost to pool headers", self.pool_header_bytes)?;
        row(f, "# bytes lost to quantization", self.quantization_bytes)?;
        row(f, "Total (arena bytes)", self.arena_bytes_accounted())?;
        writeln!(f)?;
        row(f, "# large objects", self.large_objects)?;
        row(f, "# bytes in large objects", self.large_bytes)?;
        row(f, "# bytes in use (blocks + large)", self.bytes_in_use)?;
        row(f, "# bytes reserved (arenas + large)", self.bytes_reserved)?;
        match self.limit {
            Some(limit) => row(f, "# byte limit", limit),
            None => writeln!(f, "{:<40} = {:>12}", "# byte limit", "none"),
        }
    }
}
