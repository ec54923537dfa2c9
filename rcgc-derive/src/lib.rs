//! `#[derive(Trace)]` for [`rcgc`](https://docs.rs/rcgc).
//!
//! Use it through the re-export in `rcgc` (the derive has the same name as the
//! trait, like serde's `Serialize`):
//!
//! ```ignore
//! use rcgc::{Gc, Trace};
//! use std::cell::RefCell;
//!
//! #[derive(Trace)]
//! struct Node {
//!     name: String,
//!     children: RefCell<Vec<Gc<Node>>>,
//!     #[trace(skip)] // holds no `Gc`, and `std::fs::File` does not implement `Trace`
//!     log: Option<std::fs::File>,
//! }
//!
//! #[derive(Trace)]
//! enum Value<T> {
//!     Nil,
//!     Leaf(T),
//!     Pair { car: Gc<Node>, cdr: Gc<Node> },
//! }
//! ```
//!
//! # What is generated
//!
//! For the `enum Value<T>` above:
//!
//! ```ignore
//! #[automatically_derived]
//! unsafe impl<T> ::rcgc::Trace for Value<T>
//! where
//!     T: ::rcgc::Trace,
//! {
//!     const MAY_CONTAIN_GC: bool = true; // `Pair` holds `Gc`s
//!     #[inline]
//!     fn trace(&self, tracer: &mut ::rcgc::Tracer<'_>) {
//!         match self {
//!             Self::Nil { .. } => {}
//!             Self::Leaf { 0: __rcgc_field_0 } => {
//!                 ::rcgc::Trace::trace(__rcgc_field_0, tracer);
//!             }
//!             Self::Pair { car: __rcgc_field_0, cdr: __rcgc_field_1 } => {
//!                 ::rcgc::Trace::trace(__rcgc_field_0, tracer);
//!                 ::rcgc::Trace::trace(__rcgc_field_1, tracer);
//!             }
//!         }
//!     }
//! }
//! ```
//!
//! and for `struct List<T> { head: T, name: String, tail: Option<Box<List<T>>> }`:
//!
//! ```ignore
//! #[automatically_derived]
//! unsafe impl<T> ::rcgc::Trace for List<T>
//! where
//!     T: ::rcgc::Trace,
//! {
//!     const MAY_CONTAIN_GC: bool =
//!         <T as ::rcgc::Trace>::MAY_CONTAIN_GC || <String as ::rcgc::Trace>::MAY_CONTAIN_GC;
//!     #[inline]
//!     fn trace(&self, tracer: &mut ::rcgc::Tracer<'_>) {
//!         let Self { head: __rcgc_field_0, name: __rcgc_field_1, tail: __rcgc_field_2 } = self;
//!         ::rcgc::Trace::trace(__rcgc_field_0, tracer);
//!         ::rcgc::Trace::trace(__rcgc_field_1, tracer);
//!         ::rcgc::Trace::trace(__rcgc_field_2, tracer);
//!     }
//! }
//! ```
//!
//! (The bindings and `tracer` are hygienic: they cannot collide with names in
//! the user's code.)
//!
//! * Named structs, tuple structs, unit structs and enums are supported. Every
//!   field that is not `#[trace(skip)]` is traced (for an enum: every field of
//!   the active variant). Unions are rejected (the active field is unknown),
//!   and so are `#[repr(packed)]` types (their fields cannot be borrowed).
//! * Every type parameter that appears in a traced field gets a
//!   `T: ::rcgc::Trace` bound, serde-style. Parameters that appear only in
//!   `#[trace(skip)]` fields or inside `PhantomData<...>` (which is `Trace`
//!   for every `T`) get none. A traced field whose type projects out of a
//!   type parameter (`Option<T::Item>`, `<T as Tr>::Out`) gets a
//!   `FieldType: ::rcgc::Trace` bound instead. Existing where clauses,
//!   lifetimes and const generics are kept as they are.
//!
//! # Attributes
//!
//! * `#[trace(skip)]` on a field: the field is neither traced nor consulted
//!   for `MAY_CONTAIN_GC`, and its type need not implement `Trace`. Use it for
//!   fields that cannot hold a `Gc` (foreign types without a `Trace` impl,
//!   file handles, raw pointers, …). Skipping a field that *does* own a `Gc`
//!   is memory-safe but may leak: a cycle through that field is never
//!   collected.
//! * `#[trace(finalize)]` on the struct or enum: the type has a finalizer
//!   (Python's `__del__`): implement `rcgc::Finalize` for it, and the
//!   generated impl sets `HAS_FINALIZER` and forwards `Trace::finalize` to it.
//! * `#[trace(tracked)]` on the struct or enum: `MAY_CONTAIN_GC` is `true`
//!   without consulting the fields. See below for when it is needed.
//! * `#[trace(acyclic)]` on the struct or enum: sets `ACYCLIC`, your promise
//!   that values of the type never take part in a cycle (immutable nodes
//!   that point only to older values, say). The collector then never tracks
//!   them, and they carry an 8-byte header instead of 16. A broken promise
//!   leaks the cycle, as `Rc` would; it is never undefined behaviour. Many
//!   immutable types need no promise: the derive infers `ACYCLIC` for them
//!   (see below).
//!
//! Any other `#[trace(...)]` argument is a compile error.
//!
//! # How `MAY_CONTAIN_GC` is computed
//!
//! `MAY_CONTAIN_GC` tells the collector whether objects of the type can be
//! part of a cycle at all; `false` means they are never tracked (like CPython's
//! atomic types). The derive ORs the `MAY_CONTAIN_GC` of the types of all
//! traced fields of all variants (`false` if there are none), except:
//!
//! * A field whose type mentions `Gc` anywhere in its path (`Gc<Self>`,
//!   `Option<Gc<Node>>`, `RefCell<Vec<rcgc::Gc<T>>>`, …) contributes a literal
//!   `true`: a `Gc` handle always may.
//! * Otherwise, a field whose type mentions `Self` or the type's own name with
//!   its own generic parameters, wrapped only in std containers
//!   (`Box<Self>`, `Vec<Node>`, `Option<Box<Node<T>>>` inside
//!   `struct Node<T>`; the names listed under `ACYCLIC` below), is asked for
//!   with the type itself replaced by a leaf (`LeafSelf`): `Box<Self>` as
//!   `<Box<LeafSelf> as Trace>::MAY_CONTAIN_GC`. Asking for
//!   `<Box<Self> as Trace>::MAY_CONTAIN_GC` would be a cycle in constant
//!   evaluation (a compile error), and the answer we want is the least fixed
//!   point anyway: a self-recursive type can reach a `Gc` only through what
//!   else its fields hold, and the replaced field still counts all of that
//!   (a type parameter next to the type, `Vec<(K, V, Box<Self>)>`; a `Gc`
//!   imported as `Rc` or aliased as `Box`). For example
//!   `struct List { head: i32, tail: Option<Box<List>> }` gets `false` and
//!   `struct List<T> { head: T, tail: Option<Box<List<T>>> }` gets
//!   `T::MAY_CONTAIN_GC`. The field is still traced.
//! * A field that mentions the type itself inside a type of your own
//!   (`Wrapper<Self>`, which may add handles of its own), with *different*
//!   generic arguments (polymorphic recursion, e.g. `Box<Node<Vec<T>>>`
//!   inside `Node<T>`), or by a longer path (`crate::Node`, which might be
//!   another type of the same name) contributes a literal `true`, since the
//!   derive cannot know what that adds. A path that starts at `std`, `core`
//!   or `alloc` never names the type (`std::string::String` inside your own
//!   `struct String`).
//!
//! The check is syntactic, so it cannot see through type aliases or detect
//! *mutual* recursion: if `A` holds a `Box<B>` and `B` holds a `Box<A>`,
//! compilation fails with `error[E0391]: cycle detected when ...` followed
//! by a chain of `MAY_CONTAIN_GC` constants. Put `#[trace(tracked)]` on one
//! of the types to break the cycle:
//!
//! ```ignore
//! #[derive(Trace)]
//! #[trace(tracked)]
//! struct A { b: Option<Box<B>> }
//!
//! #[derive(Trace)]
//! struct B { a: Option<Box<A>> } // MAY_CONTAIN_GC = A's = true
//! ```
//!
//! Reporting `true` for a type that never holds a `Gc` only costs the
//! collector some work; it is never unsafe.
//!
//! # How `FIXED_EDGES` is computed
//!
//! `FIXED_EDGES` says the handles a value owns cannot change once it is in a
//! `Gc` (no `RefCell` or other cell around a handle); objects of such types
//! that point only to untracked objects are left untracked. The derive ANDs
//! `<FieldType as ::rcgc::Trace>::FIXED_EDGES` over all traced fields (`true`
//! if there are none), except that it is a literal `false` when
//!
//! * the type has `#[trace(tracked)]`, or
//! * some field mentions the type itself (`Self`, or its name) other than
//!   inside `Gc<...>` or `Weak<...>` (whose constants do not depend on their
//!   referent): `Box<Self>` would make the constant depend on itself.
//!
//! So `struct Node { left: Option<Gc<Node>>, right: Option<Gc<Node>> }` gets
//! `true` and a `RefCell<Option<Gc<Node>>>` field makes it `false`. Mutual
//! recursion by value (`A` holds `Box<B>`, `B` holds `Box<A>`) needs
//! `#[trace(tracked)]` on one of them, as for `MAY_CONTAIN_GC`. A `false`
//! that could have been `true` only costs the collector some work.
//!
//! # How `ACYCLIC` is computed
//!
//! `ACYCLIC` says values of the type can never be part of a cycle; such
//! objects are never tracked and carry the 8-byte leaf header. A value whose
//! handles are fixed can only point to values made before it, so if every
//! type it can reach has fixed handles, no cycle can go through it. The
//! derive writes `ACYCLIC` as the AND of one operand per traced field:
//!
//! * a field type built only from the type itself (`Self`, or its name with
//!   its own generic arguments), its type and const parameters, lifetimes, primitives,
//!   and the std types `Gc`, `Option`, `Box`, `Vec`, `VecDeque`,
//!   `LinkedList`, `BinaryHeap`, `BTreeMap`, `BTreeSet`, `HashMap`,
//!   `HashSet` (std or hashbrown), `RefCell`, `Cell`, `String`,
//!   `PhantomData`, `Rc`, `Arc` and `Weak<...>` (with any arguments) gives
//!   `<FieldType as ::rcgc::Trace>::ACYCLIC`, with the type itself replaced
//!   by a stand-in that answers `true` (assuming the type acyclic while
//!   looking at its own fields adds no type whose handles could change);
//! * any other field type that mentions `Gc` or the type itself gives up:
//!   the type gets the default, `!MAY_CONTAIN_GC` (`false` for a type that
//!   owns handles);
//! * any other field type gives `!<FieldType as ::rcgc::Trace>::MAY_CONTAIN_GC`:
//!   a field of another type is fine if it cannot own a `Gc` at all.
//!
//! So `struct Node { left: Option<Gc<Node>>, right: Option<Gc<Self>> }`, a
//! cons list, or `enum Expr<T> { Lit(T), Add(Gc<Expr<T>>, Gc<Expr<T>>) }`
//! (for an acyclic `T`) are acyclic without a declaration, while a
//! `RefCell<Option<Gc<Node>>>` field makes `Node` cyclic. The derive never
//! asks another derived type for its `ACYCLIC` (only std types, the type's
//! parameters, and `MAY_CONTAIN_GC`), so mutually recursive types, such as
//! `enum Expr { Call(Gc<Call>), .. }` with `struct Call { args: Vec<Expr> }`,
//! compile; they are not inferred acyclic (declare them with
//! `#[trace(acyclic)]` if they are), and objects of them are still left
//! untracked at allocation when they point only to untracked objects
//! (`FIXED_EDGES`). The rule is syntactic, by name, with two guards against
//! aliases: a listed type name counts only with its generic arguments
//! (`Vec<T>`) or at the end of a `std`/`core`/`alloc` path
//! (`std::string::String`), since a bare `String` or `Cell` may be an alias
//! of anything (`type Cell = Gc<Cons>` inside `Cons`); and `Result` is not
//! listed (`type Result<T> = std::result::Result<T, MyError>` is common).
//! A generic alias named like a std type that hides a type of your own
//! leading back to the type being derived still makes a cycle in constant
//! evaluation; `#[trace(tracked)]` on the type avoids it.
//!
//! # Paths
//!
//! The generated code names the crate as `::rcgc`, so `rcgc` must be a direct
//! dependency under that name.

