//! Tenant onboarding: when a SaaS control plane asks for a tenant, provision it once through the
//! CodeBuild project of its tier, retry a failed build as the tier allows, and say how it went;
//! offboard it the same way through the tier's deprovisioning project.
//!
//! It speaks eddo's contract (`Tenant Onboarding Requested` / `Tenant Offboarding Requested`)
//! and, with a setting, sbt-aws's (`onboardingRequest` / `offboardingRequest`, answered with
//! `provisionSuccess` / `provisionFailure` and the deprovision pair), so an sbt-aws control plane
//! can use it unchanged. The decisions are pure ([`decide`], [`request`]); this file gathers
//! inputs and performs the effects.

pub mod decide;
pub mod request;
pub mod sbt;
pub mod store;

use eddo::codebuild::{self, BuildState, StartError};
use eddo::idempotency::now_epoch;
use eddo::names::TenantId;
use eddo::policy::live::Policies;
use eddo::policy::{Policy, TenantJob, Tier};
use eddo::publish::{OutgoingEvent, Publisher};
use eddo::{DetailType, Error};
use serde_json::{Map, Value, json};
use tracing::{Instrument, info, warn};

use crate::decide::{
    Job, OnFinish, OnRequest, State, ends_another, on_finish, on_request, running,
};
use crate::request::{Action, Read, Rejection, Request, Shape};
use crate::store::{Claimed, Failure, Store, Tenant};

/// Two events racing for one tenant decide again at most this many times.
const DECIDE_ATTEMPTS: usize = 3;

/// What one invocation did, returned to the runtime and logged.
pub use eddo::Report;
/// The function's settings: the common ones and where the policy is.
pub use eddo::config::PolicyConfig as Config;
pub use request::RequestSources;
pub use sbt::{Generation, Sbt};

pub struct Tenants {
    policy: Policies,
    store: Store,
    codebuild: aws_sdk_codebuild::Client,
    publisher: Publisher,
    sbt: Option<Sbt>,
    sources: RequestSources,
    clock: fn() -> u64,
}

