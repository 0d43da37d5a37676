//! The gate's domain: a candidate (one commit of one service), the signals recorded on it with
//! their evidence, and where it stands. No I/O: [`crate::store`] keeps these, [`crate::decide`]
//! decides from them.

use std::collections::BTreeMap;

use eddo::names::{CommitSha, ImageDigest, ServiceName};
use eddo::policy::{Gate, SignalKind};
use serde::{Deserialize, Serialize};

use crate::decide::Verdict;

/// Which event a signal came from, and who sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub event_id: String,
    pub source: String,
    pub detail_type: String,
    /// The sender the policy counted it from (`CodeBuild project payments-build`, `signed sender
    /// chatops`); empty for the deadline.
    #[serde(default)]
    pub sender: String,
}

/// A signal as recorded on its candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub evidence: Evidence,
    pub at: u64,
    /// The image a reported signal said it was about, checked against the build's at decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<ImageDigest>,
}

/// Where a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Waiting,
    /// Decided to deploy; the deploy build may not have started yet.
    Deploying,
    Deployed,
    DeployFailed,
    Blocked,
    TimedOut,
    /// Observe-only mode: decided, nothing started.
    Observed,
}

impl State {
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Deploying => "deploying",
            State::Deployed => "deployed",
            State::DeployFailed => "deploy_failed",
            State::Blocked => "blocked",
            State::TimedOut => "timed_out",
            State::Observed => "observed",
        }
    }

    pub fn parse(s: &str) -> State {
        match s {
            "deploying" => State::Deploying,
            "deployed" => State::Deployed,
            "deploy_failed" => State::DeployFailed,
            "blocked" => State::Blocked,
            "timed_out" => State::TimedOut,
            "observed" => State::Observed,
            _ => State::Waiting,
        }
    }

    /// Decided to deploy (or, observing, that it would have).
    pub const fn deploys(self) -> bool {
        matches!(
            self,
            State::Deploying | State::Deployed | State::DeployFailed | State::Observed
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub service: ServiceName,
    pub commit: CommitSha,
    /// The image the service's own build reported: the only one a scan counts for and the one
    /// deployed.
    pub digest: Option<ImageDigest>,
    pub correlation_id: String,
    pub state: State,
    pub signals: BTreeMap<SignalKind, Recorded>,
    pub first_at: u64,
    pub deadline: u64,
    pub build_id: Option<String>,
    /// The record owes events not yet published (its outbox).
    pub owes: bool,
    /// Until when the invocation that last decided or took it has it to itself.
    pub lease_until: u64,
    /// The id of the event that caused the decision: the deploy build's causation, whoever
    /// starts it.
    pub decided_by: String,
    /// The decision's reasons (blocked, timed out), as recorded.
    pub reasons: Vec<String>,
    /// When it was decided (0 while waiting).
    pub decided_at: u64,
    /// How many times it was deployed again after a rollback, on an approval (0: never).
    pub attempt: u32,
}

impl Candidate {
    /// Whether an approval of this commit passed.
    pub fn approved(&self) -> bool {
        self.signals
            .get(&SignalKind::Approval)
            .is_some_and(|r| r.verdict.passed())
    }

    /// The required signals not recorded yet.
    pub fn missing(&self, gate: &Gate) -> Vec<SignalKind> {
        gate.require
            .iter()
            .filter(|k| !self.signals.contains_key(k))
            .cloned()
            .collect()
    }

    /// Every reason a recorded signal blocks the deployment: a required signal that failed, or
    /// an explicit rejection (always), or a signal about another image than the build's.
    pub fn failures(&self, gate: &Gate) -> Vec<String> {
        let mut reasons = Vec::new();
        for (kind, r) in &self.signals {
            if let (Some(about), Some(built)) = (&r.digest, &self.digest)
                && about != built
            {
                reasons.push(format!(
                    "{kind}: reported for image {about}, but the build reported {built}"
                ));
            }
            if let Verdict::Failed { reasons: r } = &r.verdict
                && (gate.require.contains(kind) || *kind == SignalKind::Approval)
            {
                reasons.extend(r.iter().cloned());
            }
        }
        reasons
    }
}
