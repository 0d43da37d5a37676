//! alarm-rollback's flows: release after release of the example policy's service, each met by
//! alarms (in both shapes: the EventBridge state change and the alarm's own action, shuffled
//! and twice), whose rollback build succeeds or fails; or an alarm that comes too late to roll
//! anything back. Then the invariants, for every alarm and every release.

use std::time::Duration;

use aws_sdk_dynamodb::types::TransactWriteItem;
use eddo::history::{self, History, VersionKind};
use eddo::names::ServiceName;
use eddo_alarm_rollback::Rollbacks;
use serde_json::Value;

use super::{Handler, Lambda, Played, World, advance, clock, distinct};
use crate::LocalError;
use crate::codebuild::Build;
use crate::fixtures::{SERVICE, alarm, alarm_action, finished, version};

/// What one release is meant to meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Its alarms roll it back, and the rollback build succeeds.
    RolledBack,
    /// Its alarms start a rollback whose build fails: the release stays live.
    RollbackFails,
    /// Its alarm comes after the bake window: nothing is rolled back.
    Baked,
}

/// One release and the alarms that meet it.
struct Episode {
    commit: String,
    fate: Fate,
    /// The alarm changes: the name and the time each went into ALARM.
    alarms: Vec<(String, u64)>,
    /// The rollback build started for the release, if any.
    build: Option<Build>,
}

/// Plays the releases one after another (far enough apart that no cooldown or window holds one
/// back) and checks the invariants.
pub(super) async fn play(world: &World<'_>) -> Result<Played, LocalError> {
    let f = world.function("alarm-rollback").await?;
    let rollbacks = Rollbacks::new(&f.config, f.policy, &f.sdk)
        .with_codebuild(f.codebuild)
        .with_clock(clock);
    let mut lambda = Lambda::new(
        "alarm-rollback",
        Handler::Rollbacks(Box::new(rollbacks)),
        world,
    );
    let service = ServiceName::parse(SERVICE).expect("the example policy's service");
    let seed = world.opts.seed as u32;
    let base = format!("{seed:08x}{:032x}", u128::MAX >> 1);
    deploy(world, &service, &base, clock()).await?;
    let mut episodes = Vec::new();
    for n in 0..world.opts.flows {
        // Past the cooldown and far enough apart that the window never fills.
        advance(9 * 3600);
        let commit = format!("{seed:08x}{:032x}", 0xa1a0_0000_u128 + n as u128);
        let live_at = clock();
        deploy(world, &service, &commit, live_at).await?;
        let fate = match world.faults.below(10) {
            0 | 1 => Fate::RollbackFails,
            2 => Fate::Baked,
            _ => Fate::RolledBack,
        };
        let first = if fate == Fate::Baked {
            live_at + 61 * 60
        } else {
            live_at + 120
        };
        advance(first - live_at);
        // One alarm, or two of the service's alarms at once.
        let mut alarms = vec![("hello-world-5xx".to_string(), first)];
        if world.faults.chance(0.5) {
            alarms.push(("hello-world-latency".to_string(), first + 1));
        }
        let mut events: Vec<Value> = alarms
            .iter()
            .flat_map(|(name, at)| {
                let e = alarm(name, "OK", "ALARM", *at);
                let action = alarm_action(&e);
                [e, action]
            })
            .collect();
        // The alarms really breached: CloudWatch shows them in ALARM.
        for e in &events {
            crate::cloudwatch::ran(&world.stack.sdk, e).await?;
        }
        lambda.shuffle(&mut events);
        lambda.deliver_all(events).await;
        lambda.redrive().await;

        // The rollback build finishes as its fate says; its completion arrives, maybe twice.
        world.stack.codebuild.settle(Duration::from_secs(30)).await;
        let build = rollbacks_of(world)
            .into_iter()
            .find(|b| b.env("EDDO_REPLACED_COMMIT_SHA") == Some(commit.as_str()));
        if let Some(b) = &build {
            let status = if fate == Fate::RollbackFails {
                "FAILED"
            } else {
                "SUCCEEDED"
            };
            advance(600);
            lambda
                .deliver_all(vec![finished(b, status, &format!("done-{}", b.id))])
                .await;
            lambda.redrive().await;
        }
        episodes.push(Episode {
            commit,
            fate,
            alarms,
            build,
        });
    }
    let events = world.published("eddo.rollback").await?;
    check(world, &service, &episodes, &events, &mut lambda.played).await?;
    Ok(lambda.played)
}

