//! The gate under test: its setup on the local stack (running as its execution role, with the
//! CodeBuild stand-in), and the corpus events it receives, with the fields that name the example
//! policy's projects, images and commits replaced, so every shape is the real one.

use std::ops::Deref;
use std::sync::Arc;

use eddo_scan_gate::Gate;
use serde_json::Value;

use super::Local;

/// A scan within the example policy's limits.
pub const CLEAN: &str = r#"{"HIGH": 1, "MEDIUM": 4}"#;

pub use eddo_local::fixtures::{commit as sha, digest, event_id as id, sample};

/// An ECR scan event of the `hello-world` image `image`, tagged with the commit, as anyone may
/// write one: ECR knows no such scan unless [`Setup::scanned`] made it.
pub fn scan(commit: &str, image: &str, counts: Value) -> Value {
    eddo_local::fixtures::image_scan(commit, image, counts, &id())
}

/// The minute's schedule event at `at` (epoch seconds): the deadline sweep's tick.
pub fn tick(at: u64) -> Value {
    serde_json::json!({"id": id(), "source": "aws.events", "detail-type": "Scheduled Event",
        "time": eddo::time::rfc3339(at), "detail": {}})
}

/// Template parameters as `Local::start_with` takes them.
pub fn pairs(parameters: &[(String, String)]) -> Vec<(&str, &str)> {
    parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The state change of `b` (a build the stand-in started) ending `status`.
pub fn finished(b: &eddo_local::codebuild::Build, status: &str) -> Value {
    eddo_local::fixtures::finished(b, status, &id())
}

pub struct Setup {
    pub local: Local,
    pub gate: Arc<Gate>,
}

impl Deref for Setup {
    type Target = Local;
    fn deref(&self) -> &Local {
        &self.local
    }
}

pub async fn setup(prefix: &str, policy: Option<&str>) -> Setup {
    setup_with(prefix, policy, &[]).await
}

/// As [`setup`], with these template parameters overriding the local ones.
pub async fn setup_with(prefix: &str, policy: Option<&str>, parameters: &[(&str, &str)]) -> Setup {
    let local = Local::start_with(prefix, parameters).await;
    if let Some(p) = policy {
        local.stack.put_policy(p).await.unwrap();
    }
    Setup::on(local).await
}

impl Setup {
    /// The gate as the template runs it with `GitHubApp=on`, against a GitHub stand-in started
    /// by `clock`, with `policy` (the example's when none).
    pub async fn with_app(
        prefix: &str,
        clock: fn() -> u64,
        policy: Option<&str>,
    ) -> (Setup, eddo_local::github::GitHub) {
        let github = eddo_local::github::GitHub::start(clock).await.unwrap();
        let local = Local::start_with(prefix, &pairs(&github.parameters())).await;
        github.install(&local.stack).await.unwrap();
        if let Some(p) = policy {
            local.stack.put_policy(p).await.unwrap();
        }
        let (sdk, config, policy) = local.as_function("scan-gate").await;
        let app = eddo::github::App::from_env(
            &super::function_env(&local.stack, "scan-gate"),
            &sdk,
            clock,
        )
        .unwrap();
        assert!(app.is_some(), "the template turns the App mode on");
        let gate = Gate::new(&config, policy, &sdk)
            .with_codebuild(super::stand_in(&sdk, &local.stack))
            .with_github(app)
            .with_clock(clock);
        (
            Setup {
                local,
                gate: Arc::new(gate),
            },
            github,
        )
    }

    /// The gate of a stack already provisioned, as its execution role, with the policy it reads.
    pub async fn on(local: Local) -> Setup {
        let (sdk, config, policy) = local.as_function("scan-gate").await;
        let gate =
            Gate::new(&config, policy, &sdk).with_codebuild(super::stand_in(&sdk, &local.stack));
        Setup {
            local,
            gate: Arc::new(gate),
        }
    }

    /// Service `service` of a generated policy ([`eddo_local::fixtures::policy_of_services`])
    /// built, scanned by its SAST project and by ECR, each signal delivered twice: the flow a
    /// push to its repository makes. Returns the commit.
    pub async fn generated_service_flow(&self, service: &str, n: u32) -> String {
        let (commit, image) = (sha(n), digest(n));
        let ran = |project: String, image: Option<&str>| {
            let mut plan = eddo_local::codebuild::Plan::succeed();
            if let Some(i) = image {
                plan = plan.exporting("IMAGE_DIGEST", i);
            }
            let event = id();
            let b = self.stack.codebuild.ran(
                &project,
                &event,
                &commit,
                &[
                    ("EDDO_REPOSITORY", &format!("eddo-example/{service}")),
                    ("EDDO_BRANCH", "main"),
                ],
                plan,
            );
            eddo_local::fixtures::state_of(&b, &event)
        };
        let mut scanned = scan(&commit, &image, serde_json::from_str(CLEAN).unwrap());
        scanned["detail"]["repository-name"] = service.into();
        let events = [
            ran(format!("{service}-build"), Some(&image)),
            ran(format!("{service}-sast"), None),
            scanned,
        ];
        for e in events.iter().chain(&events) {
            self.arrives(e).await;
        }
        commit
    }

    /// The one deploy build of `service` (in its own `{service}-deploy` project) and the one
    /// `Deployment Started` on the bus that says it; its detail.
    pub async fn deployed_once(&self, service: &str) -> Value {
        let deploys = self.builds(&format!("{service}-deploy"));
        assert_eq!(deploys.len(), 1, "{deploys:#?}");
        assert_eq!(deploys[0].env("EDDO_SERVICE"), Some(service));
        let started: Vec<Value> = self
            .published()
            .await
            .into_iter()
            .filter(|e| e["detail-type"] == "Deployment Started")
            .collect();
        assert_eq!(started.len(), 1, "{started:#?}");
        assert_eq!(started[0]["detail"]["service"], service);
        started[0]["detail"].clone()
    }
}

impl Setup {
    /// `e` handled after what it reports happened: for an ECR scan event, ECR ran that scan
    /// (its repository, digest and counts) just before.
    pub async fn arrives(&self, e: &Value) -> eddo_scan_gate::Report {
        self.ecr_ran(e).await;
        self.handle(e).await
    }

    /// ECR ran the scan the ECR scan event `e` reports (nothing for any other event).
    pub async fn ecr_ran(&self, e: &Value) {
        eddo_local::ecr::ran(&self.stack.sdk, e).await.unwrap();
    }

    /// ECR's scan of the `hello-world` image `image` with `counts`, as ECR ran it (so
    /// `DescribeImageScanFindings` confirms it), and its event.
    pub async fn scanned(&self, commit: &str, image: &str, counts: Value) -> Value {
        let e = scan(commit, image, counts);
        self.ecr_ran(&e).await;
        e
    }

    pub async fn handle(&self, e: &Value) -> eddo_scan_gate::Report {
        self.gate.handle(e).await.unwrap()
    }

    /// A build of `project` for `commit` that ran in the CodeBuild stand-in (as the push rule
    /// starts one) and ended `status`, exporting `image`, and its state change.
    pub fn build(&self, project: &str, commit: &str, status: &str, image: Option<&str>) -> Value {
        eddo_local::fixtures::ran(&self.stack.codebuild, project, commit, status, image, &id())
    }

    /// The gate's events on the bus since the last call, each checked against its schema.
    pub async fn published(&self) -> Vec<Value> {
        self.local.published("eddo.gate").await
    }

    /// The state change of the latest deploy build the gate started for `commit`, ending
    /// `status`: the corpus event with that build's id and environment.
    pub fn deploy_finished(&self, commit: &str, status: &str) -> Value {
        self.deploy_finished_in("eddo-deploy", commit, status)
    }

    /// As [`Setup::deploy_finished`], for a deploy build in `project`.
    pub fn deploy_finished_in(&self, project: &str, commit: &str, status: &str) -> Value {
        let b = self
            .builds(project)
            .into_iter()
            .rev()
            .find(|b| b.env("EDDO_COMMIT_SHA") == Some(commit))
            .unwrap_or_else(|| panic!("no deploy build of {commit}"));
        // CodeBuild ends it so, and describes it so when the gate asks.
        self.stack.codebuild.finish(&b.id, status);
        finished(&b, status)
    }

    /// `commit` built (exporting `image`), its SAST passed and ECR's scan of the image within
    /// the thresholds: every signal the example policy requires, each handled once.
    pub async fn passes(&self, commit: &str, image: &str) {
        self.handle(&self.build("eddo-build", commit, "SUCCEEDED", Some(image)))
            .await;
        self.handle(&self.build("eddo-sast", commit, "SUCCEEDED", None))
            .await;
        let scan = self
            .scanned(commit, image, serde_json::from_str(CLEAN).unwrap())
            .await;
        self.handle(&scan).await;
    }

    pub fn deploys(&self) -> Vec<eddo_local::codebuild::Build> {
        self.builds("eddo-deploy")
    }
}

/// A candidate's evidence ledger as the table holds it: its plain items under the candidate,
/// read as the administrator with one query, not through the gate's store. (kind, sender,
/// passed) per entry, ordered by kind, sender and outcome.
pub async fn ledger(
    stack: &eddo_local::stack::Stack,
    service: &str,
    commit: &str,
) -> Vec<(String, String, bool)> {
    use aws_sdk_dynamodb::types::AttributeValue::Bool;
    use eddo_local::stack::table::text;
    let items = stack
        .items_under(
            &format!("candidate#{service}"),
            &format!("{commit}#evidence#"),
        )
        .await
        .unwrap();
    let plain = |i: &eddo_local::stack::table::RawItem, k: &str| {
        text(i, k)
            .unwrap_or_else(|| panic!("{k}: {:?}", i.get(k)))
            .to_string()
    };
    let mut entries: Vec<(String, String, bool)> = items
        .iter()
        .map(|i| {
            let passed = matches!(i.get("passed"), Some(Bool(true)));
            (plain(i, "kind"), plain(i, "sender"), passed)
        })
        .collect();
    entries.sort();
    entries
}

/// The `Deployment Protection Rule` event the webhook publishes for GitHub's delivery
/// [`eddo_local::fixtures::protection_rule`] (normalised by the webhook's own code), as
/// EventBridge hands it to the gate.
pub fn protection_rule(commit: &str, run_id: u64, environment: &str, at: u64) -> Value {
    let body = eddo_local::fixtures::protection_rule(commit, run_id, environment);
    from_the_webhook("deployment_protection_rule", &body, at)
}

/// What the webhook publishes for GitHub's `event` delivery `body` (normalised by its own code),
/// as EventBridge hands it on at `at`.
fn from_the_webhook(event: &str, body: &str, at: u64) -> Value {
    use eddo_webhook::normalise::{Forward, Normalised, github};
    let Normalised::Publish(detail_type, e) =
        github(event, &id(), body, &Forward::default()).unwrap()
    else {
        panic!("a {event} delivery is published")
    };
    let entry = eddo_webhook::outgoing(detail_type, *e, 256 * 1024).unwrap();
    serde_json::json!({
        "id": id(), "source": entry.source, "detail-type": entry.detail_type,
        "time": eddo::time::rfc3339(at),
        "detail": serde_json::from_str::<Value>(&entry.detail).unwrap(),
    })
}

/// The environment [`deployed_by`] names.
pub const ENV: &str = "production";

/// The example policy, its service deployed `by` (both, or github-environment with no deploy
/// project) on the environment `production`.
pub fn deployed_by(by: &str) -> String {
    let mut policy = super::example_policy().replace(
        "    deploys_by: codebuild\n",
        &format!("    deploys_by: {by}\n    github_environment: {ENV}\n"),
    );
    if by == "github-environment" {
        let line = policy
            .lines()
            .find(|l| l.trim_start().starts_with("deploy: eddo-deploy"))
            .unwrap()
            .to_string();
        policy = policy.replace(&format!("{line}\n"), "");
    }
    assert!(policy.contains("github_environment"), "the example changed");
    policy
}

/// The `Git Push` event the webhook publishes for the corpus's push to master, its head commit
/// `commit` made at `committed_at` (normalised by the webhook's own code), as EventBridge hands
/// it to the gate at `at`.
pub fn pushed(commit: &str, committed_at: u64, at: u64) -> Value {
    let mut body: Value = eddo::corpus::json("github/push/with-new-branch.payload.json");
    body["after"] = commit.into();
    body["head_commit"]["id"] = commit.into();
    body["head_commit"]["timestamp"] = eddo::time::rfc3339(committed_at).into();
    from_the_webhook("push", &body.to_string(), at)
}
