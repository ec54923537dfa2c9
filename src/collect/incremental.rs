//! [`Incremental`]: bounded pauses for games and other latency-sensitive hosts.
//!
//! # How a step works
//!
//! Old objects (generation 2) have no list (see `generations.rs`); each
//! carries one of two slot values, one meaning "pending" (still to be
//! scanned in this pass) and the other "visited". Every step
//!
//! 1. collects the young generations whole (generation 0 is bounded by
//!    `threshold[0]`, 700 objects by default, and holds most garbage;
//!    generation 1 is empty unless generation-0 collections were asked for
//!    explicitly); survivors enter generation 2 as visited;
//! 2. takes a *region* of pending old objects: a seed and everything it
//!    reaches among pending objects, then more seeds, until the step's
//!    budget of objects is reached; and collects that region with the
//!    ordinary algorithm. Survivors become visited. Seeds are found by a
//!    cursor walking the heap's pools and large blocks in address order
//!    (`alloc::walk`), resumed where the previous step left it; a step
//!    reads at most 16 blocks per object of its budget, so runs of young,
//!    visited, leaf or free blocks cannot make a step long.
//!
//! When the cursor reaches the end of the heap the pass is over and the two
//! slot values swap meanings in O(1) (CPython 3.14 flips a bit's meaning
//! the same way): what was visited is pending for the next pass.
//!
//! # Why mutation between steps is safe
//!
//! **Each step is a complete, stop-the-world collection of its region, in
//! which every reference from outside the region counts as external.** The
//! algorithm subtracts only references between candidates; a reference from
//! a visited object, the young generation, a frozen object or a Rust local
//! keeps its target alive. So a region object that the program made
//! reachable from anywhere since the last step survives, and nothing decided
//! in one step is relied upon in the next: no write barrier, no snapshot.
//! The cursor is only a way to find seeds, and it is made of indices
//! (arena, pool, offset, large-block rank), never pointers: if the program
//! freed the arena or pool it points into, or a pool was carved again for
//! another size class, the walk skips or realigns, and an object it misses
//! stays pending until the next pass (the walk never reads a freed block:
//! every block it reads lies in a pool in use or on the large list *now*).
//! The price is conservatism: a cycle that straddles the region boundary is
//! not found in this step, but the region grows along references between
//! pending objects, so a garbage cycle is found whole when the scan first
//! reaches it (if it fits in the budget), and at the latest by an explicit
//! full [`collect`](crate::Heap::collect).
//!
//! # Bounding memory, not only pauses
//!
//! CPython 3.14 shipped an incremental collector and reverted it in 3.14.5:
//! garbage in the old generation waited for the scan to reach it and peak
//! memory grew 2.7–5×. Here the scan rate follows the rate at which objects
//! are promoted into the old generation: every promoted object adds
//! `scan_ratio` (default 4) objects of scanning debt, so a pass completes
//! before the old generation grows by about `1 / scan_ratio` (25 %, the same
//! bound CPython's generational collector uses to schedule full
//! collections). Only old objects pay the debt off (the young generations
//! are not part of the scan), and every step adds `min_work` (64) so the
//! scan moves on even when nothing is promoted. If the debt outgrows one
//! step's budget, steps are taken more often (every quarter of
//! `threshold[0]` allocations) instead of growing longer. The debt never
//! exceeds the old generation's size: one pass examines every old object
//! once, so a burst of promotions (a large structure built at start-up)
//! costs one pass, not `scan_ratio` passes over the same objects.
//!
//! # Few large regions
//!
//! A garbage structure is found only if one region holds all of it (a
//! member outside the region is a reference from outside), and a region
//! grows from its seed in every direction, into live neighbours too. Many
//! small regions (the debt of one step, a few hundred objects) therefore
//! find little: the garbage they split survives, is marked visited and
//! waits a whole pass, which is how CPython 3.14's old generation grew.
//! So a step collects only the young generations until the debt fills a
//! region of a quarter of `max_work`, or of two fifths of what the time
//! budget fits if that is less (at most 1/16 of the old generation, at
//! least `min_work`), and then scans one such region: the same scan rate,
//! in larger pieces. A region never exceeds that size, so with the young
//! generations a step stays well within its cap. The margin is wide
//! because a region object costs up to three times a typical object (the
//! region grows by tracing, old objects are rarely in cache, a step may
//! free much garbage); measured on a 2-core VM, regions of two fifths of
//! `Incremental::new(10_000)` made pauses of 0.8–1.25 ms, a quarter
//! 0.58–0.75 ms. A debt backlog makes steps more frequent, not longer.
//! The time budget is sized from steps that scanned a region only
//! (young-only steps cost less per object and would make regions too
//! long).

use core::time::Duration;

use super::policy::{Action, CollectorPolicy, PolicyContext};
use super::GcInfo;

