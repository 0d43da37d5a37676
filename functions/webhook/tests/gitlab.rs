//! GitLab deliveries: the secret token, the signing token, and each event eddo normalises.

mod common;

use common::*;
use eddo_webhook::normalise::Normalised;
use eddo_webhook::secrets::{SecretSet, WebhookSecrets};
use eddo_webhook::{accept, outgoing, precheck};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gitlab")
            .join(name),
    )
}

fn deliver(event: &str, body: &str) -> Value {
    let req = request(
        "POST",
        "/gitlab",
        &[
            ("x-gitlab-event", event),
            ("x-gitlab-token", GITLAB_TOKEN),
            ("idempotency-key", "9d1e1f3b-0c1a-4d0e-9c56-1f1d3b3d2a10"),
        ],
        body,
    );
    let cfg = config(&[]);
    let (p, bytes) = precheck(&req, cfg.max_body_bytes).unwrap();
    match accept(p, &req.headers, &bytes, &secrets(), &cfg, 0)
        .unwrap()
        .outcome
    {
        Normalised::Publish(dt, ev) => {
            let entry = outgoing(dt, *ev, cfg.common.max_entry_bytes).unwrap();
            json!({"detail-type": dt.as_str(), "detail": serde_json::from_str::<Value>(&entry.detail).unwrap()})
        }
        Normalised::Ignored(r) => json!({"ignored": r}),
        Normalised::Ping => json!({"ping": true}),
    }
}

#[test]
fn push() {
    let out = deliver("Push Hook", &fixture("push.json"));
    let d = &out["detail"];
    assert_eq!(out["detail-type"], "Git Push");
    assert_eq!(d["provider"], "gitlab");
    assert_eq!(d["delivery_id"], "9d1e1f3b-0c1a-4d0e-9c56-1f1d3b3d2a10");
    assert_eq!(d["branch"], "master");
    assert_eq!(d["commit_sha"], "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
    assert_eq!(d["actor"], "jsmith");
    assert_eq!(d["repository"]["full_name"], "mike/diaspora");
    assert_eq!(d["repository"]["private"], true);
    assert_eq!(d["push"]["commit_count"], 4);
    assert_eq!(d["push"]["head_commit_message"], "fixed readme");
}

#[test]
fn tag_push() {
    let out = deliver("Tag Push Hook", &fixture("tag_push.json"));
    assert_eq!(out["detail-type"], "Git Push");
    assert_eq!(out["detail"]["tag"], "v1.0.0");
    assert_eq!(out["detail"]["branch"], Value::Null);
    assert_eq!(out["detail"]["action"], "created");
}

#[test]
fn merge_request_update_with_new_commits_is_synchronized() {
    let out = deliver("Merge Request Hook", &fixture("merge_request_update.json"));
    assert_eq!(out["detail-type"], "Pull Request");
    assert_eq!(out["detail"]["action"], "synchronized");
    assert_eq!(out["detail"]["pull_request"]["number"], 1);
    assert_eq!(out["detail"]["branch"], "ms-viewport");
    assert_eq!(
        out["detail"]["commit_sha"],
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    );

    let mut merged: Value = serde_json::from_str(&fixture("merge_request_update.json")).unwrap();
    merged["object_attributes"]["action"] = json!("merge");
    merged["object_attributes"]["state"] = json!("merged");
    merged["object_attributes"]["merge_commit_sha"] =
        json!("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567");
    let out = deliver("Merge Request Hook", &merged.to_string());
    assert_eq!(out["detail"]["action"], "merged");
    assert_eq!(out["detail"]["branch"], "master");
    assert_eq!(
        out["detail"]["commit_sha"],
        "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    );

    let mut edited: Value = serde_json::from_str(&fixture("merge_request_update.json")).unwrap();
    edited["object_attributes"]
        .as_object_mut()
        .unwrap()
        .remove("oldrev");
    assert!(
        deliver("Merge Request Hook", &edited.to_string())
            .get("ignored")
            .is_some()
    );
}

#[test]
fn pipeline_completion() {
    let out = deliver("Pipeline Hook", &fixture("pipeline_failed.json"));
    assert_eq!(out["detail-type"], "Workflow Run Completed");
    assert_eq!(out["detail"]["check"]["kind"], "pipeline");
    assert_eq!(out["detail"]["check"]["conclusion"], "failure");
    assert_eq!(
        out["detail"]["commit_sha"],
        "bcbb5ec396a2c0f828686f14fac9b80b780504f2"
    );

    let mut running: Value = serde_json::from_str(&fixture("pipeline_failed.json")).unwrap();
    running["object_attributes"]["status"] = json!("running");
    assert!(
        deliver("Pipeline Hook", &running.to_string())
            .get("ignored")
            .is_some()
    );
}

#[test]
fn release() {
    let out = deliver("Release Hook", &fixture("release_create.json"));
    assert_eq!(out["detail-type"], "Release");
    assert_eq!(out["detail"]["action"], "published");
    assert_eq!(out["detail"]["tag"], "v1.1");
    assert_eq!(
        out["detail"]["commit_sha"],
        "ee0a3fb31ac16e11b9dbb596ad16d4af654d08f8"
    );
}

#[test]
fn an_unhandled_event_is_ignored_by_default() {
    let out = deliver("Issue Hook", r#"{"object_kind":"issue","project":null}"#);
    assert!(out["ignored"].as_str().unwrap().contains("Issue Hook"));
}

#[test]
fn a_signing_token_is_required_when_configured() {
    let signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let set = SecretSet {
        versions: vec![WebhookSecrets {
            gitlab_signing: Some(signing.into()),
            ..Default::default()
        }],
    };
    let body = fixture("push.json");
    let ts = 1_750_000_000u64;
    let sig =
        eddo_webhook::signature::standard_signature(signing, "wh-1", ts, body.as_bytes()).unwrap();
    let ts_text = ts.to_string();
    let headers = vec![
        ("x-gitlab-event", "Push Hook"),
        ("webhook-id", "wh-1"),
        ("webhook-timestamp", ts_text.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    let cfg = config(&[]);
    let req = request("POST", "/gitlab", &headers, &body);
    let (p, bytes) = precheck(&req, cfg.max_body_bytes).unwrap();
    let accepted = accept(p, &req.headers, &bytes, &set, &cfg, ts).unwrap();
    // Without Idempotency-Key, the webhook-id identifies the delivery.
    assert_eq!(accepted.delivery_id, "wh-1");
    assert_eq!(accepted.dedupe, "wh-1");
    // GitLab's Idempotency-Key is not signed: a replay under two new keys is still the signed
    // delivery wh-1, deduplicated as one.
    for key in ["replay-a", "replay-b"] {
        let mut replayed = headers.clone();
        replayed.push(("idempotency-key", key));
        let req = request("POST", "/gitlab", &replayed, &body);
        let again = accept(p, &req.headers, &bytes, &set, &cfg, ts).unwrap();
        assert_eq!(again.dedupe, "wh-1", "{key}");
    }
    let unsigned = request("POST", "/gitlab", &headers[..1], &body);
    assert_eq!(
        accept(p, &unsigned.headers, &bytes, &set, &cfg, ts)
            .unwrap_err()
            .status,
        401
    );
    // A token alone does not satisfy a configured signing token.
    let token_only = request(
        "POST",
        "/gitlab",
        &[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "anything"),
        ],
        &body,
    );
    assert_eq!(
        accept(p, &token_only.headers, &bytes, &set, &cfg, ts)
            .unwrap_err()
            .status,
        401
    );
}
