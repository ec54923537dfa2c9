//! Behaviour of the cycle collector.
//!
//! One named test per item 1–50 of the CPython checklist
//! (`shared/design/behaviours.md`, from `test_gc.py` and
//! `test_finalization.py`); the item number starts each test's doc comment.
//! Then the collector's own guarantees: cycles through every kind of
//! container, automatic collection, re-entrancy, contained panics, deep
//! structures on a small stack, wrong `Trace` impls, and heap teardown.
//!
//! Objects record their drops (and finalizers their calls) in shared logs, so
//! every test checks what was actually freed, not only what `collect()` says.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use rcgc::collect::{Action, Manual};
use rcgc::{AnyGc, DebugFlags, Finalize, Gc, GcError, GcInfo, GcPhase, Heap, Trace, Tracer, Weak};

mod common;
use common::{panic_message, size, AtCheckpoint, Counter, DropCount, Sink};

// ---------------------------------------------------------------------------
// Test tools
// ---------------------------------------------------------------------------

// SAFETY: owns no `Gc`.
unsafe impl Trace for Counter {
    const MAY_CONTAIN_GC: bool = false;
    fn trace(&self, _: &mut Tracer<'_>) {}
}

/// Every (phase, info) a collection callback saw.
type Collections = Rc<RefCell<Vec<(GcPhase, GcInfo)>>>;

fn record_collections(heap: &Heap) -> Collections {
    let seen = Collections::default();
    let log = seen.clone();
    heap.add_gc_callback(move |phase, info| log.borrow_mut().push((phase, *info)));
    seen
}

/// Collections that finished, according to a recorder.
fn finished(seen: &Collections) -> Vec<GcInfo> {
    seen.borrow()
        .iter()
        .filter(|(phase, _)| *phase == GcPhase::Stop)
        .map(|(_, info)| *info)
        .collect()
}

fn ids(objects: &[AnyGc]) -> HashSet<usize> {
    objects.iter().map(AnyGc::id).collect()
}

/// The generation the collector lists the object in, if any.
fn generation_of<T: Trace + 'static>(heap: &Heap, object: &Gc<T>) -> Option<usize> {
    let id = Gc::id(object);
    (0..3).find(|&g| ids(&heap.objects(Some(g)).unwrap()).contains(&id))
}

/// Total collections of every generation.
fn total_collections(heap: &Heap) -> usize {
    heap.gc_stats().iter().map(|s| s.collections).sum()
}

/// Runs `f` on a thread with a 256 KiB stack.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn a thread")
        .join()
        .expect("the small-stack thread panicked");
}

// ---------------------------------------------------------------------------
// A plain node, for cycles without finalizers
// ---------------------------------------------------------------------------

#[derive(Trace)]
struct Node {
    next: RefCell<Option<Gc<Node>>>,
    other: RefCell<Option<Gc<Node>>>,
    _probe: DropCount,
}

fn node(heap: &Heap, drops: &Counter) -> Gc<Node> {
    heap.alloc(Node {
        next: RefCell::new(None),
        other: RefCell::new(None),
        _probe: DropCount(drops.clone()),
    })
}

fn set_next(from: &Gc<Node>, to: &Gc<Node>) {
    let old = from.next.borrow_mut().replace(to.clone());
    drop(old);
}

/// A node pointing to itself.
fn self_loop(heap: &Heap, drops: &Counter) -> Gc<Node> {
    let n = node(heap, drops);
    set_next(&n, &n);
    n
}

/// Two nodes pointing to each other.
fn two_cycle(heap: &Heap, drops: &Counter) -> (Gc<Node>, Gc<Node>) {
    let (a, b) = (node(heap, drops), node(heap, drops));
    set_next(&a, &b);
    set_next(&b, &a);
    (a, b)
}

// ---------------------------------------------------------------------------
// A miniature Python object model, for items 1–8 and 43
// ---------------------------------------------------------------------------

#[derive(Trace, Clone)]
enum Value {
    Int(i64),
    Text(Gc<str>),
    List(Gc<PyList>),
    Tuple(Gc<PyTuple>),
    Dict(Gc<PyDict>),
    Class(Gc<Class>),
    Object(Gc<Instance>),
    Method(Gc<BoundMethod>),
    Function(Gc<Function>),
    Frame(Gc<Frame>),
}

#[derive(Trace)]
struct PyList {
    items: RefCell<Vec<Value>>,
    _probe: DropCount,
}

impl PyList {
    fn append(&self, value: Value) {
        self.items.borrow_mut().push(value)
    }
}

/// Immutable once built, like a tuple.
#[derive(Trace)]
struct PyTuple {
    items: Vec<Value>,
    _probe: DropCount,
}

#[derive(Trace)]
struct PyDict {
    map: RefCell<HashMap<String, Value>>,
    _probe: DropCount,
}

impl PyDict {
    fn set(&self, key: &str, value: Value) {
        let old = self.map.borrow_mut().insert(key.to_string(), value);
        drop(old);
    }
}

#[derive(Trace)]
struct Class {
    name: String,
    bases: Vec<Gc<Class>>,
    attrs: RefCell<HashMap<String, Value>>,
    _probe: DropCount,
}

impl Class {
    fn set(&self, key: &str, value: Value) {
        let old = self.attrs.borrow_mut().insert(key.to_string(), value);
        drop(old);
    }
}

#[derive(Trace)]
struct Instance {
    class: Gc<Class>,
    attrs: RefCell<HashMap<String, Value>>,
    _probe: DropCount,
}

impl Instance {
    fn set(&self, key: &str, value: Value) {
        let old = self.attrs.borrow_mut().insert(key.to_string(), value);
        drop(old);
    }
}

#[derive(Trace)]
struct BoundMethod {
    receiver: Gc<Instance>,
    name: String,
    _probe: DropCount,
}

/// A function: code (a leaf) and the globals it closes over.
#[derive(Trace)]
struct Function {
    name: String,
    code: Gc<Code>,
    globals: Gc<PyDict>,
    _probe: DropCount,
}

/// Holds no `Gc`: a leaf, never tracked.
#[derive(Trace)]
struct Code {
    source: String,
    _probe: DropCount,
}

#[derive(Trace)]
struct Frame {
    back: Option<Gc<Frame>>,
    locals: RefCell<HashMap<String, Value>>,
    _probe: DropCount,
}

impl Frame {
    fn set(&self, key: &str, value: Value) {
        let old = self.locals.borrow_mut().insert(key.to_string(), value);
        drop(old);
    }
}

/// Allocates the model's objects on one heap, all sharing one drop counter.
struct Py<'h> {
    heap: &'h Heap,
    drops: Counter,
}

impl<'h> Py<'h> {
    fn new(heap: &'h Heap) -> Self {
        Py {
            heap,
            drops: Counter::default(),
        }
    }

    fn probe(&self) -> DropCount {
        DropCount(self.drops.clone())
    }

    fn dropped(&self) -> usize {
        self.drops.get()
    }

    fn list(&self, items: Vec<Value>) -> Gc<PyList> {
        self.heap.alloc(PyList {
            items: RefCell::new(items),
            _probe: self.probe(),
        })
    }

    fn tuple(&self, items: Vec<Value>) -> Gc<PyTuple> {
        self.heap.alloc(PyTuple {
            items,
            _probe: self.probe(),
        })
    }

    fn dict(&self) -> Gc<PyDict> {
        self.heap.alloc(PyDict {
            map: RefCell::new(HashMap::new()),
            _probe: self.probe(),
        })
    }

    fn class(&self, name: &str, bases: Vec<Gc<Class>>) -> Gc<Class> {
        self.heap.alloc(Class {
            name: name.to_string(),
            bases,
            attrs: RefCell::new(HashMap::new()),
            _probe: self.probe(),
        })
    }

    fn instance(&self, class: &Gc<Class>) -> Gc<Instance> {
        self.heap.alloc(Instance {
            class: class.clone(),
            attrs: RefCell::new(HashMap::new()),
            _probe: self.probe(),
        })
    }

    fn text(&self, s: &str) -> Value {
        Value::Text(self.heap.alloc_str(s))
    }
}

// ---------------------------------------------------------------------------
// An object with a finalizer and a log, for items 10–31
// ---------------------------------------------------------------------------

/// What happened to the `Obj`s of one test.
#[derive(Default)]
struct Log {
    finalized: RefCell<Vec<usize>>,
    dropped: RefCell<Vec<usize>>,
    /// Where resurrecting finalizers put their object.
    store: RefCell<Vec<Gc<Obj>>>,
    notes: RefCell<Vec<String>>,
}

impl Log {
    fn finalized(&self) -> Vec<usize> {
        let mut ids = self.finalized.borrow().clone();
        ids.sort_unstable();
        ids
    }

    fn dropped(&self) -> Vec<usize> {
        let mut ids = self.dropped.borrow().clone();
        ids.sort_unstable();
        ids
    }

    fn note(&self, line: impl Into<String>) {
        self.notes.borrow_mut().push(line.into())
    }

    fn notes(&self) -> Vec<String> {
        self.notes.borrow().clone()
    }

    fn stored(&self) -> usize {
        self.store.borrow().len()
    }

    /// Drops the resurrected objects' handles (outside the borrow).
    fn release_store(&self) {
        let store = std::mem::take(&mut *self.store.borrow_mut());
        drop(store);
    }
}

type Hook = Box<dyn Fn(&Gc<Obj>)>;

/// A tracked object whose finalizer logs its id, then runs its hook.
#[derive(Trace)]
#[trace(finalize)]
struct Obj {
    id: usize,
    links: RefCell<Vec<Gc<Obj>>>,
    log: Rc<Log>,
    #[trace(skip)]
    hook: Option<Hook>,
}

impl Finalize for Obj {
    fn finalize(this: &Gc<Self>) {
        this.log.finalized.borrow_mut().push(this.id);
        if let Some(hook) = &this.hook {
            hook(this);
        }
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.log.dropped.borrow_mut().push(self.id);
    }
}

impl Obj {
    fn link(&self, to: &Gc<Obj>) {
        self.links.borrow_mut().push(to.clone());
    }

    /// Drops every link (outside the borrow).
    fn unlink_all(&self) {
        let links = std::mem::take(&mut *self.links.borrow_mut());
        drop(links);
    }
}

fn obj(heap: &Heap, log: &Rc<Log>, id: usize) -> Gc<Obj> {
    heap.alloc(Obj {
        id,
        links: RefCell::new(Vec::new()),
        log: log.clone(),
        hook: None,
    })
}

fn obj_with(heap: &Heap, log: &Rc<Log>, id: usize, hook: impl Fn(&Gc<Obj>) + 'static) -> Gc<Obj> {
    heap.alloc(Obj {
        id,
        links: RefCell::new(Vec::new()),
        log: log.clone(),
        hook: Some(Box::new(hook)),
    })
}

/// A finalizer hook that resurrects the object by storing a handle to it.
fn resurrect(this: &Gc<Obj>) {
    this.log.store.borrow_mut().push(this.clone());
}

/// A ring `0 → 1 → … → n-1 → 0`; node `i` resurrects itself if `resurrects[i]`.
fn obj_ring(heap: &Heap, log: &Rc<Log>, resurrects: &[bool]) -> Vec<Gc<Obj>> {
    let nodes: Vec<Gc<Obj>> = resurrects
        .iter()
        .enumerate()
        .map(|(id, &r)| {
            if r {
                obj_with(heap, log, id, resurrect)
            } else {
                obj(heap, log, id)
            }
        })
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        n.link(&nodes[(i + 1) % nodes.len()]);
    }
    nodes
}

// ===========================================================================
// 1. Cycle detection and the collect() return value
// ===========================================================================

/// Behaviour 1: a list holding itself is garbage once its last handle drops;
/// `collect()` returns exactly 1.
#[test]
fn b01_a_list_holding_itself_is_collected_and_counted_once() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let l = py.list(vec![]);
    l.append(Value::List(l.clone()));
    drop(l);
    assert_eq!(py.dropped(), 0, "reference counting alone cannot free a cycle");
    assert_eq!(heap.collect(), 1);
    assert_eq!(py.dropped(), 1);
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
}

/// Behaviour 2: a map holding itself as a value: `collect()` == 1.
#[test]
fn b02_a_dict_holding_itself_is_collected() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let d = py.dict();
    d.set("self", Value::Dict(d.clone()));
    d.set("n", Value::Int(1));
    drop(d);
    assert_eq!(heap.collect(), 1);
    assert_eq!(py.dropped(), 1);
}

/// Behaviour 3: a cycle through an immutable container closed by a mutable
/// one (tuple ↔ list): both are found, `collect()` == 2.
#[test]
fn b03_a_tuple_list_cycle_is_collected() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let l = py.list(vec![]);
    let t = py.tuple(vec![Value::List(l.clone()), Value::Int(7)]);
    l.append(Value::Tuple(t.clone()));
    drop((l, t));
    assert_eq!(heap.collect(), 2);
    assert_eq!(py.dropped(), 2);
}

/// Behaviour 4: an object whose field points to itself is collected, and a
/// second `collect()` right after returns 0.
#[test]
fn b04_an_instance_pointing_to_itself_is_collected_once() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let cls = py.class("A", vec![]);
    let a = py.instance(&cls);
    a.set("a", Value::Object(a.clone()));
    drop(a);
    assert_eq!(heap.collect(), 1);
    assert_eq!(heap.collect(), 0, "nothing left over, nothing counted twice");
    assert_eq!(py.dropped(), 1);
    assert_eq!(cls.name, "A", "the class is still held");
}

