//! Interning: one canonical object per value, like `sys.intern` and
//! CPython's small-int cache.
//!
//! [`Interner<T>`] is a weak-valued set keyed by the objects' own values: it
//! owns a weak `Core` (see `crate::weak`) whose entries hold only a weak
//! reference to the canonical object and the hash of its value. Invariants:
//!
//! * an entry is in the table exactly while its object is alive: when the
//!   last handle drops, the object dies and its entry is removed at once, so
//!   an interned value costs nothing once unused;
//! * the table lends out no references into itself (only `Gc` handles), so
//!   every method takes `&self` and may be re-entered from code that runs
//!   while it allocates (a collection's finalizers, say); only adding to it
//!   from the `Hash` or `Eq` of the values it is comparing panics;
//! * values are compared through a temporary strong handle, so an `Eq` impl
//!   that drops the last handle to the object being compared cannot free it
//!   mid-comparison;
//! * an immortal object ([`Interner::intern_immortal`]) never dies, so its
//!   entry is permanent.
//!
//! The `Heap` methods ([`Heap::intern_str`], [`Heap::intern`],
//! [`Heap::intern_immortal`], [`Heap::small_int`]) use one interner per heap
//! and value type, kept in a thread-local map keyed by the heap's identity.
//! A heap's identity is reused only after all its objects died, and by then
//! its tables are empty (and have released their memory).

use core::any::{Any, TypeId};
use core::borrow::Borrow;
use core::cell::RefCell;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use std::rc::Rc;

use hashbrown::DefaultHashBuilder;

use crate::heap::inner::HeapInner;
use crate::trace::Trace;
use crate::weak::CoreBox;
use crate::{Gc, Heap};

/// A table of canonical objects: [`intern`](Self::intern) returns the same
/// object for equal values while any handle to it lives, so [`Gc::ptr_eq`]
/// holds for equal interned values. The table holds its objects weakly: an
/// object whose last handle drops dies, and its entry goes with it.
///
/// ```
/// use rcgc::{Gc, Heap, Interner};
///
/// let heap = Heap::new();
/// let symbols: Interner<str> = Interner::new();
/// let a = symbols.intern_str(&heap, "name");
/// let b = symbols.intern_str(&heap, &(String::from("na") + "me"));
/// assert!(Gc::ptr_eq(&a, &b));
/// assert_eq!(symbols.len(), 1);
/// drop((a, b)); // the last handles: the entry is released
/// assert_eq!(symbols.len(), 0);
/// ```
///
/// Interned values must not change while interned (as in Python, they are
/// immutable): a value whose hash changes is not found again.
pub struct Interner<T: Trace + ?Sized + 'static, S = DefaultHashBuilder> {
    core: CoreBox<T, ()>,
    hasher: S,
}

impl<T: Trace + ?Sized + 'static> Interner<T, DefaultHashBuilder> {
    /// An empty table.
    pub fn new() -> Self {
        Self::with_hasher(DefaultHashBuilder::default())
    }

    /// An empty table that frees its memory whenever its last entry dies.
    fn releasing() -> Self {
        Interner {
            core: CoreBox::with_options(0, true),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<T: Trace + ?Sized + 'static, S> Interner<T, S> {
    /// An empty table using `hasher`.
    pub fn with_hasher(hasher: S) -> Self {
        Interner {
            core: CoreBox::new(0),
            hasher,
        }
    }

    /// Live canonical objects.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no canonical object is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Trace + Hash + Eq + ?Sized + 'static, S: BuildHasher> Interner<T, S> {
    fn find<Q>(&self, hash: u64, value: &Q) -> Option<(usize, Gc<T>)>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut found = None;
        let index = self.core.find_bucket(hash, |entry| match entry.upgrade() {
            Some(object) if (*object).borrow() == value => {
                found = Some(object);
                true
            }
            _ => false,
        })?;
        Some((index, found?))
    }

    /// The canonical object equal to `value`, if one is alive.
    pub fn get<Q>(&self, value: &Q) -> Option<Gc<T>>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(self.hasher.hash_one(value), value).map(|(_, object)| object)
    }

    /// Whether a canonical object equal to `value` is alive.
    pub fn contains<Q>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(value).is_some()
    }

    /// Makes `object` canonical for its value unless an equal one already
    /// is; returns the canonical object (Python's `sys.intern(s)`).
    ///
    /// # Panics
    /// Like [`Gc::downgrade`], if the object's heap has no room for its weak record.
    pub fn insert(&self, object: &Gc<T>) -> Gc<T> {
        let hash = self.hasher.hash_one(&**object);
        if let Some((_, existing)) = self.find(hash, &**object) {
            return existing;
        }
        self.add(hash, object);
        object.clone()
    }

    /// The canonical object equal to `value`, made with `make` (which must
    /// return an object equal to `value`) if none is alive.
    pub fn intern_with<Q>(&self, value: &Q, make: impl FnOnce(&Q) -> Gc<T>) -> Gc<T>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(value);
        if let Some((_, existing)) = self.find(hash, value) {
            return existing;
        }
        let object = make(value);
        debug_assert!(
            (*object).borrow() == value,
            "intern_with: `make` returned another value"
        );
        // `make` may have run code that interned an equal value meanwhile.
        if let Some((_, existing)) = self.find(hash, value) {
            return existing;
        }
        self.add(hash, &object);
        object
    }

    fn add(&self, hash: u64, object: &Gc<T>) {
        // SAFETY: an interner lends out no reference into its table; `insert`
        // panics if this is a lookup's `Eq` re-entering the table.
        unsafe { self.core.insert(hash, object, ()) };
    }
}

