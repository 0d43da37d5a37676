//! The holes an adversarial reading found in "once" (issue 29), each shown by the model checker
//! (`model/`) and proven closed here against moto and the CodeBuild stand-in, by what they
//! recorded: the stand-in's builds, the bus, the table's raw items.
//!
//! - a deploy build that finishes before its start is recorded is recorded, never dropped;
//! - a required signal failing after an unrecorded start is late: the deploy is not withdrawn;
//! - a resume past CodeBuild's token window, in a project crowded with other builds, finds its
//!   build instead of starting a second;
//! - two deliveries of one completion in the same second say it once;
//! - a late signal leaves a decided candidate's unsaid decision in the sweep's index;
//! - a tenant request redelivered after a terminal state changes nothing;
//! - the sweep serves every candidate around a poisoned record;
//! - a rollback build that finishes before its start is recorded is recorded and said;
//! - a rollback past its hold is not started by a late redrive;
//! - a deploy whose project the policy moved while it ran completes as decided (the soak found
//!   it first);
//! - a rollback's completion owed under a dead invocation's lease is retried until said, not
//!   answered done (the long soak found it first).

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use eddo::idempotency::now_epoch;
use eddo_local::codebuild::Plan;
use eddo_local::fixtures::detail_types as types;
use serde_json::json;

use crate::gate_recovery::{LET_GO, fail_through, gate};
use crate::harness::Faults;
use crate::harness::gate::*;
use crate::harness::{rollback, tenants};

/// The write that records a deploy's build and its Deployment Started.
const RECORD_BUILD: &str = "SET build_id";

fn text(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    eddo_local::stack::table::text(item, k).map(str::to_string)
}

/// A tenant's state as the registry's raw item holds it (read as the administrator).
async fn tenant_state(stack: &eddo_local::stack::Stack, tenant: &str) -> String {
    let item = crate::harness::table_item(stack, &format!("tenant#{tenant}"), "tenant")
        .await
        .expect("the tenant's item");
    text(&item, "state").unwrap_or_default()
}

async fn candidate_item(
    s: &Setup,
    commit: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    crate::harness::table_item(&s.stack, "candidate#hello-world", commit)
        .await
        .expect("the candidate's item")
}

test_clock!(FAST, fast);

/// StartBuild applied, recording it failed, and the build failed fast (a bad buildspec): its
/// completion records the start and the failure, and says both; before, it was answered `Ok`
/// ("not the candidate's deploy build") and the candidate stayed deploying for good. While the
/// invocation that started it still holds its lease, the completion is retried, not dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_build_finished_before_its_start_was_recorded_is_recorded_and_said() {
    FAST.store(now_epoch(), SeqCst);
    let s = setup("once-fast", None).await;
    // Let go after the failure: the completion may take the record at once.
    fail_through(&s, fast, 2900, &[("UpdateItem", RECORD_BUILD)]).await;
    let commit = sha(2900);
    let deploys = s.deploys();
    assert_eq!(deploys.len(), 1, "StartBuild applied");
    let decision = text(&candidate_item(&s, &commit).await, "decision").unwrap();
    assert_eq!(deploys[0].env("EDDO_DECISION_ID"), Some(decision.as_str()));

    let healthy = gate(&s, fast, &Faults::default(), None).await;
    let done = s.deploy_finished(&commit, "FAULT");
    let r = healthy.handle(&done).await.unwrap();
    assert_eq!(
        r.published,
        ["Deployment Started", "Deployment Failed"],
        "{r:?}"
    );
    let item = candidate_item(&s, &commit).await;
    assert_eq!(text(&item, "state").as_deref(), Some("deploy_failed"));
    assert_eq!(text(&item, "build_id"), Some(deploys[0].id.clone()));
    assert!(healthy.handle(&done).await.unwrap().published.is_empty());
    let said = s.published().await;
    assert_eq!(types(&said), ["Deployment Started", "Deployment Failed"]);
    assert_eq!(said[0]["detail"]["build_id"], deploys[0].id.as_str());

    // Killed instead (its lease held): the completion is retried until the lease is gone.
    fail_through(
        &s,
        fast,
        2901,
        &[("UpdateItem", RECORD_BUILD), ("UpdateItem", LET_GO)],
    )
    .await;
    let done = s.deploy_finished(&sha(2901), "SUCCEEDED");
    let err = healthy.handle(&done).await.unwrap_err();
    assert!(matches!(err, eddo::Error::InProgress(_)), "{err}");
    FAST.fetch_add(eddo::outbox::DEFAULT_LEASE_SECS, SeqCst);
    let r = healthy.handle(&done).await.unwrap();
    assert_eq!(
        r.published,
        ["Deployment Started", "Deployment Succeeded"],
        "{r:?}"
    );
    assert_eq!(
        s.stack.codebuild.calls("eddo-deploy"),
        2,
        "one per decision"
    );
}

