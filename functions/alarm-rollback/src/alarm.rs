//! An alarm's state change, from either of the shapes CloudWatch sends it in: the EventBridge
//! `CloudWatch Alarm State Change` event (`detail`) and the direct Lambda alarm action
//! (`alarmData`), for metric and composite alarms; or a Prometheus Alertmanager or Grafana alert
//! the webhook received from an authenticated sender (`Alert Received`): firing is ALARM from its
//! start, resolved is OK from its end. Small typed structs of our own: `aws_lambda_events` has
//! none for the EventBridge shape.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One side of the transition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateValue {
    pub value: AlarmState,
    #[serde(default)]
    pub reason: String,
    /// As CloudWatch writes it (`2019-10-02T17:04:40.989+0000`).
    #[serde(default)]
    pub timestamp: String,
    /// A composite alarm's actions held back by its suppressor (`Alarm`, `WaitPeriod`,
    /// `ExtensionPeriod`).
    #[serde(default)]
    pub actions_suppressed_by: Option<String>,
    #[serde(default)]
    pub actions_suppressed_reason: Option<String>,
}

impl StateValue {
    /// Epoch seconds of the transition, when the timestamp reads.
    pub fn at(&self) -> Option<u64> {
        eddo::time::parse_timestamp(&self.timestamp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `CloudWatch Alarm State Change` through EventBridge.
    EventBridge,
    /// The payload of the alarm's own Lambda action.
    Action,
    /// An Alertmanager or Grafana alert, through the webhook (`Alert Received`).
    Alert,
}

/// Where an alert came from and what it carries: its sender proved itself to the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertOrigin {
    pub sender: String,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
}

/// An alarm's state change, whichever way it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    pub name: String,
    pub arn: Option<String>,
    pub shape: Shape,
    /// A composite alarm (it has an alarm rule).
    pub composite: bool,
    pub state: StateValue,
    pub previous: Option<StateValue>,
    /// Why its actions are muted by an alarm mute rule, when they are.
    pub muted: Option<String>,
    /// The alarm's tags, when the event carries them.
    pub tags: BTreeMap<String, String>,
    /// The EventBridge event id; the direct action has none.
    pub event_id: Option<String>,
    /// The alert's sender and labels, for an alert.
    pub alert: Option<AlertOrigin>,
}

// The common part of `detail` and `alarmData`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    alarm_name: String,
    state: StateValue,
    #[serde(default)]
    previous_state: Option<StateValue>,
    #[serde(default)]
    configuration: Option<Value>,
    #[serde(default)]
    mute_detail: Option<Value>,
    #[serde(default)]
    tags: Option<Value>,
}

impl AlarmChange {
    /// Reads an alarm state change in either shape; `Err` says why it is not one.
    pub fn read(event: &Value) -> Result<AlarmChange, String> {
        if event["detail-type"] == "Alert Received" {
            return Self::alert(event);
        }
        let (shape, data) = if event.get("detail").is_some_and(Value::is_object) {
            (Shape::EventBridge, &event["detail"])
        } else if event.get("alarmData").is_some_and(Value::is_object) {
            (Shape::Action, &event["alarmData"])
        } else {
            return Err("neither an EventBridge alarm state change (detail) nor an alarm action (alarmData)".into());
        };
        let d = Data::deserialize(data).map_err(|e| format!("not an alarm state change: {e}"))?;
        if d.alarm_name.trim().is_empty() {
            return Err("the alarm state change names no alarm".into());
        }
        let arn = event["alarmArn"]
            .as_str()
            .or_else(|| event["resources"][0].as_str())
            .map(str::to_string);
        let muted = d
            .mute_detail
            .filter(|m| !m.is_null())
            .map(|m| mute_words(&m))
            .or_else(|| {
                d.state
                    .actions_suppressed_by
                    .as_deref()
                    .filter(|by| {
                        by.eq_ignore_ascii_case("mute") || by.eq_ignore_ascii_case("MuteRule")
                    })
                    .map(|_| "an alarm mute rule".to_string())
            });
        Ok(AlarmChange {
            composite: d
                .configuration
                .as_ref()
                .is_some_and(|c| c.get("alarmRule").is_some()),
            name: d.alarm_name,
            arn,
            shape,
            state: d.state,
            previous: d.previous_state,
            muted,
            tags: d.tags.as_ref().map(tags).unwrap_or_default(),
            event_id: event["id"].as_str().map(str::to_string),
            alert: None,
        })
    }

