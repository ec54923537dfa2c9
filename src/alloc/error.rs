//! [`AllocError`]: why an allocation failed.

use core::alloc::Layout;
use core::fmt;

/// An allocation that could not be served. Nothing allocated before is
/// affected: the allocator stays usable and every live block stays valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocError {
    layout: Layout,
    kind: AllocErrorKind,
}

/// The reason an allocation failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocErrorKind {
    /// Serving the request would take the bytes in use over the configured limit.
    LimitExceeded {
        /// The configured limit, in bytes.
        limit: usize,
        /// Bytes in use when the request was made.
        in_use: usize,
        /// Bytes the request would have taken (size-class block or large allocation).
        needed: usize,
    },
    /// The operating system or system allocator refused memory.
    OutOfMemory,
    /// The layout is too large to describe with its header added.
    CapacityOverflow,
}

impl AllocError {
    /// An error for `layout` with reason `kind`.
    pub(crate) fn new(layout: Layout, kind: AllocErrorKind) -> Self {
        AllocError { layout, kind }
    }

    /// The layout that was requested.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Why it failed.
    pub fn kind(&self) -> AllocErrorKind {
        self.kind
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (size, align) = (self.layout.size(), self.layout.align());
        match self.kind {
            AllocErrorKind::LimitExceeded { limit, in_use, needed } => write!(
                f,
                "memory limit exceeded: allocating {size} bytes (align {align}) needs {needed} bytes, \
                 {in_use} of the {limit}-byte limit are in use; free objects or raise the limit"
            ),
            AllocErrorKind::OutOfMemory => write!(
                f,
                "out of memory: the system refused memory for a {size}-byte allocation (align {align})"
            ),
            AllocErrorKind::CapacityOverflow => write!(
                f,
                "allocation too large: {size} bytes (align {align}) overflows the address space"
            ),
        }
    }
}

impl std::error::Error for AllocError {}
