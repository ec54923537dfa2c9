//! Allocation churn: rcgc's pool allocator against the system allocator,
//! mimalloc and a bump arena, side by side in one binary.
//!
//! # What it measures
//!
//! Each group keeps a sliding window of the 1,000 most recent blocks alive (a
//! ring buffer of 1,000 slots): every step allocates one new block, writes to
//! it (so the memory is touched), and frees the oldest one. One *op* is one
//! allocation plus the matching free, and criterion's "time per iteration" is
//! nanoseconds per op (`iter_custom`: the warm window is filled before the
//! clock starts and freed after it stops).
//!
//! * `churn32`: every block is a 32-byte payload (`[u64; 4]`, all four words
//!   written).
//! * `churn_mixed`: sizes from 8 to 512 bytes, align 8, first 8 bytes written.
//!   The sizes are a fixed xorshift64 sequence of 4,096 entries from a fixed
//!   seed, reused cyclically: every contender sees the same sequence.
//!
//! Contenders (criterion function names):
//!
//! * `rcgc`: [`rcgc::alloc::Allocator`] (`alloc` / `dealloc` with the same
//!   `Layout`).
//! * `Box`: the system allocator (glibc malloc): `Box::new([i; 4])` and drop;
//!   for mixed sizes `std::alloc::alloc` / `dealloc` (this binary sets no
//!   `#[global_allocator]`, so that is `System`).
//! * `Box+mimalloc`: the same allocations made through `mimalloc::MiMalloc`'s
//!   `GlobalAlloc` impl called directly. That is exactly what `Box` does when
//!   `MiMalloc` is the `#[global_allocator]`, and calling it directly lets it
//!   sit in the same binary as the system-malloc `Box`.
//! * `bumpalo`: `Bump::alloc` / `Bump::alloc_layout` with no individual
//!   frees, and `Bump::reset` every 1,000 allocations: the floor for what an
//!   allocator can cost.
//!
//! After criterion's own output the binary prints one table per group: mean
//! ns/op per contender (criterion's mean point estimate, read back from
//! `target/criterion/<group>/<function>/new/estimates.json`) and its ratio to
//! `Box` (criterion's `time:` lines show its slope estimate instead, so they
//! can differ a little from the table). If `python3` is on `PATH`, the `churn32` table also gets a reference
//! row from CPython: the same ring of 1,000 objects of a class with
//! `__slots__ = ('a', 'b')`, 2,000,000 ops, timed in a separate process. That
//! figure includes the interpreter's own loop overhead, so it is context, not
//! a like-for-like contender.
//!
//! # Running
//!
//! ```text
//! cargo bench --bench churn
//! cargo bench --bench churn -- churn32      # one group only
//! ```
//!
//! Each group takes 1 s of warm-up and 3 s of measurement (20 samples) per
//! contender, and plots are off (they would double the run time; the
//! `estimates.json` files are still written), so the whole run takes about
//! 40 s. Criterion's usual flags (`--measurement-time`, `--sample-size`,
//! `--save-baseline`, ...) still apply after `--`.
//!
//! # Reference figures and target
//!
//! On a 2-core VM, `churn32`, ns per allocation: bumpalo 3.3, Box+mimalloc
//! 11.0, Box (glibc) 15.7.
//!
//! Target for rcgc: at least 1.5x faster than `Box` (≤ 0.67x of its time,
//! about 10.5 ns on that VM) and within 1.1x of `Box+mimalloc` (about 12.1 ns).

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bumpalo::Bump;
use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use rcgc::alloc::Allocator;

/// Number of blocks kept alive: the ring buffer's length.
const WINDOW: usize = 1000;

/// Length of the precomputed size sequence for `churn_mixed`.
const MIXED_SEQ_LEN: usize = 4096;

/// Seed of the xorshift64 generator for `churn_mixed`'s sizes.
const MIXED_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Smallest and largest `churn_mixed` block sizes, in bytes.
const MIXED_MIN: usize = 8;
const MIXED_MAX: usize = 512;

/// Criterion function names, in table order; `Box` is the baseline.
const CONTENDERS: [&str; 4] = ["rcgc", "Box", "Box+mimalloc", "bumpalo"];
const BASELINE: &str = "Box";

/// The `churn32` payload.
type Payload = [u64; 4];
const PAYLOAD: Layout = Layout::new::<Payload>();

