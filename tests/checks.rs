//! The gate's check runs, against the GitHub stand-in (which checks the App's JWT, its tokens'
//! expiry and each request against GitHub's published description) and the local stack: one
//! check run per candidate through deploy, block and timeout; GitHub down, rate-limited or
//! losing an answer delays the check run, never the decision, and never makes a second; the
//! installation token is exchanged anew when it nears its expiry. What GitHub shows is read from
//! the stand-in, the decisions from CodeBuild and the bus.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use eddo_local::github::{Fault, GitHub};
use eddo_scan_gate::Gate;
use serde_json::Value;

use crate::harness::gate::*;
use crate::harness::{function_env, stand_in};

const REPO: &str = "Codertocat/Hello-World";

async fn with_app(prefix: &str, clock: fn() -> u64) -> (Setup, GitHub) {
    Setup::with_app(prefix, clock, None).await
}

/// The one check run on `commit`, as GitHub shows it.
fn the_check_run(github: &GitHub, commit: &str) -> eddo_local::github::CheckRun {
    let runs = github.check_runs(REPO, commit);
    assert_eq!(runs.len(), 1, "one check run per candidate: {runs:#?}");
    assert_eq!(runs[0].name, "eddo gate");
    assert_eq!(
        runs[0].external_id.as_deref(),
        Some(format!("hello-world@{commit}").as_str())
    );
    runs[0].clone()
}

fn title(run: &eddo_local::github::CheckRun) -> &str {
    run.output["title"].as_str().unwrap_or_default()
}

test_clock!(DEPLOY_CLOCK, deploy_clock);

#[tokio::test(flavor = "multi_thread")]
async fn a_check_run_follows_its_candidate_from_first_evidence_to_deployment() {
    DEPLOY_CLOCK.store(eddo::idempotency::now_epoch(), SeqCst);
    let (s, github) = with_app("checks-deploy", deploy_clock).await;
    let (commit, image) = (sha(1), digest(1));
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    let run = the_check_run(&github, &commit);
    assert_eq!(run.status, "in_progress");
    assert_eq!(title(&run), "Waiting for image-scan, sast");
    let summary = run.output["summary"].as_str().unwrap();
    assert!(summary.contains("until 20"), "the deadline: {summary}");
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    assert_eq!(
        title(&the_check_run(&github, &commit)),
        "Waiting for image-scan"
    );
    let scan = s
        .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
        .await;
    s.handle(&scan).await;
    // The decision: one deploy build, and the check run completed successfully.
    assert_eq!(s.deploys().len(), 1);
    let run = the_check_run(&github, &commit);
    assert_eq!(run.states, ["in_progress", "completed/success"]);
    assert_eq!(title(&run), "Deploying");
    let text = run.output["text"].as_str().unwrap();
    for signal in ["| build |", "| sast |", "| image-scan |"] {
        assert!(
            text.contains(signal),
            "the evidence table names {signal}: {text}"
        );
    }
    // Its deploy build's outcome appears on it.
    s.handle(&s.deploy_finished(&commit, "SUCCEEDED")).await;
    let run = the_check_run(&github, &commit);
    assert_eq!(title(&run), "Deployed");
    let build = s.deploys()[0].id.clone();
    assert!(
        run.output["summary"].as_str().unwrap().contains(&build),
        "{run:#?}"
    );
    // The App's JWT was exchanged once for a token; every check run call carried the token.
    let calls = github.calls();
    let jwt: Vec<_> = calls.iter().filter(|c| c.auth == "jwt").collect();
    assert_eq!(jwt.len(), 2, "the installation, then one token: {jwt:#?}");
    assert!(calls.iter().all(|c| c.status < 300), "{calls:#?}");
    // A redelivered signal changes nothing GitHub shows: no call.
    let before = github.calls().len();
    s.handle(&scan).await;
    assert_eq!(github.calls().len(), before, "nothing new to show");
}

