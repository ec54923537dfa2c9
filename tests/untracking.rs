//! Objects whose handles cannot change (`Trace::FIXED_EDGES`) and point only
//! to untracked objects are not tracked by the collector: they can never be
//! part of a cycle. This is CPython's untracking of tuples of atoms, done at
//! allocation instead of during the next collection.
//!
//! Checked here: which objects are left untracked, that they cost the
//! collector nothing (no generation-0 count, no automatic collection), that
//! an immutable object pointing to a tracked one is tracked (so cycles
//! through it are still found), that `Gc::get_mut` tracks an object again
//! before its handles can change, and what `#[derive(Trace)]` computes.
//! Also acyclic types (`Trace::ACYCLIC`), declared with `#[trace(acyclic)]`
//! or inferred by the derive for immutable types built from themselves and
//! std types: never tracked, with the 8-byte leaf header, freed by their
//! counts, deep chains of them dropped on a small stack, a broken promise a
//! leak, and which types the derive infers it for (mutually recursive ones
//! compile, and are not).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rcgc::{Gc, Heap, Trace};

mod common;

use common::{Counter, DropCount};

/// An immutable binary-tree node that may also point to another derived
/// type (`Tag`), so the derive does not infer `ACYCLIC` for it: its objects
/// are left untracked at each allocation instead, since its handles are
/// fixed and lead only to untracked objects.
#[derive(Trace)]
struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
    tag: Option<Gc<Tag>>,
}

#[derive(Trace)]
struct Tag(u32);

fn tree(heap: &Heap, depth: u32) -> Gc<Node> {
    if depth == 0 {
        heap.alloc(Node {
            left: None,
            right: None,
            tag: Some(heap.alloc(Tag(0))),
        })
    } else {
        heap.alloc(Node {
            left: Some(tree(heap, depth - 1)),
            right: Some(tree(heap, depth - 1)),
            tag: None,
        })
    }
}

/// A mutable object: its handle can change after allocation.
#[derive(Trace)]
struct Cellish {
    next: RefCell<Option<Gc<Pair>>>,
    drops: Rc<Cell<usize>>,
}

