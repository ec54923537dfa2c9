//! One collection, step by step (see the [module docs](super) for the idea).
//!
//! # Invariants
//!
//! * While the collection runs, its candidates carry the `COLLECTING` flag
//!   and their `slot` indexes `HeapInner::work` (not a generation list). A
//!   candidate released during the collection clears its entry there, so the
//!   collector never touches a freed object.
//! * During detection `Trace` impls report edges into the buffer of a
//!   buffering `Tracer`: the work-list slot of each referent that carries
//!   `COLLECTING` (read from its header while the handle is borrowed, so the
//!   buffer holds indices, never addresses that could dangle), no call per
//!   edge. A generational collection's tracer also hands referents outside
//!   the candidates to a visitor that keeps the addresses of the objects of
//!   this heap it takes in (decided while the handle is borrowed; their
//!   releases are queued, so they stay allocated). Detection reads the
//!   buffer after each trace, or pops it as the stack of its depth-first
//!   walk. The edges a trace reported before it
//!   panicked stay in the buffer and count, as they would have if each had
//!   been handled when reported.
//! * Detection (`find_reachable`) runs no user code except `Trace` impls.
//!   While it runs `HeapInner::tracing` is set and releases of tracked
//!   objects are queued (`pending`) instead of performed, so even a `Trace`
//!   impl that drops handles cannot free memory the collector is reading. An
//!   object queued that way (count zero) is treated as reachable.
//! * One collection runs at a time per thread, across heaps
//!   (`COLLECTION_ON_THREAD`), so the `COLLECTING` objects of this thread are
//!   exactly the candidates of the running collection: an edge is accepted
//!   if its referent has the flag, and objects of other heaps, which never
//!   have it then, are references from outside. (The flag only picks the
//!   slot of a mark in a bounds-checked array; a wrong answer could make
//!   detection wrong, never unsafe.)
//! * A generational collection takes in an object of a collected generation
//!   reached from a candidate only if it belongs to this heap (`takes_in`:
//!   its pool's or large block's owner, decided while the reporting handle
//!   keeps it allocated), so the teardown never frees a block to another
//!   heap's allocator; objects of other heaps are references from outside.
//! * Memory is freed only by a count reaching zero. Teardown marks a value
//!   `DEAD` before dropping it; if a wrong `Trace` impl made the collector
//!   tear down an object that a handle still reaches, the object stays
//!   allocated, dead, and that handle panics on dereference.
//! * User code (finalizers, `Drop`, callbacks) runs with every `catch_unwind`
//!   boundary needed to finish the collection; panics are reported on the
//!   debug sink.

use core::cell::{Cell, RefCell};
use core::ptr::NonNull;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::alloc::Allocator;
use crate::handle::weak::PendingCallbacks;
use crate::handle::AnyGc;
use crate::heap::inner::HeapInner;
use crate::object::{self, flags, TrackedHeader, NO_SLOT, UNTRACKED_GEN};
use crate::trace::{Edge, Tracer};

use super::generations::TakeIn;
use super::{DebugFlags, GcInfo, GcPhase, GENERATIONS};

/// Sets a `Cell<bool>` for its lifetime.
struct FlagGuard<'a>(&'a Cell<bool>);

impl<'a> FlagGuard<'a> {
    fn set(flag: &'a Cell<bool>) -> Self {
        flag.set(true);
        FlagGuard(flag)
    }
}

impl Drop for FlagGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

thread_local! {
    /// Set while a collection of any heap runs on this thread. Candidates
    /// are recognised by their `COLLECTING` flag alone, which is only sound
    /// if the flagged objects of this thread all belong to one collection:
    /// so a collection of another heap started from inside a running one (by
    /// a `Trace` impl, finalizer, callback or `Drop`) returns 0 at once, as a
    /// re-entrant collection of the same heap does.
    static COLLECTION_ON_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Sets [`COLLECTION_ON_THREAD`] for its lifetime.
struct ThreadFlagGuard;

impl ThreadFlagGuard {
    fn set() -> Self {
        COLLECTION_ON_THREAD.with(|flag| flag.set(true));
        ThreadFlagGuard
    }
}

impl Drop for ThreadFlagGuard {
    fn drop(&mut self) {
        COLLECTION_ON_THREAD.with(|flag| flag.set(false));
    }
}

/// Surplus empty arenas an automatic collection returns to the OS at its
/// end (one asked for returns them all: [`collect_on_request`]).
const ARENAS_RELEASED_PER_COLLECTION: usize = 1;

/// What to collect.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Scope {
    /// Generations `0..=n`.
    Generations(usize),
    /// One incremental step with this old-region budget.
    Increment(usize),
}

/// Collects generations `0..=generation`; returns the number of unreachable
/// objects found (0 at once if a collection is already running).
pub(crate) fn collect(inner: &HeapInner, generation: usize) -> usize {
    run(inner, Scope::Generations(generation))
}

/// A collection the program asked for (`Heap::collect`,
/// `Heap::collect_generation`, the heap's final one): like [`collect`], and
/// then returns every surplus empty arena to the OS, where automatic
/// collections return one each so that their pauses stay short.
pub(crate) fn collect_on_request(inner: &HeapInner, generation: usize) -> usize {
    let found = collect(inner, generation);
    if !inner.collecting.get() {
        inner.allocator.release_surplus_arenas(usize::MAX);
    }
    found
}

