//! A tour of rcgc: the things an interpreter built on `Rc<RefCell<..>>`
//! cannot do.
//!
//! Run it with `cargo run --example tour`.

use std::cell::RefCell;

use rcgc::{DebugFlags, Gc, GcPhase, Heap, Trace};

/// A script-level object: a name and references to other objects, like an
/// instance with attributes. `#[derive(Trace)]` tells the collector where
/// the handles are.
#[derive(Trace)]
struct Object {
    name: String,
    refs: RefCell<Vec<Gc<Object>>>,
}

/// An immutable value, like a tuple or a frozen AST node: its handles are
/// fixed and lead only to values like it, so `#[derive(Trace)]` infers that
/// it can never be part of a cycle (`Trace::ACYCLIC`).
#[derive(Trace)]
struct Cons {
    head: i64,
    tail: Option<Gc<Cons>>,
}

fn object(heap: &Heap, name: &str) -> Gc<Object> {
    heap.alloc(Object {
        name: name.to_string(),
        refs: RefCell::new(Vec::new()),
    })
}

fn main() {
    let heap = Heap::new();

    println!("== 1. Reference counting: objects die the moment the last handle goes ==");
    let a = object(&heap, "a");
    let b = a.clone();
    println!(
        "a has {} handles, occupies {} bytes (16-byte header + value)",
        Gc::strong_count(&a),
        Gc::size_of(&a)
    );
    drop((a, b));
    println!("after dropping both: {} live objects\n", heap.object_count());

    println!("== 2. Cycles: what Rc leaks, the collector frees ==");
    let parent = object(&heap, "parent");
    let child = object(&heap, "child");
    parent.refs.borrow_mut().push(child.clone()); // parent -> child
    child.refs.borrow_mut().push(parent.clone()); // child -> parent (a cycle)
    let watcher = Gc::downgrade_with_callback(&parent, |_| println!("   (weak callback: parent is gone)"));
    drop((parent, child));
    println!(
        "dropped every handle: still {} live objects (the cycle keeps itself alive)",
        heap.object_count()
    );
    heap.set_debug(DebugFlags::STATS);
    let found = heap.collect();
    heap.set_debug(DebugFlags::NONE);
    println!(
        "collect() found {found} unreachable objects; {} live now",
        heap.object_count()
    );
    assert!(watcher.upgrade().is_none());
    println!();

    println!("== 3. Automatic, generational collection (CPython's thresholds) ==");
    heap.add_gc_callback(|phase, info| {
        if phase == GcPhase::Stop && info.collected > 0 {
            println!("   gen {} collection freed {} objects", info.generation, info.collected);
        }
    });
    for i in 0..3000 {
        // A closure and its environment: a cycle per iteration, never freed by Rc.
        let closure = object(&heap, &format!("closure{i}"));
        let env = object(&heap, "env");
        closure.refs.borrow_mut().push(env.clone());
        env.refs.borrow_mut().push(closure);
    }
    println!("threshold {:?}, counts now {:?}", heap.threshold(), heap.gc_count());
    for (generation, stats) in heap.gc_stats().iter().enumerate() {
        println!(
            "   gen {generation}: {} collections, {} collected",
            stats.collections, stats.collected
        );
    }
    println!();

    println!("== 4. Immutable values are never tracked (CPython untracks tuples of atoms) ==");
    let counts = heap.gc_count();
    let list = (0..1000).fold(None, |tail, head| Some(heap.alloc(Cons { head, tail })));
    let list = list.expect("1000 cells");
    println!(
        "a 1000-cell list: head {}, {} bytes per cell (8-byte header), tracked: {}, generation counts {:?} -> {:?}",
        list.head,
        Gc::size_of(&list),
        heap.is_tracked(&list),
        counts,
        heap.gc_count()
    );
    drop(list);
    println!();

    println!("== 5. The heap's own pools (like sys._debugmallocstats()) ==");
    let names: Vec<Gc<str>> = (0..1000).map(|i| heap.alloc_str(&format!("name{i}"))).collect();
    let stats = heap.alloc_stats();
    for class in stats.classes.iter().filter(|c| c.pools > 0) {
        println!(
            "   {:>3}-byte blocks: {:>3} pools, {:>5} in use, {:>5} free",
            class.block_size, class.pools, class.blocks_in_use, class.free_blocks
        );
    }
    println!(
        "   {} arenas, {} bytes in use of {} reserved",
        stats.arenas_current, stats.bytes_in_use, stats.bytes_reserved
    );
    drop(names);

    println!("\n== 6. A memory budget is an error, never an abort ==");
    heap.set_limit(Some(heap.bytes_in_use() + 4096));
    let mut kept = Vec::new();
    let err = loop {
        match heap.try_alloc([0u64; 8]) {
            Ok(obj) => kept.push(obj),
            Err(err) => break err,
        }
    };
    println!("{} more objects fit, then: {err}", kept.len());
}
