//! The scan-complete gate: an event-driven join with a deadline. Each signal about a candidate
//! (one commit of one service) is recorded on it; when every signal the service's policy
//! requires has passed, the deploy project starts, once, however the signals arrive; a failing
//! signal blocks it with every reason; a deadline passed with signals missing times it out. The
//! deploy project's own completion moves the service's deployment history.
//!
//! A signal counts only from a sender the service's policy names for its kind ([`signal`],
//! [`reported`]); the decisions are pure ([`decide::next`] over a [`candidate::Candidate`]); this
//! file gathers inputs and performs the effects.

pub mod candidate;
pub mod decide;
pub mod findings;
pub mod reported;
pub mod signal;
pub mod store;

use std::collections::BTreeMap;

use eddo::codebuild::{self, StartError};
use eddo::idempotency::now_epoch;
use eddo::names::{CommitSha, ImageDigest, ServiceName};
use eddo::policy::{Mode, Policy, Service, SignalKind};
use eddo::publish::Publisher;
use eddo::time::{Date, rfc3339};
use eddo::{DetailType, Error};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, info, warn};

use crate::candidate::{Candidate, Evidence, Recorded, State};
use crate::decide::{Listing, Next, ScanCounts, Verdict, judge_scan, needs_findings, next};
use crate::findings::Findings;
use crate::signal::{DeployFinished, Incoming, Reading, Signal, Subject, read};
use crate::store::{Record, Store, Transition};
use eddo::history::{Version, VersionKind};

/// Deadlines the sweep handles per tick; the rest wait for the next minute.
pub const SWEEP_BATCH: i32 = 25;

pub use crate::decide::RECOVER_AFTER_SECS;

/// The function's settings: the common ones and where the policy is.
pub use eddo::config::PolicyConfig as Config;

/// One piece of evidence in a decision event: which signal, which event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvidenceItem {
    pub signal: SignalKind,
    pub passed: bool,
    pub summary: String,
    pub event_id: String,
    pub source: String,
    pub detail_type: String,
    /// Who sent it, as the policy counted it.
    pub sender: String,
}

fn evidence_of(c: &Candidate) -> Vec<EvidenceItem> {
    c.signals
        .iter()
        .map(|(kind, r)| EvidenceItem {
            signal: kind.clone(),
            passed: r.verdict.passed(),
            summary: match &r.verdict {
                Verdict::Passed { summary } => summary.clone(),
                Verdict::Failed { reasons } => reasons.join("; "),
            },
            event_id: r.evidence.event_id.clone(),
            source: r.evidence.source.clone(),
            detail_type: r.evidence.detail_type.clone(),
            sender: r.evidence.sender.clone(),
        })
        .collect()
}

#[derive(Serialize)]
struct Decided<'a> {
    service: &'a str,
    commit_sha: &'a str,
    image_digest: Option<&'a str>,
    mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    build_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing: Vec<SignalKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<String>,
    evidence: Vec<EvidenceItem>,
}

/// What one invocation did, returned to the runtime and logged.
pub use eddo::Report;

pub struct Gate {
    policy: Policy,
    store: Store,
    codebuild: aws_sdk_codebuild::Client,
    publisher: Publisher,
    findings: Findings,
    clock: fn() -> u64,
}

impl Gate {
    pub fn new(config: &Config, policy: Policy, sdk: &aws_config::SdkConfig) -> Gate {
        Gate::with_publisher(
            config,
            policy,
            sdk,
            Publisher::from_config(&config.common, sdk),
        )
    }

