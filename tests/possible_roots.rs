//! Collections examine only the objects of the collected generations that
//! were decremented since a full collection last examined them, plus the
//! objects of those generations they reach (`docs/differences.md`). This
//! suite checks that no garbage escapes that filter, against a reference
//! model of the object graph and of CPython's generations.
//!
//! The general model (`tests/model.rs`) cannot test this: its per-step
//! checks make handles to every object (`objects()`, `referrers`), and
//! dropping them flags every object. Here nothing is observed through
//! handles: each node has a `dropped` cell, and the operations move handles
//! between the roots and the nodes' edge lists (no count changes) as well as
//! cloning and dropping them, so garbage cycles form across generations out
//! of objects that were decremented and objects that never were.
//!
//! A node reachable from the roots is never dropped. A collection of
//! generations `0..=g` drops every node of those generations that is not
//! reachable from the roots or from a node of an older or the permanent
//! generation (what CPython's collection of those generations finds);
//! survivors move up a generation. `freeze`/`unfreeze` move every node to
//! the permanent generation and back to generation 2. After a full collection, exactly the nodes the model cannot
//! reach from the roots are gone. At the end, dropping the roots and
//! collecting frees everything.

// Parallel per-node vectors (the model) read best with index loops.
#![allow(clippy::needless_range_loop)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proptest::prelude::*;
use rcgc::{Gc, Heap, Trace};

mod common;

/// The model's generation of frozen nodes (the permanent generation).
const FROZEN: usize = 3;

/// A node: its edges, and whether its value was dropped.
#[derive(Trace)]
struct Node {
    id: usize,
    edges: RefCell<Vec<Gc<Node>>>,
    #[trace(skip)]
    dropped: Rc<Cell<bool>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        assert!(!self.dropped.replace(true), "node {} dropped twice", self.id);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A new node as a new root.
    Alloc,
    /// Root `a` gets an edge to a clone of root `b`.
    Link { a: usize, b: usize },
    /// Root `a`'s handle moves into root `b`'s edges (the root slot goes).
    MoveInto { a: usize, b: usize },
    /// The last edge of root `a` moves out into the roots.
    TakeEdge { a: usize },
    /// Roots `a` and `b` swap their edge lists (moves only).
    SwapEdges { a: usize, b: usize },
    /// Root `a` is dropped (a decrement, or a release).
    Drop { a: usize },
    /// Root `a` is cloned into a new root.
    Clone { a: usize },
    /// `collect_generation(g)`; 2 is a full collection.
    Collect { g: usize },
    /// `freeze()`: every tracked object to the permanent generation.
    Freeze,
    /// `unfreeze()`: the permanent generation back to generation 2.
    Unfreeze,
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0..16usize;
    prop_oneof![
        4 => Just(Op::Alloc),
        4 => (i(), i()).prop_map(|(a, b)| Op::Link { a, b }),
        4 => (i(), i()).prop_map(|(a, b)| Op::MoveInto { a, b }),
        3 => i().prop_map(|a| Op::TakeEdge { a }),
        2 => (i(), i()).prop_map(|(a, b)| Op::SwapEdges { a, b }),
        3 => i().prop_map(|a| Op::Drop { a }),
        1 => i().prop_map(|a| Op::Clone { a }),
        3 => (0..3usize).prop_map(|g| Op::Collect { g }),
        2 => Just(Op::Freeze),
        2 => Just(Op::Unfreeze),
    ]
}

/// The heap side and the model side of one run.
struct Run {
    heap: Heap,
    roots: Vec<Gc<Node>>,
    dropped: Vec<Rc<Cell<bool>>>,
    /// Model: the node id of each root, each node's edges, generation and
    /// whether it is alive.
    model_roots: Vec<usize>,
    model_edges: Vec<Vec<usize>>,
    model_gen: Vec<usize>,
    model_alive: Vec<bool>,
}

impl Run {
    fn new() -> Self {
        let heap = Heap::new();
        heap.disable(); // only the operations collect
        Run {
            heap,
            roots: Vec::new(),
            dropped: Vec::new(),
            model_roots: Vec::new(),
            model_edges: Vec::new(),
            model_gen: Vec::new(),
            model_alive: Vec::new(),
        }
    }