test_clock!(BLOCK_CLOCK, block_clock);

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_candidate_fails_its_check_with_every_reason_and_a_late_one_times_out() {
    let start = eddo::idempotency::now_epoch();
    BLOCK_CLOCK.store(start, SeqCst);
    let (s, github) = with_app("checks-block", block_clock).await;
    let bad = sha(2);
    s.handle(&s.build("eddo-build", &bad, "SUCCEEDED", Some(&digest(2))))
        .await;
    s.handle(&s.build("eddo-sast", &bad, "FAILED", None)).await;
    let run = the_check_run(&github, &bad);
    assert_eq!(run.states, ["in_progress", "completed/failure"]);
    assert_eq!(title(&run), "Blocked: 1 reason(s)");
    let summary = run.output["summary"].as_str().unwrap();
    assert!(
        summary.contains("sast: eddo-sast build FAILED in phase BUILD"),
        "{summary}"
    );
    assert!(s.deploys().is_empty());

    // Only a build: the deadline passes, the check run says what was missing.
    let slow = sha(3);
    s.handle(&s.build("eddo-build", &slow, "SUCCEEDED", Some(&digest(3))))
        .await;
    BLOCK_CLOCK.store(start + 31 * 60, SeqCst);
    s.handle(&tick(start + 31 * 60)).await;
    let run = the_check_run(&github, &slow);
    assert_eq!(run.states, ["in_progress", "completed/timed_out"]);
    assert_eq!(title(&run), "Timed out: image-scan, sast missing");
    assert!(
        run.output["summary"]
            .as_str()
            .unwrap()
            .contains("image-scan: no signal before the deadline"),
        "{run:#?}"
    );
}

test_clock!(DOWN_CLOCK, down_clock);

#[tokio::test(flavor = "multi_thread")]
async fn github_down_or_rate_limited_delays_the_check_run_never_the_decision() {
    let start = eddo::idempotency::now_epoch();
    DOWN_CLOCK.store(start, SeqCst);
    let (s, github) = with_app("checks-down", down_clock).await;
    let (commit, image) = (sha(4), digest(4));
    // GitHub is down at the first signal, and rate-limits the first try after it.
    github.fail_next(&[Fault::Status(502), Fault::RateLimited { retry_after: 120 }]);
    s.passes(&commit, &image).await;
    // The decision did not wait: the deploy started and was said.
    assert_eq!(s.deploys().len(), 1);
    let said: Vec<Value> = s.published().await;
    assert!(
        said.iter()
            .any(|e| e["detail-type"] == "Deployment Started"),
        "{said:#?}"
    );
    assert!(github.check_runs(REPO, &commit).is_empty());
    // A minute on, the sweep tries again: rate-limited for 120 s.
    DOWN_CLOCK.store(start + 60, SeqCst);
    s.handle(&tick(start + 60)).await;
    assert!(github.check_runs(REPO, &commit).is_empty());
    assert_eq!(github.calls().last().unwrap().status, 403);
    // Not before GitHub said: no call.
    let before = github.calls().len();
    DOWN_CLOCK.store(start + 121, SeqCst);
    s.handle(&tick(start + 121)).await;
    assert_eq!(github.calls().len(), before, "retry-after 120 s: not yet");
    DOWN_CLOCK.store(start + 181, SeqCst);
    s.handle(&tick(start + 181)).await;
    let run = the_check_run(&github, &commit);
    assert_eq!(
        run.states,
        ["completed/success"],
        "made once, as the candidate now is"
    );
    // Shown: the next tick has nothing to do for it.
    let before = github.calls().len();
    s.handle(&tick(start + 240)).await;
    assert_eq!(github.calls().len(), before);
}

test_clock!(LOST_CLOCK, lost_clock);

#[tokio::test(flavor = "multi_thread")]
async fn a_creation_whose_answer_was_lost_is_found_again_not_made_twice() {
    let start = eddo::idempotency::now_epoch();
    LOST_CLOCK.store(start, SeqCst);
    let (s, github) = with_app("checks-lost", lost_clock).await;
    let (commit, image) = (sha(5), digest(5));
    github.fail_next(&[Fault::AnswerLost]);
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    // GitHub made it; eddo does not know its id.
    assert_eq!(github.check_runs(REPO, &commit).len(), 1);
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    LOST_CLOCK.store(start + 61, SeqCst);
    s.handle(&tick(start + 61)).await;
    let scan = s
        .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
        .await;
    s.handle(&scan).await;
    let run = the_check_run(&github, &commit);
    assert_eq!(run.states, ["in_progress", "completed/success"]);
    let listed = github
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET" && c.path.contains("/commits/"))
        .count();
    assert_eq!(listed, 1, "found by its external id, once");
}

