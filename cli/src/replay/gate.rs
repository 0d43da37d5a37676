//! The gate, replayed in memory: each signal read with the gate's own reader, judged with its own
//! scan rules, recorded on its candidate, and the candidate decided with its own decision.

use std::collections::BTreeMap;

use eddo::names::{CommitSha, ImageDigest, ServiceName};
use eddo::policy::{Mode, Policy, SignalKind};
use eddo::time::Date;
use eddo_scan_gate::candidate::{Candidate, Recorded, State};
use eddo_scan_gate::decide::{Decision, Listing, decide};
use eddo_scan_gate::signal::{Incoming, Signal, Subject, read_recorded};
use serde_json::Value;

use super::{Decided, Decisions};

/// What a candidate is called in the output.
fn about(service: &str, commit: &str) -> String {
    format!("gate {service} {}", &commit[..commit.len().min(7)])
}

/// The event's time, in epoch seconds.
pub(super) fn time_of(event: &Value) -> Option<u64> {
    event["time"].as_str().and_then(eddo::time::parse_rfc3339)
}

pub(super) struct Sim<'p> {
    policy: &'p Policy,
    candidates: BTreeMap<(ServiceName, CommitSha), Candidate>,
    /// The commit each build's image was built from.
    images: BTreeMap<(ServiceName, ImageDigest), CommitSha>,
    /// Scans of images no build has reported yet, kept as the gate parks them.
    parked: Vec<(Signal, u64)>,
    /// When the deadline sweep ran, in order. It runs on a schedule, not on the bus: each
    /// recorded timeout says it ran at that candidate's deadline (or later).
    sweeps: Vec<u64>,
    last: u64,
}

