//! The gate answers GitHub's custom deployment protection rules: a GitHub Actions job waiting on
//! a service's environment (its `github_environment`, in the repository `checks.github` names)
//! is approved or rejected with the decision of the commit it deploys, its reasons the comment.
//!
//! A rule is recorded when it arrives ([`crate::store::rules`]); its answer is frozen once, from
//! the candidate as decided (or, still undecided at the deadline, a rejection naming what was
//! missing), and then sent until GitHub takes it, under the outbox's lease, like every other
//! effect. A rule that arrives after the decision is answered at once; one that arrives before
//! is answered when the decision is written ([`Gate::answer_rules`], from [`Gate::show`]); the
//! sweep answers the rest at their deadline and retries what GitHub did not take.

use eddo::Error;
use eddo::github::{App, Review, ReviewState};
use eddo::names::CommitSha;
use eddo::policy::{Mode, Policy, Service};
use eddo::time::rfc3339;
use tracing::{info, warn};

use crate::candidate::{Candidate, State};
use crate::decide::known_bad;
use crate::store::rules::{Asked, Owed, rule_key};
use crate::{Gate, Report};

/// What one attempt to answer a rule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// GitHub took the answer (or no longer waits on it: `settled` says).
    Sent { state: ReviewState, settled: String },
    /// Nothing decides the commit yet: asked again at `not_before` (the decision answers it
    /// sooner).
    Waiting { not_before: u64 },
    /// GitHub did not take it: tried again from `not_before`.
    Later { not_before: u64, why: String },
    /// Another invocation has it, or it was answered.
    NotMine,
    /// The App mode is off: nothing can answer it.
    Off,
}

impl Gate {
    /// A rule arrived: recorded, and answered at once if its commit is decided.
    pub(crate) async fn protection_rule(
        &self,
        policy: &Policy,
        asked: &Asked,
    ) -> Result<Report, Error> {
        let Some(service) = policy.service(asked.service.as_str()) else {
            return Ok(Report::quiet("its service left the policy"));
        };
        if self.github.is_none() {
            warn!(service = %service.name, "a protection rule arrived, but the App mode is off");
            return Ok(Report::quiet(
                "a protection rule arrived, but the GitHub App mode is off: nothing can answer it",
            ));
        }
        let now = (self.clock)();
        let mut asked = asked.clone();
        asked.deadline = now + u64::from(service.gate.deadline_minutes) * 60;
        let new = self.store.ask_rule(&asked, now).await?;
        let answered = self
            .answer_rule(service, &asked.commit, asked.run_id, now)
            .await?;
        let what = format!(
            "protection rule of {} run {} ({})",
            asked.environment,
            asked.run_id,
            asked.commit.short()
        );
        Ok(Report::quiet(match (&answered, new) {
            (Answered::Sent { state, .. }, _) => format!("{what}: {state:?}"),
            (Answered::Waiting { not_before }, _) => format!(
                "{what}: waits for the decision (rejected at {} without one)",
                rfc3339(*not_before)
            ),
            (_, false) => format!("{what}: recorded before"),
            (other, true) => format!("{what}: {other:?}"),
        }))
    }

    /// Answers every rule still owed for `service`'s `commit` that its candidate's state answers
    /// now: after a decision is written. Never fails the invocation; the sweep has the rest.
    pub(crate) async fn answer_rules(&self, service: &Service, commit: &CommitSha) {
        if self.github.is_none() || service.deploys_by.environment().is_none() {
            return;
        }
        let now = (self.clock)();
        let runs = match self.store.rules_owed(&service.name, commit).await {
            Ok(runs) => runs,
            Err(e) => {
                warn!(service = %service.name, commit = %commit.short(), error = %e, "rules left to the sweep");
                return;
            }
        };
        for run in runs {
            if let Err(e) = self.answer_rule(service, commit, run, now).await {
                warn!(service = %service.name, commit = %commit.short(), run, error = %e, "rule left to the sweep");
            }
        }
    }

