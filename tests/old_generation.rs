//! The oldest and the permanent generation keep no list: their objects are
//! found by walking the heap. Every way of reaching them (a full collection,
//! `objects(Some(2))`, `referrers`, `freeze`/`unfreeze`, incremental steps)
//! must see every old object: small ones, over-aligned ones (whose block
//! starts with padding), large ones, next to leaves (also over-aligned),
//! weak records and free blocks, which must not be mistaken for objects.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use rcgc::{AnyGc, Gc, GcPhase, Heap, Trace};

mod common;
use common::{size, AtCheckpoint, Counter};

/// A 24-byte tracked node: 40 bytes in all.
#[derive(Trace)]
struct Node {
    value: u64,
    next: RefCell<Option<Gc<Node>>>,
}

/// An object of one of three shapes (its payload `P`): small (a pool
/// block), over-aligned (a large block that starts with padding), large.
#[derive(Trace)]
struct Obj<P: Trace + 'static> {
    #[trace(skip)]
    drops: Counter,
    payload: P,
    edges: RefCell<Vec<Ref>>,
    /// Over-aligned leaves hang off every object.
    leaves: RefCell<Vec<Gc<AlignedLeaf>>>,
}

impl<P: Trace + 'static> Drop for Obj<P> {
    fn drop(&mut self) {
        self.drops.bump();
    }
}

#[derive(Trace)]
struct Small(u64);

/// A value aligned to more than its header: its block starts with padding.
#[derive(Trace)]
#[repr(align(64))]
struct Aligned(u64);

#[derive(Trace)]
struct Large([u64; 80]);

/// An over-aligned leaf: its padding word must not look like a tracked header.
#[derive(Trace)]
#[repr(align(128))]
struct AlignedLeaf(u64);

/// A handle to an object of any shape.
#[derive(Trace, Clone)]
enum Ref {
    Small(Gc<Obj<Small>>),
    Aligned(Gc<Obj<Aligned>>),
    Large(Gc<Obj<Large>>),
}

impl Ref {
    fn id(&self) -> usize {
        match self {
            Ref::Small(o) => Gc::id(o),
            Ref::Aligned(o) => Gc::id(o),
            Ref::Large(o) => Gc::id(o),
        }
    }

    fn edges(&self) -> &RefCell<Vec<Ref>> {
        match self {
            Ref::Small(o) => &o.edges,
            Ref::Aligned(o) => &o.edges,
            Ref::Large(o) => &o.edges,
        }
    }

    fn leaves(&self) -> &RefCell<Vec<Gc<AlignedLeaf>>> {
        match self {
            Ref::Small(o) => &o.leaves,
            Ref::Aligned(o) => &o.leaves,
            Ref::Large(o) => &o.leaves,
        }
    }

    fn is_tracked(&self, heap: &Heap) -> bool {
        match self {
            Ref::Small(o) => heap.is_tracked(o),
            Ref::Aligned(o) => heap.is_tracked(o),
            Ref::Large(o) => heap.is_tracked(o),
        }
    }

    fn referrers(&self, heap: &Heap) -> Vec<AnyGc> {
        match self {
            Ref::Small(o) => heap.referrers(o),
            Ref::Aligned(o) => heap.referrers(o),
            Ref::Large(o) => heap.referrers(o),
        }
    }
}

fn new_obj<P: Trace + 'static>(heap: &Heap, drops: &Counter, payload: P) -> Gc<Obj<P>> {
    heap.alloc(Obj {
        drops: drops.clone(),
        payload,
        edges: RefCell::new(Vec::new()),
        leaves: RefCell::new(Vec::new()),
    })
}

/// Object `i`: small, over-aligned or large by `i % 3`.
fn obj(heap: &Heap, drops: &Counter, i: usize) -> Ref {
    match i % 3 {
        0 => Ref::Small(new_obj(heap, drops, Small(i as u64))),
        1 => Ref::Aligned(new_obj(heap, drops, Aligned(i as u64))),
        _ => Ref::Large(new_obj(heap, drops, Large([i as u64; 80]))),
    }
}

