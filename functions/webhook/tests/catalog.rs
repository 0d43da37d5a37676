//! The event catalog, its JSON Schemas under `infra/schemas/` and the book's catalog table (docs/src/event-catalog.md) stay
//! in step, and every event the corpus produces validates against its schema.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use eddo::DetailType;
use eddo_webhook::normalise::Normalised;
use eddo_webhook::{accept, outgoing, precheck};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn validator(dt: DetailType) -> jsonschema::Validator {
    let path = root().join("infra/schemas").join(dt.schema_file());
    let schema: Value = serde_json::from_str(&read(&path)).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_detail_type_has_a_schema_and_a_readme_row() {
    let readme = read(&root().join("docs/src/event-catalog.md"));
    for dt in DetailType::ALL {
        let _ = validator(*dt);
        let sources: Vec<String> = dt
            .sources()
            .iter()
            .map(|s| format!("`{}`", s.as_str()))
            .collect();
        let row = format!("| {} | `{}` |", sources.join(", "), dt.as_str());
        assert!(
            readme.contains(&row),
            "the event catalog (docs/src/event-catalog.md) has no row starting {row}"
        );
        assert!(
            readme.contains(&format!("infra/schemas/{}", dt.schema_file())),
            "the event catalog does not link {}",
            dt.schema_file()
        );
    }
    let files = std::fs::read_dir(root().join("infra/schemas"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".schema.json")
        })
        .count();
    assert_eq!(
        files,
        DetailType::ALL.len(),
        "a schema file without a catalog entry"
    );
}

#[test]
fn every_published_corpus_event_matches_its_schema() {
    let cfg = config(&[("EDDO_WEBHOOK_FORWARD", "github:*")]);
    let mut checked = 0;
    for (event, file, body) in github_payloads() {
        let req = github_request(&event, "d-1", &body);
        let (p, bytes) = precheck(&req, cfg.max_body_bytes).unwrap();
        let Normalised::Publish(dt, ev) = accept(p, &req.headers, &bytes, &secrets(), &cfg, 0)
            .unwrap()
            .outcome
        else {
            continue;
        };
        let entry = outgoing(dt, *ev, cfg.common.max_entry_bytes).unwrap();
        let detail: Value = serde_json::from_str(&entry.detail).unwrap();
        let v = validator(dt);
        let errors: Vec<String> = v
            .iter_errors(&detail)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{event}/{file} as {dt}: {errors:?}");
        checked += 1;
    }
    assert!(checked > 200, "only {checked} events checked");
}

#[test]
fn a_schema_rejects_what_it_should() {
    let v = validator(DetailType::GitPush);
    let bad = serde_json::json!({"metadata": {"schema_version": "1.0", "correlation_id": "c", "causation_id": "c"}, "provider": "github"});
    assert!(!v.is_valid(&bad));
}
