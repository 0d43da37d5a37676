//! Whether a scan passes the service's policy, pure: the event's severity counts, the findings
//! list where the counts cannot decide (a limit on a severity the event does not count, or
//! exceptions to apply), and the exceptions that are still valid today.

use std::collections::BTreeMap;

use eddo::names::ImageDigest;
use eddo::policy::{Gate, Severity, SignalKind};
use eddo::time::Date;

use crate::decide::Verdict;
use crate::findings::OwnAccount;

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
    /// Not needed, or the scanner has none (a scan reported with counts only).
    NotRead,
    Read(Vec<Finding>),
}

/// Why the scanner's own account of a scan contradicts the event that reports it, if it does:
/// the scan is not complete there, or its counts of the severities the event counts differ.
pub fn contradiction(
    scan: ScanCounts<'_>,
    digest: &ImageDigest,
    own: &OwnAccount,
) -> Option<String> {
    match own.status.as_deref() {
        Some("COMPLETE") => {}
        Some(other) => return Some(format!("it says the scan of {digest} is {other}")),
        None => return Some(format!("it gives no status for the scan of {digest}")),
    }
    let nonzero = |c: &BTreeMap<Severity, u64>| -> BTreeMap<Severity, u64> {
        c.iter()
            .filter(|(s, n)| **n > 0 && scan.counted.contains(s))
            .map(|(s, n)| (*s, *n))
            .collect()
    };
    let (claimed, counted) = (nonzero(scan.counts), nonzero(&own.counts));
    (claimed != counted).then(|| {
        format!(
            "it counts {} for {digest}, the event {}",
            counts_line(&counted),
            counts_line(&claimed)
        )
    })
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
    let without_list = format!("{} gives no findings list", scan.scanner);
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

#[cfg(test)]
mod tests {
    use super::*;
    use eddo::policy::{Exception, Mode};

    fn gate(require: &[SignalKind], exceptions: Vec<Exception>) -> Gate {
        Gate {
            require: require.iter().cloned().collect(),
            senders: BTreeMap::new(),
            max_findings: [(Severity::Critical, 0), (Severity::High, 2)].into(),
            exceptions,
            deadline_minutes: 30,
            mode: Mode::Enforce,
            reruns: Default::default(),
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
    fn a_scan_is_confirmed_only_complete_and_with_the_events_counts() {
        let d = ImageDigest::parse(format!("sha256:{}", "a".repeat(64))).unwrap();
        let claimed = counts(&[(Severity::High, 1), (Severity::Low, 0)]);
        let ecr = |status: Option<&str>, c: &[(Severity, u64)]| OwnAccount {
            status: status.map(str::to_string),
            counts: counts(c),
            ..OwnAccount::default()
        };
        // A zero the event counts is a severity ECR found none of.
        let same = ecr(Some("COMPLETE"), &[(Severity::High, 1)]);
        assert_eq!(contradiction(scan(ECR, &claimed), &d, &same), None);
        assert_eq!(
            contradiction(
                scan(ECR, &claimed),
                &d,
                &ecr(
                    Some("COMPLETE"),
                    &[(Severity::Critical, 3), (Severity::High, 1)]
                )
            ),
            Some(format!(
                "it counts CRITICAL 3, HIGH 1 for {d}, the event HIGH 1"
            ))
        );
        assert_eq!(
            contradiction(scan(ECR, &claimed), &d, &ecr(Some("IN_PROGRESS"), &[])),
            Some(format!("it says the scan of {d} is IN_PROGRESS"))
        );
        // Inspector's event counts CRITICAL, HIGH and MEDIUM only: its LOW findings are no
        // contradiction.
        let listed = ecr(Some("COMPLETE"), &[(Severity::High, 1), (Severity::Low, 7)]);
        assert_eq!(contradiction(scan(INSPECTOR, &claimed), &d, &listed), None);
        assert!(contradiction(scan(ECR, &claimed), &d, &ecr(None, &[])).is_some());
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

        // No list (a scan reported with counts only): the exceptions are not applied, and the
        // reasons say why.
        assert_eq!(
            judge_scan(&g, scan(ECR, &c), &Listing::NotRead, TODAY),
            Verdict::Failed {
                reasons: vec![
                    "image-scan: CRITICAL 2 > 0 allowed".into(),
                    "image-scan: exceptions not applied: ECR basic scan gives no findings list"
                        .into(),
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
        let Verdict::Failed { reasons } =
            judge_scan(&g, scan(INSPECTOR, &c), &Listing::NotRead, TODAY)
        else {
            panic!("a limit nobody checked passed")
        };
        assert_eq!(
            reasons,
            vec![
                "image-scan: the ECR basic scan does not count LOW findings and ECR basic scan gives no findings list, so the limit on LOW cannot be checked"
            ]
        );
    }
}
