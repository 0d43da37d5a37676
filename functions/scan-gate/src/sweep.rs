//! The minute's sweep: waiting candidates past their deadline are decided (timed out, or
//! deployed if they turn out complete), and decided candidates whose work a dead invocation left
//! (a deploy to start, events to say) are finished.
//!
//! It reads the sparse index's partitions (each list sharded by commit, keys only) page by page,
//! oldest first, and serves each candidate on its own: one that cannot be read or served is
//! reported, counted and skipped, and the rest are served; what a tick's time does not reach is
//! left, still indexed, to the next tick.

use std::time::Duration;

use eddo::Error;
use eddo::policy::{Policy, SignalKind};
use eddo::time::rfc3339;
use futures_util::StreamExt as _;
use tracing::warn;

use crate::candidate::{Candidate, Evidence, State};
use crate::store::{self, OPEN, OWED};
use crate::{Gate, Report};

/// How many index entries one page reads.
pub const SWEEP_PAGE: i32 = 100;

/// How many candidates of a page are served at once.
pub const SWEEP_CONCURRENCY: usize = 8;

/// How long one tick starts serving candidates before it leaves the rest to the next (the
/// function times out at 30 s); within an invocation, never past its time left less
/// [`SWEEP_RESERVE`].
pub const SWEEP_BUDGET: Duration = Duration::from_secs(20);

/// The time a tick keeps for the candidates it is serving when it stops starting new ones.
pub const SWEEP_RESERVE: Duration = Duration::from_secs(8);

/// How many failures a tick's report names (all are counted and logged).
const NAMED_FAILURES: usize = 3;

/// Which of the index's lists a partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    /// Waiting candidates, by deadline.
    Open,
    /// Decided candidates whose work is not done.
    Owed,
    /// Check runs and commit statuses the forges do not yet show as their candidates are, and
    /// protection rules not yet answered.
    Checks,
}

/// What one tick did.
#[derive(Debug, Default)]
struct Tally {
    pages: usize,
    served: usize,
    published: Vec<String>,
    failed: Vec<String>,
    /// The tick's time ran out with entries left.
    left: bool,
}

impl Tally {
    fn fail(&mut self, what: &str, e: &Error) {
        warn!(entry = what, error = %e, "the sweep could not serve an entry; it serves the rest");
        self.failed.push(format!("{what}: {e}"));
    }

    fn report(self) -> Report {
        let mut outcome = format!(
            "swept {} candidate(s) in {} page(s)",
            self.served, self.pages
        );
        if !self.failed.is_empty() {
            let named: Vec<&str> = self
                .failed
                .iter()
                .take(NAMED_FAILURES)
                .map(String::as_str)
                .collect();
            outcome.push_str(&format!(
                "; {} failed, skipped: {}",
                self.failed.len(),
                named.join("; ")
            ));
        }
        if self.left {
            outcome.push_str("; the rest is left to the next tick");
        }
        Report {
            outcome,
            published: self.published,
        }
    }
}

impl Gate {
    /// Sweeps the index. "Now" is the later of the clock and the schedule's time, so a late
    /// retry of a tick sweeps no less. It fails only if it could do nothing at all.
    pub(crate) async fn sweep(&self, policy: &Policy, at: Option<u64>) -> Result<Report, Error> {
        let now = (self.clock)().max(at.unwrap_or(0));
        let budget = eddo::outbox::time_left().map_or(SWEEP_BUDGET, |left| {
            SWEEP_BUDGET.min(left.saturating_sub(SWEEP_RESERVE))
        });
        let until = tokio::time::Instant::now() + budget;
        let mut tally = Tally::default();
        for (list, name) in [(List::Open, OPEN), (List::Owed, OWED)] {
            for partition in store::partitions(name) {
                self.sweep_partition(policy, list, &partition, now, until, &mut tally)
                    .await;
            }
        }
        if self.shows_anywhere() {
            for partition in store::checks::check_partitions() {
                self.sweep_partition(policy, List::Checks, &partition, now, until, &mut tally)
                    .await;
            }
        }
        if tally.pages == 0 && !tally.failed.is_empty() {
            return Err(Error::InProgress(format!(
                "the sweep could read none of its index: {}",
                tally.failed[0]
            )));
        }
        Ok(tally.report())
    }