impl<'p> Sim<'p> {
    pub(super) fn new(policy: &'p Policy, events: &[&Value]) -> Sim<'p> {
        let mut sweeps: Vec<u64> = events
            .iter()
            .filter(|e| e["source"] == "eddo.gate" && e["detail-type"] == "Deployment Timed Out")
            .filter_map(|e| e["detail"]["deadline"].as_str())
            .filter_map(eddo::time::parse_rfc3339)
            .collect();
        sweeps.sort_unstable();
        Sim {
            policy,
            candidates: BTreeMap::new(),
            images: BTreeMap::new(),
            parked: Vec::new(),
            sweeps,
            last: 0,
        }
    }

    pub(super) fn feed(&mut self, event: &Value) {
        let at = time_of(event).unwrap_or(self.last).max(self.last);
        self.last = at;
        self.sweep_until(at);
        if let Incoming::Signals(signals) = read_recorded(self.policy, event) {
            for s in signals {
                self.signal(s, at);
            }
        }
    }

    fn signal(&mut self, s: Signal, at: u64) {
        let Some(service) = self.policy.service(s.service.as_str()) else {
            return;
        };
        let commit = match &s.subject {
            Subject::Commit(c) => c.clone(),
            Subject::Image { digest, claimed } => {
                match self.images.get(&(s.service.clone(), digest.clone())) {
                    Some(built) if claimed.as_ref().is_none_or(|c| c == built) => built.clone(),
                    Some(_) => return,
                    None => {
                        self.parked.push((s, at));
                        return;
                    }
                }
            }
        };
        let judged = |s: Signal| {
            let verdict = s.judged(&service.gate, &Listing::NotRead, Date::from_epoch(at));
            Recorded {
                kind: s.kind.clone(),
                verdict,
                digest: s.digest.clone().filter(|_| s.kind != SignalKind::Build),
                evidence: s.evidence,
                at,
            }
        };
        // A build's image: every scan kept for it joins the ledger with the build, before the
        // candidate is decided, as the gate records them.
        let mut entries = vec![];
        if let (SignalKind::Build, Some(digest)) = (&s.kind, &s.digest) {
            self.images
                .insert((s.service.clone(), digest.clone()), commit.clone());
            let (ready, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
                .into_iter()
                .partition(|(p, _)| {
                    p.service == s.service
                        && matches!(&p.subject, Subject::Image { digest: d, .. } if d == digest)
                });
            self.parked = kept;
            entries.extend(ready.into_iter().map(|(p, _)| judged(p)));
        }
        let built = (s.kind == SignalKind::Build).then(|| s.digest.clone());
        entries.insert(0, judged(s.clone()));
        let key = (s.service.clone(), commit.clone());
        let c = self.candidates.entry(key).or_insert_with(|| Candidate {
            service: s.service.clone(),
            commit: commit.clone(),
            digest: None,
            correlation_id: String::new(),
            state: State::Waiting,
            ledger: Vec::new(),
            seq: 0,
            first_at: at,
            deadline: at + u64::from(service.gate.deadline_minutes) * 60,
            build_id: None,
            owes: false,
            lease_until: 0,
            lease_id: String::new(),
            decision: String::new(),
            intent: None,
            decided_policy: None,
            decided_by: String::new(),
            reasons: Vec::new(),
            decided_at: 0,
            attempt: 0,
        });
        if c.state != State::Waiting {
            return;
        }
        if let Some(digest) = built {
            c.digest = c.digest.clone().or(digest);
        }
        c.seq += entries.len() as u64;
        c.ledger.extend(entries);
        match decide(&service.gate, c) {
            Decision::Deploy => {
                c.state = match service.gate.mode {
                    Mode::Enforce => State::Deploying,
                    Mode::Observe => State::Observed,
                };
            }
            Decision::Block { reasons } => {
                c.state = State::Blocked;
                c.reasons = reasons;
            }
            Decision::Wait { .. } => {}
        }
    }

    /// The sweeps due by `now` run: candidates past their deadline with signals missing time out.
    fn sweep_until(&mut self, now: u64) {
        while let Some(&at) = self.sweeps.first()
            && at <= now
        {
            self.sweeps.remove(0);
            for c in self.candidates.values_mut() {
                if c.state == State::Waiting && at >= c.deadline {
                    c.state = State::TimedOut;
                }
            }
        }
    }

    pub(super) fn finish(mut self) -> Decisions {
        // The sweeps after the last event run too.
        self.sweep_until(u64::MAX);
        let mut out = Decisions::new();
        for c in self.candidates.values() {
            let Some(service) = self.policy.service(c.service.as_str()) else {
                continue;
            };
            let missing = || {
                c.missing(&service.gate)
                    .iter()
                    .map(|k| format!("{k} missing"))
                    .collect()
            };
            let decided = match c.state {
                State::Deploying | State::Deployed | State::DeployFailed => Decided {
                    what: "deploy".into(),
                    why: vec![],
                },
                State::Approved => Decided {
                    what: "approve its GitHub environment".into(),
                    why: vec![],
                },
                State::Observed => Decided {
                    what: "would deploy (observe)".into(),
                    why: vec![],
                },
                State::Blocked => Decided {
                    what: "block".into(),
                    why: c.reasons.clone(),
                },
                State::TimedOut => Decided {
                    what: "time out".into(),
                    why: missing(),
                },
                // Still waiting when the events end: not a decision.
                State::Waiting => continue,
            };
            out.insert(about(c.service.as_str(), c.commit.as_str()), decided);
        }
        out
    }
}

/// The gate's decisions recorded in `events`.
pub(super) fn recorded(events: &[Value]) -> Decisions {
    let mut out = Decisions::new();
    for e in events.iter().filter(|e| e["source"] == "eddo.gate") {
        let d = &e["detail"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let decided = match e["detail-type"].as_str().unwrap_or_default() {
            "Deployment Started" => Decided {
                what: "deploy".into(),
                why: vec![],
            },
            "Deployment Would Start" => Decided {
                what: "would deploy (observe)".into(),
                why: vec![],
            },
            "Deployment Blocked" => Decided {
                what: "block".into(),
                why: strings(&d["reasons"]),
            },
            "Deployment Timed Out" => Decided {
                what: "time out".into(),
                why: strings(&d["missing"])
                    .into_iter()
                    .map(|k| format!("{k} missing"))
                    .collect(),
            },
            _ => continue,
        };
        let (Some(service), Some(commit)) = (d["service"].as_str(), d["commit_sha"].as_str())
        else {
            continue;
        };
        // The first decision is the one that counts; a later one is a redelivery's.
        out.entry(about(service, commit)).or_insert(decided);
    }
    out
}
