//! Fuzzes a `Heap` through the operation language of the shared reference
//! model (`tests/model/mod.rs`, also driven by proptest in `tests/model.rs`).
//!
//! The input is a sequence of `model::Op`s (decoded with `arbitrary`). The
//! harness runs each operation on a real heap and on the model and compares
//! them after every step: which objects were dropped and finalized, strong
//! and weak counts, weak upgrades and callbacks (exactly once, newest first
//! per object), generation members, `gc_count`, `gc_stats`, `object_count`,
//! the collections run and what they found, the live set after full
//! collections; at the end every object is dropped exactly once. The
//! module's docs list the operations and every check.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/mod.rs"]
mod model;

fuzz_target!(|ops: Vec<model::Op>| {
    model::Harness::run(&ops);
});
