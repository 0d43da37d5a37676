//! What happened on the local stack, one line each: the events on the buses, which rule sent them
//! where, what each function or build did with them (a crash or an init failure in Lambda's
//! words, never hidden), and each build's progress. `demo` and `up` print the same lines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::LocalError;
use crate::dispatch::{Delivery, Dispatcher};
use crate::runtime::LocalFunction;
use crate::stack::Stack;

/// Every AWS service event on the default bus (CodeBuild state changes, scans, alarms).
pub const AWS_EVENTS: &str = r#"{"source":[{"prefix":"aws."}]}"#;

/// The answers to sbt-aws, from either generation's default application-plane source.
pub const SBT_ANSWERS: &str =
    r#"{"source":["sbt.application.plane","applicationPlaneEventSource"]}"#;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub at: Duration,
    /// `false` when something failed or did not happen as expected.
    pub ok: bool,
    pub what: String,
    pub who: String,
    pub detail: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>7.3}s  {}  {:<44} {:<22} {}",
            self.at.as_secs_f64(),
            if self.ok { "ok  " } else { "FAIL" },
            self.what,
            self.who,
            self.detail
        )
    }
}

/// The lines so far, printed as they come.
pub struct Timeline {
    start: Instant,
    pub lines: Vec<Line>,
    print: bool,
    /// After the first failed step, `Watch::until` waits for nothing.
    pub stop_at_first_failure: bool,
}

impl Timeline {
    pub fn new(print: bool) -> Timeline {
        Timeline {
            start: Instant::now(),
            lines: Vec::new(),
            print,
            stop_at_first_failure: false,
        }
    }

    pub fn step(&mut self, ok: bool, what: &str, who: &str, detail: impl Into<String>) {
        let line = Line {
            at: self.start.elapsed(),
            ok,
            what: what.to_string(),
            who: who.to_string(),
            detail: detail.into(),
        };
        if self.print {
            println!("{line}");
        }
        self.lines.push(line);
    }

    pub fn failures(&self) -> usize {
        self.lines.iter().filter(|l| !l.ok).count()
    }
}

/// Watches the stack: drains the watch queues, delivers what the rules routed, and reports builds
/// that could not report themselves.
pub struct Watch {
    dispatcher: Dispatcher,
    aws_queue: String,
    /// tenant-onboarding's answers to sbt-aws, in either generation's source.
    sbt_queue: String,
    /// Every eddo event seen on the eddo bus, the answers to sbt-aws on it, and every AWS event
    /// on the default bus.
    pub events: Vec<Value>,
    pub deliveries: Vec<Delivery>,
    notes_seen: HashMap<String, usize>,
}

impl Watch {
    /// Starts watching `stack`, whose rules invoke the `running` functions.
    pub async fn new(stack: &Stack, running: &[Arc<LocalFunction>]) -> Result<Watch, LocalError> {
        let aws_queue = stack
            .route_to_queue_on("default", "eddo-local-aws-events", AWS_EVENTS)
            .await?;
        let sbt_queue = stack
            .route_to_queue("eddo-local-sbt-answers", SBT_ANSWERS)
            .await?;
        Ok(Watch {
            dispatcher: stack.dispatcher(running)?,
            aws_queue,
            sbt_queue,
            events: Vec::new(),
            deliveries: Vec::new(),
            notes_seen: HashMap::new(),
        })
    }

    /// Polls until `done` holds or `timeout` passes; whether it held.
    pub async fn until(
        &mut self,
        stack: &Stack,
        t: &mut Timeline,
        timeout: Duration,
        done: impl Fn(&Watch, &Stack) -> bool,
    ) -> Result<bool, LocalError> {
        let deadline = Instant::now() + timeout;
        while !done(self, stack) {
            if t.stop_at_first_failure && t.failures() > 0 {
                return Ok(false);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.poll(stack, t, left.min(Duration::from_millis(500)))
                .await?;
        }
        Ok(true)
    }

    /// Fires the schedule rules with the time `at`, as EventBridge would when due.
    pub async fn tick(&mut self, t: &mut Timeline, at: u64) -> Result<(), LocalError> {
        for d in self.dispatcher.tick(at).await? {
            t.step(
                d.handled.succeeded(),
                &d.title(),
                &d.target,
                d.handled.summary(),
            );
            self.deliveries.push(d);
        }
        Ok(())
    }

    /// The events of `detail_type` seen so far.
    pub fn seen(&self, detail_type: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["detail-type"] == detail_type)
            .collect()
    }

    /// How many events from `source` were seen (with `build-status` `status`, if given).
    pub fn count(&self, source: &str, status: Option<&str>) -> usize {
        self.events
            .iter()
            .filter(|e| e["source"] == source)
            .filter(|e| status.is_none_or(|s| e["detail"]["build-status"] == s))
            .count()
    }