/// Runs one collection of `scope` with callbacks, statistics and debug output.
pub(crate) fn run(inner: &HeapInner, scope: Scope) -> usize {
    if inner.collecting.get() || COLLECTION_ON_THREAD.with(Cell::get) {
        return 0;
    }
    let generation = match scope {
        Scope::Generations(generation) => generation,
        Scope::Increment(_) => 1,
    };
    let start = Instant::now();
    let (found, candidates) = {
        let _collecting = FlagGuard::set(&inner.collecting);
        let _on_thread = ThreadFlagGuard::set();
        // Arenas this collection empties stay mapped until it ends (see
        // `alloc::arena`): it returns at most `ARENAS_RELEASED_PER_COLLECTION`.
        let _keep_arenas = inner.allocator.defer_arena_releases();
        inner.run_callbacks(
            GcPhase::Start,
            GcInfo {
                generation,
                ..GcInfo::default()
            },
        );
        if inner.debug.get().contains(DebugFlags::STATS) {
            let sizes = inner.with_gens(|g| g.sizes());
            inner.debug_line(format_args!("gc: collecting generation {generation}..."));
            inner.debug_line(format_args!(
                "gc: objects in each generation: {} {} {}",
                sizes[0], sizes[1], sizes[2]
            ));
            inner.debug_line(format_args!("gc: objects in permanent generation: {}", sizes[3]));
        }
        let (found, candidates) = match scope {
            Scope::Generations(generation) => collect_inner(inner, generation),
            Scope::Increment(budget) => increment(inner, budget),
        };
        let mut stats = inner.stats.get();
        stats[generation].collections += 1;
        stats[generation].collected += found;
        inner.stats.set(stats);
        if inner.debug.get().contains(DebugFlags::STATS) {
            let secs = start.elapsed().as_secs_f64();
            inner.debug_line(format_args!(
                "gc: done, {found} unreachable, 0 uncollectable, {secs:.4}s elapsed"
            ));
        }
        (found, candidates)
    };
    inner.allocator.release_surplus_arenas(ARENAS_RELEASED_PER_COLLECTION);
    inner.shrink_work(matches!(scope, Scope::Generations(g) if g == GENERATIONS - 1));
    // Releases queued while `Trace` impls ran (only a misbehaving impl causes them).
    inner.drain_pending();
    let info = GcInfo {
        generation,
        collected: found,
        uncollectable: 0,
        candidates,
        duration: start.elapsed(),
    };
    inner.run_callbacks(GcPhase::Stop, info);
    inner.policy_after_collection(&info);
    found
}

fn collect_inner(inner: &HeapInner, generation: usize) -> (usize, usize) {
    // 1. Bookkeeping and gathering.
    let cands = inner.with_gens(|gens| {
        if generation + 1 < GENERATIONS {
            gens.count[generation + 1] += 1;
        }
        for count in &mut gens.count[..=generation] {
            *count = 0;
        }
        gens.take(generation)
    });
    // Survivors move up one generation.
    let dest = (generation + 1).min(GENERATIONS - 1);
    let full = generation == GENERATIONS - 1;
    let outcome = collect_set(inner, cands, dest, Some(generation));
    inner.with_gens(|gens| {
        if generation == 1 {
            gens.long_lived_pending += outcome.survivors;
        } else if full {
            // Untouched old objects stayed where they were: the long-lived
            // total is the whole old generation.
            gens.long_lived_total = gens.sizes()[GENERATIONS - 1];
            gens.long_lived_pending = 0;
        }
    });
    (outcome.found, outcome.examined)
}

/// One incremental step (see `collect::incremental`): the young
/// generations whole, their survivors into generation 2 (as visited), then a
/// region of at most `budget` objects of the pending old objects: seeds
/// found by the scan cursor plus their closure among pending objects.
/// Returns (found, examined).
fn increment(inner: &HeapInner, budget: usize) -> (usize, usize) {
    let young = inner.with_gens(|gens| {
        gens.count[0] = 0;
        gens.take_young()
    });
    let mut examined = young.len();
    let mut found = collect_set(inner, young, GENERATIONS - 1, None).found;

    // The scan reads one word per block; it may pass this many blocks
    // (visited, young, leaf, free ones) per step before giving up for now.
    let mut blocks_left = budget.saturating_mul(SCAN_BLOCKS_PER_OBJECT).max(1);
    let mut region: Vec<NonNull<TrackedHeader>> = Vec::new();
    let mut next = 0; // region members whose edges were not followed yet
    let mut edges = Vec::new();
    while region.len() < budget {
        if next == region.len() {
            // Frontier exhausted: a new seed.
            let seed = inner.with_gens(|gens| gens.next_pending(&inner.allocator, &mut blocks_left));
            match seed {
                Ok(Some(seed)) => region.push(seed),
                // Out of blocks for this step, or the pass is over.
                Ok(None) | Err(()) => break,
            }
        }
        let header = region[next];
        next += 1;
        {
            let _tracing = FlagGuard::set(&inner.tracing);
            trace_own_tracked(inner, header, &mut edges);
        }
        inner.with_gens(|gens| {
            for &target in &edges {
                if region.len() >= budget {
                    break;
                }
                // `trace_own_tracked` kept only objects of this heap, whose
                // releases were queued while it traced: they are allocated.
                if gens.take_if_pending(target) {
                    region.push(target);
                }
            }
        });
    }
    examined += region.len();
    if !region.is_empty() {
        found += collect_set(inner, region, GENERATIONS - 1, None).found;
    }
    (found, examined)
}

/// Blocks the incremental scan may read per object of its budget.
const SCAN_BLOCKS_PER_OBJECT: usize = 16;

/// What [`collect_set`] did.
pub(crate) struct SetOutcome {
    /// Unreachable objects found.
    pub(crate) found: usize,
    /// Objects moved to the destination generation: candidates found
    /// reachable, and a generational collection's unexamined objects.
    pub(crate) survivors: usize,
    /// Candidates examined (traced): the set given, less the objects a
    /// generational collection moved up untraced, plus those it took in as
    /// it reached them.
    pub(crate) examined: usize,
}

