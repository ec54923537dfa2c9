//! [`WeakValueDictionary`]: a hash map whose values are held weakly.
//!
//! Owns a `CoreBox` (see the [`weak`](super) module docs) whose entries hold
//! the key (the data) and a weak reference to the value. Invariants, on top
//! of the core's:
//!
//! * an entry is live exactly while its value is alive, so `len()` is exact
//!   and lookups never see a dead value;
//! * keys of entries whose value died are dropped by the next `&mut self`
//!   call (or when the dictionary drops), never while a `&K` lent out by
//!   [`keys`](WeakValueDictionary::keys) or [`iter`](WeakValueDictionary::iter)
//!   may be alive.

use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::iter::FusedIterator;

use hashbrown::DefaultHashBuilder;

use super::CoreBox;
use crate::trace::{Trace, Tracer};
use crate::{Gc, Weak};

/// A map from keys to objects that does not keep its values alive: Python's
/// `weakref.WeakValueDictionary`.
///
/// An entry disappears the moment its value dies, whether its last handle
/// dropped or the cycle collector freed it, so [`len`](Self::len) is exact
/// at all times (CPython and `weak-table` count dead entries until a later
/// purge). Values may live on any heap. Lookups and inserts cost one hash
/// probe; no operation scans for dead entries.
///
/// ```
/// use rcgc::{Gc, Heap, WeakValueDictionary};
///
/// let heap = Heap::new();
/// let mut cache: WeakValueDictionary<u32, String> = WeakValueDictionary::new();
/// let answer = heap.alloc(String::from("forty-two"));
/// cache.insert(42, &answer);
/// assert!(Gc::ptr_eq(&cache.get(&42).unwrap(), &answer));
/// assert_eq!(cache.len(), 1);
///
/// drop(answer); // the value dies: its entry is gone at once
/// assert_eq!(cache.len(), 0);
/// assert!(cache.get(&42).is_none());
/// ```
///
/// Iterating is safe while values die: dead entries are skipped, and
/// [`len`](Self::len) may be called at any time (CPython's iterator breaks if
/// `len()` is called while a value died during the iteration).
///
/// Explicit changes take `&mut self`; values dying change the dictionary
/// behind a shared reference, which is what the dictionary is for. A
/// `WeakValueDictionary` may be stored in a `Gc` object: it traces its keys
/// (values are weak, so they are not edges).
pub struct WeakValueDictionary<K, V: Trace + ?Sized + 'static, S = DefaultHashBuilder> {
    core: CoreBox<V, K>,
    hasher: S,
}

impl<K, V: Trace + ?Sized + 'static> WeakValueDictionary<K, V, DefaultHashBuilder> {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty dictionary with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, DefaultHashBuilder::default())
    }
}

impl<K, V: Trace + ?Sized + 'static, S> WeakValueDictionary<K, V, S> {
    /// An empty dictionary using `hasher` to hash keys.
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// An empty dictionary with room for `capacity` entries, using `hasher`.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        WeakValueDictionary {
            core: CoreBox::new(capacity),
            hasher,
        }
    }

    /// Entries whose value is alive: exact at all times.
    #[inline]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no entry has a live value.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dictionary's hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.core.clear();
    }

    /// Iterates over the live entries: `(&key, value)`, in no particular
    /// order. Values that die meanwhile are skipped; none is yielded dead.
    pub fn iter(&self) -> Iter<'_, K, V, S> {
        Iter { dict: self, pos: 0 }
    }

    /// The keys of the live entries.
    pub fn keys(&self) -> Keys<'_, K, V, S> {
        Keys { dict: self, pos: 0 }
    }

    /// Strong handles to the live values.
    pub fn values(&self) -> Values<'_, K, V, S> {
        Values { inner: self.iter() }
    }

    /// Drops the keys of entries whose values died (done by every `&mut self`
    /// method anyway; only memory is at stake).
    pub fn release_removed(&mut self) {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() }
    }
}

impl<K, V: Trace + 'static, S> WeakValueDictionary<K, V, S> {
    /// Weak references to the live values (Python's `valuerefs()`): plain
    /// [`Weak`]s that the caller owns.
    pub fn value_refs(&self) -> impl Iterator<Item = Weak<V>> + '_ {
        self.values().map(|value| Gc::downgrade(&value))
    }
}