fn ids(objects: &[AnyGc]) -> HashSet<usize> {
    objects.iter().map(AnyGc::id).collect()
}

/// What [`old_heap`] returns: the objects, the leaves beside them, weak
/// references to some of them.
type OldHeap = (Vec<Ref>, Vec<Gc<u64>>, Vec<rcgc::Weak<Obj<Small>>>);

/// Objects of every shape, promoted to generation 2 by a full collection,
/// among leaves (some over-aligned), weak records and freed blocks. Object
/// `i` refers to object `(7i + 1) % n`.
fn old_heap(heap: &Heap, drops: &Counter, n: usize) -> OldHeap {
    heap.disable();
    let objects: Vec<Ref> = (0..n).map(|i| obj(heap, drops, i)).collect();
    let mut leaves = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        o.edges().borrow_mut().push(objects[(i * 7 + 1) % n].clone());
        o.leaves().borrow_mut().push(heap.alloc(AlignedLeaf(i as u64)));
        leaves.push(heap.alloc(i as u64));
        // Freed blocks between live ones.
        drop(obj(heap, drops, i));
        drop(heap.alloc(AlignedLeaf(0)));
    }
    let weaks = objects
        .iter()
        .filter_map(|o| match o {
            Ref::Small(o) => Some(Gc::downgrade(o)),
            _ => None,
        })
        .collect();
    assert_eq!(heap.collect(), 0);
    (objects, leaves, weaks)
}

#[test]
fn every_old_object_is_found_by_objects_and_referrers() {
    let heap = Heap::new();
    let drops = Counter::default();
    let n = size(300, 30);
    let (objects, leaves, weaks) = old_heap(&heap, &drops, n);
    let expected: HashSet<usize> = objects.iter().map(Ref::id).collect();
    assert_eq!(ids(&heap.objects(Some(2)).unwrap()), expected);
    assert!(heap.objects(Some(0)).unwrap().is_empty());
    assert!(heap.objects(Some(1)).unwrap().is_empty());
    assert_eq!(ids(&heap.objects(None).unwrap()), expected);
    for o in &objects {
        assert!(o.is_tracked(&heap));
    }
    // Each object is referred to by the objects whose edge points at it.
    for (i, target) in objects.iter().enumerate().take(size(20, 5)) {
        let want: HashSet<usize> = (0..n)
            .filter(|&j| (j * 7 + 1) % n == i)
            .map(|j| objects[j].id())
            .collect();
        assert_eq!(ids(&target.referrers(&heap)), want, "referrers of object {i}");
    }
    drop((leaves, weaks));
}

#[test]
fn a_full_collection_finds_old_garbage_of_every_shape() {
    let heap = Heap::new();
    let drops = Counter::default();
    let n = size(300, 30);
    let (objects, leaves, weaks) = old_heap(&heap, &drops, n);
    let before = drops.get();
    drop(objects);
    // Every object is in one garbage graph (each points at another one).
    assert_eq!(heap.collect(), n);
    assert_eq!(drops.get() - before, n);
    assert!(heap.objects(None).unwrap().is_empty());
    assert!(weaks.iter().all(|w| w.upgrade().is_none()));
    drop(leaves);
    assert_eq!(heap.object_count(), 0);
}