test_clock!(LATE, late);

/// StartBuild applied and its record was lost; a required signal fails after the lease: the
/// deploy runs, so the failure is late, the build is recorded and said, and nothing says
/// Blocked. Before, the candidate was withdrawn (Deployment Blocked) over the running build.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_an_unrecorded_start_is_late_not_a_block() {
    LATE.store(now_epoch(), SeqCst);
    let s = setup("once-late", None).await;
    fail_through(&s, late, 2910, &[("UpdateItem", RECORD_BUILD)]).await;
    let commit = sha(2910);
    assert_eq!(s.deploys().len(), 1);

    LATE.fetch_add(60, SeqCst);
    let healthy = gate(&s, late, &Faults::default(), None).await;
    let r = healthy
        .handle(&s.build("eddo-sast", &commit, "FAILED", None))
        .await
        .unwrap();
    assert_eq!(
        r.published,
        ["Deployment Started", "Late Signal Failed"],
        "{r:?}"
    );
    let said = s.published().await;
    assert!(!types(&said).contains(&"Deployment Blocked"), "{said:#?}");
    let item = candidate_item(&s, &commit).await;
    assert_eq!(text(&item, "state").as_deref(), Some("deploying"));
    assert_eq!(text(&item, "build_id"), Some(s.deploys()[0].id.clone()));
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 1);
}

test_clock!(MOVED, moved);

/// The project the operator moves the service's deploy to.
const NEXT_DEPLOY: &str = "eddo-deploy-next";

/// The operator moves the service's deploy to another project while two decided deploys run in
/// the old one: one recorded, one whose record was lost. Their completions, read under the new
/// policy, are their decisions' own: recorded and said, each Deployment Started naming the
/// project its build ran in; the next candidate deploys in the new project. Before (the soak's
/// policy edits found it), the gate read them as builds of a project no longer in the policy
/// and dropped them, and the candidates stayed deploying for good.
#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_whose_project_moved_while_it_ran_completes_as_decided() {
    MOVED.store(now_epoch(), SeqCst);
    let s = setup_with("once-moved", None, &[]).await;
    // The operator tags the new project first: the gate's grant reaches it by its tag.
    s.stack
        .codebuild
        .tag_project(NEXT_DEPLOY, eddo::projects::ROLE_TAG, "deploy");
    let before = gate(&s, moved, &Faults::default(), None).await;
    deploy(&s, &before, 2940).await;
    fail_through(&s, moved, 2941, &[("UpdateItem", RECORD_BUILD)]).await;
    assert_eq!(s.deploys().len(), 2, "both started in the old project");
    s.published().await;

    s.stack
        .put_policy(&eddo_local::stack::local_policy_deploying_to(NEXT_DEPLOY).unwrap())
        .await
        .unwrap();
    let after = gate(&s, moved, &Faults::default(), None).await;
    let r = after
        .handle(&s.deploy_finished(&sha(2940), "SUCCEEDED"))
        .await
        .unwrap();
    assert_eq!(r.published, ["Deployment Succeeded"], "{r:?}");
    let r = after
        .handle(&s.deploy_finished(&sha(2941), "SUCCEEDED"))
        .await
        .unwrap();
    assert_eq!(
        r.published,
        ["Deployment Started", "Deployment Succeeded"],
        "{r:?}"
    );
    let said = s.published().await;
    let started = said
        .iter()
        .find(|e| e["detail-type"] == "Deployment Started")
        .unwrap();
    assert_eq!(started["detail"]["project"], "eddo-deploy", "{started:#}");
    for n in [2940, 2941] {
        let item = candidate_item(&s, &sha(n)).await;
        assert_eq!(text(&item, "state").as_deref(), Some("deployed"));
    }

    // Decided under the new policy: it deploys in the new project.
    deploy(&s, &after, 2942).await;
    let said = s.published().await;
    assert_eq!(said[0]["detail"]["project"], NEXT_DEPLOY, "{said:#?}");
    assert_eq!(s.stack.codebuild.calls("eddo-deploy"), 2);
    assert_eq!(s.stack.codebuild.calls(NEXT_DEPLOY), 1);
}