#![deny(missing_docs)]

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::punctuated::Punctuated;
use syn::{
    parse_quote, Attribute, Data, DeriveInput, Error, Fields, GenericParam, Generics, Member, Meta, Result, Token,
    Type, WherePredicate,
};

/// Derives `rcgc::Trace`. See the [crate documentation](crate) for the
/// generated code and the `#[trace(skip)]` / `#[trace(tracked)]` attributes.
#[proc_macro_derive(Trace, attributes(trace))]
pub fn derive_trace(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(input).into()
}

/// Expands a `#[derive(Trace)]` input into the impl, or into `compile_error!`
/// invocations if the input is rejected.
fn expand(input: DeriveInput) -> TokenStream {
    match try_expand(&input) {
        Ok(tokens) => tokens,
        Err(err) => err.to_compile_error(),
    }
}

/// Attribute arguments accepted on the struct or enum.
const CONTAINER_ARGS: &str = "`tracked`, `finalize`, `acyclic`";
/// Attribute arguments accepted on a field.
const FIELD_ARGS: &str = "`skip`";

/// One field to trace.
struct TracedField<'a> {
    member: Member,
    binding: Ident,
    ty: &'a Type,
}

/// A struct, or one variant of an enum.
struct Shape<'a> {
    /// `Self` or `Self::Variant`.
    path: TokenStream,
    traced: Vec<TracedField<'a>>,
    /// Whether some fields are skipped (the pattern then needs `..`).
    has_skipped: bool,
}

/// One operand of the `MAY_CONTAIN_GC` disjunction.
enum Term {
    /// The field makes the type trackable regardless of the rest.
    True,
    /// `<Ty as ::rcgc::Trace>::MAY_CONTAIN_GC`, for the type given.
    Ty(TokenStream),
}

/// How a field type refers to the type being derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SelfRef {
    /// Not at all.
    None,
    /// As `Self`, or by name with exactly the type's own generic parameters.
    Exact,
    /// By name with other generic arguments (polymorphic recursion), or in a
    /// way the derive cannot match against the type's parameters.
    Other,
}

