//! A version that was rolled back is known bad: the gate does not deploy that commit again
//! unless an approval of it says so, and says why when it refuses.

use crate::harness::gate::*;
use eddo::history::{Version, VersionKind};
use eddo::idempotency::now_epoch;
use eddo::names::ServiceName;
use serde_json::{Value, json};

/// alarm-rollback's record of a rollback that replaced `bad`, now.
async fn rolled_back(s: &Setup, bad: &str) {
    rolled_back_at(s, bad, now_epoch()).await
}

/// alarm-rollback's record of a rollback that replaced `bad` at `at` (as its rollback build's
/// success writes it: the history, and the mark an approval must be newer than).
async fn rolled_back_at(s: &Setup, bad: &str, at: u64) {
    let service = ServiceName::parse("hello-world").unwrap();
    let v = Version {
        commit: sha(1),
        digest: None,
        build_id: format!("eddo-rollback:{bad}:{at}"),
        at,
        kind: VersionKind::Rollback,
        correlation_id: None,
        replaced: Some(bad.to_string()),
        started_at: None,
    };
    aws_sdk_dynamodb::Client::new(&s.stack.sdk)
        .transact_write_items()
        .transact_items(
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .update(eddo::history::go_live(&s.stack.table, &service, &v).unwrap())
                .build(),
        )
        .transact_items(
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .update(
                    eddo::history::known_bad_mark(&s.stack.table, &service, bad, at, &v.build_id)
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// chatops's signed approval of `commit`, as the webhook publishes it.
/// chatops's approval (or rejection) of `commit`, said at a later time than the last one.
fn approval(commit: &str, passed: bool) -> Value {
    static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let at = 1_800_000_000 + CLOCK.fetch_add(60, std::sync::atomic::Ordering::Relaxed);
    json!({"id": id(), "time": eddo::time::rfc3339(at), "source": "eddo.webhook", "detail-type": "Signal Reported", "detail": {
        "metadata": {"schema_version": "1.0", "correlation_id": "c", "causation_id": "c"},
        "sender": "chatops", "service": "hello-world", "commit_sha": commit, "kind": "approval",
        "passed": passed, "by": "alice"}})
}

async fn complete(s: &Setup, commit: &str, image: &str) {
    s.handle(&s.build("eddo-build", commit, "SUCCEEDED", Some(image)))
        .await;
    s.handle(&s.build("eddo-sast", commit, "SUCCEEDED", None))
        .await;
    s.handle(
        &s.scanned(commit, image, serde_json::from_str(CLEAN).unwrap())
            .await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_commit_deploys_again_only_on_an_approval_of_it() {
    let s = setup("known-bad", None).await;
    let (bad, image) = (sha(500), digest(500));
    complete(&s, &bad, &image).await;
    assert_eq!(s.deploys().len(), 1);
    let done = s.deploy_finished(&bad, "SUCCEEDED");
    s.handle(&done).await;
    s.published().await;

    // An alarm rolls it back.
    rolled_back(&s, &bad).await;

    // Someone builds it again: not deployed, and the gate says why.
    let r = s
        .handle(&s.build("eddo-build", &bad, "SUCCEEDED", Some(&image)))
        .await;
    assert_eq!(r.published, ["Signal Rejected"], "{r:?}");
    let said = s.published().await;
    assert!(
        said[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("is known bad (a rollback replaced it, or a required signal failed after its deployment started): it deploys again only with an approval of this commit"),
        "{said:#?}"
    );
    assert_eq!(s.deploys().len(), 1);

    // A rejection changes nothing; an approval of it deploys it again, once, with a new token.
    s.handle(&approval(&bad, false)).await;
    assert_eq!(s.deploys().len(), 1);
    s.published().await;
    let r = s.handle(&approval(&bad, true)).await;
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    s.handle(&approval(&bad, true)).await;
    let deploys = s.deploys();
    assert_eq!(deploys.len(), 2, "deployed again, once");
    assert_ne!(deploys[0].idempotency_token, deploys[1].idempotency_token);
    assert_eq!(deploys[1].env("EDDO_IMAGE_DIGEST"), Some(image.as_str()));
    let started = s.published().await;
    assert_eq!(started.len(), 1, "{started:#?}");
    let evidence: Vec<&str> = started[0]["detail"]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["signal"].as_str().unwrap())
        .collect();
    assert!(evidence.contains(&"approval"), "{evidence:?}");

    // It is rolled back again; the approval, sent again from the bus's archive, is refused.
    let replayed = {
        let mut e = approval(&bad, true);
        e["replay-name"] = json!("eddo-archive-replay");
        e
    };
    let done = s.deploy_finished(&bad, "SUCCEEDED");
    s.handle(&done).await;
    rolled_back(&s, &bad).await;
    s.published().await;
    let r = s.handle(&replayed).await;
    assert_eq!(r.published, ["Signal Rejected"], "{r:?}");
    let said = s.published().await;
    assert!(
        said[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("sent again by the archive replay eddo-archive-replay"),
        "{said:#?}"
    );
    assert_eq!(s.deploys().len(), 2, "not deployed a third time");

    // Rolled back once more, later than any approval so far: an approval given before it (a
    // chat tool sending its old approval again, under a new id) is used up.
    let later = 1_900_000_000;
    rolled_back_at(&s, &bad, later).await;
    let r = s.handle(&approval(&bad, true)).await;
    assert_eq!(r.published, ["Signal Rejected"], "{r:?}");
    let said = s.published().await;
    let reason = said[0]["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "became known bad at {} (eddo-rollback:{bad}:{later}), after this approval",
            eddo::time::rfc3339(later)
        )),
        "{reason}"
    );
    assert_eq!(s.deploys().len(), 2, "the old approval deploys nothing");
    // An approval given after it deploys it, once more.
    let mut newer = approval(&bad, true);
    newer["time"] = json!(eddo::time::rfc3339(later + 60));
    let r = s.handle(&newer).await;
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    assert_eq!(s.deploys().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_bad_commit_that_completes_its_signals_is_blocked_saying_why() {
    let s = setup("known-bad-new", None).await;
    // The rollback is recorded while the commit's candidate is still waiting (another service's
    // history cannot do it; this one's can, through its own rollback).
    let (bad, image) = (sha(600), digest(600));
    s.handle(&s.build("eddo-build", &bad, "SUCCEEDED", Some(&image)))
        .await;
    rolled_back(&s, &bad).await;
    s.handle(&s.build("eddo-sast", &bad, "SUCCEEDED", None))
        .await;
    let r = s
        .handle(
            &s.scanned(&bad, &image, serde_json::from_str(CLEAN).unwrap())
                .await,
        )
        .await;
    assert_eq!(r.published, ["Deployment Blocked"], "{r:?}");
    let blocked = s.published().await;
    assert!(
        blocked[0]["detail"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("is known bad"),
        "{blocked:#?}"
    );
    assert!(s.deploys().is_empty());
    // Its approval deploys it.
    let r = s.handle(&approval(&bad, true)).await;
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    assert_eq!(s.deploys().len(), 1);
}

/// A decided candidate is kept for DECIDED_DAYS, longer than any evidence counts: a later signal
/// keeps its lifetime, it is never decided again, and a signal older than that lifetime replayed
/// from the archive (which could find the record gone) is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_decided_commit_outlives_any_evidence_and_is_never_decided_again() {
    let s = setup("kept", None).await;
    let (c, image) = (sha(700), digest(700));
    s.handle(&s.build("eddo-build", &c, "SUCCEEDED", Some(&image)))
        .await;
    let expires = |s: &Setup| {
        let (client, table, c) = (
            aws_sdk_dynamodb::Client::new(&s.stack.sdk),
            s.stack.table.clone(),
            c.clone(),
        );
        async move {
            let item = client
                .get_item()
                .table_name(table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S("candidate#hello-world".into()),
                )
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(c))
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            item["expires_at"].clone()
        }
    };
    // Waiting: it expires (a number of epoch seconds) if nothing decides it.
    assert!(expires(&s).await.as_n().is_ok());
    complete(&s, &c, &image).await;
    assert_eq!(s.deploys().len(), 1);
    // Decided: kept DECIDED_DAYS, and a later signal keeps it so.
    let kept = expires(&s).await;
    let until: u64 = kept.as_n().unwrap().parse().unwrap();
    let lifetime = eddo_scan_gate::store::DECIDED_DAYS * 86_400;
    assert!(until >= now_epoch() + lifetime - 60, "{until}");
    complete(&s, &c, &image).await;
    assert_eq!(expires(&s).await, kept);
    assert_eq!(s.deploys().len(), 1, "never decided again");
    // Evidence older than the lifetime, replayed from the archive, counts for nothing.
    let mut old = s.build("eddo-sast", &sha(701), "SUCCEEDED", None);
    old["time"] = json!(eddo::time::rfc3339(now_epoch() - lifetime - 86_400));
    old["replay-name"] = json!("a-year-on");
    let r = s.handle(&old).await;
    assert_eq!(r.published, ["Signal Rejected"], "{r:?}");
    let said = s.published().await;
    let rejected = said.last().unwrap();
    assert!(
        rejected["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("older than the 400 days"),
        "{rejected:#}"
    );
}

/// A required signal that fails after the deployment started (ECR rescans the image and finds a
/// critical) is said late, and marks the commit known bad in the service's history: a new build
/// of it is refused, and an approval cannot clear a commit whose evidence still fails.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_the_deploy_started_marks_the_commit_known_bad() {
    let s = setup("known-bad-late", None).await;
    let (c, image) = (sha(700), digest(700));
    complete(&s, &c, &image).await;
    assert_eq!(s.deploys().len(), 1);
    s.published().await;
    let r = s
        .handle(&s.scanned(&c, &image, json!({"CRITICAL": 1})).await)
        .await;
    assert_eq!(r.published, ["Late Signal Failed"], "{r:?}");
    // What the table holds: the service's history lists the commit as known bad.
    let item = crate::harness::table_item(&s.stack, "service#hello-world", "history")
        .await
        .expect("the service's history");
    let bad = item["rolled_back"].as_ss().unwrap();
    assert_eq!(bad, std::slice::from_ref(&c));
    // The deploy finishes; then a new build of the commit: refused, saying why.
    s.handle(&s.deploy_finished(&c, "SUCCEEDED")).await;
    s.published().await;
    let r = s
        .handle(&s.build("eddo-build", &c, "SUCCEEDED", Some(&image)))
        .await;
    assert!(r.outcome.contains("is known bad"), "{r:?}");
    // An approval: refused too, naming the failure that stands.
    let r = s.handle(&approval(&c, true)).await;
    assert!(
        r.outcome.contains(
            "was approved after it became known bad, but: image-scan: CRITICAL 1 > 0 allowed"
        ),
        "{r:?}"
    );
    assert_eq!(s.deploys().len(), 1, "never deployed again");
}