/// Candidate `n`'s build, SAST and scan, all passing, handled by `g`: it deploys.
async fn deploy(s: &Setup, g: &eddo_scan_gate::Gate, n: u32) {
    let (commit, image) = (sha(n), digest(n));
    g.handle(&s.build("eddo-build", &commit, "SUCCEEDED", Some(&image)))
        .await
        .unwrap();
    g.handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await
        .unwrap();
    let scan = s
        .scanned(&commit, &image, serde_json::from_str(CLEAN).unwrap())
        .await;
    let r = g.handle(&scan).await.unwrap();
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
}

test_clock!(CROWD, crowd);

/// StartBuild applied and its record was lost; then 150 other builds of the shared deploy
/// project, and six minutes (CodeBuild forgets the token). The next signal finds the decision's
/// build on the second page and records it: one build. Before, one page was read, the token
/// was forgotten, and a second build started.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_finds_its_build_past_the_token_window_in_a_crowded_project() {
    CROWD.store(now_epoch(), SeqCst);
    let s = setup("once-crowd", None).await;
    fail_through(&s, crowd, 2920, &[("UpdateItem", RECORD_BUILD)]).await;
    let ours = s.deploys()[0].id.clone();
    for n in 0..150 {
        s.stack.codebuild.ran(
            "eddo-deploy",
            &format!("other-{n:04}"),
            &sha(3000 + n),
            &[("EDDO_SERVICE", "other")],
            Plan::succeed(),
        );
    }
    s.stack.codebuild.advance(Duration::from_secs(6 * 60));
    CROWD.fetch_add(6 * 60, SeqCst);

    let healthy = gate(&s, crowd, &Faults::default(), None).await;
    let r = healthy
        .handle(&s.build("eddo-sast", &sha(2920), "SUCCEEDED", None))
        .await
        .unwrap();
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    assert_eq!(
        s.stack.codebuild.calls("eddo-deploy"),
        1,
        "found, not started"
    );
    let said = s.published().await;
    assert_eq!(said[0]["detail"]["build_id"], ours.as_str());
}

test_clock!(SAME, same);

/// Two deliveries of one completion, in flight at once in the same second: one says it. Before,
/// a lease's identity was its second, and both took the other's lease for their own.
#[tokio::test(flavor = "multi_thread")]
async fn two_deliveries_of_a_completion_in_one_second_say_it_once() {
    SAME.store(now_epoch(), SeqCst);
    let s = setup("once-same", None).await;
    let healthy = gate(&s, same, &Faults::default(), None).await;
    let (commit, image) = (sha(2930), digest(2930));
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
    healthy.handle(&last).await.unwrap();
    s.published().await;
    let done = s.deploy_finished(&commit, "SUCCEEDED");
    let other = gate(&s, same, &Faults::default(), None).await;
    for _ in 0..3 {
        let (a, b) = tokio::join!(healthy.handle(&done), other.handle(&done));
        a.unwrap();
        b.unwrap();
    }
    assert_eq!(types(&s.published().await), ["Deployment Succeeded"]);
}

