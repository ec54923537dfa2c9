//! Weak references and the weak collections against CPython's `test_weakref`
//! behaviours (items 51–83 of `behaviours.md`; 52–54, 56, 60, 63 and 65 are
//! in `tests/weak_callbacks.rs`, 84–87 in `tests/finalize.rs`).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use rcgc::{Gc, Heap, Trace, Weak, WeakKeyDictionary, WeakSet, WeakValueDictionary};

/// A node that can be part of a cycle.
#[derive(Trace)]
struct Node {
    #[trace(skip)]
    id: u32,
    next: RefCell<Option<Gc<Node>>>,
    weak_refs: RefCell<Vec<Weak<Node>>>,
}

fn node(heap: &Heap, id: u32) -> Gc<Node> {
    heap.alloc(Node {
        id,
        next: RefCell::new(None),
        weak_refs: RefCell::new(Vec::new()),
    })
}

/// A node pointing to itself: garbage once its handles drop, until collected.
fn self_cycle(heap: &Heap, id: u32) -> Gc<Node> {
    let n = node(heap, id);
    *n.next.borrow_mut() = Some(n.clone());
    n
}

const N: u32 = if cfg!(miri) { 8 } else { 100 };

// ------------------------------------------------------- weak references --

/// Behaviour 51: upgrading a weak reference to a live object returns that
/// same object.
#[test]
fn upgrade_returns_the_same_object() {
    let heap = Heap::new();
    let o = node(&heap, 1);
    let w = Gc::downgrade(&o);
    assert!(Gc::ptr_eq(&w.upgrade().unwrap(), &o));
    let wc = Gc::downgrade_with_callback(&o, |_| {});
    assert!(Gc::ptr_eq(&wc.upgrade().unwrap(), &o));
}

/// Behaviour 53: two weak references with callbacks on one object are both
/// cleared, and the callbacks run twice in all.
#[test]
fn two_callbacks_on_one_object_both_run() {
    let heap = Heap::new();
    let count = Rc::new(Cell::new(0));
    let o = node(&heap, 1);
    let (c1, c2) = (count.clone(), count.clone());
    let w1 = Gc::downgrade_with_callback(&o, move |_| c1.set(c1.get() + 1));
    let w2 = Gc::downgrade_with_callback(&o, move |_| c2.set(c2.get() + 1));
    drop(o);
    assert_eq!(count.get(), 2);
    assert!(w1.upgrade().is_none() && w2.upgrade().is_none());
}

/// Behaviour 54: every weak reference to an object is cleared before any of
/// its callbacks runs: a callback reading another weak reference to it, or
/// a weak collection holding it, finds it gone.
#[test]
fn all_weak_references_are_cleared_before_any_callback() {
    let heap = Heap::new();
    let o = node(&heap, 1);
    let plain = Gc::downgrade(&o);
    let mut dict = WeakValueDictionary::new();
    dict.insert(1, &o);
    let dict = Rc::new(dict);
    let checked = Rc::new(Cell::new(0));
    let mut keep = Vec::new();
    for _ in 0..2 {
        let (p, d, c) = (plain.clone(), dict.clone(), checked.clone());
        keep.push(Gc::downgrade_with_callback(&o, move |_| {
            assert!(p.upgrade().is_none());
            assert!(d.is_empty() && d.get(&1).is_none());
            c.set(c.get() + 1);
        }));
    }
    drop(o);
    assert_eq!(checked.get(), 2);
}

/// Behaviour 65: a weak reference exposes whether it still has a callback
/// (`__callback__`), which is released once it has run.
#[test]
fn the_callback_is_exposed_and_released_after_firing() {
    let heap = Heap::new();
    let token = Rc::new(());
    let o = node(&heap, 1);
    let t = token.clone();
    let w = Gc::downgrade_with_callback(&o, move |_| drop(t));
    assert!(w.has_callback());
    assert!(!Gc::downgrade(&o).has_callback());
    assert_eq!(Rc::strong_count(&token), 2);
    drop(o);
    assert!(!w.has_callback());
    assert_eq!(Rc::strong_count(&token), 1, "the callback and its captures are gone");
}

/// Behaviour 55: the weak count counts live weak references (2, 4, then 0
/// once they are dropped); an entry of a weak collection is one of them.
#[test]
fn weak_count_counts_live_weak_references() {
    let heap = Heap::new();
    let o = node(&heap, 1);
    let a = Gc::downgrade(&o);
    let b = Gc::downgrade_with_callback(&o, |_| {});
    assert_eq!(Gc::weak_count(&o), 2);
    let c = a.clone();
    let d = Gc::downgrade(&o);
    assert_eq!(Gc::weak_count(&o), 4);
    drop((a, b, c, d));
    assert_eq!(Gc::weak_count(&o), 0);
    let mut set = WeakSet::new();
    set.insert(&o);
    assert_eq!(Gc::weak_count(&o), 1);
    drop(set);
    assert_eq!(Gc::weak_count(&o), 0);
}

