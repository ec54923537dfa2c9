//! # rcgc — CPython's memory model for Rust
//!
//! rcgc gives interpreters and scripting engines the memory model CPython
//! gives Python programs: a private heap of size-classed pools in arenas of
//! OS pages, reference-counted handles that free an object the moment its last
//! handle drops, weak references, and a generational cycle collector.
//!
//! This release contains the bottom layer, [`alloc`]: a small-object
//! allocator in the manner of CPython's obmalloc, usable on its own.
//!
//! ```
//! use core::alloc::Layout;
//! use rcgc::alloc::Allocator;
//!
//! let allocator = Allocator::new();
//! let layout = Layout::new::<u64>();
//! let blocks: Vec<_> = (0..1000).map(|_| allocator.alloc(layout).unwrap()).collect();
//! assert_eq!(allocator.stats().classes[0].blocks_in_use, 1000);
//! for block in blocks {
//!     // SAFETY: each block came from this allocator with this layout.
//!     unsafe { allocator.dealloc(block, layout) };
//! }
//! println!("{}", allocator.stats());
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc;