/// Collects the candidate set `cands` (taken out of the generation lists by
/// the caller); survivors go to generation `dest`.
///
/// A generational collection of generations `0..=g` (`collected` is
/// `Some(g)`) is given the young generations whole; a full collection adds
/// the old objects flagged `DECREMENTED` as detection starts
/// ([`find_reachable`]). When few of the young ones are flagged
/// ([`mostly_untouched`]), a generation-0 or full collection moves the
/// unflagged ones to `dest` before detection. Either
/// way it takes in every object of this heap that it did not make a
/// candidate ([`TakeIn`]) that a candidate reaches, as it finds it (so the
/// set is closed under references into the collected generations). A
/// full collection's survivors lose the flag; other collections leave it
/// alone, so an object decremented while young keeps it into the old
/// generation. Incremental steps and the re-check after finalizers
/// (`collected` is `None`) examine exactly the set given.
///
/// The work list holds the candidates for the whole collection, indexed by
/// their `slot`; survivors leave it (`None`) as soon as detection is over,
/// and so does every object released while user code runs.
pub(crate) fn collect_set(
    inner: &HeapInner,
    mut cands: Vec<NonNull<TrackedHeader>>,
    dest: usize,
    collected: Option<usize>,
) -> SetOutcome {
    let full = collected == Some(GENERATIONS - 1);
    // A generation-1 collection moves its survivors into generation 2, where
    // nothing would tell the ones it moved untraced from the others: it
    // traces all its candidates.
    let promote_untouched = collected.is_some_and(|generation| generation != 1) && mostly_untouched(&cands);
    let take_in = match collected {
        Some(generation) if generation == GENERATIONS - 1 => Some(TakeIn::AllGenerations),
        Some(_) if promote_untouched => Some(TakeIn::Promoted {
            generation: dest,
            from: inner.with_gens(|gens| gens.sizes()[dest]),
        }),
        _ => None,
    };
    // 2-3. Detection: no user code but Trace.
    let promotion = Promotion {
        dest,
        decremented: if full { Decremented::Clear } else { Decremented::Keep },
    };
    let detection = {
        let _tracing = FlagGuard::set(&inner.tracing);
        find_reachable(inner, &mut cands, promotion, take_in, promote_untouched)
    };
    let examined = cands.len();
    let survivors = detection.untouched + detection.promoted;
    // No release ran since the work list was filled (releases are queued
    // during detection), so every candidate not promoted is still there.
    let mut found = examined - detection.promoted;
    debug_assert_eq!(found, inner.with_work(|work| work.iter().flatten().count()));
    drop(cands);
    if found == 0 {
        inner.with_work(Vec::clear);
        return SetOutcome {
            found: 0,
            survivors,
            examined,
        };
    }

    // 4. Weak references to the garbage are cleared before any finalizer
    // runs; then the callbacks of weak references that are not themselves
    // garbage run (CPython's handle_weakrefs).
    if detection.any_weak {
        let mut callbacks = PendingCallbacks::none();
        inner.with_work(|work| {
            for header in work.iter().flatten() {
                // SAFETY: no user code ran since detection.
                let h = unsafe { header.as_ref() };
                if h.has(flags::HAS_WEAK) {
                    callbacks.append(crate::handle::weak::clear(inner, object::value_of(*header)));
                    h.set(flags::HAS_WEAK, false);
                }
            }
        });
        if inner.weak_callbacks_used.get() {
            mark_garbage_weak_refs(inner);
        }
        callbacks.run(inner);
    } else if inner.weak_callbacks_used.get() {
        // Weak references owned by the garbage never call back, even if their
        // referents die later, during teardown (CPython bpo-38006).
        mark_garbage_weak_refs(inner);
    }

    // 5. Finalizers, each at most once; the garbage is still intact.
    let mut ran_finalizers = false;
    if detection.any_finalizer {
        let len = inner.with_work(|work| work.len());
        for index in 0..len {
            let Some(header) = inner.with_work(|work| work[index]) else {
                continue;
            };
            // SAFETY: entries still in `work` are live.
            let h = unsafe { header.as_ref() };
            let Some(finalize) = h.vtable().finalize else { continue };
            if h.has(flags::FINALIZED) {
                continue;
            }
            h.set(flags::FINALIZED, true);
            ran_finalizers = true;
            let type_name = (h.vtable().type_name)();
            // SAFETY: the object is live; the finalizer gets its own temporary handle.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { finalize(object::value_of(header)) }));
            if let Err(panic) = result {
                inner.report_panic(format_args!("the finalizer of {type_name}"), &*panic);
            }
        }
    }

    // 6. Resurrection: finalizers may have made garbage reachable again.
    if ran_finalizers {
        let mut garbage: Vec<NonNull<TrackedHeader>> = inner.with_work(|work| work.drain(..).flatten().collect());
        // The finalizers may have linked what they resurrected into new
        // structures by moving handles (with the temporary handle they were
        // given, which no caller drops): flag it all, so that a full
        // collection examines it again.
        let promotion = Promotion {
            dest,
            decremented: Decremented::Set,
        };
        let again = {
            let _tracing = FlagGuard::set(&inner.tracing);
            find_reachable(inner, &mut garbage, promotion, None, false)
        };
        found = garbage.len() - again.promoted;
    }
    if inner.debug.get().contains(DebugFlags::COLLECTABLE) {
        inner.with_work(|work| {
            for header in work.iter().flatten() {
                // SAFETY: entries in `work` are live.
                let h = unsafe { header.as_ref() };
                let name = (h.vtable().type_name)();
                inner.debug_line(format_args!(
                    "gc: collectable <{name} {:#x}>",
                    object::value_of(*header).as_ptr() as usize
                ));
            }
        });
    }

    // 7. Save (DEBUG_SAVEALL) or tear down.
    if inner.debug.get().contains(DebugFlags::SAVEALL) {
        let garbage: Vec<NonNull<TrackedHeader>> = inner.with_work(|work| work.drain(..).flatten().collect());
        let mut saved = Vec::with_capacity(garbage.len());
        inner.with_gens(|gens| {
            for &header in &garbage {
                // SAFETY: entries in `work` are live.
                unsafe { header.as_ref() }.set(flags::COLLECTING, false);
                gens.push(GENERATIONS - 1, header);
                // SAFETY: as above.
                saved.extend(unsafe { AnyGc::from_header(header) });
            }
        });
        inner.save_garbage(saved);
        return SetOutcome {
            found,
            survivors,
            examined,
        };
    }
    tear_down_work_list(inner, found);
    // Whatever is still in the work list is reached by a handle from outside
    // the garbage: a wrong (over-reporting) Trace impl made it look
    // unreachable. It stays allocated, dead and untracked until that handle goes.
    let remaining: Vec<NonNull<TrackedHeader>> = inner.with_work(|work| work.drain(..).flatten().collect());
    for header in remaining {
        // SAFETY: entries still in the work list are live.
        let h = unsafe { header.as_ref() };
        h.set(flags::COLLECTING, false);
        h.slot.set(NO_SLOT);
        h.set_generation(UNTRACKED_GEN);
        if inner.debug.get().contains(DebugFlags::UNCOLLECTABLE) || cfg!(debug_assertions) {
            inner.debug_line(format_args!(
                "gc: {} torn down while {} handle(s) remain: its referrers' Trace impls report more references \
                 than they hold",
                (h.vtable().type_name)(),
                h.strong.get()
            ));
        }
    }
    SetOutcome {
        found,
        survivors,
        examined,
    }
}

