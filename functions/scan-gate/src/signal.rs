//! What an incoming event means to the gate, read against the policy: a signal about a candidate
//! (service + commit), a deploy project's completion, the deadline tick, something not for the
//! gate (ignored, logged), or something malformed (rejected: reported once, never retried).

use std::collections::BTreeMap;

use aws_lambda_events::event::ecr_scan::EcrScanEvent;
use eddo::codebuild::BuildState;
use eddo::git::GitEvent;
use eddo::names::{CommitSha, ImageDigest, ServiceName};
use eddo::policy::{Policy, ProjectRole, Severity, SignalKind};
use serde::Deserialize;
use serde_json::Value;

use crate::decide::Verdict;

/// Which event a signal came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    pub event_id: String,
    pub source: String,
    pub detail_type: String,
}

/// Which candidate a signal is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Commit(CommitSha),
    /// A scan knows its image, not its commit: matched by digest, or by a tag that is the commit
    /// (or at least its first 7 digits), the tag convention.
    Image {
        digest: Option<ImageDigest>,
        commit_tags: Vec<String>,
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
    /// The image a build produced (its exported `IMAGE_DIGEST`).
    pub digest: Option<ImageDigest>,
    pub reading: Reading,
    /// The change this belongs to, when the event carries it.
    pub correlation_id: Option<String>,
    pub evidence: Evidence,
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
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Signals(Vec<Signal>),
    DeployFinished(DeployFinished),
    /// The scheduled sweep for candidates past their deadline, with the event's time.
    Tick {
        at: Option<u64>,
    },
    Ignored(String),
    Rejected(String),
}

/// The exported variable a build sets to the digest of the image it pushed.
pub const DIGEST_VARIABLE: &str = "IMAGE_DIGEST";

fn evidence(event: &Value) -> Evidence {
    let s = |k: &str| event[k].as_str().unwrap_or_default().to_string();
    Evidence {
        event_id: s("id"),
        source: s("source"),
        detail_type: s("detail-type"),
    }
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
        (s, "Scan Completed") if !s.starts_with("aws.") => scan_completed(policy, event),
        (s, "Deployment Approval") if !s.starts_with("aws.") => approval(policy, event),
        _ => Incoming::Rejected(format!(
            "the gate does not consume {source:?} / {detail_type:?} events; check the rules that target it"
        )),
    }
}