/// Behaviour 57 (adapted: a callback is a closure, owned by its weak
/// reference): a weak reference owned by cyclic garbage is cleared without
/// calling back, while an external weak reference to the garbage object
/// that owns it calls back exactly once.
#[test]
fn callbacks_owned_by_garbage_never_fire_but_callbacks_on_it_do() {
    let heap = Heap::new();
    let log = Rc::new(RefCell::new(Vec::<&str>::new()));
    let x = node(&heap, 1);
    let y = node(&heap, 2);
    *x.next.borrow_mut() = Some(y.clone());
    *y.next.borrow_mut() = Some(x.clone());
    let l = log.clone();
    x.weak_refs.borrow_mut().push(Gc::downgrade_with_callback(&y, move |_| {
        l.borrow_mut().push("in trash")
    }));
    let l = log.clone();
    let _outside = Gc::downgrade_with_callback(&x, move |_| l.borrow_mut().push("x went away"));
    drop((x, y));
    assert_eq!(heap.collect(), 2);
    assert_eq!(*log.borrow(), ["x went away"]);
    assert_eq!(heap.collect(), 0);
    assert_eq!(log.borrow().len(), 1);
}

/// Behaviour 58: a callback touching garbage objects (through weak
/// references) never sees them half torn down: they read as gone.
///
/// Behaviour 59: callbacks on garbage run after every weak reference to the
/// garbage was cleared, so they cannot resurrect any; weak collections are
/// already updated when they run.
#[test]
fn callbacks_on_garbage_see_every_member_cleared() {
    let heap = Heap::new();
    let nodes: Vec<_> = (0..3).map(|i| node(&heap, i)).collect();
    for i in 0..3 {
        *nodes[i].next.borrow_mut() = Some(nodes[(i + 1) % 3].clone());
    }
    let weaks: Vec<Weak<Node>> = nodes.iter().map(Gc::downgrade).collect();
    let mut dict = WeakValueDictionary::new();
    for n in &nodes {
        dict.insert(n.id, n);
    }
    let dict = Rc::new(dict);
    let seen = Rc::new(Cell::new(false));
    let (s, d) = (seen.clone(), dict.clone());
    let _cb = Gc::downgrade_with_callback(&nodes[0], move |_| {
        assert!(weaks.iter().all(|w| w.upgrade().is_none()));
        assert!(d.get(&1).is_none() && d.get(&2).is_none());
        s.set(true);
    });
    drop(nodes);
    assert_eq!(heap.collect(), 3);
    assert!(seen.get());
    assert!(dict.is_empty());
}

/// Behaviour 61: collections triggered by every allocation (threshold 1)
/// while weak references and weak-collection entries are being created.
#[test]
fn collection_during_weak_reference_creation_is_safe() {
    let heap = Heap::new();
    heap.set_threshold([1, 1, 1]);
    let mut dict = WeakValueDictionary::new();
    let mut keep = Vec::new();
    for i in 0..N {
        let garbage = self_cycle(&heap, i);
        let w = Gc::downgrade_with_callback(&garbage, |_| {});
        dict.insert(i, &garbage);
        drop(garbage);
        let live = node(&heap, 1000 + i); // may collect the garbage above
        dict.insert(1000 + i, &live);
        keep.push((w, live));
    }
    heap.collect();
    assert_eq!(dict.len(), N as usize);
    assert!(keep
        .iter()
        .all(|(w, live)| w.upgrade().is_none() && dict.get(&live.id).is_some()));
}

