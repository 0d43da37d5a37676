//! Every event shape the gate receives, from the real corpus (AWS samples, and the GitHub
//! payloads as the webhook publishes them), read against a policy naming the corpus's projects,
//! repositories and checks.

use std::collections::BTreeMap;
use std::path::Path;

use eddo::policy::{Policy, Severity, SignalKind};
use eddo_local::demo::corpus;
use eddo_local::routing::corpus_events;
use eddo_scan_gate::decide::Verdict;
use eddo_scan_gate::signal::{Incoming, Reading, Scanner, Subject, read, read_recorded};
use serde_json::{Value, json};

const POLICY: &str = r#"
version: 1
services:
  sample:
    repositories: [Codertocat/Hello-World]
    branches: [master, changes]
    projects: {build: my-sample-project, deploy: sample-deploy}
    image_repository: tribble-image-scan-test
    gate:
      require: [build, image-scan, sast]
      senders: {sast: [{check: Octocoders-linter, app: github-actions, any_workflow: true}]}
      deadline_minutes: 30
  ecs-sample:
    repositories: [octo-org/octo-repo]
    branches: [master]
    projects: {build: ecs-build, deploy: ecs-deploy}
    image_repository: amazon/amazon-ecs-sample
    gate:
      require: [build, image-scan, sast]
      senders: {sast: [{check: test, app: github-actions, any_workflow: true}], contract: [{sender: contract-check}, {source: com.example.ci}]}
      deadline_minutes: 30
  other:
    repositories: [acme/other]
    branches: [main]
    projects: {build: other-build, deploy: other-deploy}
    image_repository: my-repository-name
    gate: {require: [build, image-scan], deadline_minutes: 10}
"#;

fn policy() -> Policy {
    Policy::parse(POLICY).unwrap()
}

