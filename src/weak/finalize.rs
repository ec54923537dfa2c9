//! [`finalize`] and [`Finalizer`]: Python's `weakref.finalize`.
//!
//! A finalizer is an `Rc`-shared state holding, while it is *alive*, an
//! internal weak reference to its object and the closure to run. Its death
//! callback runs the closure; [`Finalizer::call`] and
//! [`Finalizer::detach`] take the closure out first, so it runs at most
//! once. Invariants:
//!
//! * every alive finalizer is in this thread's registry (a `hashbrown` map
//!   from creation number to the shared state), so it stays alive when all
//!   its handles are dropped; it leaves the registry when it runs or is
//!   detached, and is then released unless the caller still holds a handle;
//! * the weak reference's callback holds only an `rc::Weak` to the state, so
//!   there is no `Rc` cycle;
//! * several finalizers on one object run newest first (the weak callbacks'
//!   order), that is in reverse creation order;
//! * at exit, the alive finalizers of the heap whose `atexit` flag is set
//!   run newest first (re-selecting when a finalizer registers another),
//!   with automatic collection disabled; the others are detached and never
//!   run. A panic in one is reported and the rest still run. "Exit" is the
//!   heap's drop: the first finalizer registered for a heap gives it an
//!   `ExitHook`, kept as a do-nothing collection callback, which `Heap`'s
//!   `Drop` releases (before its final collection); dropping the hook runs
//!   the exit procedure. [`Heap::run_exit_finalizers`] runs it on demand,
//!   and the registry's own drop at thread exit runs the finalizers of heaps
//!   never dropped.

use core::cell::{Cell, RefCell};
use core::fmt;
use core::ptr::NonNull;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak as RcWeak};

use super::WeakRef;
use crate::heap::inner::HeapInner;
use crate::trace::Trace;
use crate::{Gc, Heap};

/// The type-erased view the registry has of a finalizer.
trait Registered {
    fn heap(&self) -> usize;
    fn atexit(&self) -> bool;
    /// Runs the finalizer now if it is alive (at exit).
    fn run(&self);
    /// Detaches the finalizer without running it.
    fn kill(&self);
}

/// This thread's alive finalizers.
#[derive(Default)]
struct Registry {
    entries: RefCell<hashbrown::HashMap<u64, Rc<dyn Registered>>>,
    next_id: Cell<u64>,
    /// A finalizer was registered since the exit loop last looked.
    dirty: Cell<bool>,
    /// Heaps that hold an [`ExitHook`].
    hooked: RefCell<hashbrown::HashSet<usize>>,
}

/// Runs a heap's exit finalizers when the heap is dropped. It lives in the
/// heap's collection-callback list (as a callback that does nothing), which
/// `Heap`'s `Drop` releases before its final collection: dropping it is the
/// signal.
struct ExitHook {
    heap: NonNull<HeapInner>,
}

impl Drop for ExitHook {
    fn drop(&mut self) {
        let id = self.heap.as_ptr() as usize;
        let _ = REGISTRY.try_with(|r| r.hooked.borrow_mut().remove(&id));
        // SAFETY: the callback list holding this hook is only dropped by the
        // heap's `Drop` (or with the state itself, after that), while the
        // state is alive.
        let inner = unsafe { self.heap.as_ref() };
        // Automatic collection is already disabled at this point.
        run_exit(id, inner);
    }
}

/// Gives `heap` an [`ExitHook`] unless it has one.
fn hook(heap: NonNull<HeapInner>) {
    let id = heap.as_ptr() as usize;
    let fresh = REGISTRY.try_with(|r| r.hooked.borrow_mut().insert(id)).unwrap_or(false);
    if fresh {
        let hook = ExitHook { heap };
        // SAFETY: the caller holds an object of the heap, so its state is alive.
        unsafe { heap.as_ref() }.add_callback(Box::new(move |_, _| {
            let _ = &hook;
        }));
    }
}

thread_local! {
    static REGISTRY: Registry = Registry::default();
}

impl Registry {
    fn add(&self, id: u64, entry: Rc<dyn Registered>) {
        self.entries.borrow_mut().insert(id, entry);
        self.dirty.set(true);
    }

    fn new_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Alive finalizers of `heap` (all heaps if `None`) with `atexit`, oldest first.
    fn select(&self, heap: Option<usize>) -> Vec<(u64, Rc<dyn Registered>)> {
        self.dirty.set(false);
        let mut list: Vec<(u64, Rc<dyn Registered>)> = self
            .entries
            .borrow()
            .iter()
            .filter(|(_, e)| e.atexit() && heap.is_none_or(|h| e.heap() == h))
            .map(|(&id, e)| (id, e.clone()))
            .collect();
        list.sort_unstable_by_key(|&(id, _)| id);
        list
    }
}

