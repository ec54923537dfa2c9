//! `Trace` impls for types from `core`, `alloc`, `std` and `hashbrown`.
//!
//! Every impl here either visits each value it owns (containers), or owns no
//! `Gc` at all (leaves), or deliberately reports no edges (opaque types such
//! as `Rc` and `ManuallyDrop`). Reporting too few edges is always memory-safe:
//! it only keeps the referents alive longer (possibly forever, if they are part
//! of a cycle).

use super::{Trace, Tracer};

use core::cell::{Cell, OnceCell, RefCell};
use core::cmp::{Ordering, Reverse};
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::num::{
    NonZeroI128, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU128, NonZeroU16, NonZeroU32,
    NonZeroU64, NonZeroU8, NonZeroUsize, Wrapping,
};
use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

// ---------------------------------------------------------------------------
// Leaves
// ---------------------------------------------------------------------------

/// Implements `Trace` for types that can never own a `Gc`.
macro_rules! leaf {
    ($($ty:ty),* $(,)?) => {
        $(
            // SAFETY: values of this type own no `Gc`, so there is nothing to visit.
            unsafe impl Trace for $ty {
                const MAY_CONTAIN_GC: bool = false;

                #[inline]
                fn trace(&self, _tracer: &mut Tracer<'_>) {}
            }
        )*
    };
}

leaf! {
    u8, u16, u32, u64, u128, usize,
    i8, i16, i32, i64, i128, isize,
    f32, f64,
    bool, char, (),
    str, String, &'static str,
    Path, PathBuf,
    OsStr, OsString, CStr, CString,
    Duration, Instant, SystemTime,
    NonZeroU8, NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU128, NonZeroUsize,
    NonZeroI8, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI128, NonZeroIsize,
    TypeId, Ordering,
}

// SAFETY: `PhantomData` owns no value at all, so there is nothing to visit.
unsafe impl<T: ?Sized> Trace for PhantomData<T> {
    const MAY_CONTAIN_GC: bool = false;

    #[inline]
    fn trace(&self, _tracer: &mut Tracer<'_>) {}
}

/// Implements `Trace` for function pointers: code, never owned data.
macro_rules! fn_ptr {
    ($($arg:ident),*) => {
        // SAFETY: a function pointer owns no `Gc`, so there is nothing to visit.
        unsafe impl<R $(, $arg)*> Trace for fn($($arg),*) -> R {
            const MAY_CONTAIN_GC: bool = false;

            #[inline]
            fn trace(&self, _tracer: &mut Tracer<'_>) {}
        }

        // SAFETY: a function pointer owns no `Gc`, so there is nothing to visit.
        unsafe impl<R $(, $arg)*> Trace for unsafe fn($($arg),*) -> R {
            const MAY_CONTAIN_GC: bool = false;

            #[inline]
            fn trace(&self, _tracer: &mut Tracer<'_>) {}
        }

        // SAFETY: a function pointer owns no `Gc`, so there is nothing to visit.
        unsafe impl<R $(, $arg)*> Trace for extern "C" fn($($arg),*) -> R {
            const MAY_CONTAIN_GC: bool = false;

            #[inline]
            fn trace(&self, _tracer: &mut Tracer<'_>) {}
        }

        // SAFETY: a function pointer owns no `Gc`, so there is nothing to visit.
        unsafe impl<R $(, $arg)*> Trace for unsafe extern "C" fn($($arg),*) -> R {
            const MAY_CONTAIN_GC: bool = false;

            #[inline]
            fn trace(&self, _tracer: &mut Tracer<'_>) {}
        }
    };
}

fn_ptr!();
fn_ptr!(A);
fn_ptr!(A, B);
fn_ptr!(A, B, C);
fn_ptr!(A, B, C, D);
fn_ptr!(A, B, C, D, E);
fn_ptr!(A, B, C, D, E, F);

// ---------------------------------------------------------------------------
// Containers that own their elements
// ---------------------------------------------------------------------------

// SAFETY: a `Box` owns exactly its pointee, which is visited.
unsafe impl<T: ?Sized + Trace> Trace for Box<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        (**self).trace(tracer);
    }
}

/// Implements `Trace` for a collection whose `&C: IntoIterator<Item = &T>`
/// yields every element it owns.
macro_rules! sequence {
    ($($ty:ident<T $(, $extra:ident)*>),* $(,)?) => {
        $(
            // SAFETY: iterating visits every element the collection owns.
            unsafe impl<T: Trace $(, $extra)*> Trace for $ty<T $(, $extra)*> {
                const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
                const FIXED_EDGES: bool = T::FIXED_EDGES;
                const ACYCLIC: bool = T::ACYCLIC;

                fn trace(&self, tracer: &mut Tracer<'_>) {
                    if T::MAY_CONTAIN_GC {
                        for item in self {
                            item.trace(tracer);
                        }
                    }
                }
            }
        )*
    };
}

sequence! {
    Vec<T>,
    VecDeque<T>,
    LinkedList<T>,
    BinaryHeap<T>,
    BTreeSet<T>,
    HashSet<T, S>,
}

// SAFETY: iterating visits every element of the slice.
unsafe impl<T: Trace> Trace for [T] {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if T::MAY_CONTAIN_GC {
            for item in self {
                item.trace(tracer);
            }
        }
    }
}

// SAFETY: iterating visits every element of the array.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        self.as_slice().trace(tracer);
    }
}

// SAFETY: every key and every value of the map is visited.
unsafe impl<K: Trace, V: Trace, S> Trace for HashMap<K, V, S> {
    const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC || V::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = K::FIXED_EDGES && V::FIXED_EDGES;
    const ACYCLIC: bool = K::ACYCLIC && V::ACYCLIC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if Self::MAY_CONTAIN_GC {
            for (key, value) in self {
                key.trace(tracer);
                value.trace(tracer);
            }
        }
    }
}

