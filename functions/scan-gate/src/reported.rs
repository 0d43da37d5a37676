//! Signals other tools report: a scanner, a CI system, a contract check, a chat tool's approval.
//! Three shapes of one contract (`Signal Reported`, and the older `Scan Completed` and
//! `Deployment Approval`), from one of two authenticated senders:
//!
//! - signed: a Standard Webhooks delivery the webhook verified with the sender's own key, put on
//!   the bus as `eddo.webhook` with the verified `sender` (only the webhook's role may put
//!   `eddo.webhook`);
//! - IAM: an event whose source the bus lets only the roles the operator listed put.
//!
//! Anything else (another eddo source, an `aws.*` source, a `sender` field not set by the
//! webhook, a sender the service's policy does not name for that kind) is rejected.

use std::collections::BTreeMap;

use eddo::names::{CommitSha, ImageDigest, SenderName};
use eddo::policy::{Policy, Sender, Severity, SignalKind};
use serde::Deserialize;
use serde_json::Value;

use crate::decide::Verdict;
use crate::signal::{Incoming, Reading, Scanner, Signal, Subject, admit, evidence};

/// The `Signal Reported` detail: one signal about one commit of one service.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reported {
    #[serde(default)]
    metadata: Option<eddo::Metadata>,
    /// Set by the webhook only: the signed sender it verified.
    #[serde(default)]
    sender: Option<String>,
    service: String,
    commit_sha: String,
    kind: SignalKind,
    #[serde(default)]
    passed: Option<bool>,
    /// Findings per severity (absent is zero), judged by the service's limits.
    #[serde(default)]
    findings: Option<BTreeMap<String, u64>>,
    /// The image it is about: required for image-scan, and it must be the candidate's.
    #[serde(default)]
    image_digest: Option<String>,
    /// The tool or person that reported it (a scanner's name, an approver).
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    report_url: Option<String>,
}

/// eddo's `Scan Completed` contract (kept as it was published).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanCompleted {
    #[serde(default)]
    metadata: Option<eddo::Metadata>,
    #[serde(default)]
    sender: Option<String>,
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

/// eddo's `Deployment Approval` contract (kept as it was published).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Approval {
    #[serde(default)]
    metadata: Option<eddo::Metadata>,
    #[serde(default)]
    sender: Option<String>,
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

fn detail(event: &Value) -> Result<Reported, String> {
    let d = &event["detail"];
    let what = event["detail-type"].as_str().unwrap_or_default();
    let bad = |err: serde_json::Error| format!("not a {what} event: {err}");
    Ok(match what {
        "Scan Completed" => {
            let s = ScanCompleted::deserialize(d).map_err(bad)?;
            if matches!(s.kind, SignalKind::Approval | SignalKind::Build) {
                return Err(format!("Scan Completed cannot report {}", s.kind));
            }
            Reported {
                metadata: s.metadata,
                sender: s.sender,
                service: s.service,
                commit_sha: s.commit_sha,
                kind: s.kind,
                passed: s.passed,
                findings: s.findings,
                image_digest: s.image_digest,
                by: Some(s.scanner),
                summary: s.summary,
                report_url: s.report_url,
            }
        }
        "Deployment Approval" => {
            let a = Approval::deserialize(d).map_err(bad)?;
            Reported {
                metadata: a.metadata,
                sender: a.sender,
                service: a.service,
                commit_sha: a.commit_sha,
                kind: SignalKind::Approval,
                passed: Some(a.decision == ApprovalDecision::Approved),
                findings: None,
                image_digest: None,
                by: Some(a.approver),
                summary: a.reason,
                report_url: None,
            }
        }
        _ => Reported::deserialize(d).map_err(bad)?,
    })
}

