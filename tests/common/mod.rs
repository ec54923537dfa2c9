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

/// A field that counts its owner's drops: it bumps its counter when dropped.
pub struct DropCount(pub Counter);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.bump();
    }
}

// SAFETY: owns no `Gc`.
unsafe impl rcgc::Trace for DropCount {
    const MAY_CONTAIN_GC: bool = false;
    fn trace(&self, _: &mut rcgc::Tracer<'_>) {}
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

/// A list node type for [`drop_deep_untracked_list_on_a_small_stack`].
pub trait ListNode: rcgc::Trace + Sized + 'static {
    /// A node holding `value`, in front of `next`.
    fn new(value: u64, next: Option<rcgc::Gc<Self>>) -> Self;
    /// The value the node holds.
    fn value(&self) -> u64;
}

/// A list node whose handle cannot change, which claims only
/// `FIXED_EDGES` (as the derive does for immutable types it cannot prove
/// acyclic): never tracked, since it points only to untracked nodes, but
/// decided at each allocation, with the 16-byte header.
pub struct Link {
    value: u64,
    next: Option<rcgc::Gc<Link>>,
}

// SAFETY: visits the one handle.
unsafe impl rcgc::Trace for Link {
    const FIXED_EDGES: bool = true;

    fn trace(&self, tracer: &mut rcgc::Tracer<'_>) {
        self.next.trace(tracer);
    }
}

/// The same, declared acyclic: untracked by type, with the 8-byte header.
#[derive(rcgc::Trace)]
#[trace(acyclic)]
pub struct AcyclicLink {
    value: u64,
    next: Option<rcgc::Gc<AcyclicLink>>,
}

macro_rules! list_node {
    ($ty:ident) => {
        impl ListNode for $ty {
            fn new(value: u64, next: Option<rcgc::Gc<$ty>>) -> $ty {
                $ty { value, next }
            }
            fn value(&self) -> u64 {
                self.value
            }
        }
    };
}
list_node!(Link);
list_node!(AcyclicLink);

/// Builds a list of `n` nodes of `N` on a thread with a 256 KiB stack (each
/// node in front of the previous one, so the head is the newest), with a
/// weak reference to every `weak_every`-th node (none for 0), drops its
/// head and returns the heap's object count afterwards. Checks that the
/// head is untracked and holds the last value, and that every weak
/// reference is cleared.
pub fn drop_deep_untracked_list_on_a_small_stack<N: ListNode>(n: u64, weak_every: u64) -> usize {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let heap = Heap::new();
            let mut head: Option<rcgc::Gc<N>> = None;
            let mut weaks = Vec::new();
            for i in 0..n {
                let node = heap.alloc(N::new(i, head.take()));
                if weak_every != 0 && i % weak_every == 0 {
                    weaks.push(rcgc::Gc::downgrade(&node));
                }
                head = Some(node);
            }
            assert_eq!(heap.object_count() as u64, n);
            let first = head.as_ref().unwrap();
            assert!(!heap.is_tracked(first), "the nodes are untracked");
            assert_eq!(first.value(), n - 1);
            drop(head);
            assert!(weaks.iter().all(|w| w.upgrade().is_none()));
            heap.object_count()
        })
        .unwrap()
        .join()
        .unwrap()
}
