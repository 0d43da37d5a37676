//! The gate's decisions, pure: does a scan pass the policy (with its exceptions), and what a
//! candidate's state calls for once a signal is recorded on it: wait, deploy, block, start a
//! deploy a crash left unstarted, withdraw it, or say a late failure.

use std::collections::BTreeMap;

use eddo::policy::{Gate, Mode, Severity, SignalKind};
use eddo::time::Date;
use serde::{Deserialize, Serialize};

use crate::candidate::{Candidate, State};

/// A candidate decided this long ago whose deploy build was never recorded was left by a crash
/// or a failed call, not by an invocation still at work (the function times out at 30 s): the
/// next signal or retry starts it, with the same idempotency token.
pub const RECOVER_AFTER_SECS: u64 = 45;

/// What one signal said about a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Passed {
        /// One line on why it passed (for the evidence).
        summary: String,
    },
    Failed {
        /// Every failed rule, in words a person reads.
        reasons: Vec<String>,
    },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Passed { .. })
    }
}

/// One vulnerability finding of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `CVE-2024-1234` or the scanner's id.
    pub id: String,
    pub severity: Severity,
}

/// What a scan event counted.
#[derive(Debug, Clone, Copy)]
pub struct ScanCounts<'a> {
    /// The signal it is (`image-scan`, or a reported `sast` with findings).
    pub kind: &'a SignalKind,
    pub scanner: &'a str,
    /// The severities the event counts (Inspector's: CRITICAL, HIGH and MEDIUM only).
    pub counted: &'a [Severity],
    /// Its counts; a counted severity absent is zero.
    pub counts: &'a BTreeMap<Severity, u64>,
}

/// The scan's findings list, as far as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Not needed, or the scanner has none.
    NotRead,
    Read(Vec<Finding>),
    /// The image or its scan is gone, or the call was refused: why, in a line.
    Unreadable(String),
}

fn over(gate: &Gate, counts: &BTreeMap<Severity, u64>) -> Vec<(Severity, u64, u64)> {
    gate.max_findings
        .iter()
        .filter_map(|(sev, max)| {
            let n = counts.get(sev).copied().unwrap_or(0);
            (n > *max).then_some((*sev, n, *max))
        })
        .collect()
}

fn counts_line(counts: &BTreeMap<Severity, u64>) -> String {
    let parts: Vec<String> = Severity::ALL
        .iter()
        .filter_map(|s| {
            counts
                .get(s)
                .filter(|n| **n > 0)
                .map(|n| format!("{} {n}", s.as_str()))
        })
        .collect();
    if parts.is_empty() {
        "no findings".into()
    } else {
        parts.join(", ")
    }
}

/// Whether a scan can be judged only with its findings list: a limit on a severity the event does
/// not count, or a count over its limit with exceptions to apply.
pub fn needs_findings(gate: &Gate, scan: ScanCounts<'_>) -> bool {
    gate.max_findings.keys().any(|s| !scan.counted.contains(s))
        || (!gate.exceptions.is_empty() && !over(gate, scan.counts).is_empty())
}

