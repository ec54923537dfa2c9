//! The `weak` layer: Python's `weakref` module on top of [`Gc`] and
//! [`Weak`](crate::Weak).
//!
//! | Python | rcgc |
//! |---|---|
//! | `weakref.ref(obj, callback)` | [`Gc::downgrade_with_callback`] (in the handle layer) |
//! | `weakref.finalize(obj, func)` | [`finalize`], [`Finalizer`] |
//! | `weakref.WeakValueDictionary` | [`WeakValueDictionary`] |
//! | `weakref.WeakKeyDictionary` | [`WeakKeyDictionary`] (keys compared by identity) |
//! | `weakref.WeakSet` | [`WeakSet`] (elements compared by identity) |
//! | `sys.intern`, the small-int cache | [`Interner`](crate::Interner), `Heap::intern_str`, `Heap::intern`, `Heap::small_int` |
//!
//! # How the collections stay exact
//!
//! Every entry holds one internal weak reference (a `RawWeak` of the handle
//! layer: one word; its callback is a function pointer with plain data,
//! kept inline in the object's weak slot for the object's first such
//! reference, so an entry allocates nothing besides that slot) whose
//! callback removes the entry the moment its object dies, whether its count
//! reached zero or the cycle collector freed it. So `len()` is a counter
//! that is always exact, and no operation ever scans for dead entries.
//!
//! The engine shared by all of them is `Core`: a `hashbrown::HashTable` of
//! entries `{ weak, object pointer, data }` (24 bytes for a `u64` key),
//! where the data is a key (`WeakValueDictionary`), a value
//! (`WeakKeyDictionary`) or nothing. The entry's hash is not stored in it:
//! its weak reference's callback keeps it (the callback is given it to find
//! the entry), and the table reads it from there when it grows, which
//! happens only right after a commit, when every entry is live.
//! Invariants:
//!
//! * An entry is *live* while it has its weak reference: it is then counted
//!   by `len` and found by lookups, and its object's memory is allocated (an
//!   object is freed only after its callbacks ran), so liveness is read from
//!   the object's header with no further indirection.
//! * The death callback finds its entry by hash and identity, takes its
//!   weak reference (the entry is now *removed*: not counted, not found) and
//!   never runs user code. If the entry's data needs no `Drop` (or the table
//!   lends nothing out, `Interner`) and no lookup is running, it erases the
//!   entry at once: erasing moves no other entry and only reads this one, so
//!   references lent out and iterators (which hold a bucket number, not a
//!   borrow) stay valid. Otherwise it records the bucket, and the next
//!   exclusive operation (every `&mut self` method begins with
//!   `Core::commit`) erases the entry and drops its data, before anything
//!   can resize the table, so the recorded bucket is still right: O(1) per
//!   entry, no scan.
//! * Exclusive operations never run user code while they hold the table
//!   mutably: weak references are created before, and data is dropped after.
//! * While a lookup runs user code (`Eq`), the core is *busy*: callbacks do
//!   not erase then, and an exclusive operation (only possible through
//!   `Interner`'s `&self` methods, from a value's own `Eq`) panics instead of
//!   resizing the table under the probe.
//! * Dropping a collection drops every weak reference (cancelling the
//!   callbacks) before it drops any user data, and frees the core last.

mod finalize;
mod key_dict;
mod set;
mod value_dict;

use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use hashbrown::HashTable;

use crate::handle::weak::{self as raw, RawCallback, RawHook, RawWeak};
use crate::trace::Trace;
use crate::Gc;

pub use finalize::{finalize, Finalizer};
pub use key_dict::WeakKeyDictionary;
pub use set::WeakSet;
pub use value_dict::WeakValueDictionary;

/// Iterators of the weak collections.
pub mod iter {
    pub use super::key_dict::{Iter as KeyDictIter, Keys as KeyDictKeys, Values as KeyDictValues};
    pub use super::set::Iter as SetIter;
    pub use super::value_dict::{Iter as ValueDictIter, Keys as ValueDictKeys, Values as ValueDictValues};
}

/// A weak reference to an object of any type with a callback closure, and
/// the pointer (with its metadata, for `str` or slices) to rebuild a handle.
pub(crate) struct WeakRef<T: ?Sized + 'static> {
    raw: RawWeak,
    ptr: NonNull<T>,
}

