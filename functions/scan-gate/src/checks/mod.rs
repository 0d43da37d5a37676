//! The gate where developers look: a check run `eddo gate` on each candidate's commit, in the
//! GitHub repository its service's policy names (`checks.github`), by eddo's GitHub App.
//!
//! The check run is an effect like any other, and never holds up a decision: the decision is
//! written and said first; then the record beside the candidate ([`crate::store::checks`]) is
//! told how far the candidate has come, and whoever holds its lease brings GitHub up to the
//! candidate as it then is, read again. GitHub down or rate-limited leaves the record owed, in the
//! sweep's index from when GitHub said to try again; the next tick finishes it. Every update
//! sends the whole check run, so a lost or repeated one leaves GitHub right.

mod render;

pub use render::{NAME, check_run};

use eddo::Error;
use eddo::github::{App, Failure};
use eddo::names::CommitSha;
use eddo::outbox::Lease;
use eddo::policy::Service;
use tracing::{info, warn};

use crate::Gate;
use crate::store::checks::{Owed, check_key};

/// How often one invocation brings a check run up again when the candidate moves meanwhile.
const ROUNDS: usize = 3;

/// How long an update GitHub refused as invalid, or one the App may not make, waits before it
/// is tried again (a permission granted, a policy fixed).
const REFUSED_SECS: u64 = 3600;

/// How long an update waits after GitHub was down, when GitHub did not say.
const DOWN_SECS: u64 = 60;

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// The App mode is off, or the service shows no check runs.
    Off,
    /// Another invocation has it, or nothing is owed.
    NotMine,
    /// GitHub shows the candidate as it is.
    Shown { id: u64 },
    /// GitHub could not be brought up to date: the sweep tries again from `not_before`.
    Later { not_before: u64, why: String },
}

impl Gate {
    /// Brings the check run of `service`'s `commit` up to the candidate, after a change of it
    /// was written: never fails the invocation, which has done its work.
    pub(crate) async fn show(&self, service: &Service, commit: &CommitSha) {
        let (Some(_), Some(repo)) = (&self.github, &service.checks.github) else {
            return;
        };
        let now = (self.clock)();
        let result = async {
            self.store
                .want_check(&service.name, commit, repo.as_str(), now)
                .await?;
            self.sync_check(service, commit, now).await
        }
        .await;
        if let Err(e) = result {
            warn!(service = %service.name, commit = %commit.short(), error = %e, "the check run is left to the sweep");
        }
    }

    /// Closes the gap between what GitHub shows and the candidate, if the record owes an update
    /// and no other invocation is at it.
    pub(crate) async fn sync_check(
        &self,
        service: &Service,
        commit: &CommitSha,
        now: u64,
    ) -> Result<Synced, Error> {
        let (Some(app), Some(repo)) = (&self.github, &service.checks.github) else {
            return Ok(Synced::Off);
        };
        let Some((lease, owed)) = self
            .store
            .take_check(&check_key(&service.name, commit), now)
            .await?
        else {
            return Ok(Synced::NotMine);
        };
        let result = self
            .bring_up(app, repo.as_str(), service, commit, &lease, owed)
            .await;
        match result {
            Ok(synced) => Ok(synced),
            Err(Halt::Store(e)) => self.store.outbox().guard(&lease, Err(e)).await,
            Err(Halt::GitHub(f)) => {
                let wait =
                    f.retry_after
                        .unwrap_or(if f.retryable { DOWN_SECS } else { REFUSED_SECS });
                let not_before = now + wait.max(1);
                let why = f.to_string();
                if f.retryable {
                    info!(service = %service.name, commit = %commit.short(), error = %why, not_before, "GitHub did not take the check run; tried again");
                } else {
                    warn!(service = %service.name, commit = %commit.short(), error = %why, "GitHub refused the check run; tried again in an hour");
                }
                self.store
                    .later_check(&lease, &service.name, commit, not_before, &why)
                    .await?;
                Ok(Synced::Later { not_before, why })
            }
        }
    }

    async fn bring_up(
        &self,
        app: &App,
        repo: &str,
        service: &Service,
        commit: &CommitSha,
        lease: &Lease,
        mut owed: Owed,
    ) -> Result<Synced, Halt> {
        for _ in 0..ROUNDS {
            let Some(c) = self.store.get(&service.name, commit).await? else {
                return Err(Halt::Store(Error::InvalidEvent(format!(
                    "a check run is owed for {} {}, which has no candidate",
                    service.name,
                    commit.short()
                ))));
            };
            let run = check_run(&c, &service.gate);
            let hash = hash_of(&run);
            let id = match owed.id {
                // GitHub shows just this already: nothing to send.
                Some(id) if hash == owed.shown_hash => id,
                Some(id) => {
                    app.update_check_run(repo, id, &run).await?;
                    id
                }
                None => self.create(app, repo, lease, &owed, &run).await?,
            };
            match self.store.shown_check(lease, &owed, id, &hash).await? {
                None => return Ok(Synced::Shown { id }),
                Some(now) => owed = now,
            }
        }
        // Still moving: the rest is the sweep's (the record stays owed and in its index).
        self.store.outbox().let_go(lease).await?;
        Ok(Synced::NotMine)
    }

    /// The check run made once: one whose creation may have been made (its answer lost) is
    /// found by its external id first; the intent is recorded before the creation.
    async fn create(
        &self,
        app: &App,
        repo: &str,
        lease: &Lease,
        owed: &Owed,
        run: &eddo::github::CheckRun,
    ) -> Result<u64, Halt> {
        if owed.creating
            && let Some(id) = app
                .find_check_run(repo, &run.head_sha, &run.name, &run.external_id)
                .await?
        {
            app.update_check_run(repo, id, run).await?;
            return Ok(id);
        }
        self.store.creating_check(lease).await?;
        Ok(app.create_check_run(repo, run).await?)
    }

    /// Serves a check run entry of the sweep's index; one no longer shown leaves the index.
    pub(crate) async fn serve_check(
        &self,
        policy: &eddo::policy::Policy,
        pk: &str,
        sk: &str,
        now: u64,
    ) -> Result<Synced, Error> {
        let (service, commit) = crate::store::Store::listed_check(pk, sk)?;
        let synced = match policy.service(service.as_str()) {
            Some(service) => self.sync_check(service, &commit, now).await?,
            None => Synced::Off,
        };
        if synced == Synced::Off {
            self.store
                .forget_check(check_key(&service, &commit))
                .await?;
        }
        Ok(synced)
    }
}

/// What an update sends, as a short hash: the same check run hashes the same.
pub fn hash_of(run: &eddo::github::CheckRun) -> String {
    use sha2::Digest as _;
    let json = serde_json::to_vec(run).expect("a check run is JSON");
    hex::encode(&sha2::Sha256::digest(&json)[..16])
}

/// Why a sync stopped.
enum Halt {
    Store(Error),
    GitHub(Failure),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Halt {
        Halt::Store(e)
    }
}

impl From<Failure> for Halt {
    fn from(f: Failure) -> Halt {
        Halt::GitHub(f)
    }
}
