use rcgc::Trace;

#[derive(Trace)]
#[trace(tracked, bogus)]
struct UnknownContainerArg {
    a: u8,
}

#[derive(Trace)]
#[trace(skip)]
struct SkipOnContainer {
    a: u8,
}

#[derive(Trace)]
struct FieldArgs {
    #[trace(skip, bogus)]
    unknown: u8,
    #[trace(tracked)]
    tracked_on_field: u8,
    #[trace(skip = true)]
    with_value: u8,
    #[trace]
    bare: u8,
}

#[derive(Trace)]
enum VariantAttr {
    #[trace(skip)]
    A(u8),
    B,
}

fn main() {}
