//! Behaviour of the pool allocator (`rcgc::alloc`): size classes, reuse,
//! arenas returned to the system, the byte limit, large blocks and stats.

use core::alloc::Layout;
use core::ptr::NonNull;

use proptest::prelude::*;
use rcgc::alloc::{AllocErrorKind, Allocator, SizeClass, ARENA_SIZE, NUM_SIZE_CLASSES, POOLS_PER_ARENA, POOL_SIZE};

fn fill(block: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: callers pass a live block of at least `len` bytes.
    unsafe { block.as_ptr().write_bytes(byte, len) }
}

/// Whether the block still holds `byte` everywhere (under Miri, where every
/// byte costs, only at both ends: Miri checks the bounds of every access anyway).
fn holds(block: NonNull<u8>, len: usize, byte: u8) -> bool {
    // SAFETY: callers pass a live block of at least `len` initialised bytes.
    let bytes = unsafe { core::slice::from_raw_parts(block.as_ptr(), len) };
    if cfg!(miri) && len > 16 {
        bytes[..8].iter().chain(&bytes[len - 8..]).all(|&b| b == byte)
    } else {
        bytes.iter().all(|&b| b == byte)
    }
}

/// Sizes to try: all of 1..=512, or under Miri a sample around the class boundaries.
fn sizes() -> Vec<usize> {
    if cfg!(miri) {
        (1..=512).filter(|s| s % 37 == 0 || s % 128 <= 1 || *s <= 17).collect()
    } else {
        (1..=512).collect()
    }
}

/// Blocks of one 512-byte class needed to fill `arenas` arenas exactly.
fn blocks_for_arenas(arenas: usize) -> usize {
    let class = SizeClass::for_layout(Layout::from_size_align(512, 8).unwrap()).unwrap();
    arenas * POOLS_PER_ARENA * class.blocks_per_pool()
}

#[test]
fn every_size_class_round_trips() {
    let a = Allocator::new();
    for size in sizes() {
        for align in [1, 2, 4, 8, 16] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let block = a.alloc(layout).unwrap();
            assert_eq!(block.as_ptr() as usize % align, 0, "size {size} align {align}");
            assert!(a.usable_size(layout) >= size);
            fill(block, if cfg!(miri) { size.min(16) } else { size }, size as u8);
            assert!(holds(block, if cfg!(miri) { size.min(16) } else { size }, size as u8));
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(block, layout) };
        }
    }
    assert_eq!(a.bytes_in_use(), 0);
}

#[test]
fn forty_byte_objects_cost_forty_bytes() {
    let a = Allocator::new();
    assert_eq!(a.usable_size(Layout::from_size_align(40, 8).unwrap()), 40);
    assert_eq!(a.usable_size(Layout::from_size_align(40, 16).unwrap()), 48);
    assert_eq!(a.usable_size(Layout::from_size_align(24, 8).unwrap()), 24);
}

#[test]
fn freed_blocks_are_reused() {
    let a = Allocator::new();
    let layout = Layout::new::<[u64; 4]>();
    let first = a.alloc(layout).unwrap();
    let _keep = a.alloc(layout).unwrap();
    // SAFETY: allocated above with this layout.
    unsafe { a.dealloc(first, layout) };
    let again = a.alloc(layout).unwrap();
    assert_eq!(first, again, "the most recently freed block is handed out next");
    assert_eq!(a.stats().arenas_allocated_total, 1);
}

#[test]
fn zero_size_requests_get_unique_blocks() {
    let a = Allocator::new();
    let layout = Layout::from_size_align(0, 1).unwrap();
    let x = a.alloc(layout).unwrap();
    let y = a.alloc(layout).unwrap();
    assert_ne!(x, y);
    assert_eq!(a.bytes_in_use(), 16);
    // SAFETY: allocated above with this layout.
    unsafe {
        a.dealloc(x, layout);
        a.dealloc(y, layout);
    }
    assert_eq!(a.bytes_in_use(), 0);
}

