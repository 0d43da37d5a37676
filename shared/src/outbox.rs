//! Decide once, act once, say it once: the one mechanism every eddo function uses.
//!
//! A record that guards a side effect (a gate candidate, an alarm change, a rollback, a tenant)
//! carries two attributes, written by the same conditional write as the decision they serve:
//!
//! - `lease_until` and `lease_id`: until when, and under which id, the invocation that wrote
//!   the decision has the record to itself. The lease lasts the invocation's time left and
//!   [`LEASE_MARGIN_SECS`] ([`within`], [`lease_secs`]), so only dead work is taken over; its id
//!   ([`MINE`]) tells two leases of the same second apart. One rule says when it has lapsed:
//!   [`leased`], and [`LAPSED`] in conditions.
//! - `outbox`: the events the decision owes, exactly as they will be published. An effect whose
//!   outcome the events report (a build started) writes them with its outcome; a decision with no
//!   effect writes them with the decision.
//!
//! The invocation that owns the lease performs the effect, then [`Outbox::send`]s the events and
//! removes them, on the condition that the outbox is still the one it sent. If it fails, the
//! [`Outbox::guard`] lets go of the lease at once, so Lambda's retry need not wait for it; if it
//! dies, the lease lapses. Either way a later invocation about the same record [`Outbox::take`]s
//! the lease (a conditional write, so one does) and finishes the work: the events are published
//! from the record, whoever publishes them. They are published at least once: an invocation that
//! dies or fails after PutEvents and before removing them leaves them to be published again,
//! identical (each carries its `event_key`); after a publish EventBridge accepted in part, the
//! record keeps only the entries it did not accept.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::Error;
use crate::dynamo::{Item, attr, n, num, s, written};
use crate::publish::{OutgoingEvent, Publisher};

/// The attribute holding the events a record owes.
pub const OUTBOX: &str = "outbox";

/// The attribute holding the lease's end (epoch seconds).
pub const LEASE_UNTIL: &str = "lease_until";

/// How long an invocation has a record to itself when no invocation deadline is known (a test,
/// the CLI): past any eddo function's timeout (30 s).
pub const DEFAULT_LEASE_SECS: u64 = 45;

/// How long a lease outlasts the invocation that holds it: for clocks and for a call the runtime
/// cut off at the deadline that still lands.
pub const LEASE_MARGIN_SECS: u64 = 15;

/// A condition that the record's lease has lapsed, for a write whose values hold `:now`.
pub const LAPSED: &str = "(attribute_not_exists(lease_until) OR lease_until <= :now)";

/// A condition that the record's lease is the one whose id is `:lease_id`.
pub const MINE: &str = "lease_id = :lease_id";

/// The attribute holding the lease's id: what tells two leases of the same second apart.
pub const LEASE_ID: &str = "lease_id";

tokio::task_local! {
    /// The invocation's deadline (epoch milliseconds), as the Lambda runtime gives it.
    static DEADLINE_MS: u64;
}

/// Runs `work` (one invocation) with its deadline (`Context::deadline`, epoch milliseconds), so
/// every lease it takes lasts as long as it can still act, and no longer.
pub async fn within<F: Future>(deadline_ms: u64, work: F) -> F::Output {
    DEADLINE_MS.scope(deadline_ms, work).await
}

/// How long a lease taken now lasts: the invocation's time left and [`LEASE_MARGIN_SECS`];
/// [`DEFAULT_LEASE_SECS`] outside an invocation.
pub fn lease_secs() -> u64 {
    time_left().map_or(DEFAULT_LEASE_SECS, |left| {
        u64::try_from(left.as_millis())
            .unwrap_or(u64::MAX)
            .div_ceil(1000)
            + LEASE_MARGIN_SECS
    })
}

/// The invocation's time left, within [`within`]; `None` outside an invocation.
pub fn time_left() -> Option<std::time::Duration> {
    DEADLINE_MS
        .try_with(|deadline| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or_default();
            std::time::Duration::from_millis(deadline.saturating_sub(now))
        })
        .ok()
}

