//! Every GitHub payload in `../shared/corpus/github/`, signed and sent through the handler's
//! checks, answers 2xx and produces exactly the expected event.
//!
//! The expected events are a snapshot (`tests/snapshots/github.json`); after an intended change,
//! `EDDO_UPDATE_SNAPSHOTS=1 cargo test -p eddo-webhook --test corpus` rewrites it, and the diff is
//! reviewed like code. The key payloads are also checked field by field below.

mod common;

use std::collections::BTreeMap;

use common::*;
use eddo_webhook::normalise::Normalised;
use eddo_webhook::{Config, accept, outgoing, precheck};
use serde_json::{Value, json};

/// What a delivery produced: the answer and, when published, the entry.
fn run(cfg: &Config, event: &str, delivery: &str, body: &str) -> Value {
    let req = github_request(event, delivery, body);
    let (provider, bytes) = precheck(&req, cfg.max_body_bytes).expect("precheck");
    let accepted = match accept(provider, &req.headers, &bytes, &secrets(), cfg, 0) {
        Ok(a) => a,
        Err(reply) => return json!({"status": reply.status, "error": reply.body["error"]}),
    };
    match accepted.outcome {
        Normalised::Ping => json!({"status": 200}),
        Normalised::Ignored(reason) => json!({"status": 202, "ignored": reason}),
        Normalised::Publish(detail_type, ev) => {
            let entry = outgoing(detail_type, *ev, cfg.common.max_entry_bytes).expect("fits");
            json!({
                "status": 202,
                "source": entry.source,
                "detail-type": entry.detail_type,
                "detail": serde_json::from_str::<Value>(&entry.detail).unwrap(),
            })
        }
    }
}

