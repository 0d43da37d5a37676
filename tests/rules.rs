//! The gate answers GitHub's custom deployment protection rules, against the GitHub stand-in
//! (which checks the App's token and each answer against GitHub's published description, and
//! keeps each workflow run waiting until its environment is answered): a rule that arrives before
//! the decision is answered by it, one that arrives after at once, one still waiting at the
//! deadline is rejected with what was missing; GitHub down or an answer lost sends it again
//! until GitHub has taken it, once. What GitHub took is read from the stand-in, the deploys from
//! CodeBuild, the decisions from the bus.

use std::sync::atomic::Ordering::SeqCst;

use eddo_local::github::{Fault, GitHub};
use serde_json::Value;

use crate::harness::gate::*;

const REPO: &str = "Codertocat/Hello-World";

/// Every answer GitHub took for `run`: (environment, state, comment).
fn reviews(github: &GitHub, run: u64) -> Vec<(String, String, String)> {
    github.run(run).map(|r| r.reviews).unwrap_or_default()
}

fn review_calls(github: &GitHub) -> usize {
    github
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/deployment_protection_rule"))
        .count()
}

test_clock!(BEFORE_CLOCK, before_clock);

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_before_the_decision_is_approved_by_it_and_one_after_at_once() {
    let start = eddo::idempotency::now_epoch();
    BEFORE_CLOCK.store(start, SeqCst);
    let (s, github) =
        Setup::with_app("rules-before", before_clock, Some(&deployed_by("both"))).await;
    let (commit, image) = (sha(1), digest(1));
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    // The workflow's deploy job waits on production: the rule arrives while the gate waits.
    github.wait_on(REPO, 7001, ENV);
    let rule = protection_rule(&commit, 7001, ENV, start);
    let r = s.handle(&rule).await;
    assert!(
        r.outcome.contains("waits for the decision"),
        "{}",
        r.outcome
    );
    assert!(reviews(&github, 7001).is_empty(), "nothing decided yet");
    assert_eq!(github.run(7001).unwrap().status, "waiting");

    // The last signal decides: the deploy project starts, and the job is approved.
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    let scan = s
        .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
        .await;
    s.handle(&scan).await;
    assert_eq!(s.deploys().len(), 1, "both: the deploy project too");
    let took = reviews(&github, 7001);
    assert_eq!(took.len(), 1, "{took:#?}");
    assert_eq!((took[0].0.as_str(), took[0].1.as_str()), (ENV, "approved"));
    assert!(
        took[0]
            .2
            .contains("Every signal hello-world requires passed"),
        "{took:#?}"
    );
    assert_eq!(github.run(7001).unwrap().status, "in_progress");
    let started: Vec<Value> = s.published().await;
    let started = started
        .iter()
        .find(|e| e["detail-type"] == "Deployment Started")
        .expect("said");
    assert_eq!(
        started["detail"]["github_environment"],
        serde_json::json!({"repository": REPO, "environment": ENV})
    );

    // The same delivery again: recorded before, nothing sent.
    let calls = review_calls(&github);
    s.handle(&rule).await;
    assert_eq!(review_calls(&github), calls);

    // A re-run of the workflow asks again after the decision: answered at once.
    github.wait_on(REPO, 7002, ENV);
    let r = s.handle(&protection_rule(&commit, 7002, ENV, start)).await;
    assert!(r.outcome.contains("Approved"), "{}", r.outcome);
    assert_eq!(reviews(&github, 7002)[0].1, "approved");
    assert_eq!(s.deploys().len(), 1, "the rule deploys nothing itself");
}

