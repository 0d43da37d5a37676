//! Starting a rollback: the build of the decision, once, recorded with the event that says it
//! started (or that its project refused it), then said.

use eddo::cdevents::emit::{Producer, with_cdevents};
use eddo::codebuild::{self, StartError};
use eddo::outbox::Lease;
use eddo::policy::{ProjectRole, Service};
use eddo::publish::OutgoingEvent;
use eddo::time::rfc3339;
use eddo::{DetailType, Error};
use serde_json::{Value, json};
use tracing::info;

use crate::alarm::AlarmChange;
use crate::store::RollbackRecord;
use crate::{Report, Rollbacks};

impl Rollbacks {
    /// Starts the rollback build of the service's `record` under the alarm change's `lease`:
    /// the request is the decision's alone, a recorded build is reused, and a resumed start finds
    /// a build it already started. The build and the event that says it are one write.
    pub(crate) async fn start(
        &self,
        origin: &Origin<'_>,
        service: &Service,
        record: &RollbackRecord,
        detail: &Value,
        lease: &Lease,
        resumed: bool,
    ) -> Result<Report, Error> {
        let rev = record.rev;
        let correlation = record
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("rollback:{}", service.name));
        // The decision's causation, as recorded: the same whichever delivery starts it.
        let causation = record
            .causation_id
            .clone()
            .unwrap_or_else(|| origin.causation.clone());
        // The build the decision froze; a record written before decisions froze it: made now.
        let request = match &record.intent {
            Some(i) => i.clone(),
            None => rollback_request(service, record, &causation)?,
        };
        let build = match &record.build_id {
            Some(b) => b.clone(),
            None => match self.start_build(record, &request, resumed).await {
                Ok(b) => b,
                Err(Unstarted::Retryable(e)) => return Err(e),
                Err(Unstarted::Refused(why)) => {
                    let mut failed = detail.clone();
                    failed["build_id"] = Value::Null;
                    failed["alarm"] = json!(origin.alarm);
                    failed["status"] = json!("NOT_STARTED");
                    failed["reason"] = json!(format!(
                        "{why}; deployments of {} are no longer held",
                        service.name
                    ));
                    let owes = [OutgoingEvent::enveloped(
                        DetailType::RollbackFailed,
                        &failed,
                        &correlation,
                        &causation,
                    )?];
                    if !self.store.refused(&service.name, rev, lease, &owes).await? {
                        return Ok(Report::quiet(
                            "the rollback was recorded by another invocation",
                        ));
                    }
                    return self.say(lease, &owes, "rollback failed").await;
                }
            },
        };
        let mut started = detail.clone();
        started["build_id"] = json!(build);
        started["held_until"] = json!(rfc3339(record.held_until));
        let said = OutgoingEvent::enveloped(
            DetailType::RollbackStarted,
            &started,
            &correlation,
            &causation,
        )?;
        // An alarm rolled the service back: an incident, for the tools that follow them.
        let producer = Producer::of(&self.publisher, service.image_repository.as_deref());
        let owes = with_cdevents([said], producer.as_ref(), (self.clock)())?;
        if !self
            .store
            .set_build(&service.name, rev, &build, lease, &owes)
            .await?
        {
            return Ok(Report::quiet(format!(
                "rollback build {build} was recorded by another invocation"
            )));
        }
        eddo::metrics::emit(
            &crate::measure::rolled_back(
                service.name.as_str(),
                origin.alarm,
                record.replacing.as_ref().map(|v| v.commit.as_str()),
            ),
            (self.clock)(),
        );
        info!(service = %service.name, build = %build, "rollback started");
        self.say(lease, &owes, "rollback started").await
    }
}

/// Where a rollback's start comes from: the alarm's name, and the causation a record written
/// before it kept its own falls back to.
pub(crate) struct Origin<'a> {
    pub alarm: &'a str,
    pub causation: String,
}

impl<'a> Origin<'a> {
    pub fn of(alarm: &'a AlarmChange) -> Origin<'a> {
        Origin {
            alarm: &alarm.name,
            causation: Rollbacks::causation(alarm),
        }
    }
}

/// Why a rollback's build did not start.
enum Unstarted {
    Retryable(Error),
    /// Refused, or too late: said as a failed rollback, with the reason.
    Refused(String),
}

impl Rollbacks {
    /// Starts `request`, or finds the build an earlier attempt started. A resumed start whose
    /// hold has ended starts nothing new: rolled back now, it could replace what went live
    /// since; only a build its decision already started counts.
    async fn start_build(
        &self,
        record: &RollbackRecord,
        request: &codebuild::BuildRequest,
        resumed: bool,
    ) -> Result<String, Unstarted> {
        let classify = |e: StartError| match e {
            StartError::Retryable(e) => Unstarted::Retryable(e),
            StartError::Refused(e) => {
                Unstarted::Refused(format!("could not start {}: {e}", request.project()))
            }
        };
        if !resumed {
            return codebuild::start(&self.codebuild, request, codebuild::Attempt::First)
                .await
                .map_err(classify);
        }
        let now = (self.clock)();
        if now < record.held_until {
            let attempt = codebuild::Attempt::Resume {
                decided_at: record.decided_at,
            };
            return codebuild::start(&self.codebuild, request, attempt)
                .await
                .map_err(classify);
        }
        let token = request.token();
        match codebuild::find_build(
            &self.codebuild,
            request.project(),
            &token,
            record.decided_at,
        )
        .await
        {
            Ok(Some(build)) => Ok(build),
            Ok(None) => Err(Unstarted::Refused(format!(
                "its hold ended at {} before its build started, and a rollback started now could replace what went live since: not started",
                rfc3339(record.held_until)
            ))),
            Err(e) => Err(classify(e)),
        }
    }
}

/// The rollback build of a service's rollback record: a pure function of the decision (the
/// record as claimed, with the event that decided it), so every attempt sends the same request
/// with the same token.
pub(crate) fn rollback_request(
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
    Ok(
        codebuild::BuildRequest::new(ProjectRole::Rollback.as_str(), project.as_str())
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
            .timeout(Some(rollback.hold_minutes)),
    )
}
