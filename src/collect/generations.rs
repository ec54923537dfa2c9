//! The generations and counters of one heap.
//!
//! # Young generations: vectors
//!
//! Generations 0 and 1 are vectors of tracked object headers; every object
//! knows its index (`slot`) and its generation (flag bits), so removing a
//! dying object is a `swap_remove`. They are bounded by the thresholds, and
//! a young collection takes them whole (tracing only what it must, see
//! `algorithm::find_reachable`): its cost does not depend on the size of the
//! old generation.
//!
//! # Old and permanent generations: no vector
//!
//! Objects of generation 2 and of the permanent generation (frozen objects)
//! have no entry anywhere: their generation bits say 2 or 3 and their slot
//! is one of [`OLD_SLOTS`] (an untracked object has generation 3 and
//! [`NO_SLOT`]). Only their numbers are kept. Promotion into generation 2
//! sets the bits and counts; the death of an old object uncounts. When they
//! are needed — a full collection (which takes only the old objects flagged
//! `DECREMENTED`, and those the candidates reach), `objects(Some(2))`, `referrers`,
//! `freeze`/`unfreeze`, the incremental scan — they are found by walking
//! the heap's allocator (`alloc::walk`) and keeping the blocks that hold a
//! tracked object ([`object::tracked_in_block`]) that is in no running
//! collection and has an old slot. This saves the 8 bytes per object a
//! vector entry costs (a 24-byte node then costs 40 bytes in all, not 48);
//! the walk reads one word per block of the heap, which a full collection
//! (which traces every old object) hardly notices, and is skipped when the
//! generation it looks for is empty. A full collection enters each old
//! candidate in the collection as the walk reads it
//! ([`Generations::take_old_flagged`]), so the walk is its only extra pass
//! over their memory.
//!
//! # Counters
//!
//! As CPython: `count[0]` is tracked allocations minus tracked deallocations
//! since the last collection, `count[1]` counts generation-0 collections
//! since the last generation-1 collection, `count[2]` generation-1
//! collections since the last full one.

use core::ops::ControlFlow;
use core::ptr::NonNull;

use crate::alloc::walk::{WalkPos, Walked};
use crate::alloc::Allocator;
use crate::object::{self, flags, TrackedHeader, NO_SLOT, OLD_SLOTS, UNTRACKED_GEN};

use super::GENERATIONS;

/// Generations with a vector (0 and 1).
const YOUNG: usize = GENERATIONS - 1;

/// Capacity a young vector keeps when it is emptied into a collection.
const KEPT_CAPACITY: usize = 4096;

/// The oldest generation.
pub(crate) const OLD: usize = GENERATIONS - 1;

/// The objects outside its candidates that a generational collection takes
/// in when a candidate refers to them (`collect::algorithm`): those of the
/// generations it collects that it did not make candidates.
#[derive(Copy, Clone, Debug)]
pub(crate) enum TakeIn {
    /// A full collection: the objects of every generation but the permanent
    /// one (the old objects not flagged `DECREMENTED`, and the young ones it
    /// moved into generation 2 untraced).
    AllGenerations,
    /// A young collection: the objects it moved into young generation
    /// `generation` untraced, which it appended to its vector from index
    /// `from` on. (Removing one of them moves another of them into its
    /// place, so they keep the indexes from `from` on.)
    Promoted {
        /// The young generation the collection's survivors move to.
        generation: usize,
        /// That generation's size when the collection began.
        from: usize,
    },
}

impl TakeIn {
    /// Whether `h` (a live tracked object) is one of the objects named: in
    /// a generation (not untracked, frozen or in a running collection) that
    /// this take-in covers.
    pub(crate) fn names(self, h: &TrackedHeader) -> bool {
        if h.slot.get() == NO_SLOT || h.has(flags::COLLECTING) {
            return false;
        }
        match self {
            TakeIn::AllGenerations => h.generation() <= OLD,
            TakeIn::Promoted { generation, from } => {
                h.generation() == generation && !object::is_old_slot(h.slot.get()) && h.slot.get() as usize >= from
            }
        }
    }
}

