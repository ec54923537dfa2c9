//! The reference model of a heap, shared by `tests/model.rs` (proptest) and
//! the cargo-fuzz target `fuzz/fuzz_targets/ops.rs` (which includes this file
//! with `#[path]`). It is a module, not a test target of its own.
//!
//! # What is modelled
//!
//! A heap of objects of four types: tracked graph nodes with and without a
//! finalizer (`Node`, `FNode`), and leaves with and without a finalizer
//! (`Leaf`, `FLeaf`). Nodes hold strong edges to objects of any type and weak
//! references (with or without a callback) to objects of any type. The
//! harness holds *roots* (strong handles) and weak references; finalizers
//! whose object is flagged push a clone of it into a *graveyard*
//! (resurrection). [`Model`] is plain Rust: ids, edge lists, counters. It
//! predicts reference counting (a count reaching zero runs the finalizer,
//! which may resurrect, then clears weak references, runs callbacks newest
//! first, and drops the value, cascading), the cycle collector (generations,
//! candidates, weak clearing, finalizers, resurrection, teardown), the
//! generational policy's automatic collections (thresholds, the 25 %
//! long-lived rule), `freeze`, `gc_count` and `gc_stats`.
//!
//! # What is compared after every operation ([`Harness::check`])
//!
//! * which objects were dropped and finalized, each at most once, and a
//!   finalizer before its object's drop with all its referents intact;
//! * `object_count`, the graveyard, every reachable object's strong count,
//!   edges and held weak references, and `Gc::weak_count`;
//! * for every weak reference: `Weak::strong_count`, `Weak::weak_count`,
//!   `has_callback`, whether its callback ran (exactly once, or never), and
//!   the order of callbacks (newest first per object); `upgrade` succeeds
//!   exactly when the model says so and returns the right object;
//! * each generation's members (`Heap::objects`), `freeze_count`,
//!   `gc_count`, `gc_stats`, `threshold`, `is_enabled`, and the collections
//!   that ran (a `gc` callback logs them) with the number each found;
//! * no live object is unreferenced, and none points to a dropped one;
//! * after a full collection the live set is exactly what the roots, the
//!   graveyard and the frozen objects reach.
//!
//! At the end everything is dropped and collected (the graveyard emptied
//! until nothing resurrects), and every object was dropped exactly once.
//!
//! # Where the model cannot know
//!
//! * Steps of the `Incremental` policy pick a region of the old generations
//!   in an order the model does not follow. After one, the harness
//!   *observes* what died, was finalized or cleared, checks that only
//!   objects unreachable before the step were touched and that callbacks
//!   of surviving holders ran, and adopts the real generations and counters.
//!   Until the next full collection the long-lived counters are unknown, so
//!   a generational decision that depends on them accepts either outcome and
//!   simulates the generation that the log says was collected.
//! * When a holder and the target of a weak reference with a callback die
//!   in the same cascade, whether the callback ran depends on the release
//!   order; the model accepts both (but never twice).
//! * Allocations under a byte limit: the model does not count bytes, so a
//!   failed allocation must only be a `LimitExceeded` error that changed
//!   nothing; `TryAllocBeyondLimit` (limit = bytes in use) must fail unless an
//!   automatic collection ran first.
#![allow(dead_code)] // each includer uses part of it
// Parallel per-id vectors read best with index loops.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;
use std::collections::HashMap;

use rcgc::alloc::{AllocError, AllocErrorKind};
use rcgc::collect::{Generational, Incremental, Manual};
use rcgc::{AnyGc, Finalize, Gc, GcPhase, Heap, Trace, Weak};

/// Most objects per run (ids are never reused); allocations past it are skipped.
pub const MAX_OBJECTS: usize = 4096;
/// Most weak references per run.
pub const MAX_WEAKS: usize = 4096;
/// The permanent generation (frozen objects), as a generation number.
const FROZEN: usize = 3;

// ---------------------------------------------------------------------------
// The operation language.
// ---------------------------------------------------------------------------

/// An object type.
#[derive(arbitrary::Arbitrary, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Tracked, no finalizer.
    Node,
    /// Tracked, with a finalizer.
    FNode,
    /// A leaf (never tracked), no finalizer.
    Leaf,
    /// A leaf with a finalizer.
    FLeaf,
}

impl Kind {
    /// Tracked by the collector (may hold edges and weak references).
    pub fn tracked(self) -> bool {
        matches!(self, Kind::Node | Kind::FNode)
    }

    /// Has a finalizer (which resurrects its object when flagged).
    pub fn finalizer(self) -> bool {
        matches!(self, Kind::FNode | Kind::FLeaf)
    }
}

/// One operation. Indexes (`u8`) are taken modulo the current number of
/// roots, edges or weak references; an operation that needs one when there
/// is none, or a node where the root is a leaf, does nothing.
#[derive(arbitrary::Arbitrary, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A new object held as a root (`via_enter`: `Gc::try_new` inside `Heap::enter`).
    Alloc {
        kind: Kind,
        via_enter: bool,
    },
    /// A new object reachable only through an edge from root `parent`.
    AllocChild {
        parent: u8,
        kind: Kind,
    },
    /// A chain of `4 * len` new nodes hanging off root `parent` (a new node if there is no root).
    Chain {
        parent: u8,
        len: u8,
        finalizer: bool,
    },
    /// Another root handle to the object of root `r`.
    CloneRoot {
        r: u8,
    },
    /// Drops root `r` (`swap_remove`).
    DropRoot {
        r: u8,
    },
    /// An edge from root `a` to root `b`.
    Link {
        a: u8,
        b: u8,
    },
    /// Removes edge `e` of root `a`.
    Unlink {
        a: u8,
        e: u8,
    },
    /// Edge `e` of root `a` now points to root `b`.
    ReplaceEdge {
        a: u8,
        e: u8,
        b: u8,
    },
    /// A new root handle to the target of edge `e` of root `a`.
    Follow {
        a: u8,
        e: u8,
    },
    /// A weak reference to root `r`, held by the harness or by root `holder`'s
    /// node, with a callback that logs its run.
    Downgrade {
        r: u8,
        holder: Option<u8>,
        callback: bool,
    },
    /// Upgrades harness weak reference `w`; a success becomes a root.
    Upgrade {
        w: u8,
    },
    /// Upgrades weak reference `i` held by root `a`; a success becomes a root.
    UpgradeHeld {
        a: u8,
        i: u8,
    },
    /// Drops harness weak reference `w` (`swap_remove`).
    DropWeak {
        w: u8,
    },
    /// Drops weak reference `i` held by root `a`.
    DropHeldWeak {
        a: u8,
        i: u8,
    },
    /// `collect_generation(g % 3)`.
    CollectGeneration {
        g: u8,
    },
    /// `collect()`.
    CollectAll,
    /// `checkpoint()` (none of the three policies collects there).
    Checkpoint,
    Freeze,
    Unfreeze,
    /// `set_threshold([t0 % 32, t1 % 8, t2 % 8])`.
    SetThreshold {
        t0: u8,
        t1: u8,
        t2: u8,
    },
    Enable,
    Disable,
    /// `kind % 3`: Generational, Manual, or Incremental with a budget from `work`.
    SetPolicy {
        kind: u8,
        work: u8,
    },
    /// Limit = bytes in use + `slack * 8`.
    SetLimit {
        slack: u8,
    },
    ClearLimit,
    /// Limit = bytes in use, then `try_alloc`: fails, changing nothing, unless
    /// an automatic collection made room first.
    TryAllocBeyondLimit {
        kind: Kind,
    },
    /// Whether root `r`'s finalizer resurrects it (into the graveyard).
    Resurrect {
        r: u8,
        on: bool,
    },
    /// Drops the graveyard's handles.
    ClearGraveyard,
    /// `referents`, `referrers`, `is_tracked`, `is_finalized`, `objects(None)` of root `r`.
    Introspect {
        r: u8,
    },
}

/// Number of `Op` variants (the closing note's "operations covered").
pub const OP_KINDS: usize = 29;

fn pick(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| i as usize % len)
}