    /// Answers the rule of `commit`'s workflow run `run_id` if it is owed and due: its answer
    /// frozen first if it has none, then sent.
    pub(crate) async fn answer_rule(
        &self,
        service: &Service,
        commit: &CommitSha,
        run_id: u64,
        now: u64,
    ) -> Result<Answered, Error> {
        let Some(app) = self.github.as_ref() else {
            return Ok(Answered::Off);
        };
        let Some((lease, owed)) = self
            .store
            .take_rule(&rule_key(&service.name, commit, run_id), now)
            .await?
        else {
            return Ok(Answered::NotMine);
        };
        let result = async {
            let review = match owed.answer.clone() {
                Some(review) => review,
                None => {
                    let c = self.store.get(&service.name, commit).await?;
                    let known_bad = match &c {
                        Some(c) if c.state.deploys() => self
                            .store
                            .known_bad_since(&service.name, commit)
                            .await?
                            .is_some(),
                        _ => false,
                    };
                    match answer_of(service, c.as_ref(), known_bad, &owed, now) {
                        Ok(review) => self.store.freeze_rule(&lease, &review).await?,
                        Err(not_before) => {
                            self.store
                                .wait_rule(&lease, &service.name, commit, run_id, not_before)
                                .await?;
                            return Ok(Answered::Waiting { not_before });
                        }
                    }
                }
            };
            self.send_review(app, service, commit, run_id, &lease, &owed, &review, now)
                .await
        }
        .await;
        self.store.outbox().guard(&lease, result).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_review(
        &self,
        app: &App,
        service: &Service,
        commit: &CommitSha,
        run_id: u64,
        lease: &eddo::outbox::Lease,
        owed: &Owed,
        review: &Review,
        now: u64,
    ) -> Result<Answered, Error> {
        let sent = app
            .review_protection_rule(&owed.repo, run_id, &owed.environment, review)
            .await;
        let failure = match sent {
            Ok(()) => {
                info!(service = %service.name, commit = %commit.short(), run_id, state = ?review.state, "protection rule answered");
                let settled = format!("{:?}", review.state).to_lowercase();
                self.store.answered_rule(lease, now, &settled).await?;
                return Ok(Answered::Sent {
                    state: review.state,
                    settled,
                });
            }
            Err(f) => f,
        };
        // Refused: if GitHub no longer waits on the run (an earlier answer whose reply was lost
        // was taken, or the run was cancelled), the rule is settled, as GitHub says.
        if !failure.retryable
            && let Ok(status) = app.workflow_run_status(&owed.repo, run_id).await
            && status != "waiting"
        {
            let settled = format!("the run no longer waits (status {status}): {failure}");
            info!(service = %service.name, commit = %commit.short(), run_id, %settled, "protection rule settled");
            self.store.answered_rule(lease, now, &settled).await?;
            return Ok(Answered::Sent {
                state: review.state,
                settled,
            });
        }
        let not_before = crate::checks::retry_at(&failure, now);
        let why = failure.to_string();
        warn!(service = %service.name, commit = %commit.short(), run_id, error = %why, not_before, "GitHub did not take the answer; tried again");
        self.store
            .later_rule(lease, &service.name, commit, run_id, not_before, &why)
            .await?;
        Ok(Answered::Later { not_before, why })
    }

    /// Serves a rule of the sweep's list: answered at its decision or deadline, or retried.
    pub(crate) async fn serve_rule(
        &self,
        policy: &Policy,
        pk: &str,
        sk: &str,
        now: u64,
    ) -> Result<Answered, Error> {
        let (service, commit, run) = crate::store::Store::listed_rule(pk, sk)?;
        match policy.service(service.as_str()) {
            Some(service) => self.answer_rule(service, &commit, run, now).await,
            // Its service left the policy: it stays listed, and is reported every tick, until
            // the service returns or an operator answers it on GitHub.
            None => Err(Error::InvalidEvent(format!(
                "a protection rule of {service} {} waits, but its service is no longer in the policy",
                commit.short()
            ))),
        }
    }
}

/// The answer a rule gets from the candidate as it is at `now`, or when to ask again.
pub fn answer_of(
    service: &Service,
    c: Option<&Candidate>,
    replaced: bool,
    owed: &Owed,
    now: u64,
) -> Result<Review, u64> {
    let observe = service.gate.mode == Mode::Observe;
    let reject = |comment: String| {
        Ok(if observe {
            // Observe mode stops nothing: the job is approved, and told what enforcing would do.
            Review {
                state: ReviewState::Approved,
                comment: format!("observe mode: eddo would have rejected this. {comment}"),
            }
        } else {
            Review {
                state: ReviewState::Rejected,
                comment,
            }
        })
    };
    let Some(c) = c else {
        if now < owed.deadline {
            return Err(owed.deadline);
        }
        return reject(format!(
            "No evidence of {} reached eddo's gate for {} before {}: nothing decided it.",
            service.name,
            &owed.repo,
            rfc3339(owed.deadline)
        ));
    };
    let short = c.commit.short();
    match c.state {
        State::Waiting if now < c.deadline => Err(c.deadline),
        State::Waiting => reject(format!(
            "{} {short} timed out waiting for {}.",
            service.name,
            names(&c.missing(&service.gate))
        )),
        State::TimedOut => reject(format!(
            "{} {short} timed out: {}",
            service.name,
            c.reasons.join("; ")
        )),
        State::Blocked => reject(format!(
            "{} {short} is blocked: {}",
            service.name,
            c.reasons.join("; ")
        )),
        _ if replaced && !c.approved(&service.gate) => reject(known_bad(c)),
        _ => Ok(Review {
            state: ReviewState::Approved,
            comment: format!(
                "Every signal {} requires passed for {short}: {}.",
                service.name,
                names(&service.gate.require)
            ),
        }),
    }
}

fn names<'a>(kinds: impl IntoIterator<Item = &'a eddo::policy::SignalKind>) -> String {
    kinds
        .into_iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
