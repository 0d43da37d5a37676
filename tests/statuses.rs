//! The gate's GitLab commit statuses, against the GitLab stand-in (which checks the access
//! token, the state, the description's limit and GitLab's transitions) and the local stack: a
//! status `eddo/gate` per candidate through deploy and block; GitLab down or rate-limited delays
//! it, never the decision; a rotated token is read again when GitLab refuses the old one. What
//! GitLab shows is read from the stand-in.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use eddo_local::gitlab::{Fault, GitLab};
use eddo_scan_gate::Gate;

use crate::harness::gate::*;
use crate::harness::{Local, function_env, stand_in};

/// The example service's repository, as its policy names it for GitLab too.
const PROJECT: &str = "Codertocat/Hello-World";

/// The gate as the template runs it with `GitLabStatuses=on`, against the stand-in, by `clock`,
/// with the example policy showing the service on GitLab.
async fn with_gitlab(prefix: &str, clock: fn() -> u64) -> (Setup, GitLab) {
    let gitlab = GitLab::start().await.unwrap();
    let local = Local::start_with(prefix, &pairs(&gitlab.parameters())).await;
    let policy = crate::harness::example_policy().replace(
        "      github: Codertocat/Hello-World\n",
        "      gitlab: Codertocat/Hello-World\n",
    );
    local.stack.put_policy(&policy).await.unwrap();
    gitlab.install(&local.stack).await.unwrap();
    let (sdk, config, policy) = local.as_function("scan-gate").await;
    let env = function_env(&local.stack, "scan-gate");
    let client = eddo::gitlab::GitLab::from_env(&env, &sdk, clock).unwrap();
    assert!(client.is_some(), "the template turns statuses on");
    assert!(
        eddo::github::App::from_env(&env, &sdk, clock)
            .unwrap()
            .is_none(),
        "and not the GitHub App"
    );
    let gate = Gate::new(&config, policy, &sdk)
        .with_codebuild(stand_in(&sdk, &local.stack))
        .with_gitlab(client)
        .with_clock(clock);
    (
        Setup {
            local,
            gate: Arc::new(gate),
        },
        gitlab,
    )
}

/// The commit's current `eddo/gate` status (state, description), and how many there were.
fn current(gitlab: &GitLab, commit: &str) -> (String, String, usize) {
    let all = gitlab.statuses(PROJECT, commit);
    assert!(all.iter().all(|s| s.name == "eddo/gate"), "{all:#?}");
    let live: Vec<_> = all.iter().filter(|s| !s.retried).collect();
    assert_eq!(live.len(), 1, "one current status: {all:#?}");
    (
        live[0].state.clone(),
        live[0].description.clone(),
        all.len(),
    )
}

test_clock!(DEPLOY_CLOCK, deploy_clock);

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_status_follows_its_candidate_to_deployment() {
    DEPLOY_CLOCK.store(eddo::idempotency::now_epoch(), SeqCst);
    let (s, gitlab) = with_gitlab("statuses-deploy", deploy_clock).await;
    let (commit, image) = (sha(21), digest(21));
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    assert_eq!(
        current(&gitlab, &commit),
        ("running".into(), "Waiting for image-scan, sast".into(), 1)
    );
    // Still running: GitLab refuses running again, which the gate takes as shown (GitLab keeps
    // the first description while the status runs).
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    assert_eq!(current(&gitlab, &commit).0, "running");
    let scan = s
        .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
        .await;
    s.handle(&scan).await;
    assert_eq!(s.deploys().len(), 1);
    assert_eq!(
        current(&gitlab, &commit),
        ("success".into(), "Deploying".into(), 1)
    );
    s.handle(&s.deploy_finished(&commit, "SUCCEEDED")).await;
    let (state, description, all) = current(&gitlab, &commit);
    assert_eq!(
        (state.as_str(), description.as_str()),
        ("success", "Deployed")
    );
    assert_eq!(
        all, 2,
        "the finished status set again is a new one, the first retried"
    );
    let codes: Vec<u16> = gitlab.calls().iter().map(|c| c.status).collect();
    assert_eq!(codes, [201, 400, 201, 201], "the 400: running to running");
}

test_clock!(BLOCK_CLOCK, block_clock);

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_candidate_fails_its_status_with_its_reasons() {
    BLOCK_CLOCK.store(eddo::idempotency::now_epoch(), SeqCst);
    let (s, gitlab) = with_gitlab("statuses-block", block_clock).await;
    let bad = sha(22);
    s.handle(&s.build("eddo-build", &bad, "SUCCEEDED", Some(&digest(22))))
        .await;
    s.handle(&s.build("eddo-sast", &bad, "FAILED", None)).await;
    let (state, description, _) = current(&gitlab, &bad);
    assert_eq!(state, "failed");
    assert!(
        description
            .starts_with("Blocked: 1 reason(s): sast: eddo-sast build FAILED in phase BUILD"),
        "{description}"
    );
    // With the build's log link, whole: within GitLab's 255 characters (a longer one is cut and
    // says so: `eddo::gitlab`'s unit test; the stand-in refuses one over the limit).
    assert!(description.contains("(logs: https://"), "{description}");
    assert!(description.chars().count() <= 255, "{description}");
}

test_clock!(DOWN_CLOCK, down_clock);

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_down_rate_limited_or_rotating_its_token_delays_the_status_never_the_decision() {
    let start = eddo::idempotency::now_epoch();
    DOWN_CLOCK.store(start, SeqCst);
    let (s, gitlab) = with_gitlab("statuses-down", down_clock).await;
    let (commit, image) = (sha(23), digest(23));
    gitlab.fail_next(&[Fault::Status(503), Fault::RateLimited { retry_after: 90 }]);
    s.passes(&commit, &image).await;
    assert_eq!(s.deploys().len(), 1, "the decision did not wait");
    assert!(gitlab.statuses(PROJECT, &commit).is_empty());
    DOWN_CLOCK.store(start + 60, SeqCst);
    s.handle(&tick(start + 60)).await;
    assert!(gitlab.statuses(PROJECT, &commit).is_empty(), "rate-limited");
    let calls = gitlab.calls().len();
    DOWN_CLOCK.store(start + 120, SeqCst);
    s.handle(&tick(start + 120)).await;
    assert_eq!(gitlab.calls().len(), calls, "not before retry-after");
    // Meanwhile the token was rotated: GitLab refuses the old one, the gate reads the new one.
    gitlab.rotate("glpat-eddo-local-rotated-0000000000");
    gitlab.install(&s.stack).await.unwrap();
    DOWN_CLOCK.store(start + 151, SeqCst);
    s.handle(&tick(start + 151)).await;
    assert_eq!(
        current(&gitlab, &commit),
        ("success".into(), "Deploying".into(), 1)
    );
    let codes: Vec<u16> = gitlab.calls().iter().map(|c| c.status).collect();
    assert_eq!(codes, [503, 429, 401, 201]);
}
