//! Fuzzes a `Heap` of graph nodes through an operation language, against a
//! reference model of the graph.
//!
//! The input picks the node type: `Node` (no finalizer) or
//! `FNode` (`#[trace(finalize)]`; its finalizer may resurrect the object by
//! pushing `this.clone()` into a thread-local graveyard). Then a sequence of
//! operations: allocate, clone/drop roots, link/unlink/replace edges,
//! downgrade/upgrade/drop weak references (held by the harness or inside
//! nodes), collect a generation or everything, freeze/unfreeze, thresholds,
//! enable/disable, collector policies, byte limits (with `try_alloc` past
//! them), resurrection flags, clearing the graveyard.
//!
//! The model knows every node's edges, the roots (handles the harness holds)
//! and the graveyard; drop and finalizer counters are kept per node id.
//! After every operation:
//!
//! * no node is dropped or finalized twice; a finalizer runs before the drop
//!   and sees every object its node points to intact;
//! * every node reachable from a root or the graveyard is alive;
//! * every live node is referenced (model count > 0): reference counting
//!   frees what nothing refers to, at once;
//! * `object_count()` is the number of live nodes; each root's strong count
//!   and edges match the model.
//!
//! After a full collection the live set is exactly what is reachable from
//! the roots, the graveyard and the frozen objects. Weak upgrades succeed
//! exactly for live objects (objects whose finalizer ran may have had their
//! weak references cleared), and once a weak reference fails it fails
//! forever. At the end everything is dropped and collected, then the
//! graveyard is cleared and collected until no node resurrects any more:
//! every node is dropped exactly once and the heap is empty.
#![no_main]
// Parallel per-id vectors read best with index loops.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rcgc::alloc::AllocErrorKind;
use rcgc::collect::{Generational, Incremental, Manual};
use rcgc::{Finalize, Gc, Heap, Trace, Weak};

/// Most nodes per input (ids are never reused).
const MAX_NODES: usize = 4096;

// ---------------------------------------------------------------------------
// Per-node event counters, shared with Drop and finalizers.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Tracker {
    drops: Vec<u8>,
    finals: Vec<u8>,
    resurrect: Vec<bool>,
    /// Problems seen inside Drop or a finalizer (panicking there would be
    /// swallowed by the collector's `catch_unwind`).
    violations: Vec<String>,
}

thread_local! {
    static TRACK: RefCell<Tracker> = RefCell::new(Tracker::default());
    static GRAVEYARD: RefCell<Vec<Gc<FNode>>> = const { RefCell::new(Vec::new()) };
}

fn new_id() -> u32 {
    TRACK.with(|t| {
        let mut t = t.borrow_mut();
        t.drops.push(0);
        t.finals.push(0);
        t.resurrect.push(false);
        (t.drops.len() - 1) as u32
    })
}

fn record_drop(id: u32) {
    TRACK.with(|t| {
        let mut t = t.borrow_mut();
        let i = id as usize;
        t.drops[i] += 1;
        if t.drops[i] > 1 {
            let times = t.drops[i];
            t.violations.push(format!("node {id} dropped {times} times"));
        }
    })
}

fn is_dropped(id: u32) -> bool {
    TRACK.with(|t| t.borrow().drops[id as usize] != 0)
}

fn is_finalized(id: u32) -> bool {
    TRACK.with(|t| t.borrow().finals[id as usize] != 0)
}

// ---------------------------------------------------------------------------
// The two node types.
// ---------------------------------------------------------------------------

trait FuzzNode: Trace + Sized + 'static {
    const FINALIZER: bool;
    fn new(id: u32) -> Self;
    fn id(&self) -> u32;
    fn edges(&self) -> &RefCell<Vec<Gc<Self>>>;
    fn weak(&self) -> &RefCell<Vec<Weak<Self>>>;
    /// Ids of the nodes in the graveyard (finalizer-resurrected handles).
    fn graveyard_ids() -> Vec<u32>;
    /// Empties the graveyard; its handles are dropped outside any borrow.
    fn clear_graveyard();
}

#[derive(Trace)]
struct Node {
    id: u32,
    edges: RefCell<Vec<Gc<Node>>>,
    weak: RefCell<Vec<Weak<Node>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        record_drop(self.id);
    }
}

