//! Fuzzes `Weak` semantics against an exact model.
//!
//! Objects are leaves (`Leaf`, never tracked, 8-byte header) or tracked
//! (`Tracked`, which may link to other tracked objects, cycles included, and
//! hold weak references itself). Operations allocate, clone and drop strong
//! handles, link and unlink, downgrade (weak held by the harness or inside a
//! tracked object), clone/upgrade/drop weak references, compare them with
//! `ptr_eq`, collect, and set a byte limit. Automatic collection is off, so
//! the model knows exactly when each object dies:
//!
//! * an upgrade succeeds iff the object is alive (a strong handle or, for a
//!   cycle not yet collected, a link keeps it);
//! * `Gc::strong_count`, `Gc::weak_count`, `Weak::strong_count`,
//!   `Weak::weak_count` and `Weak::ptr_eq` match the model;
//! * `object_count()` and `bytes_in_use()` (objects plus one side record per
//!   object with weak references, kept while a weak reference to it exists) match the model;
//! * allocations and downgrades fail exactly when the model says the limit
//!   is exceeded, and then nothing changes;
//! * every object is dropped exactly once, when the model says it dies.
#![no_main]
// Parallel per-id vectors read best with index loops.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rcgc::collect::Manual;
use rcgc::{Gc, Heap, Trace, Weak};

const MAX_OBJECTS: usize = 2048;

/// Bytes of the side record the first weak reference to an object
/// allocates (measured once on a scratch heap: the record's layout is an
/// implementation detail).
fn weak_slot_bytes() -> usize {
    thread_local! {
        static BYTES: usize = {
            let heap = Heap::new();
            let object = heap.alloc(0u64);
            let before = heap.bytes_in_use();
            let weak = Gc::downgrade(&object);
            let bytes = heap.bytes_in_use() - before;
            drop(weak);
            assert_eq!(heap.bytes_in_use(), before, "dropping the only weak reference frees its record");
            bytes
        };
    }
    BYTES.with(|b| *b)
}

thread_local! {
    static DROPS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn record_drop(id: u32) {
    DROPS.with(|d| d.borrow_mut()[id as usize] += 1);
}

#[derive(Trace)]
struct Leaf {
    id: u32,
}

impl Drop for Leaf {
    fn drop(&mut self) {
        record_drop(self.id);
    }
}

#[derive(Trace)]
struct Tracked {
    id: u32,
    links: RefCell<Vec<Gc<Tracked>>>,
    held: RefCell<Vec<AnyWeak>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        record_drop(self.id);
    }
}

#[derive(Trace)]
enum AnyWeak {
    Leaf(Weak<Leaf>),
    Tracked(Weak<Tracked>),
}

impl Clone for AnyWeak {
    fn clone(&self) -> Self {
        match self {
            AnyWeak::Leaf(w) => AnyWeak::Leaf(w.clone()),
            AnyWeak::Tracked(w) => AnyWeak::Tracked(w.clone()),
        }
    }
}

impl AnyWeak {
    fn strong_count(&self) -> usize {
        match self {
            AnyWeak::Leaf(w) => w.strong_count(),
            AnyWeak::Tracked(w) => w.strong_count(),
        }
    }
    fn weak_count(&self) -> usize {
        match self {
            AnyWeak::Leaf(w) => w.weak_count(),
            AnyWeak::Tracked(w) => w.weak_count(),
        }
    }
    fn upgrade(&self) -> Option<Strong> {
        match self {
            AnyWeak::Leaf(w) => w.upgrade().map(Strong::Leaf),
            AnyWeak::Tracked(w) => w.upgrade().map(Strong::Tracked),
        }
    }
    fn ptr_eq(&self, other: &AnyWeak) -> Option<bool> {
        match (self, other) {
            (AnyWeak::Leaf(a), AnyWeak::Leaf(b)) => Some(a.ptr_eq(b)),
            (AnyWeak::Tracked(a), AnyWeak::Tracked(b)) => Some(a.ptr_eq(b)),
            _ => None,
        }
    }
}

#[derive(Clone)]
enum Strong {
    Leaf(Gc<Leaf>),
    Tracked(Gc<Tracked>),
}