/// The vectors and counters.
pub(crate) struct Generations {
    /// Generations 0 and 1.
    young: [Vec<NonNull<TrackedHeader>>; YOUNG],
    /// Objects in generation 2.
    old: usize,
    /// Objects in the permanent generation.
    frozen: usize,
    pub(crate) count: [usize; GENERATIONS],
    pub(crate) threshold: [usize; GENERATIONS],
    /// Objects in generation 2 after the last full collection.
    pub(crate) long_lived_total: usize,
    /// Objects promoted into generation 2 since.
    pub(crate) long_lived_pending: usize,
    /// Incremental mode: the one of [`OLD_SLOTS`] that marks old objects
    /// still to be scanned in this pass ("pending"); the other marks those
    /// promoted or scanned since the pass began ("visited"), and every
    /// object entering generation 2 gets it.
    pending_slot: u32,
    /// Incremental mode: where the scan for seeds resumes.
    pub(crate) cursor: WalkPos,
}

impl Generations {
    pub(crate) fn new() -> Self {
        Generations {
            young: Default::default(),
            old: 0,
            frozen: 0,
            count: [0; GENERATIONS],
            threshold: [700, 10, 10],
            long_lived_total: 0,
            long_lived_pending: 0,
            pending_slot: OLD_SLOTS[0],
            cursor: WalkPos::default(),
        }
    }

    /// The slot given to objects entering generation 2 (or the permanent one).
    fn visited_slot(&self) -> u32 {
        if self.pending_slot == OLD_SLOTS[0] {
            OLD_SLOTS[1]
        } else {
            OLD_SLOTS[0]
        }
    }

    /// Puts `header` into generation `generation` (3 = permanent).
    pub(crate) fn push(&mut self, generation: usize, header: NonNull<TrackedHeader>) {
        // SAFETY: callers pass live tracked headers.
        let h = unsafe { header.as_ref() };
        h.set_generation(generation);
        if generation < YOUNG {
            let list = &mut self.young[generation];
            h.slot.set(list.len() as u32);
            list.push(header);
        } else {
            h.slot.set(self.visited_slot());
            if generation == OLD {
                self.old += 1;
            } else {
                self.frozen += 1;
            }
        }
    }

    /// Removes a tracked object from its generation (no-op if it is in none).
    pub(crate) fn remove(&mut self, header: NonNull<TrackedHeader>) {
        // SAFETY: callers pass live tracked headers.
        let h = unsafe { header.as_ref() };
        let slot = h.slot.get();
        if slot == NO_SLOT {
            return;
        }
        h.slot.set(NO_SLOT);
        if object::is_old_slot(slot) {
            if h.generation() == OLD {
                self.old -= 1;
            } else {
                debug_assert_eq!(h.generation(), UNTRACKED_GEN);
                self.frozen -= 1;
            }
            return;
        }
        let list = &mut self.young[h.generation()];
        debug_assert_eq!(list[slot as usize], header, "generation slot out of sync");
        list.swap_remove(slot as usize);
        if let Some(&moved) = list.get(slot as usize) {
            // SAFETY: every listed object is live.
            unsafe { moved.as_ref() }.slot.set(slot);
        }
    }

    /// Takes the young candidates of a collection of generations
    /// `0..=generation` out of their generations, generation 0 first: its
    /// vector, usually the largest, becomes the candidate list without a
    /// copy. The young generations are taken whole. A full collection's old
    /// candidates, the objects of generation 2 flagged
    /// [`DECREMENTED`](flags::DECREMENTED), are taken apart, as detection
    /// enters them ([`take_old_flagged`](Self::take_old_flagged)), and the
    /// collection takes the old objects they reach as it finds them
    /// ([`take_in`](Self::take_in)).
    pub(crate) fn take(&mut self, generation: usize) -> Vec<NonNull<TrackedHeader>> {
        let mut taken = core::mem::take(&mut self.young[0]);
        if generation >= 1 {
            let gen1 = &mut self.young[1];
            taken.append(gen1);
            if gen1.capacity() > KEPT_CAPACITY {
                // Keep no word per object of a big generation 1.
                *gen1 = Vec::new();
            }
        }
        taken
    }

