//! Deploying: deciding a waiting candidate to deploy (unless a rollback holds the service),
//! starting the deploy project once with the image the service's build reported, and the deploy
//! project's own completion, which moves the service's history.

use eddo::codebuild::{self, Attempt, BuildRequest, StartError};
use eddo::history::{Version, VersionKind};
use eddo::names::ImageDigest;
use eddo::outbox::Lease;
use eddo::policy::{Policy, ProjectRole, Service};
use eddo::publish::OutgoingEvent;
use eddo::{DetailType, Error};
use serde_json::{Value, json};
use tracing::warn;

use crate::candidate::{Candidate, Evidence, State};
use crate::decide::known_bad;
use crate::signal::DeployFinished;
use crate::store::{Decided, Finished, Transition, key_of};
use crate::{Gate, Report};

impl Gate {
    /// Decides a waiting candidate to deploy, unless a rollback of the service holds it or a
    /// rollback replaced this commit and no approval of it says otherwise.
    pub(crate) async fn deploy(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        let made = Decision::new(self, service, c, cause, now)?;
        let decided = self
            .store
            .decide(&made.decided(service, c, cause, now))
            .await?;
        self.deploying(service, c, decided, made, cause, now).await
    }

    /// Deploys a decided candidate again: a commit a rollback replaced, now approved.
    pub(crate) async fn redeploy(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        if !service.deploys_by.codebuild() {
            // The approval after a rollback is the commit's; the environment's next run asks
            // again, and is answered by this decision's successor only through the deploy project.
            return Ok(Report::quiet(format!(
                "{} deploys by GitHub environment only: a rollback's replaced commit is not approved again",
                c.service
            )));
        }
        let made = Decision::new(self, service, c, cause, now)?;
        let decided = self
            .store
            .redeploy(&made.decided(service, c, cause, now))
            .await?;
        let mut report = self
            .deploying(service, c, decided, made, cause, now)
            .await?;
        if report.outcome == "deployment started" {
            report.outcome = "approved after its rollback: deployment started again".into();
        }
        Ok(report)
    }

    async fn deploying(
        &self,
        service: &Service,
        c: &Candidate,
        decided: Transition,
        made: Decision,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        match decided {
            Transition::Done if made.to == State::Approved => {
                self.measure_decision(service, c, State::Approved, now);
                self.say(&made.lease, &made.owes, c, made.outcome).await
            }
            Transition::Done => {
                self.measure_decision(service, c, State::Deploying, now);
                let mut c = c.clone();
                if c.state != State::Waiting {
                    c.attempt += 1;
                    c.build_id = None;
                    c.reasons = vec![];
                }
                c.state = State::Deploying;
                c.decided_at = now;
                c.decided_by = cause.event_id.clone();
                c.decision = made.id;
                c.intent = made.intent;
                c.lease_id = made.lease.id.clone();
                self.start_deploy(service, &c, &made.lease, Attempt::First)
                    .await
            }
            Transition::KnownBad if c.state != State::Waiting => Ok(Report {
                outcome: "the commit is known bad and no approval cleared it".into(),
                published: vec![],
            }),
            Transition::KnownBad => {
                self.conclude(service, c, State::Blocked, vec![known_bad(c)], cause, now)
                    .await
            }
            Transition::Stale => self.decide_again(service, c, cause, now).await,
            Transition::Lost => Ok(Report {
                outcome: "another invocation decided this candidate".into(),
                published: vec![],
            }),
            Transition::Locked if c.state != State::Waiting => {
                let reason = format!(
                    "{} {} was approved after its rollback, but a rollback of {} is in progress: approve it again when that ends",
                    c.service,
                    c.commit.short(),
                    c.service
                );
                self.reject(cause, &reason).await
            }
            Transition::Locked => {
                let build = self
                    .store
                    .rollback_lock(&c.service, now)
                    .await?
                    .unwrap_or_else(|| "a rollback".into());
                let reason = format!(
                    "a rollback of {} is in progress ({build}); deployments are held until it ends",
                    c.service
                );
                self.conclude(service, c, State::Blocked, vec![reason], cause, now)
                    .await
            }
        }
    }
    /// Starts the deploy build of a deploying candidate whose build an earlier invocation left
    /// unstarted (or started, and died before recording it), once its lease has lapsed.
    pub(crate) async fn resume_deploy(
        &self,
        service: &Service,
        c: &Candidate,
        now: u64,
    ) -> Result<Report, Error> {
        match self.store.take_unstarted(c, now).await? {
            Some(lease) => {
                let attempt = Attempt::Resume {
                    decided_at: c.decided_at,
                };
                self.start_deploy(service, c, &lease, attempt).await
            }
            None => Ok(Report::quiet(
                "the deployment is being started by another invocation",
            )),
        }
    }