    /// An `Alert Received` as a state change: only the webhook may put it (`eddo.webhook`, the
    /// bus policy), after it authenticated the sender.
    fn alert(event: &Value) -> Result<AlarmChange, String> {
        if event["source"] != "eddo.webhook" {
            return Err("Alert Received comes from the webhook only (source eddo.webhook)".into());
        }
        let d: AlertDetail = AlertDetail::deserialize(&event["detail"])
            .map_err(|e| format!("not an Alert Received: {e}"))?;
        let (value, timestamp, previous) = match d.status.as_str() {
            "firing" => (AlarmState::Alarm, d.starts_at, None),
            "resolved" => (
                AlarmState::Ok,
                d.ends_at.ok_or("a resolved alert without its end")?,
                Some(AlarmState::Alarm),
            ),
            other => return Err(format!("alert status {other:?}")),
        };
        let state = |value, timestamp: String| StateValue {
            value,
            reason: String::new(),
            timestamp,
            actions_suppressed_by: None,
            actions_suppressed_reason: None,
        };
        // What people read: the alert's name and its sender.
        let name = match d.labels.get("alertname") {
            Some(alertname) => format!("{alertname} ({})", d.sender),
            None => format!("{} ({})", d.fingerprint, d.sender),
        };
        Ok(AlarmChange {
            name,
            arn: None,
            shape: Shape::Alert,
            composite: false,
            state: StateValue {
                reason: d.summary.unwrap_or_default(),
                ..state(value, timestamp.clone())
            },
            previous: previous.map(|p| state(p, timestamp)),
            muted: None,
            tags: BTreeMap::new(),
            event_id: event["id"].as_str().map(str::to_string),
            alert: Some(AlertOrigin {
                sender: d.sender,
                fingerprint: d.fingerprint,
                labels: d.labels,
            }),
        })
    }

    /// What names this alarm across both shapes: its ARN, or its name without one; an alert's
    /// sender and fingerprint.
    pub fn identity(&self) -> String {
        match &self.alert {
            Some(a) => eddo::event::alert_identity(&a.sender, &a.fingerprint),
            None => self.arn.clone().unwrap_or_else(|| self.name.clone()),
        }
    }

    /// What names this state change: the same change delivered by EventBridge and by the alarm
    /// action, or delivered again an hour later, has the same key.
    pub fn change(&self) -> String {
        let at = self
            .state
            .at()
            .map(|s| s.to_string())
            .unwrap_or_else(|| self.state.timestamp.replace(char::is_whitespace, ""));
        format!("{at}#{}", self.state.value.as_str())
    }
}

// `Alert Received`'s detail, as infra/schemas/alert-received.schema.json has it.
#[derive(Deserialize)]
struct AlertDetail {
    sender: String,
    fingerprint: String,
    status: String,
    starts_at: String,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    summary: Option<String>,
}

