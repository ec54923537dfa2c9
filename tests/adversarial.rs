//! Adversarial user code: `Drop` impls, finalizers, weak-reference callbacks
//! and `gc` callbacks that panic, allocate, drop other handles, resurrect,
//! stash handles to torn-down objects or create new cycles while a
//! collection runs; a `Heap` dropped under live handles with finalizers
//! still to run; memory limits reached in the middle of building a cycle or
//! inside a finalizer. Each test's name states the expected behaviour, and
//! the test asserts it (Miri checks that none of it is undefined behaviour).
//!
//! The cases already covered elsewhere are not repeated here:
//! `tests/collector.rs` (panicking finalizers on both paths, panicking
//! `Drop` during teardown, panicking gc callbacks and `Trace` impls,
//! `Trace` impls that drop handles, under- and over-report; a mutably
//! borrowed `RefCell`; `collect()` from finalizers, `Drop` and callbacks;
//! finalizers that allocate at threshold 1; heaps dropped with live
//! handles), `tests/weak_callbacks.rs` (panicking and collecting weak
//! callbacks), `tests/handles.rs` (a limit reached while building a list).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use rcgc::alloc::AllocErrorKind;
use rcgc::{DebugFlags, Finalize, Gc, GcPhase, Heap, Trace, Weak};

mod common;
use common::{panic_message, size, Counter, Sink};

type DropHook = Box<dyn FnOnce(&Node)>;
type FinalizeHook = Rc<dyn Fn(&Gc<Fin>)>;

/// A node whose `Drop` runs a hook (and counts).
#[derive(Trace)]
struct Node {
    next: RefCell<Vec<Gc<Node>>>,
    #[trace(skip)]
    drops: Counter,
    #[trace(skip)]
    on_drop: RefCell<Option<DropHook>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.drops.bump();
        if let Some(hook) = self.on_drop.borrow_mut().take() {
            hook(self);
        }
    }
}

fn node(heap: &Heap, drops: &Counter) -> Gc<Node> {
    heap.alloc(Node {
        next: RefCell::new(Vec::new()),
        drops: drops.clone(),
        on_drop: RefCell::new(None),
    })
}

fn node_with(heap: &Heap, drops: &Counter, hook: impl FnOnce(&Node) + 'static) -> Gc<Node> {
    let n = node(heap, drops);
    *n.on_drop.borrow_mut() = Some(Box::new(hook));
    n
}

fn link(from: &Gc<Node>, to: &Gc<Node>) {
    from.next.borrow_mut().push(to.clone());
}

/// A garbage self-cycle.
fn self_cycle(heap: &Heap, drops: &Counter) {
    let n = node(heap, drops);
    link(&n, &n);
}

/// A node with a finalizer running a hook.
#[derive(Trace)]
#[trace(finalize)]
struct Fin {
    next: RefCell<Vec<Gc<Fin>>>,
    #[trace(skip)]
    finals: Counter,
    #[trace(skip)]
    drops: Counter,
    #[trace(skip)]
    hook: FinalizeHook,
}

impl Finalize for Fin {
    fn finalize(this: &Gc<Self>) {
        this.finals.bump();
        (this.hook)(this);
    }
}

impl Drop for Fin {
    fn drop(&mut self) {
        self.drops.bump();
    }
}

fn fin(heap: &Heap, finals: &Counter, drops: &Counter, hook: impl Fn(&Gc<Fin>) + 'static) -> Gc<Fin> {
    heap.alloc(Fin {
        next: RefCell::new(Vec::new()),
        finals: finals.clone(),
        drops: drops.clone(),
        hook: Rc::new(hook),
    })
}

// ---------------------------------------------------------------------------
// Panics.
// ---------------------------------------------------------------------------

