//! The reference model of the weak collections, shared by
//! `tests/weak_collections_model.rs` (proptest) and the cargo-fuzz target
//! `fuzz/fuzz_targets/weak_dict.rs` (which includes this file with
//! `#[path]`). It is a module, not a test target of its own.
//!
//! # What is modelled
//!
//! A `WeakValueDictionary<Key, Obj>`, a `WeakKeyDictionary<Obj, Value>` and
//! a `WeakSet<Obj>`, all three over the same objects at once, against a
//! `HashMap<key, object>`, a `HashMap<object, value>` and a
//! `HashSet<object>`. Objects are plain (they die when their root drops) or
//! self-cycles (garbage once their root drops, freed by the next collection,
//! explicit or automatic: thresholds are part of the input). Each object's
//! `Drop` records its death; the models forget an entry once its object is
//! dead. `Key` and `Value` count their live instances.
//!
//! # Operations ([`Op`], [`OP_KINDS`] kinds)
//!
//! Object indexes (`r`) are taken modulo the number of objects created (an
//! object whose root is gone is skipped), keys modulo [`KEYS`] (few, so
//! inserts collide), `which` modulo 3 (0: the value dictionary, 1: the key
//! dictionary, 2: the set).
//!
//! * objects and the collector: `Create` (plain or cyclic), `DropRoot`,
//!   `Collect`, `SetThreshold` (automatic collections, 0: off);
//! * the value dictionary: `VInsert`, `VRemove`, `VGet`, `VGetOrInsert`
//!   (`get_or_insert_with`), `VPop` (`pop_item`);
//! * the key dictionary: `KInsert`, `KRemove`, `KGet`, `KGetOrInsert`, `KPop`;
//! * the set: `SInsert`, `SRemove`, `SContains`, `SPop`;
//! * any of the three: `Retain` (by parity of the object index), `Clear`,
//!   `CloneCompare`, `IterateWhileDying` (a root dropped, or a collection
//!   run, after the `after`-th item);
//! * `ReleaseRemoved` (both dictionaries).
//!
//! # What is checked
//!
//! After every operation ([`Harness::check`]):
//!
//! 1. no object is dropped twice;
//! 2. a rooted object never dies; a plain object dies with its root;
//! 3. a self-cycle dies only in a collection: if none ran during the
//!    operation (`gc_stats`), no object died other than plain ones whose
//!    root dropped; after `Collect`, every object without a root is dead;
//! 4. each collection's `len()` is exactly the number of model entries
//!    whose object lives;
//! 5. `contains_key` of the value dictionary agrees with the model for
//!    every key; `contains_key` of the key dictionary and `contains` of the
//!    set agree for every rooted object;
//! 6. iterating each collection yields no dead object and exactly the
//!    model's live entries (no duplicates), and
//!    `WeakKeyDictionary::values()` yields `len()` values;
//! 7. `Gc::weak_count` of every rooted object is its number of entries in
//!    the three collections (one weak reference per entry);
//! 8. keys and values held by the dictionaries (both with a counting
//!    `Drop`) number at least `len()`.
//!
//! Per operation ([`Harness::apply`]):
//!
//! 9. `insert`, `remove`, `get`, `contains`, `get_or_insert_with`,
//!    `pop_item` / `pop` return what the model says (`pop` on an empty
//!    model finds nothing); `retain` and `clear` leave the model's entries;
//! 10. a clone holds the same entries and has the same `len()`;
//! 11. iteration never yields a dead object even when objects die during it
//!     (their root dropped, or a collection run between two items), and the
//!     collection iterated again afterwards yields exactly `len()` entries
//!     (and the key dictionary's `values()` `len()` values);
//! 12. after `release_removed()` exactly `len()` keys and values are alive.
//!
//! At the end ([`Harness::finish`]), with the collections and roots dropped
//! and a collection run: no object, byte, key or value is left, and every
//! object died.
#![allow(dead_code)] // each includer uses part of it

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use rcgc::{Gc, Heap, Trace, WeakKeyDictionary, WeakSet, WeakValueDictionary};

/// Distinct keys of the value dictionary (few, so inserts collide).
pub const KEYS: u8 = 16;
/// Most objects per run; creations past it are skipped.
pub const MAX_OBJECTS: usize = 512;