/// What promotion does to the survivors' `DECREMENTED` flag.
#[derive(Copy, Clone)]
enum Decremented {
    /// Leave it (young collections: an object decremented while young keeps
    /// the flag into the old generation).
    Keep,
    /// Clear it (full collections: the object was examined with everything
    /// it reaches).
    Clear,
    /// Set it (objects resurrected by finalizers).
    Set,
}

/// Where detection moves the candidates it finds reachable.
#[derive(Copy, Clone)]
struct Promotion {
    /// The generation they join.
    dest: usize,
    /// What happens to their `DECREMENTED` flag.
    decremented: Decremented,
}

impl Promotion {
    /// Moves candidate `header`, just found reachable, out of the collection
    /// into generation `dest`, updating its `DECREMENTED` flag. Out of the
    /// collection it no longer has the `COLLECTING` flag, so edges to it are
    /// not followed again. (Its work-list entry is cleared after the walk, in
    /// one pass in list order: see [`find_reachable`].)
    #[inline(always)]
    fn promote(self, inner: &HeapInner, header: NonNull<TrackedHeader>) {
        let (clear, set) = match self.decremented {
            Decremented::Keep => (flags::COLLECTING, 0),
            Decremented::Clear => (flags::COLLECTING | flags::DECREMENTED, 0),
            Decremented::Set => (flags::COLLECTING, flags::DECREMENTED),
        };
        // SAFETY: candidates are live: releases are queued during detection.
        let h = unsafe { header.as_ref() };
        h.set(clear, false);
        h.set(set, true);
        inner.with_gens(|gens| gens.push(self.dest, header));
    }
}

/// Marks the callback records owned by the garbage (the work list): those
/// weak references are garbage themselves and must not call back.
fn mark_garbage_weak_refs(inner: &HeapInner) {
    let garbage: Vec<NonNull<TrackedHeader>> = inner.with_work(|work| work.iter().flatten().copied().collect());
    let _tracing = FlagGuard::set(&inner.tracing);
    let mut visit = |edge| {
        if let Edge::WeakCallback(record) = edge {
            // SAFETY: the record is owned by a live garbage value.
            unsafe { record.as_ref() }.in_garbage.set(true);
        }
    };
    for header in garbage {
        trace_with(inner, header, &mut Tracer::new(&mut visit));
    }
}

