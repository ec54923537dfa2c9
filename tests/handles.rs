//! Behaviour of `Heap`, `Gc` and `Weak` (the object and handle layers).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use rcgc::{Gc, Heap, Trace, Weak, IMMORTAL_REFCOUNT};

mod common;

/// Counts how many times values were dropped.
#[derive(Clone, Default)]
struct Drops(Rc<Cell<usize>>);

impl Drops {
    fn count(&self) -> usize {
        self.0.get()
    }
}

/// A leaf value that records its drop.
struct Probe(Drops);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0 .0.set(self.0 .0.get() + 1);
    }
}

// SAFETY: owns no Gc.
unsafe impl Trace for Probe {
    const MAY_CONTAIN_GC: bool = false;
    fn trace(&self, _: &mut rcgc::Tracer<'_>) {}
}

#[derive(Trace)]
struct Node {
    value: u64,
    next: RefCell<Option<Gc<Node>>>,
}

#[test]
fn drop_runs_once_when_the_last_handle_drops() {
    let heap = Heap::new();
    let drops = Drops::default();
    let a = heap.alloc(Probe(drops.clone()));
    let b = a.clone();
    let c = b.clone();
    assert_eq!(Gc::strong_count(&a), 3);
    drop(a);
    drop(b);
    assert_eq!(drops.count(), 0, "still held by c");
    assert_eq!(heap.object_count(), 1);
    drop(c);
    assert_eq!(drops.count(), 1);
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0, "the block went back to its pool");
}

#[test]
fn handles_are_one_pointer_wide() {
    use core::mem::size_of;
    assert_eq!(size_of::<Gc<Node>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<Gc<Node>>>(), size_of::<usize>());
    assert_eq!(size_of::<Gc<u8>>(), size_of::<usize>());
    assert_eq!(size_of::<Weak<Node>>(), size_of::<usize>());
}

#[test]
fn object_sizes_meet_the_targets() {
    let heap = Heap::new();
    // A 24-byte node that can hold references: 16-byte header, 40 bytes in all.
    let node = heap.alloc(Node {
        value: 1,
        next: RefCell::new(None),
    });
    assert_eq!(core::mem::size_of::<Node>(), 24);
    assert_eq!(Gc::size_of(&node), 40);
    // 40 bytes in all, side memory included, once old: generation 2 keeps no
    // vector entry (young objects pay 8 more bytes in their generation's
    // vector until a collection promotes them).
    drop(node);
    let nodes = {
        let _off = heap.disabled();
        let nodes: Vec<Gc<Node>> = (0..5000)
            .map(|i| {
                heap.alloc(Node {
                    value: i,
                    next: RefCell::new(None),
                })
            })
            .collect();
        heap.collect();
        // A full collection keeps its work list until the next young one.
        heap.collect_generation(0).unwrap();
        nodes
    };
    assert_eq!(heap.objects(Some(2)).unwrap().len(), nodes.len());
    assert_eq!(heap.bytes_in_use() + heap.gc_side_bytes(), 40 * nodes.len());
    drop(nodes);
    // Leaves pay an 8-byte header.
    assert_eq!(Gc::size_of(&heap.alloc(0u64)), 16);
    assert_eq!(Gc::size_of(&heap.alloc([0u8; 24])), 32);
    // size_of is at least the payload and matches the size class.
    let s = heap.alloc_str("hello, world");
    assert_eq!(Gc::size_of(&s), 24);
    let big = heap.alloc([0u64; 100]);
    assert!(Gc::size_of(&big) >= 808);
}

#[test]
fn ids_are_unique_among_live_objects() {
    let heap = Heap::new();
    let objects: Vec<_> = (0..1000).map(|i| heap.alloc(i as u64)).collect();
    let ids: HashSet<_> = objects.iter().map(Gc::id).collect();
    assert_eq!(ids.len(), objects.len());
    assert_eq!(Gc::id(&objects[3]), Gc::id(&objects[3].clone()));
}

#[test]
fn weak_upgrade_fails_after_death() {
    let heap = Heap::new();
    let drops = Drops::default();
    let strong = heap.alloc(Probe(drops.clone()));
    let weak = Gc::downgrade(&strong);
    let weak2 = weak.clone();
    assert_eq!(Gc::weak_count(&strong), 2);
    assert_eq!(weak.strong_count(), 1);
    assert!(Gc::ptr_eq(&weak.upgrade().unwrap(), &strong));
    drop(strong);
    assert_eq!(drops.count(), 1);
    assert!(weak.upgrade().is_none());
    assert_eq!((weak.strong_count(), weak.weak_count()), (0, 0));
    assert!(weak.ptr_eq(&weak2));
    assert_eq!(heap.object_count(), 0);
    drop((weak, weak2));
    assert_eq!(
        heap.bytes_in_use(),
        0,
        "the weak record is freed with the last weak reference"
    );
}