/// Behaviour 5: class objects in cycles (a class attribute pointing at the
/// class, a subclass registry, instances pointing at their class) are collected.
#[test]
fn b05_class_objects_in_cycles_are_collected() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    // class A: pass; A.a = A
    let a = py.class("A", vec![]);
    a.set("a", Value::Class(a.clone()));
    drop(a);
    assert_eq!(heap.collect(), 1);
    assert_eq!(py.dropped(), 1);

    // class B(A), registered in A's subclass list; an instance of B holding itself.
    let a = py.class("A", vec![]);
    let b = py.class("B", vec![a.clone()]);
    a.set("__subclasses__", Value::List(py.list(vec![Value::Class(b.clone())])));
    let inst = py.instance(&b);
    inst.set("me", Value::Object(inst.clone()));
    assert_eq!(inst.class.bases.len(), 1);
    drop((a, b, inst));
    assert_eq!(heap.collect(), 4, "A, B, the subclass list and the instance");
    assert_eq!(heap.collect(), 0);
    assert_eq!(py.dropped(), 5);
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 6: a cycle through a bound method (instance → stored bound
/// method → instance) is found.
#[test]
fn b06_a_bound_method_cycle_is_collected() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let cls = py.class("C", vec![]);
    let inst = py.instance(&cls);
    let method = heap.alloc(BoundMethod {
        receiver: inst.clone(),
        name: "f".to_string(),
        _probe: py.probe(),
    });
    assert_eq!(method.name, "f");
    inst.set("f", Value::Method(method));
    drop(inst);
    assert_eq!(heap.collect(), 2);
    assert_eq!(py.dropped(), 2);
    assert_eq!(Gc::strong_count(&cls), 1, "the class survives");
}

/// Behaviour 7: a function ↔ globals cycle is found: 2 tracked objects; the
/// code object is a leaf, freed by reference counting as the cycle goes.
#[test]
fn b07_a_function_globals_cycle_is_collected() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let globals = py.dict();
    let code = heap.alloc(Code {
        source: "return 1".to_string(),
        _probe: py.probe(),
    });
    assert!(!heap.is_tracked(&code), "code holds no Gc: a leaf");
    let f = heap.alloc(Function {
        name: "f".to_string(),
        code: code.clone(),
        globals: globals.clone(),
        _probe: py.probe(),
    });
    assert_eq!((f.name.as_str(), f.code.source.as_str()), ("f", "return 1"));
    globals.set("f", Value::Function(f.clone()));
    drop((globals, code, f));
    assert_eq!(heap.collect(), 2, "function and globals");
    assert_eq!(py.dropped(), 3, "function, globals and code are all freed");
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 8: a frame that references itself through a local is
/// collected, `collect()` == 1; the frame it came from is not.
#[test]
fn b08_a_frame_referencing_itself_is_collected() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let outer = heap.alloc(Frame {
        back: None,
        locals: RefCell::new(HashMap::new()),
        _probe: py.probe(),
    });
    let frame = heap.alloc(Frame {
        back: Some(outer.clone()),
        locals: RefCell::new(HashMap::new()),
        _probe: py.probe(),
    });
    frame.set("me", Value::Frame(frame.clone()));
    frame.set("greeting", py.text("hello"));
    drop(frame);
    assert_eq!(heap.collect(), 1);
    assert_eq!(py.dropped(), 1);
    assert!(outer.back.is_none() && outer.locals.borrow().is_empty());
}

/// An object whose `Trace` logs its calls and whose `Drop` mutates the
/// garbage graph (like `test_boom`'s `__getattr__` doing `del self.attr`).
struct Boom {
    partner: RefCell<Option<Gc<Boom>>>,
    events: Rc<RefCell<Vec<&'static str>>>,
}

// SAFETY: reports its one handle; the event log is a side effect that touches no handle.
unsafe impl Trace for Boom {
    fn trace(&self, tracer: &mut Tracer<'_>) {
        self.events.borrow_mut().push("trace");
        self.partner.trace(tracer);
    }
}

impl Drop for Boom {
    fn drop(&mut self) {
        self.events.borrow_mut().push("drop");
        if let Some(partner) = self.partner.get_mut().take() {
            let back = partner.partner.borrow_mut().take();
            drop(back);
        }
    }
}

/// Behaviour 9: the collector runs no user code but `Trace` while it decides
/// what is garbage: every `Trace` call comes before the first `Drop`, even
/// though `Drop` mutates the garbage graph; the 2-cycle is still counted 2
/// and `garbage()` is unchanged.
#[test]
fn b09_detection_runs_no_user_code_but_trace() {
    let heap = Heap::new();
    let events = Rc::new(RefCell::new(Vec::new()));
    let a = heap.alloc(Boom {
        partner: RefCell::new(None),
        events: events.clone(),
    });
    let b = heap.alloc(Boom {
        partner: RefCell::new(Some(a.clone())),
        events: events.clone(),
    });
    *a.partner.borrow_mut() = Some(b.clone());
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    assert!(heap.garbage().is_empty());
    let events = events.borrow();
    let first_drop = events.iter().position(|e| *e == "drop").expect("dropped");
    assert!(first_drop >= 2, "both objects were traced: {events:?}");
    assert!(
        !events[first_drop..].contains(&"trace"),
        "no Trace after user code: {events:?}"
    );
    assert_eq!(events.iter().filter(|e| **e == "drop").count(), 2);
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 10: collecting a cycle whose member's finalizer writes into the
/// cycle (`self.attr = None`) causes no crash or UB, in either order.
#[test]
fn b10_a_finalizer_writing_into_its_cycle_is_safe() {
    for b_first in [false, true] {
        let heap = Heap::new();
        let log = Rc::new(Log::default());
        // B's finalizer drops its link to A (its last link); B also holds an acyclic x.
        let breaks_cycle = |this: &Gc<Obj>| {
            let last = this.links.borrow_mut().pop();
            drop(last);
        };
        let (a, b) = if b_first {
            let b = obj_with(&heap, &log, 2, breaks_cycle);
            (obj(&heap, &log, 1), b)
        } else {
            let a = obj(&heap, &log, 1);
            (a, obj_with(&heap, &log, 2, breaks_cycle))
        };
        let x = obj(&heap, &log, 3);
        b.link(&x);
        b.link(&a);
        a.link(&b);
        drop((a, b, x));
        heap.collect();
        assert_eq!(log.dropped(), [1, 2, 3]);
        assert_eq!(log.finalized(), [1, 2, 3], "each finalizer once");
        assert_eq!(heap.collect(), 0);
        assert_eq!(heap.object_count(), 0);
    }
}

/// Weak references made by finalizers, with the id they should lead to.
type LateWeakRefs = Rc<RefCell<Vec<(usize, Weak<Watcher>)>>>;

/// Two watchers in a cycle: each finalizer takes a weak reference to its
/// peer, and each `Drop` upgrades those weak references and reads through
/// them, recording what it saw.
#[derive(Trace)]
#[trace(finalize)]
struct Watcher {
    id: usize,
    peer: RefCell<Option<Gc<Watcher>>>,
    #[trace(skip)]
    late_weak_refs: LateWeakRefs,
    #[trace(skip)]
    seen: Rc<RefCell<Vec<String>>>,
}

impl Finalize for Watcher {
    fn finalize(this: &Gc<Self>) {
        let peer = this.peer.borrow().clone();
        if let Some(peer) = peer {
            this.late_weak_refs.borrow_mut().push((peer.id, Gc::downgrade(&peer)));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let weak_refs = self.late_weak_refs.borrow().clone();
        for (expected, weak) in &weak_refs {
            let seen = match weak.upgrade() {
                None => "cleared".to_string(),
                Some(strong) => match Gc::try_deref(&strong) {
                    None => "dead".to_string(),
                    Some(value) if value.id == *expected => "intact".to_string(),
                    Some(value) => format!("INCONSISTENT: expected {expected}, read {}", value.id),
                },
            };
            self.seen.borrow_mut().push(seen);
        }
    }
}

/// Behaviour 11: a weak reference created late, inside a finalizer, to a
/// garbage object gives, while the garbage is torn down, either nothing, a
/// dead handle or the intact object (never freed or half-dropped memory),
/// and is dead once the collection is over.
#[test]
fn b11_weak_refs_made_in_finalizers_never_expose_torn_down_objects() {
    let heap = Heap::new();
    let late = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let watcher = |id| {
        heap.alloc(Watcher {
            id,
            peer: RefCell::new(None),
            late_weak_refs: late.clone(),
            seen: seen.clone(),
        })
    };
    let (a, b) = (watcher(1), watcher(2));
    *a.peer.borrow_mut() = Some(b.clone());
    *b.peer.borrow_mut() = Some(a.clone());
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    assert_eq!(late.borrow().len(), 2, "both finalizers made a weak reference");
    for (_, weak) in late.borrow().iter() {
        assert!(weak.upgrade().is_none(), "read as dead once the collection is over");
    }
    let seen = seen.borrow();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| !s.starts_with("INCONSISTENT")), "{seen:?}");
    assert_eq!(heap.object_count(), 0);
}

// ===========================================================================
// 2. Finalizers and resurrection (PEP 442)
// ===========================================================================

/// Behaviour 12: an acyclic object's finalizer runs exactly once when its
/// last handle drops; its weak reference is dead afterwards, and a later
/// `collect()` does not run it again.
#[test]
fn b12_an_acyclic_finalizer_runs_once() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let x = obj(&heap, &log, 1);
    let weak = Gc::downgrade(&x);
    drop(x);
    assert_eq!(log.finalized(), [1]);
    assert_eq!(log.dropped(), [1]);
    assert!(weak.upgrade().is_none());
    assert_eq!(heap.collect(), 0);
    assert_eq!(log.finalized(), [1]);
}

/// Behaviour 13: an acyclic object whose finalizer resurrects it survives,
/// and its weak reference still works (reference-count path). Once dropped
/// again, it is freed without a second finalizer call.
#[test]
fn b13_an_acyclic_resurrection_keeps_weak_refs_and_finalizes_once() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let x = obj_with(&heap, &log, 1, resurrect);
    let weak = Gc::downgrade(&x);
    drop(x);
    assert_eq!(log.finalized(), [1]);
    assert!(log.dropped().is_empty(), "resurrected");
    assert_eq!(log.stored(), 1);
    let back = weak
        .upgrade()
        .expect("weak references survive a refcount-path resurrection");
    assert!(heap.is_finalized(&back));
    drop(back);
    log.release_store();
    assert_eq!(log.finalized(), [1], "no second finalizer call");
    assert_eq!(log.dropped(), [1]);
    assert!(weak.upgrade().is_none());
    assert_eq!(heap.object_count(), 0);
}

/// A leaf (never tracked) with a finalizer that resurrects it.
#[derive(Trace)]
#[trace(finalize)]
struct LeafWithFinalizer {
    calls: Counter,
    // Skipped only because the derive counts any field type naming `Gc` as
    // "may contain a Gc"; an `Rc` is opaque to the collector anyway.
    #[trace(skip)]
    store: Rc<RefCell<Vec<Gc<LeafWithFinalizer>>>>,
    _probe: DropCount,
}

impl Finalize for LeafWithFinalizer {
    fn finalize(this: &Gc<Self>) {
        this.calls.bump();
        this.store.borrow_mut().push(this.clone());
    }
}

/// Behaviour 14: finalizers run at most once for every object, leaves
/// included (our rule, `docs/differences.md`; CPython runs a non-GC
/// object's finalizer again after each resurrection).
#[test]
fn b14_leaf_finalizers_also_run_at_most_once() {
    let heap = Heap::new();
    let calls = Counter::default();
    let drops = Counter::default();
    let store = Rc::new(RefCell::new(Vec::new()));
    let x = heap.alloc(LeafWithFinalizer {
        calls: calls.clone(),
        store: store.clone(),
        _probe: DropCount(drops.clone()),
    });
    assert!(!heap.is_tracked(&x), "a leaf");
    let weak = Gc::downgrade(&x);
    drop(x);
    assert_eq!((calls.get(), drops.get()), (1, 0), "resurrected");
    assert!(weak.upgrade().is_some());
    let survivor = store.borrow_mut().pop().unwrap();
    drop(survivor);
    assert_eq!((calls.get(), drops.get()), (1, 1), "freed without a second call");
    assert!(weak.upgrade().is_none());
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 15: a self-cycle with a finalizer is collected; the finalizer
/// runs once, the weak reference is dead and `garbage()` stays empty.
#[test]
fn b15_a_self_cycle_with_a_finalizer_is_collected() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let x = obj(&heap, &log, 1);
    x.link(&x);
    let weak = Gc::downgrade(&x);
    drop(x);
    assert_eq!(heap.collect(), 1);
    assert_eq!(log.finalized(), [1]);
    assert_eq!(log.dropped(), [1]);
    assert!(weak.upgrade().is_none());
    assert!(heap.garbage().is_empty());
    assert_eq!(heap.collect(), 0);
    assert_eq!(log.finalized(), [1]);
}

/// Behaviour 16: a self-cycle whose finalizer resurrects it survives, but
/// its weak references were already cleared (cyclic garbage clears weak
/// references before finalizers). Dropped again, it is freed without a
/// second finalizer call.
#[test]
fn b16_a_resurrected_self_cycle_has_its_weak_refs_cleared() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let x = obj_with(&heap, &log, 1, resurrect);
    x.link(&x);
    let weak = Gc::downgrade(&x);
    drop(x);
    assert_eq!(heap.collect(), 0, "resurrected objects are not counted");
    assert_eq!(log.finalized(), [1]);
    assert!(log.dropped().is_empty());
    assert!(weak.upgrade().is_none(), "cleared although the object lives");
    let survivor = log.store.borrow()[0].clone();
    assert_eq!(survivor.id, 1);
    assert!(Gc::ptr_eq(&survivor.links.borrow()[0], &survivor), "intact");
    drop(survivor);
    log.release_store();
    assert_eq!(heap.collect(), 1);
    assert_eq!(log.finalized(), [1], "no second finalizer call");
    assert_eq!(log.dropped(), [1]);
}