/// Tears down every object left in the work list, in three passes:
///
/// 1. **Hold**: the work list is compacted to the garbage if it has more
///    entries than the `found` garbage objects, and every garbage
///    object's count goes up by one, so no count of the garbage can reach
///    zero while values are dropped.
/// 2. **Drop**: each object is marked `DEAD`, then its value is dropped. The
///    handles a value owns to other garbage only decrement counts (no
///    release cascade, no untracking per edge); handles to objects outside
///    the garbage are released as usual.
/// 3. **Free**: each hold is given back. An object whose count that takes to
///    zero is freed here directly (it is dead, untracked from the work list
///    and has no weak record); one with a weak record made by a `Drop` in
///    pass 2 goes through the general release. An object whose count stays
///    above zero is still reached by a handle (a wrong, over-reporting
///    `Trace` impl, or a `Drop` that stored a handle away): it stays in the
///    work list, dead, for the caller.
///
/// An entry whose count is zero (a release a wrong `Trace` impl queued
/// during detection) is left to that queued release, and one whose count
/// user code raised to [`ROOT`] or more since detection is not torn down.
/// Safe code cannot take a held count to zero (every decrement gives back a
/// handle, and the hold is not one), so the work list keeps every held
/// entry until pass 3, and memory is freed only by a count reaching zero. One
/// unwind guard covers pass 2 (not one per object): a panicking `Drop` is
/// reported and the pass resumes with the next object.
fn tear_down_work_list(inner: &HeapInner, found: usize) {
    let mut kept_alive = Vec::new();
    inner.with_work(|work| {
        // Survivors left holes: close them (and renumber the slots, which
        // index the work list) so the passes below only visit the garbage.
        let compact = found < work.len();
        if compact {
            work.retain(Option::is_some);
        }
        for (index, entry) in work.iter_mut().enumerate() {
            let Some(header) = *entry else { continue };
            // SAFETY: entries in `work` are live (released ones left it).
            let h = unsafe { header.as_ref() };
            if compact {
                h.slot.set(index as u32);
            }
            match h.strong.get() {
                // A release queued while a (wrong) `Trace` impl ran: the
                // queued release frees it, once, after the collection. It
                // leaves the collection untracked, so that release finds it
                // in no list.
                0 => {
                    *entry = None;
                    h.set(flags::COLLECTING, false);
                    h.slot.set(NO_SLOT);
                    h.set_generation(UNTRACKED_GEN);
                }
                // A count raised since detection (user code, over-reported
                // handles) too far to hold: not torn down, it stays a
                // survivor.
                ROOT.. => {
                    *entry = None;
                    h.set(flags::COLLECTING, false);
                    kept_alive.push(header);
                }
                count => h.strong.set(count + 1),
            }
        }
    });
    if !kept_alive.is_empty() {
        inner.with_gens(|gens| {
            kept_alive
                .into_iter()
                .for_each(|header| gens.push(GENERATIONS - 1, header))
        });
    }
    let len = inner.with_work(|work| work.len());
    let mut current: Option<NonNull<TrackedHeader>> = None;
    for_each_guarded(
        len,
        &mut current,
        |current, index| {
            let Some(header) = inner.with_work(|work| work[index]) else {
                return;
            };
            // SAFETY: entries in `work` are live and held (pass 1).
            let h = unsafe { header.as_ref() };
            if h.has(flags::DEAD) {
                return;
            }
            h.set(flags::DEAD, true);
            *current = Some(header);
            // SAFETY: the value is live and, being DEAD, never read or
            // dropped again; the hold keeps the block allocated.
            unsafe { (h.vtable().drop_value)(object::value_of(header)) };
        },
        |current, _, panic| {
            // SAFETY: `current` is held, so still allocated.
            let type_name = current.map_or("<unknown>", |header| (unsafe { header.as_ref() }.vtable().type_name)());
            inner.report_panic(format_args!("Drop of {type_name}"), &*panic);
        },
    );
    let mut freed = 0;
    for index in 0..len {
        let Some(header) = inner.with_work(|work| work[index]) else {
            continue;
        };
        // SAFETY: entries in `work` are live and held (pass 1).
        let h = unsafe { header.as_ref() };
        let count = h.strong.get() - 1;
        if count != 0 {
            // Still reached by a handle: the caller leaves it dead.
            h.strong.set(count);
        } else if !h.has(flags::HAS_WEAK) {
            h.strong.set(0);
            h.set(flags::COLLECTING, false);
            h.slot.set(NO_SLOT);
            inner.with_work(|work| work[index] = None);
            inner.live_objects.set(inner.live_objects.get() - 1);
            freed += 1;
            // The object is dead (its value was dropped in pass 2), out of
            // the work list, in no generation, and not queued (its count was
            // not zero in pass 1, and nothing traces now): its block is not
            // used again.
            let vtable = h.vtable();
            // SAFETY: a dead, unreferenced block of this heap (above), freed
            // with its own layout and that layout's size class.
            unsafe {
                let block = object::tracked_block(header, vtable.block_layout);
                inner
                    .allocator
                    .dealloc_in_class(block, vtable.block_layout, vtable.size_class)
            };
        } else {
            // A `Drop` made a weak reference to it: the general release
            // clears it and takes the object out of the work list.
            // SAFETY: the object is live with the hold as its only count;
            // the new handle takes the hold over (+1, then -1).
            let handle = unsafe { AnyGc::from_header(header) };
            h.strong.set(h.strong.get() - 1);
            drop(handle);
        }
    }
    inner.with_gens(|gens| gens.count[0] = gens.count[0].saturating_sub(freed));
}

/// Runs `body(state, i)` for every `i` in `0..n` under one unwind guard for
/// the whole loop (not one per item, which costs a call per object on the
/// collector's hottest loops): if `body` panics for `i`,
/// `on_panic(state, i, payload)` runs and the loop resumes at `i + 1`.
fn for_each_guarded<S>(
    n: usize,
    state: &mut S,
    mut body: impl FnMut(&mut S, usize),
    mut on_panic: impl FnMut(&mut S, usize, Box<dyn core::any::Any + Send>),
) {
    let mut next = 0;
    while next < n {
        let result = catch_unwind(AssertUnwindSafe(|| {
            while next < n {
                let i = next;
                next += 1;
                body(state, i);
            }
        }));
        if let Err(panic) = result {
            on_panic(state, next - 1, panic);
        }
    }
}

/// What detection found out about a candidate set.
struct Detection {
    /// Per candidate (by work-list index): [`VISITED`] if it is reachable
    /// from outside the set.
    marks: Vec<u32>,
    /// Some candidate has weak references.
    any_weak: bool,
    /// Some candidate has a finalizer that has not run.
    any_finalizer: bool,
    /// Objects a generational collection moved up untraced.
    untouched: usize,
    /// Candidates found reachable and moved to the destination generation.
    promoted: usize,
    /// (from, to) candidate pairs where `to`'s references outnumbered its
    /// count (subtraction).
    over_reported: Vec<(usize, usize)>,
}

/// A candidate's mark once it is known to be reachable from outside the
/// candidates (its references are followed, or about to be). Before that
/// the mark is the candidate's `gc_refs`: its strong count minus the
/// references from other candidates found so far (CPython's `gc_refs`).
const VISITED: u32 = u32::MAX;
/// A mark of at least this during subtraction makes a root: an object whose
/// references cannot all be subtracted (a trace that was incomplete or
/// panicked, a count of zero from a queued release, an over-reported
/// referent, or a count so large that it could reach [`VISITED`]). Roots
/// are never decremented.
const ROOT: u32 = u32::MAX - 1;

