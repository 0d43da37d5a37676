//! The deadline sweep's reads and writes: waiting candidates past their deadline, decided ones
//! whose work a dead invocation left, each read again whole; closing a candidate no policy
//! decides any more; taking a finished one out of the index.

use eddo::Error;
use eddo::dynamo::{Item, n, s, written};

use super::{OPEN_INDEX, OWED, Store, candidate, key_of};
use crate::candidate::{Candidate, State};

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

    /// Waiting candidates whose deadline has passed, oldest first (at most `limit`).
    pub async fn overdue(&self, now: u64, limit: i32) -> Result<Vec<Candidate>, Error> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OPEN_INDEX)
            .key_condition_expression("open_pk = :open AND open_sk < :until")
            .expression_attribute_values(":open", s("open"))
            .expression_attribute_values(":until", s(&format!("{:012}~", now)))
            .limit(limit)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "Query", e))?;
        let mut waiting = Vec::new();
        for c in self.whole(out.items()).await? {
            if c.state == State::Waiting {
                waiting.push(c);
            }
        }
        Ok(waiting)
    }

    /// The candidates the index listed, each read again whole (its record and its ledger).
    async fn whole(&self, listed: &[Item]) -> Result<Vec<Candidate>, Error> {
        let mut out = Vec::with_capacity(listed.len());
        for item in listed {
            let c = candidate(item)?;
            if let Some(c) = self.get(&c.service, &c.commit).await? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Decided candidates whose work is not done (a deploy to start, events to say) and whose
    /// lease lapsed before `now`, oldest first (at most `limit`): left by an invocation that
    /// died with no event about them to come.
    pub async fn owed(&self, now: u64, limit: i32) -> Result<Vec<Candidate>, Error> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OPEN_INDEX)
            .key_condition_expression("open_pk = :owed AND open_sk < :until")
            .expression_attribute_values(":owed", s(OWED))
            .expression_attribute_values(":until", s(&format!("{:012}~", now)))
            .limit(limit)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "Query", e))?;
        self.whole(out.items()).await
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
            .condition_expression("attribute_not_exists(outbox) AND open_pk = :owed")
            .expression_attribute_values(":owed", s(OWED))
            .expression_attribute_values(":settled", s("settled"))
            .send()
            .await;
        written(result, "UpdateItem").map(|_| ())
    }
}
