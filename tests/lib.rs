//! End-to-end tests of whole eddo flows live beside this file; each starts its own moto server
//! on loopback (installed by `make setup`) and provisions what it needs.

use std::path::PathBuf;

/// A workspace binary built in the same profile as the running test (`cargo test --workspace`
/// and `cargo nextest run --workspace` build every binary first).
pub fn binary(name: &str) -> PathBuf {
    eddo_local::runtime::binary(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts that an eddo event's `detail` matches the JSON Schema of its detail-type under
/// `infra/schemas/`: what consumers outside eddo rely on.
pub fn assert_matches_schema(event: &serde_json::Value) {
    let dt = eddo::DetailType::parse(event["detail-type"].as_str().unwrap_or_default())
        .unwrap_or_else(|| panic!("not an eddo detail-type: {event}"));
    let path = eddo_local::moto::project_root()
        .join("infra/schemas")
        .join(dt.schema_file());
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let v =
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let errors: Vec<String> = v
        .iter_errors(&event["detail"])
        .map(|err| format!("{err} at {}", err.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{dt}: {errors:?}\n{event:#}");
}
