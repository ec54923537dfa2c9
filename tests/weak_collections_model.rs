//! Model-based tests of the weak collections: random operation sequences run
//! on a real `WeakValueDictionary`, `WeakKeyDictionary` and `WeakSet` and on
//! the `HashMap` / `HashSet` models of `tests/weak_collections_model/mod.rs`
//! (shared with the `weak_dict` fuzz target), compared after every step. See
//! that module's docs for the operations and for everything that is checked.
//!
//! * Three proptest suites (256 cases each, 3 under Miri), one per
//!   collection, over sequences of up to 199 operations (19 under Miri) on
//!   objects, the collector and that collection. Shrinking removes
//!   operations and lowers indexes, so a failure is reported as a short
//!   sequence.
//! * Named sequences, each asserting the scenario it is named after.
//! * The fuzz seeds (`fuzz/corpus/weak_dict/seed-*`) decode to the named
//!   sequences and pass: they are written by [`encode`], whose inverse
//!   `arbitrary` decoding is checked here.

#[path = "weak_collections_model/mod.rs"]
mod model;

use std::collections::HashSet;
use std::mem::discriminant;

use arbitrary::{Arbitrary, Unstructured};
use model::{Harness, Op, OP_KINDS};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------

/// The value dictionary, the key dictionary, the set (`Op`'s `which`).
const VALUE_DICT: u8 = 0;
const KEY_DICT: u8 = 1;
const SET: u8 = 2;

/// Operations on collection `w` (and on objects and the collector).
fn op(w: u8) -> BoxedStrategy<Op> {
    let key = || 0..12u8;
    let r = || 0..64u8;
    let value = any::<u8>;
    // The same weights for each collection: insert, remove, lookup,
    // get-or-insert, pop.
    let (insert, remove, get, get_or_insert, pop) = match w {
        VALUE_DICT => (
            (key(), r()).prop_map(|(key, r)| Op::VInsert { key, r }).boxed(),
            key().prop_map(|key| Op::VRemove { key }).boxed(),
            key().prop_map(|key| Op::VGet { key }).boxed(),
            (key(), r()).prop_map(|(key, r)| Op::VGetOrInsert { key, r }).boxed(),
            Just(Op::VPop).boxed(),
        ),
        KEY_DICT => (
            (r(), value()).prop_map(|(r, value)| Op::KInsert { r, value }).boxed(),
            r().prop_map(|r| Op::KRemove { r }).boxed(),
            r().prop_map(|r| Op::KGet { r }).boxed(),
            (r(), value())
                .prop_map(|(r, value)| Op::KGetOrInsert { r, value })
                .boxed(),
            Just(Op::KPop).boxed(),
        ),
        _ => (
            r().prop_map(|r| Op::SInsert { r }).boxed(),
            r().prop_map(|r| Op::SRemove { r }).boxed(),
            r().prop_map(|r| Op::SContains { r }).boxed(),
            // A set has no get-or-insert: one more insert.
            r().prop_map(|r| Op::SInsert { r }).boxed(),
            Just(Op::SPop).boxed(),
        ),
    };
    prop_oneof![
        4 => any::<bool>().prop_map(|cyclic| Op::Create { cyclic }),
        4 => r().prop_map(|r| Op::DropRoot { r }),
        1 => Just(Op::Collect),
        1 => (0..16u8).prop_map(|t0| Op::SetThreshold { t0 }),
        6 => insert,
        2 => remove,
        3 => get,
        2 => get_or_insert,
        1 => pop,
        // (Every step compares the iteration with the model: here a clone's.)
        1 => prop_oneof![20 => Just(Op::CloneCompare { which: w }), 1 => Just(Op::Clear { which: w })],
        1 => any::<bool>().prop_map(move |odd| Op::Retain { which: w, odd }),
        2 => (0..8u8, r()).prop_map(move |(after, r)| Op::IterateWhileDying { which: w, after, r, collect: false }),
        1 => (0..8u8).prop_map(move |after| Op::IterateWhileDying { which: w, after, r: 0, collect: true }),
        1 => Just(Op::ReleaseRemoved),
    ]
    .boxed()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ops(w: u8) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(w), 1..if cfg!(miri) { 20 } else { 200 })
}

proptest! {
    #![proptest_config(config())]

    /// `WeakValueDictionary<Key, Obj>` against `HashMap<key, object index>`.
    #[test]
    fn weak_value_dictionary_matches_a_hashmap(ops in ops(VALUE_DICT)) {
        Harness::run(&ops);
    }

    /// `WeakKeyDictionary<Obj, Value>` against `HashMap<object index, value>`.
    #[test]
    fn weak_key_dictionary_matches_a_hashmap(ops in ops(KEY_DICT)) {
        Harness::run(&ops);
    }

    /// `WeakSet<Obj>` against `HashSet<object index>`.
    #[test]
    fn weak_set_matches_a_hashset(ops in ops(SET)) {
        Harness::run(&ops);
    }
}

