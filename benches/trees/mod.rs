//! The binary-trees program shared by the `binary_trees` and
//! `binary_trees_mimalloc` bench binaries: node counts, the [`Trees`] trait
//! every pointer-based contender implements, the program driver, the `Rc`
//! contender (the one both binaries run) and the criterion setup, so the two
//! binaries measure exactly the same thing.

// Each bench binary compiles its own copy of this module and uses only part of
// it; the rest would otherwise warn as dead code.
#![allow(dead_code)]

use std::hint::black_box;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

use crate::common;

/// The depth of the smallest trees the program builds (the Benchmarks Game's).
pub const MIN_DEPTH: u32 = 4;

/// Maximum depth of the criterion runs.
pub const DEPTH: u32 = 18;

/// Maximum depth of the single timed run per contender.
pub const BIG_DEPTH: u32 = 20;

/// Maximum depth used when criterion only smoke-tests the routines
/// (`cargo test --benches`, usually an unoptimised build).
pub const SMOKE_DEPTH: u32 = 6;

/// Criterion group of the depth-18 runs.
pub const GROUP: &str = "binary_trees_18";

/// Name of the depth-20 single-run table (and of its result directory).
pub const BIG_GROUP: &str = "binary_trees_20";

/// Criterion function name of the `Rc` contender in the mimalloc binary.
pub const RC_MIMALLOC: &str = "Rc+mimalloc";

/// A whole program run: takes the maximum depth, returns the nodes checked.
pub type Program = fn(u32) -> u64;

/// Nodes in a complete tree of `depth` (a depth-0 tree is one leaf).
pub const fn tree_nodes(depth: u32) -> u64 {
    (1 << (depth + 1)) - 1
}

/// Number of trees of depth `depth` the program builds in its main loop.
pub const fn iterations(max_depth: u32, depth: u32) -> u64 {
    1 << (max_depth - depth + MIN_DEPTH)
}

/// Nodes one whole program run allocates (and `check`s) for `max_depth`:
/// the stretch tree, the long-lived tree and every short-lived tree.
pub const fn node_count(max_depth: u32) -> u64 {
    let mut nodes = tree_nodes(max_depth + 1) + tree_nodes(max_depth);
    let mut depth = MIN_DEPTH;
    while depth <= max_depth {
        nodes += iterations(max_depth, depth) * tree_nodes(depth);
        depth += 2;
    }
    nodes
}

/// The maximum depth for criterion's runs: [`DEPTH`] when measuring or
/// profiling (`--profile-time`), [`SMOKE_DEPTH`] when criterion only checks
/// that the routines run (`cargo test --benches`, `--test`).
pub fn criterion_depth() -> u32 {
    let profiling = std::env::args().any(|a| a == "--profile-time" || a.starts_with("--profile-time="));
    if common::is_benchmark_mode() || profiling {
        DEPTH
    } else {
        SMOKE_DEPTH
    }
}

/// A contender whose trees are built from individually allocated,
/// individually freed nodes (everything but bumpalo).
pub trait Trees {
    /// Per-run state that owns the nodes (an `rcgc::Heap`), or `()`.
    type Ctx;
    /// A handle to a tree's root.
    type Tree;

    /// Creates the state for one program run.
    fn context() -> Self::Ctx;

    /// Builds a complete tree of `depth` (Benchmarks Game `bottom_up_tree`).
    fn build(ctx: &Self::Ctx, depth: u32) -> Self::Tree;

    /// Counts the tree's nodes by walking it (Benchmarks Game `check`).
    fn check(tree: &Self::Tree) -> u64;
}

/// One whole binary-trees program run for `max_depth`; returns the sum of all
/// `check`s, i.e. the number of nodes allocated (see [`node_count`]).
///
/// Stretch tree of `max_depth + 1` (built, checked, dropped), one long-lived
/// tree of `max_depth`, then for `d = 4, 6, .., max_depth`:
/// `2^(max_depth - d + 4)` trees of depth `d`, each checked and dropped at
/// once; finally the long-lived tree is checked. The state from
/// [`Trees::context`] is created at the start and dropped at the end, inside
/// the run.
pub fn program<T: Trees>(max_depth: u32) -> u64 {
    let ctx = T::context();
    let mut total = 0;

    let stretch = T::build(&ctx, max_depth + 1);
    total += T::check(black_box(&stretch));
    drop(stretch);

    let long_lived = T::build(&ctx, max_depth);

    let mut depth = MIN_DEPTH;
    while depth <= max_depth {
        for _ in 0..iterations(max_depth, depth) {
            let tree = T::build(&ctx, depth);
            total += T::check(black_box(&tree));
        }
        depth += 2;
    }

    total += T::check(black_box(&long_lived));
    drop(long_lived);
    drop(ctx);
    total
}