/// Tags as `{"key": "value"}` or as a list of `{"Key"|"key", "Value"|"value"}`.
pub fn tags(v: &Value) -> BTreeMap<String, String> {
    match v {
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(|t| {
                let k = t.get("Key").or_else(|| t.get("key"))?.as_str()?;
                let v = t.get("Value").or_else(|| t.get("value"))?.as_str()?;
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A mute's description for people: the rule's name when the detail gives one.
fn mute_words(m: &Value) -> String {
    let named = [
        "muteRuleName",
        "alarmMuteRuleName",
        "ruleName",
        "name",
        "muteRuleArn",
    ]
    .iter()
    .find_map(|k| m.get(*k).and_then(Value::as_str));
    match named {
        Some(rule) => format!("alarm mute rule {rule}"),
        None => "an alarm mute rule".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn corpus(name: &str) -> Value {
        eddo::corpus::json(&format!("aws/{name}"))
    }

    #[test]
    fn every_corpus_alarm_shape_reads() {
        let a = AlarmChange::read(&corpus("cloudwatch-alarm-state-change.json")).unwrap();
        assert_eq!(a.name, "ServerCpuTooHigh");
        assert_eq!(
            a.arn.as_deref(),
            Some("arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh")
        );
        assert_eq!((a.shape, a.composite), (Shape::EventBridge, false));
        assert_eq!(a.state.value, AlarmState::Alarm);
        assert_eq!(a.previous.as_ref().unwrap().value, AlarmState::Ok);
        assert_eq!(
            a.event_id.as_deref(),
            Some("c4c1c1c9-6542-e61b-6ef0-8c4d36933a92")
        );
        assert_eq!(a.change(), "1570035880#ALARM");

        let a = AlarmChange::read(&corpus("cloudwatch-alarm-state-change-2.json")).unwrap();
        assert_eq!(a.name, "TotalNetworkTrafficTooHigh");
        assert_eq!(a.previous.unwrap().value, AlarmState::InsufficientData);

        let a = AlarmChange::read(&corpus("cloudwatch-alarm-action-metric.json")).unwrap();
        assert_eq!((a.shape, a.composite), (Shape::Action, false));
        assert_eq!(a.name, "lambda-demo-metric-alarm");
        assert_eq!(a.event_id, None);
        assert!(
            a.state.at().is_some(),
            "the sample's spaced timestamp reads"
        );

        let a = AlarmChange::read(&corpus("cloudwatch-alarm-action-composite.json")).unwrap();
        assert!(a.composite);
        assert_eq!(a.state.value, AlarmState::Alarm);
        let p = a.previous.unwrap();
        assert_eq!(p.actions_suppressed_by.as_deref(), Some("WaitPeriod"));

        let a = AlarmChange::read(&corpus("cloudwatch-alarm-action-composite-suppressed.json"))
            .unwrap();
        assert!(a.composite);
        assert_eq!(a.state.actions_suppressed_by.as_deref(), Some("WaitPeriod"));
        assert_eq!(a.name, "ServiceAggregatedAlarm");
        assert_eq!(
            a.arn.as_deref(),
            Some("arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServiceAggregatedAlarm")
        );
    }

    #[test]
    fn tags_and_mutes_are_read_when_present() {
        let mut e = corpus("cloudwatch-alarm-state-change.json");
        e["detail"]["tags"] = json!([{"Key": "eddo:service", "Value": "hello-world"}]);
        e["detail"]["muteDetail"] = json!({"muteRuleName": "weekend-maintenance"});
        let a = AlarmChange::read(&e).unwrap();
        assert_eq!(a.tags["eddo:service"], "hello-world");
        assert_eq!(
            a.muted.as_deref(),
            Some("alarm mute rule weekend-maintenance")
        );
        e["detail"]["tags"] = json!({"eddo:service": "payments"});
        e["detail"]["muteDetail"] = Value::Null;
        let a = AlarmChange::read(&e).unwrap();
        assert_eq!(a.tags["eddo:service"], "payments");
        assert_eq!(a.muted, None);
    }

    #[test]
    fn what_is_not_an_alarm_change_says_why() {
        for (event, says) in [
            (json!({"source": "aws.cloudwatch"}), "neither"),
            (
                json!({"detail": {"alarmName": "x"}}),
                "missing field `state`",
            ),
            (
                json!({"detail": {"alarmName": "x", "state": {"value": "RED"}}}),
                "unknown variant `RED`",
            ),
            (
                json!({"alarmData": {"alarmName": " ", "state": {"value": "OK"}}}),
                "names no alarm",
            ),
        ] {
            let err = AlarmChange::read(&event).unwrap_err();
            assert!(err.contains(says), "{event}: {err}");
        }
    }

    fn example(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/examples/events")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn an_alert_is_alarm_while_it_fires_and_ok_from_its_end() {
        let firing = AlarmChange::read(&example("alert-received.json")).unwrap();
        assert_eq!(firing.shape, Shape::Alert);
        assert_eq!(firing.name, "HighErrorRate (prometheus)");
        assert_eq!(firing.identity(), "alert:prometheus:4d1a4b2f0c3e9a71");
        assert_eq!(firing.state.value, AlarmState::Alarm);
        assert_eq!(
            firing.state.at(),
            eddo::time::parse_rfc3339("2026-12-07T12:03:21Z")
        );
        assert_eq!(firing.state.reason, "hello-world answers 5xx");
        assert_eq!(firing.previous, None);
        let origin = firing.alert.as_ref().unwrap();
        assert_eq!(origin.sender, "prometheus");
        assert_eq!(origin.labels["job"], "hello-world");

        let resolved = AlarmChange::read(&example("alert-received-resolved.json")).unwrap();
        assert_eq!(resolved.identity(), firing.identity());
        assert_eq!(resolved.state.value, AlarmState::Ok);
        assert_eq!(
            resolved.state.at(),
            eddo::time::parse_rfc3339("2026-12-07T12:21:06Z")
        );
        assert_ne!(resolved.change(), firing.change());
        assert_eq!(resolved.previous.unwrap().value, AlarmState::Alarm);

        // Only the webhook says what an alert is.
        let mut forged = example("alert-received.json");
        forged["source"] = json!("com.example.alerts");
        let err = AlarmChange::read(&forged).unwrap_err();
        assert!(err.contains("webhook only"), "{err}");
        let mut bad = example("alert-received.json");
        bad["detail"]["status"] = json!("pending");
        assert!(AlarmChange::read(&bad).is_err());
    }

    #[test]
    fn both_shapes_of_one_change_have_one_key() {
        let bridge = AlarmChange::read(&corpus("cloudwatch-alarm-state-change.json")).unwrap();
        let mut action = json!({
            "source": "aws.cloudwatch",
            "alarmArn": bridge.arn,
            "alarmData": corpus("cloudwatch-alarm-state-change.json")["detail"],
        });
        action["alarmData"]["state"]["timestamp"] = json!("2019-10-02T17:04:40.989+0000");
        let action = AlarmChange::read(&action).unwrap();
        assert_eq!(
            (bridge.identity(), bridge.change()),
            (action.identity(), action.change())
        );
    }
}
