//! `HeapInner`: the state shared by a `Heap` and every object in it.
//!
//! It owns the allocator, the generations of tracked objects, the
//! weak side table and the deferred-release queue. Its address is stored as
//! the allocator's owner data, so any object finds it by masking its own
//! address (small objects) or from its large-block header.
//!
//! # Lifetime
//!
//! `HeapInner` is freed when the `Heap` has been dropped *and* its last block
//! (object or weak record) is released, whichever comes last. The blocks are
//! counted by `live_objects` and the weak table's live record count (an
//! object leaves `live_objects` before its block is freed, but always inside
//! a release, which holds the release depth above 0 until the block is
//! freed); `heap_alive` says whether the `Heap` value exists.
//!
//! # Re-entrancy
//!
//! Dropping a value runs user code, which may drop other handles of the same
//! heap, allocate, or upgrade weak references. So every field is a `Cell` or
//! an `UnsafeCell` that is borrowed only inside a short method that calls no
//! user code (`with_gens`, `with_work`, `with_weak_table`, `with_deferred`).

use core::cell::{Cell, RefCell, UnsafeCell};
use core::fmt;
use core::ptr::NonNull;
use std::any::Any;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::alloc::Allocator;
use crate::collect::generations::Generations;
use crate::collect::{
    Action, CollectorPolicy, DebugFlags, GcInfo, GcPhase, GenerationStats, Generational, PolicyContext, GENERATIONS,
};
use crate::handle::AnyGc;
use crate::object::{self, flags, TrackedHeader};

use super::super::handle::weak::WeakTable;

/// Nesting depth of releases past which value drops are queued instead of
/// run recursively (CPython's trashcan uses 50).
///
/// The commonest nested release is not counted: that of a plain untracked
/// object (one the collector does not track because its handles cannot
/// change, see [`Trace::FIXED_EDGES`](crate::Trace::FIXED_EDGES), with no
/// weak reference and no finalizer) while it runs within 8 KiB of stack
/// below the outermost release of its cascade. Its recursion is bounded by
/// those 8 KiB instead, and it pays no counter update. Every other nested
/// release counts (under Miri, every one), so a cascade's stack is always
/// bounded and the rest of a long chain is queued.
pub const MAX_RELEASE_DEPTH: u32 = 48;

/// Bytes of stack below the outermost release of a cascade within which
/// nested releases of plain objects run without counting toward
/// [`MAX_RELEASE_DEPTH`] (about 170 levels of a two-handle node's release;
/// a Miri build does not use it).
pub(crate) const RELEASE_STACK_WINDOW: usize = 8 * 1024;

/// An address in the caller's stack frame: where the stack is now. Only the
/// number is used (compared with another such number), never the pointer.
#[inline(always)]
fn stack_position() -> usize {
    let marker = 0u8;
    core::ptr::addr_of!(marker).addr()
}

/// Work-list entries kept between collections (young collections reuse it).
const KEPT_WORK_CAPACITY: usize = 4096;

/// A release waiting in the queue: the value address and the function that
/// drops the value and frees the block.
pub(crate) type Deferred = (NonNull<u8>, unsafe fn(NonNull<u8>));

/// A collection callback (`gc.callbacks` entry).
pub(crate) type GcCallback = Box<dyn FnMut(GcPhase, &GcInfo)>;