    /// Root index `a` modulo the number of roots (None if there are none).
    fn root(&self, a: usize) -> Option<usize> {
        (!self.roots.is_empty()).then(|| a % self.roots.len())
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Alloc => {
                let id = self.dropped.len();
                let dropped = Rc::new(Cell::new(false));
                self.dropped.push(dropped.clone());
                self.roots.push(self.heap.alloc(Node {
                    id,
                    edges: RefCell::new(Vec::new()),
                    dropped,
                }));
                self.model_roots.push(id);
                self.model_edges.push(Vec::new());
                self.model_gen.push(0);
                self.model_alive.push(true);
            }
            Op::Link { a, b } => {
                let (Some(a), Some(b)) = (self.root(a), self.root(b)) else {
                    return;
                };
                let target = self.roots[b].clone();
                self.roots[a].edges.borrow_mut().push(target);
                self.model_edges[self.model_roots[a]].push(self.model_roots[b]);
            }
            Op::MoveInto { a, b } => {
                let (Some(a), Some(b)) = (self.root(a), self.root(b)) else {
                    return;
                };
                if a == b {
                    return;
                }
                let moved = self.roots.swap_remove(a);
                let id = self.model_roots.swap_remove(a);
                // `b` may have been the last root, now at `a`.
                let b = if b == self.roots.len() { a } else { b };
                self.roots[b].edges.borrow_mut().push(moved);
                self.model_edges[self.model_roots[b]].push(id);
            }
            Op::TakeEdge { a } => {
                let Some(a) = self.root(a) else { return };
                let Some(taken) = self.roots[a].edges.borrow_mut().pop() else {
                    return;
                };
                self.roots.push(taken);
                let id = self.model_edges[self.model_roots[a]]
                    .pop()
                    .expect("the model has the edge");
                self.model_roots.push(id);
            }
            Op::SwapEdges { a, b } => {
                let (Some(a), Some(b)) = (self.root(a), self.root(b)) else {
                    return;
                };
                if Gc::ptr_eq(&self.roots[a], &self.roots[b]) {
                    return; // one node (two roots may hold it)
                }
                self.roots[a].edges.swap(&self.roots[b].edges);
                self.model_edges.swap(self.model_roots[a], self.model_roots[b]);
            }
            Op::Drop { a } => {
                let Some(a) = self.root(a) else { return };
                drop(self.roots.swap_remove(a));
                self.model_roots.swap_remove(a);
            }
            Op::Clone { a } => {
                let Some(a) = self.root(a) else { return };
                self.roots.push(self.roots[a].clone());
                self.model_roots.push(self.model_roots[a]);
            }
            Op::Freeze => {
                self.heap.freeze();
                for id in 0..self.model_gen.len() {
                    if self.model_alive[id] {
                        self.model_gen[id] = FROZEN;
                    }
                }
            }
            Op::Unfreeze => {
                self.heap.unfreeze();
                for gen in &mut self.model_gen {
                    if *gen == FROZEN {
                        *gen = 2;
                    }
                }
            }
            Op::Collect { g } => {
                // What a collection of generations 0..=g must keep: what the
                // roots and the older generations reach.
                let older = (0..self.model_gen.len()).filter(|&id| self.model_alive[id] && self.model_gen[id] > g);
                let kept = self.reachable_from(self.model_roots.iter().copied().chain(older));
                self.heap.collect_generation(g).expect("a valid generation");
                for id in 0..self.model_gen.len() {
                    if self.model_alive[id] && self.model_gen[id] <= g {
                        let dropped = self.dropped[id].get();
                        assert!(
                            kept[id] || dropped,
                            "node {id} of generation {} survived a collection of generation {g}",
                            self.model_gen[id]
                        );
                        if !dropped {
                            self.model_gen[id] = (g + 1).min(2);
                        }
                    }
                }
            }
        }
        self.sync_and_check();
    }

    /// What the model reaches from `seeds`.
    fn reachable_from(&self, seeds: impl Iterator<Item = usize>) -> Vec<bool> {
        let mut seen = vec![false; self.model_edges.len()];
        let mut stack: Vec<usize> = seeds.collect();
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut seen[id], true) {
                stack.extend(&self.model_edges[id]);
            }
        }
        seen
    }

    /// Nodes reachable from the roots are never dropped; dropped nodes
    /// (freed by their counts or collected) leave the model.
    fn sync_and_check(&mut self) {
        let reachable = self.reachable_from(self.model_roots.iter().copied());
        for id in 0..self.dropped.len() {
            let dropped = self.dropped[id].get();
            assert!(!(reachable[id] && dropped), "reachable node {id} was dropped");
            if dropped && self.model_alive[id] {
                self.model_alive[id] = false;
                self.model_edges[id].clear();
            }
        }
    }

    fn finish(mut self) {
        self.roots.clear();
        self.heap.unfreeze();
        self.heap.collect();
        assert!(self.dropped.iter().all(|d| d.get()), "everything is garbage at the end");
        assert_eq!(self.heap.object_count(), 0);
    }
}

proptest! {
    #![proptest_config(common::proptest_config(1000, 4))]

    /// Random moves, links, drops and collections of every generation:
    /// each collection frees what CPython's would, never a reachable node.
    #[test]
    fn collections_free_what_cpython_would_despite_the_decrement_filter(
        ops in proptest::collection::vec(op(), 1..=if cfg!(miri) { 30 } else { 200 })
    ) {
        let mut run = Run::new();
        for op in &ops {
            run.apply(op);
        }
        run.finish();
    }
}

/// The shape the filter must get right, spelled out: an old cycle whose
/// members' handles were moved into place (never decremented) but for one,
/// made garbage by dropping that one's root handle. Only it is flagged; the
/// full collection must take in the other two through its edges.
#[test]
fn a_cycle_built_by_moves_is_found_through_its_one_decremented_member() {
    let mut run = Run::new();
    for op in [
        Op::Alloc,                   // roots [n0]
        Op::Alloc,                   // roots [n0, n1]
        Op::Alloc,                   // roots [n0, n1, n2]
        Op::Link { a: 2, b: 0 },     // n2 -> n0 (a clone)
        Op::MoveInto { a: 2, b: 1 }, // n1 -> n2 (moved); roots [n0, n1]
        Op::MoveInto { a: 1, b: 0 }, // n0 -> n1 (moved); roots [n0]
        Op::Collect { g: 2 },        // all reachable, now old and unflagged
        Op::Drop { a: 0 },           // n0 decremented (n2 still refers to it)
        Op::Collect { g: 2 },        // checks that all three are dropped
    ] {
        run.apply(&op);
    }
    assert!(run.dropped.iter().all(|d| d.get()), "the whole cycle is garbage");
    run.finish();
}
