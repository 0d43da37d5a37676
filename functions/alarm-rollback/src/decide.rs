//! The rollback decisions, pure: does this state change call for anything, which service is it
//! about, and may that service be rolled back now. Every "no" has a reason a person reads.

use eddo::history::{History, Version, VersionKind};
use eddo::policy::{Policy, Rollback, Service};

use crate::alarm::{AlarmChange, AlarmState};
pub use crate::skip::Skip;

/// The tag that names an alarm's service.
pub const SERVICE_TAG: &str = "eddo:service";

/// CloudWatch's clock and ours may differ by this much.
pub const CLOCK_SLACK_SECS: u64 = 60;

/// What a state change calls for before the service's history is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger<'p> {
    /// A transition that can roll `service` back.
    Act(&'p Service),
    /// Nothing, and nothing to report (OK, a repeat, a state the policy ignores).
    Quiet(String),
    /// No rollback, reported with its reason.
    Skip(Option<&'p Service>, Skip),
}

/// Which service the alarm is about: its `eddo:service` tag, else the policy's alarm patterns;
/// for an alert, the services whose `rollback.alerts` take its sender and labels.
pub fn service_of<'p>(policy: &'p Policy, alarm: &AlarmChange) -> Result<&'p Service, Skip> {
    let (found, none) = match &alarm.alert {
        Some(a) => (
            policy.alert(&a.sender, &a.labels),
            Skip::UnmatchedAlert {
                alert: alarm.name.clone(),
                sender: a.sender.clone(),
            },
        ),
        None => {
            if let Some(tagged) = alarm.tags.get(SERVICE_TAG) {
                return policy.service(tagged).ok_or_else(|| Skip::UnknownService {
                    service: tagged.clone(),
                });
            }
            (
                policy.alarm(&alarm.name, alarm.arn.as_deref()).collect(),
                Skip::UnknownAlarm {
                    alarm: alarm.name.clone(),
                },
            )
        }
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(none),
        many => Err(Skip::Ambiguous {
            alarm: alarm.name.clone(),
            services: many.iter().map(|s| s.name.to_string()).collect(),
        }),
    }
}

/// Whether this state change can start a rollback: a transition into ALARM (or into
/// INSUFFICIENT_DATA, if the service's policy says so), with its actions neither muted nor
/// suppressed. A composite alarm whose actions were suppressed and now fire counts as a
/// transition, though its state stays ALARM.
pub fn trigger<'p>(policy: &'p Policy, alarm: &AlarmChange) -> Trigger<'p> {
    let state = alarm.state.value;
    if state == AlarmState::Ok {
        return Trigger::Quiet(format!("alarm {} is OK", alarm.name));
    }
    let service = match service_of(policy, alarm) {
        Ok(s) => s,
        Err(skip) => return Trigger::Skip(None, skip),
    };
    let Some(rollback) = &service.rollback else {
        return Trigger::Skip(
            Some(service),
            Skip::NoRollbackPolicy {
                service: service.name.to_string(),
            },
        );
    };
    if state == AlarmState::InsufficientData && !rollback.on_insufficient_data {
        return Trigger::Quiet(format!(
            "alarm {} has insufficient data; {} does not roll back on it (rollback.on_insufficient_data)",
            alarm.name, service.name
        ));
    }
    if let Some(previous) = &alarm.previous
        && previous.value == state
        && previous.actions_suppressed_by.is_none()
    {
        return Trigger::Quiet(format!(
            "alarm {} was already {}",
            alarm.name,
            state.as_str()
        ));
    }
    if let Some(by) = &alarm.muted {
        return Trigger::Skip(Some(service), Skip::Muted { by: by.clone() });
    }
    if let Some(by) = &alarm.state.actions_suppressed_by {
        return Trigger::Skip(
            Some(service),
            Skip::Suppressed {
                by: by.clone(),
                reason: alarm.state.actions_suppressed_reason.clone(),
            },
        );
    }
    Trigger::Act(service)
}

/// The service's rollback record as the decision needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The build holding the service's deployments now, if one does.
    pub holder: Option<String>,
    /// When recent rollbacks started (epoch seconds), oldest first.
    pub starts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per invocation, moved once
pub enum Decision {
    RollBack { target: Version, replacing: Version },
    Skip(Vec<Skip>),
}