test_clock!(OWED, owed);

/// A decision recorded and not said (its invocation died publishing), then a late signal of the
/// same commit: the candidate stays in the sweep's index of owed work, and the tick after the
/// lease says it. Before, the late signal filed it under `closed` and nothing said it.
#[tokio::test(flavor = "multi_thread")]
async fn a_late_signal_leaves_an_unsaid_decision_to_the_sweep() {
    OWED.store(now_epoch(), SeqCst);
    let s = setup("once-owed", None).await;
    fail_through(
        &s,
        owed,
        2940,
        &[("PutEvents", "Deployment Started"), ("UpdateItem", LET_GO)],
    )
    .await;
    let commit = sha(2940);

    let healthy = gate(&s, owed, &Faults::default(), None).await;
    OWED.fetch_add(5, SeqCst);
    let r = healthy
        .handle(&s.build("eddo-sast", &commit, "SUCCEEDED", None))
        .await
        .unwrap();
    assert!(r.published.is_empty(), "the lease holds: {r:?}");
    let item = candidate_item(&s, &commit).await;
    assert!(
        text(&item, "open_pk").is_some_and(|p| p.starts_with("owed#")),
        "{item:?}"
    );

    OWED.fetch_add(eddo::outbox::DEFAULT_LEASE_SECS, SeqCst);
    let tick = json!({"id": id(), "source": "aws.events", "detail-type": "Scheduled Event", "time": eddo::time::rfc3339(owed()), "detail": {}});
    let r = healthy.handle(&tick).await.unwrap();
    assert_eq!(r.published, ["Deployment Started"], "{r:?}");
    assert_eq!(types(&s.published().await), ["Deployment Started"]);
    let item = candidate_item(&s, &commit).await;
    assert_eq!(text(&item, "open_pk"), None, "out of the index once said");
}

/// A request redelivered (EventBridge's retries, a redrive from the dead-letter queue) after its
/// tenant reached a terminal state changes nothing: a failed tenant is not provisioned again,
/// and an old offboarding request does not deprovision the tenant onboarded since. A new request
/// still does what it asks.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_request_is_acted_on_once_whatever_the_tenant_became() {
    let s = tenants::setup("once-tenant").await;
    s.stack
        .codebuild
        .plan(tenants::PROVISION, Plan::fail("BUILD"));
    s.stack
        .codebuild
        .plan(tenants::PROVISION, Plan::fail("BUILD"));
    let request = tenants::onboard("wayne", "basic", tenants::basic_values());
    s.handle(&request).await;
    s.complete_builds().await;
    s.complete_builds().await;
    assert_eq!(tenant_state(&s.stack, "wayne").await, "failed");
    assert_eq!(
        s.builds(tenants::PROVISION).len(),
        2,
        "the attempt and its retry"
    );
    s.published().await;

    // The same request again, hours later: nothing.
    let r = s.handle(&request).await;
    assert!(r.published.is_empty(), "{r:?}");
    assert!(r.outcome.contains("acted on before"), "{r:?}");
    assert_eq!(s.builds(tenants::PROVISION).len(), 2);
    assert_eq!(tenant_state(&s.stack, "wayne").await, "failed");

    // A new request provisions it again; its offboarding, redelivered after a re-onboarding,
    // does not deprovision it.
    s.handle(&tenants::onboard("wayne", "basic", tenants::basic_values()))
        .await;
    s.complete_builds().await;
    let off = tenants::offboard("wayne");
    s.handle(&off).await;
    s.complete_builds().await;
    assert_eq!(tenant_state(&s.stack, "wayne").await, "deprovisioned");
    s.handle(&tenants::onboard("wayne", "basic", tenants::basic_values()))
        .await;
    s.complete_builds().await;
    assert_eq!(tenant_state(&s.stack, "wayne").await, "active");
    let deprovisions = s.builds(tenants::DEPROVISION).len();
    let r = s.handle(&off).await;
    assert!(r.outcome.contains("acted on before"), "{r:?}");
    assert_eq!(s.builds(tenants::DEPROVISION).len(), deprovisions);
    assert_eq!(tenant_state(&s.stack, "wayne").await, "active");
}