/// Judges a scan: the event's counts for the severities it counts, the findings list for those
/// it does not; each finding an exception covers comes off its severity's count. Without the
/// list, a limit the event cannot check fails, and exceptions are not applied; the reasons say so.
pub fn judge_scan(gate: &Gate, scan: ScanCounts<'_>, listing: &Listing, today: Date) -> Verdict {
    let listed = match listing {
        Listing::Read(f) => Some(f.as_slice()),
        _ => None,
    };
    let without_list = match listing {
        Listing::Unreadable(why) => format!("the findings list could not be read ({why})"),
        _ => format!("{} gives no findings list", scan.scanner),
    };
    let mut counts: BTreeMap<Severity, u64> = scan
        .counted
        .iter()
        .map(|s| (*s, scan.counts.get(s).copied().unwrap_or(0)))
        .collect();
    let mut unknown = Vec::new();
    for sev in gate
        .max_findings
        .keys()
        .filter(|s| !scan.counted.contains(s))
    {
        match listed {
            Some(f) => {
                counts.insert(*sev, f.iter().filter(|x| x.severity == *sev).count() as u64);
            }
            None => unknown.push(*sev),
        }
    }
    // The counts stay the truth, so a list cut short can only leave more findings, never fewer.
    let mut remaining = counts.clone();
    let mut applied = Vec::new();
    let mut expired = Vec::new();
    for f in listed.unwrap_or_default() {
        match gate
            .exceptions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(&f.id))
        {
            Some(e) if e.expires >= today => {
                if let Some(n) = remaining.get_mut(&f.severity) {
                    *n = n.saturating_sub(1);
                }
                applied.push(e.id.clone());
            }
            Some(e) => expired.push(format!("{} exception expired on {}", e.id, e.expires)),
            None => {}
        }
    }
    applied.sort();
    applied.dedup();
    expired.sort();
    expired.dedup();
    let still = over(gate, &remaining);
    if still.is_empty() && unknown.is_empty() {
        let after = if applied.is_empty() {
            String::new()
        } else {
            format!(" after exceptions {}", applied.join(", "))
        };
        return Verdict::Passed {
            summary: format!(
                "{}: {} within policy{after}",
                scan.scanner,
                counts_line(&counts)
            ),
        };
    }
    let note = if applied.is_empty() {
        String::new()
    } else {
        format!(" (after exceptions {})", applied.join(", "))
    };
    let mut reasons: Vec<String> = still
        .iter()
        .map(|(s, n, max)| format!("{}: {} {n} > {max} allowed{note}", scan.kind, s.as_str()))
        .collect();
    if !still.is_empty() {
        reasons.extend(expired.into_iter().map(|e| format!("{}: {e}", scan.kind)));
        if listed.is_none() && !gate.exceptions.is_empty() {
            reasons.push(format!(
                "{}: exceptions not applied: {without_list}",
                scan.kind
            ));
        }
    }
    for sev in unknown {
        reasons.push(format!(
            "{}: the {} does not count {} findings and {without_list}, so the limit on {} cannot be checked",
            scan.kind,
            scan.scanner,
            sev.as_str(),
            sev.as_str()
        ));
    }
    Verdict::Failed { reasons }
}

/// Where a waiting candidate stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Required signals not yet seen.
    Wait { missing: Vec<SignalKind> },
    /// Every required signal passed.
    Deploy,
    /// A signal failed: every failed rule.
    Block { reasons: Vec<String> },
}

/// Decides from the signals recorded so far. A failure blocks at once, without waiting for the
/// rest; a failing signal the policy does not require is recorded but does not block, except an
/// explicit rejection, which always does.
pub fn decide(gate: &Gate, c: &Candidate) -> Decision {
    let mut reasons = c.failures(gate);
    if gate.require.contains(&SignalKind::ImageScan)
        && c.digest.is_none()
        && let Some(build) = c.signals.get(&SignalKind::Build)
        && build.verdict.passed()
    {
        reasons.push(format!(
            "build: {} reported no image digest (export IMAGE_DIGEST), and a scan counts only for the image the build reported",
            build.evidence.sender
        ));
    }
    if !reasons.is_empty() {
        return Decision::Block { reasons };
    }
    let missing = c.missing(gate);
    if missing.is_empty() {
        Decision::Deploy
    } else {
        Decision::Wait { missing }
    }
}

/// What a candidate's state calls for, now that a signal of `kind` is recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Waiting for these.
    Wait { missing: Vec<SignalKind> },
    /// Decide it: deploy.
    Deploy,
    /// Decide it: `to` (blocked, or observed in observe mode), with the reasons.
    Conclude { to: State, reasons: Vec<String> },
    /// Decided to deploy long enough ago that no invocation is still starting the build, and it
    /// was never recorded: start it now.
    Resume,
    /// The same, but a required signal has failed since: block instead of starting it.
    Withdraw { reasons: Vec<String> },
    /// Decided already: publish the decision's event if it is still owed, and say a failure
    /// that came after a decision to deploy.
    After {
        announce: bool,
        late: Option<Vec<String>>,
    },
}