/// May the service be rolled back now, for an alarm that changed state at `alarm_at`: every
/// reason it may not, or the version to restore.
pub fn decide(
    service: &str,
    rollback: &Rollback,
    history: &History,
    record: &Record,
    alarm_at: u64,
    now: u64,
) -> Decision {
    let mut no = Vec::new();
    if let Some(build_id) = &record.holder {
        no.push(Skip::InProgress {
            build_id: build_id.clone(),
        });
    }
    match &history.live {
        None => no.push(Skip::NoDeployment {
            service: service.to_string(),
        }),
        Some(live) if live.kind == VersionKind::Rollback => no.push(Skip::LiveIsRollback {
            commit: live.commit.clone(),
            replaced: live.replaced.clone(),
        }),
        Some(live) => {
            let started_at = live.started_at.unwrap_or(live.at);
            if alarm_at + CLOCK_SLACK_SECS < started_at {
                no.push(Skip::AlarmBeforeDeployment {
                    alarm_at,
                    started_at,
                });
            } else if alarm_at > live.at + u64::from(rollback.bake_minutes) * 60 {
                no.push(Skip::OutsideBakeWindow {
                    live_at: live.at,
                    bake_minutes: rollback.bake_minutes,
                });
            }
        }
    }
    match (&history.last_known_good, &history.live) {
        (None, _) => no.push(Skip::NoKnownGood {
            service: service.to_string(),
        }),
        (Some(good), Some(live)) if good.commit == live.commit => no.push(Skip::SameVersion {
            commit: good.commit.clone(),
        }),
        _ => {}
    }
    if let Some(last) = record.starts.iter().max() {
        let until = last + u64::from(rollback.cooldown_minutes) * 60;
        if now < until {
            no.push(Skip::Cooldown {
                last_started_at: *last,
                until,
            });
        }
    }
    let window_start = now.saturating_sub(u64::from(rollback.window_hours) * 3_600);
    let count = record.starts.iter().filter(|s| **s > window_start).count();
    if count >= rollback.max_rollbacks as usize {
        no.push(Skip::TooMany {
            count,
            max: rollback.max_rollbacks,
            window_hours: rollback.window_hours,
        });
    }
    match (no.is_empty(), &history.live, &history.last_known_good) {
        (true, Some(live), Some(good)) => Decision::RollBack {
            target: good.clone(),
            replacing: live.clone(),
        },
        _ => Decision::Skip(no),
    }
}