test_clock!(BLOCK_CLOCK, block_clock);

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_commit_is_rejected_with_its_reasons_and_a_late_rule_at_its_deadline() {
    let start = eddo::idempotency::now_epoch();
    BLOCK_CLOCK.store(start, SeqCst);
    let (s, github) = Setup::with_app("rules-block", block_clock, Some(&deployed_by("both"))).await;
    let bad = sha(2);
    s.handle(&s.build("eddo-build", &bad, "SUCCEEDED", Some(&digest(2))))
        .await;
    s.handle(&s.build("eddo-sast", &bad, "FAILED", None)).await;
    github.wait_on(REPO, 7101, ENV);
    s.handle(&protection_rule(&bad, 7101, ENV, start)).await;
    let took = reviews(&github, 7101);
    assert_eq!(took[0].1, "rejected");
    assert!(
        took[0]
            .2
            .contains("sast: eddo-sast build FAILED in phase BUILD"),
        "{took:#?}"
    );
    assert_eq!(github.run(7101).unwrap().status, "completed");

    // Only a build, then the deadline: rejected with what was missing.
    let slow = sha(3);
    s.handle(&s.build("eddo-build", &slow, "SUCCEEDED", Some(&digest(3))))
        .await;
    github.wait_on(REPO, 7102, ENV);
    s.handle(&protection_rule(&slow, 7102, ENV, start)).await;
    // Nothing is known of this commit at all: rejected at the rule's own deadline.
    let unknown = sha(4);
    github.wait_on(REPO, 7103, ENV);
    s.handle(&protection_rule(&unknown, 7103, ENV, start)).await;
    BLOCK_CLOCK.store(start + 29 * 60, SeqCst);
    s.handle(&tick(start + 29 * 60)).await;
    assert!(reviews(&github, 7102).is_empty(), "not yet");
    BLOCK_CLOCK.store(start + 31 * 60, SeqCst);
    s.handle(&tick(start + 31 * 60)).await;
    let took = reviews(&github, 7102);
    assert_eq!(took.len(), 1);
    assert_eq!(took[0].1, "rejected");
    assert!(took[0].2.contains("image-scan"), "{took:#?}");
    let took = reviews(&github, 7103);
    assert_eq!(took[0].1, "rejected", "{took:#?}");
    assert!(
        took[0].2.contains("No evidence of hello-world"),
        "{took:#?}"
    );
    assert!(s.deploys().is_empty());
}

test_clock!(DOWN_CLOCK, down_clock);

#[tokio::test(flavor = "multi_thread")]
async fn github_down_or_an_answer_lost_the_rule_is_answered_once() {
    let start = eddo::idempotency::now_epoch();
    DOWN_CLOCK.store(start, SeqCst);
    let (s, github) = Setup::with_app("rules-down", down_clock, Some(&deployed_by("both"))).await;
    let (commit, image) = (sha(5), digest(5));
    github.wait_on(REPO, 7201, ENV);
    github.wait_on(REPO, 7202, ENV);
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    s.handle(&protection_rule(&commit, 7201, ENV, start)).await;
    s.handle(&protection_rule(&commit, 7202, ENV, start)).await;
    // GitHub is down for the first answer; the second is taken and its reply lost.
    github.fail_next_reviews(&[Fault::Status(502), Fault::AnswerLost]);
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    let scan = s
        .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
        .await;
    s.handle(&scan).await;
    // The decision did not wait for GitHub.
    assert_eq!(s.deploys().len(), 1);
    let answered = |run| reviews(&github, run).len();
    assert_eq!(
        answered(7201) + answered(7202),
        1,
        "the lost reply's was taken"
    );
    // The sweep sends again: the one GitHub never took is taken; the one it took is refused
    // as answered, and GitHub's own run says it no longer waits: settled, not sent again.
    DOWN_CLOCK.store(start + 61, SeqCst);
    s.handle(&tick(start + 61)).await;
    assert_eq!((answered(7201), answered(7202)), (1, 1));
    for run in [7201, 7202] {
        assert_eq!(reviews(&github, run)[0].1, "approved");
    }
    let calls = review_calls(&github);
    DOWN_CLOCK.store(start + 3 * 3600, SeqCst);
    s.handle(&tick(start + 3 * 3600)).await;
    assert_eq!(review_calls(&github), calls, "nothing left owed");
}

test_clock!(ENV_CLOCK, env_clock);

#[tokio::test(flavor = "multi_thread")]
async fn a_service_deployed_by_environment_only_is_approved_and_starts_no_build() {
    let start = eddo::idempotency::now_epoch();
    ENV_CLOCK.store(start, SeqCst);
    let (s, github) = Setup::with_app(
        "rules-env",
        env_clock,
        Some(&deployed_by("github-environment")),
    )
    .await;
    let (commit, image) = (sha(6), digest(6));
    github.wait_on(REPO, 7301, ENV);
    s.handle(&protection_rule(&commit, 7301, ENV, start)).await;
    s.passes(&commit, &image).await;
    assert!(s.deploys().is_empty(), "no project to start");
    assert_eq!(reviews(&github, 7301)[0].1, "approved");
    let said = s.published().await;
    let approved = said
        .iter()
        .find(|e| e["detail-type"] == "Deployment Approved")
        .unwrap_or_else(|| panic!("said: {said:#?}"));
    assert_eq!(approved["detail"]["commit_sha"], commit.as_str());
    assert_eq!(approved["detail"]["github_environment"]["environment"], ENV);
    assert!(
        !said
            .iter()
            .any(|e| e["detail-type"] == "Deployment Started"),
        "{said:#?}"
    );
    // The check run says so.
    let runs = github.check_runs(REPO, &commit);
    assert_eq!(
        runs[0].output["title"], "Approved for its GitHub environment",
        "{runs:#?}"
    );
}