#[test]
fn every_github_payload_produces_the_expected_event() {
    let cfg = config(&[]);
    let mut actual = BTreeMap::new();
    for (event, file, body) in github_payloads() {
        let key = format!("{event}/{file}");
        let out = run(&cfg, &event, "72d3162e-cc78-11e3-81ab-4c9367dc0958", &body);
        let status = out["status"].as_u64().unwrap();
        assert!((200..300).contains(&status), "{key} answered {out}");
        actual.insert(key, out);
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/github.json");
    let rendered = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    if std::env::var_os("EDDO_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    let expected: BTreeMap<String, Value> = serde_json::from_str(&read(&path)).unwrap();
    let mut problems = Vec::new();
    for (key, out) in &actual {
        match expected.get(key) {
            Some(want) if want == out => {}
            Some(want) => problems.push(format!("{key}:\n  expected {want}\n  actual   {out}")),
            // A payload added to the corpus since the snapshot: it answered 2xx above; record it.
            None => {
                eprintln!("note: {key} has no snapshot yet (EDDO_UPDATE_SNAPSHOTS=1 records it)")
            }
        }
    }
    for key in expected.keys().filter(|k| !actual.contains_key(*k)) {
        eprintln!("note: snapshot {key} no longer in the corpus");
    }
    assert!(
        problems.is_empty(),
        "{} payloads changed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn forwarding_everything_publishes_each_payload_once_with_its_raw_body() {
    let cfg = config(&[("EDDO_WEBHOOK_FORWARD", "github:*")]);
    let mut generic = 0;
    for (event, file, body) in github_payloads() {
        let out = run(&cfg, &event, "d-1", &body);
        if event == "ping" {
            assert_eq!(out["status"], 200);
            continue;
        }
        if out.get("ignored").is_some() {
            // Only actions of normalised events are ignored, never a whole event type.
            assert!(
                [
                    "pull_request",
                    "release",
                    "check_run",
                    "check_suite",
                    "workflow_run"
                ]
                .contains(&event.as_str()),
                "{event}/{file} ignored: {out}"
            );
            continue;
        }
        assert_eq!(out["source"], "eddo.webhook", "{event}/{file}");
        if out["detail-type"] == "Git Provider Event" {
            generic += 1;
            let raw = &out["detail"]["raw"];
            assert_eq!(
                raw,
                &serde_json::from_str::<Value>(&body).unwrap(),
                "{event}/{file}: raw payload altered"
            );
            assert_eq!(out["detail"]["event"], event.as_str());
        }
    }
    assert!(generic > 150, "only {generic} generic events");
}

fn body(path: &str) -> String {
    read(&corpus().join("github").join(path))
}

#[test]
fn branch_push() {
    let out = run(
        &config(&[]),
        "push",
        "d-push",
        &body("push/with-new-branch.payload.json"),
    );
    let d = &out["detail"];
    assert_eq!(out["detail-type"], "Git Push");
    assert_eq!(d["provider"], "github");
    assert_eq!(d["delivery_id"], "d-push");
    let mut metadata = d["metadata"].clone();
    let key = metadata
        .as_object_mut()
        .unwrap()
        .remove("event_key")
        .unwrap();
    assert_eq!(
        metadata,
        json!({"schema_version": eddo::event::SCHEMA_VERSION, "correlation_id": "d-push", "causation_id": "d-push"})
    );
    assert_eq!(key.as_str().unwrap().len(), 32, "{key}");
    assert!(d["branch"].is_string() && d["tag"].is_null(), "{d}");
    assert_eq!(
        d["ref"].as_str().unwrap(),
        format!("refs/heads/{}", d["branch"].as_str().unwrap())
    );
    assert_eq!(d["commit_sha"].as_str().unwrap().len(), 40);
    assert_eq!(d["push"]["created"], true);
    assert!(d.get("raw").is_none());
}

#[test]
fn tag_push_and_deletion() {
    let src: Value = serde_json::from_str(&body("push/payload.json")).unwrap();
    // The corpus's push/payload.json deletes the tag simple-tag.
    let out = run(&config(&[]), "push", "d-del", &src.to_string());
    assert_eq!(out["detail-type"], "Git Ref Deleted");
    assert_eq!(out["detail"]["tag"], "simple-tag");
    assert_eq!(out["detail"]["commit_sha"], Value::Null);
    assert_eq!(out["detail"]["action"], "deleted");
    // The same push, creating the tag instead.
    let mut created = src.clone();
    created["deleted"] = json!(false);
    created["created"] = json!(true);
    created["before"] = json!("0000000000000000000000000000000000000000");
    created["after"] = json!("6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    let out = run(&config(&[]), "push", "d-tag", &created.to_string());
    assert_eq!(out["detail-type"], "Git Push");
    assert_eq!(out["detail"]["tag"], "simple-tag");
    assert_eq!(out["detail"]["branch"], Value::Null);
    assert_eq!(
        out["detail"]["commit_sha"],
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    );
    assert_eq!(out["detail"]["push"]["before"], Value::Null);
}

#[test]
fn pull_request_actions() {
    let cfg = config(&[]);
    let opened = run(
        &cfg,
        "pull_request",
        "d",
        &body("pull_request/opened.payload.json"),
    );
    assert_eq!(opened["detail-type"], "Pull Request");
    assert_eq!(opened["detail"]["action"], "opened");
    assert_eq!(opened["detail"]["pull_request"]["number"], 2);
    assert_eq!(
        opened["detail"]["branch"],
        opened["detail"]["pull_request"]["head_ref"]
    );
    assert_eq!(
        opened["detail"]["commit_sha"],
        opened["detail"]["pull_request"]["head_sha"]
    );

    let sync = run(
        &cfg,
        "pull_request",
        "d",
        &body("pull_request/synchronize.payload.json"),
    );
    assert_eq!(sync["detail"]["action"], "synchronized");

    let closed = run(
        &cfg,
        "pull_request",
        "d",
        &body("pull_request/closed.payload.json"),
    );
    assert_eq!(closed["detail"]["action"], "closed");
    assert_eq!(closed["detail"]["pull_request"]["merged"], false);

    // No corpus payload is a merge; the closed one, merged.
    let mut merged: Value =
        serde_json::from_str(&body("pull_request/closed.payload.json")).unwrap();
    merged["pull_request"]["merged"] = json!(true);
    merged["pull_request"]["merge_commit_sha"] = json!("c4295bd74fb0f4fda03689c3df3f2803b658fd85");
    let merged = run(&cfg, "pull_request", "d", &merged.to_string());
    assert_eq!(merged["detail"]["action"], "merged");
    assert_eq!(
        merged["detail"]["commit_sha"],
        "c4295bd74fb0f4fda03689c3df3f2803b658fd85"
    );
    assert_eq!(
        merged["detail"]["branch"],
        merged["detail"]["pull_request"]["base_ref"]
    );

    let labeled = run(
        &cfg,
        "pull_request",
        "d",
        &body("pull_request/labeled.payload.json"),
    );
    assert_eq!(labeled["status"], 202);
    assert!(labeled["ignored"].as_str().unwrap().contains("labeled"));

    let null_body = run(
        &cfg,
        "pull_request",
        "d",
        &body("pull_request/opened.with-null-body.json"),
    );
    assert_eq!(null_body["detail"]["action"], "opened");
}

#[test]
fn release_check_and_workflow_runs() {
    let cfg = config(&[]);
    let rel = run(
        &cfg,
        "release",
        "d",
        &body("release/published.payload.json"),
    );
    assert_eq!(rel["detail-type"], "Release");
    assert_eq!(rel["detail"]["tag"], "0.0.1");
    assert_eq!(
        rel["detail"]["release"]["url"],
        "https://github.com/Codertocat/Hello-World/releases/tag/0.0.1"
    );

    let run_ = run(
        &cfg,
        "check_run",
        "d",
        &body("check_run/completed.payload.json"),
    );
    assert_eq!(run_["detail-type"], "Check Run Completed");
    assert_eq!(run_["detail"]["check"]["name"], "Octocoders-linter");
    assert_eq!(run_["detail"]["check"]["conclusion"], "success");
    assert_eq!(
        run_["detail"]["commit_sha"],
        "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    );
    assert_eq!(run_["detail"]["branch"], "changes");

    let created = run(
        &cfg,
        "check_run",
        "d",
        &body("check_run/created.payload.json"),
    );
    assert!(created.get("ignored").is_some(), "{created}");

    let suite = run(
        &cfg,
        "check_suite",
        "d",
        &body("check_suite/completed.payload.json"),
    );
    assert_eq!(suite["detail-type"], "Check Suite Completed");
    assert_eq!(suite["detail"]["check"]["kind"], "check_suite");

    let wf = run(
        &cfg,
        "workflow_run",
        "d",
        &body("workflow_run/completed.payload.json"),
    );
    assert_eq!(wf["detail-type"], "Workflow Run Completed");
    assert_eq!(wf["detail"]["check"]["id"], 289782451);
    assert_eq!(wf["detail"]["check"]["conclusion"], "success");
    assert_eq!(wf["detail"]["branch"], "master");
}

#[test]
fn a_form_encoded_delivery_is_the_same_event() {
    let json_body = body("push/with-new-branch.payload.json");
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json_body)
        .finish();
    let sig = eddo_webhook::signature::github_signature(GITHUB_SECRET.as_bytes(), form.as_bytes());
    let req = request(
        "POST",
        "/github",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-github-event", "push"),
            ("x-github-delivery", "d-form"),
            ("x-hub-signature-256", &sig),
        ],
        &form,
    );
    let cfg = config(&[]);
    let (p, bytes) = precheck(&req, cfg.max_body_bytes).unwrap();
    let Normalised::Publish(dt, ev) = accept(p, &req.headers, &bytes, &secrets(), &cfg, 0)
        .unwrap()
        .outcome
    else {
        panic!("not published")
    };
    let from_form = outgoing(dt, *ev, cfg.common.max_entry_bytes).unwrap();
    let from_json = run(&cfg, "push", "d-form", &json_body);
    assert_eq!(
        serde_json::from_str::<Value>(&from_form.detail).unwrap(),
        from_json["detail"]
    );
}

#[test]
fn a_raw_payload_over_the_limit_is_left_out_and_said() {
    let cfg = config(&[
        ("EDDO_WEBHOOK_FORWARD", "github:*"),
        ("EDDO_MAX_ENTRY_BYTES", "4096"),
    ]);
    let big = body("pull_request_review_comment/created.with-organization.payload.json");
    assert!(big.len() > 4096);
    let out = run(&cfg, "pull_request_review_comment", "d-big", &big);
    assert_eq!(out["status"], 202);
    assert_eq!(out["detail-type"], "Git Provider Event");
    assert!(out["detail"].get("raw").is_none());
    assert_eq!(out["detail"]["raw_omitted"]["reason"], "size");
    assert_eq!(out["detail"]["raw_omitted"]["limit_bytes"], 4096);
    assert!(out["detail"]["raw_omitted"]["raw_bytes"].as_u64().unwrap() > 4096);
    assert!(out["detail"]["repository"]["full_name"].is_string());
}

/// A `deployment_protection_rule` delivery as GitHub sends it. GitHub publishes no example of
/// one (neither its docs nor octokit/webhooks), so it is assembled from real parts: the
/// `deployment`, `repository`, `sender` and `installation` of the corpus's real `deployment`
/// delivery, and the fields octokit/webhooks' schema for the event adds
/// (`payload-schemas/api.github.com/deployment_protection_rule/requested.schema.json` at
/// 7d7f38b2ae8f16b2bb8ef1c481583d2f63e38717: action, environment, event,
/// deployment_callback_url), with no field that schema does not allow.
fn protection_rule(callback: &str) -> String {
    let real: Value =
        serde_json::from_str(&body("deployment/with-installation.payload.json")).unwrap();
    let delivery = json!({
        "action": "requested",
        "environment": "production",
        "event": "push",
        "deployment_callback_url": callback,
        "deployment": real["deployment"],
        "pull_requests": [],
        "repository": real["repository"],
        "sender": real["sender"],
        "installation": real["installation"],
    });
    let allowed = [
        "action",
        "environment",
        "event",
        "deployment_callback_url",
        "deployment",
        "pull_requests",
        "repository",
        "sender",
        "installation",
        "organization",
    ];
    assert!(
        delivery
            .as_object()
            .unwrap()
            .keys()
            .all(|k| allowed.contains(&k.as_str()))
    );
    delivery.to_string()
}

#[test]
fn a_deployment_protection_rule_names_its_environment_run_and_commit() {
    let cfg = config(&[]);
    let url = "https://api.github.com/repos/Codertocat/Hello-World/actions/runs/30433642/deployment_protection_rule";
    let out = run(
        &cfg,
        "deployment_protection_rule",
        "d",
        &protection_rule(url),
    );
    assert_eq!(out["status"], 202, "{out}");
    assert_eq!(out["detail-type"], "Deployment Protection Rule");
    assert_eq!(
        out["detail"]["commit_sha"],
        "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    );
    assert_eq!(
        out["detail"]["repository"]["full_name"],
        "Codertocat/Hello-World"
    );
    assert_eq!(
        out["detail"]["protection_rule"],
        json!({"environment": "production", "run_id": 30433642, "trigger": "push"})
    );
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../infra/schemas/deployment-protection-rule.schema.json");
    let schema: Value = serde_json::from_str(&read(&schema)).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&out["detail"])
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // The repository by id, as GitHub's own routes name it: the same run.
    let by_id = "https://api.github.com/repositories/186853002/actions/runs/30433642/deployment_protection_rule";
    let out = run(
        &cfg,
        "deployment_protection_rule",
        "d",
        &protection_rule(by_id),
    );
    assert_eq!(
        out["detail"]["protection_rule"]["run_id"], 30433642,
        "{out}"
    );

    // A callback naming another repository (or none) is not this delivery's to answer: a clear
    // 400, nothing published.
    for wrong in [
        "https://api.github.com/repos/someone/else/actions/runs/30433642/deployment_protection_rule",
        "https://api.github.com/repositories/1/actions/runs/30433642/deployment_protection_rule",
        "https://api.github.com/repos/Codertocat/Hello-World/actions/runs/0/deployment_protection_rule",
        "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
        "not a url",
    ] {
        let out = run(
            &cfg,
            "deployment_protection_rule",
            "d",
            &protection_rule(wrong),
        );
        assert_eq!(out["status"], 400, "{wrong}: {out}");
        assert!(
            out["error"]
                .as_str()
                .unwrap()
                .contains("deployment_callback_url"),
            "{out}"
        );
    }
}