    async fn sweep_partition(
        &self,
        policy: &Policy,
        list: List,
        partition: &str,
        now: u64,
        until: tokio::time::Instant,
        tally: &mut Tally,
    ) {
        let mut from = None;
        loop {
            if tokio::time::Instant::now() >= until {
                tally.left = true;
                return;
            }
            let page = match self
                .store
                .listed(partition, now, from.take(), SWEEP_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => return tally.fail(partition, &e),
            };
            tally.pages += 1;
            let served: Vec<(String, Result<Option<Report>, Error>)> =
                futures_util::stream::iter(page.keys)
                    .map(|(pk, sk)| async move {
                        // Out of time: left, still indexed, to the next tick.
                        if tokio::time::Instant::now() >= until {
                            return (String::new(), Ok(None));
                        }
                        let r = self.serve(policy, list, &pk, &sk, now).await;
                        (format!("{pk}/{sk}"), r)
                    })
                    .buffer_unordered(SWEEP_CONCURRENCY)
                    .collect()
                    .await;
            for (entry, result) in served {
                match result {
                    Ok(Some(r)) => {
                        tally.served += 1;
                        tally.published.extend(r.published);
                    }
                    Ok(None) => {}
                    Err(e) => tally.fail(&entry, &e),
                }
            }
            if tokio::time::Instant::now() >= until {
                tally.left = true;
                return;
            }
            match page.next {
                Some(next) => from = Some(next),
                None => return,
            }
        }
    }

    /// Serves one index entry: `None` when there is nothing to do for it.
    async fn serve(
        &self,
        policy: &Policy,
        list: List,
        pk: &str,
        sk: &str,
        now: u64,
    ) -> Result<Option<Report>, Error> {
        if list == List::Checks && pk.starts_with(store::rules::PREFIX) {
            let answered = self.serve_rule(policy, pk, sk, now).await?;
            return Ok(Some(Report::quiet(format!(
                "protection rule: {answered:?}"
            ))));
        }
        if list == List::Checks {
            let synced = self.serve_check(policy, pk, sk, now).await?;
            return Ok(Some(Report::quiet(format!("check run: {synced:?}"))));
        }
        let Some(c) = self.store.listed_candidate(pk, sk).await? else {
            return Ok(None);
        };
        let report = match list {
            List::Open if c.state == State::Waiting => self.overdue(policy, c.clone(), now).await?,
            List::Owed => self.owed(policy, c.clone(), now).await?,
            List::Open | List::Checks => return Ok(None),
        };
        if let Some(service) = policy.service(c.service.as_str()) {
            self.show(service, &c.commit).await;
        }
        Ok(Some(report))
    }

    /// A waiting candidate past its deadline: timed out with what is missing, or decided as
    /// usual if it turns out complete (a race with the last signal).
    async fn overdue(&self, policy: &Policy, c: Candidate, now: u64) -> Result<Report, Error> {
        let Some(service) = policy.service(c.service.as_str()) else {
            // Its service left the policy: nothing decides it any more. Closed, so it no longer
            // fills the sweep's pages.
            let why = format!("{} is no longer in the policy", c.service);
            if self.store.close(&c, &why, now).await? {
                warn!(service = %c.service, commit = %c.commit, "closed a candidate whose service left the policy");
            }
            return Ok(Report::quiet(format!(
                "closed {} {}: {why}",
                c.service,
                c.commit.short()
            )));
        };
        let cause = Evidence {
            event_id: format!("deadline:{}", c.deadline),
            source: "eddo.gate".into(),
            detail_type: "Deadline".into(),
            sender: String::new(),
            time: c.deadline,
            replay: None,
        };
        let missing: Vec<String> = c
            .missing(&service.gate)
            .iter()
            .map(|k| format!("{k}: no signal before the deadline {}", rfc3339(c.deadline)))
            .collect();
        if missing.is_empty() {
            return self.act(service, c, &SignalKind::Build, &cause, now).await;
        }
        self.conclude(service, &c, State::TimedOut, missing, &cause, now)
            .await
    }

    /// A decided candidate whose work a dead invocation left: its deploy started (or found), or
    /// what it owes said, or, with nothing left, taken out of the index.
    async fn owed(&self, policy: &Policy, c: Candidate, now: u64) -> Result<Report, Error> {
        let unstarted = c.state == State::Deploying && c.build_id.is_none();
        match policy.service(c.service.as_str()) {
            Some(service) if unstarted => self.resume_deploy(service, &c, now).await,
            // Never dropped silently: reported every tick, and started when the service returns.
            None if unstarted => Err(Error::InvalidEvent(format!(
                "{} {} was decided to deploy, but its service is no longer in the policy: its deploy waits for the service to return",
                c.service,
                c.commit.short()
            ))),
            _ if c.owes => self.finish_owed(&c, now).await,
            _ => {
                self.store.settled(&c).await?;
                Ok(Report::quiet("settled"))
            }
        }
    }
}
