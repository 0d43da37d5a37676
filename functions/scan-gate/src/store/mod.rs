//! The gate's state in the eddo table. Every write that guards a side effect is conditional.
//!
//! - candidate `pk = candidate#<service>`, `sk = <commit>`: the deadline, the state (`waiting`
//!   until decided), how many entries its ledger holds (`seq`), the deploy build. While
//!   waiting it is in the sparse `open-deadline` index (`open_pk = open`, `open_sk = deadline`),
//!   which the deadline sweep reads; deciding moves it to `open_pk = owed` until the decision's
//!   work is done and said (the sweep finishes it if its invocation died), then out of the
//!   index; a later signal cannot reopen it.
//! - its evidence ledger, beside it: `pk = candidate#<service>`, `sk = <commit>#evidence#<kind>#<event
//!   id>`, one item per admitted signal, put once (conditionally on its key: a redelivered or
//!   replayed event changes nothing), never updated, kept as long as the candidate. One query
//!   (`begins_with(sk, <commit>)`) reads the candidate and its ledger.
//! - image `pk = digest#<service>`, `sk = <digest>`: the commit a build produced it from; beside
//!   it, `sk = <digest>#evidence#<kind>#<event id>`, every scan of it that arrived before the
//!   build (parked, each sender's, in full), which joins the candidate's ledger when the build
//!   reports the digest.
//! - the service's history and rollback record ([`eddo::history`]): the gate moves the history
//!   when a deploy finishes, and holds deployments while alarm-rollback's rollback runs.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use eddo::Error;
use eddo::codebuild::BuildRequest;
use eddo::dynamo::{Item, attr, get, key, n, num, s, transacted, written};
use eddo::history::{self, History, Version};
use eddo::names::{CommitSha, ImageDigest, ServiceName};
use eddo::outbox::{self, Lease, Outbox};
use eddo::publish::{OutgoingEvent, Publisher};

use crate::candidate::{Candidate, State};

pub mod checks;
mod ledger;
pub mod pushed;
pub mod rules;
mod sweep;

pub use ledger::{Parked, Record};

pub const OPEN_INDEX: &str = "open-deadline";

/// The index partitions of decided candidates whose work (a deploy to start, events to say) is
/// not done ([`owed_pk`]): the sweep finishes what a dead invocation left when no other event
/// comes. Sending what a candidate owes takes it out.
pub const OWED: &str = "owed";

/// The index partitions of waiting candidates ([`open_pk`]), which the deadline sweep reads.
pub const OPEN: &str = "open";

/// How many partitions each of the index's lists is spread over, by commit: no one partition
/// takes every write of a busy platform.
pub const SHARDS: u8 = 8;

/// The shard of a candidate: its commit's first hex digit, modulo [`SHARDS`].
pub fn shard_of(commit: &CommitSha) -> u8 {
    let first = commit.as_str().get(..1).unwrap_or("0");
    u8::from_str_radix(first, 16).unwrap_or(0) % SHARDS
}

/// The index partition of a waiting candidate.
pub fn open_pk(commit: &CommitSha) -> String {
    format!("{OPEN}#{}", shard_of(commit))
}

/// The index partition of a decided candidate whose work is not done.
pub fn owed_pk(commit: &CommitSha) -> String {
    format!("{OWED}#{}", shard_of(commit))
}

/// Every partition of a list (`open` or `owed`): its shards, and the unsharded one earlier
/// versions wrote.
pub fn partitions(list: &str) -> Vec<String> {
    std::iter::once(list.to_string())
        .chain((0..SHARDS).map(|n| format!("{list}#{n}")))
        .collect()
}

fn owed_sk(c: &Candidate, lease_until: u64) -> String {
    format!("{lease_until:012}#{}#{}", c.service, c.commit)
}
/// How long an undecided candidate's record is kept after its first signal (its deadline is at
/// most a day: the sweep decides it long before).
pub const CANDIDATE_DAYS: u64 = 90;