// SAFETY: every key and every value of the map is visited.
unsafe impl<K: Trace, V: Trace> Trace for BTreeMap<K, V> {
    const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC || V::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = K::FIXED_EDGES && V::FIXED_EDGES;
    const ACYCLIC: bool = K::ACYCLIC && V::ACYCLIC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if Self::MAY_CONTAIN_GC {
            for (key, value) in self {
                key.trace(tracer);
                value.trace(tracer);
            }
        }
    }
}

// SAFETY: every key and every value of the map is visited.
unsafe impl<K: Trace, V: Trace, S> Trace for hashbrown::HashMap<K, V, S> {
    const MAY_CONTAIN_GC: bool = K::MAY_CONTAIN_GC || V::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = K::FIXED_EDGES && V::FIXED_EDGES;
    const ACYCLIC: bool = K::ACYCLIC && V::ACYCLIC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if Self::MAY_CONTAIN_GC {
            for (key, value) in self {
                key.trace(tracer);
                value.trace(tracer);
            }
        }
    }
}

// SAFETY: iterating visits every element of the set.
unsafe impl<T: Trace, S> Trace for hashbrown::HashSet<T, S> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if T::MAY_CONTAIN_GC {
            for item in self {
                item.trace(tracer);
            }
        }
    }
}

// SAFETY: iterating visits every element of the table.
unsafe impl<T: Trace> Trace for hashbrown::HashTable<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        if T::MAY_CONTAIN_GC {
            for item in self {
                item.trace(tracer);
            }
        }
    }
}

// SAFETY: the contained value, if any, is visited.
unsafe impl<T: Trace> Trace for Option<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        if let Some(value) = self {
            value.trace(tracer);
        }
    }
}

// SAFETY: whichever value is present is visited.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC || E::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES && E::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC && E::ACYCLIC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        match self {
            Ok(value) => value.trace(tracer),
            Err(error) => error.trace(tracer),
        }
    }
}

/// Implements `Trace` for a tuple: every element is visited.
macro_rules! tuple {
    ($($name:ident)+) => {
        // SAFETY: every element of the tuple is visited.
        unsafe impl<$($name: Trace),+> Trace for ($($name,)+) {
            const MAY_CONTAIN_GC: bool = $($name::MAY_CONTAIN_GC)||+;
            const FIXED_EDGES: bool = $($name::FIXED_EDGES)&&+;
            const ACYCLIC: bool = $($name::ACYCLIC)&&+;

            #[inline]
            fn trace(&self, tracer: &mut Tracer<'_>) {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $($name.trace(tracer);)+
            }
        }
    };
}

tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);
tuple!(A B C D E F G);
tuple!(A B C D E F G H);
tuple!(A B C D E F G H I);
tuple!(A B C D E F G H I J);
tuple!(A B C D E F G H I J K);
tuple!(A B C D E F G H I J K L);

// SAFETY: the wrapped value is visited.
unsafe impl<T: Trace> Trace for Wrapping<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        self.0.trace(tracer);
    }
}

// SAFETY: the wrapped value is visited.
unsafe impl<T: Trace> Trace for Reverse<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    const FIXED_EDGES: bool = T::FIXED_EDGES;
    const ACYCLIC: bool = T::ACYCLIC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        self.0.trace(tracer);
    }
}

// ---------------------------------------------------------------------------
// Interior mutability
// ---------------------------------------------------------------------------

// SAFETY: a copy of the current value is visited. (A `Copy` value cannot own a
// `Gc` handle, so in practice this visits nothing.)
unsafe impl<T: Copy + Trace> Trace for Cell<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    // Interior mutability: the handles inside can change.
    const FIXED_EDGES: bool = !T::MAY_CONTAIN_GC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        self.get().trace(tracer);
    }
}

