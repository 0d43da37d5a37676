//! Saying a decision: the decision's event with its evidence (which signal, which event, which
//! sender), published once and marked published; and deciding a waiting candidate as blocked,
//! timed out or observed.

use eddo::names::ImageDigest;
use eddo::policy::{Mode, PolicyVersion, Service, SignalKind};
use eddo::time::rfc3339;
use eddo::{DetailType, Error};
use serde::Serialize;
use tracing::info;

use eddo::outbox::Lease;
use eddo::publish::OutgoingEvent;

use crate::candidate::{Candidate, Evidence, State};
use crate::decide::Verdict;
use crate::store::{Decided, Transition, key_of};
use crate::{Gate, Report};

/// One piece of evidence in a decision event: which signal, which event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvidenceItem {
    pub signal: SignalKind,
    pub passed: bool,
    pub summary: String,
    pub event_id: String,
    pub source: String,
    pub detail_type: String,
    /// Who sent it, as the policy counted it.
    pub sender: String,
}

/// The ledger, by kind and then in the order it was recorded.
fn evidence_of(c: &Candidate) -> Vec<EvidenceItem> {
    let mut ledger: Vec<_> = c.ledger.iter().collect();
    ledger.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.at.cmp(&b.at)));
    ledger
        .into_iter()
        .map(|r| EvidenceItem {
            signal: r.kind.clone(),
            passed: r.verdict.passed(),
            summary: match &r.verdict {
                Verdict::Passed { summary } => summary.clone(),
                Verdict::Failed { reasons } => reasons.join("; "),
            },
            event_id: r.evidence.event_id.clone(),
            source: r.evidence.source.clone(),
            detail_type: r.evidence.detail_type.clone(),
            sender: r.evidence.sender.clone(),
        })
        .collect()
}

#[derive(Serialize)]
struct DecisionDetail<'a> {
    service: &'a str,
    commit_sha: &'a str,
    image_digest: Option<&'a str>,
    mode: Mode,
    /// The version of the policy parameter that decided it.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_version: Option<PolicyVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    build_id: Option<&'a str>,
    /// The environment whose waiting jobs the decision approves, for a service that deploys by
    /// GitHub environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    github_environment: Option<GitHubEnvironment<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing: Vec<SignalKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<String>,
    evidence: Vec<EvidenceItem>,
}

#[derive(Serialize)]
struct GitHubEnvironment<'a> {
    repository: &'a str,
    environment: &'a str,
}

impl Gate {
    /// Decides a waiting candidate as `to` and says so: the decision and its event in one write,
    /// then the event sent.
    pub(crate) async fn conclude(
        &self,
        service: &Service,
        c: &Candidate,
        to: State,
        reasons: Vec<String>,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        let mut decided = c.clone();
        decided.state = to;
        decided.reasons = reasons.clone();
        decided.decided_by = cause.event_id.clone();
        let (owes, outcome) = self.decision_events(service, &decided)?;
        let (decision, lease) = (eddo::outbox::unique_id(), Lease::new(key_of(c), now));
        let d = Decided {
            candidate: c,
            to,
            reasons: &reasons,
            by: &cause.event_id,
            owes: &owes,
            now,
            approved: c.approved(&service.gate),
            decision: &decision,
            lease: &lease,
            intent: None,
            policy_version: service.policy_version.clone(),
        };
        match self.store.decide(&d).await? {
            Transition::Done => {
                self.measure_decision(service, c, to, now);
                self.say(&lease, &owes, c, outcome).await
            }
            Transition::Stale => self.decide_again(service, c, cause, now).await,
            _ => Ok(Report::quiet("another invocation decided this candidate")),
        }
    }

    /// Evidence landed while deciding `c`: read it again, whole, and decide on all of it.
    pub(crate) async fn decide_again(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        info!(service = %c.service, commit = %c.commit, "evidence landed while deciding: deciding again");
        let Some(fresh) = self.store.get(&c.service, &c.commit).await? else {
            return Ok(Report::quiet("the candidate is gone"));
        };
        // Decided again as the signal that caused it (its entry on the ledger), so a failure
        // of its kind after another invocation's decision is still said late. A sweep's tick
        // records no entry: its candidate is decided on its ledger alone.
        let kind = fresh
            .ledger
            .iter()
            .find(|r| r.evidence.event_id == cause.event_id)
            .map_or(SignalKind::Build, |r| r.kind.clone());
        Box::pin(self.act(service, fresh, &kind, cause, now)).await
    }

