//! Interning: `Heap::intern_str`, `Heap::intern`, immortal interning and
//! the small-int cache, and the `Interner` table (semantics.md §7).

use std::cell::RefCell;

use rcgc::{Gc, Heap, Interner, Trace, IMMORTAL_REFCOUNT};

/// Equal strings give the same object while a handle lives (`sys.intern`);
/// strings built at run time are not interned unless asked.
#[test]
fn interned_strings_are_identical() {
    let heap = Heap::new();
    let a = heap.intern_str("spam");
    let joined = ["sp", "am"].concat();
    let b = heap.intern_str(&joined);
    assert!(Gc::ptr_eq(&a, &b));
    assert_eq!(Gc::strong_count(&a), 2);
    let plain = heap.alloc_str(&joined);
    assert!(!Gc::ptr_eq(&a, &plain), "not interned: another object");
    assert!(!Gc::ptr_eq(&a, &heap.intern_str("eggs")));
}

/// An interned string is freed with its last handle, and its table entry
/// goes with it: interning the same text later makes a new object.
#[test]
fn interned_strings_are_released_with_their_last_handle() {
    let heap = Heap::new();
    let a = heap.intern_str("temporary");
    let weak_count = Gc::weak_count(&a);
    assert_eq!(weak_count, 1, "the table holds it weakly");
    drop(a);
    assert_eq!(heap.object_count(), 0);
    assert_eq!(heap.bytes_in_use(), 0, "the object and its weak record are gone");
    let b = heap.intern_str("temporary");
    assert_eq!(&*b, "temporary");
    assert_eq!(heap.object_count(), 1);
}

/// Each heap has its own table.
#[test]
fn heaps_intern_separately() {
    let h1 = Heap::new();
    let h2 = Heap::new();
    let a = h1.intern_str("x");
    let b = h2.intern_str("x");
    assert!(!Gc::ptr_eq(&a, &b));
    assert_eq!((h1.object_count(), h2.object_count()), (1, 1));
    assert!(Gc::ptr_eq(&a, &h1.intern_str("x")));
}

/// The generic interner: any hashable immutable value, including tracked
/// objects that die in a cycle.
#[test]
fn generic_interning() {
    #[derive(Trace, PartialEq, Eq, Hash, Debug)]
    struct Symbol {
        #[trace(skip)]
        name: &'static str,
    }
    let heap = Heap::new();
    let a = heap.intern(Symbol { name: "a" });
    assert!(Gc::ptr_eq(&a, &heap.intern(Symbol { name: "a" })));
    assert!(!Gc::ptr_eq(&a, &heap.intern(Symbol { name: "b" })));
    let t = heap.intern((1u32, 'x'));
    assert!(Gc::ptr_eq(&t, &heap.intern((1u32, 'x'))));
    drop(a);
    assert_eq!(heap.object_count(), 1);

    #[derive(Trace)]
    struct Cyclic {
        #[trace(skip)]
        key: u32,
        me: RefCell<Option<Gc<Cyclic>>>,
    }
    impl PartialEq for Cyclic {
        fn eq(&self, other: &Self) -> bool {
            self.key == other.key
        }
    }
    impl Eq for Cyclic {}
    impl std::hash::Hash for Cyclic {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.key.hash(state)
        }
    }
    let table: Interner<Cyclic> = Interner::new();
    let c = table.intern(
        &heap,
        Cyclic {
            key: 1,
            me: RefCell::new(None),
        },
    );
    *c.me.borrow_mut() = Some(c.clone());
    drop(c);
    assert_eq!(table.len(), 1, "garbage until collected");
    heap.collect();
    assert_eq!(table.len(), 0);
}

/// Immortal interning: CPython's small-int cache (`-5..=256` shared and
/// immortal, `257` a new object each time).
#[test]
fn small_int_cache() {
    let heap = Heap::new();
    let a = heap.small_int(256);
    assert!(Gc::ptr_eq(&a, &heap.small_int(256)));
    assert!(Gc::ptr_eq(&heap.small_int(-5), &heap.small_int(-5)));
    assert!(Gc::is_immortal(&a));
    assert_eq!(Gc::strong_count(&a), IMMORTAL_REFCOUNT);
    assert!(!Gc::ptr_eq(&heap.small_int(257), &heap.small_int(257)));
    assert!(!Gc::ptr_eq(&heap.small_int(-6), &heap.small_int(-6)));
    assert!(!Gc::is_immortal(&heap.small_int(257)));
    let seven = heap.small_int(7);
    assert!(
        Gc::ptr_eq(&heap.intern(7i64), &seven),
        "the cache is the interning table"
    );
}

