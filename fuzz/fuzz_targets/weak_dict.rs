//! Fuzzes the weak collections — `WeakValueDictionary`, `WeakKeyDictionary`
//! and `WeakSet`, all three over the same objects at once — against
//! `HashMap` / `HashSet` models.
//!
//! Objects are plain (they die when their root drops) or self-cycles
//! (garbage once their root drops, freed by the next collection, explicit
//! or automatic: thresholds are part of the input). Each object's `Drop`
//! records its death, and the harness checks:
//!
//! * a rooted object never dies, a plain one dies with its root;
//! * after every operation, each collection's `len()` is exactly the number
//!   of model entries whose object lives, lookups agree with the model,
//!   `Gc::weak_count` of every rooted object is its number of entries
//!   (one weak reference per entry), and keys/values held by the
//!   collections (both with a counting `Drop`) number at least `len()` —
//!   exactly `len()` after `release_removed()`;
//! * inserts, removals, `get_or_insert_with`, `pop_item`, `retain`,
//!   `clear` and `clone` return what the model says;
//! * iteration never yields a dead object, even when objects die during it
//!   (their root dropped, or a collection run between two items), and a
//!   collection iterated again afterwards yields exactly `len()` entries;
//! * at the end, with everything dropped and collected, no object, key,
//!   value or byte is left.
#![no_main]

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rcgc::{Gc, Heap, Trace, WeakKeyDictionary, WeakSet, WeakValueDictionary};

/// Distinct keys of the value dictionary (few, so inserts collide).
const KEYS: u8 = 16;
/// Most objects per input.
const MAX_OBJECTS: usize = 512;

thread_local! {
    /// Per object: its `Drop` ran.
    static DEAD: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
    static LIVE_KEYS: Cell<isize> = const { Cell::new(0) };
    static LIVE_VALUES: Cell<isize> = const { Cell::new(0) };
    static PROBLEMS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn is_dead(idx: usize) -> bool {
    DEAD.with(|d| d.borrow()[idx])
}

#[derive(Trace)]
struct Obj {
    #[trace(skip)]
    idx: usize,
    me: RefCell<Option<Gc<Obj>>>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        DEAD.with(|d| {
            let mut d = d.borrow_mut();
            if std::mem::replace(&mut d[self.idx], true) {
                PROBLEMS.with(|p| p.borrow_mut().push(format!("object {} dropped twice", self.idx)));
            }
        });
    }
}

/// A value-dictionary key that counts its live instances.
#[derive(Hash, PartialEq, Eq, Debug)]
struct Key(u8);

impl Key {
    fn new(k: u8) -> Key {
        LIVE_KEYS.with(|n| n.set(n.get() + 1));
        Key(k % KEYS)
    }
}

impl Clone for Key {
    fn clone(&self) -> Key {
        Key::new(self.0)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        LIVE_KEYS.with(|n| n.set(n.get() - 1));
    }
}

/// A key-dictionary value that counts its live instances.
#[derive(Debug)]
struct Value(u8);

impl Value {
    fn new(v: u8) -> Value {
        LIVE_VALUES.with(|n| n.set(n.get() + 1));
        Value(v)
    }
}

impl Clone for Value {
    fn clone(&self) -> Value {
        Value::new(self.0)
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        LIVE_VALUES.with(|n| n.set(n.get() - 1));
    }
}

/// Which collection an operation applies to (`which % 3`).
fn which(w: u8) -> usize {
    w as usize % 3
}

#[derive(Arbitrary, Debug)]
enum Op {
    Create {
        cyclic: bool,
    },
    DropRoot {
        r: u8,
    },
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
    /// Iterates; after `after` items drops root `r`, or collects.
    IterateWhileDying {
        which: u8,
        after: u8,
        r: u8,
        collect: bool,
    },
    ReleaseRemoved,
}

struct Harness {
    heap: Heap,
    roots: Vec<Option<Gc<Obj>>>,
    cyclic: Vec<bool>,
    values: WeakValueDictionary<Key, Obj>,
    keys: WeakKeyDictionary<Obj, Value>,
    set: WeakSet<Obj>,
    /// Models: key -> object, object -> value, objects. Entries whose
    /// object died are dropped from them after each operation.
    mv: HashMap<u8, usize>,
    mk: HashMap<usize, u8>,
    ms: HashSet<usize>,
}

impl Harness {
    fn new() -> Harness {
        DEAD.with(|d| d.borrow_mut().clear());
        LIVE_KEYS.with(|n| n.set(0));
        LIVE_VALUES.with(|n| n.set(0));
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
        }
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

