//! Work an invocation left undone is finished once, by whoever comes next once its lease is
//! gone: a deploy decided but not started (a throttled StartBuild, a fault moto cannot produce,
//! so aws-smithy-mocks), a deploy started whose record was lost, a decision recorded but not yet
//! said. An invocation still at work (its lease held, as when its process was killed) is left
//! alone until the lease lapses; a required signal failing in between blocks the deploy instead.

use std::sync::atomic::Ordering::SeqCst;

use crate::harness::Faults;
use eddo::idempotency::now_epoch;
use eddo_scan_gate::Gate;
use serde_json::Value;

use crate::harness::gate::*;

/// The update that gives a lease back: losing it is what a process killed mid-invocation does.
pub(crate) const LET_GO: &str = "SET lease_until = :zero REMOVE lease_id";

/// A gate of the stack as another invocation: deciding by `clock`, its DynamoDB and EventBridge
/// calls failing as `faults` say, with `codebuild` (the stand-in unless given).
pub(crate) async fn gate(
    s: &Setup,
    clock: fn() -> u64,
    faults: &Faults,
    codebuild: Option<aws_sdk_codebuild::Client>,
) -> Gate {
    let config = crate::harness::policy_config(&s.stack, "scan-gate");
    let sdk = &crate::harness::function_sdk(&s.stack, "scan-gate").await;
    let policy = eddo::policy::load(sdk, &config.policy).await.unwrap();
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(sdk)
            .interceptor(faults.clone())
            .build(),
    );
    let publisher = eddo::publish::Publisher::new(
        events,
        &config.common.event_bus_name,
        config.common.max_entry_bytes,
    );
    Gate::with_publisher(&config, policy, sdk, publisher)
        .with_dynamodb(faults.dynamodb(sdk), &config.common.table_name)
        .with_codebuild(codebuild.unwrap_or_else(|| crate::harness::stand_in(sdk, &s.stack)))
        .with_clock(clock)
}

/// A gate whose StartBuild is always throttled (the SDK's retries, then the error); the rule
/// counts its calls.
async fn throttled(
    s: &Setup,
    clock: fn() -> u64,
    faults: &Faults,
) -> (Gate, aws_smithy_mocks::Rule) {
    use aws_smithy_mocks::{RuleMode, mock_client};
    let rule = crate::harness::throttled_start_build();
    let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&rule]);
    (gate(s, clock, faults, Some(client)).await, rule)
}

/// Build and SAST pass for candidate `n` (through a healthy invocation at `clock`, which
/// CodeBuild confirms them to), then the scan that completes the set: returns it, after `g`
/// handled it with `Err` (retryable).
pub(crate) async fn complete_failing(s: &Setup, g: &Gate, clock: fn() -> u64, n: u32) -> Value {
    let (commit, image) = (sha(n), digest(n));
    let healthy = gate(s, clock, &Faults::default(), None).await;
    healthy
        .handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await
        .unwrap();
    healthy
        .handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await
        .unwrap();
    let last = s
        .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
        .await;
    let err = g.handle(&last).await.expect_err("the invocation fails");
    assert!(err.is_retryable(), "{err}");
    last
}

/// Candidate `n` completed through a gate at `clock` whose calls fail as `faults` say (each
/// `(operation, fragment)`, always), which fails the invocation: the faults and the last event.
pub(crate) async fn fail_through(
    s: &Setup,
    clock: fn() -> u64,
    n: u32,
    faults: &[(&str, &str)],
) -> (Faults, Value) {
    let injected = Faults::default();
    for (operation, fragment) in faults {
        injected.fail(operation, fragment, usize::MAX);
    }
    let failing = gate(s, clock, &injected, None).await;
    let last = complete_failing(s, &failing, clock, n).await;
    (injected, last)
}

test_clock!(CLOCK, clock);