/// On the reference-count path a panicking `Drop` behaves as with `Rc`: the
/// panic reaches the code that dropped the last handle, and the object's
/// fields and memory are released on the way.
#[test]
fn a_panicking_drop_on_the_refcount_path_propagates_and_still_frees_the_object() {
    let heap = Heap::new();
    let drops = Counter::default();
    let child = node(&heap, &drops);
    let parent = node_with(&heap, &drops, |_| panic!("drop exploded"));
    link(&parent, &child);
    drop(child);
    let result = catch_unwind(AssertUnwindSafe(move || drop(parent)));
    assert_eq!(panic_message(&*result.unwrap_err()), "drop exploded");
    assert_eq!(drops.get(), 2, "the panicking node and its child were dropped");
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
    // The heap is fully usable afterwards.
    self_cycle(&heap, &drops);
    assert_eq!(heap.collect(), 1);
}

/// A leaf whose `Drop` panics, and a chain of acyclic objects (which carry
/// the leaf header) with one such `Drop` in the middle: the panic reaches
/// the code that dropped the last handle, and every block is freed all the
/// same, also past the depth where the acyclic releases are queued.
#[test]
fn a_panicking_drop_of_a_leaf_or_an_acyclic_object_still_frees_the_blocks() {
    #[derive(Trace)]
    struct Boom(u64);
    impl Drop for Boom {
        fn drop(&mut self) {
            panic!("leaf drop exploded")
        }
    }
    #[derive(Trace)]
    #[trace(acyclic)]
    struct Link {
        next: Option<Gc<Link>>,
        explode: bool,
    }
    impl Drop for Link {
        fn drop(&mut self) {
            if self.explode {
                panic!("acyclic drop exploded")
            }
        }
    }
    let heap = Heap::new();
    let leaf = heap.alloc(Boom(1));
    assert_eq!(leaf.0, 1);
    let result = catch_unwind(AssertUnwindSafe(move || drop(leaf)));
    assert_eq!(panic_message(&*result.unwrap_err()), "leaf drop exploded");
    assert_eq!((heap.object_count(), heap.bytes_in_use()), (0, 0));

    let n = size(1_000, 300);
    let mut head: Option<Gc<Link>> = None;
    for i in 0..n {
        head = Some(heap.alloc(Link {
            next: head.take(),
            explode: i == n / 2,
        }));
    }
    let result = catch_unwind(AssertUnwindSafe(move || drop(head)));
    assert_eq!(panic_message(&*result.unwrap_err()), "acyclic drop exploded");
    assert_eq!((heap.object_count(), heap.bytes_in_use()), (0, 0));
}

/// A chain of `n` nodes (each holding the next) whose nodes at the indices
/// in `panicking` panic in `Drop` with "drop <i> exploded"; returns the head.
fn chain(heap: &Heap, drops: &Counter, n: usize, panicking: &[usize]) -> Gc<Node> {
    let head = node(heap, drops);
    let mut tail = head.clone();
    for i in 1..n {
        let next = if panicking.contains(&i) {
            node_with(heap, drops, move |_| panic!("drop {i} exploded"))
        } else {
            node(heap, drops)
        };
        link(&tail, &next);
        tail = next;
    }
    head
}

/// A panicking `Drop` deep inside a long release cascade (past the depth
/// where releases are queued instead of nested) still lets every node of
/// the chain be dropped and freed by the time the panic reaches the caller.
#[test]
fn a_panicking_drop_deep_in_a_release_cascade_frees_the_whole_chain() {
    let heap = Heap::new();
    let drops = Counter::default();
    let n = 2 * rcgc::MAX_RELEASE_DEPTH as usize + 10;
    let head = chain(&heap, &drops, n, &[n / 2]);
    let result = catch_unwind(AssertUnwindSafe(move || drop(head)));
    assert_eq!(panic_message(&*result.unwrap_err()), format!("drop {} exploded", n / 2));
    assert_eq!(drops.get(), n, "every node of the chain was dropped");
    assert_eq!(heap.object_count(), 0, "every node of the chain was freed");
    assert_eq!(heap.bytes_in_use(), 0);
    // The heap is fully usable afterwards.
    self_cycle(&heap, &drops);
    assert_eq!(heap.collect(), 1);
}