#[test]
fn freeze_and_unfreeze_move_every_old_object() {
    let heap = Heap::new();
    let drops = Counter::default();
    let n = size(300, 30);
    let (objects, leaves, _weaks) = old_heap(&heap, &drops, n);
    // A young object too.
    let young = obj(&heap, &drops, 0);
    heap.freeze();
    assert_eq!(heap.freeze_count(), n + 1);
    assert!(heap.objects(None).unwrap().is_empty());
    assert!(!objects[1].is_tracked(&heap));
    let before = drops.get();
    drop(young);
    assert_eq!(heap.freeze_count(), n, "a frozen object dying leaves the count");
    // Frozen garbage is ignored by collections...
    let objects_ids: HashSet<usize> = objects.iter().map(Ref::id).collect();
    drop(objects);
    assert_eq!(heap.collect(), 0);
    assert_eq!(drops.get(), before + 1, "only the acyclic young object died");
    assert_eq!(heap.freeze_count(), n);
    // ... until it is unfrozen.
    heap.unfreeze();
    assert_eq!(heap.freeze_count(), 0);
    assert_eq!(ids(&heap.objects(Some(2)).unwrap()), objects_ids);
    assert_eq!(heap.collect(), n);
    drop(leaves);
    assert_eq!(heap.object_count(), 0);
}

/// Old objects dying by reference counting leave the old generation's count.
#[test]
fn old_objects_dying_by_count_are_uncounted() {
    let heap = Heap::new();
    let drops = Counter::default();
    let mut objects: Vec<Ref> = (0..size(90, 9)).map(|i| obj(&heap, &drops, i)).collect();
    heap.collect();
    let seen = Rc::new(Cell::new(0));
    let record = seen.clone();
    heap.add_gc_callback(move |phase, info| {
        if phase == GcPhase::Stop {
            record.set(info.candidates);
        }
    });
    let keep = objects.len() / 3;
    drop(objects.split_off(keep));
    heap.collect();
    assert_eq!(
        seen.get(),
        0,
        "nothing was decremented: the full collection examines no old object"
    );
    // The walk checks the old generation's count in debug builds.
    assert_eq!(heap.objects(Some(2)).unwrap().len(), keep);
    drop(objects);
}

/// The number of candidates of each finished collection.
fn record_candidates(heap: &Heap) -> Rc<RefCell<Vec<usize>>> {
    let seen: Rc<RefCell<Vec<usize>>> = Rc::default();
    let record = seen.clone();
    heap.add_gc_callback(move |phase, info| {
        if phase == GcPhase::Stop {
            record.borrow_mut().push(info.candidates);
        }
    });
    seen
}

fn node(heap: &Heap, value: u64, next: Option<Gc<Node>>) -> Gc<Node> {
    heap.alloc(Node {
        value,
        next: RefCell::new(next),
    })
}

/// A full collection examines the old objects whose count was decremented
/// since the last full collection and the old objects they reach, not the
/// untouched rest of the old generation (rust-cc's and Bacon and Rajan's
/// "possible roots", applied to the oldest generation only).
#[test]
fn a_full_collection_examines_decremented_old_objects_and_what_they_reach() {
    let heap = Heap::new();
    let untouched: Vec<Gc<Node>> = (0..size(100, 10)).map(|i| node(&heap, i as u64, None)).collect();
    let x = node(&heap, 1, None);
    let y = node(&heap, 2, Some(x.clone()));
    *x.next.borrow_mut() = Some(y); // y's only handle moves into x
    heap.collect();
    let seen = record_candidates(&heap);
    drop(x); // decremented to 1: x is flagged, y is not
    assert_eq!(heap.collect(), 2, "y is taken in through x's reference");
    assert_eq!(*seen.borrow(), [2], "the untouched old objects are not examined");
    assert!(untouched.iter().enumerate().all(|(i, n)| n.value == i as u64));
    assert_eq!(heap.objects(Some(2)).unwrap().len(), untouched.len());
    drop(untouched);
    assert_eq!(heap.object_count(), 0);
}

