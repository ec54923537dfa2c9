//! [`WeakKeyDictionary`]: a hash map whose keys are objects held weakly and
//! compared by identity.
//!
//! Owns a `CoreBox` (see the [`weak`](super) module docs) whose entries hold
//! a weak reference to the key object and the value (the data); the hash is
//! that of the key's address. Invariants, on top of the core's:
//!
//! * an entry is live exactly while its key object is alive, so
//!   `len()` is exact, and an address reused by a new object never finds the
//!   old entry (lookups also check the weak reference is alive);
//! * values of entries whose key died are dropped by the next `&mut self`
//!   call (or when the dictionary drops), never while a `&V` lent out by
//!   [`get`](WeakKeyDictionary::get) or an iterator may be alive. Values that
//!   need no drop are released at once.

use core::fmt;
use core::hash::BuildHasher;
use core::iter::FusedIterator;

use hashbrown::DefaultHashBuilder;

use super::CoreBox;
use crate::trace::{Trace, Tracer};
use crate::Gc;

/// A map from objects to values that does not keep its keys alive:
/// Python's `weakref.WeakKeyDictionary`, with keys compared by identity
/// ([`Gc::ptr_eq`]), the way one attaches data to objects one does not own.
///
/// An entry disappears the moment its key object dies (last handle dropped,
/// or freed by the cycle collector): [`len`](Self::len) is exact at all
/// times. Its value is dropped then too, or, if it needs dropping, at the
/// next `&mut self` call (references to it may still be lent out).
///
/// ```
/// use rcgc::{Gc, Heap, WeakKeyDictionary};
///
/// let heap = Heap::new();
/// let mut notes: WeakKeyDictionary<String, &str> = WeakKeyDictionary::new();
/// let a = heap.alloc(String::from("a"));
/// let also_a = heap.alloc(String::from("a")); // equal, but another object
/// notes.insert(&a, "first");
/// assert_eq!(notes.get(&a), Some(&"first"));
/// assert_eq!(notes.get(&also_a), None); // identity, not equality
///
/// drop(a);
/// assert!(notes.is_empty());
/// ```
///
/// A value that holds a strong handle to its own key keeps the key alive
/// forever, as in Python (there are no ephemerons).
pub struct WeakKeyDictionary<K: Trace + ?Sized + 'static, V, S = DefaultHashBuilder> {
    core: CoreBox<K, V>,
    hasher: S,
}

impl<K: Trace + ?Sized + 'static, V> WeakKeyDictionary<K, V, DefaultHashBuilder> {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty dictionary with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, DefaultHashBuilder::default())
    }
}

impl<K: Trace + ?Sized + 'static, V, S> WeakKeyDictionary<K, V, S> {
    /// An empty dictionary with room for `capacity` entries, using `hasher`
    /// to hash key addresses.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        WeakKeyDictionary {
            core: CoreBox::new(capacity),
            hasher,
        }
    }

    /// Entries whose key is alive: exact at all times.
    #[inline]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no entry has a live key.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.core.clear();
    }

    /// Iterates over the live entries: `(key, &value)`, in no particular
    /// order. Keys that die meanwhile are skipped.
    pub fn iter(&self) -> Iter<'_, K, V, S> {
        Iter { dict: self, pos: 0 }
    }

    /// Strong handles to the live keys.
    pub fn keys(&self) -> Keys<'_, K, V, S> {
        Keys { inner: self.iter() }
    }

    /// The values of the live entries.
    pub fn values(&self) -> Values<'_, K, V, S> {
        Values { dict: self, pos: 0 }
    }

    /// Drops the values of entries whose keys died (done by every `&mut
    /// self` method anyway).
    pub fn release_removed(&mut self) {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() }
    }
}