/// Behaviour 17: a finalizer that breaks its own cycle while it runs: the
/// object is freed once and its weak reference is dead.
#[test]
fn b17_a_finalizer_breaking_its_own_cycle_is_freed_once() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let x = obj_with(&heap, &log, 1, |this| this.unlink_all());
    x.link(&x);
    let weak = Gc::downgrade(&x);
    drop(x);
    let stats_before = heap.gc_stats()[2].collected;
    let found = heap.collect();
    assert!(found <= 1);
    assert_eq!(
        heap.gc_stats()[2].collected - stats_before,
        found,
        "stats agree with collect()"
    );
    assert_eq!(log.finalized(), [1]);
    assert_eq!(log.dropped(), [1]);
    assert!(weak.upgrade().is_none());
    assert_eq!(heap.collect(), 0);
    assert_eq!(log.finalized(), [1]);
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 18: in a 3-node ring with finalizers, every finalizer runs once,
/// all weak references are dead and `garbage()` stays empty.
#[test]
fn b18_a_ring_with_finalizers_is_collected() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let ring = obj_ring(&heap, &log, &[false; 3]);
    let weak_refs: Vec<Weak<Obj>> = ring.iter().map(Gc::downgrade).collect();
    drop(ring);
    assert_eq!(heap.collect(), 3);
    assert_eq!(log.finalized(), [0, 1, 2]);
    assert_eq!(log.dropped(), [0, 1, 2]);
    assert!(weak_refs.iter().all(|w| w.upgrade().is_none()));
    assert!(heap.garbage().is_empty());
    assert_eq!(heap.collect(), 0);
    assert_eq!(log.finalized(), [0, 1, 2]);
}

/// What the finalizers of a doubly linked ring saw.
#[derive(Default)]
struct ChainLog {
    finalized: RefCell<Vec<usize>>,
    dropped: RefCell<Vec<usize>>,
    problems: RefCell<Vec<String>>,
    /// For each finalizer call: how many ring members had been dropped.
    drops_seen: RefCell<Vec<usize>>,
}

/// `test_finalization`'s `ChainedBase`: a doubly linked ring node whose
/// finalizer checks its neighbours and, if suicidal, breaks its links.
#[derive(Trace)]
#[trace(finalize)]
struct Chained {
    id: usize,
    suicidal: bool,
    suicided: Cell<bool>,
    left: RefCell<Option<Gc<Chained>>>,
    right: RefCell<Option<Gc<Chained>>>,
    log: Rc<ChainLog>,
}

impl Chained {
    /// A neighbour is intact and points back to us, or has explicitly broken its links.
    fn check_neighbour(this: &Gc<Chained>, side: &str) {
        let link = if side == "left" { &this.left } else { &this.right };
        let Some(neighbour) = link.borrow().clone() else {
            this.log
                .problems
                .borrow_mut()
                .push(format!("{}: {side} link missing", this.id));
            return;
        };
        if !Gc::is_alive(&neighbour) {
            this.log
                .problems
                .borrow_mut()
                .push(format!("{}: {side} neighbour torn down", this.id));
            return;
        }
        let back = if side == "left" {
            &neighbour.right
        } else {
            &neighbour.left
        };
        let back = back.borrow().clone();
        let ok = if neighbour.suicided.get() {
            back.is_none()
        } else {
            back.is_some_and(|b| Gc::ptr_eq(&b, this))
        };
        if !ok {
            this.log
                .problems
                .borrow_mut()
                .push(format!("{}: {side} neighbour {} half-torn", this.id, neighbour.id));
        }
    }
}

impl Finalize for Chained {
    fn finalize(this: &Gc<Self>) {
        let log = &this.log;
        log.finalized.borrow_mut().push(this.id);
        let dropped = log.dropped.borrow().len();
        log.drops_seen.borrow_mut().push(dropped);
        Chained::check_neighbour(this, "left");
        Chained::check_neighbour(this, "right");
        if this.suicidal {
            this.suicided.set(true);
            let left = this.left.borrow_mut().take();
            let right = this.right.borrow_mut().take();
            drop((left, right));
        }
    }
}

impl Drop for Chained {
    fn drop(&mut self) {
        self.log.dropped.borrow_mut().push(self.id);
    }
}

/// Behaviour 19: all finalizers of a garbage batch run before any member is
/// torn down, so each finalizer sees its neighbours intact or explicitly
/// broken by their own finalizer, never half-torn (homogeneous and
/// heterogeneous suicidal rings).
#[test]
fn b19_finalizers_see_their_neighbours_intact_or_explicitly_broken() {
    let patterns: [&[bool]; 6] = [
        &[false, false, false],
        &[true, true, true],
        &[true, false, false],
        &[true, true, false],
        &[false, true, false, true, false],
        &[true, false, true, false, true, true],
    ];
    for pattern in patterns {
        let heap = Heap::new();
        let log = Rc::new(ChainLog::default());
        let nodes: Vec<Gc<Chained>> = pattern
            .iter()
            .enumerate()
            .map(|(id, &suicidal)| {
                heap.alloc(Chained {
                    id,
                    suicidal,
                    suicided: Cell::new(false),
                    left: RefCell::new(None),
                    right: RefCell::new(None),
                    log: log.clone(),
                })
            })
            .collect();
        let n = nodes.len();
        for i in 0..n {
            *nodes[i].right.borrow_mut() = Some(nodes[(i + 1) % n].clone());
            *nodes[(i + 1) % n].left.borrow_mut() = Some(nodes[i].clone());
        }
        let weak_refs: Vec<Weak<Chained>> = nodes.iter().map(Gc::downgrade).collect();
        drop(nodes);
        let found = heap.collect();
        if !pattern.contains(&true) {
            assert_eq!(found, n);
            assert!(
                log.drops_seen.borrow().iter().all(|&d| d == 0),
                "{pattern:?}: no member was torn down before every finalizer ran"
            );
        }
        let mut finalized = log.finalized.borrow().clone();
        finalized.sort_unstable();
        assert_eq!(
            finalized,
            (0..n).collect::<Vec<_>>(),
            "{pattern:?}: each finalizer once"
        );
        assert!(
            log.problems.borrow().is_empty(),
            "{pattern:?}: {:?}",
            log.problems.borrow()
        );
        assert_eq!(log.dropped.borrow().len(), n, "{pattern:?}");
        assert!(weak_refs.iter().all(|w| w.upgrade().is_none()));
        assert_eq!(heap.collect(), 0);
        assert_eq!(log.finalized.borrow().len(), n, "{pattern:?}: no second call");
        assert_eq!(heap.object_count(), 0);
    }
}

/// Behaviour 20: in a ring where some nodes resurrect, every finalizer runs
/// once, the whole ring survives and all weak references are cleared; once
/// the survivors are released everything is freed with no second call.
#[test]
fn b20_a_partly_resurrecting_ring_survives_whole() {
    let patterns: [&[bool]; 5] = [
        &[true, true, true],
        &[true, false, false],
        &[false, true, true],
        &[false, false, false, true],
        &[true, false, true, false],
    ];
    for pattern in patterns {
        let heap = Heap::new();
        let log = Rc::new(Log::default());
        let ring = obj_ring(&heap, &log, pattern);
        let n = ring.len();
        let weak_refs: Vec<Weak<Obj>> = ring.iter().map(Gc::downgrade).collect();
        drop(ring);
        assert_eq!(heap.collect(), 0, "{pattern:?}: nothing freed");
        assert_eq!(log.finalized(), (0..n).collect::<Vec<_>>(), "{pattern:?}");
        assert!(log.dropped().is_empty(), "{pattern:?}: the whole ring survives");
        assert!(weak_refs.iter().all(|w| w.upgrade().is_none()), "{pattern:?}");
        // The ring is intact: following links from a survivor visits all n.
        let mut at = log.store.borrow()[0].clone();
        for _ in 0..n {
            let next = at.links.borrow()[0].clone();
            assert!(Gc::is_alive(&next));
            at = next;
        }
        drop(at);
        log.release_store();
        assert_eq!(heap.collect(), n, "{pattern:?}");
        assert_eq!(
            log.finalized(),
            (0..n).collect::<Vec<_>>(),
            "{pattern:?}: no second call"
        );
        assert_eq!(log.dropped(), (0..n).collect::<Vec<_>>());
        assert_eq!(heap.object_count(), 0);
    }
}

/// Behaviour 21: a finalizer runs at most once per object even if it
/// resurrects; the next collection frees the object without calling it.
#[test]
fn b21_resurrection_happens_only_once_per_object() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let lazarus = obj_with(&heap, &log, 1, resurrect);
    lazarus.link(&lazarus);
    drop(lazarus);
    assert_eq!(heap.collect(), 0);
    assert_eq!(log.finalized(), [1]);
    assert_eq!(log.stored(), 1);
    log.release_store();
    assert_eq!(heap.collect(), 1);
    assert_eq!(log.finalized(), [1], "not resurrected again");
    assert_eq!(log.stored(), 0);
    assert_eq!(log.dropped(), [1]);
}

/// Behaviour 22: resurrection is transitive: everything reachable from a
/// resurrected object stays alive with its fields intact, pointing to the
/// same objects.
#[test]
fn b22_resurrection_keeps_the_reachable_subgraph_intact() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let lazarus = obj_with(&heap, &log, 1, resurrect);
    let cargo = obj(&heap, &log, 2);
    let deep = obj(&heap, &log, 3);
    let deeper = obj(&heap, &log, 4);
    cargo.link(&cargo);
    lazarus.link(&cargo);
    cargo.link(&lazarus);
    cargo.link(&deep);
    deep.link(&deeper);
    deeper.link(&deep);
    let cargo_id = Gc::id(&cargo);
    let deep_id = Gc::id(&deep);
    let deeper_id = Gc::id(&deeper);
    drop((lazarus, cargo, deep, deeper));
    assert_eq!(heap.collect(), 0);
    assert_eq!(log.finalized(), [1, 2, 3, 4], "every garbage object was finalized");
    assert!(log.dropped().is_empty(), "nothing was freed");
    let lazarus = log.store.borrow_mut().pop().unwrap();
    let cargo = lazarus.links.borrow()[0].clone();
    assert_eq!(Gc::id(&cargo), cargo_id);
    let cargo_links: Vec<usize> = cargo.links.borrow().iter().map(Gc::id).collect();
    assert_eq!(cargo_links, [cargo_id, Gc::id(&lazarus), deep_id]);
    let deep = cargo.links.borrow()[2].clone();
    assert_eq!(deep.id, 3);
    assert_eq!(Gc::id(&deep.links.borrow()[0]), deeper_id);
    assert_eq!(deep.links.borrow()[0].links.borrow()[0].id, 3);
    for o in [&lazarus, &cargo, &deep] {
        assert!(Gc::is_alive(o));
    }
    drop((lazarus, cargo, deep));
    assert_eq!(heap.collect(), 4);
    assert_eq!(log.dropped(), [1, 2, 3, 4]);
    assert_eq!(log.finalized(), [1, 2, 3, 4]);
}

/// Behaviour 23: `collect()` and the statistics count only objects actually
/// freed: N self-cycles → N; a lone resurrector → 0 (stats +0); N plus one
/// resurrector → N; releasing the two survivors → 2.
#[test]
fn b23_counts_exclude_resurrected_objects() {
    let n = size(100, 5);
    let heap = Heap::new();
    let _manual = heap.disabled();
    let log = Rc::new(Log::default());
    let stats = || {
        let s = heap.gc_stats()[2];
        (s.collected, s.uncollectable)
    };
    let self_loop = |id: usize, resurrects: bool| {
        let o = if resurrects {
            obj_with(&heap, &log, id, resurrect)
        } else {
            obj(&heap, &log, id)
        };
        o.link(&o);
    };
    heap.collect();

    let (c0, u0) = stats();
    for i in 0..n {
        self_loop(i, false);
    }
    assert_eq!(heap.collect(), n);
    let (c1, u1) = stats();
    assert_eq!((c1 - c0, u1 - u0), (n, 0));

    self_loop(1000, true);
    assert_eq!(heap.collect(), 0, "a resurrected object is not collected");
    let (c2, u2) = stats();
    assert_eq!((c2 - c1, u2 - u1), (0, 0));

    for i in 0..n {
        self_loop(2000 + i, false);
    }
    self_loop(3000, true);
    assert_eq!(heap.collect(), n, "a resurrector does not block the others");
    let (c3, u3) = stats();
    assert_eq!((c3 - c2, u3 - u2), (n, 0));

    assert_eq!(log.stored(), 2);
    log.release_store();
    assert_eq!(heap.collect(), 2);
    let (c4, u4) = stats();
    assert_eq!((c4 - c3, u4 - u3), (2, 0));
    assert_eq!(log.dropped().len(), 2 * n + 2);
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 24: `is_finalized` is false before and true after the
/// finalizer ran (on a resurrected object), and false for untracked values.
#[test]
fn b24_is_finalized_reports_the_finalized_flag() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let lazarus = obj_with(&heap, &log, 1, resurrect);
    lazarus.link(&lazarus);
    assert!(!heap.is_finalized(&lazarus));
    drop(lazarus);
    heap.collect();
    let lazarus = log.store.borrow()[0].clone();
    assert!(heap.is_finalized(&lazarus));
    let any = Gc::to_any(&lazarus).unwrap();
    assert!(heap.is_finalized(&any));
    assert!(!heap.is_finalized(&heap.alloc(3u64)));
    assert!(!heap.is_finalized(&heap.alloc_str("text")));
    drop((lazarus, any));
    log.release_store();
    assert_eq!(heap.collect(), 1);
}