    /// Takes the objects of generation 2 flagged
    /// [`DECREMENTED`](flags::DECREMENTED) out of it, found by walking the
    /// heap (the caller skips the walk when generation 2 is empty), and
    /// hands each to `enter` as it finds it: a full collection makes them
    /// candidates in the same pass over their memory. `enter` must give the
    /// object a slot of the collection's work list; until then it keeps its
    /// old slot, uncounted.
    pub(crate) fn take_old_flagged(
        &mut self,
        allocator: &Allocator,
        mut enter: impl FnMut(NonNull<TrackedHeader>, &TrackedHeader),
    ) {
        let (mut seen, mut kept) = (0, 0);
        for_each_old(allocator, |header, h| {
            if h.generation() == OLD {
                seen += 1;
                if h.has(flags::DECREMENTED) {
                    enter(header, h);
                } else {
                    kept += 1;
                }
            }
        });
        debug_assert_eq!(seen, self.old, "generation 2 count out of sync");
        self.old = kept;
    }

    /// Takes `header` out of its generation if `take_in` names it (and it is
    /// in no running collection); returns whether it did. The caller has
    /// checked that the object belongs to this heap.
    pub(crate) fn take_in(&mut self, header: NonNull<TrackedHeader>, take_in: TakeIn) -> bool {
        // SAFETY: callers pass live tracked headers.
        let h = unsafe { header.as_ref() };
        if !take_in.names(h) {
            return false;
        }
        let slot = h.slot.get();
        let gen = h.generation();
        if gen == OLD {
            if !object::is_old_slot(slot) {
                return false;
            }
            h.slot.set(NO_SLOT);
            self.old -= 1;
            return true;
        }
        if self.young[gen].get(slot as usize) != Some(&header) {
            return false;
        }
        self.remove(header);
        true
    }

    /// Takes generations 0 and 1 (an incremental step's young part).
    pub(crate) fn take_young(&mut self) -> Vec<NonNull<TrackedHeader>> {
        let [gen0, gen1] = &mut self.young;
        let mut taken = core::mem::take(gen0);
        taken.append(gen1);
        if gen1.capacity() > KEPT_CAPACITY {
            *gen1 = Vec::new();
        }
        taken
    }

    /// Takes `header` out of generation 2 if it is there and still pending
    /// in this incremental pass (and not part of a running collection);
    /// returns whether it was.
    pub(crate) fn take_if_pending(&mut self, header: NonNull<TrackedHeader>) -> bool {
        // SAFETY: callers pass live tracked headers.
        let h = unsafe { header.as_ref() };
        let pending = h.generation() == OLD && h.slot.get() == self.pending_slot && !h.has(flags::COLLECTING);
        if pending {
            h.slot.set(NO_SLOT);
            self.old -= 1;
        }
        pending
    }

