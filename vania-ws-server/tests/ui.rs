//! Compile-time behaviour of `#[ws_controller]` and `#[on]`: every handler shape compiles, and
//! every mistake is an error at the user's tokens. The `.stderr` files are pinned to rustc 1.95,
//! the toolchain CI runs. With another rustc this test fails (rather than skip and pass without
//! checking anything) and says how to re-bless them.

use std::process::Command;

#[test]
fn ui() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        version.starts_with("rustc 1.95."),
        "the UI tests' .stderr files are pinned to rustc 1.95, and this is {:?}: run them with \
         rustc 1.95, or re-bless them for this toolchain with \
         `TRYBUILD=overwrite cargo test -p vania-ws-server --test ui`, review the diff of \
         vania-ws-server/tests/ui/, and change the pinned version in vania-ws-server/tests/ui.rs",
        version.trim()
    );
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
