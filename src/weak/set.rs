//! [`WeakSet`]: a set of objects held weakly and compared by identity.
//!
//! Owns a `CoreBox` (see the [`weak`](super) module docs) with no data per
//! entry (`()`): an entry is its weak reference and the hash of the object's
//! address. It is erased the moment its object dies (unless a lookup is
//! running, then by the next `&mut self` call), so `len()` is exact and
//! nothing is held back.

use core::fmt;
use core::hash::BuildHasher;
use core::iter::FusedIterator;

use hashbrown::DefaultHashBuilder;

use super::CoreBox;
use crate::trace::{Trace, Tracer};
use crate::Gc;

/// A set of objects that does not keep them alive: Python's
/// `weakref.WeakSet`, with elements compared by identity ([`Gc::ptr_eq`]).
///
/// An object leaves the set the moment it dies (last handle dropped, or
/// freed by the cycle collector), so [`len`](Self::len) is exact at all
/// times and iterating never yields a dead object.
///
/// ```
/// use rcgc::{Gc, Heap, WeakSet};
///
/// let heap = Heap::new();
/// let mut listeners: WeakSet<String> = WeakSet::new();
/// let a = heap.alloc(String::from("a"));
/// let b = heap.alloc(String::from("b"));
/// listeners.insert(&a);
/// listeners.insert(&b);
/// assert_eq!(listeners.len(), 2);
/// drop(a);
/// assert_eq!(listeners.len(), 1);
/// assert!(listeners.iter().all(|x| Gc::ptr_eq(&x, &b)));
/// ```
pub struct WeakSet<T: Trace + ?Sized + 'static, S = DefaultHashBuilder> {
    core: CoreBox<T, ()>,
    hasher: S,
}

impl<T: Trace + ?Sized + 'static> WeakSet<T, DefaultHashBuilder> {
    /// An empty set.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty set with room for `capacity` objects.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, DefaultHashBuilder::default())
    }
}

impl<T: Trace + ?Sized + 'static, S> WeakSet<T, S> {
    /// An empty set with room for `capacity` objects, using `hasher` to hash
    /// object addresses.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        WeakSet {
            core: CoreBox::new(capacity),
            hasher,
        }
    }

    /// Live objects in the set: exact at all times.
    #[inline]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no live object is in the set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every object.
    pub fn clear(&mut self) {
        self.core.clear();
    }

    /// Strong handles to the live objects, in no particular order.
    pub fn iter(&self) -> Iter<'_, T, S> {
        Iter { set: self, pos: 0 }
    }
}

impl<T: Trace + ?Sized + 'static, S: BuildHasher> WeakSet<T, S> {
    #[inline]
    fn find_bucket(&self, value: &Gc<T>) -> Option<usize> {
        let addr = Gc::as_ptr(value) as *const u8 as usize;
        self.core.find_bucket(self.hasher.hash_one(addr), |entry| {
            entry.addr() == addr && entry.is_alive()
        })
    }

    /// Whether `value`'s object is in the set.
    #[inline]
    pub fn contains(&self, value: &Gc<T>) -> bool {
        self.find_bucket(value).is_some()
    }

    /// Adds `value`'s object (held weakly); false if it was already there.
    ///
    /// # Panics
    /// Like [`Gc::downgrade`], if the object's heap has no room for its weak record.
    pub fn insert(&mut self, value: &Gc<T>) -> bool {
        if self.find_bucket(value).is_some() {
            return false;
        }
        let hash = self.hasher.hash_one(Gc::as_ptr(value) as *const u8 as usize);
        // SAFETY: `&mut self`: nothing borrows the table.
        unsafe { self.core.insert(hash, value, ()) };
        true
    }

    /// Removes `value`'s object; false if it was not there.
    pub fn remove(&mut self, value: &Gc<T>) -> bool {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        let Some(index) = self.find_bucket(value) else {
            return false;
        };
        // SAFETY: `&mut self`.
        let removed = unsafe { self.core.remove(index) };
        drop(removed);
        true
    }

    /// Removes and returns some live object (Python's `pop`).
    pub fn pop(&mut self) -> Option<Gc<T>> {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        loop {
            let (index, entry) = self.core.next_live(0)?;
            let value = entry.upgrade();
            // SAFETY: `&mut self`.
            let removed = unsafe { self.core.remove(index) };
            drop(removed);
            if value.is_some() {
                return value;
            }
        }
    }

    /// Keeps only the live objects for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Gc<T>) -> bool) {
        // SAFETY: `&mut self`.
        unsafe { self.core.commit() };
        let mut pos = 0;
        while let Some((index, entry)) = self.core.next_live(pos) {
            pos = index + 1;
            let Some(value) = entry.upgrade() else { continue };
            if !keep(&value) && self.core.bucket(index).is_some_and(|e| e.is_alive()) {
                // SAFETY: `&mut self`; removals do not move other entries.
                let removed = unsafe { self.core.remove(index) };
                drop((removed, value));
            }
        }
    }
}

impl<T: Trace + ?Sized + 'static> Default for WeakSet<T, DefaultHashBuilder> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Trace + ?Sized + 'static, S: BuildHasher + Clone> Clone for WeakSet<T, S> {
    /// A new set with the live objects (Python's `copy()`).
    fn clone(&self) -> Self {
        let mut copy = Self::with_capacity_and_hasher(self.len(), self.hasher.clone());
        for value in self.iter() {
            copy.insert(&value);
        }
        copy
    }
}

impl<'a, T: Trace + ?Sized + 'static, S: BuildHasher> Extend<&'a Gc<T>> for WeakSet<T, S> {
    /// Adds every object (Python's `update`).
    fn extend<I: IntoIterator<Item = &'a Gc<T>>>(&mut self, iter: I) {
        for value in iter {
            self.insert(value);
        }
    }
}

impl<'a, T: Trace + ?Sized + 'static> FromIterator<&'a Gc<T>> for WeakSet<T, DefaultHashBuilder> {
    fn from_iter<I: IntoIterator<Item = &'a Gc<T>>>(iter: I) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

impl<T: Trace + ?Sized + fmt::Debug + 'static, S> fmt::Debug for WeakSet<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

// SAFETY: a weak set owns no strong handle.
unsafe impl<T: Trace + ?Sized + 'static, S> Trace for WeakSet<T, S> {
    const MAY_CONTAIN_GC: bool = false;

    fn trace(&self, _tracer: &mut Tracer<'_>) {}
}

/// Iterator over the live objects of a [`WeakSet`].
pub struct Iter<'a, T: Trace + ?Sized + 'static, S> {
    set: &'a WeakSet<T, S>,
    pos: usize,
}

impl<T: Trace + ?Sized + 'static, S> Iterator for Iter<'_, T, S> {
    type Item = Gc<T>;

    fn next(&mut self) -> Option<Gc<T>> {
        let core = &*self.set.core;
        loop {
            let (i, entry) = core.next_live(self.pos)?;
            self.pos = i + 1;
            if let Some(value) = entry.upgrade() {
                return Some(value);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.set.core.buckets().saturating_sub(self.pos)))
    }
}

impl<T: Trace + ?Sized + 'static, S> FusedIterator for Iter<'_, T, S> {}

impl<'a, T: Trace + ?Sized + 'static, S> IntoIterator for &'a WeakSet<T, S> {
    type Item = Gc<T>;
    type IntoIter = Iter<'a, T, S>;

    fn into_iter(self) -> Iter<'a, T, S> {
        self.iter()
    }
}