test_clock!(TOKEN_CLOCK, token_clock);

#[tokio::test(flavor = "multi_thread")]
async fn the_installation_token_is_exchanged_anew_before_it_expires() {
    let start = eddo::idempotency::now_epoch();
    TOKEN_CLOCK.store(start, SeqCst);
    let (s, github) = with_app("checks-token", token_clock).await;
    let (commit, image) = (sha(6), digest(6));
    s.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await;
    // Almost an hour later (the token's last minutes): the next update takes a new one, and
    // GitHub, which refuses an expired token, takes it.
    TOKEN_CLOCK.store(start + 3600 - 60, SeqCst);
    s.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await;
    let calls = github.calls();
    let tokens = calls
        .iter()
        .filter(|c| c.path.ends_with("/access_tokens"))
        .count();
    assert_eq!(tokens, 2, "{calls:#?}");
    assert!(calls.iter().all(|c| c.status < 300), "{calls:#?}");
    assert_eq!(
        title(&the_check_run(&github, &commit)),
        "Waiting for image-scan"
    );
}

test_clock!(RACE_CLOCK, race_clock);

#[tokio::test(flavor = "multi_thread")]
async fn signals_at_once_make_one_check_run_that_ends_as_the_candidate_does() {
    RACE_CLOCK.store(eddo::idempotency::now_epoch(), SeqCst);
    let (s, github) = with_app("checks-race", race_clock).await;
    for n in 10..14 {
        let (commit, image) = (sha(n), digest(n));
        let events = [
            s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)),
            s.build("eddo-sast", &commit, "SUCCEEDED", None),
            s.scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
                .await,
        ];
        let (a, b, c) = tokio::join!(
            s.gate.handle(&events[0]),
            s.gate.handle(&events[1]),
            s.gate.handle(&events[2])
        );
        for r in [a, b, c] {
            r.unwrap();
        }
        // What an invocation could not finish (another held the record), the tick does.
        s.handle(&tick(eddo::idempotency::now_epoch() + 60)).await;
        let run = the_check_run(&github, &commit);
        assert_eq!(run.status, "completed", "{run:#?}");
        assert_eq!(run.conclusion.as_deref(), Some("success"));
    }
}

test_clock!(STRICT_CLOCK, strict_clock);
test_clock!(GITHUB_CLOCK, github_clock);

