//! The cycle collector: rcgc against rust-cc, dumpster, bacon_rajan_cc, gc
//! and CPython on the same garbage graphs, then rcgc's `Incremental` policy
//! against its `Generational` one (pauses, total time, peak memory).
//!
//! # What it measures
//!
//! **Part 1, collection shapes (criterion).** Each shape is timed as "build
//! the graph untimed, then time the one collection call that frees it": the
//! time covers finding the garbage *and* freeing it (destructors, returning
//! memory to the allocator). One criterion iteration is one whole build +
//! collect (`iter_custom`, flat sampling, 10 samples of one iteration after
//! one warm-up iteration; criterion warns that it "cannot complete 10
//! samples", which is expected). Every contender gets a fresh graph in every
//! iteration; the live part of a graph is dropped after the clock stops. The
//! peers keep their collector state in thread-locals across iterations, so
//! rcgc likewise reuses one `Heap` per benchmark (see `rcgc (fresh Heap)`
//! below for a new heap per iteration).
//!
//! * `collector_two_cycles`: 500,000 garbage 2-cycles (1,000,000 objects),
//!   then a full collection. Reported per freed object.
//! * `collector_rings`: 10,000 garbage rings of 100 objects (1,000,000
//!   objects). Reported per freed object.
//! * `collector_live_plus_garbage`: a live tree of 1,000,000 objects held by
//!   one root (node `i` has children `2i + 1` and `2i + 2`, depth 20) plus
//!   100,000 garbage 2-cycles (200,000 objects), then a full collection.
//!   Reported per garbage object and per object in the heap (1,200,000:
//!   what a full CPython-style or mark-and-sweep collection examines).
//! * `collector_live_recently_touched`: the same, but every live handle was
//!   cloned and dropped just before collecting (a depth-first walk of the
//!   tree with an explicit stack of cloned handles). A collector that scans
//!   "possible roots" (objects whose count was decremented: rust-cc,
//!   bacon_rajan_cc, dumpster) now has the whole live tree to scan.
//! * `collector_gen0_vs_old` (rcgc only): a generation-0 collection of
//!   10,000 young garbage 2-cycles (20,000 objects) with 1,000,000 live
//!   objects in the oldest generation (`old_1M`; each young pair also holds
//!   an edge to an old object, spread over the old generation) against the
//!   same young objects with an empty old generation (`old_empty`; no such
//!   edge, there is nothing to point at). Reported per young object; the
//!   target is a ratio. Besides criterion's two benchmarks (one after the
//!   other), 200 rounds alternate one `old_1M` and one `old_empty`
//!   collection and report the medians, a ratio that a change of machine
//!   load during the run disturbs much less.
//!
//! After criterion, each shape is measured once more for rcgc, rust-cc and
//! bacon_rajan_cc (the peers that come near it) in 7 interleaved rounds, one
//! build + collection of each contender per round, and the table adds their
//! medians (`(interleaved, median)` rows) with a verdict of their own.
//! Criterion times one contender after the other, so a change of load on a
//! shared 2-core VM during the run moves the ratios between them; the
//! interleaved medians spread it over all three.
//!
//! Contenders (criterion function names). Every Rust contender uses the same
//! node shape, two nullable mutable handles (`RefCell<Option<P<Node>>>`,
//! `GcCell` for `gc`), and builds each garbage graph by cloning handles into
//! nodes and dropping the locals (as Python code does), so every garbage
//! object has had its count decremented:
//!
//! * `rcgc`: `rcgc::Gc<Node>` (`#[derive(Trace)]`), automatic collection off
//!   during the build (`heap.disable()`, Python's `gc.disable()`), timed
//!   `heap.collect()` (a full collection; its return value is checked against
//!   the number of garbage objects after the clock stops).
//! * `rcgc (fresh Heap)`: a diagnostic variant, the same with a new `Heap`
//!   for every build + collect (made and dropped untimed). Its collection
//!   also pays the first-touch page faults of the collector's work lists,
//!   which a long-running heap has already paid.
//! * `rcgc (gen-0, live tree old)` (`live_*` shapes only): a diagnostic
//!   variant where the live tree is promoted to the oldest generation right
//!   after it is built (an untimed full collection, as automatic collection
//!   would have done over time) and the timed call is
//!   `heap.collect_generation(0)`: the young collection examines only the
//!   garbage, as rust-cc and bacon_rajan_cc do with an untouched live heap.
//! * `rcgc (full, live tree old)` (`live_*` shapes only): the same, but the
//!   timed call is a full `heap.collect()`. It examines the young garbage and
//!   the old objects decremented since the tree was promoted (and what they
//!   reach): none of the untouched tree, the whole recently touched one.
//! * `rust-cc`: `rust_cc::Cc<Node>`, `auto-collect` switched off
//!   (`config::set_auto_collect(false)`), timed `rust_cc::collect_cycles()`.
//!   rust-cc scans only its buffer of possible roots (objects decremented to
//!   a non-zero count) and what they reach: the untouched live tree is never
//!   looked at, the recently touched one is.
//! * `dumpster`: `dumpster::unsync::Gc<Node>`, collect condition "never",
//!   timed `dumpster::unsync::collect()`. Like rust-cc, it starts from the
//!   handles dropped since the last collection ("dirty" allocations).
//! * `bacon_rajan_cc`: `bacon_rajan_cc::Cc<Node>` (no automatic collection),
//!   timed `bacon_rajan_cc::collect_cycles()`; the same possible-roots
//!   algorithm (Bacon and Rajan's synchronous cycle collection).
//! * `gc`: `gc::Gc<Node>` (`GcCell`), mark-and-sweep from the rooted
//!   handles: it always marks the whole live graph and sweeps every
//!   allocation. Its automatic collection cannot be switched off without an
//!   unstable feature, so garbage stays reachable from a `Vec` of handles
//!   during the build (automatic collections then free nothing) and becomes
//!   garbage when that `Vec` drops, just before the clock starts. The other
//!   contenders use the same `Vec` (it only delays one decrement per cycle).
//!   The reference figures below include `gc` too.
//! * `python3 (CPython, separate process)`: if `python3` is on `PATH`, the
//!   same graphs with a `__slots__ = ('a', 'b')` class, built with
//!   `gc.disable()` (after `gc.freeze()` moves the interpreter's own objects
//!   out of the way), timed inside Python with `time.perf_counter_ns` around
//!   `gc.collect()`: one warm-up and three timed builds per shape, mean.
//!   Run after criterion finishes, so it never competes with a Rust
//!   contender for the CPU. Not a criterion row: context.
//!
//! **Part 2, incremental pauses and memory (rcgc only, one timed run per
//! policy, outside criterion).** A live tree of 1,048,575 objects (2^20 - 1,
//! every node also holding a strong `up` handle to its parent, so the tree
//! is one big cyclic structure) is built and promoted to the oldest
//! generation; then 2,000,000 iterations each allocate a 2-cycle and drop it,
//! and every 2,000th iteration replaces a random depth-10 subtree (1,023
//! objects) with a fresh one, so the old one becomes cyclic garbage in the old
//! generation (about 1M old objects die over the run). Policies:
//! `Generational` (the default), `Incremental::new(10_000)` and
//! `Incremental::new(10_000).with_time_budget(500 µs)`. A gc callback records
//! each collection's pause, both as wall time from its `Start` to its `Stop`
//! callback and as this thread's CPU time over that span
//! (`CLOCK_THREAD_CPUTIME_ID`; on a loaded machine preemption inflates wall
//! pauses, CPU time leaves it out), and `bytes_in_use()` is sampled every 100
//! iterations for the peak. The table gives the number of collections, the
//! objects they freed, the garbage still left when the workload ends (what a
//! full collection then finds: garbage waiting for the old-generation scan),
//! 99th percentile and longest pause (wall and CPU), total collection time
//! (wall and CPU; the ratio to `Generational` uses CPU time), the workload's
//! wall time, peak bytes in use and the arenas high-water mark. Notes under
//! it give the longest pause's collection (generation, objects examined and
//! freed, page faults the thread took during it: `getrusage(RUSAGE_THREAD)`,
//! Linux only), the five longest pauses of each `Incremental` policy, the
//! number of pauses over 1 ms, the CPU cost per examined object of the
//! larger collections, and the verdicts.
//!
//! # Running
//!
//! ```text
//! cargo bench --bench collector
//! cargo bench --bench collector -- two_cycles     # one shape only (substring filter)
//! cargo bench --bench collector -- incremental    # part 2 only
//! ```
//!
//! The whole run takes 2-3 minutes on a 2-core VM (dumpster's collections take
//! the largest share). The tables are printed after criterion's own output,
//! followed by the load average at the start, after part 1 and at the end:
//! compare figures within one run, and prefer the ratios.
//!
//! Profiling one contender (criterion's `--profile-time` runs the routine
//! without analysis):
//!
//! ```text
//! cargo bench --bench collector --no-run
//! perf record -g target/release/deps/collector-<hash> --bench --profile-time 10 'collector_two_cycles/rcgc$'
//! ```
//!
//! # Reference figures and targets
//!
//! On a 2-core VM, ns per freed object for the 500,000 2-cycles:
//! bacon_rajan_cc 112, rust-cc 114, gc 138, CPython 211, dumpster 2018. On
//! the recently touched live heap rust-cc pays 45 ns per live object,
//! CPython 119.
//!
//! Targets for rcgc: at least 10x faster per object than CPython (about
//! 21 ns per object, collection and freeing included) and faster than every
//! Rust peer on every shape; a generation-0 collection with 1M old objects at
//! most 2x the time with an empty old generation; `Incremental` keeps the
//! longest pause at most 1 ms on the 1M-object heap while its total
//! collection time stays at most 1.5x `Generational`'s and its peak memory
//! at most 1.2x.
//!
//! # Last whole runs (2026-11-21, load about 1)
//!
//! After the three-pass teardown, the slot buffer for edges and the
//! `DECREMENTED` filter (ns per freed object, rcgc vs fastest peer):
//! 2-cycles 49.9 vs rust-cc 82.1 (0.61x; CPython 149, 3.0x slower than
//! rcgc); rings 56.8 vs rust-cc 91.7 (0.62x; CPython 126, 2.2x). Live plus
//! garbage, full collection: rcgc 27.6 ms (was 43.1) vs rust-cc 13.1
//! (2.1x: the young live tree still costs about 23 ns per object to enter
//! and promote, untraced); with the tree old, a full collection 13.6 ms
//! (1.03x) and a generation-0 one 7.6 ms (0.58x). Recently touched live
//! heap: rcgc 42.7 ms vs rust-cc 52.4 (0.82x). Generation 0 with 1M old:
//! 1.33x (interleaved medians 1.42x). `Incremental(10000)`: longest pause
//! 0.72 ms, GC time 1.14x, peak 1.06x.
//!
//! Later that day, after unflagged young objects moved up before detection
//! (read once, never traced, when few young objects are flagged) and
//! promotion during propagation (criterion means; interleaved medians in
//! brackets): 2-cycles 48.3 vs rust-cc 78.5, 0.61x (45.7 vs 78.3, 0.58x;
//! CPython 115, 2.4x slower than rcgc); rings 56.2 vs 105, 0.53x (48.0 vs
//! 95.9, 0.50x; CPython 140, 2.5x). Live plus garbage: rcgc 17.6 ms (30.4
//! in a run of the code before, same day) vs rust-cc 15.4, 1.15x (14.0 vs
//! 14.8, 0.95x): the young tree now costs about 7 ns per object. Recently
//! touched: 58.6 vs 51.8, 1.13x (56.3 vs 53.1, 1.06x): every object is
//! flagged and traced twice, and the time goes to cache misses on the
//! referents' headers in both traces (a perf profile); prefetching the
//! next candidates, or keeping subtraction's edges for propagation instead
//! of tracing again, made it slower. Generation 0 with 1M old: 1.29x
//! (1.23x). `Incremental(10000)`: GC time 1.37x, peak 1.06x, longest pause
//! 1.82 ms (one pause of 7,400 over 1 ms); its longest pause in five more
//! runs of part 2 alone: 0.88, 2.2, 2.2, 0.94, 0.77 ms, and in two runs of
//! the code from before these changes 1.09 and 2.97 ms: single pauses on
//! this VM vary run to run by a factor of 2 to 3 around a typical 0.5 ms.
//!
//! 2026-11-21 late evening (propagation's work-list clearing in one pass;
//! collections keep the arenas they empty): 2-cycles 50.5 vs rust-cc 86.2,
//! 0.59x (interleaved 44.3 vs 79.7, 0.56x; CPython 118, 2.1x slower than
//! rcgc); rings 58.9 vs 102, 0.58x (52.9 vs 95.3, 0.56x; CPython 111,
//! 1.9x). Live plus garbage 13.9 ms vs rust-cc 14.4, 0.96x (14.3 vs 15.0,
//! 0.95x; CPython 5.8x slower). Recently touched 55.3 vs rust-cc 55.8 and
//! bacon_rajan_cc 47.6, 1.16x the fastest (51.4 vs rust-cc 49.8, 1.03x).
//! Generation 0 with 1M old: 0.98x (1.20x). Part 2 with regions of a
//! quarter of `max_work`, six runs: `Incremental::new(10_000)` longest
//! CPU pause 0.75, 0.58, 0.66, 0.63, 0.67 ms and once 3.77 ms (two pauses
//! of 3,200 objects at 1.1 µs per object, with no page fault: the VM), GC
//! time 0.95-1.14x, peak 1.12x; with the 500 µs time budget, three runs:
//! 0.43, 0.51 and 1.63 ms (one pause over 1 ms), peak 1.14-1.19x.
//!
//! 2026-11-21, night (on core 1 alone, `taskset -c 1`, load about 1; full
//! collections enter the flagged old objects as the heap walk finds them):
//! 2-cycles 42.9 vs rust-cc 68.8, 0.62x (interleaved 41.1 vs 67.5, 0.61x;
//! CPython 143, 3.3x slower than rcgc); rings 46.6 vs 81.0, 0.58x (47.7 vs
//! 86.0, 0.55x; CPython 131, 2.8x). Recently touched 40.4 vs rust-cc 49.0,
//! 0.83x (39.9 vs 39.7, 1.01x: parity in the interleaved rounds), with the
//! tree old 54.0 ms, 1.10x (62.0 in an earlier run of the same day, before
//! the walk entered the old candidates). Live plus garbage (a run of its
//! shape alone after the walk's fix for untouched young objects moved to
//! generation 2, which the first run had made walk the heap for nothing:
//! 16.1 ms): 12.4 vs rust-cc 14.9, 0.83x (14.0 vs 14.9, 0.94x; CPython
//! 7.1x slower). Generation 0 with 1M old: 1.18x (1.19x). Part 2:
//! `Incremental::new(10_000)` longest CPU pause 0.967 ms (0 pauses over
//! 1 ms), GC time 1.36x, peak 1.12x; with the 500 µs budget 0.406 ms,
//! 1.26x, 1.14x.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};