// ---------------------------------------------------------------------------
// Event counters, shared with Drop, finalizers and callbacks.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Tracker {
    drops: Vec<u8>,
    finals: Vec<u8>,
    resurrect: Vec<bool>,
    /// Runs of each weak reference's callback.
    fired: Vec<u8>,
    /// (target, weak id) of the callbacks run during the current operation.
    callbacks: Vec<(u32, u32)>,
    /// Problems seen inside Drop, finalizers or callbacks (a panic there
    /// would be caught and reported by the collector, not fail the test).
    violations: Vec<String>,
}

thread_local! {
    static TRACK: RefCell<Tracker> = RefCell::new(Tracker::default());
    static GRAVEYARD: RefCell<Vec<Handle>> = const { RefCell::new(Vec::new()) };
    /// (generation, collected) of every collection since it was last taken.
    static GC_LOG: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the tracker; does nothing while the thread shuts down (user
/// code called from destructors must never panic).
fn track<R: Default>(f: impl FnOnce(&mut Tracker) -> R) -> R {
    TRACK.try_with(|t| f(&mut t.borrow_mut())).unwrap_or_default()
}

fn record_drop(id: u32) {
    track(|t| {
        if let Some(d) = t.drops.get_mut(id as usize) {
            *d = d.saturating_add(1);
            if *d > 1 {
                let times = *d;
                t.violations.push(format!("object {id} dropped {times} times"));
            }
        }
    })
}

/// A finalizer ran: checks it runs once, before the drop, with every
/// referent intact; returns whether the object resurrects itself.
fn record_finalize(id: u32, edges: Option<&RefCell<Vec<Handle>>>) -> bool {
    let mut problems = Vec::new();
    let mut referents = Vec::new();
    if let Some(edges) = edges {
        match edges.try_borrow() {
            Ok(edges) => {
                for edge in edges.iter() {
                    match edge.try_id() {
                        Some(r) => referents.push(r),
                        None => problems.push(format!("the finalizer of {id} sees a torn-down referent")),
                    }
                }
            }
            Err(_) => problems.push(format!("the edges of {id} are borrowed during its finalizer")),
        }
    }
    track(|t| {
        let i = id as usize;
        if i >= t.finals.len() {
            return false;
        }
        t.finals[i] = t.finals[i].saturating_add(1);
        if t.finals[i] > 1 {
            problems.push(format!("object {id} finalized {} times", t.finals[i]));
        }
        if t.drops[i] != 0 {
            problems.push(format!("object {id} finalized after its drop"));
        }
        for r in referents {
            if t.drops.get(r as usize).is_some_and(|&d| d != 0) {
                problems.push(format!("the finalizer of {id} sees {r} already dropped"));
            }
        }
        t.violations.append(&mut problems);
        t.resurrect[i]
    })
}

fn bury(handle: Handle) {
    let _ = GRAVEYARD.try_with(|g| g.borrow_mut().push(handle));
}

fn graveyard_ids() -> Vec<u32> {
    GRAVEYARD.with(|g| g.borrow().iter().map(Handle::id).collect())
}

/// Empties the graveyard; its handles are dropped outside the borrow
/// (finalizers that run then may bury other objects).
fn clear_graveyard() {
    let buried = GRAVEYARD.with(|g| std::mem::take(&mut *g.borrow_mut()));
    drop(buried);
}

/// The callback of weak reference `wid` to object `target`.
fn callback<T: Trace + 'static>(wid: u32, target: u32) -> impl FnOnce(&Weak<T>) + 'static {
    move |weak| {
        let upgraded = weak.upgrade().is_some();
        track(|t| {
            let Some(fired) = t.fired.get_mut(wid as usize) else {
                return;
            };
            *fired = fired.saturating_add(1);
            if *fired > 1 {
                t.violations.push(format!("the callback of weak {wid} ran twice"));
            }
            if upgraded {
                t.violations
                    .push(format!("weak {wid} still upgrades while its callback runs"));
            }
            t.callbacks.push((target, wid));
        })
    }
}

// ---------------------------------------------------------------------------
// The real objects.
// ---------------------------------------------------------------------------

/// A tracked node without a finalizer.
#[derive(Trace)]
pub struct Node {
    #[trace(skip)]
    id: u32,
    edges: RefCell<Vec<Handle>>,
    weaks: RefCell<Vec<HeldWeak>>,
}

/// A tracked node with a finalizer.
#[derive(Trace)]
#[trace(finalize)]
pub struct FNode {
    #[trace(skip)]
    id: u32,
    edges: RefCell<Vec<Handle>>,
    weaks: RefCell<Vec<HeldWeak>>,
}

/// A leaf without a finalizer.
#[derive(Trace)]
pub struct Leaf {
    #[trace(skip)]
    id: u32,
}

/// A leaf with a finalizer.
#[derive(Trace)]
#[trace(finalize)]
pub struct FLeaf {
    #[trace(skip)]
    id: u32,
}

/// A weak reference held inside a node, with its model id.
#[derive(Trace)]
pub struct HeldWeak {
    #[trace(skip)]
    wid: u32,
    weak: WeakHandle,
}

macro_rules! drop_records {
    ($($ty:ident),*) => {$(
        impl Drop for $ty {
            fn drop(&mut self) {
                record_drop(self.id);
            }
        }
    )*};
}
drop_records!(Node, FNode, Leaf, FLeaf);

impl Finalize for FNode {
    fn finalize(this: &Gc<Self>) {
        if record_finalize(this.id, Some(&this.edges)) {
            bury(Handle::F(this.clone()));
        }
    }
}

impl Finalize for FLeaf {
    fn finalize(this: &Gc<Self>) {
        if record_finalize(this.id, None) {
            bury(Handle::FL(this.clone()));
        }
    }
}

/// A strong handle to an object of any of the four types.
#[derive(Trace, Clone)]
pub enum Handle {
    N(Gc<Node>),
    F(Gc<FNode>),
    L(Gc<Leaf>),
    FL(Gc<FLeaf>),
}

/// A weak reference to an object of any of the four types.
#[derive(Trace, Clone)]
pub enum WeakHandle {
    N(Weak<Node>),
    F(Weak<FNode>),
    L(Weak<Leaf>),
    FL(Weak<FLeaf>),
}

macro_rules! each {
    ($e:expr, $enum:ident, $g:ident => $body:expr) => {
        match $e {
            $enum::N($g) => $body,
            $enum::F($g) => $body,
            $enum::L($g) => $body,
            $enum::FL($g) => $body,
        }
    };
}

impl Handle {
    /// The object's id, `None` if it was torn down (dead).
    fn try_id(&self) -> Option<u32> {
        each!(self, Handle, g => Gc::try_deref(g).map(|v| v.id))
    }

    pub fn id(&self) -> u32 {
        self.try_id().expect("a handle to a torn-down object")
    }

    fn strong_count(&self) -> usize {
        each!(self, Handle, g => Gc::strong_count(g))
    }

    fn weak_count(&self) -> usize {
        each!(self, Handle, g => Gc::weak_count(g))
    }

    fn edges(&self) -> Option<&RefCell<Vec<Handle>>> {
        match self {
            Handle::N(g) => Some(&g.edges),
            Handle::F(g) => Some(&g.edges),
            _ => None,
        }
    }

    fn held(&self) -> Option<&RefCell<Vec<HeldWeak>>> {
        match self {
            Handle::N(g) => Some(&g.weaks),
            Handle::F(g) => Some(&g.weaks),
            _ => None,
        }
    }

    /// A weak reference, with a callback logging as weak `wid` if `callback`.
    fn downgrade(&self, wid: u32, callback: bool) -> Result<WeakHandle, AllocError> {
        let target = self.id();
        match self {
            Handle::N(g) if callback => {
                Gc::try_downgrade_with_callback(g, self::callback(wid, target)).map(WeakHandle::N)
            }
            Handle::F(g) if callback => {
                Gc::try_downgrade_with_callback(g, self::callback(wid, target)).map(WeakHandle::F)
            }
            Handle::L(g) if callback => {
                Gc::try_downgrade_with_callback(g, self::callback(wid, target)).map(WeakHandle::L)
            }
            Handle::FL(g) if callback => {
                Gc::try_downgrade_with_callback(g, self::callback(wid, target)).map(WeakHandle::FL)
            }
            Handle::N(g) => Gc::try_downgrade(g).map(WeakHandle::N),
            Handle::F(g) => Gc::try_downgrade(g).map(WeakHandle::F),
            Handle::L(g) => Gc::try_downgrade(g).map(WeakHandle::L),
            Handle::FL(g) => Gc::try_downgrade(g).map(WeakHandle::FL),
        }
    }

    fn is_tracked(&self, heap: &Heap) -> bool {
        each!(self, Handle, g => heap.is_tracked(g))
    }

    fn is_finalized(&self, heap: &Heap) -> bool {
        each!(self, Handle, g => heap.is_finalized(g))
    }

    fn referents(&self, heap: &Heap) -> Vec<AnyGc> {
        each!(self, Handle, g => heap.referents(g))
    }

    fn referrers(&self, heap: &Heap) -> Vec<AnyGc> {
        each!(self, Handle, g => heap.referrers(g))
    }
}

impl WeakHandle {
    fn upgrade(&self) -> Option<Handle> {
        match self {
            WeakHandle::N(w) => w.upgrade().map(Handle::N),
            WeakHandle::F(w) => w.upgrade().map(Handle::F),
            WeakHandle::L(w) => w.upgrade().map(Handle::L),
            WeakHandle::FL(w) => w.upgrade().map(Handle::FL),
        }
    }

    fn strong_count(&self) -> usize {
        each!(self, WeakHandle, w => w.strong_count())
    }

    fn weak_count(&self) -> usize {
        each!(self, WeakHandle, w => w.weak_count())
    }

    fn has_callback(&self) -> bool {
        each!(self, WeakHandle, w => w.has_callback())
    }
}

/// The id of a tracked object listed by `Heap::objects`.
fn any_id(any: &AnyGc) -> u32 {
    if let Some(node) = any.downcast::<Node>() {
        node.id
    } else if let Some(node) = any.downcast::<FNode>() {
        node.id
    } else {
        panic!("an object of an unknown type: {}", any.type_name())
    }
}

// ---------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------

/// The collector policy in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Generational,
    Incremental,
    Manual,
}

/// One object of the model.
#[derive(Clone, Debug)]
pub struct MObj {
    pub kind: Kind,
    /// Its allocation succeeded.
    pub allocated: bool,
    /// Allocated and not dropped.
    pub alive: bool,
    pub finalized: bool,
    /// Its finalizer buries it.
    pub resurrect: bool,
    /// Strong edges (ids), in the node's order.
    pub edges: Vec<u32>,
    /// Weak references held (weak ids), in the node's order.
    pub held: Vec<u32>,
    /// Generation 0..=2, or `FROZEN` (tracked objects only).
    pub gen: usize,
}

/// What a weak reference's callback will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cb {
    /// Made without a callback.
    None,
    /// Will run when the referent dies.
    Pending,
    /// Ran (exactly once).
    Fired,
    /// Will never run: cancelled (its weak reference dropped) or disabled
    /// (its holder was cyclic garbage), or its referent died without it.
    Dead,
    /// Pending, or disabled by a collection the model could not follow.
    PendingOrDead,
    /// Ran or not during the current operation: the harness reads which.
    FiredOrNot,
}

