//! End-to-end tests of whole eddo flows live beside this file; each starts its own moto server
//! on loopback (installed by `make setup`) and provisions what it needs.

use std::path::PathBuf;

/// A workspace binary built in the same profile as the running test (`cargo test --workspace`
/// and `cargo nextest run --workspace` build every binary first).
pub fn binary(name: &str) -> PathBuf {
    eddo_local::runtime::binary(name).unwrap_or_else(|e| panic!("{e}"))
}