fn try_expand(input: &DeriveInput) -> Result<TokenStream> {
    let mut errors = ErrorSink::default();

    let container = errors.collect(parse_container_attrs(&input.attrs));
    if is_packed(&input.attrs) {
        errors.push(Error::new_spanned(
            &input.ident,
            "#[derive(Trace)] does not support #[repr(packed)] types: their fields cannot be borrowed",
        ));
    }

    let shapes: Vec<Shape<'_>> = match &input.data {
        Data::Struct(data) => {
            let shape = errors.collect(shape(quote!(Self), &data.fields));
            shape.into_iter().collect()
        }
        Data::Enum(data) => {
            let mut shapes = Vec::new();
            for variant in &data.variants {
                for attr in trace_attrs(&variant.attrs) {
                    errors.push(Error::new_spanned(
                        attr,
                        "#[trace(...)] is not accepted on enum variants: put #[trace(skip)] on fields, or #[trace(tracked)] on the enum",
                    ));
                }
                let ident = &variant.ident;
                if let Some(shape) = errors.collect(shape(quote!(Self::#ident), &variant.fields)) {
                    shapes.push(shape);
                }
            }
            shapes
        }
        Data::Union(data) => {
            let union_token = &data.union_token;
            let ident = &input.ident;
            errors.push(Error::new_spanned(
                quote!(#union_token #ident),
                "#[derive(Trace)] does not support unions: the active field is unknown",
            ));
            Vec::new()
        }
    };
    errors.finish()?;
    let ContainerAttrs {
        tracked,
        finalize,
        acyclic,
    } = container.unwrap_or_default();

    let ident = &input.ident;
    let self_args = own_generic_args(&input.generics);

    // The type's type and const parameters.
    let params: Vec<&Ident> = input
        .generics
        .type_params()
        .map(|p| &p.ident)
        .chain(input.generics.const_params().map(|p| &p.ident))
        .collect();

    // MAY_CONTAIN_GC
    let mut terms = Vec::new();
    for field in shapes.iter().flat_map(|s| &s.traced) {
        if mentions_ident(field.ty, "Gc") {
            terms.push(Term::True);
            continue;
        }
        match self_reference(field.ty, ident, &self_args) {
            SelfRef::None => terms.push(Term::Ty(field.ty.to_token_stream())),
            // Inside std containers the type itself adds nothing (the least
            // fixed point): ask for the field with the type replaced by a
            // leaf, so that whatever else it holds counts (a parameter,
            // `Vec<(Self, T)>`; a `Gc` renamed `Rc`). Inside a type of the
            // user's own (a generic wrapper that may add a handle), the type
            // itself may add one.
            SelfRef::Exact if only_acyclic_names(field.ty.to_token_stream(), ident, &params) => {
                let leaf_self = quote!(::rcgc::__derive::LeafSelf);
                terms.push(Term::Ty(replace_self(field.ty.to_token_stream(), ident, &leaf_self)));
            }
            SelfRef::Exact | SelfRef::Other => terms.push(Term::True),
        }
    }
    let may_contain_gc = if tracked || terms.iter().any(|t| matches!(t, Term::True)) {
        quote!(true)
    } else {
        let operands = terms.iter().filter_map(|term| match term {
            Term::Ty(ty) => Some(quote!(<#ty as ::rcgc::Trace>::MAY_CONTAIN_GC)),
            Term::True => None,
        });
        join_distinct(operands, quote!(||)).unwrap_or_else(|| quote!(false))
    };

    // FIXED_EDGES
    let traced_types = || shapes.iter().flat_map(|s| &s.traced).map(|field| field.ty);
    // Asking for a field's constant when it mentions the type itself could
    // be a cycle in constant evaluation (`Box<Self>`): then claim nothing.
    let fixed_edges = if tracked || traced_types().any(|ty| mentions_outside_handles(ty, ident)) {
        quote!(false)
    } else {
        let operands = traced_types().map(|ty| quote!(<#ty as ::rcgc::Trace>::FIXED_EDGES));
        join_distinct(operands, quote!(&&)).unwrap_or_else(|| quote!(true))
    };

    // Bounds
    let generics = add_bounds(&input.generics, &shapes, ident, &self_args);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    // trace()
    let any_traced = shapes.iter().any(|s| !s.traced.is_empty());
    let tracer = Ident::new(if any_traced { "tracer" } else { "_tracer" }, Span::mixed_site());
    let body = if !any_traced {
        quote!()
    } else if let (Data::Struct(_), [shape]) = (&input.data, shapes.as_slice()) {
        let pattern = shape.pattern();
        let calls = shape.calls(&tracer);
        quote! {
            let #pattern = self;
            #(#calls)*
        }
    } else {
        let arms = shapes.iter().map(|shape| {
            let pattern = shape.pattern();
            let calls = shape.calls(&tracer);
            quote!(#pattern => { #(#calls)* })
        });
        quote! {
            match self {
                #(#arms)*
            }
        }
    };

    // ACYCLIC
    let acyclic = if acyclic {
        quote!(
            const ACYCLIC: bool = true;
        )
    } else if tracked {
        // The default, `!MAY_CONTAIN_GC`, is `false`.
        quote!()
    } else {
        // One operand per field, or none at all (the default,
        // `!MAY_CONTAIN_GC`, then holds) if some field cannot tell.
        let operands: Option<Vec<TokenStream>> = traced_types()
            .map(|ty| acyclic_operand(ty, ident, &self_args, &params))
            .collect();
        match operands.and_then(|operands| join_distinct(operands, quote!(&&))) {
            Some(expr) => quote!(
                const ACYCLIC: bool = #expr;
            ),
            None => quote!(),
        }
    };

    let finalizer = if finalize {
        quote! {
            const HAS_FINALIZER: bool = true;

            #[inline]
            fn finalize(this: &::rcgc::Gc<Self>) {
                <Self as ::rcgc::Finalize>::finalize(this)
            }
        }
    } else {
        quote!()
    };

    Ok(quote! {
        #[automatically_derived]
        unsafe impl #impl_generics ::rcgc::Trace for #ident #ty_generics #where_clause {
            const MAY_CONTAIN_GC: bool = #may_contain_gc;
            const FIXED_EDGES: bool = #fixed_edges;
            #acyclic
            #finalizer

            #[inline(always)]
            fn trace(&self, #tracer: &mut ::rcgc::Tracer<'_>) {
                #body
            }
        }
    })
}

impl Shape<'_> {
    /// `Self { a: f0, 1: f1, .. }`.
    fn pattern(&self) -> TokenStream {
        let path = &self.path;
        let members = self.traced.iter().map(|f| &f.member);
        let bindings = self.traced.iter().map(|f| &f.binding);
        let rest = if self.has_skipped || self.traced.is_empty() {
            quote!(..)
        } else {
            quote!()
        };
        quote!(#path { #(#members: #bindings,)* #rest })
    }

    /// `::rcgc::Trace::trace(f0, tracer);` for every traced field.
    fn calls<'a>(&'a self, tracer: &'a Ident) -> impl Iterator<Item = TokenStream> + 'a {
        self.traced.iter().map(move |f| {
            let binding = &f.binding;
            quote!(::rcgc::Trace::trace(#binding, #tracer);)
        })
    }
}

fn shape(path: TokenStream, fields: &Fields) -> Result<Shape<'_>> {
    let mut errors = ErrorSink::default();
    let mut traced = Vec::new();
    let mut has_skipped = false;
    for (index, (field, member)) in fields.iter().zip(fields.members()).enumerate() {
        match errors.collect(parse_field_attrs(&field.attrs)) {
            Some(true) => has_skipped = true,
            Some(false) => traced.push(TracedField {
                member,
                binding: format_ident!("__rcgc_field_{}", index, span = Span::mixed_site()),
                ty: &field.ty,
            }),
            None => {}
        }
    }
    errors.finish()?;
    Ok(Shape {
        path,
        traced,
        has_skipped,
    })
}

/// `operands` joined by `op` (`||` or `&&`), each distinct one once (by its
/// text), or `None` if there are none.
fn join_distinct(operands: impl IntoIterator<Item = TokenStream>, op: TokenStream) -> Option<TokenStream> {
    let mut seen = Vec::new();
    let mut distinct = Vec::new();
    for operand in operands {
        let key = normalized(operand.clone());
        if !seen.contains(&key) {
            seen.push(key);
            distinct.push(operand);
        }
    }
    let mut distinct = distinct.into_iter();
    let first = distinct.next()?;
    Some(distinct.fold(first, |joined, operand| quote!(#joined #op #operand)))
}

/// Collects several errors so that all of them are reported at once.
#[derive(Default)]
struct ErrorSink(Option<Error>);

impl ErrorSink {
    fn push(&mut self, err: Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn collect<T>(&mut self, result: Result<T>) -> Option<T> {
        result.map_err(|err| self.push(err)).ok()
    }

    fn finish(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn trace_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("trace"))
}

/// Container options: `#[trace(tracked)]`, `#[trace(finalize)]`,
/// `#[trace(acyclic)]`.
#[derive(Default, Clone, Copy)]
struct ContainerAttrs {
    tracked: bool,
    finalize: bool,
    acyclic: bool,
}

/// Parses the container's `#[trace(...)]` attributes.
fn parse_container_attrs(attrs: &[Attribute]) -> Result<ContainerAttrs> {
    let mut tracked = false;
    let mut finalize = false;
    let mut acyclic = false;
    let mut errors = ErrorSink::default();
    for attr in trace_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("tracked") {
                tracked = true;
                no_value(&meta)
            } else if meta.path.is_ident("finalize") {
                finalize = true;
                no_value(&meta)
            } else if meta.path.is_ident("acyclic") {
                acyclic = true;
                no_value(&meta)
            } else if meta.path.is_ident("skip") {
                Err(meta.error(format!(
                    "`skip` is a field attribute; accepted on the struct or enum: {CONTAINER_ARGS}"
                )))
            } else {
                Err(meta.error(format!(
                    "unknown #[trace] argument `{}`; accepted on the struct or enum: {CONTAINER_ARGS}",
                    path_string(&meta.path)
                )))
            }
        });
        errors.collect(result);
    }
    errors.finish()?;
    Ok(ContainerAttrs {
        tracked,
        finalize,
        acyclic,
    })
}

/// Returns whether `#[trace(skip)]` is present.
fn parse_field_attrs(attrs: &[Attribute]) -> Result<bool> {
    let mut skip = false;
    let mut errors = ErrorSink::default();
    for attr in trace_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                no_value(&meta)
            } else if meta.path.is_ident("tracked") {
                Err(meta.error(format!(
                    "`tracked` goes on the struct or enum, not on a field; accepted on a field: {FIELD_ARGS}"
                )))
            } else {
                Err(meta.error(format!(
                    "unknown #[trace] argument `{}`; accepted on a field: {FIELD_ARGS}",
                    path_string(&meta.path)
                )))
            }
        });
        errors.collect(result);
    }
    errors.finish()?;
    Ok(skip)
}

/// Rejects `skip = ...` / `skip(...)`: the arguments are plain flags.
fn no_value(meta: &syn::meta::ParseNestedMeta<'_>) -> Result<()> {
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        Ok(())
    } else {
        Err(meta.error(format!("`{}` takes no value: write it alone", path_string(&meta.path))))
    }
}

fn path_string(path: &syn::Path) -> String {
    normalized(path.to_token_stream())
}

fn is_packed(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("repr")
            && matches!(&attr.meta, Meta::List(list)
                if list.tokens.clone().into_iter().any(|tt| matches!(tt, TokenTree::Ident(i) if i == "packed")))
    })
}

/// The type's own generic arguments as written in `Ty<'a, T, N>`, normalized
/// (see [`normalized`]): `'a,T,N`.
fn own_generic_args(generics: &Generics) -> String {
    let args: Vec<String> = generics
        .params
        .iter()
        .map(|param| match param {
            GenericParam::Lifetime(p) => normalized(p.lifetime.to_token_stream()),
            GenericParam::Type(p) => p.ident.to_string(),
            GenericParam::Const(p) => p.ident.to_string(),
        })
        .collect();
    args.join(",")
}

/// Token text without whitespace, for comparing token sequences.
fn normalized(tokens: TokenStream) -> String {
    let mut out = String::new();
    for tt in tokens {
        out.extend(tt.to_string().chars().filter(|c| !c.is_whitespace()));
    }
    out
}

/// Whether `ty` contains the identifier `name` anywhere (including inside
/// macro invocations and array lengths).
fn mentions_ident(ty: &Type, name: &str) -> bool {
    fn walk(tokens: TokenStream, name: &str) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Group(g) => walk(g.stream(), name),
            TokenTree::Ident(i) => i == name,
            _ => false,
        })
    }
    walk(ty.to_token_stream(), name)
}