    /// Sends the events a record owes under this invocation's `lease` (letting go of it on
    /// error, for the retry).
    pub(crate) async fn say(
        &self,
        lease: &Lease,
        owes: &[OutgoingEvent],
        c: &Candidate,
        outcome: &str,
    ) -> Result<Report, Error> {
        let outbox = self.store.outbox();
        let sent = outbox.send(lease, owes).await;
        let published = outbox.guard(lease, sent).await?;
        info!(service = %c.service, commit = %c.commit, decision = outcome, "decided");
        Ok(Report {
            outcome: outcome.to_string(),
            published,
        })
    }

    /// Sends what a decided candidate still owes, once the invocation that owed it is gone.
    pub(crate) async fn finish_owed(&self, c: &Candidate, now: u64) -> Result<Report, Error> {
        match self.store.outbox().finish(&key_of(c), now).await? {
            Some(published) => {
                info!(service = %c.service, commit = %c.commit, "sent what a previous invocation owed");
                Ok(Report {
                    outcome: format!(
                        "said the decision ({}) a previous invocation owed",
                        c.state.as_str()
                    ),
                    published,
                })
            }
            None => Ok(Report::quiet(format!(
                "the decision ({}) is being said by another invocation",
                c.state.as_str()
            ))),
        }
    }

    /// The events that say a decided candidate's decision (its eddo event, and the CDEvent that
    /// announces it where CDEvents has a word for it), with its outcome for the report; their
    /// causation is the event that decided it.
    pub(crate) fn decision_events(
        &self,
        service: &Service,
        c: &Candidate,
    ) -> Result<(Vec<OutgoingEvent>, &'static str), Error> {
        let (detail_type, outcome) = match c.state {
            State::Deploying | State::Deployed | State::DeployFailed => {
                (DetailType::DeploymentStarted, "deployment started")
            }
            State::Approved => (
                DetailType::DeploymentApproved,
                "deployment approved: the GitHub environment's waiting jobs deploy it",
            ),
            State::Observed => (
                DetailType::DeploymentWouldStart,
                "observe-only: deployment would start",
            ),
            State::Blocked => (DetailType::DeploymentBlocked, "deployment blocked"),
            State::TimedOut => (DetailType::DeploymentTimedOut, "deployment timed out"),
            State::Waiting => unreachable!("a waiting candidate has no decision to announce"),
        };
        // What the decision fixed, whatever the policy says by the time it is said: a deploy
        // runs in the project its frozen build names, under the version and mode that decided.
        let mode = match c.state {
            State::Deploying | State::Deployed | State::DeployFailed | State::Approved => {
                Mode::Enforce
            }
            State::Observed => Mode::Observe,
            _ => service.gate.mode,
        };
        let project = match &c.intent {
            Some(intent) => Some(intent.project()),
            None => service.projects.deploy.as_ref().map(|p| p.as_str()),
        };
        let detail = DecisionDetail {
            service: c.service.as_str(),
            commit_sha: c.commit.as_str(),
            image_digest: c.digest.as_ref().map(ImageDigest::as_str),
            mode,
            policy_version: c
                .decided_policy
                .clone()
                .or_else(|| service.policy_version.clone()),
            project: matches!(
                detail_type,
                DetailType::DeploymentStarted | DetailType::DeploymentWouldStart
            )
            .then_some(project)
            .flatten(),
            github_environment: match (c.state, service.deploys_by.environment()) {
                (
                    State::Approved | State::Deploying | State::Deployed | State::DeployFailed,
                    Some(environment),
                ) => service.checks.github.as_ref().map(|r| GitHubEnvironment {
                    repository: r.as_str(),
                    environment,
                }),
                _ => None,
            },
            build_id: c.build_id.as_deref(),
            reasons: c.reasons.clone(),
            missing: if c.state == State::TimedOut {
                c.missing(&service.gate)
            } else {
                vec![]
            },
            deadline: (c.state == State::TimedOut).then(|| rfc3339(c.deadline)),
            evidence: evidence_of(c),
        };
        let event =
            OutgoingEvent::enveloped(detail_type, &detail, &c.correlation_id, &c.decided_by)?;
        let images = service.image_repository.as_deref();
        Ok((self.with_cdevents(images, event)?, outcome))
    }

    /// `event` and the CDEvent that announces it, if it has one (`eddo::cdevents::emit`), for
    /// a service whose images go to `images`.
    pub(crate) fn with_cdevents(
        &self,
        images: Option<&str>,
        event: OutgoingEvent,
    ) -> Result<Vec<OutgoingEvent>, Error> {
        let producer = eddo::cdevents::emit::Producer::of(&self.publisher, images);
        eddo::cdevents::emit::with_cdevents([event], producer.as_ref(), (self.clock)())
    }
}
