//! What an incoming event means to the gate, read against the policy: a signal about a candidate
//! (service + commit), a deploy project's completion, the deadline tick, something not for the
//! gate (ignored, logged), or something malformed or untrusted (rejected: reported once, never
//! retried, changing nothing).
//!
//! Every signal has a sender, proven by how it arrived: `aws.*` sources only AWS can put; eddo's
//! own sources only eddo's function roles (the bus policy); a signed sender's name only the
//! webhook, after verifying its key; another tool's source only the roles the operator listed. A
//! signal counts only when the service's policy names its sender for its kind.

use std::collections::BTreeMap;

use aws_lambda_events::event::ecr_scan::EcrScanEvent;
pub use eddo::codebuild::BuildState;
use eddo::git::GitEvent;
use eddo::names::ProjectName;
use eddo::names::{CommitSha, ImageDigest, ServiceName};
use eddo::policy::{CheckSeen, Gate, Policy, ProjectRole, Sender, Service, Severity, SignalKind};
use eddo::time::Date;
use serde::Deserialize;
use serde_json::Value;

pub use crate::candidate::Evidence;
use crate::decide::Verdict;
use crate::scan::{Listing, ScanCounts, judge_scan};

/// Which candidate a signal is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Commit(CommitSha),
    /// A scan is about an image: it counts for the commit whose build reported that digest, and
    /// for no other (a tag only names an image, and anyone who can push can tag).
    Image {
        digest: ImageDigest,
        /// The commit a reported scan claims; it must be the one the digest was built from.
        claimed: Option<CommitSha>,
    },
}

/// What a signal reports, before the policy's exceptions are applied to a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Verdict(Verdict),
    /// Severity counts of a completed image scan.
    Counts {
        counts: BTreeMap<Severity, u64>,
        scanner: Scanner,
    },
}

/// Where a scan's findings list can be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanner {
    Ecr {
        repository: String,
    },
    Inspector {
        repository_arn: String,
    },
    /// A scanner that reported counts in a `Scan Completed` event, with no list to fetch.
    Reported {
        name: String,
    },
}

impl Scanner {
    /// The severities its event counts: Inspector's scan event counts CRITICAL, HIGH and MEDIUM
    /// only; ECR's and a reported scan's count every severity (absent is zero).
    pub fn counted(&self) -> &'static [Severity] {
        match self {
            Scanner::Inspector { .. } => &[Severity::Critical, Severity::High, Severity::Medium],
            _ => &Severity::ALL,
        }
    }

    /// The service whose own account of the scan the gate asks for.
    pub fn owner(&self) -> &'static str {
        match self {
            Scanner::Ecr { .. } => "ECR",
            Scanner::Inspector { .. } => "Inspector",
            Scanner::Reported { .. } => "its sender",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Scanner::Ecr { .. } => "ECR basic scan",
            Scanner::Inspector { .. } => "Inspector enhanced scan",
            Scanner::Reported { name } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub kind: SignalKind,
    pub service: ServiceName,
    pub subject: Subject,
    /// The image a build produced (its exported `IMAGE_DIGEST`), or the image a reported signal
    /// is about: it must be the candidate's.
    pub digest: Option<ImageDigest>,
    pub reading: Reading,
    /// The change this belongs to, when the event carries it.
    pub correlation_id: Option<String>,
    pub evidence: Evidence,
}

impl Signal {
    /// Its scan's counts and scanner, when it is a scan that carries counts.
    pub fn scan(&self) -> Option<(ScanCounts<'_>, &Scanner)> {
        match &self.reading {
            Reading::Verdict(_) => None,
            Reading::Counts { counts, scanner } => Some((
                ScanCounts {
                    kind: &self.kind,
                    scanner: scanner.name(),
                    counted: scanner.counted(),
                    counts,
                },
                scanner,
            )),
        }
    }

    /// Its verdict under `gate` on `today`: the one it carries, or its scan judged with the
    /// findings `listing` (read by the gate only where the counts cannot decide).
    pub fn judged(&self, gate: &Gate, listing: &Listing, today: Date) -> Verdict {
        match (&self.reading, self.scan()) {
            (_, Some((scan, _))) => judge_scan(gate, scan, listing, today),
            (Reading::Verdict(v), None) => v.clone(),
            (Reading::Counts { .. }, None) => unreachable!("counts are a scan"),
        }
    }
}