/// A throttled StartBuild leaves the candidate decided without a build and fails the invocation,
/// which lets go of its lease: Lambda's retry seconds later starts the deployment, once.
/// The same failure in a process killed before it let go: a redelivery waits while the lease
/// holds, and the first one after it starts the deployment, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_left_unstarted_is_started_once_when_its_lease_is_gone() {
    CLOCK.store(now_epoch(), SeqCst);
    let s = setup("gate-throttle", None).await;
    let healthy = gate(&s, clock, &Faults::default(), None).await;

    // Failed and let go: the retry five seconds later starts it.
    let (failing, rule) = throttled(&s, clock, &Faults::default()).await;
    let last = complete_failing(&s, &failing, clock, 800).await;
    assert_eq!(
        rule.num_calls(),
        3,
        "the SDK's standard retries, then the error"
    );
    assert!(
        s.published().await.is_empty(),
        "nothing said without a build"
    );
    CLOCK.fetch_add(5, SeqCst);
    let r = healthy.handle(&last).await.unwrap();
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    healthy.handle(&last).await.unwrap();
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 1);

    // Killed before it let go: left alone while the lease holds, then started once.
    let killed = Faults::default();
    killed.fail("UpdateItem", LET_GO, usize::MAX);
    let (failing, _) = throttled(&s, clock, &killed).await;
    let last = complete_failing(&s, &failing, clock, 801).await;
    assert!(killed.hits() >= 1, "the let-go was lost");
    CLOCK.fetch_add(5, SeqCst);
    let r = healthy.handle(&last).await.unwrap();
    assert!(r.outcome.contains("being started"), "{r:?}");
    assert_eq!(
        s.stack.codebuild.calls("eddo-deploy"),
        1,
        "not second-guessed"
    );
    CLOCK.fetch_add(eddo::outbox::DEFAULT_LEASE_SECS, SeqCst);
    let r = healthy.handle(&last).await.unwrap();
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    healthy.handle(&last).await.unwrap();
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 2);
    let events = s.published().await;
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events
            .iter()
            .all(|e| e["detail-type"] == "Deployment Started")
    );
}

test_clock!(LOST_CLOCK, lost_clock);

/// StartBuild succeeded and recording the build failed. The next signal (another event, so
/// another causation) starts nothing: the deploy's request is the decision's alone, and the
/// build it started is found and recorded, then said once. (A request that took the event's id
/// met CodeBuild's "same token, other parameters" error and said NOT_STARTED while it ran.)
#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_started_whose_record_was_lost_is_found_not_started_again() {
    LOST_CLOCK.store(now_epoch(), SeqCst);
    let s = setup("gate-lost", None).await;
    let (lost, last) = fail_through(&s, lost_clock, 810, &[("UpdateItem", "SET build_id")]).await;
    assert!(lost.hits() >= 1);
    let deploys = s.deploys();
    assert_eq!(deploys.len(), 1, "StartBuild succeeded");
    assert_eq!(deploys[0].env("EDDO_CAUSATION_ID"), last["id"].as_str());
    assert!(s.published().await.is_empty());

    // Another signal of the commit, later than CodeBuild's five minutes would allow a token.
    LOST_CLOCK.fetch_add(6 * 60, SeqCst);
    let healthy = gate(&s, lost_clock, &Faults::default(), None).await;
    let rerun = s.build("eddo-sast", &sha(810), "SUCCEEDED", None);
    let r = healthy.handle(&rerun).await.unwrap();
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    assert_eq!(
        s.stack.codebuild.calls("eddo-deploy"),
        1,
        "found, not started again"
    );
    let events = s.published().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["detail"]["build_id"], deploys[0].id.as_str());
    assert_eq!(events[0]["detail"]["metadata"]["causation_id"], last["id"]);

    // Its completion moves the history and is said once, however often it is delivered.
    let done = s.deploy_finished(&sha(810), "SUCCEEDED");
    let r = healthy.handle(&done).await.unwrap();
    assert_eq!(r.published, ["Deployment Succeeded"], "{r:?}");
    let r = healthy.handle(&done).await.unwrap();
    assert!(r.published.is_empty(), "{r:?}");
}