fn aws(name: &str) -> Value {
    let text = std::fs::read_to_string(corpus().join("aws").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The corpus GitHub payloads as the webhook publishes them, as EventBridge events.
fn github() -> BTreeMap<String, Value> {
    corpus_events(&corpus())
        .unwrap()
        .into_iter()
        .filter(|e| !e.on_default_bus)
        .map(|e| {
            let detail: Value = serde_json::from_str(&e.detail).unwrap();
            let event = json!({"id": format!("id-{}", e.name), "source": e.source, "detail-type": e.detail_type, "detail": detail});
            (e.name, event)
        })
        .collect()
}

fn signal(incoming: Incoming) -> eddo_scan_gate::signal::Signal {
    match incoming {
        Incoming::Signals(mut s) => {
            assert_eq!(s.len(), 1);
            s.remove(0)
        }
        other => panic!("not one signal: {other:?}"),
    }
}

#[test]
fn a_codebuild_state_change_is_a_build_signal_of_its_commit() {
    let p = policy();
    let mut e = aws("codebuild-build-state-change.json");
    // An event is a notification: a finished build counts only as CodeBuild describes it.
    assert!(matches!(read(&p, &e), Incoming::Confirm(b) if b.project == "my-sample-project"));
    // As recorded (its commit the source version): the sample's is a name, not a commit.
    let why = rejected(read_recorded(&p, &e));
    assert!(
        why.contains("the commit CodeBuild resolved \"my-source-version\" is not a full commit id"),
        "{why}"
    );
    e["detail"]["additional-information"]["source-version"] =
        json!("6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    // Started by something other than eddo's push rule: no repository or branch, no service.
    let why = rejected(read_recorded(&p, &e));
    assert!(why.contains("names no repository and branch"), "{why}");
    e["detail"]["additional-information"]["environment"]["environment-variables"] = json!([
        {"name": "EDDO_REPOSITORY", "value": "Codertocat/Hello-World", "type": "PLAINTEXT"},
        {"name": "EDDO_BRANCH", "value": "master", "type": "PLAINTEXT"}
    ]);
    let s = signal(read_recorded(&p, &e));
    assert_eq!(s.kind, SignalKind::Build);
    assert_eq!(s.service.as_str(), "sample");
    assert!(matches!(&s.subject, Subject::Commit(c) if c.short() == "6113728"));
    assert_eq!(s.evidence.event_id, "c030038d-8c4d-6141-9545-00ff7b7153EX");
    assert!(matches!(
        &s.reading,
        Reading::Verdict(Verdict::Passed { .. })
    ));

    // The same build failing names the project, the phase and the logs.
    e["detail"]["build-status"] = json!("FAILED");
    e["detail"]["additional-information"]["phases"][6]["phase-status"] = json!("FAILED");
    let s = signal(read_recorded(&p, &e));
    let Reading::Verdict(Verdict::Failed { reasons }) = &s.reading else {
        panic!("{s:?}")
    };
    assert!(reasons[0].starts_with("build: my-sample-project build FAILED in phase BUILD (logs: https://console.aws.amazon.com/cloudwatch/"), "{reasons:?}");

    // In progress, or another team's project: not for the gate, and not an error.
    e["detail"]["build-status"] = json!("IN_PROGRESS");
    assert!(matches!(read(&p, &e), Incoming::Ignored(_)));
    e["detail"]["project-name"] = json!("not-ours");
    assert!(
        matches!(read(&p, &e), Incoming::Ignored(why) if why.contains("not-ours is not in the policy"))
    );
}

#[test]
fn ecr_and_inspector_scans_carry_their_counts_absent_severities_zero() {
    let p = policy();
    let s = signal(read(&p, &aws("ecr-image-scan.json")));
    assert_eq!(
        (s.kind, s.service.as_str()),
        (SignalKind::ImageScan, "sample")
    );
    let Reading::Counts { counts, scanner } = &s.reading else {
        panic!()
    };
    assert_eq!(counts[&Severity::Critical], 10);
    assert_eq!(counts[&Severity::Low], 3);
    assert_eq!(
        scanner,
        &Scanner::Ecr {
            repository: "tribble-image-scan-test".into()
        }
    );
    assert!(
        matches!(&s.subject, Subject::Image { digest: d, .. } if d.as_str().ends_with("c3435fc5355"))
    );

    // Two samples carry placeholder digests (60 hex digits, `...EXAMPLE`): a real scan names its
    // image exactly, so those are refused, naming the digest; with a real digest they read.
    let real = format!("sha256:{}", "7f5b2640".repeat(8));
    let mut e = aws("ecr-image-scan-missing-severities.json");
    assert!(
        matches!(read(&p, &e), Incoming::Rejected(why) if why.contains("its image-digest \"sha256:7f5b2640fe6f"))
    );
    e["detail"]["image-digest"] = json!(real);
    let s = signal(read(&p, &e));
    assert_eq!(s.service.as_str(), "other");
    let Reading::Counts { counts, .. } = &s.reading else {
        panic!()
    };
    assert_eq!(
        counts.get(&Severity::High),
        None,
        "absent is zero, not an error"
    );
    assert_eq!(counts[&Severity::Critical], 10);

    let mut e = aws("inspector2-scan.json");
    assert!(matches!(read(&p, &e), Incoming::Rejected(why) if why.contains("EXAMPLE")));
    e["detail"]["image-digest"] = json!(real);
    let s = signal(read(&p, &e));
    assert_eq!(
        s.service.as_str(),
        "ecs-sample",
        "the repository ARN is read as its name"
    );
    let Reading::Counts { counts, scanner } = &s.reading else {
        panic!()
    };
    assert_eq!(counts.len(), 3, "TOTAL is not a severity: {counts:?}");
    assert_eq!(counts[&Severity::High], 61);
    assert!(
        matches!(scanner, Scanner::Inspector { repository_arn } if repository_arn.starts_with("arn:aws:ecr:us-east-2"))
    );

    // A failed scan is a failed signal.
    let mut failed = aws("ecr-image-scan.json");
    failed["detail"]["scan-status"] = json!("FAILED");
    let s = signal(read(&p, &failed));
    assert!(
        matches!(&s.reading, Reading::Verdict(Verdict::Failed { reasons }) if reasons[0].contains("ended FAILED"))
    );
}

#[test]
fn github_checks_named_in_the_policy_are_the_sast_signal() {
    let p = policy();
    let g = github();
    let failed = signal(read(&p, &g["github/check_run/completed.1.payload.json"]));
    assert_eq!(failed.kind, SignalKind::Sast);
    assert!(
        matches!(&failed.subject, Subject::Commit(c) if c.as_str() == "ec26c3e57ca3a959ca5aad62de7213c562f8c821")
    );
    assert!(
        matches!(&failed.reading, Reading::Verdict(Verdict::Failed { reasons }) if reasons == &["sast: Octocoders-linter check failed"])
    );
    assert_eq!(
        failed.evidence.sender,
        "check Octocoders-linter by github-actions"
    );
    let wf = signal(read(&p, &g["github/workflow_run/completed.payload.json"]));
    assert_eq!(wf.service.as_str(), "ecs-sample");
    assert!(matches!(
        &wf.reading,
        Reading::Verdict(Verdict::Passed { .. })
    ));

    // The same check name run by another app (this sample's octocoders-linter) counts for
    // nobody: anyone can name a check, only the app is proven by the delivery.
    assert!(matches!(
        read(&p, &g["github/check_run/completed.payload.json"]),
        Incoming::Ignored(why) if why.contains("check Octocoders-linter by octocoders-linter")
    ));
    // A check the policy does not name is not a signal.
    let other =
        Policy::parse(&POLICY.replace("check: Octocoders-linter", "check: CodeQL")).unwrap();
    assert!(matches!(
        read(&other, &g["github/check_run/completed.1.payload.json"]),
        Incoming::Ignored(_)
    ));
    // The service's own repository only: the same check on another repository is nobody's.
    let mut moved = g["github/check_run/completed.1.payload.json"].clone();
    moved["detail"]["repository"]["full_name"] = json!("Codertocat/Other");
    assert!(matches!(read(&p, &moved), Incoming::Ignored(_)));
}

#[test]
fn every_corpus_event_is_read_without_panicking_and_each_rejection_says_why() {
    let p = policy();
    let mut seen = BTreeMap::new();
    let dir = corpus().join("aws");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let e: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kind = match read(&p, &e) {
            Incoming::Signals(_) => "signal".to_string(),
            Incoming::Rejected(why) => {
                assert!(why.len() > 20, "{name}: {why}");
                "rejected".into()
            }
            Incoming::Ignored(_) => "ignored".into(),
            other => format!("{other:?}"),
        };
        seen.insert(name, kind);
    }
    for (name, e) in github() {
        let out = read(&p, &e);
        match e["detail-type"].as_str() {
            Some("Check Run Completed" | "Workflow Run Completed") => {}
            // A push to a branch a service deploys from: when its commit was made.
            Some("Git Push") => assert!(
                matches!(&out, Incoming::Pushed(p) if p.iter().all(|p| p.committed_at > 0)),
                "{name}: {out:?}"
            ),
            _ => assert!(matches!(out, Incoming::Rejected(_)), "{name}: {out:?}"),
        }
    }
    assert_eq!(seen["ecr-image-scan.json"], "signal");
    assert_eq!(
        seen["inspector2-scan.json"], "rejected",
        "its digest is a placeholder"
    );
    assert_eq!(seen["inspector2-finding.json"], "rejected");
    assert_eq!(seen["cloudwatch-alarm-state-change.json"], "rejected");
}

#[test]
fn the_contract_examples_validate_and_read_as_signals() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let example =
        Policy::parse(&std::fs::read_to_string(root.join("infra/policy/example.yaml")).unwrap())
            .unwrap();
    for (file, schema, kind) in [
        (
            "scan-completed.json",
            "scan-completed.schema.json",
            SignalKind::Sast,
        ),
        (
            "deployment-approval.json",
            "deployment-approval.schema.json",
            SignalKind::Approval,
        ),
        (
            "signal-reported.json",
            "signal-reported.schema.json",
            SignalKind::Sast,
        ),
    ] {
        let event: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("infra/examples/events").join(file)).unwrap(),
        )
        .unwrap();
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("infra/schemas/contracts").join(schema)).unwrap(),
        )
        .unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        assert!(v.is_valid(&event["detail"]), "{file}");
        let s = signal(read(&example, &event));
        assert_eq!(s.kind, kind);
        assert!(
            matches!(&s.reading, Reading::Verdict(Verdict::Passed { .. })),
            "{s:?}"
        );
    }
    // An unknown service is rejected with its name: a permanent error, reported once.
    let mut e: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("infra/examples/events/scan-completed.json")).unwrap(),
    )
    .unwrap();
    e["detail"]["service"] = json!("payments");
    assert!(
        matches!(read(&example, &e), Incoming::Rejected(why) if why.contains("service \"payments\", which is not in the policy"))
    );
}