// ---------------------------------------------------------------- sizes --

/// The graph sizes of one run: full sizes when measuring, tiny ones when
/// criterion only checks that the routines run (`cargo test --benches`).
#[derive(Clone, Copy, Debug)]
struct Sizes {
    /// `two_cycles`: garbage 2-cycles.
    pairs: usize,
    /// `rings`: garbage rings ...
    rings: usize,
    /// ... of this many objects each.
    ring_len: usize,
    /// `live_*`: live tree objects.
    live: usize,
    /// `live_*`: garbage 2-cycles beside the live tree.
    live_pairs: usize,
    /// `gen0_vs_old`: young garbage 2-cycles.
    young_pairs: usize,
    /// `gen0_vs_old`: objects in the old generation.
    old: usize,
    /// Part 2: depth of the live tree (2^depth - 1 objects).
    inc_depth: u32,
    /// Part 2: depth of the replaced subtrees' roots.
    inc_replace_depth: u32,
    /// Part 2: workload iterations.
    inc_iterations: usize,
    /// Part 2: one subtree replaced every this many iterations.
    inc_replace_every: usize,
}

const FULL: Sizes = Sizes {
    pairs: 500_000,
    rings: 10_000,
    ring_len: 100,
    live: 1_000_000,
    live_pairs: 100_000,
    young_pairs: 10_000,
    old: 1_000_000,
    inc_depth: 20,
    inc_replace_depth: 10,
    inc_iterations: 2_000_000,
    inc_replace_every: 2_000,
};

const SMOKE: Sizes = Sizes {
    pairs: 500,
    rings: 10,
    ring_len: 100,
    live: 1_000,
    live_pairs: 100,
    young_pairs: 100,
    old: 1_000,
    inc_depth: 10,
    inc_replace_depth: 5,
    inc_iterations: 2_000,
    inc_replace_every: 200,
};

