//! Fuzzes `rcgc::alloc::Allocator` against a model.
//!
//! Input: a sequence of operations (allocate a size 0..=4096 at an alignment
//! 1..=4096, free a live block by index, set or clear a byte limit, trim,
//! look the owner up from a block). Every live block is filled with a canary
//! derived from its allocation number. After each operation:
//!
//! * live blocks do not overlap (checked on insertion into an interval map,
//!   which keeps the whole set pairwise disjoint), each is aligned;
//! * every live block still holds its canary;
//! * `bytes_in_use()` is the model's sum of `usable_size(layout)`, and the
//!   per-class block counts of `stats()` match the model;
//! * the stats byte budget adds up (`arena_bytes_accounted`);
//! * an allocation fails exactly when the model says the limit is exceeded,
//!   with `LimitExceeded` and the right numbers, and then nothing changed
//!   (`stats()` is identical before and after).
//!
//! At the end everything is freed: 0 bytes in use, no large block, and the
//! arena budget still adds up.
#![no_main]

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rcgc::alloc::{AllocErrorKind, Allocator, ARENA_SIZE, MAX_SMALL_ALIGN, SMALL_REQUEST_THRESHOLD};

/// Most blocks, and most canary bytes, live at once: every live block's
/// canary is checked after every operation, so this bounds its cost (64
/// blocks of distinct small classes still fill an arena's 64 pools).
const MAX_LIVE: usize = 256;
const MAX_LIVE_BYTES: usize = 64 * 1024;

#[derive(Arbitrary, Debug)]
enum Op {
    /// `size`: below 0x8000 a small size (0..=512), else 0..=4096.
    /// `align_log2 % 13`: alignment 1..=4096.
    Alloc {
        size: u16,
        align_log2: u8,
    },
    /// Frees live block `index % live`.
    Free {
        index: u16,
    },
    /// Frees the most recent block (LIFO reuse paths).
    FreeLast,
    /// Limit = bytes in use + `slack` (may be exceeded by the next alloc).
    SetLimitSlack {
        slack: u16,
    },
    /// Limit = an absolute number of bytes (may be below the current use).
    SetLimitAbs {
        bytes: u16,
    },
    ClearLimit,
    /// Returns empty arenas to the OS.
    Trim,
    /// `Allocator::owner_data_of` finds the allocator's owner data from a block.
    Owner {
        index: u16,
    },
}

struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    /// Bytes we may write: the size class for small blocks, the request for large ones.
    writable: usize,
    /// Allocation number, the canary's seed.
    serial: u64,
}

/// `PATTERN[i] = i as u8`: a block's canary is a slice of it starting at a
/// serial-derived offset, so the check is one `memcmp`.
static PATTERN: [u8; 4096 + 256] = {
    let mut p = [0u8; 4096 + 256];
    let mut i = 0;
    while i < p.len() {
        p[i] = i as u8;
        i += 1;
    }
    p
};

fn is_small(layout: Layout) -> bool {
    layout.size() <= SMALL_REQUEST_THRESHOLD && layout.align() <= MAX_SMALL_ALIGN
}

/// The canary of block `serial` over `len` bytes: the serial (xored) in
/// the first 8 bytes, then a shifted ramp.
fn canary_head(serial: u64) -> [u8; 8] {
    (serial ^ 0xA5A5_5A5A_C3C3_3C3C).to_le_bytes()
}

fn canary_tail(serial: u64, len: usize) -> &'static [u8] {
    let start = (serial.wrapping_mul(0x9E37_79B9) >> 8) as usize % 256;
    &PATTERN[start..start + len]
}

fn fill(block: &Block) {
    // SAFETY: `writable` bytes of the block are ours.
    let bytes = unsafe { std::slice::from_raw_parts_mut(block.ptr.as_ptr(), block.writable) };
    let head = canary_head(block.serial);
    let n = bytes.len().min(8);
    bytes[..n].copy_from_slice(&head[..n]);
    if bytes.len() > 8 {
        let len = bytes.len() - 8;
        bytes[8..].copy_from_slice(canary_tail(block.serial, len));
    }
}

fn check_canary(block: &Block) {
    // SAFETY: as in `fill`.
    let bytes = unsafe { std::slice::from_raw_parts(block.ptr.as_ptr(), block.writable) };
    let head = canary_head(block.serial);
    let n = bytes.len().min(8);
    assert_eq!(
        &bytes[..n],
        &head[..n],
        "canary head of block #{} ({:?} at {:p}) overwritten",
        block.serial,
        block.layout,
        block.ptr
    );
    if bytes.len() > 8 {
        assert!(
            bytes[8..] == *canary_tail(block.serial, bytes.len() - 8),
            "canary of block #{} ({:?} at {:p}) overwritten",
            block.serial,
            block.layout,
            block.ptr
        );
    }
}

