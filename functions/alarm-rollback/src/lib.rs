//! Alarm to rollback: when a CloudWatch alarm goes into ALARM while a release bakes, start the
//! service's rollback project with its last known-good version, once, and say why; or say why
//! not. The rollback project's completion moves the deployment history and releases the hold on
//! the service's deployments.
//!
//! The decisions are pure ([`decide`]); this file gathers inputs and performs the effects.

pub mod alarm;
pub mod decide;
pub mod store;

use eddo::codebuild::{self, BuildState, StartError};
use eddo::history::{Version, VersionKind};
use eddo::idempotency::now_epoch;
use eddo::policy::{Policy, ProjectRole, RollbackMode, Service};
use eddo::publish::Publisher;
use eddo::time::rfc3339;
use eddo::{DetailType, Error};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, info, warn};

use crate::alarm::AlarmChange;
use crate::decide::{Decision, Skip, Trigger, decide, starts_after, trigger};
use crate::store::{Change, Claim, NewChange, Outcome, RollbackRecord, Start, Store};

/// Two alarms racing for one service decide again at most this many times.
const DECIDE_ATTEMPTS: usize = 3;

/// The function's settings: the common ones and where the policy is.
pub use eddo::config::PolicyConfig as Config;

/// What one invocation did, returned to the runtime and logged.
pub use eddo::Report;

/// The alarm, as the events describe it.
#[derive(Debug, Clone, Serialize)]
struct AlarmDetail<'a> {
    name: &'a str,
    arn: Option<&'a str>,
    state: &'a str,
    previous_state: Option<&'a str>,
    reason: &'a str,
    changed_at: &'a str,
    composite: bool,
}

fn alarm_detail(a: &AlarmChange) -> AlarmDetail<'_> {
    AlarmDetail {
        name: &a.name,
        arn: a.arn.as_deref(),
        state: a.state.value.as_str(),
        previous_state: a.previous.as_ref().map(|p| p.value.as_str()),
        reason: &a.state.reason,
        changed_at: &a.state.timestamp,
        composite: a.composite,
    }
}

/// A version, as the events name it.
fn version_detail(v: &Version) -> Value {
    json!({"commit": v.commit, "digest": v.digest, "build_id": v.build_id, "at": rfc3339(v.at)})
}

pub struct Rollbacks {
    policy: Policy,
    store: Store,
    codebuild: aws_sdk_codebuild::Client,
    publisher: Publisher,
}