/// Behaviour 25: an old object kept alive only by young cyclic garbage is
/// freed when that garbage is torn down; its finalizer runs, and a weak
/// reference it reads that pointed into the garbage is already dead.
#[test]
fn b25_an_old_object_freed_by_young_garbage_sees_its_weak_refs_cleared() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let c2_weak: Rc<RefCell<Weak<Obj>>> = Rc::default();
    let reader = c2_weak.clone();
    let d = obj_with(&heap, &log, 0, move |this| {
        let alive = reader.borrow().upgrade().is_some();
        this.log.note(format!("c2wr alive: {alive}"));
    });
    heap.collect();
    assert_eq!(generation_of(&heap, &d), Some(2), "d is old");

    let c1 = obj(&heap, &log, 1);
    c1.link(&d);
    drop(d);
    let c2 = obj(&heap, &log, 2);
    *c2_weak.borrow_mut() = Gc::downgrade(&c2);
    c1.link(&c2);
    c2.link(&c1);
    drop((c1, c2));

    assert_eq!(heap.collect_generation(0), Ok(2), "only the young cycle is garbage");
    assert_eq!(log.notes(), ["c2wr alive: false"]);
    assert_eq!(log.dropped(), [0, 1, 2], "the old object went with it");
    assert!(c2_weak.borrow().upgrade().is_none());
}

/// Behaviour 26: cycles with finalizers are never uncollectable:
/// `garbage()` stays empty and every `uncollectable` count is 0 (adapted:
/// rcgc has no legacy finalizers, see `docs/differences.md`).
#[test]
fn b26_cycles_with_finalizers_are_never_uncollectable() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let seen = record_collections(&heap);
    for id in 0..4 {
        let a = obj(&heap, &log, 2 * id);
        let b = obj(&heap, &log, 2 * id + 1);
        a.link(&b);
        b.link(&a);
    }
    assert_eq!(heap.collect(), 8);
    assert!(heap.garbage().is_empty());
    assert!(heap.gc_stats().iter().all(|s| s.uncollectable == 0));
    assert!(finished(&seen).iter().all(|info| info.uncollectable == 0));
    assert_eq!(log.dropped().len(), 8);
}

/// Behaviour 27: dropping the heap runs a final collection that finalizes
/// and frees its garbage cycles.
#[test]
fn b27_dropping_the_heap_finalizes_its_garbage_cycles() {
    let log = Rc::new(Log::default());
    let heap = Heap::new();
    let ring = obj_ring(&heap, &log, &[false; 4]);
    let weak = Gc::downgrade(&ring[0]);
    drop(ring);
    drop(heap);
    assert_eq!(log.finalized(), [0, 1, 2, 3]);
    assert_eq!(log.dropped(), [0, 1, 2, 3]);
    assert!(weak.upgrade().is_none());
}

/// Behaviour 27: on an early exit (a panic unwinding through the scope that
/// owns the heap), the cycles that were alive through the scope's handles
/// are finalized when the heap drops.
#[test]
fn b27_an_early_exit_finalizes_the_cycles_alive_through_its_handles() {
    let log = Rc::new(Log::default());
    let inner_log = log.clone();
    let result = catch_unwind(AssertUnwindSafe(move || {
        let heap = Heap::new();
        let ring = obj_ring(&heap, &inner_log, &[false; 3]);
        let globals = obj(&heap, &inner_log, 10);
        globals.link(&ring[0]);
        ring[0].link(&globals);
        // Unwinding drops `globals` and `ring` (now cyclic garbage), then the heap.
        panic!("early exit");
    }));
    assert_eq!(panic_message(&*result.unwrap_err()), "early exit");
    assert_eq!(log.finalized(), [0, 1, 2, 10]);
    assert_eq!(log.dropped(), [0, 1, 2, 10]);
}

/// Behaviour 27: a cycle still held by a handle when the heap drops is not
/// finalized (our rule): the handle stays valid and the objects work as
/// before. (With no heap left to collect it, the program breaks the cycle.)
#[test]
fn b27_live_handles_outlive_their_heap() {
    let log = Rc::new(Log::default());
    let heap = Heap::new();
    let a = obj(&heap, &log, 1);
    let b = obj(&heap, &log, 2);
    a.link(&b);
    b.link(&a);
    let weak_b = Gc::downgrade(&b);
    drop(b);
    let garbage = obj(&heap, &log, 3);
    garbage.link(&garbage);
    drop(garbage);
    drop(heap);
    assert_eq!(log.finalized(), [3], "only the garbage was finalized");
    assert_eq!(log.dropped(), [3]);

    assert_eq!(a.id, 1);
    let b = weak_b.upgrade().expect("b is alive through a");
    assert!(Gc::ptr_eq(&a.links.borrow()[0], &b));
    assert!(Gc::ptr_eq(&b.links.borrow()[0], &a));
    let weak_a = Gc::downgrade(&a);
    let a2 = a.clone();
    drop(b);
    a.unlink_all(); // b dies: its count reaches zero
    assert_eq!(log.finalized(), [2, 3]);
    drop((a, a2));
    assert_eq!(log.finalized(), [1, 2, 3]);
    assert_eq!(log.dropped(), [1, 2, 3]);
    assert!(weak_a.upgrade().is_none() && weak_b.upgrade().is_none());
}

/// Behaviour 28: objects kept in `garbage()` by `SAVEALL` are released
/// when the heap drops (adapted: rcgc has no uncollectable objects to warn
/// about at shutdown, but the heap must not keep its saved garbage, and
/// with it all its memory, forever).
#[test]
fn b28_saved_garbage_is_released_when_the_heap_drops() {
    let drops = Counter::default();
    let heap = Heap::new();
    heap.set_debug(DebugFlags::SAVEALL);
    drop(self_loop(&heap, &drops));
    assert_eq!(heap.collect(), 1);
    assert_eq!(heap.garbage().len(), 1);
    drop(heap);
    assert_eq!(drops.get(), 1, "the saved object was freed with its heap");
}

// ===========================================================================
// 3. Deep structures, re-entrancy and robustness
// ===========================================================================

/// Behaviour 29: a 1,000,000-object ring is collected on a 256 KiB stack.
#[test]
fn b29_a_million_object_ring_is_collected_on_a_small_stack() {
    on_small_stack(|| {
        let n = size(1_000_000, 200);
        let heap = Heap::new();
        let drops = Counter::default();
        let _no_auto = heap.disabled();
        heap.set_debug_sink(io::sink()); // see `garbage_referred_to_by_garbage_is_not_reported_as_over_reporting`
        let first = node(&heap, &drops);
        let mut last = first.clone();
        for _ in 1..n {
            let next = node(&heap, &drops);
            *next.next.borrow_mut() = Some(last);
            last = next;
        }
        *first.next.borrow_mut() = Some(last);
        drop(first);
        assert_eq!(heap.object_count(), n);
        assert_eq!(heap.collect(), n);
        assert_eq!(drops.get(), n);
        assert_eq!(heap.object_count(), 0);
    });
}

/// Behaviour 29: a 1,000,000-deep chain hanging off a self-cycle is
/// collected (and its teardown cascades) on a 256 KiB stack.
#[test]
fn b29_a_million_deep_chain_is_collected_on_a_small_stack() {
    on_small_stack(|| {
        let n = size(1_000_000, 200);
        let heap = Heap::new();
        let drops = Counter::default();
        let _no_auto = heap.disabled();
        heap.set_debug_sink(io::sink()); // see `garbage_referred_to_by_garbage_is_not_reported_as_over_reporting`
        let mut head = node(&heap, &drops);
        for _ in 1..n {
            let next = node(&heap, &drops);
            *next.next.borrow_mut() = Some(head);
            head = next;
        }
        *head.other.borrow_mut() = Some(head.clone());
        drop(head);
        assert_eq!(heap.collect(), n);
        assert_eq!(drops.get(), n);
        assert_eq!(heap.object_count(), 0);
    });
}

/// A chain link whose finalizer collects every 17th time.
#[derive(Trace)]
#[trace(finalize)]
struct Trashcan {
    index: usize,
    next: RefCell<Option<Gc<Trashcan>>>,
    me: RefCell<Option<Gc<Trashcan>>>,
    heap: std::rc::Weak<Heap>,
    finalized: Counter,
    collected: Rc<RefCell<Vec<usize>>>,
}

impl Finalize for Trashcan {
    fn finalize(this: &Gc<Self>) {
        this.finalized.bump();
        if this.index % 17 == 0 {
            if let Some(heap) = this.heap.upgrade() {
                let found = heap.collect();
                this.collected.borrow_mut().push(found);
            }
        }
    }
}

/// Behaviour 29: finalizers along a deep chain that call `collect()` every
/// 17th link are safe, both when the chain dies by reference counting (each
/// call is a real collection) and when it is cyclic garbage (each call
/// returns 0: collections are not re-entrant).
#[test]
fn b29_finalizers_collecting_along_a_deep_chain_are_safe() {
    on_small_stack(|| {
        let n = size(3_000, 60);
        for cyclic in [false, true] {
            let heap = Rc::new(Heap::new());
            heap.set_debug_sink(io::sink()); // see `garbage_referred_to_by_garbage_is_not_reported_as_over_reporting`
            let finalized = Counter::default();
            let collected = Rc::new(RefCell::new(Vec::new()));
            let mut head: Option<Gc<Trashcan>> = None;
            for index in 0..n {
                head = Some(heap.alloc(Trashcan {
                    index,
                    next: RefCell::new(head.take()),
                    me: RefCell::new(None),
                    heap: Rc::downgrade(&heap),
                    finalized: finalized.clone(),
                    collected: collected.clone(),
                }));
            }
            let head = head.unwrap();
            if cyclic {
                *head.me.borrow_mut() = Some(head.clone());
            }
            drop(head);
            if cyclic {
                assert_eq!(heap.collect(), n);
                assert!(collected.borrow().iter().all(|&found| found == 0), "not re-entrant");
            }
            assert_eq!(finalized.get(), n, "each link finalized exactly once");
            assert_eq!(collected.borrow().len(), n.div_ceil(17));
            assert_eq!(heap.object_count(), 0);
        }
    });
}

/// A nested container with a finalizer counter.
#[derive(Trace)]
#[trace(finalize)]
struct Nested {
    inner: Option<Gc<Nested>>,
    me: RefCell<Option<Gc<Nested>>>,
    finalized: Counter,
}

impl Finalize for Nested {
    fn finalize(this: &Gc<Self>) {
        this.finalized.bump();
    }
}

/// Behaviour 30: several threads building and dropping nested containers
/// with finalizers at once (one heap per thread) each finalize every object
/// exactly once.
#[test]
fn b30_concurrent_heaps_finalize_each_object_exactly_once() {
    let (threads, rounds, depth) = (4, size(20, 2), size(500, 20));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(move || {
                let heap = Heap::new();
                heap.set_debug_sink(io::sink()); // see `garbage_referred_to_by_garbage_is_not_reported_as_over_reporting`
                let finalized = Counter::default();
                let mut constructed = 0;
                for round in 0..rounds {
                    let mut outer: Option<Gc<Nested>> = None;
                    for _ in 0..depth {
                        outer = Some(heap.alloc(Nested {
                            inner: outer.take(),
                            me: RefCell::new(None),
                            finalized: finalized.clone(),
                        }));
                        constructed += 1;
                    }
                    let outer = outer.unwrap();
                    if round % 2 == 1 {
                        *outer.me.borrow_mut() = Some(outer.clone()); // cyclic this round
                    }
                    drop(outer);
                }
                heap.collect();
                assert_eq!(finalized.get(), constructed);
                assert_eq!(heap.object_count(), 0);
            });
        }
    });
}

/// A finalizer that allocates, at threshold 1 (a collection on almost every
/// tracked allocation).
#[derive(Trace)]
#[trace(finalize)]
struct Allocating {
    heap: std::rc::Weak<Heap>,
    me: RefCell<Option<Gc<Allocating>>>,
    finalized: Counter,
    junk_drops: Counter,
}

impl Finalize for Allocating {
    fn finalize(this: &Gc<Self>) {
        this.finalized.bump();
        if let Some(heap) = this.heap.upgrade() {
            let junk = self_loop(&heap, &this.junk_drops);
            let (a, b) = two_cycle(&heap, &this.junk_drops);
            let plain = node(&heap, &this.junk_drops);
            drop((junk, a, b, plain));
        }
    }
}

/// Behaviour 31: with threshold 1, finalizers that allocate (and so trigger
/// automatic collections, on the reference-count path and inside
/// collections) are safe; everything is finalized once and freed.
#[test]
fn b31_allocating_in_finalizers_at_threshold_one_is_safe() {
    let heap = Rc::new(Heap::new());
    heap.set_threshold([1, 10, 10]);
    let finalized = Counter::default();
    let junk_drops = Counter::default();
    let before = total_collections(&heap);
    let n = size(60, 8);
    for i in 0..n {
        let a = heap.alloc(Allocating {
            heap: Rc::downgrade(&heap),
            me: RefCell::new(None),
            finalized: finalized.clone(),
            junk_drops: junk_drops.clone(),
        });
        if i % 2 == 0 {
            *a.me.borrow_mut() = Some(a.clone());
        }
        drop(a);
    }
    heap.set_threshold([0, 10, 10]);
    while heap.collect() > 0 {}
    assert!(total_collections(&heap) - before > n / 2, "automatic collections ran");
    assert_eq!(finalized.get(), n);
    assert_eq!(junk_drops.get(), 4 * n);
    assert_eq!(heap.object_count(), 0);
}

/// Reports its one handle twice: the referent's count looks too small.
struct ReportsTwice {
    child: Gc<Node>,
}

// SAFETY: deliberately wrong (over-reports), which is memory-safe by design.
unsafe impl Trace for ReportsTwice {
    fn trace(&self, tracer: &mut Tracer<'_>) {
        self.child.trace(tracer);
        self.child.trace(tracer);
    }
}