/// A young generation of mostly untouched objects (built by moving handles)
/// moves them up before detection, untraced; a cycle whose only flagged
/// member reaches an unflagged one must still be found: the collection
/// takes the unflagged member back in from where it moved it. Generation 0
/// (into generation 1) and full collections (into generation 2) each.
#[test]
fn a_collection_of_mostly_untouched_young_objects_finds_cycles_through_them() {
    for generation in [0, 2] {
        let heap = Heap::new();
        heap.disable();
        let seen = record_candidates(&heap);
        let untouched: Vec<Gc<Node>> = (0..size(200, 20)).map(|i| node(&heap, i as u64, None)).collect();
        let x = node(&heap, 1, None);
        let y = node(&heap, 2, Some(x.clone()));
        *x.next.borrow_mut() = Some(y); // y's only handle moves into x
        drop(x); // decremented to 1: x is flagged, y and `untouched` are not
        assert_eq!(heap.collect_generation(generation), Ok(2), "generation {generation}");
        assert_eq!(
            *seen.borrow(),
            [2],
            "generation {generation}: only the cycle is examined"
        );
        let dest = (generation + 1).min(2);
        assert_eq!(heap.gc_count()[dest], if dest == 1 { 1 } else { 0 });
        assert!(untouched.iter().enumerate().all(|(i, n)| n.value == i as u64));
        assert_eq!(
            heap.objects(Some(dest)).unwrap().len(),
            untouched.len(),
            "generation {generation}"
        );
        assert_eq!(heap.objects(Some(0)).unwrap().len(), 0);
        drop(untouched);
        assert_eq!(heap.object_count(), 0);
    }
}

/// The same young objects moved up untraced may be reached by a flagged one
/// that is live: they survive, each once in the generation above, and a
/// later collection still finds a cycle made of them.
#[test]
fn untouched_young_objects_reached_from_a_live_flagged_one_survive_once() {
    let heap = Heap::new();
    heap.disable();
    let untouched: Vec<Gc<Node>> = (0..size(200, 20)).map(|i| node(&heap, i as u64, None)).collect();
    // A chain built by moving: head -> a -> b, only `head` flagged.
    let b = node(&heap, 3, None);
    let a = node(&heap, 2, Some(b));
    let head = node(&heap, 1, Some(a));
    let keep = head.clone();
    drop(keep); // head flagged, still alive through `head`
    assert_eq!(heap.collect_generation(0), Ok(0));
    let gen1 = heap.objects(Some(1)).unwrap();
    assert_eq!(gen1.len(), untouched.len() + 3, "every survivor once in generation 1");
    let ids: HashSet<usize> = gen1.iter().map(|o| o.id()).collect();
    assert_eq!(ids.len(), gen1.len(), "no object listed twice");
    drop(gen1);
    // Close the chain into a cycle and let go of it.
    let a = head.next.borrow().clone().unwrap();
    let b = a.next.borrow().clone().unwrap();
    *b.next.borrow_mut() = Some(head);
    drop((a, b));
    assert_eq!(heap.collect(), 3);
    drop(untouched);
    assert_eq!(heap.object_count(), 0);
}

/// An object decremented while young keeps its flag through the young
/// collections that cannot free it (its cycle runs through an untouched
/// old object, a reference from outside for them) into the old
/// generation, where the next full collection examines it and finds the
/// cycle.
#[test]
fn a_cycle_through_the_old_generation_made_garbage_while_young_is_found_once_promoted() {
    let heap = Heap::new();
    let drops = Counter::default();
    let old = new_obj(&heap, &drops, Small(0));
    let old_ref = Ref::Small(old);
    heap.collect(); // `old` is in generation 2, not decremented since
    let young = new_obj(&heap, &drops, Small(1));
    // The old object's only handle moves into the young one, which the old
    // one then refers to: only the young object's count is decremented.
    young.edges.borrow_mut().push(old_ref);
    let back = Ref::Small(young.clone());
    match &young.edges.borrow()[0] {
        Ref::Small(old) => old.edges.borrow_mut().push(back),
        _ => unreachable!(),
    }
    drop(young);
    assert_eq!(heap.collect_generation(0), Ok(0), "the old object is outside");
    assert_eq!(heap.collect_generation(1), Ok(0), "the old object is outside");
    assert_eq!(heap.gc_count(), [0, 0, 1]);
    // (No `objects()` here: dropping the handles it returns would flag both.)
    assert_eq!(heap.collect(), 2);
    assert_eq!(drops.get(), 2);
    assert_eq!(heap.object_count(), 0);
}

