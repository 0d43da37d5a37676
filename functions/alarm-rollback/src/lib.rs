//! Alarm to rollback: when a CloudWatch alarm goes into ALARM while a release bakes, start the
//! service's rollback project with its last known-good version, once, and say why; or say why
//! not. The rollback project's completion moves the deployment history and releases the hold on
//! the service's deployments.
//!
//! The decisions are pure ([`decide`]); this file gathers inputs and decides, `starting` starts
//! the rollback build, `finished` reads its completion. Each alarm change and each completion is
//! decided, acted on and said once through [`eddo::outbox`].

pub mod alarm;
mod confirm;
pub mod decide;
mod finished;
pub mod measure;
mod recovered;
pub mod skip;
mod starting;
pub mod store;

use crate::starting::Origin;
use eddo::history::Version;
use eddo::idempotency::now_epoch;
use eddo::outbox::Lease;
use eddo::policy::live::Policies;
use eddo::policy::{Policy, RollbackMode, Service};
use eddo::publish::{OutgoingEvent, Publisher};
use eddo::time::rfc3339;
use eddo::{DetailType, Error};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, info, warn};

use crate::alarm::AlarmChange;
use crate::confirm::Alarms;
use crate::decide::{Decision, SERVICE_TAG, Skip, Trigger, decide, starts_after, trigger};
use crate::store::{Change, Claim, NewChange, Outcome, Start, Store, change_key, record_key};

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
    /// An alert's sender and fingerprint: what names it to its Alertmanager.
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Value>,
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
        alert: a
            .alert
            .as_ref()
            .map(|o| json!({"sender": o.sender, "fingerprint": o.fingerprint})),
    }
}

/// A version, as the events name it.
fn version_detail(v: &Version) -> Value {
    json!({"commit": v.commit, "digest": v.digest, "build_id": v.build_id, "at": rfc3339(v.at)})
}

pub struct Rollbacks {
    policy: Policies,
    store: Store,
    codebuild: aws_sdk_codebuild::Client,
    alarms: Alarms,
    publisher: Publisher,
    clock: fn() -> u64,
}