// ---------------------------------------------------------------------------
// Named sequences.
// ---------------------------------------------------------------------------

/// Every operation of each collection once, over plain objects and
/// self-cycles, then their roots dropped (plain objects die at once,
/// cycles at the collection) and the collections emptied.
fn basic() -> Vec<Op> {
    use Op::*;
    vec![
        Create { cyclic: false }, // 0
        Create { cyclic: true },  // 1
        Create { cyclic: false }, // 2
        Create { cyclic: true },  // 3
        VInsert { key: 1, r: 0 },
        VInsert { key: 2, r: 1 },
        VInsert { key: 1, r: 2 }, // replaces 0
        KInsert { r: 0, value: 7 },
        KInsert { r: 1, value: 8 },
        KInsert { r: 3, value: 9 },
        SInsert { r: 0 },
        SInsert { r: 1 },
        SInsert { r: 2 },
        VGet { key: 1 },
        KGet { r: 1 },
        SContains { r: 2 },
        VGetOrInsert { key: 5, r: 3 },
        KGetOrInsert { r: 2, value: 4 },
        CloneCompare { which: 0 },
        CloneCompare { which: 1 },
        CloneCompare { which: 2 },
        DropRoot { r: 0 }, // 0 dies: its key-dictionary and set entries go
        DropRoot { r: 1 }, // 1 is garbage, still in all three
        VRemove { key: 2 },
        KRemove { r: 3 },
        SRemove { r: 2 },
        ReleaseRemoved,
        Collect, // 1 dies
        VPop,
        KPop,
        SPop,
        Retain { which: 0, odd: true },
        Retain { which: 1, odd: false },
        Retain { which: 2, odd: true },
        Clear { which: 0 },
        Clear { which: 1 },
        Clear { which: 2 },
        ReleaseRemoved,
    ]
}

#[test]
fn basic_operations_match_the_models_and_dead_entries_vanish() {
    Harness::run_then(&basic(), |h| {
        assert!(model::is_dead(0) && model::is_dead(1), "the unrooted objects died");
        assert!(!model::is_dead(2) && !model::is_dead(3));
        assert_eq!(h.collections(), 1);
        assert_eq!((h.values.len(), h.keys.len(), h.set.len()), (0, 0, 0));
    });
}

/// Eight self-cycles, each in all three collections, left as garbage under
/// a tiny threshold: automatic collections free them and empty the
/// collections without an explicit `collect` (the last one is only for
/// what the threshold left).
fn automatic() -> Vec<Op> {
    use Op::*;
    let mut ops = vec![SetThreshold { t0: 2 }];
    for i in 0..8 {
        ops.extend([
            Create { cyclic: true },
            VInsert { key: i, r: i },
            KInsert { r: i, value: i },
            SInsert { r: i },
            DropRoot { r: i },
        ]);
    }
    ops.extend([
        Create { cyclic: false },
        Create { cyclic: false },
        ReleaseRemoved,
        SetThreshold { t0: 0 },
        Collect,
    ]);
    ops
}

#[test]
fn automatic_collections_free_cycles_and_their_entries() {
    Harness::run_then(&automatic(), |h| {
        assert!(
            h.collections() >= 3,
            "automatic collections ran: {:?}",
            h.heap.gc_stats()
        );
        assert!((0..8).all(model::is_dead));
        assert_eq!((h.values.len(), h.keys.len(), h.set.len()), (0, 0, 0));
    });
}

/// Iterations of each collection during which a root drops (a plain object
/// dies at once) or a collection runs (an unrooted cycle dies).
fn iterate_dying() -> Vec<Op> {
    use Op::*;
    let mut ops = vec![
        Create { cyclic: false }, // 0
        Create { cyclic: false }, // 1
        Create { cyclic: true },  // 2
        Create { cyclic: true },  // 3
        Create { cyclic: false }, // 4
    ];
    ops.extend((0..5).map(|i| VInsert { key: i, r: i }));
    ops.extend((0..5).map(|i| KInsert { r: i, value: i }));
    ops.extend((0..5).map(|i| SInsert { r: i }));
    ops.extend([
        IterateWhileDying {
            which: 0,
            after: 1,
            r: 0,
            collect: false,
        }, // 0 dies
        DropRoot { r: 2 },
        IterateWhileDying {
            which: 1,
            after: 0,
            r: 0,
            collect: true,
        }, // 2 dies
        IterateWhileDying {
            which: 2,
            after: 2,
            r: 4,
            collect: false,
        }, // 4 dies
        DropRoot { r: 3 },
        IterateWhileDying {
            which: 0,
            after: 0,
            r: 1,
            collect: true,
        }, // 3 dies
        ReleaseRemoved,
    ]);
    ops
}