impl Drop for Cellish {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

/// An immutable object that may point to a mutable one.
#[derive(Trace)]
struct Pair {
    to: Option<Gc<Cellish>>,
    drops: Rc<Cell<usize>>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

#[test]
fn immutable_trees_of_atoms_are_never_tracked_nor_counted() {
    let heap = Heap::new();
    let depth = if cfg!(miri) { 5 } else { 11 }; // 4095 nodes: past the 700 threshold
    let root = tree(&heap, depth);
    assert!(!heap.is_tracked(&root));
    assert!(!heap.is_tracked(root.left.as_ref().unwrap()));
    assert_eq!(heap.gc_count(), [0, 0, 0], "untracked allocations do not count");
    assert_eq!(heap.gc_stats()[0].collections, 0, "no automatic collection ran");
    assert!(
        heap.objects(None).unwrap().is_empty(),
        "untracked objects are invisible to objects()"
    );
    let leaves = 1 << depth; // each with a tag
    assert_eq!(heap.object_count(), (1 << (depth + 1)) - 1 + leaves);
    drop(root);
    assert_eq!(heap.object_count(), 0, "freed by their counts");
}

#[test]
fn untracked_deaths_do_not_lower_the_generation_0_count() {
    let heap = Heap::new();
    let drops = Rc::new(Cell::new(0));
    let tracked: Vec<_> = (0..10)
        .map(|_| {
            heap.alloc(Cellish {
                next: RefCell::new(None),
                drops: drops.clone(),
            })
        })
        .collect();
    for _ in 0..20 {
        drop(tree(&heap, 2));
    }
    assert_eq!(heap.gc_count()[0], 10, "only the tracked allocations count");
    drop(tracked);
    assert_eq!(heap.gc_count()[0], 0, "and their deaths");
}

#[test]
fn immutable_object_referring_to_a_tracked_one_is_tracked_and_its_cycle_collected() {
    let heap = Heap::new();
    let drops = Rc::new(Cell::new(0));
    let cell = heap.alloc(Cellish {
        next: RefCell::new(None),
        drops: drops.clone(),
    });
    assert!(heap.is_tracked(&cell));
    let pair = heap.alloc(Pair {
        to: Some(cell.clone()),
        drops: drops.clone(),
    });
    assert!(
        heap.is_tracked(&pair),
        "its referent is tracked, so it may be in a cycle"
    );
    // Close the cycle through the mutable object (behaviour 3's tuple <-> list).
    *cell.next.borrow_mut() = Some(pair.clone());
    drop((cell, pair));
    assert_eq!(drops.get(), 0);
    assert_eq!(heap.collect(), 2);
    assert_eq!(drops.get(), 2);
}

#[test]
fn an_immutable_object_of_atoms_is_untracked_and_so_is_one_referring_to_it() {
    let heap = Heap::new();
    let drops = Rc::new(Cell::new(0));
    let lone = heap.alloc(Pair {
        to: None,
        drops: drops.clone(),
    });
    assert!(!heap.is_tracked(&lone));
    let outer = heap.alloc(Some(lone.clone()));
    assert!(!heap.is_tracked(&outer), "an untracked referent cannot lead to a cycle");
    let list = heap.alloc(vec![outer.clone(), outer]);
    assert!(!heap.is_tracked(&list));
    let mutable = heap.alloc(RefCell::new(vec![lone]));
    assert!(heap.is_tracked(&mutable), "a RefCell's handles can change");
}

#[test]
fn get_mut_tracks_the_object_again_so_a_cycle_made_through_it_is_collected() {
    let heap = Heap::new();
    let drops = Rc::new(Cell::new(0));
    let mut pair = heap.alloc(Pair {
        to: None,
        drops: drops.clone(),
    });
    assert!(!heap.is_tracked(&pair));
    let cell = heap.alloc(Cellish {
        next: RefCell::new(None),
        drops: drops.clone(),
    });
    Gc::get_mut(&mut pair).expect("unique").to = Some(cell.clone());
    assert!(heap.is_tracked(&pair), "get_mut tracks it again");
    *cell.next.borrow_mut() = Some(pair.clone());
    drop((cell, pair));
    assert_eq!(heap.collect(), 2);
    assert_eq!(drops.get(), 2);
}

#[test]
fn get_mut_on_a_shared_object_changes_nothing() {
    let heap = Heap::new();
    let mut a = tree(&heap, 1);
    let b = a.clone();
    assert!(Gc::get_mut(&mut a).is_none());
    assert!(!heap.is_tracked(&b));
}

#[test]
fn untracked_objects_with_finalizers_still_finalize_once_at_death() {
    #[derive(Trace)]
    #[trace(finalize)]
    struct Final {
        child: Option<Gc<u32>>,
        runs: Rc<Cell<usize>>,
    }
    impl rcgc::Finalize for Final {
        fn finalize(this: &Gc<Self>) {
            this.runs.set(this.runs.get() + 1);
        }
    }
    let heap = Heap::new();
    let runs = Rc::new(Cell::new(0));
    let f = heap.alloc(Final {
        child: Some(heap.alloc(5)),
        runs: runs.clone(),
    });
    assert!(!heap.is_tracked(&f));
    assert!(!heap.is_finalized(&f));
    drop(f);
    assert_eq!(runs.get(), 1);
}

// ------------------------------------------------------- derive constants --

#[derive(Trace)]
struct WithCounter {
    _hits: Cell<u64>, // a cell without handles inside changes no edge
    _child: Option<Gc<Node>>,
}

#[derive(Trace)]
struct WithRefCell {
    _child: RefCell<Option<Gc<Node>>>,
}

#[derive(Trace)]
struct BoxedList {
    _head: Gc<u8>,
    _tail: Option<Box<BoxedList>>,
}

#[derive(Trace)]
struct Generic<T> {
    _value: T,
    _next: Option<Gc<Node>>,
}

#[derive(Trace)]
#[trace(tracked)]
struct Forced {
    _value: u8,
}

#[test]
fn derive_computes_fixed_edges_from_the_fields() {
    // (type, FIXED_EDGES, expected)
    let cases = [
        ("Node", Node::FIXED_EDGES, true),
        ("WithCounter: a cell without handles", WithCounter::FIXED_EDGES, true),
        ("WithRefCell", WithRefCell::FIXED_EDGES, false),
        (
            "BoxedList: Self by value is conservative",
            BoxedList::FIXED_EDGES,
            false,
        ),
        ("Generic<u64>", <Generic<u64>>::FIXED_EDGES, true),
        (
            "Generic<RefCell<..>>",
            <Generic<RefCell<Option<Gc<u8>>>>>::FIXED_EDGES,
            false,
        ),
        ("Forced: #[trace(tracked)] claims nothing", Forced::FIXED_EDGES, false),
        ("u64", <u64 as Trace>::FIXED_EDGES, true),
        ("String", <String as Trace>::FIXED_EDGES, true),
        ("Vec<Gc<Node>>", <Vec<Gc<Node>> as Trace>::FIXED_EDGES, true),
        (
            "RefCell<Vec<Gc<Node>>>",
            <RefCell<Vec<Gc<Node>>> as Trace>::FIXED_EDGES,
            false,
        ),
        ("RefCell<u64>", <RefCell<u64> as Trace>::FIXED_EDGES, true),
    ];
    for (name, fixed, expected) in cases {
        assert_eq!(fixed, expected, "{name}");
    }
}

/// An immutable object made during a collection that points to one of the
/// collection's candidates is tracked: the candidate is out of the
/// generation lists while the collection runs, but it is not untracked.
#[test]
fn an_immutable_object_pointing_into_a_running_collection_is_tracked() {
    type Saved = Rc<RefCell<Option<Gc<Option<Gc<Resurrector>>>>>>;
    #[derive(Trace)]
    #[trace(finalize)]
    struct Resurrector {
        me: RefCell<Option<Gc<Resurrector>>>,
        #[trace(skip)]
        saved: Saved,
    }
    impl rcgc::Finalize for Resurrector {
        fn finalize(this: &Gc<Self>) {
            // An immutable wrapper around the candidate, on the current heap
            // (which resurrects the candidate).
            *this.saved.borrow_mut() = Some(Gc::new(Some(this.clone())));
        }
    }
    let heap = Heap::new();
    let saved: Saved = Rc::new(RefCell::new(None));
    heap.enter(|| {
        let x = heap.alloc(Resurrector {
            me: RefCell::new(None),
            saved: saved.clone(),
        });
        *x.me.borrow_mut() = Some(x.clone());
        drop(x);
        assert_eq!(heap.collect(), 0, "resurrected");
    });
    let wrapper = saved.borrow_mut().take().expect("the finalizer ran");
    assert!(
        heap.is_tracked(&wrapper),
        "its referent was a candidate when it was made"
    );
    let x = wrapper.as_ref().clone().unwrap();
    x.me.borrow_mut().take();
    drop((wrapper, x));
    assert_eq!(heap.object_count(), 0);
}

/// An immutable node declared acyclic.
#[derive(Trace)]
#[trace(acyclic)]
struct Atom {
    left: Option<Gc<Atom>>,
    right: Option<Gc<Atom>>,
}

/// A complete binary tree of `depth` built bottom-up, each node made by
/// `node` from its two subtrees.
fn pair_tree<N: Trace + 'static>(heap: &Heap, depth: u32, node: fn(Option<Gc<N>>, Option<Gc<N>>) -> N) -> Gc<N> {
    let (left, right) = if depth == 0 {
        (None, None)
    } else {
        (
            Some(pair_tree(heap, depth - 1, node)),
            Some(pair_tree(heap, depth - 1, node)),
        )
    };
    heap.alloc(node(left, right))
}

fn atom_tree(heap: &Heap, depth: u32) -> Gc<Atom> {
    pair_tree(heap, depth, |left, right| Atom { left, right })
}

#[test]
fn acyclic_types_get_the_leaf_header_and_are_never_tracked() {
    const { assert!(<Atom as Trace>::ACYCLIC && !<Node as Trace>::ACYCLIC) };
    let heap = Heap::new();
    let depth = if cfg!(miri) { 5 } else { 11 };
    let root = atom_tree(&heap, depth);
    // Two handles (16 bytes) behind an 8-byte header; a node the collector
    // may have to track has a 16-byte header (three handles here).
    assert_eq!(Gc::size_of(&root), 24);
    assert_eq!(Gc::size_of(&tree(&heap, 1)), 16 + 24);
    assert!(!heap.is_tracked(&root));
    assert_eq!(heap.gc_count(), [0, 0, 0]);
    assert!(heap.objects(None).unwrap().is_empty());
    assert_eq!(heap.collect(), 0);
    assert_eq!(heap.object_count(), (1 << (depth + 1)) - 1);
    let mut leaf = root.clone();
    while let Some(next) = leaf.left.clone() {
        leaf = next;
    }
    drop(root);
    assert_eq!(heap.object_count(), 1, "freed by their counts, but for the leaf held");
    assert!(leaf.left.is_none());
    drop(leaf);
    assert_eq!(heap.object_count(), 0);
}

/// An acyclic object with a drop counter.
#[derive(Trace)]
#[trace(acyclic)]
struct Counted {
    next: Option<Gc<Counted>>,
    #[trace(skip)]
    _drops: DropCount,
}

#[test]
fn acyclic_objects_are_dropped_the_moment_their_last_handle_goes() {
    let heap = Heap::new();
    let drops = Counter::default();
    let first = heap.alloc(Counted {
        next: None,
        _drops: DropCount(drops.clone()),
    });
    let second = heap.alloc(Counted {
        next: Some(first.clone()),
        _drops: DropCount(drops.clone()),
    });
    let weak = Gc::downgrade(&first);
    drop(first);
    assert_eq!(drops.get(), 0, "still held by `second`");
    assert!(weak.upgrade().is_some());
    drop(second);
    assert_eq!(drops.get(), 2, "both, at once");
    assert!(weak.upgrade().is_none());
    assert_eq!(heap.object_count(), 0);
}

/// A tracked object whose handle can change, for the broken promise below.
#[derive(Trace)]
struct Slot {
    to: RefCell<Option<Gc<Back>>>,
    #[trace(skip)]
    _drops: DropCount,
}

/// Declared acyclic, yet it points back at a `Slot` that points to it.
#[derive(Trace)]
#[trace(acyclic)]
struct Back {
    slot: Gc<Slot>,
    #[trace(skip)]
    _drops: DropCount,
}

/// A promise broken: a tracked object and an "acyclic" one that point to
/// each other. The collector cannot see the acyclic object's handle, so it
/// takes it for a reference from outside and never collects the cycle (a
/// leak, as with `Rc`); both objects stay intact, and breaking the cycle by
/// hand frees them.
#[test]
fn a_cycle_through_an_acyclic_object_leaks_and_stays_intact() {
    let heap = Heap::new();
    let drops = Counter::default();
    let slot = heap.alloc(Slot {
        to: RefCell::new(None),
        _drops: DropCount(drops.clone()),
    });
    let back = heap.alloc(Back {
        slot: slot.clone(),
        _drops: DropCount(drops.clone()),
    });
    assert!(heap.is_tracked(&slot) && !heap.is_tracked(&back));
    *slot.to.borrow_mut() = Some(back);
    let weak = Gc::downgrade(&slot);
    drop(slot);
    assert_eq!(
        heap.collect(),
        0,
        "the acyclic object's handle counts as one from outside"
    );
    assert_eq!(drops.get(), 0);

    let slot = weak.upgrade().expect("leaked, and intact");
    let back = slot.to.borrow_mut().take().expect("still linked");
    assert!(Gc::ptr_eq(&back.slot, &slot));
    drop(back);
    assert_eq!(drops.get(), 1, "the acyclic object, by its count");
    drop(slot);
    assert_eq!(drops.get(), 2);
    assert_eq!(heap.object_count(), 0);
}

/// Deep chains of acyclic objects drop on a small stack: their nested
/// releases take the stack-window path, then the counted one, whose queue
/// holds their addresses (no vtable needed). Some nodes have a weak
/// reference, which takes them off the fast path.
#[test]
fn deep_lists_of_acyclic_nodes_drop_without_overflowing_the_stack() {
    let n = if cfg!(miri) { 2_000 } else { 1_000_000 };
    for weak_every in [0, 7] {
        let left = common::drop_deep_untracked_list_on_a_small_stack::<common::AcyclicLink>(n, weak_every);
        assert_eq!(left, 0, "weak_every {weak_every}");
    }
}

/// A deep chain that alternates acyclic objects and slices of handles
/// (`Gc<[Gc<Fan>]>`): nothing in it is tracked, so past the counted depth
/// both kinds wait on the release queue, the nodes as their addresses and
/// the slices, whose pointers are wide, in boxes. Everything is freed on a
/// small stack.
#[test]
fn deep_chains_through_slices_of_handles_drop_without_overflowing_the_stack() {
    #[derive(Trace)]
    #[trace(acyclic)]
    struct Fan {
        value: u64,
        children: Option<Gc<[Gc<Fan>]>>,
    }
    let n = common::size(200_000, 300) as u64;
    let left = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let heap = Heap::new();
            let mut head = heap.alloc(Fan {
                value: 0,
                children: None,
            });
            for i in 1..n {
                let children = heap.alloc_slice(vec![head]);
                head = heap.alloc(Fan {
                    value: i,
                    children: Some(children),
                });
            }
            assert_eq!(heap.object_count() as u64, 2 * n - 1);
            assert_eq!(head.value, n - 1);
            assert_eq!(head.children.as_ref().unwrap()[0].value, n - 2);
            drop(head);
            heap.object_count()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(left, 0);
}

/// Tracked objects that hold acyclic ones still form collectable cycles;
/// the acyclic objects go with them, by their counts.
#[test]
fn a_cycle_of_tracked_objects_holding_acyclic_ones_is_collected() {
    #[derive(Trace)]
    struct Holder {
        other: RefCell<Option<Gc<Holder>>>,
        atom: Gc<Counted>,
    }
    let heap = Heap::new();
    let drops = Counter::default();
    let atom = |next| {
        heap.alloc(Counted {
            next,
            _drops: DropCount(drops.clone()),
        })
    };
    let a = heap.alloc(Holder {
        other: RefCell::new(None),
        atom: atom(None),
    });
    let b = heap.alloc(Holder {
        other: RefCell::new(Some(a.clone())),
        atom: atom(Some(atom(None))),
    });
    *a.other.borrow_mut() = Some(b.clone());
    drop((a, b));
    assert_eq!(heap.collect(), 2, "the two holders; the atoms are not candidates");
    assert_eq!(drops.get(), 3);
    assert_eq!(heap.object_count(), 0);
}

// ------------------------------------------------- ACYCLIC, as derived --

/// Built from itself and std types only: inferred acyclic.
#[derive(Trace)]
struct Twin {
    left: Option<Gc<Twin>>,
    right: Option<Gc<Self>>,
}

fn twin_tree(heap: &Heap, depth: u32) -> Gc<Twin> {
    pair_tree(heap, depth, |left, right| Twin { left, right })
}

/// A generic node: acyclic exactly when its payload is.
#[derive(Trace)]
struct Tree<T: Trace + 'static> {
    _value: T,
    _kids: Vec<Gc<Tree<T>>>,
}

