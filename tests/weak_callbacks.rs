//! Weak-reference callbacks: CPython's `weakref.ref(obj, callback)` rules.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rcgc::{Finalize, Gc, Heap, Trace, Weak};

mod common;
use common::Sink;

type Log = Rc<RefCell<Vec<String>>>;

fn logger(log: &Log, line: &str) -> impl FnOnce(&Weak<Item>) + 'static {
    let (log, line) = (log.clone(), line.to_string());
    move |w: &Weak<Item>| {
        assert!(w.upgrade().is_none(), "the referent is gone when callbacks run");
        log.borrow_mut().push(line)
    }
}

#[derive(Trace)]
#[trace(finalize)]
struct Item {
    #[trace(skip)]
    name: &'static str,
    #[trace(skip)]
    log: Log,
    next: RefCell<Option<Gc<Item>>>,
    weak_refs: RefCell<Vec<Weak<Item>>>,
}

impl Finalize for Item {
    fn finalize(this: &Gc<Self>) {
        this.log.borrow_mut().push(format!("del {}", this.name));
    }
}

fn item(heap: &Heap, name: &'static str, log: &Log) -> Gc<Item> {
    heap.alloc(Item {
        name,
        log: log.clone(),
        next: RefCell::new(None),
        weak_refs: RefCell::new(Vec::new()),
    })
}

/// Behaviour 52: the callback fires exactly once when the referent dies,
/// and the weak reference is dead afterwards.
#[test]
fn callback_fires_once_on_refcount_death_after_the_finalizer() {
    let heap = Heap::new();
    let log = Log::default();
    let c = item(&heap, "c", &log);
    let w = Gc::downgrade_with_callback(&c, logger(&log, "cb c"));
    assert!(w.has_callback());
    drop(c);
    assert_eq!(
        *log.borrow(),
        ["del c", "cb c"],
        "refcount death: finalizer first (CPython: del c, cb c)"
    );
    assert!(w.upgrade().is_none());
    assert!(!w.has_callback(), "Behaviour 65: the callback is released after firing");
    heap.collect();
    assert_eq!(log.borrow().len(), 2);
}

/// Behaviours 53/54: several callbacks on one object run newest first, and
/// every weak reference to the object is cleared before any of them runs.
#[test]
fn callbacks_run_newest_first_after_all_weak_refs_are_cleared() {
    let heap = Heap::new();
    let log = Log::default();
    let obj = item(&heap, "o", &log);
    let plain = Gc::downgrade(&obj);
    let plain_in_cb = plain.clone();
    let log2 = log.clone();
    let w1 = Gc::downgrade_with_callback(&obj, move |_| {
        assert!(plain_in_cb.upgrade().is_none());
        log2.borrow_mut().push("cb1".into())
    });
    let w2 = Gc::downgrade_with_callback(&obj, logger(&log, "cb2"));
    let w3 = Gc::downgrade_with_callback(&obj, logger(&log, "cb3"));
    assert_eq!(
        Gc::weak_count(&obj),
        5,
        "two plain handles (one captured) and three with callbacks"
    );
    drop(obj);
    assert_eq!(*log.borrow(), ["del o", "cb3", "cb2", "cb1"]);
    drop((w1, w2, w3, plain));
}

/// Behaviour 60 (and "a callback is not called if its weak reference died
/// first"): dropping every handle of a weak reference cancels its callback.
#[test]
fn a_dropped_weak_reference_never_calls_back() {
    let heap = Heap::new();
    let log = Log::default();
    let obj = item(&heap, "o", &log);
    let w = Gc::downgrade_with_callback(&obj, logger(&log, "cb"));
    let w2 = w.clone();
    drop(w);
    drop(w2);
    drop(obj);
    assert_eq!(*log.borrow(), ["del o"]);
    assert_eq!(heap.bytes_in_use(), 0);
}