/// How many overdue candidates the sweep test plays (`EDDO_SWEEP_CANDIDATES`), and across how
/// many services of a generated policy (`EDDO_SWEEP_SERVICES`; BENCHMARKS.md has the figures
/// at 10,000 over 100).
fn sweep_size() -> (u32, usize) {
    let var = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    (
        var("EDDO_SWEEP_CANDIDATES", 150),
        var("EDDO_SWEEP_SERVICES", 3) as usize,
    )
}

/// Overdue candidates across every shard and several services, and a poisoned index entry (a
/// commit no version can read) at the head of the oldest shard: each tick serves what its time
/// allows around it, the poisoned one is reported and skipped every tick, and every candidate
/// times out, once. Before, one unreadable record failed the whole tick, every minute. Each
/// tick's time and AWS calls are printed (`--nocapture`).
#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_serves_every_candidate_around_a_poisoned_record() {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    use eddo_local::fixtures::{policy_of_services, service_name};
    let s = setup("once-sweep", None).await;
    let db = aws_sdk_dynamodb::Client::new(&s.stack.sdk);
    // Every candidate overdue from the start, the oldest first (one second apart): a sweep of
    // any size is measured on what is owed, not on deadlines still to come.
    let old = now_epoch() - 3600 - u64::from(sweep_size().0);
    let (count, services) = sweep_size();
    let put = |service: String, sk: String, open_pk: String, deadline: u64| {
        db.put_item()
            .table_name(&s.stack.table)
            .item("pk", S(format!("candidate#{service}")))
            .item("sk", S(sk.clone()))
            .item("service", S(service.clone()))
            .item("state", S("waiting".into()))
            .item("seq", N("0".into()))
            .item("first_at", N(deadline.to_string()))
            .item("deadline", N(deadline.to_string()))
            .item("correlation_id", S(format!("{service}@{sk}")))
            .item("open_pk", S(open_pk))
            .item("open_sk", S(format!("{deadline:012}#{service}#{sk}")))
            .send()
    };
    put(
        service_name(0),
        "not-a-commit".into(),
        "open#0".into(),
        old - 60,
    )
    .await
    .unwrap();
    for n in 0..count {
        let commit = sha(5000 + n);
        let shard =
            eddo_scan_gate::store::shard_of(&eddo::names::CommitSha::parse(&commit).unwrap());
        let service = service_name(n as usize % services);
        put(service, commit, format!("open#{shard}"), old + u64::from(n))
            .await
            .unwrap();
    }
    // The gate as its role, with the generated policy, its DynamoDB and EventBridge calls
    // counted.
    let (sdk, config, _) = s.as_function("scan-gate").await;
    let policy = eddo::policy::Policy::parse(&policy_of_services(services).unwrap()).unwrap();
    let calls = crate::harness::Calls::default();
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let publisher = eddo::publish::Publisher::new(
        events,
        &config.common.event_bus_name,
        config.common.max_entry_bytes,
    );
    let gate = eddo_scan_gate::Gate::with_publisher(&config, policy, &sdk, publisher)
        .with_dynamodb(
            crate::harness::counted_dynamodb(&sdk, &calls),
            &config.common.table_name,
        )
        .with_codebuild(crate::harness::stand_in(&sdk, &s.stack));
    let tick = || json!({"id": id(), "source": "aws.events", "detail-type": "Scheduled Event", "time": eddo::time::rfc3339(now_epoch()), "detail": {}});
    let mut timed_out = 0;
    let mut ticks = 0;
    while timed_out < count as usize && ticks < 400 {
        let started = std::time::Instant::now();
        let r = gate.handle(&tick()).await.unwrap();
        ticks += 1;
        let mut by_call = std::collections::BTreeMap::<String, usize>::new();
        for c in calls.take() {
            *by_call.entry(c).or_default() += 1;
        }
        eprintln!(
            "tick {ticks}: {} timed out in {:?}; calls {by_call:?}",
            r.published.len(),
            started.elapsed()
        );
        assert!(r.outcome.contains("1 failed, skipped"), "{r:?}");
        assert!(r.outcome.contains("not-a-commit"), "{r:?}");
        timed_out += r.published.len();
    }
    let said = s.published().await;
    assert_eq!(said.len(), count as usize, "each candidate once");
    assert!(
        said.iter()
            .all(|e| e["detail-type"] == "Deployment Timed Out")
    );
    let r = gate.handle(&tick()).await.unwrap();
    assert!(r.published.is_empty(), "{r:?}");
}