/// A handle in a cell can change: not acyclic.
#[derive(Trace)]
struct SelfCell {
    _next: RefCell<Option<Gc<SelfCell>>>,
}

/// A weak reference keeps nothing alive: acyclic.
#[derive(Trace)]
struct WithWeak {
    _to: rcgc::Weak<WithWeak>,
}

/// A field of another derived type that cannot own a `Gc`.
#[derive(Trace)]
struct Labelled {
    _next: Option<Gc<Labelled>>,
    _label: Label,
}

#[derive(Trace)]
struct Label {
    _text: String,
}

/// A field of another derived type that owns a handle in a cell.
#[derive(Trace)]
struct WithEnv {
    _next: Option<Gc<WithEnv>>,
    _env: Env,
}

#[derive(Trace)]
struct Env {
    _vars: RefCell<Vec<Gc<u64>>>,
}

/// Mutually recursive immutable types (an AST): the derive cannot follow
/// `Gc<Call>` without risking a cycle in constant evaluation, so neither is
/// inferred acyclic; both still have fixed edges (untracked at allocation
/// when they point only to untracked objects), and both compile.
#[derive(Trace)]
enum Expr {
    Number(u64),
    Call(Gc<Call>),
}

#[derive(Trace)]
struct Call {
    callee: Gc<Expr>,
    args: Vec<Expr>,
}