/// Behaviour 60: a weak reference whose callback holds the only strong
/// handle to its referent: dropping the weak reference frees the referent
/// without calling back.
#[test]
fn a_callback_holding_the_referent_is_dropped_with_its_weak_reference() {
    let heap = Heap::new();
    let log = Log::default();
    let obj = item(&heap, "o", &log);
    let keep = obj.clone();
    let log2 = log.clone();
    let w = Gc::downgrade_with_callback(&obj, move |_| {
        let _ = &keep;
        log2.borrow_mut().push("cb".into())
    });
    drop(obj);
    assert!(log.borrow().is_empty(), "still held by the callback");
    drop(w);
    assert_eq!(*log.borrow(), ["del o"]);
    assert_eq!(heap.object_count(), 0);
}

/// Semantics §8.3: a 2-cycle with finalizers and external weak references
/// with callbacks: `cb a, cb b, del a, del b`, collect() == 2.
#[test]
fn cyclic_garbage_clears_weak_refs_and_calls_back_before_finalizers() {
    let heap = Heap::new();
    let log = Log::default();
    let a = item(&heap, "a", &log);
    let b = item(&heap, "b", &log);
    *a.next.borrow_mut() = Some(b.clone());
    *b.next.borrow_mut() = Some(a.clone());
    let wa = Gc::downgrade_with_callback(&a, logger(&log, "cb a"));
    let wb = Gc::downgrade_with_callback(&b, logger(&log, "cb b"));
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    let got = log.borrow().clone();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got[..2].iter().all(|l| l.starts_with("cb")),
        "callbacks before finalizers: {got:?}"
    );
    assert!(got[2..].iter().all(|l| l.starts_with("del")), "{got:?}");
    assert!(wa.upgrade().is_none() && wb.upgrade().is_none());
}

/// Behaviour 56: weak references that are part of the cyclic garbage are
/// cleared without calling back; one outside it fires, once.
#[test]
fn weak_refs_inside_the_garbage_never_call_back() {
    let heap = Heap::new();
    let log = Log::default();
    let a = item(&heap, "a", &log);
    let b = item(&heap, "b", &log);
    *a.next.borrow_mut() = Some(b.clone());
    *b.next.borrow_mut() = Some(a.clone());
    // b holds a weak reference with a callback to a: it is garbage too.
    b.weak_refs
        .borrow_mut()
        .push(Gc::downgrade_with_callback(&a, logger(&log, "inside")));
    let outside = Gc::downgrade_with_callback(&a, logger(&log, "outside"));
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    let got = log.borrow().clone();
    assert!(got.contains(&"outside".to_string()), "{got:?}");
    assert!(!got.contains(&"inside".to_string()), "{got:?}");
    assert_eq!(heap.collect(), 0);
    assert_eq!(log.borrow().iter().filter(|l| *l == "outside").count(), 1);
    drop(outside);
}

/// A panicking callback is reported and the other callbacks still run.
#[test]
fn a_panicking_callback_does_not_stop_the_others() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let log = Log::default();
    let obj = item(&heap, "o", &log);
    let w1 = Gc::downgrade_with_callback(&obj, logger(&log, "cb1"));
    let w2 = Gc::downgrade_with_callback(&obj, |_| panic!("boom"));
    let w3 = Gc::downgrade_with_callback(&obj, logger(&log, "cb3"));
    drop(obj);
    assert_eq!(*log.borrow(), ["del o", "cb3", "cb1"]);
    let report = sink.text();
    assert!(
        report.contains("weak reference callback") && report.contains("boom"),
        "{report}"
    );
    drop((w1, w2, w3));
}

/// Behaviour 63: a callback that calls collect() while its referent is
/// being freed causes no double free.
#[test]
fn a_callback_may_collect() {
    let heap = Rc::new(Heap::new());
    let log = Log::default();
    let obj = item(&heap, "o", &log);
    let h = heap.clone();
    let ran = Rc::new(Cell::new(false));
    let ran2 = ran.clone();
    let _w = Gc::downgrade_with_callback(&obj, move |_| {
        h.collect();
        ran2.set(true);
    });
    drop(obj);
    assert!(ran.get());
    assert_eq!(heap.object_count(), 0);
}