/// Behaviour 62: a weak reference (or weak-collection entry) created to an
/// object from inside its own finalizer, while it is being released, reads
/// as dead afterwards.
#[test]
fn weak_reference_created_in_the_dying_objects_finalizer_is_dead() {
    thread_local! {
        static MADE: RefCell<Option<(Weak<Phoenix>, WeakSet<Phoenix>)>> = const { RefCell::new(None) };
    }
    #[derive(Trace)]
    #[trace(finalize)]
    struct Phoenix;
    impl rcgc::Finalize for Phoenix {
        fn finalize(this: &Gc<Self>) {
            let mut set = WeakSet::new();
            set.insert(this);
            MADE.with(|m| *m.borrow_mut() = Some((Gc::downgrade(this), set)));
        }
    }
    let heap = Heap::new();
    drop(heap.alloc(Phoenix));
    let (w, set) = MADE.with(|m| m.borrow_mut().take()).unwrap();
    assert!(w.upgrade().is_none());
    assert!(set.is_empty());
    assert_eq!(set.iter().count(), 0);
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 64: every object freed along a long deallocation chain (past
/// the trashcan depth) has its weak references and entries cleared at once.
#[test]
fn objects_freed_in_a_long_chain_are_cleared_promptly() {
    let heap = Heap::new();
    let len = if cfg!(miri) { 120 } else { 10_000 };
    let mut dict = WeakValueDictionary::new();
    let mut weaks = Vec::new();
    let mut head = node(&heap, 0);
    for i in 1..len {
        let n = node(&heap, i);
        *n.next.borrow_mut() = Some(head);
        head = n;
        dict.insert(i, &head);
        weaks.push(Gc::downgrade(&head));
    }
    assert_eq!(dict.len(), len as usize - 1);
    drop(head);
    assert_eq!(dict.len(), 0);
    assert!(weaks.iter().all(|w| w.upgrade().is_none()));
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 66: callbacks and entry removals that run while a panic unwinds
/// do not replace the panic.
#[test]
fn callbacks_during_unwinding_keep_the_original_panic() {
    let heap = Heap::new();
    let ran = Rc::new(Cell::new(false));
    let mut dict = WeakValueDictionary::new();
    let r = ran.clone();
    let weak = RefCell::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let o = node(&heap, 1);
        dict.insert(1, &o);
        *weak.borrow_mut() = Some(Gc::downgrade_with_callback(&o, move |_| r.set(true)));
        panic!("original"); // `o` dies while unwinding
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"original"));
    assert!(ran.get());
    assert!(dict.is_empty());
}

/// Behaviour 67: clearing many weak references with callbacks when the
/// heap's memory limit is reached does not fail: the clear path allocates
/// nothing on the heap.
#[test]
fn clearing_weak_references_at_the_memory_limit_succeeds() {
    let heap = Heap::new();
    let count = Rc::new(Cell::new(0));
    let o = node(&heap, 1);
    let mut dicts: Vec<WeakValueDictionary<u32, Node>> = (0..4).map(|_| WeakValueDictionary::new()).collect();
    for d in &mut dicts {
        d.insert(1, &o);
    }
    let weaks: Vec<_> = (0..N)
        .map(|_| {
            let c = count.clone();
            Gc::downgrade_with_callback(&o, move |_| c.set(c.get() + 1))
        })
        .collect();
    heap.set_limit(Some(heap.bytes_in_use()));
    assert!(heap.try_alloc(0u64).is_err());
    drop(o);
    assert_eq!(count.get(), N);
    assert!(dicts.iter().all(|d| d.is_empty()));
    drop(weaks);
}

/// Behaviour 69: weak references without callbacks to one object share one
/// record (Python returns the same ref object).
#[test]
fn plain_weak_references_share_their_record() {
    let heap = Heap::new();
    let o = node(&heap, 1);
    let a = Gc::downgrade(&o);
    let b = Gc::downgrade(&o);
    assert!(a.ptr_eq(&b));
    assert_eq!(Gc::weak_count(&o), 2);
}

// -------------------------------------------------- WeakValueDictionary --

/// Behaviour 71: one weak reference per value, identical objects back, a
/// copy has the same items, `len` drops by one per death and reaches 0, a
/// missing key is `None`, a temporary value is gone at once.
#[test]
fn weak_values_basics() {
    let heap = Heap::new();
    let objects: Vec<_> = (0..N).map(|i| node(&heap, i)).collect();
    let mut dict = WeakValueDictionary::new();
    for o in &objects {
        dict.insert(o.id, o);
        assert_eq!(Gc::weak_count(o), 1);
    }
    for o in &objects {
        assert!(Gc::ptr_eq(&dict.get(&o.id).unwrap(), o));
    }
    let copy = dict.clone();
    assert_eq!(copy.len(), dict.len());
    for (k, v) in copy.iter() {
        assert!(Gc::ptr_eq(&dict.get(k).unwrap(), &v));
    }
    drop(copy);
    let mut objects = objects;
    for expected in (0..N as usize).rev() {
        objects.pop();
        assert_eq!(dict.len(), expected);
    }
    assert!(dict.get(&0).is_none());
    assert!(dict.get(&12345).is_none());
    dict.insert(7, &node(&heap, 7)); // a temporary: dead right away
    assert!(dict.is_empty());
    assert!(!dict.contains_key(&7));
}

/// Behaviour 72: values that are self-cycles vanish at `collect()`; an
/// iterator pins at most the item it yielded, and `len` is 0 once that is
/// dropped (CPython: only after the iterator is dropped).
#[test]
fn weak_valued_len_with_cycles() {
    let heap = Heap::new();
    let mut dict = WeakValueDictionary::new();
    for i in 0..N {
        let n = self_cycle(&heap, i);
        dict.insert(i, &n);
    }
    assert_eq!(dict.len(), N as usize, "garbage stays until collected");
    let pinned = {
        let mut it = dict.iter();
        let pinned = it.next().unwrap();
        heap.collect();
        assert!(dict.len() <= 1);
        pinned
    };
    assert!(dict.len() <= 1);
    drop(pinned);
    heap.collect();
    assert_eq!(dict.len(), 0);
}

/// Behaviour 73: with collections at every allocation during an iteration,
/// `len` stays within [0, N] and never increases.
#[test]
fn weak_valued_len_never_increases_during_collections() {
    let heap = Heap::new();
    let mut dict = WeakValueDictionary::new();
    for i in 0..N {
        let n = self_cycle(&heap, i);
        dict.insert(i, &n);
    }
    heap.set_threshold([1, 1, 1]);
    let mut last = dict.len();
    for (_, v) in dict.iter() {
        drop(v);
        drop(node(&heap, 0)); // triggers collections
        let len = dict.len();
        assert!(len <= last && len <= N as usize);
        last = len;
    }
    heap.collect();
    assert_eq!(dict.len(), 0);
}

/// Behaviour 74: items, keys, values and value_refs visit every live entry
/// exactly once; the value refs upgrade to the same objects.
#[test]
fn weak_valued_iterators_visit_each_live_entry_once() {
    let heap = Heap::new();
    let objects: Vec<_> = (0..N).map(|i| node(&heap, i)).collect();
    let mut dict = WeakValueDictionary::new();
    for o in &objects {
        dict.insert(o.id, o);
    }
    let keys: Vec<u32> = dict.keys().copied().collect();
    assert_eq!(keys.iter().copied().collect::<HashSet<_>>().len(), N as usize);
    let items: Vec<_> = dict.iter().collect();
    assert_eq!(items.len(), N as usize);
    assert!(items.iter().all(|(k, v)| **k == v.id));
    let values: HashSet<usize> = dict.values().map(|v| Gc::id(&v)).collect();
    assert_eq!(values, objects.iter().map(Gc::id).collect());
    let refs: Vec<_> = dict.value_refs().collect();
    assert_eq!(refs.len(), N as usize);
    assert!(refs
        .iter()
        .all(|w| Gc::ptr_eq(&w.upgrade().unwrap(), &objects[w.upgrade().unwrap().id as usize])));
    assert_eq!((&dict).into_iter().count(), N as usize);
}

/// Behaviour 75, and CPython's bug avoided: a value dying mid-iteration does
/// not break the iterator, which yields the remaining live entries; `len()`
/// during the iteration is exact and does not break it.
#[test]
fn values_dying_while_iterating() {
    let heap = Heap::new();
    let mut objects: Vec<Option<Gc<Node>>> = (0..N).map(|i| Some(node(&heap, i))).collect();
    let mut dict = WeakValueDictionary::new();
    for o in objects.iter().flatten() {
        dict.insert(o.id.to_string(), o);
    }
    let mut it = dict.iter();
    let (first, v) = it.next().unwrap();
    let first_id = v.id;
    drop(v);
    // Kill another value, then ask len() while the iterator lives.
    let victim = (first_id + 1) % N;
    objects[victim as usize] = None;
    assert_eq!(dict.len(), N as usize - 1);
    let rest: Vec<_> = it.map(|(k, v)| (k.clone(), v.id)).collect();
    assert_eq!(rest.len(), N as usize - 2, "the dead one is skipped");
    assert!(rest.iter().all(|(_, id)| *id != victim && *id != first_id));
    assert_eq!(first, &first_id.to_string());
    assert_eq!(dict.len(), N as usize - 1);
}

/// Behaviour 76: with removals waiting (keys whose values died are dropped
/// lazily), removing a dead key finds nothing, re-inserting it works,
/// update and clear behave, and `len` stays exact throughout.
#[test]
fn weak_valued_mutation_mixed_with_deaths() {
    let heap = Heap::new();
    let mut objects: Vec<Option<Gc<Node>>> = (0..10).map(|i| Some(node(&heap, i))).collect();
    let mut dict = WeakValueDictionary::new();
    for o in objects.iter().flatten() {
        dict.insert(format!("k{}", o.id), o);
    }
    objects[3] = None;
    objects[4] = None;
    assert_eq!(dict.len(), 8);
    assert!(dict.remove("k3").is_none(), "del of a dead key: KeyError");
    assert_eq!(dict.len(), 8);
    let again = node(&heap, 33);
    assert!(dict.insert("k3".to_string(), &again).is_none());
    assert_eq!(dict.len(), 9);
    assert!(dict.remove("k5").is_some());
    assert_eq!(dict.len(), 8);
    objects[6] = None;
    let (popped_key, popped) = dict.pop_item().unwrap();
    assert_eq!(dict.len(), 6);
    drop(popped);
    let extra: Vec<_> = (100..103).map(|i| node(&heap, i)).collect();
    dict.extend(extra.iter().map(|o| (format!("k{}", o.id), o)));
    assert_eq!(dict.len(), 9);
    objects[7] = None;
    assert_eq!(dict.len(), if popped_key == "k7" { 9 } else { 8 });
    dict.clear();
    assert_eq!(dict.len(), 0);
    assert!(dict.iter().next().is_none());
    dict.insert("k0".into(), objects[0].as_ref().unwrap());
    assert_eq!(dict.len(), 1);
}

/// Behaviour 77: a replaced value dying later must not remove the new value
/// stored under the same key, whether it dies by count or by collection.
#[test]
fn a_replaced_values_death_does_not_remove_the_new_value() {
    let heap = Heap::new();
    let mut dict = WeakValueDictionary::new();
    let old = node(&heap, 1);
    let new = node(&heap, 2);
    dict.insert("k", &old);
    assert!(Gc::ptr_eq(&dict.insert("k", &new).unwrap(), &old));
    drop(old);
    assert_eq!(dict.len(), 1);
    assert!(Gc::ptr_eq(&dict.get("k").unwrap(), &new));

    let cyclic_old = self_cycle(&heap, 3);
    dict.insert("c", &cyclic_old);
    drop(cyclic_old); // garbage, still in the dictionary
    let newer = node(&heap, 4);
    dict.insert("c", &newer);
    heap.collect();
    assert_eq!(dict.len(), 2);
    assert!(Gc::ptr_eq(&dict.get("c").unwrap(), &newer));
}

/// Behaviour 78: `get_or_insert_with` (setdefault) and `remove` (pop) never
/// return a dead value, even when a collection runs inside them.
#[test]
fn setdefault_and_pop_never_return_dead_values() {
    let heap = Heap::new();
    let mut dict = WeakValueDictionary::new();
    for i in 0..N {
        let garbage = self_cycle(&heap, i);
        dict.insert(i, &garbage);
    }
    let mut got = Vec::new();
    for i in 0..N {
        let v = dict.get_or_insert_with(N + i, || {
            heap.collect(); // kills the garbage values meanwhile
            node(&heap, N + i)
        });
        assert!(Gc::is_alive(&v));
        assert!(Gc::ptr_eq(&dict.get(&(N + i)).unwrap(), &v));
        got.push(v);
    }
    assert_eq!(dict.len(), N as usize);
    for i in 0..N {
        assert!(dict.remove(&i).is_none());
        let v = dict.remove(&(N + i)).unwrap();
        assert_eq!(v.id, N + i);
    }
    assert!(dict.is_empty());
}

/// Behaviour 79: popitem, setdefault, update, get, del.
#[test]
fn weak_valued_standard_map_operations() {
    let heap = Heap::new();
    let a = node(&heap, 1);
    let b = node(&heap, 2);
    let mut dict: WeakValueDictionary<&str, Node> = [("a", &a), ("b", &b)].into_iter().collect();
    assert!(Gc::ptr_eq(&dict.get_or_insert_with("a", || unreachable!()), &a));
    let (k, v) = dict.pop_item().unwrap();
    assert_eq!(dict.len(), 1);
    assert_eq!(v.id, if k == "a" { 1 } else { 2 });
    let mut other = WeakValueDictionary::new();
    other.extend(
        dict.iter()
            .map(|(k, v)| (*k, v))
            .collect::<Vec<_>>()
            .iter()
            .map(|(k, v)| (*k, v)),
    );
    assert_eq!(other.len(), 1);
    for (k, v) in other.iter() {
        assert!(Gc::ptr_eq(&dict.get(k).unwrap(), &v));
    }
    let key = *other.keys().next().unwrap();
    assert!(other.remove(key).is_some());
    assert!(other.remove(key).is_none());
    assert!(other.is_empty());
    let (stored_key, value) = dict.get_key_value(&key).unwrap();
    assert_eq!((*stored_key, value.id), (key, if key == "a" { 1 } else { 2 }));
    let debug = format!("{:?}", WeakValueDictionary::<u8, u8>::new());
    assert_eq!(debug, "{}");
    let one = heap.alloc(5u8);
    let mut d = WeakValueDictionary::new();
    d.insert(1u8, &one);
    assert_eq!(format!("{d:?}"), "{1: 5}");
    d.retain(|_, _| false);
    assert!(d.is_empty());
}

/// Behaviour 80: copying while values die (here: the keys' `Clone` kills
/// values) yields a consistent copy.
#[test]
fn copying_while_values_die() {
    thread_local! {
        static VICTIMS: RefCell<Vec<Gc<u32>>> = const { RefCell::new(Vec::new()) };
    }
    #[derive(PartialEq, Eq, Hash, Debug)]
    struct Killer(u32);
    impl Clone for Killer {
        fn clone(&self) -> Self {
            VICTIMS.with(|v| v.borrow_mut().pop());
            Killer(self.0)
        }
    }
    let heap = Heap::new();
    let mut dict = WeakValueDictionary::new();
    VICTIMS.with(|v| {
        for i in 0..N {
            let o = heap.alloc(i);
            dict.insert(Killer(i), &o);
            v.borrow_mut().push(o);
        }
    });
    let copy = dict.clone();
    let left = VICTIMS.with(|v| v.borrow().len());
    assert!(left < N as usize, "values died while copying");
    assert_eq!(dict.len(), left);
    assert!(copy.len() <= left);
    assert_eq!(copy.len(), copy.iter().count());
    for (k, v) in copy.iter() {
        assert_eq!(k.0, *v);
        assert!(Gc::ptr_eq(&dict.get(k).unwrap(), &v));
    }
}

/// Behaviour 81: the id → object registry: found while alive, gone after.
#[test]
fn id_to_object_registry() {
    let heap = Heap::new();
    let mut registry = WeakValueDictionary::new();
    let o = node(&heap, 9);
    registry.insert(Gc::id(&o), &o);
    assert!(Gc::ptr_eq(&registry.get(&Gc::id(&o)).unwrap(), &o));
    let id = Gc::id(&o);
    drop(o);
    assert!(registry.get(&id).is_none());
}

/// A `WeakValueDictionary` stored in a collected object traces its keys, so
/// a cycle through a key is collected.
#[test]
fn a_dictionary_inside_an_object_traces_its_keys() {
    #[derive(Trace)]
    struct Key {
        #[trace(skip)]
        id: u32,
        back: RefCell<Option<Gc<Holder>>>,
    }
    impl PartialEq for Key {
        fn eq(&self, other: &Key) -> bool {
            self.id == other.id
        }
    }
    impl Eq for Key {}
    impl std::hash::Hash for Key {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.id.hash(state)
        }
    }
    #[derive(Trace)]
    struct Holder {
        dict: RefCell<WeakValueDictionary<Gc<Key>, Node>>,
    }
    let heap = Heap::new();
    let holder = heap.alloc(Holder {
        dict: RefCell::new(WeakValueDictionary::new()),
    });
    let key = heap.alloc(Key {
        id: 1,
        back: RefCell::new(Some(holder.clone())),
    });
    let value = node(&heap, 1);
    holder.dict.borrow_mut().insert(key.clone(), &value);
    assert_eq!(heap.referents(&holder).len(), 1, "the key is an edge, the value is not");
    let weak_holder = Gc::downgrade(&holder);
    drop((holder, key));
    assert_eq!(heap.collect(), 2);
    assert!(weak_holder.upgrade().is_none());
    assert_eq!(Gc::weak_count(&value), 0);
}

