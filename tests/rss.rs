//! Releasing an empty arena must give the memory back to the OS: the
//! process's resident set size (from `/proc/self/statm`) must drop.
//!
//! This is its own test binary so no other test allocates concurrently.

#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn releasing_empty_arenas_lowers_the_resident_set_size() {
    use core::alloc::Layout;
    use rcgc::alloc::{Allocator, ARENA_SIZE};

    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        pages * page
    }

    let a = Allocator::new();
    let layout = Layout::new::<[u64; 8]>();
    let target = 256 * 1024 * 1024; // 256 MiB of 64-byte blocks
    let before = rss_bytes();
    let mut blocks = Vec::with_capacity(target / 64);
    for i in 0..target / 64 {
        let block = a.alloc(layout).unwrap();
        // SAFETY: a fresh 64-byte block; touching it makes its page resident.
        unsafe { block.cast::<u64>().write(i as u64) };
        blocks.push(block);
    }
    let full = rss_bytes();
    assert!(
        full >= before + target * 9 / 10,
        "RSS grew by only {} bytes",
        full - before
    );
    assert!(a.stats().arenas_current >= target / ARENA_SIZE);
    for block in blocks.drain(..) {
        // SAFETY: allocated above with this layout.
        unsafe { a.dealloc(block, layout) };
    }
    drop(blocks);
    let after_free = rss_bytes();
    let s = a.stats();
    assert!(s.arenas_current <= 1, "{s}");
    assert!(
        after_free + target * 9 / 10 <= full,
        "RSS only dropped from {full} to {after_free} bytes after freeing {target} bytes"
    );
}