impl FuzzNode for Node {
    const FINALIZER: bool = false;
    fn new(id: u32) -> Self {
        Node {
            id,
            edges: RefCell::new(Vec::new()),
            weak: RefCell::new(Vec::new()),
        }
    }
    fn id(&self) -> u32 {
        self.id
    }
    fn edges(&self) -> &RefCell<Vec<Gc<Self>>> {
        &self.edges
    }
    fn weak(&self) -> &RefCell<Vec<Weak<Self>>> {
        &self.weak
    }
    fn graveyard_ids() -> Vec<u32> {
        Vec::new()
    }
    fn clear_graveyard() {}
}

#[derive(Trace)]
#[trace(finalize)]
struct FNode {
    id: u32,
    edges: RefCell<Vec<Gc<FNode>>>,
    weak: RefCell<Vec<Weak<FNode>>>,
}

impl Drop for FNode {
    fn drop(&mut self) {
        record_drop(self.id);
    }
}

impl Finalize for FNode {
    fn finalize(this: &Gc<Self>) {
        let id = this.id;
        let resurrect = TRACK.with(|t| {
            let mut t = t.borrow_mut();
            let i = id as usize;
            t.finals[i] += 1;
            if t.finals[i] > 1 {
                let times = t.finals[i];
                t.violations.push(format!("node {id} finalized {times} times"));
            }
            if t.drops[i] != 0 {
                t.violations.push(format!("node {id} finalized after its drop"));
            }
            // PEP 442: everything the object points to is still intact.
            match this.edges.try_borrow() {
                Ok(edges) => {
                    for edge in edges.iter() {
                        match Gc::try_deref(edge) {
                            Some(target) if t.drops[target.id as usize] == 0 => {}
                            Some(target) => t.violations.push(format!(
                                "finalizer of node {id} sees node {} already dropped",
                                target.id
                            )),
                            None => t
                                .violations
                                .push(format!("finalizer of node {id} sees a dead (torn down) referent")),
                        }
                    }
                }
                Err(_) => t
                    .violations
                    .push(format!("node {id}'s edges are borrowed during its finalizer")),
            }
            t.resurrect[i]
        });
        if resurrect {
            GRAVEYARD.with(|g| g.borrow_mut().push(this.clone()));
        }
    }
}

impl FuzzNode for FNode {
    const FINALIZER: bool = true;
    fn new(id: u32) -> Self {
        FNode {
            id,
            edges: RefCell::new(Vec::new()),
            weak: RefCell::new(Vec::new()),
        }
    }
    fn id(&self) -> u32 {
        self.id
    }
    fn edges(&self) -> &RefCell<Vec<Gc<Self>>> {
        &self.edges
    }
    fn weak(&self) -> &RefCell<Vec<Weak<Self>>> {
        &self.weak
    }
    fn graveyard_ids() -> Vec<u32> {
        GRAVEYARD.with(|g| g.borrow().iter().map(|n| n.id).collect())
    }
    fn clear_graveyard() {
        let dead = GRAVEYARD.with(|g| std::mem::take(&mut *g.borrow_mut()));
        drop(dead); // may run finalizers (of other nodes) that push again
    }
}

// ---------------------------------------------------------------------------
// Operations.
// ---------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum Op {
    /// A new node, held as a root (`via_enter`: `Gc::try_new` inside `Heap::enter`).
    Alloc {
        via_enter: bool,
    },
    /// A new node reachable only through an edge from root `parent`.
    AllocChild {
        parent: u8,
    },
    /// A chain of `4 * len` nodes hanging off root `parent` (deep releases).
    Chain {
        parent: u8,
        len: u8,
    },
    CloneRoot {
        r: u8,
    },
    DropRoot {
        r: u8,
    },
    Link {
        a: u8,
        b: u8,
    },
    Unlink {
        a: u8,
        e: u8,
    },
    ReplaceEdge {
        a: u8,
        e: u8,
        b: u8,
    },
    /// Takes a root handle to the target of edge `e` of root `a`.
    Follow {
        a: u8,
        e: u8,
    },
    /// A weak reference to root `r`, held by the harness or by root `holder`'s node.
    Downgrade {
        r: u8,
        holder: Option<u8>,
    },
    Upgrade {
        w: u8,
    },
    UpgradeNodeWeak {
        a: u8,
        i: u8,
    },
    DropWeak {
        w: u8,
    },
    DropNodeWeak {
        a: u8,
        i: u8,
    },
    /// `collect_generation(g % 3)`.
    CollectGeneration {
        g: u8,
    },
    CollectAll,
    Checkpoint,
    Freeze,
    Unfreeze,
    SetThreshold {
        t0: u8,
        t1: u8,
        t2: u8,
    },
    Enable,
    Disable,
    SetPolicy {
        kind: u8,
        work: u8,
    },
    /// Limit = bytes in use + `slack * 8`.
    SetLimit {
        slack: u8,
    },
    ClearLimit,
    /// Limit = bytes in use, then `try_alloc`: fails unless a collection made room.
    TryAllocBeyondLimit,
    Resurrect {
        r: u8,
        on: bool,
    },
    ClearGraveyard,
    Introspect {
        r: u8,
    },
}

