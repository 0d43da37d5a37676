//! What a candidate's check run (GitHub) or commit status (GitLab) owes, beside the candidate:
//! `pk = check#<service>` or `status#<service>`, `sk = <commit>`. It is brought to the candidate's state, never told a sequence of
//! changes: `wanted` counts the times the candidate changed (each counted after the change is
//! written), `shown` the count GitHub was last brought up to, and one invocation at a time (the
//! outbox's lease) closes the gap from the candidate as it is read after the count; `shown_hash`
//! is what that update sent, so one that would send the same is not sent. While `shown < wanted` the record is in the sweep's index (`open_pk =
//! checks#<shard>`, `open_sk` = not before when), so an update GitHub refused or an invocation
//! that died is made by the next tick; `creating` records, before the check run is created, that
//! it may exist, so a creation whose answer was lost is found again, not made twice.

use aws_sdk_dynamodb::types::AttributeValue;
use eddo::Error;
use eddo::dynamo::{Item, attr, key, n, num, s, written};
use eddo::names::{CommitSha, ServiceName};
use eddo::outbox::{self, Lease};

use super::{DECIDED_DAYS, SHARDS, Store, shard_of};

/// The index list of check runs to bring up to date.
pub const CHECKS: &str = "checks";

/// The index partition of a check run owed an update.
pub fn checks_pk(commit: &CommitSha) -> String {
    format!("{CHECKS}#{}", shard_of(commit))
}

fn checks_sk(not_before: u64, service: &ServiceName, commit: &CommitSha) -> String {
    format!("{not_before:012}#{service}#{commit}")
}

/// Every partition of the list.
pub fn check_partitions() -> Vec<String> {
    (0..SHARDS).map(|n| format!("{CHECKS}#{n}")).collect()
}

/// Where a candidate is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// A check run on the commit, by eddo's GitHub App.
    GitHub,
    /// A commit status on the commit, by eddo's GitLab token.
    GitLab,
}

impl Surface {
    const fn prefix(self) -> &'static str {
        match self {
            Surface::GitHub => "check#",
            Surface::GitLab => "status#",
        }
    }
}

/// The key of the record of `service`'s `commit` on `surface`.
pub fn check_key(surface: Surface, service: &ServiceName, commit: &CommitSha) -> Item {
    key(
        s(&format!("{}{service}", surface.prefix())),
        s(commit.as_str()),
    )
}

/// A check run record, as read under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    /// The check run's id on GitHub, once known.
    pub id: Option<u64>,
    /// A creation was begun and its answer may have been lost.
    pub creating: bool,
    /// How many changes of the candidate it owes up to.
    pub wanted: u64,
    /// What the last update sent (its hash).
    pub shown_hash: String,
    /// The rollback that replaced the release, once one did.
    pub replaced: Option<crate::checks::Replacement>,
}

impl Owed {
    fn of(item: &Item) -> Owed {
        Owed {
            id: num(item, "check_run_id"),
            creating: item.contains_key("creating"),
            wanted: num(item, "wanted").unwrap_or_default(),
            shown_hash: attr(item, "shown_hash").unwrap_or_default().to_string(),
            replaced: attr(item, "replaced").and_then(|j| serde_json::from_str(j).ok()),
        }
    }
}