/// A full collection takes in only old objects of its own heap: an old
/// object of another heap that its garbage refers to is a reference from
/// outside, released by the teardown through its own heap.
#[test]
fn a_full_collection_leaves_old_objects_of_other_heaps_alone() {
    let (a, b) = (Heap::new(), Heap::new());
    let drops = Counter::default();
    let foreign = Ref::Small(new_obj(&b, &drops, Small(7)));
    b.collect(); // old in heap b
    let x = new_obj(&a, &drops, Small(1));
    let y = new_obj(&a, &drops, Small(2));
    x.edges.borrow_mut().push(Ref::Small(y.clone()));
    y.edges.borrow_mut().push(Ref::Small(x.clone()));
    x.edges.borrow_mut().push(foreign); // heap b's object's only handle
    a.collect(); // the cycle is in generation 2 of heap a
    let seen = record_candidates(&a);
    drop((x, y)); // both flagged
    assert_eq!(a.collect(), 2);
    assert_eq!(*seen.borrow(), [2], "heap b's object is not examined by heap a");
    assert_eq!(drops.get(), 3, "the teardown released heap b's object");
    assert_eq!((a.object_count(), b.object_count()), (0, 0));
    assert_eq!(b.objects(Some(2)).unwrap().len(), 0);
}

#[test]
fn incremental_steps_find_old_garbage_of_every_shape() {
    let heap = Heap::new();
    let drops = Counter::default();
    let n = size(300, 30);
    let (objects, leaves, _weaks) = old_heap(&heap, &drops, n);
    heap.set_policy(AtCheckpoint::steps(size(50, 8)));
    heap.enable();
    let before = drops.get();
    drop(objects);
    // The garbage is one connected graph, found whole once a region holds
    // it; regions are bounded, so it takes passes; every step is complete
    // on its own, so nothing live is ever freed.
    let mut found = 0;
    for _ in 0..size(200, 60) {
        found += heap.checkpoint();
        if found == n {
            break;
        }
    }
    // What the steps could not find whole, a full collection does.
    found += heap.collect();
    assert_eq!(found, n);
    assert_eq!(drops.get() - before, n);
    drop(leaves);
    assert_eq!(heap.object_count(), 0);
}

#[test]
fn incremental_steps_find_old_cycles_that_fit_their_budget() {
    let heap = Heap::with_policy(AtCheckpoint::steps(size(64, 16)));
    let drops = Counter::default();
    let cycles = size(200, 10);
    let mut pairs = Vec::new();
    for i in 0..cycles {
        let a = obj(&heap, &drops, i);
        let b = obj(&heap, &drops, i + 1);
        a.edges().borrow_mut().push(b.clone());
        b.edges().borrow_mut().push(a.clone());
        pairs.push((a, b));
    }
    heap.collect(); // everything old
                    // Keep the odd cycles alive, drop the even ones.
    let kept: Vec<_> = pairs.into_iter().enumerate().filter(|(i, _)| i % 2 == 1).collect();
    let mut found = 0;
    for _ in 0..size(200, 40) {
        found += heap.checkpoint();
    }
    assert_eq!(found, 2 * (cycles - kept.len()), "a pass finds every dropped cycle");
    for (_, (a, b)) in &kept {
        assert_eq!(a.edges().borrow().len(), 1);
        assert_eq!(a.edges().borrow()[0].id(), b.id());
    }
    drop(kept);
    assert_eq!(heap.collect(), cycles);
}