/// Full sizes when measuring or profiling, [`SMOKE`] sizes otherwise.
fn sizes() -> Sizes {
    let profiling = std::env::args().any(|a| a == "--profile-time" || a.starts_with("--profile-time="));
    if common::is_benchmark_mode() || profiling {
        FULL
    } else {
        SMOKE
    }
}

/// Part 2: peak memory is sampled every this many iterations.
const SAMPLE_EVERY: usize = 100;

/// Part 2: `Incremental`'s work limit per step (old objects examined).
const INCREMENTAL_WORK: usize = 10_000;

/// Part 2: the time budget of the third policy.
const TIME_BUDGET: Duration = Duration::from_micros(500);

// -------------------------------------------------------------- targets --

/// rcgc at least this many times faster per object than CPython.
const TARGET_VS_CPYTHON: f64 = 10.0;
/// gen-0 collection with 1M old objects at most this many times the time
/// with an empty old generation.
const TARGET_GEN0_RATIO: f64 = 2.0;
/// `Incremental`'s longest pause.
const TARGET_MAX_PAUSE: Duration = Duration::from_millis(1);
/// `Incremental`'s total collection time at most this many times
/// `Generational`'s.
const TARGET_GC_TIME_RATIO: f64 = 1.5;
/// `Incremental`'s peak memory at most this many times `Generational`'s.
const TARGET_PEAK_RATIO: f64 = 1.2;

// ---------------------------------------------------------- contenders --

/// Table order of the Rust contenders (criterion function names).
const CONTENDERS: [&str; 8] = [
    "rcgc",
    RCGC_YOUNG,
    RCGC_OLD_FULL,
    RCGC_FRESH,
    "rust-cc",
    "dumpster",
    "bacon_rajan_cc",
    "gc",
];

/// Diagnostic rcgc variant of the `live_*` shapes: live tree in the oldest
/// generation, timed generation-0 collection (see [`time_live_young`]).
const RCGC_YOUNG: &str = "rcgc (gen-0, live tree old)";

/// Diagnostic rcgc variant of the `live_*` shapes: live tree in the oldest
/// generation, timed full collection (see [`time_live_young`]).
const RCGC_OLD_FULL: &str = "rcgc (full, live tree old)";

/// Diagnostic rcgc variant: a new `Heap` for every build + collect, so the
/// collection also pays first-touch page faults for the collector's work
/// lists (the `rcgc` row reuses one heap, as the peers reuse their
/// thread-local state).
const RCGC_FRESH: &str = "rcgc (fresh Heap)";

/// Label of the CPython rows.
const CPYTHON: &str = "python3 (CPython, separate process)";

/// A Rust collector under test: how to make and link its nodes, and how to
/// run its collector. Every implementation uses the node shape
/// `Node { a, b }`, two nullable mutable handles.
trait Contender {
    /// Per-iteration state owning the objects (rcgc's `Heap`), or `()`.
    type Ctx;
    /// A strong handle to a node.
    type Ptr: Clone;

    /// Creates the state for one build + collect, with automatic collection
    /// off where the crate allows it.
    fn context() -> Self::Ctx;

    /// Allocates a node with these two fields.
    fn node(ctx: &Self::Ctx, a: Option<Self::Ptr>, b: Option<Self::Ptr>) -> Self::Ptr;

    /// Sets the node's `a` field.
    fn set_a(node: &Self::Ptr, to: Self::Ptr);

    /// Clones of the node's two fields.
    fn children(node: &Self::Ptr) -> [Option<Self::Ptr>; 2];

    /// The timed call: collects everything unreachable. Returns the number of
    /// objects freed when the crate reports it.
    fn collect(ctx: &Self::Ctx) -> Option<usize>;

    /// Untimed, after the live graph of an iteration was dropped: frees what
    /// that left behind, so the next iteration starts clean.
    fn teardown(ctx: &Self::Ctx) {
        let _ = ctx;
    }
}

mod rcgc_impl {
    use std::cell::RefCell;

    use rcgc::{Gc, Heap, Trace};

    pub struct Rcgc;

    #[derive(Trace)]
    pub struct Node {
        a: RefCell<Option<Gc<Node>>>,
        b: RefCell<Option<Gc<Node>>>,
    }

    impl super::Contender for Rcgc {
        type Ctx = Heap;
        type Ptr = Gc<Node>;

        fn context() -> Heap {
            let heap = Heap::new();
            heap.disable();
            heap
        }

        fn node(heap: &Heap, a: Option<Gc<Node>>, b: Option<Gc<Node>>) -> Gc<Node> {
            heap.alloc(Node {
                a: RefCell::new(a),
                b: RefCell::new(b),
            })
        }

        fn set_a(node: &Gc<Node>, to: Gc<Node>) {
            *node.a.borrow_mut() = Some(to);
        }

        fn children(node: &Gc<Node>) -> [Option<Gc<Node>>; 2] {
            [node.a.borrow().clone(), node.b.borrow().clone()]
        }

        fn collect(heap: &Heap) -> Option<usize> {
            Some(heap.collect())
        }
    }
}

mod rust_cc_impl {
    use std::cell::RefCell;

    use rust_cc::{Cc, Finalize, Trace};

    pub struct RustCc;

    #[derive(Trace, Finalize)]
    pub struct Node {
        a: RefCell<Option<Cc<Node>>>,
        b: RefCell<Option<Cc<Node>>>,
    }

    impl super::Contender for RustCc {
        type Ctx = ();
        type Ptr = Cc<Node>;

        fn context() {
            rust_cc::config::config(|config| config.set_auto_collect(false)).expect("rust-cc config");
        }

        fn node(_: &(), a: Option<Cc<Node>>, b: Option<Cc<Node>>) -> Cc<Node> {
            Cc::new(Node {
                a: RefCell::new(a),
                b: RefCell::new(b),
            })
        }

        fn set_a(node: &Cc<Node>, to: Cc<Node>) {
            *node.a.borrow_mut() = Some(to);
        }

        fn children(node: &Cc<Node>) -> [Option<Cc<Node>>; 2] {
            [node.a.borrow().clone(), node.b.borrow().clone()]
        }

        fn collect(_: &()) -> Option<usize> {
            rust_cc::collect_cycles();
            None
        }
    }
}

mod dumpster_impl {
    use std::cell::RefCell;

    use dumpster::unsync::Gc;
    use dumpster::Trace;

    pub struct Dumpster;

    #[derive(Trace)]
    pub struct Node {
        a: RefCell<Option<Gc<Node>>>,
        b: RefCell<Option<Gc<Node>>>,
    }

    impl super::Contender for Dumpster {
        type Ctx = ();
        type Ptr = Gc<Node>;

        fn context() {
            dumpster::unsync::set_collect_condition(|_| false);
        }

        fn node(_: &(), a: Option<Gc<Node>>, b: Option<Gc<Node>>) -> Gc<Node> {
            Gc::new(Node {
                a: RefCell::new(a),
                b: RefCell::new(b),
            })
        }

        fn set_a(node: &Gc<Node>, to: Gc<Node>) {
            *node.a.borrow_mut() = Some(to);
        }

        fn children(node: &Gc<Node>) -> [Option<Gc<Node>>; 2] {
            [node.a.borrow().clone(), node.b.borrow().clone()]
        }

        fn collect(_: &()) -> Option<usize> {
            dumpster::unsync::collect();
            None
        }
    }
}

mod bacon_rajan_impl {
    use std::cell::RefCell;

    use bacon_rajan_cc::{Cc, Trace, Tracer};

    pub struct BaconRajan;

    pub struct Node {
        a: RefCell<Option<Cc<Node>>>,
        b: RefCell<Option<Cc<Node>>>,
    }

    impl Trace for Node {
        fn trace(&self, tracer: &mut Tracer) {
            self.a.trace(tracer);
            self.b.trace(tracer);
        }
    }

    impl super::Contender for BaconRajan {
        type Ctx = ();
        type Ptr = Cc<Node>;

        fn context() {}

        fn node(_: &(), a: Option<Cc<Node>>, b: Option<Cc<Node>>) -> Cc<Node> {
            Cc::new(Node {
                a: RefCell::new(a),
                b: RefCell::new(b),
            })
        }

        fn set_a(node: &Cc<Node>, to: Cc<Node>) {
            *node.a.borrow_mut() = Some(to);
        }

        fn children(node: &Cc<Node>) -> [Option<Cc<Node>>; 2] {
            [node.a.borrow().clone(), node.b.borrow().clone()]
        }