#[test]
fn the_example_policy_is_valid_against_its_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("infra/policy/example.yaml")).unwrap();
    Policy::parse(&text).expect("the example parses");
    // The schema checks the document as written.
    let yaml: Value = serde_json::from_str(&yaml_to_json(&text)).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("infra/policy/policy.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&yaml)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut bad = yaml.clone();
    bad["services"]["hello-world"]["gate"]["require"] = json!(["Not A Signal"]);
    assert!(!v.is_valid(&bad));
}

fn yaml_to_json(text: &str) -> String {
    let v: serde_norway::Value = serde_norway::from_str(text).unwrap();
    serde_json::to_string(&v).unwrap()
}

const COMMIT: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

fn reported(source: &str, detail: Value) -> Value {
    json!({"id": "r-1", "source": source, "detail-type": "Signal Reported", "detail": detail})
}

fn rejected(incoming: Incoming) -> String {
    match incoming {
        Incoming::Rejected(why) => why,
        other => panic!("not rejected: {other:?}"),
    }
}

#[test]
fn a_reported_signal_counts_only_from_a_sender_the_policy_names_for_its_kind() {
    let p = policy();
    let contract = |extra: Value| {
        let mut d = json!({"service": "ecs-sample", "commit_sha": COMMIT, "kind": "contract", "passed": true, "by": "oasdiff"});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    };
    // Signed: the webhook names the sender it verified.
    let s = signal(read(
        &p,
        &reported(
            "eddo.webhook",
            contract(json!({"sender": "contract-check"})),
        ),
    ));
    assert_eq!(s.kind, SignalKind::Named("contract".into()));
    assert_eq!(s.evidence.sender, "signed sender contract-check");
    // IAM: a source the policy names (the bus lets only the listed roles put it).
    let s = signal(read(&p, &reported("com.example.ci", contract(json!({})))));
    assert_eq!(s.evidence.sender, "source com.example.ci");

    for (source, detail, says) in [
        // Another signed sender, or one the webhook did not name.
        (
            "eddo.webhook",
            contract(json!({"sender": "chatops"})),
            "contract from signed sender chatops does not count for ecs-sample: its policy accepts signed sender contract-check, source com.example.ci",
        ),
        (
            "eddo.webhook",
            contract(json!({})),
            "without its verified sender",
        ),
        // A tool claiming a signed sender's name: only the webhook may.
        (
            "com.example.ci",
            contract(json!({"sender": "contract-check"})),
            "only the webhook may",
        ),
        // A source the policy does not name.
        (
            "com.example.other",
            contract(json!({})),
            "contract from source com.example.other does not count",
        ),
        // eddo's and AWS's sources do not report signals.
        (
            "eddo.gate",
            contract(json!({})),
            "eddo.gate does not report signals",
        ),
        (
            "aws.codebuild",
            contract(json!({})),
            "aws.codebuild does not report signals",
        ),
        // The right sender for another kind.
        (
            "com.example.ci",
            contract(json!({"kind": "sast"})),
            "sast from source com.example.ci does not count",
        ),
        // Build comes from the build project only.
        (
            "com.example.ci",
            contract(json!({"kind": "build"})),
            "build is reported by ecs-sample's build project only",
        ),
        // A reported scan names the image it scanned.
        (
            "com.example.ci",
            contract(json!({"kind": "image-scan"})),
            "does not count",
        ),
    ] {
        let why = rejected(read(&p, &reported(source, detail.clone())));
        assert!(why.contains(says), "{source} {detail}: {why}");
    }
}

#[test]
fn a_build_of_another_repository_is_not_the_services() {
    let p = policy();
    let mut e = aws("codebuild-build-state-change.json");
    e["detail"]["additional-information"]["source-version"] = json!(COMMIT);
    e["detail"]["additional-information"]["environment"]["environment-variables"] = json!([
        {"name": "EDDO_REPOSITORY", "value": "Codertocat/Hello-World", "type": "PLAINTEXT"},
        {"name": "EDDO_BRANCH", "value": "master", "type": "PLAINTEXT"}
    ]);
    assert_eq!(signal(read_recorded(&p, &e)).kind, SignalKind::Build);
    e["detail"]["additional-information"]["environment"]["environment-variables"][0]["value"] =
        json!("someone/else");
    let why = rejected(read_recorded(&p, &e));
    assert!(
        why.contains("built someone/else, which is not a repository of sample"),
        "{why}"
    );
}

#[test]
fn a_scan_without_a_digest_names_no_image() {
    let p = policy();
    let mut e = aws("ecr-image-scan.json");
    e["detail"].as_object_mut().unwrap().remove("image-digest");
    let why = rejected(read(&p, &e));
    assert!(why.contains("without an image digest"), "{why}");
}