/// Times `runs` whole program runs (`iter_custom`'s routine); checks each
/// run's node count.
pub fn time_runs(runs: u64, max_depth: u32, program: Program) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        let nodes = program(black_box(max_depth));
        assert_eq!(nodes, node_count(max_depth), "wrong node count");
    }
    start.elapsed()
}

/// One timed run of the program at `max_depth`, in ns per node.
pub fn single_run_ns_per_node(max_depth: u32, program: Program) -> f64 {
    time_runs(1, max_depth, program).as_nanos() as f64 / node_count(max_depth) as f64
}

/// The `binary_trees_18` group, configured the same in both binaries: one
/// criterion iteration is one whole program run, sampled flat (every sample
/// is one run), 10 samples after one warm-up run. Plots are off via
/// [`criterion_config`].
pub fn tree_group(c: &mut Criterion) -> BenchmarkGroup<'_, WallTime> {
    let mut group = c.benchmark_group(GROUP);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        // Criterion's warm-up repeats (doubling) until this much time has
        // passed; one run is already longer, so the warm-up is one run.
        .warm_up_time(Duration::from_millis(1))
        // Shorter than 10 runs, so each sample is a single run. Criterion
        // warns that it cannot complete 10 samples in this time: expected.
        .measurement_time(Duration::from_secs(1));
    group
}

/// Registers contender `name` running `program` at [`criterion_depth`].
pub fn bench_program(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, program: Program) {
    let depth = criterion_depth();
    group.bench_function(name, |b| b.iter_custom(|runs| time_runs(runs, depth, program)));
}

/// The criterion configuration both binaries start from.
pub fn criterion_config() -> Criterion {
    Criterion::default().without_plots().configure_from_args()
}

/// Where the mimalloc binary stores its depth-20 single run (ns per node),
/// for the main binary's table.
pub fn big_result_path(name: &str) -> PathBuf {
    common::criterion_dir()
        .join(common::criterion_dir_name(BIG_GROUP))
        .join(common::criterion_dir_name(name))
        .join("single_run_ns_per_node.txt")
}

/// Stores a depth-20 single-run result (see [`big_result_path`]).
pub fn save_big_result(name: &str, ns_per_node: f64) {
    let path = big_result_path(name);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(err) = std::fs::write(&path, format!("{ns_per_node}\n")) {
        eprintln!("could not write {}: {err}", path.display());
    }
}

/// A stored depth-20 single-run result and when it was written.
pub fn load_big_result(name: &str) -> Option<(f64, Option<SystemTime>)> {
    let path = big_result_path(name);
    let text = std::fs::read_to_string(&path).ok()?;
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    Some((text.trim().parse().ok()?, modified))
}

/// When criterion last wrote `group/function`'s estimate.
pub fn estimate_written(group: &str, function: &str) -> Option<SystemTime> {
    std::fs::metadata(common::estimates_path(group, function))
        .and_then(|m| m.modified())
        .ok()
}

/// "3 min ago"-style age of a file timestamp.
pub fn age(written: Option<SystemTime>) -> String {
    match written.and_then(|t| SystemTime::now().duration_since(t).ok()) {
        Some(d) if d.as_secs() < 120 => format!("{} s ago", d.as_secs()),
        Some(d) if d.as_secs() < 2 * 3600 => format!("{} min ago", d.as_secs() / 60),
        Some(d) => format!("{} h ago", d.as_secs() / 3600),
        None => "at an unknown time".to_string(),
    }
}

// ------------------------------------------------------------------- Rc --

/// `std::rc::Rc` nodes: the baseline, run by both binaries (with the global
/// allocator each one has: glibc malloc, or mimalloc).
pub struct RcTrees;

/// A node of the `Rc` contender.
pub struct RcNode {
    left: Option<Rc<RcNode>>,
    right: Option<Rc<RcNode>>,
}

impl Trees for RcTrees {
    type Ctx = ();
    type Tree = Rc<RcNode>;

    fn context() {}

    fn build(_: &(), depth: u32) -> Rc<RcNode> {
        if depth > 0 {
            Rc::new(RcNode {
                left: Some(Self::build(&(), depth - 1)),
                right: Some(Self::build(&(), depth - 1)),
            })
        } else {
            Rc::new(RcNode {
                left: None,
                right: None,
            })
        }
    }

    fn check(tree: &Rc<RcNode>) -> u64 {
        match (&tree.left, &tree.right) {
            (Some(left), Some(right)) => 1 + Self::check(left) + Self::check(right),
            _ => 1,
        }
    }
}
