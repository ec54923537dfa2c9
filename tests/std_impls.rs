//! The `Trace` impls for std and hashbrown types exist and report the
//! expected `MAY_CONTAIN_GC` (checked at compile time: this file fails to
//! build if one is wrong).

use rcgc::{Gc, Trace};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

const fn may<T: Trace + ?Sized>() -> bool {
    T::MAY_CONTAIN_GC
}

type G = Gc<u32>;

const _: () = {
    // Leaves.
    assert!(!may::<u8>() && !may::<i128>() && !may::<f64>() && !may::<bool>() && !may::<char>() && !may::<()>());
    assert!(!may::<str>() && !may::<String>() && !may::<&'static str>());
    assert!(!may::<std::path::Path>() && !may::<std::path::PathBuf>());
    assert!(!may::<std::ffi::OsStr>() && !may::<std::ffi::OsString>());
    assert!(!may::<std::ffi::CStr>() && !may::<std::ffi::CString>());
    assert!(!may::<std::time::Duration>() && !may::<std::time::Instant>() && !may::<std::time::SystemTime>());
    assert!(!may::<std::num::NonZeroU64>() && !may::<std::num::NonZeroIsize>());
    assert!(!may::<std::marker::PhantomData<G>>());
    assert!(!may::<std::any::TypeId>() && !may::<std::cmp::Ordering>());
    assert!(!may::<fn()>() && !may::<fn(u8, G) -> G>() && !may::<unsafe extern "C" fn(u8)>());

    // Containers follow their elements.
    assert!(may::<G>());
    assert!(may::<Box<G>>() && !may::<Box<str>>() && may::<Box<[G]>>());
    assert!(may::<Vec<G>>() && !may::<Vec<u8>>());
    assert!(may::<VecDeque<G>>() && may::<LinkedList<G>>() && !may::<BinaryHeap<u8>>());
    assert!(may::<[G]>() && may::<[G; 3]>() && !may::<[u8; 3]>());
    assert!(may::<Option<G>>() && !may::<Option<u8>>());
    assert!(may::<Result<u8, G>>() && may::<Result<G, u8>>() && !may::<Result<u8, String>>());
    assert!(!may::<(u8,)>() && may::<(u8, G)>());
    assert!(may::<(u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, G)>());
    assert!(may::<HashMap<u8, G>>() && may::<HashMap<Option<G>, u8>>() && !may::<HashMap<u8, u8>>());
    assert!(may::<HashSet<G>>() && !may::<BTreeSet<u8>>() && may::<BTreeMap<u8, G>>());
    assert!(may::<hashbrown::HashMap<u8, G>>() && !may::<hashbrown::HashSet<u8>>());
    assert!(may::<hashbrown::HashTable<G>>());
    assert!(!may::<Cell<u8>>() && may::<RefCell<G>>() && !may::<RefCell<u8>>());
    assert!(may::<OnceCell<G>>() && may::<Mutex<G>>() && may::<RwLock<G>>());
    assert!(!may::<std::num::Wrapping<u8>>() && may::<std::cmp::Reverse<G>>());

    // Opaque.
    assert!(!may::<std::mem::ManuallyDrop<G>>());
    assert!(!may::<std::rc::Rc<G>>() && !may::<std::rc::Weak<G>>());
    assert!(!may::<Arc<Vec<u8>>>() && !may::<std::sync::Weak<str>>());
    assert!(
        may::<rcgc::Weak<u32>>(),
        "weak references are tracked: the collector must see callback records"
    );
};

/// The compile-time checks above ran; also trace a few values at run time.
#[test]
fn std_impls_report_the_expected_may_contain_gc() {
    let heap = rcgc::Heap::new();
    let inner = heap.alloc(1u32);
    let holder = heap.alloc(RefCell::new(vec![Some(inner.clone()), None]));
    assert_eq!(
        heap.referents(&holder).len(),
        0,
        "u32 objects are leaves: not listed as referents"
    );
    assert!(heap.is_tracked(&holder));
    assert!(!heap.is_tracked(&heap.alloc(vec![1u8, 2, 3])));
}
