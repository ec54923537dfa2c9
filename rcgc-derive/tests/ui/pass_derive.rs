// Must compile and run: the derive on a variety of shapes, from outside the
// crate, with names that could collide with the generated code.
#![deny(warnings, clippy::all)]
#![allow(dead_code)]

use rcgc::{Gc, Trace};
use std::cell::RefCell;
use std::marker::PhantomData;

/// A type without a `Trace` impl, only usable behind `#[trace(skip)]`.
struct Foreign;

#[derive(Trace)]
struct Named {
    a: i32,
    b: String,
    #[trace(skip)]
    foreign: Foreign,
}

#[derive(Trace)]
struct Tuple(u8, #[trace(skip)] Foreign, Vec<String>);

#[derive(Trace)]
struct Unit;

#[derive(Trace)]
enum Empty {}

#[derive(Trace)]
enum Shape<T> {
    Nil,
    One(T),
    Many {
        items: Vec<T>,
        #[trace(skip)]
        tag: Foreign,
    },
}

#[derive(Trace)]
struct Generic<'a, T: Clone, const N: usize>
where
    T: Default,
{
    items: [T; N],
    #[trace(skip)]
    borrowed: &'a str,
}

#[derive(Trace)]
struct SkippedParam<T> {
    #[trace(skip)]
    raw: *const T,
    marker: PhantomData<T>,
}

#[derive(Trace)]
struct Projection<I: Iterator> {
    next: Option<I::Item>,
}

#[derive(Trace)]
struct List {
    head: i32,
    tail: Option<Box<List>>,
}

#[derive(Trace)]
struct GenericList<T> {
    head: T,
    tail: Option<Box<Self>>,
}

#[derive(Trace)]
#[trace(tracked)]
struct Even {
    next: Option<Box<Odd>>,
}

#[derive(Trace)]
struct Odd {
    next: Option<Box<Even>>,
}

#[derive(Trace)]
struct Collisions {
    tracer: u8,
    __rcgc_field_0: u8,
    self_: RefCell<Vec<u8>>,
}

#[derive(Trace)]
struct GcNode {
    name: String,
    children: RefCell<Vec<Gc<GcNode>>>,
    parent: Option<rcgc::Weak<Self>>,
}

#[derive(Trace)]
enum Expr<T: Trace + 'static> {
    Lit(T),
    Add(Gc<Expr<T>>, Gc<Expr<T>>),
}

#[derive(Trace)]
struct OnlyWeak {
    parent: Option<rcgc::Weak<OnlyWeak>>,
    depth: u32,
}

/// Named like std types, and holding them by their std paths.
mod shadows {
    use rcgc::Trace;

    #[derive(Trace)]
    pub struct String(pub std::string::String);

    #[derive(Trace)]
    pub struct Vec<T>(pub std::vec::Vec<T>);

    /// `Result` aliased to hide a type of our own that points back.
    pub type Result<T> = std::result::Result<T, Error>;

    #[derive(Trace)]
    pub struct Error {
        pub cause: Option<rcgc::Gc<Result<()>>>,
    }
}

/// A non-generic alias with a std name that hides the type itself.
mod lisp {
    use rcgc::{Gc, Trace};

    pub type Cell = Gc<Cons>;

    #[derive(Trace)]
    pub struct Cons {
        pub car: u8,
        pub cdr: Option<Cell>,
    }
}

/// A list borrowing nothing but carrying a lifetime.
#[derive(Trace)]
struct Tok<'a> {
    marker: PhantomData<&'a ()>,
    next: Option<Box<Tok<'a>>>,
}

/// A weak reference to the type itself inside a wrapper with its own
/// bounds, and a std-named type of one's own with a `Clone` bound.
mod bounded {
    use rcgc::{Trace, Weak};

    #[derive(Trace)]
    pub struct Wrapper<T: Trace + Clone + 'static>(pub Option<T>);

    #[derive(Clone, Trace)]
    pub struct Parented {
        pub parent: Option<Weak<Wrapper<Parented>>>,
        pub depth: u32,
    }

    #[derive(Trace)]
    pub struct Vec<T: Trace + Clone>(pub std::vec::Vec<T>);

    #[derive(Clone, Trace)]
    pub struct Branch {
        pub kids: Option<Box<Vec<Branch>>>,
    }

    impl Clone for Vec<Branch> {
        fn clone(&self) -> Self {
            Vec(self.0.clone())
        }
    }
}

/// A type named like this module's `Node`.
mod inner {
    #[derive(rcgc::Trace)]
    pub struct Node {
        pub value: u32,
    }
}

#[derive(Trace)]
struct Node {
    other: Gc<inner::Node>,
    boxed: Option<Box<crate::Node>>,
}

mod no_prelude {
    #![no_implicit_prelude]

    #[derive(::rcgc::Trace)]
    pub struct Isolated {
        pub value: u32,
    }
}

