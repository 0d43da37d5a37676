//! alarm-rollback against moto and the CodeBuild stand-in: an alarm after a deployment rolls the
//! service back once (redelivered, in both shapes, or racing other alarms), the rollback's
//! completion restores the history and releases the hold the gate respects; a failed rollback
//! releases it too; every "no" is a `Rollback Skipped` with its reason; dry-run starts nothing.
//!
//! Alarm events are the corpus samples with the alarm's name, ARN and times replaced, so every
//! shape is the real one.

use std::time::Duration;

use eddo::history::VersionKind;
use eddo::idempotency::now_epoch;
use eddo_alarm_rollback::Rollbacks;
use eddo_local::codebuild::Plan;
use eddo_local::moto::project_root;
use serde_json::{Value, json};

use crate::harness::rollback::*;
use eddo_local::fixtures::{
    SERVICE, alarm, alarm_action as as_action, commit as sha, detail_types as types, sample,
};

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_after_a_deployment_rolls_back_once_and_its_success_restores_the_history() {
    let s = setup("rb-once", None).await;
    let now = now_epoch();
    let (good, bad) = (sha(1), sha(2));
    s.deployed(&good, &bad, now - 600).await;

    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 60);
    s.handle(&fired).await;
    // Redelivered by EventBridge, and delivered again by the alarm's own Lambda action.
    s.handle(&fired).await;
    s.handle(&as_action(&fired)).await;

    let builds = s.rollback_builds();
    assert_eq!(builds.len(), 1, "one rollback");
    let b = &builds[0];
    assert_eq!(b.env("EDDO_SERVICE"), Some(SERVICE));
    assert_eq!(b.env("EDDO_COMMIT_SHA"), Some(good.as_str()));
    assert_eq!(b.env("EDDO_REPLACED_COMMIT_SHA"), Some(bad.as_str()));
    assert_eq!(b.env("EDDO_ALARM_NAME"), Some("hello-world-5xx"));
    assert_eq!(
        b.env("EDDO_CORRELATION_ID"),
        Some(format!("{SERVICE}@{bad}").as_str()),
        "the rollback continues the release's audit trail"
    );
    assert!(b.env("EDDO_IMAGE_DIGEST").unwrap().starts_with("sha256:"));
    assert!(
        b.idempotency_token
            .as_deref()
            .unwrap()
            .starts_with("eddo-rollback-")
    );
    assert_eq!(b.timeout_minutes, 60, "the build cannot outlive its hold");
    assert_eq!(s.held_by().await.as_deref(), Some(b.id.as_str()));

    let events = s.published().await;
    assert_eq!(types(&events), ["Rollback Started"], "said once");
    let d = &events[0]["detail"];
    assert_eq!(d["build_id"], b.id.as_str());
    assert_eq!(d["target"]["commit"], good.as_str());
    assert_eq!(d["replacing"]["commit"], bad.as_str());
    assert_eq!(d["alarm"]["name"], "hello-world-5xx");
    assert_eq!(d["alarm"]["previous_state"], "OK");
    assert_eq!(
        events[0]["detail"]["metadata"]["causation_id"], fired["id"],
        "caused by the alarm's event"
    );

    s.complete_builds().await;
    let events = s.published().await;
    assert_eq!(types(&events), ["Rollback Succeeded"], "said once");
    let d = &events[0]["detail"];
    assert_eq!(d["restored"]["commit"], good.as_str());
    assert_eq!(d["replaced"]["commit"], bad.as_str());
    assert_eq!(d["live"]["kind"], "rollback");
    let h = s.history().await;
    let live = h.live.unwrap();
    assert_eq!(
        (live.commit.as_str(), live.kind, live.replaced.as_deref()),
        (good.as_str(), VersionKind::Rollback, Some(bad.as_str()))
    );
    assert_eq!(
        h.last_known_good.unwrap().commit,
        good,
        "the bad version never becomes good"
    );
    assert_eq!(s.held_by().await, None, "deployments no longer held");
    // The replaced commit is marked known bad, by this rollback, in the table's own item: an
    // approval of it must be newer.
    let mark = crate::harness::table_item(&s.stack, "service#hello-world#known-bad", &bad)
        .await
        .expect("the known-bad mark");
    assert_eq!(mark["marked_by"].as_s().unwrap(), &live.build_id);
    assert_eq!(mark["since"].as_n().unwrap(), &live.at.to_string());

    // A second alarm inside the cooldown: skipped, with every reason.
    s.handle(&alarm("hello-world-5xx", "OK", "ALARM", now_epoch()))
        .await;
    let events = s.published().await;
    assert_eq!(types(&events), ["Rollback Skipped"]);
    let codes = &events[0]["detail"]["codes"];
    assert_eq!(
        codes,
        &json!(["live-is-rollback", "same-version", "cooldown"])
    );
    assert_eq!(
        events[0]["detail"]["reasons"][0],
        format!(
            "the live version {} is itself a rollback (of {}); eddo does not roll back a rollback",
            &good[..7],
            &bad[..7]
        )
    );
    assert_eq!(s.rollback_builds().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_racing_for_one_service_start_one_rollback() {
    let s = setup("rb-race", None).await;
    let now = now_epoch();
    s.deployed(&sha(10), &sha(11), now - 300).await;
    // Two alarms of the service (one by name, one by ARN pattern), each delivered four times
    // in both shapes, all at once.
    let fired = [
        alarm("hello-world-5xx", "OK", "ALARM", now - 30),
        alarm("hello-world-latency", "OK", "ALARM", now - 20),
    ];
    for e in &fired {
        eddo_local::cloudwatch::ran(&s.stack.sdk, e).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let e = if i % 2 == 0 {
            fired[i / 4].clone()
        } else {
            as_action(&fired[i / 4])
        };
        let r = s.rollbacks.clone();
        tasks.push(tokio::spawn(async move { (r.handle(&e).await, e) }));
    }
    // An invocation that met another's lease asks Lambda to retry it; the retry finds the work
    // done and says nothing more.
    for t in tasks {
        if let (Err(err), e) = t.await.unwrap() {
            assert!(matches!(err, eddo::Error::InProgress(_)), "{err}");
            s.handle(&e).await;
        }
    }
    assert_eq!(
        s.stack.codebuild.calls("eddo-rollback"),
        1,
        "one StartBuild"
    );
    let events = s.published().await;
    let mut t = types(&events);
    t.sort();
    assert_eq!(
        t,
        ["Rollback Skipped", "Rollback Started"],
        "one event per alarm change"
    );
    let skipped = events
        .iter()
        .find(|e| e["detail-type"] == "Rollback Skipped")
        .unwrap();
    assert_eq!(skipped["detail"]["reason"], "in-progress");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_rollback_releases_the_hold_and_says_which_build_and_where_its_logs_are() {
    let s = setup("rb-fail", None).await;
    let now = now_epoch();
    let (good, bad) = (sha(20), sha(21));
    s.deployed(&good, &bad, now - 300).await;
    s.stack.codebuild.plan("eddo-rollback", Plan::fail("BUILD"));
    s.handle(&alarm("hello-world-5xx", "OK", "ALARM", now - 10))
        .await;
    let id = s.rollback_builds()[0].id.clone();
    assert_eq!(s.held_by().await.as_deref(), Some(id.as_str()));
    s.complete_builds().await;
    let events = s.published().await;
    assert_eq!(types(&events), ["Rollback Started", "Rollback Failed"]);
    let d = &events[1]["detail"];
    assert_eq!(d["build_id"], id.as_str());
    assert_eq!(d["status"], "FAILED");
    assert_eq!(d["failed_phase"], "BUILD");
    let logs = d["logs_url"].as_str().unwrap();
    assert!(logs.starts_with("https://console.aws.amazon.com/cloudwatch/"));
    assert!(
        d["reason"].as_str().unwrap().starts_with(&format!(
            "the rollback build {id} ended FAILED in phase BUILD (logs: {logs})"
        )),
        "{d}"
    );
    assert_eq!(s.held_by().await, None, "the hold is released");
    let live = s.history().await.live.unwrap();
    assert_eq!(live.commit, bad, "what was live still is");
    assert_eq!(live.kind, VersionKind::Deploy);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_no_is_reported_once_with_its_reason_and_quiet_changes_say_nothing() {
    let s = setup("rb-skips", None).await;
    let now = now_epoch();

    // Before any deployment.
    let before = alarm("hello-world-5xx", "OK", "ALARM", now - 100);
    s.handle(&before).await;
    s.handle(&before).await; // redelivered: reported once
    // An alarm no service names, and one tagged for a service the policy does not have.
    s.handle(&alarm("billing-disk-full", "OK", "ALARM", now - 90))
        .await;
    let mut tagged = alarm("some-alarm", "OK", "ALARM", now - 80);
    tagged["detail"]["tags"] = json!({"eddo:service": "payments"});
    s.handle(&tagged).await;
    // Muted by a mute rule; suppressed by a composite's suppressor.
    let mut muted = alarm("hello-world-5xx", "OK", "ALARM", now - 70);
    muted["detail"]["muteDetail"] = json!({"muteRuleName": "weekend-maintenance"});
    s.handle(&muted).await;
    let mut suppressed = alarm("hello-world-5xx", "OK", "ALARM", now - 60);
    suppressed["detail"]["state"]["actionsSuppressedBy"] = json!("WaitPeriod");
    suppressed["detail"]["state"]["actionsSuppressedReason"] =
        json!("Actions suppressed by WaitPeriod");
    s.handle(&suppressed).await;
    // Something that is not an alarm state change at all.
    s.handle(&json!({"id": "x-1", "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "detail": {"state": "weird"}}))
        .await;

    // Back to OK, a repeat of ALARM, INSUFFICIENT_DATA (the policy ignores it): nothing at all.
    for quiet in [
        alarm("hello-world-5xx", "ALARM", "OK", now - 50),
        alarm("hello-world-5xx", "ALARM", "ALARM", now - 40),
        alarm("hello-world-5xx", "OK", "INSUFFICIENT_DATA", now - 30),
    ] {
        let r = s.handle(&quiet).await;
        assert!(r.published.is_empty(), "{r:?}");
    }

    // Deployed two hours ago: outside the 60-minute bake window.
    s.deployed(&sha(30), &sha(31), now - 7_200).await;
    s.handle(&alarm("hello-world-5xx", "OK", "ALARM", now - 20))
        .await;

    let events = s.published().await;
    let skipped: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["detail-type"], "Rollback Skipped");
            (
                e["detail"]["reason"].as_str().unwrap(),
                e["detail"]["reasons"][0].as_str().unwrap(),
            )
        })
        .collect();
    let expected: &[(&str, &str)] = &[
        ("no-deployment", "no deployment of hello-world is recorded"),
        (
            "unknown-alarm",
            "alarm billing-disk-full is not tagged eddo:service and no service's rollback.alarms names it",
        ),
        (
            "unknown-service",
            "the alarm is tagged eddo:service=payments, which the policy does not name",
        ),
        (
            "muted",
            "the alarm's actions are muted by alarm mute rule weekend-maintenance",
        ),
        (
            "suppressed",
            "the alarm's actions are suppressed (WaitPeriod: Actions suppressed by WaitPeriod)",
        ),
        (
            "unreadable",
            "the event could not be read: not an alarm state change",
        ),
        ("outside-bake-window", "the live version went live at"),
    ];
    assert_eq!(skipped.len(), expected.len(), "{skipped:#?}");
    for ((code, words), (want_code, want_words)) in skipped.iter().zip(expected) {
        assert_eq!(code, want_code);
        assert!(words.starts_with(want_words), "{code}: {words}");
    }
    assert!(s.rollback_builds().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_decides_and_reports_without_rolling_back() {
    let example =
        std::fs::read_to_string(project_root().join("infra/policy/example.yaml")).unwrap();
    // The rollback section's mode is the document's last `mode:`.
    let at = example.rfind("mode: enforce").unwrap();
    let text = format!("{}mode: dry-run{}", &example[..at], &example[at + 13..]);
    let s = setup("rb-dry", Some(&text)).await;
    let now = now_epoch();
    s.deployed(&sha(40), &sha(41), now - 300).await;
    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    s.handle(&fired).await;
    s.handle(&fired).await;
    let events = s.published().await;
    assert_eq!(types(&events), ["Rollback Would Start"]);
    assert_eq!(events[0]["detail"]["mode"], "dry-run");
    assert_eq!(events[0]["detail"]["target"]["commit"], sha(40));
    assert!(s.rollback_builds().is_empty());
    assert_eq!(s.held_by().await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_project_that_refuses_is_reported_and_holds_nothing() {
    // The policy names a project CodeBuild does not have.
    let text = std::fs::read_to_string(project_root().join("infra/policy/example.yaml"))
        .unwrap()
        .replace("rollback: eddo-rollback", "rollback: eddo-rollback-missing");
    let s = setup("rb-refused", Some(&text)).await;
    let now = now_epoch();
    s.deployed(&sha(50), &sha(51), now - 300).await;
    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    s.handle(&fired).await;
    s.handle(&fired).await;
    let events = s.published().await;
    assert_eq!(types(&events), ["Rollback Failed"]);
    let d = &events[0]["detail"];
    assert_eq!(d["status"], "NOT_STARTED");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .starts_with("could not start eddo-rollback-missing: CodeBuild.StartBuild failed"),
        "{d}"
    );
    assert_eq!(s.held_by().await, None);
}

/// The gate holds a service's deployments while its rollback runs: the hold alarm-rollback
/// takes is the one the gate checks, in the same table.
#[tokio::test(flavor = "multi_thread")]
async fn the_gate_holds_deployments_while_a_rollback_runs() {
    let s = setup("rb-gate", None).await;
    let now = now_epoch();
    s.deployed(&sha(60), &sha(61), now - 300).await;
    s.stack.codebuild.plan(
        "eddo-rollback",
        Plan::succeed().lasting(Duration::from_secs(30)),
    );
    s.handle(&alarm("hello-world-5xx", "OK", "ALARM", now - 10))
        .await;
    let held = s.held_by().await.expect("held");
    let config = crate::harness::policy_config(&s.stack, "scan-gate");
    let gate_sdk = crate::harness::function_sdk(&s.stack, "scan-gate").await;
    let policy = eddo::policy::load(&gate_sdk, &config.policy).await.unwrap();
    let gate = eddo_scan_gate::Gate::new(&config, policy, &gate_sdk)
        .with_codebuild(crate::harness::stand_in(&gate_sdk, &s.stack));
    let commit = sha(62);
    let image = format!("sha256:{}", "cd".repeat(32));
    for (project, image) in [("eddo-build", Some(image.as_str())), ("eddo-sast", None)] {
        // Builds that ran in CodeBuild, as the push rule starts them.
        let e = eddo_local::fixtures::ran(
            &s.stack.codebuild,
            project,
            &commit,
            "SUCCEEDED",
            image,
            &format!("{project}-{commit}"),
        );
        gate.handle(&e).await.unwrap();
    }
    let mut scan = sample("ecr-image-scan.json");
    scan["detail"]["repository-name"] = json!("hello-world");
    scan["detail"]["image-digest"] = json!(format!("sha256:{}", "cd".repeat(32)));
    scan["detail"]["image-tags"] = json!([commit]);
    scan["detail"]["finding-severity-counts"] = json!({});
    eddo_local::ecr::ran(&s.stack.sdk, &scan).await.unwrap();
    gate.handle(&scan).await.unwrap();
    let blocked: Vec<Value> = s
        .stack
        .drain(&s.stack.tap_queue, Duration::from_millis(300))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["detail-type"] == "Deployment Blocked")
        .collect();
    assert_eq!(blocked.len(), 1);
    assert_eq!(
        blocked[0]["detail"]["reasons"][0],
        format!(
            "a rollback of hello-world is in progress ({held}); deployments are held until it ends"
        )
    );
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 0);
}

/// A throttled StartBuild (a fault moto cannot produce) fails the invocation and gives the alarm
/// change back; Lambda's retry starts the rollback, once, and says so once.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_start_is_retried_and_rolls_back_once() {
    use aws_smithy_mocks::{RuleMode, mock_client};
    let s = setup("rb-throttle", None).await;
    let now = now_epoch();
    s.deployed(&sha(70), &sha(71), now - 300).await;
    let throttled = crate::harness::throttled_start_build();
    let config = crate::harness::policy_config(&s.stack, "alarm-rollback");
    let sdk = crate::harness::function_sdk(&s.stack, "alarm-rollback").await;
    let policy = eddo::policy::load(&sdk, &config.policy).await.unwrap();
    let failing = Rollbacks::new(&config, policy, &sdk).with_codebuild(mock_client!(
        aws_sdk_codebuild,
        RuleMode::MatchAny,
        [&throttled]
    ));
    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    eddo_local::cloudwatch::ran(&s.stack.sdk, &fired)
        .await
        .unwrap();
    let err = failing.handle(&fired).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        s.held_by().await.as_deref(),
        Some("a rollback being started")
    );
    assert!(s.published().await.is_empty(), "nothing said yet");

    // Lambda's retry, at once: the change was given back, so it need not wait for the lease.
    s.handle(&fired).await;
    s.handle(&fired).await;
    assert_eq!(s.stack.codebuild.calls("eddo-rollback"), 1);
    let events = s.published().await;
    assert_eq!(types(&events), ["Rollback Started"]);
    assert_eq!(
        s.held_by().await.as_deref(),
        Some(s.rollback_builds()[0].id.as_str())
    );
}

/// An invocation died holding the alarm change's lease (its StartBuild throttled, its process
/// killed before it let go). The change's other shape, arriving meanwhile, must not be answered
/// as done: it fails for Lambda to retry, and the retry, once the lease lapsed, starts the
/// rollback. (It was answered "being handled by another invocation", and the rollback never
/// started: the soak's first finding, also met when the claim's own answer was lost.)
#[tokio::test(flavor = "multi_thread")]
async fn a_change_whose_invocation_died_holding_it_is_retried_not_dropped() {
    use aws_smithy_mocks::{RuleMode, mock_client};
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    static CLOCK: AtomicU64 = AtomicU64::new(0);
    fn clock() -> u64 {
        CLOCK.load(SeqCst)
    }
    let s = setup("rb-dead", None).await;
    let now = now_epoch();
    CLOCK.store(now, SeqCst);
    s.deployed(&sha(60), &sha(61), now - 300).await;
    let (sdk, config, policy) = s.as_function("alarm-rollback").await;
    let killed = crate::harness::Faults::default();
    killed.fail("UpdateItem", "SET lease_until = :zero", usize::MAX);
    let throttled = crate::harness::throttled_start_build();
    let dying = Rollbacks::new(&config, policy.clone(), &sdk)
        .with_dynamodb(killed.dynamodb(&sdk), &config.common.table_name)
        .with_codebuild(mock_client!(
            aws_sdk_codebuild,
            RuleMode::MatchAny,
            [&throttled]
        ))
        .with_clock(clock);
    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    eddo_local::cloudwatch::ran(&s.stack.sdk, &fired)
        .await
        .unwrap();
    assert!(dying.handle(&fired).await.unwrap_err().is_retryable());
    assert!(killed.hits() >= 1, "the lease was not let go");

    let healthy = Rollbacks::new(&config, policy, &sdk)
        .with_codebuild(crate::harness::stand_in(&sdk, &s.stack))
        .with_clock(clock);
    let err = healthy.handle(&as_action(&fired)).await.unwrap_err();
    assert!(matches!(err, eddo::Error::InProgress(_)), "{err}");
    assert!(s.rollback_builds().is_empty());
    assert!(s.published().await.is_empty());

    // Lambda's retry, a minute later: the lease lapsed, the rollback starts, once.
    CLOCK.store(now + 60, SeqCst);
    let r = healthy.handle(&as_action(&fired)).await.unwrap();
    assert_eq!(r.published, ["Rollback Started"], "{r:?}");
    healthy.handle(&fired).await.unwrap();
    assert_eq!(s.stack.codebuild.calls("eddo-rollback"), 1);
    assert_eq!(types(&s.published().await), ["Rollback Started"]);
}

/// StartBuild succeeded and recording the rollback failed; the same change then arrives in its
/// other shape (the alarm's own action: another event, no EventBridge id). Nothing starts again:
/// the request is the decision's alone, and the build it started is found, recorded and said
/// once, with the first delivery as its cause. (A request that took the delivery's id met
/// CodeBuild's "same token, other parameters" error and said NOT_STARTED while it ran.)
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_started_whose_record_was_lost_is_found_not_started_again() {
    let s = setup("rb-lost", None).await;
    let now = now_epoch();
    s.deployed(&sha(90), &sha(91), now - 300).await;
    let config = crate::harness::policy_config(&s.stack, "alarm-rollback");
    let sdk = crate::harness::function_sdk(&s.stack, "alarm-rollback").await;
    let policy = eddo::policy::load(&sdk, &config.policy).await.unwrap();
    let lost = crate::harness::Faults::default();
    lost.fail("TransactWriteItems", "settled", usize::MAX);
    let failing = Rollbacks::new(&config, policy, &sdk)
        .with_dynamodb(lost.dynamodb(&sdk), &config.common.table_name)
        .with_codebuild(crate::harness::stand_in(&sdk, &s.stack));
    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    eddo_local::cloudwatch::ran(&s.stack.sdk, &fired)
        .await
        .unwrap();
    let err = failing.handle(&fired).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(lost.hits() >= 1);
    let builds = s.rollback_builds();
    assert_eq!(builds.len(), 1, "StartBuild succeeded");
    assert_eq!(builds[0].env("EDDO_CAUSATION_ID"), fired["id"].as_str());
    assert!(s.published().await.is_empty());

    let r = s.handle(&as_action(&fired)).await;
    assert_eq!(r.published, ["Rollback Started"], "{r:?}");
    s.handle(&fired).await;
    assert_eq!(
        s.stack.codebuild.calls("eddo-rollback"),
        1,
        "found, not started again"
    );
    let events = s.published().await;
    assert_eq!(types(&events), ["Rollback Started"]);
    assert_eq!(events[0]["detail"]["build_id"], builds[0].id.as_str());
    assert_eq!(events[0]["detail"]["metadata"]["causation_id"], fired["id"]);
    assert_eq!(s.held_by().await.as_deref(), Some(builds[0].id.as_str()));
}

/// The AWS round trips of alarm-rollback, counted by an SDK interceptor (EventBridge's PutEvents
/// aside: each event is checked on the bus). A rollback reads the service once, moves both
/// records in one transaction, starts the build, records it with the event it owes in another,
/// and clears that event once published.
#[tokio::test(flavor = "multi_thread")]
async fn aws_round_trips_per_alarm() {
    let s = setup("rb-calls", None).await;
    let calls = crate::harness::Calls::default();
    let sdk = &crate::harness::function_sdk(&s.stack, "alarm-rollback").await;
    let config = crate::harness::policy_config(&s.stack, "alarm-rollback");
    let policy = eddo::policy::load(sdk, &config.policy).await.unwrap();
    let rollbacks = Rollbacks::new(&config, policy, sdk)
        .with_dynamodb(
            crate::harness::counted_dynamodb(sdk, &calls),
            &config.common.table_name,
        )
        .with_codebuild(crate::harness::counted_stand_in(sdk, &s.stack, &calls))
        .with_cloudwatch(aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(sdk)
                .interceptor(calls.clone())
                .build(),
        ));
    let now = now_epoch();

    let early = alarm("hello-world-5xx", "OK", "ALARM", now - 50);
    eddo_local::cloudwatch::ran(&s.stack.sdk, &early)
        .await
        .unwrap();
    rollbacks.handle(&early).await.unwrap();
    assert_eq!(
        calls.take(),
        [
            "CloudWatch.DescribeAlarms",
            "DynamoDB.Query",
            "DynamoDB.PutItem",
            "DynamoDB.UpdateItem"
        ],
        "a skip: CloudWatch confirms the alarm, read the service, record the change with its \
         event, clear it once published"
    );

    s.deployed(&sha(80), &sha(81), now - 300).await;
    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    rollbacks.handle(&fired).await.unwrap();
    assert_eq!(
        calls.take(),
        [
            "CloudWatch.DescribeAlarms",
            "DynamoDB.Query",
            "DynamoDB.TransactWriteItems",
            "CodeBuild.StartBuild",
            "DynamoDB.TransactWriteItems",
            "DynamoDB.UpdateItem",
        ],
        "a rollback: the build recorded with the event it owes, then that event sent"
    );

    rollbacks.handle(&fired).await.unwrap();
    assert_eq!(
        calls.take(),
        [
            "CloudWatch.DescribeAlarms",
            "DynamoDB.Query",
            "DynamoDB.PutItem",
            "DynamoDB.GetItem"
        ],
        "a redelivery: found handled, nothing else"
    );
    assert_eq!(
        types(&s.published().await),
        ["Rollback Skipped", "Rollback Started"]
    );
}

/// A state change CloudWatch does not confirm rolls nothing back, and says so once: an alarm
/// CloudWatch does not know, one it shows in another state, an event whose own `eddo:service`
/// tag the alarm does not carry. None takes the change's key: the real state change that follows
/// rolls back, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_change_cloudwatch_does_not_confirm_rolls_nothing_back() {
    let s = setup("rb-confirm", None).await;
    let now = now_epoch();
    s.deployed(&sha(90), &sha(91), now - 300).await;
    let fired = alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    // Nobody breached it: CloudWatch knows no such alarm yet.
    let forged = |e: &Value| {
        let r = s.rollbacks.clone();
        let e = e.clone();
        async move { r.handle(&e).await.unwrap() }
    };
    forged(&fired).await;
    // The alarm exists, and is OK.
    eddo_local::cloudwatch::alarm(&s.stack.sdk, "hello-world-5xx", "OK", &[])
        .await
        .unwrap();
    forged(&as_action(&fired)).await;
    // An alarm no service names, its event tagged with the service: CloudWatch's is untagged.
    eddo_local::cloudwatch::alarm(&s.stack.sdk, "billing-disk-full", "ALARM", &[])
        .await
        .unwrap();
    let mut tagged = alarm("billing-disk-full", "OK", "ALARM", now - 5);
    tagged["detail"]["tags"] = json!({"eddo:service": "hello-world"});
    forged(&tagged).await;
    let said = s.published().await;
    let reasons: Vec<&str> = said
        .iter()
        .map(|e| {
            assert_eq!(e["detail-type"], "Rollback Skipped");
            assert_eq!(e["detail"]["reason"], "not-confirmed");
            e["detail"]["reasons"][0].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "not confirmed by CloudWatch: CloudWatch knows no alarm hello-world-5xx",
            "not confirmed by CloudWatch: CloudWatch says alarm hello-world-5xx is OK, not ALARM",
            "not confirmed by CloudWatch: the event tags alarm billing-disk-full eddo:service=hello-world, CloudWatch with no such tag",
        ]
    );
    assert!(s.rollback_builds().is_empty(), "nothing rolled back");
    assert_eq!(s.held_by().await, None);

    // The alarm really breaches: the same state change, confirmed, rolls back once.
    s.handle(&fired).await;
    s.handle(&as_action(&fired)).await;
    assert_eq!(s.rollback_builds().len(), 1);
    assert_eq!(types(&s.published().await), ["Rollback Started"]);
}