/// A deploy project's build finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployFinished {
    pub service: ServiceName,
    pub commit: CommitSha,
    pub succeeded: bool,
    pub status: String,
    pub build_id: String,
    pub failed_phase: Option<String>,
    pub logs: Option<String>,
    /// The decision the build carries out (`EDDO_DECISION_ID`), as CodeBuild describes it.
    pub decision: Option<String>,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Signals(Vec<Signal>),
    /// A finished build of a build or SAST project, as its event claims it: it counts only as
    /// CodeBuild itself describes it ([`built`], after `BatchGetBuilds`).
    Confirm(Box<BuildState>),
    DeployFinished(Box<DeployFinished>),
    /// A rollback build of a service's rollback project succeeded (confirmed by CodeBuild).
    RolledBack(Box<RolledBack>),
    /// A GitHub Actions job waits on a service's environment for eddo's answer.
    ProtectionRule(Box<crate::store::rules::Asked>),
    /// A push of commits to branches services deploy from: when each commit was made, where
    /// its lead time starts.
    Pushed(Vec<Pushed>),
    /// The scheduled sweep for candidates past their deadline, with the event's time.
    Tick {
        at: Option<u64>,
    },
    Ignored(String),
    Rejected(String),
}

/// The exported variable a build sets to the digest of the image it pushed.
pub const DIGEST_VARIABLE: &str = "IMAGE_DIGEST";

pub(crate) fn evidence(event: &Value, sender: &Sender) -> Evidence {
    let s = |k: &str| event[k].as_str().unwrap_or_default().to_string();
    Evidence {
        event_id: s("id"),
        source: s("source"),
        detail_type: s("detail-type"),
        sender: sender.to_string(),
        time: event_time(event),
        replay: event["replay-name"].as_str().map(str::to_string),
    }
}

/// An event's `time`, in epoch seconds (0 when it has none).
pub(crate) fn event_time(event: &Value) -> u64 {
    event["time"]
        .as_str()
        .and_then(eddo::time::parse_rfc3339)
        .unwrap_or_default()
}

/// Whether `sender` counts for `kind` of `service`; the rejection says who would.
pub(crate) fn admit(service: &Service, kind: &SignalKind, sender: &Sender) -> Result<(), String> {
    if service.gate.counts(kind, sender) {
        return Ok(());
    }
    let accepted: Vec<String> = service
        .gate
        .senders(kind)
        .iter()
        .map(Sender::to_string)
        .collect();
    Err(format!(
        "{kind} from {sender} does not count for {}: its policy accepts {}",
        service.name,
        if accepted.is_empty() {
            format!("no sender for {kind}")
        } else {
            accepted.join(", ")
        }
    ))
}

/// Reads `event` (a whole EventBridge event) against `policy`.
pub fn read(policy: &Policy, event: &Value) -> Incoming {
    let source = event["source"].as_str().unwrap_or_default();
    let detail_type = event["detail-type"].as_str().unwrap_or_default();
    match (source, detail_type) {
        ("aws.events", "Scheduled Event") => Incoming::Tick {
            at: event["time"].as_str().and_then(eddo::time::parse_rfc3339),
        },
        ("aws.codebuild", "CodeBuild Build State Change") => codebuild(policy, event),
        ("aws.ecr", "ECR Image Scan") => ecr_scan(policy, event),
        ("aws.inspector2", "Inspector2 Scan") => inspector_scan(policy, event),
        ("eddo.webhook", "Check Run Completed" | "Workflow Run Completed") => check(policy, event),
        ("eddo.webhook", "Deployment Protection Rule") => protection_rule(policy, event),
        ("eddo.webhook", "Git Push") => pushed(policy, event),
        (_, "CDEvent Received") => crate::cdevent::read(policy, event),
        (_, "Signal Reported" | "Scan Completed" | "Deployment Approval") => {
            crate::reported::read(policy, event)
        }
        _ => Incoming::Rejected(format!(
            "the gate does not consume {source:?} / {detail_type:?} events; check the rules that target it"
        )),
    }
}

/// Reads `event` as it was recorded, each build taken as its event describes it (its source
/// version the commit): for tools with no CodeBuild to ask (`eddo policy replay`, benchmarks)
/// reading events the gate confirmed when they came.
pub fn read_recorded(policy: &Policy, event: &Value) -> Incoming {
    match read(policy, event) {
        Incoming::Confirm(mut b) => {
            b.resolved_commit = b.source_version.clone();
            built(policy, &b, event)
        }
        other => other,
    }
}