fn is_punct(tt: Option<&TokenTree>, ch: char) -> bool {
    matches!(tt, Some(TokenTree::Punct(p)) if p.as_char() == ch)
}

/// If `rest` starts with generic arguments (`<...>` or `::<...>`), returns
/// them (without the angle brackets) and the number of tokens they span.
fn generic_args(rest: &[TokenTree]) -> Option<(TokenStream, usize)> {
    let mut start = 0;
    if is_punct(rest.first(), ':') && is_punct(rest.get(1), ':') && is_punct(rest.get(2), '<') {
        start = 2;
    }
    if !is_punct(rest.get(start), '<') {
        return None;
    }
    let mut depth = 0usize;
    for (i, tt) in rest.iter().enumerate().skip(start) {
        if let TokenTree::Punct(p) = tt {
            match p.as_char() {
                '<' => depth += 1,
                // `->` inside the arguments (`fn() -> u8`) does not close them.
                '>' if !(i > 0 && is_punct(rest.get(i - 1), '-')) => {
                    depth -= 1;
                    if depth == 0 {
                        let args = rest[start + 1..i].iter().cloned().collect();
                        return Some((args, i + 1));
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// Where the identifier at `tts[i]` sits in its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathRoot {
    /// Alone: not preceded by `::`.
    Alone,
    /// The last segment (or a later one) of a path that starts at `std`,
    /// `core` or `alloc`: a std item, never a type of the user's crate.
    Std,
    /// The later segment of any other path (`crate::Node`, `inner::Node`).
    Other,
}

/// Where the identifier at `tts[i]` sits in its path (see [`PathRoot`]).
fn path_root(tts: &[TokenTree], i: usize) -> PathRoot {
    let colons_before = |j: usize| j >= 2 && is_punct(tts.get(j - 1), ':') && is_punct(tts.get(j - 2), ':');
    if !colons_before(i) {
        return PathRoot::Alone;
    }
    // Walk back over `segment ::` pairs to the first segment.
    let mut first = i;
    while colons_before(first) && first >= 3 && matches!(tts[first - 3], TokenTree::Ident(_)) {
        first -= 3;
    }
    match &tts[first] {
        TokenTree::Ident(root) if first != i && (root == "std" || root == "core" || root == "alloc") => PathRoot::Std,
        _ => PathRoot::Other,
    }
}

/// How `ty` mentions the type being derived (named `name`, whose own
/// generic arguments are `self_args`).
fn self_reference(ty: &Type, name: &Ident, self_args: &str) -> SelfRef {
    fn walk(tokens: TokenStream, name: &Ident, self_args: &str, found: &mut SelfRef) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tt) in tts.iter().enumerate() {
            match tt {
                TokenTree::Group(g) => walk(g.stream(), name, self_args, found),
                TokenTree::Ident(id) if id == "Self" => *found = (*found).max(SelfRef::Exact),
                TokenTree::Ident(id) if id == name => {
                    match path_root(&tts, i) {
                        PathRoot::Alone => {}
                        // `std::string::String` inside `struct String`.
                        PathRoot::Std => continue,
                        // `crate::Node`, `inner::Node`: maybe the type,
                        // maybe another one of the same name.
                        PathRoot::Other => {
                            *found = SelfRef::Other;
                            continue;
                        }
                    }
                    let args = generic_args(&tts[i + 1..]).map_or_else(String::new, |(args, _)| {
                        let mut args = normalized(args);
                        if args.ends_with(',') {
                            args.pop();
                        }
                        args
                    });
                    let kind = if args == self_args {
                        SelfRef::Exact
                    } else {
                        SelfRef::Other
                    };
                    *found = (*found).max(kind);
                }
                _ => {}
            }
        }
    }
    let mut found = SelfRef::None;
    walk(ty.to_token_stream(), name, self_args, &mut found);
    found
}

/// Whether `ty` mentions the type being derived (`Self`, or `name` other
/// than at the end of a std path, the rule of [`path_root`]) other
/// than inside the generic arguments of a `Gc<...>` or `Weak<...>`, whose
/// `FIXED_EDGES` constants do not depend on their referent type.
fn mentions_outside_handles(ty: &Type, name: &Ident) -> bool {
    fn walk(tokens: TokenStream, name: &Ident) -> bool {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Group(g) if walk(g.stream(), name) => return true,
                // `std::string::String` inside `struct String` is not it.
                TokenTree::Ident(id) if id == "Self" || (id == name && path_root(&tts, i) != PathRoot::Std) => {
                    return true
                }
                TokenTree::Ident(id) if id == "Gc" || id == "Weak" => {
                    if let Some((_, consumed)) = generic_args(&tts[i + 1..]) {
                        i += consumed;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        false
    }
    walk(ty.to_token_stream(), name)
}

/// Type names on which `#[derive(Trace)]` may ask for `ACYCLIC` (and the
/// module names of their std paths): the std types whose `Trace` impls
/// answer from their type arguments alone (containers without interior
/// mutability, `Gc`), answer `false` for handles in cells (`RefCell`,
/// `Cell`), or are leaves or opaque (`String`, `Rc`, `Arc`). A constant
/// built from these, the type itself and its parameters cannot come back
/// to another derived type's constant, so mutually recursive types never
/// make a cycle in constant evaluation, and the type itself inside them
/// adds no handle (which `MAY_CONTAIN_GC` relies on). `Weak<...>` is
/// accepted with any arguments: its answers do not depend on them (see
/// [`only_acyclic_names`]). `Result` is not here: `type Result<T> =
/// std::result::Result<T, MyError>` is a common alias that would hide a
/// type of the user's own.
const ACYCLIC_NAMES: &[&str] = &[
    // Handles and containers.
    "Gc",
    "Option",
    "Box",
    "Vec",
    "VecDeque",
    "LinkedList",
    "BinaryHeap",
    "BTreeMap",
    "BTreeSet",
    "HashMap",
    "HashSet",
    "RefCell",
    "Cell",
    "String",
    "PhantomData",
    "Rc",
    "Arc",
    // Their paths.
    "rcgc",
    "std",
    "core",
    "alloc",
    "boxed",
    "vec",
    "collections",
    "cell",
    "string",
    "option",
    "marker",
    "rc",
    "sync",
    "hashbrown",
    "vec_deque",
    "linked_list",
    "binary_heap",
    "btree_map",
    "btree_set",
    "hash_map",
    "hash_set",
];

/// Primitive types: leaves whatever they are asked, written bare.
const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
    "f32", "f64",
];

/// The `ACYCLIC` operand of one traced field, or `None` if the derive
/// cannot tell without risking a cycle in constant evaluation (the type
/// then gets the default, `!MAY_CONTAIN_GC`):
///
/// * a field type built only from [`ACYCLIC_NAMES`], the type's parameters
///   and the type itself is asked for its `ACYCLIC`, with the type itself
///   replaced by `AcyclicSelf` (assumed acyclic: see its docs);
/// * any other field type that mentions `Gc` or the type itself gives
///   `None`: it could lead back here through another derived type;
/// * any other field type must not own a `Gc` at all
///   (`!MAY_CONTAIN_GC`, a constant the type's own `MAY_CONTAIN_GC` already
///   depends on, or that cannot depend on this type).
fn acyclic_operand(ty: &Type, name: &Ident, self_args: &str, params: &[&Ident]) -> Option<TokenStream> {
    let self_ref = self_reference(ty, name, self_args);
    if self_ref == SelfRef::Other {
        return None;
    }
    let known = only_acyclic_names(ty.to_token_stream(), name, params);
    if known {
        let ty = replace_self(ty.to_token_stream(), name, &quote!(::rcgc::__derive::AcyclicSelf));
        Some(quote!(<#ty as ::rcgc::Trace>::ACYCLIC))
    } else if self_ref == SelfRef::Exact || mentions_ident(ty, "Gc") {
        None
    } else {
        Some(quote!(!<#ty as ::rcgc::Trace>::MAY_CONTAIN_GC))
    }
}

/// Whether every identifier in `tokens` is one of [`ACYCLIC_NAMES`], one of
/// `params`, or names the type being derived (`Self` or `name`, not
/// followed by `::` and an associated item).
fn only_acyclic_names(tokens: TokenStream, name: &Ident, params: &[&Ident]) -> bool {
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tts.len() {
        let known = match &tts[i] {
            TokenTree::Group(g) => only_acyclic_names(g.stream(), name, params),
            TokenTree::Ident(id) if id == "Self" || (id == name && path_root(&tts, i) == PathRoot::Alone) => {
                // `Self::Assoc` is a projection, not the type.
                let rest = &tts[i + 1..];
                let path_follows = is_punct(rest.first(), ':') && is_punct(rest.get(1), ':');
                !path_follows || is_punct(rest.get(2), '<')
            }
            // `inner::Node` inside `struct Node`: maybe another type.
            TokenTree::Ident(id) if id == name && path_root(&tts, i) == PathRoot::Other => false,
            TokenTree::Ident(id) if params.contains(&id) || PRIMITIVES.iter().any(|n| id == n) => true,
            TokenTree::Ident(id) if id == "Weak" => match generic_args(&tts[i + 1..]) {
                // `Weak<T>::ACYCLIC` is `true` whatever `T` is.
                Some((_, consumed)) => {
                    i += consumed;
                    true
                }
                // A bare `Weak` is some alias.
                None => false,
            },
            TokenTree::Ident(id) if ACYCLIC_NAMES.iter().any(|n| id == n) => {
                // A module segment (`std::`), a type with its arguments
                // (`Vec<..>`), or the end of a std path
                // (`std::string::String`). A bare name without arguments
                // (`String`, `Cell`) may be an alias of anything, the type
                // being derived included.
                let rest = &tts[i + 1..];
                let segment = is_punct(rest.first(), ':') && is_punct(rest.get(1), ':') && !is_punct(rest.get(2), '<');
                segment || generic_args(rest).is_some() || path_root(&tts, i) == PathRoot::Std
            }
            TokenTree::Ident(_) => false,
            // A lifetime (`'a`): a quote and an identifier that is no type.
            TokenTree::Punct(p) if p.as_char() == '\'' => {
                i += 1;
                true
            }
            TokenTree::Punct(_) | TokenTree::Literal(_) => true,
        };
        if !known {
            return false;
        }
        i += 1;
    }
    true
}

/// `tokens` with every mention of the type being derived (`Self`, or
/// `name` with its generic arguments) replaced by `by`.
fn replace_self(tokens: TokenStream, name: &Ident, by: &TokenStream) -> TokenStream {
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = TokenStream::new();
    let mut i = 0;
    while i < tts.len() {
        match &tts[i] {
            TokenTree::Group(g) => {
                let mut group = proc_macro2::Group::new(g.delimiter(), replace_self(g.stream(), name, by));
                group.set_span(g.span());
                out.extend([TokenTree::Group(group)]);
            }
            TokenTree::Ident(id) if id == "Self" || (id == name && path_root(&tts, i) == PathRoot::Alone) => {
                out.extend(by.clone());
                if let Some((_, consumed)) = generic_args(&tts[i + 1..]) {
                    i += consumed;
                }
            }
            // `Weak`'s constants do not depend on its arguments: keep them
            // as written (a stand-in there could miss a bound of theirs).
            TokenTree::Ident(id) if id == "Weak" => {
                out.extend([tts[i].clone()]);
                if let Some((_, consumed)) = generic_args(&tts[i + 1..]) {
                    out.extend(tts[i + 1..=i + consumed].iter().cloned());
                    i += consumed;
                }
            }
            tt => out.extend([tt.clone()]),
        }
        i += 1;
    }
    out
}

/// How the type parameters occur in a field type.
struct ParamUses {
    /// `direct[k]`: `params[k]` occurs other than as the base of a projection
    /// (ignoring the arguments of `PhantomData<...>`, which is `Trace` whatever
    /// they are).
    direct: Vec<bool>,
    /// `projected[k]`: `params[k]` is projected from (`T::Assoc`,
    /// `<T as Tr>::Assoc`).
    projected: Vec<bool>,
}

fn param_uses(ty: &Type, params: &[&Ident]) -> ParamUses {
    fn walk(tokens: TokenStream, params: &[&Ident], uses: &mut ParamUses) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Group(g) => walk(g.stream(), params, uses),
                TokenTree::Ident(id) if id == "PhantomData" => {
                    if let Some((_, len)) = generic_args(&tts[i + 1..]) {
                        i += len;
                    }
                }
                TokenTree::Ident(id) => {
                    if let Some(k) = params.iter().position(|p| *p == id) {
                        let next = tts.get(i + 1);
                        let is_path = is_punct(next, ':') && is_punct(tts.get(i + 2), ':');
                        let is_qself = matches!(next, Some(TokenTree::Ident(n)) if n == "as");
                        if is_path || is_qself {
                            uses.projected[k] = true;
                        } else {
                            uses.direct[k] = true;
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    let mut uses = ParamUses {
        direct: vec![false; params.len()],
        projected: vec![false; params.len()],
    };
    walk(ty.to_token_stream(), params, &mut uses);
    uses
}

/// Adds `T: ::rcgc::Trace` for every type parameter that a traced field uses
/// directly, and `FieldTy: ::rcgc::Trace` for traced fields that project out
/// of a type parameter (like serde).
fn add_bounds(generics: &Generics, shapes: &[Shape<'_>], name: &Ident, self_args: &str) -> Generics {
    let mut generics = generics.clone();
    let params: Vec<&Ident> = generics.type_params().map(|p| &p.ident).collect();
    let mut bounded = vec![false; params.len()];
    let mut predicates: Punctuated<WherePredicate, Token![,]> = Punctuated::new();
    let mut projections: Vec<String> = Vec::new();
    for field in shapes.iter().flat_map(|s| &s.traced) {
        let uses = param_uses(field.ty, &params);
        for (k, direct) in uses.direct.iter().enumerate() {
            bounded[k] |= direct;
        }
        if !uses.projected.contains(&true) {
            continue;
        }
        if self_reference(field.ty, name, self_args) == SelfRef::None {
            let key = normalized(field.ty.to_token_stream());
            if !projections.contains(&key) {
                projections.push(key);
                let ty = field.ty;
                predicates.push(parse_quote!(#ty: ::rcgc::Trace));
            }
        } else {
            // A bound on a self-referential field type would make the impl
            // depend on itself (E0275); bound the projected parameters
            // instead, which may be stricter than needed.
            for (k, projected) in uses.projected.iter().enumerate() {
                bounded[k] |= projected;
            }
        }
    }
    let mut all: Punctuated<WherePredicate, Token![,]> = params
        .iter()
        .zip(&bounded)
        .filter(|(_, bounded)| **bounded)
        .map(|(param, _)| -> WherePredicate { parse_quote!(#param: ::rcgc::Trace) })
        .collect();
    all.extend(predicates);
    if !all.is_empty() {
        generics.make_where_clause().predicates.extend(all);
    }
    generics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(input: TokenStream) -> String {
        let input: DeriveInput = syn::parse2(input).expect("valid derive input");
        expand(input).to_string()
    }

    /// The `MAY_CONTAIN_GC` initializer.
    fn const_expr(expansion: &str) -> String {
        named_const_expr(expansion, "MAY_CONTAIN_GC")
    }

    /// The initializer of the constant `name`.
    fn named_const_expr(expansion: &str, name: &str) -> String {
        let decl = format!("const {name} : bool =");
        let start = expansion.find(&decl).expect("const present") + decl.len();
        let len = expansion[start..].find(';').expect("const ends");
        expansion[start..start + len].trim().to_owned()
    }

    #[test]
    fn fixed_edges_ands_the_fields_and_is_conservative_for_self_by_value() {
        let fixed = |tokens| named_const_expr(&expand_str(tokens), "FIXED_EDGES");
        assert_eq!(
            fixed(quote!(
                struct Node {
                    left: Option<Gc<Node>>,
                    right: Option<rcgc::Gc<Self>>,
                    weak: Weak<Node>,
                }
            )),
            "< Option < Gc < Node > > as :: rcgc :: Trace > :: FIXED_EDGES && \
             < Option < rcgc :: Gc < Self > > as :: rcgc :: Trace > :: FIXED_EDGES && \
             < Weak < Node > as :: rcgc :: Trace > :: FIXED_EDGES"
        );
        assert_eq!(
            fixed(quote!(
                struct Unit;
            )),
            "true"
        );
        assert_eq!(
            fixed(quote!(
                struct List {
                    head: i32,
                    tail: Option<Box<List>>,
                }
            )),
            "false"
        );
        assert_eq!(
            fixed(quote!(
                struct Pair(Gc<Vec<Self>>);
            )),
            "< Gc < Vec < Self > > as :: rcgc :: Trace > :: FIXED_EDGES"
        );
        assert_eq!(
            fixed(quote!(
                #[trace(tracked)]
                struct Forced(u8);
            )),
            "false"
        );
    }

    #[test]
    fn acyclic_asks_std_types_with_self_replaced_and_gives_up_on_other_handles() {
        let acyclic = |tokens| {
            let out = expand_str(tokens);
            out.contains("const ACYCLIC").then(|| named_const_expr(&out, "ACYCLIC"))
        };
        assert_eq!(
            acyclic(quote!(
                struct Node<T> {
                    left: Option<Gc<Node<T>>>,
                    right: Option<rcgc::Gc<Self>>,
                    value: T,
                    label: Label,
                    parent: Weak<Other>,
                }
            ))
            .as_deref(),
            Some(
                "< Option < Gc < :: rcgc :: __derive :: AcyclicSelf > > as :: rcgc :: Trace > :: ACYCLIC && \
                 < Option < rcgc :: Gc < :: rcgc :: __derive :: AcyclicSelf > > as :: rcgc :: Trace > :: ACYCLIC && \
                 < T as :: rcgc :: Trace > :: ACYCLIC && \
                 ! < Label as :: rcgc :: Trace > :: MAY_CONTAIN_GC && \
                 < Weak < Other > as :: rcgc :: Trace > :: ACYCLIC"
            )
        );
        // A handle to another derived type, the type itself behind an
        // unknown path, polymorphic recursion, an associated type of
        // `Self`, a bare std name (maybe an alias) next to a handle: no
        // constant, so the default applies.
        for tokens in [
            quote!(
                struct A {
                    b: Option<Gc<B>>,
                }
            ),
            quote!(
                struct A {
                    me: Option<Box<crate::A>>,
                }
            ),
            quote!(
                struct A<T> {
                    next: Option<Box<A<Vec<T>>>>,
                }
            ),
            quote!(
                struct A {
                    item: Option<Self::Item>,
                }
            ),
            quote!(
                struct A {
                    names: Vec<(String, Gc<A>)>,
                }
            ),
            quote!(
                #[trace(tracked)]
                struct A(u8);
            ),
        ] {
            assert_eq!(acyclic(tokens.clone()), None, "{tokens}");
        }
        assert_eq!(
            acyclic(quote!(
                #[trace(acyclic)]
                struct A {
                    b: RefCell<Option<Gc<B>>>,
                }
            ))
            .as_deref(),
            Some("true")
        );
    }

    #[test]
    fn paths_name_the_type_itself_only_alone() {
        let tts = |tokens: TokenStream| -> Vec<TokenTree> { tokens.into_iter().collect() };
        let roots = |tokens: TokenStream| -> Vec<PathRoot> {
            let tts = tts(tokens);
            (0..tts.len())
                .filter(|&i| matches!(&tts[i], TokenTree::Ident(id) if id == "Node"))
                .map(|i| path_root(&tts, i))
                .collect()
        };
        assert_eq!(roots(quote!(Node)), [PathRoot::Alone]);
        assert_eq!(roots(quote!(std::string::Node)), [PathRoot::Std]);
        assert_eq!(roots(quote!(::core::Node)), [PathRoot::Std]);
        assert_eq!(roots(quote!(crate::Node)), [PathRoot::Other]);
        assert_eq!(roots(quote!(a::b::Node)), [PathRoot::Other]);
        assert_eq!(roots(quote!(<T as Tr>::Node)), [PathRoot::Other]);

        let name = Ident::new("String", Span::call_site());
        let ty: Type = parse_quote!(Option<std::string::String>);
        assert_eq!(self_reference(&ty, &name, ""), SelfRef::None);
        let name = Ident::new("Node", Span::call_site());
        let ty: Type = parse_quote!(Option<Box<crate::Node>>);
        assert_eq!(self_reference(&ty, &name, ""), SelfRef::Other);
        // Inside a wrapper of the user's own, the type itself may add a
        // handle: `true`, not left out.
        let may = |tokens| const_expr(&expand_str(tokens));
        // Next to a parameter in a std container, the type itself is a leaf
        // and the parameter decides.
        assert_eq!(
            may(quote!(
                struct Node<K, V> {
                    entries: Vec<(K, V, Box<Node<K, V>>)>,
                }
            )),
            "< Vec < (K , V , Box < :: rcgc :: __derive :: LeafSelf >) > as :: rcgc :: Trace > :: MAY_CONTAIN_GC"
        );
        assert_eq!(
            may(quote!(
                struct Node {
                    next: Slot<Node>,
                }
            )),
            "true"
        );
        assert_eq!(
            may(quote!(
                struct String(std::string::String);
            )),
            "< std :: string :: String as :: rcgc :: Trace > :: MAY_CONTAIN_GC"
        );
    }

    #[test]
    fn named_struct() {
        let out = expand_str(quote! {
            struct Point { x: i32, y: String }
        });
        assert!(out.contains("# [automatically_derived]"), "{out}");
        assert!(out.contains("unsafe impl :: rcgc :: Trace for Point"), "{out}");
        assert_eq!(
            const_expr(&out),
            "< i32 as :: rcgc :: Trace > :: MAY_CONTAIN_GC || < String as :: rcgc :: Trace > :: MAY_CONTAIN_GC"
        );
        assert!(
            out.contains("let Self { x : __rcgc_field_0 , y : __rcgc_field_1 , } = self ;"),
            "{out}"
        );
        assert!(
            out.contains(":: rcgc :: Trace :: trace (__rcgc_field_0 , tracer) ;"),
            "{out}"
        );
        assert!(
            out.contains(":: rcgc :: Trace :: trace (__rcgc_field_1 , tracer) ;"),
            "{out}"
        );
    }

    #[test]
    fn tuple_and_unit_structs() {
        let out = expand_str(quote!(
            struct Pair(u8, #[trace(skip)] std::fs::File, u16);
        ));
        assert!(
            out.contains("let Self { 0 : __rcgc_field_0 , 2 : __rcgc_field_2 , .. } = self ;"),
            "{out}"
        );
        assert!(!out.contains("File"), "{out}");

        let out = expand_str(quote!(
            struct Unit;
        ));
        assert_eq!(const_expr(&out), "false");
        assert!(
            out.contains("fn trace (& self , _tracer : & mut :: rcgc :: Tracer < '_ >) { }"),
            "{out}"
        );
    }

    #[test]
    fn duplicate_field_types_appear_once() {
        let out = expand_str(quote!(
            struct P(u8, u8, u8);
        ));
        assert_eq!(const_expr(&out), "< u8 as :: rcgc :: Trace > :: MAY_CONTAIN_GC");
    }

    #[test]
    fn enum_matches_every_variant() {
        let out = expand_str(quote! {
            enum E<T> { A, B(T, #[trace(skip)] Foreign), C { x: Vec<T>, y: u8 } }
        });
        assert!(out.contains("match self {"), "{out}");
        assert!(out.contains("Self :: A { .. } => { }"), "{out}");
        assert!(out.contains("Self :: B { 0 : __rcgc_field_0 , .. } =>"), "{out}");
        assert!(
            out.contains("Self :: C { x : __rcgc_field_0 , y : __rcgc_field_1 , } =>"),
            "{out}"
        );
        assert!(!out.contains("Foreign"), "{out}");
        assert_eq!(
            const_expr(&out),
            "< T as :: rcgc :: Trace > :: MAY_CONTAIN_GC || < Vec < T > as :: rcgc :: Trace > :: MAY_CONTAIN_GC || < u8 as :: rcgc :: Trace > :: MAY_CONTAIN_GC"
        );
    }

    #[test]
    fn empty_enum() {
        let out = expand_str(quote!(
            enum Never {}
        ));
        assert_eq!(const_expr(&out), "false");
        assert!(out.contains("_tracer"), "{out}");
    }

    #[test]
    fn bounds_added_and_where_clause_kept() {
        let out = expand_str(quote! {
            struct S<'a, T: Clone, U, const N: usize> where U: Default {
                r: &'a str, t: T, u: [U; N]
            }
        });
        assert!(
            out.contains(
                "unsafe impl < 'a , T : Clone , U , const N : usize > :: rcgc :: Trace for S < 'a , T , U , N >"
            ),
            "{out}"
        );
        assert!(
            out.contains("where U : Default , T : :: rcgc :: Trace , U : :: rcgc :: Trace {"),
            "{out}"
        );
    }

    #[test]
    fn skipped_and_phantom_params_are_not_bounded() {
        let out = expand_str(quote! {
            struct S<T, U> { #[trace(skip)] raw: *const T, marker: PhantomData<U> }
        });
        assert!(!out.contains("where"), "{out}");
        assert!(!out.contains("raw"), "{out}");
        assert!(!out.contains("* const"), "{out}");
    }

    #[test]
    fn projections_are_bounded() {
        let out = expand_str(quote! {
            struct S<I: Iterator> { item: Option<I::Item>, other: <I as Tr>::Out }
        });
        assert!(
            out.contains("where Option < I :: Item > : :: rcgc :: Trace , < I as Tr > :: Out : :: rcgc :: Trace {"),
            "{out}"
        );
    }

    #[test]
    fn self_mentioning_fields_are_asked_with_a_leaf_in_place_of_the_type() {
        let out = expand_str(quote! {
            struct Node<T> {
                value: T,
                next: Option<Box<Node<T>>>,
                children: Vec<Self>,
                shared: Option<std::rc::Rc<Node<T>>>,
            }
        });
        assert_eq!(
            const_expr(&out),
            "< T as :: rcgc :: Trace > :: MAY_CONTAIN_GC || \
             < Option < Box < :: rcgc :: __derive :: LeafSelf > > as :: rcgc :: Trace > :: MAY_CONTAIN_GC || \
             < Vec < :: rcgc :: __derive :: LeafSelf > as :: rcgc :: Trace > :: MAY_CONTAIN_GC || \
             < Option < std :: rc :: Rc < :: rcgc :: __derive :: LeafSelf > > as :: rcgc :: Trace > :: MAY_CONTAIN_GC"
        );
        // Still traced.
        assert!(out.contains("next : __rcgc_field_1"), "{out}");
        assert!(out.contains("children : __rcgc_field_2"), "{out}");
        assert!(
            out.contains(":: rcgc :: Trace :: trace (__rcgc_field_3 , tracer)"),
            "{out}"
        );

        let out = expand_str(quote!(
            struct List {
                head: i32,
                tail: Option<Box<List>>,
            }
        ));
        assert_eq!(
            const_expr(&out),
            "< i32 as :: rcgc :: Trace > :: MAY_CONTAIN_GC || \
             < Option < Box < :: rcgc :: __derive :: LeafSelf > > as :: rcgc :: Trace > :: MAY_CONTAIN_GC"
        );

        let out = expand_str(quote!(
            struct Only(Box<Self>);
        ));
        assert_eq!(
            const_expr(&out),
            "< Box < :: rcgc :: __derive :: LeafSelf > as :: rcgc :: Trace > :: MAY_CONTAIN_GC"
        );
    }

    #[test]
    fn polymorphic_recursion_is_conservative() {
        let out = expand_str(quote!(
            struct Nested<T> {
                x: T,
                deeper: Option<Box<Nested<Vec<T>>>>,
            }
        ));
        assert_eq!(const_expr(&out), "true");
        let out = expand_str(quote!(
            struct Lt<'a> {
                x: &'a str,
                deeper: Option<Box<Lt<'static>>>,
            }
        ));
        assert_eq!(const_expr(&out), "true");
        let out = expand_str(quote!(
            struct Tf<T> {
                x: T,
                deeper: Option<Box<Tf<T>>>,
            }
        ));
        assert_eq!(
            const_expr(&out),
            "< T as :: rcgc :: Trace > :: MAY_CONTAIN_GC || \
             < Option < Box < :: rcgc :: __derive :: LeafSelf > > as :: rcgc :: Trace > :: MAY_CONTAIN_GC"
        );
    }

    #[test]
    fn gc_field_gives_true() {
        for ty in [
            quote!(Gc<Self>),
            quote!(Option<Gc<Node>>),
            quote!(std::cell::RefCell<Vec<rcgc::Gc<Self>>>),
            quote!(Gc<i32>),
        ] {
            let out = expand_str(quote!(struct Node { name: String, link: #ty }));
            assert_eq!(const_expr(&out), "true", "{ty}: {out}");
            assert!(out.contains("link : __rcgc_field_1"), "{out}");
        }
    }

    #[test]
    fn tracked_gives_true() {
        let out = expand_str(quote! {
            #[trace(tracked)]
            struct A { b: Option<Box<B>> }
        });
        assert_eq!(const_expr(&out), "true");
        assert!(out.contains("b : __rcgc_field_0"), "{out}");
    }

    #[test]
    fn union_is_rejected() {
        let out = expand_str(quote!(union U { a: u32, b: f32 }));
        assert!(out.contains("compile_error"), "{out}");
        assert!(
            out.contains("does not support unions: the active field is unknown"),
            "{out}"
        );
        assert!(!out.contains("impl"), "{out}");
    }

    #[test]
    fn packed_is_rejected() {
        let out = expand_str(quote!(
            #[repr(C, packed(2))]
            struct P {
                a: u8,
                b: u32,
            }
        ));
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("repr(packed)"), "{out}");
    }

    #[test]
    fn unknown_arguments_are_rejected() {
        let out = expand_str(quote!(
            #[trace(bogus)]
            struct S {
                a: u8,
            }
        ));
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("unknown #[trace] argument `bogus`"), "{out}");
        assert!(out.contains("`tracked`"), "{out}");

        let out = expand_str(quote!(
            struct S {
                #[trace(bogus, tracked)]
                a: u8,
                #[trace(skip)]
                b: u8,
            }
        ));
        assert!(
            out.contains("unknown #[trace] argument `bogus`; accepted on a field: `skip`"),
            "{out}"
        );

        let out = expand_str(quote!(
            #[trace(skip)]
            struct S {
                a: u8,
            }
        ));
        assert!(out.contains("`skip` is a field attribute"), "{out}");

        let out = expand_str(quote!(
            enum E {
                #[trace(skip)]
                A(u8),
            }
        ));
        assert!(out.contains("not accepted on enum variants"), "{out}");
    }

    #[test]
    fn several_errors_are_reported_together() {
        let out = expand_str(quote!(
            #[trace(nope)]
            struct S {
                #[trace(nada)]
                a: u8,
            }
        ));
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
    }

    #[test]
    fn generic_args_parsing() {
        let tts: Vec<TokenTree> = quote!(<fn() -> u8, Vec<Vec<T>>> tail).into_iter().collect();
        let (args, len) = generic_args(&tts).expect("args");
        assert_eq!(normalized(args), "fn()->u8,Vec<Vec<T>>");
        assert_eq!(len, tts.len() - 1);
        let tts: Vec<TokenTree> = quote!(::Assoc).into_iter().collect();
        assert!(generic_args(&tts).is_none());
    }
}