/// A rollback whose StartBuild applied and whose record was lost, and whose build then
/// finished: its completion records the start and the outcome, and says both. Before, it was
/// "not started by eddo", the hold stayed until it lapsed and the history never moved.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_build_finished_before_its_start_was_recorded_is_recorded_and_said() {
    let s = rollback::setup("once-rb-fast", None).await;
    let now = now_epoch();
    s.deployed(&sha(2950), &sha(2951), now - 300).await;
    let failing = failing_rollbacks(&s, "settled").await;
    let fired = eddo_local::fixtures::alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    eddo_local::cloudwatch::ran(&s.stack.sdk, &fired)
        .await
        .unwrap();
    assert!(failing.handle(&fired).await.unwrap_err().is_retryable());
    let builds = s.rollback_builds();
    assert_eq!(builds.len(), 1, "StartBuild applied");
    assert!(builds[0].env("EDDO_DECISION_ID").is_some());

    s.stack.codebuild.finish(&builds[0].id, "SUCCEEDED");
    let done = eddo_local::fixtures::finished(&builds[0], "SUCCEEDED", &id());
    let r = s.handle(&done).await;
    assert_eq!(
        r.published,
        ["Rollback Started", "Rollback Succeeded"],
        "{r:?}"
    );
    assert!(s.handle(&done).await.published.is_empty());
    assert_eq!(
        types(&s.published().await),
        ["Rollback Started", "Rollback Succeeded"]
    );
    // The table's own items: the restored version is live, and no hold is left.
    let history = crate::harness::table_item(&s.stack, "service#hello-world", "history")
        .await
        .expect("the history");
    let live: serde_json::Value = serde_json::from_str(&text(&history, "live").unwrap()).unwrap();
    assert_eq!(live["commit"], sha(2950));
    let record = crate::harness::table_item(&s.stack, "service#hello-world", "rollback")
        .await
        .expect("the rollback record");
    let held: u64 = record["held_until"].as_n().unwrap().parse().unwrap();
    assert!(held <= now_epoch(), "no hold left: {held}");
}