// ---------------------------------------------------- WeakKeyDictionary --

/// Behaviour 82: the `WeakKeyDictionary` counterparts of 71–79 — identity,
/// exact `len`, cycles, iteration, dying while iterating, mutation.
#[test]
fn weak_keys_basics() {
    let heap = Heap::new();
    let mut keys: Vec<Option<Gc<Node>>> = (0..N).map(|i| Some(node(&heap, i))).collect();
    let mut dict = WeakKeyDictionary::new();
    for k in keys.iter().flatten() {
        assert!(dict.insert(k, k.id * 10).is_none());
        assert_eq!(Gc::weak_count(k), 1);
    }
    let k0 = keys[0].clone().unwrap();
    assert_eq!(dict.get(&k0), Some(&0));
    assert_eq!(dict.insert(&k0, 1), Some(0));
    *dict.get_mut(&k0).unwrap() += 1;
    assert_eq!(dict.get(&k0), Some(&2));
    assert!(
        dict.get(&node(&heap, 0)).is_none(),
        "another object, equal id: not a key"
    );
    drop(k0);
    let copy = dict.clone();
    assert_eq!(copy.len(), N as usize);
    drop(copy);
    for (i, key) in keys.iter_mut().enumerate() {
        *key = None;
        assert_eq!(dict.len(), N as usize - i - 1);
    }
    assert!(dict.iter().next().is_none());
    let missing = node(&heap, 5);
    assert!(dict.remove(&missing).is_none(), "deleting a missing key");
}

