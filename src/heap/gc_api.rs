//! The `gc` module API on [`Heap`]: collection, generations, thresholds,
//! statistics, introspection, freezing, callbacks and debug flags.
//!
//! | Python | rcgc |
//! |---|---|
//! | `gc.collect()` / `gc.collect(n)` | [`Heap::collect`] / [`Heap::collect_generation`] |
//! | `gc.enable()`, `disable()`, `isenabled()` | [`Heap::enable`], [`Heap::disable`], [`Heap::is_enabled`], [`Heap::disabled`] (scope guard) |
//! | `gc.get_count()` | [`Heap::gc_count`] |
//! | `gc.get_threshold()`, `set_threshold()` | [`Heap::threshold`], [`Heap::set_threshold`] |
//! | `gc.get_stats()` | [`Heap::gc_stats`] |
//! | `gc.get_objects(generation)` | [`Heap::objects`] |
//! | `gc.get_referrers()`, `get_referents()` | [`Heap::referrers`], [`Heap::referents`] |
//! | `gc.is_tracked()`, `is_finalized()` | [`Heap::is_tracked`], [`Heap::is_finalized`] |
//! | `gc.freeze()`, `unfreeze()`, `get_freeze_count()` | [`Heap::freeze`], [`Heap::unfreeze`], [`Heap::freeze_count`] |
//! | `gc.callbacks` | [`Heap::add_gc_callback`], [`Heap::remove_gc_callback`] |
//! | `gc.set_debug()`, `get_debug()` | [`Heap::set_debug`], [`Heap::debug_flags`], [`Heap::set_debug_sink`] |
//! | `gc.garbage` | [`Heap::garbage`], [`Heap::take_garbage`] |

use core::ptr::NonNull;

use crate::collect::{
    algorithm, check_generation, CollectorPolicy, DebugFlags, GcError, GcInfo, GcPhase, GenerationStats, GENERATIONS,
};
use crate::handle::{AnyGc, ObjectRef};
use crate::object::{self, flags, TrackedHeader};
use crate::trace::Edge;

use super::Heap;

/// Re-enables automatic collection when dropped; see [`Heap::disabled`].
#[must_use = "automatic collection is re-enabled when the guard drops"]
pub struct DisabledGuard<'a> {
    heap: &'a Heap,
    was_enabled: bool,
}

impl Drop for DisabledGuard<'_> {
    fn drop(&mut self) {
        if self.was_enabled {
            self.heap.enable();
        }
    }
}

/// Identifies a collection callback for [`Heap::remove_gc_callback`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

impl Heap {
    /// Creates an empty heap whose automatic collections are decided by `policy`.
    pub fn with_policy(policy: impl CollectorPolicy + 'static) -> Heap {
        let heap = Heap::new();
        heap.set_policy(policy);
        heap
    }

    /// Replaces the collector policy.
    pub fn set_policy(&self, policy: impl CollectorPolicy + 'static) {
        self.inner().set_policy(Box::new(policy));
    }

    /// Runs a full collection and returns the number of unreachable objects
    /// it found (and freed), like `gc.collect()`. Returns 0 at once if called
    /// while a collection is running on this thread (from a finalizer,
    /// `Drop` or callback), of this heap or of any other: one collection
    /// runs at a time per thread. Afterwards it returns to the OS the empty
    /// arenas kept beyond the usual spares (automatic collections return
    /// only one each, to keep their pauses short), as does
    /// [`collect_generation`](Self::collect_generation).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use rcgc::{Gc, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Node { next: RefCell<Option<Gc<Node>>> }
    ///
    /// let heap = Heap::new();
    /// let a = heap.alloc(Node { next: RefCell::new(None) });
    /// let b = heap.alloc(Node { next: RefCell::new(Some(a.clone())) });
    /// *a.next.borrow_mut() = Some(b.clone()); // a -> b -> a
    /// drop((a, b));                            // leaked with Rc; here:
    /// assert_eq!(heap.collect(), 2);
    /// assert_eq!(heap.object_count(), 0);
    /// ```
    pub fn collect(&self) -> usize {
        algorithm::collect_on_request(self.inner(), GENERATIONS - 1)
    }

