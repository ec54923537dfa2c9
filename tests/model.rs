//! Model-based tests of the whole heap: random operation sequences run on a
//! real `Heap` and on the reference model of `tests/model/mod.rs` (shared
//! with the `ops` fuzz target), compared after every step. See that
//! module's docs for the operations and for everything that is compared.
//!
//! * Two proptest suites (1,000 cases each, 2,000 per run; 3 each under
//!   Miri; `PROPTEST_CASES` overrides both) over sequences of up to 100
//!   operations (10 under Miri). Shrinking removes operations and lowers
//!   indexes, so a failure is reported as a short sequence.
//! * Named regression sequences, each exercising a group of operations
//!   and asserting the scenario it is named after happened.
//! * The fuzz seeds (`fuzz/corpus/ops/seed-*`) decode to named sequences
//!   and pass: they are written by [`encode`], whose inverse `arbitrary`
//!   decoding is checked here.

#[path = "model/mod.rs"]
mod model;

use std::collections::HashSet;
use std::mem::discriminant;

use arbitrary::{Arbitrary, Unstructured};
use model::{Cb, Harness, Kind, Op, OP_KINDS};
use proptest::prelude::*;

mod common;

// ---------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Node), Just(Kind::FNode), Just(Kind::Leaf), Just(Kind::FLeaf)]
}

/// Any operation; `collector` weights collections and policies up.
fn op(collector: u32) -> impl Strategy<Value = Op> {
    let i = any::<u8>;
    let b = any::<bool>;
    prop_oneof![
        6 => (kind(), b()).prop_map(|(kind, via_enter)| Op::Alloc { kind, via_enter }),
        4 => (i(), kind()).prop_map(|(parent, kind)| Op::AllocChild { parent, kind }),
        1 => (i(), 0..3u8, b()).prop_map(|(parent, len, finalizer)| Op::Chain { parent, len, finalizer }),
        2 => i().prop_map(|r| Op::CloneRoot { r }),
        5 => i().prop_map(|r| Op::DropRoot { r }),
        6 => (i(), i()).prop_map(|(a, b)| Op::Link { a, b }),
        2 => (i(), i()).prop_map(|(a, e)| Op::Unlink { a, e }),
        2 => (i(), i(), i()).prop_map(|(a, e, b)| Op::ReplaceEdge { a, e, b }),
        2 => (i(), i()).prop_map(|(a, e)| Op::Follow { a, e }),
        5 => (i(), proptest::option::of(i()), b()).prop_map(|(r, holder, callback)| Op::Downgrade { r, holder, callback }),
        2 => i().prop_map(|w| Op::Upgrade { w }),
        2 => (i(), i()).prop_map(|(a, i)| Op::UpgradeHeld { a, i }),
        1 => i().prop_map(|w| Op::DropWeak { w }),
        1 => (i(), i()).prop_map(|(a, i)| Op::DropHeldWeak { a, i }),
        collector + 1 => (0..3u8).prop_map(|g| Op::CollectGeneration { g }),
        collector + 1 => Just(Op::CollectAll),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Freeze),
        1 => Just(Op::Unfreeze),
        collector + 1 => (0..12u8, 0..4u8, 0..4u8).prop_map(|(t0, t1, t2)| Op::SetThreshold { t0, t1, t2 }),
        1 => Just(Op::Enable),
        1 => Just(Op::Disable),
        collector + 1 => (0..3u8, i()).prop_map(|(kind, work)| Op::SetPolicy { kind, work }),
        1 => (0..64u8).prop_map(|slack| Op::SetLimit { slack }),
        1 => Just(Op::ClearLimit),
        1 => kind().prop_map(|kind| Op::TryAllocBeyondLimit { kind }),
        3 => (i(), b()).prop_map(|(r, on)| Op::Resurrect { r, on }),
        1 => Just(Op::ClearGraveyard),
        1 => i().prop_map(|r| Op::Introspect { r }),
    ]
}

fn ops(collector: u32) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(collector), 1..=if cfg!(miri) { 10 } else { 100 })
}