impl<T: Trace + ?Sized + 'static> WeakRef<T> {
    /// A weak reference to `gc`'s object whose `callback` runs when it dies.
    ///
    /// # Panics
    /// Like [`Gc::downgrade`], if the object's heap cannot allocate the weak record.
    pub(crate) fn new(gc: &Gc<T>, callback: impl FnOnce() + 'static) -> WeakRef<T> {
        let raw = RawWeak::new(gc, callback).unwrap_or_else(|err| crate::handle::gc::alloc_failed(err));
        WeakRef { raw, ptr: ptr_of(gc) }
    }

    pub(crate) fn upgrade(&self) -> Option<Gc<T>> {
        self.raw.upgrade(self.ptr)
    }
}

fn ptr_of<T: Trace + ?Sized + 'static>(gc: &Gc<T>) -> NonNull<T> {
    // SAFETY: `Gc::as_ptr` is never null.
    unsafe { NonNull::new_unchecked(Gc::as_ptr(gc) as *mut T) }
}

/// One entry of a [`Core`]; see the [module docs](self).
pub(crate) struct Entry<T: ?Sized + 'static, D> {
    /// The entry's weak reference while it is live; taken by its callback.
    weak: UnsafeCell<Option<RawWeak>>,
    ptr: NonNull<T>,
    data: D,
}

impl<T: Trace + ?Sized + 'static, D> Entry<T, D> {
    /// The entry's hash, kept by its weak reference's callback. Only read
    /// when the table is resized, after a commit: every entry is live then.
    #[inline]
    fn hash(&self) -> u64 {
        // SAFETY: a plain read; the field is only written by the death
        // callback and exclusive operations, never while this runs.
        let hash = unsafe { (*self.weak.get()).as_ref() }.and_then(RawWeak::hash);
        debug_assert!(hash.is_some(), "a removed entry is erased before the table changes");
        hash.unwrap_or(0)
    }

    #[inline]
    fn is_live(&self) -> bool {
        // SAFETY: a plain read; the field is only written by the death
        // callback and exclusive operations, never while this runs.
        unsafe { (*self.weak.get()).is_some() }
    }

    /// A strong handle to the entry's object if the entry is live and the
    /// object alive.
    #[inline]
    pub(crate) fn upgrade(&self) -> Option<Gc<T>> {
        if !self.is_live() {
            return None;
        }
        // SAFETY: a live entry's callback has not run, so the object's memory
        // is still allocated.
        unsafe { raw::upgrade_if_alive(self.ptr) }
    }

    /// Whether the entry is live and its object alive.
    #[inline]
    pub(crate) fn is_alive(&self) -> bool {
        // SAFETY: as in `upgrade`.
        self.is_live() && unsafe { raw::is_alive(self.ptr) }
    }

    /// The object's address (its [`Gc::id`]).
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as *const u8 as usize
    }

    #[inline]
    pub(crate) fn data(&self) -> &D {
        &self.data
    }
}

/// The table-of-entries engine of the weak collections; see the [module docs](self).
#[repr(C)]
pub(crate) struct Core<T: ?Sized + 'static, D> {
    /// The entries' death callback (first, so that a pointer to the core is
    /// one to its hook).
    hook: RawHook,
    table: UnsafeCell<HashTable<Entry<T, D>>>,
    /// Buckets of removed entries, erased by the next [`commit`](Self::commit).
    removed: UnsafeCell<Vec<usize>>,
    len: Cell<usize>,
    /// Lookups running user code.
    busy: Cell<u32>,
    /// Callbacks erase their entry at once when not busy (for tables that lend
    /// out nothing), and the table's memory is freed when it empties.
    eager: bool,
}

/// Leaves a lookup (also on unwinding).
struct BusyGuard<'a>(&'a Cell<u32>);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

#[cold]
#[inline(never)]
fn reentered() -> ! {
    panic!("rcgc: a weak collection was changed from the Hash or Eq of one of its own entries")
}