impl Rollbacks {
    pub fn new(config: &Config, policy: Policy, sdk: &aws_config::SdkConfig) -> Rollbacks {
        Rollbacks {
            policy,
            store: Store::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &config.common.table_name,
            ),
            codebuild: aws_sdk_codebuild::Client::new(sdk),
            publisher: Publisher::from_config(&config.common, sdk),
        }
    }

    /// Another CodeBuild client (the local stack's stand-in, or a mock, in tests).
    pub fn with_codebuild(mut self, client: aws_sdk_codebuild::Client) -> Rollbacks {
        self.codebuild = client;
        self
    }

    /// Another DynamoDB client (one that counts its calls, in tests).
    pub fn with_dynamodb(mut self, client: aws_sdk_dynamodb::Client, table: &str) -> Rollbacks {
        self.store = Store::new(client, table);
        self
    }

    /// Handles an alarm state change (either shape) or a rollback project's state change.
    /// `Err` only for what a retry can fix; anything unreadable or unknown is reported with a
    /// `Rollback Skipped` event and answered, so Lambda does not retry it for a day.
    pub async fn handle(&self, event: &Value) -> Result<Report, Error> {
        if event["source"] == "aws.codebuild" {
            return self.build_finished(event).await;
        }
        let alarm = match AlarmChange::read(event) {
            Ok(a) => a,
            Err(why) => return self.unreadable(event, why).await,
        };
        match trigger(&self.policy, &alarm) {
            Trigger::Quiet(why) => {
                info!(alarm = %alarm.name, reason = %why, "nothing to do");
                Ok(Report::quiet(why))
            }
            Trigger::Skip(service, skip) => {
                let correlation = format!("alarm:{}", alarm.name);
                self.skip(&alarm, service, vec![skip], &correlation).await
            }
            Trigger::Act(service) => self.consider(&alarm, service).await,
        }
    }

    /// Reports an event that could not be read, once: a retry would read it no better.
    async fn unreadable(&self, event: &Value, why: String) -> Result<Report, Error> {
        warn!(reason = %why, "unreadable event");
        let id = event["id"].as_str().unwrap_or("unknown");
        let skip = Skip::Unreadable { why };
        let detail = json!({
            "service": null,
            "alarm": null,
            "reason": skip.code(),
            "reasons": [skip.to_string()],
            "event_id": event["id"],
        });
        let published = self
            .publisher
            .publish_one(DetailType::RollbackSkipped, &detail, id, id)
            .await?;
        Ok(Report {
            outcome: skip.to_string(),
            published: vec![published],
        })
    }

    fn keys(alarm: &AlarmChange) -> (String, String) {
        (format!("alarm#{}", alarm.identity()), alarm.change())
    }

    fn causation(alarm: &AlarmChange) -> String {
        alarm
            .event_id
            .clone()
            .unwrap_or_else(|| format!("{}@{}", alarm.identity(), alarm.change()))
    }

    /// Decides for a service whose alarm calls for a rollback, and acts.
    async fn consider(&self, alarm: &AlarmChange, service: &Service) -> Result<Report, Error> {
        let rollback = service.rollback.as_ref().expect("trigger checked it");
        let (pk, sk) = Self::keys(alarm);
        for _ in 0..DECIDE_ATTEMPTS {
            let now = now_epoch();
            let (history, record) = self.store.service(&service.name).await?;
            let correlation = history
                .live
                .as_ref()
                .and_then(|v| v.correlation_id.clone())
                .unwrap_or_else(|| format!("rollback:{}", service.name));
            let span = eddo::telemetry::correlation_span(&correlation);
            let alarm_at = alarm.state.at().unwrap_or(now).min(now);
            let decision = decide(
                service.name.as_str(),
                rollback,
                &history,
                &record.facts(now),
                alarm_at,
                now,
            );
            let (target, replacing) = match decision {
                Decision::Skip(reasons) => {
                    return self
                        .skip(alarm, Some(service), reasons, &correlation)
                        .instrument(span)
                        .await;
                }
                Decision::RollBack { target, replacing } => (target, replacing),
            };
            let project = service
                .projects
                .rollback
                .as_ref()
                .expect("the policy requires a rollback project with a rollback section");
            let mut detail = json!({
                "service": service.name,
                "alarm": alarm_detail(alarm),
                "project": project,
                "mode": rollback.mode,
                "target": version_detail(&target),
                "replacing": version_detail(&replacing),
                "bake_minutes": rollback.bake_minutes,
            });
            let text = detail.to_string();
            let change = |outcome| NewChange {
                pk: &pk,
                sk: &sk,
                outcome,
                service: Some(&service.name),
                detail: &text,
                correlation_id: &correlation,
                now,
            };
            if rollback.mode == RollbackMode::DryRun {
                return match self.store.note(&change(Outcome::WouldRollBack)).await? {
                    None => {
                        let r = self
                            .announce(
                                &pk,
                                &sk,
                                DetailType::RollbackWouldStart,
                                &detail,
                                &correlation,
                                &Self::causation(alarm),
                            )
                            .instrument(span)
                            .await;
                        self.let_go_on_error(&pk, &sk, r).await
                    }
                    Some(c) => self.resume(alarm, c).await,
                };
            }
            let starts = starts_after(&record.facts(now), rollback, now);
            let start = Start {
                service: &service.name,
                decided_on: record.rev,
                hold_until: now + u64::from(rollback.hold_minutes) * 60,
                target: &target,
                replacing: &replacing,
                correlation_id: &correlation,
                causation_id: &Self::causation(alarm),
                alarm: &alarm.name,
                starts: &starts,
            };
            match self
                .store
                .claim(&change(Outcome::RolledBack), &start)
                .await?
            {
                Claim::Started(claimed) => {
                    detail["rev"] = json!(claimed.rev);
                    let r = self
                        .start(alarm, service, &claimed, &detail, &correlation, false)
                        .instrument(span)
                        .await;
                    return self.let_go_on_error(&pk, &sk, r).await;
                }
                Claim::Duplicate(c) => return self.resume(alarm, *c).await,
                Claim::Raced => continue,
            }
        }
        // Contention a retry resolves: fail the invocation for Lambda to retry it.
        Err(Error::Aws {
            service: "DynamoDB",
            operation: "TransactWriteItems",
            message: format!(
                "{}: the rollback record changed under {DECIDE_ATTEMPTS} decisions in a row",
                service.name
            ),
            retry: eddo::Retry::Retryable,
        })
    }

    /// Reports a rollback that did not start, once per alarm change.
    async fn skip(
        &self,
        alarm: &AlarmChange,
        service: Option<&Service>,
        reasons: Vec<Skip>,
        correlation: &str,
    ) -> Result<Report, Error> {
        let (pk, sk) = Self::keys(alarm);
        let first = reasons.first().map(Skip::code).unwrap_or("unknown");
        let detail = json!({
            "service": service.map(|s| s.name.as_str()),
            "alarm": alarm_detail(alarm),
            "reason": first,
            "reasons": reasons.iter().map(Skip::to_string).collect::<Vec<_>>(),
            "codes": reasons.iter().map(Skip::code).collect::<Vec<_>>(),
            "mode": service.and_then(|s| s.rollback.as_ref()).map(|r| r.mode),
        });
        info!(alarm = %alarm.name, reason = first, "rollback skipped");
        let text = detail.to_string();
        let change = NewChange {
            pk: &pk,
            sk: &sk,
            outcome: Outcome::Skipped,
            service: service.map(|s| &s.name),
            detail: &text,
            correlation_id: correlation,
            now: now_epoch(),
        };
        match self.store.note(&change).await? {
            None => {
                let r = self
                    .announce(
                        &pk,
                        &sk,
                        DetailType::RollbackSkipped,
                        &detail,
                        correlation,
                        &Self::causation(alarm),
                    )
                    .await;
                self.let_go_on_error(&pk, &sk, r).await
            }
            Some(c) => self.resume(alarm, c).await,
        }
    }

    /// Publishes an alarm change's event, then notes it was published.
    async fn announce(
        &self,
        pk: &str,
        sk: &str,
        detail_type: DetailType,
        detail: &Value,
        correlation: &str,
        causation: &str,
    ) -> Result<Report, Error> {
        let published = self
            .publisher
            .publish_one(detail_type, detail, correlation, causation)
            .await?;
        self.store.announced(pk, sk, &detail.to_string()).await?;
        Ok(Report {
            outcome: detail_type.as_str().to_lowercase(),
            published: vec![published],
        })
    }

    /// The same alarm change again (a redelivery, or both shapes of it): finish what the first
    /// delivery started, say nothing twice, start nothing twice.
    async fn resume(&self, alarm: &AlarmChange, change: Change) -> Result<Report, Error> {
        if change.announced {
            return Ok(Report::quiet(format!(
                "alarm {} change {} already handled ({:?})",
                alarm.name,
                alarm.change(),
                change.outcome
            )));
        }
        let (pk, sk) = Self::keys(alarm);
        if !self.store.take(&pk, &sk, now_epoch()).await? {
            return Ok(Report::quiet(format!(
                "alarm {} change {} is being handled by another invocation",
                alarm.name,
                alarm.change()
            )));
        }
        let detail: Value = serde_json::from_str(&change.detail).unwrap_or(Value::Null);
        let causation = Self::causation(alarm);
        let result = match change.outcome {
            Outcome::Skipped => {
                self.announce(
                    &pk,
                    &sk,
                    DetailType::RollbackSkipped,
                    &detail,
                    &change.correlation_id,
                    &causation,
                )
                .await
            }
            Outcome::WouldRollBack => {
                self.announce(
                    &pk,
                    &sk,
                    DetailType::RollbackWouldStart,
                    &detail,
                    &change.correlation_id,
                    &causation,
                )
                .await
            }
            Outcome::RolledBack => {
                let service = change
                    .service
                    .as_deref()
                    .and_then(|s| self.policy.service(s))
                    .ok_or_else(|| {
                        Error::InvalidEvent(format!(
                            "alarm change {pk} {sk} names a service the policy no longer has"
                        ))
                    })?;
                let (_, record) = self.store.service(&service.name).await?;
                if Some(record.rev) != change.rev {
                    // A later rollback replaced this one's record: this one was announced long
                    // ago or never will be.
                    warn!(service = %service.name, "a later rollback superseded this alarm change's");
                    return Ok(Report::quiet("superseded by a later rollback"));
                }
                let mut detail = detail;
                detail["rev"] = json!(change.rev);
                self.start(
                    alarm,
                    service,
                    &record,
                    &detail,
                    &change.correlation_id,
                    true,
                )
                .await
            }
        };
        self.let_go_on_error(&pk, &sk, result).await
    }

    /// After a failure, gives the alarm change back so Lambda's retry finds it free.
    async fn let_go_on_error(
        &self,
        pk: &str,
        sk: &str,
        result: Result<Report, Error>,
    ) -> Result<Report, Error> {
        if result.is_err()
            && let Err(e) = self.store.let_go(pk, sk).await
        {
            warn!(error = %e, "could not release the alarm change; the retry waits for its lease");
        }
        result
    }

    /// Starts the rollback build of the service's `record` (idempotent: the token is the alarm
    /// change's, and a recorded build is reused), then announces it.
    async fn start(
        &self,
        alarm: &AlarmChange,
        service: &Service,
        record: &RollbackRecord,
        detail: &Value,
        correlation: &str,
        resumed: bool,
    ) -> Result<Report, Error> {
        let (pk, sk) = Self::keys(alarm);
        let rev = record.rev;
        let project = service
            .projects
            .rollback
            .as_ref()
            .expect("the policy requires a rollback project with a rollback section");
        // The decision's causation, as recorded: the same whichever delivery starts it.
        let causation = record
            .causation_id
            .clone()
            .unwrap_or_else(|| Self::causation(alarm));
        let build = match &record.build_id {
            Some(b) => b.clone(),
            None => {
                let request = rollback_request(service, record, &causation)?;
                match codebuild::start(&self.codebuild, &request, resumed).await {
                    Ok(b) => b,
                    Err(StartError::Retryable(e)) => return Err(e),
                    Err(StartError::Refused(e)) => {
                        self.store.release(&service.name, rev).await?;
                        let mut failed = detail.clone();
                        failed["build_id"] = Value::Null;
                        failed["alarm"] = json!(alarm.name);
                        failed["status"] = json!("NOT_STARTED");
                        failed["reason"] = json!(format!(
                            "could not start {project}: {e}; deployments of {} are no longer held",
                            service.name
                        ));
                        return self
                            .announce(
                                &pk,
                                &sk,
                                DetailType::RollbackFailed,
                                &failed,
                                correlation,
                                &causation,
                            )
                            .await;
                    }
                }
            }
        };
        self.store.set_build(&service.name, rev, &build).await?;
        let mut started = detail.clone();
        started["build_id"] = json!(build);
        started["held_until"] = json!(rfc3339(record.held_until));
        info!(service = %service.name, build = %build, "rollback started");
        self.announce(
            &pk,
            &sk,
            DetailType::RollbackStarted,
            &started,
            correlation,
            &causation,
        )
        .await
    }

    /// A rollback project's build finished: the hold is released, the history moves on success,
    /// and the outcome is said once.
    async fn build_finished(&self, event: &Value) -> Result<Report, Error> {
        let b = match BuildState::read(event) {
            Ok(b) => b,
            Err(why) => return self.unreadable(event, why).await,
        };
        let service = match self.policy.project(&b.project) {
            Some((s, ProjectRole::Rollback)) => s,
            _ => {
                return Ok(Report::quiet(format!(
                    "{} is not a rollback project in the policy",
                    b.project
                )));
            }
        };
        if !b.finished() {
            return Ok(Report::quiet(format!("{} build in progress", b.project)));
        }
        let now = now_epoch();
        let (history, record) = self.store.service(&service.name).await?;
        if record.build_id.as_deref().map(codebuild::build_id) != Some(b.id()) {
            warn!(service = %service.name, build = %b.build_id, "a rollback build eddo did not start finished");
            return Ok(Report::quiet(format!(
                "build {} of {} was not started by eddo; the history is unchanged",
                b.build_id, b.project
            )));
        }
        let live = b.succeeded().then(|| restored(&record, &b, now)).flatten();
        let recorded = self
            .store
            .finish(&service.name, b.id(), b.succeeded(), live.as_ref(), now)
            .await?;
        if !recorded && record.finish_announced.as_deref() == Some(b.id()) {
            return Ok(Report::quiet(format!(
                "rollback build {} already recorded",
                b.id()
            )));
        }
        let correlation = record
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("rollback:{}", service.name));
        let causation = event["id"].as_str().unwrap_or(&b.build_id).to_string();
        let target = record.target.as_ref().map(version_detail);
        let replacing = record.replacing.as_ref().map(version_detail);
        let (detail_type, detail) = if b.succeeded() {
            let history = if recorded {
                eddo::history::History {
                    live: live.clone(),
                    ..history
                }
            } else {
                history
            };
            (
                DetailType::RollbackSucceeded,
                json!({
                    "service": service.name,
                    "project": b.project,
                    "build_id": b.id(),
                    "alarm": record.alarm,
                    "restored": target,
                    "replaced": replacing,
                    "live": history.live,
                    "last_known_good": history.last_known_good,
                    "logs_url": b.logs_url,
                }),
            )
        } else {
            (
                DetailType::RollbackFailed,
                json!({
                    "service": service.name,
                    "project": b.project,
                    "build_id": b.id(),
                    "alarm": record.alarm,
                    "target": target,
                    "replacing": replacing,
                    "status": b.status,
                    "failed_phase": b.failed_phase,
                    "logs_url": b.logs_url,
                    "reason": format!(
                        "the rollback build {} {}{}; {} is still live and deployments of {} are no longer held",
                        b.id(),
                        b.ending(),
                        b.logs_url.as_ref().map(|l| format!(" (logs: {l})")).unwrap_or_default(),
                        record.replacing.as_ref().map(|v| &v.commit[..v.commit.len().min(7)]).unwrap_or("the replaced version"),
                        service.name
                    ),
                }),
            )
        };
        let published = self
            .publisher
            .publish_one(detail_type, &detail, &correlation, &causation)
            .instrument(eddo::telemetry::correlation_span(&correlation))
            .await?;
        self.store.finish_announced(&service.name, b.id()).await?;
        Ok(Report {
            outcome: format!("rollback of {} {}", service.name, b.status),
            published: vec![published],
        })
    }
}