/// CPython reference for `churn32`: same ring, 2,000,000 ops, prints ns/op.
const CPYTHON_CHURN32: &str = r#"
import time

class Obj:
    __slots__ = ('a', 'b')

def churn(n, w=1000):
    ring = [Obj() for _ in range(w)]
    j = 0
    t0 = time.perf_counter_ns()
    for i in range(n):
        o = Obj()
        o.a = i
        o.b = i
        ring[j] = o
        j += 1
        if j == w:
            j = 0
    return (time.perf_counter_ns() - t0) / n

churn(200_000)  # warm-up
print(churn(2_000_000))
"#;

/// An allocator driven through raw `alloc`/`dealloc` calls.
trait RawHeap {
    /// Allocates a block for `layout` (non-zero size); aborts on failure.
    fn raw_alloc(&self, layout: Layout) -> NonNull<u8>;

    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` was returned by `self.raw_alloc(layout)` with this same `layout`
    /// and has not been freed since.
    unsafe fn raw_dealloc(&self, ptr: NonNull<u8>, layout: Layout);
}

impl RawHeap for Allocator {
    #[inline(always)]
    fn raw_alloc(&self, layout: Layout) -> NonNull<u8> {
        match self.alloc(layout) {
            Ok(ptr) => ptr,
            Err(_) => std::alloc::handle_alloc_error(layout),
        }
    }

    #[inline(always)]
    unsafe fn raw_dealloc(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: our caller guarantees `ptr` came from `self.alloc(layout)`
        // with this same layout and is still live, which is `dealloc`'s contract.
        unsafe { self.dealloc(ptr, layout) }
    }
}

/// The system allocator through `std::alloc::{alloc, dealloc}` (the global
/// allocator, which this binary leaves as `System`, i.e. glibc malloc).
struct SystemHeap;

impl RawHeap for SystemHeap {
    #[inline(always)]
    fn raw_alloc(&self, layout: Layout) -> NonNull<u8> {
        // SAFETY: every layout in this file has a non-zero size (32 bytes, or
        // 8..=512 for the mixed sizes), as `alloc` requires.
        let ptr = unsafe { std::alloc::alloc(layout) };
        NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
    }

    #[inline(always)]
    unsafe fn raw_dealloc(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: our caller guarantees `ptr` came from `std::alloc::alloc`
        // with this same layout (see `raw_alloc`) and is still live.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
    }
}

/// mimalloc through its `GlobalAlloc` impl, called directly: exactly the calls
/// `Box` makes when `MiMalloc` is the `#[global_allocator]`, without making it
/// the global allocator of this binary (which would also move `Box` to it).
struct MimallocHeap;

impl RawHeap for MimallocHeap {
    #[inline(always)]
    fn raw_alloc(&self, layout: Layout) -> NonNull<u8> {
        // SAFETY: every layout in this file has a non-zero size, as
        // `GlobalAlloc::alloc` requires.
        let ptr = unsafe { GlobalAlloc::alloc(&MiMalloc, layout) };
        NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
    }

