//! End-to-end tests of whole eddo flows live beside this file; each starts its own moto server
//! on loopback (installed by `make setup`) and provisions what it needs.

use std::path::PathBuf;

/// A workspace binary built in the same profile as the running test (`cargo test --workspace`
/// and `cargo nextest run --workspace` build every binary first).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests with --workspace",
        path.display()
    );
    path
}