/// alarm-rollback's settle (the rollback's build recorded with the Rollback Started it owes,
/// one transaction) applies and its answer is lost: the SDK sends it again and the copy fails
/// its condition. The invocation reads the change back, finds it settled under its own lease,
/// and says Rollback Started itself. Before, it answered "recorded by another invocation" and
/// left the event owed under its own live lease: the other shape of the alarm change, delivered
/// next, answered "in progress", and with no delivery after that the rollback was never said
/// (the long soak's run 3, seed 2012, in its redrive).
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_whose_recorded_start_lost_its_answer_says_it_itself() {
    use eddo_local::faults::{Fault, FaultRelay, Faults as Relayed};
    let s = rollback::setup("once-rb-lost", None).await;
    let now = now_epoch();
    s.deployed(&sha(2980), &sha(2981), now - 300).await;
    let config = crate::harness::policy_config(&s.stack, "alarm-rollback");
    let sdk = crate::harness::function_sdk(&s.stack, "alarm-rollback").await;
    let policy = eddo::policy::load(&sdk, &config.policy).await.unwrap();
    // DynamoDB through a relay that applies the settle and answers it 500.
    let faults = Relayed::new(1, 0.0);
    faults.script("SET outbox = :outbox, settled = :t", Fault::LostAnswer);
    let moto = eddo_local::loopback::endpoint_addr(sdk.endpoint_url().unwrap()).unwrap();
    let relay = FaultRelay::start(moto, faults.clone()).await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(relay.endpoint())
            .build(),
    );
    let rollbacks = eddo_alarm_rollback::Rollbacks::new(&config, policy, &sdk)
        .with_dynamodb(dynamodb, &config.common.table_name)
        .with_codebuild(crate::harness::stand_in(&sdk, &s.stack));
    let fired = eddo_local::fixtures::alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    eddo_local::cloudwatch::ran(&s.stack.sdk, &fired)
        .await
        .unwrap();
    let r = rollbacks.handle(&fired).await.unwrap();
    assert_eq!(
        faults
            .counts()
            .get("answer lost after the request was applied"),
        Some(&1),
        "the settle's answer was lost"
    );
    assert_eq!(r.published, ["Rollback Started"], "{r:?}");
    assert_eq!(s.rollback_builds().len(), 1, "one build");
    assert_eq!(types(&s.published().await), ["Rollback Started"]);
    // The change's own item: settled, nothing left owed.
    let (pk, sk) = (
        format!("alarm#{}", fired["resources"][0].as_str().unwrap()),
        format!("{}#ALARM", now - 10),
    );
    let change = crate::harness::table_item(&s.stack, &pk, &sk)
        .await
        .expect("the alarm change's record");
    assert!(
        change.contains_key("settled") && !change.contains_key("outbox"),
        "{change:?}"
    );
}

test_clock!(LEASED, leased);

/// A rollback build's completion recorded with its Rollback Succeeded owed, and the invocation
/// that recorded it dies before PutEvents, holding the record's lease. Its redelivery while the
/// lease holds is retried (InProgress), and after the lease the event is said, once. Before, the
/// redelivery was answered "already recorded" and, alarm-rollback having no sweep, the event was
/// never said (the long soak's seed 1034 found it).
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_completion_owed_under_a_dead_lease_is_said_not_dropped() {
    LEASED.store(now_epoch(), SeqCst);
    let s = rollback::setup("once-rb-owed", None).await;
    s.deployed(&sha(2970), &sha(2971), leased() - 300).await;
    let config = crate::harness::policy_config(&s.stack, "alarm-rollback");
    let sdk = crate::harness::function_sdk(&s.stack, "alarm-rollback").await;
    let codebuild = crate::harness::stand_in(&sdk, &s.stack);
    let rollbacks = async |faults: &Faults| {
        let policy = eddo::policy::load(&sdk, &config.policy).await.unwrap();
        let events = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&sdk)
                .interceptor(faults.clone())
                .build(),
        );
        eddo_alarm_rollback::Rollbacks::new(&config, policy, &sdk)
            .with_dynamodb(faults.dynamodb(&sdk), &config.common.table_name)
            .with_publisher(eddo::publish::Publisher::new(
                events,
                &config.common.event_bus_name,
                config.common.max_entry_bytes,
            ))
            .with_codebuild(codebuild.clone())
            .with_clock(leased)
    };
    let healthy = rollbacks(&Faults::default()).await;
    let fired = eddo_local::fixtures::alarm("hello-world-5xx", "OK", "ALARM", leased() - 10);
    eddo_local::cloudwatch::ran(&s.stack.sdk, &fired)
        .await
        .unwrap();
    let r = healthy.handle(&fired).await.unwrap();
    assert_eq!(r.published, ["Rollback Started"], "{r:?}");
    let build = s.rollback_builds().pop().unwrap();
    s.stack.codebuild.finish(&build.id, "SUCCEEDED");
    let done = eddo_local::fixtures::finished(&build, "SUCCEEDED", &id());

    // Recorded, then dead before PutEvents: it never lets go of the lease.
    let dying = Faults::default();
    dying.fail("PutEvents", "Rollback Succeeded", usize::MAX);
    dying.fail("UpdateItem", LET_GO, usize::MAX);
    assert!(rollbacks(&dying).await.handle(&done).await.is_err());
    let record = crate::harness::table_item(&s.stack, "service#hello-world", "rollback")
        .await
        .unwrap();
    assert!(record.contains_key("outbox"), "the completion is owed");

    let err = healthy.handle(&done).await.unwrap_err();
    assert!(matches!(err, eddo::Error::InProgress(_)), "{err}");
    LEASED.fetch_add(eddo::outbox::DEFAULT_LEASE_SECS + 1, SeqCst);
    let r = healthy.handle(&done).await.unwrap();
    assert_eq!(r.published, ["Rollback Succeeded"], "{r:?}");
    assert!(healthy.handle(&done).await.unwrap().published.is_empty());
    assert_eq!(
        types(&s.published().await),
        ["Rollback Started", "Rollback Succeeded"]
    );
}