thread_local! {
    /// Per object: its `Drop` ran.
    static DEAD: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
    /// Live [`Counted`] instances, per kind.
    static LIVE: [Cell<isize>; 2] = const { [Cell::new(0), Cell::new(0)] };
    static PROBLEMS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Whether object `idx`'s `Drop` ran.
pub fn is_dead(idx: usize) -> bool {
    DEAD.with(|d| d.borrow()[idx])
}

fn dead_objects() -> Vec<bool> {
    DEAD.with(|d| d.borrow().clone())
}

/// The objects, all in one heap.
#[derive(Trace)]
pub struct Obj {
    #[trace(skip)]
    pub idx: usize,
    me: RefCell<Option<Gc<Obj>>>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        // `try_with`/`get_mut`: never panic in a destructor, even one that
        // runs after the next run's `Harness::new` reset the records.
        let _ = DEAD.try_with(|d| {
            if let Some(dead) = d.borrow_mut().get_mut(self.idx) {
                if std::mem::replace(dead, true) {
                    PROBLEMS.with(|p| p.borrow_mut().push(format!("object {} dropped twice", self.idx)));
                }
            }
        });
    }
}

/// A `u8` that counts its live instances, per `KIND`: the value
/// dictionary's keys ([`Key`]) and the key dictionary's values ([`Value`]).
#[derive(Hash, PartialEq, Eq, Debug)]
pub struct Counted<const KIND: usize>(pub u8);

/// A value-dictionary key (below [`KEYS`]).
pub type Key = Counted<0>;
/// A key-dictionary value.
pub type Value = Counted<1>;

impl<const KIND: usize> Counted<KIND> {
    pub fn new(v: u8) -> Self {
        LIVE.with(|n| n[KIND].set(n[KIND].get() + 1));
        Counted(v)
    }

    /// Instances alive.
    pub fn live() -> isize {
        LIVE.with(|n| n[KIND].get())
    }
}

impl<const KIND: usize> Clone for Counted<KIND> {
    fn clone(&self) -> Self {
        Counted::new(self.0)
    }
}

impl<const KIND: usize> Drop for Counted<KIND> {
    fn drop(&mut self) {
        let _ = LIVE.try_with(|n| n[KIND].set(n[KIND].get() - 1));
    }
}

/// Drops each object `objects` yields (none may be dead), then calls `die`
/// with its position.
fn walk(objects: impl Iterator<Item = Gc<Obj>>, die: &mut impl FnMut(usize)) {
    for (n, o) in objects.enumerate() {
        assert!(!is_dead(o.idx), "yielded dead object {} while objects die", o.idx);
        drop(o);
        die(n);
    }
}

/// What the harness reads of each weak collection.
trait Collection: Clone {
    const NAME: &'static str;
    /// (object index, key or value; 0 in the set) per entry, in iteration order.
    fn entries(&self) -> Vec<(usize, u8)>;
    fn size(&self) -> usize;
}

macro_rules! collection {
    ($ty:ty, |$item:pat_param| $entry:expr) => {
        impl Collection for $ty {
            const NAME: &'static str = stringify!($ty);
            fn entries(&self) -> Vec<(usize, u8)> {
                self.iter().map(|$item| $entry).collect()
            }
            fn size(&self) -> usize {
                self.len()
            }
        }
    };
}
collection!(WeakValueDictionary<Key, Obj>, |(k, v)| (v.idx, k.0));
collection!(WeakKeyDictionary<Obj, Value>, |(k, v)| (k.idx, v.0));
collection!(WeakSet<Obj>, |o| (o.idx, 0));

/// The entries of `c`, sorted; none may be dead.
fn yielded<C: Collection>(c: &C) -> Vec<(usize, u8)> {
    let mut out = c.entries();
    for &(idx, _) in &out {
        assert!(!is_dead(idx), "{} yielded dead object {idx}", C::NAME);
    }
    out.sort_unstable();
    out
}

/// A clone of `c` holds the same entries.
fn clone_compare<C: Collection>(c: &C) {
    let original = yielded(c);
    let clone = c.clone();
    assert_eq!(yielded(&clone), original, "a cloned {}", C::NAME);
    assert_eq!(clone.size(), c.size(), "the len() of a cloned {}", C::NAME);
}