/// The rollback build of a service's rollback record: a pure function of the decision (the
/// record as claimed, with the event that decided it), so every attempt sends the same request
/// with the same token.
fn rollback_request(
    service: &Service,
    record: &RollbackRecord,
    causation: &str,
) -> Result<codebuild::BuildRequest, Error> {
    let (Some(target), Some(replacing)) = (&record.target, &record.replacing) else {
        return Err(Error::InvalidEvent(
            "the rollback record has no target".into(),
        ));
    };
    let rollback = service
        .rollback
        .as_ref()
        .expect("rolled back services have one");
    let project = service
        .projects
        .rollback
        .as_ref()
        .expect("the policy requires a rollback project with a rollback section");
    Ok(codebuild::BuildRequest::new("rollback", project.as_str())
        .var("EDDO_SERVICE", service.name.as_str())
        .var("EDDO_COMMIT_SHA", &target.commit)
        .var("EDDO_REPLACED_COMMIT_SHA", &replacing.commit)
        .var(
            "EDDO_ALARM_NAME",
            record.alarm.as_deref().unwrap_or_default(),
        )
        .var(
            "EDDO_CORRELATION_ID",
            record.correlation_id.as_deref().unwrap_or_default(),
        )
        .var("EDDO_CAUSATION_ID", causation)
        .var_opt("EDDO_IMAGE_DIGEST", target.digest.as_deref())
        .var_opt("EDDO_REPLACED_IMAGE_DIGEST", replacing.digest.as_deref())
        .timeout(Some(rollback.hold_minutes)))
}

/// The version a successful rollback made live.
fn restored(record: &RollbackRecord, b: &BuildState, now: u64) -> Option<Version> {
    let target = record.target.as_ref()?;
    Some(Version {
        commit: target.commit.clone(),
        digest: target.digest.clone(),
        build_id: b.id().to_string(),
        at: now,
        kind: VersionKind::Rollback,
        correlation_id: record.correlation_id.clone(),
        replaced: record.replacing.as_ref().map(|v| v.commit.clone()),
        started_at: record.starts.last().copied(),
    })
}
