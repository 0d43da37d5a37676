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

/// The points of `c`'s deploy build succeeding at `now`, its commit made at `committed_at` (as
/// its push said, if one did).
pub fn deployed(c: &Candidate, committed_at: Option<u64>, now: u64) -> Vec<Point> {
    let name = c.service.as_str();
    let tag = |p: Point| {
        p.with("commit", c.commit.as_str())
            .with("correlation_id", &c.correlation_id)
    };
    let mut points = vec![tag(Point::new(Metric::Deployments, 1.0, &[name]))];
    if let Some(committed) = committed_at {
        points.push(tag(Point::new(
            Metric::LeadTime,
            now.saturating_sub(committed) as f64,
            &[name],
        )));
    }
    points
}

/// The points of a required signal of `c` failing at `now`, after its deployment started: a
/// change failure if the change went out (deploying, deployed or approved) and the failure came
/// within the service's bake window of the decision; none without a rollback section (no window).
pub fn late_failure(service: &Service, c: &Candidate, now: u64) -> Vec<Point> {
    let went_out = matches!(
        c.state,
        State::Deploying | State::Deployed | State::Approved
    );
    let within = service
        .rollback
        .as_ref()
        .is_some_and(|r| now <= c.decided_at + u64::from(r.bake_minutes) * 60);
    if !(went_out && within) {
        return vec![];
    }
    vec![
        Point::new(
            Metric::ChangeFailures,
            1.0,
            &[c.service.as_str(), "late_signal"],
        )
        .with("commit", c.commit.as_str())
        .with("correlation_id", &c.correlation_id),
    ]
}

impl crate::Gate {
    /// Measures `c`'s decision as `to`, written at `now`.
    pub(crate) fn measure_decision(&self, service: &Service, c: &Candidate, to: State, now: u64) {
        emit(&decision(service, c, to, now), now);
    }

    /// Measures a deploy build of `c` that succeeded, recorded at `now`: a deployment, and its
    /// lead time when a push said when the commit was made. A metric never fails the work: a
    /// time that cannot be read is logged, and the deployment measured without it.
    pub(crate) async fn measure_deployed(&self, c: &Candidate, now: u64) {
        let committed_at = match self.store.committed_at(&c.service, &c.commit).await {
            Ok(at) => at,
            Err(e) => {
                tracing::warn!(service = %c.service, commit = %c.commit.short(), error = %e, "lead time not measured");
                None
            }
        };
        emit(&deployed(c, committed_at, now), now);
    }

    /// Measures a required signal of `c` that failed after its deployment started, at `now`: a
    /// change failure when it came within the service's bake window of the decision.
    pub(crate) fn measure_late_failure(&self, service: &Service, c: &Candidate, now: u64) {
        emit(&late_failure(service, c, now), now);
    }
}
