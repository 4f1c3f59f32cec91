//! Compile-time behaviour of `#[ws_controller]` and `#[on]`: every handler shape compiles, and
//! every mistake is an error at the user's tokens. The `.stderr` files are pinned to rustc 1.95,
//! the toolchain CI runs; with another rustc this test says so and checks nothing.

use std::process::Command;

#[test]
fn ui() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    if !version.starts_with("rustc 1.95.") {
        eprintln!(
            "skipping the UI tests: their .stderr files are pinned to rustc 1.95, found {version:?}"
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