/// `Self` by value in a box.
#[derive(Trace)]
struct BoxedCons {
    _head: Gc<u8>,
    _tail: Option<Box<BoxedCons>>,
}

#[test]
fn derive_infers_acyclic_for_immutable_types_built_from_themselves_and_std_types() {
    // (type, ACYCLIC, expected)
    let cases = [
        ("Twin: Gc<Self> and Gc<Twin> in Options", Twin::ACYCLIC, true),
        ("BoxedCons: Box<Self>, Gc<u8>", BoxedCons::ACYCLIC, true),
        ("Tree<u64>", <Tree<u64>>::ACYCLIC, true),
        ("Tree<Gc<String>>", <Tree<Gc<String>>>::ACYCLIC, true),
        ("Tree<Gc<Twin>>", <Tree<Gc<Twin>>>::ACYCLIC, true),
        (
            "Tree<RefCell<Option<Gc<u8>>>>: a cell of handles",
            <Tree<RefCell<Option<Gc<u8>>>>>::ACYCLIC,
            false,
        ),
        ("Tree<Gc<SelfCell>>", <Tree<Gc<SelfCell>>>::ACYCLIC, false),
        ("SelfCell", SelfCell::ACYCLIC, false),
        ("WithWeak", WithWeak::ACYCLIC, true),
        ("Labelled: a leaf field of a derived type", Labelled::ACYCLIC, true),
        (
            "WithEnv: a derived field with a cell of handles",
            WithEnv::ACYCLIC,
            false,
        ),
        ("Expr (mutual recursion)", Expr::ACYCLIC, false),
        ("Call (mutual recursion)", Call::ACYCLIC, false),
        ("Node: a handle to another derived type", Node::ACYCLIC, false),
        ("Forced: #[trace(tracked)]", Forced::ACYCLIC, false),
        ("Atom: #[trace(acyclic)]", Atom::ACYCLIC, true),
        ("u64", <u64 as Trace>::ACYCLIC, true),
        ("String", <String as Trace>::ACYCLIC, true),
        ("RefCell<u64>", <RefCell<u64> as Trace>::ACYCLIC, true),
        ("Vec<Gc<Twin>>", <Vec<Gc<Twin>> as Trace>::ACYCLIC, true),
        ("Gc<[Gc<Twin>]>", <Gc<[Gc<Twin>]> as Trace>::ACYCLIC, true),
        ("Option<Gc<Node>>", <Option<Gc<Node>> as Trace>::ACYCLIC, false),
        ("rcgc::Weak<SelfCell>", <rcgc::Weak<SelfCell> as Trace>::ACYCLIC, true),
    ];
    for (name, acyclic, expected) in cases {
        assert_eq!(acyclic, expected, "{name}");
    }
    const { assert!(Expr::FIXED_EDGES && Call::FIXED_EDGES) };
}