impl Cb {
    fn may_fire(self) -> bool {
        matches!(self, Cb::Pending | Cb::PendingOrDead)
    }
}

/// One weak reference of the model.
#[derive(Clone, Debug)]
pub struct MWeak {
    pub target: u32,
    /// The node holding it, `None` for the harness.
    pub holder: Option<u32>,
    pub cb: Cb,
    /// Its referent died (or was found garbage): it never upgrades again.
    pub cleared: bool,
    /// The handle exists.
    pub alive: bool,
}

/// What an automatic collection before a tracked allocation will be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    None,
    /// A collection of this generation.
    Gen(usize),
    /// A collection of one of these generations (the long-lived counters are unknown).
    OneOf(usize, usize),
    /// An incremental step; `certain` if it must happen.
    Step {
        certain: bool,
    },
}

/// The reference model: plain ids, edges and counters.
#[derive(Clone, Debug)]
pub struct Model {
    pub objs: Vec<MObj>,
    pub weaks: Vec<MWeak>,
    /// The harness's root handles, in its order.
    pub roots: Vec<u32>,
    /// The harness's weak references (weak ids), in its order.
    pub hweaks: Vec<u32>,
    /// Handles buried by finalizers (a multiset).
    pub graveyard: Vec<u32>,
    pub count: [usize; 3],
    pub threshold: [usize; 3],
    pub long_total: usize,
    pub long_pending: usize,
    /// The long-lived counters are known (false after an incremental step).
    pub long_known: bool,
    pub enabled: bool,
    pub policy: Policy,
    /// (collections, collected) per generation.
    pub stats: [(usize, usize); 3],
    /// Incremental steps observed.
    pub steps: usize,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    pub fn new() -> Model {
        Model {
            objs: Vec::new(),
            weaks: Vec::new(),
            roots: Vec::new(),
            hweaks: Vec::new(),
            graveyard: Vec::new(),
            count: [0; 3],
            threshold: [700, 10, 10],
            long_total: 0,
            long_pending: 0,
            long_known: true,
            enabled: true,
            policy: Policy::Generational,
            stats: [(0, 0); 3],
            steps: 0,
        }
    }