impl Rollbacks {
    pub fn new(
        config: &Config,
        policy: impl Into<Policies>,
        sdk: &aws_config::SdkConfig,
    ) -> Rollbacks {
        Rollbacks {
            policy: policy.into(),
            store: Store::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &config.common.table_name,
                Publisher::from_config(&config.common, sdk),
            ),
            codebuild: aws_sdk_codebuild::Client::new(sdk),
            alarms: Alarms::new(sdk),
            publisher: Publisher::from_config(&config.common, sdk),
            clock: now_epoch,
        }
    }

    /// The clock it decides bake windows, cooldowns and leases by (tests and the soak move it).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Rollbacks {
        self.clock = clock;
        self
    }

    /// Another CodeBuild client (the local stack's stand-in, or a mock, in tests).
    pub fn with_codebuild(mut self, client: aws_sdk_codebuild::Client) -> Rollbacks {
        self.codebuild = client;
        self
    }

    /// Another CloudWatch client (one that counts its calls, in tests).
    pub fn with_cloudwatch(mut self, client: aws_sdk_cloudwatch::Client) -> Rollbacks {
        self.alarms = self.alarms.with_client(client);
        self
    }

    /// Another DynamoDB client (one that counts its calls, in tests).
    pub fn with_dynamodb(mut self, client: aws_sdk_dynamodb::Client, table: &str) -> Rollbacks {
        self.store = Store::new(client, table, self.publisher.clone());
        self
    }

    /// Another publisher (one whose PutEvents fail, in tests), for the events its records owe
    /// and those it says at once.
    pub fn with_publisher(mut self, publisher: Publisher) -> Rollbacks {
        self.store = self.store.publishing(publisher.clone());
        self.publisher = publisher;
        self
    }

    /// Handles an alarm state change (either shape) or a rollback project's state change.
    /// `Err` only for what a retry can fix; anything unreadable or unknown is reported with a
    /// `Rollback Skipped` event and answered, so Lambda does not retry it for a day.
    pub async fn handle(&self, event: &Value) -> Result<Report, Error> {
        // One snapshot of the policy for the whole event; none in force is retried.
        let policy = self.policy.current().await?;
        let result = self.handle_event(&policy, event).await;
        eddo::report::settle(result, |why| async move {
            self.unreadable(event, format!("alarm-rollback could not handle it: {why}"))
                .await
        })
        .await
    }

    async fn handle_event(&self, policy: &Policy, event: &Value) -> Result<Report, Error> {
        if event["source"] == "aws.codebuild" {
            return self.build_finished(policy, event).await;
        }
        let alarm = match AlarmChange::read(event) {
            Ok(a) => a,
            Err(why) => return self.unreadable(event, why).await,
        };
        if alarm.state.value == alarm::AlarmState::Ok {
            return self.recovered(policy, &alarm).await;
        }
        match trigger(policy, &alarm) {
            Trigger::Quiet(why) => {
                info!(alarm = %alarm.name, reason = %why, "nothing to do");
                Ok(Report::quiet(why))
            }
            Trigger::Skip(service, skip) => {
                let correlation = format!("alarm:{}", alarm.name);
                self.skip(policy, &alarm, service, vec![skip], &correlation)
                    .await
            }
            // An alert's proof is the webhook's: it authenticated the sender, and only its role
            // may put `eddo.webhook`. No AWS service holds the alert to ask again.
            Trigger::Act(service) if alarm.alert.is_some() => {
                self.consider(policy, &alarm, service).await
            }
            Trigger::Act(service) => {
                let tagged = alarm.tags.get(SERVICE_TAG).map(String::as_str);
                match self.alarms.contradiction(&alarm, tagged).await? {
                    Some(why) => self.not_confirmed(&alarm, service, why).await,
                    None => self.consider(policy, &alarm, service).await,
                }
            }
        }
    }

    /// Reports, once per event, a state change CloudWatch does not confirm. It is not recorded
    /// as the alarm's change: a forged event must not take the key of the real one to come.
    async fn not_confirmed(
        &self,
        alarm: &AlarmChange,
        service: &Service,
        why: String,
    ) -> Result<Report, Error> {
        let skip = Skip::NotConfirmed { why };
        warn!(alarm = %alarm.name, reason = %skip, "not confirmed");
        let id = Self::causation(alarm);
        let detail = json!({
            "service": service.name,
            "alarm": alarm_detail(alarm),
            "reason": skip.code(),
            "reasons": [skip.to_string()],
            "codes": [skip.code()],
            "event_id": alarm.event_id,
            "policy_version": service.policy_version,
        });
        let published = self
            .publisher
            .publish_one(DetailType::RollbackSkipped, &detail, &id, &id)
            .await?;
        Ok(Report {
            outcome: skip.to_string(),
            published: vec![published],
        })
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
    async fn consider(
        &self,
        policy: &Policy,
        alarm: &AlarmChange,
        service: &Service,
    ) -> Result<Report, Error> {
        let rollback = service.rollback.as_ref().expect("trigger checked it");
        let (pk, sk) = Self::keys(alarm);
        let causation = Self::causation(alarm);
        for _ in 0..DECIDE_ATTEMPTS {
            let now = (self.clock)();
            let (history, record) = self.store.service(&service.name).await?;
            if record.owes {
                // A completion not yet said is said first (once its lease lapsed); then decide.
                self.store
                    .outbox()
                    .finish(&record_key(&service.name), now)
                    .await?;
                continue;
            }
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
                        .skip(policy, alarm, Some(service), reasons, &correlation)
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
                "policy_version": service.policy_version,
            });
            let text = detail.to_string();
            if rollback.mode == RollbackMode::DryRun {
                let owes = [OutgoingEvent::enveloped(
                    DetailType::RollbackWouldStart,
                    &detail,
                    &correlation,
                    &causation,
                )?];
                let change = NewChange {
                    pk: &pk,
                    sk: &sk,
                    outcome: Outcome::WouldRollBack,
                    service: Some(&service.name),
                    detail: &text,
                    correlation_id: &correlation,
                    owes: &owes,
                    now,
                    lease: &Lease::new(change_key(&pk, &sk), now),
                };
                return self.note(policy, alarm, &change).instrument(span).await;
            }
            let starts = starts_after(&record.facts(now), rollback, now);
            let decision = eddo::outbox::unique_id();
            let mut start = Start {
                service: &service.name,
                decided_on: record.rev,
                hold_until: now + u64::from(rollback.hold_minutes) * 60,
                target: &target,
                replacing: &replacing,
                correlation_id: &correlation,
                causation_id: &causation,
                alarm: &alarm.name,
                change: (&pk, &sk),
                starts: &starts,
                now,
                decision: &decision,
                intent: None,
            };
            // The build is frozen with the decision: every attempt sends this request.
            let intent = starting::rollback_request(service, &start.planned(), &causation)?
                .decided(&decision);
            start.intent = Some(&intent);
            let change = NewChange {
                pk: &pk,
                sk: &sk,
                outcome: Outcome::RolledBack,
                service: Some(&service.name),
                detail: &text,
                correlation_id: &correlation,
                owes: &[],
                now,
                lease: &Lease::new(change_key(&pk, &sk), now),
            };
            match self.store.claim(&change, &start).await? {
                Claim::Started(claimed) => {
                    detail["rev"] = json!(claimed.rev);
                    let lease = change.lease.clone();
                    let r = self
                        .start(
                            &Origin::of(alarm),
                            service,
                            &claimed,
                            &detail,
                            &lease,
                            false,
                        )
                        .instrument(span)
                        .await;
                    return self.store.outbox().guard(&lease, r).await;
                }
                Claim::Duplicate(c) => return self.resume(policy, alarm, *c).await,
                Claim::Raced => continue,
            }
        }
        // Contention a retry resolves: fail the invocation for Lambda to retry it.
        Err(contention(&service.name))
    }

    /// Reports a rollback that did not start, once per alarm change.
    async fn skip(
        &self,
        policy: &Policy,
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
            "policy_version": service.and_then(|s| s.policy_version.as_ref()),
        });
        info!(alarm = %alarm.name, reason = first, "rollback skipped");
        let owes = [OutgoingEvent::enveloped(
            DetailType::RollbackSkipped,
            &detail,
            correlation,
            &Self::causation(alarm),
        )?];
        let text = detail.to_string();
        let change = NewChange {
            pk: &pk,
            sk: &sk,
            outcome: Outcome::Skipped,
            service: service.map(|s| &s.name),
            detail: &text,
            correlation_id: correlation,
            owes: &owes,
            now: (self.clock)(),
            lease: &Lease::new(change_key(&pk, &sk), (self.clock)()),
        };
        self.note(policy, alarm, &change).await
    }

    /// Records an alarm change that starts nothing, with its one event, and says it; or, seen
    /// before, finishes what its first delivery left.
    async fn note(
        &self,
        policy: &Policy,
        alarm: &AlarmChange,
        change: &NewChange<'_>,
    ) -> Result<Report, Error> {
        match self.store.note(change).await? {
            None => {
                let lease = change.lease.clone();
                let outcome = change.owes[0].detail_type.to_lowercase();
                self.say(&lease, change.owes, &outcome).await
            }
            Some(c) => self.resume(policy, alarm, c).await,
        }
    }

    /// Sends what a record owes under this invocation's `lease` (letting go of it on error).
    async fn say(
        &self,
        lease: &Lease,
        owes: &[OutgoingEvent],
        outcome: &str,
    ) -> Result<Report, Error> {
        let outbox = self.store.outbox();
        let sent = outbox.send(lease, owes).await;
        Ok(Report {
            outcome: outcome.to_string(),
            published: outbox.guard(lease, sent).await?,
        })
    }

    /// The same alarm change again (a redelivery, or both shapes of it): finish what the first
    /// delivery left, say nothing twice, start nothing twice.
    async fn resume(
        &self,
        policy: &Policy,
        alarm: &AlarmChange,
        change: Change,
    ) -> Result<Report, Error> {
        let (pk, sk) = Self::keys(alarm);
        let now = (self.clock)();
        let seen = format!("alarm {} change {}", alarm.name, alarm.change());
        if change.owes {
            return Ok(
                match self
                    .store
                    .outbox()
                    .finish(&change_key(&pk, &sk), now)
                    .await?
                {
                    Some(published) => Report {
                        outcome: format!("{seen}: said what a previous invocation owed"),
                        published,
                    },
                    None => {
                        return Err(Error::InProgress(format!(
                            "{seen} is being said by another invocation"
                        )));
                    }
                },
            );
        }
        if change.settled || change.outcome != Outcome::RolledBack {
            return Ok(Report::quiet(format!(
                "{seen} already handled ({:?})",
                change.outcome
            )));
        }
        let Some(lease) = self.store.take(&pk, &sk, now).await? else {
            return Err(Error::InProgress(format!(
                "{seen} is being handled by another invocation"
            )));
        };
        let result = self.restart(policy, alarm, &change, &lease).await;
        self.store.outbox().guard(&lease, result).await
    }

    /// Starts the rollback a dead invocation decided and left unstarted (or started, and died
    /// before recording it).
    async fn restart(
        &self,
        policy: &Policy,
        alarm: &AlarmChange,
        change: &Change,
        lease: &Lease,
    ) -> Result<Report, Error> {
        let service = change
            .service
            .as_deref()
            .and_then(|s| policy.service(s))
            .ok_or_else(|| {
                Error::InvalidEvent(format!(
                    "alarm change {} names a service the policy no longer has",
                    alarm.change()
                ))
            })?;
        let (_, record) = self.store.service(&service.name).await?;
        if Some(record.rev) != change.rev {
            // A later rollback replaced this one's record: this one was said long ago or never
            // will be.
            warn!(service = %service.name, "a later rollback superseded this alarm change's");
            return Ok(Report::quiet("superseded by a later rollback"));
        }
        let mut detail: Value = serde_json::from_str(&change.detail).unwrap_or(Value::Null);
        detail["rev"] = json!(change.rev);
        self.start(&Origin::of(alarm), service, &record, &detail, lease, true)
            .await
    }
}

/// Contention a retry resolves: fail the invocation for Lambda to retry it.
fn contention(service: &eddo::names::ServiceName) -> Error {
    Error::Aws {
        service: "DynamoDB",
        operation: "TransactWriteItems",
        message: format!(
            "{service}: the rollback record changed under {DECIDE_ATTEMPTS} decisions in a row"
        ),
        retry: eddo::Retry::Retryable,
    }
}
