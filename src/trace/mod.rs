//! The [`Trace`] trait: how the cycle collector sees the handles a value owns.
//!
//! The collector finds cycles by asking every tracked object for the `Gc`
//! handles it owns. A `Trace` impl answers by calling [`Trace::trace`] on
//! each field; a `Gc`'s own impl reports the edge to the [`Tracer`].
//! `#[derive(Trace)]` writes the impl for structs and enums.
//!
//! # Safety model
//!
//! `Trace` is an `unsafe trait` because the collector relies on it, but a
//! wrong impl can never cause undefined behaviour:
//!
//! * reporting **too few** edges makes the collector think a referent is held
//!   from outside, so a cycle through it is not collected: a leak;
//! * reporting **too many** edges can make the collector tear down a value
//!   that a live handle still reaches. Memory is never released while a
//!   strong count is above zero; the object becomes *dead* and dereferencing
//!   its handle panics with a clear message (see `Gc::is_alive`).
//!
//! A value that cannot be traced right now (a `RefCell` that is mutably
//! borrowed) calls [`Tracer::mark_incomplete`]; the collector then treats the
//! object as reachable for this collection. Skipping edges is always safe.
//!
//! # Shared ownership inside a value
//!
//! `Rc`/`Arc` are opaque: an `Rc` may be shared by several parents, so
//! tracing through it would report the same edge once per parent and make
//! the referent look more referenced from inside than it is. Its contents stay
//! alive (leak-safe, never unsafe). Put `Gc`s directly in your objects.

mod impls;

use core::ptr::NonNull;

/// A value the cycle collector can look inside.
///
/// Derive it with `#[derive(Trace)]`. Hand-written impls call
/// `Trace::trace` on every field that may hold a `Gc`:
///
/// ```
/// use rcgc::{Gc, Trace, Tracer};
///
/// struct Pair {
///     left: Gc<u64>,
///     right: Option<Gc<u64>>,
///     label: String,
/// }
///
/// // SAFETY: visits every `Gc` the value owns.
/// unsafe impl Trace for Pair {
///     fn trace(&self, tracer: &mut Tracer<'_>) {
///         self.left.trace(tracer);
///         self.right.trace(tracer);
///     }
/// }
/// ```
///
/// # Safety
///
/// An impl must visit every `Gc` the value owns, each once, and must not
/// create or drop handles or mutate anything while tracing. Getting this
/// wrong leaks or panics; it never causes undefined behaviour (see the
/// [module docs](self)).
pub unsafe trait Trace {
    /// Whether a value of this type may own a `Gc` handle, directly or
    /// transitively. Objects of types where this is `false` are *leaves*: the
    /// cycle collector never tracks them and they carry an 8-byte header
    /// instead of 16 (like CPython's untracked atomic objects). Conservative
    /// default: `true`.
    const MAY_CONTAIN_GC: bool = true;

    /// Whether the `Gc` handles a value of this type owns are fixed once the
    /// value is inside a `Gc`: no `RefCell`, `Cell`, `Mutex` or other interior
    /// mutability around a handle, so the value's edges can only change
    /// through [`Gc::get_mut`](crate::Gc::get_mut) on a unique handle.
    ///
    /// An object of such a type whose handles all point to untracked objects
    /// can never be part of a cycle, so the collector does not track it
    /// (CPython untracks tuples of atoms the same way, lazily). A tree of
    /// immutable nodes built bottom-up is then never scanned at all.
    /// `Gc::get_mut` tracks the object again before handing out `&mut`.
    ///
    /// `#[derive(Trace)]` computes it from the fields; the default is `true`
    /// only for types that cannot own a `Gc` at all. Claiming `true` for a
    /// type whose handles can change is memory-safe but may leak a cycle.
    const FIXED_EDGES: bool = !Self::MAY_CONTAIN_GC;

