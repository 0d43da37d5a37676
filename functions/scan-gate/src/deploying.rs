//! Deploying: deciding a waiting candidate to deploy (unless a rollback holds the service),
//! starting the deploy project once with the image the service's build reported, and the deploy
//! project's own completion, which moves the service's history.

use std::collections::BTreeMap;

use eddo::codebuild::{self, StartError};
use eddo::history::{Version, VersionKind};
use eddo::names::{CommitSha, ImageDigest, ServiceName};
use eddo::policy::Service;
use eddo::{DetailType, Error};
use serde_json::{Value, json};

use crate::candidate::{Candidate, Evidence, State};
use crate::decide::known_bad;
use crate::signal::DeployFinished;
use crate::store::Transition;
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
        let decided = self.store.decide(c, State::Deploying, &[], now).await?;
        self.deploying(service, c, decided, cause, now).await
    }

    /// Deploys a decided candidate again: a commit a rollback replaced, now approved.
    pub(crate) async fn redeploy(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        let decided = self.store.redeploy(c, now).await?;
        let mut report = self.deploying(service, c, decided, cause, now).await?;
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
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        match decided {
            Transition::Done => {
                let mut c = c.clone();
                if c.state != State::Waiting {
                    c.attempt += 1;
                    c.build_id = None;
                    c.reasons = vec![];
                }
                c.state = State::Deploying;
                c.decided_at = now;
                self.start_deploy(service, &c, cause).await
            }
            Transition::KnownBad if c.state != State::Waiting => Ok(Report {
                outcome: "the commit is known bad and no approval cleared it".into(),
                published: vec![],
            }),
            Transition::KnownBad => {
                self.conclude(service, c, State::Blocked, vec![known_bad(c)], cause, now)
                    .await
            }
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
    /// Starts the deploy project for a deploying candidate (idempotent: the token is the
    /// candidate's, and a recorded build is reused), then announces it.
    pub(crate) async fn start_deploy(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
    ) -> Result<Report, Error> {
        let token = deploy_token(&c.service, &c.commit, c.attempt);
        let mut variables = vec![
            ("EDDO_SERVICE", c.service.as_str()),
            ("EDDO_COMMIT_SHA", c.commit.as_str()),
            ("EDDO_CORRELATION_ID", c.correlation_id.as_str()),
            ("EDDO_CAUSATION_ID", cause.event_id.as_str()),
        ];
        if let Some(d) = &c.digest {
            variables.push(("EDDO_IMAGE_DIGEST", d.as_str()));
        }
        let project = service.projects.deploy.as_str();
        let build = match codebuild::start(&self.codebuild, project, &token, &variables, None).await
        {
            Ok(build) => build,
            Err(StartError::Retryable(err)) => return Err(err),
            Err(StartError::Refused(err)) => {
                // The project is missing or refuses the call: a retry cannot fix it.
                let detail = json!({
                    "service": c.service,
                    "commit_sha": c.commit,
                    "project": project,
                    "build_id": null,
                    "status": "NOT_STARTED",
                    "reason": format!("could not start {project}: {err}"),
                });
                self.store
                    .finish_deploy(c, None, State::DeployFailed)
                    .await?;
                let published = self
                    .publisher
                    .publish_one(
                        DetailType::DeploymentFailed,
                        &detail,
                        &c.correlation_id,
                        &cause.event_id,
                    )
                    .await?;
                return Ok(Report {
                    outcome: format!("deploy project refused: {err}"),
                    published: vec![published],
                });
            }
        };
        self.store.set_build(c, &build).await?;
        let mut c = c.clone();
        c.build_id = Some(build);
        self.announce(service, &c, cause).await
    }
    pub(crate) async fn deploy_finished(
        &self,
        d: &DeployFinished,
        event: &Value,
    ) -> Result<Report, Error> {
        let now = (self.clock)();
        let candidate = self.store.get(&d.service, &d.commit).await?;
        let correlation = candidate
            .as_ref()
            .map(|c| c.correlation_id.clone())
            .unwrap_or_else(|| format!("{}@{}", d.service, d.commit));
        let digest = candidate.as_ref().and_then(|c| c.digest.clone());
        let version = d.succeeded.then(|| Version {
            commit: d.commit.to_string(),
            digest: digest.as_ref().map(ImageDigest::to_string),
            build_id: d.build_id.clone(),
            at: now,
            kind: VersionKind::Deploy,
            correlation_id: Some(correlation.clone()),
            replaced: None,
            started_at: candidate
                .as_ref()
                .map(|c| c.decided_at)
                .filter(|at| *at > 0),
        });
        let to = if d.succeeded {
            State::Deployed
        } else {
            State::DeployFailed
        };
        let tracked = candidate
            .as_ref()
            .filter(|c| c.state == State::Deploying)
            .cloned()
            .unwrap_or_else(|| Candidate {
                service: d.service.clone(),
                commit: d.commit.clone(),
                digest: digest.clone(),
                correlation_id: correlation.clone(),
                state: State::Deployed,
                signals: BTreeMap::new(),
                first_at: now,
                deadline: now,
                build_id: Some(d.build_id.clone()),
                announced: true,
                reasons: vec![],
                decided_at: now,
                attempt: 0,
            });
        self.store
            .finish_deploy(&tracked, version.as_ref(), to)
            .await?;
        let history = self.store.history(&d.service).await?;
        let (detail_type, detail) = if d.succeeded {
            (
                DetailType::DeploymentSucceeded,
                json!({
                    "service": d.service,
                    "commit_sha": d.commit,
                    "image_digest": digest,
                    "build_id": d.build_id,
                    "live": history.live,
                    "last_known_good": history.last_known_good,
                }),
            )
        } else {
            (
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
            )
        };
        let published = self
            .publisher
            .publish_one(detail_type, &detail, &correlation, &d.evidence.event_id)
            .await?;
        Ok(Report {
            outcome: format!("deploy of {} {}: {}", d.service, d.commit.short(), d.status),
            published: vec![published],
        })
    }
}

/// The deploy's StartBuild idempotency token: the same for every attempt to start one deploy
/// of a candidate; a deploy again after a rollback (`attempt` 1, 2, ...) is a new one.
pub fn deploy_token(service: &ServiceName, commit: &CommitSha, attempt: u32) -> String {
    match attempt {
        0 => codebuild::token("eddo-deploy", &format!("{service}/{commit}")),
        n => codebuild::token("eddo-deploy", &format!("{service}/{commit}/{n}")),
    }
}