#[test]
fn inferred_acyclic_nodes_get_the_leaf_header_and_are_freed_by_their_counts() {
    let heap = Heap::new();
    let depth = if cfg!(miri) { 5 } else { 11 };
    let root = twin_tree(&heap, depth);
    assert_eq!(Gc::size_of(&root), 24, "an 8-byte header and two handles");
    assert!(!heap.is_tracked(&root));
    assert_eq!(heap.gc_count(), [0, 0, 0]);
    assert_eq!(heap.collect(), 0);
    assert_eq!(heap.object_count(), (1 << (depth + 1)) - 1);
    drop(root);
    assert_eq!(heap.object_count(), 0);
}

/// `Gc::get_mut` may change an acyclic object's handles, but only while its
/// handle is the only one: nothing it is given can lead back to it.
#[test]
fn get_mut_on_an_inferred_acyclic_object_keeps_it_untracked() {
    let heap = Heap::new();
    let mut root = twin_tree(&heap, 2);
    let other = twin_tree(&heap, 1);
    let node = Gc::get_mut(&mut root).expect("unique");
    node.left = Some(other.clone());
    assert!(!heap.is_tracked(&root));
    assert_eq!(heap.object_count(), 7 - 3 + 3, "the old left subtree is freed");
    let shared = root.clone();
    assert!(Gc::get_mut(&mut root).is_none());
    drop((root, shared, other));
    assert_eq!(heap.object_count(), 0);
}

