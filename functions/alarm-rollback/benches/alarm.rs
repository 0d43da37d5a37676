//! alarm-rollback's CPU time per alarm, without network: read a real corpus state change (the
//! EventBridge shape and the alarm action's `alarmData` shape), find its service in the example
//! policy, judge the transition and decide against a service's history. `make bench` runs it;
//! BENCHMARKS.md records the figures.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use eddo::history::{History, VersionKind};
use eddo::policy::Policy;
use eddo_alarm_rollback::alarm::AlarmChange;
use eddo_alarm_rollback::decide::{Decision, Record, Trigger, decide, trigger};
use eddo_local::fixtures::{sample, version};
use eddo_local::moto::project_root;
use serde_json::{Value, json};

/// One alarm's CPU work: what the handler does besides its AWS calls.
fn handle(policy: &Policy, event: &Value, history: &History, record: &Record) -> bool {
    let alarm = AlarmChange::read(event).unwrap();
    let Trigger::Act(service) = trigger(policy, &alarm) else {
        panic!("the bench's alarm does not act")
    };
    let at = alarm.state.at().unwrap();
    let rollback = service.rollback.as_ref().unwrap();
    matches!(
        decide(service.name.as_str(), rollback, history, record, at, at + 1),
        Decision::RollBack { .. }
    )
}

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(project_root().join("infra/policy/example.yaml")).unwrap();
    let policy = Policy::parse(&text).unwrap();
    let mut event = sample("cloudwatch-alarm-state-change.json");
    event["detail"]["alarmName"] = json!("hello-world-5xx");
    let mut action = sample("cloudwatch-alarm-action-metric.json");
    action["alarmData"]["alarmName"] = json!("hello-world-5xx");
    // The release went live 5 minutes before the alarm, inside the bake window; the one before
    // it is known good.
    let at = AlarmChange::read(&event).unwrap().state.at().unwrap();
    let history = History {
        live: Some(version("bbbbbbbb", at - 300, VersionKind::Deploy)),
        last_known_good: Some(version("aaaaaaaa", at - 86_400, VersionKind::Deploy)),
        rolled_back: Default::default(),
    };
    let record = Record::default();
    assert!(handle(&policy, &event, &history, &record));

    let mut g = c.benchmark_group("alarm-rollback");
    g.sample_size(50);
    g.bench_function(
        "EventBridge state change into ALARM, deciding a rollback",
        |b| b.iter(|| handle(&policy, black_box(&event), &history, &record)),
    );
    let action_at = AlarmChange::read(&action).unwrap().state.at().unwrap();
    let action_history = History {
        live: Some(version("bbbbbbbb", action_at - 300, VersionKind::Deploy)),
        last_known_good: Some(version("aaaaaaaa", action_at - 86_400, VersionKind::Deploy)),
        rolled_back: Default::default(),
    };
    assert!(handle(&policy, &action, &action_history, &record));
    g.bench_function(
        "alarm action (alarmData) into ALARM, deciding a rollback",
        |b| b.iter(|| handle(&policy, black_box(&action), &action_history, &record)),
    );
    g.bench_function("the decision alone: a cooldown and a full window", |b| {
        let busy = Record {
            holder: None,
            starts: vec![at - 600, at - 3_000, at - 6_000],
        };
        let service = policy.service("hello-world").unwrap();
        let rollback = service.rollback.as_ref().unwrap();
        b.iter(|| {
            decide(
                "hello-world",
                rollback,
                &history,
                black_box(&busy),
                at,
                at + 1,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