/// Who sent it, as far as the bus and the webhook prove.
fn sender(event: &Value, claimed: Option<&str>) -> Result<Sender, String> {
    let source = event["source"].as_str().unwrap_or_default();
    match (source, claimed) {
        ("eddo.webhook", Some(name)) => SenderName::parse(name)
            .map(Sender::Signed)
            .map_err(|why| format!("the webhook named sender {why}")),
        ("eddo.webhook", None) => Err("an eddo.webhook signal without its verified sender".into()),
        (s, _) if s.starts_with("aws.") || s.starts_with("eddo.") => Err(format!(
            "{s} does not report signals: another tool's signal comes signed through the webhook, or from a source the policy names"
        )),
        (s, Some(_)) => Err(format!(
            "an event from {s} names a signed sender, which only the webhook may, after verifying its key"
        )),
        (s, None) => Ok(Sender::Source(s.to_string())),
    }
}

/// Reads a reported signal, admitting it only from a sender its service's policy names.
pub fn read(policy: &Policy, event: &Value) -> Incoming {
    let d = match detail(event) {
        Ok(d) => d,
        Err(why) => return Incoming::Rejected(why),
    };
    let sender = match sender(event, d.sender.as_deref()) {
        Ok(s) => s,
        Err(why) => return Incoming::Rejected(why),
    };
    let Some(service) = policy.service(&d.service) else {
        return Incoming::Rejected(format!(
            "a signal for service {:?}, which is not in the policy",
            d.service
        ));
    };
    if d.kind == SignalKind::Build {
        return Incoming::Rejected(format!(
            "build is reported by {}'s build project only, so the image deployed is the one it built",
            service.name
        ));
    }
    if let Err(why) = admit(service, &d.kind, &sender) {
        return Incoming::Rejected(why);
    }
    let commit = match CommitSha::parse(&d.commit_sha) {
        Ok(c) => c,
        Err(why) => return Incoming::Rejected(format!("{}: {why}", d.kind)),
    };
    let digest = match d.image_digest.as_deref().map(ImageDigest::parse) {
        Some(Ok(x)) => Some(x),
        Some(Err(why)) => return Incoming::Rejected(format!("{}: image_digest {why}", d.kind)),
        None => None,
    };
    if d.kind == SignalKind::Approval && d.by.as_deref().is_none_or(|b| b.trim().is_empty()) {
        return Incoming::Rejected("an approval names its approver".into());
    }
    let by =
        d.by.as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .unwrap_or("a reporter")
            .to_string();
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
                    return Incoming::Rejected(format!("{}: unknown severity {k:?}", d.kind));
                };
                counts.insert(s, *n);
            }
            Reading::Counts {
                counts,
                scanner: Scanner::Reported { name: by.clone() },
            }
        }
        (None, Some(passed)) => {
            Reading::Verdict(outcome(&d.kind, passed, &by, d.summary.as_deref(), &report))
        }
        (None, None) => {
            return Incoming::Rejected(format!(
                "{}: a signal needs passed (true/false) or findings",
                d.kind
            ));
        }
    };
    let subject = if d.kind == SignalKind::ImageScan {
        let Some(digest) = digest.clone() else {
            return Incoming::Rejected(
                "image-scan: a reported scan names the image_digest it scanned".into(),
            );
        };
        Subject::Image {
            digest,
            claimed: Some(commit),
        }
    } else {
        Subject::Commit(commit)
    };
    Incoming::Signals(vec![Signal {
        kind: d.kind,
        service: service.name.clone(),
        subject,
        digest,
        reading,
        correlation_id: d.metadata.map(|m| m.correlation_id),
        evidence: evidence(event, &sender),
    }])
}

/// A reported pass or fail as the gate's verdict, in the words its decisions say.
pub(crate) fn outcome(
    kind: &SignalKind,
    passed: bool,
    by: &str,
    summary: Option<&str>,
    report: &str,
) -> Verdict {
    let summary = summary.map(|s| format!(": {s}")).unwrap_or_default();
    match (kind, passed) {
        (SignalKind::Approval, true) => Verdict::Passed {
            summary: format!("approved by {by}{summary}"),
        },
        (SignalKind::Approval, false) => Verdict::Failed {
            reasons: vec![format!("approval: rejected by {by}{summary}")],
        },
        (_, true) => Verdict::Passed {
            summary: format!("{by} passed{summary}{report}"),
        },
        (_, false) => Verdict::Failed {
            reasons: vec![format!("{kind}: {by} failed{summary}{report}")],
        },
    }
}