fn codebuild(policy: &Policy, event: &Value) -> Incoming {
    let b = match BuildState::read(event) {
        Ok(b) => b,
        Err(why) => return Incoming::Rejected(why),
    };
    let project = b.project.as_str();
    let Some((service, role)) = policy.project(project) else {
        return Incoming::Ignored(format!("project {project} is not in the policy"));
    };
    if !b.finished() {
        return Incoming::Ignored(format!("{project} build in progress"));
    }
    let build_id = b.build_id.clone();
    // The deploy project gets the commit as an override; builds have it as source version.
    let version = b.env("EDDO_COMMIT_SHA").or(b.source_version.as_deref());
    let commit = match version.map(CommitSha::parse) {
        Some(Ok(c)) => c,
        Some(Err(why)) => {
            return Incoming::Rejected(format!(
                "{project} build {build_id}: its source version {why}; start it with the commit as source version"
            ));
        }
        None => {
            return Incoming::Rejected(format!("{project} build {build_id} has no source version"));
        }
    };
    let evidence = evidence(event);
    let kind = match role {
        ProjectRole::Build => SignalKind::Build,
        ProjectRole::Sast => SignalKind::Sast,
        ProjectRole::Deploy => {
            return Incoming::DeployFinished(DeployFinished {
                service: service.name.clone(),
                commit,
                succeeded: b.succeeded(),
                status: b.status.clone(),
                build_id,
                failed_phase: b.failed_phase.clone(),
                logs: b.logs_url.clone(),
                evidence,
            });
        }
        ProjectRole::Rollback => {
            return Incoming::Ignored(format!("{project} is a rollback project"));
        }
    };
    if let Some(branch) = b.env("EDDO_BRANCH")
        && !service.branches.iter().any(|b| b == branch)
    {
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

/// Tags that can name a commit: 7 to 64 lower-case hex digits.
fn commit_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter(|t| {
            (7..=64).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .cloned()
        .collect()
}

/// What ECR and Inspector scan events have in common.
struct Scan<'a> {
    repository: &'a str,
    status: &'a str,
    digest: Option<&'a str>,
    tags: &'a [String],
    counts: BTreeMap<Severity, u64>,
    scanner: Scanner,
}

fn scan_signal(policy: &Policy, event: &Value, scan: Scan<'_>) -> Incoming {
    let Scan {
        repository,
        status,
        digest,
        tags,
        counts,
        scanner,
    } = scan;
    let Some(service) = policy.image_repository(repository) else {
        return Incoming::Ignored(format!(
            "image repository {repository} is not in the policy"
        ));
    };
    let digest = match digest.map(ImageDigest::parse).transpose() {
        Ok(d) => d,
        Err(why) => {
            return Incoming::Rejected(format!("a scan of {repository}: its image-digest {why}"));
        }
    };
    let reading = if status.ends_with("COMPLETE") {
        Reading::Counts { counts, scanner }
    } else {
        Reading::Verdict(Verdict::Failed {
            reasons: vec![format!(
                "image-scan: the {} of {} ended {status}",
                scanner.name(),
                digest
                    .as_ref()
                    .map(ImageDigest::as_str)
                    .unwrap_or(repository)
            )],
        })
    };
    let commit_tags = commit_tags(tags);
    if digest.is_none() && commit_tags.is_empty() {
        return Incoming::Rejected(format!(
            "a scan of {repository} with neither a digest nor a commit tag names no candidate"
        ));
    }
    Incoming::Signals(vec![Signal {
        kind: SignalKind::ImageScan,
        service: service.name.clone(),
        subject: Subject::Image {
            digest: digest.clone(),
            commit_tags,
        },
        digest,
        reading,
        correlation_id: None,
        evidence: evidence(event),
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
            tags: &d.image_tags,
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
    #[serde(rename = "image-tags", default)]
    image_tags: Vec<String>,
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
            tags: &d.image_tags,
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
    let signals: Vec<Signal> = policy
        .repository(&repo.full_name)
        .filter(|s| s.gate.sast_checks.iter().any(|c| c == &name))
        .filter(|s| {
            check
                .head_branch
                .as_ref()
                .is_none_or(|b| s.branches.contains(b))
        })
        .map(|s| {
            let conclusion = check.conclusion.as_deref().unwrap_or("none");
            let verdict = if conclusion == "success" {
                Verdict::Passed {
                    summary: format!("{name} check succeeded"),
                }
            } else {
                Verdict::Failed {
                    reasons: vec![format!(
                        "sast: {name} check {}",
                        if conclusion == "failure" {
                            "failed"
                        } else {
                            conclusion
                        }
                    )],
                }
            };
            Signal {
                kind: SignalKind::Sast,
                service: s.name.clone(),
                subject: Subject::Commit(commit.clone()),
                digest: None,
                reading: Reading::Verdict(verdict),
                correlation_id: correlation.clone(),
                evidence: evidence(event),
            }
        })
        .collect();
    if signals.is_empty() {
        return Incoming::Ignored(format!(
            "check {name:?} on {} is not a SAST check of a service deploying that branch",
            repo.full_name
        ));
    }
    Incoming::Signals(signals)
}

/// eddo's `Scan Completed` contract: any scanner can put one on the bus.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanCompleted {
    #[serde(default)]
    metadata: Option<eddo::Metadata>,
    service: String,
    commit_sha: String,
    scanner: String,
    kind: SignalKind,
    #[serde(default)]
    passed: Option<bool>,
    #[serde(default)]
    findings: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    image_digest: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    report_url: Option<String>,
}

fn known_service<'a>(
    policy: &'a Policy,
    name: &str,
    what: &str,
) -> Result<&'a eddo::policy::Service, String> {
    policy
        .service(name)
        .ok_or_else(|| format!("{what} for service {name:?}, which is not in the policy"))
}

fn scan_completed(policy: &Policy, event: &Value) -> Incoming {
    let d: ScanCompleted = match ScanCompleted::deserialize(&event["detail"]) {
        Ok(d) => d,
        Err(err) => return Incoming::Rejected(format!("not a Scan Completed event: {err}")),
    };
    let service = match known_service(policy, &d.service, "Scan Completed") {
        Ok(s) => s,
        Err(why) => return Incoming::Rejected(why),
    };
    if !matches!(d.kind, SignalKind::Sast | SignalKind::ImageScan) {
        return Incoming::Rejected(format!(
            "Scan Completed kind must be sast or image-scan, not {}",
            d.kind
        ));
    }
    let commit = match CommitSha::parse(&d.commit_sha) {
        Ok(c) => c,
        Err(why) => return Incoming::Rejected(format!("Scan Completed: {why}")),
    };
    let report = d
        .report_url
        .as_ref()
        .map(|u| format!(" (report: {u})"))
        .unwrap_or_default();
    let reading = match (&d.findings, d.passed) {
        (Some(f), _) => {
            let mut counts = BTreeMap::new();
            for (k, n) in f {
                let Some(s) = Severity::parse(k) else {
                    return Incoming::Rejected(format!("Scan Completed: unknown severity {k:?}"));
                };
                counts.insert(s, *n);
            }
            // Exceptions need a findings list, which a contract event does not carry.
            Reading::Counts {
                counts,
                scanner: Scanner::Reported {
                    name: d.scanner.clone(),
                },
            }
        }
        (None, Some(true)) => Reading::Verdict(Verdict::Passed {
            summary: format!("{} passed{report}", d.scanner),
        }),
        (None, Some(false)) => Reading::Verdict(Verdict::Failed {
            reasons: vec![format!(
                "{}: {} failed{}{report}",
                d.kind,
                d.scanner,
                d.summary.map(|s| format!(": {s}")).unwrap_or_default()
            )],
        }),
        (None, None) => {
            return Incoming::Rejected(
                "Scan Completed needs passed (true/false) or findings".into(),
            );
        }
    };
    let reading = match reading {
        Reading::Counts { counts, .. } if d.kind == SignalKind::Sast => {
            // A SAST tool's findings judged by the same thresholds, without exceptions.
            let exceeded: Vec<String> = service
                .gate
                .max_findings
                .iter()
                .filter_map(|(s, max)| {
                    let n = counts.get(s).copied().unwrap_or(0);
                    (n > *max)
                        .then(|| format!("sast: {} {} {n} > {max} allowed", d.scanner, s.as_str()))
                })
                .collect();
            Reading::Verdict(if exceeded.is_empty() {
                Verdict::Passed {
                    summary: format!("{} findings within policy{report}", d.scanner),
                }
            } else {
                Verdict::Failed { reasons: exceeded }
            })
        }
        other => other,
    };
    Incoming::Signals(vec![Signal {
        kind: d.kind,
        service: service.name.clone(),
        subject: Subject::Commit(commit),
        digest: d.image_digest.and_then(|x| ImageDigest::parse(x).ok()),
        reading,
        correlation_id: d.metadata.map(|m| m.correlation_id),
        evidence: evidence(event),
    }])
}

/// eddo's `Deployment Approval` contract, from a chat tool or a person.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Approval {
    #[serde(default)]
    metadata: Option<eddo::Metadata>,
    service: String,
    commit_sha: String,
    decision: ApprovalDecision,
    approver: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum ApprovalDecision {
    Approved,
    Rejected,
}

fn approval(policy: &Policy, event: &Value) -> Incoming {
    let d: Approval = match Approval::deserialize(&event["detail"]) {
        Ok(d) => d,
        Err(err) => return Incoming::Rejected(format!("not a Deployment Approval event: {err}")),
    };
    let service = match known_service(policy, &d.service, "Deployment Approval") {
        Ok(s) => s,
        Err(why) => return Incoming::Rejected(why),
    };
    let commit = match CommitSha::parse(&d.commit_sha) {
        Ok(c) => c,
        Err(why) => return Incoming::Rejected(format!("Deployment Approval: {why}")),
    };
    if d.approver.trim().is_empty() {
        return Incoming::Rejected("Deployment Approval names no approver".into());
    }
    let reason = d.reason.map(|r| format!(": {r}")).unwrap_or_default();
    let verdict = if d.decision == ApprovalDecision::Approved {
        Verdict::Passed {
            summary: format!("approved by {}{reason}", d.approver),
        }
    } else {
        Verdict::Failed {
            reasons: vec![format!("approval: rejected by {}{reason}", d.approver)],
        }
    };
    Incoming::Signals(vec![Signal {
        kind: SignalKind::Approval,
        service: service.name.clone(),
        subject: Subject::Commit(commit),
        digest: None,
        reading: Reading::Verdict(verdict),
        correlation_id: d.metadata.map(|m| m.correlation_id),
        evidence: evidence(event),
    }])
}