struct Model {
    blocks: Vec<Block>,
    /// start address -> (end address, serial): the live intervals.
    intervals: BTreeMap<usize, (usize, u64)>,
    bytes_in_use: usize,
    /// Sum of `writable` over live blocks.
    live_bytes: usize,
    limit: Option<usize>,
    serial: u64,
}

impl Model {
    fn insert_interval(&mut self, block: &Block) {
        let start = block.ptr.as_ptr() as usize;
        // A zero-size block still owns its (unique) address: at least one byte.
        let end = start + block.writable.max(1);
        if let Some((&prev_start, &(prev_end, prev_serial))) = self.intervals.range(..=start).next_back() {
            assert!(
                prev_end <= start,
                "block #{} [{start:#x}, {end:#x}) overlaps block #{prev_serial} [{prev_start:#x}, {prev_end:#x})",
                block.serial
            );
        }
        if let Some((&next_start, &(next_end, next_serial))) = self.intervals.range(start..).next() {
            assert!(
                end <= next_start,
                "block #{} [{start:#x}, {end:#x}) overlaps block #{next_serial} [{next_start:#x}, {next_end:#x})",
                block.serial
            );
        }
        self.intervals.insert(start, (end, block.serial));
    }

    fn remove(&mut self, index: usize) -> Block {
        let block = self.blocks.swap_remove(index);
        self.live_bytes -= block.writable;
        let removed = self.intervals.remove(&(block.ptr.as_ptr() as usize));
        assert_eq!(removed.map(|(_, s)| s), Some(block.serial));
        block
    }
}

fn check(allocator: &Allocator, model: &Model) {
    assert_eq!(
        allocator.bytes_in_use(),
        model.bytes_in_use,
        "bytes_in_use differs from the model"
    );
    assert_eq!(allocator.limit(), model.limit);
    for block in &model.blocks {
        check_canary(block);
    }
    let stats = allocator.stats();
    assert_eq!(stats.bytes_in_use, model.bytes_in_use);
    assert_eq!(
        stats.arena_bytes_accounted(),
        stats.arenas_current * ARENA_SIZE,
        "arena byte budget does not add up:\n{stats}"
    );
    // Per-class block counts and large blocks.
    let mut per_class = vec![0usize; stats.classes.len()];
    let (mut large, mut large_bytes) = (0, 0);
    for block in &model.blocks {
        let usable = allocator.usable_size(block.layout);
        if is_small(block.layout) {
            let class = stats
                .classes
                .iter()
                .position(|c| c.block_size == usable)
                .expect("small usable size is a class size");
            per_class[class] += 1;
        } else {
            large += 1;
            large_bytes += usable;
        }
    }
    for (class, c) in stats.classes.iter().enumerate() {
        assert_eq!(
            c.blocks_in_use, per_class[class],
            "blocks in use of class {} ({} bytes)",
            class, c.block_size
        );
    }
    assert_eq!(stats.large_objects, large);
    assert_eq!(stats.large_bytes, large_bytes);
    assert_eq!(stats.small_bytes_in_use() + stats.large_bytes, model.bytes_in_use);
    assert!(stats.arenas_current <= stats.arenas_high_water);
    assert_eq!(
        stats.arenas_allocated_total - stats.arenas_freed_total,
        stats.arenas_current
    );
}