struct HarnessWeak<N: FuzzNode> {
    target: u32,
    weak: Weak<N>,
    /// An upgrade failed once: it must fail forever.
    failed: bool,
}

struct Harness<N: FuzzNode> {
    heap: Heap,
    roots: Vec<Gc<N>>,
    weaks: Vec<HarnessWeak<N>>,
    /// Model: edges of every node, by id (meaningful while the node lives).
    edges: Vec<Vec<u32>>,
    /// Model: targets of the weak references inside every node.
    node_weaks: Vec<Vec<u32>>,
    /// The id became an object (its `try_alloc` succeeded).
    allocated: Vec<bool>,
    /// In the permanent generation (frozen and not unfrozen since).
    frozen: Vec<bool>,
    limit: Option<usize>,
}

/// A snapshot of the model and the counters, with derived facts.
struct View {
    alive: Vec<bool>,
    finals: Vec<u8>,
    graveyard: Vec<u32>,
    /// Model strong count of every node: roots + graveyard + edges from live nodes.
    count: Vec<usize>,
}

fn pick(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| i as usize % len)
}

impl<N: FuzzNode> Harness<N> {
    fn new() -> Self {
        Harness {
            heap: Heap::new(),
            roots: Vec::new(),
            weaks: Vec::new(),
            edges: Vec::new(),
            node_weaks: Vec::new(),
            allocated: Vec::new(),
            frozen: Vec::new(),
            limit: None,
        }
    }

    fn view(&self) -> View {
        let (drops, finals, violations) = TRACK.with(|t| {
            let t = t.borrow();
            (t.drops.clone(), t.finals.clone(), t.violations.clone())
        });
        assert!(violations.is_empty(), "violations in Drop/finalizers: {violations:#?}");
        let n = drops.len();
        assert_eq!(n, self.allocated.len());
        let alive: Vec<bool> = (0..n).map(|i| self.allocated[i] && drops[i] == 0).collect();
        for i in 0..n {
            assert!(drops[i] <= 1 && finals[i] <= 1);
            if !self.allocated[i] {
                assert_eq!(drops[i], 1, "value {i} of a failed try_alloc was not dropped");
                assert_eq!(finals[i], 0, "value {i} of a failed try_alloc was finalized");
            } else if N::FINALIZER {
                assert!(
                    drops[i] == 0 || finals[i] == 1,
                    "node {i} dropped without its finalizer"
                );
            } else {
                assert_eq!(finals[i], 0);
            }
        }
        let graveyard = N::graveyard_ids();
        let mut count = vec![0usize; n];
        for r in &self.roots {
            count[r.id() as usize] += 1;
        }
        for &g in &graveyard {
            count[g as usize] += 1;
        }
        for (i, edges) in self.edges.iter().enumerate() {
            if alive[i] {
                for &e in edges {
                    count[e as usize] += 1;
                }
            }
        }
        View {
            alive,
            finals,
            graveyard,
            count,
        }
    }

    /// Nodes reachable (through model edges) from `seeds`.
    fn reach(&self, seeds: impl IntoIterator<Item = u32>) -> Vec<bool> {
        let mut seen = vec![false; self.allocated.len()];
        let mut stack: Vec<u32> = seeds.into_iter().collect();
        while let Some(x) = stack.pop() {
            if std::mem::replace(&mut seen[x as usize], true) {
                continue;
            }
            stack.extend(self.edges[x as usize].iter().copied());
        }
        seen
    }