    /// Strong count of every object: roots + graveyard + edges of live objects.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.objs.len()];
        for &r in self.roots.iter().chain(&self.graveyard) {
            counts[r as usize] += 1;
        }
        for o in self.objs.iter().filter(|o| o.alive) {
            for &e in &o.edges {
                counts[e as usize] += 1;
            }
        }
        counts
    }

    /// Live, uncleared weak references to `id` (`Gc::weak_count`).
    pub fn weak_count(&self, id: u32) -> usize {
        self.weaks
            .iter()
            .filter(|w| w.alive && !w.cleared && w.target == id)
            .count()
    }

    pub fn live(&self) -> usize {
        self.objs.iter().filter(|o| o.alive).count()
    }

    /// Objects reachable through edges from `seeds`.
    pub fn reach(&self, seeds: impl IntoIterator<Item = u32>) -> Vec<bool> {
        let mut seen = vec![false; self.objs.len()];
        let mut stack: Vec<u32> = seeds.into_iter().collect();
        while let Some(x) = stack.pop() {
            if !std::mem::replace(&mut seen[x as usize], true) {
                stack.extend(self.objs[x as usize].edges.iter().copied());
            }
        }
        seen
    }

    /// Reachable from the roots and the graveyard: never freed.
    pub fn strongly_reachable(&self) -> Vec<bool> {
        self.reach(self.roots.iter().chain(&self.graveyard).copied())
    }

    /// Registers a new object (allocation succeeded) as the last root.
    pub fn alloc(&mut self, kind: Kind) -> u32 {
        let id = self.objs.len() as u32;
        self.objs.push(MObj {
            kind,
            allocated: true,
            alive: true,
            finalized: false,
            resurrect: false,
            edges: Vec::new(),
            held: Vec::new(),
            gen: 0,
        });
        if kind.tracked() {
            self.count[0] += 1;
        }
        self.roots.push(id);
        id
    }

    /// Registers an id whose allocation failed (its value was dropped).
    pub fn alloc_failed(&mut self, kind: Kind) {
        self.objs.push(MObj {
            kind,
            allocated: false,
            alive: false,
            finalized: false,
            resurrect: false,
            edges: Vec::new(),
            held: Vec::new(),
            gen: 0,
        });
    }

    /// Registers a weak reference (`created`: `downgrade` succeeded).
    pub fn add_weak(&mut self, target: u32, holder: Option<u32>, callback: bool, created: bool) -> u32 {
        let wid = self.weaks.len() as u32;
        self.weaks.push(MWeak {
            target,
            holder,
            cb: if callback && created { Cb::Pending } else { Cb::None },
            cleared: false,
            alive: created,
        });
        if created {
            match holder {
                Some(h) => self.objs[h as usize].held.push(wid),
                None => self.hweaks.push(wid),
            }
        }
        wid
    }

    fn drop_weak(&mut self, wid: u32) {
        let w = &mut self.weaks[wid as usize];
        w.alive = false;
        if w.cb.may_fire() {
            w.cb = Cb::Dead;
        }
    }

    pub fn drop_harness_weak(&mut self, i: usize) {
        let wid = self.hweaks.swap_remove(i);
        self.drop_weak(wid);
    }

    pub fn drop_held_weak(&mut self, holder: u32, i: usize) {
        let wid = self.objs[holder as usize].held.remove(i);
        self.drop_weak(wid);
    }

    pub fn drop_root(&mut self, i: usize) {
        self.roots.swap_remove(i);
        self.settle();
    }

    pub fn remove_edge(&mut self, from: u32, e: usize) {
        self.objs[from as usize].edges.remove(e);
        self.settle();
    }

    pub fn replace_edge(&mut self, from: u32, e: usize, to: u32) {
        self.objs[from as usize].edges[e] = to;
        self.settle();
    }

    pub fn clear_graveyard(&mut self) {
        self.graveyard.clear();
        self.settle();
    }

    /// Reference counting: every live object whose count is zero runs its
    /// finalizer (once; it may resurrect) or dies, until none is left.
    pub fn settle(&mut self) {
        let mut counts = self.counts();
        let mut queue: Vec<u32> = (0..self.objs.len() as u32)
            .filter(|&i| self.objs[i as usize].alive && counts[i as usize] == 0)
            .collect();
        let mut died = Vec::new();
        while let Some(x) = queue.pop() {
            let o = &mut self.objs[x as usize];
            if !o.alive || counts[x as usize] != 0 {
                continue;
            }
            if o.kind.finalizer() && !o.finalized {
                o.finalized = true;
                if o.resurrect {
                    self.graveyard.push(x);
                    counts[x as usize] += 1;
                    continue;
                }
            }
            let edges = std::mem::take(&mut o.edges);
            self.die(x, false);
            died.push(x);
            for e in edges {
                counts[e as usize] -= 1;
                if counts[e as usize] == 0 {
                    queue.push(e);
                }
            }
        }
        self.after_deaths(&died);
    }

    /// Marks `x` dropped, with the counters `untrack` changes (`collecting`:
    /// `x` is cyclic garbage of the running collection).
    fn die(&mut self, x: u32, collecting: bool) {
        let o = &mut self.objs[x as usize];
        o.alive = false;
        o.edges.clear();
        o.held.clear();
        if o.kind.tracked() {
            self.count[0] = self.count[0].saturating_sub(1);
            if !collecting && o.gen == 2 {
                self.long_pending = self.long_pending.saturating_sub(1);
            }
        }
    }

    /// Weak references after the deaths of `died` in one cascade: those to
    /// them are cleared and call back, those held by them are dropped.
    fn after_deaths(&mut self, died: &[u32]) {
        if died.is_empty() {
            return;
        }
        let mut dead = vec![false; self.objs.len()];
        for &x in died {
            dead[x as usize] = true;
        }
        for w in &mut self.weaks {
            let holder_died = w.holder.is_some_and(|h| dead[h as usize]);
            if !w.alive {
                continue;
            }
            if dead[w.target as usize] && !w.cleared {
                w.cleared = true;
                w.cb = match w.cb {
                    // Its holder is alive, or it is the harness's: it runs.
                    Cb::Pending if !holder_died => Cb::Fired,
                    // The holder died in the same cascade: before or after?
                    Cb::Pending | Cb::PendingOrDead => Cb::FiredOrNot,
                    other => other,
                };
            }
            if holder_died {
                w.alive = false;
                if w.cb.may_fire() {
                    w.cb = Cb::Dead;
                }
            }
        }
    }

    /// What automatic collection the next tracked allocation runs first.
    pub fn auto_expect(&self) -> Expect {
        if !self.enabled || self.threshold[0] == 0 {
            return Expect::None;
        }
        match self.policy {
            Policy::Manual => Expect::None,
            Policy::Generational => {
                if self.count[0] < self.threshold[0] {
                    return Expect::None;
                }
                let mut count = self.count;
                count[0] += 1; // the allocation being made counts
                let lower = if count[1] > self.threshold[1] { 1 } else { 0 };
                if count[2] > self.threshold[2] {
                    if !self.long_known {
                        return Expect::OneOf(2, lower);
                    }
                    if self.long_pending >= self.long_total / 4 {
                        return Expect::Gen(2);
                    }
                }
                Expect::Gen(lower)
            }
            Policy::Incremental => {
                let t = self.threshold[0];
                if self.count[0] >= t {
                    Expect::Step { certain: true }
                } else if self.count[0] >= (t / 4).max(1) {
                    Expect::Step { certain: false }
                } else {
                    Expect::None
                }
            }
        }
    }

    /// A collection of generations `0..=n`; returns the number of
    /// unreachable objects found (and freed).
    pub fn collect(&mut self, n: usize) -> usize {
        if n + 1 < 3 {
            self.count[n + 1] += 1;
        }
        for c in &mut self.count[..=n] {
            *c = 0;
        }
        let dest = (n + 1).min(2);
        let is_cand: Vec<bool> = self
            .objs
            .iter()
            .map(|o| o.alive && o.kind.tracked() && o.gen <= n)
            .collect();
        let cands: Vec<u32> = (0..self.objs.len() as u32).filter(|&i| is_cand[i as usize]).collect();
        let reachable = self.reachable_within(&is_cand);
        let mut survivors = 0;
        let mut garbage = Vec::new();
        for &c in &cands {
            if reachable[c as usize] {
                self.objs[c as usize].gen = dest;
                survivors += 1;
            } else {
                garbage.push(c);
            }
        }
        let mut found = 0;
        if !garbage.is_empty() {
            let mut in_garbage = vec![false; self.objs.len()];
            for &g in &garbage {
                in_garbage[g as usize] = true;
            }
            // 4. Weak references held by the garbage never call back; weak
            // references to it are cleared and the others call back.
            for w in self.weaks.iter_mut().filter(|w| w.alive) {
                if w.holder.is_some_and(|h| in_garbage[h as usize]) && w.cb.may_fire() {
                    w.cb = Cb::Dead;
                }
                if in_garbage[w.target as usize] && !w.cleared {
                    w.cleared = true;
                    w.cb = match w.cb {
                        Cb::Pending => Cb::Fired,
                        Cb::PendingOrDead => Cb::FiredOrNot,
                        other => other,
                    };
                }
            }
            // 5. Finalizers, each at most once.
            let mut ran = false;
            for &g in &garbage {
                let o = &mut self.objs[g as usize];
                if o.kind.finalizer() && !o.finalized {
                    o.finalized = true;
                    ran = true;
                    if o.resurrect {
                        self.graveyard.push(g);
                    }
                }
            }
            // 6. Resurrection: what the finalizers made reachable survives.
            if ran {
                let again = self.reachable_within(&in_garbage);
                garbage.retain(|&g| {
                    if again[g as usize] {
                        self.objs[g as usize].gen = dest;
                    }
                    !again[g as usize]
                });
            }
            found = garbage.len();
            // 7. Teardown, then whatever only the garbage kept alive.
            for &g in &garbage {
                self.die(g, true);
            }
            self.after_deaths(&garbage);
            self.settle();
        }
        if n == 1 {
            self.long_pending += survivors;
        } else if n == 2 {
            self.long_total = survivors;
            self.long_pending = 0;
            self.long_known = true;
        }
        self.stats[n].0 += 1;
        self.stats[n].1 += found;
        found
    }

    /// Among the candidates `is_cand`: those referenced from outside them
    /// (count above the candidates' edges to them), and what they reach
    /// inside the set.
    fn reachable_within(&self, is_cand: &[bool]) -> Vec<bool> {
        let counts = self.counts();
        let mut internal = vec![0usize; self.objs.len()];
        for (i, o) in self.objs.iter().enumerate() {
            if is_cand[i] {
                for &e in &o.edges {
                    internal[e as usize] += 1;
                }
            }
        }
        let mut reachable = vec![false; self.objs.len()];
        let mut stack: Vec<u32> = (0..self.objs.len() as u32)
            .filter(|&i| is_cand[i as usize] && counts[i as usize] > internal[i as usize])
            .collect();
        while let Some(x) = stack.pop() {
            if std::mem::replace(&mut reachable[x as usize], true) {
                continue;
            }
            for &e in &self.objs[x as usize].edges {
                if is_cand[e as usize] && !reachable[e as usize] {
                    stack.push(e);
                }
            }
        }
        reachable
    }

    pub fn freeze(&mut self) {
        for o in self.objs.iter_mut().filter(|o| o.alive && o.kind.tracked()) {
            o.gen = FROZEN;
        }
        self.count[0] = 0;
    }

    pub fn unfreeze(&mut self) {
        for o in self.objs.iter_mut().filter(|o| o.alive && o.gen == FROZEN) {
            o.gen = 2;
        }
    }

    /// Ids of the live tracked objects of generation `g` (3 = frozen).
    pub fn generation(&self, g: usize) -> Vec<u32> {
        (0..self.objs.len() as u32)
            .filter(|&i| {
                let o = &self.objs[i as usize];
                o.alive && o.kind.tracked() && o.gen == g
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The interpreter: the real heap and the model side by side.
// ---------------------------------------------------------------------------

/// Runs operations on a real `Heap` and on the [`Model`], comparing them.
pub struct Harness {
    heap: Heap,
    roots: Vec<Handle>,
    /// The harness's weak references, parallel to `model.hweaks`.
    weaks: Vec<WeakHandle>,
    pub model: Model,
    limit: Option<usize>,
    /// The operation being run (for messages).
    op: Option<Op>,
    step: usize,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    /// A fresh heap (the thread's counters and graveyard are reset).
    pub fn new() -> Harness {
        // Drop what an earlier (failed) run may have left, with its counters.
        while GRAVEYARD.with(|g| !g.borrow().is_empty()) {
            clear_graveyard();
        }
        TRACK.with(|t| *t.borrow_mut() = Tracker::default());
        GC_LOG.with(|l| l.borrow_mut().clear());
        let heap = Heap::new();
        heap.add_gc_callback(|phase, info| {
            if phase == GcPhase::Stop {
                let _ = GC_LOG.try_with(|l| l.borrow_mut().push((info.generation, info.collected)));
            }
        });
        Harness {
            heap,
            roots: Vec::new(),
            weaks: Vec::new(),
            model: Model::new(),
            limit: None,
            op: None,
            step: 0,
        }
    }

    /// Runs `ops`, checking after each, then drops everything and checks the end state.
    pub fn run(ops: &[Op]) {
        let mut harness = Harness::new();
        harness.check();
        for &op in ops {
            harness.apply(op);
        }
        harness.finish();
    }

    fn at(&self) -> String {
        format!("step {} ({:?})", self.step, self.op)
    }

    fn take_gc_log() -> Vec<(usize, usize)> {
        GC_LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }

    fn root_id(&self, r: usize) -> u32 {
        self.model.roots[r]
    }

    /// A root that is a node (can hold edges and weak references).
    fn pick_node(&self, i: u8) -> Option<usize> {
        pick(self.roots.len(), i).filter(|&r| self.model.objs[self.root_id(r) as usize].kind.tracked())
    }

    fn next_id(&mut self) -> Option<u32> {
        if self.model.objs.len() >= MAX_OBJECTS {
            return None;
        }
        track(|t| {
            t.drops.push(0);
            t.finals.push(0);
            t.resurrect.push(false);
        });
        Some(self.model.objs.len() as u32)
    }

    fn real_alloc(&self, kind: Kind, id: u32, via_enter: bool) -> Result<Handle, AllocError> {
        fn make<T: Trace + 'static>(heap: &Heap, value: T, via_enter: bool) -> Result<Gc<T>, AllocError> {
            if via_enter {
                heap.enter(|| Gc::try_new(value))
            } else {
                heap.try_alloc(value)
            }
        }
        let node = |id| (id, RefCell::new(Vec::new()), RefCell::new(Vec::new()));
        match kind {
            Kind::Node => {
                let (id, edges, weaks) = node(id);
                make(&self.heap, Node { id, edges, weaks }, via_enter).map(Handle::N)
            }
            Kind::FNode => {
                let (id, edges, weaks) = node(id);
                make(&self.heap, FNode { id, edges, weaks }, via_enter).map(Handle::F)
            }
            Kind::Leaf => make(&self.heap, Leaf { id }, via_enter).map(Handle::L),
            Kind::FLeaf => make(&self.heap, FLeaf { id }, via_enter).map(Handle::FL),
        }
    }

    /// Allocates an object as the last root; false if the cap is reached or
    /// the limit refused it. `must_fail`: the limit leaves no room, so it
    /// fails unless an automatic collection ran first.
    fn alloc(&mut self, kind: Kind, via_enter: bool, must_fail: bool) -> bool {
        let Some(id) = self.next_id() else { return false };
        let expect = if kind.tracked() {
            self.model.auto_expect()
        } else {
            Expect::None
        };
        let before = matches!(expect, Expect::Step { .. })
            .then(|| (self.model.strongly_reachable(), self.model.graveyard.clone()));
        Self::take_gc_log();
        let bytes_before = self.heap.bytes_in_use();
        let result = self.real_alloc(kind, id, via_enter);
        let log = Self::take_gc_log();
        let at = self.at();
        match expect {
            Expect::None => assert!(log.is_empty(), "{at}: unexpected automatic collection {log:?}"),
            Expect::Gen(g) | Expect::OneOf(g, _) | Expect::OneOf(_, g) if log.first().is_some_and(|l| l.0 == g) => {
                assert_eq!(log.len(), 1, "{at}: collections {log:?}");
                let found = self.model.collect(g);
                assert_eq!(log[0].1, found, "{at}: automatic collection of generation {g} found");
            }
            Expect::Gen(_) | Expect::OneOf(..) => panic!("{at}: expected {expect:?}, the heap ran {log:?}"),
            Expect::Step { certain } => {
                assert!(log.len() <= 1, "{at}: collections {log:?}");
                assert!(!certain || log.len() == 1, "{at}: the incremental step did not run");
                if let (Some(&(g, collected)), Some((reachable, graveyard))) = (log.first(), before) {
                    assert_eq!(g, 1, "{at}: an incremental step reports generation 1");
                    self.observe_step(&reachable, &graveyard, collected, result.is_ok());
                }
            }
        }
        match result {
            Ok(handle) => {
                assert!(
                    !must_fail || !log.is_empty(),
                    "{at}: try_alloc past the limit succeeded"
                );
                assert_eq!(self.model.alloc(kind), id);
                self.roots.push(handle);
                if let Some(limit) = self.limit {
                    assert!(
                        self.heap.bytes_in_use() <= limit,
                        "{at}: an allocation went past the limit"
                    );
                }
                true
            }
            Err(err) => {
                self.alloc_error(err);
                if log.is_empty() {
                    assert_eq!(
                        self.heap.bytes_in_use(),
                        bytes_before,
                        "{at}: a failed allocation changed the heap"
                    );
                }
                self.model.alloc_failed(kind);
                false
            }
        }
    }

    fn alloc_error(&self, err: AllocError) {
        let at = self.at();
        let Some(expected) = self.limit else {
            panic!("{at}: allocation failed without a limit: {err}")
        };
        match err.kind() {
            AllocErrorKind::LimitExceeded { limit, in_use, needed } => {
                assert_eq!(limit, expected, "{at}: the error's limit");
                assert!(in_use + needed > limit, "{at}: refused although it fits: {err}");
            }
            other => panic!("{at}: expected LimitExceeded, got {other:?}"),
        }
    }

    /// After an incremental step the model cannot predict: checks what
    /// happened against what was reachable before, then adopts it.
    fn observe_step(&mut self, reachable: &[bool], graveyard_before: &[u32], collected: usize, alloc_ok: bool) {
        let at = self.at();
        let n = self.model.objs.len();
        let (drops, finals, fired) = TRACK.with(|t| {
            let t = t.borrow();
            (t.drops[..n].to_vec(), t.finals[..n].to_vec(), t.fired.clone())
        });
        let m = &mut self.model;
        let mut died = Vec::new();
        let mut expected_graveyard = graveyard_before.to_vec();
        for i in 0..n {
            let o = &m.objs[i];
            if o.alive && drops[i] != 0 {
                assert!(!reachable[i], "{at}: an incremental step dropped reachable object {i}");
                died.push(i as u32);
            }
            if finals[i] != 0 && !o.finalized {
                assert!(
                    o.alive && !reachable[i] && o.kind.finalizer(),
                    "{at}: an incremental step finalized object {i} (reachable or dead)"
                );
                let resurrect = o.resurrect;
                m.objs[i].finalized = true;
                if resurrect {
                    expected_graveyard.push(i as u32);
                }
            }
        }
        assert!(
            collected <= died.len(),
            "{at}: the step reports {collected} found, {} died",
            died.len()
        );
        let mut real_graveyard = graveyard_ids();
        m.graveyard = real_graveyard.clone();
        real_graveyard.sort_unstable();
        expected_graveyard.sort_unstable();
        assert_eq!(
            real_graveyard, expected_graveyard,
            "{at}: graveyard after an incremental step"
        );
        for &x in &died {
            m.die(x, true);
        }
        m.long_known = false;
        let mut dead = vec![false; n];
        for &x in &died {
            dead[x as usize] = true;
        }
        // Weak references: an object's are cleared all at once, so read it
        // from the object's weak count (an object found garbage is a
        // candidate, listed by `objects`, so `handles` has it).
        let handles = self.handles();
        let m = &mut self.model;
        let mut surviving = vec![0usize; n];
        for w in m.weaks.iter().filter(|w| w.alive && !w.cleared) {
            if !w.holder.is_some_and(|h| dead[h as usize]) {
                surviving[w.target as usize] += 1;
            }
        }
        let target_cleared: Vec<bool> = (0..n)
            .map(|t| dead[t] || (surviving[t] > 0 && handles.get(&(t as u32)).is_some_and(|h| h.weak_count() == 0)))
            .collect();
        for wid in 0..m.weaks.len() {
            let w = m.weaks[wid].clone();
            if !w.alive {
                continue;
            }
            let holder_died = w.holder.is_some_and(|h| dead[h as usize]);
            let cleared = w.cleared || target_cleared[w.target as usize];
            let w = &mut m.weaks[wid];
            let cleared_now = cleared && !w.cleared;
            if cleared_now {
                assert!(
                    !reachable[w.target as usize],
                    "{at}: a weak reference to a reachable object was cleared"
                );
                w.cleared = true;
            }
            let fired_now = fired[wid] != 0 && !matches!(w.cb, Cb::Fired | Cb::FiredOrNot);
            if fired_now {
                assert!(
                    cleared_now && w.cb.may_fire(),
                    "{at}: callback of weak {wid} ran uncalled for"
                );
                w.cb = Cb::Fired;
            } else if cleared_now && w.cb.may_fire() {
                let holder_safe = w.holder.is_none_or(|h| !dead[h as usize] && reachable[h as usize]);
                assert!(
                    !(holder_safe && w.cb == Cb::Pending),
                    "{at}: the callback of weak {wid} did not run although its referent died"
                );
                w.cb = Cb::Dead;
            }
            if holder_died {
                w.alive = false;
                if w.cb.may_fire() {
                    w.cb = Cb::Dead;
                }
            } else if w.holder.is_some_and(|h| !reachable[h as usize]) && w.cb == Cb::Pending {
                w.cb = Cb::PendingOrDead; // its holder may have been found garbage
            }
        }
        drop(handles);
        // Generations and counters as the heap has them.
        let m = &mut self.model;
        let mut listed = vec![false; n];
        for g in 0..3 {
            for any in self.heap.objects(Some(g)).unwrap() {
                let id = any_id(&any) as usize;
                if id < n {
                    assert!(
                        m.objs[id].alive && m.objs[id].gen != FROZEN,
                        "{at}: generation {g} lists {id}"
                    );
                    m.objs[id].gen = g;
                    listed[id] = true;
                }
            }
        }
        for (i, o) in m.objs.iter().enumerate() {
            if o.alive && o.kind.tracked() && !listed[i] {
                assert_eq!(o.gen, FROZEN, "{at}: live object {i} is in no generation");
            }
        }
        m.count = self.heap.gc_count();
        if alloc_ok {
            m.count[0] -= 1; // the allocation that follows the step
        }
        m.stats[1].0 += 1;
        m.stats[1].1 += collected;
        m.steps += 1;
    }

    /// Handles to every object reachable from the roots, the graveyard and
    /// the generation lists, by id.
    fn handles(&self) -> HashMap<u32, Handle> {
        let mut found: HashMap<u32, Handle> = HashMap::new();
        let mut stack: Vec<Handle> = self.roots.clone();
        stack.extend(GRAVEYARD.with(|g| g.borrow().clone()));
        for any in self.heap.objects(None).unwrap() {
            if let Some(node) = any.downcast::<Node>() {
                stack.push(Handle::N(node));
            } else if let Some(node) = any.downcast::<FNode>() {
                stack.push(Handle::F(node));
            }
        }
        while let Some(h) = stack.pop() {
            let id = h.id();
            if found.contains_key(&id) {
                continue;
            }
            if let Some(edges) = h.edges() {
                stack.extend(edges.borrow().iter().cloned());
            }
            found.insert(id, h);
        }
        found
    }

    /// Compares the real heap with the model (see the module docs).
    pub fn check(&mut self) {
        let at = self.at();
        let (drops, finals, fired, callbacks, violations) = TRACK.with(|t| {
            let mut t = t.borrow_mut();
            let callbacks = std::mem::take(&mut t.callbacks);
            let violations = std::mem::take(&mut t.violations);
            (
                t.drops.clone(),
                t.finals.clone(),
                t.fired.clone(),
                callbacks,
                violations,
            )
        });
        assert!(violations.is_empty(), "{at}: {violations:#?}");
        let m = &mut self.model;
        assert_eq!(drops.len(), m.objs.len());
        for (i, o) in m.objs.iter().enumerate() {
            let dropped = u8::from(!o.alive);
            assert_eq!(drops[i], dropped, "{at}: object {i} ({:?}) drops", o.kind);
            assert_eq!(
                finals[i],
                u8::from(o.finalized),
                "{at}: object {i} ({:?}) finalizer runs",
                o.kind
            );
        }
        // Callbacks: resolve the ambiguous ones, compare the rest.
        for (wid, w) in m.weaks.iter_mut().enumerate() {
            let ran = fired[wid];
            match w.cb {
                Cb::FiredOrNot => w.cb = if ran == 1 { Cb::Fired } else { Cb::Dead },
                Cb::Fired => assert_eq!(ran, 1, "{at}: the callback of weak {wid} ({w:?}) should have run once"),
                _ => assert_eq!(ran, 0, "{at}: the callback of weak {wid} ({w:?}) should not have run"),
            }
        }
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &(target, wid) in &callbacks {
            assert_eq!(
                m.weaks[wid as usize].target, target,
                "{at}: callback of weak {wid}'s target"
            );
            if let Some(previous) = last.insert(target, wid) {
                assert!(
                    wid < previous,
                    "{at}: callbacks of {target} not newest first: {callbacks:?}"
                );
            }
        }
        let m = &self.model;
        assert_eq!(self.heap.object_count(), m.live(), "{at}: object_count");
        let mut graveyard = graveyard_ids();
        let mut expected = m.graveyard.clone();
        graveyard.sort_unstable();
        expected.sort_unstable();
        assert_eq!(graveyard, expected, "{at}: graveyard");
        let roots: Vec<u32> = self.roots.iter().map(Handle::id).collect();
        assert_eq!(roots, m.roots, "{at}: roots");
        assert_eq!(self.weaks.len(), m.hweaks.len());
        // Every live object is referenced and points to live objects only.
        let counts = m.counts();
        for (i, o) in m.objs.iter().enumerate().filter(|(_, o)| o.alive) {
            assert!(counts[i] > 0, "{at}: object {i} is alive but unreferenced");
            for &e in &o.edges {
                assert!(m.objs[e as usize].alive, "{at}: live {i} points to dropped {e}");
            }
        }
        // Every object we can reach: count, edges, held weak references.
        let handles = self.handles();
        for (&id, h) in &handles {
            let o = &m.objs[id as usize];
            assert!(o.alive, "{at}: dropped object {id} is reachable");
            assert_eq!(h.strong_count(), counts[id as usize] + 1, "{at}: strong count of {id}");
            assert_eq!(h.weak_count(), m.weak_count(id), "{at}: weak count of {id}");
            if let Some(edges) = h.edges() {
                let edges: Vec<u32> = edges.borrow().iter().map(Handle::id).collect();
                assert_eq!(edges, o.edges, "{at}: edges of {id}");
                let held = h.held().unwrap().borrow();
                let wids: Vec<u32> = held.iter().map(|w| w.wid).collect();
                assert_eq!(wids, o.held, "{at}: weak references held by {id}");
                for w in held.iter() {
                    self.check_weak(&w.weak, w.wid, &counts, &handles);
                }
            }
        }
        for (w, &wid) in self.weaks.iter().zip(&m.hweaks) {
            self.check_weak(w, wid, &counts, &handles);
        }
        drop(handles);
        // Generations and counters.
        for g in 0..3 {
            let mut ids: Vec<u32> = self.heap.objects(Some(g)).unwrap().iter().map(any_id).collect();
            ids.sort_unstable();
            assert_eq!(ids, m.generation(g), "{at}: members of generation {g}");
        }
        assert_eq!(
            self.heap.freeze_count(),
            m.generation(FROZEN).len(),
            "{at}: freeze_count"
        );
        assert_eq!(self.heap.gc_count(), m.count, "{at}: gc_count");
        let stats = self.heap.gc_stats();
        for g in 0..3 {
            assert_eq!(
                (stats[g].collections, stats[g].collected),
                m.stats[g],
                "{at}: gc_stats of generation {g}"
            );
        }
        assert_eq!(self.heap.threshold(), m.threshold, "{at}: threshold");
        assert_eq!(self.heap.is_enabled(), m.enabled, "{at}: is_enabled");
    }

    fn check_weak(&self, weak: &WeakHandle, wid: u32, counts: &[usize], handles: &HashMap<u32, Handle>) {
        let at = self.at();
        let w = &self.model.weaks[wid as usize];
        assert!(w.alive, "{at}: weak {wid} should be gone");
        if w.cleared {
            assert_eq!(weak.strong_count(), 0, "{at}: Weak::strong_count of cleared weak {wid}");
            assert_eq!(weak.weak_count(), 0, "{at}: Weak::weak_count of cleared weak {wid}");
        } else {
            // `handles` holds a clone of every object it found.
            let extra = usize::from(handles.contains_key(&w.target));
            assert_eq!(
                weak.strong_count(),
                counts[w.target as usize] + extra,
                "{at}: Weak::strong_count of weak {wid}"
            );
            assert_eq!(
                weak.weak_count(),
                self.model.weak_count(w.target),
                "{at}: Weak::weak_count of {wid}"
            );
        }
        let has = !matches!(w.cb, Cb::None | Cb::Fired);
        assert_eq!(weak.has_callback(), has, "{at}: has_callback of weak {wid} ({w:?})");
    }

    /// After a full collection: the live set is exactly what the roots, the
    /// graveyard and the frozen objects reach.
    fn check_full_collection(&self) {
        let m = &self.model;
        let seeds = m.roots.iter().chain(&m.graveyard).copied().chain(m.generation(FROZEN));
        let reachable = m.reach(seeds);
        for (i, o) in m.objs.iter().enumerate() {
            assert_eq!(
                o.alive,
                reachable[i],
                "{}: after a full collection object {i} alive={} reachable={}",
                self.at(),
                o.alive,
                reachable[i]
            );
        }
    }

    fn collect(&mut self, g: usize) {
        Self::take_gc_log();
        let found = if g == 2 {
            self.heap.collect()
        } else {
            self.heap.collect_generation(g).unwrap()
        };
        let log = Self::take_gc_log();
        let expected = self.model.collect(g);
        let at = self.at();
        assert_eq!(found, expected, "{at}: collect_generation({g}) found");
        assert_eq!(log, [(g, found)], "{at}: collections logged");
        if g == 2 {
            self.check_full_collection();
        }
    }

    /// Runs one operation on both sides, then [`check`](Self::check)s.
    pub fn apply(&mut self, op: Op) {
        self.op = Some(op);
        self.step += 1;
        self.apply_op(op);
        self.check();
    }

    fn apply_op(&mut self, op: Op) {
        match op {
            Op::Alloc { kind, via_enter } => {
                self.alloc(kind, via_enter, false);
            }
            Op::AllocChild { parent, kind } => {
                let Some(p) = self.pick_node(parent) else { return };
                if self.alloc(kind, false, false) {
                    let child = self.roots.pop().unwrap();
                    let cid = self.model.roots.pop().unwrap();
                    self.roots[p].edges().unwrap().borrow_mut().push(child);
                    let pid = self.root_id(p);
                    self.model.objs[pid as usize].edges.push(cid);
                }
            }
            Op::Chain { parent, len, finalizer } => {
                let kind = if finalizer { Kind::FNode } else { Kind::Node };
                let start = match pick(self.roots.len(), parent) {
                    Some(p) if self.model.objs[self.root_id(p) as usize].kind.tracked() => p,
                    Some(_) => return,
                    None if self.alloc(kind, false, false) => 0,
                    None => return,
                };
                // The chain's tail is held as a temporary last root.
                self.roots.push(self.roots[start].clone());
                self.model.roots.push(self.root_id(start));
                for _ in 0..len as usize * 4 {
                    if !self.alloc(kind, false, false) {
                        break;
                    }
                    let next = self.roots.pop().unwrap();
                    let next_id = self.model.roots.pop().unwrap();
                    let tail = self.roots.len() - 1;
                    self.roots[tail].edges().unwrap().borrow_mut().push(next.clone());
                    let tail_id = self.root_id(tail);
                    self.model.objs[tail_id as usize].edges.push(next_id);
                    self.roots[tail] = next;
                    self.model.roots[tail] = next_id;
                }
                drop(self.roots.pop());
                self.model.roots.pop();
                self.model.settle();
            }
            Op::CloneRoot { r } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                self.roots.push(self.roots[r].clone());
                self.model.roots.push(self.root_id(r));
            }
            Op::DropRoot { r } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                drop(self.roots.swap_remove(r));
                self.model.drop_root(r);
            }
            Op::Link { a, b } => {
                let (Some(a), Some(b)) = (self.pick_node(a), pick(self.roots.len(), b)) else {
                    return;
                };
                let to = self.roots[b].clone();
                self.roots[a].edges().unwrap().borrow_mut().push(to);
                let (aid, bid) = (self.root_id(a), self.root_id(b));
                self.model.objs[aid as usize].edges.push(bid);
            }
            Op::Unlink { a, e } => {
                let Some(a) = self.pick_node(a) else { return };
                let aid = self.root_id(a);
                let Some(e) = pick(self.model.objs[aid as usize].edges.len(), e) else {
                    return;
                };
                let old = self.roots[a].edges().unwrap().borrow_mut().remove(e);
                drop(old);
                self.model.remove_edge(aid, e);
            }
            Op::ReplaceEdge { a, e, b } => {
                let (Some(a), Some(b)) = (self.pick_node(a), pick(self.roots.len(), b)) else {
                    return;
                };
                let (aid, bid) = (self.root_id(a), self.root_id(b));
                let Some(e) = pick(self.model.objs[aid as usize].edges.len(), e) else {
                    return;
                };
                let new = self.roots[b].clone();
                let old = std::mem::replace(&mut self.roots[a].edges().unwrap().borrow_mut()[e], new);
                drop(old);
                self.model.replace_edge(aid, e, bid);
            }
            Op::Follow { a, e } => {
                let Some(a) = self.pick_node(a) else { return };
                let aid = self.root_id(a);
                let Some(e) = pick(self.model.objs[aid as usize].edges.len(), e) else {
                    return;
                };
                let target = self.roots[a].edges().unwrap().borrow()[e].clone();
                self.roots.push(target);
                let tid = self.model.objs[aid as usize].edges[e];
                self.model.roots.push(tid);
            }
            Op::Downgrade { r, holder, callback } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                if self.model.weaks.len() >= MAX_WEAKS {
                    return;
                }
                let holder = holder.and_then(|h| self.pick_node(h));
                let tid = self.root_id(r);
                let wid = self.model.weaks.len() as u32;
                track(|t| t.fired.push(0));
                let had_slot = self.model.weak_count(tid) > 0;
                match self.roots[r].downgrade(wid, callback) {
                    Ok(weak) => {
                        let hid = holder.map(|h| self.root_id(h));
                        match holder {
                            Some(h) => self.roots[h].held().unwrap().borrow_mut().push(HeldWeak { wid, weak }),
                            None => self.weaks.push(weak),
                        }
                        self.model.add_weak(tid, hid, callback, true);
                    }
                    Err(err) => {
                        assert!(
                            !had_slot,
                            "{}: downgrade allocated although a weak record exists",
                            self.at()
                        );
                        self.alloc_error(err);
                        self.model.add_weak(tid, None, callback, false);
                    }
                }
            }
            Op::Upgrade { w } => {
                let Some(w) = pick(self.weaks.len(), w) else { return };
                let wid = self.model.hweaks[w];
                let upgraded = self.weaks[w].upgrade();
                self.upgraded(wid, upgraded);
            }
            Op::UpgradeHeld { a, i } => {
                let Some(a) = self.pick_node(a) else { return };
                let aid = self.root_id(a);
                let Some(i) = pick(self.model.objs[aid as usize].held.len(), i) else {
                    return;
                };
                let wid = self.model.objs[aid as usize].held[i];
                let upgraded = self.roots[a].held().unwrap().borrow()[i].weak.upgrade();
                self.upgraded(wid, upgraded);
            }
            Op::DropWeak { w } => {
                let Some(w) = pick(self.weaks.len(), w) else { return };
                drop(self.weaks.swap_remove(w));
                self.model.drop_harness_weak(w);
            }
            Op::DropHeldWeak { a, i } => {
                let Some(a) = self.pick_node(a) else { return };
                let aid = self.root_id(a);
                let Some(i) = pick(self.model.objs[aid as usize].held.len(), i) else {
                    return;
                };
                let weak = self.roots[a].held().unwrap().borrow_mut().remove(i);
                drop(weak);
                self.model.drop_held_weak(aid, i);
            }
            Op::CollectGeneration { g } => self.collect(g as usize % 3),
            Op::CollectAll => self.collect(2),
            Op::Checkpoint => {
                Self::take_gc_log();
                assert_eq!(self.heap.checkpoint(), 0, "{}: checkpoint collected", self.at());
                assert!(Self::take_gc_log().is_empty());
            }
            Op::Freeze => {
                self.heap.freeze();
                self.model.freeze();
            }
            Op::Unfreeze => {
                self.heap.unfreeze();
                self.model.unfreeze();
            }
            Op::SetThreshold { t0, t1, t2 } => {
                let threshold = [t0 as usize % 32, t1 as usize % 8, t2 as usize % 8];
                self.heap.set_threshold(threshold);
                self.model.threshold = threshold;
            }
            Op::Enable => {
                self.heap.enable();
                self.model.enabled = true;
            }
            Op::Disable => {
                self.heap.disable();
                self.model.enabled = false;
            }
            Op::SetPolicy { kind, work } => {
                self.model.policy = match kind % 3 {
                    0 => {
                        self.heap.set_policy(Generational);
                        Policy::Generational
                    }
                    1 => {
                        self.heap.set_policy(Manual);
                        Policy::Manual
                    }
                    _ => {
                        let policy = Incremental::new(1 + work as usize % 64).with_scan_ratio(1 + (work as usize >> 6));
                        self.heap.set_policy(policy);
                        Policy::Incremental
                    }
                };
            }
            Op::SetLimit { slack } => {
                let limit = self.heap.bytes_in_use() + slack as usize * 8;
                self.heap.set_limit(Some(limit));
                self.limit = Some(limit);
            }
            Op::ClearLimit => {
                self.heap.set_limit(None);
                self.limit = None;
            }
            Op::TryAllocBeyondLimit { kind } => {
                let limit = self.heap.bytes_in_use();
                self.heap.set_limit(Some(limit));
                self.limit = Some(limit);
                self.alloc(kind, false, true);
            }
            Op::Resurrect { r, on } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                let id = self.root_id(r);
                track(|t| t.resurrect[id as usize] = on);
                self.model.objs[id as usize].resurrect = on;
            }
            Op::ClearGraveyard => {
                clear_graveyard();
                self.model.clear_graveyard();
            }
            Op::Introspect { r } => {
                let Some(r) = pick(self.roots.len(), r) else { return };
                self.introspect(r);
            }
        }
    }

    fn upgraded(&mut self, wid: u32, upgraded: Option<Handle>) {
        let at = self.at();
        let w = &self.model.weaks[wid as usize];
        match upgraded {
            Some(handle) => {
                assert!(!w.cleared, "{at}: cleared weak {wid} upgraded");
                assert_eq!(handle.id(), w.target, "{at}: weak {wid} upgraded to the wrong object");
                self.model.roots.push(w.target);
                self.roots.push(handle);
            }
            None => assert!(w.cleared, "{at}: weak {wid} to a live object ({w:?}) failed to upgrade"),
        }
    }

    fn introspect(&self, r: usize) {
        let at = self.at();
        let m = &self.model;
        let h = &self.roots[r];
        let id = self.root_id(r);
        let o = &m.objs[id as usize];
        let mut referents: Vec<u32> = h.referents(&self.heap).iter().map(any_id).collect();
        let mut expected: Vec<u32> = o
            .edges
            .iter()
            .copied()
            .filter(|&e| m.objs[e as usize].kind.tracked())
            .collect();
        referents.sort_unstable();
        expected.sort_unstable();
        assert_eq!(referents, expected, "{at}: referents of {id}");
        let mut referrers: Vec<u32> = h.referrers(&self.heap).iter().map(any_id).collect();
        referrers.sort_unstable();
        let expected: Vec<u32> = (0..m.objs.len() as u32)
            .filter(|&i| {
                let x = &m.objs[i as usize];
                x.alive && x.kind.tracked() && x.gen != FROZEN && x.edges.contains(&id)
            })
            .collect();
        assert_eq!(referrers, expected, "{at}: referrers of {id}");
        assert_eq!(
            h.is_tracked(&self.heap),
            o.kind.tracked() && o.gen != FROZEN,
            "{at}: is_tracked({id})"
        );
        assert_eq!(
            h.is_finalized(&self.heap),
            o.kind.tracked() && o.finalized,
            "{at}: is_finalized({id})"
        );
        let tracked = (0..3).map(|g| m.generation(g).len()).sum::<usize>();
        assert_eq!(self.heap.objects(None).unwrap().len(), tracked, "{at}: objects(None)");
    }

    /// Drops everything, collects, empties the graveyard until nothing
    /// resurrects, and checks every object was dropped exactly once.
    pub fn finish(mut self) {
        self.op = None;
        self.heap.unfreeze();
        self.model.unfreeze();
        self.heap.set_limit(None);
        self.limit = None;
        self.weaks.clear();
        for i in (0..self.model.hweaks.len()).rev() {
            self.model.drop_harness_weak(i);
        }
        self.roots.clear();
        self.model.roots.clear();
        self.model.settle();
        self.check();
        self.collect(2);
        self.check();
        let mut rounds = 0;
        while !self.model.graveyard.is_empty() {
            rounds += 1;
            assert!(rounds <= self.model.objs.len(), "objects keep resurrecting");
            clear_graveyard();
            self.model.clear_graveyard();
            self.check();
            self.collect(2);
            self.check();
        }
        assert_eq!(self.heap.object_count(), 0, "objects left at the end");
        assert_eq!(self.heap.bytes_in_use(), 0, "bytes left at the end");
        let (drops, finals) = TRACK.with(|t| {
            let t = t.borrow();
            (t.drops.clone(), t.finals.clone())
        });
        for (i, o) in self.model.objs.iter().enumerate() {
            assert_eq!(drops[i], 1, "object {i} dropped {} times by the end", drops[i]);
            let finalized = o.allocated && o.kind.finalizer();
            assert_eq!(
                finals[i],
                u8::from(finalized),
                "object {i} ({:?}) finalizer runs by the end",
                o.kind
            );
        }
    }
}