fn codebuild(policy: &Policy, event: &Value) -> Incoming {
    let b = match BuildState::read(event) {
        Ok(b) => b,
        Err(why) => return Incoming::Rejected(why),
    };
    let project = b.project.as_str();
    let Some((_, role)) = policy.build_owner(&b) else {
        return Incoming::Ignored(format!("project {project} is not in the policy"));
    };
    if !b.finished() {
        return Incoming::Ignored(format!("{project} build in progress"));
    }
    match role {
        ProjectRole::Build | ProjectRole::Sast | ProjectRole::Deploy => {
            Incoming::Confirm(Box::new(b))
        }
        // What it replaced is shown where developers look (once CodeBuild confirms it).
        ProjectRole::Rollback if b.succeeded() => Incoming::Confirm(Box::new(b)),
        ProjectRole::Rollback => Incoming::Ignored(format!(
            "{project} build {}: a rollback that did not succeed replaced nothing",
            b.build_id
        )),
    }
}

/// A rollback build that succeeded, as CodeBuild describes it: the release it replaced, for the
/// check run and status that showed that release.
fn rolled_back(service: &Service, b: &BuildState) -> Incoming {
    let project = b.project.as_str();
    if !b.succeeded() {
        return Incoming::Ignored(format!(
            "{project} build {}: a rollback that did not succeed replaced nothing",
            b.build_id
        ));
    }
    let replaced = match b.env("EDDO_REPLACED_COMMIT_SHA").map(CommitSha::parse) {
        Some(Ok(c)) => c,
        Some(Err(why)) => {
            return Incoming::Rejected(format!(
                "{project} build {}: the commit it replaced {why}",
                b.build_id
            ));
        }
        None => {
            return Incoming::Ignored(format!(
                "{project} build {} names no commit it replaced",
                b.build_id
            ));
        }
    };
    Incoming::RolledBack(Box::new(RolledBack {
        service: service.name.clone(),
        replaced,
        replacement: crate::checks::Replacement {
            build_id: eddo::codebuild::build_id(&b.build_id).to_string(),
            to: b
                .env("EDDO_COMMIT_SHA")
                .or(b.source_version.as_deref())
                .map(str::to_string),
            alarm: b.env("EDDO_ALARM_NAME").map(str::to_string),
        },
    }))
}

/// A release a rollback replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub service: ServiceName,
    pub replaced: CommitSha,
    pub replacement: crate::checks::Replacement,
}

/// A deploy project's build finished: the gate's own deploy, which it knows by its build id.
fn deploy_finished(service: &Service, b: &BuildState, event: &Value) -> Incoming {
    let project = b.project.as_str();
    let build_id = b.build_id.clone();
    // The deploy project gets the commit as an override.
    let commit = match b
        .env("EDDO_COMMIT_SHA")
        .or(b.source_version.as_deref())
        .map(CommitSha::parse)
    {
        Some(Ok(c)) => c,
        Some(Err(why)) => {
            return Incoming::Rejected(format!("{project} build {build_id}: its commit {why}"));
        }
        None => {
            return Incoming::Rejected(format!("{project} build {build_id} names no commit"));
        }
    };
    let sender = match ProjectName::parse(project) {
        Ok(p) => Sender::Project(p),
        Err(why) => return Incoming::Rejected(why),
    };
    Incoming::DeployFinished(Box::new(DeployFinished {
        service: service.name.clone(),
        commit,
        succeeded: b.succeeded(),
        status: b.status.clone(),
        build_id,
        failed_phase: b.failed_phase.clone(),
        logs: b.logs_url.clone(),
        decision: b
            .env(eddo::codebuild::DECISION_VARIABLE)
            .map(str::to_string),
        evidence: evidence(event, &sender),
    }))
}

