//! Decide once, act once, say it once: the one mechanism every eddo function uses.
//!
//! A record that guards a side effect (a gate candidate, an alarm change, a rollback, a tenant)
//! carries two attributes, written by the same conditional write as the decision they serve:
//!
//! - `lease_until`: until when the invocation that wrote the decision has the record to itself.
//!   The lease outlives the function's timeout ([`LEASE_SECS`]), so only dead work is taken over.
//!   One rule says when it has lapsed: [`leased`], and [`LAPSED`] in conditions.
//! - `outbox`: the events the decision owes, exactly as they will be published. An effect whose
//!   outcome the events report (a build started) writes them with its outcome; a decision with no
//!   effect writes them with the decision.
//!
//! The invocation that owns the lease performs the effect, then [`Outbox::send`]s the events and
//! removes them, on the condition that the outbox is still the one it sent. If it fails, the
//! [`Outbox::guard`] lets go of the lease at once, so Lambda's retry need not wait for it; if it
//! dies, the lease lapses. Either way a later invocation about the same record [`Outbox::take`]s
//! the lease (a conditional write, so one does) and finishes the work: the events are published
//! once, from the record, whoever publishes them. Publishing twice is possible only when an
//! invocation outlives its lease, which the function's timeout prevents.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::Error;
use crate::dynamo::{Item, attr, n, num, s, written};
use crate::publish::{OutgoingEvent, Publisher};

/// The attribute holding the events a record owes.
pub const OUTBOX: &str = "outbox";

/// The attribute holding the lease's end (epoch seconds).
pub const LEASE_UNTIL: &str = "lease_until";

/// How long an invocation has a record to itself. eddo's asynchronous functions time out at
/// 30 s; 45 s is past any invocation still at work.
pub const LEASE_SECS: u64 = 45;

/// A condition that the record's lease has lapsed, for a write whose values hold `:now`.
pub const LAPSED: &str = "(attribute_not_exists(lease_until) OR lease_until <= :now)";

/// The end of a lease taken at `now`.
pub fn lease_from(now: u64) -> u64 {
    now + LEASE_SECS
}

/// Whether a lease ending at `until` still holds at `now`. The one rule: it holds strictly
/// before `until`, and [`LAPSED`] is its negation.
pub fn leased(until: u64, now: u64) -> bool {
    now < until
}

/// The record's lease end (0: none).
pub fn lease_of(item: &Item) -> u64 {
    num(item, LEASE_UNTIL).unwrap_or(0)
}

/// The events a record owes, in order (empty: it owes none).
pub fn owed(item: &Item) -> Result<Vec<OutgoingEvent>, Error> {
    match attr(item, OUTBOX) {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| Error::InvalidEvent(format!("a record's outbox is unreadable: {e}"))),
    }
}

/// The EventBridge ids of the events a record sent last (empty: none, or sent before eddo kept
/// them).
pub fn sent_ids(item: &Item) -> Vec<String> {
    attr(item, "sent_ids")
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// The `outbox` attribute's value for `events`.
pub fn outbox_value(events: &[OutgoingEvent]) -> Result<AttributeValue, Error> {
    Ok(s(&serde_json::to_string(events).map_err(Error::Encode)?))
}

/// Where a record's lease and outbox are kept, and the publisher that says what it owes.
#[derive(Debug, Clone)]
pub struct Outbox {
    client: aws_sdk_dynamodb::Client,
    table: String,
    publisher: Publisher,
    /// An index key attribute removed with the outbox (a sweep's index of records that owe).
    index: Option<&'static str>,
}

/// A lease this invocation holds on one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub key: Item,
    /// The lease's end as written: what says it is still this invocation's.
    pub until: u64,
}

impl Lease {
    /// The lease a decision's write takes at `now` on the record at `key`.
    pub fn new(key: Item, now: u64) -> Lease {
        Lease {
            key,
            until: lease_from(now),
        }
    }
}