impl<K: Hash + Eq, V: Trace + ?Sized + 'static, S: BuildHasher> WeakValueDictionary<K, V, S> {
    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The value under `key` if it is alive (Python's `d.get(key)`).
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Gc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.core
            .find(self.hash(key), |entry| entry.data().borrow() == key)?
            .upgrade()
    }

    /// The stored key and the value under `key` if it is alive.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, Gc<V>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.core.find(self.hash(key), |entry| entry.data().borrow() == key)?;
        Some((entry.data(), entry.upgrade()?))
    }

    /// Whether `key` has a live value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.core
            .find(self.hash(key), |entry| entry.data().borrow() == key)
            .is_some_and(|entry| entry.is_alive())
    }

    /// Maps `key` to `value` (held weakly). Returns the previous value if it
    /// was alive. An existing entry keeps its key (like `HashMap`).
    ///
    /// # Panics
    /// Like [`Gc::downgrade`], if `value`'s heap has no room for its weak record.
    pub fn insert(&mut self, key: K, value: &Gc<V>) -> Option<Gc<V>> {
        // SAFETY: `&mut self`: nothing borrows the table.
        unsafe { self.core.commit() };
        let hash = self.hash(&key);
        match self.core.find_bucket(hash, |entry| *entry.data() == key) {
            Some(index) => {
                let previous = self.core.bucket(index).and_then(|entry| entry.upgrade());
                // SAFETY: `&mut self`, and no commit since `find_bucket`.
                let old = unsafe { self.core.replace(index, value) };
                drop(old);
                drop(key);
                previous
            }
            None => {
                // SAFETY: `&mut self`.
                unsafe { self.core.insert(hash, value, key) };
                None
            }
        }
    }

    /// Removes `key`'s entry; returns its value if it was alive (Python's
    /// `d.pop(key, None)`).
    pub fn remove<Q>(&mut self, key: &Q) -> Option<Gc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_entry(key).map(|(_, value)| value)
    }

    /// Removes `key`'s entry; returns the stored key and the value if it was alive.
    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, Gc<V>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        let index = self
            .core
            .find_bucket(self.hash(key), |entry| entry.data().borrow() == key)?;
        let value = self.core.bucket(index).and_then(|entry| entry.upgrade());
        // SAFETY: `&mut self`.
        let (weak, key) = unsafe { self.core.remove(index) };
        drop(weak);
        Some((key, value?))
    }

    /// Python's `setdefault`: the live value under `key`, or else `make()`'s
    /// result, stored under `key`. Never returns a dead value, even if a
    /// collection runs inside `make`.
    ///
    /// ```
    /// use rcgc::{Gc, WeakValueDictionary};
    ///
    /// let mut d: WeakValueDictionary<&str, i32> = WeakValueDictionary::new();
    /// let one = d.get_or_insert_with("one", || Gc::new(1));
    /// let again = d.get_or_insert_with("one", || Gc::new(100));
    /// assert!(Gc::ptr_eq(&one, &again));
    /// ```
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> Gc<V>) -> Gc<V> {
        if let Some(value) = self.get(&key) {
            return value;
        }
        let value = make();
        self.insert(key, &value);
        value
    }

    /// Removes and returns some entry with a live value (Python's `popitem`).
    pub fn pop_item(&mut self) -> Option<(K, Gc<V>)> {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        loop {
            let (index, entry) = self.core.next_live(0)?;
            let value = entry.upgrade();
            // SAFETY: `&mut self`.
            let (weak, key) = unsafe { self.core.remove(index) };
            drop(weak);
            if let Some(value) = value {
                return Some((key, value));
            }
        }
    }

    /// Keeps only the live entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &Gc<V>) -> bool) {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        let mut pos = 0;
        while let Some((index, entry)) = self.core.next_live(pos) {
            pos = index + 1;
            let Some(value) = entry.upgrade() else { continue };
            // `keep` may drop values (entries die but stay in their buckets).
            if !keep(entry.data(), &value) && self.core.bucket(index).is_some_and(|e| e.is_alive()) {
                // SAFETY: `&mut self`; the borrow of the key has ended, and
                // removals do not move other entries.
                let removed = unsafe { self.core.remove(index) };
                drop((removed, value));
            }
        }
    }
}