/// The signal of a finished build or SAST build (or a deploy build's completion), read from `b`
/// as CodeBuild describes it (see
/// [`Incoming::Confirm`]); `event` is the notification that announced it. It counts for the
/// commit CodeBuild checked out (`resolvedSourceVersion`), whatever the caller who started the
/// build put in its variables, and only for the repository and branch the push rule named.
pub fn built(policy: &Policy, b: &BuildState, event: &Value) -> Incoming {
    let project = b.project.as_str();
    let build_id = b.build_id.clone();
    let Some((service, role)) = policy.build_owner(b) else {
        return Incoming::Ignored(format!("project {project} is not in the policy"));
    };
    let kind = match role {
        ProjectRole::Build => SignalKind::Build,
        ProjectRole::Sast => SignalKind::Sast,
        ProjectRole::Deploy => return deploy_finished(service, b, event),
        ProjectRole::Rollback => return rolled_back(service, b),
    };
    let commit = match b.resolved_commit.as_deref().map(CommitSha::parse) {
        Some(Ok(c)) => c,
        Some(Err(why)) => {
            return Incoming::Rejected(format!(
                "{project} build {build_id}: the commit CodeBuild resolved {why}"
            ));
        }
        None => {
            return Incoming::Rejected(format!(
                "{project} build {build_id}: CodeBuild resolved no commit for its source, so it counts for none"
            ));
        }
    };
    let sender = match ProjectName::parse(project) {
        Ok(p) => Sender::Project(p),
        Err(why) => return Incoming::Rejected(why),
    };
    let evidence = evidence(event, &sender);
    // A build counts for a commit of the service's own repository: the push rule names the
    // repository it built, and a push to another repository the webhook covers is not this
    // service's, whatever branch it is on. A build that names neither counts for no service:
    // every service deploys from its own repositories and branches only.
    let (Some(repository), Some(branch)) = (b.env("EDDO_REPOSITORY"), b.env("EDDO_BRANCH")) else {
        return Incoming::Rejected(format!(
            "{project} build {build_id} names no repository and branch (EDDO_REPOSITORY, EDDO_BRANCH, as eddo's push rule sets them), so it counts for no service"
        ));
    };
    if !service
        .repositories
        .iter()
        .any(|r| r.as_str().eq_ignore_ascii_case(repository))
    {
        return Incoming::Rejected(format!(
            "{project} build {build_id} built {repository}, which is not a repository of {}",
            service.name
        ));
    }
    if !service.branches.iter().any(|b| b == branch) {
        return Incoming::Ignored(format!(
            "{project} built branch {branch}, which {} does not deploy from",
            service.name
        ));
    }
    let reading = if b.succeeded() {
        Verdict::Passed {
            summary: format!("{project} build SUCCEEDED"),
        }
    } else {
        Verdict::Failed {
            reasons: vec![format!(
                "{}: {project} build {}{}",
                kind.as_str(),
                b.status,
                b.failed_phase
                    .as_ref()
                    .map(|p| format!(" in phase {p}"))
                    .unwrap_or_default()
                    + &b.logs_url
                        .as_ref()
                        .map(|l| format!(" (logs: {l})"))
                        .unwrap_or_default()
            )],
        }
    };
    let digest = b
        .exported(DIGEST_VARIABLE)
        .and_then(|d| ImageDigest::parse(d).ok());
    Incoming::Signals(vec![Signal {
        kind,
        service: service.name.clone(),
        subject: Subject::Commit(commit),
        digest,
        reading: Reading::Verdict(reading),
        correlation_id: b.env("EDDO_CORRELATION_ID").map(str::to_string),
        evidence,
    }])
}

/// What ECR and Inspector scan events have in common.
struct Scan<'a> {
    repository: &'a str,
    status: &'a str,
    digest: Option<&'a str>,
    counts: BTreeMap<Severity, u64>,
    scanner: Scanner,
}

fn scan_signal(policy: &Policy, event: &Value, scan: Scan<'_>) -> Incoming {
    let Scan {
        repository,
        status,
        digest,
        counts,
        scanner,
    } = scan;
    let Some(service) = policy.image_repository(repository) else {
        return Incoming::Ignored(format!(
            "image repository {repository} is not in the policy"
        ));
    };
    let digest = match digest.map(ImageDigest::parse) {
        Some(Ok(d)) => d,
        Some(Err(why)) => {
            return Incoming::Rejected(format!("a scan of {repository}: its image-digest {why}"));
        }
        None => {
            return Incoming::Rejected(format!(
                "a scan of {repository} without an image digest cannot be matched to the image a build reported"
            ));
        }
    };
    if let Err(why) = admit(service, &SignalKind::ImageScan, &Sender::ImageScanner) {
        return Incoming::Rejected(why);
    }
    // One scanner is one sender: ECR's basic scan and Inspector's are not each other's reruns.
    let sender = format!("{} of {repository}", scanner.name());
    let reading = if status.ends_with("COMPLETE") {
        Reading::Counts { counts, scanner }
    } else {
        Reading::Verdict(Verdict::Failed {
            reasons: vec![format!(
                "image-scan: the {} of {digest} ended {status}",
                scanner.name(),
            )],
        })
    };
    Incoming::Signals(vec![Signal {
        kind: SignalKind::ImageScan,
        service: service.name.clone(),
        subject: Subject::Image {
            digest: digest.clone(),
            claimed: None,
        },
        digest: Some(digest),
        reading,
        correlation_id: None,
        evidence: Evidence {
            sender,
            ..evidence(event, &Sender::ImageScanner)
        },
    }])
}

