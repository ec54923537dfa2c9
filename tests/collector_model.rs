//! A model-based test of reference counting plus the cycle collector.
//!
//! Random sequences of graph edits (allocate a node, add or remove an edge,
//! drop or clone a root handle) and collections run against a real heap and
//! against a plain graph of ids with edges and root counts. After every step
//! the set of dropped nodes must match the model exactly:
//!
//! * an edit frees, at once, exactly the nodes whose count reaches zero by
//!   reference counting (cycles stay);
//! * a full `collect()` frees exactly the nodes not reachable from a root,
//!   and returns how many it freed;
//! * a young-generation collection frees only unreachable nodes and returns
//!   at most the number freed (old nodes kept alive only by young garbage
//!   die with it, uncounted);
//! * nodes reachable from a root are never freed, and their strong counts
//!   match the model's.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use proptest::prelude::*;
use rcgc::collect::Manual;
use rcgc::{Gc, Heap, Trace};

/// The ids of dropped nodes, in drop order.
type DropLog = Rc<RefCell<Vec<usize>>>;

#[derive(Trace)]
struct Node {
    id: usize,
    children: RefCell<Vec<Gc<Node>>>,
    dropped: DropLog,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.dropped.borrow_mut().push(self.id);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Allocate a node, held by a new root handle.
    Alloc,
    /// Root `from`'s node gets an edge to root `to`'s node.
    AddEdge { from: usize, to: usize },
    /// Root `from`'s node loses one of its edges.
    RemoveEdge { from: usize, edge: usize },
    /// A new root handle to a child of root `from`'s node.
    RootChild { from: usize, edge: usize },
    /// Drop a root handle.
    DropRoot(usize),
    /// Clone a root handle.
    CloneRoot(usize),
    /// `collect()`.
    Collect,
    /// `collect_generation(0 or 1)`.
    CollectGeneration(usize),
}

fn op() -> impl Strategy<Value = Op> {
    // Indexes are taken modulo the current number of roots (or edges).
    let index = || 0..64usize;
    prop_oneof![
        4 => Just(Op::Alloc),
        6 => (index(), index()).prop_map(|(from, to)| Op::AddEdge { from, to }),
        2 => (index(), index()).prop_map(|(from, edge)| Op::RemoveEdge { from, edge }),
        2 => (index(), index()).prop_map(|(from, edge)| Op::RootChild { from, edge }),
        4 => index().prop_map(Op::DropRoot),
        1 => index().prop_map(Op::CloneRoot),
        2 => Just(Op::Collect),
        2 => (0..2usize).prop_map(Op::CollectGeneration),
    ]
}

/// The reference model: a graph of ids.
#[derive(Default)]
struct Model {
    /// Each node's outgoing edges, in the same order as the real children.
    edges: Vec<Vec<usize>>,
    alive: Vec<bool>,
    /// The node each root handle points to, in the same order as the real roots.
    roots: Vec<usize>,
}

impl Model {
    /// Strong counts: root handles plus edges from live nodes.
    fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.alive.len()];
        for &r in &self.roots {
            counts[r] += 1;
        }
        for (from, edges) in self.edges.iter().enumerate() {
            if self.alive[from] {
                for &to in edges {
                    counts[to] += 1;
                }
            }
        }
        counts
    }

    /// Reference counting: frees nodes whose count is zero until none is left.
    fn settle(&mut self) {
        loop {
            let counts = self.counts();
            let dying: Vec<usize> = (0..self.alive.len())
                .filter(|&i| self.alive[i] && counts[i] == 0)
                .collect();
            if dying.is_empty() {
                return;
            }
            for i in dying {
                self.alive[i] = false;
            }
        }
    }

    fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![false; self.alive.len()];
        let mut stack = self.roots.clone();
        while let Some(i) = stack.pop() {
            if !seen[i] {
                seen[i] = true;
                stack.extend(&self.edges[i]);
            }
        }
        seen
    }

    fn dead(&self) -> HashSet<usize> {
        (0..self.alive.len()).filter(|&i| !self.alive[i]).collect()
    }
}

