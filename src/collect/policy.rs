//! [`CollectorPolicy`]: when to collect, and how much.
//!
//! The heap asks its policy on tracked allocations (once the generation-0
//! count passes the policy's [`poll_after`](CollectorPolicy::poll_after)
//! point, so the allocation fast path is a single comparison) and at every
//! [`Heap::checkpoint`](crate::Heap::checkpoint) (for example the end of a game
//! frame). Explicit `collect` calls bypass the policy. A policy sees a
//! [`PolicyContext`] and answers with an [`Action`]; it cannot re-enter the
//! heap.

use super::{GcInfo, GENERATIONS};

/// What the heap tells a policy.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyContext {
    /// `gc.get_count()`: tracked allocations minus deallocations since the
    /// last collection, then collections of the next younger generation.
    pub count: [usize; GENERATIONS],
    /// `gc.get_threshold()`.
    pub threshold: [usize; GENERATIONS],
    /// Tracked objects in each generation.
    pub objects: [usize; GENERATIONS],
    /// Objects in generation 2 after the last full collection.
    pub long_lived_total: usize,
    /// Objects promoted into generation 2 since then.
    pub long_lived_pending: usize,
    /// Bytes in use in the heap.
    pub bytes_in_use: usize,
}

/// What a policy asks the heap to do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing now.
    Nothing,
    /// Collect this generation (and the younger ones).
    Collect {
        /// 0, 1 or 2.
        generation: usize,
    },
    /// One incremental step: the young generation whole, then a region of the
    /// old generation of at most `budget` objects (see [`Incremental`](super::Incremental)).
    Step {
        /// Most old-generation objects to examine.
        budget: usize,
    },
}

/// Decides when the heap collects and which generations.
///
/// A frame-based policy for a game, written with the public API only:
///
/// ```
/// use rcgc::collect::{Action, CollectorPolicy, PolicyContext};
/// use rcgc::Heap;
///
/// /// Never collect during a frame; at the end of a frame, collect the young
/// /// generation if more than `budget` tracked objects were allocated.
/// struct EndOfFrame { budget: usize }
///
/// impl CollectorPolicy for EndOfFrame {
///     fn poll_after(&self, _: &PolicyContext) -> Option<usize> { None }
///     fn on_allocation(&mut self, _: &PolicyContext) -> Action { Action::Nothing }
///     fn on_checkpoint(&mut self, ctx: &PolicyContext) -> Action {
///         if ctx.count[0] > self.budget { Action::Collect { generation: 0 } } else { Action::Nothing }
///     }
/// }
///
/// let heap = Heap::with_policy(EndOfFrame { budget: 1000 });
/// // ... run a frame ...
/// heap.checkpoint(); // end of frame
/// ```
pub trait CollectorPolicy {
    /// The generation-0 count past which the heap calls
    /// [`on_allocation`](Self::on_allocation), or `None` never to be asked on
    /// allocation. Re-read after every collection and configuration change.
    fn poll_after(&self, ctx: &PolicyContext) -> Option<usize>;

    /// Called on a tracked allocation that takes the generation-0 count past
    /// the poll point (never while a collection runs, never when automatic
    /// collection is disabled). `ctx.count[0]` includes this allocation.
    fn on_allocation(&mut self, ctx: &PolicyContext) -> Action;

    /// Called by [`Heap::checkpoint`](crate::Heap::checkpoint). Default: nothing.
    fn on_checkpoint(&mut self, ctx: &PolicyContext) -> Action {
        let _ = ctx;
        Action::Nothing
    }

    /// Told after every collection, automatic or explicit.
    fn after_collection(&mut self, info: &GcInfo) {
        let _ = info;
    }
}

/// CPython's generational policy (3.8–3.13), the default: collect when the
/// generation-0 count exceeds `threshold[0]`; collect the oldest generation
/// whose count exceeds its threshold, but generation 2 only when the objects
/// promoted into it since the last full collection exceed 25 % of those that
/// survived it (which keeps full collections amortised linear). A threshold
/// of 0 for generation 0 disables automatic collection.
#[derive(Copy, Clone, Debug, Default)]
pub struct Generational;

impl CollectorPolicy for Generational {
    fn poll_after(&self, ctx: &PolicyContext) -> Option<usize> {
        (ctx.threshold[0] != 0).then_some(ctx.threshold[0])
    }

    fn on_allocation(&mut self, ctx: &PolicyContext) -> Action {
        for generation in (0..GENERATIONS).rev() {
            if ctx.count[generation] > ctx.threshold[generation] {
                if generation == GENERATIONS - 1 && ctx.long_lived_pending < ctx.long_lived_total / 4 {
                    continue;
                }
                return Action::Collect { generation };
            }
        }
        Action::Nothing
    }
}

/// Collect only when asked (`Heap::collect`, `Heap::collect_generation`).
#[derive(Copy, Clone, Debug, Default)]
pub struct Manual;

impl CollectorPolicy for Manual {
    fn poll_after(&self, _: &PolicyContext) -> Option<usize> {
        None
    }

    fn on_allocation(&mut self, _: &PolicyContext) -> Action {
        Action::Nothing
    }
}
