//! The gate under test: its setup on the local stack (running as its execution role, with the
//! CodeBuild stand-in), and the corpus events it receives, with the fields that name the example
//! policy's projects, images and commits replaced, so every shape is the real one.

use std::sync::Arc;

use eddo::idempotency::now_epoch;
use eddo_local::demo::corpus;
use eddo_local::moto::Moto;
use eddo_local::stack::Stack;
use eddo_scan_gate::Gate;
use serde_json::{Value, json};

/// A scan within the example policy's limits.
pub const CLEAN: &str = r#"{"HIGH": 1, "MEDIUM": 4}"#;

pub fn sha(n: u32) -> String {
    format!("{n:08x}{}", &"c0ffee".repeat(6)[..32])
}

pub fn digest(n: u32) -> String {
    format!("sha256:{n:08x}{}", "ab".repeat(28))
}

pub fn sample(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(corpus().join("aws").join(name)).unwrap())
        .unwrap()
}

pub fn id() -> String {
    format!("{:032x}", fastrand_u128())
}

pub fn fastrand_u128() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(now_epoch());
    u128::from(h.finish()) << 64 | u128::from(RandomState::new().build_hasher().finish())
}

/// A CodeBuild state change of `project` for `commit`, from the corpus sample.
pub fn build(project: &str, commit: &str, status: &str, image: Option<&str>) -> Value {
    let mut e = sample("codebuild-build-state-change.json");
    e["id"] = json!(id());
    let d = &mut e["detail"];
    d["project-name"] = json!(project);
    d["build-status"] = json!(status);
    d["build-id"] = json!(format!(
        "arn:aws:codebuild:us-east-1:123456789012:build/{project}:{}",
        id()
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

/// The state change of `b` (a build the stand-in started) ending `status`: the corpus event
/// with its id, project and environment.
pub fn finished(b: &eddo_local::codebuild::Build, commit: &str, status: &str) -> Value {
    let mut e = build(&b.project, commit, status, None);
    e["detail"]["build-id"] = json!(b.arn);
    e["detail"]["additional-information"]["environment"]["environment-variables"] = b
        .env
        .iter()
        .map(|v| json!({"name": v.name, "type": v.kind, "value": v.value}))
        .collect();
    e
}

/// An ECR scan of the `hello-world` image `image`, tagged with the commit.
pub fn scan(commit: &str, image: &str, counts: Value) -> Value {
    let mut e = sample("ecr-image-scan.json");
    e["id"] = json!(id());
    e["detail"]["repository-name"] = json!("hello-world");
    e["detail"]["image-digest"] = json!(image);
    e["detail"]["image-tags"] = json!([commit]);
    e["detail"]["finding-severity-counts"] = counts;
    e
}

pub struct Setup {
    pub _moto: Moto,
    pub stack: Stack,
    pub gate: Arc<Gate>,
}

pub async fn setup(prefix: &str, policy: Option<&str>) -> Setup {
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let sdk = moto.sdk_config().await;
    let stack = Stack::provision(&sdk, prefix).await.unwrap();
    if let Some(p) = policy {
        stack.put_policy(p).await.unwrap();
    }
    // The gate runs as its execution role.
    let sdk = crate::function_sdk(&stack, "scan-gate").await;
    let config = crate::policy_config(&stack, "scan-gate");
    let policy = eddo::policy::load(&sdk, &config.policy_parameter)
        .await
        .unwrap();
    let gate = Gate::new(&config, policy, &sdk).with_codebuild(crate::stand_in(&sdk, &stack));
    Setup {
        _moto: moto,
        stack,
        gate: Arc::new(gate),
    }
}

impl Setup {
    pub async fn handle(&self, e: &Value) -> eddo_scan_gate::Report {
        self.gate.handle(e).await.unwrap()
    }

    /// The gate's events on the bus since the last call, each checked against its schema.
    pub async fn published(&self) -> Vec<Value> {
        crate::published(&self.stack, "eddo.gate").await
    }

    /// The state change of the latest deploy build the gate started for `commit`, ending
    /// `status`: the corpus event with that build's id and environment.
    pub fn deploy_finished(&self, commit: &str, status: &str) -> Value {
        let b = self
            .deploys()
            .into_iter()
            .rev()
            .find(|b| b.env("EDDO_COMMIT_SHA") == Some(commit))
            .unwrap_or_else(|| panic!("no deploy build of {commit}"));
        finished(&b, commit, status)
    }

    pub fn deploys(&self) -> Vec<eddo_local::codebuild::Build> {
        self.stack
            .codebuild
            .builds()
            .into_iter()
            .filter(|b| b.project == "eddo-deploy")
            .collect()
    }
}