/// Finds which of `cands` are reachable from outside the set, CPython's
/// way: copy each strong count into a mark, subtract the references between
/// candidates, then mark [`VISITED`] everything reachable from a candidate
/// whose mark stayed above zero. Also enters the candidates in the
/// collection (`COLLECTING`, slot = index), which the caller's work list
/// must mirror. The marks are one dense array, so the scans over them
/// touch no object. In a full collection (`take_in` is
/// [`TakeIn::AllGenerations`]), the old objects flagged `DECREMENTED` join
/// `cands` after the others, each entered as the heap walk that finds them
/// reads it (`Generations::take_old_flagged`).
///
/// With `promote_untouched` (a generational collection), the candidates
/// not flagged `DECREMENTED` first move into the destination generation
/// (`promotion.dest`), untraced, in the same step that enters the others:
/// every garbage group has a flagged member (see `docs/differences.md`), so
/// an unflagged object is garbage only if a flagged one reaches it. An
/// object of this heap that `take_in` names (those moved, and a full
/// collection's unflagged old objects) and that a traced candidate refers
/// to joins the candidates (and the work list) at its first such
/// reference, before that reference is subtracted, so every reference to it
/// is subtracted and its own references are followed in turn. An object
/// built by moving handles into place and left alone since is thus read
/// once and never traced.
fn find_reachable(
    inner: &HeapInner,
    cands: &mut Vec<NonNull<TrackedHeader>>,
    promotion: Promotion,
    take_in: Option<TakeIn>,
    promote_untouched: bool,
) -> Detection {
    let (mut any_weak, mut any_finalizer) = (false, false);
    let mut marks: Vec<u32> = Vec::with_capacity(cands.len());
    let mut untouched = 0;
    // Makes the candidate `h` the one at index `marks.len()`.
    let mut enter = |h: &TrackedHeader, marks: &mut Vec<u32>| {
        h.set(flags::COLLECTING, true);
        h.slot.set(marks.len() as u32);
        any_weak |= h.has(flags::HAS_WEAK);
        any_finalizer |= h.vtable().finalize.is_some() && !h.has(flags::FINALIZED);
        marks.push(first_mark(h.strong.get()));
    };
    inner.with_gens(|gens| {
        // Only generation 2 as it was before this collection can hold
        // flagged objects: the young ones that the retain below moves there
        // are unflagged. With none, the walk would find nothing.
        let walk_old = matches!(take_in, Some(TakeIn::AllGenerations)) && gens.sizes()[GENERATIONS - 1] > 0;
        cands.retain(|&header| {
            // SAFETY: candidates stay allocated while `tracing` is set,
            // because releases of tracked objects are queued.
            let h = unsafe { header.as_ref() };
            if promote_untouched && !h.has(flags::DECREMENTED) {
                gens.push(promotion.dest, header);
                untouched += 1;
                return false;
            }
            enter(h, &mut marks);
            true
        });
        if walk_old {
            // Entered as the heap walk finds them: one pass over their
            // memory, not two. They come after the young candidates, whose
            // indexes the retain above has settled.
            gens.take_old_flagged(&inner.allocator, |header, h| {
                enter(h, &mut marks);
                cands.push(header);
            });
        }
    });
    inner.with_work(|work| {
        work.clear();
        work.extend(cands.iter().map(|&header| Some(header)));
    });
    let mut detection = Detection {
        marks,
        any_weak,
        any_finalizer,
        untouched,
        promoted: 0,
        over_reported: Vec::new(),
    };
    // A generational collection's referents outside the candidates: those
    // `take_in` names are kept (decided while the handle is borrowed, their
    // releases queued while detection runs) for `take_in_reached`.
    let reached: RefCell<Vec<NonNull<u8>>> = RefCell::new(Vec::new());
    let mut keep_taken_in = |edge: Edge| {
        if let (Some(value), Some(take_in)) = (edge.tracked_value(), take_in) {
            // SAFETY: the tracer reports the edge while the handle is
            // borrowed, so the referent is allocated; no allocator call is
            // in progress during a trace's report.
            if unsafe { takes_in(inner, object::tracked_header(value), take_in) } {
                reached.borrow_mut().push(value);
            }
        }
    };
    let outside: Option<&mut dyn FnMut(Edge)> = if take_in.is_some() {
        Some(&mut keep_taken_in)
    } else {
        None
    };
    let mut tracer = Tracer::buffered(EDGE_BUFFER, outside);
    subtract(inner, cands, &mut detection, &mut tracer, &reached, take_in);
    tracer.forget_outside();
    detection.promoted = propagate(inner, cands, &mut detection.marks, &mut tracer, promotion);
    // The promoted candidates leave the work list, in list order (the walk
    // visits them in no order that the memory of a large list would like).
    inner.with_work(|work| {
        for (entry, &mark) in work.iter_mut().zip(&detection.marks) {
            if mark == VISITED {
                *entry = None;
            }
        }
    });
    detection
}

/// Whether fewer than one in [`UNTOUCHED_WHEN_FLAGGED_BELOW`] of `cands` is
/// flagged `DECREMENTED`, judging from at most [`FLAG_SAMPLE`] of them
/// spread evenly over the list. Moving the unflagged candidates up untraced
/// then pays: most of them were built by moving handles into place and are
/// reached by no flagged one. Where many are flagged, the unflagged ones
/// are mostly reached (a 2-cycle built as `x.a = y` flags `x` alone), and
/// taking each back in, out of order, would cost more than tracing it.
fn mostly_untouched(cands: &[NonNull<TrackedHeader>]) -> bool {
    let step = (cands.len() / FLAG_SAMPLE).max(1);
    let (mut seen, mut flagged) = (0, 0);
    for header in cands.iter().step_by(step) {
        seen += 1;
        // SAFETY: the caller took the candidates out of live generations.
        flagged += usize::from(unsafe { header.as_ref() }.has(flags::DECREMENTED));
    }
    flagged * UNTOUCHED_WHEN_FLAGGED_BELOW < seen
}

/// See [`mostly_untouched`].
const UNTOUCHED_WHEN_FLAGGED_BELOW: usize = 4;
/// See [`mostly_untouched`].
const FLAG_SAMPLE: usize = 64;

/// A candidate's first mark: its strong count, or [`ROOT`] for a count of
/// zero (a release queued while tracing: leave it be) or one too large.
#[inline(always)]
fn first_mark(strong: u32) -> u32 {
    if strong == 0 || strong >= ROOT {
        ROOT
    } else {
        strong
    }
}