#[test]
fn mutually_recursive_immutable_types_are_untracked_at_allocation() {
    let heap = Heap::new();
    let one = heap.alloc(Expr::Number(1));
    let call = heap.alloc(Call {
        callee: one.clone(),
        args: vec![Expr::Number(2)],
    });
    let expr = heap.alloc(Expr::Call(call.clone()));
    assert!(!heap.is_tracked(&one) && !heap.is_tracked(&call) && !heap.is_tracked(&expr));
    assert_eq!(heap.gc_count(), [0, 0, 0]);
    if let Expr::Call(inner) = &*expr {
        assert!(Gc::ptr_eq(&inner.callee, &one));
        assert_eq!(inner.args.len(), 1);
    }
    drop((one, call, expr));
    assert_eq!(heap.object_count(), 0);
}

/// A generic wrapper of the user's own around the type itself may add
/// handles: the type is neither a leaf nor acyclic (found by review: the
/// derive used to leave such a field out of `MAY_CONTAIN_GC`, and a cycle
/// through it leaked).
#[derive(Trace)]
struct Cellar<T: Trace + 'static> {
    inner: RefCell<Option<Gc<T>>>,
}

#[derive(Trace)]
struct Looper {
    next: Cellar<Looper>,
    #[trace(skip)]
    _drops: DropCount,
}

