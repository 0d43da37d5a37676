//! Who can open the gate, end to end on the local stack with the real webhook and gate binaries
//! and the template's bus policy enforced: a table of forged signals (each refused at the bus, or
//! rejected by the gate with its reason), none of which starts anything or changes the
//! candidate; then a positive control per signal kind and sender, through the path a real sender
//! takes, which opens the gate once.

use crate::harness::Local;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use eddo_local::dispatch::Dispatcher;
use eddo_local::moto::Moto;
use eddo_local::runtime::LocalFunction;
use eddo_local::send::{post_github, post_signal};
use eddo_local::stack::{LOCAL_CHATOPS_KEY, LOCAL_GITHUB_SECRET, Stack};
use eddo_local::url::FunctionUrl;
use serde_json::{Value, json};

const SERVICE: &str = "hello-world";
const REPO: &str = "Codertocat/Hello-World";

use eddo_local::codebuild::Plan;
use eddo_local::fixtures::{commit, digest as image, sample};

/// A build of `project` that CodeBuild ran from `commit` (of `repository`, as the push rule
/// names it, with any `extra` variables its starter chose) and that succeeded: recorded in the
/// stand-in, and the detail of its state change as CodeBuild sends it.
fn build(
    w: &World,
    project: &str,
    commit: &str,
    digest: Option<&str>,
    repository: &str,
    extra: &[(&str, &str)],
) -> Value {
    let mut plan = Plan::succeed();
    if let Some(i) = digest {
        plan = plan.exporting("IMAGE_DIGEST", i);
    }
    let mut env = vec![("EDDO_REPOSITORY", repository), ("EDDO_BRANCH", "main")];
    env.extend_from_slice(extra);
    let b = w.stack.codebuild.ran(
        project,
        &eddo_local::fixtures::event_id(),
        commit,
        &env,
        plan,
    );
    eddo_local::fixtures::state_of(&b, "unused")["detail"].clone()
}

/// The detail of a state change of a build CodeBuild never ran: what a forger writes.
fn forged_build(project: &str, commit: &str, digest: Option<&str>) -> Value {
    eddo_local::fixtures::build_state(project, commit, "SUCCEEDED", digest, "forged")["detail"]
        .clone()
}

/// ECR's scan of `digest` in the service's repository, tagged with `tag`, clean.
fn ecr_scan(digest: &str, tag: &str) -> Value {
    let mut d = sample("ecr-image-scan.json")["detail"].clone();
    d["repository-name"] = json!(SERVICE);
    d["image-digest"] = json!(digest);
    d["image-tags"] = json!([tag]);
    d["finding-severity-counts"] = json!({"MEDIUM": 1});
    d
}