proptest! {
    #![proptest_config(common::proptest_config(1000, 3))]

    /// Random operations of every kind keep the heap equal to the model.
    #[test]
    fn random_operations_match_the_model(ops in ops(0)) {
        Harness::run(&ops);
    }

    /// The same with collections, thresholds and policy switches four times
    /// as frequent: automatic collections and incremental steps interleave
    /// with graph edits.
    #[test]
    fn random_operations_with_frequent_collections_match_the_model(ops in ops(3)) {
        Harness::run(&ops);
    }
}

// ---------------------------------------------------------------------------
// Named sequences.
// ---------------------------------------------------------------------------

/// Runs `ops`, lets `assert` look at the model before the final teardown,
/// then finishes (every object dropped exactly once).
fn run(ops: &[Op], assert: impl FnOnce(&model::Model)) {
    let mut harness = Harness::new();
    for &op in ops {
        harness.apply(op);
    }
    assert(&harness.model);
    harness.finish();
}

fn alloc(kind: Kind) -> Op {
    Op::Alloc { kind, via_enter: false }
}

/// Reference counting: a chain dies from its head, callbacks of weak
/// references to its members run (newest first), a flagged finalizer
/// resurrects its object, and the graveyard releases it again.
fn refcount_cascade() -> Vec<Op> {
    use Op::*;
    vec![
        alloc(Kind::Node), // 0: root 0
        AllocChild {
            parent: 0,
            kind: Kind::FNode,
        }, // 1
        Follow { a: 0, e: 0 }, // roots [0, 1]
        AllocChild {
            parent: 1,
            kind: Kind::FLeaf,
        }, // 2
        Downgrade {
            r: 1,
            holder: None,
            callback: true,
        }, // weak 0 -> 1
        Downgrade {
            r: 1,
            holder: None,
            callback: true,
        }, // weak 1 -> 1
        Downgrade {
            r: 1,
            holder: Some(0),
            callback: true,
        },
        Resurrect { r: 1, on: true },
        DropRoot { r: 1 },
        DropRoot { r: 0 }, // 0 dies; 1 is finalized and resurrects
        Upgrade { w: 0 },  // 1 is in the graveyard, still upgradable
        DropRoot { r: 0 },
        ClearGraveyard, // 1 dies now (finalized once): callbacks 1, 0
        Upgrade { w: 1 },
        Alloc {
            kind: Kind::Leaf,
            via_enter: true,
        },
        Introspect { r: 0 },
    ]
}

#[test]
fn refcount_deaths_run_finalizers_callbacks_and_resurrection_in_order() {
    run(&refcount_cascade(), |m| {
        assert!(m.objs[..3].iter().all(|o| !o.alive), "the cascade freed 0, 1, 2");
        assert!(m.objs[1].finalized && m.objs[2].finalized);
        assert_eq!(m.weaks[0].cb, Cb::Fired);
        assert_eq!(m.weaks[1].cb, Cb::Fired);
        assert_eq!(m.weaks[2].cb, Cb::Dead, "its holder died first: cancelled");
        assert!(m.objs[3].alive);
    });
}

/// Cyclic garbage: a two-node cycle with finalizers, one resurrecting,
/// weak references to it (cleared) and held inside it (never calling back).
fn cycles() -> Vec<Op> {
    use Op::*;
    vec![
        alloc(Kind::FNode),  // 0
        alloc(Kind::FNode),  // 1
        alloc(Kind::Node),   // 2
        Link { a: 0, b: 1 }, // 0 -> 1
        Link { a: 1, b: 0 }, // 1 -> 0
        Link { a: 1, b: 2 }, // 1 -> 2
        Downgrade {
            r: 0,
            holder: None,
            callback: true,
        }, // weak 0 -> 0, harness
        Downgrade {
            r: 2,
            holder: Some(1),
            callback: true,
        }, // weak 1 -> 2, held by 1
        Downgrade {
            r: 1,
            holder: Some(2),
            callback: false,
        },
        Resurrect { r: 1, on: true },
        DropRoot { r: 0 }, // roots [2, 1]
        DropRoot { r: 1 }, // roots [2]: 0 <-> 1 is garbage
        CollectAll,        // finds 0 and 1; 1 resurrects and keeps 0
        Upgrade { w: 0 },  // cleared: fails
        DropRoot { r: 0 }, // 2 lives on through 1's edge
        ClearGraveyard,
        CollectAll, // now 0, 1 and 2 go; weak 1 (held by garbage) never calls back
    ]
}