/// Holds a type whose handles it cannot see by name: not acyclic.
#[derive(Trace)]
struct Outer {
    _kids: Vec<Gc<Outer>>,
    hidden: Hider,
}

#[derive(Trace)]
struct Hider {
    wrap: Wrap<Hider>,
}

#[derive(Trace)]
struct Wrap<T> {
    _me: Option<Box<T>>,
    out: RefCell<Option<Gc<Outer>>>,
}

#[test]
fn a_cycle_through_the_type_inside_its_own_generic_wrapper_is_collected() {
    const { assert!(Looper::MAY_CONTAIN_GC && !Looper::ACYCLIC && !Looper::FIXED_EDGES) };
    const { assert!(Hider::MAY_CONTAIN_GC && !Outer::ACYCLIC) };
    let heap = Heap::new();
    let drops = Counter::default();
    let looper = heap.alloc(Looper {
        next: Cellar {
            inner: RefCell::new(None),
        },
        _drops: DropCount(drops.clone()),
    });
    assert!(heap.is_tracked(&looper));
    *looper.next.inner.borrow_mut() = Some(looper.clone());
    drop(looper);
    assert_eq!(heap.collect(), 1);
    assert_eq!(drops.get(), 1);

    let outer = heap.alloc(Outer {
        _kids: Vec::new(),
        hidden: Hider {
            wrap: Wrap {
                _me: None,
                out: RefCell::new(None),
            },
        },
    });
    assert!(heap.is_tracked(&outer));
    *outer.hidden.wrap.out.borrow_mut() = Some(outer.clone());
    drop(outer);
    assert_eq!(heap.collect(), 1);
    assert_eq!(heap.object_count(), 0);
}

