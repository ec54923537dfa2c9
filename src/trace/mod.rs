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
//! # How edges flow
//!
//! During detection the [`Tracer`] is a buffer: a `Gc`'s `trace` reads its
//! referent's header and, if the referent is a candidate of the running
//! collection, stores its work-list slot into spare capacity; the collector
//! reads the buffer after the object's trace with its own loop. That keeps
//! the code every `Trace` impl inlines per handle to a flag test and a store
//! (no indirect call, and small enough that wrappers such as `RefCell`'s
//! `trace` still inline into the per-type trace function). The buffer holds
//! indices, never addresses, so nothing in it can dangle. (A full
//! collection's tracer also hands each referent that is not a candidate to
//! the collector's visitor while the handle is borrowed; the collector keeps
//! the addresses of the old objects of its own heap among them, whose
//! releases are queued while it traces, so they stay allocated.) Elsewhere a
//! tracer hands each edge to a closure as it is reported.
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

    /// Whether values of this type can never take part in a reference
    /// cycle. Objects of such a type are not tracked by the collector even
    /// if they own `Gc` handles: they carry the 8-byte header of a leaf
    /// instead of 16 (a node of two handles then takes 24 bytes, not 32),
    /// and the handles they own count as references from outside the
    /// collector's view. They are still freed the moment their count reaches
    /// zero, with the deep-drop protection of every other object.
    ///
    /// A value whose handles are fixed once it is allocated (no `RefCell`,
    /// `Cell` or other interior mutability around a handle) can only point
    /// to values that existed before it; if every value it can reach is of
    /// such a type, it can never be part of a cycle (`Gc::get_mut` changes a
    /// value only while its handle is the only one, so nothing it reaches can
    /// point back to it).
    /// That is what this constant says, like CPython's untracking of tuples
    /// of atoms, decided once per type:
    ///
    /// * the default is `true` exactly for types that cannot own a `Gc`;
    /// * std containers without interior mutability (`Option`, `Box`, `Vec`,
    ///   maps, tuples, arrays, ...) and `Gc<T>` pass on their elements'
    ///   answer; cells of handles answer `false`, and `Weak<T>` `true` (it
    ///   keeps nothing alive; what its callback holds is opaque to the
    ///   collector anyway);
    /// * `#[derive(Trace)]` infers it for a type whose traced fields are
    ///   built from the type itself, its type parameters and std types
    ///   (`struct Node { left: Option<Gc<Node>>, right: Option<Gc<Node>> }`,
    ///   an immutable AST, a cons list), and for fields of other types that
    ///   cannot own a `Gc`; see the derive's documentation for the exact
    ///   rule;
    /// * `#[trace(acyclic)]` declares it for any type, as its author's
    ///   promise: an immutable node that points to other user types, say.
    ///
    /// Claiming `true` for a type whose values do end up in a cycle is
    /// memory-safe: that cycle is never collected (a leak), as with `Rc`.
    const ACYCLIC: bool = !Self::MAY_CONTAIN_GC;

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

/// Stands for the type being derived inside the `ACYCLIC` constant that
/// `#[derive(Trace)]` writes: `Option<Gc<Node>>` inside `Node` is asked as
/// `Option<Gc<AcyclicSelf>>`, since asking `Node`'s own constant there would
/// be a cycle in constant evaluation. Assuming the type acyclic while
/// checking its own fields is sound: the recursion adds no type whose edges
/// could change, so the other field types alone decide. Never instantiated.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AcyclicSelf {}

// SAFETY: uninhabited: there is no value to trace.
unsafe impl Trace for AcyclicSelf {
    const MAY_CONTAIN_GC: bool = true;
    const FIXED_EDGES: bool = true;
    const ACYCLIC: bool = true;

    fn trace(&self, _tracer: &mut Tracer<'_>) {
        match *self {}
    }
}

/// Stands for the type being derived inside the `MAY_CONTAIN_GC` constant
/// that `#[derive(Trace)]` writes: `Vec<(Node<T>, T)>` inside `Node<T>` is
/// asked as `Vec<(LeafSelf, T)>`. The type itself adds no handle there (the
/// least fixed point; see the derive's documentation); what else the field
/// holds (the parameter here) still counts. Never instantiated.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeafSelf {}

// SAFETY: uninhabited: there is no value to trace.
unsafe impl Trace for LeafSelf {
    const MAY_CONTAIN_GC: bool = false;