/// The stand-in refuses what GitHub refuses: a JWT another key signed, one issued in the
/// future, a token past its expiry (after which the App takes a new one and goes on).
#[tokio::test(flavor = "multi_thread")]
async fn the_stand_in_refuses_what_github_refuses() {
    use eddo::github::{App, AppKey, CheckRun, KeySource, Output, Status, Transport};
    let start = eddo::idempotency::now_epoch();
    STRICT_CLOCK.store(start, SeqCst);
    GITHUB_CLOCK.store(start, SeqCst);
    let github = GitHub::start(github_clock).await.unwrap();
    let other = GitHub::start(github_clock).await.unwrap();
    let transport = Transport::github(&github.url(), strict_clock).unwrap();
    let key = |secret: String| KeySource::Given(Arc::new(AppKey::from_secret(&secret).unwrap()));
    let run = CheckRun {
        name: "eddo gate".into(),
        head_sha: sha(7),
        external_id: "hello-world@x".into(),
        status: Status::InProgress,
        conclusion: None,
        started_at: None,
        completed_at: None,
        details_url: None,
        output: Output::new("t".into(), "s", None),
    };

    let forged = App::new(transport.clone(), key(other.app_secret()));
    let e = forged.create_check_run(REPO, &run).await.unwrap_err();
    assert_eq!(e.status, Some(401), "{e}");

    let mine = AppKey::from_secret(&github.app_secret()).unwrap();
    let early = transport
        .json::<Value>(
            http::Method::GET,
            "/repos/Codertocat/Hello-World/installation",
            &mine.jwt(start + 3600).unwrap(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(early.status, Some(401), "issued in the future: {early}");

    let app = App::new(transport, key(github.app_secret()));
    app.create_check_run(REPO, &run).await.unwrap();
    // GitHub's clock passes the token's hour; the App's, 400 s behind, still thinks it good.
    STRICT_CLOCK.store(start + 3201, SeqCst);
    GITHUB_CLOCK.store(start + 3601, SeqCst);
    app.create_check_run(REPO, &run).await.unwrap();
    let statuses: Vec<(String, u16)> = github
        .calls()
        .iter()
        .map(|c| (c.path.clone(), c.status))
        .collect();
    // The forged JWT and the early one, then the expired token.
    let refused: Vec<&str> = statuses
        .iter()
        .filter(|(_, s)| *s == 401)
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        refused,
        [
            "/repos/Codertocat/Hello-World/installation",
            "/repos/Codertocat/Hello-World/installation",
            "/repos/Codertocat/Hello-World/check-runs"
        ],
        "{statuses:#?}"
    );
    let issued = statuses
        .iter()
        .filter(|(p, _)| p.ends_with("/access_tokens"))
        .count();
    assert_eq!(issued, 2, "a new token after the refusal: {statuses:#?}");
}

test_clock!(COST_CLOCK, cost_clock);

/// What the App mode costs a candidate, side by side in one run on one stack: the same flow
/// (build, SAST, ECR scan, the deploy build's completion) through the gate without and with it.
/// The calls are asserted (one GitHub call per visible change; four table calls per change);
/// the times are printed for BENCHMARKS.md, never asserted.
#[tokio::test(flavor = "multi_thread")]
async fn what_check_runs_cost_a_candidate() {
    use eddo_local::meter::{Calls, Relay};
    use std::time::{Duration, Instant};
    COST_CLOCK.store(eddo::idempotency::now_epoch(), SeqCst);
    let (s, github) = with_app("checks-cost", cost_clock).await;
    let (sdk, config, policy) = s.local.as_function("scan-gate").await;
    let calls = Calls::default();
    let upstream = eddo_local::loopback::endpoint_addr(sdk.endpoint_url().unwrap()).unwrap();
    let relay = Relay::start(upstream, calls.clone()).await.unwrap();
    let metered = sdk.to_builder().endpoint_url(relay.endpoint()).build();
    let app = eddo::github::App::from_env(&function_env(&s.stack, "scan-gate"), &sdk, cost_clock)
        .unwrap();
    let both = eddo::policy::Policy::parse(&deployed_by("both")).unwrap();
    let gate = |github: Option<eddo::github::App>, policy: &eddo::policy::Policy| {
        Gate::new(&config, policy.clone(), &metered)
            .with_codebuild(stand_in(&sdk, &s.stack))
            .with_github(github)
            .with_clock(cost_clock)
    };
    const N: u32 = 10;
    let mut rows = Vec::new();
    let modes = [
        ("off", gate(None, &policy), 300, false),
        ("on", gate(app.clone(), &policy), 400, false),
        (
            "on, a job waiting on the environment",
            gate(app, &both),
            500,
            true,
        ),
    ];
    for (mode, gate, base, rule) in modes {
        let (mut aws, mut waited, mut wall, mut calls_on_github) =
            (0usize, Duration::ZERO, Vec::new(), 0usize);
        // One candidate first, not counted: the App's key, installation and token are read once
        // per warm function.
        for n in base..=base + N {
            let (commit, image) = (sha(n), digest(n));
            let scan = s
                .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
                .await;
            let events = [
                s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)),
                s.build("eddo-sast", &commit, "SUCCEEDED", None),
                scan,
            ];
            let before = github.calls().len();
            calls.take();
            let handle = async |e: &Value| {
                let at = Instant::now();
                gate.handle(e).await.unwrap();
                (at.elapsed(), calls.take())
            };
            let mut spent = Vec::new();
            if rule {
                github.wait_on(REPO, u64::from(n), ENV);
                let asked = protection_rule(&commit, u64::from(n), ENV, cost_clock());
                spent.push(handle(&asked).await);
            }
            for e in &events {
                spent.push(handle(e).await);
            }
            let finished = s.deploy_finished(&commit, "SUCCEEDED");
            spent.push(handle(&finished).await);
            if n == base {
                continue;
            }
            for (took, w) in spent {
                wall.push(took);
                aws += w.operations.len();
                waited += w.busy;
            }
            calls_on_github += github.calls().len() - before;
        }
        wall.sort();
        let total: Duration = wall.iter().sum();
        rows.push((
            mode,
            aws,
            calls_on_github,
            wall[wall.len() / 2],
            total,
            waited,
        ));
    }
    println!(
        "| App mode | AWS calls per candidate | GitHub calls per candidate | median per event | eddo's own and GitHub's time per candidate |"
    );
    println!("|---|---|---|---|---|");
    for (mode, aws, on_github, median, total, waited) in &rows {
        println!(
            "| {mode} | {:.1} | {:.1} | {:.1} ms | {:.1} ms |",
            *aws as f64 / f64::from(N),
            *on_github as f64 / f64::from(N),
            median.as_secs_f64() * 1000.0,
            (total.saturating_sub(*waited)).as_secs_f64() * 1000.0 / f64::from(N)
        );
    }
    let (off, on, ruled) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(off.2, 0, "no GitHub call without the App");
    // Created at the build, updated at the SAST, at the decision and at the deploy's end.
    assert_eq!(on.2 as u32, 4 * N, "one GitHub call per visible change");
    // Each change: the count, the lease, the candidate read again, the shown mark; the first
    // also its intent to create.
    assert_eq!(
        (on.1 - off.1) as u32,
        (4 * 4 + 1) * N,
        "DynamoDB calls the App mode adds per candidate"
    );
    // One answer per job waiting, at the decision.
    assert_eq!(
        ruled.2 as u32,
        5 * N,
        "the check run's four, and one answer"
    );
    // The rule recorded, taken, its candidate read (none yet) and let wait; nothing while the
    // candidate waits; at the decision, the rules owed looked up, the rule taken, its candidate
    // read and whether a rollback replaced it, the answer frozen and marked taken; after the
    // decision (the deploy's end), the look-up finds none owed.
    assert_eq!(
        (ruled.1 - on.1) as u32,
        (4 + 6 + 1) * N,
        "DynamoDB calls a job waiting on the environment adds per candidate"
    );
}