/// Behaviour 32: a referent whose strong count is lower than the references
/// `Trace` reports is detected ("refcount is too small", with its type,
/// count and a referrer's type) and kept alive. A collection only examines
/// objects decremented since a full collection last examined them (and
/// what they reach, see `docs/differences.md`), so the parent is cloned and
/// the clone dropped first.
#[test]
fn b32_a_refcount_too_small_is_reported_and_the_object_kept() {
    let heap = Heap::new();
    heap.set_debug(DebugFlags::UNCOLLECTABLE);
    let sink = Sink::attach(&heap);
    let drops = Counter::default();
    let parent = heap.alloc(ReportsTwice {
        child: node(&heap, &drops),
    });
    drop(parent.clone());
    assert_eq!(heap.collect(), 0);
    let text = sink.text();
    assert!(text.contains("refcount is too small"), "{text}");
    assert!(text.contains("collector::Node has strong count 1"), "{text}");
    assert!(text.contains("ReportsTwice"), "{text}");
    assert!(Gc::is_alive(&parent.child));
    assert_eq!(drops.get(), 0);
    drop(parent);
    assert_eq!(drops.get(), 1);
}

/// The target of a weak reference with a callback.
#[derive(Trace)]
#[trace(tracked)]
struct Target {
    _probe: DropCount,
}

/// `test_trash_weakref_clear`'s A: a self-cycle holding its Z through an
/// untraced field (the collector cannot see it), and a weak reference with a
/// callback to Z.
#[derive(Trace)]
struct HidesItsTarget {
    me: RefCell<Option<Gc<HidesItsTarget>>>,
    #[trace(skip)]
    hidden: Option<Gc<Target>>,
    weak_target: Weak<Target>,
}

/// A second cycle keeping a clone of the weak reference alive longer.
#[derive(Trace)]
struct WeakHolder {
    me: RefCell<Option<Gc<WeakHolder>>>,
    weak_target: Weak<Target>,
}

/// Behaviour 33: a weak reference that is itself garbage (owned only by
/// cyclic garbage) to an object held only through an untraced field never
/// calls back, although that object dies while the garbage is torn down;
/// and the weak reference is dead afterwards.
#[test]

fn b33_a_garbage_weak_ref_to_an_untraced_object_never_calls_back() {
    let heap = Heap::new();
    let target_drops = Counter::default();
    let called = Counter::default();
    let z = heap.alloc(Target {
        _probe: DropCount(target_drops.clone()),
    });
    let flag = called.clone();
    let wz = Gc::downgrade_with_callback(&z, move |_| flag.bump());
    let plain = Gc::downgrade(&z);
    let a = heap.alloc(HidesItsTarget {
        me: RefCell::new(None),
        hidden: Some(z),
        weak_target: wz.clone(),
    });
    *a.me.borrow_mut() = Some(a.clone());
    let holder = heap.alloc(WeakHolder {
        me: RefCell::new(None),
        weak_target: wz,
    });
    *holder.me.borrow_mut() = Some(holder.clone());
    heap.collect();
    drop((a, holder));
    heap.collect();
    assert_eq!(target_drops.get(), 1, "Z was freed with the garbage");
    assert!(plain.upgrade().is_none());
    assert_eq!(called.get(), 0, "the weak reference was garbage: no callback");
    assert_eq!(heap.object_count(), 0);
}

/// Behaviour 33: an object held only through an untraced field of cyclic
/// garbage is freed, by reference counting, when that garbage is torn down;
/// weak references to it are dead afterwards and nothing dangles (the part
/// of the item without callbacks).
#[test]
fn b33_an_object_behind_an_untraced_field_is_freed_with_the_garbage() {
    let heap = Heap::new();
    let target_drops = Counter::default();
    let z = heap.alloc(Target {
        _probe: DropCount(target_drops.clone()),
    });
    let wz = Gc::downgrade(&z);
    let a = heap.alloc(HidesItsTarget {
        me: RefCell::new(None),
        hidden: Some(z),
        weak_target: wz.clone(),
    });
    *a.me.borrow_mut() = Some(a.clone());
    assert!(a.hidden.is_some());
    drop(a);
    assert_eq!(heap.collect(), 1, "only A is known garbage; Z looks held from outside");
    assert_eq!(target_drops.get(), 1);
    assert!(wz.upgrade().is_none());
    assert_eq!(heap.object_count(), 0);
}

// ===========================================================================
// 4. Generations, thresholds, counts, stats, enable/disable, freeze
// ===========================================================================

/// Behaviour 34: `gc_count()` is (tracked allocations − deallocations since
/// the last collection, gen-0 collections since the last gen-1 one, gen-1
/// collections since the last full one): all 0 after `collect()`, and one
/// tracked allocation adds 1 (leaves add nothing).
#[test]
fn b34_gc_count_follows_tracked_allocations() {
    let heap = Heap::new();
    let drops = Counter::default();
    heap.collect();
    assert_eq!(heap.gc_count(), [0, 0, 0]);
    let x = node(&heap, &drops);
    assert_eq!(heap.gc_count(), [1, 0, 0]);
    let leaves = (heap.alloc(1u64), heap.alloc(String::from("s")), heap.alloc(vec![1u64]));
    let text = heap.alloc_str("text");
    assert_eq!(heap.gc_count(), [1, 0, 0], "leaves are not counted");
    let y = node(&heap, &drops);
    assert_eq!(heap.gc_count(), [2, 0, 0]);
    drop(y);
    assert_eq!(heap.gc_count(), [1, 0, 0], "a tracked deallocation counts down");
    drop((x, leaves, text));
    assert_eq!(heap.gc_count(), [0, 0, 0]);
}

/// Behaviour 35: a surviving object moves up one generation per
/// `collect_generation(n)`: counts go to (·,1,0), (·,0,1) and (·,0,0).
#[test]
fn b35_collections_count_and_promote_one_generation_at_a_time() {
    let heap = Heap::new();
    let drops = Counter::default();
    heap.collect();
    let x = node(&heap, &drops);
    heap.collect_generation(0).unwrap();
    assert_eq!(heap.gc_count()[1..], [1, 0]);
    assert_eq!(generation_of(&heap, &x), Some(1));
    heap.collect_generation(1).unwrap();
    assert_eq!(heap.gc_count()[1..], [0, 1]);
    assert_eq!(generation_of(&heap, &x), Some(2));
    heap.collect_generation(2).unwrap();
    assert_eq!(heap.gc_count()[1..], [0, 0]);
    assert_eq!(generation_of(&heap, &x), Some(2));
}

/// Behaviour 36: `objects(Some(g))` lists exactly generation g's objects:
/// new → 0; after `collect_generation(0)` → 1; after 1 → 2; stays in 2.
#[test]
fn b36_objects_of_a_generation() {
    let heap = Heap::new();
    let drops = Counter::default();
    let x = node(&heap, &drops);
    let in_gens = |x: &Gc<Node>| -> Vec<bool> {
        (0..3)
            .map(|g| ids(&heap.objects(Some(g)).unwrap()).contains(&Gc::id(x)))
            .collect()
    };
    assert_eq!(in_gens(&x), [true, false, false]);
    heap.collect_generation(0).unwrap();
    assert_eq!(in_gens(&x), [false, true, false]);
    heap.collect_generation(1).unwrap();
    assert_eq!(in_gens(&x), [false, false, true]);
    heap.collect_generation(2).unwrap();
    assert_eq!(in_gens(&x), [false, false, true]);
    let y = node(&heap, &drops);
    assert_eq!(in_gens(&y), [true, false, false]);
}

/// Behaviour 37: `objects(None)` includes a live tracked object and is the
/// union of the three generations; an out-of-range generation is an error.
#[test]
fn b37_objects_lists_everything_and_rejects_bad_generations() {
    let heap = Heap::new();
    let drops = Counter::default();
    let old = node(&heap, &drops);
    heap.collect();
    let young = node(&heap, &drops);
    let all = ids(&heap.objects(None).unwrap());
    assert!(all.contains(&Gc::id(&old)) && all.contains(&Gc::id(&young)));
    let union: HashSet<usize> = (0..3).flat_map(|g| ids(&heap.objects(Some(g)).unwrap())).collect();
    assert_eq!(all, union);
    for bad in [3, 1000, usize::MAX] {
        assert_eq!(heap.objects(Some(bad)).unwrap_err(), GcError::InvalidGeneration(bad));
        assert_eq!(heap.collect_generation(bad), Err(GcError::InvalidGeneration(bad)));
    }
    let message = heap.objects(Some(3)).unwrap_err().to_string();
    assert!(message.contains("invalid generation 3"), "{message}");
}

/// Behaviour 38: `gc_stats()` has one record per generation;
/// `collect_generation(0)` bumps only generation 0's `collections`, a later
/// full collection only generation 2's.
#[test]
fn b38_stats_count_collections_per_generation() {
    let heap = Heap::new();
    let drops = Counter::default();
    let before = heap.gc_stats();
    assert_eq!(before.len(), 3);
    heap.collect_generation(0).unwrap();
    let after0 = heap.gc_stats();
    assert_eq!(after0[0].collections, before[0].collections + 1);
    assert_eq!(after0[1], before[1]);
    assert_eq!(after0[2], before[2]);
    drop(self_loop(&heap, &drops));
    heap.collect();
    let after2 = heap.gc_stats();
    assert_eq!(after2[0], after0[0]);
    assert_eq!(after2[1], after0[1]);
    assert_eq!(after2[2].collections, after0[2].collections + 1);
    assert_eq!(after2[2].collected, after0[2].collected + 1);
    heap.collect_generation(1).unwrap();
    assert_eq!(heap.gc_stats()[1].collections, after2[1].collections + 1);
}

/// Behaviour 39: with automatic collection disabled, 10,000 tracked
/// allocations at threshold 1,000 trigger no collection; enabled, one
/// happens within 10,000.
#[test]
fn b39_disabled_heaps_never_collect_automatically() {
    let (threshold, allocations) = (size(1_000, 50), size(10_000, 500));
    let heap = Heap::new();
    let drops = Counter::default();
    heap.set_threshold([threshold, 10, 10]);
    let seen = record_collections(&heap);
    let mut keep = Vec::new();
    {
        let _off = heap.disabled();
        assert!(!heap.is_enabled());
        for _ in 0..allocations {
            keep.push(node(&heap, &drops));
        }
        assert!(seen.borrow().is_empty(), "no automatic collection while disabled");
    }
    assert!(heap.is_enabled());
    keep.clear();
    for _ in 0..allocations {
        keep.push(node(&heap, &drops));
    }
    assert!(!finished(&seen).is_empty(), "an automatic collection happened");
}

/// Behaviour 40: `enable`/`disable`/`is_enabled` and
/// `threshold`/`set_threshold` round-trip; the `disabled()` guard restores
/// the previous state, nested too.
#[test]
fn b40_enable_disable_and_thresholds_round_trip() {
    let heap = Heap::new();
    assert!(heap.is_enabled());
    assert_eq!(heap.threshold(), [700, 10, 10]);
    heap.disable();
    assert!(!heap.is_enabled());
    heap.enable();
    assert!(heap.is_enabled());
    {
        let _outer = heap.disabled();
        {
            let _inner = heap.disabled();
            assert!(!heap.is_enabled());
        }
        assert!(!heap.is_enabled(), "the inner guard restores 'disabled'");
    }
    assert!(heap.is_enabled());
    let old = heap.threshold();
    heap.set_threshold([1, 2, 3]);
    assert_eq!(heap.threshold(), [1, 2, 3]);
    heap.set_threshold(old);
    assert_eq!(heap.threshold(), [700, 10, 10]);
}

/// Behaviour 41: `freeze()` moves every tracked object to the permanent
/// generation (`freeze_count()` > 0), which collections ignore and
/// `objects()` does not list; `unfreeze()` returns them to generation 2.
#[test]
fn b41_frozen_objects_are_excluded_until_unfrozen() {
    let heap = Heap::new();
    let drops = Counter::default();
    let live = node(&heap, &drops);
    let garbage = self_loop(&heap, &drops);
    heap.freeze();
    assert_eq!(heap.freeze_count(), 2);
    assert!(heap.objects(None).unwrap().is_empty());
    assert_eq!(heap.gc_count()[0], 0);
    drop(garbage);
    assert_eq!(heap.collect(), 0, "frozen garbage is not examined");
    assert_eq!(drops.get(), 0);
    let young = self_loop(&heap, &drops);
    drop(young);
    assert_eq!(heap.collect(), 1, "objects created after freeze() are collected");
    heap.unfreeze();
    assert_eq!(heap.freeze_count(), 0);
    assert_eq!(heap.objects(Some(2)).unwrap().len(), 2);
    assert_eq!(generation_of(&heap, &live), Some(2));
    assert_eq!(heap.collect(), 1, "unfrozen garbage is collected");
    assert_eq!(drops.get(), 2);
}

/// An old object (generation 2) kept alive by young garbage.
#[derive(Trace)]
struct Old {
    _probe: DropCount,
    me: RefCell<Option<Gc<Old>>>,
}

/// Young cycle member that keeps an old object alive.
#[derive(Trace)]
struct Young {
    keep_old_alive: RefCell<Option<Gc<Old>>>,
    me: RefCell<Option<Gc<Young>>>,
    _probe: DropCount,
}