fn ecr_scan(policy: &Policy, event: &Value) -> Incoming {
    let e: EcrScanEvent = match EcrScanEvent::deserialize(event) {
        Ok(e) => e,
        Err(err) => return Incoming::Rejected(format!("not an ECR Image Scan event: {err}")),
    };
    let d = &e.detail;
    let c = &d.finding_severity_counts;
    let counts = [
        (Severity::Critical, c.critical),
        (Severity::High, c.high),
        (Severity::Medium, c.medium),
        (Severity::Low, c.low),
        (Severity::Informational, c.informational),
        (Severity::Undefined, c.undefined),
    ]
    .into_iter()
    .filter_map(|(s, n)| n.map(|n| (s, n.max(0) as u64)))
    .collect();
    let repository = d.repository_name.clone().unwrap_or_default();
    scan_signal(
        policy,
        event,
        Scan {
            repository: &repository,
            status: d.scan_status.as_deref().unwrap_or_default(),
            digest: d.image_digest.as_deref(),
            counts,
            scanner: Scanner::Ecr {
                repository: repository.clone(),
            },
        },
    )
}

/// The `Inspector2 Scan` detail (no `aws_lambda_events` type): the repository is an ARN, and the
/// counts are CRITICAL, HIGH, MEDIUM and TOTAL only, absent when zero.
#[derive(Deserialize)]
struct InspectorScan {
    #[serde(rename = "scan-status")]
    scan_status: String,
    #[serde(rename = "repository-name")]
    repository_name: String,
    #[serde(rename = "finding-severity-counts", default)]
    counts: BTreeMap<String, u64>,
    #[serde(rename = "image-digest")]
    image_digest: Option<String>,
}

fn inspector_scan(policy: &Policy, event: &Value) -> Incoming {
    let d: InspectorScan = match InspectorScan::deserialize(&event["detail"]) {
        Ok(d) => d,
        Err(err) => return Incoming::Rejected(format!("not an Inspector2 Scan event: {err}")),
    };
    let repository = d
        .repository_name
        .rsplit_once(":repository/")
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| d.repository_name.clone());
    let counts = d
        .counts
        .iter()
        .filter_map(|(k, n)| Severity::parse(k).map(|s| (s, *n)))
        .collect();
    scan_signal(
        policy,
        event,
        Scan {
            repository: &repository,
            status: &d.scan_status,
            digest: d.image_digest.as_deref(),
            counts,
            scanner: Scanner::Inspector {
                repository_arn: d.repository_name.clone(),
            },
        },
    )
}

fn check(policy: &Policy, event: &Value) -> Incoming {
    let e: GitEvent = match GitEvent::deserialize(&event["detail"]) {
        Ok(e) => e,
        Err(err) => return Incoming::Rejected(format!("not an eddo check event: {err}")),
    };
    let (Some(repo), Some(check)) = (e.repository.as_ref(), e.check.as_ref()) else {
        return Incoming::Rejected("a check event without repository or check".into());
    };
    let name = check.name.clone().unwrap_or_default();
    let Some(sha) = check.head_sha.as_deref().or(e.commit_sha.as_deref()) else {
        return Incoming::Rejected(format!("check {name:?} names no commit"));
    };
    let commit = match CommitSha::parse(sha) {
        Ok(c) => c,
        Err(why) => return Incoming::Rejected(format!("check {name:?}: {why}")),
    };
    let correlation = event["detail"]["metadata"]["correlation_id"]
        .as_str()
        .map(str::to_string);
    let Some(app) = check.app.clone() else {
        return Incoming::Ignored(format!(
            "check {name:?} on {} names no app, so no policy can count it",
            repo.full_name
        ));
    };
    let seen = CheckSeen {
        name: &name,
        app: &app,
        app_id: check.app_id,
        workflow: check.workflow_path.as_deref(),
        event: check.trigger.as_deref(),
    };
    let conclusion = check.conclusion.as_deref().unwrap_or("none");
    // A check without a branch (a fork's pull request runs on the fork's branch, which GitHub
    // reports as none) counts for no service: each deploys from its own branches only.
    let mut signals = Vec::new();
    for service in policy.repository(&repo.full_name).filter(|s| {
        check
            .head_branch
            .as_ref()
            .is_some_and(|b| s.branches.contains(b))
    }) {
        for kind in service.gate.senders.keys() {
            let Some(sender) = service.gate.check_sender(kind, &seen) else {
                continue;
            };
            let verdict = if conclusion == "success" {
                Verdict::Passed {
                    summary: format!("{name} check succeeded"),
                }
            } else {
                Verdict::Failed {
                    reasons: vec![format!(
                        "{kind}: {name} check {}",
                        if conclusion == "failure" {
                            "failed"
                        } else {
                            conclusion
                        }
                    )],
                }
            };
            signals.push(Signal {
                kind: kind.clone(),
                service: service.name.clone(),
                subject: Subject::Commit(commit.clone()),
                digest: None,
                reading: Reading::Verdict(verdict),
                correlation_id: correlation.clone(),
                evidence: evidence(event, sender),
            });
        }
    }
    if signals.is_empty() {
        return Incoming::Ignored(format!(
            "check {name} by {app}{} on {} counts for no service deploying that branch from that repository",
            check
                .workflow_path
                .as_deref()
                .map(|w| format!(" from {w}"))
                .unwrap_or_default(),
            repo.full_name
        ));
    }
    Incoming::Signals(signals)
}