/// A `Drop` that panics in the nested part of a long cascade (before any
/// release was queued): the nodes below it are released as the panic
/// unwinds, and the queued rest of the chain still runs before the panic
/// reaches the caller.
#[test]
fn a_panicking_drop_early_in_a_long_release_cascade_frees_the_whole_chain() {
    let heap = Heap::new();
    let drops = Counter::default();
    let n = 3 * rcgc::MAX_RELEASE_DEPTH as usize + 6;
    let head = chain(&heap, &drops, n, &[10]);
    let result = catch_unwind(AssertUnwindSafe(move || drop(head)));
    assert_eq!(panic_message(&*result.unwrap_err()), "drop 10 exploded");
    assert_eq!(drops.get(), n, "every node of the chain was dropped");
    assert_eq!(heap.object_count(), 0, "every node of the chain was freed");
    assert_eq!(heap.bytes_in_use(), 0);
}

/// Two panicking `Drop`s in one long cascade, one in the nested part and
/// one in a queued part: the first panic reaches the caller, the second is
/// reported on the heap's debug sink, and every node is dropped and freed.
#[test]
fn two_panicking_drops_in_a_release_cascade_propagate_the_first_and_report_the_second() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let drops = Counter::default();
    let depth = rcgc::MAX_RELEASE_DEPTH as usize;
    let n = 3 * depth + 6;
    let (early, late) = (5, 2 * depth + 3);
    let head = chain(&heap, &drops, n, &[early, late]);
    let result = catch_unwind(AssertUnwindSafe(move || drop(head)));
    assert_eq!(panic_message(&*result.unwrap_err()), format!("drop {early} exploded"));
    let report = sink.text();
    assert!(report.contains(&format!("drop {late} exploded")), "{report}");
    assert!(!report.contains(&format!("drop {early} exploded")), "{report}");
    assert_eq!(drops.get(), n, "every node of the chain was dropped");
    assert_eq!(heap.object_count(), 0, "every node of the chain was freed");
    assert_eq!(heap.bytes_in_use(), 0);
}

/// A cascade that panics after the `Heap` was dropped: the queued releases
/// still run, and the heap's state is freed with the last node (Miri would
/// report it leaked otherwise).
#[test]
fn a_panicking_release_cascade_after_the_heap_is_gone_frees_the_heap_state() {
    let heap = Heap::new();
    let drops = Counter::default();
    let n = 2 * rcgc::MAX_RELEASE_DEPTH as usize + 10;
    let head = chain(&heap, &drops, n, &[3, n - 2]);
    let sink = Sink::attach(&heap);
    drop(heap);
    let result = catch_unwind(AssertUnwindSafe(move || drop(head)));
    assert_eq!(panic_message(&*result.unwrap_err()), "drop 3 exploded");
    assert!(
        sink.text().contains(&format!("drop {} exploded", n - 2)),
        "{}",
        sink.text()
    );
    assert_eq!(drops.get(), n, "every node of the chain was dropped");
}

/// A finalizer that resurrects its object and then panics: the panic is
/// reported, the resurrection stands, and the finalizer never runs again.
#[test]
fn a_finalizer_that_resurrects_then_panics_keeps_its_object_and_runs_once() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let (finals, drops) = (Counter::default(), Counter::default());
    let saved: Rc<RefCell<Vec<Gc<Fin>>>> = Rc::default();
    let keep = saved.clone();
    let a = fin(&heap, &finals, &drops, move |this| {
        keep.borrow_mut().push(this.clone());
        panic!("resurrected, then exploded");
    });
    a.next.borrow_mut().push(a.clone()); // a self-cycle
    drop(a);
    assert_eq!(heap.collect(), 0, "resurrected: nothing freed");
    assert!(sink.text().contains("resurrected, then exploded"), "{}", sink.text());
    assert_eq!((finals.get(), drops.get()), (1, 0));
    let a = saved.borrow_mut().pop().unwrap();
    assert!(Gc::is_alive(&a) && heap.is_finalized(&a));
    drop(a);
    assert_eq!(heap.collect(), 1);
    assert_eq!((finals.get(), drops.get()), (1, 1), "finalized once, dropped once");
}