/// How long a decided candidate is kept after its decision (its `expires_at`, which DynamoDB's
/// TTL deletes after): evidence older than this is refused, so no event can find the record
/// gone and decide its commit again.
pub const DECIDED_DAYS: u64 = 400;

fn candidate_key(service: &ServiceName, commit: &CommitSha) -> (AttributeValue, AttributeValue) {
    (s(&format!("candidate#{service}")), s(commit.as_str()))
}

/// A candidate's key, as the outbox names its record.
pub fn key_of(c: &Candidate) -> Item {
    let (pk, sk) = candidate_key(&c.service, &c.commit);
    key(pk, sk)
}

/// A candidate's record alone (its ledger empty).
fn candidate(item: &Item) -> Result<Candidate, Error> {
    let bad = |what: &str| Error::InvalidEvent(format!("candidate record without a valid {what}"));
    let service = ServiceName::parse(attr(item, "service").unwrap_or_default())
        .map_err(|_| bad("service"))?;
    let commit =
        CommitSha::parse(attr(item, "sk").unwrap_or_default()).map_err(|_| bad("commit"))?;
    Ok(Candidate {
        digest: attr(item, "digest").and_then(|d| ImageDigest::parse(d).ok()),
        correlation_id: attr(item, "correlation_id").unwrap_or_default().to_string(),
        state: State::parse(attr(item, "state").unwrap_or_default()),
        first_at: num(item, "first_at").unwrap_or_default(),
        deadline: num(item, "deadline").unwrap_or_default(),
        build_id: attr(item, "build_id").map(str::to_string),
        owes: item.contains_key(outbox::OUTBOX),
        lease_until: outbox::lease_of(item),
        lease_id: outbox::lease_id_of(item).to_string(),
        decision: attr(item, "decision").unwrap_or_default().to_string(),
        intent: attr(item, "intent").and_then(|j| serde_json::from_str(j).ok()),
        decided_policy: item
            .get("decided_policy")
            .and_then(eddo::policy::PolicyVersion::from_attribute),
        decided_by: attr(item, "decided_by").unwrap_or_default().to_string(),
        reasons: attr(item, "reasons")
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default(),
        decided_at: num(item, "decided_at").unwrap_or_default(),
        attempt: num(item, "attempt")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or_default(),
        seq: num(item, "seq").unwrap_or_default(),
        service,
        commit,
        ledger: Vec::new(),
    })
}

/// How a decision's conditional write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Done,
    /// Another invocation decided first.
    Lost,
    /// Evidence landed on the ledger after the candidate was read: decide again on all of it.
    Stale,
    /// A rollback of the service holds its deployments.
    Locked,
    /// A rollback replaced this commit, and no approval of it cleared it.
    KnownBad,
}

/// A decision about a waiting candidate, as written.
pub struct Decided<'a> {
    pub candidate: &'a Candidate,
    pub to: State,
    pub reasons: &'a [String],
    /// The event that caused it.
    pub by: &'a str,
    /// The events it owes now (none for a deploy: its build's start says it).
    pub owes: &'a [OutgoingEvent],
    pub now: u64,
    /// An approval of the commit passed (a commit a rollback replaced deploys only then).
    pub approved: bool,
    /// The decision's id ([`eddo::outbox::unique_id`]).
    pub decision: &'a str,
    /// The lease its write takes.
    pub lease: &'a Lease,
    /// The build a decision to deploy starts, frozen with it (with the decision's id).
    pub intent: Option<&'a BuildRequest>,
    /// The version of the policy that decided, which its announcement names whenever it is
    /// said.
    pub policy_version: Option<eddo::policy::PolicyVersion>,
}

/// A deploy build's completion, as written.
pub struct Finished<'a> {
    pub candidate: &'a Candidate,
    pub build_id: &'a str,
    pub to: State,
    pub version: Option<&'a Version>,
    /// The history the completion was judged on.
    pub read: &'a History,
    pub owes: &'a [OutgoingEvent],
    pub lease: &'a Lease,
}

