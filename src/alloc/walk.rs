//! Walking an allocator's blocks.
//!
//! One job: visit every block an allocator may have handed out, so that a
//! layer built on it can find its objects without keeping a list of them
//! (the collector's oldest and permanent generations, see
//! `collect::generations`). The walk visits
//!
//! * every *carved* block (below `bump_offset`) of every pool that has a
//!   block in use (`used > 0`), arena by arena, pool by pool, in address
//!   order; empty pools and never-carved pools are skipped;
//! * then every large block, newest first.
//!
//! The allocator does not know which carved blocks are free: a free block
//! is only a block whose first word is a free-list link. So the walk hands
//! out free blocks too, and the caller tells them apart by content. That
//! works for a layer that keeps the **first word of each of its blocks
//! initialised and distinguishable from a link** (a link is a block address
//! or null, so it is 8-aligned: bit 0 is clear). Every carved block's first
//! word is initialised once the block has been handed out and initialised
//! by its owner (a carved, free block holds its link), so reading it is
//! defined; memory past `bump_offset` is never visited.
//!
//! A walk can be split into pieces ([`WalkPos`]): it stops when the visitor
//! says so and resumes from the returned position later, after the program
//! has run and allocated or freed blocks meanwhile. Positions are indices
//! (arena, pool, byte offset, large-block rank), never pointers, so a stale
//! position is harmless: an arena freed since is skipped, a pool carved for
//! another size class is resumed at its next block boundary, and a large
//! block freed since shifts the ranks by one (a block may then be visited
//! twice or not at all in this walk). Callers must tolerate that (the
//! incremental collector only uses the walk to find seeds; see
//! `collect::incremental`).

use core::ops::ControlFlow;
use core::ptr::NonNull;

use super::pool::{PoolHeader, POOLS_PER_ARENA, POOL_HEADER_SIZE, POOL_SIZE};
use super::size_class::SizeClass;
use super::Allocator;

/// Where a split walk resumes (the start of a walk by default).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WalkPos {
    /// Index in the arena table.
    arena: usize,
    /// Pool index in the arena.
    pool: usize,
    /// Byte offset in the pool of the next block (0: the first block).
    offset: usize,
    /// Large blocks already visited (from the head of the list).
    large: usize,
    /// Every arena is done; the walk is in the large blocks.
    in_large: bool,
}

/// The result of a piece of a split walk.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Walked {
    /// The visitor stopped the walk; resume here.
    Stopped(WalkPos),
    /// Every block was visited.
    Finished,
}

impl Allocator {
    /// Calls `visit` on every block of a pool in use and every large block
    /// (see the module docs), from the start.
    ///
    /// # Safety
    /// `visit` must not call any method of this allocator (it may read the
    /// blocks it is given).
    pub(crate) unsafe fn for_each_block(&self, mut visit: impl FnMut(NonNull<u8>)) {
        // SAFETY: forwarded.
        let walked = unsafe {
            self.walk_from(WalkPos::default(), |block| {
                visit(block);
                ControlFlow::Continue(())
            })
        };
        debug_assert_eq!(walked, Walked::Finished);
    }