test_clock!(SAY_CLOCK, say_clock);

/// The build was started and recorded, and the process died before saying so (its PutEvents
/// failed and its let-go was lost). Another invocation in the meantime says nothing (the lease
/// holds, and the first invocation may still be publishing); the first after the lease says it,
/// once.
#[tokio::test(flavor = "multi_thread")]
async fn a_decision_not_yet_said_is_said_once_by_whoever_comes_after_its_lease() {
    SAY_CLOCK.store(now_epoch(), SeqCst);
    let s = setup("gate-say", None).await;
    let (dying, _) = fail_through(
        &s,
        say_clock,
        820,
        &[("PutEvents", "Deployment Started"), ("UpdateItem", LET_GO)],
    )
    .await;
    assert!(dying.hits() >= 2);
    assert_eq!(s.deploys().len(), 1);

    let healthy = gate(&s, say_clock, &Faults::default(), None).await;
    let rerun = s.build("eddo-sast", &sha(820), "SUCCEEDED", None);
    SAY_CLOCK.fetch_add(5, SeqCst);
    let r = healthy.handle(&rerun).await.unwrap();
    assert!(r.published.is_empty(), "the lease holds: {r:?}");
    assert!(s.published().await.is_empty());

    SAY_CLOCK.fetch_add(eddo::outbox::DEFAULT_LEASE_SECS, SeqCst);
    let r = healthy.handle(&rerun).await.unwrap();
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    healthy.handle(&rerun).await.unwrap();
    let events = s.published().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 1);
}

test_clock!(WINDOW_CLOCK, window_clock);

/// A required signal that fails while an invocation holds a deploy it has not started (its
/// process killed) is never lost: it is said at once (the build may be starting), and the
/// recovery that would have started the build blocks instead, with the failure as its reason.
/// Had the invocation let go, the failure blocks the deploy at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_between_the_decision_and_the_build_blocks_the_recovery() {
    WINDOW_CLOCK.store(now_epoch(), SeqCst);
    let s = setup("gate-window", None).await;
    let healthy = gate(&s, window_clock, &Faults::default(), None).await;
    let killed = Faults::default();
    killed.fail("UpdateItem", LET_GO, usize::MAX);
    let (failing, _) = throttled(&s, window_clock, &killed).await;
    let last = complete_failing(&s, &failing, window_clock, 900).await;
    let commit = sha(900);

    // Seconds later, the SAST project's rerun fails: said at once, no deployment started.
    WINDOW_CLOCK.fetch_add(5, SeqCst);
    let r = healthy
        .handle(&s.build("eddo-sast", &commit, "FAILED", None))
        .await
        .unwrap();
    assert_eq!(r.published, ["Late Signal Failed"], "{r:?}");
    let late = s.published().await;
    assert_eq!(late[0]["detail"]["state"], "deploying");
    assert_eq!(late[0]["detail"]["build_id"], Value::Null);

    // Lambda's retry of the throttled invocation, a minute later: blocked, not deployed.
    WINDOW_CLOCK.fetch_add(60, SeqCst);
    let r = healthy.handle(&last).await.unwrap();
    assert_eq!(r.published, ["Deployment Blocked"], "{r:?}");
    let blocked = s.published().await;
    let reasons = blocked[0]["detail"]["reasons"].as_array().unwrap();
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .starts_with("sast: eddo-sast build FAILED"),
        "{reasons:?}"
    );
    healthy.handle(&last).await.unwrap();
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 0);
    assert!(s.published().await.is_empty(), "said once");

    // Let go instead: the failure blocks it at once.
    let (failing, _) = throttled(&s, window_clock, &Faults::default()).await;
    complete_failing(&s, &failing, window_clock, 901).await;
    WINDOW_CLOCK.fetch_add(5, SeqCst);
    let r = healthy
        .handle(&s.build("eddo-sast", &sha(901), "FAILED", None))
        .await
        .unwrap();
    assert_eq!(r.published, ["Deployment Blocked"], "{r:?}");
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 0);
}