/// `intern_immortal` replaces a mortal canonical object; handles to the
/// mortal one stay valid.
#[test]
fn immortal_interning_replaces_a_mortal_entry() {
    let heap = Heap::new();
    let mortal = heap.intern(String::from("None"));
    let immortal = heap.intern_immortal(String::from("None"));
    assert!(!Gc::ptr_eq(&mortal, &immortal));
    assert!(Gc::is_immortal(&immortal));
    assert!(Gc::ptr_eq(&heap.intern(String::from("None")), &immortal));
    assert_eq!(&*mortal, "None");
    drop(mortal);
    assert!(Gc::ptr_eq(&heap.intern(String::from("None")), &immortal));
}

/// A user-owned `Interner` over objects of any heap, with `insert` (make an
/// existing object canonical) and `get`.
#[test]
fn user_interner() {
    let heap = Heap::new();
    let table: Interner<str> = Interner::default();
    let s = heap.alloc_str("key");
    assert!(Gc::ptr_eq(&table.insert(&s), &s));
    let t = heap.alloc_str("key");
    assert!(Gc::ptr_eq(&table.insert(&t), &s), "the canonical one wins");
    assert!(Gc::ptr_eq(&table.get("key").unwrap(), &s));
    assert!(table.contains("key"));
    assert!(!table.contains("nope"));
    assert_eq!(format!("{table:?}"), "Interner { len: 1 }");
    drop((s, t));
    assert!(table.is_empty());
    assert!(table.get("key").is_none());
}

/// Interning from inside a collection's finalizer while the table is
/// allocating (the table is re-entrant through `&self`).
#[test]
fn interning_re_entered_from_a_finalizer() {
    thread_local! {
        static HEAP: RefCell<Option<std::rc::Rc<Heap>>> = const { RefCell::new(None) };
        static GOT: RefCell<Vec<Gc<Word>>> = const { RefCell::new(Vec::new()) };
    }
    #[derive(Trace, PartialEq, Eq, Hash)]
    #[trace(finalize)]
    struct Word {
        #[trace(skip)]
        text: &'static str,
        #[trace(skip)]
        cyclic: bool,
    }
    impl rcgc::Finalize for Word {
        fn finalize(this: &Gc<Self>) {
            if this.cyclic {
                let heap = HEAP.with(|h| h.borrow().clone()).unwrap();
                let w = heap.intern(Word {
                    text: "from finalizer",
                    cyclic: false,
                });
                GOT.with(|g| g.borrow_mut().push(w));
            }
        }
    }
    let heap = std::rc::Rc::new(Heap::new());
    HEAP.with(|h| *h.borrow_mut() = Some(heap.clone()));
    heap.set_threshold([1, 1, 1]);
    #[derive(Trace)]
    struct Ring {
        word: Gc<Word>,
        me: RefCell<Option<Gc<Ring>>>,
    }
    for _ in 0..if cfg!(miri) { 3 } else { 20 } {
        let w = heap.intern(Word {
            text: "cycle",
            cyclic: true,
        });
        let r = heap.alloc(Ring {
            word: w,
            me: RefCell::new(None),
        });
        *r.me.borrow_mut() = Some(r.clone());
    }
    heap.collect();
    let got = GOT.with(|g| std::mem::take(&mut *g.borrow_mut()));
    assert!(!got.is_empty());
    assert!(got.iter().all(|w| Gc::ptr_eq(w, &got[0])), "one canonical object");
    HEAP.with(|h| h.borrow_mut().take());
}

/// Changing an interner from the `Eq` of one of its own values panics
/// (like a `RefCell`), and leaves the table usable.
#[test]
fn changing_an_interner_from_its_values_eq_panics() {
    thread_local! {
        static TABLE: Interner<Sneaky> = Interner::new();
        static HEAP: Heap = Heap::new();
    }
    #[derive(Trace)]
    struct Sneaky(#[trace(skip)] u32);
    impl std::hash::Hash for Sneaky {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state)
        }
    }
    impl PartialEq for Sneaky {
        fn eq(&self, other: &Self) -> bool {
            if self.0 == 1 {
                HEAP.with(|heap| TABLE.with(|t| drop(t.intern(heap, Sneaky(2)))));
            }
            self.0 == other.0
        }
    }
    impl Eq for Sneaky {}
    HEAP.with(|heap| {
        TABLE.with(|table| {
            let one = table.intern(heap, Sneaky(1));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| table.get(&Sneaky(1))));
            assert!(result.is_err());
            let three = table.intern(heap, Sneaky(3));
            assert_eq!(table.len(), 2);
            drop((one, three));
        })
    });
}
