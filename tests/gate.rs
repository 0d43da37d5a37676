//! The scan-complete gate against moto and the CodeBuild stand-in: signals in any order, more
//! than once and at once start exactly one deployment; a failing signal blocks with every reason;
//! the deadline times a candidate out; a late failing signal is reported; the deploy project's
//! completion moves the history; a rollback holds deployments; an unknown service is rejected
//! once; a bad policy stops the function at init. Exceptions from the findings list are in
//! `gate_findings.rs`, recovery from a failed StartBuild in `gate_recovery.rs`.
//!
//! Events are the corpus samples with the fields that name this policy's projects, images and
//! commits replaced, so every shape is the real one.

use eddo::idempotency::now_epoch;
use eddo_local::moto::Moto;
use eddo_local::stack::Stack;
use eddo_scan_gate::Gate;
use serde_json::{Value, json};

use crate::harness::gate::*;

#[tokio::test(flavor = "multi_thread")]
async fn signals_in_any_order_and_repeated_start_one_deployment() {
    let s = setup("gate-order", None).await;
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        let commit = sha(n as u32);
        let image = digest(n as u32);
        let events = [
            s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)),
            s.build("eddo-sast", &commit, "SUCCEEDED", None),
            s.scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
                .await,
        ];
        for i in order {
            s.handle(&events[*i]).await;
        }
        // Every signal again, as EventBridge may deliver it: nothing more starts.
        for e in &events {
            s.handle(e).await;
        }
        let deploys: Vec<_> = s
            .deploys()
            .into_iter()
            .filter(|b| b.env("EDDO_COMMIT_SHA") == Some(commit.as_str()))
            .collect();
        assert_eq!(deploys.len(), 1, "order {order:?}");
        let d = &deploys[0];
        assert_eq!(d.env("EDDO_SERVICE"), Some("hello-world"));
        assert_eq!(d.env("EDDO_IMAGE_DIGEST"), Some(image.as_str()));
        assert!(
            d.idempotency_token
                .as_deref()
                .unwrap()
                .starts_with("eddo-deploy-")
        );
    }
    assert_eq!(
        s.stack.codebuild.calls("eddo-deploy"),
        6,
        "one StartBuild per candidate"
    );
    let events = s.published().await;
    let started: Vec<_> = events
        .iter()
        .filter(|e| e["detail-type"] == "Deployment Started")
        .collect();
    assert_eq!(started.len(), 6, "{events:#?}");
    let e = &started[0]["detail"];
    assert_eq!(e["project"], "eddo-deploy");
    assert_eq!(e["policy_version"], 1, "the policy version that decided it");
    assert!(e["build_id"].as_str().unwrap().starts_with("eddo-deploy:"));
    let evidence: Vec<&str> = e["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["signal"].as_str().unwrap())
        .collect();
    assert_eq!(evidence, ["build", "image-scan", "sast"]);
    assert!(
        e["evidence"][1]["summary"]
            .as_str()
            .unwrap()
            .contains("HIGH 1, MEDIUM 4 within policy")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_signals_completing_the_set_start_one_deployment() {
    let s = setup("gate-race", None).await;
    for n in 0..8u32 {
        let commit = sha(100 + n);
        let image = digest(100 + n);
        // Build and SAST first, then the last two signals of the set at the same moment, twice
        // each: four invocations that can each see the set complete.
        s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
            .await;
        let last = [
            s.build("eddo-sast", &commit, "SUCCEEDED", None),
            s.scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
                .await,
        ];
        let mut tasks = Vec::new();
        for e in [&last[0], &last[1], &last[0], &last[1]].map(Value::clone) {
            let gate = s.gate.clone();
            tasks.push(tokio::spawn(async move { gate.handle(&e).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    assert_eq!(s.deploys().len(), 8);
    assert_eq!(
        s.stack.codebuild.calls("eddo-deploy"),
        8,
        "the conditional write decided once: no second StartBuild for the token to absorb"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_signal_blocks_with_every_reason_and_the_deadline_times_out_the_rest() {
    let s = setup("gate-block", None).await;
    let bad = sha(200);
    s.handle(&s.build("eddo-sast", &bad, "FAILED", None)).await;
    let report = s
        .handle(
            &s.scanned(&bad, &digest(200), json!({"CRITICAL": 0, "HIGH": 3}))
                .await,
        )
        .await;
    let blocked = s.published().await;
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    assert_eq!(blocked[0]["detail-type"], "Deployment Blocked");
    // The SAST failure blocked at once; the scan, of an image no build reported, is kept on the
    // image: a tag names no candidate.
    let reasons = blocked[0]["detail"]["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .starts_with("sast: eddo-sast build FAILED in phase BUILD")
    );
    assert!(
        report
            .outcome
            .contains("kept until a build reports its image"),
        "{report:?}"
    );

    // Both failing before any decision: both reasons, in words.
    let worse = sha(201);
    s.handle(&s.build("eddo-build", &worse, "SUCCEEDED", Some(&digest(201))))
        .await;
    s.handle(
        &s.scanned(&worse, &digest(201), json!({"CRITICAL": 0, "HIGH": 3}))
            .await,
    )
    .await;
    let events = s.published().await;
    let reasons: Vec<&str> = events[0]["detail"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    // Over a threshold with exceptions in the policy: the findings list is read (ECR lists
    // none of the excepted findings), and the count stands.
    assert_eq!(reasons, ["image-scan: HIGH 3 > 2 allowed"]);

    // Only the build: after the deadline, timed out naming what is missing.
    let slow = sha(202);
    s.handle(&s.build("eddo-build", &slow, "SUCCEEDED", Some(&digest(202))))
        .await;
    let early = json!({"id": id(), "source": "aws.events", "detail-type": "Scheduled Event", "time": eddo::time::rfc3339(now_epoch() + 60), "detail": {}});
    s.handle(&early).await;
    assert!(s.published().await.is_empty(), "not before the deadline");
    let late = json!({"id": id(), "source": "aws.events", "detail-type": "Scheduled Event", "time": eddo::time::rfc3339(now_epoch() + 31 * 60), "detail": {}});
    s.handle(&late).await;
    s.handle(&late).await;
    let out = s.published().await;
    assert_eq!(out.len(), 1, "timed out once: {out:#?}");
    assert_eq!(out[0]["detail-type"], "Deployment Timed Out");
    assert_eq!(out[0]["detail"]["missing"], json!(["image-scan", "sast"]));
    // A signal after the timeout starts nothing.
    s.handle(&s.build("eddo-sast", &slow, "SUCCEEDED", None))
        .await;
    s.handle(
        &s.scanned(&slow, &digest(202), serde_json::from_str(CLEAN).unwrap())
            .await,
    )
    .await;
    assert!(s.deploys().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_start_a_failing_scan_is_reported_and_completion_moves_the_history() {
    let s = setup("gate-late", None).await;
    let mut live = Vec::new();
    for n in 0..2u32 {
        let commit = sha(300 + n);
        let image = digest(300 + n);
        s.passes(&commit, &image).await;
        if n == 0 {
            // A rescan finds a critical after the deployment started.
            s.handle(&s.scanned(&commit, &image, json!({"CRITICAL": 1})).await)
                .await;
        }
        // A deploy build the gate did not start (someone ran the project by hand): it moves
        // nothing and is not said.
        let foreign = s
            .handle(&s.build("eddo-deploy", &commit, "SUCCEEDED", None))
            .await;
        assert!(foreign.published.is_empty(), "{foreign:?}");
        assert!(
            foreign.outcome.contains("not started by eddo"),
            "{foreign:?}"
        );
        let done = s.deploy_finished(&commit, "SUCCEEDED");
        s.handle(&done).await;
        s.handle(&done).await; // redelivered: the history moves once
        live.push(commit);
    }
    let events = s.published().await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "Late Signal Failed").count(),
        1,
        "{types:?}"
    );
    let late = events
        .iter()
        .find(|e| e["detail-type"] == "Late Signal Failed")
        .unwrap();
    assert_eq!(
        late["detail"]["reasons"][0],
        "image-scan: CRITICAL 1 > 0 allowed"
    );
    assert_eq!(
        s.stack.codebuild.calls("eddo-deploy"),
        2,
        "no second deployment"
    );

    let succeeded: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == "Deployment Succeeded")
        .collect();
    assert_eq!(
        succeeded.len(),
        2,
        "once per deploy, redelivered or not: {types:?}"
    );
    let last = succeeded.last().unwrap();
    assert_eq!(last["detail"]["live"]["commit"], live[1]);
    assert_eq!(last["detail"]["last_known_good"]["commit"], live[0]);
    assert_eq!(last["detail"]["live"]["digest"], digest(301));
}

/// A failure retrying cannot fix (here a candidate record this version cannot read) is reported
/// once, with its reason, and the invocation succeeds: Lambda does not retry it for a day and
/// then dead-letter it.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_a_retry_cannot_fix_is_reported_not_retried() {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let s = setup("gate-permanent", None).await;
    let commit = sha(710);
    aws_sdk_dynamodb::Client::new(&s.stack.sdk)
        .put_item()
        .table_name(&s.stack.table)
        .item("pk", S("candidate#hello-world".into()))
        .item("sk", S(format!("{commit}#evidence#sast#x")))
        .item("entry", S("not a signal".into()))
        .send()
        .await
        .unwrap();
    let event = s.build("eddo-build", &commit, "SUCCEEDED", Some(&digest(710)));
    let r = s.gate.handle(&event).await.expect("reported, not failed");
    assert_eq!(r.published, ["Signal Rejected"], "{r:?}");
    let said = s.published().await;
    assert_eq!(said[0]["detail"]["event_id"], event["id"]);
    assert!(
        said[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "evidence entry {commit}#evidence#sast#x is not readable"
            )),
        "{said:#?}"
    );
}

/// Candidates of a service removed from the policy are closed by the sweep, not skipped: more of
/// them than a sweep reads (the oldest first) never keep another candidate from timing out.
#[tokio::test(flavor = "multi_thread")]
async fn candidates_of_a_service_gone_from_the_policy_do_not_stall_the_sweep() {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let s = setup("gate-stale", None).await;
    let db = aws_sdk_dynamodb::Client::new(&s.stack.sdk);
    let old = now_epoch() - 3600;
    let stale = eddo_scan_gate::SWEEP_PAGE as u32 + 5;
    for n in 0..stale {
        let commit = sha(600 + n);
        db.put_item()
            .table_name(&s.stack.table)
            .item("pk", S("candidate#retired".into()))
            .item("sk", S(commit.clone()))
            .item("service", S("retired".into()))
            .item("state", S("waiting".into()))
            .item("first_at", N(old.to_string()))
            .item("deadline", N(old.to_string()))
            .item("correlation_id", S(format!("retired@{commit}")))
            .item("open_pk", S("open".into()))
            .item("open_sk", S(format!("{old:012}#retired#{commit}")))
            .send()
            .await
            .unwrap();
    }
    let slow = sha(700);
    s.handle(&s.build("eddo-build", &slow, "SUCCEEDED", Some(&digest(700))))
        .await;
    let tick = |minutes: u64| json!({"id": id(), "source": "aws.events", "detail-type": "Scheduled Event", "time": eddo::time::rfc3339(now_epoch() + minutes * 60), "detail": {}});
    s.handle(&tick(31)).await;
    s.handle(&tick(32)).await;
    let out = s.published().await;
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0]["detail-type"], "Deployment Timed Out");
    assert_eq!(out[0]["detail"]["commit_sha"], slow);
    let left = db
        .query()
        .table_name(&s.stack.table)
        .index_name("open-deadline")
        .key_condition_expression("open_pk = :open")
        .expression_attribute_values(":open", S("open".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(left.count(), 0, "every overdue candidate closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_in_progress_holds_the_services_deployments() {
    let s = setup("gate-lock", None).await;
    aws_sdk_dynamodb::Client::new(&s.stack.sdk)
        .put_item()
        .table_name(&s.stack.table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("service#hello-world".into()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("rollback".into()),
        )
        .item(
            "build_id",
            aws_sdk_dynamodb::types::AttributeValue::S("eddo-rollback:42".into()),
        )
        .item(
            "held_until",
            aws_sdk_dynamodb::types::AttributeValue::N((now_epoch() + 600).to_string()),
        )
        .send()
        .await
        .unwrap();
    let commit = sha(400);
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&digest(400))))
        .await;
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    s.handle(
        &s.scanned(&commit, &digest(400), serde_json::from_str(CLEAN).unwrap())
            .await,
    )
    .await;
    let events = s.published().await;
    assert_eq!(events[0]["detail-type"], "Deployment Blocked");
    assert_eq!(
        events[0]["detail"]["reasons"][0],
        "a rollback of hello-world is in progress (eddo-rollback:42); deployments are held until it ends"
    );
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_service_is_rejected_once_and_observe_mode_starts_nothing() {
    let policy = crate::harness::example_policy().replacen("mode: enforce", "mode: observe", 1); // the gate's, not the rollback's
    let s = setup("gate-observe", Some(&policy)).await;
    let mut e: Value = serde_json::from_str(
        &std::fs::read_to_string(
            eddo_local::moto::project_root().join("infra/examples/events/scan-completed.json"),
        )
        .unwrap(),
    )
    .unwrap();
    e["detail"]["service"] = json!("payments");
    let report = s
        .gate
        .handle(&e)
        .await
        .expect("answered, so Lambda does not retry it");
    assert!(report.outcome.starts_with("rejected"), "{report:?}");
    let events = s.published().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail-type"], "Signal Rejected");
    assert!(
        events[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("\"payments\"")
    );

    let commit = sha(500);
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&digest(500))))
        .await;
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    s.handle(
        &s.scanned(&commit, &digest(500), serde_json::from_str(CLEAN).unwrap())
            .await,
    )
    .await;
    let events = s.published().await;
    assert_eq!(events[0]["detail-type"], "Deployment Would Start");
    assert_eq!(events[0]["detail"]["mode"], "observe");
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 0);
}

/// A cold gate whose only policy version has a mistake does not exit at init (a crash loop that
/// would dead-letter even the deadline sweep): the event fails as retryable, naming the mistake;
/// the gate says once, under its own source, which version it refused and why.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_policy_fails_the_real_gates_events_as_retryable_and_is_said_once() {
    use eddo_local::runtime::{LocalFunction, Outcome};
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let sdk = moto.sdk_config().await;
    let stack = Stack::provision(&sdk, "gate-init").await.unwrap();
    let bad =
        crate::harness::example_policy().replace("deadline_minutes: 30", "deadline_minutes: 0");
    stack.put_policy(&bad).await.unwrap();
    let f = LocalFunction::new(stack.spec("scan-gate", &moto.endpoint()).unwrap())
        .await
        .unwrap();
    let tick = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
    for n in 0..2 {
        let out = f.invoke(&tick).await.unwrap();
        assert_eq!(out.cold, n == 0, "the process stays up: no exit at init");
        match out.outcome {
            Outcome::Error {
                error_type,
                message,
            } => {
                assert_eq!(error_type, "eddo.Retryable.NoPolicy");
                assert!(
                    message.contains(
                        "services.hello-world.gate.deadline_minutes: 0 is not between 1 and 1440"
                    ),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let events = crate::harness::published(&stack, "eddo.gate").await;
    assert_eq!(events.len(), 1, "said once: {events:#?}");
    assert_eq!(events[0]["detail-type"], "Policy Rejected");
    let d = &events[0]["detail"];
    assert_eq!(d["function"], "scan-gate");
    assert_eq!(d["version"], 2);
    assert_eq!(d["in_force"], Value::Null);
    assert_eq!(
        d["mistakes"][0]["path"],
        "services.hello-world.gate.deadline_minutes"
    );
    f.stop().await;
}

/// The AWS round trips of each signal: the common path (a signal that does not complete the set)
/// is CodeBuild's confirmation (BatchGetBuilds) for a build's signal, one transaction (its
/// ledger entry, and the candidate counting it) and one query reading the
/// candidate and its ledger back; a build that reports its image adds the image's record and
/// the query for scans parked on it. Deciding adds the conditional transition, the deploy build's
/// record and the published mark, around StartBuild and PutEvents.
#[tokio::test(flavor = "multi_thread")]
async fn aws_round_trips_per_signal() {
    let s = setup("gate-calls", None).await;
    let calls = crate::harness::Calls::default();
    let sdk = &crate::harness::function_sdk(&s.stack, "scan-gate").await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let cb = aws_sdk_codebuild::Client::from_conf(
        aws_sdk_codebuild::config::Builder::from(sdk)
            .endpoint_url(s.stack.codebuild.endpoint())
            .interceptor(calls.clone())
            .build(),
    );
    let eb = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let config = crate::harness::policy_config(&s.stack, "scan-gate");
    let policy = eddo::policy::load(sdk, &config.policy).await.unwrap();
    let gate = Gate::with_publisher(
        &config,
        policy,
        sdk,
        eddo::publish::Publisher::new(
            eb,
            &config.common.event_bus_name,
            config.common.max_entry_bytes,
        ),
    )
    .with_codebuild(cb)
    .with_dynamodb(ddb, &config.common.table_name)
    .with_ecr(aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    ));

    let commit = sha(700);
    let image = digest(700);
    gate.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await
        .unwrap();
    assert_eq!(
        calls.take(),
        [
            "CodeBuild.BatchGetBuilds",
            "DynamoDB.TransactWriteItems",
            "DynamoDB.Query"
        ],
        "a waiting signal: CodeBuild confirms the build, its entry, then the ledger read back"
    );
    gate.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await
        .unwrap();
    assert_eq!(
        calls.take(),
        [
            "CodeBuild.BatchGetBuilds",
            "DynamoDB.TransactWriteItems",
            "DynamoDB.Query",
            "DynamoDB.UpdateItem",
            "DynamoDB.Query"
        ],
        "a build with its image: the signal, the image's record and the scans parked on it"
    );
    gate.handle(
        &s.scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
            .await,
    )
    .await
    .unwrap();
    assert_eq!(
        calls.take(),
        [
            // ECR's own account of the scan (complete, the event's counts).
            "ECR.DescribeImageScanFindings",
            // Which commit built the scanned image: a scan counts for that commit only.
            "DynamoDB.GetItem",
            "DynamoDB.TransactWriteItems",
            "DynamoDB.Query",
            "DynamoDB.TransactWriteItems",
            "CodeBuild.StartBuild",
            "DynamoDB.UpdateItem",
            "EventBridge.PutEvents",
            "DynamoDB.UpdateItem",
        ],
        "the deciding signal"
    );
}
