//! The gate where developers look: a check run `eddo gate` on each candidate's commit in the
//! GitHub repository its service's policy names (`checks.github`), by eddo's GitHub App; a commit
//! status `eddo/gate` in the GitLab project it names (`checks.gitlab`), by eddo's GitLab token.
//!
//! Each is an effect like any other, and never holds up a decision: the decision is written and
//! said first; then the record beside the candidate ([`crate::store::checks`]) counts the change,
//! and whoever holds its lease brings the forge up to the candidate as it then is, read again.
//! The forge down or rate-limited leaves the record owed, in the sweep's index from when the forge
//! said to try again; the next tick finishes it. Every update sends the whole state, so a lost or
//! repeated one leaves the forge right.

mod render;

pub use render::{NAME, Replacement, STATUS_NAME, check_run, commit_status};

use eddo::Error;
use eddo::forge::Failure;
use eddo::github::App;
use eddo::gitlab::GitLab;
use eddo::names::CommitSha;
use eddo::outbox::Lease;
use eddo::policy::Service;
use tracing::{info, warn};

use crate::Gate;
use crate::store::checks::{Owed, Surface, check_key};

/// How often one invocation brings a forge up again when the candidate moves meanwhile.
const ROUNDS: usize = 3;

/// How long an update the forge refused as invalid, or one eddo may not make, waits before it
/// is tried again (a permission granted, a policy fixed).
const REFUSED_SECS: u64 = 3600;

/// How long an update waits after the forge was down, when it did not say.
const DOWN_SECS: u64 = 60;

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// The forge's mode is off, or the service is not shown there.
    Off,
    /// Another invocation has it, or nothing is owed.
    NotMine,
    /// The forge shows the candidate as it is (`id`: the check run's; 0 for a status), and
    /// whether it still waits for evidence.
    Shown { id: u64, waiting: bool },
    /// The forge could not be brought up to date: the sweep tries again from `not_before`.
    Later { not_before: u64, why: String },
}

/// Where one surface of a service is, and the client that writes there.
enum Target<'a> {
    GitHub(&'a App, &'a str),
    GitLab(&'a GitLab, &'a str),
}

impl Gate {
    /// The surfaces `service` is shown on, as this deployment can write them.
    fn target<'a>(&'a self, surface: Surface, service: &'a Service) -> Option<Target<'a>> {
        match surface {
            Surface::GitHub => Some(Target::GitHub(
                self.github.as_ref()?,
                service.checks.github.as_ref()?.as_str(),
            )),
            Surface::GitLab => Some(Target::GitLab(
                self.gitlab.as_ref()?,
                service.checks.gitlab.as_ref()?.as_str(),
            )),
        }
    }

    /// Whether any surface is written by this deployment.
    pub(crate) fn shows_anywhere(&self) -> bool {
        self.github.is_some() || self.gitlab.is_some()
    }

    /// Brings what shows `service`'s `commit` up to the candidate, after a change of it was
    /// written: never fails the invocation, which has done its work.
    pub(crate) async fn show(&self, service: &Service, commit: &CommitSha) {
        // Whether the candidate still waits, as a sync just read it: its protection rules are
        // answered only once it does not (unknown: looked for).
        let mut waiting = None;
        for surface in [Surface::GitHub, Surface::GitLab] {
            let Some(target) = self.target(surface, service) else {
                continue;
            };
            let repo = match target {
                Target::GitHub(_, repo) | Target::GitLab(_, repo) => repo,
            };
            let now = (self.clock)();
            let result = async {
                self.store
                    .want_check(surface, &service.name, commit, repo, now)
                    .await?;
                self.sync_check(surface, service, commit, now).await
            }
            .await;
            match result {
                Ok(Synced::Shown { waiting: w, .. }) => waiting = Some(w),
                Ok(_) => {}
                Err(e) => {
                    warn!(service = %service.name, commit = %commit.short(), ?surface, error = %e, "left to the sweep");
                }
            }
        }
        if waiting != Some(true) {
            self.answer_rules(service, commit).await;
        }
    }

