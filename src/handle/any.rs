//! [`AnyGc`]: a strong handle to a tracked object of any type, as returned by
//! the `gc` introspection API (`objects`, `referrers`, `garbage`).

use core::any::TypeId;
use core::fmt;
use core::ptr::NonNull;

use crate::alloc::usable_size;
use crate::object::{self, flags, ObjectKind, TrackedHeader, IMMORTAL};
use crate::trace::Trace;

use super::gc::Gc;

/// A strong handle to a tracked object whose type is known only at run time,
/// like a Python reference of static type `object`. It keeps the object
/// alive like a [`Gc`]; [`downcast`](AnyGc::downcast) recovers the typed handle.
pub struct AnyGc {
    value: NonNull<u8>,
}

impl AnyGc {
    /// A new handle to the tracked object with `header`, or `None` if the
    /// object is already dying (count zero).
    ///
    /// # Safety
    /// `header` is a live tracked object.
    pub(crate) unsafe fn from_header(header: NonNull<TrackedHeader>) -> Option<AnyGc> {
        let value = object::value_of(header);
        // SAFETY: the caller guarantees a live tracked object.
        unsafe {
            let h = header.as_ref();
            if h.strong.get() == 0 {
                return None;
            }
            object::retain(value, h.vtable().block_layout, true);
        }
        Some(AnyGc { value })
    }

    /// Adds one handle's count (for a new handle made from this one).
    fn retain(&self) {
        // SAFETY: this handle keeps the tracked object alive with a nonzero count.
        unsafe { object::retain(self.value, self.header().vtable().block_layout, true) }
    }

    fn header(&self) -> &TrackedHeader {
        // SAFETY: the handle keeps the tracked object alive.
        unsafe { object::tracked_header(self.value).as_ref() }
    }

    pub(crate) fn value(&self) -> NonNull<u8> {
        self.value
    }

    /// The value's type name (`core::any::type_name`).
    pub fn type_name(&self) -> &'static str {
        (self.header().vtable().type_name)()
    }

    /// The object's identity, equal to [`Gc::id`] of a typed handle to it.
    pub fn id(&self) -> usize {
        self.value.as_ptr() as usize
    }

    /// Bytes the object occupies, like [`Gc::size_of`].
    pub fn size_of(&self) -> usize {
        usable_size(self.header().vtable().block_layout)
    }

    /// Strong handles to the object, typed or not.
    pub fn strong_count(&self) -> usize {
        self.header().strong.get() as usize
    }

    /// Whether the value is alive (see [`Gc::is_alive`]).
    pub fn is_alive(&self) -> bool {
        !self.header().has(flags::DEAD)
    }

    /// Whether the value is a `T`.
    pub fn is<T: Trace + 'static>(&self) -> bool {
        (self.header().vtable().type_id)() == TypeId::of::<T>()
    }

    /// A typed handle, if the value is a `T`.
    pub fn downcast<T: Trace + 'static>(&self) -> Option<Gc<T>> {
        if !self.is::<T>() {
            return None;
        }
        // SAFETY: the object is live and holds a T; we add the new handle's count.
        unsafe {
            self.retain();
            Some(Gc::from_counted(self.value.cast::<T>()))
        }
    }

    /// Whether two handles point to the same object.
    pub fn ptr_eq(&self, other: &AnyGc) -> bool {
        self.value == other.value
    }
}

impl<T: Trace + 'static> Gc<T> {
    /// An untyped handle to this object, or `None` for a leaf (an object the
    /// collector does not track, whose type holds no `Gc`).
    pub fn to_any(this: &Gc<T>) -> Option<AnyGc> {
        if !ObjectKind::<T>::TRACKED {
            return None;
        }
        // SAFETY: the handle keeps the tracked object alive.
        unsafe { AnyGc::from_header(object::tracked_header(this.value())) }
    }
}

impl Clone for AnyGc {
    fn clone(&self) -> AnyGc {
        self.retain();
        AnyGc { value: self.value }
    }
}

impl Drop for AnyGc {
    fn drop(&mut self) {
        let header = self.header();
        match header.strong.get() {
            IMMORTAL => {}
            // SAFETY: this was the last handle; the typed release frees the object.
            1 => unsafe { (header.vtable().release)(self.value) },
            count => {
                header.strong.set(count - 1);
                header.set(flags::DECREMENTED, true);
            }
        }
    }
}

impl fmt::Debug for AnyGc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} {:#x}>", self.type_name(), self.id())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A handle the `gc` introspection API accepts: [`Gc<T>`] or [`AnyGc`].
pub trait ObjectRef: sealed::Sealed {
    #[doc(hidden)]
    fn object_value(&self) -> NonNull<u8>;
    #[doc(hidden)]
    fn object_is_tracked(&self) -> bool;
}

impl<T: Trace + ?Sized + 'static> sealed::Sealed for Gc<T> {}
impl<T: Trace + ?Sized + 'static> ObjectRef for Gc<T> {
    fn object_value(&self) -> NonNull<u8> {
        self.value()
    }
    fn object_is_tracked(&self) -> bool {
        ObjectKind::<T>::TRACKED
    }
}

impl sealed::Sealed for AnyGc {}
impl ObjectRef for AnyGc {
    fn object_value(&self) -> NonNull<u8> {
        self.value
    }
    fn object_is_tracked(&self) -> bool {
        true
    }
}