impl Strong {
    fn id(&self) -> u32 {
        match self {
            Strong::Leaf(g) => g.id,
            Strong::Tracked(g) => g.id,
        }
    }
    fn strong_count(&self) -> usize {
        match self {
            Strong::Leaf(g) => Gc::strong_count(g),
            Strong::Tracked(g) => Gc::strong_count(g),
        }
    }
    fn weak_count(&self) -> usize {
        match self {
            Strong::Leaf(g) => Gc::weak_count(g),
            Strong::Tracked(g) => Gc::weak_count(g),
        }
    }
    fn size_of(&self) -> usize {
        match self {
            Strong::Leaf(g) => Gc::size_of(g),
            Strong::Tracked(g) => Gc::size_of(g),
        }
    }
    fn try_downgrade(&self) -> Result<AnyWeak, rcgc::alloc::AllocError> {
        match self {
            Strong::Leaf(g) => Gc::try_downgrade(g).map(AnyWeak::Leaf),
            Strong::Tracked(g) => Gc::try_downgrade(g).map(AnyWeak::Tracked),
        }
    }
    fn tracked(&self) -> Option<&Gc<Tracked>> {
        match self {
            Strong::Tracked(g) => Some(g),
            Strong::Leaf(_) => None,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    AllocLeaf,
    AllocTracked,
    CloneStrong {
        i: u8,
    },
    DropStrong {
        i: u8,
    },
    /// Tracked `a` links to tracked `b` (cycles allowed).
    Link {
        a: u8,
        b: u8,
    },
    Unlink {
        a: u8,
        e: u8,
    },
    /// A weak reference to strong `i`, held by the harness or by tracked `holder`.
    Downgrade {
        i: u8,
        holder: Option<u8>,
    },
    /// `Weak::new()`: never upgrades.
    NewEmpty {
        tracked: bool,
    },
    CloneWeak {
        w: u8,
    },
    Upgrade {
        w: u8,
    },
    DropWeak {
        w: u8,
    },
    PtrEq {
        a: u8,
        b: u8,
    },
    UpgradeHeld {
        a: u8,
        i: u8,
    },
    DropHeld {
        a: u8,
        i: u8,
    },
    Collect,
    /// Limit = bytes in use + `slack`.
    SetLimit {
        slack: u8,
    },
    ClearLimit,
}

/// A weak reference in the model: its target and its side record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct WeakRec {
    /// `None` for `Weak::new()`.
    slot: Option<usize>,
}

struct SlotModel {
    target: u32,
    /// Weak references pointing here.
    weak: usize,
    /// Whether the target still lives (cleared when it dies).
    target_alive: bool,
}

struct ObjModel {
    tracked: bool,
    allocated: bool,
    alive: bool,
    links: Vec<u32>,
    held: Vec<WeakRec>,
    /// The object's current side record (while it lives and has weak references).
    slot: Option<usize>,
    size: usize,
}

struct Harness {
    heap: Heap,
    strongs: Vec<Strong>,
    weaks: Vec<(WeakRec, AnyWeak)>,
    objs: Vec<ObjModel>,
    slots: Vec<SlotModel>,
    limit: Option<usize>,
}

fn pick(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| i as usize % len)
}

impl Harness {
    fn new() -> Self {
        let heap = Heap::new();
        heap.disable();
        heap.set_policy(Manual);
        Harness {
            heap,
            strongs: Vec::new(),
            weaks: Vec::new(),
            objs: Vec::new(),
            slots: Vec::new(),
            limit: None,
        }
    }

    fn model_bytes(&self) -> usize {
        let objects: usize = self.objs.iter().filter(|o| o.alive).map(|o| o.size).sum();
        objects + weak_slot_bytes() * self.slots.iter().filter(|s| s.weak > 0).count()
    }

    fn fits(&self, bytes: usize) -> bool {
        self.limit.is_none_or(|limit| self.model_bytes() + bytes <= limit)
    }

    /// Strong references per object: harness handles plus links from live objects.
    fn counts(&self) -> Vec<usize> {
        let mut count = vec![0; self.objs.len()];
        for s in &self.strongs {
            count[s.id() as usize] += 1;
        }
        for o in self.objs.iter().filter(|o| o.alive) {
            for &l in &o.links {
                count[l as usize] += 1;
            }
        }
        count
    }

    fn weak_added(&mut self, rec: WeakRec) {
        if let Some(s) = rec.slot {
            self.slots[s].weak += 1;
        }
    }