// SAFETY: the value is visited when it can be borrowed; when it is mutably
// borrowed the trace is reported incomplete, so the collector keeps the object.
unsafe impl<T: ?Sized + Trace> Trace for RefCell<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    // Interior mutability: the handles inside can change.
    const FIXED_EDGES: bool = !T::MAY_CONTAIN_GC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        match self.try_borrow() {
            Ok(value) => value.trace(tracer),
            Err(_) => tracer.mark_incomplete(),
        }
    }
}

// SAFETY: the value, once initialized, is visited.
unsafe impl<T: Trace> Trace for OnceCell<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    // Interior mutability: the handles inside can change.
    const FIXED_EDGES: bool = !T::MAY_CONTAIN_GC;

    #[inline]
    fn trace(&self, tracer: &mut Tracer<'_>) {
        if let Some(value) = self.get() {
            value.trace(tracer);
        }
    }
}

// SAFETY: the value is visited when the lock can be taken (a poisoned lock
// still gives access to it); when the lock is held the trace is reported
// incomplete, so the collector keeps the object.
unsafe impl<T: ?Sized + Trace> Trace for Mutex<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    // Interior mutability: the handles inside can change.
    const FIXED_EDGES: bool = !T::MAY_CONTAIN_GC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        match self.try_lock() {
            Ok(guard) => guard.trace(tracer),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().trace(tracer),
            Err(TryLockError::WouldBlock) => tracer.mark_incomplete(),
        }
    }
}

// SAFETY: the value is visited when a read lock can be taken (a poisoned lock
// still gives access to it); when it is write-locked the trace is reported
// incomplete, so the collector keeps the object.
unsafe impl<T: ?Sized + Trace> Trace for RwLock<T> {
    const MAY_CONTAIN_GC: bool = T::MAY_CONTAIN_GC;
    // Interior mutability: the handles inside can change.
    const FIXED_EDGES: bool = !T::MAY_CONTAIN_GC;

    fn trace(&self, tracer: &mut Tracer<'_>) {
        match self.try_read() {
            Ok(guard) => guard.trace(tracer),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().trace(tracer),
            Err(TryLockError::WouldBlock) => tracer.mark_incomplete(),
        }
    }
}

// ---------------------------------------------------------------------------
// Opaque types: deliberately not traced through
// ---------------------------------------------------------------------------

// SAFETY: reports no edges, which is always memory-safe. `ManuallyDrop<T>`
// may already have been dropped by user code (`ManuallyDrop::drop`), so its
// contents cannot be assumed to be alive; treating it as opaque at worst
// keeps whatever it still holds alive (a leak), never frees it early.
unsafe impl<T: ?Sized> Trace for ManuallyDrop<T> {
    const MAY_CONTAIN_GC: bool = false;

    #[inline]
    fn trace(&self, _tracer: &mut Tracer<'_>) {}
}

// `Rc`, `Arc` and their `Weak`s are opaque to the cycle collector: they report
// no edges and have `MAY_CONTAIN_GC = false`, whatever they point to.
//
// An `Rc` may be shared by several parents. Tracing through it would report
// the `Gc` handles inside its referent once per parent that is traced, so the
// collector would count more internal references to those objects than
// actually exist (the `Rc`'s contents hold each handle only once), subtract
// too much from their reference counts, and could conclude that an object
// reachable from outside is garbage. Treating the `Rc` as opaque instead
// means the handles inside it are never subtracted: they look like external
// references, so their referents are always kept alive. That is leak-safe,
// never unsafe: a cycle that passes through an `Rc` (or `Arc`) is not
// collected. To make such a cycle collectable, use `Gc` instead of `Rc` for
// the shared link.

// SAFETY: reports no edges, which is always memory-safe (see above).
unsafe impl<T: ?Sized> Trace for Rc<T> {
    const MAY_CONTAIN_GC: bool = false;

    #[inline]
    fn trace(&self, _tracer: &mut Tracer<'_>) {}
}

// SAFETY: reports no edges, which is always memory-safe (see above).
unsafe impl<T: ?Sized> Trace for std::rc::Weak<T> {
    const MAY_CONTAIN_GC: bool = false;

    #[inline]
    fn trace(&self, _tracer: &mut Tracer<'_>) {}
}

// SAFETY: reports no edges, which is always memory-safe (see above).
unsafe impl<T: ?Sized> Trace for Arc<T> {
    const MAY_CONTAIN_GC: bool = false;

    #[inline]
    fn trace(&self, _tracer: &mut Tracer<'_>) {}
}

// SAFETY: reports no edges, which is always memory-safe (see above).
unsafe impl<T: ?Sized> Trace for std::sync::Weak<T> {
    const MAY_CONTAIN_GC: bool = false;

    #[inline]
    fn trace(&self, _tracer: &mut Tracer<'_>) {}
}