    /// Starts the deploy project for a deploying candidate this invocation holds `lease` on,
    /// records the build with the event that says it started, and sends that event. The request
    /// is the one the decision froze ([`Candidate::intent`]), so every attempt sends the same one
    /// whatever the policy says by then.
    async fn start_deploy(
        &self,
        service: &Service,
        c: &Candidate,
        lease: &Lease,
        attempt: Attempt,
    ) -> Result<Report, Error> {
        let result = self.start_deploy_leased(service, c, lease, attempt).await;
        self.store.outbox().guard(lease, result).await
    }

    async fn start_deploy_leased(
        &self,
        service: &Service,
        c: &Candidate,
        lease: &Lease,
        attempt: Attempt,
    ) -> Result<Report, Error> {
        let request = intent_of(service, c)?;
        match codebuild::start(&self.codebuild, &request, attempt).await {
            Ok(build) => self.started(service, c, lease, &build).await,
            Err(StartError::Retryable(err)) => Err(err),
            Err(StartError::Refused(err)) => {
                // The project is missing or refuses the call: a retry cannot fix it.
                let project = request.project();
                let detail = json!({
                    "service": c.service,
                    "commit_sha": c.commit,
                    "project": project,
                    "build_id": null,
                    "status": "NOT_STARTED",
                    "reason": format!("could not start {project}: {err}"),
                });
                let owes = [OutgoingEvent::enveloped(
                    DetailType::DeploymentFailed,
                    &detail,
                    &c.correlation_id,
                    &c.decided_by,
                )?];
                if !self.store.refused(lease, &owes).await? {
                    return Ok(Report::quiet(
                        "the deployment was recorded by another invocation",
                    ));
                }
                self.say(lease, &owes, c, &format!("deploy project refused: {err}"))
                    .await
            }
        }
    }

    /// Records `build` as the deploy build of a deploying candidate this invocation holds
    /// `lease` on, with the event that says it started, and sends that event.
    async fn started(
        &self,
        service: &Service,
        c: &Candidate,
        lease: &Lease,
        build: &str,
    ) -> Result<Report, Error> {
        let mut c = c.clone();
        c.build_id = Some(build.to_string());
        let (owes, outcome) = self.decision_events(service, &c)?;
        if !self.store.set_build(lease, build, &owes).await? {
            return Ok(Report::quiet(format!(
                "build {build} was recorded by another invocation"
            )));
        }
        self.say(lease, &owes, &c, outcome).await
    }

    /// A required signal failed on a candidate decided to deploy whose build is unrecorded and
    /// whose lease lapsed. Blocked only if CodeBuild has no build of the decision: one a dead
    /// invocation started (its answer lost) is recorded and said, and the failure is late.
    pub(crate) async fn withdraw(
        &self,
        service: &Service,
        c: &Candidate,
        reasons: Vec<String>,
        now: u64,
    ) -> Result<Withdrawn, Error> {
        let Some(lease) = self.store.take_unstarted(c, now).await? else {
            return Ok(Withdrawn::Busy);
        };
        let result = self.withdraw_leased(service, c, reasons, &lease).await;
        self.store.outbox().guard(&lease, result).await
    }

    async fn withdraw_leased(
        &self,
        service: &Service,
        c: &Candidate,
        reasons: Vec<String>,
        lease: &Lease,
    ) -> Result<Withdrawn, Error> {
        let request = intent_of(service, c)?;
        let found = codebuild::find_build(
            &self.codebuild,
            request.project(),
            &request.token(),
            c.decided_at,
        )
        .await
        .map_err(|e| match e {
            StartError::Retryable(e) | StartError::Refused(e) => e,
        })?;
        if let Some(build) = found {
            warn!(service = %c.service, commit = %c.commit, build = %build, "a required signal failed after the deploy build started: late, not withdrawn");
            return Ok(Withdrawn::Started(
                self.started(service, c, lease, &build).await?,
            ));
        }
        let mut blocked = c.clone();
        blocked.state = State::Blocked;
        blocked.reasons = reasons.clone();
        let (owes, outcome) = self.decision_events(service, &blocked)?;
        if !self.store.withdraw(lease, &reasons, &owes).await? {
            return Ok(Withdrawn::Busy);
        }
        Ok(Withdrawn::Blocked(
            self.say(lease, &owes, &blocked, outcome).await?,
        ))
    }