#[test]
fn dropping_all_weak_references_while_the_object_lives_detaches_them() {
    let heap = Heap::new();
    let strong = heap.alloc(7u32);
    let weak = Gc::downgrade(&strong);
    drop(weak);
    assert_eq!(Gc::weak_count(&strong), 0);
    let weak = Gc::downgrade(&strong);
    assert_eq!(Gc::weak_count(&strong), 1);
    assert_eq!(*weak.upgrade().unwrap(), 7);
}

#[test]
fn dangling_weak_never_upgrades() {
    let weak: Weak<u64> = Weak::new();
    assert!(weak.upgrade().is_none());
    assert_eq!((weak.strong_count(), weak.weak_count()), (0, 0));
    assert!(weak.ptr_eq(&Weak::default()));
}

#[test]
fn immortal_objects_survive_everything() {
    let heap = Heap::new();
    let none = heap.alloc_immortal(String::from("None"));
    assert_eq!(Gc::strong_count(&none), IMMORTAL_REFCOUNT);
    assert!(Gc::is_immortal(&none));
    let copies: Vec<_> = (0..100).map(|_| none.clone()).collect();
    assert_eq!(Gc::strong_count(&none), IMMORTAL_REFCOUNT);
    drop(copies);
    let weak = Gc::downgrade(&none);
    drop(none);
    assert_eq!(weak.upgrade().as_deref().map(String::as_str), Some("None"));
    drop(heap);
    assert_eq!(
        weak.upgrade().as_deref().map(String::as_str),
        Some("None"),
        "immortal even after its heap"
    );
}

#[test]
fn a_million_handles_to_one_object() {
    let heap = Heap::new();
    let n = if cfg!(miri) { 1000 } else { 1_000_000 };
    let obj = heap.alloc(1u8);
    let handles: Vec<_> = (0..n).map(|_| obj.clone()).collect();
    assert_eq!(Gc::strong_count(&obj), n + 1);
    drop(handles);
    assert_eq!(Gc::strong_count(&obj), 1);
}

#[test]
fn values_can_be_read_through_the_handle() {
    let heap = Heap::new();
    let tail = heap.alloc(Node {
        value: 2,
        next: RefCell::new(None),
    });
    let head = heap.alloc(Node {
        value: 1,
        next: RefCell::new(Some(tail.clone())),
    });
    assert_eq!(head.next.borrow().as_ref().unwrap().value, 2);
    assert!(Gc::is_alive(&head));
    assert_eq!(Gc::try_deref(&head).map(|n| n.value), Some(1));
    assert_eq!(heap.objects(Some(0)).unwrap().len(), 2, "containers are tracked");
    assert_eq!(Gc::strong_count(&tail), 2);
    drop(head);
    assert_eq!(Gc::strong_count(&tail), 1, "dropping the head released its reference");
    assert_eq!(heap.objects(Some(0)).unwrap().len(), 1);
}

#[test]
fn leaves_are_not_tracked() {
    let heap = Heap::new();
    let _a = heap.alloc(String::from("leaf"));
    let _b = heap.alloc(5u64);
    let c = heap.alloc(vec![1, 2, 3]);
    assert_eq!(heap.objects(None).unwrap().len(), 0);
    assert!(!heap.is_tracked(&c));
    // A vector of handles to leaves can never be in a cycle (its handles
    // cannot change inside a Gc): untracked, like CPython's tuple of ints.
    let d = heap.alloc(vec![heap.alloc(1u8)]);
    assert!(!heap.is_tracked(&d));
    let e = heap.alloc(RefCell::new(vec![heap.alloc(1u8)]));
    assert_eq!(heap.objects(None).unwrap().len(), 1);
    assert!(heap.is_tracked(&e));
}

