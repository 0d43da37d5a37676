//! The gate's decisions, pure: does a scan pass the policy (with its exceptions), and has a
//! candidate passed every required signal, failed one, or is it still waiting.

use std::collections::BTreeMap;

use eddo::policy::{Gate, Severity, SignalKind};
use eddo::time::Date;
use serde::{Deserialize, Serialize};

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

/// What a scan's severity counts mean under the gate's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    Decided(Verdict),
    /// Over a threshold, and the policy has exceptions: fetch the findings list and ask again.
    NeedFindings,
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

/// Judges a scan's severity counts (absent severities are zero). The findings list is needed, and
/// used, only when a count is over its threshold and the policy has exceptions to apply.
pub fn evaluate_scan(
    gate: &Gate,
    scanner: &str,
    counts: &BTreeMap<Severity, u64>,
    findings: Option<&[Finding]>,
    today: Date,
) -> ScanVerdict {
    let exceeded = over(gate, counts);
    if exceeded.is_empty() {
        return ScanVerdict::Decided(Verdict::Passed {
            summary: format!("{scanner}: {} within policy", counts_line(counts)),
        });
    }
    let fail = |exceeded: &[(Severity, u64, u64)], note: &str| Verdict::Failed {
        reasons: exceeded
            .iter()
            .map(|(s, n, max)| format!("image-scan: {} {n} > {max} allowed{note}", s.as_str()))
            .collect(),
    };
    if gate.exceptions.is_empty() {
        return ScanVerdict::Decided(fail(&exceeded, ""));
    }
    let Some(findings) = findings else {
        return ScanVerdict::NeedFindings;
    };
    // Each finding an exception covers comes off its severity's count; the counts stay the
    // truth, so a list cut short can only leave more findings, never fewer.
    let mut excepted: BTreeMap<Severity, u64> = BTreeMap::new();
    let mut applied = Vec::new();
    let mut expired = Vec::new();
    for f in findings {
        let exception = gate
            .exceptions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(&f.id));
        match exception {
            Some(e) if e.expires >= today => {
                *excepted.entry(f.severity).or_default() += 1;
                applied.push(e.id.clone());
            }
            Some(e) => expired.push(format!("{} exception expired on {}", e.id, e.expires)),
            None => {}
        }
    }
    let remaining: BTreeMap<Severity, u64> = counts
        .iter()
        .map(|(s, n)| (*s, n.saturating_sub(excepted.get(s).copied().unwrap_or(0))))
        .collect();
    applied.sort();
    applied.dedup();
    expired.sort();
    expired.dedup();
    let note = if applied.is_empty() {
        String::new()
    } else {
        format!(" (after exceptions {})", applied.join(", "))
    };
    let still = over(gate, &remaining);
    if still.is_empty() {
        return ScanVerdict::Decided(Verdict::Passed {
            summary: format!(
                "{scanner}: {} within policy after exceptions {}",
                counts_line(counts),
                applied.join(", ")
            ),
        });
    }
    let Verdict::Failed { mut reasons } = fail(&still, &note) else {
        unreachable!("fail builds a failure")
    };
    reasons.extend(expired.into_iter().map(|e| format!("image-scan: {e}")));
    ScanVerdict::Decided(Verdict::Failed { reasons })
}

