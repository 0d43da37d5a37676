//! The AWS resources eddo needs, created on the emulator: the bus, the state table, the webhook
//! secret, and SQS queues that rules on the bus deliver to, so what was published can be read
//! back exactly as a rule target would receive it.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use serde_json::{Value, json};

use crate::LocalError;

/// The local development secrets. They exist only on the emulator; never use them in AWS.
pub const LOCAL_GITHUB_SECRET: &str = "eddo-local-github-secret";
pub const LOCAL_GITLAB_TOKEN: &str = "eddo-local-gitlab-token";
pub const LOCAL_STANDARD_SECRET: &str = "whsec_ZWRkby1sb2NhbC1zdGFuZGFyZC1zZWNyZXQ=";

/// The example rule the README shows: a push to a tracked branch, which in AWS would start the
/// build project.
pub const TRACKED_PUSH_PATTERN: &str = r#"{"source":["eddo.webhook"],"detail-type":["Git Push"],"detail":{"branch":["main","master"]}}"#;
/// Everything eddo publishes, for watching the bus.
pub const TAP_PATTERN: &str = r#"{"source":[{"prefix":"eddo."}]}"#;

pub struct Stack {
    pub sdk: SdkConfig,
    pub bus: String,
    pub table: String,
    pub secret_arn: String,
    /// Receives every eddo event (rule `TAP_PATTERN`).
    pub tap_queue: String,
    /// Receives pushes to tracked branches (rule `TRACKED_PUSH_PATTERN`).
    pub push_queue: String,
}

impl Stack {
    /// Creates every resource, each name prefixed with `prefix` so stacks can share an emulator.
    pub async fn provision(sdk: &SdkConfig, prefix: &str) -> Result<Stack, LocalError> {
        let bus = format!("{prefix}-bus");
        let table = format!("{prefix}-state");
        let eb = aws_sdk_eventbridge::Client::new(sdk);
        eb.create_event_bus()
            .name(&bus)
            .send()
            .await
            .map_err(|e| aws("CreateEventBus", e))?;

        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        ddb.create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).map_err(|e| LocalError::Aws(e.to_string()))?)
            .key_schema(key("sk", KeyType::Range).map_err(|e| LocalError::Aws(e.to_string()))?)
            .attribute_definitions(attr("pk").map_err(|e| LocalError::Aws(e.to_string()))?)
            .attribute_definitions(attr("sk").map_err(|e| LocalError::Aws(e.to_string()))?)
            .send()
            .await
            .map_err(|e| aws("CreateTable", e))?;
        ddb.update_time_to_live()
            .table_name(&table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .map_err(|e| LocalError::Aws(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| aws("UpdateTimeToLive", e))?;

        let sm = aws_sdk_secretsmanager::Client::new(sdk);
        let secret = sm
            .create_secret()
            .name(format!("{prefix}-webhook"))
            .secret_string(
                json!({
                    "github": LOCAL_GITHUB_SECRET,
                    "gitlab": LOCAL_GITLAB_TOKEN,
                    "standard_webhooks": LOCAL_STANDARD_SECRET,
                })
                .to_string(),
            )
            .send()
            .await
            .map_err(|e| aws("CreateSecret", e))?;
        let secret_arn = secret.arn().unwrap_or_default().to_string();

        let mut stack = Stack {
            sdk: sdk.clone(),
            bus,
            table,
            secret_arn,
            tap_queue: String::new(),
            push_queue: String::new(),
        };
        stack.tap_queue = stack
            .route_to_queue(&format!("{prefix}-tap"), TAP_PATTERN)
            .await?;
        stack.push_queue = stack
            .route_to_queue(&format!("{prefix}-tracked-push"), TRACKED_PUSH_PATTERN)
            .await?;
        Ok(stack)
    }

    /// Creates a queue and a rule on the bus that delivers `pattern`'s matches to it; returns the
    /// queue URL.
    pub async fn route_to_queue(&self, name: &str, pattern: &str) -> Result<String, LocalError> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let queue = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| aws("CreateQueue", e))?;
        let url = queue.queue_url().unwrap_or_default().to_string();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| aws("GetQueueAttributes", e))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        let eb = aws_sdk_eventbridge::Client::new(&self.sdk);
        eb.put_rule()
            .name(name)
            .event_bus_name(&self.bus)
            .event_pattern(pattern)
            .send()
            .await
            .map_err(|e| aws("PutRule", e))?;
        eb.put_targets()
            .rule(name)
            .event_bus_name(&self.bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(arn)
                    .build()
                    .map_err(|e| LocalError::Aws(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| aws("PutTargets", e))?;
        Ok(url)
    }

    /// The environment the template gives the webhook function.
    pub fn webhook_env(&self) -> Vec<(String, String)> {
        vec![
            ("EDDO_EVENT_BUS_NAME".into(), self.bus.clone()),
            ("EDDO_TABLE_NAME".into(), self.table.clone()),
            ("EDDO_WEBHOOK_SECRET_ARN".into(), self.secret_arn.clone()),
        ]
    }

    /// Every event waiting on `queue`, as the rule's target received it (the whole EventBridge
    /// event: `id`, `source`, `detail-type`, `detail`, ...). Waits up to `wait` for the first.
    pub async fn drain(&self, queue: &str, wait: Duration) -> Result<Vec<Value>, LocalError> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut events = Vec::new();
        let deadline = std::time::Instant::now() + wait;
        loop {
            let out = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(|e| aws("ReceiveMessage", e))?;
            let messages = out.messages();
            for m in messages {
                let body = m.body().unwrap_or_default();
                events.push(
                    serde_json::from_str(body)
                        .map_err(|e| LocalError::Aws(format!("not an event: {e}")))?,
                );
                if let Some(handle) = m.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(queue)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| aws("DeleteMessage", e))?;
                }
            }
            if messages.is_empty() && (!events.is_empty() || std::time::Instant::now() >= deadline)
            {
                return Ok(events);
            }
            if messages.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn aws<E: std::error::Error + 'static>(op: &str, e: E) -> LocalError {
    LocalError::Aws(format!(
        "{op}: {}",
        aws_sdk_eventbridge::error::DisplayErrorContext(&e)
    ))
}
