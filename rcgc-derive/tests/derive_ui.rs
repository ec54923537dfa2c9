//! Compile-fail (and a few must-compile) tests for `#[derive(Trace)]`.
//!
//! The expected compiler output lives next to each case in `tests/ui/*.stderr`;
//! regenerate it with `TRYBUILD=overwrite cargo test -p rcgc-derive --test derive_ui` after a
//! deliberate change to a diagnostic.

#[cfg(not(miri))]
#[test]
fn derive_ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail_*.rs");
    cases.pass("tests/ui/pass_*.rs");
}