    /// A deploy build finished. Only the build the gate started and recorded for the candidate
    /// moves the history and is said, once: its completion and the events that say it are one
    /// write. A redelivery finds it recorded; a deploy build the gate never started changes
    /// nothing.
    pub(crate) async fn deploy_finished(
        &self,
        policy: &Policy,
        d: &DeployFinished,
        event: &Value,
    ) -> Result<Report, Error> {
        // What was said on the way (a start owed or unrecorded), before the completion.
        let mut earlier: Vec<String> = Vec::new();
        for _ in 0..FINISH_ATTEMPTS {
            let now = (self.clock)();
            let Some(c) = self.store.get(&d.service, &d.commit).await? else {
                return Ok(not_started(d, "no candidate of that commit"));
            };
            let build = c.build_id.as_deref().map(codebuild::build_id);
            if build != Some(codebuild::build_id(&d.build_id)) {
                let ours = !c.decision.is_empty() && d.decision.as_deref() == Some(&c.decision);
                if !(ours && c.state == State::Deploying && c.build_id.is_none()) {
                    return Ok(not_started(d, "not the candidate's deploy build"));
                }
                // The decision's own build, finished before its start was recorded: recorded
                // and said now, then its completion; or retried while its starter still works.
                let Some(lease) = self.store.take_unstarted(&c, now).await? else {
                    return Err(Error::InProgress(format!(
                        "the start of build {} is being recorded by another invocation",
                        d.build_id
                    )));
                };
                let Some(service) = policy.service(c.service.as_str()) else {
                    return Ok(not_started(d, "its service is not in the policy"));
                };
                let build = codebuild::build_id(&d.build_id);
                let result = self.started(service, &c, &lease, build).await;
                earlier.extend(self.store.outbox().guard(&lease, result).await?.published);
                continue;
            }
            if c.owes {
                // Said first: what a previous invocation owes (the deploy's start, or this).
                let said = self.finish_owed(&c, now).await?;
                if c.state != State::Deploying {
                    return Ok(said.after(earlier));
                }
                if said.published.is_empty() {
                    // Its start is being said by an invocation still at work: the completion
                    // is recorded after it, by a retry of this event.
                    return Err(Error::InProgress(format!(
                        "the start of build {} is being said by another invocation",
                        d.build_id
                    )));
                }
                earlier.extend(said.published);
                continue;
            }
            if c.state != State::Deploying {
                return Ok(Report::quiet(format!(
                    "the completion of build {} is recorded already",
                    d.build_id
                )));
            }
            let read = self.store.history(&d.service).await?;
            let version = d.succeeded.then(|| Version {
                commit: d.commit.to_string(),
                digest: c.digest.as_ref().map(ImageDigest::to_string),
                build_id: d.build_id.clone(),
                at: now,
                kind: VersionKind::Deploy,
                correlation_id: Some(c.correlation_id.clone()),
                replaced: None,
                started_at: Some(c.decided_at).filter(|at| *at > 0),
            });
            let (to, detail_type, detail) = match &version {
                Some(v) => {
                    let history = read.after(v);
                    (
                        State::Deployed,
                        DetailType::DeploymentSucceeded,
                        json!({
                            "service": d.service,
                            "commit_sha": d.commit,
                            "image_digest": c.digest,
                            "build_id": d.build_id,
                            "live": history.live,
                            "last_known_good": history.last_known_good,
                        }),
                    )
                }
                None => (
                    State::DeployFailed,
                    DetailType::DeploymentFailed,
                    json!({
                        "service": d.service,
                        "commit_sha": d.commit,
                        "project": event["detail"]["project-name"],
                        "build_id": d.build_id,
                        "status": d.status,
                        "failed_phase": d.failed_phase,
                        "logs_url": d.logs,
                        "reason": format!(
                            "the deploy build {} ended {}{}",
                            d.build_id,
                            d.status,
                            d.failed_phase.as_ref().map(|p| format!(" in phase {p}")).unwrap_or_default()
                        ),
                    }),
                ),
            };
            let said = OutgoingEvent::enveloped(
                detail_type,
                &detail,
                &c.correlation_id,
                &d.evidence.event_id,
            )?;
            let images = policy
                .service(c.service.as_str())
                .and_then(|s| s.image_repository.as_deref());
            let owes = self.with_cdevents(images, said)?;
            let lease = Lease::new(key_of(&c), now);
            let finished = Finished {
                candidate: &c,
                build_id: c.build_id.as_deref().unwrap_or_default(),
                to,
                version: version.as_ref(),
                read: &read,
                owes: &owes,
                lease: &lease,
            };
            if !self.store.finish_deploy(&finished).await?
                && self
                    .store
                    .still_mine(&c, &lease)
                    .await?
                    .is_none_or(|r| r.state != to)
            {
                // Recorded meanwhile, or the history moved since it was read: look again.
                continue;
            }
            if d.succeeded {
                self.measure_deployed(&c, now).await;
            }
            let outcome = format!("deploy of {} {}: {}", d.service, d.commit.short(), d.status);
            let said = self.say(&lease, &owes, &c, &outcome).await?;
            return Ok(said.after(earlier));
        }
        Err(Error::Aws {
            service: "DynamoDB",
            operation: "TransactWriteItems",
            message: format!(
                "{}: the candidate or history changed under {FINISH_ATTEMPTS} attempts to record build {}",
                d.service, d.build_id
            ),
            retry: eddo::Retry::Retryable,
        })
    }
}