/// Behaviour 42: a young collection whose teardown frees an old object with
/// a weak-reference callback: the callback runs, and a weak reference it
/// reads that pointed into the garbage is already dead.
#[test]
fn b42_a_callback_on_an_old_object_freed_by_young_garbage_sees_cleared_refs() {
    let heap = Heap::new();
    let drops = Counter::default();
    let c0 = heap.alloc(Old {
        _probe: DropCount(drops.clone()),
        me: RefCell::new(None),
    });
    heap.collect();
    assert_eq!(generation_of(&heap, &c0), Some(2));
    let c1 = heap.alloc(Young {
        keep_old_alive: RefCell::new(Some(c0.clone())),
        me: RefCell::new(None),
        _probe: DropCount(drops.clone()),
    });
    *c1.me.borrow_mut() = Some(c1.clone());
    let c2 = heap.alloc(Young {
        keep_old_alive: RefCell::new(None),
        me: RefCell::new(None),
        _probe: DropCount(drops.clone()),
    });
    *c2.me.borrow_mut() = Some(c2.clone());
    let c2wr = Gc::downgrade(&c2);
    let ouch: Rc<RefCell<Vec<bool>>> = Rc::default();
    let out = ouch.clone();
    let c0wr = Gc::downgrade_with_callback(&c0, move |_| out.borrow_mut().push(c2wr.upgrade().is_some()));
    drop((c0, c1, c2));

    assert_eq!(heap.collect_generation(0), Ok(2), "c1 and c2");
    assert_eq!(*ouch.borrow(), [false], "the callback ran once and saw c2 cleared");
    assert_eq!(drops.get(), 3);
    assert!(c0wr.upgrade().is_none());
}

// ===========================================================================
// 5. Introspection and tracking
// ===========================================================================

#[derive(Trace, PartialEq, Eq, Hash)]
#[trace(tracked)]
struct Sym(String);

/// Behaviour 43: `referents(x)` lists the tracked objects `Trace` visits,
/// one entry per edge (list elements, tuple elements, map keys and values);
/// leaves are not listed (`docs/differences.md`).
#[test]
fn b43_referents_are_the_edges_trace_visits() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let a = py.list(vec![]);
    let b = py.dict();
    let list = py.list(vec![
        Value::List(a.clone()),
        Value::Dict(b.clone()),
        Value::List(a.clone()),
        Value::Int(1),
        py.text("leaf"),
    ]);
    let got: Vec<usize> = heap.referents(&list).iter().map(AnyGc::id).collect();
    assert_eq!(got, [Gc::id(&a), Gc::id(&b), Gc::id(&a)]);

    let tuple = py.tuple(vec![py.text("x"), Value::Dict(b.clone())]);
    let got: Vec<usize> = heap.referents(&tuple).iter().map(AnyGc::id).collect();
    assert_eq!(got, [Gc::id(&b)]);

    let key = heap.alloc(Sym("k".to_string()));
    assert!(heap.is_tracked(&key));
    let map = heap.alloc(RefCell::new(HashMap::from([(key.clone(), a.clone())])));
    let got = ids(&heap.referents(&map));
    assert_eq!(got, HashSet::from([Gc::id(&key), Gc::id(&a)]), "keys and values");

    // Referrers are the converse.
    let referrers = ids(&heap.referrers(&a));
    assert_eq!(referrers, HashSet::from([Gc::id(&list), Gc::id(&map)]));
    assert!(heap.referrers(&list).is_empty());
    assert_eq!(ids(&heap.referrers(&b)), HashSet::from([Gc::id(&list), Gc::id(&tuple)]));
}

/// Behaviour 44: leaves are not tracked, containers and user objects are.
#[test]
fn b44_leaves_are_untracked_containers_tracked() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    let log = Rc::new(Log::default());
    assert!(!heap.is_tracked(&heap.alloc(42u64)));
    assert!(!heap.is_tracked(&heap.alloc(String::from("s"))));
    assert!(!heap.is_tracked(&heap.alloc(vec![1u64, 2])));
    assert!(!heap.is_tracked(&heap.alloc_str("str")));
    assert!(!heap.is_tracked(&heap.alloc(Code {
        source: String::new(),
        _probe: py.probe(),
    })));
    let elements = heap.alloc_slice(vec![py.list(vec![])]);
    assert!(!heap.is_tracked(&elements), "slices are never tracked");
    assert!(!heap.is_tracked(&heap.alloc_immortal(Sym("None".to_string()))));
    assert!(heap.is_tracked(&py.list(vec![])));
    assert!(heap.is_tracked(&py.dict()));
    assert!(heap.is_tracked(&obj(&heap, &log, 1)));
    // A container that can change its handles is tracked even when it holds only atoms...
    assert!(heap.is_tracked(&heap.alloc(RefCell::new(Some(heap.alloc(1u8))))));
    // ...an immutable one only when it refers to a tracked object (CPython's
    // tuple rule; see tests/untracking.rs).
    assert!(!heap.is_tracked(&heap.alloc(Some(heap.alloc(1u8)))));
    assert!(heap.is_tracked(&heap.alloc(Some(py.list(vec![])))));
    assert!(heap.is_tracked(&heap.alloc(Sym("tracked by attribute".to_string()))));
}

/// Behaviour 45: `referents` of an untracked object is empty and does not crash.
#[test]
fn b45_referents_of_untracked_objects_are_empty() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    assert!(heap.referents(&heap.alloc(7u64)).is_empty());
    assert!(heap.referents(&heap.alloc_str("capsule")).is_empty());
    let slice = heap.alloc_slice(vec![py.list(vec![])]);
    assert!(heap.referents(&slice).is_empty());
    let empty = py.list(vec![Value::Int(1)]);
    assert!(heap.referents(&empty).is_empty());
}

/// Behaviour 46: `objects()` finds a live self-cycle.
#[test]
fn b46_objects_finds_a_live_self_cycle() {
    let heap = Heap::new();
    let drops = Counter::default();
    let x = self_loop(&heap, &drops);
    let all = heap.objects(None).unwrap();
    let found = all.iter().find(|o| o.id() == Gc::id(&x)).expect("listed");
    assert!(found.is::<Node>());
    let typed = found.downcast::<Node>().unwrap();
    assert!(Gc::ptr_eq(&typed, &x));
    assert_eq!(found.type_name(), core::any::type_name::<Node>());
}

// ===========================================================================
// 6. Collection callbacks and debug modes
// ===========================================================================

/// Behaviour 47: every callback is called exactly twice per collection,
/// `Start` then `Stop`; the info carries generation, collected and
/// uncollectable. Removed callbacks are not called.
#[test]
fn b47_callbacks_see_start_and_stop() {
    let heap = Heap::new();
    let drops = Counter::default();
    let seen = record_collections(&heap);
    let calls = Counter::default();
    let counter = calls.clone();
    let id = heap.add_gc_callback(move |_, _| counter.bump());
    drop(self_loop(&heap, &drops));
    assert_eq!(heap.collect(), 1);
    {
        let seen = seen.borrow();
        assert_eq!(seen.len(), 2);
        let (start, stop) = (seen[0], seen[1]);
        assert_eq!(start.0, GcPhase::Start);
        assert_eq!(stop.0, GcPhase::Stop);
        assert_eq!(
            (start.1.generation, start.1.collected, start.1.uncollectable),
            (2, 0, 0)
        );
        assert_eq!((stop.1.generation, stop.1.collected, stop.1.uncollectable), (2, 1, 0));
    }
    assert_eq!(calls.get(), 2);
    heap.collect_generation(0).unwrap();
    assert_eq!(calls.get(), 4);
    assert!(heap.remove_gc_callback(id));
    assert!(!heap.remove_gc_callback(id));
    heap.collect();
    assert_eq!(calls.get(), 4);
    assert_eq!(seen.borrow().len(), 6);
}

/// Behaviour 48: `collect_generation(g)` reports generation g in both phases.
#[test]
fn b48_callbacks_are_told_the_generation() {
    let heap = Heap::new();
    let seen = record_collections(&heap);
    for g in [2, 0, 1] {
        heap.collect_generation(g).unwrap();
    }
    let got: Vec<(GcPhase, usize)> = seen.borrow().iter().map(|(p, i)| (*p, i.generation)).collect();
    use GcPhase::{Start, Stop};
    assert_eq!(
        got,
        [(Start, 2), (Stop, 2), (Start, 0), (Stop, 0), (Start, 1), (Stop, 1)]
    );
}

/// Behaviour 49: the stop-phase info counts this collection's garbage; a
/// stop callback may take the saved garbage (`SAVEALL`) and break its
/// cycles, after which those objects are gone.
#[test]
fn b49_the_stop_callback_sees_the_counts_and_may_break_saved_garbage() {
    let heap = Rc::new(Heap::new());
    let py = Py::new(&heap);
    let seen = record_collections(&heap);
    let l = py.list(vec![]);
    l.append(Value::List(l.clone()));
    drop(l);
    heap.collect();
    assert_eq!(finished(&seen)[0].collected, 1);

    heap.set_debug(DebugFlags::SAVEALL);
    let weak_heap = Rc::downgrade(&heap);
    let id = heap.add_gc_callback(move |phase, _| {
        if phase != GcPhase::Stop {
            return;
        }
        let heap = weak_heap.upgrade().unwrap();
        for object in heap.take_garbage() {
            let list = object.downcast::<PyList>().unwrap();
            let items = std::mem::take(&mut *list.items.borrow_mut());
            drop(items);
        }
    });
    for _ in 0..2 {
        let l = py.list(vec![]);
        l.append(Value::List(l.clone()));
    }
    assert_eq!(heap.collect(), 2);
    assert_eq!(finished(&seen)[1].collected, 2);
    assert!(heap.garbage().is_empty(), "the callback emptied it");
    assert_eq!(py.dropped(), 3, "and the broken cycles are gone");
    heap.remove_gc_callback(id);
    heap.set_debug(DebugFlags::NONE);
}

/// Behaviour 50: `SAVEALL` keeps unreachable objects in `garbage()` instead
/// of freeing them: exactly the one self-referencing list, intact; the list
/// is empty before.
#[test]
fn b50_saveall_keeps_the_garbage() {
    let heap = Heap::new();
    let py = Py::new(&heap);
    assert!(heap.garbage().is_empty());
    heap.set_debug(DebugFlags::SAVEALL);
    assert_eq!(heap.debug_flags(), DebugFlags::SAVEALL);
    let l = py.list(vec![]);
    l.append(Value::List(l.clone()));
    let id = Gc::id(&l);
    drop(l);
    assert_eq!(heap.collect(), 1);
    let garbage = heap.garbage();
    assert_eq!(garbage.len(), 1);
    assert_eq!(garbage[0].id(), id);
    assert_eq!(py.dropped(), 0, "kept, not freed");
    let list = garbage[0].downcast::<PyList>().unwrap();
    assert!(matches!(&list.items.borrow()[0], Value::List(me) if Gc::ptr_eq(me, &list)));
    drop((list, garbage));
    heap.set_debug(DebugFlags::NONE);
    let saved = heap.take_garbage();
    assert!(heap.garbage().is_empty());
    drop(saved);
    assert_eq!(heap.collect(), 1);
    assert_eq!(py.dropped(), 1);
}

/// The debug flags' output: `STATS` prints a header and a summary per
/// collection, `COLLECTABLE` one line per garbage object.
#[test]
fn debug_flags_print_cpython_style_lines() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let drops = Counter::default();
    heap.set_debug(DebugFlags::STATS | DebugFlags::COLLECTABLE);
    let _live = node(&heap, &drops);
    drop(self_loop(&heap, &drops));
    assert_eq!(heap.collect(), 1);
    let text = sink.text();
    assert!(text.contains("gc: collecting generation 2..."), "{text}");
    assert!(text.contains("gc: objects in each generation: 2 0 0"), "{text}");
    assert!(text.contains("gc: objects in permanent generation: 0"), "{text}");
    assert!(text.contains("gc: done, 1 unreachable, 0 uncollectable"), "{text}");
    assert!(text.contains("gc: collectable <collector::Node 0x"), "{text}");
    assert_eq!(text.matches("gc: collectable").count(), 1);
}

// ===========================================================================
// The collector's own guarantees
// ===========================================================================

/// A 2-cycle is freed by `collect()`, which counts it as 2.
#[test]
fn a_two_cycle_is_freed_and_counted() {
    let heap = Heap::new();
    let drops = Counter::default();
    let (a, b) = two_cycle(&heap, &drops);
    drop((a, b));
    assert_eq!(drops.get(), 0);
    assert_eq!(heap.collect(), 2);
    assert_eq!(drops.get(), 2);
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
}

/// N 2-cycles count 2N.
#[test]
fn n_two_cycles_count_two_n() {
    let n = size(1_000, 10);
    let heap = Heap::new();
    let _manual = heap.disabled();
    let drops = Counter::default();
    for _ in 0..n {
        drop(two_cycle(&heap, &drops));
    }
    assert_eq!(heap.collect(), 2 * n);
    assert_eq!(drops.get(), 2 * n);
}

/// Objects reachable from outside the candidate set (a handle, a live
/// object, an untracked slice) are never freed, by any generation's
/// collection.
#[test]
fn objects_reachable_from_outside_are_never_freed() {
    let heap = Heap::new();
    let drops = Counter::default();
    // A cycle with a handle to one member.
    let (a, b) = two_cycle(&heap, &drops);
    drop(b);
    // A cycle reachable from a live acyclic object.
    let root = node(&heap, &drops);
    let (c, d) = two_cycle(&heap, &drops);
    set_next(&root, &c);
    drop((c, d));
    // A cycle held by an untracked slice.
    let (e, f) = two_cycle(&heap, &drops);
    let slice = heap.alloc_slice(vec![e.clone()]);
    drop((e, f));
    for g in [0, 1, 2, 2, 0] {
        assert_eq!(heap.collect_generation(g), Ok(0));
    }
    assert_eq!(drops.get(), 0);
    let b = a.next.borrow().clone().unwrap();
    assert!(Gc::ptr_eq(b.next.borrow().as_ref().unwrap(), &a));
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    drop(root);
    assert_eq!(heap.collect(), 2);
    drop(slice);
    assert_eq!(heap.collect(), 2);
    assert_eq!(drops.get(), 7);
}

/// Every `Trace` impl for a container: one field of each kind.
#[derive(Trace)]
struct Holder {
    vec: RefCell<Vec<Gc<Holder>>>,
    map: RefCell<HashMap<u32, Gc<Holder>>>,
    btree: RefCell<BTreeMap<String, Gc<Holder>>>,
    deque: RefCell<VecDeque<Gc<Holder>>>,
    option: RefCell<Option<Gc<Holder>>>,
    boxed: RefCell<Option<Box<Gc<Holder>>>>,
    pair: RefCell<Option<(u32, Gc<Holder>)>>,
    choice: RefCell<Choice>,
    _probe: DropCount,
}