/// The end of a lease taken at `now`.
pub fn lease_from(now: u64) -> u64 {
    now + lease_secs()
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

/// The record's lease id (empty: none).
pub fn lease_id_of(item: &Item) -> &str {
    attr(item, LEASE_ID).unwrap_or_default()
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

/// Whose a conditional write that failed its condition was ([`Outbox::written_under`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// This invocation's own, applied, its answer lost: carry on as if it had answered.
    Mine,
    /// Another invocation's, and the record still owes events: not done until they are said,
    /// so the caller answers "in progress" and its delivery is retried, never "done".
    Owed,
    /// Another invocation's, with nothing left owed.
    Theirs,
}

/// An id no other decision or lease carries (128 random bits, hex).
pub fn unique_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// A lease this invocation holds on one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub key: Item,
    /// The lease's end as written (epoch seconds).
    pub until: u64,
    /// Its id as written: what says it is still this invocation's (two leases taken in the same
    /// second have different ids).
    pub id: String,
}

impl Lease {
    /// The lease a decision's write takes at `now` on the record at `key`.
    pub fn new(key: Item, now: u64) -> Lease {
        Lease {
            key,
            until: lease_from(now),
            id: unique_id(),
        }
    }

    /// The `SET` clauses that write this lease, with [`Lease::values`].
    pub const SET: &'static str = "lease_until = :lease, lease_id = :lease_id";