/// `commit` goes live at `at`, as the gate records a deploy.
async fn deploy(
    world: &World<'_>,
    service: &ServiceName,
    commit: &str,
    at: u64,
) -> Result<(), LocalError> {
    let v = version(commit, at, VersionKind::Deploy);
    let update = history::go_live(&world.stack.table, service, &v)
        .map_err(|e| LocalError::Setup(e.to_string()))?;
    world
        .dynamodb()
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(update).build())
        .send()
        .await
        .map_err(|e| LocalError::Setup(format!("recording a deploy: {e}")))?;
    Ok(())
}

fn rollbacks_of(world: &World<'_>) -> Vec<Build> {
    world.stack.codebuild.builds_of("eddo-rollback")
}

/// The invariants, for every alarm and release.
async fn check(
    world: &World<'_>,
    service: &ServiceName,
    episodes: &[Episode],
    events: &[Value],
    report: &mut Played,
) -> Result<(), LocalError> {
    let builds = rollbacks_of(world);
    let decisions = [
        "Rollback Started",
        "Rollback Skipped",
        "Rollback Would Start",
    ];
    for ep in episodes {
        let v = &mut report.violations;
        let started: Vec<&Build> = builds
            .iter()
            .filter(|b| b.env("EDDO_REPLACED_COMMIT_SHA") == Some(ep.commit.as_str()))
            .collect();
        let due = usize::from(ep.fate != Fate::Baked);
        if started.len() != due {
            v.push(format!(
                "release {}: {} rollback builds started where {due} was due ({:?})",
                ep.commit,
                started.len(),
                ep.fate
            ));
        }
        // Every alarm change has exactly one decision, and said once.
        let mut starts = 0;
        for (name, at) in &ep.alarms {
            let changed_at =
                alarm(name, "OK", "ALARM", *at)["detail"]["state"]["timestamp"].clone();
            let said: Vec<&Value> = events
                .iter()
                .filter(|e| decisions.contains(&e["detail-type"].as_str().unwrap_or_default()))
                .filter(|e| {
                    e["detail"]["alarm"]["name"] == name.as_str()
                        && e["detail"]["alarm"]["changed_at"] == changed_at
                })
                .collect();
            let (distinct, copies) = distinct(&said);
            report.republished += copies;
            if distinct.len() != 1 {
                v.push(format!(
                    "alarm {name} at {at}: {} distinct decisions ({:?})",
                    distinct.len(),
                    said.iter().map(|e| &e["detail-type"]).collect::<Vec<_>>()
                ));
            }
            if said.iter().any(|e| e["detail-type"] == "Rollback Started") {
                starts += 1;
            }
            for e in said
                .iter()
                .filter(|e| e["detail-type"] == "Rollback Started")
            {
                if !started
                    .iter()
                    .any(|b| e["detail"]["build_id"] == b.id.as_str())
                {
                    v.push(format!(
                        "alarm {name}: Rollback Started names build {} that was not started",
                        e["detail"]["build_id"]
                    ));
                }
            }
        }
        if starts > 1 {
            v.push(format!(
                "release {}: {starts} alarms were each told a rollback started",
                ep.commit
            ));
        }
        // Every rollback build that finished is said to have, once.
        if let Some(b) = &ep.build {
            let ended: Vec<&Value> = events
                .iter()
                .filter(|e| {
                    matches!(
                        e["detail-type"].as_str(),
                        Some("Rollback Succeeded" | "Rollback Failed")
                    )
                })
                .filter(|e| e["detail"]["build_id"] == b.id.as_str())
                .collect();
            let (distinct, copies) = distinct(&ended);
            report.republished += copies;
            let due = if ep.fate == Fate::RollbackFails {
                "Rollback Failed"
            } else {
                "Rollback Succeeded"
            };
            if distinct.len() != 1 || ended.iter().any(|e| e["detail-type"] != due) {
                v.push(format!(
                    "release {}: {:?} where one {due} was due",
                    ep.commit,
                    ended.iter().map(|e| &e["detail-type"]).collect::<Vec<_>>()
                ));
            }
        }
    }
    // The history ends settled: nothing owed, no hold left, and every release rolled back is
    // marked so.
    let table = &world.stack.table;
    let history = History::read(&world.dynamodb(), table, service)
        .await
        .map_err(|e| LocalError::Setup(e.to_string()))?;
    for ep in episodes.iter().filter(|e| e.fate == Fate::RolledBack) {
        if !history.rolled_back.contains(&ep.commit) {
            report.violations.push(format!(
                "release {}: rolled back but not marked so",
                ep.commit
            ));
        }
    }
    let held = history::held_by(&world.dynamodb(), table, service, clock())
        .await
        .map_err(|e| LocalError::Setup(e.to_string()))?;
    if let Some(holder) = held {
        report
            .violations
            .push(format!("the service is still held by {holder} at the end"));
    }
    Ok(())
}