impl Tenants {
    pub fn new(
        config: &Config,
        policy: impl Into<Policies>,
        sdk: &aws_config::SdkConfig,
    ) -> Tenants {
        Tenants {
            policy: policy.into(),
            store: Store::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &config.common.table_name,
                Publisher::from_config(&config.common, sdk),
            ),
            codebuild: aws_sdk_codebuild::Client::new(sdk),
            publisher: Publisher::from_config(&config.common, sdk),
            sbt: None,
            sources: RequestSources::default(),
            clock: now_epoch,
        }
    }

    /// The clock it decides leases and records times by (tests and the soak move it).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Tenants {
        self.clock = clock;
        self
    }

    /// Answers sbt-aws's control plane too.
    pub fn with_sbt(mut self, sbt: Option<Sbt>) -> Tenants {
        self.sbt = sbt;
        self
    }

    /// Takes eddo's tenant contract from these sources (none by default).
    pub fn with_request_sources(mut self, sources: RequestSources) -> Tenants {
        self.sources = sources;
        self
    }

    /// Another CodeBuild client (the local stack's stand-in, or a mock, in tests).
    pub fn with_codebuild(mut self, client: aws_sdk_codebuild::Client) -> Tenants {
        self.codebuild = client;
        self
    }

    /// Another DynamoDB client (one that counts its calls, in tests).
    pub fn with_dynamodb(mut self, client: aws_sdk_dynamodb::Client, table: &str) -> Tenants {
        self.store = Store::new(client, table, self.publisher.clone());
        self
    }

    /// Handles a tenant request (either contract) or a tenant project's state change. `Err` only
    /// for what a retry can fix; an invalid request is answered with its reasons and not retried.
    pub async fn handle(&self, event: &Value) -> Result<Report, Error> {
        // One snapshot of the policy for the whole event; none in force is retried.
        let policy = self.policy.current().await?;
        let result = self.handle_event(&policy, event).await;
        // Logged once by `settle`; a tenant's requester hears through its own timeout.
        eddo::report::settle(result, |why| async move {
            Ok(Report::quiet(format!("not handled: {why}")))
        })
        .await
    }

    async fn handle_event(&self, policy: &Policy, event: &Value) -> Result<Report, Error> {
        if event["source"] == "aws.codebuild" {
            return self.build_finished(policy, event).await;
        }
        match request::read(event, policy, &self.sources, self.sbt.as_ref()) {
            Read::NotARequest(why) => {
                warn!(reason = %why, "not a tenant request");
                Ok(Report::quiet(why))
            }
            Read::Rejected(r) => {
                let span = eddo::telemetry::correlation_span(&r.correlation_id);
                self.reject(&r).instrument(span).await
            }
            Read::Request(r) => {
                let span = eddo::telemetry::correlation_span(&r.correlation_id);
                self.request(policy, &r).instrument(span).await
            }
        }
    }

    async fn request(&self, policy: &Policy, r: &Request<'_>) -> Result<Report, Error> {
        let mut resumed = Vec::new();
        let mut report = self.decide_request(policy, r, &mut resumed).await?;
        resumed.append(&mut report.published);
        report.published = resumed;
        Ok(report)
    }

    async fn decide_request(
        &self,
        policy: &Policy,
        r: &Request<'_>,
        resumed: &mut Vec<String>,
    ) -> Result<Report, Error> {
        let job = match r.action {
            Action::Onboard => Job::Provision,
            Action::Offboard => Job::Deprovision,
        };
        for _ in 0..DECIDE_ATTEMPTS {
            let now = (self.clock)();
            let current = self.store.get(&r.tenant).await?;
            if r.action == Action::Offboard
                && let Some(why) = ends_another(
                    r.shape.registration_id(),
                    current.as_ref().and_then(|c| c.registration_id.as_deref()),
                )
            {
                return self.reject(&refusal(r, why)).await;
            }
            let facts = current.as_ref().map(|t| t.facts(now));
            let decision = on_request(job, r.tier.map(|t| t.name.as_str()), facts.as_ref());
            info!(tenant = %r.tenant, ?job, decision = ?decision, "tenant request");
            match decision {
                OnRequest::Start(job) => {
                    // Offboarding runs the tier the tenant was provisioned in.
                    let tier = match job {
                        Job::Provision => r.tier,
                        Job::Deprovision => current.as_ref().and_then(|c| policy.tier(&c.tier)),
                    };
                    let Some(tier) = tier else {
                        let why = format!(
                            "the tenant's tier {} is no longer in the policy",
                            current.as_ref().map_or("?", |c| c.tier.as_str())
                        );
                        return self.reject(&refusal(r, why)).await;
                    };
                    let record = requested(r, job, tier, current.as_ref(), now);
                    let from = current.as_ref().map(|c| c.rev);
                    match self
                        .store
                        .put_claimed(&record, from, &r.causation_id, now)
                        .await?
                    {
                        Claimed::Written => {}
                        Claimed::Moved => continue,
                        Claimed::Before => {
                            // Delivered again (a retry, a redrive from the dead-letter queue)
                            // after it was acted on: it must not provision or deprovision
                            // whatever the tenant became since.
                            warn!(tenant = %r.tenant, request = %r.causation_id, "a request acted on before was delivered again");
                            return Ok(Report::quiet(format!(
                                "request {} about tenant {} was acted on before; the tenant is {}",
                                r.causation_id,
                                r.tenant,
                                current
                                    .as_ref()
                                    .map_or("unregistered", |c| c.state.as_str())
                            )));
                        }
                    }
                    let result = self.start(record.clone(), tier, false).await;
                    return self.store.guard(&record, result).await;
                }
                OnRequest::Repeat => {
                    let c = current.expect("only a known tenant is repeated");
                    return self.repeat(&c, r).await;
                }
                OnRequest::InProgress(why) => {
                    return Ok(Report::quiet(format!("tenant {}: {why}", r.tenant)));
                }
                OnRequest::Busy(why) => {
                    return Err(Error::InProgress(format!("tenant {}: {why}", r.tenant)));
                }
                OnRequest::Resume => {
                    // Finish the work first, then decide this request on what it left.
                    let c = current.expect("only a known tenant is resumed");
                    if let Some(taken) = self.store.take(&c.id, c.rev, now).await? {
                        let result = self.resume(policy, taken.clone()).await;
                        let report = self.store.guard(&taken, result).await?;
                        resumed.extend(report.published);
                    }
                    continue;
                }
                OnRequest::Refuse(why) => return self.reject(&refusal(r, why)).await,
            }
        }
        Err(contention(&r.tenant))
    }

    /// Answers an invalid or refused request with every reason, in the requester's contract.
    async fn reject(&self, r: &Rejection) -> Result<Report, Error> {
        warn!(reasons = ?r.reasons, "tenant request rejected");
        let detail_type = match r.action {
            Action::Onboard => DetailType::TenantOnboardingRejected,
            Action::Offboard => DetailType::TenantOffboardingRejected,
        };
        let detail = json!({
            "tenant_id": r.tenant_id,
            "tier": r.tier,
            "reasons": r.reasons,
            "registration_id": r.shape.registration_id(),
            "request_event_id": r.causation_id,
        });
        let mut events = vec![OutgoingEvent::enveloped(
            detail_type,
            &detail,
            &r.correlation_id,
            &r.causation_id,
        )?];
        if let (Shape::Sbt { registration_id }, Some(sbt)) = (&r.shape, &self.sbt) {
            let (kind, status) = match r.action {
                Action::Onboard => ("provisionFailure", "Failed to provision tenant."),
                Action::Offboard => ("deprovisionFailure", "Failed to deprovision tenant."),
            };
            let why = r.reasons.join("; ");
            events.push(sbt.answer(
                kind,
                r.tenant_id.as_deref(),
                registration_id.as_deref(),
                sbt::failure_output(status, &[("failureReason", Some(&why))]),
            )?);
        }
        self.publisher.publish(&events).await?;
        Ok(Report {
            outcome: format!("rejected: {}", r.reasons.join("; ")),
            published: events.iter().map(|e| e.detail_type.to_string()).collect(),
        })
    }

    /// Starts the build of a tenant in `requested` (idempotent: the request is the revision's
    /// alone, [`build_request`], and a resumed start finds a build it already started), records
    /// it, and announces it.
    async fn start(&self, record: Tenant, tier: &Tier, resumed: bool) -> Result<Report, Error> {
        let spec = job_spec(tier, record.job);
        // The build the decision froze; a revision written before decisions froze it: made now.
        let request = record
            .intent
            .clone()
            .unwrap_or_else(|| build_request(&record, tier));
        let now = (self.clock)();
        let mut next = record.next(now);
        let attempt = if resumed {
            codebuild::Attempt::Resume {
                decided_at: record.decided_at,
            }
        } else {
            codebuild::Attempt::First
        };
        match codebuild::start(&self.codebuild, &request, attempt).await {
            Ok(build) => {
                info!(tenant = %record.id, build = %build, attempt = record.attempt, "tenant build started");
                next.state = running(record.job);
                next.build_id = Some(build.clone());
                let detail_type = match record.job {
                    Job::Provision => DetailType::TenantProvisioningStarted,
                    Job::Deprovision => DetailType::TenantDeprovisioningStarted,
                };
                let detail = json!({
                    "tenant_id": record.id,
                    "tier": tier.name,
                    // What the decision froze, whatever the tier says by now.
                    "project": request.project(),
                    "build_id": build,
                    "attempt": record.attempt,
                    "max_attempts": tier.retries + 1,
                    "timeout_minutes": request.timeout_minutes().unwrap_or(spec.timeout_minutes),
                    "previous_attempt": record.last_failure,
                    "registration_id": record.registration_id,
                    "policy_version": tier.policy_version,
                });
                next.pending = vec![self.eddo(detail_type, &detail, &record)?];
            }
            Err(StartError::Retryable(e)) => return Err(e),
            Err(StartError::Refused(e)) => {
                let failure = Failure {
                    build_id: None,
                    status: "NOT_STARTED".into(),
                    failed_phase: None,
                    logs_url: None,
                    reason: format!("could not start {}: {e}", spec.project),
                };
                warn!(tenant = %record.id, reason = %failure.reason, "tenant build refused");
                next.state = State::Failed;
                next.pending = self.failed(&next, Some(tier), &failure)?;
                next.last_failure = Some(failure);
            }
        }
        if !self.store.put(&next, Some(record.rev)).await? {
            // Another invocation's write, or this one's whose answer was lost: a retry tells.
            return Err(Error::InProgress(format!(
                "tenant {} changed while its build was started",
                record.id
            )));
        }
        self.announce(&next).await
    }

    /// Publishes a revision's events and removes them from its record.
    async fn announce(&self, record: &Tenant) -> Result<Report, Error> {
        Ok(Report {
            outcome: format!("tenant {} {}", record.id, record.state),
            published: self.store.announce(record).await?,
        })
    }

    /// Finishes what an invocation left half-done: starts the build of a `requested` tenant, or
    /// publishes a revision's events.
    async fn resume(&self, policy: &Policy, record: Tenant) -> Result<Report, Error> {
        warn!(tenant = %record.id, state = %record.state, "finishing work a previous invocation left");
        if record.state == State::Requested {
            let Some(tier) = policy.tier(&record.tier) else {
                return Err(Error::InvalidEvent(format!(
                    "tenant {}: tier {} is no longer in the policy",
                    record.id, record.tier
                )));
            };
            return self.start(record, tier, true).await;
        }
        self.announce(&record).await
    }

    /// Says again how a tenant's last job ended, to a requester that may have missed it.
    async fn repeat(&self, t: &Tenant, r: &Request<'_>) -> Result<Report, Error> {
        let mut t = t.clone();
        if let Some(reg) = r.shape.registration_id() {
            t.registration_id = Some(reg.to_string());
        }
        t.sbt |= matches!(r.shape, Shape::Sbt { .. });
        t.causation_id = r.causation_id.clone();
        let events: Vec<OutgoingEvent> = match t.state {
            State::Active => self.provisioned(&t, true)?,
            _ => self.deprovisioned(&t, true)?,
        };
        self.publisher.publish(&events).await?;
        Ok(Report {
            outcome: format!("tenant {} is {}; said so again", t.id, t.state),
            published: events.iter().map(|e| e.detail_type.to_string()).collect(),
        })
    }

    /// A tenant project's build finished: the tenant's state moves (retrying a failed build as
    /// its tier allows) and the outcome is said once.
    async fn build_finished(&self, policy: &Policy, event: &Value) -> Result<Report, Error> {
        let b = match BuildState::read(event) {
            Ok(b) => b,
            Err(why) => {
                warn!(reason = %why, "unreadable CodeBuild event");
                return Ok(Report::quiet(why));
            }
        };
        if !policy.tenant_build(&b) {
            return Ok(Report::quiet(format!(
                "{} is not a tenant project in the policy",
                b.project
            )));
        }
        if !b.finished() {
            return Ok(Report::quiet(format!("{} build in progress", b.project)));
        }
        let Some(id) = b
            .env("EDDO_TENANT_ID")
            .and_then(|t| TenantId::parse(t).ok())
        else {
            warn!(build = %b.build_id, "a tenant project build without EDDO_TENANT_ID finished");
            return Ok(Report::quiet(format!(
                "build {} of {} was not started by eddo",
                b.id(),
                b.project
            )));
        };
        let causation = event["id"].as_str().unwrap_or(&b.build_id).to_string();
        let mut resumed = Vec::new();
        for _ in 0..DECIDE_ATTEMPTS {
            let now = (self.clock)();
            let Some(record) = self.store.get(&id).await? else {
                return Ok(Report::quiet(format!("tenant {id} is not registered")));
            };
            let span = eddo::telemetry::correlation_span(&record.correlation_id);
            // Its build, recorded; or its decision's build, whose start is not recorded yet
            // (finished before its starter recorded it): the resume below records it.
            let current = record.build_id.as_deref() == Some(b.id())
                && matches!(record.state, State::Provisioning | State::Offboarding)
                || record.state == State::Requested
                    && !record.decision.is_empty()
                    && b.env(codebuild::DECISION_VARIABLE) == Some(record.decision.as_str());
            let f = record.facts(now);
            let unfinished = !f.announced || f.state == State::Requested;
            if unfinished && !f.leased {
                // What the last step owes is said first (its build started, or the events of
                // its outbox), then this completion is judged on the record it leaves.
                let Some(taken) = self.store.take(&id, record.rev, now).await? else {
                    continue;
                };
                let result = self.resume(policy, taken.clone()).instrument(span).await;
                let report = self.store.guard(&taken, result).await?;
                if !current {
                    return Ok(report);
                }
                resumed.extend(report.published);
                continue;
            }
            if unfinished {
                // Unfinished work under a lease: a build being started and recorded, or events
                // still to say (by another invocation, or by this one's earlier attempt whose
                // answer was lost). Judged when Lambda retries it.
                return Err(Error::InProgress(format!(
                    "tenant {id} is being changed; build {} waits for it",
                    b.id()
                )));
            }
            if !current {
                return Ok(Report::quiet(format!(
                    "build {} of tenant {id} already recorded",
                    b.id()
                )));
            }
            let tier = policy.tier(&record.tier);
            if tier.is_none() {
                warn!(tenant = %id, tier = %record.tier, "the tenant's tier is no longer in the policy: no retry, no outputs");
            }
            let retries = tier.map_or(0, |t| t.retries);
            let mut next = record.next(now);
            next.causation_id = causation.clone();
            let failure = (!b.succeeded()).then(|| Failure {
                build_id: Some(b.id().to_string()),
                status: b.status.clone(),
                failed_phase: b.failed_phase.clone(),
                logs_url: b.logs_url.clone(),
                reason: format!(
                    "the {} build {} {}",
                    match record.job {
                        Job::Provision => "provisioning",
                        Job::Deprovision => "deprovisioning",
                    },
                    b.id(),
                    b.ending()
                ),
            });
            let decision = on_finish(record.job, b.succeeded(), record.attempt, retries);
            info!(tenant = %id, build = %b.id(), decision = ?decision, "tenant build finished");
            match decision {
                OnFinish::Active => {
                    next.state = State::Active;
                    next.outputs = tier
                        .map(|t| {
                            t.outputs
                                .iter()
                                .filter_map(|o| Some((o.clone(), b.exported(o)?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default();
                    next.last_failure = None;
                    next.pending = self.provisioned(&next, false)?;
                }
                OnFinish::Deprovisioned => {
                    next.state = State::Deprovisioned;
                    next.outputs = vec![];
                    next.last_failure = None;
                    next.pending = self.deprovisioned(&next, false)?;
                }
                OnFinish::Failed => {
                    let failure = failure.expect("a failed build");
                    next.state = State::Failed;
                    next.pending = self.failed(&next, tier, &failure)?;
                    next.last_failure = Some(failure);
                }
                OnFinish::Retry { next: attempt } => {
                    next.state = State::Requested;
                    next.attempt = attempt;
                    next.last_failure = failure;
                    if let Some(t) = tier {
                        freeze(&mut next, t, now);
                    }
                    // Nothing to say until the retry's build has started.
                }
            }
            if !self.store.put(&next, Some(record.rev)).await? {
                continue;
            }
            let result = match (next.state, tier) {
                (State::Requested, Some(t)) => {
                    self.start(next.clone(), t, false).instrument(span).await
                }
                _ => self.announce(&next).instrument(span).await,
            };
            let mut report = self.store.guard(&next, result).await?;
            resumed.append(&mut report.published);
            report.published = resumed;
            return Ok(report);
        }
        Err(contention(&id))
    }

    fn eddo(
        &self,
        detail_type: DetailType,
        detail: &Value,
        t: &Tenant,
    ) -> Result<OutgoingEvent, Error> {
        OutgoingEvent::enveloped(detail_type, detail, &t.correlation_id, &t.causation_id)
    }

    /// sbt-aws's answer, when the tenant's requester speaks sbt-aws and the setting is on.
    fn sbt(
        &self,
        t: &Tenant,
        kind: &str,
        job_output: Value,
    ) -> Result<Option<OutgoingEvent>, Error> {
        match (&self.sbt, t.sbt) {
            (Some(sbt), true) => Ok(Some(sbt.answer(
                kind,
                Some(t.id.as_str()),
                t.registration_id.as_deref(),
                job_output,
            )?)),
            _ => Ok(None),
        }
    }

    fn provisioned(&self, t: &Tenant, repeated: bool) -> Result<Vec<OutgoingEvent>, Error> {
        let outputs: Map<String, Value> = t
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let detail = json!({
            "tenant_id": t.id,
            "tier": t.tier,
            "build_id": t.build_id,
            "attempt": t.attempt,
            "outputs": outputs,
            "registration_id": t.registration_id,
            "repeated": repeated,
        });
        let mut events = vec![self.eddo(DetailType::TenantProvisioned, &detail, t)?];
        events.extend(self.sbt(
            t,
            "provisionSuccess",
            json!({"tenantData": outputs, "tenantRegistrationData": {}}),
        )?);
        Ok(events)
    }

    fn deprovisioned(&self, t: &Tenant, repeated: bool) -> Result<Vec<OutgoingEvent>, Error> {
        let detail = json!({
            "tenant_id": t.id,
            "tier": t.tier,
            "build_id": t.build_id,
            "attempt": t.attempt,
            "registration_id": t.registration_id,
            "repeated": repeated,
        });
        let mut events = vec![self.eddo(DetailType::TenantDeprovisioned, &detail, t)?];
        events.extend(self.sbt(
            t,
            "deprovisionSuccess",
            json!({"tenantData": {}, "tenantRegistrationData": {}}),
        )?);
        Ok(events)
    }

    /// The failure's events. Without its tier (removed from the policy while the build ran) the
    /// project is unknown and this attempt was the last.
    fn failed(
        &self,
        t: &Tenant,
        tier: Option<&Tier>,
        f: &Failure,
    ) -> Result<Vec<OutgoingEvent>, Error> {
        let project = tier.map(|tier| job_spec(tier, t.job).project.as_str());
        let max_attempts = tier.map_or(t.attempt, |tier| tier.retries + 1);
        let (detail_type, kind, status) = match t.job {
            Job::Provision => (
                DetailType::TenantProvisioningFailed,
                "provisionFailure",
                "Failed to provision tenant.",
            ),
            Job::Deprovision => (
                DetailType::TenantDeprovisioningFailed,
                "deprovisionFailure",
                "Failed to deprovision tenant.",
            ),
        };
        let reason = if t.attempt > 1 {
            format!("{}, on attempt {} of {max_attempts}", f.reason, t.attempt)
        } else {
            f.reason.clone()
        };
        let detail = json!({
            "tenant_id": t.id,
            "tier": t.tier,
            "project": project,
            "build_id": f.build_id,
            "attempt": t.attempt,
            "max_attempts": max_attempts,
            "status": f.status,
            "failed_phase": f.failed_phase,
            "logs_url": f.logs_url,
            "reason": reason,
            "registration_id": t.registration_id,
        });
        let mut events = vec![self.eddo(detail_type, &detail, t)?];
        let job_output = sbt::failure_output(
            status,
            &[
                ("failureReason", Some(&reason)),
                ("failureStatus", Some(&f.status)),
                ("failureBuildId", f.build_id.as_deref()),
                ("failedPhase", f.failed_phase.as_deref()),
                ("logsUrl", f.logs_url.as_deref()),
            ],
        );
        events.extend(self.sbt(t, kind, job_output)?);
        Ok(events)
    }
}

/// The project, and its timeout, that runs `job` for the tier's tenants.
fn job_spec(tier: &Tier, job: Job) -> &TenantJob {
    match job {
        Job::Provision => &tier.provision,
        Job::Deprovision => &tier.deprovision,
    }
}

/// The registry record a request that starts a job writes: the tenant, `requested`, leased.
fn requested(r: &Request<'_>, job: Job, tier: &Tier, current: Option<&Tenant>, now: u64) -> Tenant {
    let values = match (job, current) {
        (Job::Deprovision, Some(c)) => c.values.clone(),
        _ => r.values.clone(),
    };
    let registration_id = r
        .shape
        .registration_id()
        .map(str::to_string)
        .or_else(|| current.and_then(|c| c.registration_id.clone()));
    let lease = eddo::outbox::Lease::new(store::tenant_key(&r.tenant), now);
    let mut t = Tenant {
        id: r.tenant.clone(),
        state: State::Requested,
        tier: tier.name.to_string(),
        rev: current.map_or(1, |c| c.rev + 1),
        job,
        attempt: 1,
        build_id: None,
        values,
        outputs: current
            .filter(|_| job == Job::Deprovision)
            .map(|c| c.outputs.clone())
            .unwrap_or_default(),
        registration_id,
        sbt: matches!(r.shape, Shape::Sbt { .. }),
        correlation_id: r.correlation_id.clone(),
        causation_id: r.causation_id.clone(),
        last_failure: None,
        pending: vec![],
        lease_until: lease.until,
        lease_id: lease.id,
        updated_at: now,
        decision: String::new(),
        intent: None,
        decided_at: now,
    };
    freeze(&mut t, tier, now);
    t
}

/// Makes `t` (a revision in `requested`) a decision of its own: its id, and the build it starts
/// frozen with it, so every attempt sends that request whatever the policy says by then.
fn freeze(t: &mut Tenant, tier: &Tier, now: u64) {
    t.decision = eddo::outbox::unique_id();
    t.intent = Some(build_request(t, tier).decided(&t.decision));
    t.decided_at = now;
}

/// The build of a tenant's job: a pure function of the registry's revision that decided it
/// (the tenant, its job and attempt, the request's values and the event that asked).
fn build_request(record: &Tenant, tier: &Tier) -> codebuild::BuildRequest {
    let spec = job_spec(tier, record.job);
    let mut request =
        codebuild::BuildRequest::new(eddo::projects::TENANT_ROLE, spec.project.as_str())
            .var("EDDO_TENANT_ACTION", record.job.as_str())
            .var("EDDO_TENANT_ID", record.id.as_str())
            .var("EDDO_TENANT_TIER", tier.name.as_str())
            .var("EDDO_ATTEMPT", &record.attempt.to_string())
            .var("EDDO_CORRELATION_ID", &record.correlation_id)
            .var("EDDO_CAUSATION_ID", &record.causation_id)
            .timeout(Some(spec.timeout_minutes));
    for (k, v) in &record.values {
        request = request.var(k, v);
    }
    request
}

/// A request the registry refuses, as a rejection with that one reason.
fn refusal(r: &Request<'_>, why: String) -> Rejection {
    Rejection {
        action: r.action,
        tenant_id: Some(r.tenant.to_string()),
        tier: r.tier.map(|t| t.name.to_string()),
        reasons: vec![why],
        shape: r.shape.clone(),
        correlation_id: r.correlation_id.clone(),
        causation_id: r.causation_id.clone(),
    }
}

/// Contention a retry resolves: fail the invocation for Lambda to retry it.
fn contention(id: &TenantId) -> Error {
    Error::Aws {
        service: "DynamoDB",
        operation: "PutItem",
        message: format!(
            "tenant {id}: the registry changed under {DECIDE_ATTEMPTS} decisions in a row"
        ),
        retry: eddo::Retry::Retryable,
    }
}