impl Store {
    /// Counts a change of `service`'s `commit` (written before): what shows it on `surface`
    /// (in `repo`) owes an update.
    pub async fn want_check(
        &self,
        surface: Surface,
        service: &ServiceName,
        commit: &CommitSha,
        repo: &str,
        now: u64,
    ) -> Result<(), Error> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(check_key(surface, service, commit)))
            .update_expression(
                "ADD wanted :one SET repo = :repo, open_pk = :pk, open_sk = if_not_exists(open_sk, :sk), expires_at = :kept",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":repo", s(repo))
            .expression_attribute_values(":pk", s(&checks_pk(commit)))
            .expression_attribute_values(":sk", s(&checks_sk(now, service, commit)))
            .expression_attribute_values(":kept", n(now + DECIDED_DAYS * 86_400))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "UpdateItem", e))?;
        Ok(())
    }

    /// Notes on the record of `service`'s `commit` on `surface` the rollback that replaced the
    /// release; `false` when there is no record (nothing showed that commit).
    pub async fn note_replacement(
        &self,
        surface: Surface,
        service: &ServiceName,
        commit: &CommitSha,
        replacement: &crate::checks::Replacement,
    ) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(check_key(surface, service, commit)))
            .update_expression("SET replaced = :r")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":r",
                s(&serde_json::to_string(replacement).map_err(Error::Encode)?),
            )
            .send()
            .await;
        written(result, "UpdateItem")
    }

    /// Takes the check run record of `key` if it owes an update due at `now` and no invocation
    /// holds it.
    pub async fn take_check(&self, key: &Item, now: u64) -> Result<Option<(Lease, Owed)>, Error> {
        Ok(self
            .outbox
            .take(
                key,
                now,
                "attribute_exists(open_pk) AND (attribute_not_exists(shown) OR shown < wanted) AND (attribute_not_exists(not_before) OR not_before <= :now)",
                &[],
            )
            .await?
            .map(|(lease, item)| (lease, Owed::of(&item))))
    }

    /// Records, before the check run is created, that it may come to exist.
    pub async fn creating_check(&self, lease: &Lease) -> Result<(), Error> {
        self.under(lease, "SET creating = :yes", &[(":yes", s("yes"))])
            .await
            .map(|_| ())
    }

    /// GitHub shows check run `id` as the candidate was after `owed.wanted` changes, sent as
    /// `hash`. `None`: nothing more is wanted, the record left the index and the lease ended;
    /// `Some`: the candidate changed meanwhile, the record as it now is, the lease still held.
    pub async fn shown_check(
        &self,
        lease: &Lease,
        owed: &Owed,
        id: u64,
        hash: &str,
    ) -> Result<Option<Owed>, Error> {
        let done = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression(
                "SET shown = :w, shown_hash = :h, check_run_id = :id, lease_until = :zero REMOVE lease_id, creating, not_before, open_pk, open_sk, last_error",
            )
            .condition_expression(format!("{} AND wanted = :w", outbox::MINE))
            .expression_attribute_values(":w", n(owed.wanted))
            .expression_attribute_values(":h", s(hash))
            .expression_attribute_values(":id", n(id))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":lease_id", s(&lease.id))
            .send()
            .await;
        if written(done, "UpdateItem")? {
            return Ok(None);
        }
        let now = self
            .under(
                lease,
                "SET shown = :w, shown_hash = :h, check_run_id = :id REMOVE creating",
                &[(":w", n(owed.wanted)), (":h", s(hash)), (":id", n(id))],
            )
            .await?;
        Ok(Some(Owed::of(&now)))
    }

    /// The check run of `key` is no longer shown (its service left the policy, or the App mode
    /// is off): out of the sweep's index.
    pub async fn forget_check(&self, key: Item) -> Result<(), Error> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("REMOVE open_pk, open_sk")
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "UpdateItem", e))?;
        Ok(())
    }

    /// GitHub could not be brought up to date: tried again by the sweep from `not_before`, the
    /// lease given back now.
    pub async fn later_check(
        &self,
        lease: &Lease,
        service: &ServiceName,
        commit: &CommitSha,
        not_before: u64,
        why: &str,
    ) -> Result<(), Error> {
        self.later(
            lease,
            &checks_sk(not_before, service, commit),
            not_before,
            why,
        )
        .await
    }

    /// The forge did not take what the record under `lease` owes: listed at `sk` for the sweep,
    /// not tried before `not_before`, the lease given back.
    pub(super) async fn later(
        &self,
        lease: &Lease,
        sk: &str,
        not_before: u64,
        why: &str,
    ) -> Result<(), Error> {
        self.under(
            lease,
            "SET not_before = :nb, open_sk = :sk, last_error = :why, lease_until = :zero REMOVE lease_id",
            &[
                (":nb", n(not_before)),
                (":sk", s(sk)),
                (":why", s(why)),
                (":zero", n(0)),
            ],
        )
        .await
        .map(|_| ())
    }

    /// An update of the record under `lease`, only while it holds; the record as it then is.
    pub(super) async fn under(
        &self,
        lease: &Lease,
        expression: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Item, Error> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression(expression)
            .condition_expression(outbox::MINE)
            .expression_attribute_values(":lease_id", s(&lease.id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        for (name, value) in values {
            update = update.expression_attribute_values(*name, value.clone());
        }
        match update.send().await {
            Ok(out) => Ok(out.attributes.unwrap_or_default()),
            Err(e) => {
                written::<(), _>(Err(e), "UpdateItem")?;
                Err(Error::InProgress(
                    "the check run's record was taken over".into(),
                ))
            }
        }
    }

    /// The surface, service and commit an index entry of the list names.
    pub fn listed_check(pk: &str, sk: &str) -> Result<(Surface, ServiceName, CommitSha), Error> {
        let (surface, service) = [Surface::GitHub, Surface::GitLab]
            .into_iter()
            .find_map(|f| pk.strip_prefix(f.prefix()).map(|s| (f, s)))
            .ok_or_else(|| Error::InvalidEvent(format!("index entry {pk}: not a check run")))?;
        let service = ServiceName::parse(service)
            .map_err(|_| Error::InvalidEvent(format!("index entry {pk}: not a service")))?;
        let commit = CommitSha::parse(sk)
            .map_err(|why| Error::InvalidEvent(format!("index entry {pk}/{sk}: {why}")))?;
        Ok((surface, service, commit))
    }
}