impl<T: Trace + ?Sized + 'static, D> Core<T, D> {
    fn new(capacity: usize, eager: bool) -> Core<T, D> {
        Core {
            hook: RawHook { func: Self::on_death },
            table: UnsafeCell::new(HashTable::with_capacity(capacity)),
            removed: UnsafeCell::new(Vec::new()),
            len: Cell::new(0),
            busy: Cell::new(0),
            eager,
        }
    }

    /// Live entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    /// The table, shared: valid until the next exclusive operation.
    #[inline]
    fn table(&self) -> &HashTable<Entry<T, D>> {
        // The table is only borrowed mutably by exclusive operations, whose
        // callers guarantee that no shared borrow is alive, and by eager
        // callbacks, which run only when the core is not busy and the
        // collection lends nothing out.
        // SAFETY: as above.
        unsafe { &*self.table.get() }
    }

    /// The table, exclusively.
    ///
    /// # Safety
    /// Exclusive, as [`commit`](Self::commit), for the lifetime of the result.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn table_mut(&self) -> &mut HashTable<Entry<T, D>> {
        // SAFETY: forwarded.
        unsafe { &mut *self.table.get() }
    }

    /// The live entry with hash `hash` for which `eq` holds; `eq` may run
    /// user code (the core is busy meanwhile).
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(&Entry<T, D>) -> bool) -> Option<&Entry<T, D>> {
        self.busy.set(self.busy.get() + 1);
        let _guard = BusyGuard(&self.busy);
        self.table().find(hash, |entry| entry.is_live() && eq(entry))
    }

    /// The bucket number of the live entry with hash `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find_bucket(&self, hash: u64, mut eq: impl FnMut(&Entry<T, D>) -> bool) -> Option<usize> {
        self.busy.set(self.busy.get() + 1);
        let _guard = BusyGuard(&self.busy);
        self.table()
            .find_bucket_index(hash, |entry| entry.is_live() && eq(entry))
    }

    /// Bucket count, the bound of bucket numbers (for iterators).
    #[inline]
    pub(crate) fn buckets(&self) -> usize {
        self.table().num_buckets()
    }

    /// The entry in bucket `index`, if any (live or removed).
    #[inline]
    pub(crate) fn bucket(&self, index: usize) -> Option<&Entry<T, D>> {
        self.table().get_bucket(index)
    }

    /// The first live entry at or after bucket `from`, with its bucket.
    #[inline]
    pub(crate) fn next_live(&self, from: usize) -> Option<(usize, &Entry<T, D>)> {
        let table = self.table();
        (from..table.num_buckets()).find_map(|i| table.get_bucket(i).filter(|e| e.is_live()).map(|e| (i, e)))
    }

    /// All entries, live or removed (they own their data until erased).
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry<T, D>> {
        self.table().iter()
    }

    /// The raw callback of an entry's weak reference.
    ///
    /// # Safety
    /// `core` points to a live `Core<T, D>` (made by `new_weak` from a
    /// reference to the whole core).
    unsafe fn on_death(core: NonNull<RawHook>, hash: u64, record: usize) {
        // SAFETY: the callback of an entry's weak reference runs only while
        // the reference exists, and the core drops all of them before it is
        // freed; the hook is the core's first field (`repr(C)`).
        let core = unsafe { core.cast::<Core<T, D>>().as_ref() };
        core.kill(hash, record);
    }

    /// Removes the live entry whose weak reference has record `record`:
    /// takes the reference (dropping it, no user code), counts the entry
    /// out, and erases it now (eager tables, not busy) or at the next commit.
    fn kill(&self, hash: u64, record: usize) {
        let table = self.table();
        let Some(index) = table.find_bucket_index(hash, |entry| {
            // SAFETY: a plain read of the field, written by nothing meanwhile.
            unsafe { (*entry.weak.get()).as_ref() }.is_some_and(|weak| weak.identity() == record)
        }) else {
            return;
        };
        let entry = table.get_bucket(index).expect("found above");
        // SAFETY: only this field is written, through its `UnsafeCell`;
        // references lent out point to the data.
        let weak = unsafe { (*entry.weak.get()).take() };
        self.len.set(self.len.get() - 1);
        if (self.eager || !core::mem::needs_drop::<D>()) && self.busy.get() == 0 {
            // Erasing moves no other entry and only reads this one (its data
            // needs no drop), so references lent out stay valid; not being
            // in a lookup, nothing else borrows the table.
            // SAFETY: as above.
            let erased = unsafe { self.table_mut().get_bucket_entry(index).ok().map(|e| e.remove().0) };
            drop(erased);
            if self.eager && self.len.get() == 0 {
                // SAFETY: an eager core lends out no references.
                unsafe { self.release_memory() };
            }
        } else {
            // SAFETY: the list is only borrowed for this push.
            unsafe { (*self.removed.get()).push(index) };
        }
        drop(weak);
    }

    /// Frees the table's memory if it holds nothing.
    ///
    /// # Safety
    /// No borrow of the table is alive.
    unsafe fn release_memory(&self) {
        // SAFETY: forwarded.
        unsafe {
            if (*self.removed.get()).is_empty() && self.table().is_empty() {
                *self.table.get() = HashTable::new();
                *self.removed.get() = Vec::new();
            }
        }
    }

    #[inline]
    fn check_exclusive(&self) {
        if self.busy.get() != 0 {
            reentered();
        }
    }

    /// Erases the removed entries, dropping their data.
    ///
    /// # Safety
    /// Exclusive: no reference into the table is alive (the caller holds the
    /// collection mutably, or it lends nothing out).
    #[inline]
    pub(crate) unsafe fn commit(&self) {
        // SAFETY: the list is only borrowed for this check.
        if unsafe { (*self.removed.get()).is_empty() } {
            return;
        }
        self.check_exclusive();
        // SAFETY: exclusive; each borrow ends before the data is dropped.
        // Buckets do not move before the table is next resized, which only
        // exclusive operations do, after committing.
        while let Some(index) = unsafe { (*self.removed.get()).pop() } {
            // SAFETY: as above: exclusive, and the borrow ends here.
            let erased = unsafe {
                self.table_mut()
                    .get_bucket_entry(index)
                    .ok()
                    .filter(|e| !e.get().is_live())
                    .map(|e| e.remove().0)
            };
            drop(erased); // user code: may kill other entries
        }
    }

    /// Adds a live entry for `object`; `hash` is its key's hash, and this
    /// entry's callback is called with it. Returns the entry's bucket.
    ///
    /// # Panics
    /// Like [`Gc::downgrade`], if the object's heap cannot allocate the weak
    /// record (the core is then unchanged).
    ///
    /// # Safety
    /// Exclusive, as [`commit`](Self::commit).
    pub(crate) unsafe fn insert(&self, hash: u64, object: &Gc<T>, data: D) -> usize {
        // SAFETY: forwarded; commits first so that recorded buckets are
        // erased before the table may be resized.
        unsafe { self.commit() };
        self.check_exclusive();
        let weak = self.new_weak(hash, object);
        let entry = Entry {
            weak: UnsafeCell::new(Some(weak)),
            ptr: ptr_of(object),
            data,
        };
        // SAFETY: exclusive; the hasher reads stored hashes (no user code).
        let index = unsafe { self.table_mut() }
            .insert_unique(hash, entry, Entry::hash)
            .bucket_index();
        self.len.set(self.len.get() + 1);
        index
    }

    fn new_weak(&self, hash: u64, object: &Gc<T>) -> RawWeak {
        let callback = RawCallback {
            hook: NonNull::from(self).cast(),
            hash,
        };
        // SAFETY: the core outlives its entries' weak references (see `Drop
        // for CoreBox`), and `on_death` does not panic.
        unsafe { RawWeak::with_raw(object, callback) }.unwrap_or_else(|err| panic!("rcgc: {err}"))
    }

    /// Points the live entry in bucket `index` to `object` instead (its
    /// weak reference moved to the new object, or a new one: the old one's
    /// callback can no longer remove it), and returns the old weak reference,
    /// if any, for the caller to drop.
    ///
    /// # Safety
    /// Exclusive, as [`commit`](Self::commit), with no commit since `index`
    /// was found.
    pub(crate) unsafe fn replace(&self, index: usize, object: &Gc<T>) -> Option<RawWeak> {
        self.check_exclusive();
        let entry = self.table().get_bucket(index).expect("a live bucket");
        // SAFETY: a plain read of the field, written by nothing meanwhile.
        if unsafe { (*entry.weak.get()).as_ref() }.is_some_and(|weak| weak.retarget(object)) {
            // SAFETY: exclusive; the shared borrow above has ended.
            unsafe { self.table_mut() }
                .get_bucket_mut(index)
                .expect("a live bucket")
                .ptr = ptr_of(object);
            return None;
        }
        let weak = self.new_weak(entry.hash(), object);
        // SAFETY: exclusive.
        let entry = unsafe { self.table_mut() }
            .get_bucket_mut(index)
            .expect("a live bucket");
        entry.ptr = ptr_of(object);
        entry.weak.get_mut().replace(weak)
    }

    /// The data of the entry in bucket `index`, mutably.
    ///
    /// # Safety
    /// Exclusive, as [`commit`](Self::commit), for the lifetime of the result.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn data_mut(&self, index: usize) -> &mut D {
        // SAFETY: exclusive.
        &mut unsafe { self.table_mut() }
            .get_bucket_mut(index)
            .expect("a live bucket")
            .data
    }

    /// Erases the live entry in bucket `index`, returning its weak reference
    /// and data for the caller to drop.
    ///
    /// # Safety
    /// Exclusive, as [`commit`](Self::commit).
    pub(crate) unsafe fn remove(&self, index: usize) -> (Option<RawWeak>, D) {
        self.check_exclusive();
        // SAFETY: exclusive.
        let entry = unsafe { self.table_mut() }
            .get_bucket_entry(index)
            .ok()
            .expect("a live bucket")
            .remove()
            .0;
        let mut weak = entry.weak;
        if weak.get_mut().is_some() {
            self.len.set(self.len.get() - 1);
        }
        (weak.into_inner(), entry.data)
    }

    /// Empties the core; returns the old table for the caller to drop with
    /// [`drop_table`].
    ///
    /// # Safety
    /// Exclusive, as [`commit`](Self::commit).
    pub(crate) unsafe fn take_all(&self) -> HashTable<Entry<T, D>> {
        self.check_exclusive();
        self.len.set(0);
        // SAFETY: exclusive.
        unsafe {
            (*self.removed.get()).clear();
            core::mem::take(self.table_mut())
        }
    }
}