        fn collect(_: &()) -> Option<usize> {
            bacon_rajan_cc::collect_cycles();
            None
        }
    }
}

mod gc_impl {
    // gc_derive 0.5 (synstructure 0.12) wraps its impls in a `const _: () = { .. }`,
    // which this lint flags; the impls are fine.
    #![allow(non_local_definitions)]

    use gc::{Finalize, Gc, GcCell, Trace};

    pub struct GcCrate;

    #[derive(Trace, Finalize)]
    pub struct Node {
        a: GcCell<Option<Gc<Node>>>,
        b: GcCell<Option<Gc<Node>>>,
    }

    impl super::Contender for GcCrate {
        type Ctx = ();
        type Ptr = Gc<Node>;

        fn context() {}

        fn node(_: &(), a: Option<Gc<Node>>, b: Option<Gc<Node>>) -> Gc<Node> {
            Gc::new(Node {
                a: GcCell::new(a),
                b: GcCell::new(b),
            })
        }

        fn set_a(node: &Gc<Node>, to: Gc<Node>) {
            *node.a.borrow_mut() = Some(to);
        }

        fn children(node: &Gc<Node>) -> [Option<Gc<Node>>; 2] {
            [node.a.borrow().clone(), node.b.borrow().clone()]
        }

        fn collect(_: &()) -> Option<usize> {
            gc::force_collect();
            None
        }

        fn teardown(_: &()) {
            // Dropping the live tree only unrooted it: sweep it now, untimed.
            gc::force_collect();
        }
    }
}

use bacon_rajan_impl::BaconRajan;
use dumpster_impl::Dumpster;
use gc_impl::GcCrate;
use rcgc_impl::Rcgc;
use rust_cc_impl::RustCc;

// ---------------------------------------------------------------- shapes --

/// The collection shapes of part 1 (besides `gen0_vs_old`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Shape {
    TwoCycles,
    Rings,
    LivePlusGarbage,
    LiveRecentlyTouched,
}

impl Shape {
    const ALL: [Shape; 4] = [
        Shape::TwoCycles,
        Shape::Rings,
        Shape::LivePlusGarbage,
        Shape::LiveRecentlyTouched,
    ];

    /// The name CPython's script reports it under.
    fn name(self) -> &'static str {
        match self {
            Shape::TwoCycles => "two_cycles",
            Shape::Rings => "rings",
            Shape::LivePlusGarbage => "live_plus_garbage",
            Shape::LiveRecentlyTouched => "live_recently_touched",
        }
    }

    /// Criterion group name.
    fn group(self) -> String {
        format!("collector_{}", self.name())
    }

    /// Garbage objects the collection frees.
    fn garbage(self, s: &Sizes) -> usize {
        match self {
            Shape::TwoCycles => 2 * s.pairs,
            Shape::Rings => s.rings * s.ring_len,
            Shape::LivePlusGarbage | Shape::LiveRecentlyTouched => 2 * s.live_pairs,
        }
    }

    /// Live objects in the heap at the collection.
    fn live(self, s: &Sizes) -> usize {
        match self {
            Shape::TwoCycles | Shape::Rings => 0,
            Shape::LivePlusGarbage | Shape::LiveRecentlyTouched => s.live,
        }
    }
}

/// `pairs` garbage 2-cycles: `x.a = y`, `y.a = x`. One handle per cycle goes
/// to `holder` (see the module docs on `gc`), the other locals are dropped.
fn build_pairs<C: Contender>(ctx: &C::Ctx, pairs: usize, holder: &mut Vec<C::Ptr>) {
    for _ in 0..pairs {
        let x = C::node(ctx, None, None);
        let y = C::node(ctx, Some(x.clone()), None);
        C::set_a(&x, y.clone());
        drop(y);
        holder.push(x);
    }
}

/// `rings` garbage rings of `len` objects linked through `a`; one handle per
/// ring goes to `holder`.
fn build_rings<C: Contender>(ctx: &C::Ctx, rings: usize, len: usize, holder: &mut Vec<C::Ptr>) {
    for _ in 0..rings {
        let first = C::node(ctx, None, None);
        let mut prev = first.clone();
        for _ in 1..len {
            let next = C::node(ctx, None, None);
            C::set_a(&prev, next.clone());
            prev = next;
        }
        C::set_a(&prev, first.clone());
        drop(prev);
        holder.push(first);
    }
}

/// A tree of `n` nodes (node `i`'s children are `2i + 1` and `2i + 2`),
/// built bottom-up by moving each child's only handle into its parent.
fn build_tree<C: Contender>(ctx: &C::Ctx, n: usize) -> C::Ptr {
    let mut nodes: Vec<Option<C::Ptr>> = Vec::with_capacity(n);
    nodes.resize_with(n, || None);
    for i in (0..n).rev() {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let a = if l < n { nodes[l].take() } else { None };
        let b = if r < n { nodes[r].take() } else { None };
        nodes[i] = Some(C::node(ctx, a, b));
    }
    nodes[0].take().expect("a non-empty tree")
}

/// Clones and drops every handle of the tree (depth-first, explicit stack);
/// returns the number of nodes visited.
fn touch_all<C: Contender>(root: &C::Ptr) -> usize {
    let mut stack = vec![root.clone()];
    let mut visited = 0;
    while let Some(node) = stack.pop() {
        visited += 1;
        for child in C::children(&node).into_iter().flatten() {
            stack.push(child);
        }
    }
    visited
}

/// `iters` builds of `shape`, each followed by one timed collection; returns
/// the total time of the collections.
fn time_shape<C: Contender>(ctx: &C::Ctx, iters: u64, shape: Shape, s: &Sizes) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let ctx = black_box(ctx);
        let live = match shape {
            Shape::LivePlusGarbage | Shape::LiveRecentlyTouched => Some(build_tree::<C>(ctx, s.live)),
            Shape::TwoCycles | Shape::Rings => None,
        };
        let mut holder = Vec::new();
        match shape {
            Shape::TwoCycles => build_pairs::<C>(ctx, s.pairs, &mut holder),
            Shape::Rings => build_rings::<C>(ctx, s.rings, s.ring_len, &mut holder),
            Shape::LivePlusGarbage | Shape::LiveRecentlyTouched => build_pairs::<C>(ctx, s.live_pairs, &mut holder),
        }
        if shape == Shape::LiveRecentlyTouched {
            let root = live.as_ref().expect("live tree");
            assert_eq!(touch_all::<C>(root), s.live);
        }
        drop(holder);

        let start = Instant::now();
        let found = C::collect(ctx);
        total += start.elapsed();

        if let Some(found) = found {
            assert_eq!(found, shape.garbage(s), "{shape:?}: wrong number of objects collected");
        }
        drop(live);
        C::teardown(ctx);
    }
    total
}

/// [`time_shape`] with a new context (for rcgc a new `Heap`) for every
/// iteration, created and dropped outside the timed part.
fn time_shape_fresh<C: Contender>(iters: u64, shape: Shape, s: &Sizes) -> Duration {
    (0..iters).map(|_| time_shape::<C>(&C::context(), 1, shape, s)).sum()
}

/// Diagnostic rcgc variants of the `live_*` shapes: the live tree is promoted
/// to the oldest generation (an untimed full collection right after it is
/// built, as automatic collection would have done over time), and the timed
/// call is a generation-0 collection, which examines only the young garbage,
/// or (`full`) a full collection, which also examines the old objects
/// decremented since the promotion and the old objects they reach: none for
/// the untouched tree, all of it for the recently touched one.
fn time_live_young(heap: &rcgc::Heap, iters: u64, shape: Shape, s: &Sizes, full: bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let live = build_tree::<Rcgc>(heap, s.live);
        assert_eq!(heap.collect(), 0);
        let mut holder = Vec::new();
        build_pairs::<Rcgc>(heap, s.live_pairs, &mut holder);
        if shape == Shape::LiveRecentlyTouched {
            assert_eq!(touch_all::<Rcgc>(&live), s.live);
        }
        drop(holder);

        let start = Instant::now();
        let generation = if full { 2 } else { 0 };
        let found = heap
            .collect_generation(black_box(generation))
            .expect("a valid generation");
        total += start.elapsed();

        assert_eq!(found, shape.garbage(s), "{shape:?}: wrong number of objects collected");
        drop(live);
    }
    total
}