/// A deploy build's completion and the history race at most this many times.
const FINISH_ATTEMPTS: usize = 3;

/// A deploy build the gate did not start (or not for this candidate): nothing moves, nothing is
/// said.
fn not_started(d: &DeployFinished, why: &str) -> Report {
    warn!(service = %d.service, build = %d.build_id, reason = why, "a deploy build eddo did not start finished");
    Report::quiet(format!(
        "build {} of {} {} was not started by eddo ({why}); the history is unchanged",
        d.build_id,
        d.service,
        d.commit.short()
    ))
}

/// How a withdrawal went.
pub(crate) enum Withdrawn {
    /// Blocked, and said.
    Blocked(Report),
    /// CodeBuild had the decision's build: recorded and said; the failure is late.
    Started(Report),
    /// Another invocation has the candidate, or its build was recorded meanwhile.
    Busy,
}

/// A decision to deploy as it is made, before it is written: its id, the lease its write takes,
/// and what it fixes: the build it freezes, or (a service that deploys by GitHub environment
/// only) the approval, said in the same write.
pub(crate) struct Decision {
    id: String,
    lease: Lease,
    to: State,
    intent: Option<BuildRequest>,
    owes: Vec<OutgoingEvent>,
    outcome: &'static str,
}

impl Decision {
    fn new(
        gate: &Gate,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
        now: u64,
    ) -> Result<Decision, Error> {
        let id = eddo::outbox::unique_id();
        // The build's causation is the event that decides.
        let mut decided = c.clone();
        decided.decided_by = cause.event_id.clone();
        let lease = Lease::new(key_of(c), now);
        if service.deploys_by.codebuild() {
            let intent = deploy_request(service, &decided)
                .ok_or_else(|| no_project(service))?
                .decided(&id);
            return Ok(Decision {
                id,
                lease,
                to: State::Deploying,
                intent: Some(intent),
                owes: vec![],
                outcome: "deployment started",
            });
        }
        decided.state = State::Approved;
        decided.reasons = vec![];
        let (owes, outcome) = gate.decision_events(service, &decided)?;
        Ok(Decision {
            id,
            lease,
            to: State::Approved,
            intent: None,
            owes,
            outcome,
        })
    }

    fn decided<'a>(
        &'a self,
        service: &Service,
        c: &'a Candidate,
        cause: &'a Evidence,
        now: u64,
    ) -> Decided<'a> {
        Decided {
            candidate: c,
            to: self.to,
            reasons: &[],
            by: &cause.event_id,
            owes: &self.owes,
            now,
            approved: c.approved(&service.gate),
            decision: &self.id,
            lease: &self.lease,
            intent: self.intent.as_ref(),
            policy_version: service.policy_version.clone(),
        }
    }
}

fn no_project(service: &Service) -> Error {
    Error::InvalidEvent(format!(
        "{} has no deploy project to start (it deploys by GitHub environment)",
        service.name
    ))
}

/// The build a deploying candidate's decision froze; for a candidate decided before decisions
/// froze it, the request made from the candidate as recorded.
fn intent_of(service: &Service, c: &Candidate) -> Result<BuildRequest, Error> {
    match &c.intent {
        Some(intent) => Ok(intent.clone()),
        None => deploy_request(service, c).ok_or_else(|| no_project(service)),
    }
}

/// The deploy build of a candidate: a pure function of the decision (the candidate as decided,
/// and the event that decided it), so every attempt to start it sends the same request with the
/// same token, and a deploy again after a rollback (another decision) is another. `None` for a
/// service with no deploy project (it deploys by GitHub environment only).
pub fn deploy_request(service: &Service, c: &Candidate) -> Option<BuildRequest> {
    let project = service.projects.deploy.as_ref()?;
    let request = BuildRequest::new(ProjectRole::Deploy.as_str(), project.as_str())
        .var("EDDO_SERVICE", c.service.as_str())
        .var("EDDO_COMMIT_SHA", c.commit.as_str())
        .var("EDDO_CORRELATION_ID", &c.correlation_id)
        .var_opt(
            "EDDO_CAUSATION_ID",
            Some(c.decided_by.as_str()).filter(|b| !b.is_empty()),
        )
        .var_opt(
            "EDDO_IMAGE_DIGEST",
            c.digest.as_ref().map(ImageDigest::as_str),
        );
    Some(request)
}