fn reported(commit: &str, kind: &str, extra: Value) -> Value {
    let mut d = json!({"service": SERVICE, "commit_sha": commit, "kind": kind, "passed": true, "by": "semgrep"});
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

/// A GitHub check run completed on `commit`, run by `app`, as the webhook publishes it.
/// On `branch`: none for a fork's pull request, which runs on the fork's branch.
fn check_run(commit: &str, name: &str, app: &str, branch: Option<&str>) -> String {
    let mut p = eddo::corpus::json("github/check_run/completed.1.payload.json");
    p["check_run"]["head_sha"] = json!(commit);
    p["check_run"]["check_suite"]["head_sha"] = json!(commit);
    p["check_run"]["check_suite"]["head_branch"] = json!(branch);
    p["check_run"]["name"] = json!(name);
    p["check_run"]["app"]["slug"] = json!(app);
    p["check_run"]["conclusion"] = json!("success");
    p.to_string()
}

/// A GitHub Actions workflow run named CodeQL completed on `commit`, of the workflow file
/// `path`, triggered by `trigger`, as GitHub delivers it. On `branch`: none for a fork's pull
/// request.
fn workflow_run(commit: &str, path: &str, trigger: &str, branch: Option<&str>) -> String {
    let mut p = eddo::corpus::json("github/workflow_run/completed.payload.json");
    // The service's repository, as GitHub describes it in its other payloads.
    p["repository"] =
        eddo::corpus::json("github/check_run/completed.1.payload.json")["repository"].clone();
    let w = &mut p["workflow_run"];
    w["head_sha"] = json!(commit);
    w["head_branch"] = json!(branch);
    w["name"] = json!("CodeQL");
    w["path"] = json!(path);
    w["event"] = json!(trigger);
    w["conclusion"] = json!("success");
    p.to_string()
}

/// The workflow file the example policy pins its CodeQL check to.
const CODEQL: &str = ".github/workflows/codeql.yml";

struct World {
    _moto: Arc<Moto>,
    stack: Stack,
    gate: Arc<LocalFunction>,
    webhook: Arc<LocalFunction>,
    url: FunctionUrl,
    dispatcher: Dispatcher,
    /// A CI job's role that may put any event on the bus (its identity policy says so), but
    /// carries no eddo:signal-source tag: what "anyone with PutEvents" means.
    forger: SdkConfig,
    /// The role tagged with Semgrep's source: the IAM path's legitimate sender.
    sender: SdkConfig,
    /// The roles tagged with the chat tool's and Trivy's sources.
    chatops: SdkConfig,
    trivy: SdkConfig,
}

impl World {
    async fn new() -> World {
        let Local { moto, stack } = Local::start("trust").await;
        let spec = |binary: &str| stack.spec(binary, &moto.endpoint()).unwrap();
        let gate = Arc::new(LocalFunction::new(spec("scan-gate")).await.unwrap());
        let webhook = Arc::new(LocalFunction::new(spec("webhook")).await.unwrap());
        let url = FunctionUrl::serve(webhook.clone(), 0).await.unwrap();
        let dispatcher = stack.dispatcher(&[gate.clone(), webhook.clone()]).unwrap();
        let forger = forger(&stack, &moto).await;
        let sender = stack.sdk_for_source("com.example.semgrep").await.unwrap();
        let chatops = stack.sdk_for_source("com.example.chatops").await.unwrap();
        let trivy = stack.sdk_for_source("com.example.trivy").await.unwrap();
        World {
            _moto: moto,
            stack,
            gate,
            webhook,
            url,
            dispatcher,
            forger,
            sender,
            chatops,
            trivy,
        }
    }

    /// Puts one event on `bus` as `who`: the bus's answer (an event id, or why not).
    async fn put(
        &self,
        who: &SdkConfig,
        bus: &str,
        source: &str,
        detail_type: &str,
        detail: &Value,
    ) -> Result<String, String> {
        let out = aws_sdk_eventbridge::Client::new(who)
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source(source)
                    .detail_type(detail_type)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| format!("{}", aws_sdk_eventbridge::error::DisplayErrorContext(&e)))?;
        Ok(out.entries()[0].event_id().unwrap_or_default().to_string())
    }

    /// A CodeQL check run completed on `commit`, run by `app`: a signed GitHub delivery through
    /// the webhook binary, then delivered where the rules route it.
    async fn check_run(&self, delivery: &str, commit: &str, app: &str, branch: Option<&str>) {
        let (status, answer) = post_github(
            self.url.addr(),
            LOCAL_GITHUB_SECRET,
            "check_run",
            delivery,
            check_run(commit, "CodeQL", app, branch),
        )
        .await
        .unwrap();
        assert_eq!(status, 202, "{answer}");
        self.pump().await;
    }

    /// A CodeQL workflow run completed on `commit` (see [`workflow_run`]): a signed GitHub
    /// delivery through the webhook binary, then delivered where the rules route it.
    async fn workflow_run(
        &self,
        delivery: &str,
        commit: &str,
        path: &str,
        trigger: &str,
        branch: Option<&str>,
    ) {
        let (status, answer) = post_github(
            self.url.addr(),
            LOCAL_GITHUB_SECRET,
            "workflow_run",
            delivery,
            workflow_run(commit, path, trigger, branch),
        )
        .await
        .unwrap();
        assert_eq!(status, 202, "{answer}");
        self.pump().await;
    }

    /// Delivers what the rules routed to the functions.
    async fn pump(&self) -> usize {
        self.dispatcher
            .pump(Duration::from_secs(3))
            .await
            .unwrap()
            .len()
    }

    /// The candidate's items as the table holds them (the record and its ledger entries, plain,
    /// read as the administrator, in key order): what "unchanged" is compared on.
    async fn candidate(&self, commit: &str) -> Vec<HashMap<String, AttributeValue>> {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
            .query()
            .table_name(&self.stack.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("candidate#{SERVICE}")))
            .expression_attribute_values(":c", AttributeValue::S(commit.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .items()
            .to_vec()
    }

    /// The candidate's evidence ledger as the table holds it (plain items, read as the
    /// administrator): (kind, sender, passed) per entry, by kind and sender.
    async fn ledger(&self, commit: &str) -> Vec<(String, String, bool)> {
        crate::harness::gate::ledger(&self.stack, SERVICE, commit).await
    }

    async fn gate_events(&self) -> Vec<Value> {
        crate::harness::published(&self.stack, "eddo.gate").await
    }

    fn deploys(&self) -> usize {
        self.stack.codebuild.calls("eddo-deploy")
    }
}

/// A role of the account (a CI job's) allowed events:PutEvents on the bus for any source.
async fn forger(stack: &Stack, moto: &Moto) -> SdkConfig {
    let allow = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "events:PutEvents", "Resource": "*"}]});
    let (_, key) = eddo_local::iam::codebuild_role(&stack.sdk, &stack.authority, "ci-job", &allow)
        .await
        .unwrap();
    eddo_local::moto::sdk_config_for(&moto.endpoint(), &key).await
}

