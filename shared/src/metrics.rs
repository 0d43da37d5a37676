//! The functions' metrics, as CloudWatch Embedded Metric Format (EMF) documents: one JSON line
//! per measurement on standard output, which Lambda sends to CloudWatch Logs and CloudWatch
//! turns into metrics, with no API call and no extra permission
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//!
//! Every metric eddo emits is in [`Metric::ALL`], with its unit and its dimensions, so the
//! dashboards can be checked to show each. Dimensions are few and bounded by the policy (the
//! service, a signal kind, an outcome): never a commit, a build or a tenant, which go in the
//! document as properties (searchable in CloudWatch Logs Insights, not metrics).
//!
//! A metric is at least once, as EMF is: an invocation that dies between its write and its
//! metric loses that point; a decision is measured once, where its write succeeded.

use std::io::Write as _;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every eddo metric.
pub const NAMESPACE: &str = "eddo";

/// The most a dimension value may hold (CloudWatch's limit), cut beyond.
pub const MAX_DIMENSION_VALUE: usize = 1024;

/// What CloudWatch measures a metric in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
}

impl Unit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
        }
    }
}

/// Every metric eddo emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// One per decision of the gate, by outcome (`deploy`, `approve`, `block`, `time_out`,
    /// `observe`).
    Decisions,
    /// From a candidate's first evidence to its decision.
    TimeToDecision,
    /// From a candidate's first evidence to the first signal of each kind its policy requires
    /// (which signal holds deploys back).
    SignalWait,
    /// One per deploy build the gate started that succeeded.
    Deployments,
    /// From the commit (its time, as the push said it) to its deploy build's success: DORA's
    /// lead time for changes.
    LeadTime,
    /// One per deployed change that failed, by cause: `rollback` (an alarm rolled it back) or
    /// `late_signal` (a required signal failed after its deployment started, within the
    /// service's bake window).
    ChangeFailures,
    /// One per rollback started, by the alarm that started it.
    Rollbacks,
    /// From the alarm change that rolled a service back to that alarm's recovery: DORA's time
    /// to restore service.
    TimeToRestore,
}

impl Metric {
    pub const ALL: &'static [Metric] = &[
        Metric::Decisions,
        Metric::TimeToDecision,
        Metric::SignalWait,
        Metric::Deployments,
        Metric::LeadTime,
        Metric::ChangeFailures,
        Metric::Rollbacks,
        Metric::TimeToRestore,
    ];

    /// Its name in CloudWatch.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Decisions => "Decisions",
            Metric::TimeToDecision => "TimeToDecision",
            Metric::SignalWait => "SignalWait",
            Metric::Deployments => "Deployments",
            Metric::LeadTime => "LeadTime",
            Metric::ChangeFailures => "ChangeFailures",
            Metric::Rollbacks => "Rollbacks",
            Metric::TimeToRestore => "TimeToRestore",
        }
    }

    pub const fn unit(self) -> Unit {
        match self {
            Metric::Decisions
            | Metric::Deployments
            | Metric::ChangeFailures
            | Metric::Rollbacks => Unit::Count,
            Metric::TimeToDecision
            | Metric::SignalWait
            | Metric::LeadTime
            | Metric::TimeToRestore => Unit::Seconds,
        }
    }

    /// Its dimensions, in order: the service's, and one more for some.
    pub const fn dimensions(self) -> &'static [&'static str] {
        match self {
            Metric::Decisions => &["Service", "Outcome"],
            Metric::SignalWait => &["Service", "Kind"],
            Metric::ChangeFailures => &["Service", "Cause"],
            Metric::Rollbacks => &["Service", "Alarm"],
            Metric::TimeToDecision
            | Metric::Deployments
            | Metric::LeadTime
            | Metric::TimeToRestore => &["Service"],
        }
    }
}

/// One measurement: a metric's value, its dimensions' values (in [`Metric::dimensions`]'
/// order), and properties that say which change it measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: Metric,
    pub value: f64,
    pub dimensions: Vec<String>,
    pub properties: Vec<(&'static str, String)>,
}