// ---------------------------------------------------------------------------
// Allocating, dropping handles and creating cycles while a collection runs.
// ---------------------------------------------------------------------------

/// `gc` callbacks that allocate at both phases (even at threshold 1, where
/// every tracked allocation would collect), and weak callbacks and `Drop`
/// impls that allocate during a collection: no collection nests, the new
/// objects are valid, and the next collection finds them.
#[test]
fn code_allocating_during_a_collection_gets_valid_objects_and_no_nested_collection() {
    let heap = Rc::new(Heap::new());
    heap.set_threshold([1, 1, 1]);
    let drops = Counter::default();
    let made: Rc<RefCell<Vec<Gc<Node>>>> = Rc::default();
    let running = Rc::new(Cell::new(false));
    let (h, out, d, r) = (Rc::downgrade(&heap), made.clone(), drops.clone(), running.clone());
    heap.add_gc_callback(move |phase, _| {
        assert!(!(phase == GcPhase::Start && r.get()), "a collection nested in another");
        r.set(phase == GcPhase::Start);
        let heap = h.upgrade().unwrap();
        // A new garbage cycle and a kept node, during the collection.
        self_cycle(&heap, &d);
        out.borrow_mut().push(node(&heap, &d));
    });
    // A weak callback and a Drop that allocate during the teardown.
    let victim = node(&heap, &drops);
    link(&victim, &victim);
    let (h, out, d) = (Rc::downgrade(&heap), made.clone(), drops.clone());
    let _weak = Gc::downgrade_with_callback(&victim, move |_: &Weak<Node>| {
        out.borrow_mut().push(node(&h.upgrade().unwrap(), &d));
    });
    let (h, out, d) = (Rc::downgrade(&heap), made.clone(), drops.clone());
    *victim.on_drop.borrow_mut() = Some(Box::new(move |_| {
        out.borrow_mut().push(node(&h.upgrade().unwrap(), &d));
    }));
    drop(victim);
    heap.set_threshold([0, 1, 1]);
    running.set(false);
    let found = heap.collect();
    assert!(found >= 1, "the victim was found");
    assert!(
        made.borrow().len() >= 4,
        "both callbacks, the weak callback and Drop allocated"
    );
    for n in made.borrow().iter() {
        assert!(Gc::is_alive(n) && n.next.borrow().is_empty());
    }
    // The cycles made during the collection are garbage for the next one.
    made.borrow_mut().clear();
    heap.set_threshold([0, 1, 1]);
    let before = drops.get();
    assert!(
        heap.collect() >= 1,
        "the cycles made by the callbacks are collected next time"
    );
    assert!(drops.get() > before);
}

/// A weak callback owning the last handle to another object drops it when
/// it runs (during a collection): that object is freed by reference
/// counting then, with its finalizer run once; the collection completes.
#[test]
fn a_weak_callback_dropping_the_last_handle_to_another_object_frees_it_during_the_collection() {
    let heap = Heap::new();
    let (finals, drops) = (Counter::default(), Counter::default());
    let other = fin(&heap, &finals, &drops, |_| {});
    let garbage = node(&heap, &drops);
    link(&garbage, &garbage);
    let held = RefCell::new(Some(other));
    let ran = Counter::default();
    let r = ran.clone();
    let _weak = Gc::downgrade_with_callback(&garbage, move |_: &Weak<Node>| {
        r.bump();
        drop(held.borrow_mut().take());
    });
    drop(garbage);
    assert_eq!(heap.collect(), 1);
    assert_eq!(ran.get(), 1);
    assert_eq!((finals.get(), drops.get()), (1, 2), "the other object and the garbage");
    assert_eq!(heap.object_count(), 0);
}

