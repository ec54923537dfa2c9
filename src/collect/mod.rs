//! The `collect` layer: the cycle collector, its generations, its policies,
//! and the types of Python's `gc` module API (the methods live on
//! [`Heap`](crate::Heap)).
//!
//! Reference counting frees an object the moment nothing refers to it, but a
//! group of objects that refer to each other (a closure and its environment,
//! a node and its parent) keeps every count above zero. The collector finds
//! such groups among *tracked* objects (those whose type may hold a `Gc`):
//!
//! 1. copy each candidate's strong count;
//! 2. subtract the references candidates hold to each other (found with
//!    [`Trace`](crate::Trace)): what stays above zero is referenced from
//!    outside;
//! 3. mark everything reachable from those; the rest is cyclic garbage;
//! 4. clear the weak references to the garbage, run finalizers (each object's
//!    at most once, all garbage still intact), check again for objects a
//!    finalizer resurrected, and tear the rest down: drop the values, which
//!    releases the handles they hold, so the counts reach zero and the
//!    blocks go back to their pools.
//!
//! Steps 1–3 run no user code but `Trace` impls, use no recursion (an
//! explicit stack), and O(candidates) side memory. See `algorithm.rs`.
//!
//! Objects live in three generations (`generations.rs`): new objects in 0,
//! survivors of a collection move up one. Collecting generation *n* also
//! collects the younger ones. Only objects decremented since a full
//! collection last examined them (flag `DECREMENTED`) can have become
//! garbage, so a collection traces those and what they reach: the old
//! generation's untouched objects are not even candidates of a full
//! collection, and young objects built by moving handles into place move
//! up a generation before detection, read once and never traced. When to
//! collect, and which generation, is up to a [`CollectorPolicy`]; the
//! default, [`Generational`], is CPython's.

pub(crate) mod algorithm;
pub(crate) mod generations;
mod incremental;
mod policy;

use core::fmt;

pub use incremental::Incremental;
pub use policy::{Action, CollectorPolicy, Generational, Manual, PolicyContext};

/// Number of generations (CPython's three).
pub const GENERATIONS: usize = 3;

/// Debug flags for [`Heap::set_debug`](crate::Heap::set_debug), with CPython's values.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DebugFlags(u32);

impl DebugFlags {
    /// No debug output.
    pub const NONE: DebugFlags = DebugFlags(0);
    /// Statistics for each collection (`gc.DEBUG_STATS`).
    pub const STATS: DebugFlags = DebugFlags(1);
    /// A line for each collectable object found (`gc.DEBUG_COLLECTABLE`).
    pub const COLLECTABLE: DebugFlags = DebugFlags(2);
    /// A line for each uncollectable object found (`gc.DEBUG_UNCOLLECTABLE`).
    pub const UNCOLLECTABLE: DebugFlags = DebugFlags(4);
    /// Keep unreachable objects in [`Heap::garbage`](crate::Heap::garbage)
    /// instead of freeing them (`gc.DEBUG_SAVEALL`).
    pub const SAVEALL: DebugFlags = DebugFlags(32);
    /// `COLLECTABLE | UNCOLLECTABLE | SAVEALL` (`gc.DEBUG_LEAK`).
    pub const LEAK: DebugFlags = DebugFlags(2 | 4 | 32);

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: DebugFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for DebugFlags {
    type Output = DebugFlags;
    fn bitor(self, rhs: DebugFlags) -> DebugFlags {
        DebugFlags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for DebugFlags {
    fn bitor_assign(&mut self, rhs: DebugFlags) {
        self.0 |= rhs.0;
    }
}

/// Which side of a collection a callback is called on (`gc.callbacks`' phase).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum GcPhase {
    /// Before the collection.
    Start,
    /// After the collection.
    Stop,
}

/// What a collection callback is told (`gc.callbacks`' info dict).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct GcInfo {
    /// The oldest generation collected.
    pub generation: usize,
    /// Unreachable objects found and freed (0 at start).
    pub collected: usize,
    /// Unreachable objects that could not be freed (0 at start; rcgc has no
    /// uncollectable objects, see `docs/differences.md`).
    pub uncollectable: usize,
    /// Objects examined (0 at start).
    pub candidates: usize,
    /// Time the collection took (zero at start).
    pub duration: core::time::Duration,
}

/// Cumulative statistics of one generation (`gc.get_stats()`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GenerationStats {
    /// Collections of this generation.
    pub collections: usize,
    /// Objects collected by them.
    pub collected: usize,
    /// Uncollectable objects they found.
    pub uncollectable: usize,
}

/// An error from the `gc` API.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcError {
    /// A generation number outside `0..3` (Python's `ValueError: invalid generation`).
    InvalidGeneration(usize),
}

impl fmt::Display for GcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GcError::InvalidGeneration(g) => {
                write!(f, "invalid generation {g}: generations are 0, 1 and 2")
            }
        }
    }
}

impl std::error::Error for GcError {}

pub(crate) fn check_generation(generation: usize) -> Result<usize, GcError> {
    if generation < GENERATIONS {
        Ok(generation)
    } else {
        Err(GcError::InvalidGeneration(generation))
    }
}