/// A criterion group for one big shape: one iteration per sample, 10 samples
/// after a one-iteration warm-up.
fn big_group<'a>(c: &'a mut Criterion, name: &str, elements: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        // One iteration is longer than both: the warm-up is one iteration and
        // every sample one iteration (criterion warns; expected).
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(10))
        .throughput(Throughput::Elements(elements as u64));
    group
}

fn bench_shape(c: &mut Criterion, shape: Shape, s: Sizes) {
    let mut group = big_group(c, &shape.group(), shape.garbage(&s));
    // One context per contender for the whole benchmark, like the peers'
    // thread-local collector state: rcgc's `Heap` is reused across iterations.
    let heap = Rcgc::context();
    group.bench_function("rcgc", |b| b.iter_custom(|n| time_shape::<Rcgc>(&heap, n, shape, &s)));
    if shape.live(&s) > 0 {
        group.bench_function(RCGC_YOUNG, |b| {
            b.iter_custom(|n| time_live_young(&heap, n, shape, &s, false))
        });
        group.bench_function(RCGC_OLD_FULL, |b| {
            b.iter_custom(|n| time_live_young(&heap, n, shape, &s, true))
        });
    }
    drop(heap);
    group.bench_function(RCGC_FRESH, |b| {
        b.iter_custom(|n| time_shape_fresh::<Rcgc>(n, shape, &s))
    });
    RustCc::context();
    group.bench_function("rust-cc", |b| {
        b.iter_custom(|n| time_shape::<RustCc>(&(), n, shape, &s))
    });
    Dumpster::context();
    group.bench_function("dumpster", |b| {
        b.iter_custom(|n| time_shape::<Dumpster>(&(), n, shape, &s))
    });
    BaconRajan::context();
    group.bench_function("bacon_rajan_cc", |b| {
        b.iter_custom(|n| time_shape::<BaconRajan>(&(), n, shape, &s))
    });
    GcCrate::context();
    group.bench_function("gc", |b| b.iter_custom(|n| time_shape::<GcCrate>(&(), n, shape, &s)));
    group.finish();
}

/// Rounds of the interleaved comparison of one shape.
const SHAPE_ROUNDS: usize = 7;

/// The contenders of the interleaved comparison: rcgc and the two Rust
/// peers that come near it (dumpster and gc are many times slower on every
/// shape).
const INTERLEAVED: [&str; 3] = ["rcgc", "rust-cc", "bacon_rajan_cc"];

/// The interleaved comparison of one shape: [`SHAPE_ROUNDS`] rounds, each
/// one build + collection of every contender of [`INTERLEAVED`] in turn;
/// returns each contender's median collection time (ns), in that order.
/// Criterion measures one contender after the other, so a change of machine
/// load during the run (a 2-core VM shares its host) moves their ratios;
/// alternating the contenders round by round spreads it over all of them.
fn interleaved_shape(shape: Shape, s: &Sizes) -> [f64; 3] {
    let heap = Rcgc::context();
    RustCc::context();
    BaconRajan::context();
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..SHAPE_ROUNDS {
        times[0].push(time_shape::<Rcgc>(&heap, 1, shape, s).as_nanos() as f64);
        times[1].push(time_shape::<RustCc>(&(), 1, shape, s).as_nanos() as f64);
        times[2].push(time_shape::<BaconRajan>(&(), 1, shape, s).as_nanos() as f64);
    }
    times.map(|mut t| common::median(&mut t))
}

// ---------------------------------------------------------- gen0_vs_old --

const GEN0_GROUP: &str = "collector_gen0_vs_old";
const GEN0_OLD: &str = "old_1M";
const GEN0_EMPTY: &str = "old_empty";

mod gen0 {
    use std::cell::RefCell;
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    use rcgc::{Gc, Heap, Trace};

    #[derive(Trace)]
    pub struct Node {
        a: RefCell<Option<Gc<Node>>>,
        b: RefCell<Option<Gc<Node>>>,
    }

    fn node(heap: &Heap, a: Option<Gc<Node>>, b: Option<Gc<Node>>) -> Gc<Node> {
        heap.alloc(Node {
            a: RefCell::new(a),
            b: RefCell::new(b),
        })
    }

    /// A heap with automatic collection off and `old` live objects (a tree,
    /// as in part 1) in the oldest generation; returns them all (node `i` of
    /// the tree at index `i`) so young objects can point at them.
    pub fn setup(old: usize) -> (Heap, Vec<Gc<Node>>) {
        let heap = Heap::new();
        heap.disable();
        let mut nodes: Vec<Option<Gc<Node>>> = Vec::with_capacity(old);
        nodes.resize_with(old, || None);
        for i in (0..old).rev() {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let a = nodes.get(l).and_then(Clone::clone);
            let b = nodes.get(r).and_then(Clone::clone);
            nodes[i] = Some(node(&heap, a, b));
        }
        let old_nodes: Vec<Gc<Node>> = nodes.into_iter().map(|n| n.expect("built")).collect();
        assert_eq!(heap.collect(), 0);
        (heap, old_nodes)
    }

    /// `iters` times: `young_pairs` young garbage 2-cycles (each `x.b` an
    /// old object when there are any), then a timed generation-0 collection.
    pub fn time(heap: &Heap, old: &[Gc<Node>], young_pairs: usize, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let stride = if old.is_empty() {
            0
        } else {
            (old.len() / young_pairs).max(1)
        };
        for _ in 0..iters {
            for i in 0..young_pairs {
                let target = old.get((i * stride) % old.len().max(1)).cloned();
                let x = node(heap, None, target);
                let y = node(heap, Some(x.clone()), None);
                *x.a.borrow_mut() = Some(y);
            }
            let start = Instant::now();
            let found = heap.collect_generation(black_box(0)).expect("generation 0");
            total += start.elapsed();
            assert_eq!(found, 2 * young_pairs);
        }
        total
    }
}

/// Alternating rounds of the interleaved `gen0_vs_old` measurement.
const GEN0_ROUNDS: usize = 200;

/// The `gen0_vs_old` criterion group. When measuring, also returns the
/// medians (ns) of [`GEN0_ROUNDS`] interleaved collections, `old_1M` and
/// `old_empty` alternately, whose ratio a change of machine load during the
/// run affects far less than criterion's two consecutive benchmarks.
fn bench_gen0(c: &mut Criterion, s: Sizes) -> Option<(f64, f64)> {
    let mut group = c.benchmark_group(GEN0_GROUP);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(2 * s.young_pairs as u64));
    let (old_heap, old) = gen0::setup(s.old);
    group.bench_function(GEN0_OLD, |b| {
        b.iter_custom(|n| gen0::time(&old_heap, &old, s.young_pairs, n))
    });
    let empty_heap = rcgc::Heap::new();
    empty_heap.disable();
    group.bench_function(GEN0_EMPTY, |b| {
        b.iter_custom(|n| gen0::time(&empty_heap, &[], s.young_pairs, n))
    });
    group.finish();

    if !common::is_benchmark_mode() || !common::filter_selects(GEN0_GROUP) {
        return None;
    }
    let (mut with_old, mut empty) = (Vec::new(), Vec::new());
    for _ in 0..GEN0_ROUNDS {
        with_old.push(gen0::time(&old_heap, &old, s.young_pairs, 1).as_nanos() as f64);
        empty.push(gen0::time(&empty_heap, &[], s.young_pairs, 1).as_nanos() as f64);
    }
    Some((common::median(&mut with_old), common::median(&mut empty)))
}

// --------------------------------------------------------------- CPython --

/// The same graphs in CPython; argv: pairs rings ring_len live live_pairs.
/// Prints `shape mean_ns_per_collection` lines.
const CPYTHON_SCRIPT: &str = r#"
import gc, sys, time

class Node:
    __slots__ = ('a', 'b')
    def __init__(self, a=None, b=None):
        self.a = a
        self.b = b

def pairs(n, holder):
    for _ in range(n):
        x = Node()
        y = Node(x)
        x.a = y
        holder.append(x)

def rings(n, length, holder):
    for _ in range(n):
        first = Node()
        prev = first
        for _ in range(length - 1):
            nxt = Node()
            prev.a = nxt
            prev = nxt
        prev.a = first
        holder.append(first)

def tree(n):
    nodes = [None] * n
    for i in range(n - 1, -1, -1):
        l, r = 2 * i + 1, 2 * i + 2
        nodes[i] = Node(nodes[l] if l < n else None, nodes[r] if r < n else None)
        if l < n: nodes[l] = None
        if r < n: nodes[r] = None
    return nodes[0]

def touch(root):
    stack = [root]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if node.a is not None: stack.append(node.a)
        if node.b is not None: stack.append(node.b)
    return seen