const _: () = {
    assert!(!Named::MAY_CONTAIN_GC);
    assert!(!Tuple::MAY_CONTAIN_GC);
    assert!(!Unit::MAY_CONTAIN_GC);
    assert!(!Empty::MAY_CONTAIN_GC);
    assert!(!Shape::<u8>::MAY_CONTAIN_GC);
    assert!(!Generic::<'static, u8, 4>::MAY_CONTAIN_GC);
    assert!(!SkippedParam::<Foreign>::MAY_CONTAIN_GC);
    assert!(!Projection::<std::vec::IntoIter<u8>>::MAY_CONTAIN_GC);
    assert!(!List::MAY_CONTAIN_GC);
    assert!(!GenericList::<String>::MAY_CONTAIN_GC);
    assert!(Even::MAY_CONTAIN_GC);
    assert!(Odd::MAY_CONTAIN_GC);
    assert!(!Collisions::MAY_CONTAIN_GC);
    assert!(!no_prelude::Isolated::MAY_CONTAIN_GC);
    assert!(GcNode::MAY_CONTAIN_GC);
    assert!(Expr::<u8>::MAY_CONTAIN_GC);
    // Weak references only: reported to the collector, but acyclic, so
    // never tracked (the leaf header).
    assert!(OnlyWeak::MAY_CONTAIN_GC && OnlyWeak::ACYCLIC);

    // ACYCLIC: inferred for types built from themselves, their parameters
    // and std types; never a cycle in constant evaluation.
    assert!(Named::ACYCLIC);
    assert!(Tuple::ACYCLIC);
    assert!(Unit::ACYCLIC);
    assert!(Empty::ACYCLIC);
    assert!(Shape::<u8>::ACYCLIC);
    assert!(Shape::<Gc<u8>>::ACYCLIC);
    assert!(!Shape::<RefCell<Gc<u8>>>::ACYCLIC);
    assert!(Generic::<'static, u8, 4>::ACYCLIC);
    assert!(SkippedParam::<Foreign>::ACYCLIC);
    assert!(Projection::<std::vec::IntoIter<u8>>::ACYCLIC);
    assert!(List::ACYCLIC);
    assert!(GenericList::<String>::ACYCLIC);
    assert!(!Even::ACYCLIC);
    assert!(!Odd::ACYCLIC);
    assert!(Collisions::ACYCLIC);
    assert!(!GcNode::ACYCLIC);
    assert!(Expr::<u8>::ACYCLIC);
    assert!(!Expr::<GcNode>::ACYCLIC);
    assert!(OnlyWeak::ACYCLIC);
    assert!(no_prelude::Isolated::ACYCLIC);
    assert!(!shadows::String::MAY_CONTAIN_GC && shadows::String::ACYCLIC && shadows::String::FIXED_EDGES);
    assert!(!shadows::Vec::<u8>::MAY_CONTAIN_GC && shadows::Vec::<u8>::ACYCLIC);
    assert!(shadows::Error::MAY_CONTAIN_GC && !shadows::Error::ACYCLIC);
    assert!(Node::MAY_CONTAIN_GC && !Node::ACYCLIC);
    assert!(lisp::Cons::MAY_CONTAIN_GC && !lisp::Cons::ACYCLIC);
    assert!(bounded::Parented::MAY_CONTAIN_GC && bounded::Parented::ACYCLIC);
    assert!(!bounded::Branch::MAY_CONTAIN_GC && bounded::Branch::ACYCLIC);
    assert!(!Tok::<'static>::MAY_CONTAIN_GC && Tok::<'static>::ACYCLIC);
};

fn main() {
    let leaf = Gc::new(GcNode {
        name: "leaf".into(),
        children: RefCell::new(Vec::new()),
        parent: None,
    });
    let root = Gc::new(GcNode {
        name: "root".into(),
        children: RefCell::new(vec![leaf.clone()]),
        parent: None,
    });
    assert_eq!(root.children.borrow().len(), 1);
    let error = Gc::new(shadows::Error {
        cause: Some(Gc::new(Ok(()))),
    });
    assert!(error.cause.is_some());
    let a = Gc::new(lisp::Cons { car: 1, cdr: None });
    let b = Gc::new(lisp::Cons { car: 2, cdr: Some(a) });
    assert_eq!(b.cdr.as_ref().map(|a| a.car), Some(1));
    let node = Gc::new(Node {
        other: Gc::new(inner::Node { value: 3 }),
        boxed: None,
    });
    assert_eq!(node.other.value, 3);
    let sum = Gc::new(Expr::Add(Gc::new(Expr::Lit(1u8)), Gc::new(Expr::Lit(2u8))));
    if let Expr::Add(a, _) = &*sum {
        assert!(matches!(**a, Expr::Lit(1)));
    }
}