/// A `gc` callback holding the only handle to a cycle drops it at the start
/// of a collection: the cycle is garbage before detection and is freed by
/// that same collection.
#[test]
fn a_gc_callback_releasing_a_cycle_at_start_has_it_collected_by_that_collection() {
    let heap = Heap::new();
    let drops = Counter::default();
    let cycle = node(&heap, &drops);
    link(&cycle, &cycle);
    let held = RefCell::new(Some(cycle));
    heap.add_gc_callback(move |phase, _| {
        if phase == GcPhase::Start {
            drop(held.borrow_mut().take());
        }
    });
    assert_eq!(heap.collect(), 1);
    assert_eq!(drops.get(), 1);
}

/// Finalizers of a garbage cycle that build a new cycle and hang it off a
/// live object: the new objects are not part of this collection; they live
/// while reachable and are collected once they are garbage.
#[test]
fn finalizers_creating_new_cycles_during_a_collection_leave_them_intact_and_collectable() {
    let heap = Rc::new(Heap::new());
    let (finals, drops) = (Counter::default(), Counter::default());
    let anchor = node(&heap, &drops);
    let (h, a, d) = (Rc::downgrade(&heap), anchor.clone(), drops.clone());
    let builds = move |_: &Gc<Fin>| {
        let heap = h.upgrade().unwrap();
        let x = node(&heap, &d);
        let y = node(&heap, &d);
        link(&x, &y);
        link(&y, &x);
        link(&a, &x);
    };
    let p = fin(&heap, &finals, &drops, builds.clone());
    let q = fin(&heap, &finals, &drops, builds);
    p.next.borrow_mut().push(q.clone());
    q.next.borrow_mut().push(p.clone());
    drop((p, q));
    assert_eq!(heap.collect(), 2, "only the finalized cycle");
    assert_eq!((finals.get(), drops.get()), (2, 2));
    assert_eq!(anchor.next.borrow().len(), 2);
    for x in anchor.next.borrow().iter() {
        assert!(Gc::is_alive(x) && Gc::is_alive(&x.next.borrow()[0]));
    }
    anchor.next.borrow_mut().clear();
    assert_eq!(heap.collect(), 4, "the two new cycles");
    assert_eq!(drops.get(), 6);
}

// ---------------------------------------------------------------------------
// Resurrection from Drop.
// ---------------------------------------------------------------------------

/// A `Drop` run by the collector's teardown that moves its object's handle
/// to itself somewhere else: the handle is *dead* (its value is gone) but
/// never dangling — `is_alive` is false, `try_deref` is `None`, deref
/// panics with a clear message — and the memory goes with the last handle.
#[test]
fn a_drop_stashing_a_handle_to_its_torn_down_self_gets_a_dead_handle_never_a_dangling_one() {
    #[derive(Trace)]
    struct Stasher {
        me: RefCell<Option<Gc<Stasher>>>,
        #[trace(skip)]
        stash: Rc<RefCell<Option<Gc<Stasher>>>>,
    }
    impl Drop for Stasher {
        fn drop(&mut self) {
            *self.stash.borrow_mut() = self.me.borrow_mut().take();
        }
    }
    let heap = Heap::new();
    heap.set_debug(DebugFlags::UNCOLLECTABLE);
    let sink = Sink::attach(&heap);
    let stash: Rc<RefCell<Option<Gc<Stasher>>>> = Rc::default();
    let s = heap.alloc(Stasher {
        me: RefCell::new(None),
        stash: stash.clone(),
    });
    *s.me.borrow_mut() = Some(s.clone());
    drop(s);
    assert_eq!(heap.collect(), 1);
    let dead = stash.borrow_mut().take().expect("the Drop stashed its handle");
    assert!(!Gc::is_alive(&dead));
    assert!(Gc::try_deref(&dead).is_none());
    assert_eq!(heap.object_count(), 1, "the block stays while the handle exists");
    assert!(
        sink.text().contains("torn down while 1 handle(s) remain"),
        "{}",
        sink.text()
    );
    let result = catch_unwind(AssertUnwindSafe(|| dead.me.borrow().is_some()));
    assert!(panic_message(&*result.unwrap_err()).contains("dead"));
    drop(dead);
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
}