#[test]
fn traits_delegate_to_the_value() {
    let heap = Heap::new();
    let a = heap.alloc(String::from("a"));
    let b = heap.alloc(String::from("b"));
    let a2 = heap.alloc(String::from("a"));
    assert_eq!(a, a2);
    assert!(!Gc::ptr_eq(&a, &a2));
    assert!(a < b);
    assert_eq!(format!("{a:?} {b}"), "\"a\" b");
    let set: HashSet<Gc<String>> = [a.clone(), a2.clone(), b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn unsized_values() {
    let heap = Heap::new();
    let s: Gc<str> = heap.alloc_str("spam and eggs");
    assert_eq!(&*s, "spam and eggs");
    let s2 = s.clone();
    assert_eq!(Gc::strong_count(&s2), 2);
    let drops = Drops::default();
    let items: Gc<[Probe]> = heap.alloc_slice(vec![Probe(drops.clone()), Probe(drops.clone())]);
    assert_eq!(items.len(), 2);
    drop(items);
    assert_eq!(drops.count(), 2);
    let empty: Gc<str> = heap.alloc_str("");
    assert_eq!(&*empty, "");
}

#[test]
fn get_mut_requires_a_unique_handle() {
    let heap = Heap::new();
    let mut a = heap.alloc(1u32);
    *Gc::get_mut(&mut a).unwrap() += 1;
    let b = a.clone();
    assert!(Gc::get_mut(&mut a).is_none());
    drop(b);
    let w = Gc::downgrade(&a);
    assert!(Gc::get_mut(&mut a).is_none());
    drop(w);
    assert_eq!(*Gc::get_mut(&mut a).unwrap(), 2);
}

#[test]
fn gc_new_uses_the_current_heap() {
    let heap = Heap::new();
    let inside = heap.enter(|| Gc::new(1u64));
    assert_eq!(heap.object_count(), 1);
    let outside = Gc::new(2u64); // the thread's default heap
    assert_eq!(heap.object_count(), 1);
    let other = Heap::new();
    heap.enter(|| {
        other.enter(|| drop(Gc::new(3u8)));
        let _x = Gc::new(4u8);
        assert_eq!(heap.object_count(), 2, "scopes nest and restore");
    });
    drop((inside, outside));
}

#[test]
fn dropping_the_heap_keeps_live_objects_valid() {
    let heap = Heap::new();
    let drops = Drops::default();
    let a = heap.alloc(Probe(drops.clone()));
    let s = heap.alloc_str("still here");
    let w = Gc::downgrade(&a);
    drop(heap);
    assert_eq!(drops.count(), 0);
    assert_eq!(&*s, "still here");
    assert!(w.upgrade().is_some());
    drop(a);
    assert_eq!(drops.count(), 1);
    drop(s);
    drop(w); // the last block: the heap's memory goes now (Miri checks for leaks)
}

#[test]
fn memory_limit_returns_an_error_and_keeps_everything() {
    let heap = Heap::new();
    heap.set_limit(Some(4096));
    assert_eq!(heap.limit(), Some(4096));
    let mut list: Option<Gc<Node>> = None;
    let mut built = 0;
    let err = loop {
        match heap.try_alloc(Node {
            value: built,
            next: RefCell::new(list.clone()),
        }) {
            Ok(node) => {
                list = Some(node);
                built += 1;
            }
            Err(err) => break err,
        }
    };
    assert_eq!(built, 4096 / 40);
    assert!(err.to_string().contains("memory limit"), "{err}");
    // The structure built so far is intact.
    let mut seen = 0;
    let mut cursor = list.clone();
    while let Some(node) = cursor {
        assert_eq!(node.value, built - 1 - seen);
        seen += 1;
        cursor = node.next.borrow().clone();
    }
    assert_eq!(seen, built);
}

#[test]
fn deep_lists_drop_without_overflowing_the_stack() {
    // 10 million nodes on a 256 KiB stack (fewer under Miri).
    let n = if cfg!(miri) { 2_000 } else { 10_000_000 };
    let drops = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let heap = Heap::new();
            // This test is about the release path: build without automatic collections.
            let _no_gc = heap.disabled();
            let mut head: Option<Gc<Node>> = None;
            for i in 0..n {
                head = Some(heap.alloc(Node {
                    value: i,
                    next: RefCell::new(head.take()),
                }));
            }
            assert_eq!(heap.object_count() as u64, n);
            drop(head);
            heap.object_count()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(drops, 0);
}

/// The same with immutable nodes, which are never tracked: their nested
/// releases are bounded by a stack window rather than counted (see
/// `MAX_RELEASE_DEPTH`). Some nodes have a weak reference, so the chain
/// mixes those releases with counted ones; every node is freed and every
/// weak reference cleared.
#[test]
fn deep_lists_of_untracked_nodes_drop_without_overflowing_the_stack() {
    let n = if cfg!(miri) { 2_000 } else { 1_000_000 };
    for weak_every in [0, 7, 1000] {
        let left = common::drop_deep_untracked_list_on_a_small_stack::<common::Link>(n, weak_every);
        assert_eq!(left, 0, "weak_every {weak_every}");
    }
}

#[test]
fn dropping_the_heap_releases_what_its_collector_held() {
    use rcgc::DebugFlags;
    let heap = Heap::new();
    let drops = Drops::default();
    // A handle captured by a gc callback, and a cycle saved by DEBUG_SAVEALL.
    let captured = heap.alloc(Probe(drops.clone()));
    heap.add_gc_callback(move |_, _| {
        let _ = &captured;
    });
    let a = heap.alloc(Node {
        value: 1,
        next: RefCell::new(None),
    });
    *a.next.borrow_mut() = Some(a.clone());
    drop(a);
    heap.set_debug(DebugFlags::SAVEALL);
    assert_eq!(heap.collect(), 1);
    assert_eq!(heap.garbage().len(), 1);
    let weak = Gc::downgrade(&heap.garbage()[0].downcast::<Node>().unwrap());
    drop(heap); // under Miri, a leak here fails the test
    assert_eq!(drops.count(), 1, "the callback's captured handle was released");
    assert!(weak.upgrade().is_none(), "the saved cycle was collected at heap drop");
}