impl<K: Trace + ?Sized + 'static, V, S: BuildHasher> WeakKeyDictionary<K, V, S> {
    #[inline]
    fn hash(&self, key: &Gc<K>) -> (u64, usize) {
        let addr = Gc::as_ptr(key) as *const u8 as usize;
        (self.hasher.hash_one(addr), addr)
    }

    #[inline]
    fn find_bucket(&self, key: &Gc<K>) -> Option<usize> {
        let (hash, addr) = self.hash(key);
        self.core
            .find_bucket(hash, |entry| entry.addr() == addr && entry.is_alive())
    }

    /// The value attached to `key`.
    #[inline]
    pub fn get(&self, key: &Gc<K>) -> Option<&V> {
        let (hash, addr) = self.hash(key);
        self.core
            .find(hash, |entry| entry.addr() == addr && entry.is_alive())
            .map(|entry| entry.data())
    }

    /// The value attached to `key`, mutably.
    pub fn get_mut(&mut self, key: &Gc<K>) -> Option<&mut V> {
        let index = self.find_bucket(key)?;
        // SAFETY: `&mut self` for the lifetime of the result.
        Some(unsafe { self.core.data_mut(index) })
    }

    /// Whether `key` has an entry.
    pub fn contains_key(&self, key: &Gc<K>) -> bool {
        self.find_bucket(key).is_some()
    }

    /// Attaches `value` to `key` (held weakly). Returns the previous value.
    ///
    /// # Panics
    /// Like [`Gc::downgrade`], if `key`'s heap has no room for its weak record.
    pub fn insert(&mut self, key: &Gc<K>, value: V) -> Option<V> {
        // SAFETY: `&mut self`: nothing borrows the table.
        unsafe { self.core.commit() };
        match self.find_bucket(key) {
            // SAFETY: `&mut self`.
            Some(index) => Some(core::mem::replace(unsafe { self.core.data_mut(index) }, value)),
            None => {
                // SAFETY: `&mut self`.
                unsafe { self.core.insert(self.hash(key).0, key, value) };
                None
            }
        }
    }

    /// Removes `key`'s entry and returns its value (Python's `d.pop(key, None)`).
    pub fn remove(&mut self, key: &Gc<K>) -> Option<V> {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        let index = self.find_bucket(key)?;
        // SAFETY: `&mut self`.
        let (weak, value) = unsafe { self.core.remove(index) };
        drop(weak);
        Some(value)
    }

    /// Python's `setdefault`: the value attached to `key`, attaching
    /// `make()`'s result first if there is none.
    pub fn get_or_insert_with(&mut self, key: &Gc<K>, make: impl FnOnce() -> V) -> &mut V {
        if self.find_bucket(key).is_none() {
            let value = make();
            self.insert(key, value);
        }
        let index = self.find_bucket(key).expect("the key is alive: the caller holds it");
        // SAFETY: `&mut self` for the lifetime of the result.
        unsafe { self.core.data_mut(index) }
    }

    /// Removes and returns some live entry (Python's `popitem`).
    pub fn pop_item(&mut self) -> Option<(Gc<K>, V)> {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        loop {
            let (index, entry) = self.core.next_live(0)?;
            let key = entry.upgrade();
            // SAFETY: `&mut self`.
            let (weak, value) = unsafe { self.core.remove(index) };
            drop(weak);
            if let Some(key) = key {
                return Some((key, value));
            }
        }
    }

    /// Keeps only the live entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Gc<K>, &mut V) -> bool) {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        let mut pos = 0;
        while let Some((index, entry)) = self.core.next_live(pos) {
            pos = index + 1;
            let Some(key) = entry.upgrade() else { continue };
            // SAFETY: `&mut self`; the borrow ends before `remove`. Entries
            // dying meanwhile stay in their buckets.
            let keep_it = keep(&key, unsafe { self.core.data_mut(index) });
            if !keep_it {
                // SAFETY: `&mut self`.
                let removed = unsafe { self.core.remove(index) };
                drop((removed, key));
            }
        }
    }
}

impl<K: Trace + ?Sized + 'static, V> Default for WeakKeyDictionary<K, V, DefaultHashBuilder> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Trace + ?Sized + 'static, V: Clone, S: BuildHasher + Clone> Clone for WeakKeyDictionary<K, V, S> {
    /// A new dictionary with the live entries (Python's `copy()`).
    fn clone(&self) -> Self {
        let mut copy = Self::with_capacity_and_hasher(self.len(), self.hasher.clone());
        for (key, value) in self.iter() {
            copy.insert(&key, value.clone());
        }
        copy
    }
}