impl Drop for Registry {
    /// Thread exit (Python's interpreter exit): runs the finalizers still
    /// alive with `atexit` set, newest first; drops the others unrun.
    fn drop(&mut self) {
        let mut pending = self.select(None);
        while let Some((_, entry)) = pending.pop() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| entry.run())) {
                let message = panic_message(&*panic);
                eprintln!("rcgc: panic ignored in a finalizer run at thread exit: {message}");
            }
        }
        let rest: Vec<_> = self.entries.get_mut().drain().map(|(_, e)| e).collect();
        for entry in rest {
            let _ = catch_unwind(AssertUnwindSafe(|| entry.kill()));
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>")
}

/// Removes finalizer `id` from the registry (if the registry still exists).
fn unregister(id: u64) {
    let removed = REGISTRY
        .try_with(|r| r.entries.try_borrow_mut().ok().and_then(|mut m| m.remove(&id)))
        .ok()
        .flatten();
    drop(removed); // after the borrow: may drop the state
}

/// What an alive finalizer holds.
struct Armed<T: Trace + ?Sized + 'static, F> {
    weak: WeakRef<T>,
    func: F,
}

struct State<T: Trace + ?Sized + 'static, F> {
    id: u64,
    heap: usize,
    atexit: Cell<bool>,
    armed: RefCell<Option<Armed<T, F>>>,
}

impl<T: Trace + ?Sized + 'static, F> State<T, F> {
    /// Disarms the finalizer: takes its closure, unregisters it and drops its
    /// weak reference (cancelling the death callback).
    fn disarm(&self) -> Option<F> {
        let armed = self.armed.borrow_mut().take()?;
        unregister(self.id);
        drop(armed.weak);
        Some(armed.func)
    }
}

impl<T: Trace + ?Sized + 'static, F: FnOnce() -> R, R> Registered for State<T, F> {
    fn heap(&self) -> usize {
        self.heap
    }

    fn atexit(&self) -> bool {
        self.atexit.get()
    }

    fn run(&self) {
        if let Some(func) = self.disarm() {
            func();
        }
    }

    fn kill(&self) {
        drop(self.disarm());
    }
}

/// A handle to a finalizer registered by [`finalize`]: Python's
/// `weakref.finalize` object.
///
/// The finalizer calls its closure once, when its object dies (its last
/// handle dropped or the cycle collector freed it), when
/// [`call`](Self::call) is used, or at exit, when the object's heap is
/// dropped (see [`Heap::run_exit_finalizers`]), whichever comes first;
/// never twice. It
/// stays registered when every `Finalizer` handle is dropped, like Python's.
/// The closure must not hold a strong handle to the object, or the object
/// never dies.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use rcgc::{finalize, Heap};
///
/// let heap = Heap::new();
/// let file = heap.alloc(String::from("data.txt"));
/// let closed = Rc::new(Cell::new(false));
/// let flag = closed.clone();
/// let f = finalize(&file, move || flag.set(true));
/// assert!(f.alive());
/// drop(file); // the object dies: the finalizer runs now
/// assert!(closed.get());
/// assert!(!f.alive());
/// assert_eq!(f.call(), None); // at most once
/// ```
pub struct Finalizer<T: Trace + ?Sized + 'static, F = Box<dyn FnOnce()>> {
    state: Rc<State<T, F>>,
}

/// Registers `func` to be called when `object` dies, or at exit if it is
/// still alive then (Python's `weakref.finalize(obj, func)`). Several
/// finalizers on one object run in reverse creation order.
///
/// # Panics
/// Like [`Gc::downgrade`], if the object's heap has no room for its weak record.
pub fn finalize<T, F, R>(object: &Gc<T>, func: F) -> Finalizer<T, F>
where
    T: Trace + ?Sized + 'static,
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    Finalizer::new(object, func)
}

impl<T: Trace + ?Sized + 'static, F: FnOnce() -> R + 'static, R: 'static> Finalizer<T, F> {
    /// Same as [`finalize`].
    pub fn new(object: &Gc<T>, func: F) -> Finalizer<T, F> {
        // Past thread exit there is no registry: the finalizer then lives
        // only as long as its handles.
        let id = REGISTRY.try_with(Registry::new_id).ok();
        let state = Rc::new_cyclic(|me: &RcWeak<State<T, F>>| {
            let me = me.clone();
            let weak = WeakRef::new(object, move || {
                if let Some(state) = me.upgrade() {
                    state.run();
                }
            });
            State {
                id: id.unwrap_or(u64::MAX),
                heap: weak.raw.heap().as_ptr() as usize,
                atexit: Cell::new(true),
                armed: RefCell::new(Some(Armed { weak, func })),
            }
        });
        if let Some(id) = id {
            let _ = REGISTRY.try_with(|r| r.add(id, state.clone()));
            if let Some(armed) = state.armed.borrow().as_ref() {
                hook(armed.weak.raw.heap());
            }
        }
        Finalizer { state }
    }

    /// Runs the closure now if the finalizer is alive, returning its result
    /// (Python's `f()`); `None` if it already ran or was detached.
    pub fn call(&self) -> Option<R> {
        self.state.disarm().map(|func| func())
    }
}

