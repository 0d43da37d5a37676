//! The gate's decisions, pure: what a candidate's state calls for once a signal is recorded on
//! it: wait, deploy, block, start a deploy a crash left unstarted, withdraw it, or say a late
//! failure. Whether a scan passes the policy is [`crate::scan`].

use eddo::outbox::leased;
use eddo::policy::{Gate, Mode, SignalKind};
use serde::{Deserialize, Serialize};

use crate::candidate::{Candidate, Standing, State};
pub use crate::scan::{Finding, Listing, ScanCounts, judge_scan, needs_findings};

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
        && let Standing::Passed(builds) = c.standing(gate, &SignalKind::Build)
    {
        reasons.push(format!(
            "build: {} reported no image digest (export IMAGE_DIGEST), and a scan counts only for the image the build reported",
            builds[0].evidence.sender
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
    /// Decided to deploy, its lease lapsed (no invocation is still starting the build), and no
    /// build was recorded: start it now, or find the one that was started.
    Resume,
    /// The same, but a required signal has failed since: block instead of starting it.
    Withdraw { reasons: Vec<String> },
    /// Decided already: finish sending what the record owes (once its lease has lapsed), and say
    /// a failure that came after a decision to deploy.
    After {
        announce: bool,
        late: Option<Vec<String>>,
        /// An approval or a new build of a commit decided to deploy: ask the service's history
        /// whether a rollback replaced it since ([`again`]).
        ask_history: bool,
    },
}

/// Why a known-bad commit (a rollback replaced it, or a required signal failed after its
/// deployment started) does not deploy again.
pub fn known_bad(c: &Candidate) -> String {
    format!(
        "{} {} is known bad (a rollback replaced it, or a required signal failed after its deployment started): it deploys again only with an approval of this commit",
        c.service,
        c.commit.short()
    )
}

/// What a signal on a decided candidate whose commit a rollback replaced calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Again {
    /// Approved, with every required signal passed: deploy it again.
    Redeploy,
    /// Not deployed again, and why.
    Refuse(String),
}

/// A known-bad commit deploys again only on an approval of it, with every required signal
/// still passed; a new build of it is refused, saying so.
pub fn again(gate: &Gate, c: &Candidate, kind: &SignalKind) -> Option<Again> {
    match kind {
        SignalKind::Approval if c.approved(gate) => {
            let mut reasons = c.failures(gate);
            reasons.extend(c.missing(gate).iter().map(|k| format!("{k}: no signal")));
            Some(if reasons.is_empty() {
                Again::Redeploy
            } else {
                Again::Refuse(format!(
                    "{} {} was approved after it became known bad, but: {}",
                    c.service,
                    c.commit.short(),
                    reasons.join("; ")
                ))
            })
        }
        SignalKind::Build if !c.approved(gate) => Some(Again::Refuse(known_bad(c))),
        _ => None,
    }
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
        // Decided to deploy, no build recorded, and the lease lapsed: left by a crash or a failed
        // call, not by an invocation still at work. The next signal or retry starts it, with the
        // same request, or withdraws it.
        State::Deploying if c.build_id.is_none() && !leased(c.lease_until, now) => {
            let reasons = c.failures(gate);
            if reasons.is_empty() {
                Next::Resume
            } else {
                Next::Withdraw { reasons }
            }
        }
        state => {
            let failed = match c.standing(gate, kind) {
                Standing::Failed(reasons)
                    if gate.require.contains(kind) || *kind == SignalKind::Approval =>
                {
                    Some(reasons)
                }
                _ => None,
            };
            Next::After {
                // What the record owes is sent by whoever holds it, or by this invocation once
                // the lease has lapsed.
                announce: c.owes,
                late: failed.filter(|_| state.deploys()),
                ask_history: matches!(
                    state,
                    State::Deployed | State::DeployFailed | State::Blocked
                ) && (*kind == SignalKind::Build
                    || *kind == SignalKind::Approval && c.approved(gate)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidate::{Evidence, Recorded};
    use eddo::names::{CommitSha, ImageDigest, ServiceName};
    use eddo::policy::Severity;
    use std::collections::BTreeMap;

    fn gate(require: &[SignalKind]) -> Gate {
        Gate {
            require: require.iter().cloned().collect(),
            senders: BTreeMap::new(),
            max_findings: [(Severity::Critical, 0), (Severity::High, 2)].into(),
            exceptions: vec![],
            deadline_minutes: 30,
            mode: Mode::Enforce,
            reruns: Default::default(),
        }
    }

    fn candidate(state: State) -> Candidate {
        Candidate {
            service: ServiceName::parse("payments").unwrap(),
            commit: CommitSha::parse("6113728f27ae82c7b1a177c8d03f9e96e0adf246").unwrap(),
            digest: None,
            correlation_id: "c".into(),
            state,
            ledger: Vec::new(),
            seq: 0,
            first_at: 1000,
            deadline: 2800,
            build_id: None,
            owes: false,
            lease_until: 0,
            lease_id: String::new(),
            decision: String::new(),
            intent: None,
            decided_policy: None,
            decided_by: String::new(),
            reasons: vec![],
            decided_at: if state == State::Waiting { 0 } else { 1100 },
            attempt: 0,
        }
    }

    fn with(c: Candidate, kind: SignalKind, verdict: Verdict) -> Candidate {
        from(c, kind, verdict, "CodeBuild project payments-build", 1000)
    }

    /// `c` with one more ledger entry: `kind` from `sender`, its event at `time`.
    fn from(
        mut c: Candidate,
        kind: SignalKind,
        verdict: Verdict,
        sender: &str,
        time: u64,
    ) -> Candidate {
        c.ledger.push(Recorded {
            kind,
            verdict,
            evidence: Evidence {
                event_id: format!("e{}", c.ledger.len()),
                source: "aws.codebuild".into(),
                detail_type: "CodeBuild Build State Change".into(),
                sender: sender.into(),
                time,
                replay: None,
            },
            at: 1000 + c.ledger.len() as u64,
            digest: None,
        });
        c.seq += 1;
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
        let g = gate(&[Build, Sast]);
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
        let g3 = gate(&[Build, Sast, Named("contract".into())]);
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
        let g2 = gate(&[Build]);
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
        let g = gate(&[Build, ImageScan]);
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
        c.ledger[1].digest = Some(other.clone());
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
        let g = gate(&[Build, Sast]);
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
        deciding.lease_until = eddo::outbox::lease_from(1000);
        assert_eq!(
            next(&g, &deciding, &Sast, 1010),
            Next::After {
                announce: false,
                late: Some(vec!["sast: failed".into()]),
                ask_history: false,
            }
        );
        assert_eq!(
            next(
                &g,
                &deciding,
                &Build,
                1000 + eddo::outbox::DEFAULT_LEASE_SECS
            ),
            Next::Withdraw {
                reasons: vec!["sast: failed".into()]
            }
        );
        // Without a failure, the recovery starts the build.
        let mut stalled = passed.clone();
        stalled.state = State::Deploying;
        stalled.decided_at = 1000;
        stalled.lease_until = eddo::outbox::lease_from(1000);
        assert_eq!(
            next(&g, &stalled, &Build, 1010),
            Next::After {
                announce: false,
                late: None,
                ask_history: false,
            }
        );
        assert_eq!(
            next(
                &g,
                &stalled,
                &Build,
                1000 + eddo::outbox::DEFAULT_LEASE_SECS
            ),
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
            after.owes = false;
            assert_eq!(
                next(&g, &after, &Sast, 5000),
                Next::After {
                    announce: false,
                    late: Some(vec!["sast: failed".into()]),
                    ask_history: false,
                },
                "{state:?}"
            );
        }
        // Already blocked or timed out: recorded, nothing to say late.
        let mut blocked = with(passed, Sast, fail("sast: failed"));
        blocked.state = State::Blocked;
        blocked.owes = false;
        assert_eq!(
            next(&g, &blocked, &Sast, 5000),
            Next::After {
                announce: false,
                late: None,
                ask_history: false,
            }
        );
    }

    #[test]
    fn a_rolled_back_commit_deploys_again_only_on_an_approval_of_it() {
        use SignalKind::*;
        let g = gate(&[Build, Sast]);
        let mut deployed = with(
            with(candidate(State::Deployed), Build, pass()),
            Sast,
            pass(),
        );
        deployed.owes = false;
        // A rebuild of it: refused, saying why; decided candidates ask the history.
        assert!(matches!(
            next(&g, &deployed, &Build, 5000),
            Next::After {
                ask_history: true,
                ..
            }
        ));
        assert_eq!(
            again(&g, &deployed, &Build),
            Some(Again::Refuse(
                "payments 6113728 is known bad (a rollback replaced it, or a required signal failed after its deployment started): it deploys again only with an approval of this commit".into()
            ))
        );
        assert_eq!(again(&g, &deployed, &Sast), None);
        // An approval of it, every required signal passed: deployed again.
        let approved = with(deployed.clone(), Approval, pass());
        assert!(matches!(
            next(&g, &approved, &Approval, 5000),
            Next::After {
                ask_history: true,
                ..
            }
        ));
        assert_eq!(again(&g, &approved, &Approval), Some(Again::Redeploy));
        // Approved, but a required signal failed since: not deployed, and why.
        let failed = with(approved, Sast, fail("sast: x"));
        assert!(matches!(
            again(&g, &failed, &Approval),
            Some(Again::Refuse(why)) if why.ends_with("but: sast: x")
        ));
        // A rejection asks nothing.
        let rejected = with(deployed, Approval, fail("approval: rejected by bob"));
        assert!(matches!(
            next(&g, &rejected, &Approval, 5000),
            Next::After {
                ask_history: false,
                ..
            }
        ));
    }

    #[test]
    fn no_pass_erases_a_failure_but_a_senders_own_rerun_where_the_policy_says() {
        use SignalKind::*;
        let g = gate(&[Build, ImageScan]);
        let mut built = with(candidate(State::Waiting), Build, pass());
        built.digest = Some(ImageDigest::parse(format!("sha256:{}", "a".repeat(64))).unwrap());
        let (ecr, trivy) = ("ECR basic scan of payments", "source com.example.trivy");
        let critical = || fail("image-scan: 3 CRITICAL findings");
        // One kind from two senders, in both orders: the failure blocks either way.
        for (first, second) in [(critical(), pass()), (pass(), critical())] {
            let (f, s) = (first.passed(), second.passed());
            let c = from(
                from(built.clone(), ImageScan, first, ecr, 10),
                ImageScan,
                second,
                trivy,
                20,
            );
            assert_eq!(
                decide(&g, &c),
                Decision::Block {
                    reasons: vec!["image-scan: 3 CRITICAL findings".into()]
                },
                "{f} then {s}"
            );
        }
        // One sender's failure then its own re-scan passing: blocks unless the policy lets
        // reruns count for image-scan; then its latest result (by the event's time) stands.
        let rerun = from(
            from(built.clone(), ImageScan, critical(), ecr, 10),
            ImageScan,
            pass(),
            ecr,
            20,
        );
        assert!(matches!(decide(&g, &rerun), Decision::Block { .. }));
        let mut reruns = g.clone();
        reruns.reruns.insert(ImageScan);
        assert_eq!(decide(&reruns, &rerun), Decision::Deploy);
        // Recorded in the other order (a late delivery of the older failure): the pass is still
        // the latest, by the event's time.
        let late = from(
            from(built.clone(), ImageScan, pass(), ecr, 20),
            ImageScan,
            critical(),
            ecr,
            10,
        );
        assert_eq!(decide(&reruns, &late), Decision::Deploy);
        // At the same time, the failure wins; and another sender's pass never replaces it.
        let tie = from(
            from(built.clone(), ImageScan, pass(), ecr, 10),
            ImageScan,
            critical(),
            ecr,
            10,
        );
        assert!(matches!(decide(&reruns, &tie), Decision::Block { .. }));
        let other = from(
            from(built, ImageScan, critical(), ecr, 10),
            ImageScan,
            pass(),
            trivy,
            20,
        );
        assert!(matches!(decide(&reruns, &other), Decision::Block { .. }));
    }
}