    pub fn with_publisher(
        config: &Config,
        policy: Policy,
        sdk: &aws_config::SdkConfig,
        publisher: Publisher,
    ) -> Gate {
        Gate {
            policy,
            store: Store::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &config.common.table_name,
            ),
            codebuild: aws_sdk_codebuild::Client::new(sdk),
            publisher,
            findings: Findings::new(sdk),
            clock: now_epoch,
        }
    }

    /// Another DynamoDB client (one that counts its calls, in tests).
    pub fn with_dynamodb(mut self, client: aws_sdk_dynamodb::Client, table: &str) -> Gate {
        self.store = Store::new(client, table);
        self
    }

    /// Another CodeBuild client (the local stack's stand-in, in tests).
    pub fn with_codebuild(mut self, client: aws_sdk_codebuild::Client) -> Gate {
        self.codebuild = client;
        self
    }

    /// The clock the gate decides deadlines and exception expiry by (tests move it).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Gate {
        self.clock = clock;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Handles one EventBridge event. `Err` only for what a retry can fix (AWS unavailable); a
    /// malformed or unknown event is reported with a `Signal Rejected` event and answered, so
    /// Lambda does not retry it for a day.
    pub async fn handle(&self, event: &Value) -> Result<Report, Error> {
        match read(&self.policy, event) {
            Incoming::Tick { at } => self.sweep(at).await,
            Incoming::Ignored(why) => {
                info!(reason = %why, "ignored");
                Ok(Report {
                    outcome: format!("ignored: {why}"),
                    published: vec![],
                })
            }
            Incoming::Rejected(why) => {
                let s = |k: &str| event[k].as_str().unwrap_or_default().to_string();
                let cause = Evidence {
                    event_id: s("id"),
                    source: s("source"),
                    detail_type: s("detail-type"),
                    sender: String::new(),
                };
                self.reject(&cause, &why).await
            }
            Incoming::DeployFinished(d) => self.deploy_finished(&d, event).await,
            Incoming::Signals(signals) => {
                let mut report = Report {
                    outcome: String::new(),
                    published: vec![],
                };
                for s in signals {
                    let r = self.signal(s).await?;
                    report.outcome = r.outcome;
                    report.published.extend(r.published);
                }
                Ok(report)
            }
        }
    }

    /// Reports a signal that changes nothing: malformed, untrusted, or about another image.
    async fn reject(&self, cause: &Evidence, why: &str) -> Result<Report, Error> {
        warn!(reason = %why, source = %cause.source, "rejected");
        let id = cause.event_id.as_str();
        let detail = json!({
            "reason": why,
            "event_id": id,
            "source": cause.source,
            "detail_type": cause.detail_type,
        });
        let published = self
            .publisher
            .publish_one(DetailType::SignalRejected, &detail, id, id)
            .await?;
        Ok(Report {
            outcome: format!("rejected: {why}"),
            published: vec![published],
        })
    }

    /// The commit a signal is about. A scan counts for the commit whose build reported its
    /// digest: until a build has, it is kept on the image (parked), and a reported scan that
    /// claims another commit is refused.
    async fn commit_for(&self, s: &Signal, recorded: &Recorded) -> Result<Subjected, Error> {
        match &s.subject {
            Subject::Commit(c) => Ok(Subjected::Commit(c.clone())),
            Subject::Image { digest, claimed } => {
                match self.store.commit_of(&s.service, digest).await? {
                    Some(built) => match claimed {
                        Some(c) if *c != built => Ok(Subjected::Refused(format!(
                            "{}: reported for commit {c}, but image {digest} was built from {built}",
                            s.kind
                        ))),
                        _ => Ok(Subjected::Commit(built)),
                    },
                    None => {
                        self.store.park_scan(&s.service, digest, recorded).await?;
                        Ok(Subjected::Parked)
                    }
                }
            }
        }
    }

    /// A signal's verdict; a scan's findings list is read only when the counts cannot decide.
    async fn verdict(&self, service: &Service, s: &Signal, today: Date) -> Result<Verdict, Error> {
        let (counts, scanner) = match &s.reading {
            Reading::Verdict(v) => return Ok(v.clone()),
            Reading::Counts { counts, scanner } => (counts, scanner),
        };
        let scan = ScanCounts {
            kind: &s.kind,
            scanner: scanner.name(),
            counted: scanner.counted(),
            counts,
        };
        let listing = match (&s.digest, needs_findings(&service.gate, scan)) {
            (Some(d), true) => match self.findings.list(scanner, d).await {
                Ok(Some(l)) => Listing::Read(l),
                Ok(None) => Listing::NotRead,
                Err(e) if e.is_retryable() => return Err(e),
                // The image or its scan is gone, or the call is refused: said in the reasons.
                Err(e) => Listing::Unreadable(e.to_string().chars().take(240).collect()),
            },
            _ => Listing::NotRead,
        };
        Ok(judge_scan(&service.gate, scan, &listing, today))
    }

    async fn record(
        &self,
        s: &Signal,
        service: &Service,
        commit: &CommitSha,
        kind: &SignalKind,
        recorded: &Recorded,
        correlation: &str,
    ) -> Result<Record, Error> {
        self.store
            .record(
                &s.service,
                commit,
                kind,
                recorded,
                s.digest.as_ref(),
                correlation,
                service.gate.deadline_minutes,
            )
            .await
    }

    async fn signal(&self, s: Signal) -> Result<Report, Error> {
        let now = (self.clock)();
        let service = self
            .policy
            .service(s.service.as_str())
            .expect("signals name policy services");
        let verdict = self.verdict(service, &s, Date::from_epoch(now)).await?;
        let recorded = Recorded {
            verdict,
            evidence: s.evidence.clone(),
            at: now,
            digest: s.digest.clone().filter(|_| s.kind != SignalKind::Build),
        };
        let commit = match self.commit_for(&s, &recorded).await? {
            Subjected::Commit(c) => c,
            Subjected::Refused(why) => return self.reject(&s.evidence, &why).await,
            Subjected::Parked => {
                info!(service = %s.service, "scan parked until a build reports its image");
                return Ok(Report {
                    outcome: format!("{} scan kept until a build reports its image", s.service),
                    published: vec![],
                });
            }
        };
        let correlation = s
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("{}@{}", s.service, commit));
        let mut candidate = match self
            .record(&s, service, &commit, &s.kind, &recorded, &correlation)
            .await?
        {
            Record::Recorded(c) => c,
            Record::OtherImage { built } => {
                let why = format!(
                    "{}: about image {}, but {} {} deploys {}",
                    s.kind,
                    s.digest.as_ref().map_or("?", ImageDigest::as_str),
                    s.service,
                    commit.short(),
                    built
                        .as_ref()
                        .map_or("the image its build reported", ImageDigest::as_str)
                );
                return self.reject(&s.evidence, &why).await;
            }
        };
        if let (SignalKind::Build, Some(digest)) = (&s.kind, &s.digest)
            && let Some(parked) = self
                .store
                .link_digest(&s.service, digest, &commit, now)
                .await?
            && let Record::Recorded(c) = self
                .record(
                    &s,
                    service,
                    &commit,
                    &SignalKind::ImageScan,
                    &parked,
                    &correlation,
                )
                .await?
        {
            candidate = c;
        }
        let span = eddo::telemetry::correlation_span(&candidate.correlation_id);
        self.act(service, candidate, &s.kind, &s.evidence, now)
            .instrument(span)
            .await
    }

    /// Performs what [`next`] says the candidate's state calls for.
    async fn act(
        &self,
        service: &Service,
        c: Candidate,
        kind: &SignalKind,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        match next(&service.gate, &c, kind, now) {
            Next::Wait { missing } => Ok(Report {
                outcome: format!(
                    "waiting for {}",
                    missing
                        .iter()
                        .map(SignalKind::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                published: vec![],
            }),
            Next::Conclude { to, reasons } => {
                self.conclude(service, &c, to, reasons, cause, now).await
            }
            Next::Deploy => self.deploy(service, &c, cause, now).await,
            Next::Resume => self.start_deploy(service, &c, cause).await,
            Next::Withdraw { reasons } => {
                if !self.store.withdraw(&c, &reasons).await? {
                    return Ok(Report {
                        outcome: "the deploy build was recorded meanwhile".into(),
                        published: vec![],
                    });
                }
                let mut c = c;
                c.state = State::Blocked;
                c.reasons = reasons;
                self.announce(service, &c, cause).await
            }
            Next::After { announce, late } => {
                let mut report = if announce {
                    self.announce(service, &c, cause).await?
                } else {
                    Report {
                        outcome: if c.state == State::Deploying && c.build_id.is_none() {
                            format!("{kind} signal recorded; the deployment is being started")
                        } else {
                            format!(
                                "{kind} signal recorded after the decision ({})",
                                c.state.as_str()
                            )
                        },
                        published: vec![],
                    }
                };
                if let Some(reasons) = late {
                    // A failing signal after the decision: never a second deployment, but said.
                    let detail = json!({
                        "service": c.service,
                        "commit_sha": c.commit,
                        "signal": kind,
                        "reasons": reasons,
                        "state": c.state.as_str(),
                        "build_id": c.build_id,
                    });
                    report.published.push(
                        self.publisher
                            .publish_one(
                                DetailType::LateSignalFailed,
                                &detail,
                                &c.correlation_id,
                                &cause.event_id,
                            )
                            .await?,
                    );
                    report.outcome = format!("late {kind} signal failed after the decision");
                }
                Ok(report)
            }
        }
    }

    /// Decides a waiting candidate to deploy, unless a rollback of the service holds it.
    async fn deploy(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        match self.store.decide(c, State::Deploying, &[], now).await? {
            Transition::Done => {
                let mut c = c.clone();
                c.state = State::Deploying;
                c.decided_at = now;
                self.start_deploy(service, &c, cause).await
            }
            Transition::Lost => Ok(Report {
                outcome: "another invocation decided this candidate".into(),
                published: vec![],
            }),
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

    /// Decides a waiting candidate as `to` and says so.
    async fn conclude(
        &self,
        service: &Service,
        c: &Candidate,
        to: State,
        reasons: Vec<String>,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        match self.store.decide(c, to, &reasons, now).await? {
            Transition::Done => {
                let mut c = c.clone();
                c.state = to;
                c.reasons = reasons;
                self.announce(service, &c, cause).await
            }
            _ => Ok(Report {
                outcome: "another invocation decided this candidate".into(),
                published: vec![],
            }),
        }
    }

    /// Publishes the decision's event, then notes that it was published.
    async fn announce(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
    ) -> Result<Report, Error> {
        let (detail_type, outcome) = match c.state {
            State::Deploying | State::Deployed | State::DeployFailed => {
                (DetailType::DeploymentStarted, "deployment started")
            }
            State::Observed => (
                DetailType::DeploymentWouldStart,
                "observe-only: deployment would start",
            ),
            State::Blocked => (DetailType::DeploymentBlocked, "deployment blocked"),
            State::TimedOut => (DetailType::DeploymentTimedOut, "deployment timed out"),
            State::Waiting => unreachable!("a waiting candidate has no decision to announce"),
        };
        let detail = Decided {
            service: c.service.as_str(),
            commit_sha: c.commit.as_str(),
            image_digest: c.digest.as_ref().map(ImageDigest::as_str),
            mode: service.gate.mode,
            project: matches!(
                detail_type,
                DetailType::DeploymentStarted | DetailType::DeploymentWouldStart
            )
            .then_some(service.projects.deploy.as_str()),
            build_id: c.build_id.as_deref(),
            reasons: c.reasons.clone(),
            missing: if c.state == State::TimedOut {
                c.missing(&service.gate)
            } else {
                vec![]
            },
            deadline: (c.state == State::TimedOut).then(|| rfc3339(c.deadline)),
            evidence: evidence_of(c),
        };
        let published = self
            .publisher
            .publish_one(detail_type, &detail, &c.correlation_id, &cause.event_id)
            .await?;
        self.store.announced(c).await?;
        info!(service = %c.service, commit = %c.commit, decision = outcome, "decided");
        Ok(Report {
            outcome: outcome.to_string(),
            published: vec![published],
        })
    }

    /// Starts the deploy project for a deploying candidate (idempotent: the token is the
    /// candidate's, and a recorded build is reused), then announces it.
    async fn start_deploy(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
    ) -> Result<Report, Error> {
        let token = deploy_token(&c.service, &c.commit);
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

    /// Times out the candidates past their deadline. "Now" is the later of the clock and the
    /// schedule's time, so a late retry of a tick sweeps no less.
    async fn sweep(&self, at: Option<u64>) -> Result<Report, Error> {
        let now = (self.clock)().max(at.unwrap_or(0));
        let overdue = self.store.overdue(now, SWEEP_BATCH).await?;
        let mut report = Report {
            outcome: format!("{} candidate(s) past their deadline", overdue.len()),
            published: vec![],
        };
        for c in overdue {
            let Some(service) = self.policy.service(c.service.as_str()) else {
                continue;
            };
            let cause = Evidence {
                event_id: format!("deadline:{}", c.deadline),
                source: "eddo.gate".into(),
                detail_type: "Deadline".into(),
                sender: String::new(),
            };
            let missing: Vec<String> = c
                .missing(&service.gate)
                .iter()
                .map(|k| format!("{k}: no signal before the deadline {}", rfc3339(c.deadline)))
                .collect();
            let r = if missing.is_empty() {
                // Complete after all (a race with the last signal): decide as usual.
                self.act(service, c, &SignalKind::Build, &cause, now)
                    .await?
            } else {
                self.conclude(service, &c, State::TimedOut, missing, &cause, now)
                    .await?
            };
            report.published.extend(r.published);
        }
        Ok(report)
    }

    async fn deploy_finished(&self, d: &DeployFinished, event: &Value) -> Result<Report, Error> {
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

/// Which commit a signal turned out to be about.
enum Subjected {
    Commit(CommitSha),
    /// A scan of an image no build has reported yet: kept for when one does.
    Parked,
    /// Refused, with the reason: it changes nothing.
    Refused(String),
}

/// The deploy's StartBuild idempotency token: the same for every attempt at one candidate.
pub fn deploy_token(service: &ServiceName, commit: &CommitSha) -> String {
    codebuild::token("eddo-deploy", &format!("{service}/{commit}"))
}