/// Incremental collection with a bounded amount of work per step.
///
/// ```
/// use std::time::Duration;
/// use rcgc::collect::Incremental;
/// use rcgc::Heap;
///
/// // At most 10,000 old objects examined per step, and aim for 0.5 ms.
/// let heap = Heap::with_policy(Incremental::new(10_000).with_time_budget(Duration::from_micros(500)));
/// # drop(heap);
/// ```
#[derive(Clone, Debug)]
pub struct Incremental {
    max_work: usize,
    min_work: usize,
    time_budget: Option<Duration>,
    scan_ratio: usize,
    /// Old-space objects still owed to the scan.
    debt: usize,
    /// Old-space size at the previous step.
    last_old: usize,
    /// Measured cost of examining one object (nanoseconds, smoothed).
    ns_per_object: f64,
    /// Young objects taken by the step just requested (`None` when no step
    /// is under way): what the step examines beyond them is old objects.
    step_young: Option<usize>,
}

impl Incremental {
    /// A policy examining at most `max_work` old objects per step (plus the
    /// young generation, at most `threshold[0]` objects).
    pub fn new(max_work: usize) -> Incremental {
        Incremental {
            max_work: max_work.max(1),
            min_work: 64.min(max_work.max(1)),
            time_budget: None,
            scan_ratio: 4,
            debt: 0,
            last_old: 0,
            ns_per_object: 0.0,
            step_young: None,
        }
    }

    /// Also keeps each step within about `budget` of time, using the measured
    /// cost per object of earlier steps to size the region.
    pub fn with_time_budget(mut self, budget: Duration) -> Incremental {
        self.time_budget = Some(budget);
        self
    }

    /// Old objects scanned per object promoted into the old generation (default 4).
    pub fn with_scan_ratio(mut self, ratio: usize) -> Incremental {
        self.scan_ratio = ratio.max(1);
        self
    }

    /// The largest old region one step may take (see the module docs, "Few
    /// large regions"): a quarter of `max_work`, since a region object can
    /// cost three times a typical one (its region is grown by tracing, and
    /// old objects are rarely in cache), and two fifths of what the time
    /// budget fits, which is measured on region steps already; never below
    /// `min_work`.
    fn region_cap(&self) -> usize {
        let mut cap = self.max_work / 4;
        if let Some(time) = self.time_budget {
            if self.ns_per_object > 0.0 {
                let fits = (time.as_nanos() as f64 / self.ns_per_object) as usize;
                cap = cap.min(fits * 2 / 5);
            }
        }
        cap.max(self.min_work)
    }

    /// The old-region budget of the next step: 0 (young generations only)
    /// until the debt fills a region (see the module docs, "Few large
    /// regions").
    fn step_budget(&self, old_objects: usize) -> usize {
        let chunk = (old_objects / REGION_FRACTION).clamp(self.min_work, self.region_cap());
        if self.debt < chunk {
            0
        } else {
            chunk
        }
    }
}

/// A step scans old objects only once its debt covers at least this
/// fraction of the old generation (or a whole step's cap, if smaller).
const REGION_FRACTION: usize = 16;

impl Default for Incremental {
    /// 10,000 old objects per step.
    fn default() -> Incremental {
        Incremental::new(10_000)
    }
}

impl CollectorPolicy for Incremental {
    fn poll_after(&self, ctx: &PolicyContext) -> Option<usize> {
        let threshold = ctx.threshold[0];
        if threshold == 0 {
            return None;
        }
        Some(if self.debt > self.max_work {
            (threshold / 4).max(1)
        } else {
            threshold
        })
    }

    fn on_allocation(&mut self, ctx: &PolicyContext) -> Action {
        let old = ctx.objects[1] + ctx.objects[2];
        // Growth of the old generations since the last step: objects promoted
        // (young survivors) minus deaths.
        let promoted = old.saturating_sub(self.last_old);
        self.last_old = old;
        // `min_work` per step keeps the scan moving when nothing is promoted.
        self.debt = self
            .debt
            .saturating_add(promoted.saturating_mul(self.scan_ratio))
            .saturating_add(self.min_work)
            // A pass examines each old object once: more debt than the old
            // generation holds (a burst of promotions, such as a large
            // structure built at start-up) would only rescan it.
            .min(old.max(self.min_work));
        self.step_young = Some(ctx.objects[0] + ctx.objects[1]);
        Action::Step {
            budget: self.step_budget(old),
        }
    }

    fn after_collection(&mut self, info: &GcInfo) {
        let young = self.step_young.take().unwrap_or(0);
        // Steps of young objects only are cheaper per object (most of them
        // die young and cheaply); the time budget sizes old regions.
        if info.candidates > young && !info.duration.is_zero() {
            let sample = info.duration.as_nanos() as f64 / info.candidates as f64;
            self.ns_per_object = if self.ns_per_object == 0.0 {
                sample
            } else {
                0.8 * self.ns_per_object + 0.2 * sample
            };
        }
        // Only old objects pay the debt (the young generations are not part
        // of the scan); an explicit collection counts whole.
        self.debt = self.debt.saturating_sub(info.candidates.saturating_sub(young));
    }
}
