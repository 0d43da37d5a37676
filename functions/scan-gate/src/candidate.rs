//! The gate's domain: a candidate (one commit of one service), its evidence ledger (every signal
//! admitted about it, each its own entry, never overwritten), and where it stands. What each
//! kind of signal stands at is a pure function of the policy and the ledger ([`Candidate::standing`]).
//! No I/O: [`crate::store`] keeps these, [`crate::decide`] decides from them.

use std::collections::{BTreeMap, BTreeSet};

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
    /// When its source says it happened (the event's `time`, epoch seconds; 0 if it has none):
    /// what orders one sender's reruns.
    #[serde(default)]
    pub time: u64,
    /// The archive replay that sent it again (the event's `replay-name`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

/// One entry of a candidate's evidence ledger: one signal, as admitted. Written once (keyed by
/// its event id and kind), never overwritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub kind: SignalKind,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub evidence: Evidence,
    /// When the gate recorded it.
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
    /// Decided to deploy a service that deploys by GitHub environment only: the jobs waiting on
    /// its environment are approved; no project is started.
    Approved,
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
            State::Approved => "approved",
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
            "approved" => State::Approved,
            _ => State::Waiting,
        }
    }

    /// Decided to deploy (or, observing, that it would have).
    pub const fn deploys(self) -> bool {
        matches!(
            self,
            State::Deploying
                | State::Deployed
                | State::DeployFailed
                | State::Observed
                | State::Approved
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
    /// The evidence ledger, oldest first.
    pub ledger: Vec<Recorded>,
    /// How many entries the ledger holds, as the candidate's record counts them: a decision is
    /// written only if it is still this (evidence that lands meanwhile makes it decide again).
    pub seq: u64,
    pub first_at: u64,
    pub deadline: u64,
    pub build_id: Option<String>,
    /// The record owes events not yet published (its outbox).
    pub owes: bool,
    /// Until when the invocation that last decided or took it has it to itself.
    pub lease_until: u64,
    /// The lease's id (empty: none).
    pub lease_id: String,
    /// The decision's id (empty while waiting): what its deploy build carries.
    pub decision: String,
    /// The deploy build the decision froze, if it decided to deploy.
    pub intent: Option<eddo::codebuild::BuildRequest>,
    /// The version of the policy that decided (none before it was recorded, or for a policy
    /// given directly).
    pub decided_policy: Option<eddo::policy::PolicyVersion>,
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

/// Where one kind of signal stands on a candidate's ledger, under the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing<'a> {
    /// No evidence of it.
    Missing,
    /// Every counted entry passed.
    Passed(Vec<&'a Recorded>),
    /// A counted entry failed: every reason of every failing one.
    Failed(Vec<String>),
}

impl Candidate {
    /// The ledger's entries of `kind` that count under `gate`: all of them, except that where
    /// the policy lets reruns count for `kind`, a sender's own latest result replaces its own
    /// earlier ones (by the event's time; at the same time a failure wins). An approval is a
    /// person's decision, which they may change: a sender's latest approval or rejection always
    /// stands for that sender. Another sender's result never replaces one.
    pub fn counted(&self, gate: &Gate, kind: &SignalKind) -> Vec<&Recorded> {
        let entries = self
            .ledger
            .iter()
            .enumerate()
            .filter(|(_, r)| &r.kind == kind);
        if !gate.reruns.contains(kind) && *kind != SignalKind::Approval {
            return entries.map(|(_, r)| r).collect();
        }
        let order = |r: &Recorded| (r.evidence.time, !r.verdict.passed(), r.at);
        let mut latest: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, r) in entries {
            let sender = r.evidence.sender.as_str();
            if latest
                .get(sender)
                .is_none_or(|&kept| order(&self.ledger[kept]) < order(r))
            {
                latest.insert(sender, i);
            }
        }
        let kept: BTreeSet<usize> = latest.into_values().collect();
        kept.into_iter().map(|i| &self.ledger[i]).collect()
    }

    /// Where `kind` stands: any counted failure fails it, whoever passed it.
    pub fn standing(&self, gate: &Gate, kind: &SignalKind) -> Standing<'_> {
        let counted = self.counted(gate, kind);
        if counted.is_empty() {
            return Standing::Missing;
        }
        let reasons: Vec<String> = counted
            .iter()
            .filter_map(|r| match &r.verdict {
                Verdict::Failed { reasons } => Some(reasons.iter().cloned()),
                Verdict::Passed { .. } => None,
            })
            .flatten()
            .collect();
        if reasons.is_empty() {
            Standing::Passed(counted)
        } else {
            Standing::Failed(reasons)
        }
    }

    /// The kinds the ledger holds evidence of.
    pub fn kinds(&self) -> BTreeSet<&SignalKind> {
        self.ledger.iter().map(|r| &r.kind).collect()
    }

    /// Whether an approval of this commit passed, and no counted one rejected it.
    pub fn approved(&self, gate: &Gate) -> bool {
        matches!(
            self.standing(gate, &SignalKind::Approval),
            Standing::Passed(_)
        )
    }

    /// The required signals with no evidence yet.
    pub fn missing(&self, gate: &Gate) -> Vec<SignalKind> {
        let kinds = self.kinds();
        gate.require
            .iter()
            .filter(|k| !kinds.contains(k))
            .cloned()
            .collect()
    }

    /// Every reason the ledger blocks the deployment: a required signal that failed, or an
    /// explicit rejection (always), or a signal about another image than the build's.
    pub fn failures(&self, gate: &Gate) -> Vec<String> {
        let mut reasons = Vec::new();
        for r in &self.ledger {
            if let (Some(about), Some(built)) = (&r.digest, &self.digest)
                && about != built
            {
                reasons.push(format!(
                    "{}: reported for image {about}, but the build reported {built}",
                    r.kind
                ));
            }
        }
        for kind in self.kinds() {
            if (gate.require.contains(kind) || *kind == SignalKind::Approval)
                && let Standing::Failed(r) = self.standing(gate, kind)
            {
                reasons.extend(r);
            }
        }
        reasons
    }
}