#[test]
fn cyclic_garbage_clears_weak_refs_finalizes_once_and_honours_resurrection() {
    run(&cycles(), |m| {
        assert!(m.objs.iter().all(|o| !o.alive));
        assert!(m.objs[0].finalized && m.objs[1].finalized);
        assert_eq!(m.weaks[0].cb, Cb::Fired, "cleared by the first collection");
        assert_eq!(m.weaks[1].cb, Cb::Dead, "held by garbage: never calls back");
        assert_eq!(
            m.stats[2],
            (2, 3),
            "the first collection freed nothing (the cycle resurrected), the second 0, 1 and 2"
        );
    });
}

/// Generations: a young collection frees only young garbage, plus old
/// objects that only young garbage kept alive (uncounted); survivors move
/// up; frozen objects are left alone.
fn generations() -> Vec<Op> {
    use Op::*;
    vec![
        SetPolicy { kind: 1, work: 0 }, // manual
        alloc(Kind::Node),              // 0
        AllocChild {
            parent: 0,
            kind: Kind::Node,
        }, // 1 (only through 0)
        CollectGeneration { g: 0 },     // 0 and 1 -> generation 1
        CollectGeneration { g: 1 },     // -> generation 2
        alloc(Kind::Node),              // 2, young
        Link { a: 1, b: 0 },            // 2 -> 0
        Link { a: 1, b: 1 },            // 2 -> 2
        DropRoot { r: 0 },              // 0 only through 2; roots [2]
        DropRoot { r: 0 },              // 2 is young garbage
        CollectGeneration { g: 0 },     // frees 2 (counted), then 0 and 1 by refcount
        alloc(Kind::Node),              // 3
        Freeze,
        Link { a: 0, b: 0 },
        DropRoot { r: 0 }, // 3 is frozen garbage
        CollectAll,        // untouched
        Introspect { r: 0 },
        Unfreeze,
        CollectAll, // now freed
    ]
}

#[test]
fn young_collections_free_young_garbage_and_what_only_it_kept() {
    run(&generations(), |m| {
        assert!(m.objs.iter().all(|o| !o.alive));
        assert_eq!(m.stats[0], (2, 1), "the second young collection counted only 2");
        assert_eq!(m.stats[2].1, 1, "3 was freed by the collection after unfreeze only");
    });
}

/// Automatic collections: low thresholds, the generational policy's
/// choice of generation, then the incremental policy, manual, disabled.
fn automatic() -> Vec<Op> {
    use Op::*;
    let mut ops = vec![SetThreshold { t0: 2, t1: 1, t2: 1 }];
    for i in 0..8 {
        ops.push(alloc(Kind::FNode));
        ops.push(Link { a: i, b: i });
        if i % 3 == 0 {
            ops.push(DropRoot { r: 0 });
        }
        ops.push(Checkpoint);
    }
    ops.extend([
        SetPolicy { kind: 2, work: 3 }, // incremental, tiny budget
        Resurrect { r: 1, on: true },
    ]);
    for i in 0..8 {
        ops.push(AllocChild {
            parent: i,
            kind: Kind::Node,
        });
        ops.push(DropRoot { r: i });
        ops.push(Downgrade {
            r: i,
            holder: Some(i + 1),
            callback: true,
        });
    }
    ops.extend([
        Disable,
        alloc(Kind::Node),
        Enable,
        SetPolicy { kind: 0, work: 0 }, // generational again, long-lived counts unknown
        alloc(Kind::Node),
        alloc(Kind::Node),
        alloc(Kind::Node),
        CollectAll,
        SetThreshold { t0: 0, t1: 0, t2: 0 },
        alloc(Kind::Node),
    ]);
    ops
}

