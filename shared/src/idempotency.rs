//! Events published once per key (a webhook delivery) over at-least-once delivery, on
//! [`crate::outbox`].
//!
//! The first delivery of a key writes the events it owes with a lease, in one conditional write,
//! then sends them. A redelivery finds them sent (a duplicate: the ids they were published
//! under), being sent by a live invocation (in progress), or left by a dead one whose lease has
//! lapsed: then it takes the record over and sends what the first delivery wrote. The record is
//! kept for the retention (at least 24 h, the longest EventBridge and Lambda retry); DynamoDB's
//! TTL deletes records late, so the claim compares the expiry itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use crate::dynamo::{Item, get, key, n, s};
use crate::error::Error;
use crate::outbox::{self, Lease, Outbox};
use crate::publish::OutgoingEvent;

/// The shortest retention that outlives every retry AWS makes of an async event.
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

const SK: &str = "idempotency";

/// Seconds since the Unix epoch, the unit of DynamoDB TTL attributes.
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A key naming one delivery: who receives it and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn new(scope: &str, id: &str) -> Self {
        IdempotencyKey(format!("idem#{scope}#{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn item(&self) -> Item {
        key(s(&self.0), s(SK))
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This invocation owes the events it wrote: send them under the lease.
    Acquired(Lease),
    /// A dead invocation left these events unsent; this one holds the record now: send them.
    Abandoned(Lease, Vec<OutgoingEvent>),
    /// Sent already, under these EventBridge ids.
    Sent { event_ids: Vec<String> },
    /// A live invocation holds it.
    InProgress,
}

/// Where deliveries are remembered.
#[derive(Debug, Clone)]
pub struct Once {
    outbox: Outbox,
    retention: Duration,
}

impl Once {
    /// `retention` is raised to at least 24 h.
    pub fn new(outbox: Outbox, retention: Duration) -> Once {
        Once {
            outbox,
            retention: retention.max(MIN_RETENTION),
        }
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Claims `key` for `events`: the first claim writes them with this invocation's lease.
    pub async fn claim(
        &self,
        key: &IdempotencyKey,
        events: &[OutgoingEvent],
        now: u64,
    ) -> Result<Claim, Error> {
        let lease = Lease::new(key.item(), now);
        let result = self
            .outbox
            .client()
            .put_item()
            .table_name(self.outbox.table())
            .set_item(Some(key.item()))
            .item(outbox::OUTBOX, outbox::outbox_value(events)?)
            .item(outbox::LEASE_UNTIL, n(lease.until))
            .item(outbox::LEASE_ID, s(&lease.id))
            .item("expires_at", n(now + self.retention.as_secs()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let item = match result {
            Ok(_) => return Ok(Claim::Acquired(lease)),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => match e.item() {
                    Some(item) => item.clone(),
                    None => match get(self.outbox.client(), self.outbox.table(), key.item()).await?
                    {
                        Some(item) => item,
                        // Gone between the write and the read: a retry will claim it.
                        None => return Ok(Claim::InProgress),
                    },
                },
                _ => return Err(Error::aws("DynamoDB", "PutItem", err)),
            },
        };
        if outbox::owed(&item)?.is_empty() {
            return Ok(Claim::Sent {
                event_ids: outbox::sent_ids(&item),
            });
        }
        if outbox::leased(outbox::lease_of(&item), now) {
            return Ok(Claim::InProgress);
        }
        match self
            .outbox
            .take(&key.item(), now, "attribute_exists(outbox)", &[])
            .await?
        {
            Some((lease, item)) => Ok(Claim::Abandoned(lease, outbox::owed(&item)?)),
            None => Ok(Claim::InProgress),
        }
    }
}