#[test]
fn iteration_never_yields_objects_dying_under_it() {
    Harness::run_then(&iterate_dying(), |h| {
        assert_eq!(h.deaths_during_iteration, 4, "0, 2, 4 and 3 died while iterated");
        assert!(!model::is_dead(1));
        assert_eq!((h.values.len(), h.keys.len(), h.set.len()), (1, 1, 1));
    });
}

/// The named sequences, which are also the `weak_dict` fuzz seeds.
fn named() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        ("basic", basic()),
        ("automatic", automatic()),
        ("iterate-dying", iterate_dying()),
    ]
}

// ---------------------------------------------------------------------------
// Fuzz seeds.
// ---------------------------------------------------------------------------

/// The `arbitrary` encoding of `ops` as the `weak_dict` fuzz target reads
/// it: per operation a continuation byte (1) and the operation; a variant is
/// a little-endian `u32` `x` with `(x * variants) >> 32 == index`, then its
/// fields (`u8`: a byte; `bool`: a byte).
fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for &op in ops {
        out.push(1);
        let b = |v: bool| u8::from(v);
        let (index, fields): (u64, Vec<u8>) = match op {
            Op::Create { cyclic } => (0, vec![b(cyclic)]),
            Op::DropRoot { r } => (1, vec![r]),
            Op::Collect => (2, vec![]),
            Op::SetThreshold { t0 } => (3, vec![t0]),
            Op::VInsert { key, r } => (4, vec![key, r]),
            Op::VRemove { key } => (5, vec![key]),
            Op::VGet { key } => (6, vec![key]),
            Op::VGetOrInsert { key, r } => (7, vec![key, r]),
            Op::VPop => (8, vec![]),
            Op::KInsert { r, value } => (9, vec![r, value]),
            Op::KRemove { r } => (10, vec![r]),
            Op::KGet { r } => (11, vec![r]),
            Op::KGetOrInsert { r, value } => (12, vec![r, value]),
            Op::KPop => (13, vec![]),
            Op::SInsert { r } => (14, vec![r]),
            Op::SRemove { r } => (15, vec![r]),
            Op::SContains { r } => (16, vec![r]),
            Op::SPop => (17, vec![]),
            Op::Retain { which, odd } => (18, vec![which, b(odd)]),
            Op::Clear { which } => (19, vec![which]),
            Op::CloneCompare { which } => (20, vec![which]),
            Op::IterateWhileDying {
                which,
                after,
                r,
                collect,
            } => (21, vec![which, after, r, b(collect)]),
            Op::ReleaseRemoved => (22, vec![]),
        };
        let x = (index << 32).div_ceil(OP_KINDS as u64);
        out.extend_from_slice(&(x as u32).to_le_bytes());
        out.extend(fields);
    }
    out
}

fn decode(bytes: &[u8]) -> Vec<Op> {
    Vec::<Op>::arbitrary_take_rest(Unstructured::new(bytes)).expect("decodable")
}

/// The checked-in seeds (`fuzz/corpus/weak_dict/seed-<name>`), by name.
macro_rules! seeds {
    ($($name:literal),*) => {
        &[$(($name, include_bytes!(concat!("../fuzz/corpus/weak_dict/seed-", $name)))),*]
    };
}
const SEEDS: &[(&str, &[u8])] = seeds!["basic", "automatic", "iterate-dying"];

/// The named sequences cover every operation kind; each one's encoding
/// decodes back to it and is its checked-in seed, which passes.
/// `RCGC_WRITE_SEEDS=1 cargo test --test weak_collections_model fuzz_seeds`
/// writes the seeds instead of comparing.
#[test]
fn fuzz_seeds_are_the_named_sequences_and_pass() {
    let named = named();
    let kinds: HashSet<_> = named.iter().flat_map(|(_, ops)| ops.iter().map(discriminant)).collect();
    assert_eq!(
        kinds.len(),
        OP_KINDS,
        "an operation kind is missing from the named sequences"
    );
    let seed_names: Vec<&str> = SEEDS.iter().map(|&(name, _)| name).collect();
    let names: Vec<&str> = named.iter().map(|&(name, _)| name).collect();
    assert_eq!(seed_names, names, "one seed per named sequence");
    let write = std::env::var_os("RCGC_WRITE_SEEDS").is_some();
    for ((name, ops), (_, seed)) in named.iter().zip(SEEDS) {
        let bytes = encode(ops);
        assert_eq!(&decode(&bytes), ops, "{name}: encode is not decode's inverse");
        if write {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/weak_dict");
            std::fs::write(format!("{dir}/seed-{name}"), &bytes).unwrap();
        } else {
            assert!(
                *seed == bytes,
                "fuzz/corpus/weak_dict/seed-{name} is stale: regenerate it"
            );
            // (Under Miri the named tests already run these sequences.)
            if !cfg!(miri) {
                Harness::run(&decode(seed));
            }
        }
    }
}
