//! The evidence ledger against moto and the CodeBuild stand-in: every admitted signal is its own
//! entry, and no pass erases a failure, whatever order or timing they arrive in; a sender's own
//! rerun replaces its earlier result only where the policy lets reruns count. Each row sends
//! what really arrives (scans parked before their build, two senders of one kind, signals in
//! flight together) and reads what CodeBuild started and the table holds.

use serde_json::{Value, json};

use crate::harness::gate::*;

const REPO_SERVICE: &str = "hello-world";

/// ECR's scan of `image` with `counts`, its event at `time` (epoch seconds).
fn ecr(commit: &str, image: &str, counts: Value, time: u64) -> Value {
    let mut e = scan(commit, image, counts);
    e["time"] = json!(eddo::time::rfc3339(time));
    e
}

/// A signal another tool reports from its listed `source`.
fn reported(source: &str, commit: &str, kind: &str, passed: bool, image: Option<&str>) -> Value {
    let mut d = json!({"service": REPO_SERVICE, "commit_sha": commit, "kind": kind,
        "passed": passed, "by": source});
    if let Some(i) = image {
        d["image_digest"] = json!(i);
    }
    json!({"id": id(), "source": source, "detail-type": "Signal Reported",
        "time": "2026-12-01T00:00:00Z", "detail": d})
}

const T: u64 = 1_800_000_000;

/// What became of one candidate: the deploy builds CodeBuild started for it, and the gate's
/// decision events about it.
async fn outcome(s: &Setup, commit: &str) -> (usize, Vec<String>) {
    let deploys = s
        .deploys()
        .iter()
        .filter(|b| b.env("EDDO_COMMIT_SHA") == Some(commit))
        .count();
    let said = s
        .published()
        .await
        .into_iter()
        .filter(|e| e["detail"]["commit_sha"] == commit)
        .map(|e| e["detail-type"].as_str().unwrap_or_default().to_string())
        .collect();
    (deploys, said)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_pass_erases_a_failure() {
    let s = setup("evidence", None).await;
    // Each row: what it plays, and the signals in the order they arrive (for candidate n).
    type Play = fn(&Setup, &str, &str) -> Vec<Value>;
    let rows: [(&str, Play); 4] = [
        (
            "ECR finds 3 CRITICAL before the build reports the image; Trivy then passes it",
            |s, c, i| {
                vec![
                    ecr(c, i, serde_json::from_str(r#"{"CRITICAL": 3}"#).unwrap(), T),
                    reported("com.example.trivy", c, "image-scan", true, Some(i)),
                    s.build("eddo-build", c, "SUCCEEDED", Some(i)),
                    s.build("eddo-sast", c, "SUCCEEDED", None),
                ]
            },
        ),
        ("the same, Trivy's pass first", |s, c, i| {
            vec![
                reported("com.example.trivy", c, "image-scan", true, Some(i)),
                ecr(c, i, serde_json::from_str(r#"{"CRITICAL": 3}"#).unwrap(), T),
                s.build("eddo-build", c, "SUCCEEDED", Some(i)),
                s.build("eddo-sast", c, "SUCCEEDED", None),
            ]
        }),
        (
            "semgrep fails sast, then the SAST project passes it",
            |s, c, i| {
                vec![
                    s.build("eddo-build", c, "SUCCEEDED", Some(i)),
                    reported("com.example.semgrep", c, "sast", false, None),
                    s.build("eddo-sast", c, "SUCCEEDED", None),
                    ecr(c, i, serde_json::from_str(CLEAN).unwrap(), T),
                ]
            },
        ),
        (
            "the SAST project passes sast, then semgrep fails it",
            |s, c, i| {
                vec![
                    s.build("eddo-build", c, "SUCCEEDED", Some(i)),
                    s.build("eddo-sast", c, "SUCCEEDED", None),
                    reported("com.example.semgrep", c, "sast", false, None),
                    ecr(c, i, serde_json::from_str(CLEAN).unwrap(), T),
                ]
            },
        ),
    ];
    for (n, (what, play)) in rows.iter().enumerate() {
        let (c, i) = (sha(1000 + n as u32), digest(1000 + n as u32));
        for e in play(&s, &c, &i) {
            s.arrives(&e).await;
        }
        let (deploys, said) = outcome(&s, &c).await;
        assert_eq!(deploys, 0, "{what}: nothing deployed");
        assert_eq!(said, ["Deployment Blocked"], "{what}");
        // The ledger holds every sender's evidence, the failure among it.
        let ledger = ledger(&s.stack, REPO_SERVICE, &c).await;
        assert!(
            ledger.iter().any(|(_, _, passed)| !passed),
            "{what}: {ledger:?}"
        );
        assert!(ledger.len() >= 4, "{what}: {ledger:?}");
    }

    // A failure and the last passes, in flight together, again and again: never a deploy.
    for n in 0..6u32 {
        let (c, i) = (sha(1100 + n), digest(1100 + n));
        s.handle(&s.build("eddo-build", &c, "SUCCEEDED", Some(&i)))
            .await;
        let together = [
            s.build("eddo-sast", &c, "SUCCEEDED", None),
            ecr(&c, &i, serde_json::from_str(CLEAN).unwrap(), T),
            reported("com.example.semgrep", &c, "sast", false, None),
        ];
        s.ecr_ran(&together[1]).await;
        let mut tasks = Vec::new();
        for e in together {
            let gate = s.gate.clone();
            tasks.push(tokio::spawn(async move { gate.handle(&e).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (deploys, said) = outcome(&s, &c).await;
        assert_eq!(deploys, 0, "race {n}: nothing deployed");
        assert_eq!(said, ["Deployment Blocked"], "race {n}");
    }
}

/// ECR fails an image, then its rescan passes, both before the build reports it (kept in full,
/// each its own entry): under the example policy the failure blocks; with `reruns: [image-scan]`
/// the scanner's own later result replaces its earlier one and the release deploys, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_senders_own_rerun_counts_only_where_the_policy_says() {
    let example = crate::harness::example_policy();
    let reruns = example.replacen(
        "      deadline_minutes: 30",
        "      deadline_minutes: 30\n      reruns: [image-scan]",
        1,
    );
    assert_ne!(reruns, example);
    for (policy, deploys, said) in [
        (None, 0, "Deployment Blocked"),
        (Some(reruns.as_str()), 1, "Deployment Started"),
    ] {
        let s = setup("evidence-rerun", policy).await;
        let (c, i) = (sha(1200), digest(1200));
        for e in [
            ecr(
                &c,
                &i,
                serde_json::from_str(r#"{"CRITICAL": 3}"#).unwrap(),
                T,
            ),
            ecr(&c, &i, serde_json::from_str(CLEAN).unwrap(), T + 600),
            s.build("eddo-build", &c, "SUCCEEDED", Some(&i)),
            s.build("eddo-sast", &c, "SUCCEEDED", None),
        ] {
            s.arrives(&e).await;
        }
        let (started, events) = outcome(&s, &c).await;
        assert_eq!(
            (started, events.as_slice()),
            (deploys, &[said.to_string()][..]),
            "{policy:?}"
        );
        assert_eq!(
            ledger(&s.stack, REPO_SERVICE, &c)
                .await
                .iter()
                .filter(|(kind, _, _)| kind == "image-scan")
                .count(),
            2,
            "both scans are on the ledger"
        );
    }
}
