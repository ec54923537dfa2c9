//! Helpers shared by several test targets (a module, not a test target).

// Each test target compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::rc::Rc;

use rcgc::Heap;

/// A heap's debug output (where panics in user code are reported), captured.
#[derive(Clone, Default)]
pub struct Sink(Rc<RefCell<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink {
    /// A new sink, installed as `heap`'s debug sink.
    pub fn attach(heap: &Heap) -> Sink {
        let sink = Sink::default();
        heap.set_debug_sink(sink.clone());
        sink
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
}

/// The message of a caught panic (empty for a non-string payload).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// `normal` normally, `miri` under Miri.
pub fn size(normal: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        normal
    }
}

/// Counts events (drops, finalizer runs, calls) through shared handles.
#[derive(Clone, Default)]
pub struct Counter(Rc<Cell<usize>>);

impl Counter {
    /// Events so far.
    pub fn get(&self) -> usize {
        self.0.get()
    }

    /// Records one event.
    pub fn bump(&self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A policy that does what it holds at every `Heap::checkpoint` and never
/// collects on its own: a collection the test can place, which the heap
/// treats as automatic (for tests).
pub struct AtCheckpoint(pub rcgc::collect::Action);

impl AtCheckpoint {
    /// An incremental step of this old-region budget at every checkpoint.
    pub fn steps(budget: usize) -> AtCheckpoint {
        AtCheckpoint(rcgc::collect::Action::Step { budget })
    }
}

impl rcgc::collect::CollectorPolicy for AtCheckpoint {
    fn poll_after(&self, _: &rcgc::collect::PolicyContext) -> Option<usize> {
        None
    }
    fn on_allocation(&mut self, _: &rcgc::collect::PolicyContext) -> rcgc::collect::Action {
        rcgc::collect::Action::Nothing
    }
    fn on_checkpoint(&mut self, _: &rcgc::collect::PolicyContext) -> rcgc::collect::Action {
        self.0
    }
}

/// Proptest's configuration for a suite: `cases` cases (`miri_cases` under
/// Miri), or `PROPTEST_CASES` if set; no failure files.
pub fn proptest_config(cases: u32, miri_cases: u32) -> proptest::test_runner::Config {
    let default = if cfg!(miri) { miri_cases } else { cases };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
