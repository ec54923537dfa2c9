//! Size classes: which block size serves a request.
//!
//! Requests of at most [`SMALL_REQUEST_THRESHOLD`] bytes with an alignment of
//! at most [`MAX_SMALL_ALIGN`] are served from pools. CPython rounds every
//! request up to a multiple of 16 bytes; we round to a multiple of 8 where the
//! requested alignment allows, so a 40-byte object with 8-byte alignment costs
//! 40 bytes, not 48. A request aligned to 16 is rounded to a multiple of 16, and
//! such classes only ever hand out 16-aligned blocks (the pool header is a
//! multiple of 16 bytes and pools are 16 KiB aligned).
//!
//! ```text
//! class index:   0   1   2   3   4  ...  62   63
//! block size:    8  16  24  32  40  ... 504  512
//! ```

use core::alloc::Layout;

use super::pool::{POOL_HEADER_SIZE, POOL_SIZE};

/// Largest request (in bytes) served from pools; larger ones go to the system allocator.
pub const SMALL_REQUEST_THRESHOLD: usize = 512;
/// Step between consecutive size classes.
pub const GRANULE: usize = 8;
/// Number of size classes.
pub const NUM_SIZE_CLASSES: usize = SMALL_REQUEST_THRESHOLD / GRANULE;
/// Largest alignment served from pools; more strictly aligned requests go to the system allocator.
pub const MAX_SMALL_ALIGN: usize = 16;

/// One of the [`NUM_SIZE_CLASSES`] block sizes pools are carved into.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SizeClass(u8);

impl SizeClass {
    /// The class serving `layout`, or `None` if the request goes to the system allocator
    /// (size above 512 bytes or alignment above 16). A zero-size request is served
    /// as a 1-byte request, so it still gets a unique address.
    #[inline(always)]
    pub const fn for_layout(layout: Layout) -> Option<SizeClass> {
        let size = layout.size();
        let align = layout.align();
        if size > SMALL_REQUEST_THRESHOLD || align > MAX_SMALL_ALIGN {
            return None;
        }
        let size = if size == 0 { 1 } else { size };
        let step = if align > GRANULE { align } else { GRANULE };
        let rounded = (size + step - 1) & !(step - 1);
        Some(SizeClass((rounded / GRANULE - 1) as u8))
    }

    /// The class with index `index`, if it exists.
    pub const fn from_index(index: usize) -> Option<SizeClass> {
        if index < NUM_SIZE_CLASSES {
            Some(SizeClass(index as u8))
        } else {
            None
        }
    }

    /// Position of this class in `0..NUM_SIZE_CLASSES`.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Bytes in one block of this class.
    #[inline(always)]
    pub const fn block_size(self) -> usize {
        (self.0 as usize + 1) * GRANULE
    }

    /// How many blocks one pool of this class holds.
    pub const fn blocks_per_pool(self) -> usize {
        (POOL_SIZE - POOL_HEADER_SIZE) / self.block_size()
    }

    /// Every size class, smallest first.
    pub fn all() -> impl Iterator<Item = SizeClass> {
        (0..NUM_SIZE_CLASSES as u8).map(SizeClass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(size: usize, align: usize) -> Option<usize> {
        SizeClass::for_layout(Layout::from_size_align(size, align).unwrap()).map(|c| c.block_size())
    }

    #[test]
    fn eight_byte_steps_when_alignment_allows() {
        assert_eq!(class(40, 8), Some(40));
        assert_eq!(class(33, 8), Some(40));
        assert_eq!(class(1, 1), Some(8));
        assert_eq!(class(512, 8), Some(512));
    }

    #[test]
    fn sixteen_aligned_requests_get_multiples_of_sixteen() {
        assert_eq!(class(40, 16), Some(48));
        assert_eq!(class(16, 16), Some(16));
        assert_eq!(class(500, 16), Some(512));
    }

    #[test]
    fn zero_size_gets_the_smallest_block() {
        assert_eq!(class(0, 1), Some(8));
    }

    #[test]
    fn big_or_overaligned_requests_are_not_pooled() {
        assert_eq!(class(513, 8), None);
        assert_eq!(class(8, 32), None);
        assert_eq!(class(isize::MAX as usize - 7, 8), None);
    }

    #[test]
    fn every_class_fits_at_least_two_blocks_per_pool() {
        for c in SizeClass::all() {
            assert!(c.blocks_per_pool() >= 2, "{c:?}");
            assert_eq!(SizeClass::from_index(c.index()), Some(c));
        }
        assert_eq!(SizeClass::all().count(), NUM_SIZE_CLASSES);
        assert_eq!(SizeClass::from_index(NUM_SIZE_CLASSES), None);
    }
}
