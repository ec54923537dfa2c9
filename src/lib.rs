//! # rcgc — CPython's memory model for Rust
//!
//! rcgc gives interpreters and scripting engines the memory model CPython
//! gives Python programs: a private [`Heap`] of size-classed pools in arenas
//! of OS pages, reference-counted [`Gc`] handles that free an object the
//! moment its last handle drops, [`Weak`] references, and (next) a
//! generational cycle collector with Python's `gc` introspection.
//!
//! Use it where you would use `Rc<RefCell<..>>` for script objects.
//!
//! ```
//! use std::cell::RefCell;
//! use rcgc::{Gc, Heap, Trace};
//!
//! #[derive(Trace)]
//! struct Node {
//!     value: u64,
//!     next: RefCell<Option<Gc<Node>>>,
//! }
//!
//! let heap = Heap::new();
//! let tail = heap.alloc(Node { value: 2, next: RefCell::new(None) });
//! let head = heap.alloc(Node { value: 1, next: RefCell::new(Some(tail.clone())) });
//! assert_eq!(Gc::strong_count(&tail), 2);
//! assert_eq!(Gc::size_of(&head), 40); // 16-byte header + 24-byte value, no malloc header
//! drop(head); // frees the head at once; the tail lives on through `tail`
//! assert_eq!(Gc::strong_count(&tail), 1);
//! ```
//!
//! Layers (each module's docs say what it owns and which invariants it keeps):
//! [`alloc`] (pools and arenas), `object` (header layout), `handle`
//! ([`Gc`], [`Weak`]), [`trace`] ([`Trace`], [`Tracer`]).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate self as rcgc;

pub mod alloc;
pub mod collect;
mod handle;
mod heap;
mod intern;
mod object;
pub mod trace;
pub mod weak;

pub use collect::{DebugFlags, GcError, GcInfo, GcPhase, GenerationStats};
pub use handle::{AnyGc, Gc, ObjectRef, Weak};
pub use heap::{CallbackId, DisabledGuard, Heap, MAX_RELEASE_DEPTH};
pub use intern::Interner;
pub use rcgc_derive::Trace;
pub use trace::{Finalize, Trace, Tracer};
pub use weak::{finalize, Finalizer, WeakKeyDictionary, WeakSet, WeakValueDictionary};

/// The strong count reported for immortal objects (CPython 3.12's `4294967295`).
pub const IMMORTAL_REFCOUNT: usize = object::IMMORTAL as usize;

/// Names the code written by `#[derive(Trace)]` refers to; not public API.
#[doc(hidden)]
pub mod __derive {
    pub use crate::trace::{AcyclicSelf, LeafSelf};
}
