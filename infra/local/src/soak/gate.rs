//! The gate's flows: candidates whose signals arrive shuffled and twice, while an operator
//! moves the service's deploy to another project and back; whose deadline passes for some,
//! whose deploys finish; then the invariants, for every candidate, read from the table's own
//! items, the stand-in's builds and the bus.

use std::collections::BTreeSet;
use std::time::Duration;

use eddo::policy::live::{Live, Policies};
use eddo_scan_gate::Gate;
use serde_json::{Value, json};

use super::{Handler, Lambda, Played, World, advance, clock, distinct, tick};
use crate::LocalError;
use crate::codebuild::Build;
use crate::fixtures::{finished, image_scan, ran};
use crate::stack::table::text;

/// The example policy's deploy project, and the one the soak's policy edits move it to and back.
const DEPLOY: &str = crate::stack::LOCAL_DEPLOY;
pub(super) const NEXT_DEPLOY: &str = "eddo-deploy-next";

/// What one candidate is meant to meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Every signal passes: it deploys.
    Deploys,
    /// SAST fails: it is blocked.
    Blocked,
    /// The scan never comes: it times out.
    TimesOut,
}

struct Flow {
    commit: String,
    image: String,
    fate: Fate,
}

/// Plays the gate's flows and checks the invariants.
pub(super) async fn play(world: &World<'_>) -> Result<Played, LocalError> {
    let f = world.function("scan-gate").await?;
    // The policy as the function reads it in AWS: from SSM (through the faults), once per TTL
    // of the soak's clock, so an edit takes hold mid-flow.
    let live = Live::new(&f.sdk, &f.config.policy, f.config.policy_ttl).with_clock(clock);
    let gate = Gate::new(&f.config, Policies::live(live), &f.sdk)
        .with_codebuild(f.codebuild)
        .with_clock(clock);
    let mut lambda = Lambda::new("scan-gate", Handler::Gate(Box::new(gate)), world);
    let seed = world.opts.seed;
    let flows: Vec<Flow> = (0..world.opts.flows)
        .map(|n| Flow {
            commit: format!("{:08x}{:032x}", seed as u32, n),
            image: format!("sha256:{:08x}{:056x}", seed as u32, n),
            fate: match world.faults.below(10) {
                0 | 1 => Fate::Blocked,
                2 => Fate::TimesOut,
                _ => Fate::Deploys,
            },
        })
        .collect();
    // Every signal of every flow, shuffled, some delivered twice.
    let codebuild = &world.stack.codebuild;
    let mut signals: Vec<Value> = flows
        .iter()
        .flat_map(|f| signals_of(codebuild, f))
        .collect();
    // ECR ran the scans their events report (the gate counts a scan only as ECR confirms it).
    for e in &signals {
        crate::ecr::ran(&world.stack.sdk, e).await?;
    }
    lambda.shuffle(&mut signals);
    // A third of the signals, then the operator moves the deploy to another project; a third,
    // then back; the rest. Decisions made under one policy are resumed, swept and completed
    // under another.
    let third = signals.len().div_ceil(3).max(1);
    for (n, part) in signals.chunks(third).enumerate() {
        if n > 0 {
            let project = if n == 1 { NEXT_DEPLOY } else { DEPLOY };
            world
                .stack
                .put_policy(&crate::stack::local_policy_deploying_to(project)?)
                .await?;
            world.faults.count("policy edited mid-flow");
        }
        lambda.deliver_all(part.to_vec()).await;
    }

    // The deadline passes: the schedule's ticks time out what still waits.
    advance(31 * 60);
    let t = tick();
    lambda.deliver_all(vec![t.clone(), t]).await;

    // The deploy builds finish; their completions arrive, some twice.
    world.stack.codebuild.settle(Duration::from_secs(30)).await;
    let mut completed = BTreeSet::new();
    complete(world, &mut lambda, &mut completed).await;

    // The alarm on the dead-letter queue fires; an operator redrives it once AWS is healthy.
    advance(3600);
    lambda.redrive().await;
    // The schedule's next tick finishes what dead invocations left with no event to come.
    advance(60);
    world.faults.enable(false);
    lambda.invoke_healthy(&tick(), "the last tick").await;
    world.faults.enable(true);
    world.stack.codebuild.settle(Duration::from_secs(30)).await;
    // A deploy the redrive or the tick started finishes too, and its completion arrives.
    let late = complete(world, &mut lambda, &mut completed).await;
    lambda.redrive().await;
    lambda.played.notes.push(format!(
        "deploys started after the first completions: {late}"
    ));

    let events = world.published("eddo.gate").await?;
    check(world, &flows, &events, &mut lambda.played).await?;
    Ok(lambda.played)
}

/// The deploy builds not yet completed finish; their completions arrive (some twice): how many.
async fn complete(
    world: &World<'_>,
    lambda: &mut Lambda,
    completed: &mut BTreeSet<String>,
) -> usize {
    let done: Vec<Value> = deploys(world)
        .iter()
        .filter(|b| completed.insert(b.id.clone()))
        .map(|b| finished(b, "SUCCEEDED", &format!("done-{}", b.id)))
        .collect();
    let n = done.len();
    lambda.deliver_all(done).await;
    n
}

