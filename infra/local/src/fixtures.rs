//! The events the demo's checks, the tests and the soak build: corpus samples with the fields
//! that name a policy's projects, images and commits replaced, so every shape is the real one.

use serde_json::{Value, json};

use crate::codebuild::Build;

/// An AWS event sample from the corpus (`aws/<name>`).
pub fn sample(name: &str) -> Value {
    let path = crate::demo::corpus().join("aws").join(name);
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("the corpus sample {}", path.display()))
}

/// A fresh EventBridge event id.
pub fn event_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// A `CodeBuild Build State Change` of `project` for `commit` ending `status` (the failed phase
/// BUILD), exporting `IMAGE_DIGEST` when `image` is given.
pub fn build_state(
    project: &str,
    commit: &str,
    status: &str,
    image: Option<&str>,
    id: &str,
) -> Value {
    let mut e = sample("codebuild-build-state-change.json");
    e["id"] = json!(id);
    let d = &mut e["detail"];
    d["project-name"] = json!(project);
    d["build-status"] = json!(status);
    d["build-id"] = json!(format!(
        "arn:aws:codebuild:us-east-1:123456789012:build/{project}:{id}"
    ));
    d["additional-information"]["source-version"] = json!(commit);
    if status != "SUCCEEDED" {
        d["additional-information"]["phases"][6]["phase-status"] = json!(status);
    }
    if let Some(i) = image {
        d["additional-information"]["exported-environment-variables"] =
            json!([{"name": "IMAGE_DIGEST", "value": i}]);
    }
    e
}

/// An ECR scan of the `hello-world` image `image`, tagged with the commit.
pub fn image_scan(commit: &str, image: &str, counts: Value, id: &str) -> Value {
    let mut e = sample("ecr-image-scan.json");
    e["id"] = json!(id);
    e["detail"]["repository-name"] = json!("hello-world");
    e["detail"]["image-digest"] = json!(image);
    e["detail"]["image-tags"] = json!([commit]);
    e["detail"]["finding-severity-counts"] = counts;
    e
}

/// The state change of `b` (a build the CodeBuild stand-in started) ending `status`: its id,
/// project and environment.
pub fn finished(b: &Build, status: &str, id: &str) -> Value {
    let commit = b.env("EDDO_COMMIT_SHA").unwrap_or_default().to_string();
    let mut e = build_state(&b.project, &commit, status, None, id);
    e["detail"]["build-id"] = json!(b.arn);
    e["detail"]["additional-information"]["environment"]["environment-variables"] = b
        .env
        .iter()
        .map(|v| json!({"name": v.name, "type": v.kind, "value": v.value}))
        .collect();
    e
}
