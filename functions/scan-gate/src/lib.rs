//! The scan-complete gate: an event-driven join with a deadline. Each signal about a candidate
//! (one commit of one service) is recorded on it; when every signal the service's policy
//! requires has passed, the deploy project starts, once, however the signals arrive; a failing
//! signal blocks it with every reason; a deadline passed with signals missing times it out. The
//! deploy project's own completion moves the service's deployment history.
//!
//! A signal counts only from a sender the service's policy names for its kind ([`signal`],
//! [`reported`]); the decisions are pure ([`decide::next`] over a [`candidate::Candidate`]); this
//! file gathers inputs and performs the effects.

mod announce;
pub mod candidate;
pub mod cdevent;
pub mod checks;
mod confirm;
pub mod decide;
mod deploying;
pub mod findings;
pub mod measure;
pub mod reported;
pub mod rules;
pub mod scan;
pub mod signal;
pub mod store;
mod sweep;

use eddo::idempotency::now_epoch;
use eddo::names::{CommitSha, ImageDigest};
use eddo::policy::live::Policies;
use eddo::policy::{Policy, Service, SignalKind};
use eddo::publish::Publisher;
use eddo::time::{Date, rfc3339};
use eddo::{DetailType, Error};
use serde_json::{Value, json};
use tracing::{Instrument, info, warn};

use crate::candidate::{Candidate, Evidence, Recorded, State};
use crate::decide::{Again, Listing, Next, Verdict, needs_findings, next};
use crate::deploying::Withdrawn;
use crate::findings::Findings;
use crate::signal::{Incoming, Signal, Subject, read};
use crate::store::{Parked, Record, Store};

pub use sweep::{SWEEP_BUDGET, SWEEP_CONCURRENCY, SWEEP_PAGE, SWEEP_RESERVE};

/// The function's settings: the common ones and where the policy is.
pub use eddo::config::PolicyConfig as Config;

pub use announce::EvidenceItem;
pub use deploying::deploy_request;

/// What one invocation did, returned to the runtime and logged.
pub use eddo::Report;

pub struct Gate {
    policy: Policies,
    store: Store,
    codebuild: aws_sdk_codebuild::Client,
    publisher: Publisher,
    findings: Findings,
    /// eddo's GitHub App, when the template gives it a key: the check runs' author.
    github: Option<eddo::github::App>,
    /// eddo's GitLab token, when the template gives one: the commit statuses' author.
    gitlab: Option<eddo::gitlab::GitLab>,
    clock: fn() -> u64,
}

impl Gate {
    pub fn new(config: &Config, policy: impl Into<Policies>, sdk: &aws_config::SdkConfig) -> Gate {
        Gate::with_publisher(
            config,
            policy,
            sdk,
            Publisher::from_config(&config.common, sdk),
        )
    }

