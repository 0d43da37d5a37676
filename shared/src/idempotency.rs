//! Exactly-once side effects over at-least-once delivery.
//!
//! Before a side effect, a function claims a key with a conditional write. The claim is
//! `IN_PROGRESS` with a short lease: if the invocation dies, the lease lapses and a retry may claim
//! again. After the effect the record is `COMPLETED` and kept for the retention (at least 24 h,
//! the longest EventBridge and Lambda retry), so a redelivery finds it and does nothing. DynamoDB's
//! TTL deletes records late, so every check compares the expiry itself.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::dynamo::{attr, n, s};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::error::Error;

/// The shortest retention that outlives every retry AWS makes of an async event.
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

const SK: &str = "idempotency";
const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

/// Seconds since the Unix epoch, the unit of DynamoDB TTL attributes.
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A key naming one side effect: who performs it and on what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn new(scope: &str, id: &str) -> Self {
        IdempotencyKey(format!("idem#{scope}#{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation owns the effect: perform it, then `complete` or `release`.
    Acquired(Lease),
    /// The effect already happened; `result` is what the first invocation recorded.
    Completed { result: Option<String> },
    /// Another invocation holds a live lease on it.
    InProgress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    key: IdempotencyKey,
    owner: String,
}

#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    lease: Duration,
    retention: Duration,
}

impl IdempotencyStore {
    /// `lease` should exceed the function's timeout; `retention` is raised to at least 24 h.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        lease: Duration,
        retention: Duration,
    ) -> Self {
        IdempotencyStore {
            client,
            table: table.into(),
            lease,
            retention: retention.max(MIN_RETENTION),
        }
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    pub async fn claim(&self, key: &IdempotencyKey, now: u64) -> Result<Claim, Error> {
        let owner = format!("{:032x}", fastrand::u128(..));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key.as_str()))
            .item("sk", s(SK))
            .item("status", s(IN_PROGRESS))
            .item("owner", s(&owner))
            .item("lease_until", n(now + self.lease.as_secs()))
            .item("expires_at", n(now + self.retention.as_secs()))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (#status = :in_progress AND lease_until < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired(Lease {
                key: key.clone(),
                owner,
            })),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let item = match e.item() {
                        Some(item) => Some(item.clone()),
                        None => self.read(key).await?,
                    };
                    Ok(match item {
                        Some(item) if attr(&item, "status") == Some(COMPLETED) => {
                            Claim::Completed {
                                result: attr(&item, "result").map(str::to_string),
                            }
                        }
                        // Gone between the write and the read: a retry will claim it.
                        _ => Claim::InProgress,
                    })
                }
                _ => Err(Error::aws("DynamoDB", "PutItem", err)),
            },
        }
    }

    /// Marks the effect done, keeping the record for the retention from now.
    pub async fn complete(
        &self,
        lease: &Lease,
        result: Option<&str>,
        now: u64,
    ) -> Result<(), Error> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(lease.key.as_str()))
            .key("sk", s(SK))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":expires", n(now + self.retention.as_secs()));
        update = match result {
            Some(r) => update
                .update_expression("SET #status = :completed, expires_at = :expires, #result = :result REMOVE lease_until")
                .expression_attribute_names("#result", "result")
                .expression_attribute_values(":result", s(r)),
            None => update.update_expression("SET #status = :completed, expires_at = :expires REMOVE lease_until"),
        };
        update
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "UpdateItem", e))?;
        Ok(())
    }

    /// Gives the claim up after a failed effect, so a retry or redelivery can perform it.
    pub async fn release(&self, lease: &Lease) -> Result<(), Error> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(lease.key.as_str()))
            .key("sk", s(SK))
            .condition_expression("#owner = :owner AND #status = :in_progress")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        // Not deleted: someone else holds it now, theirs to finish.
        crate::dynamo::written(result, "DeleteItem").map(|_| ())
    }

    async fn read(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<HashMap<String, AttributeValue>>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key.as_str()))
            .key("sk", s(SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "GetItem", e))?;
        Ok(out.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client};

    #[test]
    fn retention_is_at_least_a_day() {
        let rule = mock!(aws_sdk_dynamodb::Client::put_item)
            .then_output(|| PutItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        let store = IdempotencyStore::new(
            client,
            "t",
            Duration::from_secs(30),
            Duration::from_secs(60),
        );
        assert_eq!(store.retention(), MIN_RETENTION);
    }

    #[tokio::test]
    async fn a_completed_record_in_the_failed_condition_is_a_duplicate() {
        let rule = mock!(aws_sdk_dynamodb::Client::put_item).then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .item("status", s(COMPLETED))
                    .item("result", s("event-1"))
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        let store = IdempotencyStore::new(client, "t", Duration::from_secs(30), MIN_RETENTION);
        let claim = store
            .claim(&IdempotencyKey::new("webhook", "d-1"), 1_000)
            .await
            .unwrap();
        assert_eq!(
            claim,
            Claim::Completed {
                result: Some("event-1".into())
            }
        );
    }
}
