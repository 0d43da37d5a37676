//! alarm-rollback, replayed in memory: each alarm change read with its own reader and decided
//! with its own rules, against each service's history as the recorded deployments and rollbacks
//! moved it, and the rollbacks this policy itself would have started (cooldown, count, hold).

use std::collections::{BTreeMap, BTreeSet};

use eddo::history::{History, Version};
use eddo::policy::{Policy, RollbackMode};
use eddo_alarm_rollback::alarm::AlarmChange;
use eddo_alarm_rollback::decide::{Decision, Record, Skip, Trigger, decide, trigger};
use serde_json::Value;

use super::gate::time_of;
use super::{Decided, Decisions};

/// What an alarm change is called in the output: the alarm, its new state and when.
fn about(name: &str, state: &str, at: &str) -> String {
    format!("rollback {name} {state} at {at}")
}

fn skipped(reasons: &[Skip]) -> Decided {
    Decided {
        what: "skip".into(),
        why: reasons.iter().map(|s| s.code().to_string()).collect(),
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(7)]
}

pub(super) struct Sim<'p> {
    policy: &'p Policy,
    histories: BTreeMap<String, History>,
    records: BTreeMap<String, Record>,
    /// Alarm changes seen (both shapes of one change, or a redelivery, decide once).
    seen: BTreeSet<(String, String)>,
    decided: Decisions,
    last: u64,
}

impl<'p> Sim<'p> {
    pub(super) fn new(policy: &'p Policy) -> Sim<'p> {
        Sim {
            policy,
            histories: BTreeMap::new(),
            records: BTreeMap::new(),
            seen: BTreeSet::new(),
            decided: Decisions::new(),
            last: 0,
        }
    }

    pub(super) fn feed(&mut self, event: &Value) {
        let at = time_of(event).unwrap_or(self.last).max(self.last);
        self.last = at;
        let detail_type = event["detail-type"].as_str().unwrap_or_default();
        match (event["source"].as_str().unwrap_or_default(), detail_type) {
            ("eddo.gate", "Deployment Succeeded") | ("eddo.rollback", "Rollback Succeeded") => {
                self.went_live(&event["detail"]);
                return;
            }
            ("eddo.rollback", "Rollback Failed") => {
                if let Some(service) = event["detail"]["service"].as_str() {
                    self.records.entry(service.to_string()).or_default().holder = None;
                }
                return;
            }
            _ => {}
        }
        // CloudWatch's two shapes, and the alerts the webhook received.
        let is_alarm = matches!(
            detail_type,
            "CloudWatch Alarm State Change" | "Alert Received"
        ) || event.get("alarmData").is_some();
        if !is_alarm {
            return;
        }
        let Ok(alarm) = AlarmChange::read(event) else {
            return;
        };
        if !self
            .seen
            .insert((alarm.identity().to_string(), alarm.change()))
        {
            return;
        }
        let key = about(
            &alarm.name,
            alarm.state.value.as_str(),
            &alarm.state.timestamp,
        );
        let decided = match trigger(self.policy, &alarm) {
            Trigger::Quiet(_) => return,
            Trigger::Skip(_, skip) => skipped(&[skip]),
            Trigger::Act(service) => {
                let rollback = service.rollback.as_ref().expect("trigger checked it");
                let name = service.name.to_string();
                let history = self.histories.get(&name).cloned().unwrap_or_default();
                let record = self.records.entry(name.clone()).or_default();
                let alarm_at = alarm.state.at().unwrap_or(at).min(at);
                match decide(&name, rollback, &history, record, alarm_at, at) {
                    Decision::Skip(reasons) => skipped(&reasons),
                    Decision::RollBack { target, .. } => {
                        if rollback.mode == RollbackMode::Enforce {
                            record.starts.push(at);
                            record.holder = Some(format!("replayed rollback of {name}"));
                        }
                        Decided {
                            what: match rollback.mode {
                                RollbackMode::Enforce => "roll back",
                                RollbackMode::DryRun => "would roll back (dry-run)",
                            }
                            .into(),
                            why: vec![format!("to {}", short(&target.commit))],
                        }
                    }
                }
            }
        };
        self.decided.insert(key, decided);
    }

    /// A deployment or rollback went live: the history moves as the event says.
    fn went_live(&mut self, d: &Value) {
        let Some(service) = d["service"].as_str() else {
            return;
        };
        let Ok(live) = serde_json::from_value::<Version>(d["live"].clone()) else {
            return;
        };
        let history = self.histories.entry(service.to_string()).or_default();
        *history = history.after(&live);
        if let Ok(good) = serde_json::from_value::<Version>(d["last_known_good"].clone()) {
            history.last_known_good = Some(good);
        }
        // A rollback that finished no longer holds the service.
        if let Some(r) = self.records.get_mut(service) {
            r.holder = None;
        }
    }

    pub(super) fn finish(self) -> Decisions {
        self.decided
    }
}

/// alarm-rollback's decisions recorded in `events`.
pub(super) fn recorded(events: &[Value]) -> Decisions {
    let mut out = Decisions::new();
    for e in events.iter().filter(|e| e["source"] == "eddo.rollback") {
        let d = &e["detail"];
        let decided = match e["detail-type"].as_str().unwrap_or_default() {
            "Rollback Started" | "Rollback Would Start" => Decided {
                what: if e["detail-type"] == "Rollback Started" {
                    "roll back"
                } else {
                    "would roll back (dry-run)"
                }
                .into(),
                why: vec![format!(
                    "to {}",
                    short(d["target"]["commit"].as_str().unwrap_or_default())
                )],
            },
            "Rollback Skipped" => Decided {
                what: "skip".into(),
                why: d["codes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            _ => continue,
        };
        let a = &d["alarm"];
        let (Some(name), Some(state), Some(at)) = (
            a["name"].as_str(),
            a["state"].as_str(),
            a["changed_at"].as_str(),
        ) else {
            continue;
        };
        out.entry(about(name, state, at)).or_insert(decided);
    }
    out
}