    fn check(&self) -> View {
        let v = self.view();
        let roots = self.roots.iter().map(|r| r.id());
        let reachable = self.reach(roots.chain(v.graveyard.iter().copied()));
        let mut live = 0;
        for i in 0..v.alive.len() {
            if reachable[i] {
                assert!(v.alive[i], "node {i} is reachable from a root but was dropped");
            }
            if v.alive[i] {
                live += 1;
                assert!(
                    v.count[i] > 0,
                    "node {i} is alive but nothing refers to it (refcount leak)"
                );
            }
        }
        assert_eq!(
            self.heap.object_count(),
            live,
            "object_count differs from the model's live nodes"
        );
        for r in &self.roots {
            let id = r.id() as usize;
            assert!(Gc::is_alive(r));
            assert_eq!(Gc::strong_count(r), v.count[id], "strong count of node {id}");
            let edges: Vec<u32> = r.edges().borrow().iter().map(|e| e.id()).collect();
            assert_eq!(edges, self.edges[id], "edges of node {id}");
            assert_eq!(r.weak().borrow().len(), self.node_weaks[id].len());
        }
        v
    }

    /// After a full collection: live == reachable from roots, graveyard and
    /// frozen live objects.
    fn check_after_full_collect(&self, (live_before, frozen_before): (usize, bool), found: usize) {
        let v = self.check();
        let frozen_live: Vec<u32> = (0..v.alive.len())
            .filter(|&i| v.alive[i] && self.frozen[i])
            .map(|i| i as u32)
            .collect();
        let seeds = self
            .roots
            .iter()
            .map(|r| r.id())
            .chain(v.graveyard.iter().copied())
            .chain(frozen_live.iter().copied());
        let reachable = self.reach(seeds);
        for i in 0..v.alive.len() {
            assert_eq!(
                v.alive[i], reachable[i],
                "after a full collection node {i} is alive={} but reachable={}",
                v.alive[i], reachable[i]
            );
        }
        let live_after = v.alive.iter().filter(|&&a| a).count();
        let freed = live_before - live_after;
        assert!(freed >= found, "collect() reported {found} but only {freed} were freed");
        if !frozen_before {
            // Every tracked object was a candidate: what died is the garbage found.
            assert_eq!(
                freed, found,
                "collect() reported {found} unreachable but {freed} were freed"
            );
        }
    }

    /// Live objects and whether any of them is frozen, before a collection.
    fn before_collect(&self) -> (usize, bool) {
        let alive = self.view().alive;
        let frozen = (0..alive.len()).any(|i| alive[i] && self.frozen[i]);
        (self.heap.object_count(), frozen)
    }

    fn new_node_id(&mut self) -> Option<u32> {
        if self.allocated.len() >= MAX_NODES {
            return None;
        }
        let id = new_id();
        self.allocated.push(false);
        self.edges.push(Vec::new());
        self.node_weaks.push(Vec::new());
        self.frozen.push(false);
        Some(id)
    }