impl<'a, K: Trace + ?Sized + 'static, V, S: BuildHasher> Extend<(&'a Gc<K>, V)> for WeakKeyDictionary<K, V, S> {
    /// Inserts every pair (Python's `update`).
    fn extend<I: IntoIterator<Item = (&'a Gc<K>, V)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl<'a, K: Trace + ?Sized + 'static, V> FromIterator<(&'a Gc<K>, V)> for WeakKeyDictionary<K, V, DefaultHashBuilder> {
    fn from_iter<I: IntoIterator<Item = (&'a Gc<K>, V)>>(iter: I) -> Self {
        let mut dict = Self::new();
        dict.extend(iter);
        dict
    }
}

impl<K: Trace + ?Sized + fmt::Debug + 'static, V: fmt::Debug, S> fmt::Debug for WeakKeyDictionary<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

// SAFETY: the dictionary owns its values (live, or waiting to be dropped)
// and visits each; keys are weak references, which are not edges.
unsafe impl<K: Trace + ?Sized + 'static, V: Trace, S> Trace for WeakKeyDictionary<K, V, S> {
    const MAY_CONTAIN_GC: bool = V::MAY_CONTAIN_GC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if V::MAY_CONTAIN_GC {
            for entry in self.core.entries() {
                entry.data().trace(tracer);
            }
        }
    }
}

/// Iterator over the live entries of a [`WeakKeyDictionary`]: `(Gc<K>, &V)`.
pub struct Iter<'a, K: Trace + ?Sized + 'static, V, S> {
    dict: &'a WeakKeyDictionary<K, V, S>,
    pos: usize,
}

impl<'a, K: Trace + ?Sized + 'static, V, S> Iterator for Iter<'a, K, V, S> {
    type Item = (Gc<K>, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let core = &*self.dict.core;
        loop {
            let (i, entry) = core.next_live(self.pos)?;
            self.pos = i + 1;
            if let Some(key) = entry.upgrade() {
                return Some((key, entry.data()));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.dict.core.buckets().saturating_sub(self.pos)))
    }
}

impl<K: Trace + ?Sized + 'static, V, S> FusedIterator for Iter<'_, K, V, S> {}

impl<'a, K: Trace + ?Sized + 'static, V, S> IntoIterator for &'a WeakKeyDictionary<K, V, S> {
    type Item = (Gc<K>, &'a V);
    type IntoIter = Iter<'a, K, V, S>;

    fn into_iter(self) -> Iter<'a, K, V, S> {
        self.iter()
    }
}

/// Iterator over the live keys of a [`WeakKeyDictionary`].
pub struct Keys<'a, K: Trace + ?Sized + 'static, V, S> {
    inner: Iter<'a, K, V, S>,
}

impl<K: Trace + ?Sized + 'static, V, S> Iterator for Keys<'_, K, V, S> {
    type Item = Gc<K>;

    fn next(&mut self) -> Option<Gc<K>> {
        self.inner.next().map(|(key, _)| key)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K: Trace + ?Sized + 'static, V, S> FusedIterator for Keys<'_, K, V, S> {}

/// Iterator over the values of the live entries of a [`WeakKeyDictionary`].
pub struct Values<'a, K: Trace + ?Sized + 'static, V, S> {
    dict: &'a WeakKeyDictionary<K, V, S>,
    pos: usize,
}

impl<'a, K: Trace + ?Sized + 'static, V, S> Iterator for Values<'a, K, V, S> {
    type Item = &'a V;

    fn next(&mut self) -> Option<&'a V> {
        let core = &*self.dict.core;
        loop {
            let (i, entry) = core.next_live(self.pos)?;
            self.pos = i + 1;
            if entry.is_alive() {
                return Some(entry.data());
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.dict.core.buckets().saturating_sub(self.pos)))
    }
}

impl<K: Trace + ?Sized + 'static, V, S> FusedIterator for Values<'_, K, V, S> {}