/// Drops a table taken out of a core: every weak reference first
/// (cancelling the callbacks, no user code), then the data.
pub(crate) fn drop_table<T: Trace + ?Sized + 'static, D>(mut table: HashTable<Entry<T, D>>) {
    for entry in table.iter_mut() {
        drop(entry.weak.get_mut().take());
    }
    drop(table);
}

/// Owns a heap-allocated [`Core`] at a stable address (the death callbacks
/// point to it) and frees it last.
pub(crate) struct CoreBox<T: Trace + ?Sized + 'static, D> {
    ptr: NonNull<Core<T, D>>,
    _owns: PhantomData<Core<T, D>>,
}

impl<T: Trace + ?Sized + 'static, D> CoreBox<T, D> {
    pub(crate) fn new(capacity: usize) -> CoreBox<T, D> {
        Self::with_options(capacity, false)
    }

    /// Removes every entry (the collections' `clear`).
    pub(crate) fn clear(&mut self) {
        // SAFETY: `&mut self`: the owning collection lends nothing out.
        let table = unsafe { self.take_all() };
        drop_table(table);
    }

    pub(crate) fn with_options(capacity: usize, eager: bool) -> CoreBox<T, D> {
        CoreBox {
            ptr: NonNull::from(Box::leak(Box::new(Core::new(capacity, eager)))),
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + ?Sized + 'static, D> core::ops::Deref for CoreBox<T, D> {
    type Target = Core<T, D>;

    #[inline]
    fn deref(&self) -> &Core<T, D> {
        // SAFETY: the core lives until this box is dropped; it is only ever
        // accessed through shared references (its fields are cells).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Trace + ?Sized + 'static, D> Drop for CoreBox<T, D> {
    fn drop(&mut self) {
        if self.busy.get() != 0 {
            // Dropped from inside one of its own lookups (an `Interner` in a
            // key's `Eq`): leak it rather than free memory in use.
            return;
        }
        // SAFETY: `&mut self`: the collection is gone, so nothing borrows the
        // table; after `take_all` no weak reference points here except the
        // ones in `table`, dropped first by `drop_table`.
        unsafe {
            let table = self.take_all();
            drop_table(table);
            drop(Box::from_raw(self.ptr.as_ptr()));
        }
    }
}

impl<T: Trace + ?Sized + 'static, D> fmt::Debug for Core<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core").field("len", &self.len()).finish_non_exhaustive()
    }
}