/// Runs one sequence; returns an error describing the first mismatch.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let heap = Heap::with_policy(Manual);
    let dropped = DropLog::default();
    let mut roots: Vec<Gc<Node>> = Vec::new();
    let mut model = Model::default();

    for (step, op) in ops.iter().enumerate() {
        let before = dropped.borrow().len();
        let mut returned = None;
        match op {
            Op::Alloc => {
                let id = model.alive.len();
                roots.push(heap.alloc(Node {
                    id,
                    children: RefCell::new(Vec::new()),
                    dropped: dropped.clone(),
                }));
                model.edges.push(Vec::new());
                model.alive.push(true);
                model.roots.push(id);
            }
            Op::AddEdge { from, to } if !roots.is_empty() => {
                let (from, to) = (from % roots.len(), to % roots.len());
                roots[from].children.borrow_mut().push(roots[to].clone());
                model.edges[model.roots[from]].push(model.roots[to]);
            }
            Op::RemoveEdge { from, edge } if !roots.is_empty() => {
                let from = from % roots.len();
                let len = roots[from].children.borrow().len();
                if len > 0 {
                    let edge = edge % len;
                    let removed = roots[from].children.borrow_mut().remove(edge);
                    drop(removed);
                    model.edges[model.roots[from]].remove(edge);
                }
            }
            Op::RootChild { from, edge } if !roots.is_empty() => {
                let from = from % roots.len();
                let child = {
                    let children = roots[from].children.borrow();
                    (!children.is_empty()).then(|| children[edge % children.len()].clone())
                };
                if let Some(child) = child {
                    model.roots.push(child.id);
                    roots.push(child);
                }
            }
            Op::DropRoot(i) if !roots.is_empty() => {
                let i = i % roots.len();
                drop(roots.remove(i));
                model.roots.remove(i);
            }
            Op::CloneRoot(i) if !roots.is_empty() => {
                let i = i % roots.len();
                roots.push(roots[i].clone());
                model.roots.push(model.roots[i]);
            }
            Op::Collect => returned = Some(heap.collect()),
            Op::CollectGeneration(g) => returned = Some(heap.collect_generation(*g).unwrap()),
            _ => {} // an edit that needs a root, with none left
        }

        let newly_dropped: Vec<usize> = dropped.borrow()[before..].to_vec();
        let reachable = model.reachable();
        for &id in &newly_dropped {
            prop_assert!(
                !reachable[id],
                "step {step} {op:?}: node {id}, reachable from a root, was dropped"
            );
        }
        match op {
            Op::Collect => {
                // Everything unreachable is gone, and counted.
                model.alive.copy_from_slice(&reachable);
                prop_assert_eq!(
                    returned,
                    Some(newly_dropped.len()),
                    "step {} {:?}: return value",
                    step,
                    op
                );
            }
            Op::CollectGeneration(_) => {
                // Which unreachable nodes die depends on generations: take
                // the real deaths, then check they leave a consistent graph.
                for &id in &newly_dropped {
                    model.alive[id] = false;
                }
                let returned = returned.unwrap();
                prop_assert!(
                    returned <= newly_dropped.len(),
                    "step {step} {op:?}: returned {returned}, but only {} died",
                    newly_dropped.len()
                );
                let before_settle = model.dead();
                model.settle();
                prop_assert_eq!(
                    model.dead(),
                    before_settle,
                    "step {} {:?}: a count reached zero",
                    step,
                    op
                );
            }
            _ => model.settle(),
        }

        let log = dropped.borrow();
        let real_dead: HashSet<usize> = log.iter().copied().collect();
        prop_assert_eq!(
            real_dead.len(),
            log.len(),
            "step {} {:?}: a node was dropped twice",
            step,
            op
        );
        prop_assert_eq!(&real_dead, &model.dead(), "step {} {:?}: dropped nodes", step, op);
        drop(log);
        let counts = model.counts();
        for root in &roots {
            prop_assert_eq!(
                Gc::strong_count(root),
                counts[root.id],
                "step {} {:?}: count of {}",
                step,
                op,
                root.id
            );
        }
    }

    // Dropping every root and collecting frees everything.
    drop(roots);
    heap.collect();
    prop_assert_eq!(dropped.borrow().len(), model.alive.len());
    prop_assert_eq!(heap.object_count(), 0);
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// After every full collection the live nodes are exactly those reachable
    /// from the roots; reachable nodes are never freed; `collect()` returns
    /// the number of nodes it freed.
    #[test]
    fn the_collector_frees_exactly_the_unreachable_nodes(
        ops in prop::collection::vec(op(), 1..=if cfg!(miri) { 20 } else { 60 })
    ) {
        run(&ops)?;
    }
}

/// A fixed sequence exercising every operation, for a quick sanity check.
#[test]
fn a_fixed_sequence_matches_the_model() {
    use Op::*;
    let ops = [
        Alloc,                           // roots [0]
        Alloc,                           // roots [0, 1]
        Alloc,                           // roots [0, 1, 2]
        AddEdge { from: 0, to: 1 },      // 0 -> 1
        AddEdge { from: 1, to: 0 },      // 0 <-> 1
        AddEdge { from: 1, to: 2 },      // 1 -> 2
        AddEdge { from: 2, to: 2 },      // 2 -> 2
        CollectGeneration(0),            // all survive into generation 1
        RootChild { from: 2, edge: 0 },  // roots [0, 1, 2, 2]
        CloneRoot(0),                    // roots [0, 1, 2, 2, 0]
        DropRoot(0),                     // roots [1, 2, 2, 0]
        DropRoot(0),                     // roots [2, 2, 0]
        Collect,                         // nothing: everything reachable from 0
        DropRoot(2),                     // roots [2, 2]: 0 <-> 1 is garbage
        CollectGeneration(1),            // frees 0 and 1
        RemoveEdge { from: 0, edge: 0 }, // 2 loses its self-loop
        DropRoot(0),
        DropRoot(0), // 2 freed by reference counting
        Alloc,
        AddEdge { from: 0, to: 0 },
        DropRoot(0),
        Collect, // frees 3
    ];
    run(&ops).unwrap();
}