    fn weak_dropped(&mut self, rec: WeakRec) {
        let Some(s) = rec.slot else { return };
        let slot = &mut self.slots[s];
        slot.weak -= 1;
        if slot.weak == 0 && slot.target_alive {
            // The object lives on without weak references: a later
            // downgrade makes a new record.
            let target = slot.target as usize;
            slot.target_alive = false;
            self.objs[target].slot = None;
        }
    }

    fn kill(&mut self, id: usize) {
        let o = &mut self.objs[id];
        o.alive = false;
        o.links.clear();
        let held = std::mem::take(&mut o.held);
        if let Some(s) = o.slot.take() {
            self.slots[s].target_alive = false;
        }
        for rec in held {
            self.weak_dropped(rec);
        }
    }

    /// Reference counting: objects nothing refers to die, transitively.
    fn settle(&mut self) {
        loop {
            let count = self.counts();
            let dying: Vec<usize> = (0..self.objs.len())
                .filter(|&i| self.objs[i].alive && count[i] == 0)
                .collect();
            if dying.is_empty() {
                return;
            }
            for id in dying {
                self.kill(id);
            }
        }
    }

    /// A full collection: what the harness handles do not reach dies.
    fn collect_model(&mut self) {
        let mut seen = vec![false; self.objs.len()];
        let mut stack: Vec<u32> = self.strongs.iter().map(Strong::id).collect();
        while let Some(x) = stack.pop() {
            if !std::mem::replace(&mut seen[x as usize], true) {
                stack.extend(self.objs[x as usize].links.iter().copied());
            }
        }
        for id in 0..self.objs.len() {
            if self.objs[id].alive && !seen[id] {
                self.kill(id);
            }
        }
    }

    fn check(&self) {
        let drops = DROPS.with(|d| d.borrow().clone());
        let count = self.counts();
        let mut live = 0;
        for (i, o) in self.objs.iter().enumerate() {
            let expected = u8::from(!o.alive);
            assert_eq!(
                drops[i], expected,
                "object {i}: dropped {} times, model alive={}",
                drops[i], o.alive
            );
            live += usize::from(o.alive);
            if o.alive {
                assert!(count[i] > 0, "model keeps object {i} alive with no reference");
            }
        }
        assert_eq!(self.heap.object_count(), live, "object_count");
        assert_eq!(
            self.heap.bytes_in_use(),
            self.model_bytes(),
            "bytes_in_use (objects + weak records)"
        );
        for s in &self.strongs {
            let id = s.id() as usize;
            let o = &self.objs[id];
            assert!(o.alive);
            assert_eq!(s.strong_count(), count[id], "Gc::strong_count of object {id}");
            let weak = o.slot.map_or(0, |slot| self.slots[slot].weak);
            assert_eq!(s.weak_count(), weak, "Gc::weak_count of object {id}");
            if let Some(t) = s.tracked() {
                let links: Vec<u32> = t.links.borrow().iter().map(|l| l.id).collect();
                assert_eq!(links, o.links, "links of object {id}");
                assert_eq!(t.held.borrow().len(), o.held.len());
            }
        }
        for (rec, weak) in &self.weaks {
            let (strong, weak_count) = match rec.slot {
                Some(s) if self.slots[s].target_alive => {
                    let slot = &self.slots[s];
                    (count[slot.target as usize], slot.weak)
                }
                _ => (0, 0),
            };
            assert_eq!(weak.strong_count(), strong, "Weak::strong_count ({rec:?})");
            assert_eq!(weak.weak_count(), weak_count, "Weak::weak_count ({rec:?})");
        }
    }

    fn upgrade(&mut self, rec: WeakRec, weak: &AnyWeak) {
        let expected = rec
            .slot
            .filter(|&s| self.slots[s].target_alive)
            .map(|s| self.slots[s].target);
        match (weak.upgrade(), expected) {
            (Some(strong), Some(target)) => {
                assert_eq!(strong.id(), target, "upgrade gave the wrong object");
                self.strongs.push(strong);
            }
            (None, None) => {}
            (Some(strong), None) => panic!(
                "weak reference upgraded to object {} the model says is dead",
                strong.id()
            ),
            (None, Some(target)) => panic!("weak reference to live object {target} failed to upgrade"),
        }
    }