#[test]
fn empty_arenas_are_returned_keeping_one_spare() {
    let a = Allocator::new();
    let layout = Layout::from_size_align(512, 8).unwrap();
    let arenas = if cfg!(miri) { 2 } else { 3 };
    let blocks: Vec<_> = (0..blocks_for_arenas(arenas))
        .map(|_| a.alloc(layout).unwrap())
        .collect();
    let s = a.stats();
    assert_eq!(s.arenas_current, arenas);
    assert_eq!(
        s.unused_pools, 0,
        "arenas are filled completely before a new one is mapped"
    );
    for block in blocks {
        // SAFETY: allocated above with this layout.
        unsafe { a.dealloc(block, layout) };
    }
    let s = a.stats();
    assert_eq!(s.arenas_current, 1, "one empty arena is kept as a spare");
    assert_eq!(s.arenas_freed_total, arenas - 1);
    assert_eq!(s.arenas_high_water, arenas);
    assert_eq!(a.trim(), 1);
    let s = a.stats();
    assert_eq!((s.arenas_current, s.bytes_reserved), (0, 0));
    // The allocator keeps working after trimming everything.
    let block = a.alloc(layout).unwrap();
    // SAFETY: allocated above with this layout.
    unsafe { a.dealloc(block, layout) };
}

/// Freeing a structure as large as the one still live keeps its arenas as
/// spares, so rebuilding it maps nothing new; once everything is freed, one
/// spare is left.
#[test]
fn empty_arenas_are_kept_as_spares_while_no_more_than_those_in_use() {
    let a = Allocator::new();
    let layout = Layout::from_size_align(512, 8).unwrap();
    let k = if cfg!(miri) { 1 } else { 3 };
    let live: Vec<_> = (0..blocks_for_arenas(k)).map(|_| a.alloc(layout).unwrap()).collect();
    for round in 0..3 {
        let temp: Vec<_> = (0..blocks_for_arenas(k)).map(|_| a.alloc(layout).unwrap()).collect();
        assert_eq!(a.stats().arenas_current, 2 * k);
        for block in temp {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(block, layout) };
        }
        let s = a.stats();
        assert_eq!(
            s.arenas_current,
            2 * k,
            "round {round}: {k} spares kept for {k} arenas in use"
        );
        assert_eq!((s.arenas_freed_total, s.arenas_high_water), (0, 2 * k), "round {round}");
    }
    for block in live {
        // SAFETY: allocated above with this layout.
        unsafe { a.dealloc(block, layout) };
    }
    let s = a.stats();
    assert_eq!(s.arenas_current, 1, "with nothing in use, one spare is kept");
    assert_eq!(s.arenas_freed_total, 2 * k - 1);
    assert_eq!(a.trim(), 1);
}

#[test]
fn new_pools_come_from_the_busiest_arena() {
    let a = Allocator::new();
    let big = Layout::from_size_align(512, 8).unwrap();
    let per_pool = SizeClass::for_layout(big).unwrap().blocks_per_pool();
    // Fill arena A completely, then put one pool in arena B.
    let blocks: Vec<_> = (0..blocks_for_arenas(1) + 1).map(|_| a.alloc(big).unwrap()).collect();
    assert_eq!(a.stats().arenas_current, 2);
    // Empty the first pool of arena A: A now has 1 free pool, B has 63.
    let freed_pool = blocks[0].as_ptr() as usize & !(POOL_SIZE - 1);
    for &block in &blocks[..per_pool] {
        // SAFETY: allocated above with this layout.
        unsafe { a.dealloc(block, big) };
    }
    // A pool for another class must be taken from A, the busier arena.
    let small = a.alloc(Layout::new::<u64>()).unwrap();
    assert_eq!(small.as_ptr() as usize & !(POOL_SIZE - 1), freed_pool);
}

