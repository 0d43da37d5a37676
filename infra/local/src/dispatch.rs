//! Rule targets that are functions: moto routes each matching event to one SQS queue per
//! (rule, function), and the dispatcher invokes the function with it as Lambda's asynchronous
//! invocation does: on a function error, two more attempts, then the dead-letter queue with the
//! event and the last error. Nothing is lost and nothing is retried forever.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::runtime::{LocalFunction, Outcome};
use crate::{LocalError, aws};

/// Lambda's asynchronous invocation: the first attempt and two retries.
pub const ATTEMPTS: u32 = 3;

/// One rule target that is a function.
pub struct Route {
    pub rule: String,
    pub queue_url: String,
    pub function: Arc<LocalFunction>,
}

/// What became of one event delivered to one function.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub rule: String,
    pub function: String,
    pub event_id: String,
    pub detail_type: String,
    pub attempts: u32,
    pub outcome: Outcome,
    pub dead_lettered: bool,
}

pub struct Dispatcher {
    sqs: aws_sdk_sqs::Client,
    routes: Vec<Route>,
    dead_letter_queue: Option<String>,
}

impl Dispatcher {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        routes: Vec<Route>,
        dead_letter_queue: Option<String>,
    ) -> Self {
        Dispatcher {
            sqs: aws_sdk_sqs::Client::new(sdk),
            routes,
            dead_letter_queue,
        }
    }

    /// Delivers every event waiting on every route, waiting up to `wait` for the first.
    pub async fn pump(&self, wait: Duration) -> Result<Vec<Delivery>, LocalError> {
        let deadline = std::time::Instant::now() + wait;
        let mut deliveries = Vec::new();
        loop {
            let mut any = false;
            for route in &self.routes {
                let out = self
                    .sqs
                    .receive_message()
                    .queue_url(&route.queue_url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .map_err(|e| aws("ReceiveMessage", e))?;
                for message in out.messages() {
                    any = true;
                    let event: Value =
                        serde_json::from_str(message.body().unwrap_or("{}")).unwrap_or_default();
                    deliveries.push(self.deliver(route, &event).await?);
                    if let Some(handle) = message.receipt_handle() {
                        self.sqs
                            .delete_message()
                            .queue_url(&route.queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| aws("DeleteMessage", e))?;
                    }
                }
            }
            if (!any && !deliveries.is_empty()) || std::time::Instant::now() >= deadline {
                return Ok(deliveries);
            }
            if !any {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn deliver(&self, route: &Route, event: &Value) -> Result<Delivery, LocalError> {
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            let outcome = route.function.invoke(event).await?.outcome;
            if matches!(outcome, Outcome::Response(_)) || attempts == ATTEMPTS {
                break outcome;
            }
        };
        let failed = !matches!(outcome, Outcome::Response(_));
        if failed && let Some(dlq) = &self.dead_letter_queue {
            let record = json!({
                "rule": route.rule,
                "function": route.function.name(),
                "attempts": attempts,
                "error": outcome.summary(),
                "event": event,
            });
            self.sqs
                .send_message()
                .queue_url(dlq)
                .message_body(record.to_string())
                .send()
                .await
                .map_err(|e| aws("SendMessage", e))?;
        }
        Ok(Delivery {
            rule: route.rule.clone(),
            function: route.function.name().to_string(),
            event_id: event["id"].as_str().unwrap_or_default().to_string(),
            detail_type: event["detail-type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            attempts,
            outcome,
            dead_lettered: failed && self.dead_letter_queue.is_some(),
        })
    }
}