    /// Takes the next pending old object in heap order from the scan
    /// cursor, visiting at most `blocks_left` blocks (and counting them
    /// off); `Ok(None)` if none was found within them. `Err(())` when the
    /// walk reached the end of the heap: the pass is over, the visited
    /// objects become pending for the next one and the cursor starts again.
    pub(crate) fn next_pending(
        &mut self,
        allocator: &Allocator,
        blocks_left: &mut usize,
    ) -> Result<Option<NonNull<TrackedHeader>>, ()> {
        if *blocks_left == 0 {
            return Ok(None);
        }
        let mut found = None;
        let pending_slot = self.pending_slot;
        // SAFETY: the visitor only reads headers (no allocator call).
        let walked = unsafe {
            allocator.walk_from(self.cursor, |block| {
                *blocks_left -= 1;
                // SAFETY: a block of the heap's allocator, handed out by its walk.
                if let Some(header) = object::tracked_in_block(block) {
                    // SAFETY: a tracked object's header is live while its block is.
                    let h = header.as_ref();
                    if h.generation() == OLD && h.slot.get() == pending_slot && !h.has(flags::COLLECTING) {
                        found = Some(header);
                        return ControlFlow::Break(());
                    }
                }
                if *blocks_left == 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
        };
        match walked {
            Walked::Stopped(pos) => {
                self.cursor = pos;
                if let Some(header) = found {
                    let taken = self.take_if_pending(header);
                    debug_assert!(taken);
                }
                Ok(found)
            }
            Walked::Finished => {
                self.pending_slot = self.visited_slot();
                self.cursor = WalkPos::default();
                Err(())
            }
        }
    }

    /// Generation `generation`'s objects (3 = permanent), walking the heap
    /// for the old ones.
    pub(crate) fn list(&self, allocator: &Allocator, generation: usize) -> Vec<NonNull<TrackedHeader>> {
        if generation < YOUNG {
            return self.young[generation].clone();
        }
        let count = self.sizes()[generation];
        if count == 0 {
            // No walk when there is nothing to find.
            return Vec::new();
        }
        let mut found = Vec::with_capacity(count);
        for_each_old(allocator, |header, h| {
            if h.generation() == generation {
                found.push(header);
            }
        });
        debug_assert_eq!(
            found.len(),
            self.sizes()[generation],
            "old generation count out of sync"
        );
        found
    }

    /// Moves every object of generations 0–2 to the permanent generation.
    pub(crate) fn freeze(&mut self, allocator: &Allocator) {
        for generation in 0..YOUNG {
            for header in core::mem::take(&mut self.young[generation]) {
                self.push(UNTRACKED_GEN, header);
            }
        }
        if self.old > 0 {
            self.move_old(allocator, OLD, UNTRACKED_GEN);
        }
        self.frozen += self.old;
        self.old = 0;
        self.count[0] = 0;
    }

    /// Moves every frozen object back to the oldest generation, flagged
    /// [`DECREMENTED`](flags::DECREMENTED): frozen objects count as
    /// referenced from outside, so unfreezing can leave garbage that no
    /// decrement flagged; the next full collection examines them all.
    pub(crate) fn unfreeze(&mut self, allocator: &Allocator) {
        if self.frozen == 0 {
            return;
        }
        self.move_old(allocator, UNTRACKED_GEN, OLD);
        self.old += self.frozen;
        self.frozen = 0;
    }

    /// Moves every old-slot object of generation `from` to `to` (generation
    /// 2 and the permanent one), marked visited, and flagged `DECREMENTED`
    /// when it goes to generation 2; the caller fixes the counts.
    fn move_old(&self, allocator: &Allocator, from: usize, to: usize) {
        let visited = self.visited_slot();
        for_each_old(allocator, |_, h| {
            if h.generation() == from {
                h.set_generation(to);
                h.slot.set(visited);
                if to == OLD {
                    h.set(flags::DECREMENTED, true);
                }
            }
        });
    }

    /// Objects per generation (0, 1, 2) and frozen.
    pub(crate) fn sizes(&self) -> [usize; GENERATIONS + 1] {
        [self.young[0].len(), self.young[1].len(), self.old, self.frozen]
    }

    /// Bytes the young vectors hold (their capacity).
    pub(crate) fn side_bytes(&self) -> usize {
        self.young
            .iter()
            .map(|list| list.capacity() * size_of::<NonNull<TrackedHeader>>())
            .sum()
    }
}

/// Calls `f` on every object of generation 2 or of the permanent generation
/// (an old slot, in no running collection), walking the heap.
fn for_each_old(allocator: &Allocator, mut f: impl FnMut(NonNull<TrackedHeader>, &TrackedHeader)) {
    // SAFETY: the visitor reads and writes object headers, never calls the
    // allocator.
    unsafe {
        allocator.for_each_block(|block| {
            // SAFETY: a block of the heap's allocator, handed out by its walk.
            if let Some(header) = object::tracked_in_block(block) {
                // SAFETY: a tracked object's header is live while its block is.
                let h = header.as_ref();
                if object::is_old_slot(h.slot.get()) && !h.has(flags::COLLECTING) {
                    f(header, h);
                }
            }
        })
    }
}
