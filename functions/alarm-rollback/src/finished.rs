//! A rollback build's completion: the hold released, the history moved on success, and the
//! outcome said, once; the completion and the events that say it are one write.

use eddo::cdevents::emit::{Producer, with_cdevents};
use eddo::codebuild::{self, BuildState};
use eddo::history::{Version, VersionKind};
use eddo::outbox::Lease;
use eddo::policy::{Policy, ProjectRole};
use eddo::publish::OutgoingEvent;
use eddo::{DetailType, Error};
use serde_json::{Value, json};
use tracing::{Instrument, warn};

use crate::starting::Origin;
use crate::store::{Finish, RollbackRecord, record_key};
use crate::{DECIDE_ATTEMPTS, Report, Rollbacks, contention, version_detail};

impl Rollbacks {
    /// A rollback project's build finished: the hold is released, the history moves on success,
    /// and the outcome is said once. A build eddo did not start changes nothing.
    pub(crate) async fn build_finished(
        &self,
        policy: &Policy,
        event: &Value,
    ) -> Result<Report, Error> {
        let b = match BuildState::read(event) {
            Ok(b) => b,
            Err(why) => return self.unreadable(event, why).await,
        };
        let service = match policy.build_owner(&b) {
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
        let causation = event["id"].as_str().unwrap_or(&b.build_id).to_string();
        // What was said on the way (a start the completion found unrecorded), before it.
        let mut earlier: Vec<String> = Vec::new();
        for _ in 0..DECIDE_ATTEMPTS {
            let now = (self.clock)();
            let (history, record) = self.store.service(&service.name).await?;
            if record.build_id.is_none()
                && record.decision.is_some()
                && b.env(codebuild::DECISION_VARIABLE) == record.decision.as_deref()
                && let Some((pk, sk)) = &record.change
            {
                // The decision's own build, finished before its start was recorded: recorded
                // and said now (under the alarm change's lease), then its completion; or retried
                // while its starter still works.
                let Some(lease) = self.store.take(pk, sk, now).await? else {
                    return Err(Error::InProgress(format!(
                        "the start of rollback build {} is being recorded by another invocation",
                        b.id()
                    )));
                };
                let detail = match self.store.change(pk, sk).await? {
                    Some(c) => serde_json::from_str(&c.detail).unwrap_or(Value::Null),
                    None => Value::Null,
                };
                let mut known = record.clone();
                known.build_id = Some(b.id().to_string());
                let origin = Origin {
                    alarm: record.alarm.as_deref().unwrap_or_default(),
                    causation: record.causation_id.clone().unwrap_or_default(),
                };
                let result = self
                    .start(&origin, service, &known, &detail, &lease, true)
                    .await;
                earlier.extend(self.store.outbox().guard(&lease, result).await?.published);
                continue;
            }
            if record.build_id.as_deref().map(codebuild::build_id) != Some(b.id()) {
                warn!(service = %service.name, build = %b.build_id, "a rollback build eddo did not start finished");
                return Ok(Report::quiet(format!(
                    "build {} of {} was not started by eddo; the history is unchanged",
                    b.build_id, b.project
                )));
            }
            if record.finished.as_deref() == Some(b.id()) {
                if record.owes {
                    let Some(published) = self
                        .store
                        .outbox()
                        .finish(&record_key(&service.name), now)
                        .await?
                    else {
                        // Said by another invocation that holds the record, or by none if it
                        // died: retried until it is said, never answered done while unsaid.
                        return Err(Error::InProgress(format!(
                            "the completion of rollback build {} is being said by another invocation",
                            b.id()
                        )));
                    };
                    return Ok(Report {
                        outcome: format!("rollback build {}: said what was owed", b.id()),
                        published,
                    });
                }
                return Ok(Report::quiet(format!(
                    "rollback build {} already recorded",
                    b.id()
                )));
            }
            let correlation = record
                .correlation_id
                .clone()
                .unwrap_or_else(|| format!("rollback:{}", service.name));
            let live = b.succeeded().then(|| restored(&record, &b, now)).flatten();
            let (detail_type, detail) =
                completion(&record, &b, &history, live.as_ref(), &service.name);
            let said = OutgoingEvent::enveloped(detail_type, &detail, &correlation, &causation)?;
            let producer = Producer::of(&self.publisher, service.image_repository.as_deref());
            let owes = with_cdevents([said], producer.as_ref(), now)?;
            let lease = Lease::new(record_key(&service.name), now);
            let finish = Finish {
                service: &service.name,
                build_id: b.id(),
                live: live.as_ref(),
                read: &history,
                owes: &owes,
                lease: &lease,
                now,
            };
            if !self.store.finish(&finish).await? {
                // Recorded meanwhile, or the history moved since it was read: look again.
                continue;
            }
            let outcome = format!("rollback of {} {}", service.name, b.status);
            let said = self
                .say(&lease, &owes, &outcome)
                .instrument(eddo::telemetry::correlation_span(&correlation))
                .await?;
            return Ok(said.after(earlier));
        }
        Err(contention(&service.name))
    }
}

/// The event that says how a rollback build ended.
fn completion(
    record: &RollbackRecord,
    b: &BuildState,
    history: &eddo::history::History,
    live: Option<&Version>,
    service: &eddo::names::ServiceName,
) -> (DetailType, Value) {
    let target = record.target.as_ref().map(version_detail);
    let replacing = record.replacing.as_ref().map(version_detail);
    match live {
        Some(v) => {
            let history = history.after(v);
            (
                DetailType::RollbackSucceeded,
                json!({
                    "service": service,
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
        }
        None => (
            DetailType::RollbackFailed,
            json!({
                "service": service,
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
                    service
                ),
            }),
        ),
    }
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