    fn alloc_error(&self, err: rcgc::alloc::AllocError) {
        assert!(self.limit.is_some(), "allocation failed without a limit: {err}");
        match err.kind() {
            AllocErrorKind::LimitExceeded { limit, in_use, needed } => {
                assert_eq!(Some(limit), self.limit);
                assert!(in_use + needed > limit);
            }
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
    }

    fn after_alloc_ok(&self) {
        if let Some(limit) = self.limit {
            assert!(self.heap.bytes_in_use() <= limit, "an allocation went past the limit");
        }
    }

    /// Allocates a node; `None` if the cap is reached or the limit refused.
    fn alloc(&mut self, via_enter: bool) -> Option<Gc<N>> {
        let id = self.new_node_id()?;
        let result = if via_enter {
            self.heap.enter(|| Gc::try_new(N::new(id)))
        } else {
            self.heap.try_alloc(N::new(id))
        };
        match result {
            Ok(node) => {
                self.allocated[id as usize] = true;
                self.after_alloc_ok();
                Some(node)
            }
            Err(err) => {
                self.alloc_error(err);
                None
            }
        }
    }

    fn link(&mut self, from: &Gc<N>, to: Gc<N>) {
        self.edges[from.id() as usize].push(to.id());
        from.edges().borrow_mut().push(to);
    }

    fn weak_targets(&self, v: &View, id: u32) -> usize {
        let harness = self.weaks.iter().filter(|w| w.target == id).count();
        let in_nodes: usize = self
            .node_weaks
            .iter()
            .enumerate()
            .filter(|(i, _)| v.alive[*i])
            .map(|(_, ws)| ws.iter().filter(|&&t| t == id).count())
            .sum();
        harness + in_nodes
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Alloc { via_enter } => {
                if let Some(node) = self.alloc(via_enter) {
                    self.roots.push(node);
                }
            }
            Op::AllocChild { parent } => {
                let Some(p) = pick(self.roots.len(), parent) else {
                    return;
                };
                let parent = self.roots[p].clone();
                if let Some(child) = self.alloc(false) {
                    self.link(&parent, child);
                }
            }
            Op::Chain { parent, len } => {
                let mut prev = match pick(self.roots.len(), parent) {
                    Some(p) => self.roots[p].clone(),
                    None => match self.alloc(false) {
                        Some(head) => {
                            self.roots.push(head.clone());
                            head
                        }
                        None => return,
                    },
                };
                for _ in 0..len as usize * 4 {
                    let Some(next) = self.alloc(false) else { break };
                    self.link(&prev, next.clone());
                    prev = next;
                }
            }
            Op::CloneRoot { r } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                let clone = self.roots[r].clone();
                self.roots.push(clone);
            }
            Op::DropRoot { r } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                drop(self.roots.swap_remove(r));
            }
            Op::Link { a, b } => {
                let (Some(a), Some(b)) = (pick(self.roots.len(), a), pick(self.roots.len(), b)) else {
                    return;
                };
                let (from, to) = (self.roots[a].clone(), self.roots[b].clone());
                self.link(&from, to);
            }
            Op::Unlink { a, e } => {
                let Some(a) = pick(self.roots.len(), a) else { return };
                let node = self.roots[a].clone();
                let id = node.id() as usize;
                let Some(e) = pick(self.edges[id].len(), e) else { return };
                self.edges[id].remove(e);
                let old = node.edges().borrow_mut().remove(e);
                drop(old);
            }
            Op::ReplaceEdge { a, e, b } => {
                let (Some(a), Some(b)) = (pick(self.roots.len(), a), pick(self.roots.len(), b)) else {
                    return;
                };
                let (node, to) = (self.roots[a].clone(), self.roots[b].clone());
                let id = node.id() as usize;
                let Some(e) = pick(self.edges[id].len(), e) else { return };
                self.edges[id][e] = to.id();
                let old = std::mem::replace(&mut node.edges().borrow_mut()[e], to);
                drop(old);
            }
            Op::Follow { a, e } => {
                let Some(a) = pick(self.roots.len(), a) else { return };
                let target = {
                    let edges = self.roots[a].edges().borrow();
                    let Some(e) = pick(edges.len(), e) else { return };
                    edges[e].clone()
                };
                self.roots.push(target);
            }
            Op::Downgrade { r, holder } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                let target = self.roots[r].clone();
                let weak = match Gc::try_downgrade(&target) {
                    Ok(weak) => {
                        self.after_alloc_ok();
                        weak
                    }
                    Err(err) => return self.alloc_error(err),
                };
                match holder.and_then(|h| pick(self.roots.len(), h)) {
                    Some(h) => {
                        let holder = self.roots[h].clone();
                        self.node_weaks[holder.id() as usize].push(target.id());
                        holder.weak().borrow_mut().push(weak);
                    }
                    None => self.weaks.push(HarnessWeak {
                        target: target.id(),
                        weak,
                        failed: false,
                    }),
                }
            }
            Op::Upgrade { w } => {
                let Some(w) = pick(self.weaks.len(), w) else { return };
                let v = self.view();
                let hw = &self.weaks[w];
                let t = hw.target as usize;
                let strong = hw.weak.strong_count();
                if !v.alive[t] {
                    assert_eq!(strong, 0, "Weak::strong_count of dead node {t}");
                } else if v.finals[t] == 0 {
                    assert_eq!(strong, v.count[t], "Weak::strong_count of node {t}");
                    assert_eq!(
                        hw.weak.weak_count(),
                        self.weak_targets(&v, hw.target),
                        "Weak::weak_count of node {t}"
                    );
                }
                match hw.weak.upgrade() {
                    Some(node) => {
                        assert_eq!(node.id(), hw.target, "upgrade gave the wrong object");
                        assert!(!hw.failed, "weak reference to node {t} upgraded after failing once");
                        assert!(v.alive[t], "weak reference upgraded to dropped node {t}");
                        self.roots.push(node);
                    }
                    None => {
                        assert!(
                            !v.alive[t] || v.finals[t] != 0,
                            "weak reference to live, unfinalized node {t} failed to upgrade"
                        );
                        self.weaks[w].failed = true;
                    }
                }
            }
            Op::UpgradeNodeWeak { a, i } => {
                let Some(a) = pick(self.roots.len(), a) else { return };
                let holder = self.roots[a].clone();
                let hid = holder.id() as usize;
                let Some(i) = pick(self.node_weaks[hid].len(), i) else {
                    return;
                };
                let target = self.node_weaks[hid][i];
                let weak = holder.weak().borrow()[i].clone();
                let v = self.view();
                let t = target as usize;
                match weak.upgrade() {
                    Some(node) => {
                        assert_eq!(node.id(), target, "upgrade gave the wrong object");
                        assert!(v.alive[t], "weak reference upgraded to dropped node {t}");
                        self.roots.push(node);
                    }
                    None => assert!(
                        !v.alive[t] || v.finals[t] != 0,
                        "weak reference to live, unfinalized node {t} failed to upgrade"
                    ),
                }
                drop(weak);
            }
            Op::DropWeak { w } => {
                let Some(w) = pick(self.weaks.len(), w) else { return };
                drop(self.weaks.swap_remove(w));
            }
            Op::DropNodeWeak { a, i } => {
                let Some(a) = pick(self.roots.len(), a) else { return };
                let holder = self.roots[a].clone();
                let hid = holder.id() as usize;
                let Some(i) = pick(self.node_weaks[hid].len(), i) else {
                    return;
                };
                self.node_weaks[hid].remove(i);
                let weak = holder.weak().borrow_mut().remove(i);
                drop(weak);
            }
            Op::CollectGeneration { g } => {
                let g = g as usize % 3;
                let before = self.before_collect();
                let found = self.heap.collect_generation(g).expect("valid generation");
                if g == 2 {
                    self.check_after_full_collect(before, found);
                }
            }
            Op::CollectAll => {
                let before = self.before_collect();
                let found = self.heap.collect();
                self.check_after_full_collect(before, found);
            }
            Op::Checkpoint => {
                self.heap.checkpoint();
            }
            Op::Freeze => {
                let v = self.view();
                self.heap.freeze();
                for (i, frozen) in self.frozen.iter_mut().enumerate() {
                    *frozen |= v.alive[i];
                }
            }
            Op::Unfreeze => {
                self.heap.unfreeze();
                self.frozen.iter_mut().for_each(|f| *f = false);
                assert_eq!(self.heap.freeze_count(), 0);
            }
            Op::SetThreshold { t0, t1, t2 } => {
                let threshold = [t0 as usize % 32, t1 as usize % 8, t2 as usize % 8];
                self.heap.set_threshold(threshold);
                assert_eq!(self.heap.threshold(), threshold);
            }
            Op::Enable => {
                self.heap.enable();
                assert!(self.heap.is_enabled());
            }
            Op::Disable => {
                self.heap.disable();
                assert!(!self.heap.is_enabled());
            }
            Op::SetPolicy { kind, work } => match kind % 3 {
                0 => self.heap.set_policy(Generational),
                1 => self.heap.set_policy(Manual),
                _ => self
                    .heap
                    .set_policy(Incremental::new(1 + work as usize % 64).with_scan_ratio(1 + (work as usize >> 6))),
            },
            Op::SetLimit { slack } => {
                let limit = self.heap.bytes_in_use() + slack as usize * 8;
                self.heap.set_limit(Some(limit));
                self.limit = Some(limit);
            }
            Op::ClearLimit => {
                self.heap.set_limit(None);
                self.limit = None;
            }
            Op::TryAllocBeyondLimit => {
                let limit = self.heap.bytes_in_use();
                self.heap.set_limit(Some(limit));
                self.limit = Some(limit);
                let Some(id) = self.new_node_id() else { return };
                match self.heap.try_alloc(N::new(id)) {
                    // Only possible if an automatic collection made room first.
                    Ok(node) => {
                        self.allocated[id as usize] = true;
                        self.after_alloc_ok();
                        self.roots.push(node);
                    }
                    Err(err) => {
                        self.alloc_error(err);
                        assert!(is_dropped(id), "the value of a failed try_alloc was not dropped");
                    }
                }
            }
            Op::Resurrect { r, on } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                let id = self.roots[r].id() as usize;
                TRACK.with(|t| t.borrow_mut().resurrect[id] = on);
            }
            Op::ClearGraveyard => N::clear_graveyard(),
            Op::Introspect { r } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                let v = self.view();
                let node = &self.roots[r];
                let id = node.id() as usize;
                assert_eq!(
                    self.heap.referents(node).len(),
                    self.edges[id].len(),
                    "referents of node {id}"
                );
                assert_eq!(self.heap.is_tracked(node), !self.frozen[id], "is_tracked of node {id}");
                assert_eq!(
                    self.heap.is_finalized(node),
                    is_finalized(id as u32),
                    "is_finalized of node {id}"
                );
                if v.finals[id] == 0 {
                    assert_eq!(
                        Gc::weak_count(node),
                        self.weak_targets(&v, id as u32),
                        "weak_count of node {id}"
                    );
                }
                let live = v.alive.iter().filter(|&&a| a).count();
                let frozen_live = (0..v.alive.len()).filter(|&i| v.alive[i] && self.frozen[i]).count();
                assert_eq!(self.heap.freeze_count(), frozen_live, "freeze_count");
                assert_eq!(
                    self.heap.objects(None).expect("all generations").len(),
                    live - frozen_live,
                    "objects()"
                );
            }
        }
    }

    fn finish(mut self) {
        self.heap.unfreeze();
        self.frozen.iter_mut().for_each(|f| *f = false);
        self.heap.set_limit(None);
        self.limit = None;
        drop(std::mem::take(&mut self.weaks));
        drop(std::mem::take(&mut self.roots));
        self.check();
        let before = self.before_collect();
        let found = self.heap.collect();
        self.check_after_full_collect(before, found);
        // Dropping the graveyard can let other nodes die and resurrect
        // themselves in turn; each node does so at most once.
        let mut rounds = 0;
        while !N::graveyard_ids().is_empty() {
            rounds += 1;
            assert!(
                rounds <= self.allocated.len(),
                "nodes keep resurrecting: finalizers run more than once?"
            );
            N::clear_graveyard();
            let before = self.before_collect();
            let found = self.heap.collect();
            self.check_after_full_collect(before, found);
        }
        assert_eq!(self.heap.object_count(), 0, "objects left after the final collections");
        assert_eq!(self.heap.bytes_in_use(), 0, "bytes left after the final collections");
        let (drops, finals) = TRACK.with(|t| {
            let t = t.borrow();
            (t.drops.clone(), t.finals.clone())
        });
        for (i, &d) in drops.iter().enumerate() {
            assert_eq!(d, 1, "node {i} dropped {d} times by the end");
            if N::FINALIZER && self.allocated[i] {
                assert_eq!(finals[i], 1, "node {i} finalized {} times by the end", finals[i]);
            }
        }
        drop(self.heap);
    }
}

/// The whole input: which node type, then the operations.
#[derive(Arbitrary, Debug)]
struct Input {
    /// `FNode` (with a finalizer) instead of `Node`.
    finalizer: bool,
    ops: Vec<Op>,
}

fn run<N: FuzzNode>(ops: Vec<Op>) {
    TRACK.with(|t| *t.borrow_mut() = Tracker::default());
    let mut harness = Harness::<N>::new();
    for op in ops {
        harness.apply(op);
        harness.check();
    }
    harness.finish();
}

fuzz_target!(|input: Input| {
    if input.finalizer {
        run::<FNode>(input.ops);
    } else {
        run::<Node>(input.ops);
    }
});