/// A heap kept forever because it holds immortal objects.
struct ImmortalHeap(#[allow(dead_code)] NonNull<HeapInner>);

// SAFETY: the pointer is only stored, never dereferenced, from the list.
unsafe impl Send for ImmortalHeap {}

/// Heaps dropped while holding immortal objects.
static IMMORTAL_HEAPS: std::sync::Mutex<Vec<ImmortalHeap>> = std::sync::Mutex::new(Vec::new());

pub(crate) struct HeapInner {
    pub(crate) allocator: Allocator,
    /// The generation lists and counters.
    gens: UnsafeCell<Generations>,
    /// The candidates of the running collection, indexed by their `slot`;
    /// `None` once released (see `collect::algorithm`).
    work: UnsafeCell<Vec<Option<NonNull<TrackedHeader>>>>,
    /// Tracked objects whose release was queued while `Trace` impls ran.
    pending: UnsafeCell<Vec<NonNull<u8>>>,
    /// A collection is running (collections are not re-entrant).
    pub(crate) collecting: Cell<bool>,
    /// The collector is running `Trace` impls: queue tracked releases.
    pub(crate) tracing: Cell<bool>,
    /// Automatic collection is enabled (`gc.enable()`).
    pub(crate) enabled: Cell<bool>,
    /// Ask the policy when the generation-0 count exceeds this.
    poll_at: Cell<usize>,
    /// A weak reference with a callback was ever created on this heap (then
    /// collections look for callback records owned by garbage).
    pub(crate) weak_callbacks_used: Cell<bool>,
    pub(crate) debug: Cell<DebugFlags>,
    sink: RefCell<Box<dyn Write>>,
    callbacks: RefCell<Vec<(u64, GcCallback)>>,
    next_callback_id: Cell<u64>,
    pub(crate) stats: Cell<[GenerationStats; GENERATIONS]>,
    garbage: RefCell<Vec<AnyGc>>,
    policy: RefCell<Box<dyn CollectorPolicy>>,
    /// Where objects with `HAS_WEAK` find their weak records.
    weak_table: UnsafeCell<WeakTable>,
    deferred: UnsafeCell<Vec<Deferred>>,
    pub(crate) release_depth: Cell<u32>,
    /// The lowest stack position of the window opened by the latest
    /// outermost release (see [`RELEASE_STACK_WINDOW`]); any value is safe,
    /// it only decides which nested releases are counted.
    release_stack_floor: Cell<usize>,
    /// Live objects (tracked or not), immortal ones included. With the weak
    /// table's live record count, this is what keeps the state alive: there
    /// is no separate block count to maintain on every allocation and free.
    pub(crate) live_objects: Cell<usize>,
    /// Immortal objects: while any exists the state can never be freed.
    pub(crate) immortal_objects: Cell<usize>,
    heap_alive: Cell<bool>,
}

impl HeapInner {
    /// Creates the state on the system heap; the caller owns the pointer.
    pub(crate) fn create() -> NonNull<HeapInner> {
        let inner = NonNull::from(Box::leak(Box::new(HeapInner {
            allocator: Allocator::new(),
            gens: UnsafeCell::new(Generations::new()),
            work: UnsafeCell::new(Vec::new()),
            pending: UnsafeCell::new(Vec::new()),
            collecting: Cell::new(false),
            tracing: Cell::new(false),
            enabled: Cell::new(true),
            poll_at: Cell::new(700),
            weak_callbacks_used: Cell::new(false),
            debug: Cell::new(DebugFlags::NONE),
            sink: RefCell::new(Box::new(std::io::stderr())),
            callbacks: RefCell::new(Vec::new()),
            next_callback_id: Cell::new(0),
            stats: Cell::new([GenerationStats::default(); GENERATIONS]),
            garbage: RefCell::new(Vec::new()),
            policy: RefCell::new(Box::new(Generational)),
            weak_table: UnsafeCell::new(WeakTable::new()),
            deferred: UnsafeCell::new(Vec::new()),
            release_depth: Cell::new(0),
            release_stack_floor: Cell::new(0),
            live_objects: Cell::new(0),
            immortal_objects: Cell::new(0),
            heap_alive: Cell::new(true),
        })));
        // SAFETY: just created, nobody else uses it yet.
        unsafe { inner.as_ref() }
            .allocator
            .set_owner_data(inner.as_ptr().cast());
        inner
    }

    /// Runs `f` on the generations. `f` must not call user code.
    #[inline(always)]
    pub(crate) fn with_gens<R>(&self, f: impl FnOnce(&mut Generations) -> R) -> R {
        // SAFETY: single-threaded, and `f` calls no user code, so this is the
        // only reference to the generations while it runs.
        f(unsafe { &mut *self.gens.get() })
    }

    /// Runs `f` on the collector's work list. `f` must not call user code.
    #[inline]
    pub(crate) fn with_work<R>(&self, f: impl FnOnce(&mut Vec<Option<NonNull<TrackedHeader>>>) -> R) -> R {
        // SAFETY: as in `with_gens`.
        f(unsafe { &mut *self.work.get() })
    }

    /// Runs `f` on the weak side table. `f` must not call user code.
    #[inline]
    pub(crate) fn with_weak_table<R>(&self, f: impl FnOnce(&mut WeakTable) -> R) -> R {
        // SAFETY: as in `with_gens`.
        f(unsafe { &mut *self.weak_table.get() })
    }

    /// Bytes occupied by live objects and weak records: the allocator's count
    /// without the freed weak records kept for reuse (`Heap::bytes_in_use`,
    /// and what policies are told).
    pub(crate) fn bytes_in_use(&self) -> usize {
        self.allocator.bytes_in_use() - crate::handle::weak::spare_slot_bytes(self)
    }

    /// Gives the freed weak records kept for reuse back to the allocator, so
    /// that its byte count and limit see only live objects and records.
    pub(crate) fn release_spare_weak_records(&self) {
        crate::handle::weak::release_spare_slots(self);
    }

    /// Runs `f` on the deferred-release queue. `f` must not call user code.
    #[inline]
    pub(crate) fn with_deferred<R>(&self, f: impl FnOnce(&mut Vec<Deferred>) -> R) -> R {
        // SAFETY: as in `with_gens`.
        f(unsafe { &mut *self.deferred.get() })
    }

    /// Bytes of the collector's side vectors (see `Heap::gc_side_bytes`).
    pub(crate) fn gc_side_bytes(&self) -> usize {
        let word = core::mem::size_of::<usize>();
        self.with_gens(|gens| gens.side_bytes())
            + self.with_work(|work| work.capacity()) * word
            // SAFETY: as in `with_gens`.
            + unsafe { &*self.pending.get() }.capacity() * word
    }

    /// Gives back the work list's memory after a large collection, so that a
    /// big heap does not keep a word per object between full collections:
    /// at the end of any collection but a full one (`full`). A full
    /// collection keeps it until the next young collection (at most
    /// `threshold[0]` allocations later with the default policy), so that
    /// full collections in a row (`gc.collect()` in a loop, a benchmark)
    /// do not pay fresh pages for it each time.
    pub(crate) fn shrink_work(&self, full: bool) {
        self.with_work(|work| {
            if !full && work.capacity() > KEPT_WORK_CAPACITY {
                *work = Vec::new();
            }
        });
    }

    /// Adds a tracked object to generation 0.
    #[inline(always)]
    pub(crate) fn track(&self, header: NonNull<TrackedHeader>) {
        self.with_gens(|gens| {
            gens.count[0] += 1;
            gens.push(0, header);
        })
    }

    /// Removes a dying tracked object from its generation list (or from the
    /// running collection's work list).
    ///
    /// # Safety
    /// `header` is a live tracked object of this heap.
    #[inline]
    pub(crate) unsafe fn untrack(&self, header: NonNull<TrackedHeader>) {
        // SAFETY: the caller guarantees a live tracked header.
        let h = unsafe { header.as_ref() };
        if h.is_untracked() {
            // Never tracked (immutable, see `Trace::FIXED_EDGES`), or no longer:
            // it was not counted in generation 0 either.
            return;
        }
        if h.has(flags::COLLECTING) {
            let slot = h.slot.get() as usize;
            self.with_work(|work| {
                if work.get(slot) == Some(&Some(header)) {
                    work[slot] = None;
                }
            });
            h.set(flags::COLLECTING, false);
            h.slot.set(object::NO_SLOT);
        } else {
            self.with_gens(|gens| {
                if h.generation() == GENERATIONS - 1 && h.slot.get() != object::NO_SLOT {
                    // The 25 % rule measures the old generation's net growth:
                    // an old object dying undoes one promotion (CPython only
                    // counts promotions, so promoted objects that die soon
                    // after still trigger full collections).
                    gens.long_lived_pending = gens.long_lived_pending.saturating_sub(1);
                }
                gens.remove(header);
                gens.count[0] = gens.count[0].saturating_sub(1);
            });
            return;
        }
        self.with_gens(|gens| gens.count[0] = gens.count[0].saturating_sub(1));
    }

    /// Before a tracked allocation: asks the policy whether to collect once
    /// the generation-0 count passed its poll point.
    #[inline(always)]
    pub(crate) fn before_tracked_alloc(&self) {
        // CPython counts the allocation first and collects when the count
        // exceeds the threshold: the 701st allocation triggers by default.
        if self.with_gens(|gens| gens.count[0]) >= self.poll_at.get() {
            self.poll_on_allocation();
        }
    }

    #[cold]
    #[inline(never)]
    fn poll_on_allocation(&self) {
        if self.collecting.get() || !self.enabled.get() {
            return;
        }
        let mut ctx = self.policy_context();
        ctx.count[0] += 1; // the allocation being made counts, as in CPython
        let action = self.policy.borrow_mut().on_allocation(&ctx);
        self.perform(action);
        self.refresh_poll();
    }

    /// Asks the policy at a checkpoint (`Heap::checkpoint`); returns what was collected.
    pub(crate) fn checkpoint(&self) -> usize {
        if self.collecting.get() {
            return 0;
        }
        let ctx = self.policy_context();
        let action = self.policy.borrow_mut().on_checkpoint(&ctx);
        let found = self.perform(action);
        self.refresh_poll();
        found
    }

    fn perform(&self, action: Action) -> usize {
        match action {
            Action::Nothing => 0,
            Action::Collect { generation } => crate::collect::algorithm::collect(self, generation.min(GENERATIONS - 1)),
            Action::Step { budget } => {
                crate::collect::algorithm::run(self, crate::collect::algorithm::Scope::Increment(budget))
            }
        }
    }

    /// What policies see.
    pub(crate) fn policy_context(&self) -> PolicyContext {
        let mut ctx = PolicyContext::default();
        self.with_gens(|gens| {
            let sizes = gens.sizes();
            ctx.count = gens.count;
            ctx.threshold = gens.threshold;
            ctx.objects = [sizes[0], sizes[1], sizes[2]];
            ctx.long_lived_total = gens.long_lived_total;
            ctx.long_lived_pending = gens.long_lived_pending;
        });
        ctx.bytes_in_use = self.bytes_in_use();
        ctx
    }

    /// Re-reads the policy's poll point.
    pub(crate) fn refresh_poll(&self) {
        let ctx = self.policy_context();
        let at = match self.policy.try_borrow() {
            Ok(policy) if self.enabled.get() => policy.poll_after(&ctx).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        self.poll_at.set(at);
    }

    /// Replaces the policy.
    pub(crate) fn set_policy(&self, policy: Box<dyn CollectorPolicy>) {
        *self.policy.borrow_mut() = policy;
        self.refresh_poll();
    }

    pub(crate) fn policy_after_collection(&self, info: &GcInfo) {
        if let Ok(mut policy) = self.policy.try_borrow_mut() {
            policy.after_collection(info);
        }
        self.refresh_poll();
    }

    /// Registers a collection callback; returns its id.
    pub(crate) fn add_callback(&self, callback: GcCallback) -> u64 {
        let id = self.next_callback_id.get();
        self.next_callback_id.set(id + 1);
        self.callbacks.borrow_mut().push((id, callback));
        id
    }

    /// Removes a collection callback; whether it was registered.
    pub(crate) fn remove_callback(&self, id: u64) -> bool {
        let mut callbacks = self.callbacks.borrow_mut();
        let before = callbacks.len();
        callbacks.retain(|(i, _)| *i != id);
        callbacks.len() != before
    }

    /// Calls every callback; callbacks added meanwhile are kept, panics reported.
    pub(crate) fn run_callbacks(&self, phase: GcPhase, info: GcInfo) {
        let mut running = core::mem::take(&mut *self.callbacks.borrow_mut());
        for (_, callback) in &mut running {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(phase, &info)));
            if let Err(panic) = result {
                self.report_panic(format_args!("a gc callback"), &*panic);
            }
        }
        let mut callbacks = self.callbacks.borrow_mut();
        running.append(&mut callbacks);
        *callbacks = running;
    }

    /// Writes one line to the debug sink (stderr by default).
    pub(crate) fn debug_line(&self, line: fmt::Arguments<'_>) {
        if let Ok(mut sink) = self.sink.try_borrow_mut() {
            let _ = writeln!(sink, "{line}");
        }
    }

    pub(crate) fn set_sink(&self, sink: Box<dyn Write>) {
        *self.sink.borrow_mut() = sink;
    }

    /// Reports a panic caught in user code run by the heap, like CPython's
    /// "Exception ignored in".
    pub(crate) fn report_panic(&self, place: fmt::Arguments<'_>, panic: &(dyn Any + Send)) {
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("<non-string panic payload>");
        self.debug_line(format_args!("rcgc: panic ignored in {place}: {message}"));
    }

    /// Drops the saved garbage, the callbacks and the policy (user code may
    /// run; handles they hold are released). Called when the `Heap` is dropped.
    pub(crate) fn shut_down(&self) {
        self.enabled.set(false);
        self.poll_at.set(usize::MAX);
        self.debug.set(DebugFlags::NONE);
        drop(self.take_garbage());
        drop(core::mem::take(&mut *self.callbacks.borrow_mut()));
        let policy = core::mem::replace(&mut *self.policy.borrow_mut(), Box::new(crate::collect::Manual));
        drop(policy);
    }

    /// Keeps objects of a DEBUG_SAVEALL collection.
    pub(crate) fn save_garbage(&self, mut saved: Vec<AnyGc>) {
        self.garbage.borrow_mut().append(&mut saved);
    }

    /// The saved garbage (`gc.garbage`).
    pub(crate) fn garbage(&self) -> Vec<AnyGc> {
        self.garbage.borrow().clone()
    }

    /// Empties the saved garbage, returning it.
    pub(crate) fn take_garbage(&self) -> Vec<AnyGc> {
        core::mem::take(&mut *self.garbage.borrow_mut())
    }

    /// Queues the release of a tracked object whose last handle went while
    /// `Trace` impls run.
    pub(crate) fn queue_pending(&self, value: NonNull<u8>) {
        // SAFETY: as in `with_gens`.
        unsafe { &mut *self.pending.get() }.push(value);
    }

    /// Runs the queued releases.
    pub(crate) fn drain_pending(&self) {
        // SAFETY: as in `with_gens`; the borrow ends before each release.
        while let Some(value) = unsafe { &mut *self.pending.get() }.pop() {
            // SAFETY: a queued object is live with count zero, released once.
            unsafe { (object::tracked_header(value).as_ref().vtable().release)(value) };
        }
    }

    /// Opens the stack window of a cascade whose outermost release runs in
    /// the caller's frame: the [`RELEASE_STACK_WINDOW`] bytes below it.
    #[inline(always)]
    pub(crate) fn open_release_stack_window(&self) {
        self.release_stack_floor
            .set(stack_position().wrapping_sub(RELEASE_STACK_WINDOW));
    }

    /// Whether the caller's frame lies in the stack window of the latest
    /// cascade, so that a plain nested release may run there uncounted.
    ///
    /// This only bounds recursion; it never decides whether a release is
    /// nested (that is `release_depth`, which the outermost release holds
    /// above 0). Whatever the answer, a cascade's stack stays bounded: the
    /// releases that run uncounted all lie inside one window of
    /// [`RELEASE_STACK_WINDOW`] bytes, and every other nested release counts
    /// toward [`MAX_RELEASE_DEPTH`]. A frame on another stack (a coroutine
    /// dropping handles in a `Drop`) is outside the window, so it counts.
    #[inline(always)]
    #[cfg_attr(miri, allow(dead_code))]
    pub(crate) fn in_release_stack_window(&self) -> bool {
        stack_position().wrapping_sub(self.release_stack_floor.get()) < RELEASE_STACK_WINDOW
    }

    /// Frees the state if the `Heap` is gone, no block is left and no release
    /// is running.
    ///
    /// # Safety
    /// `this` is live; if this call frees it, the caller must not use it again.
    #[inline(always)]
    pub(crate) unsafe fn maybe_destroy(this: NonNull<HeapInner>) {
        // SAFETY: the caller guarantees `this` is live.
        let inner = unsafe { this.as_ref() };
        if !inner.heap_alive.get()
            && inner.live_objects.get() == 0
            && inner.release_depth.get() == 0
            && inner.with_weak_table(|table| table.live_slots() == 0)
        {
            // SAFETY: the heap is gone and no block (so no handle) is left:
            // no object (at depth 0 every dying object's block has been
            // freed) and no weak record.
            unsafe { Self::destroy(this) };
        }
    }

    /// Called when the `Heap` value is dropped: frees the state now if no
    /// block remains, otherwise when the last one goes.
    ///
    /// # Safety
    /// `this` is live and the `Heap` owning it does not use it afterwards.
    pub(crate) unsafe fn heap_dropped(this: NonNull<HeapInner>) {
        // SAFETY: the caller guarantees `this` is live.
        let inner = unsafe { this.as_ref() };
        inner.heap_alive.set(false);
        if inner.immortal_objects.get() > 0 {
            // Immortal objects are never freed, so neither is their heap: keep
            // it reachable from a global list (a deliberate, visible leak).
            IMMORTAL_HEAPS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ImmortalHeap(this));
        }
        // SAFETY: forwarded.
        unsafe { Self::maybe_destroy(this) };
    }

    /// # Safety
    /// Nothing refers to `this` any more.
    #[cold]
    #[inline(never)]
    unsafe fn destroy(this: NonNull<HeapInner>) {
        // SAFETY: created by Box::leak in `create`, freed once.
        drop(unsafe { Box::from_raw(this.as_ptr()) });
    }

    /// Drains the deferred-release queue iteratively. Call it only at depth 0.
    ///
    /// Every queued release runs, even when some of them panic: the first
    /// panic is returned (for the caller to resume once its own bookkeeping
    /// is done), later ones are reported like panics in other user code the
    /// heap runs.
    #[inline(always)]
    #[must_use = "a returned panic must be resumed or reported"]
    pub(crate) fn drain_deferred(&self) -> Option<Box<dyn Any + Send>> {
        if self.with_deferred(|queue| !queue.is_empty()) {
            self.drain_deferred_after(None)
        } else {
            None
        }
    }

    /// [`drain_deferred`](Self::drain_deferred) after the panic `first`
    /// (if any) was caught: returns the first of all the panics.
    #[cold]
    #[inline(never)]
    #[must_use = "a returned panic must be resumed or reported"]
    pub(crate) fn drain_deferred_after(&self, mut first: Option<Box<dyn Any + Send>>) -> Option<Box<dyn Any + Send>> {
        debug_assert_eq!(self.release_depth.get(), 0);
        loop {
            // One catch_unwind around the whole loop, re-entered after a
            // panic: an entry is popped before its release runs, so a release
            // that panics is never run twice and the rest still run.
            let result = catch_unwind(AssertUnwindSafe(|| {
                while let Some((value, release)) = self.with_deferred(|queue| queue.pop()) {
                    let _depth = DepthGuard::enter(self);
                    // SAFETY: queued entries are dying objects whose release
                    // function has not run; each is popped once.
                    unsafe { release(value) };
                }
            }));
            match result {
                Ok(()) => return first,
                Err(panic) if first.is_none() => first = Some(panic),
                Err(panic) => self.report_panic(
                    format_args!("a Drop run by a release cascade that already panicked"),
                    &*panic,
                ),
            }
        }
    }
}

/// Increments the release depth for its lifetime (also on unwinding).
pub(crate) struct DepthGuard<'a>(&'a HeapInner);

impl<'a> DepthGuard<'a> {
    pub(crate) fn enter(inner: &'a HeapInner) -> Self {
        inner.release_depth.set(inner.release_depth.get() + 1);
        DepthGuard(inner)
    }
}

impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.release_depth.set(self.0.release_depth.get() - 1);
    }
}