    /// Collects generation `generation` and the younger ones (`gc.collect(n)`).
    ///
    /// # Errors
    /// [`GcError::InvalidGeneration`] unless `generation` is 0, 1 or 2.
    pub fn collect_generation(&self, generation: usize) -> Result<usize, GcError> {
        Ok(algorithm::collect_on_request(
            self.inner(),
            check_generation(generation)?,
        ))
    }

    /// Asks the policy whether to collect now (for example at the end of a
    /// game frame); returns the number of unreachable objects found.
    pub fn checkpoint(&self) -> usize {
        self.inner().checkpoint()
    }

    /// Enables automatic collection (the default).
    pub fn enable(&self) {
        self.inner().enabled.set(true);
        self.inner().refresh_poll();
    }

    /// Disables automatic collection; explicit `collect` calls still work.
    pub fn disable(&self) {
        self.inner().enabled.set(false);
        self.inner().refresh_poll();
    }

    /// Whether automatic collection is enabled.
    pub fn is_enabled(&self) -> bool {
        self.inner().enabled.get()
    }

    /// Disables automatic collection until the returned guard drops (then
    /// restores the previous state).
    pub fn disabled(&self) -> DisabledGuard<'_> {
        let was_enabled = self.is_enabled();
        self.disable();
        DisabledGuard {
            heap: self,
            was_enabled,
        }
    }

    /// `gc.get_count()`: tracked allocations minus deallocations since the
    /// last collection; generation-0 collections since the last generation-1
    /// one; generation-1 collections since the last full one.
    pub fn gc_count(&self) -> [usize; GENERATIONS] {
        self.inner().with_gens(|gens| gens.count)
    }

    /// The collection thresholds, `(700, 10, 10)` by default.
    pub fn threshold(&self) -> [usize; GENERATIONS] {
        self.inner().with_gens(|gens| gens.threshold)
    }

    /// Sets the collection thresholds. A generation-0 threshold of 0 disables
    /// automatic collection (with the default policy).
    pub fn set_threshold(&self, threshold: [usize; GENERATIONS]) {
        self.inner().with_gens(|gens| gens.threshold = threshold);
        self.inner().refresh_poll();
    }

    /// Cumulative statistics per generation (`gc.get_stats()`).
    pub fn gc_stats(&self) -> [GenerationStats; GENERATIONS] {
        self.inner().stats.get()
    }

    /// Handles to the tracked objects of one generation, or of all three
    /// (`gc.get_objects()`); frozen objects are not listed.
    ///
    /// # Errors
    /// [`GcError::InvalidGeneration`] for a generation outside 0..3.
    pub fn objects(&self, generation: Option<usize>) -> Result<Vec<AnyGc>, GcError> {
        let generations = match generation {
            Some(g) => check_generation(g)?..=g,
            None => 0..=GENERATIONS - 1,
        };
        let inner = self.inner();
        let headers: Vec<NonNull<TrackedHeader>> =
            inner.with_gens(|gens| generations.flat_map(|g| gens.list(&inner.allocator, g)).collect());
        // SAFETY: listed objects are live; dying ones (count 0) are skipped.
        Ok(headers
            .into_iter()
            .filter_map(|h| unsafe { AnyGc::from_header(h) })
            .collect())
    }

    /// The tracked objects whose `Trace` reports an edge to `target`
    /// (`gc.get_referrers()`); scans every generation.
    pub fn referrers(&self, target: &impl ObjectRef) -> Vec<AnyGc> {
        let target = target.object_value();
        let mut found = Vec::new();
        for object in self.objects(None).unwrap_or_default() {
            if edges_of(self, object.value())
                .iter()
                .any(|edge| edge.strong_value() == Some(target))
            {
                found.push(object);
            }
        }
        found
    }

    /// The tracked objects `object`'s `Trace` reports (`gc.get_referents()`),
    /// one entry per edge. Leaf referents (strings, numbers: objects that
    /// cannot be part of a cycle) are not listed, and an untracked object has
    /// none.
    pub fn referents(&self, object: &impl ObjectRef) -> Vec<AnyGc> {
        if !object.object_is_tracked() {
            return Vec::new();
        }
        // SAFETY: the caller's handle keeps the tracked object alive.
        let header = unsafe { object::tracked_header(object.object_value()) };
        algorithm::trace_handles(self.inner(), header)
    }

    /// Whether the collector tracks the object (`gc.is_tracked()`): objects
    /// whose type may hold a `Gc`, except immortal, frozen and dead ones.
    pub fn is_tracked(&self, object: &impl ObjectRef) -> bool {
        object.object_is_tracked() && {
            // SAFETY: the handle keeps the tracked object alive.
            let h = unsafe { object::tracked_header(object.object_value()).as_ref() };
            h.slot.get() != object::NO_SLOT && h.generation() < GENERATIONS
        }
    }

    /// Whether the object's finalizer has run (`gc.is_finalized()`).
    pub fn is_finalized(&self, object: &impl ObjectRef) -> bool {
        object.object_is_tracked() && {
            // SAFETY: the handle keeps the tracked object alive.
            unsafe { object::tracked_header(object.object_value()).as_ref() }.has(flags::FINALIZED)
        }
    }

    /// Moves every tracked object into the permanent generation, which
    /// collections ignore (`gc.freeze()`), e.g. after an engine's startup.
    pub fn freeze(&self) {
        let inner = self.inner();
        inner.with_gens(|gens| gens.freeze(&inner.allocator));
    }

    /// Moves the frozen objects back into the oldest generation.
    pub fn unfreeze(&self) {
        let inner = self.inner();
        inner.with_gens(|gens| gens.unfreeze(&inner.allocator));
    }

    /// Objects in the permanent generation.
    pub fn freeze_count(&self) -> usize {
        self.inner().with_gens(|gens| gens.sizes()[GENERATIONS])
    }

    /// Bytes the collector keeps beside the objects: the vectors of the
    /// young generations and its work lists (their capacity). Objects of the
    /// oldest and the permanent generation have no entry anywhere, so for a
    /// heap of old objects this stays near zero and `bytes_in_use()` is
    /// what the objects cost in all.
    pub fn gc_side_bytes(&self) -> usize {
        self.inner().gc_side_bytes()
    }

    /// Registers a callback called at the start and the end of every
    /// collection (`gc.callbacks`). Panics in it are reported, not propagated.
    pub fn add_gc_callback(&self, callback: impl FnMut(GcPhase, &GcInfo) + 'static) -> CallbackId {
        CallbackId(self.inner().add_callback(Box::new(callback)))
    }

    /// Removes a callback; returns whether it was registered.
    pub fn remove_gc_callback(&self, id: CallbackId) -> bool {
        self.inner().remove_callback(id.0)
    }

    /// Sets the debug flags (`gc.set_debug()`).
    pub fn set_debug(&self, flags: DebugFlags) {
        self.inner().debug.set(flags);
    }

    /// The debug flags (`gc.get_debug()`).
    pub fn debug_flags(&self) -> DebugFlags {
        self.inner().debug.get()
    }

    /// Where debug output and reports of panics in finalizers, `Drop` and
    /// callbacks go (stderr by default).
    pub fn set_debug_sink(&self, sink: impl std::io::Write + 'static) {
        self.inner().set_sink(Box::new(sink));
    }

    /// Objects kept by collections run with [`DebugFlags::SAVEALL`] (`gc.garbage`).
    pub fn garbage(&self) -> Vec<AnyGc> {
        self.inner().garbage()
    }

    /// Empties [`garbage`](Self::garbage), returning its handles.
    pub fn take_garbage(&self) -> Vec<AnyGc> {
        self.inner().take_garbage()
    }
}

/// The edges `Trace` reports for the tracked object at `value` (a panicking
/// trace is reported and yields what it visited before panicking).
fn edges_of(heap: &Heap, value: NonNull<u8>) -> Vec<Edge> {
    let mut edges = Vec::new();
    // SAFETY: callers hold a handle to the tracked object at `value`.
    let header = unsafe { object::tracked_header(value) };
    algorithm::trace_into(heap.inner(), header, &mut edges);
    edges
}
