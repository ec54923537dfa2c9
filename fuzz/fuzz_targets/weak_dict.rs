//! Fuzzes the weak collections — `WeakValueDictionary`, `WeakKeyDictionary`
//! and `WeakSet`, all three over the same objects at once — through the
//! operation language of the shared reference model
//! (`tests/weak_collections_model/mod.rs`, also driven by proptest in
//! `tests/weak_collections_model.rs`).
//!
//! The input is a sequence of `model::Op`s (decoded with `arbitrary`). The
//! harness runs each operation on the real collections and on `HashMap` /
//! `HashSet` models and compares them after every step: which objects died
//! (a rooted one never, a plain one with its root, a self-cycle only in a
//! collection), each collection's `len()`, lookups and iteration (never a
//! dead object), `Gc::weak_count` (one per entry), the return values of
//! every operation, clones, iteration while objects die, keys and values
//! never dropped early and exactly `len()` left after `release_removed()`;
//! at the end no object, key, value or byte is left. The module's docs list
//! the operations and every check.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/weak_collections_model/mod.rs"]
mod model;

fuzz_target!(|ops: Vec<model::Op>| {
    model::Harness::run(&ops);
});