impl Point {
    pub fn new(metric: Metric, value: f64, dimensions: &[&str]) -> Point {
        Point {
            metric,
            value,
            dimensions: dimensions.iter().map(|d| d.to_string()).collect(),
            properties: vec![],
        }
    }

    /// With a property (`commit`, `correlation_id`): in the document, not a dimension.
    pub fn with(mut self, name: &'static str, value: &str) -> Point {
        self.properties.push((name, value.to_string()));
        self
    }

    /// The EMF document of this point at `at_ms` (epoch milliseconds), or why it is not one:
    /// a value that is not finite, or dimensions that are not the metric's.
    pub fn document(&self, at_ms: u64) -> Result<String, String> {
        let keys = self.metric.dimensions();
        if keys.len() != self.dimensions.len() {
            return Err(format!(
                "{} takes {} dimension(s), not {}",
                self.metric.name(),
                keys.len(),
                self.dimensions.len()
            ));
        }
        if !self.value.is_finite() {
            return Err(format!("{} is not a number", self.metric.name()));
        }
        let mut root = Map::new();
        for (name, value) in &self.properties {
            root.insert((*name).to_string(), json!(value));
        }
        for (key, value) in keys.iter().zip(&self.dimensions) {
            let value: String = if value.is_empty() {
                "none".into()
            } else {
                value.chars().take(MAX_DIMENSION_VALUE).collect()
            };
            root.insert((*key).to_string(), json!(value));
        }
        root.insert(self.metric.name().to_string(), json!(self.value));
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": at_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [keys],
                    "Metrics": [{"Name": self.metric.name(), "Unit": self.metric.unit().as_str()}],
                }],
            }),
        );
        Ok(Value::Object(root).to_string())
    }
}

/// Where documents go: standard output, or, while a test captures them, its buffer.
static CAPTURED: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Emits `points` at `at` (epoch seconds). A point that is no document is logged, not emitted:
/// a metric never fails the work it measures.
pub fn emit(points: &[Point], at: u64) {
    let at_ms = at.saturating_mul(1000);
    let mut lines = Vec::with_capacity(points.len());
    for p in points {
        match p.document(at_ms) {
            Ok(line) => lines.push(line),
            Err(why) => tracing::warn!(metric = p.metric.name(), %why, "metric not emitted"),
        }
    }
    let mut captured = CAPTURED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(buffer) = captured.as_mut() {
        buffer.extend(lines);
        return;
    }
    drop(captured);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
}

/// From now on, documents are kept for [`captured`] instead of written (for tests, in-process).
pub fn capture() {
    let mut captured = CAPTURED.lock().unwrap_or_else(|p| p.into_inner());
    captured.get_or_insert_with(Vec::new);
}

/// Every document captured so far.
pub fn captured() -> Vec<String> {
    CAPTURED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_one_emf_document_with_its_dimensions_and_properties() {
        let p = Point::new(Metric::SignalWait, 42.0, &["payments", "sast"]).with("commit", "abc");
        let doc: Value = serde_json::from_str(&p.document(1_700_000_000_000).unwrap()).unwrap();
        assert_eq!(doc["SignalWait"], 42.0);
        assert_eq!(doc["Service"], "payments");
        assert_eq!(doc["Kind"], "sast");
        assert_eq!(doc["commit"], "abc");
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "eddo");
        assert_eq!(directive["Dimensions"], json!([["Service", "Kind"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "SignalWait", "Unit": "Seconds"}])
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }

    #[test]
    fn what_is_not_a_document_says_why() {
        assert!(
            Point::new(Metric::Decisions, 1.0, &["payments"])
                .document(0)
                .unwrap_err()
                .contains("2 dimension(s)")
        );
        assert!(
            Point::new(Metric::Deployments, f64::NAN, &["payments"])
                .document(0)
                .is_err()
        );
        let long = "x".repeat(2000);
        let doc: Value = serde_json::from_str(
            &Point::new(Metric::Deployments, 1.0, &[&long])
                .document(0)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(doc["Service"].as_str().unwrap().len(), MAX_DIMENSION_VALUE);
    }
}