impl<T: Trace + ?Sized + 'static, F> Finalizer<T, F> {
    /// Whether the finalizer has neither run nor been detached.
    pub fn alive(&self) -> bool {
        self.state.armed.borrow().is_some()
    }

    /// Unregisters the finalizer without running it and returns the object
    /// and the closure (Python's `detach()`); `None` if it is no longer
    /// alive or its object is dead.
    pub fn detach(&self) -> Option<(Gc<T>, F)> {
        let object = self.peek()?;
        let func = self.state.disarm()?;
        Some((object, func))
    }

    /// The object, if the finalizer is alive and the object too (Python's
    /// `peek()`, which also returns the function and arguments: a Rust
    /// closure owns its arguments, and [`detach`](Self::detach) hands it back).
    pub fn peek(&self) -> Option<Gc<T>> {
        self.state.armed.borrow().as_ref()?.weak.upgrade()
    }

    /// Whether the finalizer runs at exit if still alive then (default true).
    pub fn atexit(&self) -> bool {
        self.state.atexit.get()
    }

    /// Sets whether the finalizer runs at exit if still alive then
    /// (Python's `f.atexit = False`).
    pub fn set_atexit(&self, atexit: bool) {
        self.state.atexit.set(atexit);
    }
}

impl<T: Trace + ?Sized + 'static, F> Clone for Finalizer<T, F> {
    /// Another handle to the same finalizer.
    fn clone(&self) -> Self {
        Finalizer {
            state: self.state.clone(),
        }
    }
}

impl<T: Trace + ?Sized + 'static, F> fmt::Debug for Finalizer<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finalizer")
            .field("alive", &self.alive())
            .field("atexit", &self.atexit())
            .finish()
    }
}

/// Runs the exit procedure for the finalizers of the heap `heap`, reporting
/// panics on `inner`'s debug sink; returns how many ran.
fn run_exit(heap: usize, inner: &HeapInner) -> usize {
    let mut ran = 0;
    let mut pending: Vec<(u64, Rc<dyn Registered>)> = Vec::new();
    let mut first = true;
    loop {
        let dirty = REGISTRY.try_with(|r| r.dirty.get()).unwrap_or(false);
        if first || dirty {
            first = false;
            pending = REGISTRY.try_with(|r| r.select(Some(heap))).unwrap_or_default();
        }
        let Some((_, entry)) = pending.pop() else { break };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| entry.run())) {
            inner.report_panic(format_args!("a finalizer run at exit"), &*panic);
        }
        ran += 1;
    }
    // The others never run (CPython sets its shutdown flag).
    let rest: Vec<Rc<dyn Registered>> = REGISTRY
        .try_with(|r| {
            r.entries
                .borrow()
                .values()
                .filter(|e| e.heap() == heap)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for entry in rest {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| entry.kill())) {
            inner.report_panic(format_args!("dropping a finalizer at exit"), &*panic);
        }
    }
    ran
}

impl Heap {
    /// The exit procedure of Python's `weakref.finalize` for this heap's
    /// objects: runs the alive finalizers whose `atexit` flag is set, newest
    /// first (one registered meanwhile runs next), with automatic collection
    /// disabled, and detaches the others, which then never run. Panics are
    /// reported on the debug sink and the rest still run. Returns how many ran.
    ///
    /// Dropping the heap runs it (before the final collection), so calling
    /// it is only needed to run the exit finalizers earlier. Finalizers of a
    /// heap that is never dropped run when their thread exits.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use rcgc::{finalize, Heap};
    ///
    /// let heap = Heap::new();
    /// let obj = heap.alloc(1u32);
    /// let ran = Rc::new(Cell::new(0));
    /// let r = ran.clone();
    /// let _f = finalize(&obj, move || r.set(r.get() + 1));
    /// assert_eq!(heap.run_exit_finalizers(), 1);
    /// drop(obj); // already ran: not again
    /// assert_eq!(ran.get(), 1);
    /// ```
    pub fn run_exit_finalizers(&self) -> usize {
        let _no_gc = self.disabled();
        run_exit(self.inner() as *const HeapInner as usize, self.inner())
    }
}
