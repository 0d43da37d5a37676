//! Rule targets: moto routes each matching event to one SQS queue per (rule, target), and the
//! dispatcher hands it on. A function is invoked as Lambda's asynchronous invocation does: on a
//! function error, two more attempts, then the dead-letter queue with the event and the last
//! error. A CodeBuild project gets a build in the stand-in with the target's input as the
//! StartBuild parameters, as EventBridge does; a refused StartBuild (an unknown project, a bad
//! override) is a client error EventBridge does not retry, so it goes to the dead-letter queue at
//! once. An API destination gets an HTTP request with its connection's authorization and the
//! target's headers, retried as EventBridge retries one (401, 407, 409, 429, 5xx, a timeout or a
//! refused connection; up to the target's `MaximumRetryAttempts`, with backoff shortened for a
//! local run), any other answer dead-lettered at once. Nothing is lost and nothing is retried
//! forever.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::codebuild::{Build, CodeBuild, Refusal};
use crate::iam::{Authority, Caller};
use crate::runtime::{LocalFunction, Outcome};
use crate::stack::ApiDestinationDef;
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
    /// Invoked as the target's role, EventBridge acting for the rule `rule_arn`: `attempts` in
    /// all, then the route's dead-letter queue.
    ApiDestination {
        destination: ApiDestinationDef,
        headers: Vec<(String, String)>,
        role: String,
        rule_arn: String,
        authority: Authority,
        attempts: u32,
    },
}

impl Target {
    /// The function's logical id, or `CodeBuild <project>`.
    pub fn name(&self) -> String {
        match self {
            Target::Function { function, .. } => function.name().to_string(),
            Target::CodeBuild { project, .. } => format!("CodeBuild {project}"),
            Target::ApiDestination { destination, .. } => {
                format!("API destination {}", destination.endpoint)
            }
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
    /// The target's `InputPath`, applied here (moto routes the whole event).
    pub input_path: Option<String>,
    /// Where an event the target failed goes (none: dropped, as EventBridge drops it).
    pub dead_letter: Option<String>,
}

/// What the target did with an event.
#[derive(Debug, Clone)]
pub enum Handled {
    /// The function's last attempt.
    Invoked(Outcome),
    /// The build started, or why StartBuild refused it.
    Build(Result<Box<Build>, Refusal>),
    /// The endpoint's last answer (its status), or why there was none.
    Http(Result<u16, String>),
}

impl Handled {
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            Handled::Invoked(Outcome::Response(_)) | Handled::Build(Ok(_))
        ) || matches!(self, Handled::Http(Ok(status)) if (200..300).contains(status))
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
            Handled::Http(Ok(status)) => format!("the endpoint answered {status}"),
            Handled::Http(Err(why)) => why.clone(),
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
            Handled::Build(_) | Handled::Http(_) => None,
        }
    }
}

pub struct Dispatcher {
    sqs: aws_sdk_sqs::Client,
    routes: Vec<Route>,
}

impl Dispatcher {
    pub fn new(sdk: &aws_config::SdkConfig, routes: Vec<Route>) -> Self {
        Dispatcher {
            sqs: aws_sdk_sqs::Client::new(sdk),
            routes,
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
        let whole = event;
        let selected;
        let event = match &route.input_path {
            Some(path) => {
                selected = input_path(whole, path);
                &selected
            }
            None => whole,
        };
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
            Target::ApiDestination {
                destination,
                headers,
                role,
                rule_arn,
                authority,
                attempts: most,
                ..
            } => {
                let caller = Caller::ServiceRole {
                    role: role.clone(),
                    service: "events.amazonaws.com".into(),
                    source_arn: Some(rule_arn.clone()),
                };
                let decision = authority.authorize(
                    &caller,
                    "events:InvokeApiDestination",
                    &destination.arn,
                    json!({}),
                )?;
                if decision.allowed {
                    let (handled, tried) =
                        invoke_api_destination(destination, headers, event, *most).await;
                    attempts = tried;
                    handled
                } else {
                    attempts = 1;
                    Handled::Http(Err(format!("not authorized: {}", decision.message)))
                }
            }
        };
        let dead_letter = route.dead_letter.as_ref();
        let failed = !handled.succeeded();
        if failed && let Some(dlq) = dead_letter {
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
            event_id: whole["id"].as_str().unwrap_or_default().to_string(),
            detail_type: whole["detail-type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            attempts,
            handled,
            dead_lettered: failed && dead_letter.is_some(),
        })
    }
}

