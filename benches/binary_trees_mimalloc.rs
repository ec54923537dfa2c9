//! The `Rc+mimalloc` contender of the `binary_trees` bench: the same `Rc`
//! binary-trees program, in a binary whose global allocator is mimalloc.
//!
//! A global allocator is per binary, so this contender cannot live in
//! `benches/binary_trees.rs` (whose `Box` and `Rc` contenders use glibc
//! malloc). This binary writes its criterion estimate under the same group
//! and a function name of its own (`binary_trees_18/Rc+mimalloc`), and its
//! depth-20 single run to `target/criterion/binary_trees_20/Rc+mimalloc/`,
//! where the `binary_trees` binary reads both for its tables. So run it first:
//!
//! ```text
//! cargo bench --bench binary_trees_mimalloc && cargo bench --bench binary_trees
//! ```
//!
//! See `benches/binary_trees.rs` for what is measured and the reference
//! figures. This binary takes about a minute.

mod common;
mod trees;

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    common::mark_run_start();

    let mut c = trees::criterion_config();
    let mut group = trees::tree_group(&mut c);
    trees::bench_program(&mut group, trees::RC_MIMALLOC, trees::program::<trees::RcTrees>);
    group.finish();
    c.final_summary();

    if !common::is_benchmark_mode() {
        return;
    }
    if common::filter_selects(trees::BIG_GROUP) {
        let ns = trees::single_run_ns_per_node(trees::BIG_DEPTH, trees::program::<trees::RcTrees>);
        trees::save_big_result(trees::RC_MIMALLOC, ns);
        println!(
            "\n{} (single run, depth {}): {} ns/node",
            trees::RC_MIMALLOC,
            trees::BIG_DEPTH,
            common::format_ns(ns)
        );
    }
    if let Some(est) = common::read_estimate(trees::GROUP, trees::RC_MIMALLOC) {
        println!(
            "{} (criterion, depth {}): {} ns/node",
            trees::RC_MIMALLOC,
            trees::DEPTH,
            common::format_ns(est.mean_ns / trees::node_count(trees::DEPTH) as f64)
        );
    }
}