/// Where a candidate stands.
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
pub fn decide(gate: &Gate, signals: &BTreeMap<SignalKind, Verdict>) -> Decision {
    let mut reasons = Vec::new();
    for (kind, verdict) in signals {
        if let Verdict::Failed { reasons: r } = verdict
            && (gate.require.contains(kind) || *kind == SignalKind::Approval)
        {
            reasons.extend(r.iter().cloned());
        }
    }
    if !reasons.is_empty() {
        return Decision::Block { reasons };
    }
    let missing: Vec<SignalKind> = gate
        .require
        .iter()
        .filter(|k| !signals.contains_key(k))
        .copied()
        .collect();
    if missing.is_empty() {
        Decision::Deploy
    } else {
        Decision::Wait { missing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddo::policy::{Exception, Mode};

    fn gate(require: &[SignalKind], exceptions: Vec<Exception>) -> Gate {
        Gate {
            require: require.iter().copied().collect(),
            sast_checks: vec![],
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

    #[test]
    fn counts_within_thresholds_pass_and_absent_severities_are_zero() {
        let g = gate(&[SignalKind::ImageScan], vec![]);
        let v = evaluate_scan(
            &g,
            "ECR",
            &counts(&[(Severity::High, 2), (Severity::Medium, 9)]),
            None,
            TODAY,
        );
        assert_eq!(
            v,
            ScanVerdict::Decided(Verdict::Passed {
                summary: "ECR: HIGH 2, MEDIUM 9 within policy".into()
            })
        );
        let v = evaluate_scan(&g, "ECR", &counts(&[]), None, TODAY);
        assert!(
            matches!(v, ScanVerdict::Decided(Verdict::Passed { summary }) if summary.contains("no findings"))
        );
    }

    #[test]
    fn each_threshold_crossed_is_a_reason() {
        let g = gate(&[SignalKind::ImageScan], vec![]);
        let v = evaluate_scan(
            &g,
            "ECR",
            &counts(&[(Severity::Critical, 10), (Severity::High, 3)]),
            None,
            TODAY,
        );
        assert_eq!(
            v,
            ScanVerdict::Decided(Verdict::Failed {
                reasons: vec![
                    "image-scan: CRITICAL 10 > 0 allowed".into(),
                    "image-scan: HIGH 3 > 2 allowed".into()
                ]
            })
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
        assert!(matches!(
            evaluate_scan(&g, "ECR", &counts(&[(Severity::High, 1)]), None, TODAY),
            ScanVerdict::Decided(Verdict::Passed { .. })
        ));
        let c = counts(&[(Severity::Critical, 2)]);
        assert_eq!(
            evaluate_scan(&g, "ECR", &c, None, TODAY),
            ScanVerdict::NeedFindings
        );

        // Both criticals excepted, one by an exception still valid today (its last day counts).
        let both = [
            Finding {
                id: "CVE-2024-1234".into(),
                severity: Severity::Critical,
            },
            Finding {
                id: "cve-2024-1234".into(),
                severity: Severity::Critical,
            },
        ];
        let last_day = Date::parse("2026-12-31").unwrap();
        assert!(matches!(
            evaluate_scan(&g, "ECR", &c, Some(&both), last_day),
            ScanVerdict::Decided(Verdict::Passed { summary }) if summary.contains("after exceptions CVE-2024-1234")
        ));

        // One excepted, one expired: blocked, saying both.
        let mixed = [
            Finding {
                id: "CVE-2024-1234".into(),
                severity: Severity::Critical,
            },
            Finding {
                id: "CVE-2023-0001".into(),
                severity: Severity::Critical,
            },
        ];
        assert_eq!(
            evaluate_scan(&g, "ECR", &c, Some(&mixed), TODAY),
            ScanVerdict::Decided(Verdict::Failed {
                reasons: vec![
                    "image-scan: CRITICAL 1 > 0 allowed (after exceptions CVE-2024-1234)".into(),
                    "image-scan: CVE-2023-0001 exception expired on 2026-01-31".into(),
                ]
            })
        );
    }

    #[test]
    fn a_candidate_waits_deploys_or_blocks() {
        use SignalKind::*;
        let g = gate(&[Build, ImageScan, Sast], vec![]);
        let pass = || Verdict::Passed {
            summary: "ok".into(),
        };
        let fail = |r: &str| Verdict::Failed {
            reasons: vec![r.into()],
        };
        let mut s = BTreeMap::new();
        assert_eq!(
            decide(&g, &s),
            Decision::Wait {
                missing: vec![Build, ImageScan, Sast]
            }
        );
        s.insert(Sast, pass());
        s.insert(Build, pass());
        assert_eq!(
            decide(&g, &s),
            Decision::Wait {
                missing: vec![ImageScan]
            }
        );
        s.insert(ImageScan, pass());
        assert_eq!(decide(&g, &s), Decision::Deploy);
        // A failure blocks at once, listing every failed rule, even with signals missing.
        let mut f = BTreeMap::new();
        f.insert(Sast, fail("sast: CodeQL check failed"));
        f.insert(ImageScan, fail("image-scan: CRITICAL 2 > 0 allowed"));
        assert_eq!(
            decide(&g, &f),
            Decision::Block {
                reasons: vec![
                    "image-scan: CRITICAL 2 > 0 allowed".into(),
                    "sast: CodeQL check failed".into()
                ]
            }
        );
        // Not required: recorded, not blocking; an explicit rejection always blocks.
        let mut n = s.clone();
        let g2 = gate(&[Build], vec![]);
        n.insert(Sast, fail("sast: x"));
        assert_eq!(decide(&g2, &n), Decision::Deploy);
        n.insert(Approval, fail("approval: rejected by alice"));
        assert!(matches!(decide(&g2, &n), Decision::Block { .. }));
    }
}