/// Subtraction: lowers the mark of each candidate by the references the
/// other candidates report to it. A trace that is incomplete (a borrowed
/// RefCell) or panics makes its object a root: it keeps what it reaches,
/// whose hidden references then look like references from outside. The
/// edges a panicking trace reported before the panic are subtracted all
/// the same. One unwind guard covers the loop (see `for_each_guarded`).
/// Objects taken in (see [`find_reachable`]) extend `cands` and the marks,
/// and the loop runs until it has traced every candidate.
#[inline(never)]
fn subtract(
    inner: &HeapInner,
    cands: &mut Vec<NonNull<TrackedHeader>>,
    detection: &mut Detection,
    tracer: &mut Tracer<'_>,
    reached: &RefCell<Vec<NonNull<u8>>>,
    take_in: Option<TakeIn>,
) {
    let mut next = 0;
    while next < cands.len() {
        let result = catch_unwind(AssertUnwindSafe(|| {
            while next < cands.len() {
                let i = next;
                next += 1;
                let complete = trace_unguarded(cands[i], tracer);
                after_trace(inner, cands, detection, i, tracer, reached, take_in);
                if !complete {
                    detection.marks[i] = ROOT;
                }
            }
        }));
        if let Err(panic) = result {
            let i = next - 1;
            after_trace(inner, cands, detection, i, tracer, reached, take_in);
            detection.marks[i] = ROOT;
            report_trace_panic(inner, cands[i], &*panic);
        }
    }
    for (from, to) in core::mem::take(&mut detection.over_reported) {
        report_over_reporting(inner, cands[from], cands[to]);
    }
}

/// Subtraction's step after candidate `i`'s trace: subtracts the references
/// it reported and takes in the objects it reached that `take_in` names.
#[inline(always)]
fn after_trace(
    inner: &HeapInner,
    cands: &mut Vec<NonNull<TrackedHeader>>,
    detection: &mut Detection,
    i: usize,
    tracer: &Tracer<'_>,
    reached: &RefCell<Vec<NonNull<u8>>>,
    take_in: Option<TakeIn>,
) {
    subtract_edges(&mut detection.marks, &mut detection.over_reported, i, tracer.slots());
    if let Some(take_in) = take_in {
        if !reached.borrow().is_empty() {
            take_in_reached(inner, cands, detection, i, reached, take_in);
        }
    }
}

/// Subtraction's step for the objects that candidate `i` refers to, that
/// `take_in` names and that are not candidates yet (the tracer keeps them,
/// see [`Tracer::buffered`]): each joins the candidates and the work list
/// at its first reference, then every reference is subtracted.
#[cold]
#[inline(never)]
fn take_in_reached(
    inner: &HeapInner,
    cands: &mut Vec<NonNull<TrackedHeader>>,
    detection: &mut Detection,
    i: usize,
    reached: &RefCell<Vec<NonNull<u8>>>,
    take_in: TakeIn,
) {
    let mut reached = reached.borrow_mut();
    for &value in reached.iter() {
        // SAFETY: the tracer kept only objects of this heap, whose releases
        // are queued while detection runs, so they are still allocated.
        let header = unsafe { object::tracked_header(value) };
        // SAFETY: as above.
        let h = unsafe { header.as_ref() };
        let j = if h.has(flags::COLLECTING) {
            // Taken in by an earlier reference.
            h.slot.get() as usize
        } else if inner.with_gens(|gens| gens.take_in(header, take_in)) {
            let j = cands.len();
            cands.push(header);
            inner.with_work(|work| work.push(Some(header)));
            h.set(flags::COLLECTING, true);
            h.slot.set(j as u32);
            detection.any_weak |= h.has(flags::HAS_WEAK);
            detection.any_finalizer |= h.vtable().finalize.is_some() && !h.has(flags::FINALIZED);
            detection.marks.push(first_mark(h.strong.get()));
            j
        } else {
            continue;
        };
        subtract_edges(&mut detection.marks, &mut detection.over_reported, i, &[j as u32]);
    }
    reached.clear();
}

/// Whether a generational collection takes in the tracked object at
/// `header` when a candidate refers to it: it is one that `take_in` names,
/// in no collection, and of `inner`. Objects of other heaps are references
/// from outside.
///
/// # Safety
/// `header` is a live tracked object, and no allocator call is in progress.
unsafe fn takes_in(inner: &HeapInner, header: NonNull<TrackedHeader>, take_in: TakeIn) -> bool {
    // SAFETY: the caller guarantees a live header.
    let h = unsafe { header.as_ref() };
    // SAFETY: forwarded caller contract.
    take_in.names(h) && unsafe { belongs_to(inner, header) }
}

/// Whether the tracked object at `header` was allocated by `inner`'s allocator.
///
/// # Safety
/// `header` is a live tracked object, and no allocator call is in progress.
unsafe fn belongs_to(inner: &HeapInner, header: NonNull<TrackedHeader>) -> bool {
    // SAFETY: the object is live, so its block (with the vtable's layout)
    // is; the caller guarantees that no allocator call is in progress.
    unsafe {
        let layout = header.as_ref().vtable().block_layout;
        let block = object::tracked_block(header, layout);
        core::ptr::eq(Allocator::owner_data_of(block, layout).cast::<HeapInner>(), inner)
    }
}

/// Propagation: a scan of the marks for candidates still above zero, each
/// the start of a depth-first walk that marks [`VISITED`] what it reaches.
/// Every candidate is traced at most once here, when it is marked, and
/// moves out of the collection (`promotion`) right before its trace, while
/// its header is at hand. The tracer's buffer is the walk's stack: a trace
/// appends the slots of the candidates the object refers to, and the walk
/// pops them one by one until the buffer is empty. The slots a panicking
/// trace reported before the panic stay in the buffer and are followed.
/// Returns how many candidates moved.
#[inline(never)]
fn propagate(
    inner: &HeapInner,
    cands: &[NonNull<TrackedHeader>],
    marks: &mut [u32],
    tracer: &mut Tracer<'_>,
    promotion: Promotion,
) -> usize {
    tracer.reset();
    let mut next = 0;
    let mut current = 0;
    let mut promoted = 0;
    loop {
        let result = catch_unwind(AssertUnwindSafe(|| loop {
            while let Some(j) = tracer.pop_slot() {
                let j = j as usize;
                let Some(mark) = marks.get_mut(j) else { continue };
                if *mark != VISITED {
                    *mark = VISITED;
                    current = j;
                    promotion.promote(inner, cands[j]);
                    promoted += 1;
                    trace_appending(cands[j], tracer);
                }
            }
            let Some(mark) = marks.get_mut(next) else { return };
            next += 1;
            if matches!(*mark, 0 | VISITED) {
                continue;
            }
            *mark = VISITED;
            current = next - 1;
            promotion.promote(inner, cands[current]);
            promoted += 1;
            trace_appending(cands[current], tracer);
        }));
        match result {
            Ok(()) => break,
            Err(panic) => report_trace_panic(inner, cands[current], &*panic),
        }
    }
    promoted
}