/// The collector's teardown drops every garbage value before it frees any
/// garbage block. A `Drop` that makes weak references to the other garbage
/// in the middle of it (here each node of a 2-cycle downgrades its partner,
/// which is torn down before or after it) gets weak references that never
/// upgrade, with or without a callback; the weak records and every block
/// are freed, and each callback runs once, never seeing its referent alive.
#[test]
fn a_drop_downgrading_other_garbage_during_teardown_gets_weak_references_that_never_upgrade() {
    let heap = Heap::new();
    let drops = Counter::default();
    let weaks: Rc<RefCell<Vec<Weak<Node>>>> = Rc::default();
    let callbacks = Counter::default();
    let hook = |weaks: &Rc<RefCell<Vec<Weak<Node>>>>, callbacks: &Counter| {
        let (weaks, callbacks) = (weaks.clone(), callbacks.clone());
        move |node: &Node| {
            let partner = node.next.borrow()[0].clone();
            weaks.borrow_mut().push(Gc::downgrade(&partner));
            let callbacks = callbacks.clone();
            weaks
                .borrow_mut()
                .push(Gc::downgrade_with_callback(&partner, move |weak| {
                    assert!(weak.upgrade().is_none());
                    callbacks.bump();
                }));
        }
    };
    let x = node_with(&heap, &drops, hook(&weaks, &callbacks));
    let y = node_with(&heap, &drops, hook(&weaks, &callbacks));
    link(&x, &y);
    link(&y, &x);
    drop((x, y));
    assert_eq!(heap.collect(), 2);
    assert_eq!(drops.get(), 2);
    assert_eq!(weaks.borrow().len(), 4);
    assert!(weaks.borrow().iter().all(|weak| weak.upgrade().is_none()));
    assert_eq!(
        callbacks.get(),
        2,
        "each callback runs once, when its referent is freed"
    );
    weaks.borrow_mut().clear();
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
}

// ---------------------------------------------------------------------------
// Heap lifetime.
// ---------------------------------------------------------------------------

/// Dropping the heap while handles to objects with finalizers live: the
/// garbage is finalized at the drop; the live objects keep working, and
/// their finalizers run when their last handles go, may resurrect them
/// and may allocate (on the thread's default heap, the dropped one being
/// gone); the last block then frees the heap's state (Miri checks leaks).
#[test]
fn a_heap_dropped_under_live_handles_runs_their_finalizers_later_when_the_handles_go() {
    let heap = Heap::new();
    let (finals, drops) = (Counter::default(), Counter::default());
    let saved: Rc<RefCell<Vec<Gc<Fin>>>> = Rc::default();
    let allocated: Rc<RefCell<Vec<Gc<u64>>>> = Rc::default();
    let (keep, made) = (saved.clone(), allocated.clone());
    let live = fin(&heap, &finals, &drops, move |this| {
        if keep.borrow().is_empty() {
            keep.borrow_mut().push(this.clone()); // resurrect once
        }
        made.borrow_mut().push(Gc::new(7));
    });
    let garbage = fin(&heap, &finals, &drops, |_| {});
    garbage.next.borrow_mut().push(garbage.clone());
    drop(garbage);
    drop(heap);
    assert_eq!(
        (finals.get(), drops.get()),
        (1, 1),
        "the garbage was finalized and freed at the drop"
    );
    assert_eq!(live.next.borrow().len(), 0, "live objects still work");
    drop(live);
    assert_eq!((finals.get(), drops.get()), (2, 1), "finalized, resurrected");
    assert_eq!(*allocated.borrow()[0], 7);
    let live = saved.borrow_mut().pop().unwrap();
    drop(live);
    assert_eq!((finals.get(), drops.get()), (2, 2), "finalized once, then freed");
    allocated.borrow_mut().clear();
}