#[test]
fn limit_error_leaves_earlier_allocations_intact() {
    let a = Allocator::new();
    let limit = if cfg!(miri) { 8 * 1024 } else { 64 * 1024 };
    a.set_limit(Some(limit));
    assert_eq!(a.limit(), Some(limit));
    let layout = Layout::new::<[u8; 100]>();
    let mut blocks = Vec::new();
    let err = loop {
        match a.alloc(layout) {
            Ok(block) => {
                fill(block, 100, blocks.len() as u8);
                blocks.push(block);
            }
            Err(err) => break err,
        }
    };
    assert_eq!(blocks.len(), limit / 104, "100-byte requests cost 104 bytes each");
    assert!(matches!(err.kind(), AllocErrorKind::LimitExceeded { limit: l, needed: 104, .. } if l == limit));
    assert_eq!(err.layout(), layout);
    let message = err.to_string();
    assert!(
        message.contains("memory limit exceeded") && message.contains(&limit.to_string()),
        "{message}"
    );
    assert!(a.bytes_in_use() <= limit);
    for (i, &block) in blocks.iter().enumerate() {
        assert!(
            holds(block, 100, i as u8),
            "block {i} was disturbed by the failed allocation"
        );
    }
    // Large requests respect the limit too.
    assert!(a.alloc(Layout::from_size_align(4096, 8).unwrap()).is_err());
    // Freeing makes room again; removing the limit lifts it.
    // SAFETY: allocated above with this layout.
    unsafe { a.dealloc(blocks.pop().unwrap(), layout) };
    blocks.push(a.alloc(layout).unwrap());
    a.set_limit(None);
    blocks.push(a.alloc(layout).unwrap());
    for block in blocks {
        // SAFETY: allocated above with this layout.
        unsafe { a.dealloc(block, layout) };
    }
}

#[test]
fn large_and_overaligned_blocks_work() {
    let a = Allocator::new();
    let layouts = [
        Layout::from_size_align(513, 8).unwrap(),
        Layout::from_size_align(4096, 16).unwrap(),
        Layout::from_size_align(if cfg!(miri) { 5_000 } else { 3 * ARENA_SIZE }, 8).unwrap(),
        Layout::from_size_align(8, 32).unwrap(),
        Layout::from_size_align(100, 4096).unwrap(),
        Layout::from_size_align(0, 64).unwrap(),
    ];
    let blocks: Vec<_> = layouts.iter().map(|&l| a.alloc(l).unwrap()).collect();
    for (i, (&block, layout)) in blocks.iter().zip(&layouts).enumerate() {
        assert_eq!(block.as_ptr() as usize % layout.align(), 0);
        fill(block, layout.size(), i as u8);
    }
    for (i, (&block, layout)) in blocks.iter().zip(&layouts).enumerate() {
        assert!(holds(block, layout.size(), i as u8));
    }
    let s = a.stats();
    assert_eq!(s.large_objects, layouts.len());
    assert_eq!(s.bytes_in_use, s.large_bytes);
    assert_eq!(s.arenas_current, 0, "large blocks take no arena");
    for (&block, &layout) in blocks.iter().zip(&layouts).skip(1) {
        // SAFETY: allocated above with this layout.
        unsafe { a.dealloc(block, layout) };
    }
    assert_eq!(a.stats().large_objects, 1);
    // The first one is released when the allocator drops (no leak under Miri).
}

#[test]
fn impossible_layouts_are_errors_not_aborts() {
    let a = Allocator::new();
    let huge = Layout::from_size_align(isize::MAX as usize - 8, 8).unwrap();
    let err = a.alloc(huge).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            AllocErrorKind::CapacityOverflow | AllocErrorKind::OutOfMemory
        ),
        "{err}"
    );
    assert_eq!(a.bytes_in_use(), 0);
}

#[test]
fn owner_data_is_found_from_any_block() {
    let a = Allocator::new();
    let b = Allocator::new();
    let (mut x, mut y) = (1u8, 2u8);
    let (tag_a, tag_b): (*mut (), *mut ()) = ((&raw mut x).cast(), (&raw mut y).cast());
    a.set_owner_data(tag_a);
    b.set_owner_data(tag_b);
    assert_eq!(a.owner_data(), tag_a);
    for layout in [Layout::new::<u32>(), Layout::from_size_align(2000, 8).unwrap()] {
        let x = a.alloc(layout).unwrap();
        let y = b.alloc(layout).unwrap();
        // SAFETY: both blocks are live and their allocators idle.
        unsafe {
            assert_eq!(Allocator::owner_data_of(x, layout), tag_a);
            assert_eq!(Allocator::owner_data_of(y, layout), tag_b);
            a.dealloc(x, layout);
            b.dealloc(y, layout);
        }
    }
}

