//! Model-based tests of the weak collections: random sequences of inserts,
//! removals, lookups, iterations, handle drops and collections run against
//! a real `WeakValueDictionary` / `WeakKeyDictionary` / `WeakSet` and a
//! plain `HashMap` / `HashSet` model that knows which objects are alive.
//!
//! Objects are plain (dying when their last handle drops) or self-cycles
//! (garbage once their handle drops, dead at the next `collect()`). After
//! every step the collection must agree with the model's live entries
//! exactly: `len()`, lookups, and iteration (which must never yield a dead
//! entry, even when objects die during it).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use rcgc::{Gc, Heap, Trace, WeakKeyDictionary, WeakSet, WeakValueDictionary};

#[derive(Trace)]
struct Obj {
    #[trace(skip)]
    idx: usize,
    me: RefCell<Option<Gc<Obj>>>,
}

/// The objects of a run: handles we hold, and which objects are alive.
struct Pool {
    heap: Heap,
    roots: Vec<Option<Gc<Obj>>>,
    cyclic: Vec<bool>,
    alive: Vec<bool>,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            heap: Heap::new(),
            roots: Vec::new(),
            cyclic: Vec::new(),
            alive: Vec::new(),
        }
    }

    fn create(&mut self, cyclic: bool) {
        let idx = self.roots.len();
        let obj = self.heap.alloc(Obj {
            idx,
            me: RefCell::new(None),
        });
        if cyclic {
            *obj.me.borrow_mut() = Some(obj.clone());
        }
        self.roots.push(Some(obj));
        self.cyclic.push(cyclic);
        self.alive.push(true);
    }

    /// A held handle, picking among objects by `i`.
    fn rooted(&self, i: usize) -> Option<Gc<Obj>> {
        if self.roots.is_empty() {
            return None;
        }
        self.roots[i % self.roots.len()].clone()
    }

    fn drop_root(&mut self, i: usize) {
        if self.roots.is_empty() {
            return;
        }
        let i = i % self.roots.len();
        if self.roots[i].take().is_some() && !self.cyclic[i] {
            self.alive[i] = false;
        }
    }

    fn collect(&mut self) {
        self.heap.collect();
        for i in 0..self.roots.len() {
            if self.roots[i].is_none() {
                self.alive[i] = false;
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        cyclic: bool,
    },
    DropRoot(usize),
    Collect,
    Insert {
        key: u8,
        obj: usize,
    },
    Remove {
        key: u8,
        obj: usize,
    },
    Get {
        key: u8,
        obj: usize,
    },
    GetOrInsert {
        key: u8,
        obj: usize,
    },
    Pop,
    Clear,
    Iterate,
    /// Iterate, dropping root `obj` after `after` items.
    IterateAndDrop {
        after: usize,
        obj: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let key = || 0..12u8;
    let obj = || 0..64usize;
    prop_oneof![
        4 => any::<bool>().prop_map(|cyclic| Op::Create { cyclic }),
        4 => obj().prop_map(Op::DropRoot),
        1 => Just(Op::Collect),
        6 => (key(), obj()).prop_map(|(key, obj)| Op::Insert { key, obj }),
        2 => (key(), obj()).prop_map(|(key, obj)| Op::Remove { key, obj }),
        3 => (key(), obj()).prop_map(|(key, obj)| Op::Get { key, obj }),
        2 => (key(), obj()).prop_map(|(key, obj)| Op::GetOrInsert { key, obj }),
        1 => Just(Op::Pop),
        1 => prop_oneof![20 => Just(Op::Iterate), 1 => Just(Op::Clear)],
        2 => (0..8usize, obj()).prop_map(|(after, obj)| Op::IterateAndDrop { after, obj }),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..if cfg!(miri) { 20 } else { 200 })
}

proptest! {
    #![proptest_config(config())]

    /// `WeakValueDictionary<u8, Obj>` against `HashMap<u8, object index>`.
    #[test]
    fn weak_value_dictionary_matches_a_hashmap(ops in ops()) {
        let mut pool = Pool::new();
        let mut dict: WeakValueDictionary<u8, Obj> = WeakValueDictionary::new();
        let mut model: HashMap<u8, usize> = HashMap::new();
        for op in ops {
            match op {
                Op::Create { cyclic } => pool.create(cyclic),
                Op::DropRoot(i) => pool.drop_root(i),
                Op::Collect => pool.collect(),
                Op::Insert { key, obj } => {
                    if let Some(o) = pool.rooted(obj) {
                        let old = dict.insert(key, &o);
                        let expected = model.insert(key, o.idx).filter(|&i| pool.alive[i]);
                        prop_assert_eq!(old.map(|v| v.idx), expected);
                    }
                }
                Op::Remove { key, .. } => {
                    let got = dict.remove(&key).map(|v| v.idx);
                    let expected = model.remove(&key).filter(|&i| pool.alive[i]);
                    prop_assert_eq!(got, expected);
                }
                Op::Get { key, .. } => {
                    let got = dict.get(&key).map(|v| v.idx);
                    let expected = model.get(&key).copied().filter(|&i| pool.alive[i]);
                    prop_assert_eq!(got, expected);
                }
                Op::GetOrInsert { key, obj } => {
                    if let Some(o) = pool.rooted(obj) {
                        let got = dict.get_or_insert_with(key, || o.clone()).idx;
                        let current = model.get(&key).copied().filter(|&i| pool.alive[i]);
                        let expected = current.unwrap_or(o.idx);
                        model.insert(key, expected);
                        prop_assert_eq!(got, expected);
                    }
                }
                Op::Pop => {
                    let got = dict.pop_item();
                    match got {
                        Some((key, v)) => {
                            prop_assert_eq!(model.remove(&key), Some(v.idx));
                        }
                        None => prop_assert!(model.values().all(|&i| !pool.alive[i])),
                    }
                }
                Op::Clear => {
                    dict.clear();
                    model.clear();
                }
                Op::Iterate => {
                    let got: HashSet<(u8, usize)> = dict.iter().map(|(k, v)| (*k, v.idx)).collect();
                    let expected: HashSet<(u8, usize)> =
                        model.iter().filter(|(_, &i)| pool.alive[i]).map(|(&k, &i)| (k, i)).collect();
                    prop_assert_eq!(got, expected);
                }
                Op::IterateAndDrop { after, obj } => {
                    let mut seen = Vec::new();
                    for (n, (k, v)) in dict.iter().enumerate() {
                        prop_assert!(pool.alive[v.idx], "a dead value was yielded");
                        seen.push((*k, v.idx));
                        drop(v);
                        if n == after {
                            pool.drop_root(obj);
                        }
                    }
                    prop_assert_eq!(dict.len(), dict.iter().count());
                }
            }
            let live = model.values().filter(|&&i| pool.alive[i]).count();
            prop_assert_eq!(dict.len(), live);
            for (key, &i) in &model {
                prop_assert_eq!(dict.contains_key(key), pool.alive[i]);
            }
        }
        drop(dict);
        drop(pool.roots);
        pool.heap.collect();
        prop_assert_eq!(pool.heap.object_count(), 0);
    }

    /// `WeakKeyDictionary<Obj, u8>` against `HashMap<object index, u8>`.
    #[test]
    fn weak_key_dictionary_matches_a_hashmap(ops in ops()) {
        let mut pool = Pool::new();
        let mut dict: WeakKeyDictionary<Obj, u8> = WeakKeyDictionary::new();
        let mut model: HashMap<usize, u8> = HashMap::new();
        for op in ops {
            match op {
                Op::Create { cyclic } => pool.create(cyclic),
                Op::DropRoot(i) => pool.drop_root(i),
                Op::Collect => pool.collect(),
                Op::Insert { key, obj } => {
                    if let Some(o) = pool.rooted(obj) {
                        let old = dict.insert(&o, key);
                        let expected = model.insert(o.idx, key).filter(|_| pool.alive[o.idx]);
                        prop_assert_eq!(old, expected);
                    }
                }
                Op::Remove { obj, .. } => {
                    if let Some(o) = pool.rooted(obj) {
                        prop_assert_eq!(dict.remove(&o), model.remove(&o.idx));
                    }
                }
                Op::Get { obj, .. } => {
                    if let Some(o) = pool.rooted(obj) {
                        prop_assert_eq!(dict.get(&o).copied(), model.get(&o.idx).copied());
                    }
                }
                Op::GetOrInsert { key, obj } => {
                    if let Some(o) = pool.rooted(obj) {
                        let got = *dict.get_or_insert_with(&o, || key);
                        let expected = *model.entry(o.idx).or_insert(key);
                        prop_assert_eq!(got, expected);
                    }
                }
                Op::Pop => match dict.pop_item() {
                    Some((k, v)) => prop_assert_eq!(model.remove(&k.idx), Some(v)),
                    None => prop_assert!(model.keys().all(|&i| !pool.alive[i])),
                },
                Op::Clear => {
                    dict.clear();
                    model.clear();
                }
                Op::Iterate => {
                    let got: HashSet<(usize, u8)> = dict.iter().map(|(k, v)| (k.idx, *v)).collect();
                    let expected: HashSet<(usize, u8)> =
                        model.iter().filter(|(&i, _)| pool.alive[i]).map(|(&i, &v)| (i, v)).collect();
                    prop_assert_eq!(got, expected);
                }
                Op::IterateAndDrop { after, obj } => {
                    for (n, (k, _)) in dict.iter().enumerate() {
                        prop_assert!(pool.alive[k.idx], "a dead key was yielded");
                        drop(k);
                        if n == after {
                            pool.drop_root(obj);
                        }
                    }
                }
            }
            model.retain(|&i, _| pool.alive[i]);
            prop_assert_eq!(dict.len(), model.len());
            prop_assert_eq!(dict.values().count(), model.len());
        }
        drop(dict);
        drop(pool.roots);
        pool.heap.collect();
        prop_assert_eq!(pool.heap.object_count(), 0);
    }

    /// `WeakSet<Obj>` against `HashSet<object index>`.
    #[test]
    fn weak_set_matches_a_hashset(ops in ops()) {
        let mut pool = Pool::new();
        let mut set: WeakSet<Obj> = WeakSet::new();
        let mut model: HashSet<usize> = HashSet::new();
        for op in ops {
            match op {
                Op::Create { cyclic } => pool.create(cyclic),
                Op::DropRoot(i) => pool.drop_root(i),
                Op::Collect => pool.collect(),
                Op::Insert { obj, .. } | Op::GetOrInsert { obj, .. } => {
                    if let Some(o) = pool.rooted(obj) {
                        prop_assert_eq!(set.insert(&o), model.insert(o.idx));
                    }
                }
                Op::Remove { obj, .. } => {
                    if let Some(o) = pool.rooted(obj) {
                        prop_assert_eq!(set.remove(&o), model.remove(&o.idx));
                    }
                }
                Op::Get { obj, .. } => {
                    if let Some(o) = pool.rooted(obj) {
                        prop_assert_eq!(set.contains(&o), model.contains(&o.idx));
                    }
                }
                Op::Pop => match set.pop() {
                    Some(o) => prop_assert!(model.remove(&o.idx)),
                    None => prop_assert!(model.iter().all(|&i| !pool.alive[i])),
                },
                Op::Clear => {
                    set.clear();
                    model.clear();
                }
                Op::Iterate => {
                    let got: HashSet<usize> = set.iter().map(|o| o.idx).collect();
                    let expected: HashSet<usize> = model.iter().copied().filter(|&i| pool.alive[i]).collect();
                    prop_assert_eq!(got, expected);
                }
                Op::IterateAndDrop { after, obj } => {
                    for (n, o) in set.iter().enumerate() {
                        prop_assert!(pool.alive[o.idx], "a dead object was yielded");
                        drop(o);
                        if n == after {
                            pool.drop_root(obj);
                        }
                    }
                }
            }
            model.retain(|&i| pool.alive[i]);
            prop_assert_eq!(set.len(), model.len());
        }
        drop(set);
        drop(pool.roots);
        pool.heap.collect();
        prop_assert_eq!(pool.heap.object_count(), 0);
    }
}