impl<K, V: Trace + ?Sized + 'static> Default for WeakValueDictionary<K, V, DefaultHashBuilder> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, V: Trace + ?Sized + 'static, S: BuildHasher + Clone> Clone for WeakValueDictionary<K, V, S> {
    /// A new dictionary with the live entries (Python's `copy()`).
    fn clone(&self) -> Self {
        let mut copy = Self::with_capacity_and_hasher(self.len(), self.hasher.clone());
        for (key, value) in self.iter() {
            copy.insert(key.clone(), &value);
        }
        copy
    }
}

impl<'a, K: Hash + Eq, V: Trace + ?Sized + 'static, S: BuildHasher> Extend<(K, &'a Gc<V>)>
    for WeakValueDictionary<K, V, S>
{
    /// Inserts every pair (Python's `update`).
    fn extend<I: IntoIterator<Item = (K, &'a Gc<V>)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl<'a, K: Hash + Eq, V: Trace + ?Sized + 'static> FromIterator<(K, &'a Gc<V>)>
    for WeakValueDictionary<K, V, DefaultHashBuilder>
{
    fn from_iter<I: IntoIterator<Item = (K, &'a Gc<V>)>>(iter: I) -> Self {
        let mut dict = Self::new();
        dict.extend(iter);
        dict
    }
}

impl<K: fmt::Debug, V: Trace + ?Sized + fmt::Debug + 'static, S> fmt::Debug for WeakValueDictionary<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

// SAFETY: the dictionary owns its keys (live or waiting to be dropped) and
// visits each; values are weak references, which are not edges (their
// internal callbacks never run user code, so they need not be reported).
unsafe impl<K: Trace, V: Trace + ?Sized + 'static, S> Trace for WeakValueDictionary<K, V, S> {
    const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if K::MAY_CONTAIN_GC {
            for entry in self.core.entries() {
                entry.data().trace(tracer);
            }
        }
    }
}

/// Iterator over the live entries of a [`WeakValueDictionary`]: `(&K, Gc<V>)`.
pub struct Iter<'a, K, V: Trace + ?Sized + 'static, S> {
    dict: &'a WeakValueDictionary<K, V, S>,
    pos: usize,
}

impl<'a, K, V: Trace + ?Sized + 'static, S> Iterator for Iter<'a, K, V, S> {
    type Item = (&'a K, Gc<V>);

    fn next(&mut self) -> Option<Self::Item> {
        let core = &*self.dict.core;
        loop {
            let (i, entry) = core.next_live(self.pos)?;
            self.pos = i + 1;
            if let Some(value) = entry.upgrade() {
                return Some((entry.data(), value));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.dict.core.buckets().saturating_sub(self.pos)))
    }
}

impl<K, V: Trace + ?Sized + 'static, S> FusedIterator for Iter<'_, K, V, S> {}

impl<'a, K, V: Trace + ?Sized + 'static, S> IntoIterator for &'a WeakValueDictionary<K, V, S> {
    type Item = (&'a K, Gc<V>);
    type IntoIter = Iter<'a, K, V, S>;

    fn into_iter(self) -> Iter<'a, K, V, S> {
        self.iter()
    }
}

/// Iterator over the keys of the live entries of a [`WeakValueDictionary`].
pub struct Keys<'a, K, V: Trace + ?Sized + 'static, S> {
    dict: &'a WeakValueDictionary<K, V, S>,
    pos: usize,
}

impl<'a, K, V: Trace + ?Sized + 'static, S> Iterator for Keys<'a, K, V, S> {
    type Item = &'a K;

    fn next(&mut self) -> Option<&'a K> {
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

impl<K, V: Trace + ?Sized + 'static, S> FusedIterator for Keys<'_, K, V, S> {}

/// Iterator over the live values of a [`WeakValueDictionary`].
pub struct Values<'a, K, V: Trace + ?Sized + 'static, S> {
    inner: Iter<'a, K, V, S>,
}

impl<K, V: Trace + ?Sized + 'static, S> Iterator for Values<'_, K, V, S> {
    type Item = Gc<V>;

    fn next(&mut self) -> Option<Gc<V>> {
        self.inner.next().map(|(_, value)| value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K, V: Trace + ?Sized + 'static, S> FusedIterator for Values<'_, K, V, S> {}
