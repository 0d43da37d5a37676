//! Small helpers for DynamoDB items and conditional writes, shared by every store in eddo.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::Error;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

pub fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An item's key: its partition and sort key values.
pub fn key(pk: AttributeValue, sk: AttributeValue) -> Item {
    [("pk".to_string(), pk), ("sk".to_string(), sk)].into()
}

/// Reads one item, strongly consistent: every eddo store reads what it is about to decide on.
pub async fn get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
) -> Result<Option<Item>, Error> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| Error::aws("DynamoDB", "GetItem", e))?;
    Ok(out.item)
}

/// A string attribute.
pub fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute that fits a `u64`.
pub fn num(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Whether a conditional write happened: `Ok(false)` when its condition did not hold (someone
/// else wrote first, or it was done already); any other failure is the error.
pub fn written<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    operation: &'static str,
) -> Result<bool, Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(Error::aws("DynamoDB", operation, e)),
    }
}

/// Whether a transaction happened: `Ok(false)` when it was cancelled because a condition did not
/// hold. Cancelled for another reason (a conflict with a concurrent transaction on one of its
/// items, throttling) it is a retryable error: nothing was decided, so it must not read as
/// "someone else decided".
pub fn transacted<O>(
    result: Result<O, SdkError<TransactWriteItemsError, HttpResponse>>,
) -> Result<bool, Error> {
    match result {
        Ok(_) => Ok(true),
        Err(e) => {
            if cancelled(&e).is_some() {
                return Ok(false);
            }
            let retryable = matches!(
                e.as_service_error(),
                Some(TransactWriteItemsError::TransactionCanceledException(_))
            );
            let err = Error::aws("DynamoDB", "TransactWriteItems", e);
            Err(match err {
                Error::Aws {
                    service,
                    operation,
                    message,
                    ..
                } if retryable => Error::Aws {
                    service,
                    operation,
                    message,
                    retry: crate::Retry::Retryable,
                },
                other => other,
            })
        }
    }
}

/// Which items' conditions failed, in order, when a transaction was cancelled by its conditions
/// alone; `None` for any other error (a conflict, throttling), which [`transacted`] classifies.
pub fn cancelled(result: &SdkError<TransactWriteItemsError, HttpResponse>) -> Option<Vec<bool>> {
    let Some(TransactWriteItemsError::TransactionCanceledException(c)) = result.as_service_error()
    else {
        return None;
    };
    let reasons = c.cancellation_reasons();
    reasons
        .iter()
        .all(|r| matches!(r.code(), None | Some("None" | "ConditionalCheckFailed")))
        .then(|| {
            reasons
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, TransactionCanceledException,
    };
    use aws_smithy_runtime_api::http::StatusCode;

    fn response() -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        )
    }

    #[allow(clippy::result_large_err)] // the SDK's own error type, as `send()` returns it
    fn cancelled(codes: &[&str]) -> Result<(), SdkError<TransactWriteItemsError, HttpResponse>> {
        let reasons = codes
            .iter()
            .map(|c| CancellationReason::builder().code(*c).build())
            .collect();
        Err(SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .set_cancellation_reasons(Some(reasons))
                    .meta(
                        ErrorMetadata::builder()
                            .code("TransactionCanceledException")
                            .build(),
                    )
                    .build(),
            ),
            response(),
        ))
    }

    #[test]
    fn a_failed_condition_is_no_write_and_anything_else_an_error() {
        let failed: Result<(), _> = Err(SdkError::service_error(
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .meta(
                        ErrorMetadata::builder()
                            .code("ConditionalCheckFailedException")
                            .build(),
                    )
                    .build(),
            ),
            response(),
        ));
        assert!(!written(failed, "PutItem").unwrap());
        assert!(
            written(
                Ok::<(), SdkError<PutItemError, HttpResponse>>(()),
                "PutItem"
            )
            .unwrap()
        );
    }

    #[test]
    fn a_transaction_lost_to_a_conflict_is_retried_not_read_as_decided() {
        assert!(!transacted(cancelled(&["None", "ConditionalCheckFailed"])).unwrap());
        let err = transacted(cancelled(&["None", "TransactionConflict"])).unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
