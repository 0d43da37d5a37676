//! Why a rollback did not start: each reason with a code for machines (`Rollback Skipped`'s
//! `codes`) and words for people (its `reasons`).

use eddo::time::rfc3339;
use serde::Serialize;

use crate::decide::SERVICE_TAG;

/// Why a rollback did not start: a code for machines and words for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Skip {
    Unreadable {
        why: String,
    },
    /// CloudWatch does not confirm the state change (`DescribeAlarms`, its tags).
    NotConfirmed {
        why: String,
    },
    UnknownAlarm {
        alarm: String,
    },
    /// An alert no service's `rollback.alerts` takes.
    UnmatchedAlert {
        alert: String,
        sender: String,
    },
    UnknownService {
        service: String,
    },
    Ambiguous {
        alarm: String,
        services: Vec<String>,
    },
    NoRollbackPolicy {
        service: String,
    },
    Muted {
        by: String,
    },
    Suppressed {
        by: String,
        reason: Option<String>,
    },
    NoDeployment {
        service: String,
    },
    LiveIsRollback {
        commit: String,
        replaced: Option<String>,
    },
    AlarmBeforeDeployment {
        alarm_at: u64,
        started_at: u64,
    },
    OutsideBakeWindow {
        live_at: u64,
        bake_minutes: u32,
    },
    NoKnownGood {
        service: String,
    },
    SameVersion {
        commit: String,
    },
    InProgress {
        build_id: String,
    },
    Cooldown {
        last_started_at: u64,
        until: u64,
    },
    TooMany {
        count: usize,
        max: u32,
        window_hours: u32,
    },
}

impl Skip {
    /// The reason's code, as in the `Rollback Skipped` event.
    pub fn code(&self) -> &'static str {
        match self {
            Skip::Unreadable { .. } => "unreadable",
            Skip::NotConfirmed { .. } => "not-confirmed",
            Skip::UnknownAlarm { .. } | Skip::UnmatchedAlert { .. } => "unknown-alarm",
            Skip::UnknownService { .. } => "unknown-service",
            Skip::Ambiguous { .. } => "ambiguous",
            Skip::NoRollbackPolicy { .. } => "no-rollback-policy",
            Skip::Muted { .. } => "muted",
            Skip::Suppressed { .. } => "suppressed",
            Skip::NoDeployment { .. } => "no-deployment",
            Skip::LiveIsRollback { .. } => "live-is-rollback",
            Skip::AlarmBeforeDeployment { .. } => "alarm-before-deployment",
            Skip::OutsideBakeWindow { .. } => "outside-bake-window",
            Skip::NoKnownGood { .. } => "no-known-good",
            Skip::SameVersion { .. } => "same-version",
            Skip::InProgress { .. } => "in-progress",
            Skip::Cooldown { .. } => "cooldown",
            Skip::TooMany { .. } => "too-many",
        }
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(7)]
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Unreadable { why } => write!(f, "the event could not be read: {why}"),
            Skip::NotConfirmed { why } => write!(f, "not confirmed by CloudWatch: {why}"),
            Skip::UnknownAlarm { alarm } => write!(
                f,
                "alarm {alarm} is not tagged {SERVICE_TAG} and no service's rollback.alarms names it"
            ),
            Skip::UnmatchedAlert { alert, sender } => write!(
                f,
                "alert {alert} matches no service's rollback.alerts for sender {sender}"
            ),
            Skip::UnknownService { service } => write!(
                f,
                "the alarm is tagged {SERVICE_TAG}={service}, which the policy does not name"
            ),
            Skip::Ambiguous { alarm, services } => write!(
                f,
                "alarm {alarm} is named by the rollback sections of {}; name it in one service only",
                services.join(" and ")
            ),
            Skip::NoRollbackPolicy { service } => {
                write!(f, "{service} has no rollback section in the policy")
            }
            Skip::Muted { by } => write!(f, "the alarm's actions are muted by {by}"),
            Skip::Suppressed { by, reason } => write!(
                f,
                "the alarm's actions are suppressed ({by}{})",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Skip::NoDeployment { service } => {
                write!(f, "no deployment of {service} is recorded")
            }
            Skip::LiveIsRollback { commit, replaced } => write!(
                f,
                "the live version {} is itself a rollback{}; eddo does not roll back a rollback",
                short(commit),
                replaced
                    .as_deref()
                    .map(|r| format!(" (of {})", short(r)))
                    .unwrap_or_default()
            ),
            Skip::AlarmBeforeDeployment {
                alarm_at,
                started_at,
            } => write!(
                f,
                "the alarm changed state at {}, before the live version's deployment started at {}",
                rfc3339(*alarm_at),
                rfc3339(*started_at)
            ),
            Skip::OutsideBakeWindow {
                live_at,
                bake_minutes,
            } => write!(
                f,
                "the live version went live at {}, more than the {bake_minutes}-minute bake window ago",
                rfc3339(*live_at)
            ),
            Skip::NoKnownGood { service } => {
                write!(f, "{service} has no earlier known-good version to restore")
            }
            Skip::SameVersion { commit } => write!(
                f,
                "the last known-good version {} is the live one",
                short(commit)
            ),
            Skip::InProgress { build_id } => {
                write!(f, "a rollback is already in progress ({build_id})")
            }
            Skip::Cooldown {
                last_started_at,
                until,
            } => write!(
                f,
                "the last rollback started at {}; the cooldown lasts until {}",
                rfc3339(*last_started_at),
                rfc3339(*until)
            ),
            Skip::TooMany {
                count,
                max,
                window_hours,
            } => write!(
                f,
                "{count} automatic rollbacks in the last {window_hours} h reach the maximum of {max}; a person decides the next"
            ),
        }
    }
}