/// The starts the window still counts, with `now` added: what the record keeps.
pub fn starts_after(record: &Record, rollback: &Rollback, now: u64) -> Vec<u64> {
    let keep_from = now.saturating_sub(u64::from(rollback.window_hours) * 3_600);
    let mut starts: Vec<u64> = record
        .starts
        .iter()
        .copied()
        .filter(|s| *s > keep_from)
        .collect();
    starts.push(now);
    starts
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddo::policy::RollbackMode;
    use proptest::prelude::*;

    const HOUR: u64 = 3_600;
    const T0: u64 = 1_800_000_000;

    fn policy() -> Rollback {
        Rollback {
            alarms: vec![],
            alerts: vec![],
            bake_minutes: 60,
            cooldown_minutes: 30,
            max_rollbacks: 3,
            window_hours: 24,
            on_insufficient_data: false,
            hold_minutes: 60,
            mode: RollbackMode::Enforce,
        }
    }

    fn version(commit: char, at: u64, kind: VersionKind) -> Version {
        Version {
            commit: commit.to_string().repeat(40),
            digest: None,
            build_id: format!("eddo-deploy:{commit}"),
            at,
            kind,
            correlation_id: None,
            replaced: None,
            started_at: Some(at - 120),
        }
    }

    /// v2 went live at T0, replacing v1.
    fn history() -> History {
        History {
            live: Some(version('2', T0, VersionKind::Deploy)),
            last_known_good: Some(version('1', T0 - 24 * HOUR, VersionKind::Deploy)),
            rolled_back: Default::default(),
        }
    }

    fn codes(d: &Decision) -> Vec<&'static str> {
        match d {
            Decision::Skip(s) => s.iter().map(Skip::code).collect(),
            Decision::RollBack { .. } => vec![],
        }
    }

    #[test]
    fn an_alarm_inside_the_bake_window_restores_the_last_known_good() {
        let d = decide(
            "svc",
            &policy(),
            &history(),
            &Record::default(),
            T0 + 600,
            T0 + 610,
        );
        let Decision::RollBack { target, replacing } = d else {
            panic!("{d:?}")
        };
        assert_eq!(target.commit, "1".repeat(40));
        assert_eq!(replacing.commit, "2".repeat(40));
    }

    #[test]
    fn each_rule_says_no_in_its_own_words() {
        let p = policy();
        let h = history();
        let none = Record::default();
        let at = T0 + 600;
        let cases: Vec<(&str, History, Record, u64, u64, &str)> = vec![
            (
                "no-deployment",
                History::default(),
                none.clone(),
                at,
                at,
                "no deployment of svc is recorded",
            ),
            (
                "live-is-rollback",
                History {
                    live: Some(Version {
                        replaced: Some("2".repeat(40)),
                        ..version('1', T0, VersionKind::Rollback)
                    }),
                    ..h.clone()
                },
                none.clone(),
                at,
                at,
                "the live version 1111111 is itself a rollback (of 2222222); eddo does not roll back a rollback",
            ),
            (
                "alarm-before-deployment",
                h.clone(),
                none.clone(),
                T0 - 3_600,
                at,
                "before the live version's deployment started at",
            ),
            (
                "outside-bake-window",
                h.clone(),
                none.clone(),
                T0 + 61 * 60,
                T0 + 61 * 60,
                "more than the 60-minute bake window ago",
            ),
            (
                "no-known-good",
                History {
                    last_known_good: None,
                    ..h.clone()
                },
                none.clone(),
                at,
                at,
                "svc has no earlier known-good version to restore",
            ),
            (
                "same-version",
                History {
                    last_known_good: h.live.clone(),
                    ..h.clone()
                },
                none.clone(),
                at,
                at,
                "the last known-good version 2222222 is the live one",
            ),
            (
                "in-progress",
                h.clone(),
                Record {
                    holder: Some("eddo-rollback:9".into()),
                    starts: vec![at - 60],
                },
                at,
                at,
                "a rollback is already in progress (eddo-rollback:9)",
            ),
            (
                "cooldown",
                h.clone(),
                Record {
                    holder: None,
                    starts: vec![at - 29 * 60],
                },
                at,
                at,
                "the cooldown lasts until",
            ),
            (
                "too-many",
                h.clone(),
                Record {
                    holder: None,
                    starts: vec![at - 20 * HOUR, at - 10 * HOUR, at - 5 * HOUR],
                },
                at,
                at,
                "3 automatic rollbacks in the last 24 h reach the maximum of 3",
            ),
        ];
        for (code, history, record, alarm_at, now, words) in cases {
            let d = decide("svc", &p, &history, &record, alarm_at, now);
            let Decision::Skip(skips) = &d else {
                panic!("{code}: {d:?}")
            };
            let skip = skips
                .iter()
                .find(|s| s.code() == code)
                .unwrap_or_else(|| panic!("{code}: {skips:?}"));
            assert!(skip.to_string().contains(words), "{code}: {skip}");
        }
    }

    #[test]
    fn every_reason_is_listed_not_only_the_first() {
        let h = History {
            live: Some(version('1', T0, VersionKind::Rollback)),
            last_known_good: Some(version('1', T0 - HOUR, VersionKind::Deploy)),
            rolled_back: Default::default(),
        };
        let record = Record {
            holder: None,
            starts: vec![T0 - 60],
        };
        let d = decide("svc", &policy(), &h, &record, T0 + 60, T0 + 60);
        assert_eq!(codes(&d), ["live-is-rollback", "same-version", "cooldown"]);
    }

    #[test]
    fn an_alarm_during_the_deploy_build_counts_and_one_just_after_the_window_does_not() {
        let p = policy();
        // The deploy build switched traffic before it reported success.
        let during = decide("svc", &p, &history(), &Record::default(), T0 - 60, T0);
        assert!(matches!(during, Decision::RollBack { .. }), "{during:?}");
        let edge = T0 + 3_600;
        let at_edge = decide("svc", &p, &history(), &Record::default(), edge, edge);
        assert!(matches!(at_edge, Decision::RollBack { .. }), "{at_edge:?}");
        let after = decide(
            "svc",
            &p,
            &history(),
            &Record::default(),
            edge + 1,
            edge + 1,
        );
        assert_eq!(codes(&after), ["outside-bake-window"]);
    }

    #[test]
    fn old_rollbacks_leave_the_window() {
        let p = policy();
        let record = Record {
            holder: None,
            starts: vec![T0 - 30 * HOUR, T0 - 20 * HOUR, T0 - 10 * HOUR],
        };
        let now = T0 + 600;
        assert!(matches!(
            decide("svc", &p, &history(), &record, now, now),
            Decision::RollBack { .. }
        ));
        let kept = starts_after(&record, &p, now);
        assert_eq!(kept, vec![T0 - 20 * HOUR, T0 - 10 * HOUR, now]);
    }

    proptest! {
        /// Whatever the record and the times, a rollback is only decided when every rule holds.
        #[test]
        fn a_rollback_is_decided_only_when_every_rule_holds(
            holder in proptest::option::of("[a-z]{1,8}"),
            starts in proptest::collection::vec(0u64..(48 * HOUR), 0..6),
            alarm_offset in 0u64..(3 * HOUR),
            now_offset in 0u64..(3 * HOUR),
            live_is_rollback in any::<bool>(),
        ) {
            let p = policy();
            let mut h = history();
            if live_is_rollback {
                h.live.as_mut().unwrap().kind = VersionKind::Rollback;
            }
            let now = T0 + now_offset;
            let record = Record {
                holder,
                starts: starts.iter().map(|s| now.saturating_sub(*s)).collect(),
            };
            let alarm_at = T0 - HOUR + alarm_offset;
            let d = decide("svc", &p, &h, &record, alarm_at, now);
            let cooling = record.starts.iter().any(|s| now < s + 30 * 60);
            let in_window = record.starts.iter().filter(|s| **s > now - 24 * HOUR).count();
            let baking = alarm_at + CLOCK_SLACK_SECS >= T0 - 120 && alarm_at <= T0 + HOUR;
            let allowed = record.holder.is_none() && !live_is_rollback && !cooling
                && in_window < 3 && baking;
            prop_assert_eq!(matches!(d, Decision::RollBack { .. }), allowed, "{:?}", d);
            if let Decision::Skip(reasons) = &d {
                prop_assert!(!reasons.is_empty());
            }
        }
    }
}
