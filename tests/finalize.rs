//! `finalize` / `Finalizer`: CPython's `weakref.finalize` (behaviours 84–87).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rcgc::{finalize, Finalizer, Gc, Heap, Trace};

mod common;
use common::Sink;

type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, line: &str) -> impl FnOnce() + 'static {
    let (log, line) = (log.clone(), line.to_string());
    move || log.borrow_mut().push(line)
}

#[derive(Trace)]
struct Node {
    next: RefCell<Option<Gc<Node>>>,
}

/// Behaviour 84: `alive`, `peek`, calling runs the closure once and
/// returns its result, later calls return nothing, `detach` unregisters
/// and hands back the object and closure; when the object dies the closure
/// runs automatically, once.
#[test]
fn finalizer_handle_api() {
    let heap = Heap::new();
    let obj = heap.alloc(String::from("obj"));
    let f = finalize(&obj, || 42);
    assert!(f.alive());
    assert!(Gc::ptr_eq(&f.peek().unwrap(), &obj));
    assert_eq!(f.call(), Some(42));
    assert!(!f.alive());
    assert_eq!(f.call(), None);
    assert!(f.peek().is_none());
    assert!(f.detach().is_none());

    let g = finalize(&obj, || String::from("detached"));
    let (o, func) = g.detach().unwrap();
    assert!(Gc::ptr_eq(&o, &obj));
    assert!(!g.alive());
    assert_eq!(func(), "detached");
    drop(o);

    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let h = finalize(&obj, move || r.set(r.get() + 1));
    drop(obj);
    assert_eq!(ran.get(), 1);
    assert!(!h.alive());
    assert_eq!(h.call(), None);
    assert_eq!(ran.get(), 1);
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 84: an object dying in a cycle runs its finalizers at `collect()`.
#[test]
fn finalizer_runs_when_the_collector_frees_the_object() {
    let heap = Heap::new();
    let log = Log::default();
    let a = heap.alloc(Node {
        next: RefCell::new(None),
    });
    *a.next.borrow_mut() = Some(a.clone());
    let f = finalize(&a, push(&log, "a"));
    drop(a);
    assert!(f.alive(), "garbage, not yet collected");
    assert_eq!(heap.collect(), 1);
    assert_eq!(*log.borrow(), ["a"]);
    assert!(!f.alive());
}

/// Behaviour 85: several finalizers on one object run in reverse creation
/// order; they stay registered when their handles are dropped; detached
/// ones and already-called ones do not run.
#[test]
fn finalizers_run_in_reverse_order_and_stay_registered() {
    let heap = Heap::new();
    let log = Log::default();
    let obj = heap.alloc(1u32);
    let f1 = finalize(&obj, push(&log, "f1"));
    drop(finalize(&obj, push(&log, "f2"))); // handle dropped: still registered
    let f3 = finalize(&obj, push(&log, "f3"));
    let f4 = finalize(&obj, push(&log, "f4"));
    drop(finalize(&obj, push(&log, "f5")));
    assert!(f3.detach().is_some());
    f4.call();
    assert_eq!(*log.borrow(), ["f4"]);
    drop(obj);
    assert_eq!(*log.borrow(), ["f4", "f5", "f2", "f1"]);
    assert!(!f1.alive());
}

/// Behaviour 86: after firing (or being detached or called), the finalizer
/// releases its closure and what it captured, and its weak record.
#[test]
fn a_fired_finalizer_releases_its_closure() {
    let heap = Heap::new();
    let token = Rc::new(());
    let obj = heap.alloc(1u32);
    let t = token.clone();
    let f = finalize(&obj, move || drop(t));
    let t2 = token.clone();
    drop(finalize(&obj, move || drop(t2)));
    assert_eq!(Rc::strong_count(&token), 3);
    assert_eq!(Gc::weak_count(&obj), 2);
    drop(obj);
    assert_eq!(Rc::strong_count(&token), 1);
    drop(f);
    assert_eq!(heap.bytes_in_use(), 0);

    let obj = heap.alloc(2u32);
    let t = token.clone();
    let g = finalize(&obj, move || drop(t));
    assert!(g.detach().is_some()); // the returned closure is dropped here
    assert_eq!(Rc::strong_count(&token), 1);
    assert_eq!(Gc::weak_count(&obj), 0);
}

/// Behaviour 87: at exit, pending finalizers with `atexit` run newest
/// first and the others never run; one registered during the exit run runs
/// next; a panic in one is reported and the rest still run.
#[test]
fn exit_runs_atexit_finalizers_newest_first() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let log = Log::default();
    let foo = heap.alloc(String::from("foo"));
    let _f1 = finalize(&foo, push(&log, "f1"));
    let f2 = finalize(&foo, push(&log, "f2"));
    f2.set_atexit(false);
    assert!(!f2.atexit());
    let foo2 = foo.clone();
    let log2 = log.clone();
    let _f3 = finalize(&foo, move || {
        // Registered during the exit run: runs next.
        let log3 = log2.clone();
        let _g = finalize(&foo2, move || log3.borrow_mut().push("g".into()));
        log2.borrow_mut().push("f3".into());
        panic!("f3 failed");
    });
    let _f4 = finalize(&foo, push(&log, "f4"));
    let other_heap = Heap::new();
    let elsewhere = other_heap.alloc(0u8);
    let other = finalize(&elsewhere, push(&log, "other heap"));

    assert_eq!(heap.run_exit_finalizers(), 4);
    assert_eq!(*log.borrow(), ["f4", "f3", "g", "f1"]);
    assert!(!f2.alive(), "not atexit: detached, never run");
    assert!(other.alive(), "another heap's finalizers are not touched");
    let report = sink.text();
    assert!(report.contains("f3 failed"), "{report}");
    drop(foo);
    assert_eq!(log.borrow().len(), 4);
    assert!(heap.is_enabled(), "automatic collection is re-enabled");
    drop((elsewhere, other_heap));
    assert_eq!(log.borrow().len(), 5);
}