/// A B-tree-like node: the type itself and a parameter in one field.
#[derive(Trace)]
struct Entries<V> {
    entries: Vec<(V, Box<Entries<V>>)>,
}

/// The parameter of a field that also names the type itself still counts:
/// `Entries<Gc<..>>` owns handles (found by review: the derive used to leave
/// the whole field out of `MAY_CONTAIN_GC`, so such a node was a leaf and a
/// cycle through it leaked).
#[test]
fn a_parameter_next_to_the_type_itself_in_one_field_still_counts() {
    #[derive(Trace)]
    struct Back {
        to: RefCell<Option<Gc<Entries<Gc<Back>>>>>,
    }
    const { assert!(!Entries::<u64>::MAY_CONTAIN_GC && Entries::<u64>::ACYCLIC) };
    const { assert!(Entries::<Gc<Back>>::MAY_CONTAIN_GC && !Entries::<Gc<Back>>::ACYCLIC) };
    let heap = Heap::new();
    let back = heap.alloc(Back { to: RefCell::new(None) });
    let node = heap.alloc(Entries {
        entries: vec![(back.clone(), Box::new(Entries { entries: Vec::new() }))],
    });
    assert!(heap.is_tracked(&node));
    *back.to.borrow_mut() = Some(node);
    drop(back);
    assert_eq!(heap.collect(), 2);
    assert_eq!(heap.object_count(), 0);
}

/// `rcgc::Gc` imported as `Rc` (the natural way to port an `Rc` program).
mod renamed {
    use rcgc::Gc as Rc;
    use rcgc::Trace;
    use std::cell::RefCell;

    #[derive(Trace)]
    pub struct Node {
        pub kids: RefCell<Vec<Rc<Node>>>,
    }
}

/// `rcgc::Gc` behind an alias with a std name.
mod aliased {
    use rcgc::Trace;
    use std::cell::RefCell;

    pub type Box<T> = rcgc::Gc<T>;

    #[derive(Trace)]
    pub enum Node {
        Leaf(u8),
        Link(RefCell<Option<Box<Node>>>),
    }

    impl Node {
        /// The value of a leaf.
        pub fn value(&self) -> Option<u8> {
            match self {
                Node::Leaf(value) => Some(*value),
                Node::Link(_) => None,
            }
        }
    }
}

/// A type of one's own named `Vec`, holding a handle.
mod own_vec {
    use rcgc::{Gc, Trace};
    use std::cell::RefCell;

    #[derive(Trace)]
    pub struct Vec<T: Trace + 'static>(pub RefCell<Option<Gc<T>>>);

    #[derive(Trace)]
    pub struct Node {
        pub next: Vec<Node>,
    }
}

/// A handle under a std name around the type itself is asked for as what
/// it really is (found by review: the derive took the std names at their
/// word and made these types leaves, so a cycle through them leaked).
#[test]
fn a_handle_under_a_std_name_around_the_type_itself_is_collected() {
    const { assert!(renamed::Node::MAY_CONTAIN_GC && aliased::Node::MAY_CONTAIN_GC) };
    const { assert!(own_vec::Node::MAY_CONTAIN_GC) };
    let heap = Heap::new();
    let a = heap.alloc(renamed::Node {
        kids: RefCell::new(Vec::new()),
    });
    a.kids.borrow_mut().push(a.clone());
    let b = heap.alloc(aliased::Node::Link(RefCell::new(None)));
    assert_eq!(b.value(), None);
    assert_eq!(heap.alloc(aliased::Node::Leaf(7)).value(), Some(7));
    if let aliased::Node::Link(link) = &*b {
        *link.borrow_mut() = Some(b.clone());
    }
    let c = heap.alloc(own_vec::Node {
        next: own_vec::Vec(RefCell::new(None)),
    });
    *c.next.0.borrow_mut() = Some(c.clone());
    assert!(heap.is_tracked(&a) && heap.is_tracked(&b) && heap.is_tracked(&c));
    drop((a, b, c));
    assert_eq!(heap.collect(), 3);
    assert_eq!(heap.object_count(), 0);
}