    fn trace(&self, _tracer: &mut Tracer<'_>) {
        match *self {}
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

    /// The address and kind (0: untracked, 1: tracked, 2: weak callback).
    #[inline(always)]
    fn split(self) -> (NonNull<u8>, u8) {
        match self {
            Edge::Strong { value, tracked } => (value, tracked as u8),
            Edge::WeakCallback(record) => (record.cast(), 2),
        }
    }

    /// The edge [`split`](Self::split) took apart.
    #[inline(always)]
    fn join(ptr: NonNull<u8>, kind: u8) -> Edge {
        match kind {
            2 => Edge::WeakCallback(ptr.cast()),
            _ => Edge::Strong {
                value: ptr,
                tracked: kind == 1,
            },
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
    /// For the collector's buffering tracer: the work-list slots of the
    /// referents reported so far that are candidates of the running
    /// collection (see [`Tracer::edge`]). A tracer made by [`Tracer::new`]
    /// keeps it empty with no capacity, so each edge goes to `visit`.
    slots: Vec<u32>,
    /// A tracer made by [`Tracer::new`]: where every edge goes. A buffering
    /// tracer: where a strong edge to a tracked referent that is not a
    /// candidate goes, if anywhere (a full collection takes in the old
    /// objects of its heap among them); its `slots` grow when full.
    visit: Option<&'a mut dyn FnMut(Edge)>,
    incomplete: bool,
}

impl<'a> Tracer<'a> {
    /// A tracer that hands each edge to `visit` as it is reported.
    pub(crate) fn new(visit: &'a mut dyn FnMut(Edge)) -> Self {
        Tracer {
            slots: Vec::new(),
            visit: Some(visit),
            incomplete: false,
        }
    }

    /// The collector's tracer during detection: it keeps the slots of the
    /// referents that are candidates (in a buffer of `capacity` to start
    /// with), for the caller to read with [`slots`](Self::slots) after the
    /// trace. One buffering tracer serves many traces (see
    /// [`reset`](Self::reset)). Strong edges to tracked referents that are
    /// not candidates go to `outside`, if given, while the handle is
    /// borrowed.
    pub(crate) fn buffered(capacity: usize, outside: Option<&'a mut dyn FnMut(Edge)>) -> Tracer<'a> {
        Tracer {
            slots: Vec::with_capacity(capacity.max(1)),
            visit: outside,
            incomplete: false,
        }
    }

    /// Stops reporting edges outside the candidates (a buffering tracer).
    pub(crate) fn forget_outside(&mut self) {
        debug_assert!(self.slots.capacity() > 0, "a buffering tracer");
        self.visit = None;
    }

    /// Forgets the slots and the incompleteness of the previous trace.
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.slots.clear();
        self.incomplete = false;
    }

    /// Forgets the incompleteness of the previous trace, keeping its slots.
    #[inline]
    pub(crate) fn clear_incomplete(&mut self) {
        self.incomplete = false;
    }

    /// Takes the slot reported last out of a buffering tracer.
    #[inline]
    pub(crate) fn pop_slot(&mut self) -> Option<u32> {
        self.slots.pop()
    }

    /// The slots a buffering tracer collected since the last reset.
    #[inline]
    pub(crate) fn slots(&self) -> &[u32] {
        &self.slots
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

    /// Reports one edge. Inlined into every `Trace` impl that owns a
    /// handle, so it stays small: for a buffering tracer with room, a strong
    /// edge to a tracked referent that carries `COLLECTING` stores the
    /// referent's slot, and other edges are dropped (detection needs only
    /// references between candidates); the rest is a call.
    ///
    /// The referent's header is read here, while the handle being traced
    /// keeps it allocated, so what the buffer holds are plain indices: a
    /// `Trace` impl that drops a handle after reporting it (a wrong impl)
    /// leaves nothing dangling. The `COLLECTING` flag marks the candidates
    /// of the collection running on this thread, and only them (see
    /// `collect::algorithm`); a wrong slot could only pick a wrong mark,
    /// which the collector looks up with a bounds check.
    #[inline(always)]
    pub(crate) fn edge(&mut self, edge: Edge) {
        if self.slots.len() < self.slots.capacity() {
            if let Edge::Strong { value, tracked: true } = edge {
                // SAFETY: the edge comes from a live handle that the value
                // being traced owns and lends to this call, so its referent,
                // a tracked object, is allocated.
                let h = unsafe { crate::object::tracked_header(value).as_ref() };
                if h.has(crate::object::flags::COLLECTING) {
                    self.slots.push(h.slot.get());
                } else if self.visit.is_some() {
                    self.outside(value);
                }
            }
        } else {
            let (ptr, kind) = edge.split();
            self.edge_overflow(ptr, kind);
        }
    }

    /// An edge that does not fit in `slots`: to the visitor, or into
    /// `slots` grown. (The edge travels as scalars, so the fast path above
    /// never builds it in memory, and a visitor inlined into its caller
    /// still sees the edge it was given.)
    #[inline(always)]
    fn edge_overflow(&mut self, ptr: NonNull<u8>, kind: u8) {
        let edge = Edge::join(ptr, kind);
        match &mut self.visit {
            // A visiting tracer (no buffer).
            Some(visit) if self.slots.capacity() == 0 => visit(edge),
            _ => self.grow_and_report(edge),
        }
    }

    /// A buffering tracer's strong edge to a tracked referent outside the
    /// candidates, to `visit`, while the handle being traced is borrowed.
    #[cold]
    #[inline(never)]
    fn outside(&mut self, value: NonNull<u8>) {
        if let Some(visit) = &mut self.visit {
            visit(Edge::Strong { value, tracked: true });
        }
    }

    #[cold]
    #[inline(never)]
    fn grow_and_report(&mut self, edge: Edge) {
        self.slots.reserve(64);
        self.edge(edge);
    }
}

impl core::fmt::Debug for Tracer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracer")
            .field("incomplete", &self.incomplete)
            .finish_non_exhaustive()
    }
}
