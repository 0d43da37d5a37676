//! The state table as it is: items read plainly, as the administrator, never through eddo's
//! parsers. Ground truth for what a function wrote, for tests and the soak.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::Stack;
use crate::{LocalError, aws};

/// An item as DynamoDB returns it.
pub type RawItem = HashMap<String, AttributeValue>;

impl Stack {
    /// The item at (`pk`, `sk`), strongly consistent.
    pub async fn item(&self, pk: &str, sk: &str) -> Result<Option<RawItem>, LocalError> {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| aws("GetItem", e))
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, strongly consistent.
    pub async fn items_under(&self, pk: &str, prefix: &str) -> Result<Vec<RawItem>, LocalError> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

/// A string attribute of `item`, if it has one.
pub fn text<'a>(item: &'a RawItem, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}