impl<T: Trace + Hash + Eq + 'static, S: BuildHasher> Interner<T, S> {
    /// The canonical object equal to `value`, allocated on `heap` if none is alive.
    pub fn intern(&self, heap: &Heap, value: T) -> Gc<T> {
        let hash = self.hasher.hash_one(&value);
        if let Some((_, existing)) = self.find(hash, &value) {
            return existing;
        }
        let object = heap.alloc(value);
        if let Some((_, existing)) = self.find(hash, &*object) {
            return existing;
        }
        self.add(hash, &object);
        object
    }

    /// The canonical object equal to `value`, made immortal: if the
    /// canonical object is mortal (or there is none), an immortal one is
    /// allocated on `heap` and takes its place; handles to the mortal one stay
    /// valid. Immortal entries are permanent: use it for a fixed set of
    /// values, like CPython's small integers.
    pub fn intern_immortal(&self, heap: &Heap, value: T) -> Gc<T> {
        let hash = self.hasher.hash_one(&value);
        let existing = self.find(hash, &value);
        if let Some((_, object)) = &existing {
            if Gc::is_immortal(object) {
                return object.clone();
            }
        }
        let object = heap.alloc_immortal(value);
        match existing {
            // SAFETY: as in `add`; the entry is live (`find` returned it and no
            // user code ran since, except the allocation, which runs none for
            // this table: the mortal object is held by `existing`).
            Some((index, _mortal)) => drop(unsafe { self.core.replace(index, &object) }),
            None => self.add(hash, &object),
        }
        object
    }
}

impl<S: BuildHasher> Interner<str, S> {
    /// The canonical string object equal to `s`, allocated on `heap` if none
    /// is alive.
    pub fn intern_str(&self, heap: &Heap, s: &str) -> Gc<str> {
        self.intern_with(s, |s| heap.alloc_str(s))
    }
}

impl<T: Trace + ?Sized + 'static> Default for Interner<T, DefaultHashBuilder> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Trace + ?Sized + 'static, S> fmt::Debug for Interner<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner").field("len", &self.len()).finish()
    }
}

thread_local! {
    /// The per-heap interning tables: (heap identity, value type) → `Interner`.
    static TABLES: RefCell<hashbrown::HashMap<(usize, TypeId), Rc<dyn Any>>> =
        RefCell::new(hashbrown::HashMap::new());
}

/// This heap's interner for `T`, unless called during thread exit.
fn table<T: Trace + ?Sized + 'static>(heap: &Heap) -> Option<Rc<Interner<T>>> {
    let key = (heap.inner() as *const HeapInner as usize, TypeId::of::<T>());
    let table = TABLES
        .try_with(|tables| {
            tables
                .borrow_mut()
                .entry(key)
                .or_insert_with(|| Rc::new(Interner::<T>::releasing()) as Rc<dyn Any>)
                .clone()
        })
        .ok()?;
    Some(table.downcast::<Interner<T>>().expect("tables are keyed by their type"))
}

/// The integers CPython preallocates (`-5..=256`).
const SMALL_INTS: core::ops::RangeInclusive<i64> = -5..=256;

impl Heap {
    /// The canonical string object equal to `s` on this heap (Python's
    /// `sys.intern`): equal strings give the same object while any handle to
    /// it lives, and it is freed with its last handle like any other object.
    ///
    /// ```
    /// use rcgc::{Gc, Heap};
    ///
    /// let heap = Heap::new();
    /// let a = heap.intern_str("spam");
    /// let b = heap.intern_str(&"spam".to_string());
    /// assert!(Gc::ptr_eq(&a, &b));
    /// assert!(!Gc::ptr_eq(&a, &heap.alloc_str("spam"))); // not interned
    /// ```
    pub fn intern_str(&self, s: &str) -> Gc<str> {
        match table::<str>(self) {
            Some(table) => table.intern_str(self, s),
            None => self.alloc_str(s),
        }
    }

    /// The canonical object equal to `value` on this heap, for any hashable
    /// immutable value type; allocated if none is alive.
    ///
    /// ```
    /// use rcgc::{Gc, Heap};
    ///
    /// let heap = Heap::new();
    /// let a = heap.intern((1u8, 'x'));
    /// assert!(Gc::ptr_eq(&a, &heap.intern((1u8, 'x'))));
    /// ```
    pub fn intern<T: Trace + Hash + Eq + 'static>(&self, value: T) -> Gc<T> {
        match table::<T>(self) {
            Some(table) => table.intern(self, value),
            None => self.alloc(value),
        }
    }

    /// The canonical *immortal* object equal to `value` on this heap (see
    /// [`Interner::intern_immortal`]); later [`intern`](Self::intern) calls
    /// for an equal value return it too. Immortal objects are never freed:
    /// use it for a fixed set of values.
    pub fn intern_immortal<T: Trace + Hash + Eq + 'static>(&self, value: T) -> Gc<T> {
        match table::<T>(self) {
            Some(table) => table.intern_immortal(self, value),
            None => self.alloc_immortal(value),
        }
    }

    /// An integer object, shared and immortal for `-5..=256` like CPython's
    /// small-int cache, freshly allocated otherwise (so `Gc::ptr_eq` holds
    /// for two `small_int(256)` but not for two `small_int(257)`).
    ///
    /// ```
    /// use rcgc::{Gc, Heap};
    ///
    /// let heap = Heap::new();
    /// assert!(Gc::ptr_eq(&heap.small_int(256), &heap.small_int(256)));
    /// assert!(!Gc::ptr_eq(&heap.small_int(257), &heap.small_int(257)));
    /// assert!(Gc::is_immortal(&heap.small_int(-5)));
    /// ```
    pub fn small_int(&self, n: i64) -> Gc<i64> {
        if SMALL_INTS.contains(&n) {
            self.intern_immortal(n)
        } else {
            self.alloc(n)
        }
    }
}