/// Which collection an operation applies to (`which % 3`).
fn which(w: u8) -> usize {
    w as usize % 3
}

// ---------------------------------------------------------------------------
// The operation language.
// ---------------------------------------------------------------------------

/// One operation (see the module docs for how indexes are read). The order
/// of the variants is the fuzz input encoding: keep it.
#[derive(arbitrary::Arbitrary, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A new rooted object, a self-cycle if `cyclic`.
    Create {
        cyclic: bool,
    },
    /// Drops the root of object `r`.
    DropRoot {
        r: u8,
    },
    /// `collect()`.
    Collect,
    /// `set_threshold([t0 % 16, 1, 1])`: automatic collections (0: off).
    SetThreshold {
        t0: u8,
    },
    VInsert {
        key: u8,
        r: u8,
    },
    VRemove {
        key: u8,
    },
    VGet {
        key: u8,
    },
    VGetOrInsert {
        key: u8,
        r: u8,
    },
    VPop,
    KInsert {
        r: u8,
        value: u8,
    },
    KRemove {
        r: u8,
    },
    KGet {
        r: u8,
    },
    KGetOrInsert {
        r: u8,
        value: u8,
    },
    KPop,
    SInsert {
        r: u8,
    },
    SRemove {
        r: u8,
    },
    SContains {
        r: u8,
    },
    SPop,
    /// Keeps the entries whose object index has parity `odd`.
    Retain {
        which: u8,
        odd: bool,
    },
    Clear {
        which: u8,
    },
    /// Clones the collection; the clone must hold the same entries.
    CloneCompare {
        which: u8,
    },
    /// Iterates; after `after % 8` items drops root `r`, or collects.
    IterateWhileDying {
        which: u8,
        after: u8,
        r: u8,
        collect: bool,
    },
    ReleaseRemoved,
}

/// Number of `Op` variants.
pub const OP_KINDS: usize = 23;

// ---------------------------------------------------------------------------
// The harness.
// ---------------------------------------------------------------------------

