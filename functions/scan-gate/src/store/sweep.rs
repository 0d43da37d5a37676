//! The deadline sweep's reads and writes: waiting candidates past their deadline, decided ones
//! whose work a dead invocation left, each read again whole; closing a candidate no policy
//! decides any more; taking a finished one out of the index.

use eddo::Error;
use eddo::dynamo::{Item, attr, n, s, written};
use eddo::names::{CommitSha, ServiceName};

use super::{OPEN_INDEX, OWED, Store, key_of};
use crate::candidate::{Candidate, State};

/// A page of the sweep's index: the candidates' keys (`pk`, `sk`), and where the next page starts.
pub struct Listed {
    pub keys: Vec<(String, String)>,
    pub next: Option<Item>,
}

impl Store {
    /// Closes a waiting candidate without a decision (its service left the policy), so the
    /// deadline sweep no longer reads it.
    pub async fn close(&self, c: &Candidate, reason: &str, now: u64) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(c)))
            .update_expression(
                "SET #state = :timed_out, reasons = :reasons, decided_at = :now, closed = :closed, open_pk = :closed",
            )
            .condition_expression("#state = :waiting")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":timed_out", s(State::TimedOut.as_str()))
            .expression_attribute_values(
                ":reasons",
                s(&serde_json::to_string(&[reason]).map_err(Error::Encode)?),
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":closed", s("closed"))
            .expression_attribute_values(":waiting", s(State::Waiting.as_str()))
            .send()
            .await;
        written(result, "UpdateItem")
    }

    /// One page of the index partition `partition` (a shard of `open` or `owed`) up to `now`,
    /// oldest first, from `from` (where the last page ended): the candidates' keys only (the
    /// index projects nothing else; each is read whole when it is served).
    pub async fn listed(
        &self,
        partition: &str,
        now: u64,
        from: Option<Item>,
        limit: i32,
    ) -> Result<Listed, Error> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OPEN_INDEX)
            .key_condition_expression("open_pk = :p AND open_sk < :until")
            .expression_attribute_values(":p", s(partition))
            .expression_attribute_values(":until", s(&format!("{:012}~", now)))
            .set_exclusive_start_key(from)
            .limit(limit)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "Query", e))?;
        Ok(Listed {
            keys: out
                .items()
                .iter()
                .map(|i| {
                    (
                        attr(i, "pk").unwrap_or_default().to_string(),
                        attr(i, "sk").unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            next: out.last_evaluated_key,
        })
    }

    /// The candidate an index entry names, read whole (its record and its ledger). `Err` for a
    /// key or record this version cannot read: reported by the sweep, which serves the rest.
    pub async fn listed_candidate(&self, pk: &str, sk: &str) -> Result<Option<Candidate>, Error> {
        let service = pk
            .strip_prefix("candidate#")
            .and_then(|s| ServiceName::parse(s).ok())
            .ok_or_else(|| Error::InvalidEvent(format!("index entry {pk}: not a candidate")))?;
        let commit = CommitSha::parse(sk).map_err(|why| {
            Error::InvalidEvent(format!("index entry {pk}/{sk}: the commit {why}"))
        })?;
        self.get(&service, &commit).await
    }

    /// Takes a candidate whose work is done out of the sweep's index.
    pub async fn settled(&self, c: &Candidate) -> Result<(), Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(c)))
            // `closed` is the partition a later signal files it under: none the sweep reads.
            .update_expression("SET closed = :settled REMOVE open_pk")
            .condition_expression("attribute_not_exists(outbox) AND begins_with(open_pk, :owed)")
            .expression_attribute_values(":owed", s(OWED))
            .expression_attribute_values(":settled", s("settled"))
            .send()
            .await;
        written(result, "UpdateItem").map(|_| ())
    }
}