    /// Closes the gap between what `surface` shows and the candidate, if the record owes an
    /// update and no other invocation is at it.
    pub(crate) async fn sync_check(
        &self,
        surface: Surface,
        service: &Service,
        commit: &CommitSha,
        now: u64,
    ) -> Result<Synced, Error> {
        let Some(target) = self.target(surface, service) else {
            return Ok(Synced::Off);
        };
        let Some((lease, owed)) = self
            .store
            .take_check(&check_key(surface, &service.name, commit), now)
            .await?
        else {
            return Ok(Synced::NotMine);
        };
        match self.bring_up(&target, service, commit, &lease, owed).await {
            Ok(synced) => Ok(synced),
            Err(Halt::Store(e)) => self.store.outbox().guard(&lease, Err(e)).await,
            Err(Halt::Forge(f)) => {
                let not_before = retry_at(&f, now);
                let why = f.to_string();
                if f.retryable {
                    info!(service = %service.name, commit = %commit.short(), error = %why, not_before, "the forge did not take the update; tried again");
                } else {
                    warn!(service = %service.name, commit = %commit.short(), error = %why, "the forge refused the update; tried again in an hour");
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
        target: &Target<'_>,
        service: &Service,
        commit: &CommitSha,
        lease: &Lease,
        mut owed: Owed,
    ) -> Result<Synced, Halt> {
        for _ in 0..ROUNDS {
            let Some(c) = self.store.get(&service.name, commit).await? else {
                return Err(Halt::Store(Error::InvalidEvent(format!(
                    "an update is owed for {} {}, which has no candidate",
                    service.name,
                    commit.short()
                ))));
            };
            let (id, hash) = match target {
                Target::GitHub(app, repo) => {
                    let run = check_run(&c, &service.gate, owed.replaced.as_ref());
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
                    (id, hash)
                }
                Target::GitLab(gitlab, project) => {
                    let status = commit_status(&c, &service.gate, owed.replaced.as_ref());
                    let hash = hash_of(&status);
                    if hash != owed.shown_hash {
                        gitlab
                            .set_status(project, c.commit.as_str(), &status)
                            .await?;
                    }
                    (0, hash)
                }
            };
            match self.store.shown_check(lease, &owed, id, &hash).await? {
                None => {
                    return Ok(Synced::Shown {
                        id,
                        waiting: c.state == crate::candidate::State::Waiting,
                    });
                }
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

    /// A rollback replaced `r.replaced`: what showed that release shows its rollback too.
    pub(crate) async fn rolled_back(
        &self,
        policy: &eddo::policy::Policy,
        r: &crate::signal::RolledBack,
    ) -> Result<crate::Report, Error> {
        let Some(service) = policy.service(r.service.as_str()) else {
            return Ok(crate::Report::quiet("its service left the policy"));
        };
        let mut noted = 0;
        for surface in [Surface::GitHub, Surface::GitLab] {
            if self.target(surface, service).is_some()
                && self
                    .store
                    .note_replacement(surface, &service.name, &r.replaced, &r.replacement)
                    .await?
            {
                noted += 1;
            }
        }
        if noted == 0 {
            return Ok(crate::Report::quiet(format!(
                "rollback of {} {}: nothing shows that release",
                r.service,
                r.replaced.short()
            )));
        }
        self.show(service, &r.replaced).await;
        Ok(crate::Report::quiet(format!(
            "rollback of {} {} shown where the release was",
            r.service,
            r.replaced.short()
        )))
    }

    /// Serves an entry of the sweep's list of updates owed; one no longer shown leaves the list.
    pub(crate) async fn serve_check(
        &self,
        policy: &eddo::policy::Policy,
        pk: &str,
        sk: &str,
        now: u64,
    ) -> Result<Synced, Error> {
        let (surface, service, commit) = crate::store::Store::listed_check(pk, sk)?;
        let synced = match policy.service(service.as_str()) {
            Some(service) => self.sync_check(surface, service, &commit, now).await?,
            None => Synced::Off,
        };
        if synced == Synced::Off {
            self.store
                .forget_check(check_key(surface, &service, &commit))
                .await?;
        }
        Ok(synced)
    }
}

/// When an effect the forge did not take is tried again: when the forge said (`retry-after`,
/// the rate limit's reset), else a minute after it was down, an hour after it refused.
pub(crate) fn retry_at(f: &Failure, now: u64) -> u64 {
    let wait = f
        .retry_after
        .unwrap_or(if f.retryable { DOWN_SECS } else { REFUSED_SECS });
    now + wait.max(1)
}

/// What an update sends, as a short hash: the same state hashes the same.
pub fn hash_of(sent: &impl serde::Serialize) -> String {
    use sha2::Digest as _;
    let json = serde_json::to_vec(sent).expect("an update is JSON");
    hex::encode(&sha2::Sha256::digest(&json)[..16])
}

/// Why a sync stopped.
enum Halt {
    Store(Error),
    Forge(Failure),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Halt {
        Halt::Store(e)
    }
}

impl From<Failure> for Halt {
    fn from(f: Failure) -> Halt {
        Halt::Forge(f)
    }
}
