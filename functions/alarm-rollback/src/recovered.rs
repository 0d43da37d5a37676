//! An alarm that rolled a service back, OK again: the incident is over. Said as `Alarm
//! Recovered` (and, where the deployment says CDEvents, `incident.resolved`), for those who
//! follow incidents and measure the time to restore; nothing is acted on.
//!
//! Only the alarm whose change decided the service's last rollback, turning OK after that
//! change, recovers it; a CloudWatch alarm's OK is confirmed with CloudWatch first (a forged recovery
//! would close an incident that is still open), an alert's is the webhook's, as its firing is.
//! Said at least once, each publication the same event (its `event_key`).

use eddo::cdevents::emit::{Producer, with_cdevents};
use eddo::policy::Policy;
use eddo::publish::OutgoingEvent;
use eddo::time::rfc3339;
use eddo::{DetailType, Error};
use serde_json::json;
use tracing::info;

use crate::alarm::{AlarmChange, AlarmState};
use crate::decide::{SERVICE_TAG, service_of};
use crate::{Report, Rollbacks, alarm_detail, version_detail};

impl Rollbacks {
    /// Handles an alarm's change into OK.
    pub(crate) async fn recovered(
        &self,
        policy: &Policy,
        alarm: &AlarmChange,
    ) -> Result<Report, Error> {
        let quiet = |why: String| {
            info!(alarm = %alarm.name, reason = %why, "nothing to do");
            Ok(Report::quiet(why))
        };
        if alarm
            .previous
            .as_ref()
            .is_some_and(|p| p.value == AlarmState::Ok)
        {
            return quiet(format!("alarm {} was already OK", alarm.name));
        }
        let Ok(service) = service_of(policy, alarm) else {
            return quiet(format!("alarm {} is OK", alarm.name));
        };
        let (_, record) = self.store.service(&service.name).await?;
        let started = record.starts.last().copied();
        // The alarm change that decided the rollback names the alarm by its identity (an
        // alert's sender and fingerprint, where names repeat); a record older than that, by name.
        let ours = match &record.change {
            Some((pk, _)) => *pk == Self::keys(alarm).0,
            None => record.alarm.as_deref() == Some(alarm.name.as_str()),
        };
        let (Some(started), true) = (started, ours) else {
            return quiet(format!(
                "alarm {} is OK; it rolled nothing of {} back",
                alarm.name, service.name
            ));
        };
        // After the change into ALARM that decided it (its key says when), or, for a record
        // older than that, after the rollback started.
        let fired = record
            .change
            .as_ref()
            .and_then(|(_, sk)| sk.split('#').next()?.parse::<u64>().ok())
            .unwrap_or(started);
        if alarm.state.at().is_some_and(|at| at < fired) {
            return quiet(format!(
                "alarm {} turned OK before the change that rolled {} back",
                alarm.name, service.name
            ));
        }
        if alarm.alert.is_none() {
            let tagged = alarm.tags.get(SERVICE_TAG).map(String::as_str);
            if let Some(why) = self.alarms.contradiction(alarm, tagged).await? {
                return quiet(format!("a recovery CloudWatch does not confirm: {why}"));
            }
        }
        let detail = json!({
            "service": service.name,
            "alarm": alarm_detail(alarm),
            "rollback_build_id": record.build_id,
            "rolled_back_at": rfc3339(started),
            "restored": record.target.as_ref().map(version_detail),
            "replaced": record.replacing.as_ref().map(version_detail),
        });
        let correlation = record
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("rollback:{}", service.name));
        let said = OutgoingEvent::enveloped(
            DetailType::AlarmRecovered,
            &detail,
            &correlation,
            &Self::causation(alarm),
        )?;
        let producer = Producer::of(&self.publisher, service.image_repository.as_deref());
        let at = alarm.state.at().unwrap_or_else(|| (self.clock)());
        let events = with_cdevents([said], producer.as_ref(), at)?;
        self.publisher.publish(&events).await?;
        eddo::metrics::emit(
            &[crate::measure::restored(
                service.name.as_str(),
                fired,
                at,
                record.replacing.as_ref().map(|v| v.commit.as_str()),
            )],
            at,
        );
        info!(alarm = %alarm.name, service = %service.name, "alarm recovered");
        Ok(Report {
            outcome: format!(
                "alarm {} recovered: the incident that rolled {} back is over",
                alarm.name, service.name
            ),
            published: events.iter().map(|e| e.detail_type.to_string()).collect(),
        })
    }
}