/// Behaviour 82: keys that die while iterating, keys in cycles, popitem,
/// setdefault, update, retain; values of dead keys are dropped.
#[test]
fn weak_keys_iteration_cycles_and_mutation() {
    let heap = Heap::new();
    let drops = Rc::new(Cell::new(0));
    struct Counted(Rc<Cell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let mut dict = WeakKeyDictionary::new();
    for i in 0..N {
        let k = self_cycle(&heap, i);
        dict.insert(&k, Counted(drops.clone()));
    }
    let live: Vec<_> = (0..N).map(|i| node(&heap, 100 + i)).collect();
    for k in &live {
        dict.insert(k, Counted(drops.clone()));
    }
    assert_eq!(dict.len(), 2 * N as usize);
    let mut it = dict.iter();
    let (first, _) = it.next().unwrap();
    heap.collect();
    assert_eq!(dict.len(), N as usize + usize::from(first.id < 100));
    let rest = it.count();
    assert!(rest <= N as usize);
    drop(first);
    heap.collect();
    assert_eq!(dict.len(), N as usize);
    assert_eq!(dict.keys().count(), N as usize);
    assert_eq!(dict.values().count(), N as usize);
    dict.release_removed();
    assert_eq!(drops.get(), N, "values of dead keys are dropped");
    let (k, v) = dict.pop_item().unwrap();
    assert!(k.id >= 100);
    drop(v);
    assert_eq!(dict.len(), N as usize - 1);
    let fresh = node(&heap, 999);
    *dict.get_or_insert_with(&fresh, || Counted(drops.clone())) = Counted(drops.clone());
    assert_eq!(dict.len(), N as usize);
    dict.retain(|k, _| k.id != 999);
    assert!(!dict.contains_key(&fresh));
    let mut other = WeakKeyDictionary::new();
    other.extend(live.iter().map(|k| (k, k.id)));
    assert_eq!(other.len(), N as usize);
    assert!(format!("{:?}", WeakKeyDictionary::<u8, u8>::new()) == "{}");
    drop(dict);
    assert_eq!(drops.get(), 2 * N + 2);
}

/// Behaviour 82 (values that need no drop are released at once; a value
/// borrowed from the dictionary stays valid while its key dies).
#[test]
fn weak_keys_borrowed_values_survive_their_keys_death() {
    let heap = Heap::new();
    let mut dict = WeakKeyDictionary::new();
    let k = node(&heap, 1);
    dict.insert(&k, String::from("attached"));
    let v = dict.get(&k).unwrap();
    drop(k);
    assert_eq!(dict.len(), 0);
    assert_eq!(v, "attached");
}

// --------------------------------------------------------------- WeakSet --

/// Behaviour 82 for `WeakSet`: identity, exact `len`, cycles, iteration
/// while objects die, pop, retain, update.
#[test]
fn weak_set_behaves_like_pythons() {
    let heap = Heap::new();
    let mut objects: Vec<Option<Gc<Node>>> = (0..N).map(|i| Some(node(&heap, i))).collect();
    let mut set: WeakSet<Node> = objects.iter().flatten().collect();
    assert_eq!(set.len(), N as usize);
    assert!(!set.insert(objects[0].as_ref().unwrap()));
    assert!(!set.contains(&node(&heap, 0)));
    let mut it = set.iter();
    let first = it.next().unwrap();
    let victim = (first.id as usize + 1) % N as usize;
    objects[victim] = None;
    assert_eq!(set.len(), N as usize - 1);
    assert_eq!(it.count(), N as usize - 2);
    drop(first);
    let cyclic = self_cycle(&heap, 500);
    set.insert(&cyclic);
    drop(cyclic);
    assert_eq!(set.len(), N as usize);
    heap.collect();
    assert_eq!(set.len(), N as usize - 1);
    let popped = set.pop().unwrap();
    assert!(!set.contains(&popped));
    set.retain(|o| o.id % 2 == 0);
    assert!(set.iter().all(|o| o.id % 2 == 0));
    let copy = set.clone();
    assert_eq!(copy.len(), set.len());
    set.clear();
    assert!(set.is_empty());
    assert!(!copy.is_empty());
    objects.clear();
    drop(popped);
    assert!(copy.is_empty());
}

/// Unsized objects (`Gc<str>`) in weak collections.
#[test]
fn weak_collections_hold_unsized_objects() {
    let heap = Heap::new();
    let s = heap.alloc_str("text");
    let mut by_name: WeakValueDictionary<&str, str> = WeakValueDictionary::new();
    by_name.insert("t", &s);
    assert_eq!(&*by_name.get("t").unwrap(), "text");
    let mut set: WeakSet<str> = WeakSet::new();
    set.insert(&s);
    let mut notes: WeakKeyDictionary<str, u8> = WeakKeyDictionary::new();
    notes.insert(&s, 1);
    drop(s);
    assert!(by_name.is_empty() && set.is_empty() && notes.is_empty());
}

/// Values from several heaps in one dictionary, and a heap dropped first.
#[test]
fn values_from_several_heaps() {
    let h1 = Heap::new();
    let h2 = Heap::new();
    let a = h1.alloc(1u32);
    let b = h2.alloc(2u32);
    let mut dict = WeakValueDictionary::new();
    dict.insert("a", &a);
    dict.insert("b", &b);
    drop(h2); // `b` outlives its heap
    assert_eq!(*dict.get("b").unwrap(), 2);
    drop(b);
    assert_eq!(dict.len(), 1);
    drop(dict);
    drop(a);
    assert_eq!(h1.object_count(), 0);
}

/// Dropping a dictionary cancels its entries' callbacks: values dying later
/// touch nothing.
#[test]
fn dropping_a_collection_cancels_its_entries() {
    let heap = Heap::new();
    let objects: Vec<_> = (0..N).map(|i| node(&heap, i)).collect();
    let mut dict = WeakValueDictionary::new();
    let mut keys = WeakKeyDictionary::new();
    let mut set = WeakSet::new();
    for o in &objects {
        dict.insert(o.id, o);
        keys.insert(o, o.id);
        set.insert(o);
    }
    drop((dict, keys, set));
    assert!(objects.iter().all(|o| Gc::weak_count(o) == 0));
    drop(objects);
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
}

/// A key borrowed from the dictionary stays readable while its entry is
/// erased (its value died), whether the key needs `Drop` or not.
#[test]
fn borrowed_keys_survive_their_entrys_removal() {
    let heap = Heap::new();
    let mut small: WeakValueDictionary<u32, Node> = WeakValueDictionary::new();
    let mut owned: WeakValueDictionary<String, Node> = WeakValueDictionary::new();
    let mut objects: Vec<Option<Gc<Node>>> = (0..4).map(|i| Some(node(&heap, i))).collect();
    for o in objects.iter().flatten() {
        small.insert(o.id, o);
        owned.insert(o.id.to_string(), o);
    }
    let k_small = small.keys().next().unwrap();
    let (k_owned, v) = owned.iter().next().unwrap();
    let id = v.id;
    drop(v);
    objects[*k_small as usize] = None;
    objects[id as usize] = None;
    assert!(small.get(k_small).is_none() && owned.get(k_owned.as_str()).is_none());
    assert_eq!(k_owned, &id.to_string());
    let killed = if *k_small == id { 1 } else { 2 };
    assert_eq!((small.len(), owned.len()), (4 - killed, 4 - killed));
}

/// Replacing the value under a key moves the entry's weak reference to the
/// new value when it was the old value's only one (no new weak record):
/// leaves and tracked objects, the old value then has no weak reference, and
/// each value's death does exactly what it should. Values that have other
/// weak references, live on another heap, or already have a weak record
/// take the general path with the same results.
#[test]
fn replacing_a_value_moves_or_renews_the_entry_weak_reference() {
    let heap = Heap::new();
    let other_heap = Heap::new();
    // Leaves (u64), one heap: the weak reference moves.
    let mut leaves: WeakValueDictionary<u32, u64> = WeakValueDictionary::new();
    let a = heap.alloc(1u64);
    leaves.insert(1, &a);
    let b = heap.alloc(2u64);
    let bytes = heap.bytes_in_use();
    assert!(Gc::ptr_eq(&leaves.insert(1, &b).unwrap(), &a));
    assert_eq!(heap.bytes_in_use(), bytes, "no weak record made or freed");
    assert_eq!((Gc::weak_count(&a), Gc::weak_count(&b)), (0, 1));
    drop(a);
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves.get(&1).as_deref(), Some(&2));
    drop(b);
    assert!(leaves.is_empty() && leaves.get(&1).is_none());

    // Tracked objects; the old value keeps another weak reference, then the
    // new value lives on another heap, then it already has a weak record.
    let mut nodes: WeakValueDictionary<u32, Node> = WeakValueDictionary::new();
    let x = node(&heap, 1);
    nodes.insert(1, &x);
    let y = node(&heap, 2);
    nodes.insert(1, &y);
    assert_eq!((Gc::weak_count(&x), Gc::weak_count(&y)), (0, 1));
    let keep = Gc::downgrade(&y);
    let z = node(&other_heap, 3);
    nodes.insert(1, &z);
    assert_eq!((Gc::weak_count(&y), Gc::weak_count(&z)), (1, 1));
    let w = node(&heap, 4);
    let w_weak = Gc::downgrade(&w);
    nodes.insert(1, &w);
    assert_eq!((Gc::weak_count(&z), Gc::weak_count(&w)), (0, 2));
    drop((x, y, z));
    assert_eq!(nodes.len(), 1);
    assert!(keep.upgrade().is_none());
    drop(w);
    assert!(nodes.is_empty() && w_weak.upgrade().is_none());
    drop((keep, w_weak, nodes, leaves));
    assert_eq!(heap.bytes_in_use(), 0);
    assert_eq!(other_heap.bytes_in_use(), 0);
}

