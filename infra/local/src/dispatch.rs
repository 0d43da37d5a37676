//! Rule targets: moto routes each matching event to one SQS queue per (rule, target), and the
//! dispatcher hands it on. A function is invoked as Lambda's asynchronous invocation does: on a
//! function error, two more attempts, then the dead-letter queue with the event and the last
//! error. A CodeBuild project gets a build in the stand-in with the target's input as the
//! StartBuild parameters, as EventBridge does; a refused StartBuild (an unknown project, a bad
//! override) is a client error EventBridge does not retry, so it goes to the dead-letter queue at
//! once. Nothing is lost and nothing is retried forever.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::codebuild::{Build, CodeBuild, Refusal};
use crate::runtime::{LocalFunction, Outcome};
use crate::{LocalError, aws};

/// Lambda's asynchronous invocation without an EventInvokeConfig: the first attempt and two
/// retries.
pub const ATTEMPTS: u32 = 3;

/// What a rule delivers to.
#[derive(Clone)]
pub enum Target {
    /// Invoked asynchronously: `attempts` in all (its EventInvokeConfig's retries plus one).
    Function {
        function: Arc<LocalFunction>,
        attempts: u32,
    },
    /// Started as the target's role (`RoleArn`), EventBridge acting for the rule `rule_arn`.
    CodeBuild {
        project: String,
        role: String,
        rule_arn: String,
        stand_in: Arc<CodeBuild>,
    },
}

impl Target {
    /// The function's logical id, or `CodeBuild <project>`.
    pub fn name(&self) -> String {
        match self {
            Target::Function { function, .. } => function.name().to_string(),
            Target::CodeBuild { project, .. } => format!("CodeBuild {project}"),
        }
    }
}

/// One rule target and the queue moto feeds it from (none for a schedule).
pub struct Route {
    pub rule: String,
    pub queue_url: String,
    /// A schedule rule's expression; its target is invoked by `tick`, not from a queue.
    pub schedule: Option<String>,
    pub target: Target,
}

/// What the target did with an event.
#[derive(Debug, Clone)]
pub enum Handled {
    /// The function's last attempt.
    Invoked(Outcome),
    /// The build started, or why StartBuild refused it.
    Build(Result<Box<Build>, Refusal>),
}

impl Handled {
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            Handled::Invoked(Outcome::Response(_)) | Handled::Build(Ok(_))
        )
    }

    /// One line for a timeline.
    pub fn summary(&self) -> String {
        match self {
            Handled::Invoked(o) => o.summary(),
            Handled::Build(Ok(b)) => format!(
                "build {} started (#{}, source version {})",
                b.id,
                b.number,
                b.source_version.as_deref().unwrap_or("-")
            ),
            Handled::Build(Err(r)) => format!("StartBuild refused: {r}"),
        }
    }
}

/// What became of one event delivered to one target.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub rule: String,
    /// The function's logical id, or `CodeBuild <project>`.
    pub target: String,
    pub event_id: String,
    pub detail_type: String,
    pub attempts: u32,
    pub handled: Handled,
    pub dead_lettered: bool,
}

impl Delivery {
    /// `rule <name>`, with the event's detail type when the target got the event itself.
    pub fn title(&self) -> String {
        if self.detail_type.is_empty() {
            format!("rule {}", self.rule)
        } else {
            format!("rule {}: {}", self.rule, self.detail_type)
        }
    }

    /// The function's last outcome, for a function target.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.handled {
            Handled::Invoked(o) => Some(o),
            Handled::Build(_) => None,
        }
    }
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
            for route in self.routes.iter().filter(|r| r.schedule.is_none()) {
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

    /// Fires every schedule rule once, as EventBridge does when it is due: a `Scheduled Event`
    /// whose `time` is `at` (epoch seconds). A local run may pass a later time to play a
    /// deadline without waiting for it; the timeline says so.
    pub async fn tick(&self, at: u64) -> Result<Vec<Delivery>, LocalError> {
        let mut out = Vec::new();
        for route in self.routes.iter().filter(|r| r.schedule.is_some()) {
            let event = json!({
                "version": "0",
                "id": format!("{:032x}", fastrand::u128(..)),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": crate::template::ACCOUNT,
                "time": eddo::time::rfc3339(at),
                "region": crate::template::REGION,
                "resources": [format!("arn:aws:events:{}:{}:rule/{}", crate::template::REGION, crate::template::ACCOUNT, route.rule)],
                "detail": {},
            });
            out.push(self.deliver(route, &event).await?);
        }
        Ok(out)
    }

    async fn deliver(&self, route: &Route, event: &Value) -> Result<Delivery, LocalError> {
        let mut attempts = 0;
        let handled = match &route.target {
            Target::Function {
                function,
                attempts: most,
            } => loop {
                attempts += 1;
                let outcome = function.invoke(event).await?.outcome;
                if matches!(outcome, Outcome::Response(_)) || attempts >= *most {
                    break Handled::Invoked(outcome);
                }
            },
            Target::CodeBuild {
                project,
                role,
                rule_arn,
                stand_in,
            } => {
                attempts = 1;
                Handled::Build(
                    stand_in
                        .start_from_rule(&route.rule, rule_arn, project, role, event)
                        .map(Box::new),
                )
            }
        };
        let failed = !handled.succeeded();
        if failed && let Some(dlq) = &self.dead_letter_queue {
            let record = json!({
                "rule": route.rule,
                "target": route.target.name(),
                "attempts": attempts,
                "error": handled.summary(),
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
            target: route.target.name(),
            event_id: event["id"].as_str().unwrap_or_default().to_string(),
            detail_type: event["detail-type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            attempts,
            handled,
            dead_lettered: failed && self.dead_letter_queue.is_some(),
        })
    }
}
