//! What alarm-rollback measures ([`eddo::metrics`]): each rollback once, where its build was
//! recorded (a rollback, by alarm, and the change it replaced as a failed change), and the time
//! to restore when the alarm that rolled a service back recovers.

use eddo::metrics::{Metric, Point};

/// The points of a rollback of `service`, started by `alarm`, replacing `replaced` (a commit).
pub fn rolled_back(service: &str, alarm: &str, replaced: Option<&str>) -> Vec<Point> {
    let tag = |p: Point| match replaced {
        Some(commit) => p.with("commit", commit),
        None => p,
    };
    vec![
        tag(Point::new(Metric::Rollbacks, 1.0, &[service, alarm])),
        tag(Point::new(
            Metric::ChangeFailures,
            1.0,
            &[service, "rollback"],
        )),
    ]
}

/// The point of the alarm that rolled `service` back at `fired` recovering at `at`.
pub fn restored(service: &str, fired: u64, at: u64, replaced: Option<&str>) -> Point {
    let p = Point::new(
        Metric::TimeToRestore,
        at.saturating_sub(fired) as f64,
        &[service],
    );
    match replaced {
        Some(commit) => p.with("commit", commit),
        None => p,
    }
}
