use rcgc::Trace;

#[derive(Trace)]
#[repr(C, packed)]
struct Packed {
    tag: u8,
    value: u32,
}

fn main() {}