/// The invariants, for every candidate.
async fn check(
    world: &World<'_>,
    flows: &[Flow],
    events: &[Value],
    report: &mut Played,
) -> Result<(), LocalError> {
    let builds = deploys(world);
    let decisions = [
        "Deployment Started",
        "Deployment Blocked",
        "Deployment Timed Out",
        "Deployment Would Start",
    ];
    let dead: BTreeSet<String> = report
        .dead_lettered
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    report.notes.push(format!(
        "deploy builds: {} in {DEPLOY}, {} in {NEXT_DEPLOY}",
        builds.iter().filter(|b| b.project == DEPLOY).count(),
        builds.iter().filter(|b| b.project == NEXT_DEPLOY).count()
    ));
    for f in flows {
        let v = &mut report.violations;
        let started: Vec<&Build> = builds
            .iter()
            .filter(|b| b.env("EDDO_COMMIT_SHA") == Some(f.commit.as_str()))
            .collect();
        if started.len() > 1 {
            v.push(format!(
                "{}: {} deploy builds started",
                f.commit,
                started.len()
            ));
        }
        let said: Vec<&Value> = events
            .iter()
            .filter(|e| e["detail"]["commit_sha"] == f.commit.as_str())
            .filter(|e| decisions.contains(&e["detail-type"].as_str().unwrap_or_default()))
            .collect();
        let (distinct, copies) = distinct(&said);
        report.republished += copies;
        if distinct.len() != 1 {
            v.push(format!(
                "{}: {} distinct decision events ({:?})",
                f.commit,
                distinct.len(),
                said.iter().map(|e| &e["detail-type"]).collect::<Vec<_>>()
            ));
        }
        // The candidate and its ledger as the table holds them.
        let items = world
            .stack
            .items_under("candidate#hello-world", &f.commit)
            .await?;
        let Some(record) = items
            .iter()
            .find(|i| text(i, "sk") == Some(f.commit.as_str()))
        else {
            v.push(format!("{}: no candidate recorded", f.commit));
            continue;
        };
        let state = text(record, "state").unwrap_or_default();
        if record.contains_key("outbox") {
            v.push(format!("{}: events still owed at the end", f.commit));
        }
        // A signal dead-lettered before the deadline reaches the gate only with the redrive,
        // after it: timing out is then the right answer, and said once like any other.
        let late = signal_ids(f).iter().any(|id| dead.contains(id.as_str()));
        let fate = if late && state == "timed_out" {
            Fate::TimesOut
        } else {
            f.fate
        };
        let expected = match fate {
            Fate::Deploys => "deployed",
            Fate::Blocked => "blocked",
            Fate::TimesOut => "timed_out",
        };
        if state != expected {
            v.push(format!(
                "{}: ended {state} where {fate:?} was due",
                f.commit
            ));
        }
        // The ledger's entries, each its own item beside the candidate.
        let kinds: BTreeSet<&str> = items
            .iter()
            .filter(|i| text(i, "sk").is_some_and(|sk| sk.contains("#evidence#")))
            .filter_map(|i| text(i, "kind"))
            .collect();
        let due: &[&str] = match fate {
            Fate::TimesOut => &["build", "sast"],
            _ => &["build", "sast", "image-scan"],
        };
        for k in due {
            if !kinds.contains(k) {
                v.push(format!("{}: its {k} signal was lost", f.commit));
            }
        }
        for e in &said {
            if e["detail-type"] == "Deployment Started"
                && !started
                    .iter()
                    .any(|b| e["detail"]["build_id"] == b.id.as_str())
            {
                v.push(format!(
                    "{}: Deployment Started names build {} that was not started",
                    f.commit, e["detail"]["build_id"]
                ));
            }
        }
        let succeeded = events
            .iter()
            .filter(|e| e["detail-type"] == "Deployment Succeeded")
            .filter(|e| e["detail"]["commit_sha"] == f.commit.as_str())
            .map(|e| e["detail"].to_string())
            .collect::<BTreeSet<_>>()
            .len();
        let due = usize::from(fate == Fate::Deploys);
        if succeeded != due {
            v.push(format!(
                "{}: {succeeded} distinct Deployment Succeeded where {due} was due",
                f.commit
            ));
        }
    }
    Ok(())
}

/// Every deploy build, in either project the policy named.
fn deploys(world: &World<'_>) -> Vec<Build> {
    let mut all = world.stack.codebuild.builds_of(DEPLOY);
    all.extend(world.stack.codebuild.builds_of(NEXT_DEPLOY));
    all
}

/// The event ids of a flow's signals ([`signals_of`]).
fn signal_ids(f: &Flow) -> Vec<String> {
    let mut ids = vec![
        format!("eddo-build-{}", f.commit),
        format!("eddo-sast-{}", f.commit),
    ];
    if f.fate != Fate::TimesOut {
        ids.push(format!("scan-{}", f.commit));
    }
    ids
}

/// A flow's signals: the build (with its image) and SAST, which ran in CodeBuild, and the scan
/// unless it never comes (their ids [`signal_ids`]).
fn signals_of(codebuild: &crate::codebuild::CodeBuild, f: &Flow) -> Vec<Value> {
    let sast = if f.fate == Fate::Blocked {
        "FAILED"
    } else {
        "SUCCEEDED"
    };
    let mut out = vec![
        ran(
            codebuild,
            "eddo-build",
            &f.commit,
            "SUCCEEDED",
            Some(&f.image),
            &format!("eddo-build-{}", f.commit),
        ),
        ran(
            codebuild,
            "eddo-sast",
            &f.commit,
            sast,
            None,
            &format!("eddo-sast-{}", f.commit),
        ),
    ];
    if f.fate != Fate::TimesOut {
        out.push(image_scan(
            &f.commit,
            &f.image,
            json!({"HIGH": 1, "MEDIUM": 4}),
            &format!("scan-{}", f.commit),
        ));
    }
    out
}
