//! The generation lists and counters of one heap.
//!
//! Each generation is a vector of tracked object headers; every object knows
//! its index (`slot`) and its generation (flag bits), so removing a dying
//! object is a `swap_remove`. Frozen objects live in a fourth, permanent
//! list that collections never look at. Counters follow CPython: `count[0]`
//! is tracked allocations minus tracked deallocations since the last
//! collection, `count[1]` counts generation-0 collections since the last
//! generation-1 collection, `count[2]` generation-1 collections since the
//! last full one.

use core::ptr::NonNull;

use crate::object::{TrackedHeader, NO_SLOT, UNTRACKED_GEN};

use super::GENERATIONS;

/// The lists and counters.
pub(crate) struct Generations {
    /// Generations 0, 1, 2, then the permanent generation (frozen objects).
    lists: [Vec<NonNull<TrackedHeader>>; GENERATIONS + 1],
    pub(crate) count: [usize; GENERATIONS],
    pub(crate) threshold: [usize; GENERATIONS],
    /// Objects in generation 2 after the last full collection.
    pub(crate) long_lived_total: usize,
    /// Objects promoted into generation 2 since.
    pub(crate) long_lived_pending: usize,
    /// Incremental mode: which of generations 1 and 2 is the old space still
    /// to be scanned in this pass ("pending"); the other is "visited".
    pub(crate) pending_space: usize,
}

impl Generations {
    pub(crate) fn new() -> Self {
        Generations {
            lists: Default::default(),
            count: [0; GENERATIONS],
            threshold: [700, 10, 10],
            long_lived_total: 0,
            long_lived_pending: 0,
            pending_space: 1,
        }
    }

    /// Appends `header` to generation `generation` (3 = permanent).
    pub(crate) fn push(&mut self, generation: usize, header: NonNull<TrackedHeader>) {
        let list = &mut self.lists[generation];
        // SAFETY: callers pass live tracked headers.
        let h = unsafe { header.as_ref() };
        h.slot.set(list.len() as u32);
        h.set_generation(generation);
        list.push(header);
    }

    /// Removes a tracked object from its list (no-op if it is in none).
    pub(crate) fn remove(&mut self, header: NonNull<TrackedHeader>) {
        // SAFETY: callers pass live tracked headers.
        let h = unsafe { header.as_ref() };
        let slot = h.slot.get();
        if slot == NO_SLOT {
            return;
        }
        let list = &mut self.lists[h.generation()];
        debug_assert_eq!(list[slot as usize], header, "generation slot out of sync");
        list.swap_remove(slot as usize);
        if let Some(&moved) = list.get(slot as usize) {
            // SAFETY: every listed object is live.
            unsafe { moved.as_ref() }.slot.set(slot);
        }
        h.slot.set(NO_SLOT);
    }

    /// Takes every object of generations `0..=generation` out of the lists.
    pub(crate) fn take_young(&mut self, generation: usize) -> Vec<NonNull<TrackedHeader>> {
        let mut taken = core::mem::take(&mut self.lists[generation]);
        for list in &mut self.lists[..generation] {
            taken.append(list);
        }
        taken
    }

    /// Takes one generation's list.
    pub(crate) fn take_list(&mut self, generation: usize) -> Vec<NonNull<TrackedHeader>> {
        core::mem::take(&mut self.lists[generation])
    }

    /// Removes `header` from generation `generation` if it is listed there
    /// (and not part of a running collection); returns whether it was.
    pub(crate) fn take_if_in(&mut self, generation: usize, header: NonNull<TrackedHeader>) -> bool {
        // SAFETY: callers pass live tracked headers.
        let h = unsafe { header.as_ref() };
        let slot = h.slot.get() as usize;
        let listed = h.generation() == generation
            && !h.has(crate::object::flags::COLLECTING)
            && self.lists[generation].get(slot) == Some(&header);
        if listed {
            self.remove(header);
        }
        listed
    }

    /// Pops the last object of a generation.
    pub(crate) fn pop(&mut self, generation: usize) -> Option<NonNull<TrackedHeader>> {
        let header = *self.lists[generation].last()?;
        self.remove(header);
        Some(header)
    }

    /// The list of generation `generation` (3 = permanent).
    pub(crate) fn list(&self, generation: usize) -> &[NonNull<TrackedHeader>] {
        &self.lists[generation]
    }

    /// Moves every object of generations 0–2 to the permanent generation.
    pub(crate) fn freeze(&mut self) {
        for generation in 0..GENERATIONS {
            for header in core::mem::take(&mut self.lists[generation]) {
                self.push(UNTRACKED_GEN, header);
            }
        }
        self.count[0] = 0;
    }

    /// Moves every frozen object back to the oldest generation.
    pub(crate) fn unfreeze(&mut self) {
        for header in core::mem::take(&mut self.lists[UNTRACKED_GEN]) {
            self.push(GENERATIONS - 1, header);
        }
    }

    /// Objects per generation (0, 1, 2) and frozen.
    pub(crate) fn sizes(&self) -> [usize; GENERATIONS + 1] {
        [
            self.lists[0].len(),
            self.lists[1].len(),
            self.lists[2].len(),
            self.lists[3].len(),
        ]
    }
}