/// How long EventBridge waits for an API destination's answer.
pub const API_DESTINATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether EventBridge retries an API destination's answer: 401, 407, 409, 429 and 5xx
/// ("Retries and error handling" in its API destinations guide); any other non-2xx answer is
/// dead-lettered at once.
pub fn retried_status(status: u16) -> bool {
    matches!(status, 401 | 407 | 409 | 429) || (500..600).contains(&status)
}

/// Sends `body` to the destination until it answers 2xx, answers what EventBridge does not
/// retry, or `most` attempts were made; returns its last answer and the attempts. Only loopback
/// endpoints are reached: an `https://127.0.0.1:<port>/...` endpoint is sent plain HTTP there
/// (the local sink has no certificate); any other host is refused, as nothing leaves the machine.
async fn invoke_api_destination(
    destination: &ApiDestinationDef,
    headers: &[(String, String)],
    body: &Value,
    most: u32,
) -> (Handled, u32) {
    let Some((addr, path)) = loopback_endpoint(&destination.endpoint) else {
        return (
            Handled::Http(Err(format!(
                "the local stack delivers only to loopback endpoints, not {}",
                destination.endpoint
            ))),
            1,
        );
    };
    // The connection's authorization wins over a target header of the same name, as in AWS.
    let mut sent: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(&destination.authorization.0))
        .cloned()
        .collect();
    if !sent
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        sent.push((
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        ));
    }
    sent.push(destination.authorization.clone());
    sent.push((
        "User-Agent".into(),
        "Amazon/EventBridge/ApiDestinations".into(),
    ));
    let body = match body {
        Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (method, path, sent, body) = (
            destination.method.clone(),
            path.clone(),
            sent.clone(),
            body.clone(),
        );
        let answer = tokio::task::spawn_blocking(move || {
            let headers: Vec<(&str, &str)> =
                sent.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            crate::url::request(
                addr,
                &method,
                &path,
                &headers,
                &body,
                API_DESTINATION_TIMEOUT,
            )
        })
        .await;
        let handled = match answer {
            Ok(Ok((status, _))) => Handled::Http(Ok(status)),
            Ok(Err(e)) => Handled::Http(Err(format!("no answer: {e}"))),
            Err(e) => Handled::Http(Err(format!("no answer: {e}"))),
        };
        let retried = match &handled {
            Handled::Http(Ok(status)) => retried_status(*status),
            _ => true,
        };
        if handled.succeeded() || !retried || attempt >= most {
            return (handled, attempt);
        }
        // EventBridge backs off over up to 24 hours; a local run keeps the count, not the wait.
        let ms = (1u64 << attempt.min(5)).min(20);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The loopback address and path of an `http(s)://127.0.0.1:<port>/<path>` endpoint.
pub fn loopback_endpoint(endpoint: &str) -> Option<(std::net::SocketAddr, String)> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let addr: std::net::SocketAddr = host.replace("localhost", "127.0.0.1").parse().ok()?;
    addr.ip().is_loopback().then_some((addr, path))
}

/// The part of `event` an `InputPath` (`$`, `$.detail`, `$.detail.field`) selects; `null`
/// where the path names nothing, as EventBridge sends it.
pub fn input_path(event: &Value, path: &str) -> Value {
    let Some(rest) = path.strip_prefix('$') else {
        return Value::Null;
    };
    rest.split('.')
        .filter(|k| !k.is_empty())
        .try_fold(event, |v, k| v.get(k))
        .cloned()
        .unwrap_or(Value::Null)
}