    /// Every yielded object must be alive; returns the yielded entries.
    fn yielded(&self, w: usize) -> Vec<(usize, u8)> {
        let mut out = Vec::new();
        match w {
            0 => {
                for (k, v) in &self.values {
                    assert!(!is_dead(v.idx), "value dictionary yielded dead object {}", v.idx);
                    out.push((v.idx, k.0));
                }
            }
            1 => {
                for (k, v) in &self.keys {
                    assert!(!is_dead(k.idx), "key dictionary yielded dead object {}", k.idx);
                    out.push((k.idx, v.0));
                }
            }
            _ => {
                for o in &self.set {
                    assert!(!is_dead(o.idx), "set yielded dead object {}", o.idx);
                    out.push((o.idx, 0));
                }
            }
        }
        out.sort_unstable();
        out
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

    fn apply(&mut self, op: Op) {
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
                assert_eq!(got, *self.mk.entry(o.idx).or_insert(value));
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
            Op::CloneCompare { which: w } => {
                let w = which(w);
                let original = self.yielded(w);
                match w {
                    0 => {
                        let clone = self.values.clone();
                        let mut got: Vec<(usize, u8)> = clone.iter().map(|(k, v)| (v.idx, k.0)).collect();
                        got.sort_unstable();
                        assert_eq!(got, original, "a cloned WeakValueDictionary");
                        assert_eq!(clone.len(), self.values.len());
                    }
                    1 => {
                        let clone = self.keys.clone();
                        let mut got: Vec<(usize, u8)> = clone.iter().map(|(k, v)| (k.idx, v.0)).collect();
                        got.sort_unstable();
                        assert_eq!(got, original, "a cloned WeakKeyDictionary");
                        assert_eq!(clone.len(), self.keys.len());
                    }
                    _ => {
                        let clone = self.set.clone();
                        let mut got: Vec<(usize, u8)> = clone.iter().map(|o| (o.idx, 0)).collect();
                        got.sort_unstable();
                        assert_eq!(got, original, "a cloned WeakSet");
                        assert_eq!(clone.len(), self.set.len());
                    }
                }
            }
            Op::IterateWhileDying {
                which: w,
                after,
                r,
                collect,
            } => {
                let after = after as usize % 8;
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
                match which(w) {
                    0 => {
                        for (n, (_, v)) in self.values.iter().enumerate() {
                            assert!(!is_dead(v.idx), "yielded dead object {} while objects die", v.idx);
                            drop(v);
                            die(n);
                        }
                        assert_eq!(self.values.iter().count(), self.values.len());
                    }
                    1 => {
                        for (n, (k, _)) in self.keys.iter().enumerate() {
                            assert!(!is_dead(k.idx), "yielded dead key {} while objects die", k.idx);
                            drop(k);
                            die(n);
                        }
                        assert_eq!(self.keys.iter().count(), self.keys.len());
                        assert_eq!(self.keys.values().count(), self.keys.len());
                    }
                    _ => {
                        for (n, o) in self.set.iter().enumerate() {
                            assert!(!is_dead(o.idx), "yielded dead object {} while objects die", o.idx);
                            drop(o);
                            die(n);
                        }
                        assert_eq!(self.set.iter().count(), self.set.len());
                    }
                }
            }
            Op::ReleaseRemoved => {
                self.values.release_removed();
                self.keys.release_removed();
                assert_eq!(
                    LIVE_KEYS.with(Cell::get),
                    self.values.len() as isize,
                    "keys after release_removed"
                );
                assert_eq!(
                    LIVE_VALUES.with(Cell::get),
                    self.keys.len() as isize,
                    "values after release_removed"
                );
            }
        }
    }

    fn check(&mut self) {
        let problems = PROBLEMS.with(|p| std::mem::take(&mut *p.borrow_mut()));
        assert!(problems.is_empty(), "{problems:?}");
        let dead: Vec<bool> = DEAD.with(|d| d.borrow().clone());
        for (i, root) in self.roots.iter().enumerate() {
            if root.is_some() {
                assert!(!dead[i], "rooted object {i} died");
            } else if !self.cyclic[i] {
                assert!(dead[i], "plain object {i} outlived its only root");
            }
        }
        self.mv.retain(|_, &mut i| !dead[i]);
        self.mk.retain(|&i, _| !dead[i]);
        self.ms.retain(|&i| !dead[i]);
        assert_eq!(self.values.len(), self.mv.len(), "WeakValueDictionary::len");
        assert_eq!(self.keys.len(), self.mk.len(), "WeakKeyDictionary::len");
        assert_eq!(self.set.len(), self.ms.len(), "WeakSet::len");
        for k in 0..KEYS {
            assert_eq!(
                self.values.contains_key(&Key::new(k)),
                self.mv.contains_key(&k),
                "contains_key({k})"
            );
        }
        for w in 0..3 {
            assert_eq!(self.yielded(w), self.expected(w), "entries of collection {w}");
        }
        for root in self.roots.iter().flatten() {
            let i = root.idx;
            assert_eq!(self.keys.contains_key(root), self.mk.contains_key(&i));
            assert_eq!(self.set.contains(root), self.ms.contains(&i));
            let entries = self.mv.values().filter(|&&v| v == i).count()
                + usize::from(self.mk.contains_key(&i))
                + usize::from(self.ms.contains(&i));
            assert_eq!(Gc::weak_count(root), entries, "weak_count of {i}: one per entry");
        }
        assert!(
            LIVE_KEYS.with(Cell::get) >= self.values.len() as isize,
            "keys dropped too early"
        );
        assert!(
            LIVE_VALUES.with(Cell::get) >= self.keys.len() as isize,
            "values dropped too early"
        );
    }

    fn finish(self) {
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
        assert_eq!(LIVE_KEYS.with(Cell::get), 0, "keys left");
        assert_eq!(LIVE_VALUES.with(Cell::get), 0, "values left");
        assert!(
            DEAD.with(|d| d.borrow().iter().all(|&dead| dead)),
            "an object never died"
        );
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut harness = Harness::new();
    for op in ops {
        harness.apply(op);
        harness.check();
    }
    harness.finish();
});