impl Outbox {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        publisher: Publisher,
    ) -> Outbox {
        Outbox {
            client,
            table: table.into(),
            publisher,
            index: None,
        }
    }

    /// Removes `attribute` (the partition key of a sparse index of records that owe work) when
    /// a record's events are sent, so a sweep of that index sees only unfinished work.
    pub fn leaving_index(mut self, attribute: &'static str) -> Outbox {
        self.index = Some(attribute);
        self
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Takes the lease of the record at `key` if it has lapsed and `condition` (over the
    /// record's attributes; `#state` names `state`, its values in `values`) holds. `Some`: the record as it now is, this
    /// invocation's until the lease ends. `None`: another invocation has it, or the condition
    /// does not hold (the work is done, or was never there).
    pub async fn take(
        &self,
        key: &Item,
        now: u64,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Option<(Lease, Item)>, Error> {
        let until = lease_from(now);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()))
            .update_expression("SET lease_until = :until")
            .condition_expression(format!(
                "attribute_exists(pk) AND {LAPSED} AND ({condition})"
            ))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew);
        if condition.contains("#state") {
            update = update.expression_attribute_names("#state", "state");
        }
        for (name, value) in values {
            update = update.expression_attribute_values(*name, value.clone());
        }
        let result = update.send().await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) => {
                written::<(), _>(Err(e), "UpdateItem")?;
                return Ok(None);
            }
        };
        Ok(Some((
            Lease {
                key: key.clone(),
                until,
            },
            item,
        )))
    }

    /// Publishes `events` (a record's outbox, as written) and removes them from the record, if
    /// they are still its outbox; the lease ends with them. Returns the detail-types published.
    pub async fn send(
        &self,
        lease: &Lease,
        events: &[OutgoingEvent],
    ) -> Result<Vec<String>, Error> {
        self.send_until(lease, events, None).await?;
        Ok(events.iter().map(|e| e.detail_type.to_string()).collect())
    }

    /// [`Outbox::send`], giving up (retryably) rather than run past `deadline`; returns the
    /// EventBridge event ids, which the record keeps (`sent_ids`) in place of the outbox.
    pub async fn send_until(
        &self,
        lease: &Lease,
        events: &[OutgoingEvent],
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Vec<String>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let published = self.publisher.publish_until(events, deadline).await?;
        let ids = serde_json::to_string(&published.event_ids).map_err(Error::Encode)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression(match self.index {
                Some(index) => {
                    format!("REMOVE outbox, {index} SET lease_until = :zero, sent_ids = :ids")
                }
                None => "REMOVE outbox SET lease_until = :zero, sent_ids = :ids".to_string(),
            })
            .condition_expression("outbox = :sent")
            .expression_attribute_values(":sent", outbox_value(events)?)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":ids", s(&ids))
            .send()
            .await;
        // Not removed: another invocation took the record over and sent it; nothing to undo.
        written(result, "UpdateItem")?;
        Ok(published.event_ids)
    }

    /// Finishes what a dead invocation left owed on the record at `key`: takes its lapsed lease
    /// if it owes events and `condition` holds, and sends them. `None`: nothing owed, or another
    /// invocation holds it.
    pub async fn finish(&self, key: &Item, now: u64) -> Result<Option<Vec<String>>, Error> {
        let Some((lease, item)) = self.take(key, now, "attribute_exists(outbox)", &[]).await?
        else {
            return Ok(None);
        };
        let events = owed(&item)?;
        let result = self.send(&lease, &events).await;
        self.guard(&lease, result).await.map(Some)
    }

    /// Gives the lease back now, so the next delivery or Lambda's retry need not wait for it;
    /// only if it is still this invocation's.
    pub async fn let_go(&self, lease: &Lease) -> Result<(), Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression("SET lease_until = :zero")
            .condition_expression("lease_until = :mine")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":mine", n(lease.until))
            .send()
            .await;
        written(result, "UpdateItem").map(|_| ())
    }

    /// Passes `result` through, letting go of the lease when it is an error.
    pub async fn guard<T>(&self, lease: &Lease, result: Result<T, Error>) -> Result<T, Error> {
        if result.is_err()
            && let Err(e) = self.let_go(lease).await
        {
            tracing::warn!(error = %e, "could not let go of the lease; the retry waits for it to lapse");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_holds_strictly_before_its_end() {
        assert!(leased(lease_from(100), 100));
        assert!(leased(lease_from(100), 100 + LEASE_SECS - 1));
        assert!(!leased(lease_from(100), 100 + LEASE_SECS));
        assert!(!leased(0, 1));
        assert!(
            LAPSED.contains("lease_until <= :now"),
            "the negation of leased"
        );
    }

    #[test]
    fn an_outbox_reads_back_as_written() {
        let events = vec![
            OutgoingEvent::foreign("x.y", "Thing Happened", &serde_json::json!({"a": 1})).unwrap(),
        ];
        let mut item = Item::new();
        item.insert(OUTBOX.into(), outbox_value(&events).unwrap());
        assert_eq!(owed(&item).unwrap(), events);
        assert!(owed(&Item::new()).unwrap().is_empty());
        item.insert(OUTBOX.into(), s("{"));
        assert!(owed(&item).is_err());
    }
}