/// A heap may keep a few freed weak records for reuse, but what it reports
/// (`bytes_in_use`, `alloc_stats`) and what its memory limit counts are
/// only live objects and the records of objects with weak references.
#[test]
fn freed_weak_records_are_not_reported_or_counted_by_the_limit() {
    let heap = Heap::new();
    let mut objects: Vec<_> = (0..4u64).map(|i| heap.alloc(i)).collect();
    let object = heap.bytes_in_use() / 4;
    let mut dict: WeakValueDictionary<u64, u64> = WeakValueDictionary::new();
    dict.insert(0, &objects[0]);
    let record = heap.bytes_in_use() - 4 * object;
    for (i, o) in objects.iter().enumerate().skip(1) {
        dict.insert(i as u64, o);
    }
    assert_eq!(heap.bytes_in_use(), 4 * object + 4 * record);
    // Two values die: their records are freed (or kept for reuse, unseen).
    objects.truncate(2);
    assert_eq!(dict.len(), 2);
    assert_eq!(heap.bytes_in_use(), 2 * object + 2 * record);
    assert_eq!(heap.alloc_stats().bytes_in_use, heap.bytes_in_use());
    // Room for exactly one more record under a limit at the live total.
    let (c, d) = (heap.alloc(9u64), heap.alloc(10u64));
    objects.truncate(1); // one more record to reuse, if kept
    heap.set_limit(Some(heap.bytes_in_use() + record));
    dict.insert(9, &c);
    assert_eq!(heap.bytes_in_use(), heap.limit().unwrap());
    assert!(Gc::try_downgrade(&d).is_err(), "no room for one more record");
    heap.set_limit(None);
    drop((objects, c, d, dict));
    assert_eq!(heap.bytes_in_use(), 0);
}

