//! The `handle` layer: [`Gc<T>`] and [`Weak<T>`].
//!
//! A `Gc<T>` is a counted pointer to an object in a [`Heap`](crate::Heap),
//! one word wide. Cloning increments the strong count, dropping decrements it,
//! and the object is destroyed the moment the count reaches zero: its value's
//! `Drop` runs and its block goes back to its pool, like `del x` in Python
//! when `x` held the last reference.
//!
//! Releasing an object whose value holds the last handle to another object
//! releases that one too. Past [`MAX_RELEASE_DEPTH`](crate::heap::MAX_RELEASE_DEPTH)
//! nested releases the rest are queued and run iteratively by the outermost
//! release (CPython's "trashcan"), so dropping the head of a very long list
//! does not overflow the stack. (Nested releases of plain untracked objects
//! are bounded by a few KiB of stack instead of counted, see
//! [`MAX_RELEASE_DEPTH`](crate::heap::MAX_RELEASE_DEPTH).) If a `Drop` in the cascade panics, the
//! outermost release catches the panic, still runs every queued release
//! (reporting further panics on the heap's debug sink), and then resumes the
//! first panic, so every object of the cascade is dropped and freed by the
//! time the panic reaches the code that dropped the first handle. (A leaf
//! value's release pays no `catch_unwind`: its fields own no handles.)
//!
//! A `Weak<T>` points to a small side record, not to the object, so an
//! object's memory is reused as soon as it dies even while weak references
//! to it remain; they simply fail to upgrade.

pub(crate) mod any;
pub(crate) mod gc;
pub(crate) mod weak;

pub use any::{AnyGc, ObjectRef};
pub use gc::Gc;
pub use weak::Weak;