#[test]
fn stats_add_up() {
    let a = Allocator::new();
    let mut live = Vec::new();
    for i in 0..3000usize {
        let layout = Layout::from_size_align(1 + (i * 37) % 700, 8).unwrap();
        live.push((a.alloc(layout).unwrap(), layout));
    }
    for (block, layout) in live.drain(..).step_by(3) {
        // SAFETY: allocated above with this layout.
        unsafe { a.dealloc(block, layout) };
    }
    let s = a.stats();
    assert_eq!(s.classes.len(), NUM_SIZE_CLASSES);
    assert_eq!(s.arena_bytes_accounted(), s.arenas_current * ARENA_SIZE);
    assert_eq!(s.bytes_in_use, s.small_bytes_in_use() + s.large_bytes);
    assert_eq!(s.bytes_in_use, a.bytes_in_use());
    assert_eq!(s.bytes_reserved, s.arenas_current * ARENA_SIZE + s.large_bytes);
    for c in &s.classes {
        let per_pool = (POOL_SIZE - rcgc::alloc::POOL_HEADER_SIZE) / c.block_size;
        assert_eq!(c.blocks_in_use + c.free_blocks, c.pools * per_pool);
    }
    let table = s.to_string();
    assert!(
        table.contains("blocks in use") && table.contains("# arenas allocated current"),
        "{table}"
    );
    let _ = live;
}

#[test]
fn dropping_the_allocator_releases_outstanding_blocks() {
    // Run under Miri, this fails with a leak report if anything is not freed.
    let a = Allocator::new();
    for size in [8, 100, 512, 513, 10_000] {
        let _ = a.alloc(Layout::from_size_align(size, 8).unwrap()).unwrap();
    }
    drop(a);
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { size: usize, align_log2: u32 },
    Free { index: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..=if cfg!(miri) { 600 } else { 1100 }, 0u32..=6).prop_map(|(size, align_log2)| Op::Alloc { size, align_log2 }),
        2 => any::<usize>().prop_map(|index| Op::Free { index }),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Random alloc/free sequences against a model: live blocks never overlap,
    /// keep their contents, and the byte count matches the model.
    #[test]
    fn random_sequences_match_the_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 40 } else { 400 })) {
        let a = Allocator::new();
        let mut live: Vec<(NonNull<u8>, Layout, u8)> = Vec::new();
        let mut expected_bytes = 0;
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Alloc { size, align_log2 } => {
                    let layout = Layout::from_size_align(size, 1 << align_log2).unwrap();
                    let block = a.alloc(layout).unwrap();
                    let (start, end) = (block.as_ptr() as usize, block.as_ptr() as usize + size.max(1));
                    prop_assert_eq!(start % layout.align(), 0);
                    for &(other, other_layout, _) in &live {
                        let (o_start, o_end) = (other.as_ptr() as usize, other.as_ptr() as usize + other_layout.size().max(1));
                        prop_assert!(end <= o_start || o_end <= start, "blocks overlap");
                    }
                    fill(block, if cfg!(miri) { size.min(24) } else { size }, step as u8);
                    expected_bytes += a.usable_size(layout);
                    live.push((block, layout, step as u8));
                }
                Op::Free { index } if !live.is_empty() => {
                    let (block, layout, byte) = live.swap_remove(index % live.len());
                    prop_assert!(holds(block, if cfg!(miri) { layout.size().min(24) } else { layout.size() }, byte), "contents changed");
                    expected_bytes -= a.usable_size(layout);
                    // SAFETY: the model holds only live blocks of this allocator.
                    unsafe { a.dealloc(block, layout) };
                }
                Op::Free { .. } => {}
            }
            prop_assert_eq!(a.bytes_in_use(), expected_bytes);
        }
        for &(block, layout, byte) in &live {
            prop_assert!(holds(block, if cfg!(miri) { layout.size().min(24) } else { layout.size() }, byte), "contents changed");
        }
        let s = a.stats();
        prop_assert_eq!(s.arena_bytes_accounted(), s.arenas_current * ARENA_SIZE);
        for (block, layout, _) in live {
            // SAFETY: the model holds only live blocks of this allocator.
            unsafe { a.dealloc(block, layout) };
        }
        prop_assert_eq!(a.bytes_in_use(), 0);
        prop_assert!(a.stats().arenas_current <= 1);
    }
}