/// The next step for candidate `c` at `now`, after a signal of `kind` was recorded on it.
pub fn next(gate: &Gate, c: &Candidate, kind: &SignalKind, now: u64) -> Next {
    match c.state {
        State::Waiting => match decide(gate, c) {
            Decision::Wait { missing } => Next::Wait { missing },
            Decision::Block { reasons } => Next::Conclude {
                to: State::Blocked,
                reasons,
            },
            Decision::Deploy if gate.mode == Mode::Observe => Next::Conclude {
                to: State::Observed,
                reasons: vec![],
            },
            Decision::Deploy => Next::Deploy,
        },
        State::Deploying if c.build_id.is_none() && now >= c.decided_at + RECOVER_AFTER_SECS => {
            let reasons = c.failures(gate);
            if reasons.is_empty() {
                Next::Resume
            } else {
                Next::Withdraw { reasons }
            }
        }
        state => {
            let failed = c
                .signals
                .get(kind)
                .filter(|_| gate.require.contains(kind) || *kind == SignalKind::Approval)
                .and_then(|r| match &r.verdict {
                    Verdict::Failed { reasons } => Some(reasons.clone()),
                    Verdict::Passed { .. } => None,
                });
            Next::After {
                // A deploy not started yet is announced with its build, by whoever starts it.
                announce: !(c.announced || state == State::Deploying && c.build_id.is_none()),
                late: failed.filter(|_| state.deploys()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidate::{Evidence, Recorded};
    use eddo::names::{CommitSha, ImageDigest, ServiceName};
    use eddo::policy::Exception;

    fn gate(require: &[SignalKind], exceptions: Vec<Exception>) -> Gate {
        Gate {
            require: require.iter().cloned().collect(),
            senders: BTreeMap::new(),
            max_findings: [(Severity::Critical, 0), (Severity::High, 2)].into(),
            exceptions,
            deadline_minutes: 30,
            mode: Mode::Enforce,
        }
    }

    fn exception(id: &str, expires: &str) -> Exception {
        Exception {
            id: id.into(),
            reason: "not reachable".into(),
            expires: Date::parse(expires).unwrap(),
        }
    }

    fn counts(pairs: &[(Severity, u64)]) -> BTreeMap<Severity, u64> {
        pairs.iter().copied().collect()
    }

    const TODAY: Date = Date {
        year: 2026,
        month: 11,
        day: 23,
    };

    const ECR: &[Severity] = &Severity::ALL;
    const INSPECTOR: &[Severity] = &[Severity::Critical, Severity::High, Severity::Medium];

    fn scan<'a>(counted: &'a [Severity], c: &'a BTreeMap<Severity, u64>) -> ScanCounts<'a> {
        ScanCounts {
            kind: &SignalKind::ImageScan,
            scanner: "ECR basic scan",
            counted,
            counts: c,
        }
    }

    fn finding(id: &str, severity: Severity) -> Finding {
        Finding {
            id: id.into(),
            severity,
        }
    }

    #[test]
    fn counts_within_thresholds_pass_and_absent_severities_are_zero() {
        let g = gate(&[SignalKind::ImageScan], vec![]);
        let c = counts(&[(Severity::High, 2), (Severity::Medium, 9)]);
        assert!(!needs_findings(&g, scan(ECR, &c)));
        assert_eq!(
            judge_scan(&g, scan(ECR, &c), &Listing::NotRead, TODAY),
            Verdict::Passed {
                summary: "ECR basic scan: HIGH 2, MEDIUM 9 within policy".into()
            }
        );
        let none = counts(&[]);
        assert!(
            matches!(judge_scan(&g, scan(ECR, &none), &Listing::NotRead, TODAY), Verdict::Passed { summary } if summary.contains("no findings"))
        );
    }

    #[test]
    fn each_threshold_crossed_is_a_reason() {
        let g = gate(&[SignalKind::ImageScan], vec![]);
        let c = counts(&[(Severity::Critical, 10), (Severity::High, 3)]);
        // No exceptions: the counts decide, no list is read.
        assert!(!needs_findings(&g, scan(ECR, &c)));
        assert_eq!(
            judge_scan(&g, scan(ECR, &c), &Listing::NotRead, TODAY),
            Verdict::Failed {
                reasons: vec![
                    "image-scan: CRITICAL 10 > 0 allowed".into(),
                    "image-scan: HIGH 3 > 2 allowed".into()
                ]
            }
        );
    }

    #[test]
    fn exceptions_need_the_findings_and_only_then() {
        let g = gate(
            &[SignalKind::ImageScan],
            vec![
                exception("CVE-2024-1234", "2026-12-31"),
                exception("CVE-2023-0001", "2026-01-31"),
            ],
        );
        // Within thresholds: no findings fetched.
        assert!(!needs_findings(
            &g,
            scan(ECR, &counts(&[(Severity::High, 1)]))
        ));
        let c = counts(&[(Severity::Critical, 2)]);
        assert!(needs_findings(&g, scan(ECR, &c)));

        // Both criticals excepted, one by an exception still valid today (its last day counts).
        let both = Listing::Read(vec![
            finding("CVE-2024-1234", Severity::Critical),
            finding("cve-2024-1234", Severity::Critical),
        ]);
        let last_day = Date::parse("2026-12-31").unwrap();
        assert!(matches!(
            judge_scan(&g, scan(ECR, &c), &both, last_day),
            Verdict::Passed { summary } if summary.contains("after exceptions CVE-2024-1234")
        ));

        // One excepted, one expired: blocked, saying both.
        let mixed = Listing::Read(vec![
            finding("CVE-2024-1234", Severity::Critical),
            finding("CVE-2023-0001", Severity::Critical),
        ]);
        assert_eq!(
            judge_scan(&g, scan(ECR, &c), &mixed, TODAY),
            Verdict::Failed {
                reasons: vec![
                    "image-scan: CRITICAL 1 > 0 allowed (after exceptions CVE-2024-1234)".into(),
                    "image-scan: CVE-2023-0001 exception expired on 2026-01-31".into(),
                ]
            }
        );

        // No list: the exceptions are not applied, and the reasons say why.
        let gone = Listing::Unreadable("ImageNotFoundException".into());
        assert_eq!(
            judge_scan(&g, scan(ECR, &c), &gone, TODAY),
            Verdict::Failed {
                reasons: vec![
                    "image-scan: CRITICAL 2 > 0 allowed".into(),
                    "image-scan: exceptions not applied: the findings list could not be read (ImageNotFoundException)".into(),
                ]
            }
        );
    }

    #[test]
    fn a_limit_on_a_severity_the_event_does_not_count_is_judged_from_the_list() {
        // Inspector's event counts CRITICAL, HIGH and MEDIUM: a limit on LOW needs the list.
        let mut g = gate(&[SignalKind::ImageScan], vec![]);
        g.max_findings.insert(Severity::Low, 0);
        let c = counts(&[(Severity::Medium, 1)]);
        assert!(needs_findings(&g, scan(INSPECTOR, &c)));
        assert!(!needs_findings(&g, scan(ECR, &c)));
        let low = Listing::Read(vec![
            finding("CVE-2025-0002", Severity::Low),
            finding("CVE-2025-0003", Severity::Medium),
        ]);
        assert_eq!(
            judge_scan(&g, scan(INSPECTOR, &c), &low, TODAY),
            Verdict::Failed {
                reasons: vec!["image-scan: LOW 1 > 0 allowed".into()]
            }
        );
        let clean = Listing::Read(vec![finding("CVE-2025-0003", Severity::Medium)]);
        assert!(judge_scan(&g, scan(INSPECTOR, &c), &clean, TODAY).passed());
        // Without the list it is never passed by default.
        let Verdict::Failed { reasons } = judge_scan(
            &g,
            scan(INSPECTOR, &c),
            &Listing::Unreadable("AccessDenied".into()),
            TODAY,
        ) else {
            panic!("a limit nobody checked passed")
        };
        assert_eq!(
            reasons,
            vec![
                "image-scan: the ECR basic scan does not count LOW findings and the findings list could not be read (AccessDenied), so the limit on LOW cannot be checked"
            ]
        );
    }

    fn candidate(state: State) -> Candidate {
        Candidate {
            service: ServiceName::parse("payments").unwrap(),
            commit: CommitSha::parse("6113728f27ae82c7b1a177c8d03f9e96e0adf246").unwrap(),
            digest: None,
            correlation_id: "c".into(),
            state,
            signals: BTreeMap::new(),
            first_at: 1000,
            deadline: 2800,
            build_id: None,
            announced: false,
            reasons: vec![],
            decided_at: if state == State::Waiting { 0 } else { 1100 },
        }
    }

    fn with(mut c: Candidate, kind: SignalKind, verdict: Verdict) -> Candidate {
        c.signals.insert(
            kind,
            Recorded {
                verdict,
                evidence: Evidence {
                    event_id: "e".into(),
                    source: "aws.codebuild".into(),
                    detail_type: "CodeBuild Build State Change".into(),
                    sender: "CodeBuild project payments-build".into(),
                },
                at: 1000,
                digest: None,
            },
        );
        c
    }

    fn pass() -> Verdict {
        Verdict::Passed {
            summary: "ok".into(),
        }
    }

    fn fail(r: &str) -> Verdict {
        Verdict::Failed {
            reasons: vec![r.into()],
        }
    }

    #[test]
    fn a_candidate_waits_deploys_or_blocks() {
        use SignalKind::*;
        let g = gate(&[Build, Sast], vec![]);
        let c = candidate(State::Waiting);
        assert_eq!(
            decide(&g, &c),
            Decision::Wait {
                missing: vec![Build, Sast]
            }
        );
        let c = with(c, Sast, pass());
        assert_eq!(
            decide(&g, &c),
            Decision::Wait {
                missing: vec![Build]
            }
        );
        let c = with(c, Build, pass());
        assert_eq!(decide(&g, &c), Decision::Deploy);
        assert_eq!(next(&g, &c, &Build, 1000), Next::Deploy);
        // A failure blocks at once, listing every failed rule, even with signals missing.
        let f = with(
            with(
                candidate(State::Waiting),
                Sast,
                fail("sast: CodeQL check failed"),
            ),
            Named("contract".into()),
            fail("contract: breaking change"),
        );
        let g3 = gate(&[Build, Sast, Named("contract".into())], vec![]);
        assert_eq!(
            decide(&g3, &f),
            Decision::Block {
                reasons: vec![
                    "sast: CodeQL check failed".into(),
                    "contract: breaking change".into(),
                ]
            }
        );
        // Not required: recorded, not blocking; an explicit rejection always blocks.
        let g2 = gate(&[Build], vec![]);
        let n = with(c.clone(), Sast, fail("sast: x"));
        assert_eq!(decide(&g2, &n), Decision::Deploy);
        let n = with(n, Approval, fail("approval: rejected by alice"));
        assert!(matches!(decide(&g2, &n), Decision::Block { .. }));
        // Observe mode concludes instead of deploying.
        let mut observe = g.clone();
        observe.mode = Mode::Observe;
        assert_eq!(
            next(&observe, &c, &Build, 1000),
            Next::Conclude {
                to: State::Observed,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn a_scan_counts_only_for_the_image_the_build_reported() {
        use SignalKind::*;
        let g = gate(&[Build, ImageScan], vec![]);
        // A build that reported no digest: no scan can ever count, so it blocks.
        let c = with(candidate(State::Waiting), Build, pass());
        assert!(matches!(
            decide(&g, &c),
            Decision::Block { reasons } if reasons[0].contains("reported no image digest")
        ));
        // A reported signal about another image than the build's blocks, saying both.
        let built = ImageDigest::parse(format!("sha256:{}", "a".repeat(64))).unwrap();
        let other = ImageDigest::parse(format!("sha256:{}", "b".repeat(64))).unwrap();
        let mut c = with(
            with(candidate(State::Waiting), Build, pass()),
            ImageScan,
            pass(),
        );
        c.digest = Some(built.clone());
        assert_eq!(decide(&g, &c), Decision::Deploy);
        c.signals.get_mut(&ImageScan).unwrap().digest = Some(other.clone());
        assert_eq!(
            decide(&g, &c),
            Decision::Block {
                reasons: vec![format!(
                    "image-scan: reported for image {other}, but the build reported {built}"
                )]
            }
        );
    }

    #[test]
    fn a_failing_signal_is_never_lost_whenever_it_comes() {
        use SignalKind::*;
        let g = gate(&[Build, Sast], vec![]);
        let passed = with(with(candidate(State::Waiting), Build, pass()), Sast, pass());
        // Before the decision: blocks.
        let before = with(passed.clone(), Sast, fail("sast: failed"));
        assert!(matches!(
            next(&g, &before, &Sast, 1000),
            Next::Conclude {
                to: State::Blocked,
                ..
            }
        ));

        // Between the decision and the recorded build: said late at once (the build may be
        // starting), and a recovery later blocks instead of starting it.
        let mut deciding = with(passed.clone(), Sast, fail("sast: failed"));
        deciding.state = State::Deploying;
        deciding.decided_at = 1000;
        assert_eq!(
            next(&g, &deciding, &Sast, 1010),
            Next::After {
                announce: false,
                late: Some(vec!["sast: failed".into()])
            }
        );
        assert_eq!(
            next(&g, &deciding, &Build, 1000 + RECOVER_AFTER_SECS),
            Next::Withdraw {
                reasons: vec!["sast: failed".into()]
            }
        );
        // Without a failure, the recovery starts the build.
        let mut stalled = passed.clone();
        stalled.state = State::Deploying;
        stalled.decided_at = 1000;
        assert_eq!(
            next(&g, &stalled, &Build, 1010),
            Next::After {
                announce: false,
                late: None
            }
        );
        assert_eq!(
            next(&g, &stalled, &Build, 1000 + RECOVER_AFTER_SECS),
            Next::Resume
        );

        // After the build started, or the deployment finished: late, and the decision is owed once.
        for state in [
            State::Deploying,
            State::Deployed,
            State::Observed,
            State::DeployFailed,
        ] {
            let mut after = with(passed.clone(), Sast, fail("sast: failed"));
            after.state = state;
            after.build_id = Some("b:1".into());
            after.announced = true;
            assert_eq!(
                next(&g, &after, &Sast, 5000),
                Next::After {
                    announce: false,
                    late: Some(vec!["sast: failed".into()])
                },
                "{state:?}"
            );
        }
        // Already blocked or timed out: recorded, nothing to say late.
        let mut blocked = with(passed, Sast, fail("sast: failed"));
        blocked.state = State::Blocked;
        blocked.announced = true;
        assert_eq!(
            next(&g, &blocked, &Sast, 5000),
            Next::After {
                announce: false,
                late: None
            }
        );
    }
}