/// What became of a forged signal.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The bus refused the PutEvents (its policy).
    RefusedByTheBus,
    /// The gate rejected it: `Signal Rejected` with this reason.
    Rejected(String),
    /// It reached the gate, which did not count it (ignored, or kept on an image no build
    /// reported), and said nothing.
    NotCounted,
    /// The bus took it, but no rule routes it to the gate (the rule names the sources).
    NotRouted,
}

#[tokio::test(flavor = "multi_thread")]
async fn only_trusted_evidence_opens_the_gate() {
    let w = World::new().await;
    let (c, d) = (commit(1), image(1));
    let other_image = image(99);

    // The service's own build reports commit c as image d: the candidate waits for image-scan
    // and sast.
    w.put(
        &w.stack.sdk,
        "default",
        "aws.codebuild",
        "CodeBuild Build State Change",
        &build(&w, "eddo-build", &c, Some(&d), REPO, &[]),
    )
    .await
    .unwrap();
    assert_eq!(w.pump().await, 1);
    let before = w.candidate(&c).await;
    let record = before
        .iter()
        .find(|i| i["sk"].as_s().is_ok_and(|sk| sk == &c))
        .expect("the build made a candidate");
    assert_eq!(record["digest"].as_s().unwrap(), &d);
    assert!(w.gate_events().await.is_empty());

    // ECR scanned another image (one the build did not report), and one with criticals.
    for (i, counts) in [
        (&other_image, json!({"MEDIUM": 1})),
        (&image(97), json!({"CRITICAL": 2})),
    ] {
        eddo_local::ecr::scanned(&w.stack.sdk, SERVICE, i, &counts, None)
            .await
            .unwrap();
    }

    let bus = w.stack.bus.clone();
    let semgrep_sast = reported(&c, "sast", json!({}));
    // Each row: who, on which bus, as which source and detail-type, what; and what must happen.
    let rows: Vec<(&str, &SdkConfig, &str, &str, &str, Value, Outcome)> = vec![
        (
            "a CI role puts the scanner's listed source",
            &w.forger,
            bus.as_str(),
            "com.example.semgrep",
            "Scan Completed",
            json!({"service": SERVICE, "commit_sha": c, "scanner": "semgrep", "kind": "sast", "passed": true, "image_digest": other_image}),
            Outcome::RefusedByTheBus,
        ),
        (
            "a CI role speaks as the webhook (a check run)",
            &w.forger,
            bus.as_str(),
            "eddo.webhook",
            "Check Run Completed",
            json!({"provider": "github", "event": "check_run", "repository": {"full_name": REPO, "name": "Hello-World"}, "check": {"kind": "check_run", "name": "CodeQL", "app": "github-actions", "conclusion": "success", "head_sha": c}}),
            Outcome::RefusedByTheBus,
        ),
        (
            "a CI role speaks as the webhook (a signed sender's signal)",
            &w.forger,
            bus.as_str(),
            "eddo.webhook",
            "Signal Reported",
            json!({"sender": "chatops", "service": SERVICE, "commit_sha": c, "kind": "approval", "passed": true, "by": "mallory"}),
            Outcome::RefusedByTheBus,
        ),
        (
            "a CI role speaks as the gate",
            &w.forger,
            bus.as_str(),
            "eddo.gate",
            "Deployment Started",
            json!({"service": SERVICE, "commit_sha": c}),
            Outcome::RefusedByTheBus,
        ),
        (
            "a CI role invents an eddo source",
            &w.forger,
            bus.as_str(),
            "eddo.signals",
            "Signal Reported",
            reported(&c, "sast", json!({})),
            Outcome::RefusedByTheBus,
        ),
        (
            "a CI role asks, as the control plane, for a tenant's offboarding",
            &w.forger,
            bus.as_str(),
            "com.example.control-plane",
            "Tenant Offboarding Requested",
            json!({"tenant_id": "acme"}),
            Outcome::RefusedByTheBus,
        ),
        (
            "a CI role reports sast from a source of its own",
            &w.forger,
            bus.as_str(),
            "acme.scanner",
            "Signal Reported",
            reported(&c, "sast", json!({})),
            // Any source but eddo's, AWS's and the tenant contracts' is a signal source: only a
            // role tagged with it may put it, whether or not a policy names it.
            Outcome::RefusedByTheBus,
        ),
        (
            "the listed sender claims a signed sender's name",
            &w.sender,
            bus.as_str(),
            "com.example.semgrep",
            "Signal Reported",
            reported(&c, "sast", json!({"sender": "chatops"})),
            Outcome::Rejected(
                "an event from com.example.semgrep names a signed sender, which only the webhook may".into(),
            ),
        ),
        (
            "the scanner's role puts the chat tool's source (an approval)",
            &w.sender,
            bus.as_str(),
            "com.example.chatops",
            "Signal Reported",
            json!({"service": SERVICE, "commit_sha": c, "kind": "approval", "passed": true, "by": "mallory"}),
            Outcome::RefusedByTheBus,
        ),
        (
            "the scanner's role puts Trivy's source (a pass)",
            &w.sender,
            bus.as_str(),
            "com.example.trivy",
            "Signal Reported",
            reported(&c, "image-scan", json!({"image_digest": d})),
            Outcome::RefusedByTheBus,
        ),
        (
            "the approval source reports sast",
            &w.chatops,
            bus.as_str(),
            "com.example.chatops",
            "Signal Reported",
            reported(&c, "sast", json!({})),
            Outcome::Rejected(
                "sast from source com.example.chatops does not count for hello-world".into(),
            ),
        ),
        (
            "the scanner reports sast about another image",
            &w.sender,
            bus.as_str(),
            "com.example.semgrep",
            "Signal Reported",
            reported(&c, "sast", json!({"image_digest": other_image})),
            Outcome::Rejected(format!("sast: about image {other_image}, but hello-world")),
        ),
        (
            "the scanner reports build",
            &w.sender,
            bus.as_str(),
            "com.example.semgrep",
            "Signal Reported",
            reported(&c, "build", json!({})),
            Outcome::Rejected("build is reported by hello-world's build project only".into()),
        ),
        (
            "the image scanner reports the built image for another commit",
            &w.trivy,
            bus.as_str(),
            "com.example.trivy",
            "Signal Reported",
            reported(&commit(2), "image-scan", json!({"image_digest": d})),
            Outcome::Rejected(format!(
                "image-scan: reported for commit {}, but image {d} was built from {c}",
                commit(2)
            )),
        ),
        (
            "a pass of the built image that ECR never scanned",
            &w.stack.sdk,
            "default",
            "aws.ecr",
            "ECR Image Scan",
            ecr_scan(&d, &c),
            Outcome::Rejected("image-scan: not confirmed by ECR".into()),
        ),
        (
            "a scan event whose counts ECR contradicts",
            &w.stack.sdk,
            "default",
            "aws.ecr",
            "ECR Image Scan",
            ecr_scan(&image(97), &c),
            Outcome::Rejected(format!(
                "image-scan: not confirmed by ECR: it counts CRITICAL 2 for {}, the event MEDIUM 1",
                image(97)
            )),
        ),
        (
            "ECR scans another image tagged with the commit",
            &w.stack.sdk,
            "default",
            "aws.ecr",
            "ECR Image Scan",
            ecr_scan(&other_image, &c),
            Outcome::NotCounted,
        ),
        (
            "a build of another repository reports the commit",
            &w.stack.sdk,
            "default",
            "aws.codebuild",
            "CodeBuild Build State Change",
            build(&w, "eddo-sast", &c, None, "someone/else", &[]),
            Outcome::Rejected(
                "built someone/else, which is not a repository of hello-world".into(),
            ),
        ),
        (
            "a state change of a build CodeBuild never ran",
            &w.stack.sdk,
            "default",
            "aws.codebuild",
            "CodeBuild Build State Change",
            forged_build("eddo-sast", &c, None),
            Outcome::Rejected(
                "not confirmed by CodeBuild: it knows no build eddo-sast:forged".into(),
            ),
        ),
        (
            "a build started on another commit, its variables naming this one",
            &w.stack.sdk,
            "default",
            "aws.codebuild",
            "CodeBuild Build State Change",
            build(&w, "eddo-sast", &commit(3), None, REPO, &[("EDDO_COMMIT_SHA", &c)]),
            // It counts for the commit CodeBuild built, and changes nothing of this one.
            Outcome::NotCounted,
        ),
    ];
    for (who, sdk, bus, source, detail_type, detail, expected) in rows {
        let put = w.put(sdk, bus, source, detail_type, &detail).await;
        let outcome = match put {
            Err(why) => {
                assert!(
                    why.contains("explicit deny in a resource-based policy"),
                    "{who}: {why}"
                );
                Outcome::RefusedByTheBus
            }
            Ok(_) => {
                let delivered = w.pump().await;
                let events = w.gate_events().await;
                match events.as_slice() {
                    [] if delivered == 0 => Outcome::NotRouted,
                    [] => Outcome::NotCounted,
                    [e] if e["detail-type"] == "Signal Rejected" => {
                        Outcome::Rejected(e["detail"]["reason"].as_str().unwrap().to_string())
                    }
                    other => panic!("{who}: {other:#?}"),
                }
            }
        };
        match (&outcome, &expected) {
            (Outcome::Rejected(got), Outcome::Rejected(want)) => {
                assert!(got.contains(want.as_str()), "{who}: {got}")
            }
            _ => assert_eq!(outcome, expected, "{who}"),
        }
        assert_eq!(w.deploys(), 0, "{who}: nothing started");
        assert_eq!(
            w.candidate(&c).await,
            before,
            "{who}: the candidate is unchanged"
        );
    }

    // The gate's own guards, past the bus and the rules: an event the rule would never route
    // (an unlisted source) or the bus would refuse, invoked on the gate binary directly.
    for (who, source, detail_type, detail, says) in [
        (
            "an unlisted source",
            "acme.scanner",
            "Scan Completed",
            json!({"service": SERVICE, "commit_sha": c, "scanner": "acme", "kind": "sast", "passed": true}),
            "sast from source acme.scanner does not count for hello-world",
        ),
        (
            "a signed sender the policy does not name for sast",
            "eddo.webhook",
            "Signal Reported",
            json!({"sender": "chatops", "service": SERVICE, "commit_sha": c, "kind": "sast", "passed": true}),
            "sast from signed sender chatops does not count",
        ),
        (
            "the webhook's source without a verified sender",
            "eddo.webhook",
            "Scan Completed",
            json!({"service": SERVICE, "commit_sha": c, "scanner": "x", "kind": "sast", "passed": true}),
            "an eddo.webhook signal without its verified sender",
        ),
        (
            "a listed source's signal with a 200 KB unknown key",
            "com.example.semgrep",
            "Scan Completed",
            json!({"service": SERVICE, "commit_sha": c, "scanner": "semgrep", "kind": "sast", "passed": true, "k".repeat(200 * 1024): 1}),
            "(cut: ",
        ),
    ] {
        let event = json!({"id": format!("direct-{who}"), "source": source, "detail-type": detail_type, "detail": detail, "time": "2026-12-01T00:00:00Z"});
        let out = w.gate.invoke(&event).await.unwrap();
        let answer = out.outcome.json().unwrap_or_default();
        assert!(
            answer["outcome"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{who}: {answer}"
        );
        let events = w.gate_events().await;
        assert_eq!(events.len(), 1, "{who}: one Signal Rejected");
        assert_eq!(w.candidate(&c).await, before, "{who}");
    }
    // A check of the right name by another app counts for nobody (ignored, nothing said).
    w.check_run("forged-check", &c, "evil-app", Some("main"))
        .await;
    assert!(w.gate_events().await.is_empty());
    assert_eq!(w.candidate(&c).await, before);
    // A check run named CodeQL by GitHub Actions: any workflow job of that name makes one, and
    // the policy counts only workflow runs of its pinned file.
    w.check_run("any-job-named-codeql", &c, "github-actions", Some("main"))
        .await;
    // A workflow run named CodeQL of another file (one anyone who can push a branch can add).
    w.workflow_run(
        "other-file",
        &c,
        ".github/workflows/fake.yml",
        "push",
        Some("main"),
    )
    .await;
    // The right workflow, from a fork's pull request (no branch of the repository): it counts
    // for no service, which deploy from their own branches only.
    w.workflow_run("fork-run", &c, CODEQL, "pull_request", None)
        .await;
    assert!(w.gate_events().await.is_empty());
    assert_eq!(w.candidate(&c).await, before);

    // Positive controls, each through the path its real sender takes.
    // sast: the CodeQL workflow run of the pinned file on the service's repository and branch,
    // a signed GitHub delivery through the webhook binary.
    w.workflow_run("codeql-1", &c, CODEQL, "push", Some("main"))
        .await;
    assert_eq!(
        w.ledger(&c).await,
        [
            ("build".into(), "CodeBuild project eddo-build".into(), true),
            (
                "sast".into(),
                format!("check CodeQL by github-actions from {CODEQL}"),
                true
            )
        ]
    );
    // image-scan: ECR's scan of the image the build reported. The set is complete: one deploy.
    eddo_local::ecr::scanned(&w.stack.sdk, SERVICE, &d, &json!({"MEDIUM": 1}), None)
        .await
        .unwrap();
    w.put(
        &w.stack.sdk,
        "default",
        "aws.ecr",
        "ECR Image Scan",
        &ecr_scan(&d, "latest"),
    )
    .await
    .unwrap();
    w.pump().await;
    w.pump().await;
    assert_eq!(w.deploys(), 1, "{}", w.gate.logs().join("\n"));
    let started: Vec<Value> = w
        .gate_events()
        .await
        .into_iter()
        .filter(|e| e["detail-type"] == "Deployment Started")
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["detail"]["image_digest"], d);

    // The IAM path: the listed role reports sast from the scanner's source; the signed path:
    // chatops approves through /signals/chatops. Both recorded, with their senders.
    let c2 = commit(2);
    w.put(
        &w.sender,
        &bus,
        "com.example.semgrep",
        "Signal Reported",
        &semgrep_sast,
    )
    .await
    .unwrap();
    w.put(
        &w.sender,
        &bus,
        "com.example.semgrep",
        "Signal Reported",
        &reported(&c2, "sast", json!({})),
    )
    .await
    .unwrap();
    let (status, answer) = post_signal(
        w.url.addr(),
        "chatops",
        LOCAL_CHATOPS_KEY,
        "approve-c2",
        &json!({"service": SERVICE, "commit_sha": c2, "kind": "approval", "passed": true, "by": "alice"}),
    )
    .await
    .unwrap();
    assert_eq!(status, 202, "{answer}\n{}", w.webhook.logs().join("\n"));
    w.pump().await;
    w.pump().await;
    assert_eq!(
        w.ledger(&c2).await,
        [
            ("approval".into(), "signed sender chatops".into(), true),
            ("sast".into(), "source com.example.semgrep".into(), true)
        ]
    );
    // The same signed delivery again is a duplicate: nothing published twice.
    let (status, answer) = post_signal(
        w.url.addr(),
        "chatops",
        LOCAL_CHATOPS_KEY,
        "approve-c2",
        &json!({"service": SERVICE, "commit_sha": c2, "kind": "approval", "passed": true, "by": "alice"}),
    )
    .await
    .unwrap();
    assert_eq!(status, 202);
    assert!(answer.contains("duplicate"), "{answer}");
    // A key that is not chatops's opens nothing.
    let (status, _) = post_signal(
        w.url.addr(),
        "chatops",
        eddo_local::stack::LOCAL_STANDARD_SECRET,
        "approve-c3",
        &json!({"service": SERVICE, "commit_sha": commit(3), "kind": "approval", "passed": true, "by": "mallory"}),
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
}