    #[inline(always)]
    unsafe fn raw_dealloc(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: our caller guarantees `ptr` came from
        // `GlobalAlloc::alloc(&MiMalloc, layout)` with this same layout (see
        // `raw_alloc`) and is still live.
        unsafe { GlobalAlloc::dealloc(&MiMalloc, ptr.as_ptr(), layout) }
    }
}

/// Advances the ring index.
#[inline(always)]
fn next_slot(slot: usize) -> usize {
    if slot + 1 == WINDOW {
        0
    } else {
        slot + 1
    }
}

// ---------------------------------------------------------------- churn32 --

/// Allocates and fills one `churn32` payload.
#[inline(always)]
fn alloc32<H: RawHeap>(heap: &H, i: u64) -> NonNull<Payload> {
    let ptr = heap.raw_alloc(PAYLOAD).cast::<Payload>();
    // SAFETY: `ptr` is a fresh, live allocation of `PAYLOAD`, i.e. of the size
    // and alignment of `Payload`, so it is valid for writing one `Payload`.
    unsafe { ptr.as_ptr().write([black_box(i); 4]) };
    black_box(ptr)
}

/// `churn32` through a [`RawHeap`]: returns the time taken by `iters` ops.
fn churn32_raw<H: RawHeap>(heap: &H, iters: u64) -> Duration {
    let mut ring: Vec<NonNull<Payload>> = (0..WINDOW as u64).map(|i| alloc32(heap, i)).collect();
    let mut slot = 0;

    let start = Instant::now();
    for i in 0..iters {
        let new = alloc32(heap, i);
        let old = std::mem::replace(&mut ring[slot], new);
        // SAFETY: `old` came from `alloc32`, i.e. `heap.raw_alloc(PAYLOAD)`, and
        // has just left the ring, which held the only copy: it is freed once.
        unsafe { heap.raw_dealloc(old.cast(), PAYLOAD) };
        slot = next_slot(slot);
    }
    let elapsed = start.elapsed();

    for ptr in ring {
        // SAFETY: each pointer left in the ring came from
        // `heap.raw_alloc(PAYLOAD)` and is freed exactly once, here.
        unsafe { heap.raw_dealloc(ptr.cast(), PAYLOAD) };
    }
    elapsed
}

/// `churn32` with `Box::new` and drop (system malloc).
fn churn32_box(iters: u64) -> Duration {
    let mut ring: Vec<Box<Payload>> = (0..WINDOW as u64).map(|i| black_box(Box::new([i; 4]))).collect();
    let mut slot = 0;

    let start = Instant::now();
    for i in 0..iters {
        // The new box is allocated first, then the old one is dropped.
        ring[slot] = black_box(Box::new([black_box(i); 4]));
        slot = next_slot(slot);
    }
    let elapsed = start.elapsed();

    drop(black_box(ring));
    elapsed
}

/// `churn32` with bumpalo: no frees, `reset` every `WINDOW` allocations.
fn churn32_bump(bump: &mut Bump, iters: u64) -> Duration {
    // Grow the arena until one chunk holds a whole window (`reset` keeps only
    // the last chunk), so the timed loop does not allocate chunks.
    for _ in 0..3 {
        for i in 0..WINDOW as u64 {
            black_box(bump.alloc([i; 4]));
        }
        bump.reset();
    }
    let mut live = 0;

    let start = Instant::now();
    for i in 0..iters {
        black_box(bump.alloc([black_box(i); 4]));
        live += 1;
        if live == WINDOW {
            bump.reset();
            live = 0;
        }
    }
    let elapsed = start.elapsed();

    bump.reset();
    elapsed
}

fn bench_churn32(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn32");
    group.throughput(Throughput::Elements(1));

    let rcgc = Allocator::new();
    group.bench_function("rcgc", |b| b.iter_custom(|iters| churn32_raw(&rcgc, iters)));
    group.bench_function("Box", |b| b.iter_custom(churn32_box));
    group.bench_function("Box+mimalloc", |b| {
        b.iter_custom(|iters| churn32_raw(&MimallocHeap, iters))
    });
    let mut bump = Bump::new();
    group.bench_function("bumpalo", |b| b.iter_custom(|iters| churn32_bump(&mut bump, iters)));

    group.finish();
}

// ------------------------------------------------------------ churn_mixed --

/// The fixed size sequence for `churn_mixed`: xorshift64 from `MIXED_SEED`,
/// sizes uniform-ish in `MIXED_MIN..=MIXED_MAX`, align 8.
fn mixed_layouts() -> Box<[Layout; MIXED_SEQ_LEN]> {
    let mut x = MIXED_SEED;
    let layouts: Vec<Layout> = (0..MIXED_SEQ_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let span = (MIXED_MAX - MIXED_MIN + 1) as u64;
            let size = MIXED_MIN + (x % span) as usize;
            Layout::from_size_align(size, 8).expect("valid layout")
        })
        .collect();
    layouts.into_boxed_slice().try_into().expect("MIXED_SEQ_LEN layouts")
}

/// Allocates one `churn_mixed` block and writes its first 8 bytes.
#[inline(always)]
fn alloc_mixed<H: RawHeap>(heap: &H, layout: Layout, k: u64) -> NonNull<u8> {
    let ptr = heap.raw_alloc(layout);
    // SAFETY: `ptr` is a fresh, live allocation of `layout`, whose size is at
    // least 8 and alignment 8 (`mixed_layouts`), so it is valid and aligned
    // for writing one `u64` at its start.
    unsafe { ptr.cast::<u64>().as_ptr().write(black_box(k)) };
    black_box(ptr)
}