fn run(ops: Vec<Op>) {
    let allocator = Allocator::new();
    let owner = 0x1234_5678usize as *mut ();
    allocator.set_owner_data(owner);
    let mut model = Model {
        blocks: Vec::new(),
        intervals: BTreeMap::new(),
        bytes_in_use: 0,
        live_bytes: 0,
        limit: None,
        serial: 0,
    };
    for op in ops {
        match op {
            Op::Alloc { size, align_log2 } => {
                if model.blocks.len() >= MAX_LIVE {
                    continue;
                }
                let size = if size < 0x8000 {
                    size as usize % 513
                } else {
                    size as usize % 4097
                };
                let align = 1usize << (align_log2 % 13);
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                let usable = allocator.usable_size(layout);
                assert!(usable >= size);
                let writable = if is_small(layout) { usable } else { size };
                if model.live_bytes + writable > MAX_LIVE_BYTES {
                    continue;
                }
                let expect_fail = model.limit.is_some_and(|limit| model.bytes_in_use + usable > limit);
                let before = expect_fail.then(|| allocator.stats());
                match allocator.alloc(layout) {
                    Ok(ptr) => {
                        assert!(
                            !expect_fail,
                            "allocation of {layout:?} succeeded past the limit {:?}",
                            model.limit
                        );
                        assert_eq!(ptr.as_ptr() as usize % align, 0, "{layout:?} misaligned at {ptr:p}");
                        model.serial += 1;
                        let block = Block {
                            ptr,
                            layout,
                            writable,
                            serial: model.serial,
                        };
                        model.live_bytes += writable;
                        model.insert_interval(&block);
                        fill(&block);
                        model.blocks.push(block);
                        model.bytes_in_use += usable;
                    }
                    Err(err) => {
                        assert!(expect_fail, "allocation of {layout:?} failed unexpectedly: {err}");
                        assert_eq!(err.layout(), layout);
                        match err.kind() {
                            AllocErrorKind::LimitExceeded { limit, in_use, needed } => {
                                assert_eq!(Some(limit), model.limit);
                                assert_eq!(in_use, model.bytes_in_use);
                                assert_eq!(needed, usable);
                            }
                            other => panic!("expected LimitExceeded, got {other:?}"),
                        }
                        assert!(err.to_string().contains("memory limit exceeded"));
                        // Nothing changed.
                        assert_eq!(
                            before.as_ref(),
                            Some(&allocator.stats()),
                            "a failed allocation changed the stats"
                        );
                    }
                }
            }
            Op::Free { index } => {
                if model.blocks.is_empty() {
                    continue;
                }
                let index = index as usize % model.blocks.len();
                let block = model.remove(index);
                check_canary(&block);
                // SAFETY: allocated here with this layout, freed once.
                unsafe { allocator.dealloc(block.ptr, block.layout) };
                model.bytes_in_use -= allocator.usable_size(block.layout);
            }
            Op::FreeLast => {
                let Some(index) = model.blocks.len().checked_sub(1) else {
                    continue;
                };
                let block = model.remove(index);
                check_canary(&block);
                // SAFETY: as above.
                unsafe { allocator.dealloc(block.ptr, block.layout) };
                model.bytes_in_use -= allocator.usable_size(block.layout);
            }
            Op::SetLimitSlack { slack } => {
                let limit = model.bytes_in_use + slack as usize;
                allocator.set_limit(Some(limit));
                model.limit = Some(limit);
            }
            Op::SetLimitAbs { bytes } => {
                allocator.set_limit(Some(bytes as usize));
                model.limit = Some(bytes as usize);
            }
            Op::ClearLimit => {
                allocator.set_limit(None);
                model.limit = None;
            }
            Op::Trim => {
                let before = allocator.stats();
                let released = allocator.trim();
                let after = allocator.stats();
                assert_eq!(after.arenas_current + released, before.arenas_current);
                assert_eq!(
                    after.unused_pools + released * rcgc::alloc::POOLS_PER_ARENA,
                    before.unused_pools
                );
            }
            Op::Owner { index } => {
                if model.blocks.is_empty() {
                    continue;
                }
                let block = &model.blocks[index as usize % model.blocks.len()];
                // SAFETY: the block is live and the allocator is idle.
                let found = unsafe { Allocator::owner_data_of(block.ptr, block.layout) };
                assert_eq!(found, owner, "owner_data_of({:?}) is wrong", block.layout);
            }
        }
        check(&allocator, &model);
    }

    // Free everything (in an order the input chose: most recent first).
    while let Some(block) = model.blocks.pop() {
        model.live_bytes -= block.writable;
        check_canary(&block);
        // SAFETY: as above.
        unsafe { allocator.dealloc(block.ptr, block.layout) };
        model.bytes_in_use -= allocator.usable_size(block.layout);
    }
    model.intervals.clear();
    check(&allocator, &model);
    let stats = allocator.stats();
    assert_eq!(stats.bytes_in_use, 0, "bytes in use after freeing everything:\n{stats}");
    assert_eq!(allocator.bytes_in_use(), 0);
    assert_eq!(stats.large_objects, 0);
    assert_eq!(stats.small_bytes_in_use(), 0);
    assert!(
        stats.classes.iter().all(|c| c.pools == 0),
        "pools still in use:\n{stats}"
    );
    assert_eq!(stats.arena_bytes_accounted(), stats.arenas_current * ARENA_SIZE);
    // At most one spare arena is kept; trim returns it.
    assert!(stats.arenas_current <= 1, "empty arenas kept: {}", stats.arenas_current);
    allocator.trim();
    assert_eq!(allocator.stats().arenas_current, 0);
}

fuzz_target!(|ops: Vec<Op>| run(ops));