    /// Calls `visit` on the blocks from `from` on, until it breaks (the
    /// position after that block is returned) or the walk is finished.
    ///
    /// # Safety
    /// As [`for_each_block`](Self::for_each_block).
    pub(crate) unsafe fn walk_from(
        &self,
        from: WalkPos,
        mut visit: impl FnMut(NonNull<u8>) -> ControlFlow<()>,
    ) -> Walked {
        let mut pos = from;
        if !pos.in_large {
            loop {
                // Read the arena's descriptor with a state reference that
                // ends before any visit.
                let (base, carved, arenas) = {
                    // SAFETY: no other state reference is alive: `visit`
                    // does not call the allocator.
                    let st = unsafe { self.state() };
                    let arenas = st.arenas.arenas.len();
                    match st.arenas.arenas.get(pos.arena) {
                        Some(a) => (a.mapping.map(|m| m.base), a.carved as usize, arenas),
                        None => (None, 0, arenas),
                    }
                };
                if pos.arena >= arenas {
                    break;
                }
                let Some(base) = base else {
                    // An unused table slot (its arena went back to the OS).
                    pos = WalkPos {
                        arena: pos.arena + 1,
                        ..WalkPos::default()
                    };
                    continue;
                };
                debug_assert!(carved <= POOLS_PER_ARENA);
                while pos.pool < carved {
                    // SAFETY: pools below `carved` lie inside the live arena
                    // and have an initialised header (written when carved,
                    // kept while the pool is empty).
                    let pool = unsafe { base.as_ptr().add(pos.pool * POOL_SIZE) }.cast::<PoolHeader>();
                    // SAFETY: as above; the fields are plain data read once.
                    let (used, bump, class) = unsafe { ((*pool).used, (*pool).bump_offset as usize, (*pool).class) };
                    if used > 0 {
                        let size = SizeClass::from_index(class as usize).map_or(POOL_SIZE, |c| c.block_size());
                        // The next block boundary at or after `offset` (the
                        // pool may have been carved again for another class
                        // since the position was taken).
                        let skip = pos.offset.saturating_sub(POOL_HEADER_SIZE);
                        let mut offset = POOL_HEADER_SIZE + skip.div_ceil(size) * size;
                        while offset + size <= bump {
                            // SAFETY: a carved block of a pool in use: inside
                            // the pool, below `bump_offset`.
                            let block = unsafe { NonNull::new_unchecked(pool.cast::<u8>().add(offset)) };
                            offset += size;
                            if visit(block).is_break() {
                                return Walked::Stopped(WalkPos { offset, ..pos });
                            }
                        }
                    }
                    pos.pool += 1;
                    pos.offset = 0;
                }
                pos = WalkPos {
                    arena: pos.arena + 1,
                    ..WalkPos::default()
                };
            }
            pos = WalkPos {
                in_large: true,
                ..WalkPos::default()
            };
        }
        // SAFETY: as above, a reference that ends before any visit.
        let mut user = unsafe { self.state() }.large.nth_block(pos.large);
        while let Some(block) = user {
            pos.large += 1;
            // SAFETY: `block` is a live large block: `visit` frees nothing.
            let next = unsafe { super::large::next_block(block) };
            if visit(block).is_break() {
                return Walked::Stopped(pos);
            }
            user = next;
        }
        Walked::Finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::alloc::Layout;

    fn walk_all(a: &Allocator) -> Vec<usize> {
        let mut seen = Vec::new();
        // SAFETY: the visitor only records addresses.
        unsafe { a.for_each_block(|b| seen.push(b.as_ptr() as usize)) };
        seen
    }

    #[test]
    fn visits_every_live_block_small_and_large() {
        let a = Allocator::new();
        let small = Layout::new::<[u64; 5]>();
        let large = Layout::from_size_align(1000, 64).unwrap();
        let n = if cfg!(miri) { 150 } else { 1000 };
        let blocks: Vec<_> = (0..n).map(|_| a.alloc(small).unwrap()).collect();
        let bigs: Vec<_> = (0..3).map(|_| a.alloc(large).unwrap()).collect();
        let seen = walk_all(&a);
        let set: std::collections::HashSet<usize> = seen.iter().copied().collect();
        for b in blocks.iter().chain(&bigs) {
            assert!(set.contains(&(b.as_ptr() as usize)));
        }
        assert_eq!(seen.len(), blocks.len() + bigs.len(), "nothing else was carved");
        for b in blocks {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(b, small) };
        }
        assert_eq!(walk_all(&a).len(), 3, "empty pools are skipped");
        for b in bigs {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(b, large) };
        }
        assert!(walk_all(&a).is_empty());
    }

    #[test]
    fn a_split_walk_visits_what_a_whole_walk_does() {
        let a = Allocator::new();
        let layouts = [
            Layout::new::<u64>(),
            Layout::new::<[u64; 9]>(),
            Layout::new::<[u8; 700]>(),
        ];
        let mut live = Vec::new();
        for i in 0..if cfg!(miri) { 300 } else { 3000 } {
            let layout = layouts[i % 3];
            live.push((a.alloc(layout).unwrap(), layout));
        }
        let whole = walk_all(&a);
        let mut pieces = Vec::new();
        let mut pos = WalkPos::default();
        loop {
            let mut n = 0;
            // SAFETY: the visitor only records addresses.
            let walked = unsafe {
                a.walk_from(pos, |b| {
                    pieces.push(b.as_ptr() as usize);
                    n += 1;
                    if n == 7 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
            };
            match walked {
                Walked::Stopped(p) => pos = p,
                Walked::Finished => break,
            }
        }
        assert_eq!(pieces, whole);
        for (b, layout) in live {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(b, layout) };
        }
    }
}