test_clock!(ROLLBACK_CLOCK, rollback_clock);

/// A rollback build that replaced a deployed release (as CodeBuild ran and describes it) appears
/// on that release's check run; a rollback event CodeBuild does not know changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_rollback_that_replaced_a_release_appears_on_its_check_run() {
    ROLLBACK_CLOCK.store(eddo::idempotency::now_epoch(), SeqCst);
    let (s, github) = with_app("checks-rollback", rollback_clock).await;
    let (commit, image) = (sha(8), digest(8));
    s.passes(&commit, &image).await;
    s.handle(&s.deploy_finished(&commit, "SUCCEEDED")).await;
    assert_eq!(title(&the_check_run(&github, &commit)), "Deployed");
    // A rollback event of a build CodeBuild never ran: not confirmed, nothing shown.
    let event = id();
    let real = s.stack.codebuild.ran(
        "eddo-rollback",
        &event,
        &sha(7),
        &[
            ("EDDO_SERVICE", "hello-world"),
            ("EDDO_COMMIT_SHA", &sha(7)),
            ("EDDO_REPLACED_COMMIT_SHA", &commit),
            ("EDDO_ALARM_NAME", "hello-world-5xx"),
        ],
        eddo_local::codebuild::Plan::succeed(),
    );
    let mut forged = eddo_local::fixtures::state_of(&real, &id());
    let forged_id = format!("eddo-rollback:{}", id());
    forged["detail"]["build-id"] =
        format!("arn:aws:codebuild:us-east-1:123456789012:build/{forged_id}").into();
    let report = s.handle(&forged).await;
    assert!(
        report.outcome.contains("not confirmed by CodeBuild"),
        "{report:?}"
    );
    assert_eq!(title(&the_check_run(&github, &commit)), "Deployed");
    // alarm-rollback's real rollback build of the service: the release's check run says so.
    s.handle(&eddo_local::fixtures::state_of(&real, &event))
        .await;
    let run = the_check_run(&github, &commit);
    assert_eq!(title(&run), "Deployed, then rolled back");
    assert_eq!(
        run.conclusion.as_deref(),
        Some("success"),
        "the gate's decision stands"
    );
    let summary = run.output["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!(
            "Then rolled back to {} after alarm hello-world-5xx by build `{}`.",
            &sha(7)[..7],
            real.id
        )),
        "{summary}"
    );
}