/// A rollback decided, its StartBuild throttled, and its alarm change redelivered after the
/// rollback's hold ended: nothing is started over what may have gone live since; the rollback
/// is said failed, with the reason. Before, the late redrive started it.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_past_its_hold_is_not_started_late() {
    use aws_smithy_mocks::{RuleMode, mock_client};
    let s = rollback::setup("once-rb-late", None).await;
    let now = now_epoch();
    s.deployed(&sha(2960), &sha(2961), now - 300).await;
    let config = crate::harness::policy_config(&s.stack, "alarm-rollback");
    let sdk = crate::harness::function_sdk(&s.stack, "alarm-rollback").await;
    let policy = eddo::policy::load(&sdk, &config.policy).await.unwrap();
    let rule = crate::harness::throttled_start_build();
    let throttled = eddo_alarm_rollback::Rollbacks::new(&config, policy.clone(), &sdk)
        .with_codebuild(mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&rule]));
    let fired = eddo_local::fixtures::alarm("hello-world-5xx", "OK", "ALARM", now - 10);
    eddo_local::cloudwatch::ran(&s.stack.sdk, &fired)
        .await
        .unwrap();
    assert!(throttled.handle(&fired).await.unwrap_err().is_retryable());

    // The dead-letter queue's redrive, two hours later (the example policy holds for an hour).
    LATE_REDRIVE.store(now + 2 * 3600, SeqCst);
    let redrive = eddo_alarm_rollback::Rollbacks::new(&config, policy, &sdk)
        .with_codebuild(crate::harness::stand_in(&sdk, &s.stack))
        .with_clock(late_redrive);
    let r = redrive.handle(&fired).await.unwrap();
    assert_eq!(r.published, ["Rollback Failed"], "{r:?}");
    assert!(s.rollback_builds().is_empty(), "nothing started late");
    let said = s.published().await;
    assert!(
        said[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("its hold ended"),
        "{said:#?}"
    );
}

test_clock!(LATE_REDRIVE, late_redrive);

/// alarm-rollback as its role, its DynamoDB calls whose request holds `fragment` failing.
async fn failing_rollbacks(s: &rollback::Setup, fragment: &str) -> eddo_alarm_rollback::Rollbacks {
    let config = crate::harness::policy_config(&s.stack, "alarm-rollback");
    let sdk = crate::harness::function_sdk(&s.stack, "alarm-rollback").await;
    let policy = eddo::policy::load(&sdk, &config.policy).await.unwrap();
    let lost = Faults::default();
    lost.fail("TransactWriteItems", fragment, usize::MAX);
    eddo_alarm_rollback::Rollbacks::new(&config, policy, &sdk)
        .with_dynamodb(lost.dynamodb(&sdk), &config.common.table_name)
        .with_codebuild(crate::harness::stand_in(&sdk, &s.stack))
}