#[derive(Trace)]
enum Choice {
    Nothing,
    One(Gc<Holder>),
    Named { label: String, to: Gc<Holder> },
    Nested(Option<Box<Choice>>),
}

/// Cycles through `Vec`, `HashMap`, `BTreeMap`, `VecDeque`, `Option`,
/// `Box`, tuples and enum variants are all found.
#[test]
fn cycles_through_every_container_are_collected() {
    type Link = fn(&Gc<Holder>, &Gc<Holder>);
    let links: [(&str, Link); 10] = [
        ("Vec", |a, b| a.vec.borrow_mut().push(b.clone())),
        ("HashMap", |a, b| drop(a.map.borrow_mut().insert(1, b.clone()))),
        ("BTreeMap", |a, b| {
            drop(a.btree.borrow_mut().insert("k".into(), b.clone()))
        }),
        ("VecDeque", |a, b| a.deque.borrow_mut().push_front(b.clone())),
        ("Option", |a, b| drop(a.option.borrow_mut().replace(b.clone()))),
        ("Box", |a, b| drop(a.boxed.borrow_mut().replace(Box::new(b.clone())))),
        ("tuple", |a, b| drop(a.pair.borrow_mut().replace((7, b.clone())))),
        ("enum tuple variant", |a, b| {
            *a.choice.borrow_mut() = Choice::One(b.clone())
        }),
        ("enum struct variant", |a, b| {
            *a.choice.borrow_mut() = Choice::Named {
                label: "to".into(),
                to: b.clone(),
            }
        }),
        ("nested enum", |a, b| {
            *a.choice.borrow_mut() = Choice::Nested(Some(Box::new(Choice::One(b.clone()))))
        }),
    ];
    let heap = Heap::new();
    let drops = Counter::default();
    let holder = || {
        heap.alloc(Holder {
            vec: RefCell::default(),
            map: RefCell::default(),
            btree: RefCell::default(),
            deque: RefCell::default(),
            option: RefCell::default(),
            boxed: RefCell::default(),
            pair: RefCell::default(),
            choice: RefCell::new(Choice::Nothing),
            _probe: DropCount(drops.clone()),
        })
    };
    for (i, (name, link)) in links.iter().enumerate() {
        let (a, b) = (holder(), holder());
        link(&a, &b);
        link(&b, &a);
        let self_ref = holder();
        link(&self_ref, &self_ref);
        drop((a, b, self_ref));
        assert_eq!(heap.collect(), 3, "a cycle through {name}");
        assert_eq!(drops.get(), 3 * (i + 1), "{name}");
    }
    // All kinds at once, between the same two objects.
    let (a, b) = (holder(), holder());
    for (_, link) in &links {
        link(&a, &b);
        link(&b, &a);
    }
    assert_eq!(
        heap.referents(&a).len(),
        8,
        "one edge per field (the enum holds the last link)"
    );
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    assert_eq!(heap.object_count(), 0);
}

/// A cycle reachable only from another cycle is garbage with it; while the
/// first cycle is rooted, neither is.
#[test]
fn a_cycle_reachable_only_from_another_cycle_is_collected_with_it() {
    let heap = Heap::new();
    let drops = Counter::default();
    let (a, b) = two_cycle(&heap, &drops);
    let (c, d) = two_cycle(&heap, &drops);
    *a.other.borrow_mut() = Some(c.clone());
    drop((b, c, d));
    assert_eq!(heap.collect(), 0, "rooted through a");
    drop(a);
    assert_eq!(heap.collect(), 4);
    assert_eq!(drops.get(), 4);
}

/// With the default policy, the first automatic collection comes when a
/// tracked allocation finds the generation-0 count above 700; leaves never
/// count, and deallocations count down.
#[test]
fn automatic_collection_fires_after_700_tracked_allocations() {
    let heap = Heap::new();
    let drops = Counter::default();
    let seen = record_collections(&heap);
    let leaves: Vec<Gc<u64>> = (0..2_000).map(|i| heap.alloc(i)).collect();
    assert!(seen.borrow().is_empty(), "leaves never trigger a collection");
    drop(leaves);

    let freed: Vec<Gc<Node>> = (0..600).map(|_| node(&heap, &drops)).collect();
    drop(freed);
    assert_eq!(heap.gc_count()[0], 0, "deallocations count down");

    let mut keep: Vec<Gc<Node>> = (0..700).map(|_| node(&heap, &drops)).collect();
    assert!(seen.borrow().is_empty(), "700 is not above the threshold");
    assert_eq!(heap.gc_count()[0], 700);
    let mut allocations = 700;
    while finished(&seen).is_empty() {
        keep.push(node(&heap, &drops));
        allocations += 1;
        assert!(allocations <= 702, "no collection by allocation {allocations}");
    }
    let info = finished(&seen)[0];
    assert_eq!(info.generation, 0);
    assert_eq!(info.collected, 0);
    assert_eq!(
        heap.objects(Some(1)).unwrap().len(),
        allocations - 1,
        "survivors promoted"
    );
    assert_eq!(heap.gc_count(), [1, 1, 0]);
    assert_eq!(drops.get(), 600);
}

/// CPython parity: CPython counts the allocation first, so its 701st
/// tracked allocation (count 701 > 700) starts the collection.
#[test]

fn automatic_collection_starts_at_the_701st_tracked_allocation() {
    let heap = Heap::new();
    let drops = Counter::default();
    let seen = record_collections(&heap);
    let mut keep: Vec<Gc<Node>> = (0..700).map(|_| node(&heap, &drops)).collect();
    assert!(seen.borrow().is_empty());
    keep.push(node(&heap, &drops));
    assert_eq!(finished(&seen).len(), 1, "the 701st tracked allocation collects");
}

/// A `Manual` policy never collects on its own; a `Generational` one does.
#[test]
fn the_manual_policy_never_collects_automatically() {
    let heap = Heap::with_policy(Manual);
    let drops = Counter::default();
    heap.set_threshold([10, 10, 10]);
    let keep: Vec<Gc<Node>> = (0..size(2_000, 100)).map(|_| node(&heap, &drops)).collect();
    assert_eq!(total_collections(&heap), 0);
    assert_eq!(heap.checkpoint(), 0);
    heap.set_policy(rcgc::collect::Generational);
    let more: Vec<Gc<Node>> = (0..20).map(|_| node(&heap, &drops)).collect();
    assert!(total_collections(&heap) > 0);
    drop((keep, more));
}

/// Weak references to cyclic garbage are cleared before any finalizer runs
/// (inside a garbage finalizer, weak references to itself and its peers are
/// dead); on the reference-count path they still work inside the finalizer.
#[test]
fn weak_refs_to_garbage_are_cleared_before_finalizers_run() {
    let heap = Heap::new();
    let log = Rc::new(Log::default());
    let weak_refs: Rc<RefCell<Vec<Weak<Obj>>>> = Rc::default();
    let check = |name: &'static str| {
        let weak_refs = weak_refs.clone();
        move |this: &Gc<Obj>| {
            let alive: Vec<bool> = weak_refs.borrow().iter().map(|w| w.upgrade().is_some()).collect();
            this.log.note(format!("{name}: {alive:?}"));
        }
    };
    let a = obj_with(&heap, &log, 1, check("a"));
    let b = obj_with(&heap, &log, 2, check("b"));
    let bystander = obj(&heap, &log, 3);
    a.link(&b);
    b.link(&a);
    weak_refs
        .borrow_mut()
        .extend([Gc::downgrade(&a), Gc::downgrade(&b), Gc::downgrade(&bystander)]);
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    let mut notes = log.notes();
    notes.sort();
    assert_eq!(notes, ["a: [false, false, true]", "b: [false, false, true]"]);

    // Reference-count death: the finalizer runs first, its weak refs still work.
    let c = obj_with(&heap, &log, 4, check("c"));
    weak_refs.borrow_mut().clear();
    weak_refs.borrow_mut().push(Gc::downgrade(&c));
    drop(c);
    assert_eq!(log.notes().last().unwrap(), "c: [true]");
    assert!(weak_refs.borrow()[0].upgrade().is_none(), "cleared after the finalizer");
    drop(bystander);
}

/// Calls `collect()` when dropped.
#[derive(Trace)]
struct CollectsOnDrop {
    me: RefCell<Option<Gc<CollectsOnDrop>>>,
    heap: std::rc::Weak<Heap>,
    results: Rc<RefCell<Vec<usize>>>,
}

impl Drop for CollectsOnDrop {
    fn drop(&mut self) {
        if let Some(heap) = self.heap.upgrade() {
            let found = heap.collect();
            self.results.borrow_mut().push(found);
        }
    }
}

/// Collections are not re-entrant: `collect()`, `collect_generation()` and
/// `checkpoint()` called from a finalizer, a `Drop` or a callback during a
/// collection return 0. (From a finalizer on the reference-count path,
/// outside any collection, `collect()` collects.)
#[test]
fn collections_are_not_reentrant() {
    let heap = Rc::new(Heap::new());
    let log = Rc::new(Log::default());
    let drops = Counter::default();
    let weak_heap = Rc::downgrade(&heap);
    let collects = move |this: &Gc<Obj>| {
        let heap = weak_heap.upgrade().unwrap();
        let results = (heap.collect(), heap.collect_generation(0).unwrap(), heap.checkpoint());
        this.log.note(format!("{results:?}"));
    };

    // From a finalizer during a collection.
    let x = obj_with(&heap, &log, 1, collects.clone());
    x.link(&x);
    drop(x);
    drop(self_loop(&heap, &drops));
    assert_eq!(heap.collect(), 2);
    assert_eq!(log.notes(), ["(0, 0, 0)"]);

    // From `Drop` during a collection's teardown.
    let results = Rc::new(RefCell::new(Vec::new()));
    let y = heap.alloc(CollectsOnDrop {
        me: RefCell::new(None),
        heap: Rc::downgrade(&heap),
        results: results.clone(),
    });
    *y.me.borrow_mut() = Some(y.clone());
    drop(y);
    assert_eq!(heap.collect(), 1);
    assert_eq!(*results.borrow(), [0]);

    // From a callback.
    let weak_heap = Rc::downgrade(&heap);
    let from_callback = Rc::new(RefCell::new(Vec::new()));
    let out = from_callback.clone();
    let id = heap.add_gc_callback(move |_, _| {
        let heap = weak_heap.upgrade().unwrap();
        out.borrow_mut().push(heap.collect() + heap.checkpoint());
    });
    drop(self_loop(&heap, &drops));
    assert_eq!(heap.collect(), 1);
    assert_eq!(*from_callback.borrow(), [0, 0]);
    heap.remove_gc_callback(id);

    // Outside a collection, a finalizer's collect() is a real collection.
    drop(self_loop(&heap, &drops));
    drop(obj_with(&heap, &log, 2, collects));
    assert_eq!(log.notes()[1], "(1, 0, 0)");
    assert_eq!(drops.get(), 3);
    assert_eq!(heap.object_count(), 0);
}

/// One collection at a time per thread, across heaps: a collection of
/// another heap started from inside a running one (here from a finalizer)
/// returns 0 and leaves that heap as it was; its garbage is found by its
/// next collection. References between the two heaps' objects count as
/// references from outside in either heap's collections.
#[test]
fn another_heaps_collection_inside_a_collection_returns_zero() {
    let heap = Heap::new();
    let other = Rc::new(Heap::new());
    let log = Rc::new(Log::default());
    let drops = Counter::default();

    // Garbage on the other heap, and a cycle there that is kept alive only
    // by an object of the first heap.
    drop(self_loop(&other, &drops));
    let (kept_a, kept_b) = two_cycle(&other, &drops);
    let holder = heap.alloc(Node {
        next: RefCell::new(Some(kept_a.clone())),
        other: RefCell::new(None),
        _probe: DropCount(drops.clone()),
    });
    drop((kept_a, kept_b));
    // A cycle of the other heap referring into the first heap keeps
    // `holder` alive for the first heap's collections.
    let (back_a, back_b) = two_cycle(&other, &drops);
    *back_a.other.borrow_mut() = Some(holder.clone());
    drop(holder);

    // Garbage with a finalizer on the first heap that collects the other heap.
    let inner_other = other.clone();
    let x = obj_with(&heap, &log, 1, move |this| {
        let found = inner_other.collect();
        this.log.note(format!("{found}"));
    });
    x.link(&x);
    drop(x);

    assert_eq!(heap.collect(), 1, "only the self-referencing Obj");
    assert_eq!(log.notes(), ["0"], "the other heap's collection did not run");
    assert_eq!(other.gc_stats()[2].collections, 0);
    assert_eq!(drops.get(), 0, "nothing of the other heap was freed");

    // The other heap's own collection: its self-loop; the kept cycle stays
    // (held by `holder`), and so does the back cycle (held by `back_a`).
    assert_eq!(other.collect(), 1);
    assert_eq!(drops.get(), 1);
    // Without its handles the back cycle is garbage; tearing it down frees
    // `holder` (its count falls to zero), which leaves the kept cycle
    // garbage for the next collection.
    drop((back_a, back_b));
    assert_eq!(other.collect(), 2);
    assert_eq!(drops.get(), 4, "the back cycle and holder");
    assert_eq!(heap.object_count(), 0);
    assert_eq!(other.collect(), 2);
    assert_eq!(drops.get(), 6);
    assert_eq!(other.object_count(), 0);
}