/// A protection rule's delivery: the service whose environment it is (in the repository its
/// `checks.github` names).
fn protection_rule(policy: &Policy, event: &Value) -> Incoming {
    let e: GitEvent = match GitEvent::deserialize(&event["detail"]) {
        Ok(e) => e,
        Err(err) => return Incoming::Rejected(format!("not an eddo protection rule event: {err}")),
    };
    let (Some(repo), Some(rule), Some(sha)) = (
        e.repository.as_ref(),
        e.protection_rule.as_ref(),
        e.commit_sha.as_deref(),
    ) else {
        return Incoming::Rejected(
            "a protection rule event without repository, rule or commit".into(),
        );
    };
    let commit = match CommitSha::parse(sha) {
        Ok(c) => c,
        Err(why) => return Incoming::Rejected(format!("protection rule: {why}")),
    };
    let Some(service) = policy.repository(&repo.full_name).find(|s| {
        s.deploys_by.environment() == Some(rule.environment.as_str())
            && s.checks.github.as_ref().map(|r| r.as_str()) == Some(repo.full_name.as_str())
    }) else {
        return Incoming::Rejected(format!(
            "no service in the policy deploys by environment {:?} of {}: its jobs wait for an answer eddo cannot give (add github_environment to the service, or remove eddo's rule from the environment)",
            rule.environment, repo.full_name
        ));
    };
    Incoming::ProtectionRule(Box::new(crate::store::rules::Asked {
        service: service.name.clone(),
        commit,
        run_id: rule.run_id,
        repo: repo.full_name.clone(),
        environment: rule.environment.clone(),
        // Set by the gate's clock when it records the rule.
        deadline: 0,
    }))
}

/// A commit pushed to a branch a service deploys from, and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub service: ServiceName,
    pub commit: CommitSha,
    pub committed_at: u64,
}

/// A push: for each service of its repository that deploys from its branch, when its head
/// commit was made (as the provider said it). A push that says no time is nothing to record.
fn pushed(policy: &Policy, event: &Value) -> Incoming {
    let e: GitEvent = match GitEvent::deserialize(&event["detail"]) {
        Ok(e) => e,
        Err(err) => return Incoming::Rejected(format!("not an eddo push event: {err}")),
    };
    let (Some(repo), Some(branch), Some(sha)) = (
        e.repository.as_ref(),
        e.branch.as_ref(),
        e.commit_sha.as_deref(),
    ) else {
        return Incoming::Ignored("a push of no branch or commit".into());
    };
    let Some(committed_at) = e
        .push
        .as_ref()
        .and_then(|p| p.head_commit_time.as_deref())
        .and_then(eddo::time::parse_timestamp)
    else {
        return Incoming::Ignored("a push that says no commit time".into());
    };
    let Ok(commit) = CommitSha::parse(sha) else {
        return Incoming::Rejected(format!("push: {sha:?} is not a commit"));
    };
    let pushed: Vec<Pushed> = policy
        .repository(&repo.full_name)
        .filter(|s| s.branches.contains(branch))
        .map(|s| Pushed {
            service: s.name.clone(),
            commit: commit.clone(),
            committed_at,
        })
        .collect();
    if pushed.is_empty() {
        return Incoming::Ignored(format!(
            "no service deploys {} from {branch}",
            repo.full_name
        ));
    }
    Incoming::Pushed(pushed)
}