/// A 24-byte node costs 40 bytes in all once old: its block and nothing
/// beside it (the target; CPython's 2-slot object costs 48).
#[test]
fn an_old_node_costs_forty_bytes_in_all() {
    let heap = Heap::new();
    heap.disable();
    let n = size(100_000, 500);
    let mut head: Option<Gc<Node>> = None;
    for i in 0..n {
        head = Some(heap.alloc(Node {
            value: i as u64,
            next: RefCell::new(head.take()),
        }));
    }
    heap.collect(); // the list was built by moves: promoted without a trace
    heap.collect_generation(0).unwrap();
    assert_eq!(heap.objects(Some(2)).unwrap().len(), n);
    assert_eq!(heap.bytes_in_use(), 40 * n);
    let total = heap.bytes_in_use() + heap.gc_side_bytes();
    assert!(total <= 40 * n + 4096 * 8, "{total} bytes for {n} nodes");
    // Unlink iteratively (a long chain).
    let mut next = head;
    while let Some(node) = next {
        next = node.next.borrow_mut().take();
        assert!(node.value < n as u64);
    }
    assert_eq!(heap.object_count(), 0);
}

/// Frozen objects count as referenced from outside: a cycle through a
/// frozen object survives collections (as in CPython). Unfreezing it makes
/// the cycle garbage without any count being decremented, so `unfreeze`
/// flags what it moves back and the next full collection finds the cycle.
#[test]
fn a_cycle_through_a_frozen_object_is_found_after_unfreeze() {
    let heap = Heap::new();
    let drops = Counter::default();
    let frozen = new_obj(&heap, &drops, Small(0));
    heap.freeze();
    // The frozen object's only handle moves into a young one, which the
    // frozen one then refers to.
    let young = new_obj(&heap, &drops, Small(1));
    young.edges.borrow_mut().push(Ref::Small(frozen));
    let back = Ref::Small(young.clone());
    match &young.edges.borrow()[0] {
        Ref::Small(frozen) => frozen.edges.borrow_mut().push(back),
        _ => unreachable!(),
    }
    drop(young);
    assert_eq!(heap.collect(), 0, "the frozen object holds the young one");
    heap.unfreeze();
    assert_eq!(heap.collect(), 2);
    assert_eq!(drops.get(), 2);
    assert_eq!(heap.object_count(), 0);
}

/// A finalizer that resurrects its object.
#[derive(Trace)]
#[trace(finalize)]
struct Phoenix {
    me: RefCell<Option<Gc<Phoenix>>>,
    ash: RefCell<Option<Gc<Ash>>>,
    #[trace(skip)]
    drops: Counter,
}

/// What the finalizer builds: an object pointing back at the phoenix.
#[derive(Trace)]
struct Ash {
    phoenix: RefCell<Option<Gc<Phoenix>>>,
    #[trace(skip)]
    drops: Counter,
}

impl rcgc::Finalize for Phoenix {
    fn finalize(this: &Gc<Self>) {
        // Moved into place: the new object's count is never decremented,
        // and only the finalizer's temporary handle reaches `this`.
        let ash = Gc::new(Ash {
            phoenix: RefCell::new(Some(this.clone())),
            drops: this.drops.clone(),
        });
        *this.ash.borrow_mut() = Some(ash);
        drop(this.me.borrow_mut().take());
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        self.drops.bump();
    }
}

impl Drop for Ash {
    fn drop(&mut self) {
        self.drops.bump();
    }
}

/// A finalizer run by a full collection resurrects its object into a new
/// cycle built by moving handles (no count decremented after the
/// resurrection). Resurrected objects are flagged, so a later full
/// collection still finds the cycle once it is garbage.
#[test]
fn a_cycle_a_finalizer_builds_around_its_resurrected_object_is_found_later() {
    let heap = Heap::new();
    let drops = Counter::default();
    heap.enter(|| {
        let phoenix = heap.alloc(Phoenix {
            me: RefCell::new(None),
            ash: RefCell::new(None),
            drops: drops.clone(),
        });
        *phoenix.me.borrow_mut() = Some(phoenix.clone());
        drop(phoenix);
        assert_eq!(heap.collect(), 0, "resurrected by its finalizer");
        heap.collect_generation(1).unwrap(); // the new object becomes old
        assert_eq!(heap.collect(), 2);
        assert_eq!(drops.get(), 2);
        assert_eq!(heap.object_count(), 0);
    });
}