#[derive(Clone)]
pub struct Store {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Outbox,
}

impl Store {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        publisher: Publisher,
    ) -> Store {
        let table = table.into();
        Store {
            outbox: Outbox::new(client.clone(), &table, publisher).leaving_index("open_pk"),
            client,
            table,
        }
    }

    /// The outbox of the gate's records.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The write of a decision: the candidate's new state, what caused it, the lease of the
    /// invocation that decided, and (for a decision with no effect) the events it owes.
    fn decide_update(&self, d: &Decided<'_>) -> Result<Update, Error> {
        let c = d.candidate;
        let mut expr = format!(
            "SET #state = :to, reasons = :reasons, decided_at = :now, decided_by = :by, decision = :token, decided_seq = :seq, closed = :owed, open_pk = :owed, open_sk = :owed_sk, expires_at = :kept, {}",
            Lease::SET
        );
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(c)))
            // Fenced on the ledger: evidence recorded since the candidate was read makes it
            // decide again (Transition::Stale), so no decision misses a failure.
            .condition_expression("#state = :waiting AND seq = :seq")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":seq", n(c.seq))
            .expression_attribute_values(":to", s(d.to.as_str()))
            .expression_attribute_values(
                ":reasons",
                s(&serde_json::to_string(d.reasons).map_err(Error::Encode)?),
            )
            .expression_attribute_values(":now", n(d.now))
            .expression_attribute_values(":by", s(d.by))
            .expression_attribute_values(":token", s(d.decision))
            .expression_attribute_values(":owed", s(&owed_pk(&c.commit)))
            .expression_attribute_values(":owed_sk", s(&owed_sk(c, d.lease.until)))
            // A decided commit is not decided again: the record outlives any evidence counted
            // ([`DECIDED_DAYS`]), and a later signal keeps its lifetime (if_not_exists).
            .expression_attribute_values(":kept", n(d.now + DECIDED_DAYS * 86_400))
            .expression_attribute_values(":waiting", s(State::Waiting.as_str()));
        for (name, value) in d.lease.values() {
            update = update.expression_attribute_values(name, value);
        }
        if !d.owes.is_empty() {
            expr.push_str(", outbox = :outbox");
            update = update.expression_attribute_values(":outbox", outbox::outbox_value(d.owes)?);
        }
        if let Some(version) = &d.policy_version {
            expr.push_str(", decided_policy = :policy");
            update = update.expression_attribute_values(":policy", version.attribute());
        }
        if let Some(intent) = d.intent {
            expr.push_str(", intent = :intent");
            update = update.expression_attribute_values(
                ":intent",
                s(&serde_json::to_string(intent).map_err(Error::Encode)?),
            );
        }
        update
            .update_expression(expr)
            .build()
            .map_err(|e| Error::InvalidEvent(e.to_string()))
    }

    /// Decides a waiting candidate: `to`, with its reasons and the events it owes. Deciding to
    /// deploy also checks, in the same transaction, that no rollback of the service holds its
    /// deployments.
    pub async fn decide(&self, d: &Decided<'_>) -> Result<Transition, Error> {
        let (c, to, token) = (d.candidate, d.to, d.decision);
        let update = self.decide_update(d)?;
        // Approving a GitHub environment deploys as surely as starting a build: both hold to
        // the same guards.
        if !matches!(to, State::Deploying | State::Approved) {
            let u = update;
            let result = self
                .client
                .update_item()
                .table_name(u.table_name())
                .set_key(Some(u.key().clone()))
                .update_expression(u.update_expression())
                .set_condition_expression(u.condition_expression().map(str::to_string))
                .set_expression_attribute_names(u.expression_attribute_names().cloned())
                .set_expression_attribute_values(u.expression_attribute_values().cloned())
                .send()
                .await;
            if written(result, "UpdateItem")? || self.applied(c, token).await? {
                return Ok(Transition::Done);
            }
            return self.why_not(c).await.map(|t| t.unwrap_or(Transition::Lost));
        }
        self.deploy_transaction(c, d.approved, update, token, d.now)
            .await
    }

    /// Why a decision fenced on `c` (as read) was not written: `Stale` when the candidate is where
    /// it was but its ledger grew, `Lost` when another invocation moved it; `None` when neither
    /// (a guard of the transaction held it back).
    async fn why_not(&self, c: &Candidate) -> Result<Option<Transition>, Error> {
        Ok(match self.get(&c.service, &c.commit).await? {
            Some(now) if now.state == c.state && now.decided_at == c.decided_at => {
                (now.seq != c.seq).then_some(Transition::Stale)
            }
            _ => Some(Transition::Lost),
        })
    }

    /// Whether the decision written with `token` (this invocation's own) is the one the record
    /// holds: a conditional write whose answer was lost after it applied fails its condition
    /// when the SDK sends it again, and must not read as another invocation's decision.
    async fn applied(&self, c: &Candidate, token: &str) -> Result<bool, Error> {
        let item = get(&self.client, &self.table, key_of(c)).await?;
        Ok(item.as_ref().and_then(|i| attr(i, "decision")) == Some(token))
    }

    /// Whether `lease` is still the record's: the write made under it applied, whatever its
    /// answer said.
    pub async fn still_mine(
        &self,
        c: &Candidate,
        lease: &Lease,
    ) -> Result<Option<Candidate>, Error> {
        Ok(self
            .get(&c.service, &c.commit)
            .await?
            .filter(|r| r.lease_id == lease.id))
    }

    /// Decides to deploy (or deploy again) in one transaction with its guards: no rollback holds
    /// the service, and the commit is not known bad unless an approval of it passed. Which guard
    /// failed, when one did, is read after.
    async fn deploy_transaction(
        &self,
        c: &Candidate,
        approved: bool,
        update: Update,
        token: &str,
        now: u64,
    ) -> Result<Transition, Error> {
        let lock = history::not_held(&self.table, &c.service, now)?;
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().condition_check(lock).build());
        if !approved {
            let bad = history::not_rolled_back(&self.table, &c.service, c.commit.as_str())?;
            tx = tx.transact_items(TransactWriteItem::builder().condition_check(bad).build());
        }
        if transacted(tx.send().await)? {
            return Ok(Transition::Done);
        }
        if self.applied(c, token).await? {
            return Ok(Transition::Done);
        }
        if let Some(t) = self.why_not(c).await? {
            return Ok(t);
        }
        let history = self.history(&c.service).await?;
        Ok(
            if !approved && history.rolled_back.contains(c.commit.as_str()) {
                Transition::KnownBad
            } else {
                Transition::Locked
            },
        )
    }

    /// Deploys a decided candidate again (a rolled-back commit an approval cleared): deploying,
    /// with a new attempt, a new decision and its build frozen (`d.intent`), no build yet, guarded
    /// as a first deploy is.
    pub async fn redeploy(&self, d: &Decided<'_>) -> Result<Transition, Error> {
        let c = d.candidate;
        let intent = d
            .intent
            .map(serde_json::to_string)
            .transpose()
            .map_err(Error::Encode)?
            .unwrap_or_default();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(c)))
            .update_expression(format!(
                "SET #state = :deploying, decided_at = :now, decided_by = :by, decision = :token, decided_seq = :seq, {}, attempt = :attempt, reasons = :none, closed = :owed, open_pk = :owed, open_sk = :owed_sk, intent = :intent REMOVE build_id",
                Lease::SET
            ))
            .condition_expression(format!(
                "#state = :was AND decided_at = :decided AND seq = :seq AND attribute_not_exists(outbox) AND {}",
                outbox::LAPSED
            ))
            .expression_attribute_values(":seq", n(c.seq))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":deploying", s(State::Deploying.as_str()))
            .expression_attribute_values(":now", n(d.now))
            .expression_attribute_values(":by", s(d.by))
            .expression_attribute_values(":token", s(d.decision))
            .expression_attribute_values(":owed", s(&owed_pk(&c.commit)))
            .expression_attribute_values(":owed_sk", s(&owed_sk(c, d.lease.until)))
            .expression_attribute_values(":attempt", n(u64::from(c.attempt) + 1))
            .expression_attribute_values(":none", s("[]"))
            .expression_attribute_values(":intent", s(&intent))
            .expression_attribute_values(":was", s(c.state.as_str()))
            .expression_attribute_values(":decided", n(c.decided_at));
        for (name, value) in d.lease.values() {
            update = update.expression_attribute_values(name, value);
        }
        let update = update
            .build()
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        self.deploy_transaction(c, d.approved, update, d.decision, d.now)
            .await
    }

    /// Blocks a candidate decided to deploy whose build never started, because a required signal
    /// failed since, with the event that says so; only under `lease` (taken by
    /// [`Store::take_unstarted`], after CodeBuild was asked for the decision's build and had
    /// none), and `false` when its build was recorded first (then the failure is late).
    pub async fn withdraw(
        &self,
        lease: &Lease,
        reasons: &[String],
        owes: &[OutgoingEvent],
    ) -> Result<bool, Error> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression("SET #state = :blocked, reasons = :reasons, outbox = :outbox")
            .condition_expression(format!(
                "#state = :deploying AND attribute_not_exists(build_id) AND {}",
                outbox::MINE
            ))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":blocked", s(State::Blocked.as_str()))
            .expression_attribute_values(":deploying", s(State::Deploying.as_str()))
            .expression_attribute_values(
                ":reasons",
                s(&serde_json::to_string(reasons).map_err(Error::Encode)?),
            )
            .expression_attribute_values(":outbox", outbox::outbox_value(owes)?)
            .expression_attribute_values(":lease_id", s(&lease.id));
        written(update.send().await, "UpdateItem")
    }

    /// The rollback holding `service`'s deployments, if one does: its build id.
    pub async fn rollback_lock(
        &self,
        service: &ServiceName,
        now: u64,
    ) -> Result<Option<String>, Error> {
        history::held_by(&self.client, &self.table, service, now).await
    }

    /// Takes over a candidate decided to deploy whose build was never recorded, once its lease
    /// has lapsed: `None` when another invocation has it or its build was recorded meanwhile.
    pub async fn take_unstarted(&self, c: &Candidate, now: u64) -> Result<Option<Lease>, Error> {
        let taken = self
            .outbox
            .take(
                &key_of(c),
                now,
                "#state = :deploying AND attribute_not_exists(build_id)",
                &[(":deploying", s(State::Deploying.as_str()))],
            )
            .await?;
        Ok(taken.map(|(lease, _)| lease))
    }

    /// Records the deploy build of a deploying candidate with the events that say it started,
    /// while `lease` is this invocation's. `false`: the build was recorded by another invocation
    /// (which says it), or the lease was lost.
    pub async fn set_build(
        &self,
        lease: &Lease,
        build_id: &str,
        owes: &[OutgoingEvent],
    ) -> Result<bool, Error> {
        self.record_start(lease, "build_id", s(build_id), owes, |r| {
            r.build_id.as_deref() == Some(build_id)
        })
        .await
    }

    /// A deploy the project refused to start: `DeployFailed`, with the events that say so, while
    /// `lease` is this invocation's.
    pub async fn refused(&self, lease: &Lease, owes: &[OutgoingEvent]) -> Result<bool, Error> {
        self.record_start(
            lease,
            "#state",
            s(State::DeployFailed.as_str()),
            owes,
            |r| r.state == State::DeployFailed,
        )
        .await
    }

    /// How a deploy's start went (`attribute` set to `value`) and the events that say it, in one
    /// write conditional on the lease and on no build recorded. A write whose answer was lost
    /// after it applied fails its condition when the SDK sends it again: the record, still under
    /// this lease and showing the write (`applied`), says it was this invocation's.
    async fn record_start(
        &self,
        lease: &Lease,
        attribute: &str,
        value: AttributeValue,
        owes: &[OutgoingEvent],
        applied: impl Fn(&Candidate) -> bool,
    ) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression(format!("SET {attribute} = :v, outbox = :outbox"))
            .condition_expression(format!(
                "attribute_not_exists(build_id) AND {} AND #state = :deploying",
                outbox::MINE
            ))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":v", value)
            .expression_attribute_values(":outbox", outbox::outbox_value(owes)?)
            .expression_attribute_values(":lease_id", s(&lease.id))
            .expression_attribute_values(":deploying", s(State::Deploying.as_str()))
            .send()
            .await;
        if written(result, "UpdateItem")? {
            return Ok(true);
        }
        // Another invocation's start says itself, and the sweep finishes it if that one died.
        let mine = self
            .outbox
            .written_under(lease, |item| candidate(item).is_ok_and(|r| applied(&r)))
            .await?;
        Ok(mine == outbox::Written::Mine)
    }

    /// The deploy build `build_id` of a deploying candidate finished: `to` (`Deployed` or
    /// `DeployFailed`) with the events that say so, and on success the service's history moves
    /// from `read` (the replaced version becomes the last known good), in one transaction.
    /// `false`: that build's completion was recorded already, or it is not the candidate's
    /// build, or the history moved since `read` (read it again).
    pub async fn finish_deploy(&self, f: &Finished<'_>) -> Result<bool, Error> {
        let c = f.candidate;
        let candidate = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(c)))
            .update_expression(format!(
                "SET #state = :to, outbox = :outbox, {}, closed = :owed, open_pk = :owed, open_sk = :owed_sk",
                Lease::SET
            ))
            // What the record still owes (its Deployment Started) is said first.
            .condition_expression(
                "#state = :deploying AND build_id = :b AND attribute_not_exists(outbox)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(f.to.as_str()))
            .expression_attribute_values(":deploying", s(State::Deploying.as_str()))
            .expression_attribute_values(":b", s(f.build_id))
            .expression_attribute_values(":outbox", outbox::outbox_value(f.owes)?)
            .expression_attribute_values(":lease", n(f.lease.until))
            .expression_attribute_values(":lease_id", s(&f.lease.id))
            .expression_attribute_values(":owed", s(&owed_pk(&c.commit)))
            .expression_attribute_values(":owed_sk", s(&owed_sk(c, f.lease.until)))
            .build()
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(candidate).build());
        if let Some(v) = f.version {
            let live = history::go_live_from(&self.table, &c.service, v, f.read)?;
            tx = tx.transact_items(TransactWriteItem::builder().update(live).build());
        }
        transacted(tx.send().await)
    }

    /// What is live for `service` and what was last known good.
    pub async fn history(&self, service: &ServiceName) -> Result<History, Error> {
        History::read(&self.client, &self.table, service).await
    }

    /// Marks the commit known bad in the service's history (a late failure at `since`, said by
    /// the event `by`).
    pub async fn mark_known_bad(
        &self,
        service: &ServiceName,
        commit: &CommitSha,
        since: u64,
        by: &str,
    ) -> Result<(), Error> {
        history::mark_known_bad(
            &self.client,
            &self.table,
            service,
            commit.as_str(),
            since,
            by,
        )
        .await
    }

    /// Since when, and by what, the commit is known bad, if it is marked.
    pub async fn known_bad_since(
        &self,
        service: &ServiceName,
        commit: &CommitSha,
    ) -> Result<Option<(u64, String)>, Error> {
        history::known_bad_since(&self.client, &self.table, service, commit.as_str()).await
    }
}
