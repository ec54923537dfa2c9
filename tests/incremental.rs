//! The `Incremental` policy: bounded steps that still find every garbage
//! cycle, and stay correct when the program mutates the graph between steps.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proptest::prelude::*;
use rcgc::collect::{Action, CollectorPolicy, Incremental, PolicyContext};
use rcgc::{Gc, GcPhase, Heap, Trace};

#[derive(Trace)]
struct Node {
    #[trace(skip)]
    drops: Rc<Cell<usize>>,
    edges: RefCell<Vec<Gc<Node>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

fn node(heap: &Heap, drops: &Rc<Cell<usize>>) -> Gc<Node> {
    heap.alloc(Node {
        drops: drops.clone(),
        edges: RefCell::new(Vec::new()),
    })
}

fn link(a: &Gc<Node>, b: &Gc<Node>) {
    a.edges.borrow_mut().push(b.clone());
}

/// A policy that always takes an incremental step of `budget` (for tests).
struct Steps(usize);

impl CollectorPolicy for Steps {
    fn poll_after(&self, ctx: &PolicyContext) -> Option<usize> {
        Some(ctx.threshold[0])
    }
    fn on_allocation(&mut self, _: &PolicyContext) -> Action {
        Action::Step { budget: self.0 }
    }
    fn on_checkpoint(&mut self, _: &PolicyContext) -> Action {
        Action::Step { budget: self.0 }
    }
}

#[test]
fn steps_examine_at_most_the_budget_plus_the_young_generation() {
    let (objects, budget) = if cfg!(miri) { (120, 20) } else { (1000, 100) };
    let heap = Heap::with_policy(Steps(budget));
    let examined = Rc::new(RefCell::new(Vec::new()));
    let record = examined.clone();
    heap.add_gc_callback(move |phase, info| {
        if phase == GcPhase::Stop {
            record.borrow_mut().push(info.candidates);
        }
    });
    let drops = Rc::new(Cell::new(0));
    let keep: Vec<_> = (0..objects).map(|_| node(&heap, &drops)).collect();
    heap.collect(); // everything old
    examined.borrow_mut().clear();
    for _ in 0..objects / budget + 2 {
        heap.checkpoint();
    }
    assert!(
        examined.borrow().iter().all(|&n| n <= budget),
        "{:?}",
        examined.borrow()
    );
    assert!(
        examined.borrow().iter().sum::<usize>() >= objects,
        "the steps cover the old generation"
    );
    drop(keep);
}

#[test]
fn garbage_cycles_in_the_old_generation_are_found_by_steps() {
    let heap = Heap::with_policy(Steps(50));
    let drops = Rc::new(Cell::new(0));
    let mut cycles = Vec::new();
    let pairs = if cfg!(miri) { 30 } else { 100 };
    for _ in 0..pairs {
        let a = node(&heap, &drops);
        let b = node(&heap, &drops);
        link(&a, &b);
        link(&b, &a);
        cycles.push(a);
    }
    heap.collect(); // promote: all old and alive (held by `cycles`)
    assert_eq!(drops.get(), 0);
    drop(cycles);
    let mut steps = 0;
    while drops.get() < 2 * pairs && steps < 100 {
        heap.checkpoint();
        steps += 1;
    }
    assert_eq!(drops.get(), 2 * pairs, "every cycle found within {steps} steps");
    assert_eq!(heap.object_count(), 0);
}

#[test]
fn objects_made_reachable_between_steps_survive() {
    let heap = Heap::with_policy(Steps(3));
    let drops = Rc::new(Cell::new(0));
    // A long chain in the old generation, held by a root.
    let root = node(&heap, &drops);
    let mut prev = root.clone();
    for _ in 0..30 {
        let next = node(&heap, &drops);
        link(&prev, &next);
        prev = next;
    }
    drop(prev);
    heap.collect();
    for i in 0..40 {
        heap.checkpoint();
        // Mutate between steps: move the tail of the chain under a fresh young node.
        if i % 5 == 0 {
            let young = node(&heap, &drops);
            let tail = root.edges.borrow_mut().pop();
            if let Some(tail) = tail {
                link(&young, &tail);
            }
            link(&root, &young);
        }
    }
    assert_eq!(drops.get(), 0, "nothing reachable was freed");
    drop(root);
    heap.collect();
    assert_eq!(heap.object_count(), 0);
}

#[test]
fn the_default_incremental_policy_collects_cycles_as_the_program_runs() {
    let heap = Heap::with_policy(Incremental::new(500));
    let drops = Rc::new(Cell::new(0));
    let n: usize = if cfg!(miri) { 120 } else { 20_000 };
    for _ in 0..n {
        let a = node(&heap, &drops);
        let b = node(&heap, &drops);
        link(&a, &b);
        link(&b, &a);
    }
    assert!(
        drops.get() >= (2 * n).saturating_sub(2 * 701),
        "garbage collected along the way: {} of {}",
        drops.get(),
        2 * n
    );
    heap.collect();
    assert_eq!(drops.get(), 2 * n);
}

#[derive(Debug, Clone)]
enum Op {
    Alloc,
    Link(usize, usize),
    Unlink(usize),
    DropRoot(usize),
    Step,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => Just(Op::Alloc),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => any::<usize>().prop_map(Op::Unlink),
        2 => any::<usize>().prop_map(Op::DropRoot),
        2 => Just(Op::Step),
    ];
    prop::collection::vec(op, 1..if cfg!(miri) { 16 } else { 80 })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random mutation between small incremental steps never frees an object
    /// reachable from a root, and a final full collection frees exactly the rest.
    #[test]
    fn incremental_steps_are_safe_under_mutation(ops in ops()) {
        let heap = Heap::with_policy(Steps(2));
        let drops = Rc::new(Cell::new(0));
        let mut roots: Vec<Gc<Node>> = Vec::new();
        let mut all: Vec<rcgc::Weak<Node>> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc => {
                    let n = node(&heap, &drops);
                    all.push(Gc::downgrade(&n));
                    roots.push(n);
                }
                Op::Link(a, b) if !roots.is_empty() => {
                    let (a, b) = (&roots[a % roots.len()], &roots[b % roots.len()]);
                    link(a, b);
                }
                Op::Unlink(a) if !roots.is_empty() => {
                    roots[a % roots.len()].edges.borrow_mut().pop();
                }
                Op::DropRoot(a) if !roots.is_empty() => {
                    roots.swap_remove(a % roots.len());
                }
                Op::Step => {
                    heap.checkpoint();
                }
                _ => {}
            }
            for root in &roots {
                prop_assert!(Gc::is_alive(root));
                for child in root.edges.borrow().iter() {
                    prop_assert!(Gc::is_alive(child));
                }
            }
        }
        drop(roots);
        heap.collect();
        prop_assert_eq!(heap.object_count(), 0);
        prop_assert_eq!(drops.get(), all.len());
    }
}