/// The bytes a collector policy is told are in use are those the heap
/// reports: freed weak records the heap keeps for reuse are not counted.
#[test]
fn a_policy_sees_the_bytes_the_heap_reports() {
    use rcgc::collect::{Action, CollectorPolicy, PolicyContext};

    struct Recorder(Rc<Cell<usize>>);
    impl CollectorPolicy for Recorder {
        fn poll_after(&self, _: &PolicyContext) -> Option<usize> {
            None
        }
        fn on_allocation(&mut self, _: &PolicyContext) -> Action {
            Action::Nothing
        }
        fn on_checkpoint(&mut self, ctx: &PolicyContext) -> Action {
            self.0.set(ctx.bytes_in_use);
            Action::Nothing
        }
    }

    let seen = Rc::new(Cell::new(usize::MAX));
    let heap = Heap::with_policy(Recorder(seen.clone()));
    let mut dict = WeakValueDictionary::new();
    let values: Vec<Gc<u64>> = (0..64).map(|i| heap.alloc(i)).collect();
    for (i, value) in values.iter().enumerate() {
        dict.insert(i, value);
    }
    // Values die while others keep their weak records: freed records may
    // be kept for reuse.
    let kept: Vec<Gc<u64>> = values.into_iter().step_by(2).collect();
    assert_eq!(dict.len(), kept.len());
    heap.checkpoint();
    assert_eq!(seen.get(), heap.bytes_in_use());
    drop(kept);
}
