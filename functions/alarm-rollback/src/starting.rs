//! Starting a rollback: the build of the decision, once, recorded with the event that says it
//! started (or that its project refused it), then said.

use eddo::codebuild::{self, StartError};
use eddo::outbox::Lease;
use eddo::policy::Service;
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
        alarm: &AlarmChange,
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
            .unwrap_or_else(|| Self::causation(alarm));
        let request = rollback_request(service, record, &causation)?;
        let build = match &record.build_id {
            Some(b) => b.clone(),
            None => match codebuild::start(&self.codebuild, &request, resumed).await {
                Ok(b) => b,
                Err(StartError::Retryable(e)) => return Err(e),
                Err(StartError::Refused(e)) => {
                    let mut failed = detail.clone();
                    failed["build_id"] = Value::Null;
                    failed["alarm"] = json!(alarm.name);
                    failed["status"] = json!("NOT_STARTED");
                    failed["reason"] = json!(format!(
                        "could not start {}: {e}; deployments of {} are no longer held",
                        request.project(),
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
        let owes = [OutgoingEvent::enveloped(
            DetailType::RollbackStarted,
            &started,
            &correlation,
            &causation,
        )?];
        if !self
            .store
            .set_build(&service.name, rev, &build, lease, &owes)
            .await?
        {
            return Ok(Report::quiet(format!(
                "rollback build {build} was recorded by another invocation"
            )));
        }
        info!(service = %service.name, build = %build, "rollback started");
        self.say(lease, &owes, "rollback started").await
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