def one(shape, P, R, L, LIVE, LP):
    live = None
    holder = []
    if shape in ('live_plus_garbage', 'live_recently_touched'):
        live = tree(LIVE)
    if shape == 'two_cycles':
        pairs(P, holder)
        expect = 2 * P
    elif shape == 'rings':
        rings(R, L, holder)
        expect = R * L
    else:
        pairs(LP, holder)
        expect = 2 * LP
    if shape == 'live_recently_touched':
        assert touch(live) == LIVE
    del holder
    t0 = time.perf_counter_ns()
    found = gc.collect()
    t = time.perf_counter_ns() - t0
    assert found == expect, (shape, found, expect)
    del live
    return t

P, R, L, LIVE, LP = map(int, sys.argv[1:6])
gc.collect()
gc.freeze()
gc.disable()
for shape in ('two_cycles', 'rings', 'live_plus_garbage', 'live_recently_touched'):
    one(shape, P, R, L, LIVE, LP)  # warm-up
    times = [one(shape, P, R, L, LIVE, LP) for _ in range(3)]
    print(shape, sum(times) / len(times))
"#;

/// Runs [`CPYTHON_SCRIPT`]; mean ns per collection by shape name. Empty if
/// `python3` is missing or fails (the CPython rows are optional).
fn run_cpython(s: &Sizes) -> HashMap<String, f64> {
    let args = [s.pairs, s.rings, s.ring_len, s.live, s.live_pairs].map(|n| n.to_string());
    let out = match Command::new("python3")
        .arg("-c")
        .arg(CPYTHON_SCRIPT)
        .args(&args)
        .output()
    {
        Ok(out) => out,
        Err(_) => return HashMap::new(),
    };
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return HashMap::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (name, ns) = line.split_once(' ')?;
            Some((name.to_string(), ns.trim().parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------- tables --

/// Prints one part-1 table: per contender the mean time of one collection and
/// the time per object for each of `units` (label, object count), and the
/// ratio to rcgc's time. Then the targets' verdicts.
fn print_shape_table(group: &str, units: &[(&str, usize)], cpython: Option<f64>, interleaved: Option<[f64; 3]>) {
    let rcgc = common::read_estimate(group, "rcgc").map(|e| e.mean_ns);
    let mut header = vec!["contender".to_string(), "ms/collection".to_string()];
    header.extend(units.iter().map(|(label, _)| format!("ns/{label}")));
    header.push("vs rcgc".to_string());

    let mut rows = Vec::new();
    let mut any_stale = false;
    let mut row = |label: String, ns: Option<f64>| {
        let mut cells = vec![label];
        match ns {
            Some(ns) => {
                cells.push(format!("{:.1}", ns / 1e6));
                cells.extend(units.iter().map(|&(_, n)| common::format_ns(ns / n as f64)));
                cells.push(common::format_ratio(ns, rcgc));
            }
            None => cells.push("n/a".to_string()),
        }
        rows.push(cells);
    };
    let mut peers = Vec::new();
    for name in CONTENDERS {
        let est = common::read_estimate(group, name);
        if est.is_none() && (name == RCGC_YOUNG || name == RCGC_OLD_FULL) {
            continue; // only the `live_*` shapes have this variant
        }
        let mut label = name.to_string();
        if est.is_some_and(|e| e.stale) {
            label.push_str(" (stale)");
            any_stale = true;
        }
        if !name.starts_with("rcgc") {
            if let Some(e) = est {
                peers.push((name, e.mean_ns));
            }
        }
        row(label, est.map(|e| e.mean_ns));
    }
    if let Some(ns) = cpython {
        row(CPYTHON.to_string(), Some(ns));
    }
    if let Some(medians) = interleaved {
        for (name, ns) in INTERLEAVED.iter().zip(medians) {
            row(format!("{name} (interleaved, median)"), Some(ns));
        }
    }

    let mut notes = Vec::new();
    if any_stale {
        notes.push("(stale) = not measured in this run; value from an earlier run".to_string());
    }
    if let Some(rcgc) = rcgc {
        if let Some(py) = cpython {
            let speedup = py / rcgc;
            notes.push(format!(
                "rcgc vs CPython: {speedup:.1}x faster per object (target >= {TARGET_VS_CPYTHON}x): {}",
                verdict(speedup >= TARGET_VS_CPYTHON)
            ));
        }
        if let Some(&(fastest, ns)) = peers.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
            notes.push(format!(
                "rcgc vs fastest Rust peer ({fastest}): {:.2}x its time (target < 1): {}",
                rcgc / ns,
                verdict(rcgc < ns)
            ));
            for variant in [RCGC_YOUNG, RCGC_OLD_FULL] {
                if let Some(est) = common::read_estimate(group, variant) {
                    notes.push(format!(
                        "{variant} vs fastest Rust peer ({fastest}): {:.2}x its time",
                        est.mean_ns / ns
                    ));
                }
            }
        }
    }
    if let Some([rcgc, rest @ ..]) = interleaved {
        let (fastest, ns) = INTERLEAVED[1..]
            .iter()
            .zip(rest)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("two peers");
        notes.push(format!(
            "rcgc vs fastest Rust peer ({fastest}), {SHAPE_ROUNDS} interleaved rounds, medians: {:.2}x its time (target < 1): {}",
            rcgc / ns,
            verdict(rcgc < ns)
        ));
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    common::print_table(
        &format!("{group} (mean of criterion's samples; lower is faster)"),
        &header,
        &rows,
        &notes,
    );
}

fn print_gen0_table(s: &Sizes, interleaved: Option<(f64, f64)>) {
    let old = common::read_estimate(GEN0_GROUP, GEN0_OLD);
    let empty = common::read_estimate(GEN0_GROUP, GEN0_EMPTY);
    let young = 2 * s.young_pairs;
    let mut rows = Vec::new();
    let mut any_stale = false;
    for (name, est) in [(GEN0_OLD, old), (GEN0_EMPTY, empty)] {
        let mut label = format!("rcgc, {name}");
        if est.is_some_and(|e| e.stale) {
            label.push_str(" (stale)");
            any_stale = true;
        }
        rows.push(match est {
            Some(e) => vec![
                label,
                format!("{:.3}", e.mean_ns / 1e6),
                common::format_ns(e.mean_ns / young as f64),
                common::format_ratio(e.mean_ns, empty.map(|e| e.mean_ns)),
            ],
            None => vec![label, "n/a".to_string()],
        });
    }
    if let Some((old_ns, empty_ns)) = interleaved {
        for (name, ns) in [(GEN0_OLD, old_ns), (GEN0_EMPTY, empty_ns)] {
            rows.push(vec![
                format!("rcgc, {name} (interleaved, median)"),
                format!("{:.3}", ns / 1e6),
                common::format_ns(ns / young as f64),
                common::format_ratio(ns, Some(empty_ns)),
            ]);
        }
    }
    let mut notes = vec![format!(
        "{young} young objects per collection; old_1M: {} old objects, one edge from each young pair into them",
        s.old
    )];
    if any_stale {
        notes.push("(stale) = not measured in this run; value from an earlier run".to_string());
    }
    if let (Some(old), Some(empty)) = (old, empty) {
        let ratio = old.mean_ns / empty.mean_ns;
        notes.push(format!(
            "gen-0 with 1M old / with empty old (criterion means): {ratio:.2}x (target <= {TARGET_GEN0_RATIO}x): {}",
            verdict(ratio <= TARGET_GEN0_RATIO)
        ));
    }
    if let Some((old_ns, empty_ns)) = interleaved {
        let ratio = old_ns / empty_ns;
        notes.push(format!(
            "gen-0 with 1M old / with empty old ({GEN0_ROUNDS} interleaved rounds, medians): {ratio:.2}x (target <= {TARGET_GEN0_RATIO}x): {}",
            verdict(ratio <= TARGET_GEN0_RATIO)
        ));
    }
    common::print_table(
        &format!("{GEN0_GROUP} (generation-0 collection; lower is faster)"),
        &["contender", "ms/collection", "ns/young object", "vs old_empty"],
        &rows,
        &notes,
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// `/proc/loadavg`'s first three fields, if readable.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

// ------------------------------------------------ part 2: incremental --

mod pauses {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use rcgc::{Gc, GcPhase, Heap, Trace};

    use super::Sizes;

    /// A tree node with a strong handle to its parent: parent and child form
    /// a 2-cycle, so a detached subtree is cyclic garbage.
    #[derive(Trace)]
    pub struct Node {
        left: RefCell<Option<Gc<Node>>>,
        right: RefCell<Option<Gc<Node>>>,
        up: RefCell<Option<Gc<Node>>>,
    }

    /// A node with these children, whose `up` handles it sets to the node.
    fn node(heap: &Heap, left: Option<Gc<Node>>, right: Option<Gc<Node>>) -> Gc<Node> {
        let node = heap.alloc(Node {
            left: RefCell::new(left),
            right: RefCell::new(right),
            up: RefCell::new(None),
        });
        for child in [&node.left, &node.right] {
            if let Some(child) = &*child.borrow() {
                *child.up.borrow_mut() = Some(node.clone());
            }
        }
        node
    }

    /// A complete tree of `2^depth - 1` nodes with parent handles.
    fn tree(heap: &Heap, depth: u32) -> Gc<Node> {
        let n = (1usize << depth) - 1;
        let mut nodes: Vec<Option<Gc<Node>>> = Vec::with_capacity(n);
        nodes.resize_with(n, || None);
        for i in (0..n).rev() {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let left = if l < n { nodes[l].take() } else { None };
            let right = if r < n { nodes[r].take() } else { None };
            nodes[i] = Some(node(heap, left, right));
        }
        nodes[0].take().expect("a non-empty tree")
    }

    /// Replaces the subtree rooted at a random node of depth `depth` (root:
    /// depth 0) with a fresh one of the same size; the old one becomes
    /// cyclic garbage (its root still points up at its former parent).
    fn replace_subtree(heap: &Heap, root: &Gc<Node>, tree_depth: u32, depth: u32, rng: &mut u64) {
        let mut parent = root.clone();
        for _ in 1..depth {
            let next = if next_random(rng) & 1 == 0 {
                parent.left.borrow().clone()
            } else {
                parent.right.borrow().clone()
            };
            parent = next.expect("the tree is complete");
        }
        let fresh = tree(heap, tree_depth - depth);
        *fresh.up.borrow_mut() = Some(parent.clone());
        let slot = if next_random(rng) & 1 == 0 {
            &parent.left
        } else {
            &parent.right
        };
        let old = slot.replace(Some(fresh));
        drop(old);
    }

    fn next_random(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// One collection as the gc callbacks saw it.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Pause {
        /// Wall time from the `Start` callback to the `Stop` callback.
        pub wall: Duration,
        /// This thread's CPU time over the same span (`None` where the
        /// platform has no per-thread CPU clock). Unlike `wall`, it leaves
        /// out time the thread spent preempted, which on a loaded machine
        /// dominates the longest wall pauses.
        pub cpu: Option<Duration>,
        /// `GcInfo::generation` (1 for an incremental step).
        pub generation: usize,
        /// `GcInfo::candidates`: objects examined.
        pub examined: usize,
        /// `GcInfo::collected`: objects freed.
        pub freed: usize,
        /// Page faults this thread took over the span (minor and major;
        /// `None` where not measured): first touches of fresh memory, which
        /// the kernel's time for them puts into `cpu`.
        pub faults: Option<u64>,
    }

    /// What one policy's run measured.
    #[derive(Clone, Debug, Default)]
    pub struct Report {
        /// Every collection, in order.
        pub pauses: Vec<Pause>,
        /// Most `bytes_in_use()` seen (sampled).
        pub peak_bytes: usize,
        /// Most arenas mapped at once (`alloc_stats().arenas_high_water`).
        pub arenas_high_water: usize,
        /// The workload's wall time, collections included.
        pub wall: Duration,
        /// Garbage still waiting when the workload ended: what a full
        /// collection found then.
        pub left_over: usize,
    }

    impl Report {
        /// Objects the collections freed during the workload.
        pub fn collected(&self) -> usize {
            self.pauses.iter().map(|p| p.freed).sum()
        }

        /// The pauses' wall times.
        pub fn walls(&self) -> Vec<Duration> {
            self.pauses.iter().map(|p| p.wall).collect()
        }

        /// The pauses' CPU times, if measured.
        pub fn cpus(&self) -> Option<Vec<Duration>> {
            self.pauses.iter().map(|p| p.cpu).collect()
        }

        /// The pause with the longest CPU time (wall time without a CPU clock).
        pub fn longest(&self) -> Pause {
            self.pauses
                .iter()
                .copied()
                .max_by_key(|p| p.cpu.unwrap_or(p.wall))
                .unwrap_or_default()
        }
    }

    /// The sum of `times`.
    pub fn total(times: &[Duration]) -> Duration {
        times.iter().sum()
    }

    /// The longest of `times`.
    pub fn max(times: &[Duration]) -> Duration {
        times.iter().copied().max().unwrap_or_default()
    }

    /// The `p`-th percentile of `times` (nearest rank).
    pub fn percentile(times: &[Duration], p: f64) -> Duration {
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    /// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
    #[cfg(unix)]
    fn thread_cpu_time() -> Option<Duration> {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable `timespec` for the duration of the
        // call, which is all `clock_gettime` requires; the clock id is a
        // constant the libc crate defines for this platform.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    #[cfg(not(unix))]
    fn thread_cpu_time() -> Option<Duration> {
        None
    }

    /// Page faults (minor plus major) this thread has taken so far.
    #[cfg(target_os = "linux")]
    fn thread_page_faults() -> Option<u64> {
        // SAFETY: `rusage` is plain old data, for which all-zero bytes are a
        // valid value.
        let mut usage: libc::rusage = unsafe { core::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable `rusage` for the duration of
        // the call; `RUSAGE_THREAD` is a constant the libc crate defines.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        (rc == 0).then(|| (usage.ru_minflt + usage.ru_majflt) as u64)
    }

    #[cfg(not(target_os = "linux"))]
    fn thread_page_faults() -> Option<u64> {
        None
    }

    #[derive(Default)]
    struct Recorder {
        started: Option<(Instant, Option<Duration>, Option<u64>)>,
        pauses: Vec<Pause>,
    }

    /// Runs the workload on `heap` (whose policy is under test).
    pub fn run(heap: &Heap, s: &Sizes) -> Report {
        let root = {
            let _off = heap.disabled();
            tree(heap, s.inc_depth)
        };
        heap.collect(); // the live tree is old from here on

        let recorder = Rc::new(RefCell::new(Recorder::default()));
        let rec = recorder.clone();
        let callback = heap.add_gc_callback(move |phase, info| {
            let mut rec = rec.borrow_mut();
            match phase {
                GcPhase::Start => rec.started = Some((Instant::now(), thread_cpu_time(), thread_page_faults())),
                GcPhase::Stop => {
                    let (wall, cpu, faults) = match rec.started.take() {
                        Some((t, cpu0, faults0)) => {
                            let wall = t.elapsed();
                            let cpu = cpu0.zip(thread_cpu_time()).map(|(a, b)| b.saturating_sub(a));
                            let faults = faults0.zip(thread_page_faults()).map(|(a, b)| b.saturating_sub(a));
                            (wall, cpu, faults)
                        }
                        None => (info.duration, None, None),
                    };
                    rec.pauses.push(Pause {
                        wall,
                        cpu,
                        generation: info.generation,
                        examined: info.candidates,
                        freed: info.collected,
                        faults,
                    });
                }
            }
        });

        let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
        let mut peak = heap.bytes_in_use();
        let start = Instant::now();
        for i in 0..s.inc_iterations {
            let x = node(heap, None, None);
            let y = node(heap, Some(x), None); // y.left = x, x.up = y
            drop(y);
            if i % s.inc_replace_every == s.inc_replace_every - 1 {
                replace_subtree(heap, &root, s.inc_depth, s.inc_replace_depth, &mut rng);
            }
            if i % super::SAMPLE_EVERY == 0 {
                peak = peak.max(heap.bytes_in_use());
            }
        }
        let wall = start.elapsed();
        peak = peak.max(heap.bytes_in_use());
        heap.remove_gc_callback(callback);
        let arenas_high_water = heap.alloc_stats().arenas_high_water;
        let left_over = heap.collect();

        drop(root);
        heap.collect();
        assert_eq!(heap.object_count(), 0, "everything freed at the end");

        let pauses = recorder.borrow().pauses.clone();
        Report {
            pauses,
            peak_bytes: peak,
            arenas_high_water,
            wall,
            left_over,
        }
    }
}

fn run_incremental(s: &Sizes) {
    use pauses::{max, percentile, total};
    use rcgc::collect::{Generational, Incremental};
    use rcgc::Heap;

    let policies: Vec<(String, Heap)> = vec![
        ("Generational".to_string(), Heap::with_policy(Generational)),
        (
            format!("Incremental::new({INCREMENTAL_WORK})"),
            Heap::with_policy(Incremental::new(INCREMENTAL_WORK)),
        ),
        (
            format!("Incremental::new({INCREMENTAL_WORK}).with_time_budget({TIME_BUDGET:?})"),
            Heap::with_policy(Incremental::new(INCREMENTAL_WORK).with_time_budget(TIME_BUDGET)),
        ),
    ];
    let mut reports = Vec::new();
    for (name, heap) in &policies {
        let report = pauses::run(heap, s);
        reports.push((name.as_str(), report));
    }

    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
    let opt_ms = |d: Option<Duration>| d.map_or("n/a".to_string(), ms);
    let opt_count = |n: Option<u64>| n.map_or("n/a".to_string(), |n| n.to_string());
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}x", a / b)
        } else {
            "n/a".to_string()
        }
    };
    // Total GC time compared on CPU time where measured (preemption on a
    // loaded machine inflates wall pauses unevenly), else on wall time.
    let gc_time = |r: &pauses::Report| r.cpus().map_or_else(|| total(&r.walls()), |c| total(&c));
    let base = &reports[0].1;
    let base_gc = gc_time(base).as_secs_f64();

    let mut rows = Vec::new();
    let mut notes = vec![
        format!(
            "live tree {} objects (with parent handles); {} iterations, each a 2-cycle dropped; a depth-{} subtree ({} objects) replaced every {} iterations",
            (1usize << s.inc_depth) - 1,
            s.inc_iterations,
            s.inc_replace_depth,
            (1usize << (s.inc_depth - s.inc_replace_depth)) - 1,
            s.inc_replace_every
        ),
        "pauses: wall = Start-to-Stop callback; cpu = this thread's CPU time over that span (excludes preemption); \
         \"GC vs Gen\" compares total GC CPU time; \"left over\" = garbage a full collection still found after the workload"
            .to_string(),
    ];
    for (name, r) in &reports {
        let walls = r.walls();
        let cpus = r.cpus();
        rows.push(vec![
            name.to_string(),
            r.pauses.len().to_string(),
            r.collected().to_string(),
            r.left_over.to_string(),
            ms(percentile(&walls, 99.0)),
            ms(max(&walls)),
            opt_ms(cpus.as_deref().map(|c| percentile(c, 99.0))),
            opt_ms(cpus.as_deref().map(max)),
            ms(total(&walls)),
            opt_ms(cpus.as_deref().map(total)),
            ratio(gc_time(r).as_secs_f64(), base_gc),
            ms(r.wall),
            format!("{:.1}", r.peak_bytes as f64 / (1 << 20) as f64),
            ratio(r.peak_bytes as f64, base.peak_bytes as f64),
            r.arenas_high_water.to_string(),
        ]);
    }
    for (name, r) in &reports {
        let p = r.longest();
        notes.push(format!(
            "{name}: longest pause (by CPU) {} ms CPU / {} ms wall: generation {}, {} objects examined, {} freed, {} page faults; pauses over 1 ms: {} by wall, {} by CPU",
            opt_ms(p.cpu),
            ms(p.wall),
            p.generation,
            p.examined,
            p.freed,
            opt_count(p.faults),
            r.pauses.iter().filter(|p| p.wall > TARGET_MAX_PAUSE).count(),
            r.pauses.iter().filter(|p| p.cpu.is_some_and(|c| c > TARGET_MAX_PAUSE)).count(),
        ));
    }
    for (name, r) in reports.iter().skip(1) {
        let mut by_cpu = r.pauses.clone();
        by_cpu.sort_by_key(|p| core::cmp::Reverse(p.cpu.unwrap_or(p.wall)));
        let top: Vec<String> = by_cpu
            .iter()
            .take(5)
            .map(|p| {
                format!(
                    "{} ms ({} examined, {} freed, {} faults)",
                    opt_ms(p.cpu),
                    p.examined,
                    p.freed,
                    opt_count(p.faults)
                )
            })
            .collect();
        notes.push(format!("{name}: five longest pauses by CPU: {}", top.join("; ")));
    }
    for (name, r) in &reports {
        let mut per_object: Vec<f64> = r
            .pauses
            .iter()
            .filter(|p| p.examined >= 1000)
            .map(|p| p.cpu.unwrap_or(p.wall).as_nanos() as f64 / p.examined as f64)
            .collect();
        per_object.sort_by(f64::total_cmp);
        if let (Some(&lo), Some(&hi)) = (per_object.first(), per_object.last()) {
            notes.push(format!(
                "{name}: CPU ns per object examined, over the {} collections examining >= 1,000 objects: min {lo:.0}, median {:.0}, max {hi:.0}",
                per_object.len(),
                per_object[per_object.len() / 2],
            ));
        }
    }
    for (name, r) in reports.iter().skip(1) {
        let time_ratio = gc_time(r).as_secs_f64() / base_gc;
        let peak_ratio = r.peak_bytes as f64 / base.peak_bytes as f64;
        let max_wall = max(&r.walls());
        let max_cpu = r.cpus().map(|c| max(&c));
        notes.push(format!(
            "{name}: max pause {} ms wall: {}, {} ms CPU: {} (target <= 1 ms); GC time {time_ratio:.2}x Generational (target <= {TARGET_GC_TIME_RATIO}x): {}; peak {peak_ratio:.2}x (target <= {TARGET_PEAK_RATIO}x): {}",
            ms(max_wall),
            verdict(max_wall <= TARGET_MAX_PAUSE),
            opt_ms(max_cpu),
            max_cpu.map_or("n/a", |c| verdict(c <= TARGET_MAX_PAUSE)),
            verdict(time_ratio <= TARGET_GC_TIME_RATIO),
            verdict(peak_ratio <= TARGET_PEAK_RATIO),
        ));
    }
    common::print_table(
        "incremental_pauses (rcgc, one run per policy; times in ms)",
        &[
            "policy",
            "collections",
            "collected",
            "left over",
            "p99 wall",
            "max wall",
            "p99 cpu",
            "max cpu",
            "GC wall",
            "GC cpu",
            "GC vs Gen",
            "workload",
            "peak MiB",
            "peak vs Gen",
            "arenas hw",
        ],
        &rows,
        &notes,
    );
}

// ------------------------------------------------------------------ main --

fn main() {
    common::mark_run_start();
    let s = sizes();
    let measuring = common::is_benchmark_mode();
    let load_start = load_average();

    let mut c = Criterion::default().without_plots().configure_from_args();
    for shape in Shape::ALL {
        bench_shape(&mut c, shape, s);
    }
    let gen0_interleaved = bench_gen0(&mut c, s);
    c.final_summary();

    if !measuring {
        // `cargo test --benches`: smoke-run part 2 at tiny sizes, no output.
        // (`--profile-time` runs only what the filter selects, at full size.)
        let profiling = std::env::args().any(|a| a.starts_with("--profile-time"));
        if !profiling {
            let heap = rcgc::Heap::with_policy(rcgc::collect::Incremental::new(INCREMENTAL_WORK));
            let _ = pauses::run(&heap, &s);
        }
        return;
    }

    let any_shape = Shape::ALL.iter().any(|shape| common::filter_selects(&shape.group()));
    let cpython = if any_shape { run_cpython(&s) } else { HashMap::new() };
    let interleaved: HashMap<Shape, [f64; 3]> = Shape::ALL
        .into_iter()
        .filter(|shape| common::filter_selects(&shape.group()))
        .map(|shape| (shape, interleaved_shape(shape, &s)))
        .collect();
    let load_after_part1 = load_average();

    for shape in Shape::ALL {
        let garbage = shape.garbage(&s);
        let live = shape.live(&s);
        let units: Vec<(&str, usize)> = if live == 0 {
            vec![("freed object", garbage)]
        } else {
            vec![("garbage object", garbage), ("object in heap", garbage + live)]
        };
        print_shape_table(
            &shape.group(),
            &units,
            cpython.get(shape.name()).copied(),
            interleaved.get(&shape).copied(),
        );
    }
    print_gen0_table(&s, gen0_interleaved);

    if common::filter_selects("incremental_pauses") {
        run_incremental(&s);
    }
    println!();
    println!(
        "load average (1, 5, 15 min): at start {load_start}; after part 1 {load_after_part1}; at end {}",
        load_average()
    );
}