#[test]
fn automatic_collections_follow_the_thresholds_and_the_policy() {
    run(&automatic(), |m| {
        let collections: usize = m.stats.iter().map(|s| s.0).sum();
        assert!(collections >= 5, "automatic collections ran: {:?}", m.stats);
        assert!(m.steps >= 1, "incremental steps ran");
        assert!(m.stats[2].0 >= 1);
    });
}

/// The memory limit: allocations and the first weak reference fail with
/// `LimitExceeded` and change nothing; clearing the limit lets them through.
fn limit() -> Vec<Op> {
    use Op::*;
    vec![
        alloc(Kind::Node),
        Downgrade {
            r: 0,
            holder: None,
            callback: false,
        },
        TryAllocBeyondLimit { kind: Kind::Node },
        TryAllocBeyondLimit { kind: Kind::Leaf },
        Downgrade {
            r: 0,
            holder: None,
            callback: true,
        }, // a record exists: no allocation
        SetLimit { slack: 0 },
        AllocChild {
            parent: 0,
            kind: Kind::FNode,
        },
        SetLimit { slack: 255 },
        alloc(Kind::FLeaf),
        Downgrade {
            r: 1,
            holder: Some(0),
            callback: false,
        },
        ClearLimit,
        Chain {
            parent: 0,
            len: 2,
            finalizer: true,
        },
        CloneRoot { r: 0 },
        Unlink { a: 0, e: 0 },
        ReplaceEdge { a: 0, e: 0, b: 0 },
        UpgradeHeld { a: 0, i: 0 },
        DropHeldWeak { a: 0, i: 0 },
        DropWeak { w: 0 },
    ]
}

#[test]
fn the_memory_limit_refuses_allocations_and_changes_nothing() {
    run(&limit(), |m| {
        assert!(
            !m.objs[1].allocated && !m.objs[2].allocated,
            "both allocations past the limit failed"
        );
        assert!(
            m.objs.iter().filter(|o| o.allocated).count() >= 10,
            "the chain was built after"
        );
    });
}

/// The named sequences, which are also the `ops` fuzz seeds.
fn named() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        ("refcount", refcount_cascade()),
        ("cycles", cycles()),
        ("generations", generations()),
        ("automatic", automatic()),
        ("limit", limit()),
    ]
}

#[test]
fn the_named_sequences_cover_every_operation() {
    let seen: HashSet<_> = named()
        .iter()
        .flat_map(|(_, ops)| ops.iter().map(discriminant))
        .collect();
    assert_eq!(
        seen.len(),
        OP_KINDS,
        "an operation kind is missing from the named sequences"
    );
}

// ---------------------------------------------------------------------------
// Fuzz seeds.
// ---------------------------------------------------------------------------

