//! A candidate as its check run (GitHub) and its commit status (GitLab) show it: pure functions
//! of the candidate and its service's gate, so the same state always shows the same way, whoever
//! brings the forge up to date. The status is the check run said in one line.

use eddo::github::{CheckRun, Conclusion, Output, Status};
use eddo::gitlab::{CommitStatus, State as StatusState};
use eddo::policy::{Gate, SignalKind};
use eddo::time::rfc3339;

use crate::candidate::{Candidate, State};
use crate::decide::Verdict;

/// The check run's name on every commit.
pub const NAME: &str = "eddo gate";

/// The commit status's name on every commit.
pub const STATUS_NAME: &str = "eddo/gate";

/// The rollback that replaced a deployed release, as its confirmed build says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Replacement {
    pub build_id: String,
    /// The commit it went back to.
    #[serde(default)]
    pub to: Option<String>,
    /// The alarm that rolled it back.
    #[serde(default)]
    pub alarm: Option<String>,
}

impl Replacement {
    fn said(&self) -> String {
        format!(
            "rolled back{}{} by build `{}`",
            self.to
                .as_deref()
                .map(|c| format!(" to {}", c.chars().take(7).collect::<String>()))
                .unwrap_or_default(),
            self.alarm
                .as_deref()
                .map(|a| format!(" after alarm {a}"))
                .unwrap_or_default(),
            self.build_id
        )
    }
}

/// The candidate's commit status: the check run's state, and its title with the reasons.
pub fn commit_status(c: &Candidate, gate: &Gate, replaced: Option<&Replacement>) -> CommitStatus {
    let run = check_run(c, gate, replaced);
    let state = match (run.status, run.conclusion) {
        (Status::Completed, Some(Conclusion::Success | Conclusion::Neutral)) => {
            StatusState::Success
        }
        (Status::Completed, Some(Conclusion::Cancelled | Conclusion::Skipped)) => {
            StatusState::Canceled
        }
        (Status::Completed, _) => StatusState::Failed,
        _ => StatusState::Running,
    };
    let description = match c.state {
        State::Blocked | State::TimedOut => {
            format!("{}: {}", run.output.title, c.reasons.join("; "))
        }
        _ => run.output.title,
    };
    CommitStatus::new(state, STATUS_NAME, &description)
}

/// The candidate's check run: where it stands, why, and every piece of evidence; and the
/// rollback that later replaced it, if one did.
pub fn check_run(c: &Candidate, gate: &Gate, replaced: Option<&Replacement>) -> CheckRun {
    let short = c.commit.short();
    let (status, conclusion, title, summary) = match c.state {
        State::Waiting => {
            let missing = names(&c.missing(gate));
            (
                Status::InProgress,
                None,
                format!("Waiting for {missing}"),
                format!(
                    "{} deploys {} once every signal its policy requires has passed: waiting for **{missing}** until {}. Then it times out.",
                    c.service,
                    short,
                    rfc3339(c.deadline)
                ),
            )
        }
        State::Deploying
        | State::Deployed
        | State::DeployFailed
        | State::Observed
        | State::Approved => {
            let (conclusion, title, outcome) = match (c.state, c.build_id.as_deref()) {
                (State::Approved, _) => (
                    Conclusion::Success,
                    "Approved for its GitHub environment".to_string(),
                    "The jobs waiting on its environment are approved; they deploy it.".to_string(),
                ),
                (State::Observed, _) => (
                    Conclusion::Neutral,
                    "Would deploy (observe mode)".to_string(),
                    "The policy observes only: nothing was started.".to_string(),
                ),
                (State::Deployed, b) => (
                    Conclusion::Success,
                    "Deployed".to_string(),
                    format!("The deploy build `{}` succeeded.", b.unwrap_or("?")),
                ),
                (State::DeployFailed, b) => (
                    Conclusion::Failure,
                    "The deploy build failed".to_string(),
                    format!(
                        "Every signal passed, but the deploy build `{}` failed.",
                        b.unwrap_or("?")
                    ),
                ),
                (_, Some(b)) => (
                    Conclusion::Success,
                    "Deploying".to_string(),
                    format!("The deploy build `{b}` is running."),
                ),
                (_, None) => (
                    Conclusion::Success,
                    "Deploying".to_string(),
                    "The deploy build is being started.".to_string(),
                ),
            };
            (
                Status::Completed,
                Some(conclusion),
                title,
                format!(
                    "Every signal {} requires passed for {short}. {outcome}",
                    c.service
                ),
            )
        }
        State::Blocked | State::TimedOut => {
            let timed_out = c.state == State::TimedOut;
            let reasons: String = c.reasons.iter().map(|r| format!("- {r}\n")).collect();
            (
                Status::Completed,
                Some(if timed_out {
                    Conclusion::TimedOut
                } else {
                    Conclusion::Failure
                }),
                if timed_out {
                    format!("Timed out: {} missing", names(&c.missing(gate)))
                } else {
                    format!("Blocked: {} reason(s)", c.reasons.len())
                },
                format!(
                    "{} {} does not deploy {short}:\n\n{reasons}",
                    if timed_out {
                        "The deadline passed:"
                    } else {
                        "A required signal failed:"
                    },
                    c.service
                ),
            )
        }
    };
    let (title, summary) = match replaced {
        Some(r) => (
            format!("{title}, then rolled back"),
            format!("{summary}\n\nThen {}.", r.said()),
        ),
        None => (title, summary),
    };
    CheckRun {
        name: NAME.to_string(),
        head_sha: c.commit.as_str().to_string(),
        external_id: format!("{}@{}", c.service, c.commit),
        status,
        conclusion,
        started_at: Some(rfc3339(c.first_at)),
        completed_at: (status == Status::Completed).then(|| rfc3339(c.decided_at.max(c.first_at))),
        details_url: None,
        output: Output::new(title, &summary, Some(&evidence(c))),
    }
}

fn names(kinds: &[SignalKind]) -> String {
    if kinds.is_empty() {
        return "nothing".into();
    }
    kinds
        .iter()
        .map(SignalKind::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ledger as a table: kind, sender, outcome, event.
fn evidence(c: &Candidate) -> String {
    let mut text = String::from("| Signal | Sender | Outcome | Event |\n|---|---|---|---|\n");
    for r in &c.ledger {
        let outcome = match &r.verdict {
            Verdict::Passed { summary } => format!("passed: {summary}"),
            Verdict::Failed { reasons } => format!("**failed**: {}", reasons.join("; ")),
        };
        text.push_str(&format!(
            "| {} | {} | {} | `{}` |\n",
            r.kind,
            cell(&r.evidence.sender),
            cell(&outcome),
            cell(&r.evidence.event_id)
        ));
    }
    if c.ledger.is_empty() {
        text.push_str("| | | no evidence yet | |\n");
    }
    text
}

/// `s` as one table cell: no line breaks, no column separators.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}
