//! What the gate measures ([`eddo::metrics`]): each decision once, where its write succeeded
//! (its outcome, the time from the candidate's first evidence to it, and when each required
//! signal first arrived), and each deploy build the gate started that succeeded.

use eddo::metrics::{Metric, Point, emit};
use eddo::policy::Service;

use crate::candidate::{Candidate, State};

/// The word a decision's outcome is measured by.
pub fn outcome(state: State) -> Option<&'static str> {
    Some(match state {
        State::Deploying => "deploy",
        State::Approved => "approve",
        State::Blocked => "block",
        State::TimedOut => "time_out",
        State::Observed => "observe",
        State::Waiting | State::Deployed | State::DeployFailed => return None,
    })
}

/// The points of `c`'s decision as `to` at `now`.
pub fn decision(service: &Service, c: &Candidate, to: State, now: u64) -> Vec<Point> {
    let Some(outcome) = outcome(to) else {
        return vec![];
    };
    let name = service.name.as_str();
    let tag = |p: Point| {
        p.with("commit", c.commit.as_str())
            .with("correlation_id", &c.correlation_id)
    };
    let mut points = vec![
        tag(Point::new(Metric::Decisions, 1.0, &[name, outcome])),
        tag(Point::new(
            Metric::TimeToDecision,
            now.saturating_sub(c.first_at) as f64,
            &[name],
        )),
    ];
    for kind in &service.gate.require {
        if let Some(first) = c
            .ledger
            .iter()
            .filter(|r| &r.kind == kind)
            .map(|r| r.at)
            .min()
        {
            points.push(tag(Point::new(
                Metric::SignalWait,
                first.saturating_sub(c.first_at) as f64,
                &[name, kind.as_str()],
            )));
        }
    }
    points
}

impl crate::Gate {
    /// Measures `c`'s decision as `to`, written at `now`.
    pub(crate) fn measure_decision(&self, service: &Service, c: &Candidate, to: State, now: u64) {
        emit(&decision(service, c, to, now), now);
    }

    /// Measures a deploy build of `c` that succeeded, recorded at `now`.
    pub(crate) fn measure_deployed(&self, c: &Candidate, now: u64) {
        let point = Point::new(Metric::Deployments, 1.0, &[c.service.as_str()])
            .with("commit", c.commit.as_str())
            .with("correlation_id", &c.correlation_id);
        emit(&[point], now);
    }
}