/// The `arbitrary` encoding of `ops` as the `ops` fuzz target reads it: per
/// operation a continuation byte (1) and the operation; a variant is a
/// little-endian `u32` `x` with `(x * variants) >> 32 == index`, then its
/// fields (`u8`: a byte; `bool`: a byte; `Option`: a bool byte, then the value).
fn encode(ops: &[Op]) -> Vec<u8> {
    fn variant(out: &mut Vec<u8>, index: u64, count: u64) {
        let x = (index << 32).div_ceil(count);
        out.extend_from_slice(&(x as u32).to_le_bytes());
    }
    fn kind(out: &mut Vec<u8>, k: Kind) {
        variant(out, k as u64, 4);
    }
    let mut out = Vec::new();
    for &op in ops {
        out.push(1);
        let b = |v: bool| u8::from(v);
        let (index, fields): (u64, Vec<u8>) = match op {
            Op::Alloc { kind: k, via_enter } => {
                let mut f = Vec::new();
                kind(&mut f, k);
                f.push(b(via_enter));
                (0, f)
            }
            Op::AllocChild { parent, kind: k } => {
                let mut f = vec![parent];
                kind(&mut f, k);
                (1, f)
            }
            Op::Chain { parent, len, finalizer } => (2, vec![parent, len, b(finalizer)]),
            Op::CloneRoot { r } => (3, vec![r]),
            Op::DropRoot { r } => (4, vec![r]),
            Op::Link { a, b } => (5, vec![a, b]),
            Op::Unlink { a, e } => (6, vec![a, e]),
            Op::ReplaceEdge { a, e, b } => (7, vec![a, e, b]),
            Op::Follow { a, e } => (8, vec![a, e]),
            Op::Downgrade { r, holder, callback } => {
                let mut f = vec![r];
                match holder {
                    Some(h) => f.extend([1, h]),
                    None => f.push(0),
                }
                f.push(b(callback));
                (9, f)
            }
            Op::Upgrade { w } => (10, vec![w]),
            Op::UpgradeHeld { a, i } => (11, vec![a, i]),
            Op::DropWeak { w } => (12, vec![w]),
            Op::DropHeldWeak { a, i } => (13, vec![a, i]),
            Op::CollectGeneration { g } => (14, vec![g]),
            Op::CollectAll => (15, vec![]),
            Op::Checkpoint => (16, vec![]),
            Op::Freeze => (17, vec![]),
            Op::Unfreeze => (18, vec![]),
            Op::SetThreshold { t0, t1, t2 } => (19, vec![t0, t1, t2]),
            Op::Enable => (20, vec![]),
            Op::Disable => (21, vec![]),
            Op::SetPolicy { kind, work } => (22, vec![kind, work]),
            Op::SetLimit { slack } => (23, vec![slack]),
            Op::ClearLimit => (24, vec![]),
            Op::TryAllocBeyondLimit { kind: k } => {
                let mut f = Vec::new();
                kind(&mut f, k);
                (25, f)
            }
            Op::Resurrect { r, on } => (26, vec![r, b(on)]),
            Op::ClearGraveyard => (27, vec![]),
            Op::Introspect { r } => (28, vec![r]),
        };
        variant(&mut out, index, OP_KINDS as u64);
        out.extend(fields);
    }
    out
}

fn decode(bytes: &[u8]) -> Vec<Op> {
    Vec::<Op>::arbitrary_take_rest(Unstructured::new(bytes)).expect("decodable")
}

/// The checked-in seeds, by name.
const SEEDS: &[(&str, &[u8])] = &[
    ("refcount", include_bytes!("../fuzz/corpus/ops/seed-refcount")),
    ("cycles", include_bytes!("../fuzz/corpus/ops/seed-cycles")),
    ("generations", include_bytes!("../fuzz/corpus/ops/seed-generations")),
    ("automatic", include_bytes!("../fuzz/corpus/ops/seed-automatic")),
    ("limit", include_bytes!("../fuzz/corpus/ops/seed-limit")),
];

/// Every seed is the encoding of its named sequence (regenerate them with
/// `RCGC_WRITE_SEEDS=1 cargo test --test model fuzz_seeds`), decodes back
/// to it, and passes.
#[test]
fn fuzz_seeds_are_the_named_sequences_and_pass() {
    if std::env::var_os("RCGC_WRITE_SEEDS").is_some() {
        for (name, ops) in named() {
            let path = format!("{}/fuzz/corpus/ops/seed-{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::write(path, encode(&ops)).unwrap();
        }
        return;
    }
    let named = named();
    assert_eq!(SEEDS.len(), named.len());
    for ((seed_name, bytes), (name, ops)) in SEEDS.iter().zip(&named) {
        assert_eq!(seed_name, name);
        assert_eq!(decode(&encode(ops)), *ops, "encode is not decode's inverse for {name}");
        assert_eq!(
            *bytes,
            encode(ops),
            "fuzz/corpus/ops/seed-{name} is stale: regenerate it"
        );
        if !cfg!(miri) {
            // (Under Miri the named tests already run these sequences.)
            Harness::run(&decode(bytes));
        }
    }
}

/// Replays an `ops` fuzz input (a crash file), printing the operations it
/// decodes to: `RCGC_REPLAY=fuzz/artifacts/ops/crash-... cargo test --test
/// model replay -- --ignored --nocapture`.
#[test]
#[ignore = "replays the fuzz input named by RCGC_REPLAY"]
fn replay() {
    let path = std::env::var("RCGC_REPLAY").expect("RCGC_REPLAY names an ops fuzz input");
    let ops = decode(&std::fs::read(path).unwrap());
    println!("{ops:#?}");
    Harness::run(&ops);
}