    /// One round: new events and the deliveries they cause (waiting up to `wait` for the first),
    /// and build problems, each as a line of `t`.
    pub async fn poll(
        &mut self,
        stack: &Stack,
        t: &mut Timeline,
        wait: Duration,
    ) -> Result<(), LocalError> {
        let deadline = Instant::now() + wait;
        loop {
            // Events first, then what the rules did with them, so lines read in causal order.
            let mut happened = false;
            for queue in [&stack.tap_queue, &self.sbt_queue, &self.aws_queue] {
                for event in stack.drain(queue, Duration::ZERO).await? {
                    happened = true;
                    t.step(
                        true,
                        &format!("event {}", event["detail-type"].as_str().unwrap_or("-")),
                        event["source"].as_str().unwrap_or("-"),
                        describe_event(&event),
                    );
                    self.events.push(event);
                }
            }
            for d in self.dispatcher.pump(Duration::ZERO).await? {
                happened = true;
                let retried = if d.attempts > 1 {
                    format!(" after {} attempts", d.attempts)
                } else {
                    String::new()
                };
                let dlq = if d.dead_lettered {
                    ", sent to the dead-letter queue"
                } else {
                    ""
                };
                t.step(
                    d.handled.succeeded(),
                    &d.title(),
                    &d.target,
                    format!("{}{retried}{dlq}", d.handled.summary()),
                );
                self.deliveries.push(d);
            }
            if happened || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for b in stack.codebuild.builds() {
            let seen = self.notes_seen.entry(b.id.clone()).or_default();
            // A build's start and state changes have lines of their own (the delivery, the
            // events); only a state change the stand-in could not send needs one here.
            for (_, note) in b.notes.iter().skip(*seen) {
                if note.starts_with("could not") {
                    t.step(
                        false,
                        &format!("build #{} {}", b.number, note),
                        &format!("CodeBuild {}", b.project),
                        b.id.clone(),
                    );
                }
            }
            *seen = b.notes.len();
        }
        Ok(())
    }
}

/// A short description of an event, naming what a person looks for.
pub fn describe_event(e: &Value) -> String {
    let d = &e["detail"];
    if d["specversion"] == "1.0" {
        // A CDEvent, in its CloudEvent.
        return format!(
            "{} {} (chainId {})",
            d["type"].as_str().unwrap_or("-"),
            d["subject"].as_str().unwrap_or("-"),
            d["data"]["context"]["chainId"].as_str().unwrap_or("-")
        );
    }
    let short = |v: &Value| {
        v.as_str()
            .map(|s| s.chars().take(7).collect::<String>())
            .unwrap_or_else(|| "-".into())
    };
    if let Some(counts) = d["finding-severity-counts"].as_object() {
        let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        return format!(
            "{} {}: {}",
            d["repository-name"].as_str().unwrap_or("-"),
            d["image-tags"][0]
                .as_str()
                .map(|t| &t[..t.len().min(7)])
                .unwrap_or("-"),
            counts.join(", ")
        );
    }
    if let Some(status) = d["build-status"].as_str() {
        let exported: Vec<String> = d["additional-information"]["exported-environment-variables"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!(
                    "{}={}",
                    v["name"].as_str().unwrap_or("-"),
                    v["value"].as_str().unwrap_or("-")
                )
            })
            .collect();
        return format!(
            "{} {status}{}",
            d["project-name"].as_str().unwrap_or("-"),
            if exported.is_empty() {
                String::new()
            } else {
                format!(", exported {}", exported.join(" "))
            }
        );
    }
    let mut parts = Vec::new();
    if let Some(service) = d["service"].as_str() {
        parts.push(service.to_string());
    }
    if let Some(reasons) = d["reasons"].as_array() {
        parts.push(
            reasons
                .iter()
                .filter_map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    if let Some(b) = d["build_id"].as_str() {
        parts.push(format!("build {b}"));
    }
    if let Some(c) = d["live"]["commit"].as_str() {
        parts.push(format!("live {}", &c[..c.len().min(7)]));
    }
    if let Some(repo) = d["repository"]["full_name"].as_str() {
        parts.push(repo.to_string());
    }
    if let Some(b) = d["branch"].as_str() {
        parts.push(format!("branch {b}"));
    }
    if d["commit_sha"].is_string() {
        parts.push(format!("commit {}", short(&d["commit_sha"])));
    }
    if let Some(c) = d["metadata"]["correlation_id"].as_str() {
        parts.push(format!("correlation {c}"));
    }
    parts.join(", ")
}
