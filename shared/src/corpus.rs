//! The reference corpus beside the project (`../shared/corpus`, or `EDDO_CORPUS`): real GitHub
//! payloads, AWS event samples and signature vectors, for tests, benches and the local stack.
//! Feature `corpus`; never part of a function.

use std::path::PathBuf;

/// The corpus directory: `EDDO_CORPUS`, else `../shared/corpus` beside the project.
pub fn dir() -> PathBuf {
    std::env::var_os("EDDO_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// The text of `path` in the corpus; a missing file is a panic naming it (tests and benches).
pub fn text(path: &str) -> String {
    let file = dir().join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("corpus {}: {e}", file.display()))
}

/// The JSON document at `path` in the corpus.
pub fn json(path: &str) -> serde_json::Value {
    serde_json::from_str(&text(path)).unwrap_or_else(|e| panic!("corpus {path}: {e}"))
}
