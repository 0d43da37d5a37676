//! A deploy decided but not started (a throttled StartBuild, a fault moto cannot produce, so
//! aws-smithy-mocks) is started by Lambda's retry, once; a required signal failing in between is
//! said at once and blocks it instead.

use eddo::idempotency::now_epoch;
use eddo_scan_gate::Gate;
use serde_json::Value;

use eddo_tests::gate::*;

/// Two gates on one stack, as two invocations would be: one whose StartBuild is throttled (a fault
/// moto cannot produce: the SDK's retries, then the error), one with the CodeBuild stand-in;
/// both deciding by `clock`. The throttled rule counts its calls.
async fn gates(s: &Setup, clock: fn() -> u64) -> (Gate, Gate, aws_smithy_mocks::Rule) {
    use aws_smithy_mocks::{RuleMode, mock_client};
    let throttled = eddo_tests::throttled_start_build();
    let config = eddo_tests::policy_config(&s.stack, "scan-gate");
    let sdk = &eddo_tests::function_sdk(&s.stack, "scan-gate").await;
    let policy = eddo::policy::load(sdk, &config.policy_parameter)
        .await
        .unwrap();
    let failing = Gate::new(&config, policy.clone(), sdk)
        .with_codebuild(mock_client!(
            aws_sdk_codebuild,
            RuleMode::MatchAny,
            [&throttled]
        ))
        .with_clock(clock);
    let healthy = Gate::new(&config, policy, sdk)
        .with_codebuild(eddo_tests::stand_in(sdk, &s.stack))
        .with_clock(clock);
    (failing, healthy, throttled)
}

/// Build and SAST pass for candidate `n`, then the scan that completes the set meets the
/// throttled StartBuild: decided, not started, the invocation failed. That scan, for retries.
async fn decided_not_started(failing: &Gate, n: u32) -> Value {
    let (commit, image) = (sha(n), digest(n));
    failing
        .handle(&build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await
        .unwrap();
    failing
        .handle(&build("eddo-sast", &commit, "SUCCEEDED", None))
        .await
        .unwrap();
    let last = scan(&commit, &image, serde_json::from_str(CLEAN).unwrap());
    let err = failing.handle(&last).await.expect_err("throttled");
    assert!(err.is_retryable(), "{err}");
    last
}

static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn clock() -> u64 {
    CLOCK.load(std::sync::atomic::Ordering::SeqCst)
}

/// A throttled StartBuild (a fault moto cannot produce) leaves the candidate decided without a
/// build and fails the invocation for Lambda to retry; the retry a minute later starts the
/// deployment, once, and announces it.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_start_build_is_retried_and_starts_one_deployment() {
    CLOCK.store(now_epoch(), std::sync::atomic::Ordering::SeqCst);
    let s = setup("gate-throttle", None).await;
    let (failing, healthy, throttled) = gates(&s, clock).await;
    let last = decided_not_started(&failing, 800).await;
    assert_eq!(
        throttled.num_calls(),
        3,
        "the SDK's standard retries, then the error"
    );
    assert!(
        s.published().await.is_empty(),
        "nothing announced without a build"
    );

    // An invocation still at work is not second-guessed: a redelivery seconds later waits.
    CLOCK.fetch_add(5, std::sync::atomic::Ordering::SeqCst);
    let r = healthy.handle(&last).await.unwrap();
    assert!(r.outcome.contains("being started"), "{r:?}");
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 0);

    // Lambda's retry a minute later starts it.
    CLOCK.fetch_add(60, std::sync::atomic::Ordering::SeqCst);
    let r = healthy.handle(&last).await.unwrap();
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    healthy.handle(&last).await.unwrap();
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 1);
    let events = s.published().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail-type"], "Deployment Started");
}

static WINDOW_CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn window_clock() -> u64 {
    WINDOW_CLOCK.load(std::sync::atomic::Ordering::SeqCst)
}

/// A required signal that fails in the seconds between the decision and the recorded deploy
/// build is never lost: it is said at once (the build may be starting), and the recovery that
/// would have started the build blocks instead, with the failure as its reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_between_the_decision_and_the_build_blocks_the_recovery() {
    use std::sync::atomic::Ordering::SeqCst;
    WINDOW_CLOCK.store(now_epoch(), SeqCst);
    let s = setup("gate-window", None).await;
    let (failing, healthy, _) = gates(&s, window_clock).await;
    let last = decided_not_started(&failing, 900).await;
    let commit = sha(900);

    // Seconds later, the SAST project's rerun fails: said at once, no deployment started.
    WINDOW_CLOCK.fetch_add(5, SeqCst);
    let r = healthy
        .handle(&build("eddo-sast", &commit, "FAILED", None))
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
}