    pub fn with_publisher(
        config: &Config,
        policy: impl Into<Policies>,
        sdk: &aws_config::SdkConfig,
        publisher: Publisher,
    ) -> Gate {
        Gate {
            policy: policy.into(),
            store: Store::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &config.common.table_name,
                publisher.clone(),
            ),
            codebuild: aws_sdk_codebuild::Client::new(sdk),
            publisher,
            findings: Findings::new(sdk),
            github: None,
            gitlab: None,
            clock: now_epoch,
        }
    }

    /// eddo's GitHub App: each candidate of a service whose policy names `checks.github` gets
    /// a check run on its commit.
    pub fn with_github(mut self, app: Option<eddo::github::App>) -> Gate {
        self.github = app;
        self
    }

    /// eddo's GitLab token: each candidate of a service whose policy names `checks.gitlab` gets
    /// a commit status on its commit.
    pub fn with_gitlab(mut self, gitlab: Option<eddo::gitlab::GitLab>) -> Gate {
        self.gitlab = gitlab;
        self
    }

    /// Another DynamoDB client (one that counts its calls, in tests).
    pub fn with_dynamodb(mut self, client: aws_sdk_dynamodb::Client, table: &str) -> Gate {
        self.store = Store::new(client, table, self.publisher.clone());
        self
    }

    /// Another ECR client (one that counts its calls, in tests).
    pub fn with_ecr(mut self, client: aws_sdk_ecr::Client) -> Gate {
        self.findings = self.findings.with_ecr(client);
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

    /// Where its policy comes from.
    pub fn policies(&self) -> &Policies {
        &self.policy
    }

    /// Handles one EventBridge event. `Err` only for what a retry can fix (AWS unavailable); a
    /// malformed or unknown event is reported with a `Signal Rejected` event and answered, so
    /// Lambda does not retry it for a day.
    pub async fn handle(&self, event: &Value) -> Result<Report, Error> {
        // One snapshot of the policy for the whole event; none in force is retried.
        let policy = self.policy.current().await?;
        let result = self.handle_event(&policy, event).await;
        eddo::report::settle(result, |why| async move {
            self.reject(
                &evidence_of(event),
                &format!("the gate could not handle it: {why}"),
            )
            .await
        })
        .await
    }

    async fn handle_event(&self, policy: &Policy, event: &Value) -> Result<Report, Error> {
        let incoming = match read(policy, event) {
            Incoming::Confirm(claimed) => self.confirm(policy, &claimed, event).await?,
            incoming => incoming,
        };
        match incoming {
            // `built` reads a confirmed build into its signal, never into another confirmation.
            Incoming::Confirm(b) => {
                self.reject(
                    &evidence_of(event),
                    &format!("build {} was not confirmed", b.id()),
                )
                .await
            }
            Incoming::Tick { at } => self.sweep(policy, at).await,
            Incoming::RolledBack(r) => self.rolled_back(policy, &r).await,
            Incoming::ProtectionRule(asked) => self.protection_rule(policy, &asked).await,
            Incoming::Pushed(pushed) => {
                for p in &pushed {
                    self.store
                        .pushed(&p.service, &p.commit, p.committed_at, (self.clock)())
                        .await?;
                }
                Ok(Report::quiet(format!(
                    "commit time recorded for {} service(s)",
                    pushed.len()
                )))
            }
            Incoming::Ignored(why) => {
                info!(reason = %why, "ignored");
                Ok(Report {
                    outcome: format!("ignored: {why}"),
                    published: vec![],
                })
            }
            Incoming::Rejected(why) => self.reject(&evidence_of(event), &why).await,
            Incoming::DeployFinished(d) => {
                let report = self.deploy_finished(policy, &d, event).await?;
                if let Some(service) = policy.service(d.service.as_str()) {
                    self.show(service, &d.commit).await;
                }
                Ok(report)
            }
            Incoming::Signals(signals) => {
                let mut report = Report {
                    outcome: String::new(),
                    published: vec![],
                };
                for s in signals {
                    let r = self.signal(policy, s).await?;
                    report.outcome = r.outcome;
                    report.published.extend(r.published);
                }
                Ok(report)
            }
        }
    }

    /// Reports a signal that changes nothing: malformed, untrusted, or about another image.
    async fn reject(&self, cause: &Evidence, why: &str) -> Result<Report, Error> {
        // A reason can quote what the event carried (an unknown key, say): clipped, and says so.
        let why = &*eddo::report::clip(why, eddo::report::MAX_REASON_BYTES);
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
    /// digest: until a build has, it is kept on the image (parked, beside every other scan of
    /// it), and a reported scan that claims another commit is refused.
    async fn commit_for(&self, s: &Signal, recorded: &Recorded) -> Result<Subjected, Error> {
        let (digest, claimed) = match &s.subject {
            Subject::Commit(c) => return Ok(Subjected::Commit(c.clone())),
            Subject::Image { digest, claimed } => (digest, claimed),
        };
        loop {
            match self.store.commit_of(&s.service, digest).await? {
                Some(built) => {
                    return Ok(match claimed {
                        Some(c) if *c != built => Subjected::Refused(format!(
                            "{}: reported for commit {c}, but image {digest} was built from {built}",
                            s.kind
                        )),
                        _ => Subjected::Commit(built),
                    });
                }
                None => match self.store.park(&s.service, digest, recorded).await? {
                    Parked::Kept => return Ok(Subjected::Parked),
                    // A build reported the image meanwhile: its commit is known now.
                    Parked::Linked => continue,
                },
            }
        }
    }

    /// A signal's verdict, or why the service that owns its fact does not confirm it. A scan
    /// counts as its scanner itself accounts for it (ECR's `DescribeImageScanFindings`:
    /// complete, with the event's severity counts; Inspector's active findings of the image,
    /// counted), since anyone who may put events on the default bus or invoke the gate can write
    /// a scan event; the same call serves the findings list where the counts cannot decide.
    async fn verdict(
        &self,
        service: &Service,
        s: &Signal,
        today: Date,
    ) -> Result<Result<Verdict, String>, Error> {
        let Some((scan, scanner)) = s.scan() else {
            return Ok(Ok(s.judged(&service.gate, &Listing::NotRead, today)));
        };
        let digest = s.digest.as_ref().expect("a scan names its image");
        let needed = needs_findings(&service.gate, scan);
        let owner = scanner.owner();
        let listing = match self.findings.account(scanner, digest, needed).await {
            Ok(Some(own)) => {
                if let Some(why) = scan::contradiction(scan, digest, &own) {
                    return Ok(Err(format!("not confirmed by {owner}: {why}")));
                }
                if needed {
                    Listing::Read(own.findings)
                } else {
                    Listing::NotRead
                }
            }
            // A scanner that reported its counts: nothing to ask, no list to read.
            Ok(None) => Listing::NotRead,
            Err(e) if e.is_retryable() => return Err(e),
            // No such image or scan there, or the call is refused: not confirmed.
            Err(e) => return Ok(Err(format!("not confirmed by {owner}: {e}"))),
        };
        Ok(Ok(s.judged(&service.gate, &listing, today)))
    }

    async fn record(
        &self,
        s: &Signal,
        service: &Service,
        commit: &CommitSha,
        recorded: &Recorded,
        correlation: &str,
    ) -> Result<Record, Error> {
        // A build's image becomes the candidate's; any other signal's must be it.
        let image = match recorded.kind {
            SignalKind::Build => s.digest.as_ref(),
            _ => recorded.digest.as_ref(),
        };
        self.store
            .record(
                &s.service,
                commit,
                recorded,
                image,
                correlation,
                service.gate.deadline_minutes,
            )
            .await
    }

    async fn signal(&self, policy: &Policy, s: Signal) -> Result<Report, Error> {
        // An approval is a person's word at a moment: sent again from the bus's archive it would
        // redeploy what a later rollback replaced. Other replayed evidence is recorded as such.
        if let (SignalKind::Approval, Some(replay)) = (&s.kind, &s.evidence.replay) {
            let why = format!(
                "approval: sent again by the archive replay {replay}; an approval counts only when its sender sends it"
            );
            return self.reject(&s.evidence, &why).await;
        }
        let now = (self.clock)();
        // A decided candidate is kept DECIDED_DAYS: a replay from the bus's archive of evidence
        // older than that could find its record gone and decide its commit again, so it counts
        // for nothing. (A delivery is at most a day old: EventBridge's maximum event age.)
        let oldest = now.saturating_sub(store::DECIDED_DAYS * 86_400);
        if s.evidence.replay.is_some() && s.evidence.time < oldest {
            let why = format!(
                "{}: the event is from {}, older than the {} days eddo keeps a decision: it counts for nothing",
                s.kind,
                rfc3339(s.evidence.time),
                store::DECIDED_DAYS
            );
            return self.reject(&s.evidence, &why).await;
        }
        let service = policy
            .service(s.service.as_str())
            .expect("signals name policy services");
        let verdict = match self.verdict(service, &s, Date::from_epoch(now)).await? {
            Ok(v) => v,
            Err(why) => {
                return self
                    .reject(&s.evidence, &format!("{}: {why}", s.kind))
                    .await;
            }
        };
        let recorded = Recorded {
            kind: s.kind.clone(),
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
            .record(&s, service, &commit, &recorded, &correlation)
            .await?
        {
            // Recorded before (a redelivery, a replay): nothing new, but a decision a dead
            // invocation left unfinished is finished below.
            Record::Recorded(c) | Record::Again(c) => *c,
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
        if let (SignalKind::Build, Some(digest)) = (&s.kind, &s.digest) {
            // Every scan of the image that came first joins the ledger, each keyed by its own
            // event: a retry after a crash adds none twice.
            for parked in self
                .store
                .link_digest(&s.service, digest, &commit, now)
                .await?
            {
                if let Record::Recorded(c) | Record::Again(c) = self
                    .record(&s, service, &commit, &parked, &correlation)
                    .await?
                {
                    candidate = *c;
                }
            }
        }
        let span = eddo::telemetry::correlation_span(&candidate.correlation_id);
        let report = self
            .act(service, candidate, &s.kind, &s.evidence, now)
            .instrument(span.clone())
            .await?;
        self.show(service, &commit).instrument(span).await;
        Ok(report)
    }

    /// Performs what [`next`] says the candidate's state calls for.
    pub(crate) async fn act(
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
            Next::Resume => self.resume_deploy(service, &c, now).await,
            Next::Withdraw { reasons } => {
                match self.withdraw(service, &c, reasons, now).await? {
                    Withdrawn::Blocked(report) => Ok(report),
                    Withdrawn::Started(mut report) => {
                        // The build started before the failure: the failure is late.
                        let Some(c) = self.store.get(&c.service, &c.commit).await? else {
                            return Ok(report);
                        };
                        let late = Box::pin(self.act(service, c, kind, cause, now)).await?;
                        report.outcome = late.outcome;
                        report.published.extend(late.published);
                        Ok(report)
                    }
                    Withdrawn::Busy => Ok(Report::quiet(
                        "the deploy build was recorded meanwhile, or another invocation has it",
                    )),
                }
            }
            Next::After {
                announce,
                late,
                ask_history,
            } => {
                if ask_history
                    && self
                        .store
                        .history(&c.service)
                        .await?
                        .rolled_back
                        .contains(c.commit.as_str())
                {
                    // An approval clears a known-bad commit only if it is newer than the mark
                    // (the last rollback that replaced it, or its late failure): one given
                    // before a later rollback, or sent again, is used up.
                    if *kind == SignalKind::Approval
                        && let Some((since, by)) =
                            self.store.known_bad_since(&c.service, &c.commit).await?
                        && cause.time <= since
                    {
                        let why = format!(
                            "approval: {} {} became known bad at {} ({by}), after this approval (at {}): approve it again",
                            c.service,
                            c.commit.short(),
                            rfc3339(since),
                            rfc3339(cause.time)
                        );
                        return self.reject(cause, &why).await;
                    }
                    match decide::again(&service.gate, &c, kind) {
                        Some(Again::Redeploy) => {
                            return self.redeploy(service, &c, cause, now).await;
                        }
                        Some(Again::Refuse(why)) => return self.reject(cause, &why).await,
                        None => {}
                    }
                }
                let mut report = if announce {
                    self.finish_owed(&c, now).await?
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
                    // A failing signal after the decision: never a second deployment, but said,
                    // and the commit is known bad from now on (first, so a retry of this event
                    // marks it even if the event below was already sent).
                    self.store
                        .mark_known_bad(&c.service, &c.commit, now, &cause.event_id)
                        .await?;
                    self.measure_late_failure(service, &c, now);
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
}

/// The event as evidence: which event, from where (its sender unproven).
fn evidence_of(event: &Value) -> Evidence {
    let s = |k: &str| event[k].as_str().unwrap_or_default().to_string();
    Evidence {
        event_id: s("id"),
        source: s("source"),
        detail_type: s("detail-type"),
        sender: String::new(),
        time: signal::event_time(event),
        replay: None,
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