// ---------------------------------------------------------------------------
// Memory limits.
// ---------------------------------------------------------------------------

/// A limit reached while building a ring of nodes with weak back-references
/// (by an allocation or by the first weak reference to an object): the
/// error is returned, the part built so far is intact, and once dropped it
/// is collected to the last byte.
#[test]
fn a_limit_reached_mid_cycle_returns_an_error_and_leaves_the_partial_ring_intact_and_collectable() {
    #[derive(Trace)]
    struct Ring {
        #[trace(skip)]
        index: usize,
        next: RefCell<Option<Gc<Ring>>>,
        back: RefCell<Option<Weak<Ring>>>,
    }
    let heap = Heap::new();
    heap.set_limit(Some(heap.bytes_in_use() + 2048));
    let first = heap
        .try_alloc(Ring {
            index: 0,
            next: RefCell::new(None),
            back: RefCell::new(None),
        })
        .unwrap();
    let mut last = first.clone();
    let err = loop {
        let next = match heap.try_alloc(Ring {
            index: last.index + 1,
            next: RefCell::new(Some(first.clone())), // closes the ring
            back: RefCell::new(None),
        }) {
            Ok(next) => next,
            Err(err) => break err,
        };
        match Gc::try_downgrade(&last) {
            Ok(weak) => *next.back.borrow_mut() = Some(weak),
            Err(err) => break err,
        }
        *last.next.borrow_mut() = Some(next.clone());
        last = next;
    };
    assert!(matches!(err.kind(), AllocErrorKind::LimitExceeded { .. }), "{err}");
    assert!(heap.bytes_in_use() <= heap.limit().unwrap());
    // Walk the ring: every node links forward and (but the first) back.
    let built = last.index + 1;
    assert!(built > 3, "some nodes were built");
    let mut cursor = first.clone();
    for i in 0..built {
        assert_eq!(cursor.index, i);
        if i > 0 {
            let back = cursor.back.borrow().as_ref().unwrap().upgrade().unwrap();
            assert_eq!(back.index, i - 1);
        }
        let next = cursor.next.borrow().clone().unwrap();
        cursor = next;
    }
    assert!(Gc::ptr_eq(&cursor, &first), "the ring is closed");
    drop((first, last, cursor));
    heap.set_limit(None);
    assert_eq!(heap.collect(), built);
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
}

/// A finalizer that allocates under a full limit gets the error (it does
/// not panic or abort the collection), and the collection frees the cycle.
#[test]
fn a_limit_reached_inside_a_finalizer_is_an_error_there_and_the_collection_completes() {
    let heap = Rc::new(Heap::new());
    let (finals, drops) = (Counter::default(), Counter::default());
    let errors = Counter::default();
    let (h, e) = (Rc::downgrade(&heap), errors.clone());
    let a = fin(&heap, &finals, &drops, move |_| {
        let heap = h.upgrade().unwrap();
        match heap.try_alloc(0u64) {
            Err(err) if matches!(err.kind(), AllocErrorKind::LimitExceeded { .. }) => e.bump(),
            other => panic!("expected the limit error, got {:?}", other.map(|_| ())),
        }
    });
    a.next.borrow_mut().push(a.clone());
    drop(a);
    heap.set_limit(Some(heap.bytes_in_use()));
    assert_eq!(heap.collect(), 1);
    assert_eq!((finals.get(), drops.get(), errors.get()), (1, 1, 1));
    assert_eq!(heap.object_count(), 0);
}

/// The target of a wrong `Trace` impl's dropped handle: tracked (it may own
/// a handle), counting its drops.
#[derive(Trace)]
struct Target {
    _next: RefCell<Option<Gc<Target>>>,
    #[trace(skip)]
    drops: Counter,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.drops.bump();
    }
}