/// Panics in finalizers (on both paths) are caught and reported on the debug
/// sink; the collection finishes and frees everything.
#[test]
fn a_panicking_finalizer_is_contained() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let log = Rc::new(Log::default());
    let a = obj_with(&heap, &log, 1, |_| panic!("finalizer exploded"));
    let b = obj(&heap, &log, 2);
    a.link(&b);
    b.link(&a);
    drop((a, b));
    assert_eq!(heap.collect(), 2);
    assert_eq!(log.finalized(), [1, 2]);
    assert_eq!(log.dropped(), [1, 2]);
    let text = sink.text();
    assert!(text.contains("rcgc: panic ignored in the finalizer of"), "{text}");
    assert!(text.contains("finalizer exploded"), "{text}");

    drop(obj_with(&heap, &log, 3, |_| panic!("refcount path exploded")));
    assert_eq!(log.dropped(), [1, 2, 3]);
    assert!(sink.text().contains("refcount path exploded"));
    assert_eq!(heap.object_count(), 0);
}

#[derive(Trace)]
struct PanicsOnDrop {
    me: RefCell<Option<Gc<PanicsOnDrop>>>,
    _probe: DropCount,
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("drop exploded");
    }
}

/// A `Drop` that panics while the collector tears garbage down is caught and
/// reported; the other fields are still dropped and the memory freed.
#[test]
fn a_panicking_drop_during_teardown_is_contained() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let drops = Counter::default();
    let x = heap.alloc(PanicsOnDrop {
        me: RefCell::new(None),
        _probe: DropCount(drops.clone()),
    });
    *x.me.borrow_mut() = Some(x.clone());
    drop(x);
    drop(two_cycle(&heap, &drops));
    assert_eq!(heap.collect(), 3);
    assert_eq!(drops.get(), 3);
    let text = sink.text();
    assert!(text.contains("rcgc: panic ignored in Drop of"), "{text}");
    assert!(text.contains("PanicsOnDrop"), "{text}");
    assert!(text.contains("drop exploded"), "{text}");
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
}

/// A panicking collection callback is reported; the other callbacks and the
/// collection itself go on.
#[test]
fn a_panicking_callback_is_contained() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let drops = Counter::default();
    heap.add_gc_callback(|phase, _| {
        if phase == GcPhase::Start {
            panic!("callback exploded");
        }
    });
    let seen = record_collections(&heap);
    drop(self_loop(&heap, &drops));
    assert_eq!(heap.collect(), 1);
    assert_eq!(seen.borrow().len(), 2);
    assert_eq!(drops.get(), 1);
    let text = sink.text();
    assert!(
        text.contains("rcgc: panic ignored in a gc callback: callback exploded"),
        "{text}"
    );
}

/// Panics in `Trace` when armed.
struct PanicsInTrace {
    armed: Cell<bool>,
    me: RefCell<Option<Gc<PanicsInTrace>>>,
    _probe: DropCount,
}

// SAFETY: visits its one handle (or panics, which the collector survives).
unsafe impl Trace for PanicsInTrace {
    fn trace(&self, tracer: &mut Tracer<'_>) {
        if self.armed.get() {
            panic!("trace exploded");
        }
        self.me.trace(tracer);
    }
}

/// A `Trace` impl that panics is reported and its object kept for that
/// collection; other garbage is still collected.
#[test]
fn a_panicking_trace_impl_is_contained() {
    let heap = Heap::new();
    let sink = Sink::attach(&heap);
    let drops = Counter::default();
    let x = heap.alloc(PanicsInTrace {
        armed: Cell::new(true),
        me: RefCell::new(None),
        _probe: DropCount(drops.clone()),
    });
    *x.me.borrow_mut() = Some(x.clone());
    let weak = Gc::downgrade(&x);
    drop(x);
    drop(two_cycle(&heap, &drops));
    assert_eq!(heap.collect(), 2, "the other garbage");
    assert_eq!(drops.get(), 2);
    let text = sink.text();
    assert!(text.contains("rcgc: panic ignored in Trace of"), "{text}");
    assert!(text.contains("trace exploded"), "{text}");
    weak.upgrade().unwrap().armed.set(false);
    assert_eq!(heap.collect(), 1);
    assert_eq!(drops.get(), 3);
}

/// Drops the handle it holds while being traced (forbidden by the `Trace`
/// contract, and still memory-safe).
struct DropsWhileTraced {
    partner: RefCell<Option<Gc<DropsWhileTraced>>>,
    _probe: DropCount,
}

// SAFETY: deliberately wrong (drops a handle while tracing), which the
// collector must survive.
unsafe impl Trace for DropsWhileTraced {
    fn trace(&self, tracer: &mut Tracer<'_>) {
        if let Ok(mut partner) = self.partner.try_borrow_mut() {
            let taken = partner.take();
            drop(partner);
            drop(taken);
        }
        self.partner.trace(tracer);
    }
}

/// A `Trace` impl that drops handles while being traced cannot make the
/// collector read freed memory; the objects are freed once.
#[test]
fn a_trace_impl_dropping_handles_is_memory_safe() {
    let heap = Heap::new();
    let drops = Counter::default();
    let a = heap.alloc(DropsWhileTraced {
        partner: RefCell::new(None),
        _probe: DropCount(drops.clone()),
    });
    let b = heap.alloc(DropsWhileTraced {
        partner: RefCell::new(Some(a.clone())),
        _probe: DropCount(drops.clone()),
    });
    *a.partner.borrow_mut() = Some(b.clone());
    drop((a, b));
    let found = heap.collect();
    assert!(found <= 2);
    heap.collect();
    assert_eq!(drops.get(), 2);
    assert_eq!(heap.object_count(), 0);
}

/// While a `RefCell` inside an object is mutably borrowed, collections
/// (explicit, or automatic ones started by an allocation made during the
/// borrow) treat the object as reachable: nothing panics and nothing it
/// holds is freed; unrelated garbage is still collected.
#[test]
fn a_mutably_borrowed_refcell_keeps_its_object_reachable() {
    let heap = Heap::new();
    let drops = Counter::default();
    let root = node(&heap, &drops);
    let (b, c) = two_cycle(&heap, &drops);
    set_next(&root, &b);
    let (weak_b, weak_c) = (Gc::downgrade(&b), Gc::downgrade(&c));
    drop((b, c));
    drop(two_cycle(&heap, &drops));
    {
        let _borrowed = root.next.borrow_mut();
        assert_eq!(heap.collect(), 2, "only the unrelated cycle");
    }
    assert_eq!(drops.get(), 2);

    heap.set_threshold([1, 10, 10]);
    let before = total_collections(&heap);
    let mut replaced = Vec::new();
    for _ in 0..20 {
        let mut slot = root.other.borrow_mut();
        let fresh = node(&heap, &drops); // collects while `slot` is borrowed
        replaced.push(slot.replace(fresh));
    }
    assert!(total_collections(&heap) - before >= 9, "automatic collections ran");
    assert!(weak_b.upgrade().is_some() && weak_c.upgrade().is_some());
    assert_eq!(drops.get(), 2);
    drop((root, replaced));
    heap.set_threshold([700, 10, 10]);
    assert_eq!(heap.collect(), 2);
}

/// `Trace` that reports nothing although the value holds a handle.
struct UnderReports {
    partner: RefCell<Option<Gc<Partner>>>,
    _probe: DropCount,
}

// SAFETY: deliberately wrong (under-reports), which only leaks.
unsafe impl Trace for UnderReports {
    fn trace(&self, _: &mut Tracer<'_>) {}
}

#[derive(Trace)]
struct Partner {
    back: RefCell<Option<Gc<UnderReports>>>,
    _probe: DropCount,
}

/// An under-reporting `Trace` impl only leaks: its cycle is not collected
/// (both objects stay valid) and breaking it by hand frees both.
#[test]
fn under_reporting_trace_leaks_without_harm() {
    let heap = Heap::new();
    let drops = Counter::default();
    let u = heap.alloc(UnderReports {
        partner: RefCell::new(None),
        _probe: DropCount(drops.clone()),
    });
    let p = heap.alloc(Partner {
        back: RefCell::new(Some(u.clone())),
        _probe: DropCount(drops.clone()),
    });
    *u.partner.borrow_mut() = Some(p.clone());
    let weak_u = Gc::downgrade(&u);
    drop((u, p));
    assert_eq!(heap.collect(), 0, "the hidden edge looks like an outside reference");
    assert_eq!(drops.get(), 0);
    let u = weak_u.upgrade().unwrap();
    assert!(Gc::is_alive(&u));
    let p = u.partner.borrow().clone().unwrap();
    assert!(Gc::ptr_eq(p.back.borrow().as_ref().unwrap(), &u));
    drop(p);
    let partner = u.partner.borrow_mut().take();
    drop((partner, u));
    assert_eq!(drops.get(), 2);
    assert_eq!(heap.object_count(), 0);
}

/// A self-cycle whose `Trace` reports its victim twice (it holds it once).
struct OverReports {
    me: RefCell<Option<Gc<OverReports>>>,
    victim: Gc<Node>,
}

// SAFETY: deliberately wrong (over-reports), which is memory-safe by design.
unsafe impl Trace for OverReports {
    fn trace(&self, tracer: &mut Tracer<'_>) {
        self.me.trace(tracer);
        self.victim.trace(tracer);
        self.victim.trace(tracer);
    }
}

/// An over-reporting `Trace` impl makes the collector tear down an object a
/// handle still reaches: the handle is *dead* (`is_alive` false, `try_deref`
/// `None`, deref panics mentioning "dead"), the memory stays allocated until
/// that handle drops, and nothing is undefined behaviour.
#[test]
fn over_reporting_trace_makes_handles_dead_not_dangling() {
    let heap = Heap::new();
    heap.set_debug(DebugFlags::UNCOLLECTABLE);
    let sink = Sink::attach(&heap);
    let drops = Counter::default();
    let victim = node(&heap, &drops);
    let bad = heap.alloc(OverReports {
        me: RefCell::new(None),
        victim: victim.clone(),
    });
    *bad.me.borrow_mut() = Some(bad.clone());
    drop(bad);
    assert_eq!(heap.collect(), 2, "the wrong impl made the victim look unreachable");
    assert_eq!(drops.get(), 1, "the victim's value was dropped");
    assert!(!Gc::is_alive(&victim));
    assert!(Gc::try_deref(&victim).is_none());
    let any = heap.objects(None).unwrap();
    assert!(any.is_empty(), "a dead object is no longer tracked");
    assert!(!heap.is_tracked(&victim));
    let payload = catch_unwind(AssertUnwindSafe(|| victim.next.borrow().is_some())).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("dead"), "{message}");
    let text = sink.text();
    assert!(
        text.contains("collector::Node torn down while") && text.contains("handle(s) remain"),
        "{text}"
    );
    assert_eq!(heap.object_count(), 1, "its block is still allocated");
    let clone = victim.clone();
    assert!(!Gc::is_alive(&clone));
    drop((victim, clone));
    assert_eq!(drops.get(), 1, "the value is not dropped twice");
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0);
}

/// Garbage that other garbage still refers to when the collector tears it
/// down (a chain torn down tail first) is not a sign of a wrong `Trace`
/// impl: correct impls never produce the "torn down while … handle(s)
/// remain" report (printed in debug builds and with `UNCOLLECTABLE`).
#[test]

fn garbage_referred_to_by_garbage_is_not_reported_as_over_reporting() {
    let heap = Heap::new();
    heap.set_debug(DebugFlags::UNCOLLECTABLE);
    let sink = Sink::attach(&heap);
    let drops = Counter::default();
    // Allocated tail first: the collector tears the tail down before the
    // node that refers to it.
    let mut head = node(&heap, &drops);
    for _ in 1..10 {
        let next = node(&heap, &drops);
        *next.next.borrow_mut() = Some(head);
        head = next;
    }
    *head.other.borrow_mut() = Some(head.clone());
    drop(head);
    assert_eq!(heap.collect(), 10);
    assert_eq!(drops.get(), 10);
    let text = sink.text();
    assert!(!text.contains("torn down while"), "false reports:\n{text}");
}

/// A node of the largest pooled size class, so that few fill an arena.
#[derive(Trace)]
struct Bulky {
    other: RefCell<Option<Gc<Bulky>>>,
    #[trace(skip)]
    _pad: [u64; 58],
}

/// Automatic collections keep the arenas their teardown empties mapped
/// (unmapping a used megabyte costs a tenth of a millisecond, and would
/// lengthen the pause) and return one surplus arena each at their end; a
/// collection the program asks for returns all of them but the one spare.
#[test]
#[cfg_attr(
    miri,
    ignore = "fills megabyte arenas: 2.5 minutes under Miri, where alloc::tests covers deferred arena releases"
)]
fn automatic_collections_return_emptied_arenas_one_at_a_time_and_collect_returns_them_all() {
    let heap = Heap::with_policy(AtCheckpoint(Action::Collect { generation: 2 }));
    let arenas = |heap: &Heap| heap.alloc_stats().arenas_current;
    let filled = 5;
    let mut objects = 0;
    while arenas(&heap) < filled {
        let a = heap.alloc(Bulky {
            other: RefCell::new(None),
            _pad: [0; 58],
        });
        let b = heap.alloc(Bulky {
            other: RefCell::new(Some(a.clone())),
            _pad: [0; 58],
        });
        *a.other.borrow_mut() = Some(b);
        objects += 2;
    }
    assert_eq!(
        heap.object_count(),
        objects,
        "the 2-cycles are leaked until a collection"
    );

    assert_eq!(heap.checkpoint(), objects);
    assert_eq!(heap.object_count(), 0);
    assert_eq!(arenas(&heap), filled - 1, "the automatic collection returned one arena");
    assert_eq!(heap.checkpoint(), 0);
    assert_eq!(arenas(&heap), filled - 2, "and the next one another");

    assert_eq!(heap.collect(), 0);
    let stats = heap.alloc_stats();
    assert_eq!(stats.arenas_current, 1, "an explicit collection keeps only the spare");
    assert_eq!(stats.arenas_freed_total, filled - 1);
}
