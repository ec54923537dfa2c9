//! Arena memory from the operating system.
//!
//! On Unix (outside Miri) an arena is an anonymous private `mmap` of
//! `ARENA_SIZE + POOL_SIZE` bytes, released with `munmap`. `mmap` only
//! promises page alignment, so we over-map by one pool and start the arena at
//! the first 16 KiB boundary; unlike CPython, which skips the misaligned first
//! pool, every arena keeps all 64 pools, and the extra 16 KiB is address space
//! only (never touched, so it costs no RSS). We call `mmap` directly rather
//! than `std::alloc`, because glibc raises its mmap threshold after the first
//! free of a large block and would then serve 1 MiB requests from the `brk`
//! heap, which it rarely returns to the OS: releasing an empty arena must make
//! the resident set size drop.
//!
//! Under Miri and on other platforms arenas come from `std::alloc` with 16 KiB
//! alignment, which gives the same guarantees except the RSS one.

use core::ptr::NonNull;

use super::pool::{ARENA_SIZE, POOL_SIZE};

/// One mapping obtained from the OS; `base` is the 16 KiB aligned start of the
/// `ARENA_SIZE` usable bytes inside it.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Mapping {
    raw: NonNull<u8>,
    pub(crate) base: NonNull<u8>,
}

#[cfg(all(unix, not(miri)))]
const MAP_LEN: usize = ARENA_SIZE + POOL_SIZE;

/// Maps one arena, or `None` if the OS refuses.
#[cfg(all(unix, not(miri)))]
pub(crate) fn map_arena() -> Option<Mapping> {
    // SAFETY: an anonymous private mapping with no fixed address has no
    // preconditions; the result is checked against MAP_FAILED.
    let raw = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            MAP_LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let raw = NonNull::new(raw.cast::<u8>())?;
    let offset = raw.as_ptr().align_offset(POOL_SIZE);
    debug_assert!(offset < POOL_SIZE);
    // SAFETY: offset < POOL_SIZE, so base..base+ARENA_SIZE lies inside the
    // MAP_LEN bytes just mapped.
    let base = unsafe { raw.add(offset) };
    Some(Mapping { raw, base })
}

/// Returns an arena's pages to the OS.
///
/// # Safety
/// `mapping` came from [`map_arena`] and nothing inside it is used afterwards.
#[cfg(all(unix, not(miri)))]
pub(crate) unsafe fn unmap_arena(mapping: Mapping) {
    // SAFETY: the caller guarantees `mapping` is a live mapping of MAP_LEN
    // bytes starting at `raw` that nobody uses any more.
    let rc = unsafe { libc::munmap(mapping.raw.as_ptr().cast(), MAP_LEN) };
    debug_assert_eq!(rc, 0, "munmap failed");
}

#[cfg(not(all(unix, not(miri))))]
fn arena_layout() -> core::alloc::Layout {
    core::alloc::Layout::from_size_align(ARENA_SIZE, POOL_SIZE).expect("arena layout is valid")
}

/// Allocates one arena, or `None` if the system allocator refuses.
#[cfg(not(all(unix, not(miri))))]
pub(crate) fn map_arena() -> Option<Mapping> {
    // SAFETY: the layout has a non-zero size.
    let raw = NonNull::new(unsafe { std::alloc::alloc(arena_layout()) })?;
    Some(Mapping { raw, base: raw })
}

/// Returns an arena to the system allocator.
///
/// # Safety
/// `mapping` came from [`map_arena`] and nothing inside it is used afterwards.
#[cfg(not(all(unix, not(miri))))]
pub(crate) unsafe fn unmap_arena(mapping: Mapping) {
    // SAFETY: `raw` was allocated by `map_arena` with exactly this layout.
    unsafe { std::alloc::dealloc(mapping.raw.as_ptr(), arena_layout()) }
}