/// Subtraction's step for the edges of candidate `i` (the slots of the
/// candidates it refers to): each reference lowers the referent's mark; one
/// to a candidate whose mark is already zero is over-reported (recorded,
/// and the referent becomes a root).
#[inline(always)]
fn subtract_edges(marks: &mut [u32], over_reported: &mut Vec<(usize, usize)>, i: usize, slots: &[u32]) {
    for &j in slots {
        let j = j as usize;
        let Some(mark) = marks.get_mut(j) else { continue };
        // One comparison for the common case, a mark in `1..ROOT`.
        let lowered = mark.wrapping_sub(1);
        if lowered < ROOT - 1 {
            *mark = lowered;
        } else if *mark == 0 {
            over_reported.push((i, j));
            *mark = ROOT;
        }
    }
}

/// Initial capacity of detection's edge buffer (it grows when an object
/// reports more edges).
const EDGE_BUFFER: usize = 64;

/// Collects the edges of one object into `edges`; false if the trace was
/// incomplete (or panicked). The addresses are only for comparing: a wrong
/// `Trace` impl may have dropped a handle after reporting it, so a referent
/// need not be allocated any more.
pub(crate) fn trace_into(inner: &HeapInner, header: NonNull<TrackedHeader>, edges: &mut Vec<Edge>) -> bool {
    edges.clear();
    trace_with(inner, header, &mut Tracer::new(&mut |edge| edges.push(edge)))
}

/// Collects the headers of the tracked referents of one object that belong
/// to `inner` into `out`, deciding while each handle is borrowed; false if
/// the trace was incomplete (or panicked). With `inner.tracing` set, their
/// releases are queued, so they stay allocated after the trace.
fn trace_own_tracked(inner: &HeapInner, header: NonNull<TrackedHeader>, out: &mut Vec<NonNull<TrackedHeader>>) -> bool {
    out.clear();
    trace_with(
        inner,
        header,
        &mut Tracer::new(&mut |edge| {
            if let Some(value) = edge.tracked_value() {
                // SAFETY: the edge is reported by a handle borrowed for this
                // call, so its tracked referent is allocated.
                let target = unsafe { object::tracked_header(value) };
                // SAFETY: as above.
                if unsafe { belongs_to(inner, target) } {
                    out.push(target);
                }
            }
        }),
    )
}

/// New handles to the tracked referents of one object, made while each
/// reporting handle is borrowed (so each referent is allocated then).
pub(crate) fn trace_handles(inner: &HeapInner, header: NonNull<TrackedHeader>) -> Vec<AnyGc> {
    let mut handles = Vec::new();
    trace_with(
        inner,
        header,
        &mut Tracer::new(&mut |edge| {
            if let Some(value) = edge.tracked_value() {
                // SAFETY: the edge is reported by a handle borrowed for this
                // call, so its tracked referent is allocated.
                handles.extend(unsafe { AnyGc::from_header(object::tracked_header(value)) });
            }
        }),
    );
    handles
}

/// Traces one object with `tracer` (reset first); false if the trace was
/// incomplete (or panicked, which is reported).
fn trace_with(inner: &HeapInner, header: NonNull<TrackedHeader>, tracer: &mut Tracer<'_>) -> bool {
    match catch_unwind(AssertUnwindSafe(|| trace_unguarded(header, tracer))) {
        Ok(complete) => complete,
        Err(panic) => {
            report_trace_panic(inner, header, &*panic);
            false
        }
    }
}

/// Traces one object with `tracer` (reset first), letting a panic of its
/// `Trace` impl unwind to the caller's guard; false if the trace was
/// incomplete. The caller reads a buffering tracer's slots afterwards.
#[inline]
fn trace_unguarded(header: NonNull<TrackedHeader>, tracer: &mut Tracer<'_>) -> bool {
    tracer.reset();
    trace_appending(header, tracer)
}

/// [`trace_unguarded`] without the reset: the object's slots are appended
/// to those already in a buffering `tracer`.
#[inline]
fn trace_appending(header: NonNull<TrackedHeader>, tracer: &mut Tracer<'_>) -> bool {
    tracer.clear_incomplete();
    // SAFETY: callers only pass live objects (candidates stay allocated while tracing).
    let h = unsafe { header.as_ref() };
    if h.has(flags::DEAD) {
        return true;
    }
    let vtable = h.vtable();
    let value = object::value_of(header);
    // SAFETY: the value is live (not DEAD).
    unsafe { (vtable.trace)(value, tracer) };
    !tracer.is_incomplete()
}

/// Reports a panic of the `Trace` impl of the object at `header`.
#[cold]
fn report_trace_panic(inner: &HeapInner, header: NonNull<TrackedHeader>, panic: &(dyn core::any::Any + Send)) {
    // SAFETY: the object is a live candidate.
    let type_name = (unsafe { header.as_ref() }.vtable().type_name)();
    inner.report_panic(format_args!("Trace of {type_name}"), panic);
}

/// CPython's debug-build "refcount is too small" check.
fn report_over_reporting(inner: &HeapInner, from: NonNull<TrackedHeader>, to: NonNull<TrackedHeader>) {
    if cfg!(debug_assertions) || inner.debug.get().contains(DebugFlags::UNCOLLECTABLE) {
        // SAFETY: both are live candidates.
        let (from, to) = unsafe { (from.as_ref(), to.as_ref()) };
        inner.debug_line(format_args!(
            "gc: refcount is too small: a {} has strong count {} but the Trace impls of its referrers (such as a {}) \
             report more references; keeping it alive",
            (to.vtable().type_name)(),
            to.strong.get(),
            (from.vtable().type_name)(),
        ));
    }
}