fn target(heap: &Heap, drops: &Counter) -> Gc<Target> {
    heap.alloc(Target {
        _next: RefCell::new(None),
        drops: drops.clone(),
    })
}

/// A wrong `Trace` impl: it reports its handle to a `Target`, then drops
/// that handle (the last one) while the trace still runs. If the target's
/// heap is not the one collecting, the target is freed at once; if it is,
/// its release is queued.
struct DropsWhileTracing {
    target: RefCell<Option<Gc<Target>>>,
    cycle: RefCell<Option<Gc<DropsWhileTracing>>>,
}

// SAFETY: deliberately wrong (drops a handle while tracing), to check that
// the collector stays memory-safe.
unsafe impl Trace for DropsWhileTracing {
    fn trace(&self, tracer: &mut rcgc::Tracer<'_>) {
        self.target.trace(tracer);
        self.cycle.trace(tracer);
        if let Ok(mut target) = self.target.try_borrow_mut() {
            drop(target.take());
        }
    }
}

/// A self-cycle of `DropsWhileTracing` on `heap` holding the only handle to
/// `target`, made garbage (and flagged, so that it is traced).
fn drops_while_tracing(heap: &Heap, target: Gc<Target>) {
    let a = heap.alloc(DropsWhileTracing {
        target: RefCell::new(Some(target)),
        cycle: RefCell::new(None),
    });
    *a.cycle.borrow_mut() = Some(a.clone());
}

#[test]
fn a_trace_dropping_a_reported_handle_to_another_heap_frees_it_and_the_collection_stays_sound() {
    let heap = Heap::new();
    let other = Heap::new();
    let drops = Counter::default();
    let foreign = target(&other, &drops);
    let weak = Gc::downgrade(&foreign);
    drops_while_tracing(&heap, foreign);
    assert_eq!(heap.collect(), 1);
    assert!(weak.upgrade().is_none());
    assert_eq!(drops.get(), 1);
    drop(other);
}

/// The referent's release is queued (the heap is tracing), its count is 0,
/// and the reported edge still makes it look like garbage: the teardown
/// must leave it to the queued release, which frees it once (Miri checks
/// that nothing reads its block afterwards).
#[test]
fn a_trace_dropping_a_reported_handle_of_its_own_heap_leaves_the_object_to_its_queued_release() {
    let heap = Heap::new();
    let drops = Counter::default();
    drops_while_tracing(&heap, target(&heap, &drops));
    heap.collect();
    assert_eq!(drops.get(), 1, "freed once, by its queued release");
    let more: Vec<Gc<Target>> = (0..8).map(|_| target(&heap, &drops)).collect();
    assert_eq!(heap.object_count(), more.len());
    drop(more);
    assert_eq!(heap.object_count(), 0);
}

/// The incremental collector's region scan traces an old object whose
/// `Trace` reports a handle to another heap's object and then drops it
/// (freeing it: that heap is not collecting). The scan must not look at the
/// freed object afterwards (Miri checks).
#[test]
fn an_incremental_step_tracing_a_handle_dropped_while_tracing_stays_sound() {
    let heap = Heap::with_policy(common::AtCheckpoint::steps(100));
    let other = Heap::new();
    let drops = Counter::default();
    let foreign = target(&other, &drops);
    let weak = Gc::downgrade(&foreign);
    let a = heap.alloc(DropsWhileTracing {
        target: RefCell::new(Some(foreign)),
        cycle: RefCell::new(None),
    });
    heap.collect(); // `a` is old now, and still holds the foreign handle
    assert!(weak.upgrade().is_some());
    // A step's region scan traces `a` once it is pending (objects promoted
    // during a pass are pending from the next one).
    for _ in 0..3 {
        heap.checkpoint();
    }
    assert!(weak.upgrade().is_none(), "the trace dropped the last handle");
    assert_eq!(drops.get(), 1);
    drop(a);
    drop(other);
}