    fn alloc(&mut self, tracked: bool) {
        if self.objs.len() >= MAX_OBJECTS {
            return;
        }
        let id = self.objs.len() as u32;
        DROPS.with(|d| d.borrow_mut().push(0));
        let result = if tracked {
            self.heap
                .try_alloc(Tracked {
                    id,
                    links: RefCell::new(Vec::new()),
                    held: RefCell::new(Vec::new()),
                })
                .map(Strong::Tracked)
        } else {
            self.heap.try_alloc(Leaf { id }).map(Strong::Leaf)
        };
        // The size of this kind of object, from an earlier one or this one.
        let size = self
            .objs
            .iter()
            .find(|o| o.tracked == tracked && o.allocated)
            .map(|o| o.size);
        let mut obj = ObjModel {
            tracked,
            allocated: false,
            alive: false,
            links: Vec::new(),
            held: Vec::new(),
            slot: None,
            size: size.unwrap_or(0),
        };
        match result {
            Ok(strong) => {
                let actual = strong.size_of();
                if let Some(size) = size {
                    assert_eq!(actual, size);
                    assert!(self.fits(size), "allocation succeeded past the limit");
                }
                obj.size = actual;
                obj.allocated = true;
                obj.alive = true;
                self.strongs.push(strong);
            }
            Err(err) => {
                assert!(self.limit.is_some(), "allocation failed without a limit: {err}");
                if let Some(size) = size {
                    assert!(!self.fits(size), "allocation failed within the limit: {err}");
                }
                // The value was dropped (once): the model records a dead object.
                let dropped = DROPS.with(|d| d.borrow()[id as usize]);
                assert_eq!(dropped, 1, "the value of a failed try_alloc was not dropped once");
            }
        }
        self.objs.push(obj);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::AllocLeaf => self.alloc(false),
            Op::AllocTracked => self.alloc(true),
            Op::CloneStrong { i } => {
                let Some(i) = pick(self.strongs.len(), i) else { return };
                let clone = self.strongs[i].clone();
                self.strongs.push(clone);
            }
            Op::DropStrong { i } => {
                let Some(i) = pick(self.strongs.len(), i) else { return };
                let strong = self.strongs.swap_remove(i);
                drop(strong);
                self.settle();
            }
            Op::Link { a, b } => {
                let tracked: Vec<&Gc<Tracked>> = self.strongs.iter().filter_map(Strong::tracked).collect();
                let (Some(a), Some(b)) = (pick(tracked.len(), a), pick(tracked.len(), b)) else {
                    return;
                };
                let (from, to) = (tracked[a].clone(), tracked[b].clone());
                self.objs[from.id as usize].links.push(to.id);
                from.links.borrow_mut().push(to);
            }
            Op::Unlink { a, e } => {
                let tracked: Vec<&Gc<Tracked>> = self.strongs.iter().filter_map(Strong::tracked).collect();
                let Some(a) = pick(tracked.len(), a) else { return };
                let from = tracked[a].clone();
                let links = &mut self.objs[from.id as usize].links;
                let Some(e) = pick(links.len(), e) else { return };
                links.remove(e);
                let old = from.links.borrow_mut().remove(e);
                drop(old);
                self.settle();
            }
            Op::Downgrade { i, holder } => {
                let Some(i) = pick(self.strongs.len(), i) else { return };
                let target = self.strongs[i].clone();
                let id = target.id() as usize;
                let needs_record = self.objs[id].slot.is_none();
                let fits = !needs_record || self.fits(weak_slot_bytes());
                let weak = match target.try_downgrade() {
                    Ok(weak) => {
                        assert!(fits, "downgrade succeeded past the limit");
                        weak
                    }
                    Err(err) => {
                        assert!(!fits, "downgrade failed within the limit: {err}");
                        return;
                    }
                };
                let slot = match self.objs[id].slot {
                    Some(slot) => slot,
                    None => {
                        self.slots.push(SlotModel {
                            target: id as u32,
                            weak: 0,
                            target_alive: true,
                        });
                        let slot = self.slots.len() - 1;
                        self.objs[id].slot = Some(slot);
                        slot
                    }
                };
                let rec = WeakRec { slot: Some(slot) };
                self.weak_added(rec);
                let holder = holder.and_then(|h| {
                    let tracked: Vec<&Gc<Tracked>> = self.strongs.iter().filter_map(Strong::tracked).collect();
                    pick(tracked.len(), h).map(|h| tracked[h].clone())
                });
                match holder {
                    Some(holder) => {
                        self.objs[holder.id as usize].held.push(rec);
                        holder.held.borrow_mut().push(weak);
                    }
                    None => self.weaks.push((rec, weak)),
                }
            }
            Op::NewEmpty { tracked } => {
                let weak = if tracked {
                    AnyWeak::Tracked(Weak::new())
                } else {
                    AnyWeak::Leaf(Weak::new())
                };
                self.weaks.push((WeakRec { slot: None }, weak));
            }
            Op::CloneWeak { w } => {
                let Some(w) = pick(self.weaks.len(), w) else { return };
                let (rec, weak) = (self.weaks[w].0, self.weaks[w].1.clone());
                self.weak_added(rec);
                self.weaks.push((rec, weak));
            }
            Op::Upgrade { w } => {
                let Some(w) = pick(self.weaks.len(), w) else { return };
                let (rec, weak) = (self.weaks[w].0, self.weaks[w].1.clone());
                self.weak_added(rec);
                self.upgrade(rec, &weak);
                drop(weak);
                self.weak_dropped(rec);
            }
            Op::DropWeak { w } => {
                let Some(w) = pick(self.weaks.len(), w) else { return };
                let (rec, weak) = self.weaks.swap_remove(w);
                drop(weak);
                self.weak_dropped(rec);
            }
            Op::PtrEq { a, b } => {
                let (Some(a), Some(b)) = (pick(self.weaks.len(), a), pick(self.weaks.len(), b)) else {
                    return;
                };
                let ((ra, wa), (rb, wb)) = (&self.weaks[a], &self.weaks[b]);
                if let Some(eq) = wa.ptr_eq(wb) {
                    assert_eq!(eq, ra.slot == rb.slot, "Weak::ptr_eq of {ra:?} and {rb:?}");
                }
            }
            Op::UpgradeHeld { a, i } => {
                let tracked: Vec<&Gc<Tracked>> = self.strongs.iter().filter_map(Strong::tracked).collect();
                let Some(a) = pick(tracked.len(), a) else { return };
                let holder = tracked[a].clone();
                let held = &self.objs[holder.id as usize].held;
                let Some(i) = pick(held.len(), i) else { return };
                let rec = held[i];
                let weak = holder.held.borrow()[i].clone();
                self.weak_added(rec);
                self.upgrade(rec, &weak);
                drop(weak);
                self.weak_dropped(rec);
            }
            Op::DropHeld { a, i } => {
                let tracked: Vec<&Gc<Tracked>> = self.strongs.iter().filter_map(Strong::tracked).collect();
                let Some(a) = pick(tracked.len(), a) else { return };
                let holder = tracked[a].clone();
                let held = &mut self.objs[holder.id as usize].held;
                let Some(i) = pick(held.len(), i) else { return };
                let rec = held.remove(i);
                let weak = holder.held.borrow_mut().remove(i);
                drop(weak);
                self.weak_dropped(rec);
            }
            Op::Collect => {
                let before = self.heap.object_count();
                let found = self.heap.collect();
                self.collect_model();
                let after = self.objs.iter().filter(|o| o.alive).count();
                assert_eq!(found, before - after, "collect() return value");
            }
            Op::SetLimit { slack } => {
                let limit = self.heap.bytes_in_use() + slack as usize;
                self.heap.set_limit(Some(limit));
                self.limit = Some(limit);
            }
            Op::ClearLimit => {
                self.heap.set_limit(None);
                self.limit = None;
            }
        }
    }

    fn finish(mut self) {
        for (rec, weak) in std::mem::take(&mut self.weaks) {
            drop(weak);
            self.weak_dropped(rec);
        }
        drop(std::mem::take(&mut self.strongs));
        self.settle();
        self.check();
        self.heap.collect();
        self.collect_model();
        self.check();
        assert_eq!(self.heap.object_count(), 0);
        assert_eq!(self.heap.bytes_in_use(), 0, "weak records or objects left");
    }
}

fuzz_target!(|ops: Vec<Op>| {
    DROPS.with(|d| d.borrow_mut().clear());
    let mut harness = Harness::new();
    for op in ops {
        harness.apply(op);
        harness.check();
    }
    harness.finish();
});