/// `churn_mixed` through a [`RawHeap`]: returns the time taken by `iters` ops.
fn churn_mixed_raw<H: RawHeap>(heap: &H, layouts: &[Layout; MIXED_SEQ_LEN], iters: u64) -> Duration {
    let mut ring: Vec<(NonNull<u8>, Layout)> = (0..WINDOW)
        .map(|k| {
            let layout = layouts[k % MIXED_SEQ_LEN];
            (alloc_mixed(heap, layout, k as u64), layout)
        })
        .collect();
    let mut slot = 0;

    let start = Instant::now();
    for k in WINDOW as u64..WINDOW as u64 + iters {
        let layout = layouts[k as usize % MIXED_SEQ_LEN];
        let new = (alloc_mixed(heap, layout, k), layout);
        let (old, old_layout) = std::mem::replace(&mut ring[slot], new);
        // SAFETY: `old` came from `heap.raw_alloc(old_layout)` (the ring keeps
        // each block's layout beside it) and has just left the ring, which held
        // the only copy: it is freed once.
        unsafe { heap.raw_dealloc(old, old_layout) };
        slot = next_slot(slot);
    }
    let elapsed = start.elapsed();

    for (ptr, layout) in ring {
        // SAFETY: each block left in the ring came from `heap.raw_alloc(layout)`
        // with the layout stored beside it, and is freed exactly once, here.
        unsafe { heap.raw_dealloc(ptr, layout) };
    }
    elapsed
}

/// `churn_mixed` with bumpalo: no frees, `reset` every `WINDOW` allocations.
fn churn_mixed_bump(bump: &mut Bump, layouts: &[Layout; MIXED_SEQ_LEN], iters: u64) -> Duration {
    let mut k = 0;
    // Grow the arena until one chunk holds a whole window, as in `churn32_bump`.
    for _ in 0..3 {
        for _ in 0..WINDOW {
            black_box(bump.alloc_layout(layouts[k % MIXED_SEQ_LEN]));
            k += 1;
        }
        bump.reset();
    }
    let mut live = 0;

    let start = Instant::now();
    for _ in 0..iters {
        let ptr = bump.alloc_layout(layouts[k % MIXED_SEQ_LEN]);
        // SAFETY: `alloc_layout` returned a fresh block of at least 8 bytes,
        // aligned to 8 (`mixed_layouts`), valid until the next `reset`.
        unsafe { ptr.cast::<u64>().as_ptr().write(black_box(k as u64)) };
        black_box(ptr);
        k += 1;
        live += 1;
        if live == WINDOW {
            bump.reset();
            live = 0;
        }
    }
    let elapsed = start.elapsed();

    bump.reset();
    elapsed
}

fn bench_churn_mixed(c: &mut Criterion, layouts: &[Layout; MIXED_SEQ_LEN]) {
    let mut group = c.benchmark_group("churn_mixed");
    group.throughput(Throughput::Elements(1));

    let rcgc = Allocator::new();
    group.bench_function("rcgc", |b| {
        b.iter_custom(|iters| churn_mixed_raw(&rcgc, layouts, iters))
    });
    group.bench_function("Box", |b| {
        b.iter_custom(|iters| churn_mixed_raw(&SystemHeap, layouts, iters))
    });
    group.bench_function("Box+mimalloc", |b| {
        b.iter_custom(|iters| churn_mixed_raw(&MimallocHeap, layouts, iters))
    });
    let mut bump = Bump::new();
    group.bench_function("bumpalo", |b| {
        b.iter_custom(|iters| churn_mixed_bump(&mut bump, layouts, iters))
    });

    group.finish();
}

fn main() {
    common::mark_run_start();
    let layouts = mixed_layouts();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .without_plots()
        .configure_from_args();
    bench_churn32(&mut c);
    bench_churn_mixed(&mut c, &layouts);
    c.final_summary();

    if !common::is_benchmark_mode() {
        return;
    }
    let mut extras = Vec::new();
    if let Some(ns) = common::run_python_ns(CPYTHON_CHURN32) {
        extras.push(("python3 (CPython, separate process)", ns));
    }
    common::print_ratio_table_with_extras("churn32", BASELINE, &CONTENDERS, &extras);
    common::print_ratio_table("churn_mixed", BASELINE, &CONTENDERS);
}