/// The real collections and their models, over one heap.
pub struct Harness {
    pub heap: Heap,
    /// Per object created: its root, until dropped.
    pub roots: Vec<Option<Gc<Obj>>>,
    /// Per object created: a self-cycle.
    pub cyclic: Vec<bool>,
    pub values: WeakValueDictionary<Key, Obj>,
    pub keys: WeakKeyDictionary<Obj, Value>,
    pub set: WeakSet<Obj>,
    /// Models: key -> object, object -> value, objects. Entries whose
    /// object died are dropped from them after each operation.
    pub mv: HashMap<u8, usize>,
    pub mk: HashMap<usize, u8>,
    pub ms: HashSet<usize>,
    /// Objects dead after the last check.
    dead_before: Vec<bool>,
    /// Collections (all generations, `gc_stats`) after the last check.
    collections_before: usize,
    /// The last operation was `Collect`.
    collected: bool,
    /// Objects that died in the middle of an iteration, over the run.
    pub deaths_during_iteration: usize,
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        DEAD.with(|d| d.borrow_mut().clear());
        LIVE.with(|n| n.iter().for_each(|n| n.set(0)));
        PROBLEMS.with(|p| p.borrow_mut().clear());
        Harness {
            heap: Heap::new(),
            roots: Vec::new(),
            cyclic: Vec::new(),
            values: WeakValueDictionary::new(),
            keys: WeakKeyDictionary::new(),
            set: WeakSet::new(),
            mv: HashMap::new(),
            mk: HashMap::new(),
            ms: HashSet::new(),
            dead_before: Vec::new(),
            collections_before: 0,
            collected: false,
            deaths_during_iteration: 0,
        }
    }

    /// Runs `ops`, checking after each, then finishes.
    pub fn run(ops: &[Op]) {
        Harness::run_then(ops, |_| ());
    }

    /// [`Harness::run`], letting `assert` look at the harness before the
    /// final teardown.
    pub fn run_then(ops: &[Op], assert: impl FnOnce(&Harness)) {
        let mut harness = Harness::new();
        for &op in ops {
            harness.apply(op);
            harness.check();
        }
        assert(&harness);
        harness.finish();
    }

    /// Collections run so far, all generations.
    pub fn collections(&self) -> usize {
        self.heap.gc_stats().iter().map(|s| s.collections).sum()
    }

    /// A rooted object, picked among all created ones (`None` if its root is gone).
    fn rooted(&self, r: u8) -> Option<Gc<Obj>> {
        if self.roots.is_empty() {
            return None;
        }
        self.roots[r as usize % self.roots.len()].clone()
    }

    fn drop_root(&mut self, r: u8) {
        if !self.roots.is_empty() {
            let i = r as usize % self.roots.len();
            drop(self.roots[i].take());
        }
    }

    /// The entries of collection `w` (none may be dead), sorted.
    fn yielded(&self, w: usize) -> Vec<(usize, u8)> {
        match w {
            0 => yielded(&self.values),
            1 => yielded(&self.keys),
            _ => yielded(&self.set),
        }
    }

    /// The model's live entries of collection `w`, as `yielded` lists them.
    fn expected(&self, w: usize) -> Vec<(usize, u8)> {
        let mut out: Vec<(usize, u8)> = match w {
            0 => self.mv.iter().map(|(&k, &i)| (i, k)).collect(),
            1 => self.mk.iter().map(|(&i, &v)| (i, v)).collect(),
            _ => self.ms.iter().map(|&i| (i, 0)).collect(),
        };
        out.sort_unstable();
        out
    }

    /// Runs one operation on the collections and the models, checking what
    /// it returns (checks 9 to 12).
    pub fn apply(&mut self, op: Op) {
        self.collected = false;
        match op {
            Op::Create { cyclic } => {
                if self.roots.len() >= MAX_OBJECTS {
                    return;
                }
                let idx = self.roots.len();
                DEAD.with(|d| d.borrow_mut().push(false));
                let obj = self.heap.alloc(Obj {
                    idx,
                    me: RefCell::new(None),
                });
                if cyclic {
                    *obj.me.borrow_mut() = Some(obj.clone());
                }
                self.roots.push(Some(obj));
                self.cyclic.push(cyclic);
            }
            Op::DropRoot { r } => self.drop_root(r),
            Op::Collect => {
                self.heap.collect();
                self.collected = true;
            }
            Op::SetThreshold { t0 } => self.heap.set_threshold([t0 as usize % 16, 1, 1]),
            Op::VInsert { key, r } => {
                let Some(o) = self.rooted(r) else { return };
                let k = key % KEYS;
                let old = self.values.insert(Key::new(k), &o).map(|v| v.idx);
                assert_eq!(old, self.mv.insert(k, o.idx), "WeakValueDictionary::insert({k})");
            }
            Op::VRemove { key } => {
                let k = key % KEYS;
                let got = self.values.remove(&Key::new(k)).map(|v| v.idx);
                assert_eq!(got, self.mv.remove(&k), "WeakValueDictionary::remove({k})");
            }
            Op::VGet { key } => {
                let k = key % KEYS;
                let got = self.values.get(&Key::new(k)).map(|v| v.idx);
                assert_eq!(got, self.mv.get(&k).copied(), "WeakValueDictionary::get({k})");
            }
            Op::VGetOrInsert { key, r } => {
                let Some(o) = self.rooted(r) else { return };
                let k = key % KEYS;
                let got = self.values.get_or_insert_with(Key::new(k), || o.clone()).idx;
                let expected = *self.mv.entry(k).or_insert(o.idx);
                assert_eq!(got, expected, "WeakValueDictionary::get_or_insert_with({k})");
            }
            Op::VPop => match self.values.pop_item() {
                Some((k, v)) => assert_eq!(self.mv.remove(&k.0), Some(v.idx), "pop_item gave ({k:?}, {})", v.idx),
                None => assert!(self.mv.is_empty(), "pop_item found nothing in {:?}", self.mv),
            },
            Op::KInsert { r, value } => {
                let Some(o) = self.rooted(r) else { return };
                let old = self.keys.insert(&o, Value::new(value)).map(|v| v.0);
                assert_eq!(
                    old,
                    self.mk.insert(o.idx, value),
                    "WeakKeyDictionary::insert({})",
                    o.idx
                );
            }
            Op::KRemove { r } => {
                let Some(o) = self.rooted(r) else { return };
                let got = self.keys.remove(&o).map(|v| v.0);
                assert_eq!(got, self.mk.remove(&o.idx), "WeakKeyDictionary::remove({})", o.idx);
            }
            Op::KGet { r } => {
                let Some(o) = self.rooted(r) else { return };
                let got = self.keys.get(&o).map(|v| v.0);
                assert_eq!(got, self.mk.get(&o.idx).copied(), "WeakKeyDictionary::get({})", o.idx);
            }
            Op::KGetOrInsert { r, value } => {
                let Some(o) = self.rooted(r) else { return };
                let got = self.keys.get_or_insert_with(&o, || Value::new(value)).0;
                let expected = *self.mk.entry(o.idx).or_insert(value);
                assert_eq!(got, expected, "WeakKeyDictionary::get_or_insert_with({})", o.idx);
            }
            Op::KPop => match self.keys.pop_item() {
                Some((k, v)) => assert_eq!(self.mk.remove(&k.idx), Some(v.0), "pop_item gave {}", k.idx),
                None => assert!(self.mk.is_empty(), "pop_item found nothing in {:?}", self.mk),
            },
            Op::SInsert { r } => {
                let Some(o) = self.rooted(r) else { return };
                assert_eq!(self.set.insert(&o), self.ms.insert(o.idx), "WeakSet::insert({})", o.idx);
            }
            Op::SRemove { r } => {
                let Some(o) = self.rooted(r) else { return };
                assert_eq!(
                    self.set.remove(&o),
                    self.ms.remove(&o.idx),
                    "WeakSet::remove({})",
                    o.idx
                );
            }
            Op::SContains { r } => {
                let Some(o) = self.rooted(r) else { return };
                assert_eq!(self.set.contains(&o), self.ms.contains(&o.idx));
            }
            Op::SPop => match self.set.pop() {
                Some(o) => assert!(self.ms.remove(&o.idx), "WeakSet::pop gave {}", o.idx),
                None => assert!(self.ms.is_empty(), "WeakSet::pop found nothing in {:?}", self.ms),
            },
            Op::Retain { which: w, odd } => {
                let keep = |idx: usize| (idx % 2 == 1) == odd;
                match which(w) {
                    0 => {
                        self.values.retain(|_, v| keep(v.idx));
                        self.mv.retain(|_, &mut i| keep(i));
                    }
                    1 => {
                        self.keys.retain(|k, _| keep(k.idx));
                        self.mk.retain(|&i, _| keep(i));
                    }
                    _ => {
                        self.set.retain(|o| keep(o.idx));
                        self.ms.retain(|&i| keep(i));
                    }
                }
            }
            Op::Clear { which: w } => match which(w) {
                0 => {
                    self.values.clear();
                    self.mv.clear();
                }
                1 => {
                    self.keys.clear();
                    self.mk.clear();
                }
                _ => {
                    self.set.clear();
                    self.ms.clear();
                }
            },
            Op::CloneCompare { which: w } => match which(w) {
                0 => clone_compare(&self.values),
                1 => clone_compare(&self.keys),
                _ => clone_compare(&self.set),
            },
            Op::IterateWhileDying {
                which: w,
                after,
                r,
                collect,
            } => {
                let dead = dead_objects().iter().filter(|&&d| d).count();
                self.iterate_while_dying(which(w), after as usize % 8, r, collect);
                self.deaths_during_iteration += dead_objects().iter().filter(|&&d| d).count() - dead;
            }
            Op::ReleaseRemoved => {
                self.values.release_removed();
                self.keys.release_removed();
                assert_eq!(Key::live(), self.values.len() as isize, "keys after release_removed");
                assert_eq!(Value::live(), self.keys.len() as isize, "values after release_removed");
            }
        }
    }

    /// Iterates collection `w`; after `after` items drops root `r`, or collects.
    fn iterate_while_dying(&mut self, w: usize, after: usize, r: u8, collect: bool) {
        // Which root to drop, decided before the collections are borrowed.
        let victim = (!self.roots.is_empty()).then(|| r as usize % self.roots.len());
        let heap = &self.heap;
        let roots = &mut self.roots;
        let mut die = |n: usize| {
            if n == after {
                if collect {
                    heap.collect();
                } else if let Some(i) = victim {
                    drop(roots[i].take());
                }
            }
        };
        match w {
            0 => {
                walk(self.values.iter().map(|(_, v)| v), &mut die);
                assert_eq!(self.values.iter().count(), self.values.len());
            }
            1 => {
                walk(self.keys.iter().map(|(k, _)| k), &mut die);
                assert_eq!(self.keys.iter().count(), self.keys.len());
                assert_eq!(self.keys.values().count(), self.keys.len());
            }
            _ => {
                walk(self.set.iter(), &mut die);
                assert_eq!(self.set.iter().count(), self.set.len());
            }
        }
    }

    /// Compares the collections with the models (checks 1 to 8) and drops
    /// the models' entries whose object died.
    pub fn check(&mut self) {
        let problems = PROBLEMS.with(|p| std::mem::take(&mut *p.borrow_mut()));
        assert!(problems.is_empty(), "{problems:?}");
        let dead = dead_objects();
        let collections = self.collections();
        let collection_ran = collections != self.collections_before;
        for (i, root) in self.roots.iter().enumerate() {
            if root.is_some() {
                assert!(!dead[i], "rooted object {i} died");
            } else if !self.cyclic[i] {
                assert!(dead[i], "plain object {i} outlived its only root");
            } else if self.collected {
                assert!(dead[i], "unrooted self-cycle {i} survived collect()");
            } else if !collection_ran {
                let before = self.dead_before.get(i).copied().unwrap_or(false);
                assert!(!dead[i] || before, "self-cycle {i} died without a collection");
            }
        }
        self.collections_before = collections;
        self.mv.retain(|_, &mut i| !dead[i]);
        self.mk.retain(|&i, _| !dead[i]);
        self.ms.retain(|&i| !dead[i]);
        self.dead_before = dead;
        assert_eq!(self.values.len(), self.mv.len(), "WeakValueDictionary::len");
        assert_eq!(self.keys.len(), self.mk.len(), "WeakKeyDictionary::len");
        assert_eq!(self.set.len(), self.ms.len(), "WeakSet::len");
        for k in 0..KEYS {
            assert_eq!(
                self.values.contains_key(&Key::new(k)),
                self.mv.contains_key(&k),
                "WeakValueDictionary::contains_key({k})"
            );
        }
        for w in 0..3 {
            assert_eq!(self.yielded(w), self.expected(w), "entries of collection {w}");
        }
        assert_eq!(self.keys.values().count(), self.mk.len(), "WeakKeyDictionary::values");
        for root in self.roots.iter().flatten() {
            let i = root.idx;
            assert_eq!(
                self.keys.contains_key(root),
                self.mk.contains_key(&i),
                "WeakKeyDictionary::contains_key({i})"
            );
            assert_eq!(self.set.contains(root), self.ms.contains(&i), "WeakSet::contains({i})");
            let entries = self.mv.values().filter(|&&v| v == i).count()
                + usize::from(self.mk.contains_key(&i))
                + usize::from(self.ms.contains(&i));
            assert_eq!(Gc::weak_count(root), entries, "weak_count of {i}: one per entry");
        }
        assert!(Key::live() >= self.values.len() as isize, "keys dropped too early");
        assert!(Value::live() >= self.keys.len() as isize, "values dropped too early");
    }

    /// Drops everything and collects: no object, byte, key or value is
    /// left, and every object died.
    pub fn finish(self) {
        let Harness {
            heap,
            roots,
            values,
            keys,
            set,
            ..
        } = self;
        drop((values, keys, set));
        drop(roots);
        heap.collect();
        assert_eq!(heap.object_count(), 0, "objects left");
        assert_eq!(heap.bytes_in_use(), 0, "bytes left");
        assert_eq!(Key::live(), 0, "keys left");
        assert_eq!(Value::live(), 0, "values left");
        assert!(dead_objects().iter().all(|&dead| dead), "an object never died");
    }
}
