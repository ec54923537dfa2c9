//! Large objects: requests above 512 bytes or aligned above 16 bytes, served
//! by the system allocator behind the same interface.
//!
//! ```text
//!  system allocation
//!  +------------------- offset ------------------+----------------------+
//!  | padding (only if align > 40) | LargeHeader  | user bytes ...        |
//!  +------------------------------+--------------+----------------------+
//!                                                ^ pointer handed out
//! ```
//!
//! The header sits right before the user bytes, so it is found from the
//! pointer alone, and it names the owning allocator (the large-object
//! counterpart of masking a small block's address to find its pool). Large
//! blocks form a doubly linked list so the allocator can release any still
//! outstanding when it is dropped.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use super::State;

/// Header in front of every large block.
#[repr(C)]
pub(crate) struct LargeHeader {
    prev: *mut LargeHeader,
    next: *mut LargeHeader,
    pub(crate) core: NonNull<State>,
    /// Bytes requested from the system allocator (header and padding included).
    total: usize,
    /// Alignment of the system allocation.
    align: usize,
}

const HEADER: usize = core::mem::size_of::<LargeHeader>();

/// The large blocks of one allocator.
pub(crate) struct LargeList {
    head: *mut LargeHeader,
    pub(crate) count: usize,
    /// Sum of `total` over live large blocks.
    pub(crate) bytes: usize,
}

/// Layout of the system allocation holding a user block of `layout`, and the
/// offset of the user bytes in it; `None` if the sizes overflow.
pub(crate) fn system_layout(layout: Layout) -> Option<(Layout, usize)> {
    let align = layout.align().max(core::mem::align_of::<LargeHeader>());
    if !align.is_power_of_two() || align > isize::MAX as usize / 2 {
        return None;
    }
    let offset = offset_for(align);
    let size = offset.checked_add(layout.size())?;
    Some((Layout::from_size_align(size, align).ok()?, offset))
}

/// Offset of the user bytes in a system allocation aligned to `align` (a power of two).
fn offset_for(align: usize) -> usize {
    HEADER.next_multiple_of(align)
}

/// The header of a large block.
///
/// # Safety
/// `user` was returned by [`LargeList::alloc`] and not freed yet.
pub(crate) unsafe fn header_of(user: NonNull<u8>) -> *mut LargeHeader {
    // SAFETY: the caller guarantees the header sits HEADER bytes before it.
    unsafe { user.as_ptr().sub(HEADER).cast() }
}

impl LargeList {
    pub(crate) fn new() -> Self {
        LargeList {
            head: ptr::null_mut(),
            count: 0,
            bytes: 0,
        }
    }

    /// Allocates a block of `sys` (from [`system_layout`]) with the user bytes at
    /// `offset`; `None` if the system allocator refuses.
    pub(crate) fn alloc(&mut self, core: NonNull<State>, sys: Layout, offset: usize) -> Option<NonNull<u8>> {
        // SAFETY: `sys` has a non-zero size (it includes the header).
        let base = NonNull::new(unsafe { std::alloc::alloc(sys) })?;
        // SAFETY: offset >= HEADER and offset + user size == sys.size(), so the
        // header and the user bytes lie inside the allocation; the header is
        // aligned because offset and the allocation are multiples of 8.
        unsafe {
            let user = base.add(offset);
            let header = header_of(user);
            header.write(LargeHeader {
                prev: ptr::null_mut(),
                next: self.head,
                core,
                total: sys.size(),
                align: sys.align(),
            });
            if !self.head.is_null() {
                (*self.head).prev = header;
            }
            self.head = header;
            self.count += 1;
            self.bytes += sys.size();
            Some(user)
        }
    }

    /// Frees a large block; returns the bytes it occupied.
    ///
    /// # Safety
    /// `user` came from [`LargeList::alloc`] on this list with user layout
    /// `layout` and is not used afterwards.
    pub(crate) unsafe fn dealloc(&mut self, user: NonNull<u8>, layout: Layout) -> usize {
        let (sys, offset) = system_layout(layout).expect("layout was valid at allocation");
        // SAFETY: the caller guarantees `user` is a live block of this list,
        // so its header and neighbours are live.
        unsafe {
            let header = header_of(user);
            debug_assert_eq!((*header).total, sys.size(), "dealloc with a different layout");
            let (prev, next) = ((*header).prev, (*header).next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            self.count -= 1;
            self.bytes -= sys.size();
            std::alloc::dealloc(user.as_ptr().sub(offset), sys);
        }
        sys.size()
    }
}

impl LargeList {
    /// The user bytes of the `n`-th large block from the head of the list
    /// (the newest first), for the heap walk (`walk.rs`).
    pub(crate) fn nth_block(&self, n: usize) -> Option<NonNull<u8>> {
        let mut header = self.head;
        for _ in 0..n {
            if header.is_null() {
                return None;
            }
            // SAFETY: headers on the list belong to live blocks.
            header = unsafe { (*header).next };
        }
        // SAFETY: the user bytes follow a live header.
        NonNull::new(header).map(|h| unsafe { h.cast::<u8>().add(HEADER) })
    }
}

/// The large block after `user` on its list, for the heap walk.
///
/// # Safety
/// `user` is a live large block.
pub(crate) unsafe fn next_block(user: NonNull<u8>) -> Option<NonNull<u8>> {
    // SAFETY: the caller guarantees a live block, whose `next` is null or a
    // live header; user bytes follow every header.
    unsafe { NonNull::new((*header_of(user)).next).map(|h| h.cast::<u8>().add(HEADER)) }
}

impl Drop for LargeList {
    fn drop(&mut self) {
        let mut header = self.head;
        while !header.is_null() {
            // Every header on the list belongs to a live block; its `total`
            // and `align` rebuild the system layout, and the allocation
            // starts `offset_for(align)` bytes before the user bytes, which
            // follow the header.
            // SAFETY: as above; the allocator is being dropped, so by its
            // contract no block is used afterwards.
            unsafe {
                let next = (*header).next;
                let sys = Layout::from_size_align_unchecked((*header).total, (*header).align);
                let user = header.cast::<u8>().add(HEADER);
                std::alloc::dealloc(user.sub(offset_for(sys.align())), sys);
                header = next;
            }
        }
    }
}
