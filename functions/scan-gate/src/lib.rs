//! The scan-complete gate: an event-driven join with a deadline. Each signal about a candidate
//! (one commit of one service) is recorded on it; when every signal the service's policy
//! requires has passed, the deploy project starts, once, however the signals arrive; a failing
//! signal blocks it with every reason; a deadline passed with signals missing times it out. The
//! deploy project's own completion moves the service's deployment history.
//!
//! The decisions are pure ([`decide`]); this file gathers inputs and performs the effects.

pub mod decide;
pub mod findings;
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

use crate::decide::{Decision, ScanVerdict, Verdict, decide, evaluate_scan};
use crate::findings::Findings;
use crate::signal::{DeployFinished, Evidence, Incoming, Reading, Signal, Subject, read};
use crate::store::{Candidate, Recorded, State, Store, Transition};
use eddo::history::{Version, VersionKind};

/// Deadlines the sweep handles per tick; the rest wait for the next minute.
pub const SWEEP_BATCH: i32 = 25;

/// A candidate decided this long ago whose deploy build was never recorded was left by a crash
/// or a failed call, not by an invocation still at work (the function times out at 30 s): the
/// next signal or retry starts it, with the same idempotency token.
pub const RECOVER_AFTER_SECS: u64 = 45;

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
}