/// Panics in the `Drop` of the values a callback captured.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// Two callbacks on `target`: the newer one (run first) drops the older
/// weak reference, so the older callback is skipped and freed by the batch,
/// and dropping its captures panics.
fn skipped_callback_with_panicking_captures<T: Trace + 'static>(target: &Gc<T>, ran: &Rc<Cell<bool>>) -> Weak<T> {
    let captured = PanicOnDrop("captured value exploded");
    let older = Gc::downgrade_with_callback(target, move |_| {
        let _keep = &captured;
        unreachable!("a callback whose weak reference died first is never called");
    });
    let holder = RefCell::new(Some(older));
    let ran = ran.clone();
    Gc::downgrade_with_callback(target, move |_| {
        drop(holder.borrow_mut().take());
        ran.set(true);
    })
}

/// A skipped callback whose captures panic when the refcount path frees
/// them: the panic is reported, the object is freed anyway.
#[test]
fn a_panicking_drop_of_a_skipped_callbacks_captures_is_reported_on_release() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let ran = Rc::new(Cell::new(false));
    let obj = heap.alloc(7u64);
    let newer = skipped_callback_with_panicking_captures(&obj, &ran);
    drop(obj);
    assert!(ran.get());
    assert_eq!(heap.object_count(), 0, "the object was freed");
    assert!(sink.text().contains("captured value exploded"), "{}", sink.text());
    drop(newer);
}

/// The same in a collection: the panic is reported, `collect` returns, and
/// the rest of the batch runs (another garbage object's weak dictionary
/// entry is removed).
#[test]
fn a_panicking_drop_of_a_skipped_callbacks_captures_is_reported_in_a_collection() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let log = Log::default();
    let (a, b) = (item(&heap, "a", &log), item(&heap, "b", &log));
    *a.next.borrow_mut() = Some(a.clone());
    *b.next.borrow_mut() = Some(b.clone());
    let mut dict = rcgc::WeakValueDictionary::new();
    dict.insert(2, &b);
    let ran = Rc::new(Cell::new(false));
    let newer = skipped_callback_with_panicking_captures(&a, &ran);
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    assert!(ran.get());
    assert_eq!(dict.len(), 0, "b's entry left with b");
    assert_eq!(heap.object_count(), 0);
    assert!(sink.text().contains("captured value exploded"), "{}", sink.text());
    drop(newer);
}

/// Weak collections are up to date before any user callback of a
/// collection runs: a callback of one garbage object sees `len()` without
/// the entry of another garbage object, whichever was allocated first
/// (CPython's `WeakValueDictionary` may still count it there).
#[test]
fn a_callback_in_a_collection_sees_exact_lengths_of_weak_collections() {
    for callback_object_first in [true, false] {
        let heap = Heap::new();
        let log = Log::default();
        let (a, b) = if callback_object_first {
            let a = item(&heap, "a", &log);
            (a, item(&heap, "b", &log))
        } else {
            let b = item(&heap, "b", &log);
            (item(&heap, "a", &log), b)
        };
        *a.next.borrow_mut() = Some(a.clone());
        *b.next.borrow_mut() = Some(b.clone());
        let dict = Rc::new(RefCell::new(rcgc::WeakValueDictionary::new()));
        dict.borrow_mut().insert(2, &b);
        let seen = Rc::new(Cell::new(None));
        let (d, s) = (dict.clone(), seen.clone());
        let _w = Gc::downgrade_with_callback(&a, move |_| {
            let d = d.borrow();
            s.set(Some((d.len(), d.get(&2).is_some())));
        });
        drop((a, b));
        assert_eq!(heap.collect(), 2);
        assert_eq!(seen.get(), Some((0, false)), "a first: {callback_object_first}");
    }
}
