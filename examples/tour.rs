//! A tour of rcgc. For now it shows the bottom layer: the pool allocator
//! serving a workload of small objects, its statistics table (like CPython's
//! `sys._debugmallocstats()`), an empty arena going back to the OS, and the
//! memory limit.
//!
//! Run it with `cargo run --example tour`.

use core::alloc::Layout;

use rcgc::alloc::Allocator;

fn main() -> Result<(), rcgc::alloc::AllocError> {
    let allocator = Allocator::new();

    // A script's worth of small objects of mixed sizes.
    let mut live = Vec::new();
    for i in 0..100_000usize {
        let layout = Layout::from_size_align(8 + (i * 24) % 500, 8).expect("valid layout");
        live.push((allocator.alloc(layout)?, layout));
    }
    // Half of them die.
    for (block, layout) in live.drain(..).step_by(2) {
        // SAFETY: each block came from this allocator with this layout.
        unsafe { allocator.dealloc(block, layout) };
    }
    println!(
        "== after allocating 100,000 objects and freeing half ==\n{}",
        allocator.stats()
    );

    // The rest die: arenas go back to the OS (one spare is kept).
    for (block, layout) in live.drain(..) {
        // SAFETY: as above.
        unsafe { allocator.dealloc(block, layout) };
    }
    let s = allocator.stats();
    println!(
        "== after freeing everything ==\narenas: {} mapped at the peak, {} returned to the OS, {} kept as a spare\n",
        s.arenas_high_water, s.arenas_freed_total, s.arenas_current
    );

    // A memory budget: going over it is an error, never an abort.
    allocator.set_limit(Some(1024 * 1024));
    let layout = Layout::new::<[u64; 4]>();
    let mut kept = Vec::new();
    let err = loop {
        match allocator.alloc(layout) {
            Ok(block) => kept.push(block),
            Err(err) => break err,
        }
    };
    println!(
        "== with a 1 MiB limit ==\n{} blocks of 32 bytes fit, then: {err}",
        kept.len()
    );
    for block in kept {
        // SAFETY: as above.
        unsafe { allocator.dealloc(block, layout) };
    }
    Ok(())
}