    /// The values of [`Lease::SET`] and [`MINE`].
    pub fn values(&self) -> [(&'static str, AttributeValue); 2] {
        [(":lease", n(self.until)), (":lease_id", s(&self.id))]
    }

    /// Whether the record `item` still holds this lease.
    pub fn holds(&self, item: &Item) -> bool {
        lease_id_of(item) == self.id
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
        let lease = Lease::new(key.clone(), now);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()))
            .update_expression(format!("SET {}", Lease::SET))
            .condition_expression(format!(
                "attribute_exists(pk) AND {LAPSED} AND ({condition})"
            ))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew);
        if condition.contains("#state") {
            update = update.expression_attribute_names("#state", "state");
        }
        for (name, value) in values.iter().cloned().chain(lease.values()) {
            update = update.expression_attribute_values(name, value);
        }
        let result = update.send().await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) => {
                written::<(), _>(Err(e), "UpdateItem")?;
                return Ok(None);
            }
        };
        Ok(Some((lease, item)))
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
        let (event_ids, result) = self.publisher.publish_each(events, deadline).await;
        if let Err(e) = result {
            self.keep_unsent(lease, events, &event_ids).await;
            return Err(e);
        }
        let ids = serde_json::to_string(&event_ids).map_err(Error::Encode)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression(match self.index {
                Some(index) => {
                    format!(
                        "REMOVE outbox, lease_id, {index} SET lease_until = :zero, sent_ids = :ids"
                    )
                }
                None => {
                    "REMOVE outbox, lease_id SET lease_until = :zero, sent_ids = :ids".to_string()
                }
            })
            .condition_expression("outbox = :sent")
            .expression_attribute_values(":sent", outbox_value(events)?)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":ids", s(&ids))
            .send()
            .await;
        // Not removed: another invocation took the record over and sent it; nothing to undo.
        written(result, "UpdateItem")?;
        Ok(event_ids)
    }

    /// After a publish EventBridge accepted in part: the record's outbox keeps only the entries
    /// not accepted (if it is still the one sent), so whoever sends it next publishes those, not
    /// the accepted ones again. Best effort: if this write fails, the next sender publishes them
    /// all again, identical, with their `event_key`.
    async fn keep_unsent(&self, lease: &Lease, events: &[OutgoingEvent], event_ids: &[String]) {
        let accepted = event_ids.iter().filter(|id| !id.is_empty()).count();
        if accepted == 0 {
            return;
        }
        let unsent: Vec<OutgoingEvent> = events
            .iter()
            .zip(event_ids)
            .filter(|(_, id)| id.is_empty())
            .map(|(e, _)| e.clone())
            .collect();
        let (Ok(sent), Ok(rest)) = (outbox_value(events), outbox_value(&unsent)) else {
            return;
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease.key.clone()))
            .update_expression("SET outbox = :rest")
            .condition_expression("outbox = :sent")
            .expression_attribute_values(":sent", sent)
            .expression_attribute_values(":rest", rest)
            .send()
            .await;
        match written(result, "UpdateItem") {
            Ok(_) => tracing::info!(
                accepted,
                left = unsent.len(),
                "kept the outbox's unsent entries"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not keep the outbox's progress; its accepted entries will be sent again")
            }
        }
    }

    /// Whose a conditional write under `lease` turned out to be, once it answered "condition
    /// failed": read from the table (strongly consistent), not guessed. A write whose answer was
    /// lost after it applied is sent again by the SDK, and the copy fails the condition the
    /// first met; the record, still under this lease and showing the write (`applied`), says
    /// it was this invocation's own. Anything else was another invocation's.
    pub async fn written_under(
        &self,
        lease: &Lease,
        applied: impl Fn(&Item) -> bool,
    ) -> Result<Written, Error> {
        let item = crate::dynamo::get(&self.client, &self.table, lease.key.clone()).await?;
        Ok(match item {
            Some(item) if lease.holds(&item) && applied(&item) => Written::Mine,
            Some(item) if item.contains_key(OUTBOX) => Written::Owed,
            _ => Written::Theirs,
        })
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
            .update_expression("SET lease_until = :zero REMOVE lease_id")
            .condition_expression(MINE)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":lease_id", s(&lease.id))
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
        assert!(leased(lease_from(100), 100 + DEFAULT_LEASE_SECS - 1));
        assert!(!leased(lease_from(100), 100 + DEFAULT_LEASE_SECS));
        assert!(!leased(0, 1));
        assert!(
            LAPSED.contains("lease_until <= :now"),
            "the negation of leased"
        );
    }

    #[test]
    fn two_leases_of_one_second_are_two() {
        let (a, b) = (Lease::new(Item::new(), 100), Lease::new(Item::new(), 100));
        assert_eq!(a.until, b.until);
        assert_ne!(a.id, b.id);
        let mut item = Item::new();
        item.insert(LEASE_ID.into(), s(&a.id));
        assert!(a.holds(&item) && !b.holds(&item));
    }

    #[tokio::test]
    async fn a_lease_lasts_the_invocation_s_time_left_and_a_margin() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let secs = within(now_ms + 120_000, async { lease_secs() }).await;
        assert!(
            (120 + LEASE_MARGIN_SECS - 1..=120 + LEASE_MARGIN_SECS).contains(&secs),
            "{secs}"
        );
        let past = within(now_ms.saturating_sub(1_000), async { lease_secs() }).await;
        assert_eq!(past, LEASE_MARGIN_SECS);
        assert_eq!(lease_secs(), DEFAULT_LEASE_SECS, "outside an invocation");
    }

    /// EventBridge accepts the first entry and refuses the second: the record keeps only the
    /// second, so the next sender does not publish the first again.
    #[tokio::test]
    async fn a_partial_publish_leaves_only_the_unsent_entries_owed() {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
        use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
        use aws_sdk_eventbridge::types::PutEventsResultEntry;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let events = vec![
            OutgoingEvent::foreign("x.y", "First", &serde_json::json!({"n": 1})).unwrap(),
            OutgoingEvent::foreign("x.y", "Second", &serde_json::json!({"n": 2})).unwrap(),
        ];
        let put = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(PutEventsResultEntry::builder().event_id("id-1").build())
                .entries(
                    PutEventsResultEntry::builder()
                        .error_code("ValidationException")
                        .error_message("refused")
                        .build(),
                )
                .build()
        });
        let rest = outbox_value(&events[1..]).unwrap();
        let sent = outbox_value(&events).unwrap();
        let kept = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(move |r| {
                r.update_expression() == Some("SET outbox = :rest")
                    && r.expression_attribute_values().is_some_and(|v| {
                        v.get(":rest") == Some(&rest) && v.get(":sent") == Some(&sent)
                    })
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let bus = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&put]);
        let table = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&kept]);
        let outbox = Outbox::new(table, "t", Publisher::new(bus, "eddo", 256 * 1024));
        let lease = Lease::new(Item::new(), 100);
        let err = outbox.send(&lease, &events).await.unwrap_err();
        assert!(matches!(err, Error::PublishRejected { .. }), "{err}");
        assert_eq!(put.num_calls(), 1);
        assert_eq!(
            kept.num_calls(),
            1,
            "the outbox keeps the unsent entry alone"
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