fn evidence_of(c: &Candidate) -> Vec<EvidenceItem> {
    c.signals
        .iter()
        .map(|(kind, r)| EvidenceItem {
            signal: *kind,
            passed: r.verdict.passed(),
            summary: match &r.verdict {
                Verdict::Passed { summary } => summary.clone(),
                Verdict::Failed { reasons } => reasons.join("; "),
            },
            event_id: r.evidence.event_id.clone(),
            source: r.evidence.source.clone(),
            detail_type: r.evidence.detail_type.clone(),
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
            Incoming::Rejected(why) => self.reject(event, &why).await,
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

    async fn reject(&self, event: &Value, why: &str) -> Result<Report, Error> {
        warn!(reason = %why, "rejected");
        let id = event["id"].as_str().unwrap_or_default();
        let detail = json!({
            "reason": why,
            "event_id": id,
            "source": event["source"],
            "detail_type": event["detail-type"],
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

    /// The commit a signal is about; `None` when it is a scan no build has claimed yet (parked).
    async fn commit_for(
        &self,
        s: &Signal,
        recorded: &Recorded,
    ) -> Result<Option<CommitSha>, Error> {
        match &s.subject {
            Subject::Commit(c) => Ok(Some(c.clone())),
            Subject::Image {
                digest,
                commit_tags,
            } => {
                for tag in commit_tags {
                    // A whole commit id names the candidate; a prefix needs looking up.
                    if let Ok(c) = CommitSha::parse(tag.as_str()) {
                        return Ok(Some(c));
                    }
                    let found = self.store.commits_starting(&s.service, tag).await?;
                    if let [one] = found.as_slice() {
                        return Ok(Some(one.clone()));
                    }
                }
                let Some(digest) = digest else {
                    return Ok(None);
                };
                if let Some(c) = self.store.commit_of(&s.service, digest).await? {
                    return Ok(Some(c));
                }
                self.store.park_scan(&s.service, digest, recorded).await?;
                Ok(None)
            }
        }
    }

    async fn verdict(&self, service: &Service, s: &Signal, today: Date) -> Result<Verdict, Error> {
        Ok(match &s.reading {
            Reading::Verdict(v) => v.clone(),
            Reading::Counts { counts, scanner } => {
                match evaluate_scan(&service.gate, scanner.name(), counts, None, today) {
                    ScanVerdict::Decided(v) => v,
                    ScanVerdict::NeedFindings => {
                        let listed = match &s.digest {
                            Some(d) => match self.findings.list(scanner, d).await {
                                Ok(l) => l,
                                Err(e) if e.is_retryable() => return Err(e),
                                Err(e) => {
                                    // The image or its scan is gone: judge without exceptions,
                                    // and say why they were not applied.
                                    let ScanVerdict::Decided(Verdict::Failed { mut reasons }) =
                                        evaluate_scan(
                                            &service.gate,
                                            scanner.name(),
                                            counts,
                                            Some(&[]),
                                            today,
                                        )
                                    else {
                                        unreachable!("over a threshold without exceptions fails")
                                    };
                                    let why: String = e.to_string().chars().take(240).collect();
                                    reasons.push(format!(
                                        "image-scan: exceptions not applied: the findings list could not be read ({why})"
                                    ));
                                    return Ok(Verdict::Failed { reasons });
                                }
                            },
                            None => None,
                        };
                        match evaluate_scan(
                            &service.gate,
                            scanner.name(),
                            counts,
                            Some(listed.as_deref().unwrap_or_default()),
                            today,
                        ) {
                            ScanVerdict::Decided(Verdict::Failed { mut reasons })
                                if listed.is_none() =>
                            {
                                reasons.push(format!(
                                    "image-scan: exceptions not applied: {} gives no findings list",
                                    scanner.name()
                                ));
                                Verdict::Failed { reasons }
                            }
                            ScanVerdict::Decided(v) => v,
                            ScanVerdict::NeedFindings => unreachable!("findings were given"),
                        }
                    }
                }
            }
        })
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
        };
        let Some(commit) = self.commit_for(&s, &recorded).await? else {
            info!(service = %s.service, "scan parked until a build reports its image");
            return Ok(Report {
                outcome: format!("{} scan kept until a build reports its image", s.service),
                published: vec![],
            });
        };
        let correlation = s
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("{}@{}", s.service, commit));
        let mut candidate = self
            .store
            .record(
                &s.service,
                &commit,
                s.kind,
                &recorded,
                s.digest.as_ref(),
                &correlation,
                service.gate.deadline_minutes,
            )
            .await?;
        if let (SignalKind::Build, Some(digest)) = (s.kind, &s.digest)
            && let Some(parked) = self
                .store
                .link_digest(&s.service, digest, &commit, now)
                .await?
        {
            candidate = self
                .store
                .record(
                    &s.service,
                    &commit,
                    SignalKind::ImageScan,
                    &parked,
                    Some(digest),
                    &correlation,
                    service.gate.deadline_minutes,
                )
                .await?;
        }
        let span = eddo::telemetry::correlation_span(&candidate.correlation_id);
        self.act(service, candidate, s.kind, &s.evidence, now)
            .instrument(span)
            .await
    }

    /// What the candidate's state calls for now that signal `kind` was recorded.
    async fn act(
        &self,
        service: &Service,
        c: Candidate,
        kind: SignalKind,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        let latest = c.signals.get(&kind).map(|r| r.verdict.clone());
        match c.state {
            State::Waiting => self.decide(service, &c, cause, now).await,
            State::Deploying
                if c.build_id.is_none() && now >= c.decided_at + RECOVER_AFTER_SECS =>
            {
                // Decided before, but the build did not start (a crash or a throttled call).
                self.start_deploy(service, &c, cause).await
            }
            State::Deploying if c.build_id.is_none() => Ok(Report {
                outcome: format!("{kind} signal recorded; the deployment is being started"),
                published: vec![],
            }),
            State::Deploying | State::Deployed | State::Observed => {
                let mut report = self.announce_if_needed(service, &c, cause).await?;
                if let Some(Verdict::Failed { reasons }) = latest {
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
            State::Blocked | State::TimedOut | State::DeployFailed => {
                let mut report = self.announce_if_needed(service, &c, cause).await?;
                report.outcome = format!(
                    "{kind} signal recorded after the decision ({})",
                    c.state.as_str()
                );
                Ok(report)
            }
        }
    }

    async fn decide(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
        now: u64,
    ) -> Result<Report, Error> {
        let verdicts: BTreeMap<SignalKind, Verdict> = c
            .signals
            .iter()
            .map(|(k, r)| (*k, r.verdict.clone()))
            .collect();
        match decide(&service.gate, &verdicts) {
            Decision::Wait { missing } => Ok(Report {
                outcome: format!(
                    "waiting for {}",
                    missing
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                published: vec![],
            }),
            Decision::Block { reasons } => {
                self.conclude(service, c, State::Blocked, reasons, cause, now)
                    .await
            }
            Decision::Deploy if service.gate.mode == Mode::Observe => {
                self.conclude(service, c, State::Observed, vec![], cause, now)
                    .await
            }
            Decision::Deploy => match self.store.decide(c, State::Deploying, &[], now).await? {
                Transition::Done => {
                    let mut c = c.clone();
                    c.state = State::Deploying;
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
            },
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

    async fn announce_if_needed(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
    ) -> Result<Report, Error> {
        if c.announced || c.state == State::Waiting {
            return Ok(Report {
                outcome: format!("already {}", c.state.as_str()),
                published: vec![],
            });
        }
        self.announce(service, c, cause).await
    }

    /// Publishes the decision's event, then notes that it was published.
    async fn announce(
        &self,
        service: &Service,
        c: &Candidate,
        cause: &Evidence,
    ) -> Result<Report, Error> {
        let missing: Vec<SignalKind> = service
            .gate
            .require
            .iter()
            .filter(|k| !c.signals.contains_key(k))
            .copied()
            .collect();
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
                missing
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
            };
            let missing: Vec<String> = service
                .gate
                .require
                .iter()
                .filter(|k| !c.signals.contains_key(k))
                .map(|k| format!("{k}: no signal before the deadline {}", rfc3339(c.deadline)))
                .collect();
            let r = if missing.is_empty() {
                // Complete after all (a race with the last signal): decide as usual.
                self.decide(service, &c, &cause, now).await?
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

/// The deploy's StartBuild idempotency token: the same for every attempt at one candidate.
pub fn deploy_token(service: &ServiceName, commit: &CommitSha) -> String {
    codebuild::token("eddo-deploy", &format!("{service}/{commit}"))
}