/// Behaviour 87: dropping the heap is its exit: pending `atexit`
/// finalizers run newest first before the final collection, the others
/// never run, and objects freed by that collection do not run theirs again.
#[test]
fn dropping_the_heap_runs_its_atexit_finalizers() {
    let heap = Heap::new();
    let log = Log::default();
    let survivor = heap.alloc(String::from("held past the heap"));
    let _a = finalize(&survivor, push(&log, "a"));
    let quiet = finalize(&survivor, push(&log, "not atexit"));
    quiet.set_atexit(false);
    let cycle = heap.alloc(Node {
        next: RefCell::new(None),
    });
    *cycle.next.borrow_mut() = Some(cycle.clone());
    drop(finalize(&cycle, push(&log, "cycle")));
    let weak_cycle = Gc::downgrade(&cycle);
    drop(cycle); // garbage: freed by the heap's final collection
    drop(heap);
    assert_eq!(*log.borrow(), ["cycle", "a"]);
    assert!(weak_cycle.upgrade().is_none());
    assert!(!quiet.alive());
    drop(survivor);
    assert_eq!(log.borrow().len(), 2);
}

/// Behaviour 87: finalizers still alive when their thread exits (Python's
/// interpreter exit) run then, newest first, if `atexit` is set.
#[test]
fn finalizers_alive_at_thread_exit_run_then() {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<&str>::new()));
    let l = log.clone();
    thread_local! {
        // Registered before the finalizer registry, so dropped after it.
        static KEEP: RefCell<Option<Gc<u32>>> = const { RefCell::new(None) };
    }
    std::thread::spawn(move || {
        KEEP.with(|_| {});
        let heap = Heap::new();
        let obj = heap.alloc(1u32);
        let (a, b, c) = (l.clone(), l.clone(), l.clone());
        drop(finalize(&obj, move || a.lock().unwrap().push("first")));
        drop(finalize(&obj, move || b.lock().unwrap().push("second")));
        finalize(&obj, move || c.lock().unwrap().push("not atexit")).set_atexit(false);
        KEEP.with(|k| *k.borrow_mut() = Some(obj)); // still alive when the thread exits
    })
    .join()
    .unwrap();
    assert_eq!(*log.lock().unwrap(), ["second", "first"]);
}

/// A finalizer on an unsized object, and `Finalizer` with the default boxed
/// closure type (nameable in a struct).
#[test]
fn finalizer_on_unsized_objects_and_boxed_closures() {
    struct Resource {
        _closer: Finalizer<str>,
    }
    let heap = Heap::new();
    let log = Log::default();
    let name = heap.alloc_str("file");
    let r = Resource {
        _closer: Finalizer::new(&name, Box::new(push(&log, "closed")) as Box<dyn FnOnce()>),
    };
    drop(name);
    assert_eq!(*log.borrow(), ["closed"]);
    drop(r);
    let dead = finalize(&heap.alloc(1u8), || ()); // the object dies at the end of the statement
    assert_eq!(format!("{dead:?}"), "Finalizer { alive: false, atexit: true }");
}

/// A closure that captures its own object keeps it alive (as in Python),
/// until the finalizer is detached or called.
#[test]
fn a_closure_holding_its_object_keeps_it_alive() {
    let heap = Heap::new();
    let obj = heap.alloc(5u32);
    let keep = obj.clone();
    let f = finalize(&obj, move || *keep);
    let weak = Gc::downgrade(&obj);
    drop(obj);
    assert!(weak.upgrade().is_some());
    assert_eq!(f.call(), Some(5));
    assert!(weak.upgrade().is_none());
}