    /// Visits every `Gc` this value owns by calling `trace` on each field.
    fn trace(&self, tracer: &mut Tracer<'_>);

    /// Whether [`finalize`](Self::finalize) does anything. Types without a
    /// finalizer (the default) pay nothing for the feature.
    const HAS_FINALIZER: bool = false;

    /// The object's finalizer, Python's `__del__` (PEP 442): called at most
    /// once per object, when it becomes unreachable: by its count reaching
    /// zero, or by the cycle collector while every object of its garbage
    /// cycle is still intact. It may *resurrect* the object by storing a
    /// clone of `this` somewhere reachable. Set
    /// [`HAS_FINALIZER`](Self::HAS_FINALIZER) to `true` when you override it
    /// (`#[derive(Trace)]` with `#[trace(finalize)]` forwards to
    /// [`Finalize`]).
    ///
    /// Unlike `Drop`, a finalizer may use the other objects the value points
    /// to: during a collection none of them has been torn down yet.
    fn finalize(this: &crate::Gc<Self>)
    where
        Self: 'static,
    {
        let _ = this;
    }
}

/// A finalizer for a type that derives [`Trace`]: add `#[trace(finalize)]`
/// to the type and implement this trait.
///
/// ```
/// use std::cell::Cell;
/// use rcgc::{Finalize, Gc, Heap, Trace};
///
/// #[derive(Trace)]
/// #[trace(finalize)]
/// struct Resource { closed: Cell<bool> }
///
/// impl Finalize for Resource {
///     fn finalize(this: &Gc<Self>) {
///         this.closed.set(true); // e.g. flush a file; other objects are still intact here
///     }
/// }
///
/// let heap = Heap::new();
/// let r = heap.alloc(Resource { closed: Cell::new(false) });
/// let weak = Gc::downgrade(&r);
/// drop(r);
/// assert!(weak.upgrade().is_none());
/// ```
pub trait Finalize: Trace + Sized + 'static {
    /// See [`Trace::finalize`].
    fn finalize(this: &crate::Gc<Self>);
}

/// One edge reported by a `Trace` impl.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Edge {
    /// A `Gc`: the referent's value address and whether it is tracked.
    Strong { value: NonNull<u8>, tracked: bool },
    /// A weak reference with a callback, owned by the value.
    WeakCallback(NonNull<crate::handle::weak::CallbackRecord>),
}

impl Edge {
    /// The value address of a tracked referent, if this is a strong edge to one.
    pub(crate) fn tracked_value(&self) -> Option<NonNull<u8>> {
        match *self {
            Edge::Strong { value, tracked: true } => Some(value),
            _ => None,
        }
    }

    /// The value address of any strong referent.
    pub(crate) fn strong_value(&self) -> Option<NonNull<u8>> {
        match *self {
            Edge::Strong { value, .. } => Some(value),
            Edge::WeakCallback(_) => None,
        }
    }
}

/// The visitor a [`Trace`] impl is given.
pub struct Tracer<'a> {
    visit: &'a mut dyn FnMut(Edge),
    incomplete: bool,
}

impl<'a> Tracer<'a> {
    pub(crate) fn new(visit: &'a mut dyn FnMut(Edge)) -> Self {
        Tracer {
            visit,
            incomplete: false,
        }
    }

    /// Records that this value cannot be traced completely right now (for
    /// example a `RefCell` that is mutably borrowed). The collector then
    /// treats the object being traced as reachable for this collection.
    pub fn mark_incomplete(&mut self) {
        self.incomplete = true;
    }

    /// Whether [`mark_incomplete`](Self::mark_incomplete) was called.
    pub(crate) fn is_incomplete(&self) -> bool {
        self.incomplete
    }

    #[inline]
    pub(crate) fn edge(&mut self, edge: Edge) {
        (self.visit)(edge)
    }
}

impl core::fmt::Debug for Tracer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracer")
            .field("incomplete", &self.incomplete)
            .finish_non_exhaustive()
    }
}
